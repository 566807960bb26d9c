/* The fund ledger: accounts with posted debits and credits, immutable
 * transfers whose id is the idempotency key, payouts computed from the
 * policy's tier tables. A fund account carries flag 1 (debits must not
 * exceed credits): the debit is a conditional UPDATE in the same transaction
 * as the transfer, and a CHECK constraint backs it, so no fund goes below
 * zero whatever runs at the same time. */
#define _POSIX_C_SOURCE 200809L
#include "ledger.h"

#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_metrics.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_region.h"
#include "lv_time.h"
#include "budget.h"
#include "transfer.h"

#define FLAG_NO_OVERDRAW "1"

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

int led_seed_funds(led_t *l, PGconn *pg, const lv_policy_version_t *v)
{
    int64_t now = lv_now_ms();
    int e = lv_pg_begin(pg);
    if (e)
        return e;
    e = lv_pg_cmd(pg,
                  "INSERT INTO account (account_id, name, kind) VALUES ('source:fiscal', "
                  "'财政拨付 (fiscal allocations)', 'source'), ('source:donations', "
                  "'社会捐赠 (donations)', 'source') ON CONFLICT DO NOTHING",
                  0, NULL);
    for (int i = 0; !e && i < v->nfunds; i++) {
        const lv_fund_def_t *f = &v->funds[i];
        char acc[64], tid[64], err[256];
        snprintf(acc, sizeof acc, "fund:%s", f->fund_id);
        snprintf(tid, sizeof tid, "open:%s", f->fund_id);
        const char *p[2] = {acc, f->name};
        e = lv_pg_cmd(pg,
                      "INSERT INTO account (account_id, name, kind, flags) VALUES ($1, $2, 'fund', "
                      FLAG_NO_OVERDRAW ") ON CONFLICT DO NOTHING",
                      2, p);
        if (e || f->opening_fen <= 0)
            continue;
        /* The opening allocation is a transfer like any other: once only. */
        led_transfer_t t = {.id = tid, .debit = "source:fiscal", .credit = acc, .kind = "opening",
                            .amount_fen = f->opening_fen, .phase = LED_SINGLE, .now_ms = now};
        e = led_transfer_apply(pg, &t, err, sizeof err);
        if (e == LV_EDUP)
            e = 0;
        if (e)
            lv_error("opening of fund %s: %s", f->fund_id, err);
    }
    if (!e)
        e = led_budget_sync(pg, v);
    if (e) {
        lv_pg_rollback(pg);
        return e;
    }
    if ((e = lv_pg_commit(pg)))
        return e;
    led_budget_key(v, l->budgets_key, sizeof l->budgets_key);
    return 0;
}

/* The county accounts follow the budgets of the version in effect now: when
 * they changed (a reload, a new version's date), they are synced inside the
 * caller's transaction. The key is remembered before the commit; if that
 * fails, the tick syncs again. */
static int budgets_current(led_t *l, PGconn *pg, const lv_policy_version_t *now_v)
{
    char key[sizeof l->budgets_key];
    led_budget_key(now_v, key, sizeof key);
    if (!strcmp(key, l->budgets_key))
        return 0;
    int e = led_budget_sync(pg, now_v);
    if (!e)
        snprintf(l->budgets_key, sizeof l->budgets_key, "%s", key);
    return e;
}

static const lv_payout_rule_t *rule_for(const lv_policy_version_t *v, const char *kind)
{
    if (!strcmp(kind, "illness"))
        return &v->illness;
    if (!strcmp(kind, "disaster"))
        return &v->disaster;
    if (!strcmp(kind, "education"))
        return &v->education;
    return NULL;
}

