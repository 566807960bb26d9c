/* lv_idnum: GB 11643 validation, 15→18 upgrade, mask, gender, birth date. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_time.h"

/* Worked example, region 110101, birth 19900307, sequence 123:
 *   digits   1 1  0 1 0 1 1 9 9 0 0 3  0 7 1 2 3
 *   weights  7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
 *   products 7 9  0 5 0 4 2 9 54 0 0 27 0 35 8 8 6 = 174
 *   174 mod 11 = 9, and "10X98765432"[9] = '3'  ->  110101199003071233
 * Sequence 125 instead: 174 - 6 + 10 = 178, 178 mod 11 = 2 -> 'X'.
 * Sequence 124: 176 mod 11 = 0 -> '1' (17th digit even: female). */
#define ID_OK "110101199003071233"
#define ID_X "11010119900307125X"
#define ID_F "110101199003071241"

static int parse(const char *s, lv_idnum_t *out, const char **why)
{
    *why = NULL;
    return lv_idnum_parse(s, strlen(s), out, why);
}

/* Builds an 18-char ID with a correct check char, so only the part under
 * test can make it invalid. */
static void make_id(const char *region6, const char *birth8, const char *seq3, char out[19])
{
    memcpy(out, region6, 6);
    memcpy(out + 6, birth8, 8);
    memcpy(out + 14, seq3, 3);
    out[17] = lv_idnum_check_char(out);
    out[18] = '\0';
}

static void expect_reject(const char *s, const char *english)
{
    lv_idnum_t id;
    const char *why;
    int r = parse(s, &id, &why);
    if (r != LV_EINVAL || !why || !strstr(why, english))
        print_error("\"%s\": %d %s, want \"%s\"\n", s, r, why ? why : "(null)", english);
    assert_int_equal(r, LV_EINVAL);
    assert_non_null(why);
    assert_non_null(strstr(why, english));
}

static void test_check_char(void **state)
{
    (void)state;
    assert_int_equal(lv_idnum_check_char("11010119900307123"), '3');
    assert_int_equal(lv_idnum_check_char("11010119900307125"), 'X');
    assert_int_equal(lv_idnum_check_char("11010119900307124"), '1');
}

static void test_valid(void **state)
{
    (void)state;
    lv_idnum_t id;
    const char *why;
    assert_int_equal(parse(ID_OK, &id, &why), 0);
    assert_string_equal(id.s, ID_OK);
    assert_int_equal(parse("  " ID_OK " ", &id, &why), 0);
    assert_string_equal(id.s, ID_OK);
}

static void test_check_x(void **state)
{
    (void)state;
    lv_idnum_t id;
    const char *why;
    assert_int_equal(parse(ID_X, &id, &why), 0);
    assert_string_equal(id.s, ID_X);
    assert_int_equal(parse("11010119900307125x", &id, &why), 0);
    assert_string_equal(id.s, ID_X); /* normalised to uppercase */
    /* X where the check digit should be a digit, and a digit where X belongs. */
    expect_reject("11010119900307123X", "check");
    expect_reject("110101199003071250", "check");
}

static void test_wrong_check(void **state)
{
    (void)state;
    expect_reject("110101199003071234", "check");
    expect_reject("110101199003071230", "check");
    /* One transposed digit changes the check char. */
    expect_reject("110101199003071323", "check");
}

static void test_upgrade_15(void **state)
{
    (void)state;
    lv_idnum_t id;
    const char *why;
    /* 110101 900307 123 -> 110101 19900307 123 + check '3'. */
    assert_int_equal(parse("110101900307123", &id, &why), 0);
    assert_string_equal(id.s, ID_OK);
    assert_int_equal(parse("110101900307124", &id, &why), 0);
    assert_string_equal(id.s, ID_F);
    /* A 15-digit number with an impossible date is still rejected. */
    expect_reject("110101990229123", "birth");
    expect_reject("11010190030712X", "non-digit");
}

static void test_bad_dates(void **state)
{
    (void)state;
    char s[19];
    make_id("110101", "19990229", "123", s); /* 1999 is not a leap year */
    expect_reject(s, "birth");
    make_id("110101", "20000230", "123", s);
    expect_reject(s, "birth");
    make_id("110101", "19001301", "123", s);
    expect_reject(s, "birth");
    make_id("110101", "19900007", "123", s);
    expect_reject(s, "birth");
    make_id("110101", "19900300", "123", s);
    expect_reject(s, "birth");
    make_id("110101", "18991231", "123", s);
    expect_reject(s, "birth");

    /* Controls: the same builder with a real date is accepted. */
    lv_idnum_t id;
    const char *why;
    make_id("110101", "20000229", "123", s);
    assert_int_equal(parse(s, &id, &why), 0);
    make_id("110101", "19000101", "123", s);
    assert_int_equal(parse(s, &id, &why), 0);
}

