/* 公民身份号码 (GB 11643-1999): validation, 15→18 upgrade, masking. */
#ifndef LV_IDNUM_H
#define LV_IDNUM_H

#include <stddef.h>
#include <stdint.h>

/* A validated 18-character ID number. Only lv_idnum_parse makes one, so a
 * value of this type is always valid and never confused with another string. */
typedef struct {
    char s[19]; /* 17 digits + check char ('0'-'9' or 'X'), NUL-terminated */
} lv_idnum_t;

/* Parses and validates s[0..len): surrounding spaces are trimmed; 18
 * characters with a lowercase or uppercase x check char, or a 15-digit legacy
 * number (upgraded: century "19" inserted, check char computed). Checks the
 * region part (6 digits, not 000000), the birth date (a real calendar date,
 * 1900-01-01 .. today's year) and the ISO 7064 MOD 11-2 check char.
 * Returns 0, or LV_EINVAL with *reason a static message (Chinese, English in
 * brackets), e.g. "校验码错误 (bad check character)". */
int lv_idnum_parse(const char *s, size_t len, lv_idnum_t *out, const char **reason);

/* The check char for 17 digits. */
char lv_idnum_check_char(const char first17[17]);

/* Composes an ID number from its parts (6-digit region, 8-digit birth date
 * YYYYMMDD, 3-digit sequence) and the check char; no other validation. */
void lv_idnum_compose(const char region6[6], const char birth8[8], const char seq3[3], char out[19]);

/* Masked for display: first 6 and last 4 kept, e.g. "410102********123X". */
void lv_idnum_mask(const char *id18, char out[19]);

/* A field that claims to be an ID number, valid or not (a rejected or a
 * legacy one): 18 ASCII characters as lv_idnum_mask, other ASCII longer than
 * 10 keeps its first 6 and last 4, anything else is all stars. out must hold
 * strlen(s) + 1 bytes. */
void lv_mask_idnum_field(const char *s, char *out);

/* A phone field: only digits are masked, the first 3 and last 4 kept when
 * there are at least 8, so "+86 138-0000-1234" keeps its shape. out must hold
 * strlen(s) + 1 bytes. */
void lv_mask_phone(const char *s, char *out);

/* Birth date as UTC midnight milliseconds. */
int64_t lv_idnum_birth_ms(const lv_idnum_t *id);

/* 1 male, 2 female (the 17th digit's parity). */
int lv_idnum_gender(const lv_idnum_t *id);

/* Free text: digit runs that look like an ID number (first 6 and last 4
 * kept) or a mobile number (first 3 and last 4 kept) are masked in place. */
void lv_mask_text(char *s);

#endif
