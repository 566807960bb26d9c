/* Dispatch: one case per household episode and its whole lifecycle as a
 * state machine in Postgres: screening, the 入户核查 task, 抽样复核, the
 * review steps (评议 → 公示 → 审核 → 审定), monitoring with its 一户一策
 * measures, and 风险消除 after a 回访 through the same review steps. It
 * assigns tasks by region and load, escalates overdue ones, keeps each
 * investigator's queue in Redis, asks ledger for the payout on approval and
 * tells notify what people must know.
 *
 * Time: dispatch reads the clock through dsp_now_ms. LEVEE_TEST_CLOCK_OFFSET_MS
 * (test only, default 0) adds that many ms to it, so tests can run past a
 * 公示 period, a task's due time or the months before 风险消除 by
 * restarting dispatch with a later clock instead of waiting days. */
#ifndef DSP_DISPATCH_H
#define DSP_DISPATCH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "lv_arena.h"
#include "lv_bus.h"
#include "lv_cfg.h"
#include "lv_redis.h"
#include "lv_service.h"

typedef struct {
    lv_service_t *svc;
    lv_arena_t *arena;
    lv_redis_t *redis;
    bool queues_checked;   /* the Redis queues were checked (and rebuilt) since start */
    bool queue_dirty;      /* queue changes may wait in task_queue_op */
    int64_t next_tick_ms;  /* monotonic */
    int64_t next_sweep_ms; /* monotonic: the next 风险消除 proposal sweep */
    char sweep_after[96];  /* the sweep's keyset cursor (a case id) */
    lv_cfg_t cfg;          /* which matching worker owns a county */
} dsp_t;

/* Reads LEVEE_TEST_CLOCK_OFFSET_MS. Returns 0 or LV_EINVAL (logged). */
int dsp_clock_init(void);
int64_t dsp_now_ms(void);

/* The consumer handler: "alerts" from matching, "cmd" from people. */
int dsp_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* Timers kept in Postgres: ends 公示 periods, assigns waiting tasks,
 * escalates overdue ones, proposes 风险消除, syncs the Redis queues.
 * Returns how many ms the loop may sleep. */
int dsp_tick(void *ctx, lv_service_t *svc);

#endif