static void date8(int64_t ms, char out[9])
{
    char d[11];
    lv_date_format(ms, d);
    memcpy(out, d, 4);
    memcpy(out + 4, d + 5, 2);
    memcpy(out + 6, d + 8, 2);
    out[8] = '\0';
}

static void test_future_birth(void **state)
{
    (void)state;
    char s[19], b[9];
    lv_idnum_t id;
    const char *why;
    /* Today (UTC) is never in the future. */
    date8(lv_now_ms(), b);
    make_id("110101", b, "123", s);
    assert_int_equal(parse(s, &id, &why), 0);
    /* Two days ahead is in the future in every time zone. */
    date8(lv_now_ms() + 2 * LV_DAY_MS, b);
    make_id("110101", b, "123", s);
    expect_reject(s, "future");
    date8(lv_now_ms() + 400 * LV_DAY_MS, b);
    make_id("110101", b, "123", s);
    expect_reject(s, "future");
}

static void test_length(void **state)
{
    (void)state;
    expect_reject("", "length");
    expect_reject("   ", "length");
    expect_reject("11010119900307123", "length");   /* 17 */
    expect_reject("1101011990030712333", "length"); /* 19 */
    expect_reject("1101019003071234", "length");    /* 16 */
    expect_reject("11010190030712", "length");      /* 14 */
}

static void test_non_digit(void **state)
{
    (void)state;
    expect_reject("1101011990030712a3", "non-digit");
    expect_reject("X10101199003071233", "non-digit");
    expect_reject("11010119900307X233", "non-digit");
    expect_reject("110101 99003071233", "non-digit");
    expect_reject("11010119900307123Y", "non-digit");
    expect_reject("11010a900307123", "non-digit");
}

static void test_region_zero(void **state)
{
    (void)state;
    char s[19];
    make_id("000000", "19900307", "123", s);
    expect_reject(s, "region");
    expect_reject("000000900307123", "region");
}

static void test_mask(void **state)
{
    (void)state;
    char out[19];
    lv_idnum_mask(ID_OK, out);
    assert_string_equal(out, "110101********1233");
    lv_idnum_mask(ID_X, out);
    assert_string_equal(out, "110101********125X");
    /* Not an 18-char ID: nothing of it is shown. */
    lv_idnum_mask("12345", out);
    assert_null(strchr(out, '1'));
}

/* Free text: an ID number is masked wherever it stands, even glued to
 * letters; a record id that merely has many digits is left alone. */
static void test_mask_text(void **state)
{
    (void)state;
    char a[] = "户主 " ID_OK " 电话 13912345678";
    lv_mask_text(a);
    assert_string_equal(a, "户主 110101********1233 电话 139****5678");
    char b[] = "ID" ID_X "x";
    lv_mask_text(b);
    assert_string_equal(b, "ID110101********125Xx");
    char c[] = "结算单 YB620521000001682";
    lv_mask_text(c);
    assert_string_equal(c, "结算单 YB620521000001682");
}

static void test_gender_birth(void **state)
{
    (void)state;
    lv_idnum_t id;
    const char *why;
    assert_int_equal(parse(ID_OK, &id, &why), 0);
    assert_int_equal(lv_idnum_gender(&id), 1);
    /* 1990-03-07 00:00 UTC. */
    assert_int_equal(lv_idnum_birth_ms(&id), INT64_C(636768000000));
    assert_int_equal(parse(ID_F, &id, &why), 0);
    assert_int_equal(lv_idnum_gender(&id), 2);

    char s[19];
    make_id("110101", "19000101", "120", s);
    assert_int_equal(parse(s, &id, &why), 0);
    assert_int_equal(lv_idnum_birth_ms(&id), INT64_C(-25567) * LV_DAY_MS);
    assert_int_equal(lv_idnum_gender(&id), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_char),  cmocka_unit_test(test_valid),
        cmocka_unit_test(test_check_x),     cmocka_unit_test(test_wrong_check),
        cmocka_unit_test(test_upgrade_15),  cmocka_unit_test(test_bad_dates),
        cmocka_unit_test(test_future_birth), cmocka_unit_test(test_length),
        cmocka_unit_test(test_non_digit),   cmocka_unit_test(test_region_zero),
        cmocka_unit_test(test_mask),        cmocka_unit_test(test_gender_birth),
        cmocka_unit_test(test_mask_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
