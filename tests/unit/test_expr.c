/* lv_expr: the rule language. Precedence, exact arithmetic and its rounding
 * functions, overflow and division by zero (at compile time for constants,
 * at evaluation for facts), unknown names, type errors, syntax errors,
 * limits, short-circuit evaluation and the substituted explanation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lv_expr.h"

/* Facts a (slot 0), b (slot 1), flag (slot 2); constants line and third. */
enum { A, B, FLAG };
static const lv_expr_name_t s_names[] = {
    {"a", LV_EXPR_NUMBER, A, {0, 1}},
    {"b", LV_EXPR_NUMBER, B, {0, 1}},
    {"flag", LV_EXPR_BOOLEAN, FLAG, {0, 1}},
    {"line", LV_EXPR_NUMBER, -1, {520000, 1}},
    {"third", LV_EXPR_NUMBER, -1, {1, 3}},
};
#define NNAMES ((int)(sizeof s_names / sizeof s_names[0]))

static lv_expr_t *compile(const char *src)
{
    lv_expr_error_t err;
    lv_expr_t *e = lv_expr_compile(src, s_names, NNAMES, &err);
    if (!e)
        fail_msg("\"%s\" does not compile: column %d: %s", src, err.column, err.message);
    return e;
}

/* Evaluates src with a, b and flag; returns the fault code, value in *out. */
static int run(const char *src, int64_t a, int64_t b, bool flag, lv_num_t *out)
{
    lv_expr_t *e = compile(src);
    lv_num_t slots[3] = {{a, 1}, {b, 1}, {flag, 1}};
    int r = lv_expr_eval(e, slots, out);
    lv_expr_destroy(&e);
    return r;
}

static bool truth(const char *src, int64_t a, int64_t b, bool flag)
{
    lv_num_t v;
    int r = run(src, a, b, flag, &v);
    if (r)
        fail_msg("\"%s\" fails: %s", src, lv_expr_strerror(r));
    return v.num != 0;
}

static bool holds(const char *src)
{
    return truth(src, 0, 0, false);
}

/* Expects a compile error whose message contains needle, at column col (0:
 * any column). */
static void bad(const char *src, const char *needle, int col)
{
    lv_expr_error_t err;
    lv_expr_t *e = lv_expr_compile(src, s_names, NNAMES, &err);
    if (e) {
        lv_expr_destroy(&e);
        fail_msg("\"%s\" compiled but should not (%s)", src, needle);
    }
    if (!strstr(err.message, needle))
        fail_msg("\"%s\": \"%s\" does not contain \"%s\"", src, err.message, needle);
    if (col && err.column != col)
        fail_msg("\"%s\": error at column %d, want %d (%s)", src, err.column, col, err.message);
}

static void test_precedence(void **state)
{
    (void)state;
    assert_true(holds("1 + 2 * 3 == 7"));
    assert_true(holds("(1 + 2) * 3 == 9"));
    assert_true(holds("10 - 4 - 3 == 3"));  /* left to right */
    assert_true(holds("12 / 4 / 3 == 1"));  /* left to right */
    assert_true(holds("2 * 3 / 4 == 1.5")); /* * and / bind alike */
    assert_true(holds("-2 * 3 == -6"));
    assert_true(holds("- -2 == 2"));
    assert_true(holds("1 - -1 == 2"));
    /* not binds tighter than and, and tighter than or. */
    assert_true(holds("not false and true"));
    assert_false(holds("not (true and true)"));
    assert_true(holds("true or false and false"));
    assert_false(holds("(true or false) and false"));
    assert_true(holds("not 1 > 2"));       /* not (1 > 2) */
    assert_true(holds("1 < 2 and 3 >= 3")); /* comparisons bind tighter than and */
    assert_true(holds("(1 + 1 == 2) == true"));
}