static int record_payout(PGconn *pg, const Levee__PayoutRequest *r, const char *county,
                         const char *fund, int64_t amount, const char *status, const char *reason,
                         const char *computation, const char *version, const char *transfer_id)
{
    char year[16], basis[24], amt[24], now[24];
    snprintf(year, sizeof year, "%d", r->year);
    i64s(basis, sizeof basis, r->basis_fen);
    i64s(amt, sizeof amt, amount);
    i64s(now, sizeof now, lv_now_ms());
    const char *p[17] = {r->payout_id, r->case_id, r->household_id, county, r->household_type,
                         r->kind, year, basis, amt, status, reason, computation, version,
                         transfer_id, now, fund,
                         r->student_id && *r->student_id ? r->student_id : NULL};
    return lv_pg_cmd(pg,
                     "INSERT INTO payout (payout_id, case_id, household_id, county, household_type, "
                     "kind, year, basis_fen, amount_fen, status, reason, computation, "
                     "policy_version, transfer_id, created_ms, fund_account, student_id) VALUES ($1, "
                     "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                     17, p);
}

static const char *kind_zh(const char *kind)
{
    return !strcmp(kind, "illness")     ? "因病防贫保障金"
           : !strcmp(kind, "disaster")  ? "因灾防贫保障金"
           : !strcmp(kind, "education") ? "因学防贫保障金"
                                        : "村级临时救助金";
}

/* News of a paid payout for notify; the id is the payout's. */
static int notify_paid(PGconn *pg, const char *payout_id)
{
    const char *p[1] = {payout_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT p.household_id, h.region_code, p.case_id, p.kind, p.amount_fen, "
                        "p.year, coalesce(p.channel, '') FROM payout p JOIN household h USING (household_id) "
                        "WHERE p.payout_id = $1",
                        1, p);
    if (e)
        return e;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 0;
    }
    char id[200], title[200], body[400], yuan[32];
    lv_money_format(strtoll(PQgetvalue(res, 0, 4), NULL, 10), yuan, sizeof yuan);
    snprintf(id, sizeof id, "ev:payout_posted:%s", payout_id);
    snprintf(title, sizeof title, "%s已发放: 户 %s", kind_zh(PQgetvalue(res, 0, 3)),
             PQgetvalue(res, 0, 0));
    snprintf(body, sizeof body, "户 %s %s %s 元已经%s支付 (%s 年度)。", PQgetvalue(res, 0, 0),
             kind_zh(PQgetvalue(res, 0, 3)), yuan, PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 5));
    Levee__Event ev = LEVEE__EVENT__INIT;
    ev.event_id = id;
    ev.kind = (char *)"payout_posted";
    ev.household_id = PQgetvalue(res, 0, 0);
    ev.region_code = PQgetvalue(res, 0, 1);
    ev.case_id = PQgetvalue(res, 0, 2);
    ev.title = title;
    ev.body = body;
    ev.at_ms = lv_now_ms();
    e = lv_outbox_put(pg, "ledger", "notify", id, "event", &ev.base);
    PQclear(res);
    return e;
}

static int ensure_payable(PGconn *pg, const char *household_id, const char *county, char *acc,
                          size_t n)
{
    snprintf(acc, n, "payable:%s", household_id);
    const char *p[3] = {acc, household_id, county};
    return lv_pg_cmd(pg,
                     "INSERT INTO account (account_id, name, kind, county) VALUES ($1, "
                     "'应付 ' || $2, 'payable', $3) ON CONFLICT DO NOTHING",
                     3, p);
}

/* Reserves an amount for a payout: a pending transfer from the fund to the
 * household's payable account, and the payout row with its computation.
 * Not enough money: the payout is recorded as refused, with the reason. */
static int reserve(PGconn *pg, const Levee__PayoutRequest *r, const char *fund, int64_t amount,
                   const char *explain, const lv_policy_version_t *v, lv_reply_t *reply)
{
    char county[7], payable[96], err[256];
    snprintf(county, sizeof county, "%.6s", r->region_code);
    int e = ensure_payable(pg, r->household_id, county, payable, sizeof payable);
    if (e)
        return e;
    int64_t now = lv_now_ms();
    led_transfer_t t = {.id = r->payout_id, .debit = fund, .credit = payable, .kind = "payout",
                        .amount_fen = amount, .phase = LED_PENDING,
                        .expires_ms = now + (int64_t)v->reservation_days * 86400000LL,
                        .now_ms = now};
    e = led_transfer_apply(pg, &t, err, sizeof err);
    if (e == LV_ESTATE) {
        /* The refusal is recorded (committed) and the sender told. */
        snprintf(reply->error, sizeof reply->error, "发放 %s 被拒绝 (refused): %s", r->payout_id, err);
        return record_payout(pg, r, county, fund, amount, "refused", err, explain, v->version,
                             NULL);
    }
    if (e == LV_EDUP)
        e = 0;
    if (e)
        return e == LV_EINVAL ? LV_ESTATE : e;
    snprintf(reply->detail, sizeof reply->detail, "payout %s reserved: %lld fen", r->payout_id,
             (long long)amount);
    return record_payout(pg, r, county, fund, amount, "pending", NULL, explain, v->version,
                         r->payout_id);
}

