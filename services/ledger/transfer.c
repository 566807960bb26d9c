#define _POSIX_C_SOURCE 200809L
#include "transfer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
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

/* Whether the stored transfer in row `row` (columns from `col`: debit,
 * credit, amount, kind, phase, pending id) has t's content. */
static bool row_matches(const PGresult *res, int row, int col, const led_transfer_t *t,
                        const char *debit, const char *credit, int64_t amount)
{
    return !strcmp(PQgetvalue(res, row, col), debit) &&
           !strcmp(PQgetvalue(res, row, col + 1), credit) &&
           strtoll(PQgetvalue(res, row, col + 2), NULL, 10) == amount &&
           !strcmp(PQgetvalue(res, row, col + 3), t->kind) &&
           !strcmp(PQgetvalue(res, row, col + 4), PHASE[t->phase]) &&
           !strcmp(PQgetvalue(res, row, col + 5), t->pending_id ? t->pending_id : "");
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
    bool same = r == 1 && row_matches(res, 0, 0, t, debit, credit, amount);
    PQclear(res);
    if (same)
        return fail(pg, LV_EDUP, err, n, "transfer %s already applied", t->id);
    return fail(pg, LV_EINVAL, err, n, "transfer id %s already used with other content", t->id);
}

static bool too_long(const char *s)
{
    return s && strlen(s) > LED_ID_MAX;
}

/* A transfer no state could make valid. Ids longer than LED_ID_MAX are
 * refused rather than cut, so money never lands in a look-alike account. */
static bool malformed(const led_transfer_t *t)
{
    return !t->id || !*t->id || !t->kind || t->phase > LED_VOID || too_long(t->id) ||
           too_long(t->debit) || too_long(t->credit) || too_long(t->pending_id) ||
           ((t->phase == LED_POST || t->phase == LED_VOID) != (t->pending_id != NULL)) ||
           ((t->phase == LED_SINGLE || t->phase == LED_PENDING) &&
            (t->amount_fen <= 0 || !t->debit || !t->credit || !strcmp(t->debit, t->credit)));
}

