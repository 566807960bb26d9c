/* lv_rules: scope, category and grade of the shipped default policy
 * (policy/default.json, path from LEVEE_POLICY set by ctest), evaluated by
 * the rule engine, at every edge: just under, at and just over each line,
 * each category, each grade. Line 5,200 元; poverty line = line x 2/3;
 * yellow watch = line x 6/5. The engine must agree with the hand-written
 * rules (bench/rules_baseline.h) on a large sample of households. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_rules.h"
#include "lv_time.h"
#include "rules_baseline.h"

static lv_policy_t *s_policy;

static int group_setup(void **state)
{
    (void)state;
    const char *path = getenv("LEVEE_POLICY");
    char err[512] = "";
    s_policy = path ? lv_policy_load(path, err, sizeof err) : NULL;
    if (!s_policy) {
        print_error("cannot load the shipped policy (LEVEE_POLICY=%s): %s\n", path ? path : "",
                    err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    lv_policy_destroy(&s_policy);
    return 0;
}

static const lv_policy_version_t *shipped(void)
{
    const lv_policy_version_t *v = lv_policy_at(s_policy, lv_days_from_civil(2024, 6, 1) * LV_DAY_MS);
    assert_non_null(v);
    return v;
}

static lv_verdict_t eval_f(const lv_facts_t *f)
{
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(shipped(), f, &out), 0);
    return out;
}

static lv_verdict_t eval(int64_t income, int members, int64_t rigid, bool exited)
{
    lv_facts_t f = {.income_fen = income, .members = members, .rigid_fen = rigid, .exited = exited};
    return eval_f(&f);
}

static const char *grade_of(int64_t income, int members, int64_t rigid)
{
    const char *g = lv_grade_name(eval(income, members, rigid, false).grade);
    return g ? g : "none";
}

static void assert_has(const char *s, const char *needle)
{
    if (!strstr(s, needle))
        fail_msg("\"%s\" does not contain \"%s\"", s, needle);
}

/* ---- scope ---------------------------------------------------------- */

/* Exactly at the line is not in scope; one fen under is. 4 members x 5,200
 * = 20,800 元 = 2,080,000 fen. */
static void test_scope_edge(void **state)
{
    (void)state;
    lv_verdict_t at = eval(2080000, 4, 0, false);
    assert_false(at.in_scope);
    lv_verdict_t under = eval(2079999, 4, 0, false);
    assert_true(under.in_scope);
    /* (2,079,999 / 4) rounds down to 519,999 fen, below the line. */
    assert_int_equal(under.pci_after_fen, 519999);
    assert_false(eval(2080001, 4, 0, false).in_scope);
    /* Rigid expenditure counts: 30,000 元 income, 9,200 元 rigid, 4 members:
     * (3,000,000 - 920,000) = 2,080,000 → at the line, not in scope;
     * one more fen of rigid → in scope. */
    assert_false(eval(3000000, 4, 920000, false).in_scope);
    assert_true(eval(3000000, 4, 920001, false).in_scope);
    assert_false(eval(3000000, 4, 919999, false).in_scope);
    /* Every household size: line x members is the edge. */
    for (int m = 1; m <= 12; m++) {
        assert_true(eval(520000LL * m - 1, m, 0, true).in_scope);
        assert_false(eval(520000LL * m, m, 0, true).in_scope);
        assert_false(eval(520000LL * m + 1, m, 0, true).in_scope);
    }
}

/* A per-capita figure that is not a whole fen must not round into scope:
 * 3 members, income 1,560,001 fen: 520,000.33 per head, not in scope. */
static void test_no_rounding_before_compare(void **state)
{
    (void)state;
    lv_verdict_t v = eval(1560001, 3, 0, false);
    assert_false(v.in_scope);
    assert_int_equal(v.pci_fen, 520000);
    /* 1,559,999 fen for 3: 519,999.67 per head, in scope. */
    assert_true(eval(1559999, 3, 0, false).in_scope);
}

/* ---- category ------------------------------------------------------- */

static void test_category(void **state)
{
    (void)state;
    /* pci < line: by household type. */
    assert_string_equal(eval(1000000, 2, 100, true).category, "脱贫不稳定户");
    assert_string_equal(eval(1000000, 2, 100, false).category, "边缘易致贫户");
    /* pci >= line (10,400 元 x 2 members), in scope only through rigid
     * expenditure: 突发严重困难户 whatever the type. */
    assert_string_equal(eval(2080000, 2, 2000000, true).category, "突发严重困难户");
    assert_string_equal(eval(2080000, 2, 2000000, false).category, "突发严重困难户");
    assert_null(eval(5000000, 2, 0, false).category);
}