/* A payout request no state could make valid. */
static const char *bad_request(const Levee__PayoutRequest *r, const lv_payout_rule_t *rule)
{
    if (!*r->payout_id || !*r->household_id || strlen(r->region_code) != 12 || r->basis_fen < 0 ||
        r->year < 1900 || r->year > 2200 || strlen(r->basis_detail) > 600)
        return "payout request with missing or bad fields";
    bool per_student = rule && rule->cap_per == LV_CAP_PER_STUDENT;
    if (per_student && strlen(r->student_id) != 18)
        return "a per-student payout names its student (an 18-character ID number)";
    if (!per_student && *r->student_id)
        return "only a per-student payout names a student";
    return NULL;
}

/* What the household (or, for a per-student cap, the student) already got
 * of this kind in the year, reserved or paid. The advisory lock keeps two
 * payouts of the same yearly cap from both reading the old sum. */
static int already_this_year(PGconn *pg, const Levee__PayoutRequest *r, bool per_student,
                             int64_t *out)
{
    char year[16], key[200], sum[32];
    snprintf(year, sizeof year, "%d", r->year);
    snprintf(key, sizeof key, "payout-cap|%s|%s|%s", r->kind, year,
             per_student ? r->student_id : r->household_id);
    const char *k[1] = {key};
    int e = lv_pg_cmd(pg, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, k);
    if (e)
        return e;
    const char *p[3] = {per_student ? r->student_id : r->household_id, r->kind, year};
    e = lv_pg_scalar(pg, sum, sizeof sum,
                     per_student
                         ? "SELECT coalesce(sum(amount_fen), 0) FROM payout WHERE student_id = $1 "
                           "AND kind = $2 AND year = $3 AND status IN ('pending', 'posted')"
                         : "SELECT coalesce(sum(amount_fen), 0) FROM payout WHERE household_id = $1 "
                           "AND kind = $2 AND year = $3 AND status IN ('pending', 'posted')",
                     3, p);
    *out = e ? 0 : strtoll(sum, NULL, 10);
    return e;
}

/* The amount due: the tier table on the year's basis, capped per year, less
 * what the year already got (the basis is the year's total, so a second
 * payout in a year pays only the difference). The computation, with the
 * inputs in words first, goes into explain. */
static int64_t amount_due(const lv_payout_rule_t *rule, const Levee__PayoutRequest *r,
                          int64_t already, int64_t *year_due, char *explain, size_t n)
{
    char calc[1024], a[32], b[32];
    *year_due = lv_payout_compute(rule, r->basis_fen, 0, calc, sizeof calc);
    int64_t amount = *year_due > already ? *year_due - already : 0;
    lv_money_format(already, a, sizeof a);
    lv_money_format(amount, b, sizeof b);
    snprintf(explain, n, "%s%s%s; %s%d 年度已预留或发放 %s 元, 本次 %s 元", r->basis_detail,
             *r->basis_detail ? "; " : "", calc,
             rule->cap_per == LV_CAP_PER_STUDENT ? "该学生 " : "本户 ", r->year, a, b);
    return amount;
}

