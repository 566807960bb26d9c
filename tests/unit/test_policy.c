/* lv_policy: the shipped policy file (policy/default.json, path from the
 * LEVEE_POLICY environment variable set by ctest), version selection by date,
 * the payout tables at every tier edge and cap, and load errors.
 *
 * Payout arithmetic (lv_policy.c): milli = sum over tiers of part x rate
 * (fen x permille), amount = (milli + 500) / 1000 (half up, once), then
 * min(amount, max(0, cap - already_paid)). Every expected value below shows
 * that arithmetic. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lv_policy.h"
#include "lv_rules.h"
#include "lv_time.h"

static const char *policy_path(void)
{
    const char *p = getenv("LEVEE_POLICY");
    if (!p || !*p)
        fail_msg("LEVEE_POLICY is not set (ctest sets it to policy/default.json)");
    return p;
}

/* The loaded shipped policy is the group state. */
static int group_setup(void **state)
{
    char err[512] = "";
    lv_policy_t *p = lv_policy_load(policy_path(), err, sizeof err);
    if (!p) {
        print_error("%s\n", err);
        return -1;
    }
    *state = p;
    return 0;
}

static int group_teardown(void **state)
{
    lv_policy_t *p = *state;
    lv_policy_destroy(&p);
    return 0;
}

static const lv_policy_version_t *current(void **state)
{
    const lv_policy_version_t *v = lv_policy_at(*state, lv_days_from_civil(2024, 6, 1) * LV_DAY_MS);
    assert_non_null(v);
    return v;
}

/* ---- temp files ------------------------------------------------------ */

/* Writes text to a new temp file; the caller unlinks it. */
static void write_temp(char path[64], const char *text)
{
    snprintf(path, 64, "/tmp/levee-test-policy.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The shipped file as a jansson tree, to mutate for the error cases. */
static json_t *shipped_json(void)
{
    json_error_t je;
    json_t *root = json_load_file(policy_path(), 0, &je);
    if (!root)
        fail_msg("%s line %d: %s", policy_path(), je.line, je.text);
    return root;
}

static json_t *version0(json_t *root)
{
    json_t *v = json_array_get(json_object_get(root, "versions"), 0);
    assert_non_null(v);
    return v;
}

/* Loads a mutated tree through a temp file; expects failure and returns the
 * message in err. */
static void expect_load_error(json_t *root, char *err, size_t errlen)
{
    char *text = json_dumps(root, JSON_INDENT(2));
    assert_non_null(text);
    char path[64];
    write_temp(path, text);
    free(text);
    err[0] = '\0';
    lv_policy_t *p = lv_policy_load(path, err, errlen);
    unlink(path);
    if (p)
        lv_policy_destroy(&p);
    assert_null(p);
    assert_true(strlen(err) > 0);
}

static void assert_has(const char *s, const char *needle)
{
    if (!strstr(s, needle))
        fail_msg("\"%s\" does not contain \"%s\"", s, needle);
}

static void assert_lacks(const char *s, const char *needle)
{
    if (strstr(s, needle))
        fail_msg("\"%s\" contains \"%s\"", s, needle);
}

/* ---- the shipped file ------------------------------------------------ */

static void test_shipped_values(void **state)
{
    const lv_policy_version_t *v = current(state);
    assert_string_equal(v->version, "2024.1");
    assert_int_equal(v->effective_ms, lv_days_from_civil(2024, 1, 1) * 86400000);
    assert_int_equal(v->income_line_fen, 520000); /* 5,200 元 */
    /* poverty line = line / 1.5 = line x 2/3; yellow watch = 1.2 x line. */
    assert_int_equal(v->poverty_num, 2);
    assert_int_equal(v->poverty_den, 3);
    assert_int_equal(v->watch_num, 6);
    assert_int_equal(v->watch_den, 5);
    assert_int_equal(v->rigid_window_days, 365);
    assert_int_equal(v->verification_due_days, 5);
    assert_int_equal(v->publicity_days, 5);
    assert_int_equal(v->identification_target_days, 15);
    assert_int_equal(v->recheck_rate_permille, 100);      /* 10% */
    assert_int_equal(v->recheck_tolerance_permille, 100); /* 10% of income */
    assert_int_equal(v->wage_drop_permille, 300);     /* 因务工就业不稳: down 30% or more */
    assert_int_equal(v->wage_prior_months, 6);         /* against the prior 6 months */
    assert_int_equal(v->elimination_months, 6);        /* 风险消除 after 6 months at least */
    assert_int_equal(v->elimination_min_measures, 1);
    assert_int_equal(v->relief_max_fen, 300000);           /* 3,000 元 per event */
    assert_int_equal(v->reservation_days, 30);
    assert_int_equal(v->nfunds, 1);
    assert_string_equal(v->funds[0].fund_id, "special");
    assert_string_equal(v->funds[0].name, "防贫帮困保障资金");
    assert_int_equal(v->funds[0].opening_fen, 450000000); /* 4,500,000 元 */
}

static void test_shipped_tiers(void **state)
{
    const lv_policy_version_t *v = current(state);
    /* 因病: 50% of 5,000-30,000, 60% of 30,000-60,000, 70% above; cap 100,000. */
    assert_int_equal(v->illness.ntiers, 3);
    assert_int_equal(v->illness.tiers[0].from_fen, 500000);
    assert_int_equal(v->illness.tiers[0].rate_permille, 500);
    assert_int_equal(v->illness.tiers[1].from_fen, 3000000);
    assert_int_equal(v->illness.tiers[1].rate_permille, 600);
    assert_int_equal(v->illness.tiers[2].from_fen, 6000000);
    assert_int_equal(v->illness.tiers[2].rate_permille, 700);
    assert_int_equal(v->illness.cap_fen, 10000000);
    /* 因灾: 50% above 2,000; cap 30,000. */
    assert_int_equal(v->disaster.ntiers, 1);
    assert_int_equal(v->disaster.tiers[0].from_fen, 200000);
    assert_int_equal(v->disaster.tiers[0].rate_permille, 500);
    assert_int_equal(v->disaster.cap_fen, 3000000);
    /* 因学: 50% above 2,000; cap 10,000. */
    assert_int_equal(v->education.ntiers, 1);
    assert_int_equal(v->education.tiers[0].from_fen, 200000);
    assert_int_equal(v->education.tiers[0].rate_permille, 500);
    assert_int_equal(v->education.cap_fen, 1000000);
}

/* ---- lv_policy_at ---------------------------------------------------- */

static void test_at_effective_date(void **state)
{
    const lv_policy_t *p = *state;
    int64_t eff = lv_days_from_civil(2024, 1, 1) * LV_DAY_MS;
    assert_null(lv_policy_at(p, eff - 1));                          /* 2023-12-31 23:59:59.999 */
    assert_null(lv_policy_at(p, lv_days_from_civil(2020, 5, 1) * LV_DAY_MS));
    const lv_policy_version_t *v = lv_policy_at(p, eff); /* the first millisecond */
    assert_non_null(v);
    assert_string_equal(v->version, "2024.1");
    v = lv_policy_at(p, lv_days_from_civil(2030, 1, 1) * LV_DAY_MS);
    assert_non_null(v);
    assert_string_equal(v->version, "2024.1");
}

/* Loads a (mutated) tree through a temp file; it must load. */
static lv_policy_t *load_tree(json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2));
    assert_non_null(text);
    char path[64], err[512] = "";
    write_temp(path, text);
    free(text);
    lv_policy_t *p = lv_policy_load(path, err, sizeof err);
    unlink(path);
    if (!p)
        fail_msg("%s", err);
    return p;
}

