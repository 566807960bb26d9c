/* The transfer engine (services/ledger/transfer.c) against a real PostgreSQL:
 * LEVEE_PG names a database migrated with db/ (run_transfer.py starts one).
 * Every test makes its own accounts, named after the test and the pid, so
 * tests never share money; after each step it checks the return code, the
 * four balance columns of every account involved, that those columns equal
 * what the transfer rows add up to, and the transfer rows themselves. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_pg.h"
#include "transfer.h"

/* A fixed clock: the engine takes now_ms from its caller. */
#define NOW_MS 1750000000000LL
#define ID_MAX 256

#define RACE_CHILDREN 8
#define RACE_PER_CHILD 10
#define RACE_FUND_FEN 10000 /* 100.00 元 */
#define RACE_AMOUNT_FEN 300
#define RACE_WINNERS (RACE_FUND_FEN / RACE_AMOUNT_FEN)
#define RACE_MAX_ATTEMPTS 100

typedef struct {
    int64_t debits_posted, credits_posted, debits_pending, credits_pending;
} bal_t;

/* One test's accounts: a fund (flag 1), a source and a payable (flag 0). */
typedef struct {
    char prefix[64];
    char fund[96], source[96], payable[96];
} fx_t;

/* Everything a refusal must leave untouched. */
typedef struct {
    bal_t fund, source, payable;
    int64_t transfers;
} snap_t;

static PGconn *g_pg;
static const char *g_conninfo;

/* -- SQL helpers ------------------------------------------------------------ */

static void sql_ok(const char *sql, int n, const char *const *p)
{
    int e = lv_pg_cmd(g_pg, sql, n, p);
    if (e)
        print_error("statement failed (%d): %s\n", e, sql);
    assert_int_equal(e, 0);
}

static int64_t sql_i64(const char *sql, int n, const char *const *p)
{
    char out[32];
    int e = lv_pg_scalar(g_pg, out, sizeof out, sql, n, p);
    if (e)
        print_error("query failed (%d): %s\n", e, sql);
    assert_int_equal(e, 0);
    return strtoll(out, NULL, 10);
}

static bal_t bal_columns(const char *account)
{
    const char *p[1] = {account};
    PGresult *res;
    assert_int_equal(lv_pg_query(g_pg, &res,
                                 "SELECT debits_posted, credits_posted, debits_pending, "
                                 "credits_pending FROM account WHERE account_id = $1",
                                 1, p),
                     0);
    if (PQntuples(res) != 1)
        print_error("no account %s\n", account);
    assert_int_equal(PQntuples(res), 1);
    bal_t b = {strtoll(PQgetvalue(res, 0, 0), NULL, 10), strtoll(PQgetvalue(res, 0, 1), NULL, 10),
               strtoll(PQgetvalue(res, 0, 2), NULL, 10), strtoll(PQgetvalue(res, 0, 3), NULL, 10)};
    PQclear(res);
    return b;
}

/* The balance the transfer rows imply, computed without the engine: posted
 * is single + post, pending is pending minus its post or void. A resolution
 * row carries its pending transfer's accounts. */
static bal_t bal_from_rows(const char *account)
{
    const char *p[1] = {account};
    PGresult *res;
    assert_int_equal(
        lv_pg_query(g_pg, &res,
                    "SELECT "
                    "coalesce(sum(amount_fen) FILTER (WHERE debit_account = $1 AND phase IN "
                    "('single', 'post')), 0), "
                    "coalesce(sum(amount_fen) FILTER (WHERE credit_account = $1 AND phase IN "
                    "('single', 'post')), 0), "
                    "coalesce(sum(amount_fen) FILTER (WHERE debit_account = $1 AND phase = "
                    "'pending'), 0) - coalesce(sum(amount_fen) FILTER (WHERE debit_account = $1 "
                    "AND phase IN ('post', 'void')), 0), "
                    "coalesce(sum(amount_fen) FILTER (WHERE credit_account = $1 AND phase = "
                    "'pending'), 0) - coalesce(sum(amount_fen) FILTER (WHERE credit_account = $1 "
                    "AND phase IN ('post', 'void')), 0) "
                    "FROM transfer WHERE debit_account = $1 OR credit_account = $1",
                    1, p),
        0);
    bal_t b = {strtoll(PQgetvalue(res, 0, 0), NULL, 10), strtoll(PQgetvalue(res, 0, 1), NULL, 10),
               strtoll(PQgetvalue(res, 0, 2), NULL, 10), strtoll(PQgetvalue(res, 0, 3), NULL, 10)};
    PQclear(res);
    return b;
}

static bool bal_equal(bal_t a, bal_t b)
{
    return a.debits_posted == b.debits_posted && a.credits_posted == b.credits_posted &&
           a.debits_pending == b.debits_pending && a.credits_pending == b.credits_pending;
}

/* Asserts the account's four columns, and that they are what its transfer
 * rows add up to. A macro so a failure names the caller's line. */
#define CHECK_BAL(acct, dp, cp, dpend, cpend) check_bal(__LINE__, (acct), (dp), (cp), (dpend), (cpend))

static void check_bal(int line, const char *account, int64_t dp, int64_t cp, int64_t dpend,
                      int64_t cpend)
{
    bal_t want = {dp, cp, dpend, cpend};
    bal_t got = bal_columns(account);
    bal_t rows = bal_from_rows(account);
    if (!bal_equal(got, want) || !bal_equal(got, rows))
        print_error("line %d, account %s: columns dp=%lld cp=%lld dpend=%lld cpend=%lld, "
                    "expected %lld %lld %lld %lld, transfer rows add up to %lld %lld %lld %lld\n",
                    line, account, (long long)got.debits_posted, (long long)got.credits_posted,
                    (long long)got.debits_pending, (long long)got.credits_pending, (long long)dp,
                    (long long)cp, (long long)dpend, (long long)cpend,
                    (long long)rows.debits_posted, (long long)rows.credits_posted,
                    (long long)rows.debits_pending, (long long)rows.credits_pending);
    assert_true(bal_equal(got, want));
    assert_true(bal_equal(got, rows));
}