static int payout(led_t *l, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__PayoutRequest *r =
        levee__payout_request__unpack(lv_arena_allocator(l->arena), msg->len, msg->body);
    if (!r) {
        snprintf(reply->error, sizeof reply->error, "not a PayoutRequest (bad protobuf)");
        return LV_EINVAL;
    }
    int64_t now_ms = lv_now_ms();
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(l->svc),
                                                r->at_ms > 0 ? r->at_ms : now_ms);
    const lv_policy_version_t *vnow = lv_policy_at(lv_service_policy(l->svc), now_ms);
    if (!v || !vnow || v->nfunds < 1)
        return LV_ETRANSIENT; /* no policy in effect: retry after a fix and a reload */
    const lv_payout_rule_t *rule = rule_for(v, r->kind);
    const char *bad = bad_request(r, rule);
    if (bad || !rule) {
        snprintf(reply->error, sizeof reply->error, bad ? "%s" : "unknown payout kind %s",
                 bad ? bad : r->kind);
        return LV_EINVAL;
    }
    /* The same payout id again: one effect only; different content is an error. */
    const char *p0[1] = {r->payout_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res, "SELECT household_id, basis_fen, status, coalesce(student_id, '') "
                                  "FROM payout WHERE payout_id = $1", 1, p0);
    if (e)
        return e;
    if (PQntuples(res) == 1) {
        bool same = !strcmp(PQgetvalue(res, 0, 0), r->household_id) &&
                    strtoll(PQgetvalue(res, 0, 1), NULL, 10) == r->basis_fen &&
                    !strcmp(PQgetvalue(res, 0, 3), r->student_id);
        snprintf(same ? reply->detail : reply->error, same ? sizeof reply->detail : sizeof reply->error,
                 same ? "payout %s already %s" : "payout %s exists with other content (%s)",
                 r->payout_id, PQgetvalue(res, 0, 2));
        PQclear(res);
        return same ? 0 : LV_ESTATE;
    }
    PQclear(res);
    if ((e = budgets_current(l, pg, vnow)))
        return e;

    char county[7];
    snprintf(county, sizeof county, "%.6s", r->region_code);
    int64_t already, year_due;
    if ((e = already_this_year(pg, r, rule->cap_per == LV_CAP_PER_STUDENT, &already)))
        return e;
    char explain[2048], fund[96];
    int64_t amount = amount_due(rule, r, already, &year_due, explain, sizeof explain);
    /* The fund of the version in effect now pays, from the household's
     * county account when the fund has a budget for the county. */
    led_budget_account(&vnow->funds[0], county, fund, sizeof fund);
    if (amount <= 0) {
        snprintf(reply->detail, sizeof reply->detail, "payout %s: nothing due", r->payout_id);
        return record_payout(pg, r, county, fund, 0, "none",
                             year_due == 0 ? "未达起付线, 无需发放 (below the threshold: nothing due)"
                                           : "本年度应发金额已足额预留或发放, 或已达年度封顶 "
                                             "(the year's amount or cap is already reserved or paid)",
                             explain, v->version, NULL);
    }
    return reserve(pg, r, fund, amount, explain, v, reply);
}

/* ---- commands from people ---------------------------------------------- */

/* A channel name: 1..60 bytes, no control characters. */
static bool channel_ok(const char *ch)
{
    size_t n = strlen(ch);
    if (n == 0 || n > 60)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ch[i] < 0x20 || ch[i] == 0x7f)
            return false;
    return true;
}

/* The money of posted payouts leaves the households' payable accounts for
 * the channel's paid-out account: one transfer per payout (id "out:" +
 * payout id, so a redelivery changes nothing), applied as one batch. */
static int disburse(PGconn *pg, const char *const *ids, size_t n, const char *channel,
                    int64_t now, lv_reply_t *reply)
{
    char out_acc[96];
    snprintf(out_acc, sizeof out_acc, "paidout:%s", channel);
    const char *pa[2] = {out_acc, channel};
    int e = lv_pg_cmd(pg,
                      "INSERT INTO account (account_id, name, kind) VALUES ($1, '已支付 ' || $2, "
                      "'paidout') ON CONFLICT DO NOTHING",
                      2, pa);
    if (e || n == 0)
        return e;
    lv_buf_t arr;
    lv_buf_init(&arr, (size_t)1 << 26);
    lv_arr_begin(&arr);
    for (size_t i = 0; i < n; i++)
        lv_arr_text(&arr, ids[i], strlen(ids[i]));
    lv_arr_end(&arr);
    const char *p[1] = {lv_buf_str(&arr)};
    PGresult *res = NULL;
    e = arr.failed ? LV_ETRANSIENT
                   : lv_pg_query(pg, &res,
                                 "SELECT payout_id, 'out:' || payout_id, 'payable:' || household_id, "
                                 "amount_fen FROM payout WHERE payout_id = ANY($1::text[]) "
                                 "ORDER BY payout_id",
                                 1, p);
    lv_buf_free(&arr);
    if (e)
        return e;
    size_t m = (size_t)PQntuples(res);
    led_transfer_t *t = calloc(m ? m : 1, sizeof *t);
    led_result_t *r = calloc(m ? m : 1, sizeof *r);
    if (!t || !r) {
        e = LV_ETRANSIENT;
        goto out;
    }
    for (size_t i = 0; i < m; i++)
        t[i] = (led_transfer_t){.id = PQgetvalue(res, (int)i, 1),
                                .debit = PQgetvalue(res, (int)i, 2), .credit = out_acc,
                                .kind = "disburse",
                                .amount_fen = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10),
                                .phase = LED_SINGLE, .now_ms = now};
    if ((e = led_transfer_batch(pg, t, m, r)))
        goto out;
    for (size_t i = 0; i < m; i++)
        if (r[i].code != 0 && r[i].code != LV_EDUP) {
            /* A posted payout whose money cannot leave: the books would not
             * close. Refuse the whole command; nothing of it commits. */
            snprintf(reply->error, sizeof reply->error, "发放 %s 无法支付 (cannot disburse): %s",
                     PQgetvalue(res, (int)i, 0), r[i].why);
            e = LV_ESTATE;
            break;
        }
