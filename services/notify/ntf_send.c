#define _POSIX_C_SOURCE 200809L
#include "ntf_send.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_redis.h"
#include "lv_time.h"
#include "ntf_mail.h"
#include "ntf_sign.h"
#include "ntf_template.h"

#define MAX_CHANNELS 64
#define MAX_INFLIGHT 256   /* the config's max_inflight is at most this */
#define MAX_RATE 1000      /* the config's and a channel's rate_per_s are at most this */
#define MAX_SECRET 4096
#define MAX_REQUEST ((size_t)1 << 20)
#define RESP_MAX 512       /* bytes of a response body kept for the error reason */
#define ERROR_MAX 500      /* bytes of a reason stored */
#define SCAN_MS 1000       /* look for due rows at least this often */
#define LEASE_EXTRA_MS 2000
#define BUSY_WAIT_MS 10    /* loop sleep while requests are open */
#define ID_MAX 64
#define RATE_WINDOW_MS 1000 /* rate_per_s: units per this window */
#define RATE_KEY_MAX 128

typedef struct {
    char id[ID_MAX];
    bool email;
    char url[1024], sender[256], username[256], secret_ref[600];
    bool secret_loaded;
    unsigned char secret[MAX_SECRET];
    size_t secret_len;
    char secret_err[300];
    int rate; /* 0: the config's */
    /* This scan's share of the channel's rate window in Redis, and how
     * much of it went into attempts (the rest is given back). */
    lv_redis_take_t take;
    int used;
    int due; /* rows due now, counted up to the scan's room */
    bool seen;
} channel_t;

typedef struct {
    CURL *h;
    struct curl_slist *headers, *rcpt;
    lv_buf_t req;
    size_t off; /* bytes of req uploaded (SMTP) */
    char resp[RESP_MAX];
    size_t resp_len;
    char errbuf[CURL_ERROR_SIZE];
    char delivery_id[ID_MAX], channel[ID_MAX], recipient[300];
    bool email;
    int attempts;
} xfer_t;

typedef struct {
    char delivery_id[ID_MAX];
    const char *status; /* "sent", "pending" or "dead" */
    int64_t at_ms;      /* sent: when; pending: the next attempt */
    char error[ERROR_MAX + 1];
} result_t;

struct ntf_sender {
    CURLM *multi;
    lv_redis_t *redis; /* the channels' rate windows, shared by every notify process */
    channel_t *ch;
    int nch;
    xfer_t *x[MAX_INFLIGHT];
    int nx;
    result_t res[MAX_INFLIGHT];
    int nres;
    bool kicked;    /* rows were added: scan now */
    bool more;      /* the last scan filled its room: more may be due */
    int64_t next_scan_ms;
};

ntf_outcome_t ntf_outcome(bool email, int curl_code, long code)
{
    if (email) {
        if (curl_code == CURLE_OK)
            return NTF_SENT;
        return code >= 500 && code < 600 ? NTF_REFUSED : NTF_RETRY;
    }
    if (curl_code != CURLE_OK)
        return NTF_RETRY;
    if (code >= 200 && code < 300)
        return NTF_SENT;
    if (code < 200 || code == 408 || code == 429 || code >= 500)
        return NTF_RETRY;
    return NTF_REFUSED;
}

ntf_sender_t *ntf_sender_new(const char *redis_host, int redis_port)
{
    ntf_sender_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ch = calloc(MAX_CHANNELS, sizeof *self->ch);
    self->multi = curl_multi_init();
    self->redis = lv_redis_new(redis_host, redis_port);
    if (!self->ch || !self->multi || !self->redis) {
        ntf_sender_destroy(&self);
        return NULL;
    }
    self->kicked = true;
    return self;
}

static void xfer_free(ntf_sender_t *self, xfer_t *x)
{
    if (!x)
        return;
    if (x->h) {
        curl_multi_remove_handle(self->multi, x->h);
        curl_easy_cleanup(x->h);
    }
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->rcpt);
    lv_buf_free(&x->req);
    free(x);
}

