/* levee-notify: events in; inbox rows, webhooks (SMS gateways) and e-mail
 * out, retried with backoff and dead-lettered with a reason. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lv_log.h"
#include "lv_service.h"
#include "notify.h"

static volatile sig_atomic_t s_reload;
static struct sigaction s_prev_hup;

/* lv_service owns SIGHUP (it reloads the policy); notify chains onto it so
 * the same signal also reloads the notify config. */
static void on_hup(int sig)
{
    s_reload = 1;
    if (s_prev_hup.sa_handler != SIG_IGN && s_prev_hup.sa_handler != SIG_DFL)
        s_prev_hup.sa_handler(sig);
}

static int tick(void *ctx, lv_service_t *svc)
{
    if (s_reload) {
        s_reload = 0;
        ntf_reload(ctx);
    }
    return ntf_tick(ctx, svc);
}

int main(void)
{
    lv_log_init("notify");
    ntf_t n;
    memset(&n, 0, sizeof n);
    lv_cfg_t cfg;
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lv_error("libsodium or libcurl did not initialise");
        return 1;
    }
    snprintf(n.config_path, sizeof n.config_path, "%s", ntf_config_path());
    char err[512];
    n.config = ntf_config_load(n.config_path, err, sizeof err);
    if (!n.config) {
        lv_error("%s", err);
        return 1;
    }
    if (lv_cfg_load(&cfg))
        return 1;
    n.arena = lv_arena_new((size_t)1 << 20);
    n.sender = ntf_sender_new(cfg.redis_host, cfg.redis_port);
    if (!n.arena || !n.sender)
        return 1;
    lv_service_opts_t opts = {.name = "notify", .bind_endpoint = cfg.ep_notify,
                              .handler = ntf_handle, .ctx = &n, .tick = tick,
                              .prepare = true};
    lv_service_t *svc = lv_service_new(&opts);
    if (!svc)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, &s_prev_hup);
    lv_info("notify config %s", n.config_path);
    int rc = lv_service_run(svc);
    lv_service_destroy(&svc);
    ntf_sender_destroy(&n.sender);
    ntf_config_destroy(&n.config);
    lv_arena_destroy(&n.arena);
    curl_global_cleanup();
    return rc;
}