/* pci just under the line decides by type; at the line (with rigid
 * expenditure putting the household in scope) it is 突发严重困难户. */
static void test_category_edges(void **state)
{
    (void)state;
    assert_string_equal(eval(1039999, 2, 1, true).category, "脱贫不稳定户");
    assert_string_equal(eval(1039999, 2, 1, false).category, "边缘易致贫户");
    assert_string_equal(eval(1040000, 2, 1, true).category, "突发严重困难户");
    assert_string_equal(eval(1040000, 2, 1, false).category, "突发严重困难户");
    assert_string_equal(eval(1040001, 2, 2, false).category, "突发严重困难户");
    /* Out of scope: no category, whatever the type. */
    assert_null(eval(1040000, 2, 0, true).category);
}

/* ---- grade ---------------------------------------------------------- */

/* Red: pci_after < poverty line (5,200 x 2/3 = 3,466.67 元), or rigid >=
 * income. 3 members: poverty line x 3 = 10,400 元 exactly = 1,040,000 fen. */
static void test_grade(void **state)
{
    (void)state;
    assert_string_equal(lv_grade_name(eval(1039999, 3, 0, false).grade), "red");
    assert_string_equal(lv_grade_name(eval(1040000, 3, 0, false).grade), "orange");
    assert_string_equal(lv_grade_name(eval(1040001, 3, 0, false).grade), "orange");
    /* 1 member: 346,666.67 fen; 346,666 is under, 346,667 is over. */
    assert_string_equal(grade_of(346666, 1, 0), "red");
    assert_string_equal(grade_of(346667, 1, 0), "orange");
    /* 4 members: 1,386,666.67 fen, with rigid expenditure taken off. */
    assert_string_equal(grade_of(1486666, 4, 100000), "red");
    assert_string_equal(grade_of(1486667, 4, 100000), "orange");
    /* rigid >= income → red even when the per-capita figure alone is orange. */
    assert_string_equal(lv_grade_name(eval(2000000, 1, 2000000, false).grade), "red");
    assert_string_equal(grade_of(2000000, 1, 2000001), "red");
    /* Yellow watch: not in scope but under 1.2 x line = 6,240 元 per head. */
    assert_int_equal(eval(623999, 1, 0, false).grade, LV_GRADE_YELLOW);
    assert_false(eval(623999, 1, 0, false).in_scope);
    assert_int_equal(eval(624000, 1, 0, false).grade, LV_GRADE_NONE);
    assert_int_equal(eval(624001, 1, 0, false).grade, LV_GRADE_NONE);
    assert_int_equal(eval(624000, 1, 0, false).category == NULL, 1);
    /* 2 members: 12,480 元; with rigid expenditure. */
    assert_string_equal(grade_of(1348000 - 1, 2, 100000), "yellow");
    assert_string_equal(grade_of(1348000, 2, 100000), "none");
    /* The lowest yellow is just above the line: in scope is never yellow. */
    assert_string_equal(grade_of(520000, 1, 0), "yellow");
    assert_string_equal(grade_of(519999, 1, 0), "orange");
    /* Ranks order the grades; an unknown name ranks with none. */
    assert_true(lv_grade_rank("red") > lv_grade_rank("orange"));
    assert_true(lv_grade_rank("orange") > lv_grade_rank("yellow"));
    assert_true(lv_grade_rank("yellow") > lv_grade_rank(""));
    assert_int_equal(lv_grade_rank(NULL), 0);
    assert_int_equal(lv_grade_rank("purple"), 0);
}

/* House damage: the shipped policy counts 严重 and 倒塌 as red, for a
 * household in scope. */
