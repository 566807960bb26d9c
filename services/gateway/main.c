/* levee-gateway: the HTTP JSON API of Levee. Parses the configuration,
 * listens, and serves until SIGTERM or SIGINT. */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "gw.h"
#include "gw_http.h"
#include "lv_log.h"

/* The home as an absolute path: ingest opens spooled files by the path in
 * the import row, from its own working directory. */
static int resolve_home(gw_t *gw)
{
    if (mkdir(gw->cfg.home, 0750) != 0 && errno != EEXIST) {
        lv_error("cannot create home %s: %s", gw->cfg.home, strerror(errno));
        return -1;
    }
    char *abs = realpath(gw->cfg.home, NULL);
    if (!abs || strlen(abs) >= sizeof gw->home) {
        lv_error("cannot resolve home %s", gw->cfg.home);
        free(abs);
        return -1;
    }
    snprintf(gw->home, sizeof gw->home, "%s", abs);
    snprintf(gw->spool, sizeof gw->spool, "%s/spool", abs);
    free(abs);
    if (mkdir(gw->spool, 0750) != 0 && errno != EEXIST) {
        lv_error("cannot create %s: %s", gw->spool, strerror(errno));
        return -1;
    }
    return 0;
}

/* The dashboard's files (LEVEE_WEB_ROOT) as an absolute path without
 * links, so a served file can be checked to lie under it. Unset: the
 * gateway serves the API alone. Set to something that is not a folder: an
 * error, as for any other bad setting. */
static int resolve_web_root(gw_t *gw)
{
    const char *root = getenv("LEVEE_WEB_ROOT");
    if (!root || !*root)
        return 0;
    char *abs = realpath(root, NULL);
    struct stat st;
    if (!abs || stat(abs, &st) != 0 || !S_ISDIR(st.st_mode) || strlen(abs) >= sizeof gw->web_root) {
        lv_error("LEVEE_WEB_ROOT is not a folder: %s", root);
        free(abs);
        return -1;
    }
    snprintf(gw->web_root, sizeof gw->web_root, "%s", abs);
    free(abs);
    return 0;
}

int main(void)
{
    lv_log_init("gateway");
    static gw_t gw;
    if (lv_cfg_load(&gw.cfg) || resolve_home(&gw) || resolve_web_root(&gw) ||
        sodium_init() < 0)
        return 1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)gw.cfg.http_port);
    if (inet_pton(AF_INET, gw.cfg.http_bind, &sa.sin_addr) != 1) {
        lv_error("LEVEE_HTTP_BIND is not an IPv4 address: %s", gw.cfg.http_bind);
        return 1;
    }
    /* The server's threads inherit this mask; only this thread takes the
     * stop signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    gw.zctx = zmq_ctx_new();
    gw.pool = gw_pool_new(gw.cfg.pg_conninfo, gw.cfg.http_pg_pool);
    gw.metrics = gw_metrics_new(gw_nroutes);
    void *daemon = gw.zctx && gw.pool && gw.metrics ? gw_http_start(&gw, (struct sockaddr *)&sa)
                                                    : NULL;
    int rc = 1;
    if (daemon) {
        lv_info("listening on http://%s:%d%s%s", gw.cfg.http_bind, gw.cfg.http_port,
                gw.web_root[0] ? ", dashboard from " : "", gw.web_root);
        int sig = 0;
        sigwait(&stop, &sig);
        lv_info("stopping on signal %d", sig);
        gw_http_stop(daemon);
        rc = 0;
    } else {
        lv_error("cannot listen on %s:%d", gw.cfg.http_bind, gw.cfg.http_port);
    }
    gw_pool_destroy(&gw.pool);
    gw_metrics_destroy(&gw.metrics);
    if (gw.zctx)
        zmq_ctx_term(gw.zctx);
    return rc;
}