void ntf_sender_destroy(ntf_sender_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ntf_sender_t *self = *self_p;
    for (int i = 0; i < self->nx; i++)
        xfer_free(self, self->x[i]);
    if (self->multi)
        curl_multi_cleanup(self->multi);
    lv_redis_destroy(&self->redis);
    if (self->ch) {
        sodium_memzero(self->ch, MAX_CHANNELS * sizeof *self->ch);
        free(self->ch);
    }
    free(self);
    *self_p = NULL;
}

void ntf_sender_kick(ntf_sender_t *self)
{
    self->kicked = true;
}

void ntf_sender_forget_secrets(ntf_sender_t *self)
{
    for (int i = 0; i < self->nch; i++) {
        sodium_memzero(self->ch[i].secret, sizeof self->ch[i].secret);
        self->ch[i].secret_loaded = false;
    }
}

/* ---- channels and their secrets ---------------------------------------- */

/* Reads the secret a channel names: env:NAME or file:PATH. A missing secret
 * is not fatal here: the attempt fails with the reason and is retried, so an
 * operator can set it and send SIGHUP. */
static void load_secret(channel_t *c)
{
    c->secret_loaded = true;
    c->secret_len = 0;
    c->secret_err[0] = '\0';
    const char *ref = c->secret_ref;
    if (!*ref)
        return;
    if (!strncmp(ref, "env:", 4)) {
        const char *v = getenv(ref + 4);
        size_t n = v ? strlen(v) : 0;
        if (n == 0 || n > MAX_SECRET) {
            snprintf(c->secret_err, sizeof c->secret_err,
                     "密钥未设置 (secret not set): environment variable %s", ref + 4);
            return;
        }
        memcpy(c->secret, v, n);
        c->secret_len = n;
        return;
    }
    FILE *f = fopen(ref + 5, "rb");
    size_t n = f ? fread(c->secret, 1, sizeof c->secret, f) : 0;
    if (!f || ferror(f) || n == 0) {
        snprintf(c->secret_err, sizeof c->secret_err,
                 "密钥文件无法读取 (cannot read the secret file) %s: %s", ref + 5,
                 f ? "empty" : strerror(errno));
        if (f)
            fclose(f);
        return;
    }
    fclose(f);
    while (n > 0 && (c->secret[n - 1] == '\n' || c->secret[n - 1] == '\r'))
        n--;
    c->secret_len = n;
}

static channel_t *channel_find(ntf_sender_t *self, const char *id)
{
    for (int i = 0; i < self->nch; i++)
        if (!strcmp(self->ch[i].id, id))
            return &self->ch[i];
    return NULL;
}

static void copy_field(char *dst, size_t n, const char *src, bool *changed)
{
    if (strcmp(dst, src) != 0) {
        snprintf(dst, n, "%s", src);
        *changed = true;
    }
}

/* Loads the channel table into the cache; channels removed from it go. */
static int refresh_channels(ntf_sender_t *self, PGconn *pg)
{
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT channel_id, kind, url, coalesce(sender, ''), "
                        "coalesce(username, ''), coalesce(secret_ref, ''), "
                        "coalesce(rate_per_s, 0) FROM notify_channel ORDER BY channel_id",
                        0, NULL);
    if (e)
        return e;
    for (int i = 0; i < self->nch; i++)
        self->ch[i].seen = false;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        if (strlen(id) >= ID_MAX)
            continue;
        channel_t *c = channel_find(self, id);
        if (!c) {
            if (self->nch >= MAX_CHANNELS) {
                lv_warn("more than %d channels; %s is not served", MAX_CHANNELS, id);
                continue;
            }
            c = &self->ch[self->nch++];
            memset(c, 0, sizeof *c);
            snprintf(c->id, sizeof c->id, "%s", id);
        }
        bool changed = false;
        c->email = !strcmp(PQgetvalue(res, r, 1), "email");
        copy_field(c->url, sizeof c->url, PQgetvalue(res, r, 2), &changed);
        copy_field(c->sender, sizeof c->sender, PQgetvalue(res, r, 3), &changed);
        copy_field(c->username, sizeof c->username, PQgetvalue(res, r, 4), &changed);
        copy_field(c->secret_ref, sizeof c->secret_ref, PQgetvalue(res, r, 5), &changed);
        c->rate = (int)strtol(PQgetvalue(res, r, 6), NULL, 10);
        if (changed)
            c->secret_loaded = false;
        c->seen = true;
    }
    PQclear(res);
    for (int i = 0; i < self->nch;) {
        if (self->ch[i].seen) {
            i++;
            continue;
        }
        sodium_memzero(&self->ch[i], sizeof self->ch[i]);
        memmove(&self->ch[i], &self->ch[i + 1], (size_t)(self->nch - i - 1) * sizeof self->ch[0]);
        self->nch--;
    }
    return 0;
}

