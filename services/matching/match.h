/* Matching: records linked to people and households, the money picture
 * updated, the policy's rules evaluated, alerts raised for dispatch. */
#ifndef MAT_MATCH_H
#define MAT_MATCH_H

#include <libpq-fe.h>

#include "lv_arena.h"
#include "lv_bus.h"
#include "lv_service.h"

typedef struct {
    lv_service_t *svc; /* for the current policy (swapped on SIGHUP) */
    lv_arena_t *arena;
} mat_t;

/* The consumer handler: one RecordBatch per message, all of its effects in
 * the consumer's transaction, alerts for dispatch in the outbox. */
int mat_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

#endif
