#define _POSIX_C_SOURCE 200809L
#include "transfer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"

static const char *const PHASE[] = {"single", "pending", "post", "void"};

/* Runs a statement; returns rows affected (>= 0), LV_ESTATE on a unique
 * violation (someone else resolved the same pending transfer), LV_ENOTFOUND
 * on a foreign-key violation (no such account), or the classified error. */
static int64_t exec(PGconn *pg, const char *sql, int n, const char *const *p, PGresult **keep)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        int64_t rows = st == PGRES_TUPLES_OK ? PQntuples(res) : strtoll(PQcmdTuples(res), NULL, 10);
        if (keep)
            *keep = res;
        else
            PQclear(res);
        return rows;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int e = state && !strcmp(state, "23505")   ? LV_ESTATE
            : state && !strcmp(state, "23503") ? LV_ENOTFOUND
                                               : lv_pg_classify(pg, res);
    if (e != LV_ESTATE && e != LV_ENOTFOUND)
        lv_error("ledger statement failed: %s", PQresultErrorMessage(res));
    PQclear(res);
    return e;
}

static int fail(PGconn *pg, int e, char *err, size_t n, const char *fmt, const char *a)
{
    if (err && fmt)
        snprintf(err, n, fmt, a ? a : "");
    if (lv_pg_cmd(pg, "ROLLBACK TO SAVEPOINT led_transfer", 0, NULL))
        return LV_ETRANSIENT;
    return e;
}

/* Moves amount on one side of an account: field += amount (or -=). With
 * guard, the no-overdraw flag is checked in the same statement. */
static int64_t move(PGconn *pg, const char *account, const char *sets, bool guard, const char *amt)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE account SET %s WHERE account_id = $1%s", sets,
             guard ? " AND (flags & 1 = 0 OR debits_posted + debits_pending + $2 <= credits_posted)"
                   : "");
    const char *p[2] = {account, amt};
    return exec(pg, sql, 2, p, NULL);
}

/* The same id again: the same content is a duplicate, other content an error. */
static int compare_existing(PGconn *pg, const led_transfer_t *t, const char *debit,
                            const char *credit, int64_t amount, char *err, size_t n)
{
    const char *p[1] = {t->id};
    PGresult *res;
    int64_t r = exec(pg,
                     "SELECT debit_account, credit_account, amount_fen, kind, phase, "
                     "coalesce(pending_id, '') FROM transfer WHERE transfer_id = $1",
                     1, p, &res);
    if (r < 0)
        return fail(pg, (int)r, err, n, NULL, NULL);
    bool same = r == 1 && !strcmp(PQgetvalue(res, 0, 0), debit) &&
                !strcmp(PQgetvalue(res, 0, 1), credit) &&
                strtoll(PQgetvalue(res, 0, 2), NULL, 10) == amount &&
                !strcmp(PQgetvalue(res, 0, 3), t->kind) &&
                !strcmp(PQgetvalue(res, 0, 4), PHASE[t->phase]) &&
                !strcmp(PQgetvalue(res, 0, 5), t->pending_id ? t->pending_id : "");
    PQclear(res);
    if (same)
        return fail(pg, LV_EDUP, err, n, "transfer %s already applied", t->id);
    return fail(pg, LV_EINVAL, err, n, "transfer id %s already used with other content", t->id);
}

