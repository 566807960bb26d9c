/* levee-dispatch: cases, tasks, review steps and 风险消除. Consumes alerts
 * from matching and commands from people; sends payout requests to ledger
 * and news to notify; keeps the investigators' queues in Redis. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "dispatch.h"

int main(void)
{
    dsp_t d;
    memset(&d, 0, sizeof d);
    lv_cfg_t *cfg = &d.cfg;
    d.arena = lv_arena_new((size_t)1 << 20);
    if (!d.arena || lv_cfg_load(cfg))
        return 1;
    lv_service_opts_t opts = {.name = "dispatch", .bind_endpoint = cfg->ep_dispatch,
                              .handler = dsp_handle, .tick = dsp_tick, .ctx = &d,
                              .prepare = true};
    d.svc = lv_service_new(&opts);
    d.redis = lv_redis_new(cfg->redis_host, cfg->redis_port);
    if (!d.svc || !d.redis || dsp_clock_init())
        return 1;
    if (lv_service_add_dest(d.svc, "ledger", cfg->ep_ledger) ||
        lv_service_add_dest(d.svc, "notify", cfg->ep_notify))
        return 1;
    /* Verification results go to the matching worker owning the county. */
    for (int k = 0; k < cfg->matching_workers; k++) {
        char name[32], endpoint[600];
        lv_cfg_worker_name("matching", k, name, sizeof name);
        lv_cfg_matching_endpoint(cfg, k, endpoint, sizeof endpoint);
        if (lv_service_add_dest(d.svc, name, endpoint))
            return 1;
    }
    int rc = lv_service_run(d.svc);
    lv_service_destroy(&d.svc);
    lv_redis_destroy(&d.redis);
    lv_arena_destroy(&d.arena);
    return rc;
}
