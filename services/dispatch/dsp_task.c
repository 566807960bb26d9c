/* Tasks: 入户核查 (verify), 抽样复核 (recheck) and 回访 (revisit). Each is
 * assigned to an investigator whose region prefix covers the household (the
 * longest prefix first, then the fewest open tasks), is due after the
 * policy's days, and is escalated and reassigned when overdue. Results move
 * the case on; the re-check sample is drawn here. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_int.h"
#include "dsp_sample.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_rules.h"
#include "lv_time.h"

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

static const char *kind_zh(const char *kind)
{
    if (!strcmp(kind, "recheck"))
        return "抽样复核";
    if (!strcmp(kind, "revisit"))
        return "回访";
    return "入户核查";
}

/* The task's number within its case ("V2"), for event ids. */
static const char *task_suffix(const dsp_case_t *c, const char *task_id)
{
    size_t n = strlen(c->case_id);
    return strncmp(task_id, c->case_id, n) == 0 && task_id[n] == '-' ? task_id + n + 1 : task_id;
}

/* Gives the task to the best investigator other than `not1` and `not2`:
 * the longest region prefix covering the household, then the fewest open
 * tasks. *who receives the id, or "" when nobody qualifies. The open tasks
 * are counted only when the choice needs them: a lone investigator of a
 * county holds thousands during a peak, and counting them per task made
 * assignment quadratic. */
static int pick_investigator(PGconn *pg, const dsp_case_t *c, const char *not1, const char *not2,
                             char who[72])
{
    const char *p[3] = {c->region, not1 && *not1 ? not1 : NULL, not2 && *not2 ? not2 : NULL};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "WITH c AS (SELECT i.investigator_id AS id, length(i.region_prefix) AS l "
                        "  FROM investigator i WHERE i.active AND $1 LIKE i.region_prefix || '%' "
                        "  AND i.investigator_id IS DISTINCT FROM $2 "
                        "  AND i.investigator_id IS DISTINCT FROM $3), "
                        "b AS (SELECT id FROM c WHERE l = (SELECT max(l) FROM c)) "
                        "SELECT id FROM b ORDER BY CASE WHEN (SELECT count(*) FROM b) > 1 THEN "
                        "  (SELECT count(*) FROM task t WHERE t.assignee = b.id AND t.status = 'open') "
                        "  ELSE 0 END, id LIMIT 1",
                        3, p);
    if (e)
        return e;
    snprintf(who, 72, "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

/* Hands the task to `who` with a fresh due time: Postgres row, queue change,
 * timeline and the task_assigned event. */
static int give(PGconn *pg, const dsp_case_t *c, const char *task_id, const char *kind,
                const char *who, const lv_policy_version_t *v, const char *action)
{
    int64_t now = dsp_now_ms();
    char nows[24], due[24];
    i64s(nows, sizeof nows, now);
    i64s(due, sizeof due, now + v->verification_due_days * LV_DAY_MS);
    const char *p[4] = {task_id, who, nows, due};
    char n[24];
    int e = lv_pg_scalar(pg, n, sizeof n,
                         "UPDATE task SET assignee = $2, assigned_ms = $3, due_ms = $4, "
                         "assignments = assignments + 1 WHERE task_id = $1 RETURNING assignments",
                         4, p);
    if (e)
        return e;
    if ((e = dsp_queue_op(pg, who, task_id, "add")))
        return e;
    char detail[512], dues[17], suffix[160], title[256], body[600];
    lv_datetime_format(now + v->verification_due_days * LV_DAY_MS, dues);
    snprintf(detail, sizeof detail, "%s任务 %s 指派给 %s, 应于 %s (UTC) 前完成", kind_zh(kind),
             task_id, who, dues);
    if ((e = dsp_timeline(pg, c, "levee-dispatch", "system", action, detail, v->version)))
        return e;
    snprintf(suffix, sizeof suffix, "%s:%s", task_suffix(c, task_id), n);
    snprintf(title, sizeof title, "新的%s任务: 户 %s", kind_zh(kind), c->household_id);
    snprintf(body, sizeof body, "%s任务 %s (户 %s) 已指派给您, 请于 %s (UTC) 前完成。",
             kind_zh(kind), task_id, c->household_id, dues);
    return dsp_event(pg, c, "task_assigned", suffix, who, title, body);
}

int dsp_task_new(PGconn *pg, const dsp_case_t *c, const char *kind, const char *exclude,
                 const lv_policy_version_t *v, char *task_id, size_t n)
{
    char count[24], now[24], due[24];
    int64_t t = dsp_now_ms();
    const char *p0[1] = {c->case_id};
    int e = lv_pg_scalar(pg, count, sizeof count, "SELECT count(*) + 1 FROM task WHERE case_id = $1",
                         1, p0);
    if (e)
        return e;
    snprintf(task_id, n, "%s-V%s", c->case_id, count);
    i64s(now, sizeof now, t);
    i64s(due, sizeof due, t + v->verification_due_days * LV_DAY_MS);
    const char *p[8] = {task_id, c->case_id, c->household_id, c->county, kind, now, due,
                        exclude && *exclude ? exclude : NULL};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO task (task_id, case_id, household_id, county, kind, status, "
                       "created_ms, due_ms, exclude_assignee) "
                       "VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8)",
                       8, p)))
        return e;
    char detail[256];
    snprintf(detail, sizeof detail, "创建%s任务 %s, %d 天内完成", kind_zh(kind), task_id,
             v->verification_due_days);
    if ((e = dsp_timeline(pg, c, "levee-dispatch", "system", "task_created", detail, v->version)))
        return e;
    char who[72];
    if ((e = pick_investigator(pg, c, exclude, NULL, who)))
        return e;
    return *who ? give(pg, c, task_id, kind, who, v, "task_assigned") : 0;
}

