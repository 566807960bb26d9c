#define _POSIX_C_SOURCE 200809L
#include "lv_bus.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_metrics.h"
#include "lv_pg.h"
#include "lv_time.h"

/* ---- outbox ---------------------------------------------------------- */

int lv_outbox_put(PGconn *pg, const char *producer, const char *dest, const char *msg_id,
                  const char *type, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > LV_MAX_MSG_BYTES)
        return LV_ELIMIT;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return LV_ENOMEM;
    protobuf_c_message_pack(msg, buf);
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *params[6] = {msg_id, producer, dest, type, (const char *)buf, now};
    int lens[6] = {0, 0, 0, 0, (int)len, 0};
    int fmts[6] = {0, 0, 0, 0, 1, 0};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO outbox (msg_id, producer, dest, msg_type, payload, "
                                 "created_ms) VALUES ($1, $2, $3, $4, $5, $6) "
                                 "ON CONFLICT (msg_id) DO NOTHING",
                                 6, NULL, params, lens, fmts, 0);
    free(buf);
    int e = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        e = lv_pg_classify(pg, res);
        lv_error("outbox insert failed: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return e;
}

/* ---- consumer -------------------------------------------------------- */

#define FAIL_SLOTS 64

struct lv_consumer {
    char name[64];
    void *sock;
    int max_attempts;
    /* Messages whose handler failed while the database was fine, with how
     * often: a message that keeps failing is dead-lettered instead of
     * blocking its sender's ordered queue for ever. In memory: a restart
     * gives each message its attempts again. */
    struct {
        char id[LV_MSG_ID_MAX + 1];
        int n;
    } fails[FAIL_SLOTS];
    int next_slot;
};

void lv_consumer_set_max_attempts(lv_consumer_t *self, int n)
{
    self->max_attempts = n;
}

/* Counts one more failure of msg_id; returns the count so far. */
static int count_failure(lv_consumer_t *self, const char *msg_id)
{
    for (int i = 0; i < FAIL_SLOTS; i++)
        if (self->fails[i].n && !strcmp(self->fails[i].id, msg_id))
            return ++self->fails[i].n;
    int i = self->next_slot;
    self->next_slot = (i + 1) % FAIL_SLOTS;
    snprintf(self->fails[i].id, sizeof self->fails[i].id, "%s", msg_id);
    return self->fails[i].n = 1;
}

static void forget_failures(lv_consumer_t *self, const char *msg_id)
{
    for (int i = 0; i < FAIL_SLOTS; i++)
        if (self->fails[i].n && !strcmp(self->fails[i].id, msg_id))
            self->fails[i].n = 0;
}

lv_consumer_t *lv_consumer_new(void *zctx, const char *name, const char *endpoint)
{
    lv_consumer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->name, sizeof self->name, "%s", name);
    self->sock = zmq_socket(zctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    int64_t maxmsg = LV_MAX_MSG_BYTES;
    zmq_setsockopt(self->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(self->sock, endpoint) != 0) {
        lv_error("bind %s failed: %s", endpoint, zmq_strerror(errno));
        zmq_close(self->sock);
        free(self);
        return NULL;
    }
    return self;
}

