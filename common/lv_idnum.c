/* 公民身份号码 (GB 11643-1999) validation. */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include "lv_idnum.h"

#include <stdbool.h>

#include <string.h>

#include "lv_err.h"
#include "lv_time.h"

/* ID numbers are issued in China, so "today" is the date in Beijing (UTC+8);
 * using UTC would reject a baby registered just after midnight. */
#define BEIJING_OFFSET_MS ((int64_t)8 * 3600 * 1000)

char lv_idnum_check_char(const char first17[17])
{
    static const int weight[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char check[11] = {'1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'};
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (first17[i] - '0') * weight[i];
    return check[sum % 11];
}

void lv_idnum_compose(const char region6[6], const char birth8[8], const char seq3[3], char out[19])
{
    memcpy(out, region6, 6);
    memcpy(out + 6, birth8, 8);
    memcpy(out + 14, seq3, 3);
    out[17] = lv_idnum_check_char(out);
    out[18] = '\0';
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int fail(const char **reason, const char *why)
{
    *reason = why;
    return LV_EINVAL;
}

int lv_idnum_parse(const char *s, size_t len, lv_idnum_t *out, const char **reason)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;

    char id[19];
    if (len == 18) {
        if (!all_digits(s, 17))
            return fail(reason, "身份证号含非法字符 (non-digit character)");
        memcpy(id, s, 17);
        char c = s[17];
        if (c == 'x')
            c = 'X';
        if (c != 'X' && (c < '0' || c > '9'))
            return fail(reason, "身份证号含非法字符 (non-digit character)");
        id[17] = c;
    } else if (len == 15) {
        if (!all_digits(s, 15))
            return fail(reason, "身份证号含非法字符 (non-digit character)");
        /* Legacy numbers have a 2-digit year, always 19xx, and no check char. */
        memcpy(id, s, 6);
        id[6] = '1';
        id[7] = '9';
        memcpy(id + 8, s + 6, 9);
        id[17] = lv_idnum_check_char(id);
    } else {
        return fail(reason, "身份证号长度错误 (wrong length: must be 18 or 15 characters)");
    }
    id[18] = '\0';

    if (memcmp(id, "000000", 6) == 0)
        return fail(reason, "身份证号地区码错误 (bad region code)");

    int y = num(id + 6, 4), m = num(id + 10, 2), d = num(id + 12, 2);
    int64_t ms;
    const char *why;
    if (y < 1900 || lv_date_parse(id + 6, 8, &ms, &why))
        return fail(reason, "身份证号出生日期无效 (bad birth date)");
    int ty, tm, td;
    lv_civil_from_days((lv_now_ms() + BEIJING_OFFSET_MS) / LV_DAY_MS, &ty, &tm, &td);
    if (lv_days_from_civil(y, m, d) > lv_days_from_civil(ty, tm, td))
        return fail(reason, "身份证号出生日期在未来 (birth date in the future)");

    if (id[17] != lv_idnum_check_char(id))
        return fail(reason, "身份证号校验码错误 (bad check character)");

    memcpy(out->s, id, sizeof out->s);
    return 0;
}

void lv_idnum_mask(const char *id18, char out[19])
{
    size_t n = id18 ? strnlen(id18, 18) : 0;
    if (n != 18) {
        /* Not an ID we know the shape of: show nothing of it. */
        memcpy(out, "******************", 19);
        return;
    }
    memcpy(out, id18, 6);
    memset(out + 6, '*', 8);
    memcpy(out + 14, id18 + 14, 4);
    out[18] = '\0';
}

static bool all_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

void lv_mask_idnum_field(const char *s, char *out)
{
    size_t n = strlen(s);
    if (n == 18 && all_ascii(s)) {
        char m[19];
        lv_idnum_mask(s, m);
        memcpy(out, m, 19);
        return;
    }
    bool keep = n > 10 && all_ascii(s);
    for (size_t i = 0; i < n; i++)
        out[i] = keep && (i < 6 || i >= n - 4) ? s[i] : '*';
    out[n] = '\0';
}

void lv_mask_phone(const char *s, char *out)
{
    size_t n = strlen(s), digits = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            bool keep = digits >= 8 && (d < 3 || d >= digits - 4);
            out[i] = keep ? s[i] : '*';
            d++;
        } else {
            out[i] = s[i];
        }
    }
    out[n] = '\0';
}

int64_t lv_idnum_birth_ms(const lv_idnum_t *id)
{
    return lv_days_from_civil(num(id->s + 6, 4), num(id->s + 10, 2), num(id->s + 12, 2)) * LV_DAY_MS;
}

int lv_idnum_gender(const lv_idnum_t *id)
{
    return (id->s[16] - '0') % 2 ? 1 : 2;
}

void lv_mask_text(char *s)
{
    size_t i = 0;
    while (s[i]) {
        if (s[i] < '0' || s[i] > '9') {
            i++;
            continue;
        }
        size_t start = i;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
        if (i - start == 17 && (s[i] == 'X' || s[i] == 'x'))
            i++;
        size_t len = i - start;
        /* An 18-character run whose check character is right is an ID
         * number wherever it stands, even glued to letters. */
        if (len == 18) {
            char c = s[start + 17] == 'x' ? 'X' : s[start + 17];
            if (lv_idnum_check_char(s + start) == c) {
                for (size_t k = start + 6; k < i - 4; k++)
                    s[k] = '*';
                continue;
            }
        }
        /* Otherwise, joined to letters it is some other code (a record id). */
        bool alone = (start == 0 || !((s[start - 1] >= 'A' && s[start - 1] <= 'Z') ||
                                     (s[start - 1] >= 'a' && s[start - 1] <= 'z'))) &&
                     !((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'));
        if (!alone)
            continue;
        if (len >= 15) {
            for (size_t k = start + 6; k < i - 4; k++)
                s[k] = '*';
        } else if (len == 11 && s[start] == '1') {
            for (size_t k = start + 3; k < i - 4; k++)
                s[k] = '*';
        }
    }
}