/* The shipped policy plus a copy of its version with another name, date
 * and income line. */
static lv_policy_t *with_second_version(const char *name, const char *from, int64_t line)
{
    json_t *root = shipped_json();
    json_t *v2 = json_deep_copy(version0(root));
    json_object_set_new(v2, "version", json_string(name));
    json_object_set_new(v2, "effective_from", json_string(from));
    json_object_set_new(v2, "income_line_fen", json_integer(line));
    json_array_append_new(json_object_get(root, "versions"), v2);
    lv_policy_t *p = load_tree(root);
    json_decref(root);
    return p;
}

/* A second version from 2025-07-01 takes over at its first millisecond. */
static void test_at_two_versions(void **state)
{
    (void)state;
    lv_policy_t *p = with_second_version("2025.2", "2025-07-01", 560000);
    int64_t t2 = lv_days_from_civil(2025, 7, 1) * LV_DAY_MS;
    assert_string_equal(lv_policy_at(p, t2 - 1)->version, "2024.1");
    assert_int_equal(lv_policy_at(p, t2 - 1)->income_line_fen, 520000);
    assert_string_equal(lv_policy_at(p, t2)->version, "2025.2");
    assert_int_equal(lv_policy_at(p, t2)->income_line_fen, 560000);
    assert_null(lv_policy_at(p, lv_days_from_civil(2024, 1, 1) * LV_DAY_MS - 1));
    lv_policy_destroy(&p);
    assert_null(p);
    lv_policy_destroy(&p); /* NULL-safe */
    lv_policy_destroy(NULL);
}

/* ---- payouts --------------------------------------------------------- */