int dsp_tasks_cancel(PGconn *pg, const char *case_id, const char *kind)
{
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[3] = {case_id, now, kind};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "UPDATE task SET status = 'cancelled', completed_ms = $2 "
                        "WHERE case_id = $1 AND status = 'open' AND ($3::text IS NULL OR kind = $3) "
                        "RETURNING assignee, task_id",
                        3, p);
    if (e)
        return e;
    for (int i = 0; i < PQntuples(res) && !e; i++)
        if (!PQgetisnull(res, i, 0))
            e = dsp_queue_op(pg, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), "ack");
    PQclear(res);
    return e;
}

/* ---- results ------------------------------------------------------------ */

typedef struct {
    char task_id[128];
    char case_id[96];
    char kind[16];
    char status[16];
    char assignee[72];
} task_row_t;

static int load_task(PGconn *pg, const char *task_id, task_row_t *t, bool *found)
{
    const char *p[1] = {task_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT task_id, case_id, kind, status, coalesce(assignee, '') FROM task "
                        "WHERE task_id = $1 FOR UPDATE",
                        1, p);
    if (e)
        return e;
    *found = PQntuples(res) == 1;
    if (*found) {
        snprintf(t->task_id, sizeof t->task_id, "%s", PQgetvalue(res, 0, 0));
        snprintf(t->case_id, sizeof t->case_id, "%s", PQgetvalue(res, 0, 1));
        snprintf(t->kind, sizeof t->kind, "%s", PQgetvalue(res, 0, 2));
        snprintf(t->status, sizeof t->status, "%s", PQgetvalue(res, 0, 3));
        snprintf(t->assignee, sizeof t->assignee, "%s", PQgetvalue(res, 0, 4));
    }
    PQclear(res);
    return 0;
}

