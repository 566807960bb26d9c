/* Ledger benchmark: many payouts across many funds, with contention, through
 * the batched path (led_transfer_batch, one transaction per batch) and, in
 * the same run and on the same database, through the one-at-a-time path
 * (led_transfer_apply, one transaction per transfer) as the baseline. Prints
 * transfers/s for both, their ratio, and the invariants afterwards.
 *
 *   levee-bench-ledger [--transfers N] [--funds F] [--batch B] [--workers W]
 *                      [--baseline N] [--payables P]
 *
 * Connects with LEVEE_PG. The funds hold about 90% of what the payouts ask
 * for, so funds run dry while workers race for their last fen. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lv_err.h"
#include "lv_pg.h"
#include "lv_time.h"
#include "transfer.h"

typedef struct {
    long transfers, funds, batch, workers, baseline, payables;
} opts_t;

static unsigned long long s_rng;

static unsigned long long next_rand(void)
{
    /* xorshift64*: deterministic for a given seed. */
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 2685821657736338717ULL;
}

static int64_t amount_of(void)
{
    return 10000 + (int64_t)(next_rand() % 490001); /* 100 .. 5,000 元 */
}

static int setup(PGconn *pg, const opts_t *o, const char *run)
{
    char funds[24], payables[24], opening[24];
    snprintf(funds, sizeof funds, "%ld", o->funds);
    snprintf(payables, sizeof payables, "%ld", o->payables);
    /* Mean payout 2,550 元; funds hold 90% of the batched demand. */
    snprintf(opening, sizeof opening, "%lld",
             (long long)(o->transfers * 255000LL / o->funds * 9 / 10));
    const char *p[3] = {run, funds, opening};
    int e = lv_pg_cmd(pg,
                      "INSERT INTO account (account_id, name, kind, flags, credits_posted) "
                      "SELECT 'fund:bench' || $1 || ':' || g, 'bench fund', 'fund', 1, $3::bigint "
                      "FROM generate_series(1, $2::int) g",
                      3, p);
    const char *q[2] = {run, payables};
    if (!e)
        e = lv_pg_cmd(pg,
                      "INSERT INTO account (account_id, name, kind) "
                      "SELECT 'payable:bench' || $1 || ':' || g, 'bench payable', 'payable' "
                      "FROM generate_series(1, $2::int) g",
                      2, q);
    /* The opening credits come from a source, as every credit must. */
    if (!e)
        e = lv_pg_cmd(pg,
                      "INSERT INTO account (account_id, name, kind, debits_posted) "
                      "VALUES ('source:bench' || $1, 'bench source', 'source', $2::bigint * $3::bigint)",
                      3, p);
    return e;
}

static void make(led_transfer_t *t, char *id, char *deb, char *cred, const opts_t *o,
                 const char *run, const char *tag, long i)
{
    snprintf(id, 64, "bench%s:%s:%ld", run, tag, i);
    snprintf(deb, 64, "fund:bench%s:%llu", run, next_rand() % (unsigned long long)o->funds + 1);
    snprintf(cred, 64, "payable:bench%s:%llu", run,
             next_rand() % (unsigned long long)o->payables + 1);
    *t = (led_transfer_t){.id = id, .debit = deb, .credit = cred, .kind = "payout",
                          .amount_fen = amount_of(), .phase = LED_SINGLE, .now_ms = lv_now_ms()};
}

/* One worker's share through the batched path. Exit status 0 on success. */
static int worker_batched(const char *conninfo, const opts_t *o, const char *run, int w)
{
    PGconn *pg = lv_pg_connect(conninfo, 10000);
    if (!pg)
        return 1;
    s_rng = 0x9E3779B97F4A7C15ULL * (unsigned long long)(w + 1);
    long share = o->transfers / o->workers + (w < o->transfers % o->workers);
    led_transfer_t *t = calloc((size_t)o->batch, sizeof *t);
    led_result_t *r = calloc((size_t)o->batch, sizeof *r);
    char(*ids)[3][64] = calloc((size_t)o->batch, sizeof *ids);
    if (!t || !r || !ids)
        return 1;
    char tag[16];
    snprintf(tag, sizeof tag, "w%d", w);
    for (long done = 0; done < share;) {
        long n = share - done < o->batch ? share - done : o->batch;
        for (long i = 0; i < n; i++)
            make(&t[i], ids[i][0], ids[i][1], ids[i][2], o, run, tag, done + i);
        for (int attempt = 0;; attempt++) {
            int e = lv_pg_begin(pg);
            if (!e)
                e = led_transfer_batch(pg, t, (size_t)n, r);
            if (!e)
                e = lv_pg_commit(pg);
            else
                lv_pg_rollback(pg);
            if (!e)
                break;
            if (e != LV_ETRANSIENT || attempt > 20) {
                fprintf(stderr, "worker %d: batch failed: %s\n", w, lv_strerror(e));
                return 1;
            }
            lv_pg_ensure(pg);
        }
        done += n;
    }
    PQfinish(pg);
    return 0;
}