static void test_house_damage(void **state)
{
    (void)state;
    static const struct {
        const char *damage;
        const char *grade;
    } cases[] = {{"倒塌", "red"}, {"严重", "red"}, {"轻微", "orange"}, {"无", "orange"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lv_facts_t f = {.income_fen = 1900000, .members = 4, .rigid_fen = 0};
        assert_int_equal(lv_house_damage_parse(cases[i].damage, &f.house_damage), 0);
        assert_string_equal(lv_house_damage_name(f.house_damage), cases[i].damage);
        assert_string_equal(lv_grade_name(eval_f(&f).grade), cases[i].grade);
        /* The older summary flag does not override a known level. */
        f.house_collapsed = true;
        assert_string_equal(lv_grade_name(eval_f(&f).grade), cases[i].grade);
    }
    /* Level unknown: the summary flag decides. */
    lv_facts_t f = {.income_fen = 1900000, .members = 4, .house_collapsed = true};
    assert_string_equal(lv_grade_name(eval_f(&f).grade), "red");
    f.house_collapsed = false;
    assert_string_equal(lv_grade_name(eval_f(&f).grade), "orange");
    /* Out of scope a collapsed house does not make a grade by itself. */
    lv_facts_t out = {.income_fen = 2400000, .members = 4, .house_damage = LV_HOUSE_COLLAPSED};
    assert_string_equal(lv_grade_name(eval_f(&out).grade), "yellow");
    out.income_fen = 9000000;
    assert_int_equal(eval_f(&out).grade, LV_GRADE_NONE);
    lv_house_damage_t d;
    assert_int_equal(lv_house_damage_parse("全毁", &d), LV_EINVAL);
    assert_int_equal(lv_house_damage_parse(NULL, &d), LV_EINVAL);
    assert_null(lv_house_damage_name(LV_HOUSE_UNKNOWN));
}

/* ---- explanations --------------------------------------------------- */

static void test_explanation(void **state)
{
    (void)state;
    lv_verdict_t v = eval(1200000, 4, 900000, true);
    assert_string_equal(
        v.explain,
        "scope: income - rigid < line * members: 1200000 - 900000 < 520000 * 4 → true; "
        "category 脱贫不稳定户: income < line * members and exited: "
        "1200000 < 520000 * 4 and true → true; "
        "grade red: in_scope and income - rigid < poverty_line * members: "
        "true and 1200000 - 900000 < (1040000/3) * 4 → true");
    /* Orange names the orange rule. */
    v = eval(1900000, 4, 0, false);
    assert_has(v.explain, "category 边缘易致贫户: ");
    assert_has(v.explain, "; grade orange: in_scope: true → true");
    /* Out of scope: the scope rule with its values, false; yellow names its rule. */
    v = eval(623999, 1, 0, false);
    assert_string_equal(v.explain,
                        "scope: income - rigid < line * members: 623999 - 0 < 520000 * 1 → false; "
                        "grade yellow: not in_scope and income - rigid < watch_line * members: "
                        "not false and 623999 - 0 < 624000 * 1 → true");
    v = eval(9000000, 1, 0, false);
    assert_string_equal(v.explain,
                        "scope: income - rigid < line * members: 9000000 - 0 < 520000 * 1 → false");
    /* The red rule that fired is the one named: house damage. */
    lv_facts_t f = {.income_fen = 1900000, .members = 4, .house_damage = LV_HOUSE_SEVERE};
    assert_has(eval_f(&f).explain, "grade red: in_scope and house_damage_red: true and true → true");
}

static void test_errors(void **state)
{
    (void)state;
    lv_facts_t f = {.income_fen = 100, .members = 0};
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(shipped(), &f, &out), LV_EINVAL);
    assert_has(out.explain, "members must be at least 1");
    /* A version built by hand has no compiled rules: refused, explained. */
    lv_policy_version_t bare;
    memset(&bare, 0, sizeof bare);
    strcpy(bare.version, "bare");
    f.members = 1;
    assert_int_equal(lv_rules_eval(&bare, &f, &out), LV_EINVAL);
    assert_has(out.explain, "no compiled rules");
    lv_decision_t d;
    assert_int_equal(lv_rules_decide(&bare, &f, &d), LV_EINVAL);
}

/* ---- decide / diff -------------------------------------------------- */

static void test_decide_and_diff(void **state)
{
    (void)state;
    const lv_policy_version_t *v = shipped();
    lv_facts_t f = {.income_fen = 1200000, .members = 4, .rigid_fen = 900000, .exited = true};
    lv_decision_t d;
    assert_int_equal(lv_rules_decide(v, &f, &d), 0);
    assert_true(d.in_scope);
    assert_int_equal(d.scope_rule, 0);
    assert_int_equal(d.category_rule, 0);
    assert_int_equal(d.grade_rule, 0);
    assert_int_equal(d.grade, LV_GRADE_RED);
    assert_int_equal(d.fault, 0);

    lv_decision_t out = {.grade = LV_GRADE_NONE}, watch = {.grade = LV_GRADE_YELLOW};
    lv_decision_t orange = {.in_scope = true, .grade = LV_GRADE_ORANGE, .category = "边缘易致贫户"};
    lv_decision_t red = orange;
    red.grade = LV_GRADE_RED;
    lv_decision_t sudden = orange;
    sudden.category = "突发严重困难户";
    assert_int_equal(lv_rules_diff(&out, &orange), LV_CHANGE_ENTER);
    assert_int_equal(lv_rules_diff(&orange, &watch), LV_CHANGE_LEAVE);
    assert_int_equal(lv_rules_diff(&orange, &red), LV_CHANGE_GRADE);
    assert_int_equal(lv_rules_diff(&orange, &sudden), LV_CHANGE_CATEGORY);
    red.category = "突发严重困难户";
    assert_int_equal(lv_rules_diff(&orange, &red), LV_CHANGE_CATEGORY | LV_CHANGE_GRADE);
    assert_int_equal(lv_rules_diff(&out, &watch), LV_CHANGE_GRADE);
    assert_int_equal(lv_rules_diff(&orange, &orange), 0);
    assert_int_equal(lv_rules_diff(&out, &out), 0);
}