out:
    PQclear(res);
    free(t);
    free(r);
    return e;
}

/* Posts or voids one reserved payout. */
static int resolve(PGconn *pg, const char *payout_id, bool post, const Levee__Command *cmd,
                   const char *why, lv_reply_t *reply)
{
    const char *p[1] = {payout_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res, "SELECT status, kind FROM payout WHERE payout_id = $1 FOR UPDATE",
                        1, p);
    if (e)
        return e;
    if (PQntuples(res) != 1) {
        PQclear(res);
        snprintf(reply->error, sizeof reply->error, "没有这笔发放 (no such payout) %s", payout_id);
        return LV_ESTATE;
    }
    char status[16], kind[16];
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 0));
    snprintf(kind, sizeof kind, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (strcmp(status, "pending") != 0) {
        snprintf(reply->error, sizeof reply->error, "发放 %s 已是 %s 状态 (not pending)", payout_id,
                 status);
        return LV_ESTATE;
    }
    /* Temporary relief from a village fund is paid on the town's approval. */
    if (post && !strcmp(kind, "relief") && strcmp(cmd->role, "town") != 0) {
        snprintf(reply->error, sizeof reply->error,
                 "临时救助须乡镇审批 (relief is paid on a town approval: --role town)");
        return LV_ESTATE;
    }
    char tid[160], err[256];
    snprintf(tid, sizeof tid, "%s:%s", post ? "post" : "void", payout_id);
    led_transfer_t t = {.id = tid, .kind = "payout", .pending_id = payout_id,
                        .phase = post ? LED_POST : LED_VOID, .note = why, .now_ms = lv_now_ms()};
    e = led_transfer_apply(pg, &t, err, sizeof err);
    if (e == LV_ESTATE || e == LV_EINVAL) {
        snprintf(reply->error, sizeof reply->error, "%s", err);
        return LV_ESTATE;
    }
    if (e && e != LV_EDUP)
        return e;
    char now[24];
    i64s(now, sizeof now, lv_now_ms());
    const char *q[6] = {payout_id, post ? "posted" : "voided", now, cmd->actor, why,
                        post ? cmd->channel : NULL};
    if ((e = lv_pg_cmd(pg,
                       "UPDATE payout SET status = $2, resolved_ms = $3, resolved_by = $4, "
                       "reason = coalesce($5, reason), channel = $6 WHERE payout_id = $1",
                       6, q)))
        return e;
    if (!post)
        return 0;
    const char *one[1] = {payout_id};
    if ((e = disburse(pg, one, 1, cmd->channel, lv_now_ms(), reply)))
        return e;
    return notify_paid(pg, payout_id);
}

#define PAY_BATCH 10000
#define PAY_BATCH_S "10000"

/* Pays every reserved payout (not relief, which needs the town) in a
 * region: up to PAY_BATCH posts decided and applied by one batch of the
 * transfer engine, in one transaction. */
