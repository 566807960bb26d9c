/* GET /healthz and GET /metrics. Health is 200 only when Postgres, Redis and
 * the services' bus endpoints (matching, dispatch, ledger, notify) answer. A
 * peer answers when a ZeroMQ handshake with it completes: no message is
 * sent, so a health check leaves nothing in any service. ingest has no bus
 * endpoint (it takes its work from the import table) and is not probed. */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "gw.h"
#include "lv_metrics.h"
#include "lv_pg.h"
#include "lv_time.h"

#define CHECK_MS 1500
#define NPEERS 4
#define GW_METRICS_MAX (4 << 20) /* bytes of the /metrics text */

static const char *check_postgres(gw_req_t *r)
{
    PGconn *pg = gw_pool_get(r->gw->pool, CHECK_MS);
    if (!pg)
        return "unreachable";
    char one[8];
    int e = lv_pg_scalar(pg, one, sizeof one, "SELECT 1", 0, NULL);
    gw_pool_put(r->gw->pool, pg);
    return e ? "query failed" : "ok";
}

static const char *check_redis(const lv_cfg_t *cfg)
{
    struct timeval tv = {CHECK_MS / 1000, (CHECK_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (!c || c->err) {
        redisFree(c);
        return "unreachable";
    }
    redisSetTimeout(c, tv);
    redisReply *rep = redisCommand(c, "PING");
    bool ok = rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG");
    freeReplyObject(rep);
    redisFree(c);
    return ok ? "ok" : "no answer";
}

/* Connects to every peer at once and waits for the handshakes. */
static void check_peers(void *zctx, const char *const *eps, bool *ok)
{
    static atomic_uint seq;
    void *sock[NPEERS] = {NULL}, *mon[NPEERS] = {NULL};
    zmq_pollitem_t items[NPEERS];
    int zero = 0;
    for (int i = 0; i < NPEERS; i++) {
        ok[i] = false;
        char addr[64];
        snprintf(addr, sizeof addr, "inproc://gw-health-%u", atomic_fetch_add(&seq, 1));
        sock[i] = zmq_socket(zctx, ZMQ_DEALER);
        if (!sock[i])
            continue;
        zmq_setsockopt(sock[i], ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_socket_monitor(sock[i], addr, ZMQ_EVENT_HANDSHAKE_SUCCEEDED) == 0) {
            mon[i] = zmq_socket(zctx, ZMQ_PAIR);
            if (mon[i] && zmq_connect(mon[i], addr) == 0)
                zmq_connect(sock[i], eps[i]);
        }
        items[i] = (zmq_pollitem_t){mon[i], 0, mon[i] ? ZMQ_POLLIN : 0, 0};
    }
    int64_t until = lv_mono_ms() + CHECK_MS;
    int answered = 0;
    while (answered < NPEERS) {
        int64_t left = until - lv_mono_ms();
        if (left <= 0 || zmq_poll(items, NPEERS, (long)left) <= 0)
            break;
        for (int i = 0; i < NPEERS; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t f;
            zmq_msg_init(&f);
            int more = 1;
            bool first = true;
            while (more && zmq_msg_recv(&f, mon[i], 0) >= 0) {
                if (first && zmq_msg_size(&f) >= 2) {
                    uint16_t ev;
                    memcpy(&ev, zmq_msg_data(&f), sizeof ev);
                    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && !ok[i]) {
                        ok[i] = true;
                        answered++;
                        items[i].events = 0;
                    }
                }
                first = false;
                more = zmq_msg_more(&f);
            }
            zmq_msg_close(&f);
        }
    }
    for (int i = 0; i < NPEERS; i++) {
        if (sock[i])
            zmq_socket_monitor(sock[i], NULL, 0);
        if (mon[i])
            zmq_close(mon[i]);
        if (sock[i])
            zmq_close(sock[i]);
    }
}

void gw_h_healthz(gw_req_t *r)
{
    const lv_cfg_t *cfg = &r->gw->cfg;
    static const char *const names[NPEERS] = {"matching", "dispatch", "ledger", "notify"};
    const char *const eps[NPEERS] = {cfg->ep_matching, cfg->ep_dispatch, cfg->ep_ledger,
                                     cfg->ep_notify};
    bool peer_ok[NPEERS];
    check_peers(r->gw->zctx, eps, peer_ok);
    const char *pg = check_postgres(r), *redis = check_redis(cfg);
    bool healthy = !strcmp(pg, "ok") && !strcmp(redis, "ok");
    json_t *peers = json_object();
    for (int i = 0; i < NPEERS; i++) {
        json_object_set_new(peers, names[i], json_string(peer_ok[i] ? "ok" : "no answer"));
        healthy = healthy && peer_ok[i];
    }
    json_t *d = json_pack("{s:s, s:s, s:o}", "postgres", pg, "redis", redis, "peers", peers);
    if (healthy) {
        json_object_set_new(d, "status", json_string("ok"));
        gw_reply_json(r, 200, d);
    } else {
        gw_reply_error_json(r, 503, "unavailable", d);
    }
}

void gw_h_metrics(gw_req_t *r)
{
    lv_buf_t b;
    lv_buf_init(&b, GW_METRICS_MAX);
    lv_metrics_render(&b);
    if (b.failed) {
        lv_buf_free(&b);
        gw_reply_error(r, 500, "internal", "指标过多 (metrics over %d bytes)", GW_METRICS_MAX);
        return;
    }
    gw_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.s, b.len);
}
