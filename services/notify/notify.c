/* Who must know, and in which words. An event's kind names the recipient
 * roles (config routes); each recipient gets one inbox row, and one delivery
 * row per channel it subscribed to (notify_subscription), all in the
 * transaction that records the consumed message id. The inbox's primary key
 * and the delivery's unique (event, recipient, channel) make a redelivered
 * event, even under a new message id, change nothing. */
#define _POSIX_C_SOURCE 200809L
#include "notify.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_region.h"
#include "lv_time.h"
#include "ntf_template.h"

#define MAX_TEXT 2000       /* bytes of an event's title or body */
#define MAX_MSG 4000        /* bytes of a rendered message part */
#define MAX_RECIPIENTS 24
#define MAX_SCHOOLS 8
#define MAX_ASSIGNEE 64
#define MAX_ARRAY ((size_t)16 << 20)
#define ID_LEN 35           /* "d-" + 32 hex + NUL */

typedef struct {
    ntf_role_t role;
    char id[256];   /* "town:620521001" */
    char name[256]; /* display name */
} recipient_t;

/* Everything a template may say about one event, masked. */
typedef struct {
    const Levee__Event *ev;
    char title[MAX_TEXT + 1], body[MAX_TEXT + 1];
    char time[17];
    const char *grade;
} facts_t;

const char *ntf_config_path(void)
{
    const char *p = getenv("LEVEE_NOTIFY_CONFIG");
    return p && *p ? p : "config/notify.json";
}

void ntf_reload(ntf_t *n)
{
    char err[512];
    ntf_config_t *c = ntf_config_load(n->config_path, err, sizeof err);
    if (!c) {
        lv_error("notify config reload refused, keeping the old one: %s", err);
        return;
    }
    /* Single-threaded loop: nothing holds the old config across turns. */
    ntf_config_destroy(&n->config);
    n->config = c;
    ntf_sender_forget_secrets(n->sender);
    lv_info("notify config reloaded from %s", n->config_path);
}

/* A stable id per (event, recipient, channel): the receiver's key for
 * dropping a repeat (X-Levee-Delivery), the same on every attempt. */
static void delivery_id(const char *event_id, const char *recipient, const char *channel,
                        char out[ID_LEN])
{
    crypto_generichash_state st;
    unsigned char h[16];
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)event_id, strlen(event_id));
    crypto_generichash_update(&st, (const unsigned char *)"\x1f", 1);
    crypto_generichash_update(&st, (const unsigned char *)recipient, strlen(recipient));
    crypto_generichash_update(&st, (const unsigned char *)"\x1f", 1);
    crypto_generichash_update(&st, (const unsigned char *)channel, strlen(channel));
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(out, "d-", 2);
    sodium_bin2hex(out + 2, ID_LEN - 2, h, sizeof h);
}

static void render(const ntf_config_t *cfg, const facts_t *f, const recipient_t *r,
                   const char *channel, const char *part, char out[MAX_MSG + 1])
{
    const Levee__Event *ev = f->ev;
    const ntf_var_t vars[] = {
        {"title", f->title},           {"body", f->body},
        {"household_id", ev->household_id}, {"case_id", ev->case_id},
        {"region_code", ev->region_code},   {"assignee", ev->assignee},
        {"grade", f->grade},           {"kind", ev->kind},
        {"recipient", r->id},          {"recipient_name", r->name},
        {"time", f->time},
    };
    const char *tpl = ntf_config_template(cfg, ev->kind, channel, r->role, part);
    const char *why = NULL;
    if (!tpl || ntf_render(tpl, vars, sizeof vars / sizeof vars[0], out, MAX_MSG + 1, &why)) {
        /* Checked at load; only an event kind routed by "*" can get here. */
        snprintf(out, MAX_MSG + 1, "%s", f->title);
    }
    /* Whatever the template pulled in, no ID number or phone leaves unmasked. */
    lv_mask_text(out);
}

