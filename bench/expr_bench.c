/* Rule-engine benchmark: evaluations per second of a policy version's full
 * rule set (scope, category, grade) per household on one core, through the
 * compiled expressions (lv_rules_decide) and, in the same run on the same
 * households, through the same rules written by hand in C
 * (bench/rules_baseline.h) as the baseline. Also times lv_rules_eval, which
 * adds the explanation text. Every decision of the engine is compared with
 * the baseline's; any difference fails the run (exit 1).
 *
 *   levee-bench-expr [--households N] [--runs R] [--policy FILE] [--seed S]
 *
 * The policy defaults to LEVEE_POLICY, else policy/default.json. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lv_rules.h"
#include "lv_time.h"
#include "rules_baseline.h"

#define MAX_RUNS 99

typedef struct {
    long households, runs;
    unsigned long long seed;
    const char *policy;
} opts_t;

static unsigned long long s_rng;

static unsigned long long next_rand(void)
{
    /* splitmix64: deterministic for a given seed. */
    unsigned long long z = (s_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t rnd(int64_t n)
{
    return (int64_t)(next_rand() % (unsigned long long)n);
}

/* Households spread around the edges the rules care about (line, poverty
 * line and watch line times members) and across the whole range, with no,
 * small and large rigid expenditure, both types and every house damage. */
static void generate(const lv_policy_version_t *v, lv_facts_t *f, long n)
{
    for (long i = 0; i < n; i++) {
        lv_facts_t h = {.members = 1 + (int)rnd(8), .exited = rnd(3) == 0,
                        .house_damage = rnd(10) ? LV_HOUSE_UNKNOWN : (lv_house_damage_t)(1 + rnd(4))};
        int64_t lm = v->income_line_fen * h.members;
        int64_t edges[3] = {lm, lm * v->poverty_num / v->poverty_den, lm * v->watch_num / v->watch_den};
        h.rigid_fen = rnd(2) ? 0 : rnd(3) ? rnd(300000) : rnd(5000000);
        h.income_fen = (rnd(2) ? edges[rnd(3)] + rnd(2001) - 1000 : rnd(lm * 3)) + h.rigid_fen;
        f[i] = h;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *xs, long n)
{
    qsort(xs, (size_t)n, sizeof *xs, cmp_double);
    return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.households = 1000000, .runs = 5, .seed = 7, .policy = getenv("LEVEE_POLICY")};
    if (!o->policy || !*o->policy)
        o->policy = "policy/default.json";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val)
            return -1;
        char *end;
        if (!strcmp(a, "--policy")) {
            o->policy = val;
        } else if (!strcmp(a, "--households")) {
            o->households = strtol(val, &end, 10);
            if (*end || o->households < 1 || o->households > 100000000)
                return -1;
        } else if (!strcmp(a, "--runs")) {
            o->runs = strtol(val, &end, 10);
            if (*end || o->runs < 1 || o->runs > MAX_RUNS)
                return -1;
        } else if (!strcmp(a, "--seed")) {
            o->seed = strtoull(val, &end, 10);
            if (*end)
                return -1;
        } else {
            return -1;
        }
        i++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: levee-bench-expr [--households N] [--runs R (1..99)] "
                        "[--policy FILE] [--seed S]\n");
        return 2;
    }
    char err[512];
    lv_policy_t *policy = lv_policy_load(o.policy, err, sizeof err);
    if (!policy) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const lv_policy_version_t *v = lv_policy_at(policy, lv_now_ms());
    if (!v) {
        fprintf(stderr, "no policy version in effect today in %s\n", o.policy);
        return 1;
    }
    s_rng = o.seed;
    long n = o.households;
    lv_facts_t *facts = malloc(sizeof *facts * (size_t)n);
    lv_decision_t *dec = malloc(sizeof *dec * (size_t)n);
    baseline_verdict_t *base = malloc(sizeof *base * (size_t)n);
    if (!facts || !dec || !base) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    generate(v, facts, n);
    long nexplain = n / 10 ? n / 10 : 1;
    printf("policy %s version %s; %ld households; %ld runs; one thread\n", o.policy, v->version, n,
           o.runs);
    printf("%-4s %16s %16s %8s %20s\n", "run", "baseline evals/s", "engine evals/s", "ratio",
           "engine+explain /s");

    double rb[MAX_RUNS], re[MAX_RUNS], rx[MAX_RUNS], ratio[MAX_RUNS];
    long faults = 0, differ = 0, counts[4] = {0};
    for (long r = 0; r < o.runs; r++) {
        double t0 = now_s();
        for (long i = 0; i < n; i++)
            baseline_decide(v, &facts[i], &base[i]);
        double t1 = now_s();
        for (long i = 0; i < n; i++)
            faults += lv_rules_decide(v, &facts[i], &dec[i]) != 0;
        double t2 = now_s();
        lv_verdict_t vd;
        for (long i = 0; i < nexplain; i++)
            faults += lv_rules_eval(v, &facts[i], &vd) != 0;
        double t3 = now_s();
        rb[r] = (double)n / (t1 - t0);
        re[r] = (double)n / (t2 - t1);
        rx[r] = (double)nexplain / (t3 - t2);
        ratio[r] = re[r] / rb[r];
        printf("%-4ld %16.0f %16.0f %7.2fx %20.0f\n", r + 1, rb[r], re[r], ratio[r], rx[r]);
    }
    for (long i = 0; i < n; i++) {
        const lv_decision_t *d = &dec[i];
        const baseline_verdict_t *b = &base[i];
        bool same = d->in_scope == b->in_scope && d->grade == b->grade &&
                    ((!d->category && !b->category) ||
                     (d->category && b->category && !strcmp(d->category, b->category)));
        differ += !same;
        counts[d->grade]++;
    }
    printf("median %11.0f %16.0f %7.2fx %20.0f\n", median(rb, o.runs), median(re, o.runs),
           median(ratio, o.runs), median(rx, o.runs));
    printf("grades: red %ld, orange %ld, yellow %ld, none %ld; decisions that differ from the "
           "baseline: %ld; faults: %ld\n",
           counts[LV_GRADE_RED], counts[LV_GRADE_ORANGE], counts[LV_GRADE_YELLOW],
           counts[LV_GRADE_NONE], differ, faults);
    free(facts);
    free(dec);
    free(base);
    lv_policy_destroy(&policy);
    return differ || faults ? 1 : 0;
}
