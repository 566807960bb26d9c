/* Dispatch internals shared by its modules: the case record, the timeline,
 * events, tasks, the queue sync and the 风险消除 rules. Every function runs
 * inside the caller's transaction unless it says otherwise. */
#ifndef DSP_INT_H
#define DSP_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "dispatch.h"
#include "levee.pb-c.h"
#include "lv_policy.h"

#define DSP_HOUR_MS 3600000LL
#define DSP_TICK_BATCH "200"

typedef struct {
    char case_id[96];
    char household_id[64];
    char county[7];
    char region[13];
    char status[16];
    char stage[24];
    char exit_stage[24]; /* "" when no 风险消除 runs */
    char grade[8];
    char category[32];
    char primary_risk[32];
    char verified_by[72];
    int64_t income, rigid;
    int members;
    int episode;
    int64_t publicity_end_ms;
} dsp_case_t;

/* ---- dsp_case.c ------------------------------------------------------- */

/* The policy version in effect now, or NULL (then the caller retries). */
const lv_policy_version_t *dsp_policy(dsp_t *d);

/* Loads and locks (FOR UPDATE) a case by id, or the open case (neither
 * eliminated nor rejected) of a household when by_household. */
int dsp_case_load(PGconn *pg, const char *key, bool by_household, dsp_case_t *c, bool *found);

/* An append-only timeline row: who, role, when (dispatch's clock), what,
 * why, policy version. */
int dsp_timeline(PGconn *pg, const dsp_case_t *c, const char *actor, const char *role,
                 const char *action, const char *detail, const char *version);

/* News for notify. The id is ev:<kind>:<case>[:<suffix>], deterministic for
 * the content so that a crash and a clean run send the same events.
 * assignee (an investigator) may be NULL. */
int dsp_event(PGconn *pg, const dsp_case_t *c, const char *kind, const char *suffix,
              const char *assignee, const char *title, const char *body);

/* Ends a case as rejected with the reason; open tasks are cancelled. */
int dsp_case_reject(PGconn *pg, dsp_case_t *c, const char *actor, const char *role,
                    const char *why, const lv_policy_version_t *v);

/* Sets the case's grade; a change writes a grade_changed row, moves its
 * open tasks to the right queue lane, and a new red raises red_alert. */
int dsp_case_set_grade(PGconn *pg, dsp_case_t *c, const char *grade, const char *actor,
                       const char *why, const char *version);

/* refuse: LV_ESTATE with the message in reply->error (nothing is kept). */
int dsp_refuse(lv_reply_t *reply, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int dsp_on_alerts(dsp_t *d, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* ---- dsp_task.c ------------------------------------------------------- */

/* Creates a task of kind verify / recheck / revisit for the case, due after
 * the policy's verification days, and assigns it when an investigator
 * covers the region (never `exclude`, e.g. the verifier for a recheck).
 * task_id receives the id (<case>-V<n>). */
int dsp_task_new(PGconn *pg, const dsp_case_t *c, const char *kind, const char *exclude,
                 const lv_policy_version_t *v, char *task_id, size_t n);

/* Cancels the case's open tasks (all kinds when kind is NULL). */
int dsp_tasks_cancel(PGconn *pg, const char *case_id, const char *kind);

/* The task_result command: verify, recheck and revisit results. */
int dsp_task_result(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply);

/* Timers: assigns tasks waiting for an investigator; escalates and
 * reassigns overdue ones. One transaction per task. Return how many. */
int dsp_assign_waiting(dsp_t *d, PGconn *pg);
int dsp_escalate_overdue(dsp_t *d, PGconn *pg);

/* ---- dsp_queue.c ------------------------------------------------------ */

/* Records a change of an investigator's queue, applied to Redis after the
 * commit by dsp_queue_sync. op: "add" (also: moves to the grade's lane) or
 * "ack". */
int dsp_queue_op(PGconn *pg, const char *investigator, const char *task_id, const char *op);

/* Outside any transaction: rebuilds the queues when Redis lost them, then
 * applies pending changes. Returns how many changes were applied. */
int dsp_queue_sync(dsp_t *d, PGconn *pg);

/* ---- dsp_steps.c ------------------------------------------------------ */

/* The step command: screen, deliberate, publicize, object, town_review,
 * county_approve, reject (identification) and eliminate plus the same
 * review steps for 风险消除. */
int dsp_step(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply);

/* Timer: 公示 periods that ended move on to 乡镇审核. */
int dsp_end_publicity(dsp_t *d, PGconn *pg);

/* ---- dsp_exit.c ------------------------------------------------------- */

/* What stands in the way of 风险消除, as text for people ("" when nothing);
 * *n receives how many rules do not hold, *income whether the income rule
 * is one of them (a 回访 measures the income, so it may go out first). */
int dsp_exit_blockers(PGconn *pg, const dsp_case_t *c, const lv_policy_version_t *v, char *out,
                      size_t outlen, int *n, bool *income);

/* The measure and measure_delivered commands (一户一策). */
int dsp_measure(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply);
int dsp_measure_delivered(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply);

/* Timer: monitored cases where every rule but the 回访 holds get a revisit
 * task (the 风险消除 proposal); households without labour never do. */
int dsp_propose_exits(dsp_t *d, PGconn *pg);

/* Starts a 风险消除 attempt: a revisit task and exit_stage revisit. */
int dsp_exit_propose(PGconn *pg, dsp_case_t *c, const char *actor, const char *role,
                     const char *why, const lv_policy_version_t *v, char *task_id, size_t n);

#endif