static void add_recipient(const ntf_config_t *cfg, recipient_t *rs, int *n, ntf_role_t role,
                          const char *code)
{
    if (*n >= MAX_RECIPIENTS)
        return;
    recipient_t *r = &rs[*n];
    r->role = role;
    snprintf(r->id, sizeof r->id, "%s:%s", ntf_role_name(role), code);
    const ntf_var_t v[] = {{"code", code}};
    const char *why = NULL;
    if (ntf_render(ntf_config_recipient_name(cfg, role), v, 1, r->name, sizeof r->name, &why))
        snprintf(r->name, sizeof r->name, "%s", r->id);
    lv_mask_text(r->name);
    for (int i = 0; i < *n; i++)
        if (!strcmp(rs[i].id, r->id))
            return; /* a school named twice */
    (*n)++;
}

/* The household's schools, from education_record when that table exists
 * (it arrives with the education feed; older schemas have none). */
static int add_schools(PGconn *pg, const ntf_config_t *cfg, const char *household_id,
                       recipient_t *rs, int *n)
{
    if (!*household_id)
        return 0;
    char exists[8];
    int e = lv_pg_scalar(pg, exists, sizeof exists,
                         "SELECT to_regclass('education_record') IS NOT NULL", 0, NULL);
    if (e || strcmp(exists, "t") != 0)
        return e;
    PGresult *res;
    char lim[8];
    snprintf(lim, sizeof lim, "%d", MAX_SCHOOLS);
    const char *q[2] = {household_id, lim};
    e = lv_pg_query(pg, &res,
                    "SELECT DISTINCT school FROM education_record WHERE household_id = $1 "
                    "AND coalesce(btrim(school), '') <> '' ORDER BY school LIMIT $2::int",
                    2, q);
    if (e)
        return e;
    for (int i = 0; i < PQntuples(res); i++)
        add_recipient(cfg, rs, n, NTF_SCHOOL, PQgetvalue(res, i, 0));
    PQclear(res);
    return 0;
}

static bool printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return false;
    return true;
}

/* The recipients of the event's kind. Returns 0, LV_EINVAL with *why, or a
 * database error. */
static int recipients(PGconn *pg, const ntf_config_t *cfg, const Levee__Event *ev,
                      recipient_t *rs, int *n, const char **why)
{
    ntf_role_t roles[NTF_NROLES];
    int nroles = ntf_config_route(cfg, ev->kind, roles);
    if (nroles < 0) {
        *why = "没有该类事件的通知路由 (no route for this event kind in the notify config)";
        return LV_EINVAL;
    }
    char code[16];
    *n = 0;
    for (int i = 0; i < nroles; i++) {
        switch (roles[i]) {
        case NTF_TOWN:
        case NTF_VILLAGE:
        case NTF_COUNTY: {
            int len = roles[i] == NTF_TOWN ? 9 : roles[i] == NTF_VILLAGE ? 12 : 6;
            snprintf(code, sizeof code, "%.*s", len, ev->region_code);
            add_recipient(cfg, rs, n, roles[i], code);
            break;
        }
        case NTF_INVESTIGATOR:
            if (*ev->assignee)
                add_recipient(cfg, rs, n, NTF_INVESTIGATOR, ev->assignee);
            break;
        case NTF_SCHOOL: {
            int e = add_schools(pg, cfg, ev->household_id, rs, n);
            if (e)
                return e;
            break;
        }
        case NTF_HOUSEHOLD:
            if (*ev->household_id)
                add_recipient(cfg, rs, n, NTF_HOUSEHOLD, ev->household_id);
            break;
        default:
            break;
        }
    }
    if (*n == 0) {
        *why = "事件没有收件人 (no recipient: the route needs an assignee or a household)";
        return LV_EINVAL;
    }
    return 0;
}

