/* levee-ledger: pays approved cases from the funds; sends news to notify. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "ledger.h"
#include "lv_log.h"
#include "lv_time.h"

int main(void)
{
    led_t l;
    memset(&l, 0, sizeof l);
    lv_cfg_t cfg;
    l.arena = lv_arena_new((size_t)1 << 20);
    if (!l.arena || lv_cfg_load(&cfg))
        return 1;
    lv_service_opts_t opts = {.name = "ledger", .bind_endpoint = cfg.ep_ledger,
                              .handler = led_handle, .tick = led_tick, .ctx = &l};
    l.svc = lv_service_new(&opts);
    if (!l.svc)
        return 1;
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(l.svc), lv_now_ms());
    if (!v || led_seed_funds(&l, lv_service_pg(l.svc), v)) {
        lv_error("could not set up the fund accounts");
        return 1;
    }
    if (lv_service_add_dest(l.svc, "notify", cfg.ep_notify))
        return 1;
    int rc = lv_service_run(l.svc);
    lv_service_destroy(&l.svc);
    lv_arena_destroy(&l.arena);
    return rc;
}
