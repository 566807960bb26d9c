#define _POSIX_C_SOURCE 200809L
#include "lv_token.h"

#include <sodium.h>
#include <string.h>

#include "lv_err.h"

#define SECRET_BYTES 32
#define ID_BYTES 6

static const char *const s_roles[] = {
    "province", "city", "county", "town", "investigator", "department", "fund",
};
#define NROLES (sizeof s_roles / sizeof s_roles[0])

int lv_token_new(char token[LV_TOKEN_MAX], char id[LV_TOKEN_ID_MAX])
{
    if (sodium_init() < 0)
        return LV_EIO;
    unsigned char secret[SECRET_BYTES], idb[ID_BYTES];
    randombytes_buf(secret, sizeof secret);
    randombytes_buf(idb, sizeof idb);
    memcpy(token, "lvt_", 4);
    sodium_bin2base64(token + 4, LV_TOKEN_MAX - 4, secret, sizeof secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    memcpy(id, "tk_", 3);
    sodium_bin2hex(id + 3, LV_TOKEN_ID_MAX - 3, idb, sizeof idb);
    sodium_memzero(secret, sizeof secret);
    return 0;
}

int lv_token_hash(const char *token, size_t len, char hex[LV_TOKEN_HASH_HEX])
{
    unsigned char h[32];
    if (sodium_init() < 0 ||
        crypto_generichash(h, sizeof h, (const unsigned char *)token, len, NULL, 0) != 0)
        return LV_EIO;
    sodium_bin2hex(hex, LV_TOKEN_HASH_HEX, h, sizeof h);
    return 0;
}

lv_role_t lv_token_role(const char *name)
{
    for (size_t i = 0; name && i < NROLES; i++)
        if (!strcmp(name, s_roles[i]))
            return (lv_role_t)(1 << i);
    return 0;
}

const char *lv_token_role_name(lv_role_t role)
{
    for (size_t i = 0; i < NROLES; i++)
        if (role == (lv_role_t)(1 << i))
            return s_roles[i];
    return "";
}

int lv_token_check_scope(const char *role, const char *prefix, const char **reason)
{
    lv_role_t r = lv_token_role(role);
    if (!r) {
        *reason = "未知角色 (unknown role); one of province city county town investigator "
                  "department fund";
        return LV_EINVAL;
    }
    size_t n = prefix ? strlen(prefix) : 0;
    if (n == 0 || strspn(prefix, "0123456789") != n) {
        *reason = "区划前缀须为数字 (the region prefix must be digits)";
        return LV_EINVAL;
    }
    size_t want = r == LV_ROLE_PROVINCE ? 2 : r == LV_ROLE_CITY ? 4 : r == LV_ROLE_COUNTY ? 6
                : r == LV_ROLE_TOWN   ? 9 : 0;
    if (want ? n != want : (n != 2 && n != 4 && n != 6 && n != 9)) {
        *reason = "区划前缀长度与角色不符: 省 2 位, 市 4 位, 县 6 位, 乡镇 9 位 (the prefix "
                  "length must match the role: province 2, city 4, county 6, town 9)";
        return LV_EINVAL;
    }
    return 0;
}
