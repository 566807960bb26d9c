/* levee-notify: events in, messages out. The consumer turns an Event into an
 * inbox row per recipient and a delivery row per (recipient, channel) that
 * the recipient subscribed to, in the transaction that consumes the event;
 * the sender (ntf_send.h) delivers those rows from the service's tick. */
#ifndef NTF_NOTIFY_H
#define NTF_NOTIFY_H

#include <libpq-fe.h>

#include "lv_arena.h"
#include "lv_bus.h"
#include "lv_service.h"
#include "ntf_config.h"
#include "ntf_send.h"

typedef struct {
    lv_arena_t *arena;
    ntf_config_t *config; /* replaced by ntf_reload */
    char config_path[512];
    ntf_sender_t *sender;
} ntf_t;

/* LEVEE_NOTIFY_CONFIG, or config/notify.json. */
const char *ntf_config_path(void);

/* The consumer handler: "event" messages from dispatch, ledger and tools. */
int ntf_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* The service's tick: delivers pending rows; returns how long it may sleep. */
int ntf_tick(void *ctx, lv_service_t *svc);

/* Loads the config file again (SIGHUP); a bad file is refused with a log
 * line and the running config stays. */
void ntf_reload(ntf_t *n);

#endif