/* The channel's rate window in Redis, one per channel for all notify
 * processes (the channel in a hash tag, so a cluster keeps it whole). */
static void rate_key(const channel_t *c, char *out, size_t n)
{
    snprintf(out, n, "levee:notify:rate:{%s}", c->id);
}

/* ---- requests ------------------------------------------------------------ */

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = size * n, room = sizeof x->resp - 1 - x->resp_len;
    size_t take = len < room ? len : room;
    memcpy(x->resp + x->resp_len, p, take);
    x->resp_len += take;
    x->resp[x->resp_len] = '\0';
    return len; /* the rest is dropped, not an error */
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t room = size * n, left = x->req.len - x->off;
    size_t take = left < room ? left : room;
    memcpy(p, lv_buf_str(&x->req) + x->off, take);
    x->off += take;
    return take;
}

/* A claimed row, as returned by the claim statement. */
typedef struct {
    const char *id, *channel, *event_id, *kind, *recipient, *household_id, *case_id, *address,
        *subject, *body, *created_ms;
    int attempts;
} row_t;

static int webhook_request(xfer_t *x, const channel_t *c, const row_t *r, char *why, size_t n)
{
    if (!c->secret_len) {
        snprintf(why, n, "%s", c->secret_err[0] ? c->secret_err : "no secret");
        return LV_ESTATE;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:I}", "delivery_id",
                          r->id, "event_id", r->event_id, "kind", r->kind, "recipient",
                          r->recipient, "channel", c->id, "to", r->address, "text", r->body,
                          "household_id", *r->household_id ? r->household_id : NULL, "case_id",
                          *r->case_id ? r->case_id : NULL, "created_ms",
                          (json_int_t)strtoll(r->created_ms, NULL, 10));
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body) {
        snprintf(why, n, "out of memory");
        return LV_ENOMEM;
    }
    lv_buf_puts(&x->req, body);
    free(body);
    char ts[24], sig[NTF_SIGNATURE_LEN], h[256];
    snprintf(ts, sizeof ts, "%lld", (long long)lv_now_ms());
    ntf_sign(c->secret, c->secret_len, ts, lv_buf_str(&x->req), x->req.len, sig);
    const char *hs[] = {"Content-Type: application/json; charset=utf-8", "Expect:", NULL};
    for (int i = 0; hs[i]; i++)
        x->headers = curl_slist_append(x->headers, hs[i]);
    snprintf(h, sizeof h, "X-Levee-Timestamp: %s", ts);
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof h, "X-Levee-Signature: %s", sig);
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof h, "X-Levee-Delivery: %s", r->id);
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof h, "X-Levee-Event: %.64s", r->kind);
    x->headers = curl_slist_append(x->headers, h);
    snprintf(h, sizeof h, "X-Levee-Attempt: %d", r->attempts);
    x->headers = curl_slist_append(x->headers, h);
    if (!x->headers || x->req.failed) {
        snprintf(why, n, "out of memory");
        return LV_ENOMEM;
    }
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->h, CURLOPT_POST, 1L);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, lv_buf_str(&x->req));
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.len);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    return 0;
}

