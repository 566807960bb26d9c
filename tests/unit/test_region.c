/* lv_region: 12-digit 统计用区划代码. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_region.h"

static int parse(const char *s, char out[13], const char **why)
{
    *why = NULL;
    return lv_region_parse(s, strlen(s), out, why);
}

static void expect_reject(const char *s, const char *english)
{
    char out[13];
    const char *why;
    int r = parse(s, out, &why);
    if (r != LV_EINVAL || !why || !strstr(why, english))
        print_error("\"%s\": %d %s, want \"%s\"\n", s, r, why ? why : "(null)", english);
    assert_int_equal(r, LV_EINVAL);
    assert_non_null(why);
    assert_non_null(strstr(why, english));
}

static void test_valid(void **state)
{
    (void)state;
    char out[13];
    const char *why;
    assert_int_equal(parse("110101001001", out, &why), 0);
    assert_string_equal(out, "110101001001");
    assert_int_equal(parse("  440305003002 ", out, &why), 0);
    assert_string_equal(out, "440305003002");
    /* Edges of the province list. */
    const char *ok[] = {"150101000000", "230101000000", "310101000000", "370101000000",
                        "460101000000", "540101000000", "650101000000", "710101000000",
                        "810101000000", "820101000000"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(parse(ok[i], out, &why), 0);
        assert_string_equal(out, ok[i]);
    }
}

static void test_length(void **state)
{
    (void)state;
    expect_reject("11010100100", "12 digits");   /* 11 */
    expect_reject("1101010010011", "12 digits"); /* 13 */
    expect_reject("", "12 digits");
}

static void test_non_digit(void **state)
{
    (void)state;
    expect_reject("11010100100A", "non-digit");
    expect_reject("ab0101001001", "non-digit");
    expect_reject("110101 01001", "non-digit");
}

static void test_province(void **state)
{
    (void)state;
    const char *bad[] = {"990101001001", "100101001001", "160101001001", "240101001001",
                         "380101001001", "470101001001", "550101001001", "660101001001",
                         "700101001001", "830101001001", "000101001001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(bad[i], "province");
}

static void test_zero_parts(void **state)
{
    (void)state;
    expect_reject("110100001001", "county");
    expect_reject("110001001001", "city");
}

static void test_county_town(void **state)
{
    (void)state;
    char county[7], town[10];
    lv_region_county("440305003002", county);
    assert_string_equal(county, "440305");
    lv_region_town("440305003002", town);
    assert_string_equal(town, "440305003");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),      cmocka_unit_test(test_length),
        cmocka_unit_test(test_non_digit),  cmocka_unit_test(test_province),
        cmocka_unit_test(test_zero_parts), cmocka_unit_test(test_county_town),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