static void test_exact_arithmetic(void **state)
{
    (void)state;
    assert_true(holds("7 / 2 == 3.5"));
    assert_true(holds("1 / 3 * 3 == 1")); /* no rounding in between */
    assert_true(holds("0.1 + 0.2 == 0.3"));
    assert_true(holds("1.2 * 5 == 6"));
    assert_true(holds("third * 3 == 1"));
    assert_true(holds("1 / 3 < 0.333334 and 1 / 3 > 0.333333"));
    /* Rounding only where asked: floor toward minus infinity, ceil, round
     * half up. */
    assert_true(holds("floor(7 / 2) == 3"));
    assert_true(holds("floor(-7 / 2) == -4"));
    assert_true(holds("ceil(7 / 2) == 4"));
    assert_true(holds("ceil(-7 / 2) == -3"));
    assert_true(holds("ceil(4) == 4"));
    assert_true(holds("round(5 / 2) == 3"));
    assert_true(holds("round(-5 / 2) == -2"));
    assert_true(holds("round(7 / 3) == 2"));
    assert_true(holds("round(8 / 3) == 3"));
    assert_true(holds("abs(-3.5) == 3.5"));
    assert_true(holds("min(2, 1 / 2) == 0.5 and max(2, 1 / 2) == 2"));
    /* Per-capita comparisons are exact: 2,079,999 fen for 4 people is
     * 519,999.75 fen each, under the line; 1,560,001 for 3 is over it. */
    assert_true(truth("a / b < line", 2079999, 4, false));
    assert_false(truth("a / b < line", 2080000, 4, false));
    assert_false(truth("a / b < line", 1560001, 3, false));
    assert_true(truth("floor(a / b) == 519999", 2079999, 4, false));
    /* The value itself: 2,079,999 / 4 stays a fraction. */
    lv_num_t v;
    assert_int_equal(run("a / b", 2079999, 4, false, &v), 0);
    assert_int_equal(v.num, 2079999);
    assert_int_equal(v.den, 4);
    assert_int_equal(run("a / b", 10, 4, false, &v), 0); /* lowest terms */
    assert_int_equal(v.num, 5);
    assert_int_equal(v.den, 2);
}

static void test_overflow(void **state)
{
    (void)state;
    lv_num_t v;
    const int64_t max_fen = 10000000000000; /* 1e11 元 */
    /* Money at its limit times a head count is fine... */
    assert_int_equal(run("a * b", max_fen, 1000, false, &v), 0);
    assert_int_equal(v.num, max_fen * 1000);
    /* ...money times money is not: an error, never a wrapped value. */
    assert_int_equal(run("a * a", max_fen, 0, false, &v), LV_EXPR_EOVERFLOW);
    assert_int_equal(run("a + b", INT64_MAX, 1, false, &v), LV_EXPR_EOVERFLOW);
    assert_int_equal(run("a - b", INT64_MIN, 1, false, &v), LV_EXPR_EOVERFLOW);
    assert_int_equal(run("-a", INT64_MIN, 0, false, &v), LV_EXPR_EOVERFLOW);
    assert_int_equal(run("abs(a)", INT64_MIN, 0, false, &v), LV_EXPR_EOVERFLOW);
    assert_int_equal(run("a / b", 1, 0, false, &v), LV_EXPR_EDIVZERO);
    /* Intermediate products are formed in 128 bits and reduced: 5e18 / 7 x
     * 7 passes through 3.5e19 and comes back exactly. */
    assert_int_equal(run("a / 7 * 7 == a", 5000000000000000000, 0, false, &v), 0);
    assert_int_equal(v.num, 1);
    /* Comparisons cross-multiply in 128 bits: no overflow even at the edge. */
    assert_true(truth("a / 3 < b / 2", INT64_MAX - 1, INT64_MAX, false));
    /* A fraction whose parts do not fit after reduction is an overflow. */
    assert_int_equal(run("a / 3 + b / 5", INT64_MAX, INT64_MAX, false, &v), LV_EXPR_EOVERFLOW);
    /* Constants are computed once, at compile time, with the same checks. */
    bad("9223372036854775807 + 1 > 0", "overflow", 21);
    bad("99999999999999999999 > 0", "number too large", 1);
    bad("1 / 0 > 0", "division by zero", 3);
    bad("a / (1 - 1) > 0", "division by zero", 3); /* a constant zero divisor */
    assert_true(holds("9223372036854775807 > 0"));
    assert_true(holds("-9223372036854775807 - 1 < 0"));
}

