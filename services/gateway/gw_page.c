/* Paging: every list takes `limit` and `cursor` and answers `next_cursor`.
 * A cursor is the sort key of the last item returned, as a JSON array in
 * URL-safe base64: opaque to callers, checked like any input when it comes
 * back, and a parameter of the next query (keyset paging, so items added
 * meanwhile never shift a page and every item is returned once). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "lv_err.h"

static bool page_limit(gw_req_t *r, int dflt, int max, int *limit)
{
    const char *s = gw_query(r, "limit");
    *limit = dflt;
    if (!s)
        return true;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1 || v > max) {
        gw_bad_request(r, "limit 须为 1..%d 的整数 (limit must be an integer 1..%d)", max, max);
        return false;
    }
    *limit = (int)v;
    return true;
}

int gw_cursor_encode(json_t *key, char *out, size_t n)
{
    char *text = json_dumps(key, JSON_COMPACT);
    if (!text)
        return LV_ENOMEM;
    size_t len = strlen(text);
    int rc = LV_ELIMIT;
    if (sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <= n) {
        sodium_bin2base64(out, n, (const unsigned char *)text, len,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        rc = 0;
    }
    free(text);
    return rc;
}

json_t *gw_cursor_decode(const char *cursor, const char *types)
{
    unsigned char bin[GW_CURSOR_MAX];
    size_t len = 0;
    if (strlen(cursor) > GW_CURSOR_MAX ||
        sodium_base642bin(bin, sizeof bin, cursor, strlen(cursor), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return NULL;
    json_t *a = json_loadb((const char *)bin, len, 0, NULL);
    size_t nt = strlen(types);
    if (!json_is_array(a) || json_array_size(a) != nt)
        goto bad;
    for (size_t i = 0; i < nt; i++) {
        json_t *v = json_array_get(a, i);
        if (types[i] == 'i' ? !json_is_integer(v)
                            : !json_is_string(v) || strlen(json_string_value(v)) !=
                                                        json_string_length(v))
            goto bad;
    }
    return a;
bad:
    json_decref(a);
    return NULL;
}

bool gw_page_begin(gw_req_t *r, const char *key_types, int dflt, int max, gw_page_t *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->types = key_types;
    if (!page_limit(r, dflt, max, &pg->limit))
        return false;
    snprintf(pg->limit_plus_one, sizeof pg->limit_plus_one, "%d", pg->limit + 1);
    const char *c = gw_query(r, "cursor");
    if (!c)
        return true;
    json_t *a = gw_cursor_decode(c, key_types);
    if (!a) {
        gw_bad_request(r, "cursor 无效 (bad cursor): use the next_cursor of a previous page");
        return false;
    }
    for (size_t i = 0; key_types[i]; i++) {
        json_t *v = json_array_get(a, i);
        if (key_types[i] == 'i')
            snprintf(pg->keys[i], GW_CURSOR_MAX + 1, "%lld", (long long)json_integer_value(v));
        else
            snprintf(pg->keys[i], GW_CURSOR_MAX + 1, "%s", json_string_value(v));
        pg->after[i] = pg->keys[i];
    }
    json_decref(a);
    return true;
}

/* The sort key of a row as the next page's cursor. */
static int row_cursor(const PGresult *res, int row, const char *key_types, char *out, size_t n)
{
    json_t *key = json_array();
    for (size_t i = 0; key_types[i]; i++) {
        const char *v = PQgetvalue(res, row, (int)i + 1);
        json_array_append_new(key, key_types[i] == 'i' ? json_integer(strtoll(v, NULL, 10))
                                                       : json_string(v));
    }
    int rc = gw_cursor_encode(key, out, n);
    json_decref(key);
    return rc;
}

void gw_list_reply(gw_req_t *r, const char *sql, int n, const char *const *params,
                   const gw_page_t *pg)
{
    PGresult *res = gw_sql(r, sql, n, params);
    if (!res)
        return;
    int rows = PQntuples(res), limit = pg->limit;
    json_t *items = json_array();
    for (int i = 0; i < rows && i < limit; i++) {
        json_t *item = json_loads(PQgetvalue(res, i, 0), 0, NULL);
        json_array_append_new(items, item ? item : json_null());
    }
    char cursor[GW_CURSOR_MAX + 1];
    json_t *next = json_null();
    if (rows > limit && row_cursor(res, limit - 1, pg->types, cursor, sizeof cursor) == 0)
        next = json_string(cursor);
    PQclear(res);
    json_t *doc = json_object();
    json_object_set_new(doc, "items", items);
    json_object_set_new(doc, "next_cursor", next);
    gw_reply_json(r, 200, doc);
}
