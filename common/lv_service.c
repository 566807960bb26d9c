#define _POSIX_C_SOURCE 200809L
#include "lv_service.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_metrics.h"
#include "lv_pg.h"
#include "lv_time.h"

struct lv_service {
    lv_service_opts_t opts;
    lv_cfg_t cfg;
    lv_policy_t *policy;
    PGconn *pg;
    void *zctx;
    lv_consumer_t *consumer;
    lv_consumer_t *urgent; /* the urgent lane, served first */
    lv_relay_t *relay;
    lv_metrics_server_t *metrics;
    /* Written by the loop, read by the metrics thread. */
    _Atomic int64_t last_turn_ms;
    _Atomic bool pg_ok;
    lv_metric_t *m_inflight, *m_outbox, *m_turns;
    int64_t next_outbox_ms;
    int listen_pid; /* the backend that LISTENs on opts.listen (0: none yet) */
};

static volatile sig_atomic_t s_stop, s_reload;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

bool lv_service_stopping(void)
{
    return s_stop != 0;
}

/* /healthz: the loop turned recently and Postgres answers. */
static bool health(void *ctx, char *detail, size_t n)
{
    lv_service_t *self = ctx;
    int64_t age = lv_now_ms() - atomic_load(&self->last_turn_ms);
    bool pg = atomic_load(&self->pg_ok);
    bool ok = pg && age <= self->cfg.health_stale_ms;
    snprintf(detail, n,
             "{\"status\": \"%s\", \"service\": \"%s\", \"loop_age_ms\": %lld, "
             "\"postgres\": \"%s\"}",
             ok ? "ok" : "unhealthy", self->opts.name, (long long)age, pg ? "ok" : "down");
    return ok;
}

static void start_metrics(lv_service_t *self)
{
    char labels[96];
    snprintf(labels, sizeof labels, "service=\"%s\"", self->opts.name);
    self->m_inflight = lv_gauge("levee_relay_inflight",
                                "Messages sent to peers and not yet acknowledged", labels);
    self->m_outbox = lv_gauge("levee_outbox_depth",
                              "Messages in the outbox waiting to be sent or acknowledged", labels);
    self->m_turns = lv_counter("levee_loop_turns_total", "Turns of the service's main loop", labels);
    atomic_store(&self->last_turn_ms, lv_now_ms());
    atomic_store(&self->pg_ok, true);
    int port = lv_cfg_metrics_port(&self->cfg, self->opts.name);
    if (port > 0)
        self->metrics = lv_metrics_serve("127.0.0.1", port, health, self);
}

/* Gauges the loop keeps current; the outbox count is a query, so it runs
 * every few seconds only. */
static void update_gauges(lv_service_t *self)
{
    int64_t now = lv_now_ms();
    atomic_store(&self->last_turn_ms, now);
    atomic_store(&self->pg_ok, PQstatus(self->pg) == CONNECTION_OK);
    lv_metric_add(self->m_turns, 1);
    lv_metric_set(self->m_inflight, lv_relay_inflight(self->relay));
    if (now < self->next_outbox_ms)
        return;
    self->next_outbox_ms = now + 5000;
    char depth[24];
    const char *p[1] = {self->opts.name};
    if (lv_pg_scalar(self->pg, depth, sizeof depth,
                     "SELECT count(*) FROM outbox WHERE producer = $1", 1, p) == 0)
        lv_metric_set(self->m_outbox, strtoll(depth, NULL, 10));
}

lv_service_t *lv_service_new(const lv_service_opts_t *opts)
{
    lv_log_init(opts->name);
    lv_service_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    if (lv_cfg_load(&self->cfg))
        goto fail;
    char err[512];
    self->policy = lv_policy_load(self->cfg.policy_path, err, sizeof err);
    if (!self->policy) {
        lv_error("%s", err);
        goto fail;
    }
    /* Each session names its service in pg_stat_activity (unless the
     * environment names it already). */
    setenv("PGAPPNAME", opts->name, 0);
    self->pg = lv_pg_connect(self->cfg.pg_conninfo, 30000);
    if (!self->pg || (opts->prepare && lv_pg_prepare_statements(self->pg)))
        goto fail;
    self->zctx = zmq_ctx_new();
    if (opts->bind_endpoint && self->cfg.lane != LV_LANE_URGENT) {
        self->consumer = lv_consumer_new(self->zctx, opts->name, opts->bind_endpoint);
        if (!self->consumer)
            goto fail;
        lv_consumer_set_max_attempts(self->consumer, self->cfg.max_attempts);
    }
    if (opts->bind_endpoint && self->cfg.lane != LV_LANE_NORMAL) {
        char ep[640];
        lv_cfg_urgent_endpoint(opts->bind_endpoint, ep, sizeof ep);
        self->urgent = lv_consumer_new(self->zctx, opts->name, ep);
        if (!self->urgent)
            goto fail;
        lv_consumer_set_max_attempts(self->urgent, self->cfg.max_attempts);
    }
    self->relay = lv_relay_new(self->zctx, opts->name, self->cfg.credit, self->cfg.resend_ms);
    if (!self->relay)
        goto fail;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    start_metrics(self);
    return self;
fail:
    lv_service_destroy(&self);
    return NULL;
}