static int email_request(xfer_t *x, const channel_t *c, const row_t *r, char *why, size_t n)
{
    if (!ntf_mail_address_ok(r->address) || !ntf_mail_address_ok(c->sender)) {
        snprintf(why, n, "邮件地址无效 (bad e-mail address)");
        return LV_EINVAL;
    }
    if (*c->username && !c->secret_len) {
        snprintf(why, n, "%s", c->secret_err[0] ? c->secret_err : "no SMTP password");
        return LV_ESTATE;
    }
    char msgid[ID_MAX + 260], rcpt[300], from[300];
    snprintf(msgid, sizeof msgid, "%s@%s", r->id, strchr(c->sender, '@') + 1);
    ntf_mail_t m = {c->sender, r->address, r->subject, r->body, msgid, r->id, lv_now_ms()};
    ntf_mail_compose(&m, &x->req);
    snprintf(rcpt, sizeof rcpt, "<%s>", r->address);
    snprintf(from, sizeof from, "<%s>", c->sender);
    x->rcpt = curl_slist_append(NULL, rcpt);
    if (!x->rcpt || x->req.failed) {
        snprintf(why, n, "out of memory");
        return LV_ENOMEM;
    }
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(x->h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(x->h, CURLOPT_MAIL_RCPT, x->rcpt);
    curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x->h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(x->h, CURLOPT_READDATA, x);
    curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->req.len);
    /* STARTTLS when the server offers it. */
    curl_easy_setopt(x->h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    if (*c->username) {
        char pw[MAX_SECRET + 1];
        memcpy(pw, c->secret, c->secret_len);
        pw[c->secret_len] = '\0';
        curl_easy_setopt(x->h, CURLOPT_USERNAME, c->username);
        curl_easy_setopt(x->h, CURLOPT_PASSWORD, pw); /* curl keeps its own copy */
        sodium_memzero(pw, sizeof pw);
    }
    return 0;
}

static void add_result(ntf_sender_t *self, const char *id, const char *status, int64_t at_ms,
                       const char *error)
{
    result_t *r = &self->res[self->nres++];
    snprintf(r->delivery_id, sizeof r->delivery_id, "%s", id);
    r->status = status;
    r->at_ms = at_ms;
    char tmp[2 * ERROR_MAX];
    snprintf(tmp, sizeof tmp, "%s", error ? error : "");
    lv_mask_text(tmp);
    ntf_utf8_cut(tmp, ERROR_MAX); /* never half a character */
    memcpy(r->error, tmp, strlen(tmp) + 1);
}

/* The row's next state after an attempt that did not succeed. */
static void failed(ntf_sender_t *self, const ntf_delivery_cfg_t *cfg, const char *id,
                   const char *recipient, const char *channel, int attempts, bool permanent,
                   const char *error)
{
    char why[ERROR_MAX + 200];
    if (permanent || attempts >= cfg->max_attempts) {
        if (permanent)
            snprintf(why, sizeof why, "接收方拒绝, 不再重试 (refused, not retried): %s", error);
        else
            snprintf(why, sizeof why, "已尝试 %d 次仍失败 (gave up after %d attempts): %s",
                     attempts, attempts, error);
        add_result(self, id, "dead", 0, why);
        lv_warn("delivery %s to %s via %s dead-lettered: %s", id, recipient, channel,
                self->res[self->nres - 1].error);
        return;
    }
    int64_t wait = ntf_backoff_ms(cfg, attempts), at = lv_now_ms() + wait;
    add_result(self, id, "pending", at, error);
    if (at < self->next_scan_ms)
        self->next_scan_ms = at; /* the retry is due before the next planned scan */
    lv_info("delivery %s via %s attempt %d failed, next in %lld ms: %s", id, channel, attempts,
            (long long)wait, self->res[self->nres - 1].error);
}

/* Starts one attempt; a row that cannot even be tried is recorded at once. */
static void start(ntf_sender_t *self, const ntf_delivery_cfg_t *cfg, channel_t *c, const row_t *r)
{
    char masked[300];
    snprintf(masked, sizeof masked, "%s", r->recipient);
    lv_mask_text(masked);
    xfer_t *x = calloc(1, sizeof *x);
    char why[400] = "out of memory";
    int e = LV_ENOMEM;
    if (x) {
        lv_buf_init(&x->req, MAX_REQUEST);
        x->h = curl_easy_init();
        snprintf(x->delivery_id, sizeof x->delivery_id, "%s", r->id);
        snprintf(x->channel, sizeof x->channel, "%s", c->id);
        snprintf(x->recipient, sizeof x->recipient, "%s", masked);
        x->email = c->email;
        x->attempts = r->attempts;
    }
    if (x && x->h) {
        if (!c->secret_loaded)
            load_secret(c);
        e = c->email ? email_request(x, c, r, why, sizeof why)
                     : webhook_request(x, c, r, why, sizeof why);
    }
    if (!e) {
        curl_easy_setopt(x->h, CURLOPT_URL, c->url);
        curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
        curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
        curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(x->h, CURLOPT_USERAGENT, "levee-notify");
        curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
        curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
        if (curl_multi_add_handle(self->multi, x->h) == CURLM_OK) {
            self->x[self->nx++] = x;
            c->used++;
            return;
        }
        snprintf(why, sizeof why, "curl_multi_add_handle failed");
        e = LV_ENOMEM;
    }
    xfer_free(self, x);
    failed(self, cfg, r->id, masked, c->id, r->attempts, e == LV_EINVAL, why);
}

/* Collects finished requests into results. */
static void harvest(ntf_sender_t *self, const ntf_delivery_cfg_t *cfg)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(self->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = m->data.result;
        long code = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        ntf_outcome_t o = ntf_outcome(x->email, cc, code);
        if (o == NTF_SENT) {
            add_result(self, x->delivery_id, "sent", lv_now_ms(), NULL);
        } else {
            char why[ERROR_MAX + 100];
            if (cc != CURLE_OK)
                snprintf(why, sizeof why, "%s%s%s", curl_easy_strerror(cc), x->errbuf[0] ? ": " : "",
                         x->errbuf);
            else
                snprintf(why, sizeof why, "HTTP %ld: %.*s", code, (int)x->resp_len, x->resp);
            for (char *p = why; *p; p++)
                if ((unsigned char)*p < 0x20)
                    *p = ' ';
            failed(self, cfg, x->delivery_id, x->recipient, x->channel, x->attempts,
                   o == NTF_REFUSED, why);
        }
        for (int i = 0; i < self->nx; i++)
            if (self->x[i] == x) {
                self->x[i] = self->x[--self->nx];
                break;
            }
        xfer_free(self, x);
        if (self->more)
            self->kicked = true;
    }
}

