/* lv_money: strict 元 → fen parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_money.h"

static void expect_fen(const char *s, int64_t want)
{
    int64_t fen = -12345;
    const char *why = NULL;
    int r = lv_money_parse(s, strlen(s), &fen, &why);
    if (r != 0)
        print_error("\"%s\" rejected: %s\n", s, why ? why : "(null)");
    assert_int_equal(r, 0);
    assert_int_equal(fen, want);
}

static void expect_reject(const char *s)
{
    int64_t fen = -12345;
    const char *why = NULL;
    int r = lv_money_parse(s, strlen(s), &fen, &why);
    if (r != LV_EINVAL)
        print_error("\"%s\" accepted as %lld\n", s, (long long)fen);
    assert_int_equal(r, LV_EINVAL);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    assert_int_equal(fen, -12345); /* untouched on failure */
}

static void test_accept(void **state)
{
    (void)state;
    expect_fen("12.5", 1250);
    expect_fen("12", 1200);
    expect_fen("0.07", 7);
    expect_fen("12.50", 1250);
    expect_fen(" 3 ", 300);
    expect_fen(" 12.50 ", 1250);
    expect_fen("0", 0);
    expect_fen("0.00", 0);
    expect_fen("007.1", 710);
    expect_fen("1234567.89", 123456789);
    /* The limit itself is accepted. */
    expect_fen("100000000000", LV_MONEY_MAX_FEN);
    expect_fen("100000000000.00", LV_MONEY_MAX_FEN);
}

static void test_reject(void **state)
{
    (void)state;
    const char *bad[] = {"1.234", "-5", "+5", "1e3", "12,000", "", "   ", ".", "12.", ".5",
                         "abc", "1 2", "1.2.3", "12元", "0x10", "1_000", "5-", "1.-5",
                         "100000000000.01", "100000000001", "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i]);
}

static void test_reasons(void **state)
{
    (void)state;
    int64_t fen;
    const char *why;
    assert_int_equal(lv_money_parse("1.234", 5, &fen, &why), LV_EINVAL);
    assert_non_null(strstr(why, "decimals"));
    assert_int_equal(lv_money_parse("-5", 2, &fen, &why), LV_EINVAL);
    assert_non_null(strstr(why, "sign"));
    assert_int_equal(lv_money_parse("12,000", 6, &fen, &why), LV_EINVAL);
    assert_non_null(strstr(why, "thousands"));
    assert_int_equal(lv_money_parse("200000000000", 12, &fen, &why), LV_EINVAL);
    assert_non_null(strstr(why, "limit"));
    assert_int_equal(lv_money_parse("", 0, &fen, &why), LV_EINVAL);
    assert_non_null(strstr(why, "empty"));
    /* len bounds the input: "12.5" read as "12". */
    assert_int_equal(lv_money_parse("12.5", 2, &fen, &why), 0);
    assert_int_equal(fen, 1200);
}

static void expect_format(int64_t fen, const char *want)
{
    char buf[32];
    int n = lv_money_format(fen, buf, sizeof buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_format(void **state)
{
    (void)state;
    expect_format(123450, "1234.50");
    expect_format(1250, "12.50");
    expect_format(7, "0.07");
    expect_format(0, "0.00");
    expect_format(-7, "-0.07");
    expect_format(-123456, "-1234.56");
    expect_format(LV_MONEY_MAX_FEN, "100000000000.00");
    expect_format(INT64_MIN, "-92233720368547758.08");

    /* Truncated like snprintf: the return value is the full length. */
    char small[5];
    assert_int_equal(lv_money_format(123450, small, sizeof small), 7);
    assert_string_equal(small, "1234");

    /* Round trip through the parser. */
    char buf[32];
    lv_money_format(98765, buf, sizeof buf);
    int64_t fen;
    const char *why;
    assert_int_equal(lv_money_parse(buf, strlen(buf), &fen, &why), 0);
    assert_int_equal(fen, 98765);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