/* Transfers whose id starts with prefix. */
static int64_t count_transfers(const char *prefix)
{
    const char *p[1] = {prefix};
    return sql_i64("SELECT count(*) FROM transfer WHERE left(transfer_id, length($1)) = $1", 1, p);
}

static bool transfer_exists(const char *id)
{
    const char *p[1] = {id};
    return sql_i64("SELECT count(*) FROM transfer WHERE transfer_id = $1", 1, p) == 1;
}

/* Asserts one stored transfer row. pending_id NULL means the column is NULL. */
#define CHECK_ROW(id, phase, debit, credit, amount, pending_id)                                   \
    check_row(__LINE__, (id), (phase), (debit), (credit), (amount), (pending_id))

static void check_row(int line, const char *id, const char *phase, const char *debit,
                      const char *credit, int64_t amount, const char *pending_id)
{
    const char *p[1] = {id};
    PGresult *res;
    assert_int_equal(lv_pg_query(g_pg, &res,
                                 "SELECT phase, debit_account, credit_account, amount_fen, "
                                 "pending_id FROM transfer WHERE transfer_id = $1",
                                 1, p),
                     0);
    if (PQntuples(res) != 1)
        print_error("line %d: no transfer row %s\n", line, id);
    assert_int_equal(PQntuples(res), 1);
    bool ok = !strcmp(PQgetvalue(res, 0, 0), phase) && !strcmp(PQgetvalue(res, 0, 1), debit) &&
              !strcmp(PQgetvalue(res, 0, 2), credit) &&
              strtoll(PQgetvalue(res, 0, 3), NULL, 10) == amount &&
              (pending_id ? !strcmp(PQgetvalue(res, 0, 4), pending_id) : PQgetisnull(res, 0, 4));
    if (!ok)
        print_error("line %d: transfer %s is %s %s -> %s %s pending_id=%s\n", line, id,
                    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                    PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
    PQclear(res);
    assert_true(ok);
}

/* -- fixtures --------------------------------------------------------------- */

static void make_account(const char *id, const char *kind, int flags)
{
    char fl[8];
    snprintf(fl, sizeof fl, "%d", flags);
    const char *p[3] = {id, kind, fl};
    sql_ok("INSERT INTO account (account_id, name, kind, flags) VALUES ($1, $1, $2, $3::int)", 3, p);
}

static const char *fx_id(const fx_t *f, char *buf, const char *suffix)
{
    snprintf(buf, ID_MAX, "%s-%s", f->prefix, suffix);
    return buf;
}

static snap_t snap(const fx_t *f)
{
    snap_t s = {bal_columns(f->fund), bal_columns(f->source), bal_columns(f->payable),
                count_transfers(f->prefix)};
    return s;
}

#define CHECK_UNCHANGED(f, before) check_unchanged(__LINE__, (f), (before))

static void check_unchanged(int line, const fx_t *f, snap_t before)
{
    snap_t now = snap(f);
    bool same = bal_equal(now.fund, before.fund) && bal_equal(now.source, before.source) &&
                bal_equal(now.payable, before.payable) && now.transfers == before.transfers;
    if (!same)
        print_error("line %d: a refused transfer changed the ledger (transfers %lld -> %lld)\n",
                    line, (long long)before.transfers, (long long)now.transfers);
    assert_true(same);
}

static led_transfer_t single(const char *id, const char *debit, const char *credit, int64_t fen)
{
    led_transfer_t t = {.id = id, .debit = debit, .credit = credit, .kind = "allocation",
                        .amount_fen = fen, .phase = LED_SINGLE, .now_ms = NOW_MS};
    return t;
}

static led_transfer_t pending(const char *id, const char *debit, const char *credit, int64_t fen,
                              int64_t expires_ms)
{
    led_transfer_t t = {.id = id, .debit = debit, .credit = credit, .kind = "payout",
                        .amount_fen = fen, .phase = LED_PENDING, .expires_ms = expires_ms,
                        .now_ms = NOW_MS};
    return t;
}

static led_transfer_t resolve(led_phase_t phase, const char *id, const char *pending_id,
                              int64_t fen, int64_t now_ms)
{
    led_transfer_t t = {.id = id, .kind = "payout", .pending_id = pending_id, .amount_fen = fen,
                        .phase = phase, .now_ms = now_ms};
    return t;
}

/* Applies t in the open transaction. A refusal must say why in err. */
static int apply_in(const led_transfer_t *t)
{
    char err[256] = "untouched";
    int rc = led_transfer_apply(g_pg, t, err, sizeof err);
    if (rc == 0)
        assert_string_equal(err, "");
    if (rc == LV_EDUP || rc == LV_EINVAL || rc == LV_ESTATE) {
        if (!err[0] || !strcmp(err, "untouched"))
            print_error("transfer %s refused (%d) without a reason\n", t->id ? t->id : "(null)", rc);
        assert_true(err[0] && strcmp(err, "untouched") != 0);
    }
    return rc;
}

/* Applies t in a transaction of its own and commits it whatever the outcome:
 * the commit must succeed, so a refusal left the transaction usable. */
static int apply_tx(const led_transfer_t *t)
{
    assert_int_equal(lv_pg_begin(g_pg), 0);
    int rc = apply_in(t);
    assert_int_equal(lv_pg_commit(g_pg), 0);
    return rc;
}

#define EXPECT_RC(call, want)                                                                      \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != (want))                                                                         \
            print_error("line %d: %s returned %d (%s), expected %d (%s)\n", __LINE__, #call, rc_,  \
                        lv_strerror(rc_), (int)(want), lv_strerror(want));                         \
        assert_int_equal(rc_, (want));                                                             \
    } while (0)

