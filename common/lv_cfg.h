/* Per-instance configuration from the environment, with defaults that make
 * the local stack work with no file at all. */
#ifndef LV_CFG_H
#define LV_CFG_H

#include <stddef.h>

/* Which lanes a consuming process serves. One process serves both, the
 * urgent one first, between two normal messages; or two processes of a
 * worker split them ("normal" and "urgent"), so an urgent message never
 * waits for the normal message in hand. */
typedef enum { LV_LANE_BOTH, LV_LANE_NORMAL, LV_LANE_URGENT } lv_lane_t;

typedef struct {
    char home[512];
    char policy_path[512];
    char pg_conninfo[512];
    char redis_host[64];
    int redis_port;
    int port_base;
    char ep_matching[64]; /* tcp endpoints the consumers bind */
    char ep_dispatch[64];
    char ep_ledger[64];
    char ep_notify[64];
    size_t batch_rows;      /* LEVEE_BATCH_ROWS: rows per ingest batch */
    int credit;             /* LEVEE_CREDIT: unacknowledged messages per peer */
    int resend_ms;          /* LEVEE_RESEND_MS: resend an unacked message after this */
    size_t max_record_bytes; /* LEVEE_MAX_RECORD_BYTES */
    size_t max_fields;      /* LEVEE_MAX_FIELDS */
    long long max_file_bytes; /* LEVEE_MAX_FILE_BYTES */
    int dedup_ttl_s;        /* LEVEE_DEDUP_TTL_S */
    int metrics_port;       /* LEVEE_METRICS_PORT: 0 = port_base + 15 + the service's place */
    int max_attempts;       /* LEVEE_MAX_ATTEMPTS: dead-letter a message failing this often */
    int health_stale_ms;    /* LEVEE_HEALTH_STALE_MS: /healthz fails when the loop is this late */
    int ingest_workers;     /* LEVEE_INGEST_WORKERS: ingest processes, each on its own imports */
    int matching_workers;   /* LEVEE_MATCHING_WORKERS: matching processes, each owning counties */
    int worker;             /* LEVEE_WORKER: which of its service's workers this process is */
    long long urgent_bytes; /* LEVEE_URGENT_BYTES: an import this small is read between two
                               batches of a big one and sent on the urgent lane */
    int alert_batch;        /* LEVEE_ALERT_BATCH: alerts per message to dispatch */
    int lane;               /* LEVEE_LANE: the lanes a consumer serves (lv_lane_t) */
    /* levee-gateway, the HTTP API */
    int http_port;              /* LEVEE_HTTP_PORT (default port_base + 14) */
    char http_bind[64];         /* LEVEE_HTTP_BIND: IPv4 address to listen on */
    size_t http_max_body;       /* LEVEE_HTTP_MAX_BODY_BYTES: a JSON request body */
    long long http_max_feed;    /* LEVEE_HTTP_MAX_FEED_BYTES: a CSV posted to /feeds */
    int http_max_conns;         /* LEVEE_HTTP_MAX_CONNECTIONS: open at once */
    int http_pg_pool;           /* LEVEE_HTTP_PG_POOL: Postgres connections */
    int http_call_timeout_ms;   /* LEVEE_HTTP_CALL_TIMEOUT_MS: a command to a service */
    int http_declaration_wait_ms; /* LEVEE_HTTP_DECLARATION_WAIT_MS: wait for a case */
} lv_cfg_t;

/* Fills cfg from LEVEE_* variables. Returns 0 or LV_EINVAL with a message on stderr. */
int lv_cfg_load(lv_cfg_t *cfg);

/* Where a service serves /metrics and /healthz: LEVEE_METRICS_PORT, else
 * port_base + 15 + its place in ingest, matching, dispatch, ledger, notify;
 * 0 for another name (no endpoint). */
int lv_cfg_metrics_port(const lv_cfg_t *cfg, const char *service);

/* The matching worker that owns a county (6 digits): its code modulo the
 * number of workers, so that SQL can select a worker's counties the same
 * way (county::int % n). Every record of a county's households goes to it,
 * so a household is only ever updated by one worker. */
int lv_cfg_county_worker(const lv_cfg_t *cfg, const char *county);

/* A worker's name, used for its log, its consumer and its outbox rows:
 * the service's own name for worker 0, "matching-2" for worker 2. */
void lv_cfg_worker_name(const char *service, int worker, char *out, size_t n);

/* This process's name: the worker's name, and "-urgent" after it for the
 * process that serves only the urgent lane ("matching-2-urgent"). */
void lv_cfg_process_name(const lv_cfg_t *cfg, const char *service, char *out, size_t n);

/* The endpoint matching worker k binds: LEVEE_EP_MATCHING for worker 0,
 * an abstract ipc socket named by the port base for the others (same host). */
void lv_cfg_matching_endpoint(const lv_cfg_t *cfg, int worker, char *out, size_t n);

/* The urgent lane of the consumer bound at endpoint (its normal one): a
 * Linux abstract ipc socket named after that endpoint (so two stacks, or two
 * processes of one service, never meet) that the consumer serves before its
 * normal endpoint, so a declaration never waits behind a peak's backlog.
 * Same host only. */
void lv_cfg_urgent_endpoint(const char *endpoint, char *out, size_t n);

#endif
