/* lv_time: civil-date arithmetic, date parsing and formatting, clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_time.h"

static void expect_date(const char *s, int64_t days)
{
    int64_t ms = -1;
    const char *why = NULL;
    int r = lv_date_parse(s, strlen(s), &ms, &why);
    if (r != 0)
        print_error("\"%s\" rejected: %s\n", s, why ? why : "(null)");
    assert_int_equal(r, 0);
    assert_int_equal(ms, days * LV_DAY_MS);
}

static void expect_reject(const char *s, const char *english)
{
    int64_t ms = -1;
    const char *why = NULL;
    int r = lv_date_parse(s, strlen(s), &ms, &why);
    if (r != LV_EINVAL || !why || !strstr(why, english))
        print_error("\"%s\": %d %s, want \"%s\"\n", s, r, why ? why : "(null)", english);
    assert_int_equal(r, LV_EINVAL);
    assert_non_null(why);
    assert_non_null(strstr(why, english));
    assert_int_equal(ms, -1);
}

static void test_known_days(void **state)
{
    (void)state;
    assert_int_equal(lv_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(lv_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(lv_days_from_civil(1900, 1, 1), -25567);
    assert_int_equal(lv_days_from_civil(2024, 2, 29), 19782);
    assert_int_equal(lv_days_from_civil(1969, 12, 31), -1);
}

static void test_formats(void **state)
{
    (void)state;
    expect_date("2024-02-29", 19782);
    expect_date("2024/02/29", 19782);
    expect_date("20240229", 19782);
    expect_date("  2024-02-29 ", 19782);
    expect_date("1970-01-01", 0);
    expect_date("1900-01-01", -25567);
    expect_date("2000-02-29", lv_days_from_civil(2000, 2, 29));
    expect_date("2100-12-31", lv_days_from_civil(2100, 12, 31));
}

static void test_bad_dates(void **state)
{
    (void)state;
    expect_reject("2023-02-29", "no such date");
    expect_reject("2100-02-29", "no such date"); /* not a leap year */
    expect_reject("2026-13-01", "no such date");
    expect_reject("2026-00-10", "no such date");
    expect_reject("2026-04-31", "no such date");
    expect_reject("2026-01-00", "no such date");
    expect_reject("20261301", "no such date");
    expect_reject("1899-12-31", "year");
    expect_reject("2101-01-01", "year");
    expect_reject("0000-01-01", "year");
    expect_reject("2026-1-5", "format");
    expect_reject("2026-01-5", "format");
    expect_reject("2026/1/05", "format");
    expect_reject("2026-01/05", "format"); /* mixed separators */
    expect_reject("2026.01.05", "format");
    expect_reject("26-01-05", "format");
    expect_reject("2026-01-05T00:00", "format");
    expect_reject("2026-0a-05", "format");
    expect_reject("2026-+1-05", "format");
    expect_reject("", "format");
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char out[11];
    lv_date_format(0, out);
    assert_string_equal(out, "1970-01-01");
    lv_date_format(-1, out); /* one ms before the epoch is the day before */
    assert_string_equal(out, "1969-12-31");
    lv_date_format(19782 * LV_DAY_MS + LV_DAY_MS - 1, out);
    assert_string_equal(out, "2024-02-29");

    const char *dates[] = {"1900-01-01", "1969-12-31", "2000-02-29", "2024-02-29", "2026-12-31",
                           "2100-12-31"};
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        int64_t ms;
        const char *why;
        assert_int_equal(lv_date_parse(dates[i], 10, &ms, &why), 0);
        lv_date_format(ms, out);
        assert_string_equal(out, dates[i]);
    }

    char dt[17];
    lv_datetime_format(19782 * LV_DAY_MS + 13 * 3600000 + 5 * 60000 + 59999, dt);
    assert_string_equal(dt, "2024-02-29 13:05");
    lv_datetime_format(-60000, dt);
    assert_string_equal(dt, "1969-12-31 23:59");
}

static void test_civil_round_trip(void **state)
{
    (void)state;
    /* Every day from 1600 to 2400, checking each step moves one calendar day. */
    int64_t first = lv_days_from_civil(1600, 1, 1);
    int64_t last = lv_days_from_civil(2400, 12, 31);
    int py, pm, pd;
    lv_civil_from_days(first, &py, &pm, &pd);
    assert_int_equal(py, 1600);
    assert_int_equal(pm, 1);
    assert_int_equal(pd, 1);
    for (int64_t day = first + 1; day <= last; day++) {
        int y, m, d;
        lv_civil_from_days(day, &y, &m, &d);
        assert_int_equal(lv_days_from_civil(y, m, d), day);
        if (d == pd + 1) {
            assert_true(y == py && m == pm);
        } else {
            assert_int_equal(d, 1);
            assert_true((y == py && m == pm + 1) || (y == py + 1 && m == 1 && pm == 12));
        }
        py = y;
        pm = m;
        pd = d;
    }
    assert_int_equal(py, 2400);
    assert_int_equal(pm, 12);
    assert_int_equal(pd, 31);
    /* 1600..2399 is two 400-year cycles of 146097 days; 2400 is a leap year. */
    assert_int_equal(last - first + 1, 2 * 146097 + 366);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t now = lv_now_ms();
    assert_true(now > INT64_C(1700000000000)); /* after Nov 2023 */
    assert_true(now < INT64_C(4102444800000)); /* before 2100 */
    int64_t a = lv_mono_ms();
    int64_t b = lv_mono_ms();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_days),        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_bad_dates),         cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_civil_round_trip),  cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