static void test_short_circuit(void **state)
{
    (void)state;
    /* The right side is not evaluated when the left decides. */
    assert_false(truth("b != 0 and a / b > 1", 5, 0, false));
    assert_true(truth("b == 0 or a / b > 1", 5, 0, false));
    assert_true(truth("b != 0 and a / b > 1", 5, 2, false));
    /* and/or inside and/or, and a constant after a jump. */
    assert_true(truth("(flag or b == 0) and (a > 1 or false) and 2 * 3 == 6", 5, 0, false));
    assert_false(truth("(flag and true) == true", 0, 0, false));
    assert_true(truth("(flag and true) == false", 0, 0, false));
}

static void test_unknown_names(void **state)
{
    (void)state;
    bad("incme < 1", "(unknown name) \"incme\"", 1);
    bad("a + bb < 1", "(unknown name) \"bb\"", 5);
    bad("A < 1", "(unknown name) \"A\"", 1); /* names are case-sensitive */
    bad("sqrt(a) < 1", "(unknown name) \"sqrt\"", 1);
    bad("floor + 1 > 0", "is a function", 1);
}

static void test_types(void **state)
{
    (void)state;
    bad("a and flag", "type error", 1);
    bad("flag and a", "type error", 10);
    bad("a + flag > 0", "type error", 5);
    bad("flag < 1", "type error", 1);
    bad("not a", "type error", 1);
    bad("a == flag", "type error", 6);
    bad("-flag", "type error", 1);
    bad("floor(flag) > 0", "type error", 7);
    bad("1 < 2 < 3", "comparisons do not chain", 7);
    /* A number is a valid expression; rules ask for a boolean themselves. */
    lv_expr_t *e = compile("a * 2");
    assert_int_equal(lv_expr_type(e), LV_EXPR_NUMBER);
    lv_expr_destroy(&e);
    e = compile("flag == (a > 1)");
    assert_int_equal(lv_expr_type(e), LV_EXPR_BOOLEAN);
    lv_expr_destroy(&e);
}

static void test_syntax(void **state)
{
    (void)state;
    bad("", "empty expression", 0);
    bad("   ", "empty expression", 0);
    bad("a +", "ends too early", 4);
    bad("(a + 1 > 2", "expected ')'", 11);
    bad("a = 1", "use ==", 3);
    bad("flag && flag", "use and", 6);
    bad("!flag", "use not", 1);
    bad("a 2", "unexpected text", 3);
    bad("a > 1 )", "unexpected text", 7);
    bad("a # 1", "(unexpected character) '#'", 3);
    bad("收入 > 1", "unexpected character", 1);
    bad("1.2345678 > 0", "more than 6 decimals", 1);
    bad("1. > 0", "malformed number", 2);
    bad("1x > 0", "malformed number", 2);
    bad("min(1) > 0", "two arguments", 6);
    bad("floor(1, 2) > 0", "expected ')'", 8);
    bad("* 2", "expected a value", 1);
}

/* "a+(a+(...(a)...))" nested depth times, then tail. */
static void chain(char *src, size_t cap, int depth, const char *tail)
{
    size_t n = 0;
    for (int i = 0; i < depth; i++)
        n += (size_t)snprintf(src + n, cap - n, "a+(");
    n += (size_t)snprintf(src + n, cap - n, "a");
    for (int i = 0; i < depth; i++)
        src[n++] = ')';
    snprintf(src + n, cap - n, "%s", tail);
}

