/* libmicrohttpd glue: one request's life from its headers to the metrics
 * of its response. Everything a route needs before its body arrives (the
 * route, the token, the role, the size limit) is settled on the first call,
 * so a forbidden or oversized upload is refused before it is read. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gw.h"
#include "gw_http.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"

#define POOL_WAIT_MS 5000
#define GW_WEB_CSP                                                                                \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                   \
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "              \
    "frame-ancestors 'none'; form-action 'none'"

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t gw_url_unescape(char *s)
{
    char *w = s;
    for (const char *p = s; *p;) {
        int hi = p[0] == '%' ? hex_value(p[1]) : -1;
        int lo = hi >= 0 ? hex_value(p[2]) : -1;
        if (lo >= 0 && (hi | lo)) {
            *w++ = (char)(hi << 4 | lo);
            p += 3;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return gw_url_unescape(s);
}

const char *gw_query(gw_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *gw_header(gw_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

PGconn *gw_pg(gw_req_t *r)
{
    if (r->pg)
        return r->pg;
    r->pg = gw_pool_get(r->gw->pool, POOL_WAIT_MS);
    if (!r->pg)
        gw_reply_error(r, 503, "unavailable", "数据库暂不可用 (database unavailable)");
    return r->pg;
}

void gw_pg_release(gw_req_t *r)
{
    if (r->pg)
        gw_pool_put(r->gw->pool, r->pg);
    r->pg = NULL;
}

PGresult *gw_sql(gw_req_t *r, const char *sql, int n, const char *const *params)
{
    PGconn *pg = gw_pg(r);
    if (!pg)
        return NULL;
    PGresult *res;
    int e = lv_pg_query(pg, &res, sql, n, params);
    if (e) {
        gw_db_error(r, e);
        return NULL;
    }
    return res;
}

PGresult *gw_sql_one(gw_req_t *r, const char *sql, int n, const char *const *params)
{
    PGresult *res = gw_sql(r, sql, n, params);
    if (res && PQntuples(res) != 1) {
        PQclear(res);
        gw_not_found(r);
        return NULL;
    }
    return res;
}

static long long body_limit(const gw_req_t *r)
{
    if (r->route && r->route->body == GW_BODY_SPOOL)
        return r->gw->cfg.http_max_feed;
    return (long long)r->gw->cfg.http_max_body;
}

static void too_large(gw_req_t *r)
{
    gw_reply_error(r, 413, "payload_too_large",
                   "请求体超过上限 %lld 字节 (body over the limit of %lld bytes; %s)", body_limit(r),
                   body_limit(r),
                   r->route && r->route->body == GW_BODY_SPOOL ? "LEVEE_HTTP_MAX_FEED_BYTES"
                                                               : "LEVEE_HTTP_MAX_BODY_BYTES");
}

static enum MHD_Result add_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    size_t *sum = cls;
    *sum += strlen(key) + (value ? strlen(value) + 2 : 0) + 2;
    return MHD_YES;
}

/* The bytes of a kind of connection values (headers, query arguments),
 * about as they were sent. */
static size_t values_bytes(gw_req_t *r, enum MHD_ValueKind kind)
{
    size_t sum = 0;
    MHD_get_connection_values(r->conn, kind, add_length, &sum);
    return sum;
}

/* An oversized request head is refused before anything looks at it. */
static bool head_ok(gw_req_t *r, const char *url)
{
    size_t uri = strlen(url) + values_bytes(r, MHD_GET_ARGUMENT_KIND);
    if (uri > GW_URI_MAX) {
        gw_reply_error(r, 414, "uri_too_long",
                       "请求地址超过 %d 字节 (the path and query are over %d bytes)", GW_URI_MAX,
                       GW_URI_MAX);
        return false;
    }
    if (values_bytes(r, MHD_HEADER_KIND) > GW_HEADERS_MAX) {
        gw_reply_error(r, 431, "headers_too_large",
                       "请求头超过 %d 字节 (the headers are over %d bytes)", GW_HEADERS_MAX,
                       GW_HEADERS_MAX);
        return false;
    }
    return true;
}

