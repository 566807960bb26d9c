/* 统计用区划代码: 12 digits, 省2 市2 县2 乡3 村3. */
#ifndef LV_REGION_H
#define LV_REGION_H

#include <stddef.h>

/* Validates s[0..len) (spaces trimmed): exactly 12 ASCII digits, a province
 * code from the national list (11..15, 21..23, 31..37, 41..46, 50..54,
 * 61..65, 71, 81, 82), city and county not 00. Writes the 12 digits and NUL
 * to out. Returns 0 or LV_EINVAL with *reason static. */
int lv_region_parse(const char *s, size_t len, char out[13], const char **reason);

/* The 6-digit county code (the partition key) of a region code, NUL-terminated. */
void lv_region_county(const char *region12, char out[7]);

/* The 9-digit town (乡镇) code, NUL-terminated. */
void lv_region_town(const char *region12, char out[10]);

#endif
