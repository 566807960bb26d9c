/* levee-matching: consumes record batches from ingest, sends alerts to
 * dispatch. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "lv_service.h"
#include "match.h"

int main(void)
{
    mat_t m;
    memset(&m, 0, sizeof m);
    lv_cfg_t cfg;
    m.arena = lv_arena_new((size_t)4 << 20);
    if (!m.arena || lv_cfg_load(&cfg))
        return 1;
    lv_service_opts_t opts = {
        .name = "matching", .bind_endpoint = cfg.ep_matching, .handler = mat_handle, .ctx = &m};
    m.svc = lv_service_new(&opts);
    if (!m.svc)
        return 1;
    if (lv_service_add_dest(m.svc, "dispatch", cfg.ep_dispatch))
        return 1;
    int rc = lv_service_run(m.svc);
    lv_service_destroy(&m.svc);
    lv_arena_destroy(&m.arena);
    return rc;
}
