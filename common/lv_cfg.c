#define _POSIX_C_SOURCE 200809L
#include "lv_cfg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return (v && *v) ? v : dflt;
}

static int env_long(const char *name, long long dflt, long long lo, long long hi, long long *out)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        fprintf(stderr, "配置错误 (bad config): %s=%s, expected an integer in %lld..%lld\n", name, v,
                lo, hi);
        return LV_EINVAL;
    }
    *out = x;
    return 0;
}

/* The gateway's keys; port_base is already set. */
static int http_load(lv_cfg_t *cfg)
{
    long long v;
    if (env_long("LEVEE_HTTP_PORT", cfg->port_base + 14, 1, 65535, &v))
        return LV_EINVAL;
    cfg->http_port = (int)v;
    snprintf(cfg->http_bind, sizeof cfg->http_bind, "%s", env_or("LEVEE_HTTP_BIND", "127.0.0.1"));
    if (env_long("LEVEE_HTTP_MAX_BODY_BYTES", 65536, 1024, 16777216, &v))
        return LV_EINVAL;
    cfg->http_max_body = (size_t)v;
    if (env_long("LEVEE_HTTP_MAX_FEED_BYTES", 512LL << 20, 1024, 1LL << 40, &v))
        return LV_EINVAL;
    cfg->http_max_feed = v;
    if (env_long("LEVEE_HTTP_MAX_CONNECTIONS", 64, 1, 10000, &v))
        return LV_EINVAL;
    cfg->http_max_conns = (int)v;
    if (env_long("LEVEE_HTTP_PG_POOL", 4, 1, 256, &v))
        return LV_EINVAL;
    cfg->http_pg_pool = (int)v;
    if (env_long("LEVEE_HTTP_CALL_TIMEOUT_MS", 10000, 100, 600000, &v))
        return LV_EINVAL;
    cfg->http_call_timeout_ms = (int)v;
    if (env_long("LEVEE_HTTP_DECLARATION_WAIT_MS", 5000, 0, 600000, &v))
        return LV_EINVAL;
    cfg->http_declaration_wait_ms = (int)v;
    return 0;
}

