/* Structured logs: one JSON object per line on stderr. Never log an ID
 * number or a phone unmasked (lv_idnum_mask). */
#ifndef LV_LOG_H
#define LV_LOG_H

void lv_log_init(const char *service);
void lv_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lv_info(...) lv_log("info", __VA_ARGS__)
#define lv_warn(...) lv_log("warn", __VA_ARGS__)
#define lv_error(...) lv_log("error", __VA_ARGS__)

#endif