static int pay_all(PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const char *p[1] = {cmd->region_code};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT p.payout_id FROM payout p JOIN household h USING (household_id) "
                        "WHERE p.status = 'pending' AND p.kind <> 'relief' AND "
                        "h.region_code LIKE $1 || '%' ORDER BY p.payout_id LIMIT " PAY_BATCH_S
                        " FOR UPDATE OF p",
                        1, p);
    if (e)
        return e;
    size_t n = (size_t)PQntuples(res);
    led_transfer_t *t = calloc(n ? n : 1, sizeof *t);
    led_result_t *r = calloc(n ? n : 1, sizeof *r);
    char(*tid)[160] = calloc(n ? n : 1, sizeof *tid);
    lv_buf_t done;
    lv_buf_init(&done, (size_t)1 << 26);
    lv_arr_begin(&done);
    if (!t || !r || !tid) {
        e = LV_ETRANSIENT;
        goto out;
    }
    int64_t now = lv_now_ms();
    for (size_t i = 0; i < n; i++) {
        snprintf(tid[i], sizeof tid[i], "post:%s", PQgetvalue(res, (int)i, 0));
        t[i] = (led_transfer_t){.id = tid[i], .kind = "payout",
                                .pending_id = PQgetvalue(res, (int)i, 0), .phase = LED_POST,
                                .now_ms = now};
    }
    if ((e = led_transfer_batch(pg, t, n, r)))
        goto out;
    size_t paid = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].code != 0 && r[i].code != LV_EDUP)
            continue; /* expired meanwhile: the timer voids it */
        lv_arr_text(&done, t[i].pending_id, strlen(t[i].pending_id));
        paid++;
    }
    lv_arr_end(&done);
    char nows[24];
    i64s(nows, sizeof nows, now);
    const char *q[4] = {lv_buf_str(&done), nows, cmd->actor, cmd->channel};
    if (done.failed)
        e = LV_ETRANSIENT;
    else if (paid)
        e = lv_pg_cmd(pg,
                      "UPDATE payout SET status = 'posted', resolved_ms = $2, resolved_by = $3, "
                      "channel = $4 WHERE payout_id = ANY($1::text[])",
                      4, q);
    if (!e && paid) {
        const char **ids = calloc(paid, sizeof *ids);
        size_t k = 0;
        for (size_t i = 0; ids && i < n; i++)
            if (r[i].code == 0 || r[i].code == LV_EDUP)
                ids[k++] = t[i].pending_id;
        e = ids ? disburse(pg, ids, k, cmd->channel, now, reply) : LV_ETRANSIENT;
        free(ids);
    }
    for (size_t i = 0; !e && i < n; i++)
        if (r[i].code == 0 || r[i].code == LV_EDUP)
            e = notify_paid(pg, t[i].pending_id);
    if (!e)
        snprintf(reply->detail, sizeof reply->detail, "已发放 %zu 笔 (paid %zu payouts)%s", paid,
                 paid, n == PAY_BATCH ? "; 还有未发放的, 请再次执行 (more remain: run again)" : "");
out:
    PQclear(res);
    free(t);
    free(r);
    free(tid);
    lv_buf_free(&done);
    return e;
}

static int ensure_village_fund(PGconn *pg, const char *region, char *acc, size_t n)
{
    snprintf(acc, n, "fund:village:%s", region);
    char name[96], county[7];
    snprintf(name, sizeof name, "%s 村级救助基金", region);
    snprintf(county, sizeof county, "%.6s", region);
    const char *p[3] = {acc, name, county};
    return lv_pg_cmd(pg,
                     "INSERT INTO account (account_id, name, kind, county, flags) VALUES ($1, $2, "
                     "'fund', $3, " FLAG_NO_OVERDRAW ") ON CONFLICT DO NOTHING",
                     3, p);
}

