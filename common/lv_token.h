/* API tokens of the HTTP gateway. A token is a random secret shown once
 * when issued; only its hash (libsodium crypto_generichash, BLAKE2b-256) is
 * stored. Each token is bound to a role and a region-code prefix. */
#ifndef LV_TOKEN_H
#define LV_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define LV_TOKEN_MAX 64      /* a token: "lvt_" and 43 base64url characters, NUL */
#define LV_TOKEN_ID_MAX 24   /* a token's public id: "tk_" and 12 hex characters, NUL */
#define LV_TOKEN_HASH_HEX 65 /* 64 hex characters and NUL */
#define LV_TOKEN_TEXT_MAX 128 /* longest token text accepted from a client */

/* The roles, each a bit, in the order of lv_token_role_name. */
typedef enum {
    LV_ROLE_PROVINCE = 1 << 0,
    LV_ROLE_CITY = 1 << 1,
    LV_ROLE_COUNTY = 1 << 2,
    LV_ROLE_TOWN = 1 << 3,
    LV_ROLE_INVESTIGATOR = 1 << 4,
    LV_ROLE_DEPARTMENT = 1 << 5,
    LV_ROLE_FUND = 1 << 6,
} lv_role_t;

/* The offices of a level of government (province, city, county, town). */
#define LV_ROLES_REGION (LV_ROLE_PROVINCE | LV_ROLE_CITY | LV_ROLE_COUNTY | LV_ROLE_TOWN)
#define LV_ROLES_ALL (LV_ROLES_REGION | LV_ROLE_INVESTIGATOR | LV_ROLE_DEPARTMENT | LV_ROLE_FUND)

/* A new token and its id from the system's random source. Returns 0 or LV_EIO. */
int lv_token_new(char token[LV_TOKEN_MAX], char id[LV_TOKEN_ID_MAX]);

/* The hex hash under which a token is stored and looked up. */
int lv_token_hash(const char *token, size_t len, char hex[LV_TOKEN_HASH_HEX]);

/* The role of a name, or 0 for an unknown one. */
lv_role_t lv_token_role(const char *name);
const char *lv_token_role_name(lv_role_t role);

/* Checks a role and region prefix pair: province 2 digits, city 4, county 6,
 * town 9; investigator, department and fund any of those lengths. Returns 0
 * or LV_EINVAL with *reason static (Chinese, English in brackets). */
int lv_token_check_scope(const char *role, const char *prefix, const char **reason);

#endif