static int64_t pay(const lv_payout_rule_t *r, int64_t basis, int64_t paid, char *explain, size_t n)
{
    return lv_payout_compute(r, basis, paid, explain, n);
}

static void test_illness_tiers(void **state)
{
    const lv_payout_rule_t *r = &current(state)->illness;
    char ex[1024];

    /* 5,000 元: nothing above the threshold -> 0. */
    assert_int_equal(pay(r, 500000, 0, ex, sizeof ex), 0);
    assert_string_equal(ex, "基数 5000.00 元; 合计 0.00 元");
    /* 5,000.01 元: part 1 fen x 500 = 500 milli-fen = 0.5 fen;
     * (500 + 500) / 1000 = 1 fen: half rounds up. */
    assert_int_equal(pay(r, 500001, 0, ex, sizeof ex), 1);
    /* 5,000.02 元: 2 x 500 = 1000 -> (1000 + 500) / 1000 = 1 fen. */
    assert_int_equal(pay(r, 500002, 0, ex, sizeof ex), 1);
    /* 5,000.03 元: 3 x 500 = 1500 (1.5 fen) -> (1500 + 500) / 1000 = 2 fen. */
    assert_int_equal(pay(r, 500003, 0, ex, sizeof ex), 2);
    /* 30,000 元: 2,500,000 fen x 500 = 1,250,000,000 -> 1,250,000 fen = 12,500 元. */
    assert_int_equal(pay(r, 3000000, 0, ex, sizeof ex), 1250000);
    assert_string_equal(ex, "基数 30000.00 元; 5000.00 元以上部分 25000.00 元 × 500‰; "
                            "合计 12500.00 元");
    /* 30,000.01 元: 1,250,000,000 + 1 x 600 = 1,250,000,600;
     * + 500 = 1,250,001,100; / 1000 = 1,250,001 fen (0.6 fen rounds up). */
    assert_int_equal(pay(r, 3000001, 0, ex, sizeof ex), 1250001);
    /* 60,000 元: 1,250,000,000 + 3,000,000 x 600 = 3,050,000,000
     * -> 3,050,000 fen = 12,500 + 18,000 = 30,500 元. */
    assert_int_equal(pay(r, 6000000, 0, ex, sizeof ex), 3050000);
    /* 60,000.01 元: 3,050,000,000 + 700 = 3,050,000,700 -> 3,050,001 fen. */
    assert_int_equal(pay(r, 6000001, 0, ex, sizeof ex), 3050001);
    /* 100,000 元: 3,050,000,000 + 4,000,000 x 700 = 5,850,000,000
     * -> 5,850,000 fen = 30,500 + 28,000 = 58,500 元. */
    assert_int_equal(pay(r, 10000000, 0, ex, sizeof ex), 5850000);
    assert_string_equal(ex, "基数 100000.00 元; 5000.00 元以上部分 25000.00 元 × 500‰; "
                            "30000.00 元以上部分 30000.00 元 × 600‰; "
                            "60000.00 元以上部分 40000.00 元 × 700‰; 合计 58500.00 元");
    assert_lacks(ex, "封顶");
    /* Nothing below the threshold and nothing for 0. */
    assert_int_equal(pay(r, 0, 0, ex, sizeof ex), 0);
    assert_int_equal(pay(r, 499999, 0, ex, sizeof ex), 0);
}

static void test_illness_cap(void **state)
{
    const lv_payout_rule_t *r = &current(state)->illness;
    char ex[1024];

    /* The cap is reached where 30,500 元 + 70% x (basis - 60,000) = 100,000 元,
     * i.e. basis = 159,285.714... 元.
     * 159,285.70 元: third part 9,928,570 fen x 700 = 6,949,999,000; total
     * 3,050,000,000 + 6,949,999,000 = 9,999,999,000; + 500 -> 9,999,999 fen. */
    assert_int_equal(pay(r, 15928570, 0, ex, sizeof ex), 9999999);
    assert_lacks(ex, "封顶");
    /* 159,285.71 元: 9,928,571 x 700 = 6,949,999,700; total 9,999,999,700;
     * + 500 = 10,000,000,200 -> 10,000,000 fen: exactly the cap, not over it. */
    assert_int_equal(pay(r, 15928571, 0, ex, sizeof ex), 10000000);
    assert_lacks(ex, "封顶");
    /* 159,285.72 元: 9,928,572 x 700 = 6,950,000,400; total 10,000,000,400;
     * + 500 = 10,000,000,900 -> 10,000,000 fen (0.4 fen rounds down): still
     * exactly the cap. */
    assert_int_equal(pay(r, 15928572, 0, ex, sizeof ex), 10000000);
    assert_lacks(ex, "封顶");
    /* 159,285.73 元: 9,928,573 x 700 = 6,950,001,100; total 10,000,001,100;
     * + 500 -> 10,000,001 fen > cap -> 10,000,000 fen, capped. */
    assert_int_equal(pay(r, 15928573, 0, ex, sizeof ex), 10000000);
    assert_has(ex, "合计 100000.01 元");
    assert_has(ex, "封顶");
    /* 1,000,000 元: 30,500 + 940,000 x 70% = 688,500 元 -> cap 100,000 元. */
    assert_int_equal(pay(r, 100000000, 0, ex, sizeof ex), 10000000);
    assert_has(ex, "合计 688500.00 元");
    assert_has(ex, "年度封顶 100000.00 元, 本次最多 100000.00 元");
}