static int donate(PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    char region[13];
    const char *why = NULL;
    if (lv_region_parse(cmd->region_code, strlen(cmd->region_code), region, &why) ||
        cmd->amount_fen <= 0 || !*cmd->donor) {
        snprintf(reply->error, sizeof reply->error, "捐赠需要村代码、捐赠人和正的金额 (%s)",
                 why ? why : "donor and a positive amount");
        return LV_ESTATE;
    }
    char acc[64], tid[160], err[256];
    int e = ensure_village_fund(pg, region, acc, sizeof acc);
    if (e)
        return e;
    snprintf(tid, sizeof tid, "don:%s", cmd->cmd_id);
    led_transfer_t t = {.id = tid, .debit = "source:donations", .credit = acc, .kind = "donation",
                        .amount_fen = cmd->amount_fen, .phase = LED_SINGLE, .note = cmd->donor,
                        .now_ms = lv_now_ms()};
    e = led_transfer_apply(pg, &t, err, sizeof err);
    if (e == LV_EDUP)
        return 0;
    if (e) {
        snprintf(reply->error, sizeof reply->error, "%s", err);
        return e == LV_EINVAL ? LV_ESTATE : e;
    }
    char amt[24], at[24], now[24], county[7];
    i64s(amt, sizeof amt, cmd->amount_fen);
    i64s(at, sizeof at, cmd->at_ms > 0 ? cmd->at_ms : lv_now_ms());
    i64s(now, sizeof now, lv_now_ms());
    snprintf(county, sizeof county, "%.6s", region);
    const char *p[8] = {tid, acc, county, cmd->donor, amt, at, tid, now};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO donation (donation_id, fund_account, county, donor, amount_fen, "
                       "donated_ms, transfer_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                       8, p)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "捐赠已入 %s (donation %s recorded)", acc, tid);
    return 0;
}

/* Temporary relief from the household's village fund: reserved now, paid
 * on the town's approval (pay with role town). */
static int relief(led_t *l, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(l->svc), lv_now_ms());
    if (!v)
        return LV_ETRANSIENT;
    if (cmd->amount_fen <= 0 || cmd->amount_fen > v->relief_max_fen || !*cmd->note) {
        char max[32];
        lv_money_format(v->relief_max_fen, max, sizeof max);
        snprintf(reply->error, sizeof reply->error,
                 "临时救助金额须在 0 到 %s 元之间, 并说明原因 (amount within the policy's maximum, "
                 "and a reason)",
                 max);
        return LV_ESTATE;
    }
    const char *p[1] = {cmd->household_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT region_code, household_type FROM household WHERE household_id = $1",
                        1, p);
    if (e)
        return e;
    if (PQntuples(res) != 1) {
        PQclear(res);
        snprintf(reply->error, sizeof reply->error, "没有这个户 (no such household) %s",
                 cmd->household_id);
        return LV_ESTATE;
    }
    char region[13], htype[32], fund[64], id[160], explain[400], yuan[32];
    snprintf(region, sizeof region, "%s", PQgetvalue(res, 0, 0));
    snprintf(htype, sizeof htype, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if ((e = ensure_village_fund(pg, region, fund, sizeof fund)))
        return e;
    snprintf(id, sizeof id, "relief:%s", cmd->cmd_id);
    lv_money_format(cmd->amount_fen, yuan, sizeof yuan);
    snprintf(explain, sizeof explain, "临时救助 %s 元 (每次最多 %lld 分): %s", yuan,
             (long long)v->relief_max_fen, cmd->note);
    int y, m, d;
    lv_civil_from_days(lv_now_ms() / 86400000LL, &y, &m, &d);
    Levee__PayoutRequest r = LEVEE__PAYOUT_REQUEST__INIT;
    r.payout_id = id;
    r.case_id = (char *)"";
    r.household_id = cmd->household_id;
    r.region_code = region;
    r.household_type = htype;
    r.kind = (char *)"relief";
    r.basis_fen = cmd->amount_fen;
    r.year = y;
    return reserve(pg, &r, fund, cmd->amount_fen, explain, v, reply);
}

static int command(led_t *l, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__Command *cmd = levee__command__unpack(lv_arena_allocator(l->arena), msg->len, msg->body);
    if (!cmd) {
        snprintf(reply->error, sizeof reply->error, "not a Command (bad protobuf)");
        return LV_EINVAL;
    }
    if (!*cmd->actor || !*cmd->role || !*cmd->cmd_id) {
        snprintf(reply->error, sizeof reply->error, "command without id, actor or role");
        return LV_EINVAL;
    }
    if (!strcmp(cmd->name, "pay") || !strcmp(cmd->name, "void")) {
        bool post = !strcmp(cmd->name, "pay");
        if (post && !channel_ok(cmd->channel)) {
            snprintf(reply->error, sizeof reply->error,
                     "支付须指明渠道 (a payment names its channel, 1..60 bytes)");
            return LV_ESTATE;
        }
        if (post && !*cmd->payout_id)
            return pay_all(pg, cmd, reply);
        if (!post && !*cmd->note) {
            snprintf(reply->error, sizeof reply->error, "作废须说明原因 (a void needs a reason)");
            return LV_ESTATE;
        }
        int e = resolve(pg, cmd->payout_id, post, cmd, post ? NULL : cmd->note, reply);
        if (!e)
            snprintf(reply->detail, sizeof reply->detail, "发放 %s %s", cmd->payout_id,
                     post ? "已支付 (posted)" : "已作废 (voided)");
        return e;
    }
    if (!strcmp(cmd->name, "donate"))
        return donate(pg, cmd, reply);
    if (!strcmp(cmd->name, "relief"))
        return relief(l, pg, cmd, reply);
    snprintf(reply->error, sizeof reply->error, "unknown command %s", cmd->name);
    return LV_EINVAL;
}

int led_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    led_t *l = ctx;
    lv_arena_reset(l->arena);
    if (!strcmp(msg->type, "payout"))
        return payout(l, pg, msg, reply);
    if (!strcmp(msg->type, "cmd"))
        return command(l, pg, msg, reply);
    snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
    return LV_EINVAL;
}