static const char *validate(const Levee__Event *ev)
{
    const char *why = NULL;
    char region[13];
    if (!*ev->event_id || !*ev->kind || !*ev->title)
        return "event without id, kind or title";
    if (strlen(ev->event_id) > 200 || strlen(ev->kind) > 64 || strlen(ev->household_id) > 64 ||
        strlen(ev->case_id) > 100 || strlen(ev->grade) > 16)
        return "event field too long";
    if (lv_region_parse(ev->region_code, strlen(ev->region_code), region, &why) != 0)
        return why;
    if (strlen(ev->title) > MAX_TEXT || strlen(ev->body) > MAX_TEXT)
        return "event text too long";
    if (strlen(ev->assignee) > MAX_ASSIGNEE || !printable(ev->assignee) ||
        !printable(ev->household_id) || !printable(ev->kind) || !printable(ev->event_id))
        return "event id, kind, household or assignee with control characters or too long";
    return NULL;
}

static int write_inbox(PGconn *pg, const ntf_config_t *cfg, const facts_t *f,
                       const recipient_t *rs, int n)
{
    lv_buf_t a[4];
    for (int i = 0; i < 4; i++) {
        lv_buf_init(&a[i], MAX_ARRAY);
        lv_arr_begin(&a[i]);
    }
    char title[MAX_MSG + 1], body[MAX_MSG + 1];
    for (int i = 0; i < n; i++) {
        render(cfg, f, &rs[i], "inbox", "title", title);
        render(cfg, f, &rs[i], "inbox", "body", body);
        lv_arr_text(&a[0], rs[i].id, strlen(rs[i].id));
        lv_arr_text(&a[1], rs[i].name, strlen(rs[i].name));
        lv_arr_text(&a[2], title, strlen(title));
        lv_arr_text(&a[3], body, strlen(body));
    }
    bool failed = false;
    for (int i = 0; i < 4; i++) {
        lv_arr_end(&a[i]);
        failed = failed || a[i].failed;
    }
    char county[7], now[24];
    snprintf(county, sizeof county, "%.6s", f->ev->region_code);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[8] = {f->ev->event_id, county, f->ev->kind, now, lv_buf_str(&a[0]),
                        lv_buf_str(&a[1]), lv_buf_str(&a[2]), lv_buf_str(&a[3])};
    int e = failed ? LV_ENOMEM
                   : lv_pg_cmd(pg,
                               "INSERT INTO inbox (event_id, recipient, recipient_name, county, "
                               "kind, title, body, created_ms) SELECT $1, r, nm, $2, $3, t, b, $4 "
                               "FROM unnest($5::text[], $6::text[], $7::text[], $8::text[]) "
                               "AS u(r, nm, t, b) ON CONFLICT DO NOTHING",
                               8, p);
    for (int i = 0; i < 4; i++)
        lv_buf_free(&a[i]);
    return e;
}

/* The household head's phone (the person row of 户主, else the household's). */
static int head_phone(PGconn *pg, const char *household_id, char *out, size_t n)
{
    const char *p[1] = {household_id};
    int e = lv_pg_scalar(pg, out, n,
                         "SELECT coalesce(nullif(btrim(p.phone), ''), nullif(btrim(h.phone), ''), '') "
                         "FROM household h LEFT JOIN person p ON p.household_id = h.household_id "
                         "AND p.relation = '户主' WHERE h.household_id = $1 "
                         "ORDER BY p.phone IS NULL LIMIT 1",
                         1, p);
    if (e == LV_ENOTFOUND) {
        out[0] = '\0';
        return 0;
    }
    return e;
}

enum { D_ID, D_RECIPIENT, D_CHANNEL, D_ADDRESS, D_SUBJECT, D_BODY, D_STATUS, D_ERROR, D_NCOLS };

static void add_delivery(lv_buf_t *a, const facts_t *f, const recipient_t *r, const char *channel,
                         const char *address, const char *subject, const char *body,
                         const char *error)
{
    char id[ID_LEN];
    delivery_id(f->ev->event_id, r->id, channel, id);
    const char *v[D_NCOLS] = {id,      r->id, channel,           address,
                              subject, body,  error ? "dead" : "pending", error};
    for (int i = 0; i < D_NCOLS; i++) {
        if (v[i])
            lv_arr_text(&a[i], v[i], strlen(v[i]));
        else
            lv_arr_null(&a[i]);
    }
}

