/* levee-gateway: the HTTP JSON API (SPEC.md "HTTP API"). Reads come from
 * Postgres, decisions go to the services as Commands over the bus. This
 * header is what the gateway's modules share. */
#ifndef GW_H
#define GW_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lv_buf.h"
#include "lv_cfg.h"
#include "lv_token.h"

#define GW_MAX_PARAMS 2       /* path parameters of one route */
#define GW_PARAM_MAX 128      /* bytes of one path parameter */
#define GW_TEXT_MAX 4000      /* bytes of a note, findings or description */
#define GW_LIMIT_DEFAULT 50   /* items per page when the caller gives no limit */
#define GW_LIMIT_MAX 500
#define GW_CURSOR_MAX 512     /* bytes of a cursor */
#define GW_DRAIN_MAX (64LL << 20) /* bytes read past a body limit before closing */
#define GW_URI_MAX 8192       /* bytes of a path and its query: over it, 414 */
#define GW_HEADERS_MAX 65536  /* bytes of all request headers: over them, 431 */

/* The JSON of the objects the API returns, built by Postgres from a row of
 * hcase c, task t or payout p, so every call shows the same fields. */
#define GW_CASE_JSON                                                                              \
    "json_build_object('case_id', c.case_id, 'household_id', c.household_id, 'status', c.status, " \
    "'stage', c.stage, 'grade', c.grade, 'category', c.category, 'risk_factors', c.risk_factors, " \
    "'primary_risk_factor', c.primary_risk, 'region_code', c.region_code, "                        \
    "'opened_at', c.opened_ms, 'deadline', c.deadline_ms, 'closed_at', c.closed_ms)"
#define GW_TASK_JSON                                                                              \
    "json_build_object('task_id', t.task_id, 'case_id', t.case_id, 'household_id', "              \
    "t.household_id, 'assignee', t.assignee, 'status', t.status, 'due_at', t.due_ms, 'kind', "    \
    "t.kind, 'created_at', t.created_ms, 'completed_at', t.completed_ms)"
#define GW_PAYOUT_JSON                                                                            \
    "json_build_object('payout_id', p.payout_id, 'household_id', p.household_id, 'case_id', "     \
    "p.case_id, 'kind', p.kind, 'amount_fen', p.amount_fen, 'status', p.status, 'year', p.year, " \
    "'created_at', p.created_ms)"

typedef struct gw gw_t;
typedef struct gw_req gw_req_t;
typedef struct gw_pool gw_pool_t;
typedef struct gw_metrics gw_metrics_t;
typedef struct gw_spool gw_spool_t;

typedef void (*gw_handler_fn)(gw_req_t *r);

typedef enum { GW_BODY_NONE, GW_BODY_JSON, GW_BODY_SPOOL } gw_body_t;

typedef struct {
    const char *method;
    const char *path;   /* template: "{name}" matches one non-empty segment, a final
                           "*" the non-empty rest of the path (into the next param) */
    gw_handler_fn fn;
    unsigned roles;     /* lv_role_t bits allowed; 0 = no token needed */
    gw_body_t body;
    /* Runs after authentication, before the body is read (feeds: check the
     * source and open the spool); may reply. NULL when not needed. */
    gw_handler_fn begin;
} gw_route_t;

/* The caller, from the token. */
typedef struct {
    char token_id[LV_TOKEN_ID_MAX];
    lv_role_t role;
    char prefix[13];
    char investigator[65];
    char label[129];
} gw_caller_t;

/* The server: configuration and what every request shares. */
struct gw {
    lv_cfg_t cfg;
    char home[1024];  /* absolute, so ingest finds spooled files */
    char spool[1100]; /* home/spool */
    char web_root[1024]; /* the dashboard's files (LEVEE_WEB_ROOT, resolved); "" = none */
    void *zctx;
    gw_pool_t *pool;
    gw_metrics_t *metrics;
};

/* One request. */
struct gw_req {
    gw_t *gw;
    void *conn; /* struct MHD_Connection */
    const gw_route_t *route;
    int route_index; /* -1 when no route matched */
    char params[GW_MAX_PARAMS][GW_PARAM_MAX + 1];
    gw_caller_t caller;
    PGconn *pg; /* from the pool, on first use */
    lv_buf_t body;
    long long body_bytes;
    bool body_over;
    gw_spool_t *spool;
    int64_t t0_us;
    /* the response */
    int status;
    char *resp;
    size_t resp_len;
    const char *content_type;
    char allow[64];
    char next_cursor[GW_CURSOR_MAX + 1];
    bool www_auth;
    const char *cache_control; /* NULL: no-store */
    char etag[64];             /* "" when none */
    bool page;                 /* a dashboard file: send the browser's security headers */
    bool queued; /* handed to libmicrohttpd */
};

/* ---- routes (gw_route.c) ------------------------------------------------ */

extern const gw_route_t gw_routes[];
extern const size_t gw_nroutes;