static void test_illness_already_paid(void **state)
{
    const lv_payout_rule_t *r = &current(state)->illness;
    char ex[1024];

    /* 100,000 元 gives 58,500 元, but 90,000 元 was already paid this year:
     * room = 100,000 - 90,000 = 10,000 元. */
    assert_int_equal(pay(r, 10000000, 9000000, ex, sizeof ex), 1000000);
    assert_string_equal(ex, "基数 100000.00 元; 5000.00 元以上部分 25000.00 元 × 500‰; "
                            "30000.00 元以上部分 30000.00 元 × 600‰; "
                            "60000.00 元以上部分 40000.00 元 × 700‰; 合计 58500.00 元; "
                            "年度封顶 100000.00 元, 本次最多 10000.00 元");
    /* 60,000 元 gives 30,500 元; 50,000 元 paid leaves 50,000 元 of room: not capped. */
    assert_int_equal(pay(r, 6000000, 5000000, ex, sizeof ex), 3050000);
    assert_lacks(ex, "封顶");
    /* Exactly 30,500 元 of room: paid in full, not capped. */
    assert_int_equal(pay(r, 6000000, 10000000 - 3050000, ex, sizeof ex), 3050000);
    assert_lacks(ex, "封顶");
    /* One fen less room than the amount: capped at the room. */
    assert_int_equal(pay(r, 6000000, 10000000 - 3049999, ex, sizeof ex), 3049999);
    assert_has(ex, "封顶");
    /* Already at the cap: 0, and the explain says why. */
    assert_int_equal(pay(r, 10000000, 10000000, ex, sizeof ex), 0);
    assert_has(ex, "年度封顶 100000.00 元, 本次最多 0.00 元");
    /* Above the cap (120,000 元 paid): room is clamped at 0, never negative. */
    assert_int_equal(pay(r, 10000000, 12000000, ex, sizeof ex), 0);
    assert_has(ex, "本次最多 0.00 元");
    /* Below the threshold with the cap used up: 0 with nothing to cap. */
    assert_int_equal(pay(r, 400000, 12000000, ex, sizeof ex), 0);
    assert_lacks(ex, "封顶");
    /* A negative amount already paid (a reversal gone wrong) never widens
     * the room beyond the cap: 1,000,000 元 gives 688,500 元, capped at
     * 100,000 元, not 150,000 元. */
    assert_int_equal(pay(r, 100000000, -5000000, ex, sizeof ex), 10000000);
    /* A basis beyond any real amount is clamped instead of overflowing:
     * the cap still applies. A negative basis pays nothing. */
    assert_int_equal(pay(r, INT64_MAX / 2, 0, ex, sizeof ex), 10000000);
    assert_int_equal(pay(r, -100, 0, ex, sizeof ex), 0);
}

static void test_disaster(void **state)
{
    const lv_payout_rule_t *r = &current(state)->disaster;
    char ex[1024];

    /* 2,000 元: nothing above the threshold. */
    assert_int_equal(pay(r, 200000, 0, ex, sizeof ex), 0);
    /* 2,000.01 元: 1 x 500 = 500 -> (500 + 500) / 1000 = 1 fen. */
    assert_int_equal(pay(r, 200001, 0, ex, sizeof ex), 1);
    /* 10,000 元: 800,000 x 500 = 400,000,000 -> 400,000 fen = 4,000 元. */
    assert_int_equal(pay(r, 1000000, 0, ex, sizeof ex), 400000);
    /* 62,000 元: 6,000,000 x 500 = 3,000,000,000 -> 3,000,000 fen = the cap exactly. */
    assert_int_equal(pay(r, 6200000, 0, ex, sizeof ex), 3000000);
    assert_lacks(ex, "封顶");
    /* 62,000.01 元: 6,000,001 x 500 = 3,000,000,500; + 500 -> 3,000,001 fen
     * > 3,000,000 -> capped at 30,000 元. */
    assert_int_equal(pay(r, 6200001, 0, ex, sizeof ex), 3000000);
    assert_has(ex, "年度封顶 30000.00 元");
    /* 25,000 元 already paid: room 5,000 元 of the 4,000 元 due -> 4,000 元. */
    assert_int_equal(pay(r, 1000000, 2500000, ex, sizeof ex), 400000);
    /* 28,000 元 already paid: room 2,000 元 -> 2,000 元, capped. */
    assert_int_equal(pay(r, 1000000, 2800000, ex, sizeof ex), 200000);
    assert_has(ex, "本次最多 2000.00 元");
}

