/* Message routing and the timers. Every transition writes the case row and
 * an append-only timeline row in the consumer's (or the timer's)
 * transaction; the state machine itself is in dsp_steps.c, tasks in
 * dsp_task.c, monitoring and 风险消除 in dsp_exit.c. */
#define _POSIX_C_SOURCE 200809L
#include "dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_int.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_time.h"

#define TICK_MS 1000
#define SWEEP_MS 5000

static int64_t s_clock_offset_ms;

int dsp_clock_init(void)
{
    const char *s = getenv("LEVEE_TEST_CLOCK_OFFSET_MS");
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0) {
        lv_error("LEVEE_TEST_CLOCK_OFFSET_MS must be a whole number of ms >= 0, got '%s'", s);
        return LV_EINVAL;
    }
    s_clock_offset_ms = v;
    if (v)
        lv_warn("test clock: dispatch runs %lld ms ahead of the real time", v);
    return 0;
}

int64_t dsp_now_ms(void)
{
    return lv_now_ms() + s_clock_offset_ms;
}

static int on_command(dsp_t *d, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__Command *cmd =
        levee__command__unpack(lv_arena_allocator(d->arena), msg->len, msg->body);
    if (!cmd) {
        snprintf(reply->error, sizeof reply->error, "not a Command (bad protobuf)");
        return LV_EINVAL;
    }
    if (!*cmd->actor || !*cmd->role) {
        snprintf(reply->error, sizeof reply->error, "command without actor or role");
        return LV_EINVAL;
    }
    if (!strcmp(cmd->name, "task_result"))
        return dsp_task_result(d, pg, cmd, reply);
    if (!strcmp(cmd->name, "step"))
        return dsp_step(d, pg, cmd, reply);
    if (!strcmp(cmd->name, "measure"))
        return dsp_measure(d, pg, cmd, reply);
    if (!strcmp(cmd->name, "measure_delivered"))
        return dsp_measure_delivered(d, pg, cmd, reply);
    snprintf(reply->error, sizeof reply->error, "unknown command %s", cmd->name);
    return LV_EINVAL;
}

int dsp_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    dsp_t *d = ctx;
    lv_arena_reset(d->arena);
    d->queue_dirty = true;
    if (!strcmp(msg->type, "alerts"))
        return dsp_on_alerts(d, pg, msg, reply);
    if (!strcmp(msg->type, "cmd"))
        return on_command(d, pg, msg, reply);
    snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
    return LV_EINVAL;
}

int dsp_tick(void *ctx, lv_service_t *svc)
{
    dsp_t *d = ctx;
    PGconn *pg = lv_service_pg(svc);
    int64_t now = lv_mono_ms();
    if (now >= d->next_tick_ms) {
        int n = dsp_end_publicity(d, pg) + dsp_assign_waiting(d, pg) + dsp_escalate_overdue(d, pg);
        if (now >= d->next_sweep_ms) {
            n += dsp_propose_exits(d, pg);
            d->next_sweep_ms = now + SWEEP_MS;
        }
        d->next_tick_ms = now + (n ? 0 : TICK_MS);
        d->queue_dirty = true; /* also looks whether Redis lost the queues */
    }
    /* Queue changes of the messages just handled reach Redis in this turn,
     * not at the next timer run. */
    if (d->queue_dirty)
        d->queue_dirty = dsp_queue_sync(d, pg) > 0;
    int64_t wait = d->next_tick_ms - now;
    return d->queue_dirty || wait <= 0 ? 0 : (int)wait;
}
