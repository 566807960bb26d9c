/* Money: integer fen (分), never floating point. */
#ifndef LV_MONEY_H
#define LV_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Largest amount accepted from a feed: 1e11 元, so sums never overflow int64. */
#define LV_MONEY_MAX_FEN ((int64_t)10000000000000)

/* Parses 元 with at most 2 decimals into fen: "12.5" -> 1250, "12" -> 1200,
 * "0.07" -> 7, " 12.50 " -> 1250 (spaces trimmed). Rejected with a reason:
 * empty, a sign ("-5", "+5"), more than 2 decimals ("1.234"), exponents
 * ("1e3"), thousands separators ("12,000"), a bare "." or "12." or ".5",
 * anything not a digit, and values above LV_MONEY_MAX_FEN.
 * Returns 0 or LV_EINVAL with *reason static (Chinese, English in brackets). */
int lv_money_parse(const char *s, size_t len, int64_t *fen, const char **reason);

/* Formats fen as 元 with 2 decimals ("1234.50", "-0.07"); returns chars written
 * (like snprintf). */
int lv_money_format(int64_t fen, char *buf, size_t n);

#endif
