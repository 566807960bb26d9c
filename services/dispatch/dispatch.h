/* Dispatch: one case per household episode, the 入户核查 task, the review
 * steps (评议 → 公示 → 审核 → 审定) as state in Postgres, the payout request
 * on approval and the news for notify. */
#ifndef DSP_DISPATCH_H
#define DSP_DISPATCH_H

#include <libpq-fe.h>

#include "lv_arena.h"
#include "lv_bus.h"
#include "lv_service.h"

typedef struct {
    lv_service_t *svc;
    lv_arena_t *arena;
} dsp_t;

/* The consumer handler: "alerts" from matching, "cmd" from people. */
int dsp_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* Timers kept in Postgres: assigns unassigned tasks, ends 公示 periods.
 * Returns how many ms the loop may sleep. */
int dsp_tick(void *ctx, lv_service_t *svc);

#endif
