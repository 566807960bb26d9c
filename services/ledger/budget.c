#define _POSIX_C_SOURCE 200809L
#include "budget.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_time.h"
#include "transfer.h"

#define FLAG_NO_OVERDRAW "1"

void led_budget_account(const lv_fund_def_t *f, const char *county, char *acc, size_t n)
{
    if (lv_fund_budget(f, county))
        snprintf(acc, n, "fund:%s:%.6s", f->fund_id, county);
    else
        snprintf(acc, n, "fund:%s", f->fund_id);
}

void led_budget_key(const lv_policy_version_t *v, char *key, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over fund, county and amount */
    for (int i = 0; i < v->nfunds; i++)
        for (int k = 0; k < v->funds[i].nbudgets; k++) {
            char item[96];
            int len = snprintf(item, sizeof item, "%s|%s|%lld;", v->funds[i].fund_id,
                               v->funds[i].budgets[k].county,
                               (long long)v->funds[i].budgets[k].fen);
            for (int j = 0; j < len && j < (int)sizeof item; j++)
                h = (h ^ (unsigned char)item[j]) * 1099511628211ULL;
        }
    snprintf(key, n, "%s#%016llx", v->version, (unsigned long long)h);
}

/* One allocation between a fund and its county account: up when amount > 0
 * (fund → county), down otherwise. */
static int allocate(PGconn *pg, const char *fund, const char *sub, const char *fund_id,
                    const char *county, long long seq, int64_t amount)
{
    char id[128], err[256];
    snprintf(id, sizeof id, "alloc:%s:%s:%lld", fund_id, county, seq);
    led_transfer_t t = {.id = id, .debit = amount > 0 ? fund : sub, .credit = amount > 0 ? sub : fund,
                        .kind = "allocation", .amount_fen = amount > 0 ? amount : -amount,
                        .phase = LED_SINGLE,
                        .note = amount > 0 ? "县级预算拨付 (county budget allocation)"
                                           : "县级预算调减 (county budget returned)",
                        .now_ms = lv_now_ms()};
    int e = led_transfer_apply(pg, &t, err, sizeof err);
    if (e == LV_ESTATE || e == LV_EINVAL) {
        lv_warn("county budget %s of fund %s not moved (%lld fen): %s", county, fund_id,
                (long long)amount, err);
        return 0;
    }
    return e == LV_EDUP ? 0 : e;
}

/* Creates the county accounts of the fund's budgets. */
static int ensure_accounts(PGconn *pg, const lv_fund_def_t *f, const char *fund)
{
    for (int k = 0; k < f->nbudgets; k++) {
        char sub[96], name[160];
        led_budget_account(f, f->budgets[k].county, sub, sizeof sub);
        snprintf(name, sizeof name, "%s %s 县级预算", f->name, f->budgets[k].county);
        const char *p[4] = {sub, name, f->budgets[k].county, fund};
        int e = lv_pg_cmd(pg,
                          "INSERT INTO account (account_id, name, kind, county, flags, "
                          "parent_account) VALUES ($1, $2, 'fund', $3, " FLAG_NO_OVERDRAW
                          ", $4) ON CONFLICT DO NOTHING",
                          4, p);
        if (e)
            return e;
    }
    return 0;
}

static int sync_fund(PGconn *pg, const lv_fund_def_t *f)
{
    char fund[64];
    snprintf(fund, sizeof fund, "fund:%s", f->fund_id);
    int e = ensure_accounts(pg, f, fund);
    if (e)
        return e;
    /* Every county account of the fund, with what it was allocated (net),
     * how many allocations it had, and what it has not yet reserved. */
    const char *p[1] = {fund};
    PGresult *res;
    e = lv_pg_query(pg, &res,
                    "SELECT a.account_id, a.county, coalesce(sum(CASE WHEN t.credit_account = "
                    "a.account_id THEN t.amount_fen ELSE -t.amount_fen END), 0), count(t.transfer_id), "
                    "a.credits_posted - a.debits_posted - a.debits_pending FROM account a "
                    "LEFT JOIN transfer t ON t.kind = 'allocation' AND (t.credit_account = "
                    "a.account_id OR t.debit_account = a.account_id) WHERE a.parent_account = $1 "
                    "GROUP BY a.account_id ORDER BY a.account_id",
                    1, p);
    if (e)
        return e;
    for (int i = 0; !e && i < PQntuples(res); i++) {
        const char *county = PQgetvalue(res, i, 1);
        const lv_budget_t *b = lv_fund_budget(f, county);
        int64_t target = b ? b->fen : 0;
        int64_t net = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        long long seq = strtoll(PQgetvalue(res, i, 3), NULL, 10) + 1;
        int64_t free_fen = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        int64_t delta = target - net;
        if (delta < 0 && -delta > free_fen)
            delta = -free_fen; /* what is reserved or paid stays */
        if (delta != 0)
            e = allocate(pg, fund, PQgetvalue(res, i, 0), f->fund_id, county, seq, delta);
    }
    PQclear(res);
    return e;
}

int led_budget_sync(PGconn *pg, const lv_policy_version_t *v)
{
    /* Two syncs at once would both see the old allocation and both move
     * the difference: one at a time. */
    int e = lv_pg_cmd(pg, "SELECT pg_advisory_xact_lock(hashtext('levee-ledger budgets'))", 0, NULL);
    for (int i = 0; !e && i < v->nfunds; i++)
        e = sync_fund(pg, &v->funds[i]);
    return e;
}
