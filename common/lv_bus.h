/* Messages between services: protobuf over ZeroMQ with application acks.
 *
 * Producer: lv_outbox_put writes a message into the outbox table inside the
 * producer's own transaction; the relay sends outbox rows over a DEALER, keeps
 * at most `credit` unacknowledged per peer, resends after `resend_ms`, and
 * deletes a row once its ack arrives. Consumer: a ROUTER; each message is
 * handled in one transaction that also records its id in `consumed`, and is
 * acknowledged only after that commit. A redelivered id is acked with no
 * effect.
 *
 * Frames: request [msg_id][type][body]; ack [msg_id][status][Reply], status
 * one of ok / dup / refused / dead. */
#ifndef LV_BUS_H
#define LV_BUS_H

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "levee.pb-c.h"

#define LV_MSG_ID_MAX 200
#define LV_MAX_MSG_BYTES (64 * 1024 * 1024)

typedef struct {
    const char *msg_id;
    const char *type;
    const uint8_t *body;
    size_t len;
} lv_msg_t;

/* What a handler tells the sender. */
typedef struct {
    char error[512];
    char detail[4096];
} lv_reply_t;

/* A handler runs inside the consumer's transaction. Return 0 to commit its
 * effects (with reply->error set, the effects are kept and the sender hears
 * "refused": a refusal that leaves a record, e.g. a payout refused for want
 * of money); LV_ESTATE to refuse (effects rolled back, the id recorded, the
 * error replied); LV_EINVAL for a bad message (rolled back, dead-lettered with
 * reply->error as the reason); LV_ETRANSIENT to roll back and not ack, so the
 * sender retries. */
typedef int (*lv_handler_fn)(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* Writes one message into the outbox in the caller's open transaction. A
 * message id already present is left alone (idempotent). */
int lv_outbox_put(PGconn *pg, const char *producer, const char *dest, const char *msg_id,
                  const char *type, const ProtobufCMessage *msg);

typedef struct lv_consumer lv_consumer_t;
lv_consumer_t *lv_consumer_new(void *zctx, const char *name, const char *endpoint);
void lv_consumer_destroy(lv_consumer_t **self_p);
void *lv_consumer_socket(lv_consumer_t *self);
/* A message whose handler fails n times while the database answers is
 * dead-lettered with its reason (0: retry for ever). */
void lv_consumer_set_max_attempts(lv_consumer_t *self, int n);
/* Receives and handles at most one message (non-blocking). Returns 1 when one
 * was handled, 0 when none was waiting, or a negative error. */
int lv_consumer_step(lv_consumer_t *self, PGconn *pg, lv_handler_fn fn, void *ctx);

/* The urgent lane to a peer: a second destination ("dispatch!urgent") with
 * its own ordered queue, connected to the peer's urgent endpoint
 * (lv_cfg_urgent_endpoint), which the peer serves before its normal one, so
 * an urgent message waits for the message in hand only, never a backlog. */
#define LV_URGENT_SUFFIX "!urgent"

typedef struct lv_relay lv_relay_t;
lv_relay_t *lv_relay_new(void *zctx, const char *producer, int credit, int resend_ms);
void lv_relay_destroy(lv_relay_t **self_p);
int lv_relay_add(lv_relay_t *self, const char *dest, const char *endpoint);
/* Fills poll items for the relay's sockets; returns how many. */
int lv_relay_pollitems(lv_relay_t *self, zmq_pollitem_t *items, int max);
/* New outbox rows exist: look now instead of at the next periodic scan. */
void lv_relay_kick(lv_relay_t *self);
/* Takes acks, resends timed-out messages, sends new rows within credit. */
int lv_relay_run(lv_relay_t *self, PGconn *pg);
/* Messages sent and not yet acknowledged. */
int lv_relay_inflight(const lv_relay_t *self);

/* A synchronous call for tools (CLI, gateway): sends one message and waits
 * for its ack, resending with the same id until timeout_ms. Returns 0 with
 * *status ("ok", "dup", "refused", "dead") and *reply (caller frees with
 * levee__reply__free_unpacked), or LV_ETRANSIENT on timeout. */
int lv_bus_call(void *zctx, const char *endpoint, const char *msg_id, const char *type,
                const ProtobufCMessage *msg, int timeout_ms, char status[16], Levee__Reply **reply);
/* The same with a body already packed (e.g. a dead letter's payload). */
int lv_bus_call_raw(void *zctx, const char *endpoint, const char *msg_id, const char *type,
                    const uint8_t *body, size_t len, int timeout_ms, char status[16],
                    Levee__Reply **reply);

#endif