/* Creates the three accounts and puts opening_fen into the fund from the
 * source (skipped when 0). */
static void fx_open(fx_t *f, const char *test, int64_t opening_fen)
{
    snprintf(f->prefix, sizeof f->prefix, "%s-%ld", test, (long)getpid());
    snprintf(f->fund, sizeof f->fund, "%s-fund", f->prefix);
    snprintf(f->source, sizeof f->source, "%s-source", f->prefix);
    snprintf(f->payable, sizeof f->payable, "%s-payable", f->prefix);
    make_account(f->fund, "fund", 1);
    make_account(f->source, "source", 0);
    make_account(f->payable, "payable", 0);
    if (opening_fen > 0) {
        char id[ID_MAX];
        led_transfer_t t = single(fx_id(f, id, "open"), f->source, f->fund, opening_fen);
        t.kind = "opening";
        EXPECT_RC(apply_tx(&t), 0);
        CHECK_BAL(f->fund, 0, opening_fen, 0, 0);
        CHECK_BAL(f->source, opening_fen, 0, 0, 0);
    }
}

/* -- 1. single transfers and idempotency ---------------------------------- */

static void test_single_and_idempotency(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "single", 10000);
    char t1[ID_MAX], t2[ID_MAX], t3[ID_MAX];
    fx_id(&f, t1, "t1");
    fx_id(&f, t2, "t2");
    fx_id(&f, t3, "t3");
    led_transfer_t a = single(t1, f.fund, f.payable, 2500);

    assert_int_equal(lv_pg_begin(g_pg), 0);
    EXPECT_RC(apply_in(&a), 0);
    CHECK_BAL(f.fund, 2500, 10000, 0, 0);
    CHECK_BAL(f.payable, 0, 2500, 0, 0);
    snap_t s = snap(&f);

    /* The same id and content again: a duplicate, no effect. */
    EXPECT_RC(apply_in(&a), LV_EDUP);
    CHECK_UNCHANGED(&f, s);

    /* The same id with other content: an error, no effect. */
    led_transfer_t other = a;
    other.amount_fen = 2600;
    EXPECT_RC(apply_in(&other), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);
    other = a;
    other.credit = f.source;
    EXPECT_RC(apply_in(&other), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);
    other = a;
    other.debit = f.source;
    other.credit = f.fund;
    EXPECT_RC(apply_in(&other), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);
    other = a;
    other.kind = "correction";
    EXPECT_RC(apply_in(&other), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);
    other = pending(t1, f.fund, f.payable, 2500, 0);
    other.kind = a.kind;
    EXPECT_RC(apply_in(&other), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);

    /* The refusals rolled back to their savepoint: the transaction goes on. */
    led_transfer_t b = single(t2, f.fund, f.payable, 1000);
    EXPECT_RC(apply_in(&b), 0);
    assert_int_equal(lv_pg_commit(g_pg), 0);

    CHECK_BAL(f.fund, 3500, 10000, 0, 0);
    CHECK_BAL(f.payable, 0, 3500, 0, 0);
    CHECK_BAL(f.source, 10000, 0, 0, 0);
    assert_int_equal(count_transfers(f.prefix), 3);
    CHECK_ROW(t1, "single", f.fund, f.payable, 2500, NULL);
    CHECK_ROW(t2, "single", f.fund, f.payable, 1000, NULL);

    /* After the commit the id is still taken, in a new transaction too. */
    s = snap(&f);
    EXPECT_RC(apply_tx(&a), LV_EDUP);
    CHECK_UNCHANGED(&f, s);
    other = a;
    other.amount_fen = 1;
    EXPECT_RC(apply_tx(&other), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);

    /* The engine works inside the caller's transaction: a rollback undoes it. */
    assert_int_equal(lv_pg_begin(g_pg), 0);
    led_transfer_t c = single(t3, f.fund, f.payable, 500);
    EXPECT_RC(apply_in(&c), 0);
    lv_pg_rollback(g_pg);
    CHECK_UNCHANGED(&f, s);
    assert_false(transfer_exists(t3));
}

/* -- 2. overdraw --------------------------------------------------------- */

