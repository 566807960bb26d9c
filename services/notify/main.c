/* levee-notify: events in, inbox messages out. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "lv_service.h"
#include "notify.h"

int main(void)
{
    ntf_t n;
    memset(&n, 0, sizeof n);
    lv_cfg_t cfg;
    n.arena = lv_arena_new((size_t)1 << 20);
    if (!n.arena || lv_cfg_load(&cfg))
        return 1;
    lv_service_opts_t opts = {.name = "notify", .bind_endpoint = cfg.ep_notify,
                              .handler = ntf_handle, .ctx = &n};
    lv_service_t *svc = lv_service_new(&opts);
    if (!svc)
        return 1;
    int rc = lv_service_run(svc);
    lv_service_destroy(&svc);
    lv_arena_destroy(&n.arena);
    return rc;
}