/* Writes the results in one statement; on failure they stay for the next run. */
static int save_results(ntf_sender_t *self, PGconn *pg)
{
    lv_buf_t a[4];
    for (int i = 0; i < 4; i++) {
        lv_buf_init(&a[i], (size_t)8 << 20);
        lv_arr_begin(&a[i]);
    }
    for (int i = 0; i < self->nres; i++) {
        const result_t *r = &self->res[i];
        lv_arr_text(&a[0], r->delivery_id, strlen(r->delivery_id));
        lv_arr_text(&a[1], r->status, strlen(r->status));
        lv_arr_int(&a[2], r->at_ms);
        if (r->error[0])
            lv_arr_text(&a[3], r->error, strlen(r->error));
        else
            lv_arr_null(&a[3]);
    }
    bool oom = false;
    for (int i = 0; i < 4; i++) {
        lv_arr_end(&a[i]);
        oom = oom || a[i].failed;
    }
    const char *p[4] = {lv_buf_str(&a[0]), lv_buf_str(&a[1]), lv_buf_str(&a[2]), lv_buf_str(&a[3])};
    int e = oom ? LV_ENOMEM
                : lv_pg_cmd(pg,
                            "UPDATE notify_delivery d SET status = u.st, "
                            "next_attempt_ms = CASE WHEN u.st = 'pending' THEN u.at "
                            "ELSE d.next_attempt_ms END, "
                            "sent_ms = CASE WHEN u.st = 'sent' THEN u.at END, "
                            "last_error = coalesce(u.er, d.last_error) "
                            "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) "
                            "AS u(id, st, at, er) "
                            "WHERE d.delivery_id = u.id AND d.status = 'pending'",
                            4, p);
    for (int i = 0; i < 4; i++)
        lv_buf_free(&a[i]);
    if (!e) {
        int sent = 0;
        for (int i = 0; i < self->nres; i++)
            sent += !strcmp(self->res[i].status, "sent");
        if (sent)
            lv_info("deliveries recorded: %d sent, %d other", sent, self->nres - sent);
        self->nres = 0;
    }
    return e;
}