static void test_overdraw(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "overdraw", 1000);
    char id[ID_MAX];

    snap_t s = snap(&f);
    led_transfer_t over = single(fx_id(&f, id, "over"), f.fund, f.payable, 1001);
    EXPECT_RC(apply_tx(&over), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    assert_false(transfer_exists(over.id));

    /* Exactly to zero is allowed. */
    char exact[ID_MAX];
    led_transfer_t all = single(fx_id(&f, exact, "exact"), f.fund, f.payable, 1000);
    EXPECT_RC(apply_tx(&all), 0);
    CHECK_BAL(f.fund, 1000, 1000, 0, 0);
    CHECK_BAL(f.payable, 0, 1000, 0, 0);
    CHECK_ROW(exact, "single", f.fund, f.payable, 1000, NULL);

    /* Not one fen more. */
    s = snap(&f);
    led_transfer_t one = single(fx_id(&f, id, "one"), f.fund, f.payable, 1);
    EXPECT_RC(apply_tx(&one), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    led_transfer_t res = pending(fx_id(&f, id, "one-pending"), f.fund, f.payable, 1, 0);
    EXPECT_RC(apply_tx(&res), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);

    /* A source (flag 0) may have debits above its credits, without limit. */
    char big[ID_MAX];
    led_transfer_t src = single(fx_id(&f, big, "source-big"), f.source, f.payable, 500000000);
    EXPECT_RC(apply_tx(&src), 0);
    CHECK_BAL(f.source, 500001000, 0, 0, 0);
    CHECK_BAL(f.payable, 0, 500001000, 0, 0);

    /* A payable (flag 0) may pay out more than it received. */
    char back[ID_MAX];
    led_transfer_t pay = single(fx_id(&f, back, "payable-out"), f.payable, f.source, 600000000);
    EXPECT_RC(apply_tx(&pay), 0);
    CHECK_BAL(f.payable, 600000000, 500001000, 0, 0);
    CHECK_BAL(f.source, 500001000, 600000000, 0, 0);
    CHECK_BAL(f.fund, 1000, 1000, 0, 0);
}

/* -- 3. pending, then post ------------------------------------------------ */

static void test_pending_post(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "post", 10000);
    char a[ID_MAX], b[ID_MAX], c[ID_MAX], post_a[ID_MAX], id[ID_MAX];
    fx_id(&f, a, "a");
    fx_id(&f, b, "b");
    fx_id(&f, c, "c");
    fx_id(&f, post_a, "post-a");

    led_transfer_t pa = pending(a, f.fund, f.payable, 6000, 0);
    EXPECT_RC(apply_tx(&pa), 0);
    CHECK_BAL(f.fund, 0, 10000, 6000, 0);
    CHECK_BAL(f.payable, 0, 0, 0, 6000);
    CHECK_ROW(a, "pending", f.fund, f.payable, 6000, NULL);

    /* The reservation counts against the fund: 4000 is left. */
    snap_t s = snap(&f);
    led_transfer_t pb = pending(b, f.fund, f.payable, 4001, 0);
    EXPECT_RC(apply_tx(&pb), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    led_transfer_t sb = single(fx_id(&f, id, "single-over"), f.fund, f.payable, 4001);
    EXPECT_RC(apply_tx(&sb), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);

    led_transfer_t pc = pending(c, f.fund, f.payable, 4000, 0);
    EXPECT_RC(apply_tx(&pc), 0);
    CHECK_BAL(f.fund, 0, 10000, 10000, 0);
    CHECK_BAL(f.payable, 0, 0, 0, 10000);

    /* Post A (amount 0 means the pending amount): pending becomes posted on
     * both sides. The accounts given with a post are ignored. */
    led_transfer_t post = resolve(LED_POST, post_a, a, 0, NOW_MS);
    post.debit = f.source;
    post.credit = f.source;
    EXPECT_RC(apply_tx(&post), 0);
    CHECK_BAL(f.fund, 6000, 10000, 4000, 0);
    CHECK_BAL(f.payable, 0, 6000, 0, 4000);
    CHECK_BAL(f.source, 10000, 0, 0, 0);
    CHECK_ROW(post_a, "post", f.fund, f.payable, 6000, a);

    /* The same post again is a duplicate; a second post or a void of A is refused. */
    s = snap(&f);
    EXPECT_RC(apply_tx(&post), LV_EDUP);
    CHECK_UNCHANGED(&f, s);
    led_transfer_t again = resolve(LED_POST, fx_id(&f, id, "post-a-again"), a, 0, NOW_MS);
    EXPECT_RC(apply_tx(&again), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    led_transfer_t void_a = resolve(LED_VOID, fx_id(&f, id, "void-a"), a, 0, NOW_MS);
    EXPECT_RC(apply_tx(&void_a), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);

    /* A post must take the whole reservation. */
    led_transfer_t part = resolve(LED_POST, fx_id(&f, id, "post-c-part"), c, 3999, NOW_MS);
    EXPECT_RC(apply_tx(&part), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);
    part.amount_fen = 4001;
    EXPECT_RC(apply_tx(&part), LV_EINVAL);
    CHECK_UNCHANGED(&f, s);

    /* Posting C by its exact amount works. */
    char post_c[ID_MAX];
    led_transfer_t pcx = resolve(LED_POST, fx_id(&f, post_c, "post-c"), c, 4000, NOW_MS);
    EXPECT_RC(apply_tx(&pcx), 0);
    CHECK_BAL(f.fund, 10000, 10000, 0, 0);
    CHECK_BAL(f.payable, 0, 10000, 0, 0);
    CHECK_ROW(post_c, "post", f.fund, f.payable, 4000, c);
    assert_int_equal(count_transfers(f.prefix), 5);
}

/* -- 4. pending, then void ------------------------------------------------ */

static void test_pending_void(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "void", 10000);
    char a[ID_MAX], void_a[ID_MAX], id[ID_MAX];
    fx_id(&f, a, "a");
    fx_id(&f, void_a, "void-a");

    led_transfer_t pa = pending(a, f.fund, f.payable, 7000, 0);
    EXPECT_RC(apply_tx(&pa), 0);
    CHECK_BAL(f.fund, 0, 10000, 7000, 0);
    CHECK_BAL(f.payable, 0, 0, 0, 7000);

    snap_t s = snap(&f);
    led_transfer_t big = single(fx_id(&f, id, "big-before"), f.fund, f.payable, 3001);
    EXPECT_RC(apply_tx(&big), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);

    led_transfer_t v = resolve(LED_VOID, void_a, a, 0, NOW_MS);
    EXPECT_RC(apply_tx(&v), 0);
    CHECK_BAL(f.fund, 0, 10000, 0, 0);
    CHECK_BAL(f.payable, 0, 0, 0, 0);
    CHECK_ROW(void_a, "void", f.fund, f.payable, 7000, a);

    /* Post after void, a second void: refused. The same void again: a duplicate. */
    s = snap(&f);
    led_transfer_t post = resolve(LED_POST, fx_id(&f, id, "post-a"), a, 0, NOW_MS);
    EXPECT_RC(apply_tx(&post), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    led_transfer_t v2 = resolve(LED_VOID, fx_id(&f, id, "void-a-again"), a, 0, NOW_MS);
    EXPECT_RC(apply_tx(&v2), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    EXPECT_RC(apply_tx(&v), LV_EDUP);
    CHECK_UNCHANGED(&f, s);

    /* The reservation is released: the whole fund can be spent. */
    char all[ID_MAX];
    led_transfer_t spend = single(fx_id(&f, all, "all"), f.fund, f.payable, 10000);
    EXPECT_RC(apply_tx(&spend), 0);
    CHECK_BAL(f.fund, 10000, 10000, 0, 0);
    CHECK_BAL(f.payable, 0, 10000, 0, 0);
    assert_int_equal(count_transfers(f.prefix), 4);
}

/* -- 5. timeout ----------------------------------------------------------- */

/* Whether id is among led_expired(now_ms), and its position there. */
static int expired_position(int64_t now_ms, const char *id)
{
    PGresult *res = NULL;
    assert_int_equal(led_expired(g_pg, now_ms, 100000, &res), 0);
    assert_non_null(res);
    int pos = -1;
    for (int i = 0; i < PQntuples(res) && pos < 0; i++)
        if (!strcmp(PQgetvalue(res, i, 0), id))
            pos = i;
    PQclear(res);
    return pos;
}

static void test_timeout(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "timeout", 10000);
    char early[ID_MAX], late[ID_MAX], never[ID_MAX], live[ID_MAX], id[ID_MAX];
    fx_id(&f, early, "early");
    fx_id(&f, late, "late");
    fx_id(&f, never, "never");
    fx_id(&f, live, "live");

    led_transfer_t pe = pending(early, f.fund, f.payable, 1000, NOW_MS + 1000);
    led_transfer_t pl = pending(late, f.fund, f.payable, 2000, NOW_MS + 2000);
    led_transfer_t pn = pending(never, f.fund, f.payable, 3000, 0);
    led_transfer_t pv = pending(live, f.fund, f.payable, 4000, NOW_MS + 3600000);
    EXPECT_RC(apply_tx(&pe), 0);
    EXPECT_RC(apply_tx(&pl), 0);
    EXPECT_RC(apply_tx(&pn), 0);
    EXPECT_RC(apply_tx(&pv), 0);
    CHECK_BAL(f.fund, 0, 10000, 10000, 0);
    CHECK_BAL(f.payable, 0, 0, 0, 10000);

    /* Before the deadline nothing of ours has lapsed. */
    assert_int_equal(expired_position(NOW_MS, early), -1);
    assert_int_equal(expired_position(NOW_MS + 999, early), -1);

    /* After it, a post is refused and changes nothing. */
    int64_t later = NOW_MS + 5000;
    snap_t s = snap(&f);
    led_transfer_t post = resolve(LED_POST, fx_id(&f, id, "post-early"), early, 0, later);
    EXPECT_RC(apply_tx(&post), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);
    post.now_ms = NOW_MS + 1000; /* the deadline itself is too late */
    EXPECT_RC(apply_tx(&post), LV_ESTATE);
    CHECK_UNCHANGED(&f, s);

    /* led_expired lists the lapsed ones, oldest first, and not the others. */
    int pe_pos = expired_position(later, early), pl_pos = expired_position(later, late);
    assert_true(pe_pos >= 0);
    assert_true(pl_pos > pe_pos);
    assert_int_equal(expired_position(later, never), -1);
    assert_int_equal(expired_position(later, live), -1);
    PGresult *res = NULL;
    assert_int_equal(led_expired(g_pg, later, 1, &res), 0);
    assert_true(PQntuples(res) <= 1);
    PQclear(res);

    /* Voiding a lapsed reservation works and releases the money. */
    char void_early[ID_MAX];
    led_transfer_t v = resolve(LED_VOID, fx_id(&f, void_early, "void-early"), early, 0, later);
    EXPECT_RC(apply_tx(&v), 0);
    CHECK_BAL(f.fund, 0, 10000, 9000, 0);
    CHECK_BAL(f.payable, 0, 0, 0, 9000);
    CHECK_ROW(void_early, "void", f.fund, f.payable, 1000, early);
    assert_int_equal(expired_position(later, early), -1);
    assert_true(expired_position(later, late) >= 0);

    /* A reservation that has not lapsed can be posted. */
    char post_live[ID_MAX];
    led_transfer_t pl_post = resolve(LED_POST, fx_id(&f, post_live, "post-live"), live, 0, later);
    EXPECT_RC(apply_tx(&pl_post), 0);
    CHECK_BAL(f.fund, 4000, 10000, 5000, 0);
    CHECK_BAL(f.payable, 0, 4000, 0, 5000);
    assert_int_equal(count_transfers(f.prefix), 7);
}

/* A post that was applied in time and is submitted again after the deadline
 * (a redelivered command whose first ack was lost) is a duplicate: the
 * header promises LV_EDUP for the same id and content. */
static void test_post_retry_after_deadline(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "postretry", 10000);
    char a[ID_MAX], post_a[ID_MAX];
    fx_id(&f, a, "a");
    fx_id(&f, post_a, "post-a");
    led_transfer_t pa = pending(a, f.fund, f.payable, 2500, NOW_MS + 1000);
    EXPECT_RC(apply_tx(&pa), 0);
    led_transfer_t post = resolve(LED_POST, post_a, a, 0, NOW_MS);
    EXPECT_RC(apply_tx(&post), 0);
    CHECK_BAL(f.fund, 2500, 10000, 0, 0);
    CHECK_BAL(f.payable, 0, 2500, 0, 0);

    snap_t s = snap(&f);
    post.now_ms = NOW_MS + 60000;
    EXPECT_RC(apply_tx(&post), LV_EDUP);
    CHECK_UNCHANGED(&f, s);
}

/* -- 6. malformed transfers ------------------------------------------------ */

static void test_malformed(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "malformed", 10000);
    char a[ID_MAX], s1[ID_MAX], id[ID_MAX], nobody[ID_MAX];
    fx_id(&f, a, "a");
    fx_id(&f, s1, "s1");
    fx_id(&f, nobody, "nobody");
    led_transfer_t pa = pending(a, f.fund, f.payable, 1000, 0);
    EXPECT_RC(apply_tx(&pa), 0);
    led_transfer_t single1 = single(s1, f.fund, f.payable, 100);
    EXPECT_RC(apply_tx(&single1), 0);
    CHECK_BAL(f.fund, 100, 10000, 1000, 0);

    snap_t s = snap(&f);
    /* All in one transaction: each refusal leaves it usable, and it commits. */
    assert_int_equal(lv_pg_begin(g_pg), 0);

    led_transfer_t t = single(fx_id(&f, id, "zero"), f.fund, f.payable, 0);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "negative"), f.fund, f.payable, -5);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = pending(fx_id(&f, id, "pending-zero"), f.fund, f.payable, 0, 0);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "self"), f.fund, f.fund, 10);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = pending(fx_id(&f, id, "pending-self"), f.payable, f.payable, 10, 0);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "no-debit"), NULL, f.payable, 10);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "no-credit"), f.fund, NULL, 10);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(NULL, f.fund, f.payable, 10);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single("", f.fund, f.payable, 10);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "no-kind"), f.fund, f.payable, 10);
    t.kind = NULL;
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "bad-phase"), f.fund, f.payable, 10);
    t.phase = (led_phase_t)7;
    EXPECT_RC(apply_in(&t), LV_EINVAL);

    /* A resolution must name its pending transfer, and only a resolution may. */
    t = resolve(LED_POST, fx_id(&f, id, "post-no-pending"), NULL, 0, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = resolve(LED_VOID, fx_id(&f, id, "void-no-pending"), NULL, 0, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = single(fx_id(&f, id, "single-with-pending"), f.fund, f.payable, 10);
    t.pending_id = a;
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = pending(fx_id(&f, id, "pending-with-pending"), f.fund, f.payable, 10, 0);
    t.pending_id = a;
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = resolve(LED_VOID, fx_id(&f, id, "void-part"), a, 999, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_EINVAL);
    t = resolve(LED_POST, fx_id(&f, id, "post-negative"), a, -1000, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_EINVAL);

    /* Refused for the state of the ledger: no such account, no such pending
     * transfer, a transfer that is not pending. */
    t = single(fx_id(&f, id, "unknown-debit"), nobody, f.payable, 10);
    EXPECT_RC(apply_in(&t), LV_ESTATE);
    t = single(fx_id(&f, id, "unknown-credit"), f.fund, nobody, 10);
    EXPECT_RC(apply_in(&t), LV_ESTATE);
    t = pending(fx_id(&f, id, "pending-unknown-credit"), f.fund, nobody, 10, 0);
    EXPECT_RC(apply_in(&t), LV_ESTATE);
    t = resolve(LED_POST, fx_id(&f, id, "post-unknown"), nobody, 0, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_ESTATE);
    t = resolve(LED_VOID, fx_id(&f, id, "void-unknown"), nobody, 0, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_ESTATE);
    t = resolve(LED_POST, fx_id(&f, id, "post-single"), s1, 0, NOW_MS);
    EXPECT_RC(apply_in(&t), LV_ESTATE);

    assert_int_equal(lv_pg_commit(g_pg), 0);
    CHECK_UNCHANGED(&f, s);
    CHECK_BAL(f.fund, 100, 10000, 1000, 0);
    CHECK_BAL(f.payable, 0, 100, 0, 1000);
    const char *p[1] = {nobody};
    assert_int_equal(sql_i64("SELECT count(*) FROM account WHERE account_id = $1", 1, p), 0);
}

/* An account id longer than the engine's internal buffers must not be cut
 * short: cut, it could name another account and move its money. */
static void test_long_account_id(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "longid", 0);
    char shorter[128], longer[ID_MAX], id[ID_MAX];
    int n = snprintf(shorter, sizeof shorter, "%s-", f.prefix);
    memset(shorter + n, 'x', 127 - (size_t)n);
    shorter[127] = '\0';
    snprintf(longer, sizeof longer, "%s-tail", shorter);
    make_account(shorter, "payable", 0);
    make_account(longer, "payable", 0);

    led_transfer_t t = single(fx_id(&f, id, "to-long"), f.source, longer, 500);
    int rc = apply_tx(&t);
    CHECK_BAL(shorter, 0, 0, 0, 0);
    if (rc == 0) {
        CHECK_BAL(longer, 0, 500, 0, 0);
        CHECK_BAL(f.source, 500, 0, 0, 0);
        CHECK_ROW(id, "single", f.source, longer, 500, NULL);
    } else {
        assert_true(rc == LV_EINVAL || rc == LV_ESTATE);
        CHECK_BAL(longer, 0, 0, 0, 0);
        CHECK_BAL(f.source, 0, 0, 0, 0);
        assert_false(transfer_exists(id));
    }
}

