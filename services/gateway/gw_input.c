/* Checks of what callers send: text, identifiers, region filters, JSON
 * bodies and money in 元. Everything that reaches SQL passes here first
 * (and then travels as a parameter, never inside the statement). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "lv_money.h"

const char *const gw_risk_factors[] = {
    "因病", "因残", "因学", "因灾", "因意外事故", "因务工就业不稳", "因产业项目失败", "大额刚性支出",
    "其他", NULL,
};

/* jansson refuses a string that is not valid UTF-8 (overlong forms and
 * surrogates included): the one UTF-8 check the gateway needs. */
static bool utf8_ok(const char *s, size_t n)
{
    json_t *t = json_stringn(s, n);
    json_decref(t);
    return t != NULL;
}

static bool text_check(const char *s, size_t max, bool allow_space_controls)
{
    if (!s)
        return false;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(allow_space_controls && (c == '\t' || c == '\n' || c == '\r'))) ||
            c == 0x7f)
            return false;
    }
    return utf8_ok(s, n);
}

bool gw_text_ok(const char *s, size_t max)
{
    return text_check(s, max, true);
}

bool gw_ident_ok(const char *s, size_t max)
{
    return s && *s && text_check(s, max, false);
}

bool gw_region_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 12 && strspn(s, "0123456789") == n;
}

bool gw_in_list(const char *s, const char *const *list)
{
    for (int i = 0; s && list[i]; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

json_t *gw_body_object(gw_req_t *r)
{
    if (r->body.len == 0) {
        gw_bad_request(r, "请求体为空, 需要一个 JSON 对象 (empty body: a JSON object is required)");
        return NULL;
    }
    json_error_t err;
    json_t *o = json_loadb(r->body.s, r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!o) {
        gw_bad_request(r, "JSON 无效 (bad JSON) at line %d column %d: %s", err.line, err.column,
                       err.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        gw_bad_request(r, "请求体须为 JSON 对象 (the body must be a JSON object)");
        return NULL;
    }
    return o;
}

const char *gw_json_text(gw_req_t *r, json_t *o, const char *key, size_t max, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    const char *s = json_string_value(v);
    /* A string with a NUL inside is cut short by C, so its length must agree. */
    if (!s || strlen(s) != json_string_length(v) || !gw_text_ok(s, max)) {
        gw_bad_request(r, "%s 须为不超过 %zu 字节的文本 (must be text of at most %zu bytes)", key,
                       max, max);
        *bad = true;
        return NULL;
    }
    return s;
}

int gw_json_yuan(gw_req_t *r, json_t *o, const char *key, int64_t *fen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    const char *why = "须为元, 最多两位小数 (must be 元 with at most 2 decimals)";
    char text[64];
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        const char *reason = NULL;
        if (strlen(s) == json_string_length(v) && !lv_money_parse(s, strlen(s), fen, &reason))
            return 1;
        gw_bad_request(r, "%s: %s", key, reason ? reason : why);
        return -1;
    }
    if (json_is_integer(v)) {
        json_int_t y = json_integer_value(v);
        if (y >= 0 && y <= LV_MONEY_MAX_FEN / 100) {
            *fen = (int64_t)y * 100;
            return 1;
        }
    } else if (json_is_real(v)) {
        /* A JSON number arrives as a double: take its 2-decimal reading and
         * keep it only when that is what the number says (1.234 is refused,
         * not rounded). Callers who want exactness send a string. */
        double d = json_real_value(v);
        const char *reason;
        if (d >= 0 && d <= (double)(LV_MONEY_MAX_FEN / 100) &&
            snprintf(text, sizeof text, "%.2f", d) < (int)sizeof text &&
            !lv_money_parse(text, strlen(text), fen, &reason) && fabs(d * 100.0 - (double)*fen) < 0.01)
            return 1;
    }
    gw_bad_request(r, "%s %s", key, why);
    return -1;
}

bool gw_scope_region(gw_req_t *r, const char *filter, char out[13])
{
    const char *mine = r->caller.prefix;
    if (!filter || !strncmp(mine, filter, strlen(filter))) {
        snprintf(out, 13, "%s", mine);
        return true;
    }
    if (!strncmp(filter, mine, strlen(mine))) {
        snprintf(out, 13, "%s", filter);
        return true;
    }
    gw_forbidden(r, "区划超出您的管辖范围 (region outside your scope)");
    return false;
}

bool gw_query_scope(gw_req_t *r, char out[13])
{
    const char *region = gw_query(r, "region");
    if (region && !gw_region_ok(region)) {
        gw_bad_request(r, "region 须为 1..12 位数字的区划代码前缀 (region must be 1..12 digits)");
        return false;
    }
    return gw_scope_region(r, region, out);
}