/* ---- scan: claim due rows and start them ---------------------------------- */

/* Per open channel at most its budget of due rows, oldest first, and at
 * most $5 in all; each claimed row counts its attempt and is leased. A row
 * that already had its $6 attempts (the sender stopped during the last one,
 * or the config lowered the maximum) is dead-lettered instead. */
static const char *const SQL_CLAIM =
    "WITH b AS (SELECT * FROM unnest($2::text[], $3::int[]) AS b(channel_id, budget)), "
    "c AS (SELECT x.delivery_id FROM b CROSS JOIN LATERAL ("
    "  SELECT d.delivery_id, d.next_attempt_ms FROM notify_delivery d "
    "  WHERE d.channel_id = b.channel_id AND d.status = 'pending' "
    "  AND d.next_attempt_ms <= $1::bigint "
    "  ORDER BY d.next_attempt_ms, d.delivery_id LIMIT b.budget FOR UPDATE SKIP LOCKED) x "
    "  ORDER BY x.next_attempt_ms, x.delivery_id LIMIT $5::int) "
    "UPDATE notify_delivery d SET "
    "status = CASE WHEN d.attempts >= $6::int THEN 'dead' ELSE 'pending' END, "
    "last_error = CASE WHEN d.attempts >= $6::int THEN '已尝试 ' || d.attempts || "
    "' 次, 最后一次没有结果 (gave up after ' || d.attempts || ' attempts, the last one unanswered)' "
    "|| coalesce(': ' || d.last_error, '') ELSE d.last_error END, "
    "attempts = d.attempts + (d.attempts < $6::int)::int, "
    "last_attempt_ms = $1::bigint, next_attempt_ms = $1::bigint + $4::bigint "
    "FROM c WHERE d.delivery_id = c.delivery_id "
    "RETURNING d.delivery_id, d.channel_id, d.event_id, d.kind, d.recipient, "
    "coalesce(d.household_id, ''), coalesce(d.case_id, ''), d.address, d.subject, d.body, "
    "d.created_ms, d.attempts, d.status, d.last_error";

/* How many rows of each channel are due now, up to room: a channel takes
 * from its rate window only what it can use, so it does not hold back
 * another process that has the rows. */
static int count_due(ntf_sender_t *self, PGconn *pg, int64_t now, int room)
{
    lv_buf_t ids;
    lv_buf_init(&ids, (size_t)1 << 20);
    lv_arr_begin(&ids);
    for (int k = 0; k < self->nch; k++) {
        self->ch[k].due = 0;
        lv_arr_text(&ids, self->ch[k].id, strlen(self->ch[k].id));
    }
    lv_arr_end(&ids);
    char snow[24], lim[16];
    snprintf(snow, sizeof snow, "%lld", (long long)now);
    snprintf(lim, sizeof lim, "%d", room);
    const char *p[3] = {snow, lim, ids.s};
    PGresult *res = NULL;
    int e = ids.failed ? LV_ENOMEM
                       : lv_pg_query(pg, &res,
                                     "SELECT c.id, (SELECT count(*) FROM (SELECT 1 FROM "
                                     "notify_delivery d WHERE d.channel_id = c.id AND "
                                     "d.status = 'pending' AND d.next_attempt_ms <= $1::bigint "
                                     "LIMIT $2::int) x) FROM unnest($3::text[]) AS c(id)",
                                     3, p);
    lv_buf_free(&ids);
    if (e)
        return e;
    for (int r = 0; r < PQntuples(res); r++) {
        channel_t *c = channel_find(self, PQgetvalue(res, r, 0));
        if (c)
            c->due = (int)strtol(PQgetvalue(res, r, 1), NULL, 10);
    }
    PQclear(res);
    return 0;
}

