/* lv_rules: scope, category and grade of the default policy, at the edges.
 * The policy version is built here with SPEC.md's default values: line
 * 5,200 元, poverty line = line x 2/3, yellow watch = line x 6/5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_rules.h"

static lv_policy_version_t policy(void)
{
    lv_policy_version_t v;
    memset(&v, 0, sizeof v);
    strcpy(v.version, "test");
    v.income_line_fen = 520000;
    v.poverty_num = 2;
    v.poverty_den = 3;
    v.watch_num = 6;
    v.watch_den = 5;
    return v;
}

static lv_verdict_t eval(int64_t income, int members, int64_t rigid, bool exited)
{
    lv_policy_version_t v = policy();
    lv_facts_t f = {.income_fen = income, .members = members, .rigid_fen = rigid, .exited = exited};
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(&v, &f, &out), 0);
    return out;
}

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
    /* Rigid expenditure counts: 30,000 元 income, 9,200 元 rigid, 4 members:
     * (3,000,000 - 920,000) = 2,080,000 → at the line, not in scope;
     * one more fen of rigid → in scope. */
    assert_false(eval(3000000, 4, 920000, false).in_scope);
    assert_true(eval(3000000, 4, 920001, false).in_scope);
}

/* A per-capita figure that is not a whole fen must not round into scope:
 * 3 members, income 1,560,001 fen: 520,000.33 per head, not in scope. */
static void test_no_rounding_before_compare(void **state)
{
    (void)state;
    lv_verdict_t v = eval(1560001, 3, 0, false);
    assert_false(v.in_scope);
    assert_int_equal(v.pci_fen, 520000);
}

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

/* Red: pci_after < poverty line (5,200 x 2/3 = 3,466.67 元), or rigid >=
 * income. 3 members: poverty line x 3 = 10,400 元 exactly = 1,040,000 fen. */
static void test_grade(void **state)
{
    (void)state;
    assert_string_equal(lv_grade_name(eval(1039999, 3, 0, false).grade), "red");
    assert_string_equal(lv_grade_name(eval(1040000, 3, 0, false).grade), "orange");
    /* rigid >= income → red even when the per-capita figure alone is orange. */
    assert_string_equal(lv_grade_name(eval(2000000, 1, 2000000, false).grade), "red");
    /* Yellow watch: not in scope but under 1.2 x line = 6,240 元 per head. */
    assert_int_equal(eval(623999, 1, 0, false).grade, LV_GRADE_YELLOW);
    assert_false(eval(623999, 1, 0, false).in_scope);
    assert_int_equal(eval(624000, 1, 0, false).grade, LV_GRADE_NONE);
    assert_int_equal(eval(624000, 1, 0, false).category == NULL, 1);
    /* Ranks order the grades; an unknown name ranks with none. */
    assert_true(lv_grade_rank("red") > lv_grade_rank("orange"));
    assert_true(lv_grade_rank("orange") > lv_grade_rank("yellow"));
    assert_true(lv_grade_rank("yellow") > lv_grade_rank(""));
    assert_int_equal(lv_grade_rank(NULL), 0);
    assert_int_equal(lv_grade_rank("purple"), 0);
}

static void test_explanation_and_errors(void **state)
{
    (void)state;
    lv_verdict_t v = eval(1000000, 2, 100000, true);
    assert_non_null(strstr(v.explain, "pci_after_rigid 4500.00 < line 5200.00"));
    lv_policy_version_t p = policy();
    lv_facts_t f = {.income_fen = 100, .members = 0};
    lv_verdict_t out;
    assert_int_equal(lv_rules_eval(&p, &f, &out), LV_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_edge),
        cmocka_unit_test(test_no_rounding_before_compare),
        cmocka_unit_test(test_category),
        cmocka_unit_test(test_grade),
        cmocka_unit_test(test_explanation_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