/* ---- the engine against the hand-written rules ---------------------- */

static uint64_t s_rng = 88172645463325252ULL;

static uint64_t rnd(uint64_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng % n;
}

/* 300,000 households spread around every edge: incomes within a few fen of
 * line x members, poverty line x members and watch line x members, or
 * anywhere up to 3 x line; rigid expenditure none, small, near or above the
 * income; every type and house damage. */
static void test_matches_baseline(void **state)
{
    (void)state;
    const lv_policy_version_t *v = shipped();
    int differ = 0;
    for (int i = 0; i < 300000; i++) {
        lv_facts_t f = {.members = 1 + (int)rnd(9), .exited = rnd(2), .house_collapsed = rnd(8) == 0,
                        .house_damage = (lv_house_damage_t)rnd(5)};
        int64_t m = f.members, line = v->income_line_fen;
        int64_t edges[3] = {line * m, line * m * 2 / 3, line * m * 6 / 5};
        int64_t target = rnd(4) ? edges[rnd(3)] + (int64_t)rnd(7) - 3 : (int64_t)rnd((uint64_t)(line * m * 3));
        switch (rnd(4)) {
        case 0: f.rigid_fen = 0; break;
        case 1: f.rigid_fen = (int64_t)rnd(200000); break;
        case 2: f.rigid_fen = (int64_t)rnd(4000000); break;
        default: f.rigid_fen = (int64_t)rnd(3000000) + 1; break;
        }
        f.income_fen = target + f.rigid_fen * (int64_t)rnd(2);
        if (f.income_fen < 0)
            f.income_fen = 0;
        if (rnd(50) == 0)
            f.income_fen = f.rigid_fen; /* rigid == income */
        lv_decision_t d;
        baseline_verdict_t b;
        assert_int_equal(lv_rules_decide(v, &f, &d), 0);
        baseline_decide(v, &f, &b);
        bool same = d.in_scope == b.in_scope && d.grade == b.grade &&
                    ((!d.category && !b.category) ||
                     (d.category && b.category && !strcmp(d.category, b.category)));
        if (!same && differ++ < 5)
            print_error("differ: income %lld rigid %lld members %d exited %d house %d/%d\n",
                        (long long)f.income_fen, (long long)f.rigid_fen, f.members, f.exited,
                        f.house_damage, f.house_collapsed);
    }
    assert_int_equal(differ, 0);
}

/* ---- rule sets built by hand ---------------------------------------- */

static void test_ruleset_by_hand(void **state)
{
    (void)state;
    lv_policy_version_t v = *shipped();
    lv_ruleset_t *rs = lv_ruleset_new();
    lv_expr_error_t err;
    /* Two scope rules: under the line, or (DOMAIN.md) above it with rigid
     * expenditure over half the income. */
    assert_int_equal(lv_ruleset_add(rs, &v, LV_RULE_SCOPE, NULL, "pci_after < line", NULL, &err), 0);
    assert_int_equal(lv_ruleset_add(rs, &v, LV_RULE_SCOPE, "刚性支出过半", "rigid * 2 > income",
                                    NULL, &err),
                     0);
    assert_int_equal(lv_ruleset_add(rs, &v, LV_RULE_CATEGORY, NULL, "true", "突发严重困难户", &err), 0);
    assert_int_equal(lv_ruleset_add(rs, &v, LV_RULE_GRADE, NULL, "in_scope", "orange", &err), 0);
    assert_int_equal(lv_ruleset_count(rs, LV_RULE_SCOPE), 2);
    v.rules = rs;
    lv_facts_t f = {.income_fen = 5000000, .members = 2, .rigid_fen = 2500001};
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(&v, &f, &out), 0);
    assert_true(out.in_scope);
    assert_has(out.explain, "scope[1] (刚性支出过半): rigid * 2 > income: 2500001 * 2 > 5000000 → true");
    f.rigid_fen = 2500000;
    assert_int_equal(lv_rules_eval(&v, &f, &out), 0);
    assert_false(out.in_scope);
    /* A whole per-capita figure shows without a denominator. */
    assert_has(out.explain, "scope[0]: pci_after < line: 1250000 < 520000 → false");
    f.income_fen = 1000001;
    f.rigid_fen = 0;
    assert_int_equal(lv_rules_eval(&v, &f, &out), 0);
    assert_has(out.explain, "scope[0]: pci_after < line: (1000001/2) < 520000 → true");
    lv_ruleset_destroy(&rs);
}