/* -- 7. immutability ------------------------------------------------------- */

static void expect_sql_refused(const char *sql, const char *id)
{
    assert_int_equal(lv_pg_begin(g_pg), 0);
    const char *p[1] = {id};
    PGresult *res = PQexecParams(g_pg, sql, 1, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    const char *msg = PQresultErrorMessage(res);
    if (st != PGRES_FATAL_ERROR)
        print_error("\"%s\" was allowed (%s)\n", sql, PQresStatus(st));
    assert_int_equal(st, PGRES_FATAL_ERROR);
    assert_non_null(strstr(msg, "immutable"));
    PQclear(res);
    lv_pg_rollback(g_pg);
}

static void test_immutable(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "immutable", 10000);
    char t1[ID_MAX], p1[ID_MAX];
    led_transfer_t a = single(fx_id(&f, t1, "t1"), f.fund, f.payable, 1234);
    EXPECT_RC(apply_tx(&a), 0);
    led_transfer_t b = pending(fx_id(&f, p1, "p1"), f.fund, f.payable, 100, 0);
    EXPECT_RC(apply_tx(&b), 0);
    snap_t s = snap(&f);

    expect_sql_refused("UPDATE transfer SET amount_fen = 1 WHERE transfer_id = $1", t1);
    expect_sql_refused("UPDATE transfer SET note = 'edited' WHERE transfer_id = $1", t1);
    expect_sql_refused("UPDATE transfer SET phase = 'void' WHERE transfer_id = $1", p1);
    expect_sql_refused("DELETE FROM transfer WHERE transfer_id = $1", t1);
    expect_sql_refused("DELETE FROM transfer WHERE transfer_id = $1", p1);

    CHECK_UNCHANGED(&f, s);
    CHECK_ROW(t1, "single", f.fund, f.payable, 1234, NULL);
    CHECK_ROW(p1, "pending", f.fund, f.payable, 100, NULL);
}

