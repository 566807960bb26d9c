/* Money in integer fen. Parsing is strict on purpose: a feed that writes
 * "1e3" or "12,000" is wrong, and guessing what it meant would move money. */
#include "lv_money.h"

#include <inttypes.h>
#include <stdio.h>

#include "lv_err.h"

static int fail(const char **reason, const char *why)
{
    *reason = why;
    return LV_EINVAL;
}

int lv_money_parse(const char *s, size_t len, int64_t *fen, const char **reason)
{
    static const char *bad_format = "金额格式错误 (not a plain decimal amount)";
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;

    if (!len)
        return fail(reason, "金额为空 (empty amount)");
    if (*s == '-' || *s == '+')
        return fail(reason, "金额不能带正负号 (sign not allowed)");

    size_t i = 0;
    int64_t yuan = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        /* Stop before overflow; anything this large is over the limit anyway. */
        if (yuan > LV_MONEY_MAX_FEN / 100)
            return fail(reason, "金额超过上限 (amount over the limit)");
        yuan = yuan * 10 + (s[i] - '0');
        i++;
    }
    size_t int_digits = i;
    int64_t cents = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        size_t dec = i - start;
        if (!int_digits || !dec)
            return fail(reason, bad_format);
        if (i == len && dec > 2)
            return fail(reason, "金额最多两位小数 (more than 2 decimals)");
        if (dec == 1)
            cents = (s[start] - '0') * 10;
        else if (dec == 2)
            cents = (s[start] - '0') * 10 + (s[start + 1] - '0');
    }
    if (i < len) {
        if (s[i] == ',')
            return fail(reason, "金额不能含千位分隔符 (thousands separator not allowed)");
        return fail(reason, bad_format);
    }
    if (!int_digits)
        return fail(reason, bad_format);
    if (yuan > LV_MONEY_MAX_FEN / 100 || yuan * 100 + cents > LV_MONEY_MAX_FEN)
        return fail(reason, "金额超过上限 (amount over the limit)");
    *fen = yuan * 100 + cents;
    return 0;
}

int lv_money_format(int64_t fen, char *buf, size_t n)
{
    /* Unsigned magnitude so INT64_MIN does not overflow on negation. */
    uint64_t mag = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    return snprintf(buf, n, "%s%" PRIu64 ".%02" PRIu64, fen < 0 ? "-" : "", mag / 100, mag % 100);
}