/* Marks the task done with the findings as JSON and takes it off the queue. */
static int record_result(PGconn *pg, const task_row_t *t, const Levee__Command *cmd)
{
    /* declared_accepted: matching counts the household's declared amounts
     * as rigid expenditure once a verification accepted them (SPEC). */
    json_t *r = json_pack("{s:s, s:I, s:i, s:I, s:b, s:s, s:s, s:s, s:s, s:b, s:b}", "kind",
                          t->kind, "annual_net_income_fen", (json_int_t)cmd->income_fen,
                          "members", cmd->members, "rigid_expense_fen", (json_int_t)cmd->rigid_fen,
                          "excluded", cmd->excluded, "exclusion_reason", cmd->exclusion_reason,
                          "risk_factor", cmd->risk_factor, "findings", cmd->findings,
                          "investigator", cmd->actor, "risk_remains", cmd->risk_remains,
                          "declared_accepted", !cmd->declared_refused && !cmd->excluded);
    char *rj = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    if (!rj)
        return LV_ETRANSIENT;
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[3] = {t->task_id, now, rj};
    int e = lv_pg_cmd(pg,
                      "UPDATE task SET status = 'done', completed_ms = $2, result = $3::jsonb "
                      "WHERE task_id = $1",
                      3, p);
    free(rj);
    if (!e && *t->assignee)
        e = dsp_queue_op(pg, t->assignee, t->task_id, "ack");
    return e;
}

static int household_exited(PGconn *pg, const char *hid, bool *exited)
{
    const char *p[1] = {hid};
    char type[64] = "";
    int e = lv_pg_scalar(pg, type, sizeof type,
                         "SELECT household_type FROM household WHERE household_id = $1", 1, p);
    *exited = !e && !strcmp(type, "脱贫户");
    return e == LV_ENOTFOUND ? 0 : e;
}

/* The policy's verdict on the result's figures. */
static int judge(PGconn *pg, const dsp_case_t *c, const Levee__Command *cmd,
                 const lv_policy_version_t *v, lv_verdict_t *vd)
{
    lv_facts_t f = {.income_fen = cmd->income_fen, .members = cmd->members,
                    .rigid_fen = cmd->rigid_fen};
    int e = household_exited(pg, c->household_id, &f.exited);
    if (e)
        return e;
    return lv_rules_eval(v, &f, vd);
}

static int set_stage(PGconn *pg, const dsp_case_t *c, const char *status, const char *stage)
{
    const char *p[3] = {c->case_id, status, stage};
    return lv_pg_cmd(pg, "UPDATE hcase SET status = $2, stage = $3 WHERE case_id = $1", 3, p);
}

/* 抽样复核 (dsp_sample.h): the county's counters commit with the
 * verification, so a restart or a redelivery never draws again. */
static int draw_recheck(PGconn *pg, const dsp_case_t *c, const lv_policy_version_t *v, bool *sampled)
{
    *sampled = false;
    const char *p[1] = {c->county};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "INSERT INTO recheck_stats AS r (county, verified) VALUES ($1, 1) "
                        "ON CONFLICT (county) DO UPDATE SET verified = r.verified + 1 "
                        "RETURNING verified, sampled",
                        1, p);
    if (e)
        return e;
    int64_t n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t s = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    *sampled = dsp_sample_draw(n, s, v->recheck_rate_permille, c->county, c->case_id);
    if (*sampled)
        e = lv_pg_cmd(pg, "UPDATE recheck_stats SET sampled = sampled + 1 WHERE county = $1", 1, p);
    return e;
}

