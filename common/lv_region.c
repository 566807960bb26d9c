/* 统计用区划代码 validation. */
#include "lv_region.h"

#include <string.h>

#include "lv_err.h"

static int province_known(int p)
{
    return (p >= 11 && p <= 15) || (p >= 21 && p <= 23) || (p >= 31 && p <= 37) ||
           (p >= 41 && p <= 46) || (p >= 50 && p <= 54) || (p >= 61 && p <= 65) || p == 71 ||
           p == 81 || p == 82;
}

int lv_region_parse(const char *s, size_t len, char out[13], const char **reason)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;

    if (len != 12) {
        *reason = "区划代码长度错误 (region code must be 12 digits)";
        return LV_EINVAL;
    }
    for (size_t i = 0; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9') {
            *reason = "区划代码含非数字字符 (non-digit in region code)";
            return LV_EINVAL;
        }
    }
    if (!province_known((s[0] - '0') * 10 + (s[1] - '0'))) {
        *reason = "省级代码不存在 (unknown province code)";
        return LV_EINVAL;
    }
    if (s[2] == '0' && s[3] == '0') {
        *reason = "市级代码为 00 (city code is 00)";
        return LV_EINVAL;
    }
    if (s[4] == '0' && s[5] == '0') {
        *reason = "县级代码为 00 (county code is 00)";
        return LV_EINVAL;
    }
    memcpy(out, s, 12);
    out[12] = '\0';
    return 0;
}

void lv_region_county(const char *region12, char out[7])
{
    memcpy(out, region12, 6);
    out[6] = '\0';
}

void lv_region_town(const char *region12, char out[10])
{
    memcpy(out, region12, 9);
    out[9] = '\0';
}