static void test_ruleset_errors(void **state)
{
    (void)state;
    const lv_policy_version_t *v = shipped();
    lv_ruleset_t *rs = lv_ruleset_new();
    lv_expr_error_t err;
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_CATEGORY, NULL, "true", "贫困户", &err), LV_EINVAL);
    assert_has(err.message, "must be one of the three categories");
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_GRADE, NULL, "true", "purple", &err), LV_EINVAL);
    assert_has(err.message, "must be red, orange or yellow");
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_GRADE, NULL, "income * 2", "red", &err), LV_EINVAL);
    assert_has(err.message, "must be true or false");
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_SCOPE, NULL, "income < 1 or in_scope", NULL, &err),
                     LV_EINVAL);
    assert_has(err.message, "in_scope is what the scope rules decide");
    assert_int_equal(err.column, 15);
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_SCOPE, NULL, "incme < line", NULL, &err), LV_EINVAL);
    assert_has(err.message, "\"incme\"");
    assert_int_equal(err.column, 1);
    for (int i = 0; i < LV_RULES_MAX; i++)
        assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_SCOPE, NULL, "pci < line", NULL, &err), 0);
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_SCOPE, NULL, "pci < line", NULL, &err), LV_ELIMIT);
    /* The probe finds a rule that fails for facts within the limits. */
    lv_rule_kind_t kind;
    int idx;
    char why[400];
    assert_int_equal(lv_ruleset_probe(rs, &kind, &idx, why, sizeof why), 0);
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_GRADE, NULL, "true", "red", &err), 0);
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_GRADE, NULL, "income * income > 0", "red", &err), 0);
    assert_int_equal(lv_ruleset_probe(rs, &kind, &idx, why, sizeof why), LV_EXPR_EOVERFLOW);
    assert_int_equal(kind, LV_RULE_GRADE);
    assert_int_equal(idx, 1);
    assert_has(why, "income = 10000000000000");
    lv_ruleset_destroy(&rs);
    assert_null(rs);
    lv_ruleset_destroy(&rs);

    rs = lv_ruleset_new();
    assert_int_equal(lv_ruleset_add(rs, v, LV_RULE_GRADE, NULL, "income / rigid > 2", "red", &err), 0);
    assert_int_equal(lv_ruleset_probe(rs, &kind, &idx, why, sizeof why), LV_EXPR_EDIVZERO);
    lv_ruleset_destroy(&rs);
    rs = lv_ruleset_new();
    assert_int_equal(
        lv_ruleset_add(rs, v, LV_RULE_GRADE, NULL, "rigid > 0 and income / rigid > 2", "red", &err), 0);
    assert_int_equal(lv_ruleset_probe(rs, &kind, &idx, why, sizeof why), 0);
    lv_ruleset_destroy(&rs);
}

/* A fault at evaluation (facts beyond the probed limits) is returned and
 * explained, never a wrong verdict silently. */
static void test_fault(void **state)
{
    (void)state;
    const lv_policy_version_t *v = shipped();
    lv_facts_t f = {.income_fen = INT64_MAX, .members = 1, .rigid_fen = -10};
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(v, &f, &out), LV_EXPR_EOVERFLOW);
    assert_has(out.explain, "scope[0] 无法计算 (cannot be evaluated): income - rigid < line * members: "
                            "数值溢出");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_edge),
        cmocka_unit_test(test_no_rounding_before_compare),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_category_edges),
        cmocka_unit_test(test_grade),
        cmocka_unit_test(test_house_damage),
        cmocka_unit_test(test_explanation),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_decide_and_diff),
        cmocka_unit_test(test_matches_baseline),
        cmocka_unit_test(test_ruleset_by_hand),
        cmocka_unit_test(test_ruleset_errors),
        cmocka_unit_test(test_fault),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
