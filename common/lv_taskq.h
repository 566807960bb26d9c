/* The investigators' work queues in Redis, a fast index over the task table.
 *
 * Per investigator one stream per grade lane (red, orange, yellow), so a
 * reader takes red before orange before yellow; a consumer group
 * "investigator" whose consumer is the investigator (XREADGROUP delivers,
 * dispatch XACKs and XDELs on the result); and a hash task_id -> lane|entry
 * so that adding, moving between lanes and acknowledging are idempotent
 * (each is one Lua script). Keys carry the investigator as a hash tag.
 *
 * Postgres stays the truth: dispatch writes the task first, then applies the
 * change here; when the "built" marker is gone (Redis wiped or restarted) it
 * resets every queue and adds the open tasks again. */
#ifndef LV_TASKQ_H
#define LV_TASKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lv_redis.h"

#define LV_TASKQ_GROUP "investigator"

typedef struct {
    const char *task_id;
    const char *case_id;
    const char *household_id;
    const char *kind;  /* verify / recheck / revisit */
    const char *grade; /* red / orange / yellow; anything else goes to the yellow lane */
    int64_t due_ms;
} lv_taskq_item_t;

typedef enum {
    LV_TASKQ_ADD,   /* add the task, or move it to the lane of its grade */
    LV_TASKQ_ACK,   /* the task is done, cancelled or taken away */
    LV_TASKQ_RESET, /* forget the investigator's whole queue */
} lv_taskq_opcode_t;

typedef struct {
    lv_taskq_opcode_t op;
    const char *investigator;
    lv_taskq_item_t item; /* ACK: task_id only; RESET: nothing */
} lv_taskq_op_t;

/* Applies n operations in one pipelined round trip. Returns 0, or
 * LV_ETRANSIENT when Redis is unavailable or failed (nothing is known to be
 * applied; every operation may be repeated). */
int lv_taskq_apply(lv_redis_t *r, const lv_taskq_op_t *ops, size_t n);

/* Whether the queues were built since Redis last lost its data. */
int lv_taskq_built(lv_redis_t *r, bool *built);
int lv_taskq_set_built(lv_redis_t *r, bool built);

/* Delivers the investigator's new entries to them (XREADGROUP >) and calls
 * fn for every entry delivered and not acknowledged, at most max per lane,
 * red lane first, oldest first within a lane. */
typedef void (*lv_taskq_fn)(void *ctx, const char *entry_id, const lv_taskq_item_t *item);
int lv_taskq_read(lv_redis_t *r, const char *investigator, size_t max, lv_taskq_fn fn, void *ctx);

#endif