static int verify_done(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                       const lv_policy_version_t *v, lv_reply_t *reply)
{
    if (cmd->excluded) {
        char why[700];
        snprintf(why, sizeof why, "入户核查发现排除情形: %s", cmd->exclusion_reason);
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 终止: %s", c->case_id, why);
        return dsp_case_reject(pg, c, cmd->actor, cmd->role, why, v);
    }
    lv_verdict_t vd;
    int e = judge(pg, c, cmd, v, &vd);
    if (e)
        return e;
    if (!vd.in_scope) {
        char why[700];
        snprintf(why, sizeof why, "核查后不在监测范围: %s", vd.explain);
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 终止: %s", c->case_id, why);
        return dsp_case_reject(pg, c, cmd->actor, cmd->role, why, v);
    }
    char mem[16], incs[24], rigs[24];
    snprintf(mem, sizeof mem, "%d", cmd->members);
    i64s(incs, sizeof incs, cmd->income_fen);
    i64s(rigs, sizeof rigs, cmd->rigid_fen);
    /* The investigator's primary factor overrides the computed one. */
    const char *primary = *cmd->risk_factor ? cmd->risk_factor : c->primary_risk;
    /* Whoever submitted the result verified the household; the re-check
     * goes to someone else. */
    const char *verifier = cmd->actor;
    const char *p[7] = {c->case_id, incs, mem, rigs, vd.category, primary, verifier};
    if ((e = lv_pg_cmd(pg,
                       "UPDATE hcase SET income_fen = $2, members = $3, rigid_fen = $4, "
                       "category = $5, primary_risk = $6, verified_by = $7, "
                       "risk_factors = CASE WHEN $6 = '' OR $6 = ANY (risk_factors) THEN risk_factors "
                       "  ELSE risk_factors || $6 END WHERE case_id = $1",
                       7, p)))
        return e;
    snprintf(c->verified_by, sizeof c->verified_by, "%s", verifier);
    if ((e = dsp_case_set_grade(pg, c, lv_grade_name(vd.grade), cmd->actor, "按核查结果重新测算",
                                v->version)))
        return e;
    bool sampled;
    if ((e = draw_recheck(pg, c, v, &sampled)))
        return e;
    if (!sampled) {
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 核查属实, 进入村级评议 (next: deliberate)",
                 c->case_id);
        return set_stage(pg, c, "reviewing", "deliberate");
    }
    char task_id[128], detail[300];
    if ((e = set_stage(pg, c, "verifying", "recheck")))
        return e;
    snprintf(detail, sizeof detail, "抽中抽样复核 (比例 %d‰), 由核查员 %s 以外的调查员复核",
             v->recheck_rate_permille, verifier);
    if ((e = dsp_timeline(pg, c, "levee-dispatch", "system", "recheck_sampled", detail, v->version)) ||
        (e = dsp_task_new(pg, c, "recheck", verifier, v, task_id, sizeof task_id)))
        return e;
    snprintf(reply->detail, sizeof reply->detail,
             "案件 %s 核查属实, 抽中抽样复核, 复核任务 %s (next: recheck)", c->case_id, task_id);
    return 0;
}

static int recheck_done(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                        const lv_policy_version_t *v, lv_reply_t *reply)
{
    int64_t diff = cmd->income_fen > c->income ? cmd->income_fen - c->income : c->income - cmd->income_fen;
    bool agree = !cmd->excluded && diff * 1000 <= (int64_t)v->recheck_tolerance_permille * c->income;
    char a[32], b[32], detail[900];
    lv_money_format(c->income, a, sizeof a);
    lv_money_format(cmd->income_fen, b, sizeof b);
    const char *p[1] = {c->county};
    int e = lv_pg_cmd(pg,
                      agree ? "UPDATE recheck_stats SET agreed = agreed + 1 WHERE county = $1"
                            : "UPDATE recheck_stats SET sent_back = sent_back + 1 WHERE county = $1",
                      1, p);
    if (e)
        return e;
    if (agree) {
        snprintf(detail, sizeof detail, "复核一致: 核查收入 %s 元, 复核收入 %s 元 (容差 %d‰)", a, b,
                 v->recheck_tolerance_permille);
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 复核一致, 进入村级评议 (next: deliberate)",
                 c->case_id);
        if ((e = dsp_timeline(pg, c, cmd->actor, cmd->role, "recheck_agreed", detail, v->version)))
            return e;
        return set_stage(pg, c, "reviewing", "deliberate");
    }
    snprintf(detail, sizeof detail, "复核不一致, 退回重新核查: 核查收入 %s 元, 复核收入 %s 元 (容差 %d‰)%s%s",
             a, b, v->recheck_tolerance_permille, cmd->excluded ? "; 复核发现排除情形: " : "",
             cmd->excluded ? cmd->exclusion_reason : "");
    char task_id[128];
    if ((e = dsp_timeline(pg, c, cmd->actor, cmd->role, "recheck_disagreed", detail, v->version)) ||
        (e = set_stage(pg, c, "verifying", "verify")) ||
        (e = dsp_task_new(pg, c, "verify", NULL, v, task_id, sizeof task_id)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "案件 %s 复核不一致, 退回重新核查, 新任务 %s",
             c->case_id, task_id);
    return 0;
}

