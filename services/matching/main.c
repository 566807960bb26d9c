/* levee-matching: consumes record batches from ingest and commands (the
 * monthly sweep), sends alerts to dispatch and reminders to notify, and runs
 * the sweep on its own once a month per county.
 *
 * LEVEE_SWEEP_CHECK_S (default 600, 0 = no timer): how often the timer looks
 * for a county not yet swept; LEVEE_SWEEP_DAY (default 6, 1..28): the day of
 * the month from which last month is swept (the feeds arrive by the 5th).
 * Identity matching of rows without a valid ID: LEVEE_IDENT_LINK_THRESHOLD,
 * LEVEE_IDENT_MIN_MARGIN and LEVEE_IDENT_CACHE_PERSONS (identify.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_service.h"
#include "identify.h"
#include "match.h"

static int env_int(const char *name, long dflt, long lo, long hi, long *out)
{
    const char *v = getenv(name);
    *out = dflt;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        fprintf(stderr, "配置错误 (bad config): %s=%s, expected an integer in %ld..%ld\n", name, v,
                lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int main(void)
{
    mat_t m;
    memset(&m, 0, sizeof m);
    lv_cfg_t cfg;
    long check_s, day;
    mat_ident_cfg_t icfg;
    m.arena = lv_arena_new((size_t)4 << 20);
    if (!m.arena || lv_cfg_load(&cfg) || env_int("LEVEE_SWEEP_CHECK_S", 600, 0, 86400, &check_s) ||
        env_int("LEVEE_SWEEP_DAY", 6, 1, 28, &day) || mat_ident_cfg_load(&icfg))
        return 1;
    m.ident = mat_ident_new(&icfg);
    if (!m.ident)
        return 1;
    if (cfg.worker >= cfg.matching_workers) {
        fprintf(stderr, "配置错误 (bad config): LEVEE_WORKER=%d, expected 0..%d (LEVEE_MATCHING_WORKERS)\n",
                cfg.worker, cfg.matching_workers - 1);
        return 1;
    }
    m.worker = cfg.worker;
    m.workers = cfg.matching_workers;
    lv_cfg_process_name(&cfg, "matching", m.name, sizeof m.name);
    m.lock_households = cfg.lane != LV_LANE_BOTH;
    char endpoint[600];
    lv_cfg_matching_endpoint(&cfg, m.worker, endpoint, sizeof endpoint);
    m.sweep_check_ms = check_s * 1000;
    m.sweep_day = (int)day;
    lv_service_opts_t opts = {.name = m.name,
                              .bind_endpoint = endpoint,
                              .handler = mat_handle,
                              .ctx = &m,
                              /* the sweep, the reviews and the re-judging
                               * are the normal lane's */
                              .tick = cfg.lane == LV_LANE_URGENT ? NULL : mat_tick};
    m.svc = lv_service_new(&opts);
    if (!m.svc)
        return 1;
    char urgent_ep[600];
    lv_cfg_urgent_endpoint(cfg.ep_dispatch, urgent_ep, sizeof urgent_ep);
    if (lv_service_add_dest(m.svc, "dispatch", cfg.ep_dispatch) ||
        lv_service_add_dest(m.svc, "dispatch" LV_URGENT_SUFFIX, urgent_ep) ||
        lv_service_add_dest(m.svc, "notify", cfg.ep_notify))
        return 1;
    int rc = lv_service_run(m.svc);
    lv_service_destroy(&m.svc);
    mat_ident_destroy(&m.ident);
    lv_arena_destroy(&m.arena);
    return rc;
}
