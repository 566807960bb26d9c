/* The investigators' Redis queues (lv_taskq.h) kept in step with the task
 * table: every queue change is a task_queue_op row written in the same
 * transaction as the task change, applied to Redis after the commit and
 * then deleted. Applying twice is harmless, so a crash in between only
 * repeats work. When Redis has lost the queues (the built marker is gone),
 * every queue is rebuilt from the open tasks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_int.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_taskq.h"
#include "lv_time.h"

#define QUEUE_BATCH 500
#define QUEUE_BATCH_S "500"

int dsp_queue_op(PGconn *pg, const char *investigator, const char *task_id, const char *op)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)dsp_now_ms());
    const char *p[4] = {investigator, task_id, op, now};
    return lv_pg_cmd(pg,
                     "INSERT INTO task_queue_op (investigator_id, task_id, op, created_ms) "
                     "VALUES ($1, $2, $3, $4)",
                     4, p);
}

/* Resets the queue of every investigator, a batch at a time. */
static int reset_all(dsp_t *d, PGconn *pg)
{
    char after[128] = "";
    for (;;) {
        const char *p[1] = {after};
        PGresult *res;
        int e = lv_pg_query(pg, &res,
                            "SELECT id FROM (SELECT investigator_id AS id FROM investigator UNION "
                            "SELECT assignee FROM task WHERE status = 'open' AND assignee IS NOT NULL) x "
                            "WHERE id > $1 ORDER BY id LIMIT " QUEUE_BATCH_S,
                            1, p);
        if (e)
            return e;
        int n = PQntuples(res);
        lv_taskq_op_t ops[QUEUE_BATCH];
        for (int i = 0; i < n; i++)
            ops[i] = (lv_taskq_op_t){.op = LV_TASKQ_RESET, .investigator = PQgetvalue(res, i, 0)};
        e = lv_taskq_apply(d->redis, ops, (size_t)n);
        if (n)
            snprintf(after, sizeof after, "%s", PQgetvalue(res, n - 1, 0));
        PQclear(res);
        if (e || n < QUEUE_BATCH)
            return e;
    }
}

static lv_taskq_op_t add_op(const PGresult *res, int i)
{
    return (lv_taskq_op_t){.op = LV_TASKQ_ADD,
                           .investigator = PQgetvalue(res, i, 0),
                           .item = {.task_id = PQgetvalue(res, i, 1),
                                    .case_id = PQgetvalue(res, i, 2),
                                    .household_id = PQgetvalue(res, i, 3),
                                    .kind = PQgetvalue(res, i, 4),
                                    .grade = PQgetvalue(res, i, 5),
                                    .due_ms = strtoll(PQgetvalue(res, i, 6), NULL, 10)}};
}

/* Adds every open assigned task, each queue in due order. */
static int add_all(dsp_t *d, PGconn *pg)
{
    char inv[128] = "", due[24] = "-1", task[160] = "";
    for (;;) {
        const char *p[3] = {inv, due, task};
        PGresult *res;
        int e = lv_pg_query(pg, &res,
                            "SELECT t.assignee, t.task_id, t.case_id, t.household_id, t.kind, "
                            "coalesce(h.grade, ''), t.due_ms FROM task t "
                            "JOIN hcase h ON h.case_id = t.case_id "
                            "WHERE t.status = 'open' AND t.assignee IS NOT NULL "
                            "AND (t.assignee, t.due_ms, t.task_id) > ($1, $2::bigint, $3) "
                            "ORDER BY t.assignee, t.due_ms, t.task_id LIMIT " QUEUE_BATCH_S,
                            3, p);
        if (e)
            return e;
        int n = PQntuples(res);
        lv_taskq_op_t ops[QUEUE_BATCH];
        for (int i = 0; i < n; i++)
            ops[i] = add_op(res, i);
        e = lv_taskq_apply(d->redis, ops, (size_t)n);
        if (n) {
            snprintf(inv, sizeof inv, "%s", PQgetvalue(res, n - 1, 0));
            snprintf(task, sizeof task, "%s", PQgetvalue(res, n - 1, 1));
            snprintf(due, sizeof due, "%s", PQgetvalue(res, n - 1, 6));
        }
        PQclear(res);
        if (e || n < QUEUE_BATCH)
            return e;
    }
}

static int rebuild(dsp_t *d, PGconn *pg)
{
    char max[24];
    int e = lv_pg_scalar(pg, max, sizeof max, "SELECT coalesce(max(seq), 0) FROM task_queue_op", 0,
                         NULL);
    if (e || (e = reset_all(d, pg)) || (e = add_all(d, pg)) ||
        (e = lv_taskq_set_built(d->redis, true)))
        return e;
    /* Changes up to the snapshot are in the rebuilt queues. */
    const char *p[1] = {max};
    e = lv_pg_cmd(pg, "DELETE FROM task_queue_op WHERE seq <= $1::bigint", 1, p);
    if (!e)
        lv_info("investigators' queues rebuilt from postgres");
    return e;
}

/* Pending changes in order; an "add" whose task is no longer open with
 * that investigator is skipped (its "ack" follows). */
static int drain(dsp_t *d, PGconn *pg)
{
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT q.investigator_id, q.task_id, coalesce(t.case_id, ''), "
                        "coalesce(t.household_id, ''), coalesce(t.kind, ''), coalesce(h.grade, ''), "
                        "coalesce(t.due_ms, 0), q.op, "
                        "coalesce(t.status = 'open' AND t.assignee = q.investigator_id, false), q.seq "
                        "FROM task_queue_op q LEFT JOIN task t ON t.task_id = q.task_id "
                        "LEFT JOIN hcase h ON h.case_id = t.case_id ORDER BY q.seq LIMIT " QUEUE_BATCH_S,
                        0, NULL);
    if (e)
        return e;
    int n = PQntuples(res), k = 0;
    lv_taskq_op_t ops[QUEUE_BATCH];
    for (int i = 0; i < n; i++) {
        bool add = !strcmp(PQgetvalue(res, i, 7), "add");
        if (add && PQgetvalue(res, i, 8)[0] != 't')
            continue;
        ops[k] = add_op(res, i);
        if (!add)
            ops[k].op = LV_TASKQ_ACK;
        k++;
    }
    char last[24] = "0";
    if (n)
        snprintf(last, sizeof last, "%s", PQgetvalue(res, n - 1, 9));
    /* The operations point into res: apply them before it is freed. */
    e = n ? lv_taskq_apply(d->redis, ops, (size_t)k) : 0;
    PQclear(res);
    if (!n || e)
        return e;
    const char *p[1] = {last};
    e = lv_pg_cmd(pg, "DELETE FROM task_queue_op WHERE seq <= $1::bigint", 1, p);
    return e ? e : n;
}

int dsp_queue_sync(dsp_t *d, PGconn *pg)
{
    if (!d->redis)
        return 0;
    bool built;
    if (lv_taskq_built(d->redis, &built))
        return 0; /* Redis unavailable: the rows wait */
    if (!built) {
        if (d->queues_checked)
            lv_warn("the investigators' queues are gone from redis (wiped or restarted)");
        if (rebuild(d, pg))
            return 0;
    }
    d->queues_checked = true;
    int n = drain(d, pg);
    return n > 0 ? n : 0;
}
