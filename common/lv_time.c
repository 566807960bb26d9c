/* Dates and clocks. Calendar arithmetic is done by hand (Howard Hinnant's
 * days_from_civil) so it never depends on the process time zone. */
#define _POSIX_C_SOURCE 200809L

#include "lv_time.h"

#include <time.h>

#include "lv_err.h"

/* Floor division, so dates before 1970 land on the right day. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int64_t lv_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = floor_div(yy, 400);
    int64_t yoe = yy - era * 400;                                /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;         /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void lv_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int lv_date_parse(const char *s, size_t len, int64_t *ms, const char **reason)
{
    static const char *bad_format = "日期格式错误 (bad date format: want YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD)";
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;

    int y, m, d;
    if (len == 10 && (s[4] == '-' || s[4] == '/') && s[7] == s[4]) {
        y = digits(s, 4);
        m = digits(s + 5, 2);
        d = digits(s + 8, 2);
    } else if (len == 8) {
        y = digits(s, 4);
        m = digits(s + 4, 2);
        d = digits(s + 6, 2);
    } else {
        *reason = bad_format;
        return LV_EINVAL;
    }
    if (y < 0 || m < 0 || d < 0) {
        *reason = bad_format;
        return LV_EINVAL;
    }
    if (y < 1900 || y > 2100) {
        *reason = "年份超出范围 (year must be 1900..2100)";
        return LV_EINVAL;
    }
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
        *reason = "日期不存在 (no such date)";
        return LV_EINVAL;
    }
    *ms = lv_days_from_civil(y, m, d) * LV_DAY_MS;
    return 0;
}

/* Writes v as exactly w decimal digits (v is clamped by the caller). */
static void put_num(char *out, int v, int w)
{
    for (int i = w - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

static void format_date(int64_t days, char *out)
{
    int y, m, d;
    lv_civil_from_days(days, &y, &m, &d);
    /* Four digits is all the format has room for. */
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    put_num(out, y, 4);
    out[4] = '-';
    put_num(out + 5, m, 2);
    out[7] = '-';
    put_num(out + 8, d, 2);
    out[10] = '\0';
}

void lv_date_format(int64_t ms, char out[11])
{
    format_date(floor_div(ms, LV_DAY_MS), out);
}

void lv_datetime_format(int64_t ms, char out[17])
{
    int64_t days = floor_div(ms, LV_DAY_MS);
    int64_t min = (ms - days * LV_DAY_MS) / 60000;
    format_date(days, out);
    out[10] = ' ';
    put_num(out + 11, (int)(min / 60), 2);
    out[13] = ':';
    put_num(out + 14, (int)(min % 60), 2);
    out[16] = '\0';
}

int64_t lv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lv_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