static void test_education(void **state)
{
    const lv_payout_rule_t *r = &current(state)->education;
    char ex[1024];

    /* 2,000 元 of (cost - aid): nothing. */
    assert_int_equal(pay(r, 200000, 0, ex, sizeof ex), 0);
    /* 2,000.01 元: 0.5 fen rounds up to 1 fen. */
    assert_int_equal(pay(r, 200001, 0, ex, sizeof ex), 1);
    /* 22,000 元: 2,000,000 x 500 = 1,000,000,000 -> 1,000,000 fen = the cap exactly. */
    assert_int_equal(pay(r, 2200000, 0, ex, sizeof ex), 1000000);
    assert_lacks(ex, "封顶");
    /* 22,000.01 元: 2,000,001 x 500 = 1,000,000,500; + 500 -> 1,000,001 fen
     * > 1,000,000 -> capped at 10,000 元. */
    assert_int_equal(pay(r, 2200001, 0, ex, sizeof ex), 1000000);
    assert_has(ex, "年度封顶 10000.00 元");
    /* 10,000 元 already paid: nothing more. */
    assert_int_equal(pay(r, 2200000, 1000000, ex, sizeof ex), 0);
    assert_has(ex, "本次最多 0.00 元");
}

/* A short explain buffer truncates; the amount does not change. */
/* The medical-assistance calculator's two tables (SPEC.md defaults): basic
 * pays 60% of compliant costs above 2,000 元, at most 80,000 元; tilted, for
 * monitoring objects, 60% above 4,500 元 with no cap. */
static void test_medical_assistance(void **state)
{
    const lv_policy_version_t *v = current(state);
    char ex[1024];
    /* 10,000 元: basic 0.6 x 8,000 = 4,800 元; tilted 0.6 x 5,500 = 3,300 元. */
    assert_int_equal(pay(&v->med_basic, 1000000, 0, ex, sizeof ex), 480000);
    assert_int_equal(pay(&v->med_tilted, 1000000, 0, ex, sizeof ex), 330000);
    /* 200,000 元: basic 0.6 x 198,000 = 118,800 → capped at 80,000 元;
     * tilted 0.6 x 195,500 = 117,300 元, no cap. */
    assert_int_equal(pay(&v->med_basic, 20000000, 0, ex, sizeof ex), 8000000);
    assert_has(ex, "封顶");
    assert_int_equal(pay(&v->med_tilted, 20000000, 0, ex, sizeof ex), 11730000);
    assert_lacks(ex, "封顶");
    /* At the thresholds: nothing. */
    assert_int_equal(pay(&v->med_basic, 200000, 0, ex, sizeof ex), 0);
    assert_int_equal(pay(&v->med_tilted, 450000, 0, ex, sizeof ex), 0);
}

static void test_explain_truncated(void **state)
{
    const lv_payout_rule_t *r = &current(state)->illness;
    char ex[16];
    memset(ex, 'x', sizeof ex);
    assert_int_equal(pay(r, 10000000, 0, ex, sizeof ex), 5850000);
    assert_int_equal(ex[sizeof ex - 1], '\0');
    assert_int_equal(pay(r, 10000000, 0, NULL, 0), 5850000);
}

/* ---- load errors ----------------------------------------------------- */

static void test_error_syntax(void **state)
{
    (void)state;
    /* The doubled comma on line 3 is the syntax error. */
    char path[64], err[512] = "";
    write_temp(path, "{\n"
                     "  \"versions\": [\n"
                     "    {\"version\": \"x\",, \"effective_from\": 1}\n"
                     "  ]\n"
                     "}\n");
    lv_policy_t *p = lv_policy_load(path, err, sizeof err);
    unlink(path);
    assert_null(p);
    assert_has(err, "策略文件错误 (policy error)");
    assert_has(err, path);
    assert_has(err, "line 3 column");
}

static void test_error_missing_file(void **state)
{
    (void)state;
    char err[512] = "";
    assert_null(lv_policy_load("/nonexistent/levee/policy.json", err, sizeof err));
    assert_has(err, "/nonexistent/levee/policy.json");
}