/* -- 8. races ---------------------------------------------------------------- */

typedef enum { RACE_SINGLE, RACE_PENDING, RACE_RESOLVE } race_mode_t;

/* One racer: its own connection; waits at the start line, then submits its
 * transfers, each in its own transaction, retrying transient failures. Its
 * exit code is how many it got applied, or 100 and up for a failure. */
static int race_child(const fx_t *f, race_mode_t mode, int child, int ready_fd, int go_fd)
{
    PGconn *pg = lv_pg_connect(g_conninfo, 10000);
    if (!pg)
        return 100;
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 0)
        return 101;
    int applied = 0;
    int count = mode == RACE_RESOLVE ? RACE_WINNERS : RACE_PER_CHILD;
    for (int i = 0; i < count; i++) {
        char id[ID_MAX], pid[ID_MAX];
        led_transfer_t t;
        if (mode == RACE_RESOLVE) {
            snprintf(pid, sizeof pid, "%s-race-p%d", f->prefix, i);
            snprintf(id, sizeof id, "%s-res-%d-%d", f->prefix, child, i);
            t = resolve((child + i) % 2 ? LED_POST : LED_VOID, id, pid, 0, NOW_MS);
        } else {
            snprintf(id, sizeof id, "%s-race-%d-%d", f->prefix, child, i);
            t = mode == RACE_SINGLE ? single(id, f->fund, f->payable, RACE_AMOUNT_FEN)
                                    : pending(id, f->fund, f->payable, RACE_AMOUNT_FEN, 0);
        }
        bool maybe_committed = false;
        for (int attempt = 0;; attempt++) {
            if (attempt == RACE_MAX_ATTEMPTS)
                return 102;
            if (lv_pg_ensure(pg) || lv_pg_begin(pg))
                continue;
            char err[256];
            int rc = led_transfer_apply(pg, &t, err, sizeof err);
            if (rc == LV_ETRANSIENT) {
                lv_pg_rollback(pg);
                continue;
            }
            int ce = lv_pg_commit(pg);
            if (ce == LV_ETRANSIENT) {
                /* The commit may have landed: a retry then sees a duplicate. */
                maybe_committed = rc == 0;
                continue;
            }
            if (ce)
                return 103;
            if (rc == 0 || (rc == LV_EDUP && maybe_committed))
                applied++;
            else if (rc != LV_ESTATE)
                return 104;
            break;
        }
    }
    PQfinish(pg);
    return applied;
}