int led_transfer_apply(PGconn *pg, const led_transfer_t *t, char *err, size_t n)
{
    if (err && n)
        err[0] = '\0';
    if (!t->id || !*t->id || !t->kind || t->phase > LED_VOID ||
        ((t->phase == LED_POST || t->phase == LED_VOID) != (t->pending_id != NULL)) ||
        ((t->phase == LED_SINGLE || t->phase == LED_PENDING) &&
         (t->amount_fen <= 0 || !t->debit || !t->credit || !strcmp(t->debit, t->credit)))) {
        if (err)
            snprintf(err, n, "malformed transfer %s", t->id ? t->id : "(no id)");
        return LV_EINVAL;
    }
    if (lv_pg_cmd(pg, "SAVEPOINT led_transfer", 0, NULL))
        return LV_ETRANSIENT;

    char debit[128], credit[128], amt[24], now[24], exp[24];
    int64_t amount = t->amount_fen;
    snprintf(debit, sizeof debit, "%s", t->debit ? t->debit : "");
    snprintf(credit, sizeof credit, "%s", t->credit ? t->credit : "");
    if (t->phase == LED_POST || t->phase == LED_VOID) {
        const char *p[1] = {t->pending_id};
        PGresult *res;
        int64_t r = exec(pg,
                         "SELECT debit_account, credit_account, amount_fen, coalesce(expires_ms, 0), "
                         "phase FROM transfer WHERE transfer_id = $1",
                         1, p, &res);
        if (r < 0)
            return fail(pg, (int)r, err, n, NULL, NULL);
        if (r == 0 || strcmp(PQgetvalue(res, 0, 4), "pending") != 0) {
            PQclear(res);
            return fail(pg, LV_ESTATE, err, n, "no pending transfer %s", t->pending_id);
        }
        snprintf(debit, sizeof debit, "%s", PQgetvalue(res, 0, 0));
        snprintf(credit, sizeof credit, "%s", PQgetvalue(res, 0, 1));
        int64_t pending_amount = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        int64_t expires = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
        PQclear(res);
        if (amount == 0)
            amount = pending_amount;
        if (amount != pending_amount)
            return fail(pg, LV_EINVAL, err, n, "transfer %s must resolve the whole pending amount",
                        t->id);
        if (t->phase == LED_POST && expires > 0 && expires <= t->now_ms)
            return fail(pg, LV_ESTATE, err, n, "预留已超时 (the reservation %s has expired)",
                        t->pending_id);
    }
    snprintf(amt, sizeof amt, "%lld", (long long)amount);
    snprintf(now, sizeof now, "%lld", (long long)t->now_ms);
    snprintf(exp, sizeof exp, "%lld", (long long)t->expires_ms);

    const char *p[10] = {t->id, debit, credit, amt, t->kind, now, PHASE[t->phase],
                         t->pending_id, t->phase == LED_PENDING && t->expires_ms ? exp : NULL,
                         t->note};
    int64_t r = exec(pg,
                     "INSERT INTO transfer (transfer_id, debit_account, credit_account, amount_fen, "
                     "kind, created_ms, phase, pending_id, expires_ms, note) VALUES ($1, $2, $3, $4, "
                     "$5, $6, $7, $8, $9, $10) ON CONFLICT (transfer_id) DO NOTHING",
                     10, p, NULL);
    if (r == LV_ESTATE)
        return fail(pg, LV_ESTATE, err, n, "pending transfer %s is already resolved", t->pending_id);
    if (r == LV_ENOTFOUND)
        return fail(pg, LV_ESTATE, err, n, "no such account in transfer %s", t->id);
    if (r < 0)
        return fail(pg, (int)r, err, n, NULL, NULL);
    if (r == 0)
        return compare_existing(pg, t, debit, credit, amount, err, n);

    /* Lock the two accounts in id order so two transfers between the same
     * accounts in opposite directions cannot deadlock. */
    bool debit_first = strcmp(debit, credit) < 0;
    const char *dset = NULL, *cset = NULL;
    bool guard = false;
    switch (t->phase) {
    case LED_SINGLE:
        dset = "debits_posted = debits_posted + $2";
        cset = "credits_posted = credits_posted + $2";
        guard = true;
        break;
    case LED_PENDING:
        dset = "debits_pending = debits_pending + $2";
        cset = "credits_pending = credits_pending + $2";
        guard = true;
        break;
    case LED_POST:
        dset = "debits_pending = debits_pending - $2, debits_posted = debits_posted + $2";
        cset = "credits_pending = credits_pending - $2, credits_posted = credits_posted + $2";
        break;
    case LED_VOID:
        dset = "debits_pending = debits_pending - $2";
        cset = "credits_pending = credits_pending - $2";
        break;
    }
    for (int side = 0; side < 2; side++) {
        bool is_debit = (side == 0) == debit_first;
        int64_t m = is_debit ? move(pg, debit, dset, guard, amt) : move(pg, credit, cset, false, amt);
        if (m < 0)
            return fail(pg, (int)m, err, n, NULL, NULL);
        if (m == 0) {
            const char *q[1] = {is_debit ? debit : credit};
            int64_t exists = exec(pg, "SELECT 1 FROM account WHERE account_id = $1", 1, q, NULL);
            if (exists < 0)
                return fail(pg, (int)exists, err, n, NULL, NULL);
            return fail(pg, LV_ESTATE, err, n,
                        exists ? "资金余额不足 (not enough money in %s)" : "no such account %s",
                        is_debit ? debit : credit);
        }
    }
    if (lv_pg_cmd(pg, "RELEASE SAVEPOINT led_transfer", 0, NULL))
        return LV_ETRANSIENT;
    return 0;
}

int led_expired(PGconn *pg, int64_t now_ms, int limit, PGresult **res)
{
    char now[24], lim[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[2] = {now, lim};
    return lv_pg_query(pg, res,
                       "SELECT t.transfer_id FROM transfer t WHERE t.phase = 'pending' AND "
                       "t.expires_ms <= $1::bigint AND NOT EXISTS (SELECT 1 FROM transfer r "
                       "WHERE r.pending_id = t.transfer_id) ORDER BY t.expires_ms, t.transfer_id "
                       "LIMIT $2::int",
                       2, p);
}