static int baseline(PGconn *pg, const opts_t *o, const char *run)
{
    s_rng = 0xC0FFEE;
    char id[64], deb[64], cred[64], err[256];
    for (long i = 0; i < o->baseline; i++) {
        led_transfer_t t;
        make(&t, id, deb, cred, o, run, "base", i);
        int e = lv_pg_begin(pg);
        if (!e) {
            e = led_transfer_apply(pg, &t, err, sizeof err);
            if (e == LV_ESTATE)
                e = 0; /* refused for want of money: a result, not a failure */
        }
        if (!e)
            e = lv_pg_commit(pg);
        else
            lv_pg_rollback(pg);
        if (e) {
            fprintf(stderr, "baseline transfer failed: %s\n", lv_strerror(e));
            return 1;
        }
    }
    return 0;
}

static long arg(int argc, char **argv, const char *name, long dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || v <= 0) {
                fprintf(stderr, "%s needs a positive number\n", name);
                exit(2);
            }
            return v;
        }
    return dflt;
}

static int64_t scalar(PGconn *pg, const char *sql, const char *run)
{
    char out[64];
    const char *p[1] = {run};
    if (lv_pg_scalar(pg, out, sizeof out, sql, 1, p))
        return -1;
    return strtoll(out, NULL, 10);
}

int main(int argc, char **argv)
{
    opts_t o = {arg(argc, argv, "--transfers", 1000000), arg(argc, argv, "--funds", 1000),
                arg(argc, argv, "--batch", 2000),         arg(argc, argv, "--workers", 2),
                arg(argc, argv, "--baseline", 20000),     arg(argc, argv, "--payables", 100000)};
    const char *conninfo = getenv("LEVEE_PG");
    if (!conninfo) {
        fprintf(stderr, "LEVEE_PG is not set\n");
        return 2;
    }
    PGconn *pg = lv_pg_connect(conninfo, 10000);
    if (!pg)
        return 1;
    char run[24];
    snprintf(run, sizeof run, "%lld", (long long)(lv_now_ms() % 100000000));
    if (setup(pg, &o, run)) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    printf("ledger benchmark: %ld payouts over %ld funds and %ld households, batches of %ld, "
           "%ld workers; baseline %ld one-at-a-time transfers\n",
           o.transfers, o.funds, o.payables, o.batch, o.workers, o.baseline);
    fflush(stdout);

    int64_t t0 = lv_mono_ms();
    if (baseline(pg, &o, run))
        return 1;
    int64_t base_ms = lv_mono_ms() - t0;

    t0 = lv_mono_ms();
    for (int w = 0; w < o.workers; w++) {
        pid_t pid = fork();
        if (pid == 0) {
            PQfinish(pg); /* the child must not use the parent's connection */
            _exit(worker_batched(conninfo, &o, run, w));
        }
        if (pid < 0)
            return 1;
    }
    int failed = 0, status;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    int64_t batch_ms = lv_mono_ms() - t0;
    PQfinish(pg);
    pg = lv_pg_connect(conninfo, 10000);
    if (failed || !pg) {
        fprintf(stderr, "%d worker(s) failed\n", failed);
        return 1;
    }

    int64_t posted = scalar(pg, "SELECT count(*) FROM transfer WHERE transfer_id LIKE 'bench' || $1 || ':w%'", run);
    int64_t base_posted =
        scalar(pg, "SELECT count(*) FROM transfer WHERE transfer_id LIKE 'bench' || $1 || ':base:%'", run);
    int64_t unbalanced = scalar(pg,
                                "SELECT abs(sum(debits_posted) - sum(credits_posted)) FROM account "
                                "WHERE account_id LIKE '%bench' || $1 || '%'",
                                run);
    int64_t negative = scalar(pg,
                              "SELECT count(*) FROM account WHERE account_id LIKE 'fund:bench' || $1 "
                              "|| ':%' AND debits_posted + debits_pending > credits_posted",
                              run);
    int64_t dry = scalar(pg,
                         "SELECT count(*) FROM account WHERE account_id LIKE 'fund:bench' || $1 || ':%' "
                         "AND credits_posted - debits_posted < 500000",
                         run);
    int64_t mismatch = scalar(pg,
                              "SELECT count(*) FROM account a WHERE a.account_id LIKE 'fund:bench' || $1 "
                              "|| ':%' AND a.debits_posted <> coalesce((SELECT sum(amount_fen) FROM "
                              "transfer t WHERE t.debit_account = a.account_id), 0)",
                              run);
    double batch_rate = (double)o.transfers * 1000.0 / (double)(batch_ms ? batch_ms : 1);
    double base_rate = (double)o.baseline * 1000.0 / (double)(base_ms ? base_ms : 1);
    printf("baseline (one transaction per transfer): %ld transfers in %.2f s = %.0f transfers/s\n",
           o.baseline, base_ms / 1000.0, base_rate);
    printf("batched  (one transaction per %ld):      %ld transfers in %.2f s = %.0f transfers/s\n",
           o.batch, o.transfers, batch_ms / 1000.0, batch_rate);
    printf("ratio batched/baseline: %.1fx\n", batch_rate / base_rate);
    printf("posted %lld of %ld batched (the rest refused for want of money), %lld of %ld baseline; "
           "funds nearly dry (< 5,000 元 left): %lld of %ld\n",
           (long long)posted, o.transfers, (long long)base_posted, o.baseline, (long long)dry,
           o.funds);
    printf("invariants: |Σ debits − Σ credits| = %lld, funds below zero = %lld, funds whose debits "
           "differ from their transfers = %lld\n",
           (long long)unbalanced, (long long)negative, (long long)mismatch);
    PQfinish(pg);
    return unbalanced == 0 && negative == 0 && mismatch == 0 && posted > 0 ? 0 : 1;
}
