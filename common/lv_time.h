/* Time: int64 milliseconds since the epoch, UTC. Dates are UTC midnight. */
#ifndef LV_TIME_H
#define LV_TIME_H

#include <stddef.h>
#include <stdint.h>

#define LV_DAY_MS ((int64_t)86400000)

/* Days since 1970-01-01 for a proleptic Gregorian date (no range check). */
int64_t lv_days_from_civil(int y, int m, int d);
/* The inverse. */
void lv_civil_from_days(int64_t days, int *y, int *m, int *d);

/* Parses YYYY-MM-DD, YYYY/MM/DD or YYYYMMDD (spaces trimmed) into UTC midnight
 * ms. The date must exist (leap years) with 1900 <= year <= 2100.
 * Returns 0 or LV_EINVAL with *reason static. */
int lv_date_parse(const char *s, size_t len, int64_t *ms, const char **reason);

/* Formats ms as YYYY-MM-DD (UTC). */
void lv_date_format(int64_t ms, char out[11]);

/* Formats ms as YYYY-MM-DD HH:MM (UTC). */
void lv_datetime_format(int64_t ms, char out[17]);

/* The current time (CLOCK_REALTIME) in ms. */
int64_t lv_now_ms(void);

/* A monotonic clock in ms, for timeouts. */
int64_t lv_mono_ms(void);
/* The same clock in microseconds, for latency figures. */
int64_t lv_mono_us(void);

#endif
