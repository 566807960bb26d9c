/* The fund ledger: accounts with posted debits and credits, immutable
 * transfers whose id is the idempotency key, payouts computed from the
 * policy's tier tables. A fund account carries flag 1 (debits must not
 * exceed credits): the debit is a conditional UPDATE in the same transaction
 * as the transfer, and a CHECK constraint backs it, so no fund goes below
 * zero whatever runs at the same time. */
#define _POSIX_C_SOURCE 200809L
#include "ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_time.h"

#define FLAG_NO_OVERDRAW "1"

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

int led_seed_funds(PGconn *pg, const lv_policy_version_t *v)
{
    char now[24];
    i64s(now, sizeof now, lv_now_ms());
    int e = lv_pg_begin(pg);
    if (e)
        return e;
    e = lv_pg_cmd(pg,
                  "INSERT INTO account (account_id, name, kind) VALUES ('source:fiscal', "
                  "'财政拨付 (fiscal allocations)', 'source') ON CONFLICT DO NOTHING",
                  0, NULL);
    for (int i = 0; !e && i < v->nfunds; i++) {
        const lv_fund_def_t *f = &v->funds[i];
        char acc[64], tid[64], amt[24];
        snprintf(acc, sizeof acc, "fund:%s", f->fund_id);
        snprintf(tid, sizeof tid, "open:%s", f->fund_id);
        i64s(amt, sizeof amt, f->opening_fen);
        const char *p[2] = {acc, f->name};
        e = lv_pg_cmd(pg,
                      "INSERT INTO account (account_id, name, kind, flags) VALUES ($1, $2, 'fund', "
                      FLAG_NO_OVERDRAW ") ON CONFLICT DO NOTHING",
                      2, p);
        if (e || f->opening_fen <= 0)
            continue;
        /* The opening allocation is a transfer like any other: once only. */
        const char *q[4] = {tid, acc, amt, now};
        int64_t n = lv_pg_cmd_count(pg,
                                    "INSERT INTO transfer (transfer_id, debit_account, credit_account, "
                                    "amount_fen, kind, created_ms) VALUES ($1, 'source:fiscal', $2, "
                                    "$3, 'opening', $4) ON CONFLICT DO NOTHING",
                                    4, q);
        if (n < 0) {
            e = (int)n;
        } else if (n == 1) {
            const char *r[2] = {acc, amt};
            e = lv_pg_cmd(pg,
                          "UPDATE account SET credits_posted = credits_posted + $2 "
                          "WHERE account_id = $1",
                          2, r);
            if (!e)
                e = lv_pg_cmd(pg,
                              "UPDATE account SET debits_posted = debits_posted + $1 "
                              "WHERE account_id = 'source:fiscal'",
                              1, r + 1);
        }
    }
    if (e) {
        lv_pg_rollback(pg);
        return e;
    }
    return lv_pg_commit(pg);
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
                         int64_t amount, const char *status, const char *reason,
                         const char *computation, const char *version, const char *transfer_id)
{
    char year[16], basis[24], amt[24], now[24];
    snprintf(year, sizeof year, "%d", r->year);
    i64s(basis, sizeof basis, r->basis_fen);
    i64s(amt, sizeof amt, amount);
    i64s(now, sizeof now, lv_now_ms());
    const char *p[14] = {r->payout_id, r->case_id, r->household_id, county, r->household_type,
                         r->kind, year, basis, amt, status, reason, computation, version,
                         transfer_id};
    const char *q[15];
    memcpy(q, p, sizeof p);
    q[14] = now;
    return lv_pg_cmd(pg,
                     "INSERT INTO payout (payout_id, case_id, household_id, county, household_type, "
                     "kind, year, basis_fen, amount_fen, status, reason, computation, "
                     "policy_version, transfer_id, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                     "$8, $9, $10, $11, $12, $13, $14, $15)",
                     15, q);
}

static int notify_paid(PGconn *pg, const Levee__PayoutRequest *r, int64_t amount)
{
    char id[200], title[200], body[400], yuan[32];
    lv_money_format(amount, yuan, sizeof yuan);
    snprintf(id, sizeof id, "ev:payout_posted:%s", r->payout_id);
    snprintf(title, sizeof title, "防贫保障金已入账: 户 %s", r->household_id);
    snprintf(body, sizeof body, "户 %s 因病防贫保障金 %s 元已从防贫帮困保障资金划入应付账户 (%d 年度)。",
             r->household_id, yuan, r->year);
    Levee__Event ev = LEVEE__EVENT__INIT;
    ev.event_id = id;
    ev.kind = (char *)"payout_posted";
    ev.household_id = r->household_id;
    ev.region_code = r->region_code;
    ev.case_id = r->case_id;
    ev.title = title;
    ev.body = body;
    ev.at_ms = lv_now_ms();
    return lv_outbox_put(pg, "ledger", "notify", id, "event", &ev.base);
}