/* The first call: route, token, role, declared size, the route's own start. */
static void begin(gw_req_t *r, const char *url, const char *method)
{
    if (!head_ok(r, url))
        return;
    int idx = gw_route_match(method, url, r->params, r->allow, sizeof r->allow);
    if (idx == -1) {
        gw_reply_error(r, 404, "not_found", "没有这个接口 (no such path)");
        return;
    }
    if (idx == -2) {
        gw_reply_error(r, 405, "method_not_allowed", "此路径只接受 %s (this path takes %s)",
                       r->allow, r->allow);
        return;
    }
    r->route = &gw_routes[idx];
    r->route_index = idx;
    if (r->route->roles) {
        if (!gw_authenticate(r))
            return;
        if (!(r->route->roles & r->caller.role)) {
            gw_forbidden(r, "您的角色无权使用此接口 (your role may not make this call)");
            return;
        }
    }
    const char *cl = gw_header(r, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        long long n = strtoll(cl, &end, 10);
        if (!*cl || *end || n < 0) {
            gw_bad_request(r, "Content-Length 无效 (bad Content-Length)");
            return;
        }
        if (errno == ERANGE || n > body_limit(r)) {
            too_large(r);
            return;
        }
    }
    if (r->route->body == GW_BODY_JSON)
        lv_buf_init(&r->body, r->gw->cfg.http_max_body + 1);
    if (r->route->begin)
        r->route->begin(r);
}

/* A chunk of the body. After a reply is settled the rest is read and
 * dropped, so the client sees the reply instead of a reset. */
static void take_body(gw_req_t *r, const char *data, size_t n)
{
    r->body_bytes += (long long)n;
    if (r->status)
        return;
    if (r->body_bytes > body_limit(r)) {
        r->body_over = true;
        gw_spool_destroy(&r->spool, false);
        too_large(r);
        return;
    }
    if (r->route->body == GW_BODY_JSON) {
        lv_buf_put(&r->body, data, n);
    } else if (r->route->body == GW_BODY_SPOOL && r->spool) {
        char why[256];
        int e = gw_spool_write(r->spool, data, n, why, sizeof why);
        if (e == LV_EINVAL)
            gw_bad_request(r, "%s", why);
        else if (e)
            gw_reply_error(r, 500, "internal", "写入暂存文件失败 (could not write the spool file)");
        if (e)
            gw_spool_destroy(&r->spool, false);
    }
}

static enum MHD_Result queue(gw_req_t *r)
{
    if (r->queued)
        return MHD_YES;
    r->queued = true;
    if (!r->status)
        gw_reply_error(r, 500, "internal", "no response");
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp_len, r->resp ? r->resp : (char *)"",
                                        r->resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    r->resp = NULL; /* libmicrohttpd frees it */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            r->cache_control ? r->cache_control : "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->etag[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
    if (r->page) {
        /* The dashboard loads only its own files and talks only to this
         * API; ECharts' tooltips carry inline styles. */
        MHD_add_response_header(resp, "Content-Security-Policy", GW_WEB_CSP);
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    if (r->status == 405 && r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->www_auth)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->next_cursor[0])
        MHD_add_response_header(resp, "X-Next-Cursor", r->next_cursor);
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    gw_req_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->gw = cls;
        r->conn = conn;
        r->route_index = -1;
        r->t0_us = now_us();
        gw_metrics_begin(r->gw->metrics);
        *con_cls = r;
        begin(r, url, method);
        /* Refused before the body: answer now (libmicrohttpd then closes
         * the connection rather than read an upload nobody wants). */
        return r->status ? queue(r) : MHD_YES;
    }
    if (*upload_data_size) {
        take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /* A client that keeps sending far past the limit is cut off. */
        return r->body_bytes > body_limit(r) + GW_DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (!r->status)
        r->route->fn(r);
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    gw_req_t *r = *con_cls;
    if (!r)
        return;
    int64_t us = now_us() - r->t0_us;
    gw_metrics_end(r->gw->metrics, r->route_index, r->status, us);
    if (r->status >= 500 || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        lv_warn("%s %s -> %d in %lld ms%s", r->route ? r->route->method : "-",
                r->route ? r->route->path : "(unmatched)", r->status, (long long)(us / 1000),
                toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? " (connection ended early)" : "");
    gw_pg_release(r);
    gw_spool_destroy(&r->spool, false);
    lv_buf_free(&r->body);
    free(r->resp);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    lv_warn("http: %s", msg);
}

void *gw_http_start(gw_t *gw, const struct sockaddr *addr)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    /* The logger first, so that even option errors reach the log. */
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, gw, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)gw->cfg.http_max_conns,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)GW_IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GW_CONN_MEMORY,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, gw,
                            MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL, MHD_OPTION_END);
}

void gw_http_stop(void *daemon)
{
    if (daemon)
        MHD_stop_daemon(daemon);
}