/* The open channels with their budgets: each takes what it may start now
 * from its rate window in Redis, so that all notify processes together keep
 * to the rate. For the full ones, when the first of them opens again
 * (monotonic ms). Without Redis nothing is open: deliveries wait, as they
 * would for a full window, and are never sent over the rate. */
static int budgets(ntf_sender_t *self, const ntf_delivery_cfg_t *cfg, int room, lv_buf_t *ids,
                   lv_buf_t *amounts, int64_t *rate_free_mono)
{
    int open = 0;
    lv_arr_begin(ids);
    lv_arr_begin(amounts);
    for (int k = 0; k < self->nch; k++) {
        channel_t *c = &self->ch[k];
        int rate = c->rate > 0 ? c->rate : cfg->rate_per_s;
        char key[RATE_KEY_MAX];
        rate_key(c, key, sizeof key);
        c->used = 0;
        if (c->due <= 0)
            continue;
        if (lv_redis_window_take(self->redis, key, rate > MAX_RATE ? MAX_RATE : rate,
                                 RATE_WINDOW_MS, c->due < room ? c->due : room, &c->take) != 0)
            continue;
        if (c->take.retry_ms > 0 && lv_mono_ms() + c->take.retry_ms < *rate_free_mono)
            *rate_free_mono = lv_mono_ms() + c->take.retry_ms;
        if (c->take.granted <= 0)
            continue;
        lv_arr_text(ids, c->id, strlen(c->id));
        lv_arr_int(amounts, c->take.granted);
        open++;
    }
    lv_arr_end(ids);
    lv_arr_end(amounts);
    return open;
}

/* Gives back what each channel took from its window and did not start. */
static void give_back(ntf_sender_t *self)
{
    for (int k = 0; k < self->nch; k++) {
        channel_t *c = &self->ch[k];
        if (c->take.granted > c->used) {
            char key[RATE_KEY_MAX];
            rate_key(c, key, sizeof key);
            lv_redis_window_give_back(self->redis, key, &c->take, c->take.granted - c->used);
        }
        memset(&c->take, 0, sizeof c->take);
        c->used = 0;
    }
}

/* How many requests may start now. */
static int free_room(const ntf_sender_t *self, const ntf_delivery_cfg_t *cfg)
{
    int room = cfg->max_inflight - self->nx;
    if (room > cfg->batch)
        room = cfg->batch;
    if (room > MAX_INFLIGHT - self->nx - self->nres)
        room = MAX_INFLIGHT - self->nx - self->nres;
    return room;
}

static int claim(ntf_sender_t *self, PGconn *pg, const ntf_delivery_cfg_t *cfg, int64_t now,
                 int room, const lv_buf_t *ids, const lv_buf_t *amounts)
{
    char snow[24], lease[24], lim[16], max[16];
    snprintf(snow, sizeof snow, "%lld", (long long)now);
    snprintf(lease, sizeof lease, "%lld", (long long)cfg->timeout_ms + LEASE_EXTRA_MS);
    snprintf(lim, sizeof lim, "%d", room);
    snprintf(max, sizeof max, "%d", cfg->max_attempts);
    const char *p[6] = {snow, ids->s, amounts->s, lease, lim, max};
    PGresult *res;
    int e = lv_pg_query(pg, &res, SQL_CLAIM, 6, p);
    if (e)
        return e;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        row_t r = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                   PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
                   PQgetvalue(res, i, 6), PQgetvalue(res, i, 7), PQgetvalue(res, i, 8),
                   PQgetvalue(res, i, 9), PQgetvalue(res, i, 10),
                   (int)strtol(PQgetvalue(res, i, 11), NULL, 10)};
        if (!strcmp(PQgetvalue(res, i, 12), "dead")) {
            char why[ERROR_MAX + 1];
            snprintf(why, sizeof why, "%s", PQgetvalue(res, i, 13));
            lv_mask_text(why);
            lv_warn("delivery %s via %s dead-lettered: %s", r.id, r.channel, why);
            continue;
        }
        channel_t *c = channel_find(self, r.channel);
        if (c)
            start(self, cfg, c, &r);
    }
    /* The room was the limit: more rows may be waiting. */
    self->more = n >= room;
    PQclear(res);
    return 0;
}