static int payout(led_t *l, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__PayoutRequest *r =
        levee__payout_request__unpack(lv_arena_allocator(l->arena), msg->len, msg->body);
    if (!r) {
        snprintf(reply->error, sizeof reply->error, "not a PayoutRequest (bad protobuf)");
        return LV_EINVAL;
    }
    if (!*r->payout_id || !*r->household_id || strlen(r->region_code) != 12 || r->basis_fen < 0 ||
        r->year < 1900 || r->year > 2200) {
        snprintf(reply->error, sizeof reply->error, "payout request with missing or bad fields");
        return LV_EINVAL;
    }
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(l->svc),
                                                r->at_ms > 0 ? r->at_ms : lv_now_ms());
    if (!v || v->nfunds < 1)
        return LV_ETRANSIENT; /* no policy in effect: retry after a fix and a reload */
    const lv_payout_rule_t *rule = rule_for(v, r->kind);
    if (!rule) {
        snprintf(reply->error, sizeof reply->error, "unknown payout kind %s", r->kind);
        return LV_EINVAL;
    }
    /* The same payout id again: one effect only; different content is an error. */
    const char *p0[1] = {r->payout_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res, "SELECT household_id, basis_fen, status FROM payout "
                                  "WHERE payout_id = $1", 1, p0);
    if (e)
        return e;
    if (PQntuples(res) == 1) {
        bool same = !strcmp(PQgetvalue(res, 0, 0), r->household_id) &&
                    strtoll(PQgetvalue(res, 0, 1), NULL, 10) == r->basis_fen;
        snprintf(same ? reply->detail : reply->error, same ? sizeof reply->detail : sizeof reply->error,
                 same ? "payout %s already %s" : "payout %s exists with other content (%s)",
                 r->payout_id, PQgetvalue(res, 0, 2));
        PQclear(res);
        return same ? 0 : LV_ESTATE;
    }
    PQclear(res);

    char county[7], year[16];
    snprintf(county, sizeof county, "%.6s", r->region_code);
    snprintf(year, sizeof year, "%d", r->year);
    const char *p1[3] = {r->household_id, r->kind, year};
    char paid_s[32];
    if ((e = lv_pg_scalar(pg, paid_s, sizeof paid_s,
                          "SELECT coalesce(sum(amount_fen), 0) FROM payout WHERE household_id = $1 "
                          "AND kind = $2 AND year = $3 AND status = 'posted'",
                          3, p1)))
        return e;
    char explain[1024];
    int64_t amount = lv_payout_compute(rule, r->basis_fen, strtoll(paid_s, NULL, 10), explain,
                                       sizeof explain);
    if (amount <= 0) {
        snprintf(reply->detail, sizeof reply->detail, "payout %s: nothing due", r->payout_id);
        return record_payout(pg, r, county, 0, "none", "未达起付线或已达年度封顶 (below the threshold or at the cap)",
                             explain, v->version, NULL);
    }
    char fund[64], payable[96], amt[24], now[24];
    snprintf(fund, sizeof fund, "fund:%s", v->funds[0].fund_id);
    snprintf(payable, sizeof payable, "payable:%s", r->household_id);
    i64s(amt, sizeof amt, amount);
    i64s(now, sizeof now, lv_now_ms());
    const char *p2[2] = {fund, amt};
    int64_t ok = lv_pg_cmd_count(pg,
                                 "UPDATE account SET debits_posted = debits_posted + $2 "
                                 "WHERE account_id = $1 AND (flags & 1 = 0 OR "
                                 "debits_posted + $2 <= credits_posted)",
                                 2, p2);
    if (ok < 0)
        return (int)ok;
    if (ok == 0) {
        snprintf(reply->detail, sizeof reply->detail, "payout %s refused: fund too low", r->payout_id);
        return record_payout(pg, r, county, amount, "refused",
                             "资金余额不足 (fund balance too low)", explain, v->version, NULL);
    }
    const char *p3[3] = {payable, r->household_id, county};
    const char *p4[5] = {r->payout_id, fund, payable, amt, now};
    const char *p5[2] = {payable, amt};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO account (account_id, name, kind, county) VALUES ($1, "
                       "'应付 ' || $2, 'payable', $3) ON CONFLICT DO NOTHING",
                       3, p3)) ||
        (e = lv_pg_cmd(pg,
                       "INSERT INTO transfer (transfer_id, debit_account, credit_account, "
                       "amount_fen, kind, created_ms) VALUES ($1, $2, $3, $4, 'payout', $5)",
                       5, p4)) ||
        (e = lv_pg_cmd(pg,
                       "UPDATE account SET credits_posted = credits_posted + $2 "
                       "WHERE account_id = $1",
                       2, p5)) ||
        (e = record_payout(pg, r, county, amount, "posted", NULL, explain, v->version,
                           r->payout_id)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "payout %s posted: %s fen", r->payout_id, amt);
    return notify_paid(pg, r, amount);
}

int led_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    led_t *l = ctx;
    lv_arena_reset(l->arena);
    if (!strcmp(msg->type, "payout"))
        return payout(l, pg, msg, reply);
    snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
    return LV_EINVAL;
}