/* The line (1-based) of the first occurrence of needle in text; the test
 * finds it by searching, independently of the loader's key-path scan. */
static int line_of(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    if (!at)
        fail_msg("\"%s\" not found in the test's policy text", needle);
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

/* Loads text through a temp file; expects failure and returns the message
 * with the temp file's name replaced by FILE. */
static void expect_text_error(const char *text, char *err, size_t errlen)
{
    char path[64], raw[1024] = "";
    write_temp(path, text);
    lv_policy_t *p = lv_policy_load(path, raw, sizeof raw);
    unlink(path);
    if (p)
        lv_policy_destroy(&p);
    assert_null(p);
    const char *at = strstr(raw, path);
    assert_non_null(at);
    snprintf(err, errlen, "%.*sFILE%s", (int)(at - raw), raw, at + strlen(path));
}

/* The shipped file's text with one substring replaced. */
static char *shipped_text_with(const char *from, const char *to)
{
    FILE *f = fopen(policy_path(), "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, from);
    if (!at)
        fail_msg("\"%s\" is not in the shipped policy", from);
    size_t out_len = n - strlen(from) + strlen(to) + 1;
    char *out = malloc(out_len);
    assert_non_null(out);
    snprintf(out, out_len, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void test_error_missing_income_line(void **state)
{
    (void)state;
    char err[512];
    json_t *root = shipped_json();
    assert_int_equal(json_object_del(version0(root), "income_line_fen"), 0);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    /* A missing key is reported at the object that lacks it: the line of
     * versions[0]'s opening brace, the one before its first key. */
    char want[256];
    snprintf(want, sizeof want,
             "策略文件错误 (policy error) FILE line %d, at versions[0].income_line_fen: missing",
             line_of(text, "\"version\": \"2024.1\"") - 1);
    expect_text_error(text, err, sizeof err);
    free(text);
    assert_string_equal(err, want);
}

/* A wrong value deep in the shipped file is reported at its own line. */
static void test_error_line_of_value(void **state)
{
    (void)state;
    char err[512], want[256];
    char *text = shipped_text_with("{\"from_fen\": 6000000, \"rate_permille\": 700}",
                                   "{\"from_fen\": 6000000, \"rate_permille\": 7000}");
    expect_text_error(text, err, sizeof err);
    snprintf(want, sizeof want,
             "策略文件错误 (policy error) FILE line %d, at "
             "versions[0].payouts.illness.tiers[2].rate_permille: 7000 is out of range 0..1000",
             line_of(text, "7000}"));
    free(text);
    assert_string_equal(err, want);

    text = shipped_text_with("\"house_damage_red\": [\"严重\", \"倒塌\"]",
                             "\"house_damage_red\": [\"严重\", \"全毁\"]");
    expect_text_error(text, err, sizeof err);
    snprintf(want, sizeof want, "FILE line %d, at versions[0].house_damage_red[1]: ",
             line_of(text, "全毁"));
    free(text);
    assert_has(err, want);
}

/* Rule errors name the line of the rule's key, its path, the column in the
 * expression and what is wrong. */
static void test_error_rules(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *line_of, *want;
    } cases[] = {
        {"\"income - rigid < line * members\"}", "\"incme - rigid < line * members\"}", "incme",
         "at versions[0].rules.scope[0].when: 第 1 列 (column 1): 未知名称 (unknown name) \"incme\""},
        {"\"in_scope\", \"grade\": \"orange\"", "\"in_scope + 1\", \"grade\": \"orange\"",
         "in_scope + 1", "at versions[0].rules.grade[3].when: 第 1 列 (column 1): 类型错误 (type error): + 需要数值"},
        {"\"in_scope\", \"grade\": \"orange\"", "\"income\", \"grade\": \"orange\"",
         "\"income\", \"grade\"", "at versions[0].rules.grade[3].when: 条件须为真假值"},
        {"\"grade\": \"orange\"", "\"grade\": \"purple\"", "purple",
         "at versions[0].rules.grade[3].grade: grade 须为 red / orange / yellow"},
        {"\"category\": \"边缘易致贫户\"", "\"category\": \"贫困户\"", "\"贫困户\"",
         "at versions[0].rules.category[1].category: category 须为"},
        {"\"category\": \"边缘易致贫户\"", "\"catgory\": \"边缘易致贫户\"", "catgory",
         "at versions[0].rules.category[1].catgory: 未知的键 (unknown key)"},
        {"\"income - rigid < line * members\"}", "\"income - rigid < line * members or in_scope\"}",
         "or in_scope", "at versions[0].rules.scope[0].when: 第 36 列 (column 36): 范围规则不能用 in_scope"},
        {"{\"when\": \"in_scope\", \"grade\": \"orange\"}",
         "{\"when\": \"in_scope and income * income > 0\", \"grade\": \"orange\"}",
         "income * income", "at versions[0].rules.grade[3].when: 数值溢出"},
        {"{\"when\": \"in_scope\", \"grade\": \"orange\"}",
         "{\"when\": \"in_scope and income / rigid > 2\", \"grade\": \"orange\"}",
         "income / rigid", "at versions[0].rules.grade[3].when: 除以零 (division by zero), 当 (when) "
                           "income = 0, rigid = 0, members = 1"},
        {"\"scope\": [", "\"scope\": [], \"x\": [", "\"scope\"",
         "at versions[0].rules.scope: must be a list of 1..16 rules"},
        {"\"rules\": {", "\"no_rules\": {", "\"versions\"",
         ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = shipped_text_with(cases[i].from, cases[i].to);
        char err[1024], want[600];
        expect_text_error(text, err, sizeof err);
        if (!*cases[i].want) {
            /* rules missing: reported at versions[0]'s line. */
            snprintf(want, sizeof want, "line %d, at versions[0].rules: missing",
                     line_of(text, "\"version\": \"2024.1\"") - 1);
        } else {
            snprintf(want, sizeof want, "FILE line %d, %s", line_of(text, cases[i].line_of),
                     cases[i].want);
        }
        free(text);
        assert_has(err, want);
    }
}

/* The shipped rules, compiled: one scope rule, three categories, five
 * grade rules; 严重 and 倒塌 count as red. */
static void test_shipped_rules(void **state)
{
    const lv_policy_version_t *v = current(state);
    assert_non_null(v->rules);
    assert_int_equal(lv_ruleset_count(v->rules, LV_RULE_SCOPE), 1);
    assert_int_equal(lv_ruleset_count(v->rules, LV_RULE_CATEGORY), 3);
    assert_int_equal(lv_ruleset_count(v->rules, LV_RULE_GRADE), 5);
    assert_int_equal(v->house_damage_red, (1u << LV_HOUSE_SEVERE) | (1u << LV_HOUSE_COLLAPSED));
}

/* Each version's rules see that version's constants: a 2025 version with a
 * 5,600 元 line puts a household of 4 with 21,000 元 in scope; 2024 did not. */
static void test_rules_per_version(void **state)
{
    (void)state;
    lv_policy_t *p = with_second_version("2025.1", "2025-01-01", 560000);
    lv_facts_t f = {.income_fen = 2100000, .members = 4};
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(lv_policy_at(p, lv_days_from_civil(2024, 12, 31) * LV_DAY_MS), &f, &out), 0);
    assert_false(out.in_scope);
    assert_int_equal(lv_rules_eval(lv_policy_at(p, lv_days_from_civil(2025, 1, 1) * LV_DAY_MS), &f, &out), 0);
    assert_true(out.in_scope);
    assert_has(out.explain, "2100000 - 0 < 560000 * 4 → true");
    /* poverty_line follows the line: 560,000 x 2/3 = 1,120,000/3. */
    f.income_fen = 1000000;
    assert_int_equal(lv_rules_eval(lv_policy_at(p, lv_days_from_civil(2025, 1, 1) * LV_DAY_MS), &f, &out), 0);
    assert_has(out.explain, "1000000 - 0 < (1120000/3) * 4 → true");
    lv_policy_destroy(&p);
}

static void test_error_bad_values(void **state)
{
    (void)state;
    char err[512];

    json_t *root = shipped_json();
    json_object_set_new(version0(root), "income_line_fen", json_string("5200"));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].income_line_fen: must be an integer");

    root = shipped_json();
    json_object_set_new(version0(root), "income_line_fen", json_integer(0));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].income_line_fen: 0 is out of range 1..");

    root = shipped_json();
    json_object_set_new(version0(root), "effective_from", json_string("2024-02-30"));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].effective_from");

    root = shipped_json();
    json_object_set_new(version0(root), "poverty_line_ratio", json_pack("[i, i]", 2, 0));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].poverty_line_ratio");

    /* Tiers must rise: the second illness tier starts where the first does. */
    root = shipped_json();
    json_t *t1 = json_array_get(
        json_object_get(json_object_get(json_object_get(version0(root), "payouts"), "illness"),
                        "tiers"),
        1);
    json_object_set_new(t1, "from_fen", json_integer(500000));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].payouts.illness.tiers[1]: from_fen must increase");

    root = shipped_json();
    json_object_del(json_object_get(json_object_get(version0(root), "payouts"), "disaster"),
                    "cap_fen");
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].payouts.disaster.cap_fen: missing");

    root = shipped_json();
    json_object_set_new(version0(root), "funds", json_array());
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].funds: must be a list of 1..16 funds");

    root = shipped_json();
    json_object_del(json_object_get(version0(root), "payouts"), "reservation_days");
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].payouts.reservation_days: missing");

    root = shipped_json();
    json_object_set_new(version0(root), "recheck_rate_permille", json_integer(1001));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].recheck_rate_permille: 1001 is out of range 0..1000");

    /* A second version no later than the first. */
    root = shipped_json();
    json_t *v2 = json_deep_copy(version0(root));
    json_object_set_new(v2, "version", json_string("dup"));
    json_array_append_new(json_object_get(root, "versions"), v2);
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "effective_from must increase");

    root = shipped_json();
    json_object_set_new(root, "versions", json_array());
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions: must be a list of 1..32 versions");
}