/* Fills the delivery arrays from the recipients' subscriptions. */
static int plan_deliveries(PGconn *pg, const ntf_config_t *cfg, const facts_t *f,
                           const recipient_t *rs, int n, lv_buf_t *a, int *count)
{
    lv_buf_t ids;
    lv_buf_init(&ids, MAX_ARRAY);
    lv_arr_begin(&ids);
    for (int i = 0; i < n; i++)
        lv_arr_text(&ids, rs[i].id, strlen(rs[i].id));
    lv_arr_end(&ids);
    const char *p[1] = {lv_buf_str(&ids)};
    PGresult *res;
    /* Per recipient and channel the most specific subscription wins: an
     * exact recipient, then the longest prefix pattern ("household:*"). */
    int e = ids.failed ? LV_ENOMEM
                       : lv_pg_query(pg, &res,
                                     "SELECT DISTINCT ON (r.recipient, s.channel_id) r.recipient, "
                                     "s.channel_id, c.kind, s.address "
                                     "FROM unnest($1::text[]) AS r(recipient) "
                                     "JOIN notify_subscription s ON s.recipient = r.recipient OR "
                                     "(right(s.recipient, 1) = '*' AND left(r.recipient, "
                                     "length(s.recipient) - 1) = left(s.recipient, "
                                     "length(s.recipient) - 1)) "
                                     "JOIN notify_channel c ON c.channel_id = s.channel_id "
                                     "ORDER BY r.recipient, s.channel_id, "
                                     "(s.recipient = r.recipient) DESC, length(s.recipient) DESC",
                                     1, p);
    lv_buf_free(&ids);
    if (e)
        return e;
    char phone[64] = "";
    bool have_phone = false;
    char subject[MAX_MSG + 1], body[MAX_MSG + 1];
    for (int i = 0; i < PQntuples(res) && !e; i++) {
        const char *rid = PQgetvalue(res, i, 0), *channel = PQgetvalue(res, i, 1);
        const char *kind = PQgetvalue(res, i, 2), *address = PQgetvalue(res, i, 3);
        const recipient_t *r = NULL;
        for (int k = 0; k < n; k++)
            if (!strcmp(rs[k].id, rid))
                r = &rs[k];
        if (!r)
            continue;
        const char *error = NULL;
        if (!strcmp(address, "@phone")) {
            if (r->role != NTF_HOUSEHOLD) {
                error = "@phone 只适用于户 (@phone is only for household recipients)";
            } else {
                if (!have_phone)
                    e = head_phone(pg, f->ev->household_id, phone, sizeof phone);
                have_phone = true;
                if (!*phone)
                    error = "户主没有登记联系电话 (no phone on file for the household head)";
                else
                    address = phone;
            }
        }
        bool email = !strcmp(kind, "email");
        subject[0] = '\0';
        if (email)
            render(cfg, f, r, "email", "subject", subject);
        render(cfg, f, r, kind, email ? "body" : "text", body);
        add_delivery(a, f, r, channel, address, subject, body, error);
        (*count)++;
    }
    PQclear(res);
    return e;
}