/* The ledger totals for /metrics: per fund its balance, paid and reserved
 * amounts, per channel what left through it. A query every few seconds. */
static void update_totals(PGconn *pg)
{
    static int64_t next_ms;
    int64_t mono = lv_mono_ms();
    if (mono < next_ms)
        return;
    next_ms = mono + 5000;
    PGresult *res;
    if (lv_pg_query(pg, &res,
                    "SELECT account_id, kind, credits_posted - debits_posted - debits_pending, "
                    "debits_posted, debits_pending, credits_posted FROM account "
                    "WHERE kind IN ('fund', 'paidout') ORDER BY account_id LIMIT 400",
                    0, NULL))
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        /* Account ids go into a label only when they are plain. */
        if (strcspn(id, "\"\\\n{}") != strlen(id))
            continue;
        char labels[200];
        snprintf(labels, sizeof labels, "account=\"%s\"", id);
        if (!strcmp(PQgetvalue(res, i, 1), "paidout")) {
            lv_metric_set(lv_gauge("levee_paidout_fen", "Paid out through a channel, in fen", labels),
                          strtoll(PQgetvalue(res, i, 5), NULL, 10));
            continue;
        }
        lv_metric_set(lv_gauge("levee_fund_balance_fen", "A fund's balance (what it can still pay), fen",
                               labels),
                      strtoll(PQgetvalue(res, i, 2), NULL, 10));
        lv_metric_set(lv_gauge("levee_fund_paid_fen", "Posted payouts from a fund, fen", labels),
                      strtoll(PQgetvalue(res, i, 3), NULL, 10));
        lv_metric_set(lv_gauge("levee_fund_pending_fen", "Reserved payouts of a fund, fen", labels),
                      strtoll(PQgetvalue(res, i, 4), NULL, 10));
    }
    PQclear(res);
}

/* A budget changed by a reload or by a new version's date is synced even
 * when no payout comes; the check is a string compare. */
static void sync_budgets_tick(led_t *l, PGconn *pg)
{
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(l->svc), lv_now_ms());
    char key[sizeof l->budgets_key];
    if (!v)
        return;
    led_budget_key(v, key, sizeof key);
    if (!strcmp(key, l->budgets_key) || lv_pg_begin(pg))
        return;
    if (budgets_current(l, pg, v) || lv_pg_commit(pg)) {
        lv_pg_rollback(pg);
        l->budgets_key[0] = '\0';
        lv_warn("could not sync the county budgets");
    }
}

/* Reservations that lapsed are voided, one transaction each. */
int led_tick(void *ctx, lv_service_t *svc)
{
    static int64_t next_ms;
    int64_t mono = lv_mono_ms();
    if (mono < next_ms)
        return (int)(next_ms - mono);
    next_ms = mono + 1000;
    PGconn *pg = lv_service_pg(svc);
    update_totals(pg);
    sync_budgets_tick(ctx, pg);
    PGresult *res;
    if (led_expired(pg, lv_now_ms(), 200, &res))
        return 1000;
    Levee__Command sys = LEVEE__COMMAND__INIT;
    sys.actor = (char *)"levee-ledger";
    sys.role = (char *)"system";
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        lv_reply_t r;
        r.error[0] = r.detail[0] = '\0';
        if (lv_pg_begin(pg))
            break;
        if (resolve(pg, PQgetvalue(res, i, 0), false, &sys, "预留超时 (the reservation timed out)",
                    &r) ||
            lv_pg_commit(pg)) {
            lv_pg_rollback(pg);
            lv_warn("could not void lapsed reservation %s: %s", PQgetvalue(res, i, 0), r.error);
        }
    }
    PQclear(res);
    return n ? 0 : 1000;
}