static void test_limits(void **state)
{
    (void)state;
    char src[LV_EXPR_MAX_SRC + 64];
    /* Nesting deeper than the limit is refused, not a stack overflow. */
    int n = 0;
    for (int i = 0; i < 40; i++)
        src[n++] = '(';
    src[n++] = '1';
    for (int i = 0; i < 40; i++)
        src[n++] = ')';
    src[n] = '\0';
    bad(src, "nested too deeply", 0);
    /* Longer than 1024 bytes. */
    memset(src, ' ', LV_EXPR_MAX_SRC + 1);
    src[0] = 'a';
    memcpy(src + LV_EXPR_MAX_SRC - 4, "> 0", 3);
    src[LV_EXPR_MAX_SRC + 1] = '\0';
    bad(src, "longer than 1024", 0);
    /* More instructions than the limit. */
    n = snprintf(src, sizeof src, "a");
    for (int i = 0; i < 200 && n < LV_EXPR_MAX_SRC - 8; i++)
        n += snprintf(src + n, sizeof src - (size_t)n, "+1");
    snprintf(src + n, sizeof src - (size_t)n, ">0");
    bad(src, "too long", 0);
    /* A deep right-leaning chain would need a deep operand stack: refused
     * at compile time, so evaluation never overruns its fixed stack. */
    chain(src, sizeof src, 40, "");
    bad(src, "nested too deeply", 0);
    /* Just within the limits it compiles and evaluates. */
    chain(src, sizeof src, 15, " == 16 * a");
    assert_true(truth(src, 3, 0, false));
}

static void test_substitute(void **state)
{
    (void)state;
    lv_expr_t *e = compile("a - b < line * 4 and not flag");
    lv_num_t slots[3] = {{1200000, 1}, {900000, 1}, {0, 1}};
    char buf[256];
    int n = lv_expr_substitute(e, slots, buf, sizeof buf);
    assert_string_equal(buf, "1200000 - 900000 < 520000 * 4 and not false");
    assert_int_equal(n, (int)strlen(buf));
    /* Truncated output is still a C string; the wanted length is returned. */
    char small[8];
    assert_int_equal(lv_expr_substitute(e, slots, small, sizeof small), n);
    assert_string_equal(small, "1200000");
    assert_string_equal(lv_expr_source(e), "a - b < line * 4 and not flag");
    assert_int_equal(lv_expr_slots_used(e), (1u << A) | (1u << B) | (1u << FLAG));
    lv_expr_destroy(&e);
    assert_null(e);
    lv_expr_destroy(&e); /* NULL-safe */
    lv_expr_destroy(NULL);

    /* A fraction shows as (num/den), whole and exact. */
    e = compile("a < third * line");
    lv_expr_substitute(e, slots, buf, sizeof buf);
    assert_string_equal(buf, "1200000 < (1/3) * 520000");
    assert_int_equal(lv_expr_slots_used(e), 1u << A);
    lv_expr_destroy(&e);

    lv_num_format((lv_num_t){-7, 2}, LV_EXPR_NUMBER, buf, sizeof buf);
    assert_string_equal(buf, "(-7/2)");
    lv_num_format((lv_num_t){1, 1}, LV_EXPR_BOOLEAN, buf, sizeof buf);
    assert_string_equal(buf, "true");
}

static void test_num_helpers(void **state)
{
    (void)state;
    lv_num_t r;
    assert_int_equal(lv_num_make(6, -4, &r), 0);
    assert_int_equal(r.num, -3);
    assert_int_equal(r.den, 2);
    assert_int_equal(lv_num_make(1, 0, &r), LV_EXPR_EDIVZERO);
    assert_int_equal(lv_num_make(0, 7, &r), 0);
    assert_int_equal(r.den, 1);
    assert_int_equal(lv_num_floor((lv_num_t){-1, 3}), -1);
    assert_int_equal(lv_num_floor((lv_num_t){1, 3}), 0);
    assert_int_equal(lv_num_cmp((lv_num_t){1, 3}, (lv_num_t){333333, 1000000}), 1);
    assert_int_equal(lv_num_cmp((lv_num_t){2, 6}, (lv_num_t){1, 3}), 0);
    assert_string_equal(lv_expr_strerror(LV_EXPR_EOVERFLOW),
                        "数值溢出 (overflow: a value does not fit 64 bits)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),    cmocka_unit_test(test_exact_arithmetic),
        cmocka_unit_test(test_overflow),      cmocka_unit_test(test_short_circuit),
        cmocka_unit_test(test_unknown_names), cmocka_unit_test(test_types),
        cmocka_unit_test(test_syntax),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_substitute),    cmocka_unit_test(test_num_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
