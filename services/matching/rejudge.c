/* Judging households again without new records.
 *
 * A verification result (入户核查, 抽样复核, 回访): the most trusted income
 * of the household changed, so it is judged at once (its state, and an alert
 * if it now enters scope or worsens), not only when its next record comes.
 *
 * A policy switch: a reload with a new version, or a version whose
 * effective date has come. Households were judged by the version of their
 * last record; the switch judges every one of them again by the version in
 * effect, in batches walked in household order, so that what the shadow run
 * of a draft reported is what happens. Resumable: a household already judged
 * by the version is not selected again, whatever crashed before. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_time.h"
#include "match.h"

#define REJUDGE_BATCH "2000"

int mat_verified(mat_t *m, PGconn *pg, const char *msg_id, const char *household_id,
                 const char *task_id, lv_reply_t *reply)
{
    if (!*household_id || !*task_id) {
        snprintf(reply->error, sizeof reply->error, "verified: household_id and task_id are required");
        return LV_EINVAL;
    }
    mat_touched_t t;
    mat_touched_init(&t);
    mat_touched_add(&t, household_id, task_id, "verification");
    int alerts = 0;
    int e = mat_touched_end(&t);
    if (!e)
        e = mat_evaluate(m, pg, msg_id, &t, lv_now_ms(), &alerts, reply->error,
                         sizeof reply->error);
    mat_touched_free(&t);
    if (!e)
        snprintf(reply->detail, sizeof reply->detail, "%s judged again after %s: %d alert(s)",
                 household_id, task_id, alerts);
    return e;
}

int mat_rejudge_step(mat_t *m, lv_service_t *svc)
{
    int64_t now = lv_now_ms();
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(svc), now);
    if (!v || !strcmp(m->judged_version, v->version))
        return 1000;
    PGconn *pg = lv_service_pg(svc);
    char workers[16], worker[16];
    snprintf(workers, sizeof workers, "%d", m->workers);
    snprintf(worker, sizeof worker, "%d", m->worker);
    const char *p[4] = {m->rejudge_after, v->version, workers, worker};
    PGresult *res;
    /* Only the households of the counties this worker owns. */
    int e = lv_pg_query(pg, &res,
                        "SELECT household_id FROM household_state WHERE household_id > $1 "
                        "AND policy_version <> $2 AND county::int % $3::int = $4::int "
                        "ORDER BY household_id LIMIT " REJUDGE_BATCH,
                        4, p);
    if (e)
        return 5000;
    int n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        if (m->rejudge_after[0])
            lv_info("policy %s: every household judged again", v->version);
        snprintf(m->judged_version, sizeof m->judged_version, "%s", v->version);
        m->rejudge_after[0] = '\0';
        return 1000;
    }
    mat_touched_t t;
    mat_touched_init(&t);
    for (int i = 0; i < n; i++)
        mat_touched_add(&t, PQgetvalue(res, i, 0), v->version, "policy");
    char last[sizeof m->rejudge_after];
    snprintf(last, sizeof last, "%s", PQgetvalue(res, n - 1, 0));
    PQclear(res);
    /* One alert id per household and version, however the batches fall. */
    char run_id[96], detail[512] = "";
    snprintf(run_id, sizeof run_id, "policy:%s", v->version);
    int alerts = 0;
    lv_arena_reset(m->arena);
    e = mat_touched_end(&t);
    if (!e && (e = lv_pg_begin(pg)) == 0) {
        e = mat_evaluate(m, pg, run_id, &t, now, &alerts, detail, sizeof detail);
        if (e)
            lv_pg_rollback(pg);
        else
            e = lv_pg_commit(pg);
    }
    mat_touched_free(&t);
    if (e) {
        lv_warn("policy %s: re-judging from %s not done (%s); retrying", v->version,
                m->rejudge_after, lv_strerror(e));
        return 5000;
    }
    snprintf(m->rejudge_after, sizeof m->rejudge_after, "%s", last);
    if (alerts)
        lv_relay_kick(lv_service_relay(svc));
    return 0;
}