/* Runs RACE_CHILDREN racers at once and returns how many transfers they got
 * applied in total. Meanwhile it watches that the fund never has debits
 * (posted and reserved) above its posted credits. */
static int race_run(const fx_t *f, race_mode_t mode)
{
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t kids[RACE_CHILDREN];
    for (int i = 0; i < RACE_CHILDREN; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            /* _exit: the child must not run cmocka's or libpq's exit paths on
             * the parent's connection. */
            _exit(race_child(f, mode, i, ready[1], go[0]));
        }
    }
    close(ready[1]);
    close(go[0]);
    char c;
    int at_start = 0;
    while (at_start < RACE_CHILDREN && read(ready[0], &c, 1) == 1)
        at_start++;
    close(ready[0]);
    close(go[1]); /* the start signal: every racer reads end of file at once */

    const char *p[1] = {f->fund};
    int done = 0, total = 0, failed = 0, samples = 0;
    bool kid_done[RACE_CHILDREN] = {false};
    while (done < RACE_CHILDREN) {
        int64_t slack = sql_i64("SELECT credits_posted - debits_posted - debits_pending FROM "
                                "account WHERE account_id = $1",
                                1, p);
        samples++;
        if (slack < 0)
            print_error("fund %s went negative: %lld\n", f->fund, (long long)slack);
        assert_true(slack >= 0);
        for (int i = 0; i < RACE_CHILDREN; i++) {
            int status;
            if (kid_done[i] || waitpid(kids[i], &status, WNOHANG) != kids[i])
                continue;
            kid_done[i] = true;
            done++;
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 200;
            if (code >= 100) {
                print_error("racer %d failed with code %d\n", i, code);
                failed++;
            } else {
                total += code;
            }
        }
    }
    assert_int_equal(at_start, RACE_CHILDREN);
    assert_int_equal(failed, 0);
    assert_true(samples > 0);
    return total;
}