int lv_cfg_load(lv_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    long long v;
    if (env_long("LEVEE_PORT_BASE", 17400, 1024, 65000, &v))
        return LV_EINVAL;
    cfg->port_base = (int)v;
    snprintf(cfg->home, sizeof cfg->home, "%s", env_or("LEVEE_HOME", ".levee"));
    snprintf(cfg->policy_path, sizeof cfg->policy_path, "%s",
             env_or("LEVEE_POLICY", "policy/default.json"));
    char dflt_pg[256];
    snprintf(dflt_pg, sizeof dflt_pg, "host=127.0.0.1 port=%d user=levee dbname=levee",
             cfg->port_base);
    snprintf(cfg->pg_conninfo, sizeof cfg->pg_conninfo, "%s", env_or("LEVEE_PG", dflt_pg));
    snprintf(cfg->redis_host, sizeof cfg->redis_host, "%s",
             env_or("LEVEE_REDIS_HOST", "127.0.0.1"));
    if (env_long("LEVEE_REDIS_PORT", cfg->port_base + 1, 1, 65535, &v))
        return LV_EINVAL;
    cfg->redis_port = (int)v;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", cfg->port_base + 10);
    snprintf(cfg->ep_matching, sizeof cfg->ep_matching, "%s", env_or("LEVEE_EP_MATCHING", ep));
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", cfg->port_base + 11);
    snprintf(cfg->ep_dispatch, sizeof cfg->ep_dispatch, "%s", env_or("LEVEE_EP_DISPATCH", ep));
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", cfg->port_base + 12);
    snprintf(cfg->ep_ledger, sizeof cfg->ep_ledger, "%s", env_or("LEVEE_EP_LEDGER", ep));
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", cfg->port_base + 13);
    snprintf(cfg->ep_notify, sizeof cfg->ep_notify, "%s", env_or("LEVEE_EP_NOTIFY", ep));
    if (env_long("LEVEE_BATCH_ROWS", 5000, 1, 100000, &v))
        return LV_EINVAL;
    cfg->batch_rows = (size_t)v;
    if (env_long("LEVEE_CREDIT", 4, 1, 1024, &v))
        return LV_EINVAL;
    cfg->credit = (int)v;
    if (env_long("LEVEE_RESEND_MS", 5000, 50, 3600000, &v))
        return LV_EINVAL;
    cfg->resend_ms = (int)v;
    if (env_long("LEVEE_MAX_RECORD_BYTES", 65536, 256, 16777216, &v))
        return LV_EINVAL;
    cfg->max_record_bytes = (size_t)v;
    if (env_long("LEVEE_MAX_FIELDS", 256, 8, 4096, &v))
        return LV_EINVAL;
    cfg->max_fields = (size_t)v;
    if (env_long("LEVEE_MAX_FILE_BYTES", 8LL << 30, 1, 1LL << 40, &v))
        return LV_EINVAL;
    cfg->max_file_bytes = v;
    if (env_long("LEVEE_DEDUP_TTL_S", 90 * 86400, 1, 3650LL * 86400, &v))
        return LV_EINVAL;
    cfg->dedup_ttl_s = (int)v;
    if (env_long("LEVEE_METRICS_PORT", 0, 0, 65535, &v))
        return LV_EINVAL;
    cfg->metrics_port = (int)v;
    if (env_long("LEVEE_MAX_ATTEMPTS", 10, 0, 1000000, &v))
        return LV_EINVAL;
    cfg->max_attempts = (int)v;
    if (env_long("LEVEE_HEALTH_STALE_MS", 10000, 100, 3600000, &v))
        return LV_EINVAL;
    cfg->health_stale_ms = (int)v;
    if (env_long("LEVEE_INGEST_WORKERS", 1, 1, 64, &v))
        return LV_EINVAL;
    cfg->ingest_workers = (int)v;
    if (env_long("LEVEE_MATCHING_WORKERS", 1, 1, 64, &v))
        return LV_EINVAL;
    cfg->matching_workers = (int)v;
    if (env_long("LEVEE_WORKER", 0, 0, 63, &v))
        return LV_EINVAL;
    cfg->worker = (int)v;
    if (env_long("LEVEE_URGENT_BYTES", 65536, 0, 1LL << 30, &v))
        return LV_EINVAL;
    cfg->urgent_bytes = v;
    if (env_long("LEVEE_ALERT_BATCH", 50, 1, 100000, &v))
        return LV_EINVAL;
    cfg->alert_batch = (int)v;
    const char *lane = getenv("LEVEE_LANE");
    if (!lane || !*lane || !strcmp(lane, "both"))
        cfg->lane = LV_LANE_BOTH;
    else if (!strcmp(lane, "normal"))
        cfg->lane = LV_LANE_NORMAL;
    else if (!strcmp(lane, "urgent"))
        cfg->lane = LV_LANE_URGENT;
    else {
        fprintf(stderr, "配置错误 (bad config): LEVEE_LANE=%s, expected both, normal or urgent\n",
                lane);
        return LV_EINVAL;
    }
    return http_load(cfg);
}

int lv_cfg_metrics_port(const lv_cfg_t *cfg, const char *service)
{
    static const char *const ORDER[] = {"ingest", "matching", "dispatch", "ledger", "notify"};
    if (cfg->metrics_port > 0)
        return cfg->metrics_port;
    for (int i = 0; i < (int)(sizeof ORDER / sizeof ORDER[0]); i++)
        if (!strcmp(ORDER[i], service))
            return cfg->port_base + 15 + i;
    return 0;
}

int lv_cfg_county_worker(const lv_cfg_t *cfg, const char *county)
{
    long code = 0;
    for (int i = 0; i < 6 && county[i] >= '0' && county[i] <= '9'; i++)
        code = code * 10 + (county[i] - '0');
    return cfg->matching_workers > 1 ? (int)(code % cfg->matching_workers) : 0;
}

void lv_cfg_worker_name(const char *service, int worker, char *out, size_t n)
{
    if (worker == 0)
        snprintf(out, n, "%s", service);
    else
        snprintf(out, n, "%s-%d", service, worker);
}

void lv_cfg_process_name(const lv_cfg_t *cfg, const char *service, char *out, size_t n)
{
    lv_cfg_worker_name(service, cfg->worker, out, n);
    if (cfg->lane == LV_LANE_URGENT)
        strncat(out, "-urgent", n - strlen(out) - 1);
}

void lv_cfg_matching_endpoint(const lv_cfg_t *cfg, int worker, char *out, size_t n)
{
    if (worker == 0)
        snprintf(out, n, "%s", cfg->ep_matching);
    else
        snprintf(out, n, "ipc://@levee-%d-matching-%d", cfg->port_base, worker);
}

void lv_cfg_urgent_endpoint(const char *endpoint, char *out, size_t n)
{
    int len = snprintf(out, n, "ipc://@levee-urgent-%s", endpoint);
    for (int i = (int)strlen("ipc://@levee-urgent-"); i < len && (size_t)i < n; i++)
        if (out[i] == ':' || out[i] == '/')
            out[i] = '-';
}
