/* Notify: turns events into messages for the offices that must act. This
 * first channel is the inbox table; ID numbers and phones are masked. */
#ifndef NTF_NOTIFY_H
#define NTF_NOTIFY_H

#include <libpq-fe.h>

#include "lv_arena.h"
#include "lv_bus.h"

typedef struct {
    lv_arena_t *arena;
} ntf_t;

/* The consumer handler: "event" messages from dispatch and ledger. */
int ntf_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

#endif