/* Finds the route for method and path, filling params. Returns its index,
 * -1 when no route has the path (404), -2 when routes have the path but not
 * the method (405; allow lists their methods). */
int gw_route_match(const char *method, const char *path, char params[][GW_PARAM_MAX + 1],
                   char *allow, size_t allow_len);

/* ---- responses (gw_reply.c) --------------------------------------------- */

/* Replies with a JSON document (stolen). */
void gw_reply_json(gw_req_t *r, int status, json_t *doc);
/* {"error": code, "detail": text}. */
void gw_reply_error(gw_req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* {"error": code, "detail": detail} with a structured detail (stolen). */
void gw_reply_error_json(gw_req_t *r, int status, const char *code, json_t *detail);
/* A body of another type; takes the malloc'ed text. */
void gw_reply_raw(gw_req_t *r, int status, const char *content_type, char *text, size_t len);

/* The usual replies. */
void gw_bad_request(gw_req_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_not_found(gw_req_t *r);
void gw_forbidden(gw_req_t *r, const char *why);
void gw_db_error(gw_req_t *r, int e);

/* ---- request helpers (gw_http.c) ---------------------------------------- */

/* Decodes %XX in place as libmicrohttpd would, but keeps %00 as it is: a
 * NUL would cut a path or argument short where the caller did not
 * (main.js%00.css read as main.js). Returns the new length. */
size_t gw_url_unescape(char *s);
/* A query argument, or NULL. */
const char *gw_query(gw_req_t *r, const char *name);
/* A request header, or NULL. */
const char *gw_header(gw_req_t *r, const char *name);
/* The Postgres connection of the request; NULL after replying 503. */
PGconn *gw_pg(gw_req_t *r);
/* Gives the connection back before a long wait (a bus call, a poll). */
void gw_pg_release(gw_req_t *r);
/* Runs a query on the request's connection; NULL after replying 5xx. */
PGresult *gw_sql(gw_req_t *r, const char *sql, int n, const char *const *params);
/* The same for a query that must find exactly one row: NULL after replying
 * 404 when it finds none (nothing, or nothing in the caller's region). */
PGresult *gw_sql_one(gw_req_t *r, const char *sql, int n, const char *const *params);

/* ---- input checks (gw_input.c) ------------------------------------------ */

/* Text a caller may send: valid UTF-8, no control characters but tab and
 * newline, at most max bytes. */
bool gw_text_ok(const char *s, size_t max);
/* An identifier (household, case, task, record id): 1..max bytes of valid
 * UTF-8 without any control character. */
bool gw_ident_ok(const char *s, size_t max);
/* A region filter: 1..12 digits. */
bool gw_region_ok(const char *s);
/* Is s one of list (NULL-terminated)? */
bool gw_in_list(const char *s, const char *const *list);
/* The body as a JSON object; NULL after replying 400. */
json_t *gw_body_object(gw_req_t *r);
/* A string member: NULL when absent or null; *bad when present but not a
 * string that passes gw_text_ok(max) (after replying 400). */
const char *gw_json_text(gw_req_t *r, json_t *o, const char *key, size_t max, bool *bad);
/* A 元 member (a number with at most 2 decimals, or such a string) as fen.
 * Returns 1 when present, 0 when absent, -1 after replying 400. */
int gw_json_yuan(gw_req_t *r, json_t *o, const char *key, int64_t *fen);
/* The narrower of the caller's prefix and a region filter, into out;
 * false after replying 403 when they are disjoint. */
bool gw_scope_region(gw_req_t *r, const char *filter, char out[13]);
/* The same for the request's `region` argument (any prefix of a region
 * code); false after replying 400 (malformed) or 403 (outside). */
bool gw_query_scope(gw_req_t *r, char out[13]);

/* The risk types (风险类型) of SPEC.md. */
extern const char *const gw_risk_factors[];

/* ---- paging (gw_page.c) -------------------------------------------------- */

/* One page of a list: the limit, and the sort key after which it starts
 * (one text parameter per key type, NULL on the first page). */
typedef struct {
    const char *types; /* per key column: 'i' integer, 's' string */
    int limit;
    char limit_plus_one[16]; /* the query's LIMIT, so it shows whether a page follows */
    char keys[2][GW_CURSOR_MAX + 1];
    const char *after[2];
} gw_page_t;

/* Reads `limit` (default GW_LIMIT_DEFAULT, 1..max) and `cursor` for a list
 * sorted by key_types. Returns false after replying 400. */
bool gw_page_begin(gw_req_t *r, const char *key_types, int dflt, int max, gw_page_t *pg);
/* An opaque cursor for a list's sort key (a JSON array), into out. */
int gw_cursor_encode(json_t *key, char *out, size_t n);
/* Decodes a cursor into a JSON array of exactly types (s string, i
 * integer); NULL when malformed. */
json_t *gw_cursor_decode(const char *cursor, const char *types);

/* Runs a list query and replies {"items": [...], "next_cursor"}. The query
 * returns each item as JSON text in column 0 and its sort key in the next
 * columns; its LIMIT is pg->limit_plus_one. */
void gw_list_reply(gw_req_t *r, const char *sql, int n, const char *const *params,
                   const gw_page_t *pg);

/* ---- authentication (gw_auth.c) ------------------------------------------ */

/* Looks up the bearer token. Returns true with r->caller set, or false
 * after replying 401 (or 503). */
bool gw_authenticate(gw_req_t *r);
/* Does region code (or prefix) lie in the caller's region? */
bool gw_in_region(const gw_req_t *r, const char *region);
/* The name a caller leaves in the timeline: the investigator's id, the
 * token's label, or its id. */
const char *gw_actor(const gw_req_t *r);

/* Masks of personal data in JSON items. */
void gw_mask_member(json_t *m);
void gw_mask_text_field(json_t *o, const char *key);

/* ---- the Postgres pool (gw_pool.c) -------------------------------------- */

gw_pool_t *gw_pool_new(const char *conninfo, int size);
void gw_pool_destroy(gw_pool_t **self_p);
/* A connection within wait_ms, or NULL. */
PGconn *gw_pool_get(gw_pool_t *self, int wait_ms);
void gw_pool_put(gw_pool_t *self, PGconn *pg);

/* ---- metrics (gw_metrics.c) --------------------------------------------- */

/* Request metrics in common/lv_metrics' registry; GET /metrics renders
 * that registry. */
gw_metrics_t *gw_metrics_new(size_t nroutes);
void gw_metrics_destroy(gw_metrics_t **self_p);
void gw_metrics_begin(gw_metrics_t *self);
/* route -1 for a request no route matched. */
void gw_metrics_end(gw_metrics_t *self, int route, int status, int64_t micros);

/* ---- spooling feeds (gw_spool.c) ----------------------------------------- */

/* A new file under dir for an upload; gb18030 converts to UTF-8 on the way. */
gw_spool_t *gw_spool_new(const char *dir, const char *source, bool gb18030);
/* Writes a chunk. Returns 0, LV_EINVAL (bad encoding: why says where) or LV_EIO. */
int gw_spool_write(gw_spool_t *self, const char *data, size_t len, char *why, size_t whylen);
/* Flushes to disk. Returns 0, LV_EINVAL (input ends inside a character) or LV_EIO. */
int gw_spool_finish(gw_spool_t *self, char *why, size_t whylen);
const char *gw_spool_path(const gw_spool_t *self);
long long gw_spool_bytes(const gw_spool_t *self);
/* Closes; keep = false deletes the file. */
void gw_spool_destroy(gw_spool_t **self_p, bool keep);

/* ---- handlers ------------------------------------------------------------ */

void gw_h_healthz(gw_req_t *r);
void gw_h_metrics(gw_req_t *r);
void gw_h_feed_begin(gw_req_t *r);
void gw_h_feed(gw_req_t *r);
void gw_h_import(gw_req_t *r);
void gw_h_rejects(gw_req_t *r);
void gw_h_declaration(gw_req_t *r);
void gw_h_household(gw_req_t *r);
void gw_h_cases(gw_req_t *r);
void gw_h_step(gw_req_t *r);
void gw_h_tasks(gw_req_t *r);
void gw_h_task_result(gw_req_t *r);
void gw_h_funds(gw_req_t *r);
void gw_h_payouts(gw_req_t *r);
void gw_h_stats(gw_req_t *r);
void gw_h_reconciliation(gw_req_t *r);
void gw_h_stats_regions(gw_req_t *r);
void gw_h_stats_trend(gw_req_t *r);
void gw_h_identity_reviews(gw_req_t *r);
void gw_h_identity_resolve(gw_req_t *r);

/* ---- the dashboard's static files (gw_web.c) ----------------------------- */

void gw_h_web_index(gw_req_t *r);
void gw_h_web(gw_req_t *r);
/* Is rel (the part after /web/) a path the gateway serves? */
bool gw_web_path_ok(const char *rel);
/* The Content-Type for a file name by its extension; NULL when not served. */
const char *gw_web_type(const char *name);

/* Queues an import of a spooled file as `levee load` does; *import_id set.
 * Returns 0 or an lv_pg error. */
int gw_queue_import(gw_req_t *r, const char *source, const char *path, long long bytes,
                    char import_id[24]);

/* Sends a Command to a service. On ok / dup returns true with the
 * service's detail, without replying; otherwise replies (409 refused, 400
 * invalid, 504 no answer) and returns false. The command id comes from the
 * Idempotency-Key header when given, so a retried request is applied once. */
struct Levee__Command;
bool gw_send_command(gw_req_t *r, const char *endpoint, const char *service,
                     struct Levee__Command *cmd, char *detail, size_t detail_len);

#endif