/* Whom a cap counts for: education per student by default (and in the
 * shipped file), the others per household; "cap_per" says so explicitly. */
static void test_cap_per(void **state)
{
    const lv_policy_version_t *v = current(state);
    assert_int_equal(v->education.cap_per, LV_CAP_PER_STUDENT);
    assert_int_equal(v->illness.cap_per, LV_CAP_PER_HOUSEHOLD);
    assert_int_equal(v->disaster.cap_per, LV_CAP_PER_HOUSEHOLD);
    assert_int_equal(v->funds[0].nbudgets, 0);

    char err[512];
    json_t *root = shipped_json();
    json_object_set_new(json_object_get(json_object_get(version0(root), "payouts"), "disaster"),
                        "cap_per", json_string("person"));
    expect_load_error(root, err, sizeof err);
    json_decref(root);
    assert_has(err, "versions[0].payouts.disaster.cap_per: must be \"household\" or \"student\"");
}

/* County budgets of a fund: loaded sorted, looked up by county (a region
 * code's first 6 digits), refused when a key is not a county code or they
 * add up to more than the fund's opening. */
static void test_budgets(void **state)
{
    (void)state;
    json_t *root = shipped_json();
    json_t *fund = json_array_get(json_object_get(version0(root), "funds"), 0);
    json_object_set_new(fund, "budgets", json_pack("{s:I, s:I}", "620522", (json_int_t)100000000,
                                                   "620521", (json_int_t)150000000));
    lv_policy_t *p = load_tree(root);
    char err[512];
    const lv_fund_def_t *f = &lv_policy_at(p, lv_days_from_civil(2024, 6, 1) * LV_DAY_MS)->funds[0];
    assert_int_equal(f->nbudgets, 2);
    assert_string_equal(f->budgets[0].county, "620521");
    const lv_budget_t *b = lv_fund_budget(f, "620521001002");
    assert_non_null(b);
    assert_int_equal(b->fen, 150000000);
    assert_int_equal(lv_fund_budget(f, "620522")->fen, 100000000);
    assert_null(lv_fund_budget(f, "620523001001"));
    lv_policy_destroy(&p);

    /* 3,000,000 + 2,000,000 元 > the 4,500,000 元 opening. */
    json_object_set_new(fund, "budgets", json_pack("{s:I, s:I}", "620521", (json_int_t)300000000,
                                                   "620522", (json_int_t)200000000));
    expect_load_error(root, err, sizeof err);
    assert_has(err, "versions[0].funds[0].budgets: 县级预算合计超过基金期初");

    json_object_set_new(fund, "budgets", json_pack("{s:I}", "6205", (json_int_t)1));
    expect_load_error(root, err, sizeof err);
    assert_has(err, "6 位县代码");

    json_object_set_new(fund, "budgets", json_pack("{s:i}", "620521", -1));
    expect_load_error(root, err, sizeof err);
    assert_has(err, "versions[0].funds[0].budgets.620521: -1 is out of range");
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_values),
        cmocka_unit_test(test_shipped_tiers),
        cmocka_unit_test(test_at_effective_date),
        cmocka_unit_test(test_at_two_versions),
        cmocka_unit_test(test_illness_tiers),
        cmocka_unit_test(test_illness_cap),
        cmocka_unit_test(test_illness_already_paid),
        cmocka_unit_test(test_disaster),
        cmocka_unit_test(test_education),
        cmocka_unit_test(test_cap_per),
        cmocka_unit_test(test_budgets),
        cmocka_unit_test(test_medical_assistance),
        cmocka_unit_test(test_explain_truncated),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_error_missing_file),
        cmocka_unit_test(test_error_missing_income_line),
        cmocka_unit_test(test_error_bad_values),
        cmocka_unit_test(test_error_line_of_value),
        cmocka_unit_test(test_error_rules),
        cmocka_unit_test(test_shipped_rules),
        cmocka_unit_test(test_rules_per_version),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