void lv_consumer_destroy(lv_consumer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zmq_close((*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

void *lv_consumer_socket(lv_consumer_t *self)
{
    return self->sock;
}

#define MAX_FRAMES 4

static void ack(lv_consumer_t *self, zmq_msg_t *ident, const char *msg_id, const char *status,
                const lv_reply_t *r)
{
    Levee__Reply reply = LEVEE__REPLY__INIT;
    reply.ok = !strcmp(status, "ok") || !strcmp(status, "dup");
    reply.error = (char *)r->error;
    reply.detail = (char *)r->detail;
    size_t len = levee__reply__get_packed_size(&reply);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    levee__reply__pack(&reply, buf);
    /* A vanished peer is fine: it will resend and get "dup". */
    if (zmq_send(self->sock, zmq_msg_data(ident), zmq_msg_size(ident), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        zmq_send(self->sock, msg_id, strlen(msg_id), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
        zmq_send(self->sock, status, strlen(status), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(self->sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
}

static int consumed_insert(PGconn *pg, const char *consumer, const char *msg_id)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[3] = {consumer, msg_id, now};
    return (int)lv_pg_cmd_count(pg,
                                "INSERT INTO consumed (consumer, msg_id, consumed_ms) VALUES "
                                "($1, $2, $3) ON CONFLICT DO NOTHING",
                                3, p);
}

static int dead_letter(PGconn *pg, const char *consumer, const lv_msg_t *m, const char *reason)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[6] = {consumer, m->msg_id, m->type, reason, (const char *)m->body, now};
    int lens[6] = {0, 0, 0, 0, (int)m->len, 0};
    int fmts[6] = {0, 0, 0, 0, 1, 0};
    PGresult *res = PQexecParams(pg,
                                 "INSERT INTO dead_letter (consumer, msg_id, msg_type, reason, "
                                 "payload, created_ms) VALUES ($1, $2, $3, $4, $5, $6) "
                                 "ON CONFLICT DO NOTHING",
                                 6, NULL, p, lens, fmts, 0);
    int e = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : lv_pg_classify(pg, res);
    PQclear(res);
    return e;
}

/* Receives and handles one message; on return type holds its type ("" when
 * none was read) and *outcome what became of it (NULL when not handled to
 * an end: nothing waiting, malformed, or to be retried). */
static int step(lv_consumer_t *self, PGconn *pg, lv_handler_fn fn, void *ctx, char type[64],
                const char **outcome)
{
    zmq_msg_t frames[MAX_FRAMES];
    int n = 0, total = 0, more = 1, rc = 0;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_init(&tmp);
        if (zmq_msg_recv(&tmp, self->sock, total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&tmp);
            if (total == 0 && errno == EAGAIN)
                return 0;
            rc = LV_EIO;
            break;
        }
        more = zmq_msg_more(&tmp);
        total++;
        if (n < MAX_FRAMES)
            frames[n++] = tmp;
        else
            zmq_msg_close(&tmp); /* extra frames of a malformed message */
    }
    if (total != n)
        n = -n; /* mark as malformed below, after closing what we hold */
    if (rc || n != 4) {
        if (n < 0)
            n = -n;
        if (!rc)
            lv_warn("%s: dropped a message with %d frames (want 4)", self->name, total);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        return rc ? rc : 1;
    }
    char msg_id[LV_MSG_ID_MAX + 1];
    size_t idlen = zmq_msg_size(&frames[1]), tlen = zmq_msg_size(&frames[2]);
    lv_reply_t reply;
    reply.error[0] = reply.detail[0] = '\0';
    if (idlen == 0 || idlen > LV_MSG_ID_MAX || tlen == 0 || tlen >= 64) {
        lv_warn("%s: dropped a message with a bad id or type", self->name);
        goto out;
    }
    memcpy(msg_id, zmq_msg_data(&frames[1]), idlen);
    msg_id[idlen] = '\0';
    memcpy(type, zmq_msg_data(&frames[2]), tlen);
    type[tlen] = '\0';
    lv_msg_t m = {msg_id, type, zmq_msg_data(&frames[3]), zmq_msg_size(&frames[3])};

    if (lv_pg_ensure(pg) || lv_pg_begin(pg)) {
        rc = LV_ETRANSIENT;
        goto out;
    }
    int ins = consumed_insert(pg, self->name, msg_id);
    if (ins < 0) {
        lv_pg_rollback(pg);
        rc = LV_ETRANSIENT;
        goto out;
    }
    if (ins == 0) {
        lv_pg_rollback(pg);
        snprintf(reply.detail, sizeof reply.detail, "already processed");
        ack(self, &frames[0], msg_id, "dup", &reply);
        *outcome = "dup";
        rc = 1;
        goto out;
    }
    if (lv_pg_cmd(pg, "SAVEPOINT handler", 0, NULL)) {
        lv_pg_rollback(pg);
        rc = LV_ETRANSIENT;
        goto out;
    }
    int e = fn(ctx, pg, &m, &reply);
    const char *status = "ok";
    if (e == LV_ESTATE || e == LV_EINVAL || e == LV_ENOTFOUND) {
        if (lv_pg_cmd(pg, "ROLLBACK TO SAVEPOINT handler", 0, NULL)) {
            lv_pg_rollback(pg);
            rc = LV_ETRANSIENT;
            goto out;
        }
        status = e == LV_EINVAL ? "dead" : "refused";
        if (e == LV_EINVAL) {
            lv_warn("%s: dead-lettered %s (%s): %s", self->name, msg_id, type, reply.error);
            if (dead_letter(pg, self->name, &m, reply.error[0] ? reply.error : "invalid")) {
                lv_pg_rollback(pg);
                rc = LV_ETRANSIENT;
                goto out;
            }
        }
    } else if (e != 0) {
        lv_pg_rollback(pg);
        rc = LV_ETRANSIENT; /* no ack: the sender resends */
        /* The database answers, yet the handler fails: count it, and after
         * max_attempts dead-letter the message with its reason. */
        if (self->max_attempts > 0 && PQstatus(pg) == CONNECTION_OK &&
            count_failure(self, msg_id) >= self->max_attempts) {
            char why[sizeof reply.error + 64];
            snprintf(why, sizeof why, "处理失败 %d 次 (failed %d times): %s", self->max_attempts,
                     self->max_attempts, reply.error[0] ? reply.error : lv_strerror(e));
            if (lv_pg_begin(pg) == 0 && consumed_insert(pg, self->name, msg_id) >= 0 &&
                dead_letter(pg, self->name, &m, why) == 0 && lv_pg_commit(pg) == 0) {
                lv_warn("%s: dead-lettered %s (%s): %s", self->name, msg_id, type, why);
                forget_failures(self, msg_id);
                snprintf(reply.error, sizeof reply.error, "%.*s", (int)sizeof reply.error - 1, why);
                ack(self, &frames[0], msg_id, "dead", &reply);
                *outcome = "dead";
                rc = 1;
            } else {
                lv_pg_rollback(pg);
            }
        }
        goto out;
    } else if (reply.error[0]) {
        status = "refused"; /* refused, with a record of the refusal kept */
    }
    if (lv_pg_commit(pg)) {
        rc = LV_ETRANSIENT;
        goto out;
    }
    ack(self, &frames[0], msg_id, status, &reply);
    *outcome = status;
    forget_failures(self, msg_id);
    rc = 1;
out:
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return rc;
}

int lv_consumer_step(lv_consumer_t *self, PGconn *pg, lv_handler_fn fn, void *ctx)
{
    char type[64] = "";
    const char *outcome = NULL;
    int64_t t0 = lv_mono_us();
    int rc = step(self, pg, fn, ctx, type, &outcome);
    if (!type[0])
        return rc;
    /* A type from the wire goes into a label only if it is a plain word. */
    if (strspn(type, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(type))
        snprintf(type, 64, "other");
    /* Per message (a batch of records is one message), so the lookups are cheap. */
    char labels[200];
    snprintf(labels, sizeof labels, "service=\"%s\",type=\"%s\",outcome=\"%s\"", self->name,
             type, outcome ? outcome : "retry");
    lv_metric_add(lv_counter("levee_messages_total",
                             "Messages handled by a consumer, by type and outcome "
                             "(ok, dup, refused, dead, retry)",
                             labels),
                  1);
    snprintf(labels, sizeof labels, "service=\"%s\",type=\"%s\"", self->name, type);
    lv_metric_observe(lv_histogram("levee_handle_seconds",
                                   "Time to handle one message and commit its effects",
                                   labels, NULL, 0),
                      (double)(lv_mono_us() - t0) / 1e6);
    return rc;
}

/* ---- relay ----------------------------------------------------------- */

#define MAX_DESTS 32
#define MAX_CREDIT 64
#define SCAN_MS 500

typedef struct {
    int64_t seq;
    char msg_id[LV_MSG_ID_MAX + 1];
    char type[64];
    uint8_t *body;
    size_t len;
    int64_t sent_ms;
} flight_t;

typedef struct {
    char name[32];
    void *sock;
    int64_t last_seq;
    flight_t flight[MAX_CREDIT];
    int nflight;
} dest_t;

struct lv_relay {
    char producer[32];
    void *zctx;
    int credit, resend_ms;
    dest_t dests[MAX_DESTS];
    int ndests;
    bool kicked;
    int64_t next_scan_ms;
    char **acked;   /* ids acked since the last delete */
    int nacked, cap_acked;
};

lv_relay_t *lv_relay_new(void *zctx, const char *producer, int credit, int resend_ms)
{
    lv_relay_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->producer, sizeof self->producer, "%s", producer);
    self->zctx = zctx;
    self->credit = credit < 1 ? 1 : credit > MAX_CREDIT ? MAX_CREDIT : credit;
    self->resend_ms = resend_ms;
    self->kicked = true;
    return self;
}

void lv_relay_destroy(lv_relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_relay_t *self = *self_p;
    for (int i = 0; i < self->ndests; i++) {
        for (int j = 0; j < self->dests[i].nflight; j++)
            free(self->dests[i].flight[j].body);
        zmq_close(self->dests[i].sock);
    }
    for (int i = 0; i < self->nacked; i++)
        free(self->acked[i]);
    free(self->acked);
    free(self);
    *self_p = NULL;
}

int lv_relay_add(lv_relay_t *self, const char *dest, const char *endpoint)
{
    if (self->ndests >= MAX_DESTS)
        return LV_ELIMIT;
    dest_t *d = &self->dests[self->ndests];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", dest);
    d->sock = zmq_socket(self->zctx, ZMQ_DEALER);
    int one = 1, zero = 0;
    /* IMMEDIATE: never queue for a peer that is not connected; the outbox
     * row is the queue. */
    zmq_setsockopt(d->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(d->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(d->sock, endpoint) != 0) {
        lv_error("connect %s failed: %s", endpoint, zmq_strerror(errno));
        zmq_close(d->sock);
        return LV_EINVAL;
    }
    self->ndests++;
    return 0;
}

int lv_relay_pollitems(lv_relay_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    for (int i = 0; i < self->ndests && n < max; i++, n++) {
        items[n].socket = self->dests[i].sock;
        items[n].fd = 0;
        items[n].events = ZMQ_POLLIN;
        items[n].revents = 0;
    }
    return n;
}

void lv_relay_kick(lv_relay_t *self)
{
    self->kicked = true;
}

int lv_relay_inflight(const lv_relay_t *self)
{
    int n = 0;
    for (int i = 0; i < self->ndests; i++)
        n += self->dests[i].nflight;
    return n;
}

static int send_flight(dest_t *d, flight_t *f)
{
    if (zmq_send(d->sock, f->msg_id, strlen(f->msg_id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    zmq_send(d->sock, f->type, strlen(f->type), ZMQ_SNDMORE);
    zmq_send(d->sock, f->body, f->len, 0);
    f->sent_ms = lv_mono_ms();
    return 0;
}

static void note_ack(lv_relay_t *self, dest_t *d, const char *msg_id)
{
    for (int j = 0; j < d->nflight; j++) {
        if (!strcmp(d->flight[j].msg_id, msg_id)) {
            /* Keep the rest in send order (seq order), so a resend after a
             * consumer restart delivers in the original order. */
            free(d->flight[j].body);
            memmove(&d->flight[j], &d->flight[j + 1],
                    (size_t)(d->nflight - j - 1) * sizeof d->flight[0]);
            d->nflight--;
            break;
        }
    }
    if (self->nacked == self->cap_acked) {
        int cap = self->cap_acked ? self->cap_acked * 2 : 64;
        char **a = realloc(self->acked, (size_t)cap * sizeof *a);
        if (!a)
            return; /* the row stays; it is resent later and acked as dup */
        self->acked = a;
        self->cap_acked = cap;
    }
    self->acked[self->nacked++] = strdup(msg_id);
}

static void take_acks(lv_relay_t *self, dest_t *d)
{
    for (;;) {
        zmq_msg_t f[3];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_init(&tmp);
            if (zmq_msg_recv(&tmp, d->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&tmp);
                for (int i = 0; i < n && i < 3; i++)
                    zmq_msg_close(&f[i]);
                return;
            }
            more = zmq_msg_more(&tmp);
            if (n < 3)
                f[n] = tmp;
            else
                zmq_msg_close(&tmp);
            n++;
        }
        if (n >= 2) {
            char id[LV_MSG_ID_MAX + 1], st[16];
            size_t il = zmq_msg_size(&f[0]), sl = zmq_msg_size(&f[1]);
            if (il <= LV_MSG_ID_MAX && sl < sizeof st) {
                memcpy(id, zmq_msg_data(&f[0]), il);
                id[il] = '\0';
                memcpy(st, zmq_msg_data(&f[1]), sl);
                st[sl] = '\0';
                if (strcmp(st, "ok") && strcmp(st, "dup"))
                    lv_warn("peer %s answered %s for %s", d->name, st, id);
                note_ack(self, d, id);
            }
        }
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&f[i]);
    }
}

static int delete_acked(lv_relay_t *self, PGconn *pg)
{
    if (!self->nacked)
        return 0;
    /* One statement for all acked ids, passed as one text[] parameter. */
    lv_buf_t arr;
    lv_buf_init(&arr, (size_t)1 << 24);
    lv_arr_begin(&arr);
    for (int i = 0; i < self->nacked; i++)
        lv_arr_text(&arr, self->acked[i], strlen(self->acked[i]));
    lv_arr_end(&arr);
    const char *p[1] = {lv_buf_str(&arr)};
    int e = arr.failed ? LV_ENOMEM
                       : lv_pg_cmd(pg, "DELETE FROM outbox WHERE msg_id = ANY($1::text[])", 1, p);
    lv_buf_free(&arr);
    if (!e) {
        for (int i = 0; i < self->nacked; i++)
            free(self->acked[i]);
        self->nacked = 0;
    }
    return e;
}

static int64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return (int64_t)v;
}

static int fetch_new(lv_relay_t *self, PGconn *pg, dest_t *d)
{
    int room = self->credit - d->nflight;
    if (room <= 0)
        return 0;
    /* An old unacknowledged message means the consumer went away: resend it
     * first, so that a restarted consumer sees messages in their order. */
    int64_t now = lv_mono_ms();
    for (int j = 0; j < d->nflight; j++)
        if (now - d->flight[j].sent_ms > self->resend_ms / 2)
            return 0;
    char last[24], lim[16];
    snprintf(last, sizeof last, "%lld", (long long)d->last_seq);
    snprintf(lim, sizeof lim, "%d", room);
    const char *p[4] = {self->producer, d->name, last, lim};
    PGresult *res = PQexecParams(pg,
                                 "SELECT seq, msg_id, msg_type, payload FROM outbox WHERE "
                                 "producer = $1 AND dest = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                                 4, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int e = lv_pg_classify(pg, res);
        lv_error("outbox scan failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return e;
    }
    int sent = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        flight_t *f = &d->flight[d->nflight];
        memset(f, 0, sizeof *f);
        f->seq = be64(PQgetvalue(res, i, 0));
        snprintf(f->msg_id, sizeof f->msg_id, "%.*s", PQgetlength(res, i, 1), PQgetvalue(res, i, 1));
        snprintf(f->type, sizeof f->type, "%.*s", PQgetlength(res, i, 2), PQgetvalue(res, i, 2));
        f->len = (size_t)PQgetlength(res, i, 3);
        f->body = malloc(f->len ? f->len : 1);
        if (!f->body)
            break;
        memcpy(f->body, PQgetvalue(res, i, 3), f->len);
        if (send_flight(d, f) < 0) {
            free(f->body); /* peer not connected yet: try at the next scan */
            break;
        }
        d->last_seq = f->seq;
        d->nflight++;
        sent++;
    }
    PQclear(res);
    return sent;
}

int lv_relay_run(lv_relay_t *self, PGconn *pg)
{
    int64_t now = lv_mono_ms();
    bool scan = self->kicked || now >= self->next_scan_ms;
    for (int i = 0; i < self->ndests; i++) {
        dest_t *d = &self->dests[i];
        take_acks(self, d);
        for (int j = 0; j < d->nflight; j++)
            if (now - d->flight[j].sent_ms >= self->resend_ms)
                send_flight(d, &d->flight[j]);
    }
    if (lv_pg_ensure(pg))
        return LV_ETRANSIENT;
    int e = delete_acked(self, pg);
    if (e)
        return e;
    /* Acks freed credit: fill it at once rather than at the next scan. */
    for (int i = 0; i < self->ndests; i++) {
        dest_t *d = &self->dests[i];
        if (scan || d->nflight < self->credit) {
            int s = fetch_new(self, pg, d);
            if (s < 0)
                return s;
        }
    }
    if (scan) {
        self->kicked = false;
        self->next_scan_ms = now + SCAN_MS;
    }
    return 0;
}

/* ---- synchronous call ------------------------------------------------ */

int lv_bus_call(void *zctx, const char *endpoint, const char *msg_id, const char *type,
                const ProtobufCMessage *msg, int timeout_ms, char status[16], Levee__Reply **reply)
{
    *reply = NULL;
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return LV_ENOMEM;
    protobuf_c_message_pack(msg, buf);
    int rc = lv_bus_call_raw(zctx, endpoint, msg_id, type, buf, len, timeout_ms, status, reply);
    free(buf);
    return rc;
}

int lv_bus_call_raw(void *zctx, const char *endpoint, const char *msg_id, const char *type,
                    const uint8_t *buf, size_t len, int timeout_ms, char status[16],
                    Levee__Reply **reply)
{
    *reply = NULL;
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    int rc = LV_ETRANSIENT;
    if (zmq_connect(s, endpoint) != 0)
        goto done;
    int64_t until = lv_mono_ms() + timeout_ms;
    while (lv_mono_ms() < until) {
        zmq_send(s, msg_id, strlen(msg_id), ZMQ_SNDMORE);
        zmq_send(s, type, strlen(type), ZMQ_SNDMORE);
        zmq_send(s, buf, len, 0);
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int wait = (int)(until - lv_mono_ms());
        if (wait > 2000)
            wait = 2000;
        if (wait < 0)
            wait = 0;
        while (zmq_poll(&it, 1, wait) > 0) {
            zmq_msg_t f[3];
            int n = 0, more = 1;
            while (more && n < 3) {
                zmq_msg_init(&f[n]);
                zmq_msg_recv(&f[n], s, 0);
                more = zmq_msg_more(&f[n]);
                n++;
            }
            bool mine = n == 3 && zmq_msg_size(&f[0]) == strlen(msg_id) &&
                        !memcmp(zmq_msg_data(&f[0]), msg_id, strlen(msg_id));
            if (mine) {
                snprintf(status, 16, "%.*s", (int)zmq_msg_size(&f[1]), (char *)zmq_msg_data(&f[1]));
                *reply = levee__reply__unpack(NULL, zmq_msg_size(&f[2]), zmq_msg_data(&f[2]));
                rc = 0;
            }
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            if (mine)
                goto done;
        }
    }
done:
    zmq_close(s);
    return rc;
}