static void test_race_single(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "racesingle", RACE_FUND_FEN);
    int won = race_run(&f, RACE_SINGLE);
    char race[ID_MAX];
    fx_id(&f, race, "race-");
    assert_int_equal(won, RACE_WINNERS);
    assert_int_equal(count_transfers(race), RACE_WINNERS);
    int64_t spent = RACE_WINNERS * RACE_AMOUNT_FEN;
    CHECK_BAL(f.fund, spent, RACE_FUND_FEN, 0, 0);
    CHECK_BAL(f.payable, 0, spent, 0, 0);
    assert_int_equal(RACE_FUND_FEN - spent, 100);
}

static void test_race_pending(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "racepending", RACE_FUND_FEN);
    int won = race_run(&f, RACE_PENDING);
    char race[ID_MAX];
    fx_id(&f, race, "race-");
    assert_int_equal(won, RACE_WINNERS);
    assert_int_equal(count_transfers(race), RACE_WINNERS);
    int64_t reserved = RACE_WINNERS * RACE_AMOUNT_FEN;
    CHECK_BAL(f.fund, 0, RACE_FUND_FEN, reserved, 0);
    CHECK_BAL(f.payable, 0, 0, 0, reserved);

    /* What is left is 100 fen: 101 more cannot be reserved, 100 can. */
    char id[ID_MAX];
    led_transfer_t t = pending(fx_id(&f, id, "after-101"), f.fund, f.payable, 101, 0);
    EXPECT_RC(apply_tx(&t), LV_ESTATE);
    t = pending(fx_id(&f, id, "after-100"), f.fund, f.payable, 100, 0);
    EXPECT_RC(apply_tx(&t), 0);
    CHECK_BAL(f.fund, 0, RACE_FUND_FEN, RACE_FUND_FEN, 0);
}

/* Every racer tries to resolve every one of the same pending transfers, half
 * of them by posting and half by voiding: each is resolved exactly once. */
static void test_race_resolve(void **state)
{
    (void)state;
    fx_t f;
    fx_open(&f, "raceresolve", RACE_FUND_FEN);
    char id[ID_MAX];
    for (int i = 0; i < RACE_WINNERS; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "race-p%d", i);
        led_transfer_t t = pending(fx_id(&f, id, suffix), f.fund, f.payable, RACE_AMOUNT_FEN, 0);
        EXPECT_RC(apply_tx(&t), 0);
    }
    int64_t reserved = RACE_WINNERS * RACE_AMOUNT_FEN;
    CHECK_BAL(f.fund, 0, RACE_FUND_FEN, reserved, 0);

    int won = race_run(&f, RACE_RESOLVE);
    assert_int_equal(won, RACE_WINNERS);
    char res[ID_MAX];
    fx_id(&f, res, "res-");
    assert_int_equal(count_transfers(res), RACE_WINNERS);
    const char *p[1] = {res};
    assert_int_equal(sql_i64("SELECT count(DISTINCT pending_id) FROM transfer WHERE "
                             "left(transfer_id, length($1)) = $1",
                             1, p),
                     RACE_WINNERS);
    int64_t posted = sql_i64("SELECT coalesce(sum(amount_fen), 0) FROM transfer WHERE "
                             "left(transfer_id, length($1)) = $1 AND phase = 'post'",
                             1, p);
    CHECK_BAL(f.fund, posted, RACE_FUND_FEN, 0, 0);
    CHECK_BAL(f.payable, 0, posted, 0, 0);
}

/* -- main -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    g_conninfo = getenv("LEVEE_PG");
    if (!g_conninfo || !*g_conninfo) {
        fprintf(stderr, "LEVEE_PG is not set: these tests need a real PostgreSQL "
                        "(run them through run_transfer.py)\n");
        return -1;
    }
    g_pg = lv_pg_connect(g_conninfo, 10000);
    return g_pg ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(g_pg);
    g_pg = NULL;
    return 0;
}

/* A failed assertion can leave a transaction open: close it before the next test. */
static int test_teardown(void **state)
{
    (void)state;
    if (g_pg && PQtransactionStatus(g_pg) != PQTRANS_IDLE)
        lv_pg_rollback(g_pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_single_and_idempotency, test_teardown),
        cmocka_unit_test_teardown(test_overdraw, test_teardown),
        cmocka_unit_test_teardown(test_pending_post, test_teardown),
        cmocka_unit_test_teardown(test_pending_void, test_teardown),
        cmocka_unit_test_teardown(test_timeout, test_teardown),
        cmocka_unit_test_teardown(test_post_retry_after_deadline, test_teardown),
        cmocka_unit_test_teardown(test_malformed, test_teardown),
        cmocka_unit_test_teardown(test_long_account_id, test_teardown),
        cmocka_unit_test_teardown(test_immutable, test_teardown),
        cmocka_unit_test_teardown(test_race_single, test_teardown),
        cmocka_unit_test_teardown(test_race_pending, test_teardown),
        cmocka_unit_test_teardown(test_race_resolve, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