/* When the next pending row of an open channel falls due (wall ms), or
 * INT64_MAX. Full channels are left out: they wait for their rate. */
static int next_due(PGconn *pg, const lv_buf_t *ids, int64_t *due)
{
    char v[32];
    const char *p[1] = {ids->s};
    int e = lv_pg_scalar(pg, v, sizeof v,
                         "SELECT coalesce(min(next_attempt_ms), 9223372036854775807) "
                         "FROM notify_delivery WHERE status = 'pending' "
                         "AND channel_id = ANY($1::text[])",
                         1, p);
    if (!e)
        *due = strtoll(v, NULL, 10);
    return e;
}

static int scan(ntf_sender_t *self, PGconn *pg, const ntf_delivery_cfg_t *cfg)
{
    int64_t now = lv_now_ms(), rate_free = INT64_MAX, due = INT64_MAX;
    int room = free_room(self, cfg);
    int e = refresh_channels(self, pg);
    if (e || room <= 0)
        return e;
    e = count_due(self, pg, now, room);
    if (e)
        return e;
    lv_buf_t ids, amounts;
    lv_buf_init(&ids, (size_t)1 << 20);
    lv_buf_init(&amounts, (size_t)1 << 20);
    self->more = false;
    int open = budgets(self, cfg, room, &ids, &amounts, &rate_free);
    if (ids.failed || amounts.failed)
        e = LV_ENOMEM;
    if (!e && open > 0)
        e = claim(self, pg, cfg, now, room, &ids, &amounts);
    give_back(self);
    if (!e && open > 0)
        e = next_due(pg, &ids, &due);
    lv_buf_free(&ids);
    lv_buf_free(&amounts);
    int64_t next = now + SCAN_MS;
    if (due < next)
        next = due;
    /* A full channel opens again when its oldest attempt leaves the second. */
    if (rate_free != INT64_MAX && now + (rate_free - lv_mono_ms()) < next)
        next = now + (rate_free - lv_mono_ms());
    if (self->more)
        next = now; /* take the rest at the next run */
    self->next_scan_ms = next;
    return e;
}

int ntf_sender_run(ntf_sender_t *self, PGconn *pg, const ntf_delivery_cfg_t *cfg)
{
    int running = 0;
    curl_multi_perform(self->multi, &running);
    harvest(self, cfg);
    if (self->nres > 0 && (lv_pg_ensure(pg) || save_results(self, pg)))
        return 100; /* Postgres is away: the results wait, nothing new starts */
    int64_t now = lv_now_ms();
    if ((self->kicked || now >= self->next_scan_ms) && self->nx < cfg->max_inflight) {
        self->kicked = false;
        if (lv_pg_ensure(pg) == 0 && scan(self, pg, cfg) == 0) {
            curl_multi_perform(self->multi, &running);
            if (self->nres > 0)
                save_results(self, pg); /* rows that could not even be tried */
        } else {
            self->next_scan_ms = now + SCAN_MS;
        }
    }
    if (self->nx > 0)
        return BUSY_WAIT_MS;
    int64_t wait = self->next_scan_ms - lv_now_ms();
    return wait < 0 ? 0 : wait > 100 ? 100 : (int)wait;
}
