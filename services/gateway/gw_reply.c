/* Responses: JSON documents and the {"error", "detail"} shape of every error. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "lv_err.h"

#define JSON_TYPE "application/json; charset=utf-8"

void gw_reply_raw(gw_req_t *r, int status, const char *content_type, char *text, size_t len)
{
    /* The first reply wins: a handler never answers twice. */
    if (r->status) {
        free(text);
        return;
    }
    r->status = status;
    r->content_type = content_type;
    r->resp = text;
    r->resp_len = len;
}

void gw_reply_json(gw_req_t *r, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        static const char oom[] = "{\"error\": \"internal\", \"detail\": \"out of memory\"}";
        gw_reply_raw(r, 500, JSON_TYPE, strdup(oom), sizeof oom - 1);
        return;
    }
    gw_reply_raw(r, status, JSON_TYPE, text, strlen(text));
}

void gw_reply_error_json(gw_req_t *r, int status, const char *code, json_t *detail)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(code));
    json_object_set_new(o, "detail", detail ? detail : json_null());
    gw_reply_json(r, status, o);
}

static void reply_errorv(gw_req_t *r, int status, const char *code, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* A detail that quotes the caller's input may be cut inside a UTF-8
     * character; json_string would refuse it, so cut back to a whole one. */
    json_t *d = json_string(msg);
    for (size_t n = strlen(msg); !d && n > 0; n--) {
        msg[n - 1] = '\0';
        d = json_string(msg);
    }
    gw_reply_error_json(r, status, code, d);
}

void gw_reply_error(gw_req_t *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_errorv(r, status, code, fmt, ap);
    va_end(ap);
}

void gw_bad_request(gw_req_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_errorv(r, 400, "bad_request", fmt, ap);
    va_end(ap);
}

void gw_not_found(gw_req_t *r)
{
    /* The same answer whether the object does not exist or lies outside
     * the caller's region, so a token learns nothing of other regions. */
    gw_reply_error(r, 404, "not_found", "没有找到, 或不在您的管辖范围内 (not found in your region)");
}

void gw_forbidden(gw_req_t *r, const char *why)
{
    gw_reply_error(r, 403, "forbidden", "%s", why);
}

void gw_db_error(gw_req_t *r, int e)
{
    if (e == LV_ETRANSIENT)
        gw_reply_error(r, 503, "unavailable", "数据库暂不可用, 请重试 (database unavailable, retry)");
    else
        gw_reply_error(r, 500, "internal", "数据库查询失败 (query failed)");
}