static int revisit_done(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                        const lv_policy_version_t *v, lv_reply_t *reply)
{
    lv_verdict_t vd;
    int e = judge(pg, c, cmd, v, &vd);
    if (e)
        return e;
    bool confirmed = !cmd->risk_remains && !cmd->excluded && !vd.in_scope;
    char detail[900];
    snprintf(detail, sizeof detail, "%s: %s%s%s", confirmed ? "回访确认风险已消除" : "回访未能确认风险消除",
             cmd->risk_remains ? "回访人员认为风险仍在; " : "", vd.explain,
             *cmd->findings ? "; " : "");
    strncat(detail, cmd->findings, sizeof detail - strlen(detail) - 1);
    const char *p[2] = {c->case_id, confirmed ? "confirmed" : NULL};
    if ((e = lv_pg_cmd(pg, "UPDATE hcase SET exit_stage = $2 WHERE case_id = $1", 2, p)) ||
        (e = dsp_timeline(pg, c, cmd->actor, cmd->role,
                          confirmed ? "revisit_confirmed" : "revisit_not_confirmed", detail,
                          v->version)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "%s",
             confirmed ? "回访确认, 可办理风险消除 (next: eliminate)"
                       : "回访未确认风险消除, 继续监测帮扶 (stays monitored)");
    return 0;
}

/* Matching trusts a verification result over every other income, so the
 * household is judged again now (its state, and an alert if it worsened),
 * in the transaction that records the result. */
static int tell_matching(const dsp_t *d, PGconn *pg, const task_row_t *t, const dsp_case_t *c)
{
    char id[160], dest[32];
    lv_cfg_worker_name("matching", lv_cfg_county_worker(&d->cfg, c->county), dest, sizeof dest);
    snprintf(id, sizeof id, "verified:%s", t->task_id);
    Levee__Command m = LEVEE__COMMAND__INIT;
    m.cmd_id = id;
    m.name = "verified";
    m.household_id = (char *)c->household_id;
    m.task_id = (char *)t->task_id;
    m.at_ms = dsp_now_ms();
    return lv_outbox_put(pg, "dispatch", dest, id, "cmd", &m.base);
}

int dsp_task_result(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return LV_ETRANSIENT;
    task_row_t t;
    bool found;
    int e = load_task(pg, cmd->task_id, &t, &found);
    if (e)
        return e;
    if (!found)
        return dsp_refuse(reply, "没有这个任务 (no such task) %s", cmd->task_id);
    if (strcmp(t.status, "open") != 0)
        return dsp_refuse(reply, "任务 %s 已是 %s 状态, 不能再提交结果 (task is not open)", t.task_id,
                          t.status);
    if (cmd->members < 1 || cmd->income_fen < 0 || cmd->rigid_fen < 0)
        return dsp_refuse(reply, "结果无效: 人口须 ≥ 1, 金额不能为负 (bad result)");
    dsp_case_t c;
    if ((e = dsp_case_load(pg, t.case_id, false, &c, &found)))
        return e;
    bool verify = !strcmp(t.kind, "verify"), recheck = !strcmp(t.kind, "recheck");
    bool ok = found && (verify ? !strcmp(c.stage, "screen") || !strcmp(c.stage, "verify")
                      : recheck ? !strcmp(c.stage, "recheck")
                                : !strcmp(c.status, "monitoring") && !strcmp(c.exit_stage, "revisit"));
    if (!ok)
        return dsp_refuse(reply, "案件 %s 不在%s阶段 (case is %s/%s)", t.case_id, kind_zh(t.kind),
                          found ? c.status : "-", found ? c.stage : "-");
    if (recheck && *c.verified_by && !strcmp(cmd->actor, c.verified_by))
        return dsp_refuse(reply, "抽样复核须由核查员 %s 以外的调查员完成 (a different investigator)",
                          c.verified_by);
    if ((e = record_result(pg, &t, cmd)) || (e = tell_matching(d, pg, &t, &c)))
        return e;
    char detail[1200], inc[32], rig[32];
    lv_money_format(cmd->income_fen, inc, sizeof inc);
    lv_money_format(cmd->rigid_fen, rig, sizeof rig);
    snprintf(detail, sizeof detail, "%s完成 %s: 家庭年纯收入 %s 元, %d 人, 刚性支出 %s 元%s%s%s%s%s",
             kind_zh(t.kind), t.task_id, inc, cmd->members, rig, *cmd->findings ? "; " : "",
             cmd->findings, cmd->excluded ? "; 发现排除情形: " : "",
             cmd->excluded ? cmd->exclusion_reason : "",
             cmd->declared_refused ? "; 申报金额不予认定" : "");
    const char *action = verify ? "verified" : recheck ? "rechecked" : "revisited";
    if ((e = dsp_timeline(pg, &c, cmd->actor, cmd->role, action, detail, v->version)))
        return e;
    if (verify && !strcmp(c.status, "candidate") &&
        (e = dsp_timeline(pg, &c, "levee-dispatch", "system", "screen_skipped",
                          "未经乡村筛查, 以入户核查结果为准", v->version)))
        return e;
    if (verify)
        return verify_done(pg, &c, cmd, v, reply);
    if (recheck)
        return recheck_done(pg, &c, cmd, v, reply);
    return revisit_done(pg, &c, cmd, v, reply);
}

/* ---- timers ----------------------------------------------------------- */

static int load_task_case(PGconn *pg, const char *task_id, task_row_t *t, dsp_case_t *c, bool *ok)
{
    bool found;
    int e = load_task(pg, task_id, t, &found);
    *ok = false;
    if (e || !found || strcmp(t->status, "open"))
        return e;
    if ((e = dsp_case_load(pg, t->case_id, false, c, &found)))
        return e;
    *ok = found;
    return 0;
}

/* Runs fn on each task id of res (column 0), one transaction each. */
static int each_task(dsp_t *d, PGconn *pg, PGresult *res,
                     int (*fn)(dsp_t *, PGconn *, const lv_policy_version_t *, task_row_t *,
                               dsp_case_t *))
{
    const lv_policy_version_t *v = dsp_policy(d);
    int n = PQntuples(res), done = 0;
    for (int i = 0; v && i < n; i++) {
        task_row_t t;
        dsp_case_t c;
        bool ok;
        if (lv_pg_begin(pg))
            break;
        int e = load_task_case(pg, PQgetvalue(res, i, 0), &t, &c, &ok);
        if (!e && ok)
            e = fn(d, pg, v, &t, &c);
        if (e || lv_pg_commit(pg)) {
            lv_pg_rollback(pg);
            lv_warn("task %s: %s; retried at the next tick", PQgetvalue(res, i, 0), lv_strerror(e));
            break;
        }
        done++;
    }
    PQclear(res);
    return done;
}

static int assign_one(dsp_t *d, PGconn *pg, const lv_policy_version_t *v, task_row_t *t,
                      dsp_case_t *c)
{
    if (*t->assignee)
        return 0;
    const char *p[1] = {t->task_id};
    char excl[72] = "", who[72];
    int e = lv_pg_scalar(pg, excl, sizeof excl,
                         "SELECT coalesce(exclude_assignee, '') FROM task WHERE task_id = $1", 1, p);
    if (e || (e = pick_investigator(pg, c, excl, NULL, who)))
        return e;
    return *who ? give(pg, c, t->task_id, t->kind, who, v, "task_assigned") : 0;
}

/* Red before orange before yellow, then the oldest. Only tasks someone can
 * take are selected, so the loop never spins on a task nobody may have. */
int dsp_assign_waiting(dsp_t *d, PGconn *pg)
{
    PGresult *res;
    if (lv_pg_query(pg, &res,
                    "SELECT t.task_id FROM task t JOIN hcase h ON h.case_id = t.case_id "
                    "WHERE t.assignee IS NULL AND t.status = 'open' AND EXISTS (SELECT 1 FROM "
                    "investigator i WHERE i.active AND h.region_code LIKE i.region_prefix || '%' "
                    "AND i.investigator_id IS DISTINCT FROM t.exclude_assignee) "
                    "ORDER BY lv_grade_rank(h.grade) DESC, t.created_ms, t.task_id "
                    "LIMIT " DSP_TICK_BATCH,
                    0, NULL))
        return 0;
    return each_task(d, pg, res, assign_one);
}

/* An overdue task: the county and the investigator hear of it, the
 * timeline records it, and another investigator takes it when one covers
 * the region; escalated once per due time. */
static int escalate_one(dsp_t *d, PGconn *pg, const lv_policy_version_t *v, task_row_t *t,
                        dsp_case_t *c)
{
    const char *p[1] = {t->task_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "UPDATE task SET escalations = escalations + 1, escalated_due_ms = due_ms "
                        "WHERE task_id = $1 RETURNING escalations, due_ms, coalesce(exclude_assignee, '')",
                        1, p);
    if (e)
        return e;
    char n[24], excl[72], due[17], detail[512], suffix[160], title[256], body[700];
    snprintf(n, sizeof n, "%s", PQgetvalue(res, 0, 0));
    lv_datetime_format(strtoll(PQgetvalue(res, 0, 1), NULL, 10), due);
    snprintf(excl, sizeof excl, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    const char *who = *t->assignee ? t->assignee : "(未指派 unassigned)";
    snprintf(detail, sizeof detail, "%s任务 %s 逾期 (应于 %s UTC 完成, 承办 %s), 已上报县级督办",
             kind_zh(t->kind), t->task_id, due, who);
    if ((e = dsp_timeline(pg, c, "levee-dispatch", "system", "task_overdue", detail, v->version)))
        return e;
    snprintf(suffix, sizeof suffix, "%s:%s", task_suffix(c, t->task_id), n);
    snprintf(title, sizeof title, "任务逾期: %s (户 %s)", t->task_id, c->household_id);
    snprintf(body, sizeof body, "%s任务 %s (户 %s) 应于 %s (UTC) 完成, 承办 %s, 现已逾期, 请县级督办。",
             kind_zh(t->kind), t->task_id, c->household_id, due, who);
    if ((e = dsp_event(pg, c, "task_overdue", suffix, *t->assignee ? t->assignee : NULL, title, body)))
        return e;
    char next[72];
    if ((e = pick_investigator(pg, c, t->assignee, excl, next)) || !*next)
        return e;
    if (*t->assignee && (e = dsp_queue_op(pg, t->assignee, t->task_id, "ack")))
        return e;
    return give(pg, c, t->task_id, t->kind, next, v, "task_reassigned");
}

int dsp_escalate_overdue(dsp_t *d, PGconn *pg)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return 0;
    char cutoff[24];
    i64s(cutoff, sizeof cutoff, dsp_now_ms() - v->overdue_escalate_hours * DSP_HOUR_MS);
    const char *p[1] = {cutoff};
    PGresult *res;
    if (lv_pg_query(pg, &res,
                    "SELECT t.task_id FROM task t JOIN hcase h ON h.case_id = t.case_id "
                    "WHERE t.status = 'open' AND t.due_ms <= $1::bigint "
                    "AND t.escalated_due_ms IS DISTINCT FROM t.due_ms "
                    "ORDER BY lv_grade_rank(h.grade) DESC, t.due_ms, t.task_id LIMIT " DSP_TICK_BATCH,
                    1, p))
        return 0;
    return each_task(d, pg, res, escalate_one);
}