void lv_service_destroy(lv_service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_service_t *self = *self_p;
    lv_metrics_server_stop(&self->metrics);
    lv_relay_destroy(&self->relay);
    lv_consumer_destroy(&self->consumer);
    lv_consumer_destroy(&self->urgent);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    if (self->pg)
        PQfinish(self->pg);
    lv_policy_destroy(&self->policy);
    free(self);
    *self_p = NULL;
}

int lv_service_add_dest(lv_service_t *self, const char *dest, const char *endpoint)
{
    return lv_relay_add(self->relay, dest, endpoint);
}

PGconn *lv_service_pg(lv_service_t *self)
{
    return self->pg;
}

const lv_cfg_t *lv_service_cfg(const lv_service_t *self)
{
    return &self->cfg;
}

const lv_policy_t *lv_service_policy(const lv_service_t *self)
{
    return self->policy;
}

lv_relay_t *lv_service_relay(lv_service_t *self)
{
    return self->relay;
}

static void reload_policy(lv_service_t *self)
{
    char err[512];
    lv_policy_t *p = lv_policy_load(self->cfg.policy_path, err, sizeof err);
    if (!p) {
        lv_error("policy reload refused, keeping the old one: %s", err);
        return;
    }
    /* The loop is single-threaded and nothing holds a version across turns,
     * so swapping here loses no in-flight work. */
    lv_policy_destroy(&self->policy);
    self->policy = p;
    lv_info("policy reloaded from %s", self->cfg.policy_path);
}

/* The session's socket as a poll item when it listens on opts.listen: a
 * new session (after a reset) is made to LISTEN first. False when there is
 * nothing to watch (no channel, no connection, or LISTEN failed). */
static bool listen_item(lv_service_t *self, zmq_pollitem_t *it)
{
    if (!self->opts.listen || PQstatus(self->pg) != CONNECTION_OK)
        return false;
    int pid = PQbackendPID(self->pg);
    if (pid != self->listen_pid) {
        char sql[128];
        snprintf(sql, sizeof sql, "LISTEN %s", self->opts.listen);
        if (lv_pg_cmd(self->pg, sql, 0, NULL))
            return false;
        self->listen_pid = pid;
    }
    it->socket = NULL;
    it->fd = PQsocket(self->pg);
    it->events = ZMQ_POLLIN;
    it->revents = 0;
    return it->fd >= 0;
}

/* Reads what woke the loop; the notifications themselves say nothing more. */
static void drain_notifies(lv_service_t *self)
{
    if (!PQconsumeInput(self->pg)) {
        self->listen_pid = 0; /* broken: lv_pg_ensure reconnects, then LISTEN again */
        return;
    }
    PGnotify *nf;
    while ((nf = PQnotifies(self->pg)))
        PQfreemem(nf);
}

int lv_service_run(lv_service_t *self)
{
    lv_info("started");
    int wait = 0;
    while (!s_stop) {
        zmq_pollitem_t items[16];
        int n = 0;
        lv_consumer_t *lanes[2] = {self->urgent, self->consumer};
        for (int l = 0; l < 2; l++) {
            if (!lanes[l])
                continue;
            items[n].socket = lv_consumer_socket(lanes[l]);
            items[n].fd = 0;
            items[n].events = ZMQ_POLLIN;
            items[n].revents = 0;
            n++;
        }
        n += lv_relay_pollitems(self->relay, items + n, 15 - n);
        int listening = listen_item(self, &items[n]) ? n++ : -1;
        if (zmq_poll(items, n, wait) < 0 && errno != EINTR)
            lv_error("poll: %s", zmq_strerror(errno));
        if (listening >= 0 && items[listening].revents)
            drain_notifies(self);
        if (s_reload) {
            s_reload = 0;
            reload_policy(self);
        }
        bool busy = false;
        /* A bounded number per turn so acks and ticks are never starved. */
        for (int i = 0; i < 16 && !s_stop && (self->consumer || self->urgent); i++) {
            /* Whatever waits on the urgent lane goes before the next normal
             * message. */
            bool urgent = false;
            for (int j = 0; j < 16 && !s_stop && self->urgent; j++) {
                if (lv_consumer_step(self->urgent, self->pg, self->opts.handler, self->opts.ctx) <= 0)
                    break;
                busy = urgent = true;
            }
            /* What an urgent message produced leaves now, not after the
             * normal messages of this turn. */
            if (urgent) {
                lv_relay_kick(self->relay);
                if (lv_relay_run(self->relay, self->pg) == LV_ETRANSIENT)
                    lv_pg_ensure(self->pg);
            }
            int r = self->consumer ? lv_consumer_step(self->consumer, self->pg, self->opts.handler,
                                                      self->opts.ctx)
                                   : urgent;
            if (r <= 0) {
                if (r < 0)
                    busy = false;
                break;
            }
            busy = true;
        }
        if (busy)
            lv_relay_kick(self->relay);
        if (lv_relay_run(self->relay, self->pg) == LV_ETRANSIENT)
            lv_pg_ensure(self->pg);
        wait = 100;
        if (self->opts.tick) {
            int t = self->opts.tick(self->opts.ctx, self);
            if (t < wait)
                wait = t < 0 ? 0 : t;
        }
        if (busy)
            wait = 0;
        update_gauges(self);
    }
    lv_info("stopping");
    return 0;
}