int led_transfer_apply(PGconn *pg, const led_transfer_t *t, char *err, size_t n)
{
    if (err && n)
        err[0] = '\0';
    if (malformed(t)) {
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
        /* A resolution applied before is a duplicate, even after the
         * reservation's deadline: check the id before the clock. */
        const char *q[1] = {t->id};
        int64_t seen = exec(pg, "SELECT 1 FROM transfer WHERE transfer_id = $1", 1, q, NULL);
        if (seen < 0)
            return fail(pg, (int)seen, err, n, NULL, NULL);
        if (seen == 1)
            return compare_existing(pg, t, debit, credit, amount, err, n);
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

/* ---- batches ---------------------------------------------------------- */

typedef struct {
    const char *id;
    int flags;
    int64_t dp, cp, dn, cn;     /* as read, locked */
    int64_t ddp, dcp, ddn, dcn; /* what the batch adds */
} acct_t;

typedef struct {
    const char *id, *debit, *credit, *phase;
    int64_t amount, expires;
    bool resolved;
} pend_t;

static int cmp_acct(const void *a, const void *b)
{
    return strcmp(((const acct_t *)a)->id, ((const acct_t *)b)->id);
}

static int cmp_pend(const void *a, const void *b)
{
    return strcmp(((const pend_t *)a)->id, ((const pend_t *)b)->id);
}

static acct_t *find_acct(acct_t *a, size_t n, const char *id)
{
    acct_t key = {.id = id};
    return bsearch(&key, a, n, sizeof *a, cmp_acct);
}

static pend_t *find_pend(pend_t *p, size_t n, const char *id)
{
    pend_t key = {.id = id};
    return bsearch(&key, p, n, sizeof *p, cmp_pend);
}

/* Batch order by id, for spotting an id given twice in one batch. */
static const led_transfer_t *s_sort_base;
static int cmp_idx(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(s_sort_base[x].id, s_sort_base[y].id);
    return c ? c : (x > y) - (x < y);
}

static void refuse(led_result_t *r, int code, const char *fmt, const char *a)
{
    r->code = code;
    snprintf(r->why, sizeof r->why, fmt, a ? a : "");
}


/* The accounts a transfer touches, for post and void those of the pending. */
static void sides(const led_transfer_t *t, const pend_t *p, const char **debit, const char **credit)
{
    *debit = p ? p->debit : t->debit;
    *credit = p ? p->credit : t->credit;
}

static int query_ids(PGconn *pg, const char *sql, lv_buf_t *ids, PGresult **res)
{
    lv_arr_end(ids);
    if (ids->failed)
        return LV_ENOMEM;
    const char *p[1] = {lv_buf_str(ids)};
    return lv_pg_query(pg, res, sql, 1, p);
}

int led_transfer_batch(PGconn *pg, const led_transfer_t *t, size_t n, led_result_t *results)
{
    int e = 0;
    PGresult *rex = NULL, *rpend = NULL, *racc = NULL;
    size_t *order = calloc(n ? n : 1, sizeof *order);
    pend_t *pends = NULL;
    acct_t *accts = NULL;
    size_t npend = 0, nacct = 0;
    lv_buf_t ids, pids, aids;
    lv_buf_init(&ids, (size_t)1 << 28);
    lv_buf_init(&pids, (size_t)1 << 28);
    lv_buf_init(&aids, (size_t)1 << 28);
    lv_arr_begin(&ids);
    lv_arr_begin(&pids);
    lv_arr_begin(&aids);
    if (!order) {
        e = LV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        results[i].code = 0;
        results[i].why[0] = '\0';
        order[i] = i;
        if (malformed(&t[i])) {
            refuse(&results[i], LV_EINVAL, "malformed transfer %s", t[i].id);
            continue;
        }
        lv_arr_text(&ids, t[i].id, strlen(t[i].id));
        if (t[i].pending_id)
            lv_arr_text(&pids, t[i].pending_id, strlen(t[i].pending_id));
    }
    /* An id given twice in the batch: the later ones are compared with the
     * first, as a resubmission would be. */
    s_sort_base = t;
    qsort(order, n, sizeof *order, cmp_idx);
    for (size_t k = 1; k < n; k++) {
        const led_transfer_t *a = &t[order[k - 1]], *b = &t[order[k]];
        if (results[order[k]].code || results[order[k - 1]].code == LV_EINVAL ||
            strcmp(a->id, b->id) != 0)
            continue;
        bool same = a->phase == b->phase && a->amount_fen == b->amount_fen &&
                    !strcmp(a->kind, b->kind) && !strcmp(a->debit ? a->debit : "", b->debit ? b->debit : "") &&
                    !strcmp(a->credit ? a->credit : "", b->credit ? b->credit : "") &&
                    !strcmp(a->pending_id ? a->pending_id : "", b->pending_id ? b->pending_id : "");
        refuse(&results[order[k]], same ? LV_EDUP : LV_EINVAL,
               same ? "transfer %s given twice" : "transfer id %s given twice with other content",
               b->id);
    }

    /* Ids applied before: the same content is a duplicate, else an error. */
    if ((e = query_ids(pg,
                       "SELECT transfer_id, debit_account, credit_account, amount_fen, kind, phase, "
                       "coalesce(pending_id, '') FROM transfer WHERE transfer_id = ANY($1::text[]) "
                       "ORDER BY transfer_id COLLATE \"C\"",
                       &ids, &rex)))
        goto out;
    /* The pending transfers that posts and voids name, and whether resolved. */
    if ((e = query_ids(pg,
                       "SELECT t.transfer_id, t.debit_account, t.credit_account, t.amount_fen, "
                       "coalesce(t.expires_ms, 0), t.phase, EXISTS (SELECT 1 FROM transfer r "
                       "WHERE r.pending_id = t.transfer_id) FROM transfer t "
                       "WHERE t.transfer_id = ANY($1::text[]) ORDER BY t.transfer_id COLLATE \"C\"",
                       &pids, &rpend)))
        goto out;
    npend = (size_t)PQntuples(rpend);
    pends = calloc(npend ? npend : 1, sizeof *pends);
    if (!pends) {
        e = LV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < npend; i++) {
        int r = (int)i;
        pends[i] = (pend_t){PQgetvalue(rpend, r, 0), PQgetvalue(rpend, r, 1), PQgetvalue(rpend, r, 2),
                            PQgetvalue(rpend, r, 5), strtoll(PQgetvalue(rpend, r, 3), NULL, 10),
                            strtoll(PQgetvalue(rpend, r, 4), NULL, 10),
                            PQgetvalue(rpend, r, 6)[0] == 't'};
    }
    int nex = PQntuples(rex);
    for (size_t i = 0; i < n; i++) {
        if (results[i].code)
            continue;
        const pend_t *p = t[i].pending_id ? find_pend(pends, npend, t[i].pending_id) : NULL;
        if (t[i].pending_id && (!p || strcmp(p->phase, "pending") != 0)) {
            refuse(&results[i], LV_ESTATE, "no pending transfer %s", t[i].pending_id);
            continue;
        }
        const char *debit, *credit;
        sides(&t[i], p, &debit, &credit);
        int64_t amount = p && t[i].amount_fen == 0 ? p->amount : t[i].amount_fen;
        /* Binary search over the rows of ids that exist already. */
        int lo = 0, hi = nex - 1, hit = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            int c = strcmp(PQgetvalue(rex, mid, 0), t[i].id);
            if (!c) {
                hit = mid;
                break;
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        if (hit >= 0) {
            bool same = row_matches(rex, hit, 1, &t[i], debit, credit, amount);
            refuse(&results[i], same ? LV_EDUP : LV_EINVAL,
                   same ? "transfer %s already applied" : "transfer id %s already used with other content",
                   t[i].id);
            continue;
        }
        lv_arr_text(&aids, debit, strlen(debit));
        lv_arr_text(&aids, credit, strlen(credit));
    }

    /* Lock and read the accounts, in one order for every batch. */
    if ((e = query_ids(pg,
                       "SELECT account_id, flags, debits_posted, credits_posted, debits_pending, "
                       "credits_pending FROM account WHERE account_id = ANY($1::text[]) "
                       "ORDER BY account_id COLLATE \"C\" FOR UPDATE",
                       &aids, &racc)))
        goto out;
    nacct = (size_t)PQntuples(racc);
    accts = calloc(nacct ? nacct : 1, sizeof *accts);
    if (!accts) {
        e = LV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nacct; i++) {
        int r = (int)i;
        accts[i] = (acct_t){.id = PQgetvalue(racc, r, 0), .flags = atoi(PQgetvalue(racc, r, 1)),
                            .dp = strtoll(PQgetvalue(racc, r, 2), NULL, 10),
                            .cp = strtoll(PQgetvalue(racc, r, 3), NULL, 10),
                            .dn = strtoll(PQgetvalue(racc, r, 4), NULL, 10),
                            .cn = strtoll(PQgetvalue(racc, r, 5), NULL, 10)};
    }

    /* Decide in batch order against running balances. */
    size_t accepted = 0;
    for (size_t i = 0; i < n; i++) {
        if (results[i].code)
            continue;
        pend_t *p = t[i].pending_id ? find_pend(pends, npend, t[i].pending_id) : NULL;
        const char *debit, *credit;
        sides(&t[i], p, &debit, &credit);
        acct_t *d = find_acct(accts, nacct, debit), *c = find_acct(accts, nacct, credit);
        if (!d || !c) {
            refuse(&results[i], LV_ESTATE, "no such account %s", !d ? debit : credit);
            continue;
        }
        int64_t amt = t[i].amount_fen;
        if (p) {
            if (amt == 0)
                amt = p->amount;
            if (amt != p->amount) {
                refuse(&results[i], LV_EINVAL, "transfer %s must resolve the whole pending amount",
                       t[i].id);
                continue;
            }
            if (p->resolved) {
                refuse(&results[i], LV_ESTATE, "pending transfer %s is already resolved", p->id);
                continue;
            }
            if (t[i].phase == LED_POST && p->expires > 0 && p->expires <= t[i].now_ms) {
                refuse(&results[i], LV_ESTATE, "预留已超时 (the reservation %s has expired)", p->id);
                continue;
            }
            p->resolved = true;
        }
        switch (t[i].phase) {
        case LED_SINGLE:
        case LED_PENDING:
            if ((d->flags & 1) && d->dp + d->ddp + d->dn + d->ddn + amt > d->cp + d->dcp) {
                refuse(&results[i], LV_ESTATE, "资金余额不足 (not enough money in %s)", debit);
                continue;
            }
            if (t[i].phase == LED_SINGLE) {
                d->ddp += amt;
                c->dcp += amt;
            } else {
                d->ddn += amt;
                c->dcn += amt;
            }
            break;
        case LED_POST:
            d->ddn -= amt;
            d->ddp += amt;
            c->dcn -= amt;
            c->dcp += amt;
            break;
        case LED_VOID:
            d->ddn -= amt;
            c->dcn -= amt;
            break;
        }
        accepted++;
    }

    if (accepted) {
        enum { C_ID, C_DEB, C_CRED, C_AMT, C_KIND, C_NOW, C_PHASE, C_PEND, C_EXP, C_NOTE, C_N };
        lv_buf_t col[C_N];
        for (int k = 0; k < C_N; k++) {
            lv_buf_init(&col[k], (size_t)1 << 28);
            lv_arr_begin(&col[k]);
        }
        for (size_t i = 0; i < n; i++) {
            if (results[i].code)
                continue;
            const pend_t *p = t[i].pending_id ? find_pend(pends, npend, t[i].pending_id) : NULL;
            const char *debit, *credit;
            sides(&t[i], p, &debit, &credit);
            lv_arr_text(&col[C_ID], t[i].id, strlen(t[i].id));
            lv_arr_text(&col[C_DEB], debit, strlen(debit));
            lv_arr_text(&col[C_CRED], credit, strlen(credit));
            lv_arr_int(&col[C_AMT], p && t[i].amount_fen == 0 ? p->amount : t[i].amount_fen);
            lv_arr_text(&col[C_KIND], t[i].kind, strlen(t[i].kind));
            lv_arr_int(&col[C_NOW], t[i].now_ms);
            lv_arr_text(&col[C_PHASE], PHASE[t[i].phase], strlen(PHASE[t[i].phase]));
            if (t[i].pending_id)
                lv_arr_text(&col[C_PEND], t[i].pending_id, strlen(t[i].pending_id));
            else
                lv_arr_null(&col[C_PEND]);
            if (t[i].phase == LED_PENDING && t[i].expires_ms)
                lv_arr_int(&col[C_EXP], t[i].expires_ms);
            else
                lv_arr_null(&col[C_EXP]);
            if (t[i].note)
                lv_arr_text(&col[C_NOTE], t[i].note, strlen(t[i].note));
            else
                lv_arr_null(&col[C_NOTE]);
        }
        const char *p[C_N];
        bool ok = true;
        for (int k = 0; k < C_N; k++) {
            lv_arr_end(&col[k]);
            ok = ok && !col[k].failed;
            p[k] = lv_buf_str(&col[k]);
        }
        int64_t r = ok ? exec(pg,
                              "INSERT INTO transfer (transfer_id, debit_account, credit_account, "
                              "amount_fen, kind, created_ms, phase, pending_id, expires_ms, note) "
                              "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
                              "$5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], "
                              "$10::text[])",
                              C_N, p, NULL)
                       : LV_ENOMEM;
        for (int k = 0; k < C_N; k++)
            lv_buf_free(&col[k]);
        /* A concurrent batch took an id or resolved a pending first: the
         * whole batch is retried and then sees it. */
        if (r == LV_ESTATE || r == LV_ENOTFOUND)
            r = LV_ETRANSIENT;
        if (r < 0) {
            e = (int)r;
            goto out;
        }
        lv_buf_t u[5];
        for (int k = 0; k < 5; k++) {
            lv_buf_init(&u[k], (size_t)1 << 26);
            lv_arr_begin(&u[k]);
        }
        for (size_t i = 0; i < nacct; i++) {
            const acct_t *a = &accts[i];
            if (!a->ddp && !a->dcp && !a->ddn && !a->dcn)
                continue;
            lv_arr_text(&u[0], a->id, strlen(a->id));
            lv_arr_int(&u[1], a->ddp);
            lv_arr_int(&u[2], a->dcp);
            lv_arr_int(&u[3], a->ddn);
            lv_arr_int(&u[4], a->dcn);
        }
        const char *q[5];
        ok = true;
        for (int k = 0; k < 5; k++) {
            lv_arr_end(&u[k]);
            ok = ok && !u[k].failed;
            q[k] = lv_buf_str(&u[k]);
        }
        r = ok ? exec(pg,
                      "UPDATE account a SET debits_posted = a.debits_posted + d.ddp, "
                      "credits_posted = a.credits_posted + d.dcp, "
                      "debits_pending = a.debits_pending + d.ddn, "
                      "credits_pending = a.credits_pending + d.dcn "
                      "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) "
                      "AS d(id, ddp, dcp, ddn, dcn) WHERE a.account_id = d.id",
                      5, q, NULL)
                 : LV_ENOMEM;
        for (int k = 0; k < 5; k++)
            lv_buf_free(&u[k]);
        if (r < 0)
            e = (int)r;
    }
out:
    PQclear(rex);
    PQclear(rpend);
    PQclear(racc);
    free(order);
    free(pends);
    free(accts);
    lv_buf_free(&ids);
    lv_buf_free(&pids);
    lv_buf_free(&aids);
    return e;
}