static int write_deliveries(PGconn *pg, const ntf_config_t *cfg, const facts_t *f,
                            const recipient_t *rs, int n, int64_t *added)
{
    lv_buf_t a[D_NCOLS];
    for (int i = 0; i < D_NCOLS; i++) {
        lv_buf_init(&a[i], MAX_ARRAY);
        lv_arr_begin(&a[i]);
    }
    int count = 0;
    int e = plan_deliveries(pg, cfg, f, rs, n, a, &count);
    bool failed = false;
    for (int i = 0; i < D_NCOLS; i++) {
        lv_arr_end(&a[i]);
        failed = failed || a[i].failed;
    }
    *added = 0;
    if (!e && failed)
        e = LV_ENOMEM;
    if (!e && count > 0) {
        const Levee__Event *ev = f->ev;
        char county[7], now[24];
        snprintf(county, sizeof county, "%.6s", ev->region_code);
        snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
        const char *p[6 + D_NCOLS] = {ev->event_id, county, ev->kind, now,
                                      *ev->household_id ? ev->household_id : NULL,
                                      *ev->case_id ? ev->case_id : NULL};
        for (int i = 0; i < D_NCOLS; i++)
            p[6 + i] = lv_buf_str(&a[i]);
        int64_t r = lv_pg_cmd_count(
            pg,
            "INSERT INTO notify_delivery (delivery_id, event_id, recipient, channel_id, county, "
            "kind, household_id, case_id, address, subject, body, status, next_attempt_ms, "
            "last_error, created_ms) "
            "SELECT d, $1, r, c, $2, $3, $5, $6, ad, su, bo, st, $4::bigint, er, $4::bigint "
            "FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
            "$12::text[], $13::text[], $14::text[]) AS u(d, r, c, ad, su, bo, st, er) "
            "ON CONFLICT DO NOTHING",
            6 + D_NCOLS, p);
        e = r < 0 ? (int)r : 0;
        *added = r < 0 ? 0 : r;
    }
    for (int i = 0; i < D_NCOLS; i++)
        lv_buf_free(&a[i]);
    return e;
}

int ntf_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    ntf_t *n = ctx;
    lv_arena_reset(n->arena);
    if (strcmp(msg->type, "event") != 0) {
        snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
        return LV_EINVAL;
    }
    Levee__Event *ev = levee__event__unpack(lv_arena_allocator(n->arena), msg->len, msg->body);
    if (!ev) {
        snprintf(reply->error, sizeof reply->error, "not an Event (bad protobuf)");
        return LV_EINVAL;
    }
    const char *why = validate(ev);
    if (why) {
        snprintf(reply->error, sizeof reply->error, "%s", why);
        return LV_EINVAL;
    }
    /* Masked before anything is stored: the inbox is read by many people. */
    facts_t f;
    f.ev = ev;
    snprintf(f.title, sizeof f.title, "%s", ev->title);
    snprintf(f.body, sizeof f.body, "%s", ev->body);
    lv_mask_text(f.title);
    lv_mask_text(f.body);
    lv_datetime_format(ev->at_ms > 0 ? ev->at_ms : lv_now_ms(), f.time);
    f.grade = ntf_config_grade(n->config, ev->grade);

    recipient_t rs[MAX_RECIPIENTS];
    int nr = 0;
    int e = recipients(pg, n->config, ev, rs, &nr, &why);
    if (e == LV_EINVAL) {
        snprintf(reply->error, sizeof reply->error, "%s: %s", ev->kind, why);
        return e;
    }
    int64_t added = 0;
    if (!e)
        e = write_inbox(pg, n->config, &f, rs, nr);
    if (!e)
        e = write_deliveries(pg, n->config, &f, rs, nr, &added);
    if (e == LV_EINVAL) {
        /* A statement that fails for a reason other than load or a lost
         * connection will fail again: dead-letter the event (payload kept). */
        snprintf(reply->error, sizeof reply->error, "数据库错误 (database error, see the log)");
        return e;
    }
    if (e)
        return LV_ETRANSIENT; /* not acked: the sender resends */
    if (added > 0)
        ntf_sender_kick(n->sender);
    snprintf(reply->detail, sizeof reply->detail, "%s: %d recipients, %lld deliveries",
             ev->event_id, nr, (long long)added);
    return 0;
}

int ntf_tick(void *ctx, lv_service_t *svc)
{
    ntf_t *n = ctx;
    return ntf_sender_run(n->sender, lv_service_pg(svc), ntf_config_delivery(n->config));
}
