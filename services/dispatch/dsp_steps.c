/* The procedure steps people take, as transitions of the case row.
 *
 * Identification (识别纳入), status / stage (the next step expected):
 *   candidate / screen       筛查 by town or village; the 入户核查 is already out
 *   verifying / verify       入户核查 (dsp_task.c), recheck when sampled (抽样复核)
 *   reviewing / deliberate   村级评议
 *   reviewing / publicize    公示 starts
 *   publicizing / town_review   the 公示 timer runs; an objection reopens verification
 *   reviewing / town_review  乡镇审核
 *   reviewing / county_approve  县级审定
 *   monitoring / assist      监测帮扶 (一户一策 measures)
 *   rejected / closed        at screening, verification, 评议, 审核 or 审定, with the reason
 *
 * 风险消除 runs on a monitored case in exit_stage: revisit (回访 out) →
 * confirmed → deliberate → publicize → publicizing → town_review →
 * county_approve → status eliminated. A failed step, an objection or new
 * evidence of risk withdraws it and the household stays monitored. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_int.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_time.h"

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

static const char *const s_steps[][2] = {
    {"screen", "筛查"},           {"deliberate", "村级评议"},   {"publicize", "公示"},
    {"object", "公示异议"},       {"town_review", "乡镇审核"}, {"county_approve", "县级审定"},
    {"reject", "终止识别"},       {"eliminate", "风险消除"},
};

/* The step's Chinese name, or NULL for a step that does not exist. */
static const char *step_zh(const char *s)
{
    for (size_t i = 0; i < sizeof s_steps / sizeof s_steps[0]; i++)
        if (!strcmp(s, s_steps[i][0]))
            return s_steps[i][1];
    return NULL;
}

/* Moves the case: status, stage and exit_stage ("" = NULL); a publicity end
 * when pend > 0. */
static int move(PGconn *pg, dsp_case_t *c, const char *status, const char *stage,
                const char *exit_stage, int64_t pend)
{
    char ps[24];
    i64s(ps, sizeof ps, pend);
    const char *p[5] = {c->case_id, status, stage, *exit_stage ? exit_stage : NULL,
                        pend > 0 ? ps : NULL};
    int e = lv_pg_cmd(pg,
                      "UPDATE hcase SET status = $2, stage = $3, exit_stage = $4, "
                      "publicity_end_ms = coalesce($5::bigint, publicity_end_ms) WHERE case_id = $1",
                      5, p);
    snprintf(c->status, sizeof c->status, "%s", status);
    snprintf(c->stage, sizeof c->stage, "%s", stage);
    snprintf(c->exit_stage, sizeof c->exit_stage, "%s", exit_stage);
    return e;
}

/* The payout the approval entitles the household to: the 因病 basis is the
 * year's self-paid compliant medical cost, the year of its latest settlement.
 * Ledger reserves it; a fund manager pays it (levee pay). */
static int request_payout(PGconn *pg, const dsp_case_t *c)
{
    const char *p[1] = {c->household_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "WITH y AS (SELECT extract(year FROM to_timestamp(max(settle_ms) / 1000.0) "
                        "  AT TIME ZONE 'UTC')::int AS yr FROM medical_expense WHERE household_id = $1) "
                        "SELECT y.yr, coalesce(sum(e.compliant_self_fen), 0) FROM y "
                        "LEFT JOIN medical_expense e ON e.household_id = $1 AND "
                        "  e.settle_ms >= extract(epoch FROM make_date(y.yr, 1, 1))::bigint * 1000 AND "
                        "  e.settle_ms < extract(epoch FROM make_date(y.yr + 1, 1, 1))::bigint * 1000 "
                        "WHERE y.yr IS NOT NULL GROUP BY y.yr",
                        1, p);
    if (e)
        return e;
    Levee__PayoutRequest pr = LEVEE__PAYOUT_REQUEST__INIT;
    char id[160];
    if (PQntuples(res) == 0) {
        /* No medical cost: ledger still records the payout as "none" with
         * its reason, so every approved case has a payout row. */
        int y, m, d;
        lv_civil_from_days(dsp_now_ms() / LV_DAY_MS, &y, &m, &d);
        pr.year = y;
        pr.basis_fen = 0;
    } else {
        pr.year = atoi(PQgetvalue(res, 0, 0));
        pr.basis_fen = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    snprintf(id, sizeof id, "illness:%s:%d", c->case_id, pr.year);
    pr.payout_id = id;
    pr.case_id = (char *)c->case_id;
    pr.household_id = (char *)c->household_id;
    pr.region_code = (char *)c->region;
    pr.kind = (char *)"illness";
    pr.at_ms = dsp_now_ms();
    char htype[32] = "";
    e = lv_pg_scalar(pg, htype, sizeof htype,
                     "SELECT household_type FROM household WHERE household_id = $1", 1, p);
    if (e && e != LV_ENOTFOUND)
        return e;
    pr.household_type = htype;
    return lv_outbox_put(pg, "dispatch", "ledger", id, "payout", &pr.base);
}

static int approve(PGconn *pg, dsp_case_t *c)
{
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[2] = {c->case_id, now};
    int e = lv_pg_cmd(pg, "UPDATE hcase SET identified_ms = $2, closed_ms = $2 WHERE case_id = $1",
                      2, p);
    if (e || (e = request_payout(pg, c)))
        return e;
    char title[160], body[400];
    snprintf(title, sizeof title, "县级审定通过: 户 %s 纳入监测", c->household_id);
    snprintf(body, sizeof body, "户 %s 经县级审定纳入防返贫监测, 类别 %s, 请落实一户一策帮扶措施。",
             c->household_id, c->category);
    return dsp_event(pg, c, "case_approved", NULL, NULL, title, body);
}

static int eliminated(PGconn *pg, dsp_case_t *c)
{
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[2] = {c->case_id, now};
    int e = lv_pg_cmd(pg, "UPDATE hcase SET eliminated_ms = $2, closed_ms = $2 WHERE case_id = $1",
                      2, p);
    if (e || (e = dsp_tasks_cancel(pg, c->case_id, NULL)))
        return e;
    char title[160], body[400];
    snprintf(title, sizeof title, "风险消除: 户 %s", c->household_id);
    snprintf(body, sizeof body,
             "户 %s 经县级审定风险消除, 不再作为监测对象; 档案保留, 出现新的风险将重新纳入。",
             c->household_id);
    return dsp_event(pg, c, "case_eliminated", NULL, NULL, title, body);
}

static bool role_is(const Levee__Command *cmd, const char *a, const char *b)
{
    return !strcmp(cmd->role, a) || !strcmp(cmd->role, b);
}

/* ---- identification ----------------------------------------------------- */

static int entry_fail(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                      const lv_policy_version_t *v, lv_reply_t *reply)
{
    if (!*cmd->note)
        return dsp_refuse(reply, "终止识别须说明原因 (a rejection needs --note)");
    char why[900];
    snprintf(why, sizeof why, "%s不通过: %s", step_zh(cmd->step), cmd->note);
    snprintf(reply->detail, sizeof reply->detail, "案件 %s 终止 (rejected): %s", c->case_id, why);
    return dsp_case_reject(pg, c, cmd->actor, cmd->role, why, v);
}

static int entry_step(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                      const lv_policy_version_t *v, lv_reply_t *reply)
{
    const char *s = cmd->step;
    bool pass = !strcmp(cmd->decision, "pass");
    bool publicizing = !strcmp(c->status, "publicizing");
    if (!strcmp(s, "eliminate"))
        return dsp_refuse(reply, "只有监测对象可以办理风险消除 (only a monitored case); status %s",
                          c->status);
    if (!strcmp(s, "screen")) {
        if (strcmp(c->status, "candidate"))
            return dsp_refuse(reply, "筛查只针对待核实对象 (screening is for candidates); status %s",
                              c->status);
        if (!role_is(cmd, "town", "village"))
            return dsp_refuse(reply, "筛查由乡镇或村办理 (screening is for town or village), not %s",
                              cmd->role);
    }
    if (!strcmp(s, "reject") || (!pass && strcmp(s, "publicize") && strcmp(s, "object"))) {
        if (strcmp(s, "reject") && strcmp(s, "screen") && (strcmp(s, c->stage) || publicizing))
            return dsp_refuse(reply, "环节顺序不符: 案件 %s 当前待办环节为 %s (wrong step)",
                              c->case_id, publicizing ? "公示期 (publicity running)" : c->stage);
        return entry_fail(pg, c, cmd, v, reply);
    }
    int64_t pend = 0;
    const char *status, *next;
    char why[900];
    snprintf(why, sizeof why, "%s通过%s%s", step_zh(s), *cmd->note ? ": " : "", cmd->note);
    if (!strcmp(s, "screen")) {
        status = "verifying";
        next = "verify";
    } else if (!strcmp(s, "object")) {
        if (!publicizing)
            return dsp_refuse(reply, "只有公示期内可以提出异议 (objections only during 公示); status %s",
                              c->status);
        status = "verifying";
        next = "verify";
        snprintf(why, sizeof why, "公示期异议, 重新入户核查%s%s", *cmd->note ? ": " : "", cmd->note);
    } else if (strcmp(s, c->stage) != 0 || publicizing) {
        return dsp_refuse(reply, "环节顺序不符: 案件 %s 当前待办环节为 %s (wrong step for this stage)",
                          c->case_id, publicizing ? "公示期 (publicity running)" : c->stage);
    } else if (!strcmp(s, "deliberate")) {
        status = "reviewing";
        next = "publicize";
    } else if (!strcmp(s, "publicize")) {
        if (!pass)
            return dsp_refuse(reply, "公示不设不通过, 异议请用 object (use the object step)");
        status = "publicizing";
        next = "town_review";
        pend = dsp_now_ms() + v->publicity_days * LV_DAY_MS;
        snprintf(why, sizeof why, "公示开始, 为期 %d 天%s%s", v->publicity_days,
                 *cmd->note ? ": " : "", cmd->note);
    } else if (!strcmp(s, "town_review")) {
        status = "reviewing";
        next = "county_approve";
    } else if (!strcmp(s, "county_approve")) {
        status = "monitoring";
        next = "assist";
    } else {
        return dsp_refuse(reply, "未知环节 (unknown step) %s", s);
    }
    int e = move(pg, c, status, next, "", pend);
    if (e || (e = dsp_timeline(pg, c, cmd->actor, cmd->role, s, why, v->version)))
        return e;
    if (!strcmp(s, "object")) {
        char task_id[128];
        if ((e = dsp_task_new(pg, c, "verify", NULL, v, task_id, sizeof task_id)))
            return e;
    }
    if (!strcmp(s, "county_approve") && (e = approve(pg, c)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "案件 %s: %s 已记录, 下一环节 %s", c->case_id, s,
             next);
    return 0;
}

/* ---- 风险消除 ------------------------------------------------------------ */

static int exit_withdraw(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                         const lv_policy_version_t *v, const char *action, const char *why,
                         lv_reply_t *reply)
{
    int e = move(pg, c, c->status, c->stage, "", 0);
    if (e || (e = dsp_tasks_cancel(pg, c->case_id, "revisit")) ||
        (e = dsp_timeline(pg, c, cmd->actor, cmd->role, action, why, v->version)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "案件 %s 风险消除中止, 继续监测帮扶: %s",
             c->case_id, why);
    return 0;
}

static int eliminate(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                     const lv_policy_version_t *v, lv_reply_t *reply)
{
    bool pass = !strcmp(cmd->decision, "pass");
    if (!pass) {
        if (!*c->exit_stage)
            return dsp_refuse(reply, "案件 %s 没有进行中的风险消除 (no elimination under way)",
                              c->case_id);
        if (!*cmd->note)
            return dsp_refuse(reply, "中止风险消除须说明原因 (needs --note)");
        char why[900];
        snprintf(why, sizeof why, "风险消除不予通过: %s", cmd->note);
        return exit_withdraw(pg, c, cmd, v, "elimination_withdrawn", why, reply);
    }
    if (!strcmp(c->exit_stage, "revisit"))
        return dsp_refuse(reply, "案件 %s 的回访任务尚未完成 (waiting for the 回访 result)",
                          c->case_id);
    if (*c->exit_stage && strcmp(c->exit_stage, "confirmed"))
        return dsp_refuse(reply, "案件 %s 风险消除已在办理, 当前环节 %s (already under way)",
                          c->case_id, c->exit_stage);
    char blockers[1500];
    int n;
    bool income;
    int e = dsp_exit_blockers(pg, c, v, blockers, sizeof blockers, &n, &income);
    if (e)
        return e;
    /* Before a 回访 the income may only look low: the 回访 measures it. */
    if (n > (!*c->exit_stage && income))
        return dsp_refuse(reply, "不符合风险消除条件 (elimination rules do not hold): %s", blockers);
    if (!*c->exit_stage) {
        /* Everything holds but the 回访 (and the income it measures): it
         * goes out now and the refusal says so (the task is kept:
         * reply->error with a 0 return). */
        char task_id[128];
        if ((e = dsp_exit_propose(pg, c, cmd->actor, cmd->role, "申请风险消除, 派发回访", v,
                                  task_id, sizeof task_id)))
            return e;
        snprintf(reply->error, sizeof reply->error,
                 "须先回访确认 (a 回访 must confirm first): 已派发回访任务 %s", task_id);
        return 0;
    }
    if ((e = move(pg, c, c->status, c->stage, "deliberate", 0)) ||
        (e = dsp_timeline(pg, c, cmd->actor, cmd->role, "eliminate",
                          "申请风险消除: 消除条件均满足, 回访已确认; 进入村级评议", v->version)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "案件 %s 风险消除进入村级评议 (next: deliberate)",
             c->case_id);
    return 0;
}

static int exit_step(PGconn *pg, dsp_case_t *c, const Levee__Command *cmd,
                     const lv_policy_version_t *v, lv_reply_t *reply)
{
    const char *s = cmd->step;
    bool pass = !strcmp(cmd->decision, "pass");
    char why[900], action[48];
    snprintf(action, sizeof action, "exit_%s", s);
    if (!strcmp(s, "eliminate"))
        return eliminate(pg, c, cmd, v, reply);
    if (!strcmp(s, "screen") || !strcmp(s, "reject"))
        return dsp_refuse(reply, "监测对象不能%s; 风险消除不通过请用 fail (case is monitored)",
                          step_zh(s));
    if (!strcmp(s, "object")) {
        if (strcmp(c->exit_stage, "publicizing"))
            return dsp_refuse(reply, "只有公示期内可以提出异议 (objections only during 公示)");
        snprintf(why, sizeof why, "风险消除公示期异议, 中止风险消除, 继续监测%s%s",
                 *cmd->note ? ": " : "", cmd->note);
        return exit_withdraw(pg, c, cmd, v, action, why, reply);
    }
    if (strcmp(s, c->exit_stage) != 0)
        return dsp_refuse(reply, "环节顺序不符: 案件 %s 风险消除当前环节为 %s (wrong step)",
                          c->case_id, *c->exit_stage ? c->exit_stage : "无 (none: use eliminate)");
    if (!pass) {
        if (!strcmp(s, "publicize"))
            return dsp_refuse(reply, "公示不设不通过, 异议请用 object (use the object step)");
        if (!*cmd->note)
            return dsp_refuse(reply, "不通过须说明原因 (needs --note)");
        snprintf(why, sizeof why, "风险消除%s不通过: %s; 继续监测帮扶", step_zh(s), cmd->note);
        return exit_withdraw(pg, c, cmd, v, action, why, reply);
    }
    int64_t pend = 0;
    const char *next = NULL;
    snprintf(why, sizeof why, "风险消除%s通过%s%s", step_zh(s), *cmd->note ? ": " : "", cmd->note);
    if (!strcmp(s, "deliberate")) {
        next = "publicize";
    } else if (!strcmp(s, "publicize")) {
        next = "publicizing";
        pend = dsp_now_ms() + v->publicity_days * LV_DAY_MS;
        snprintf(why, sizeof why, "风险消除公示开始, 为期 %d 天%s%s", v->publicity_days,
                 *cmd->note ? ": " : "", cmd->note);
    } else if (!strcmp(s, "town_review")) {
        next = "county_approve";
    }
    int e;
    if (next) {
        e = move(pg, c, c->status, c->stage, next, pend);
    } else {
        e = move(pg, c, "eliminated", "closed", "", 0);
        if (!e)
            e = eliminated(pg, c);
    }
    if (e || (e = dsp_timeline(pg, c, cmd->actor, cmd->role, next ? action : "case_eliminated", why,
                               v->version)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "案件 %s: 风险消除 %s 已记录, %s%s", c->case_id, s,
             next ? "下一环节 " : "风险已消除 (eliminated)", next ? next : "");
    return 0;
}

int dsp_step(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return LV_ETRANSIENT;
    if (strcmp(cmd->decision, "pass") && strcmp(cmd->decision, "fail"))
        return dsp_refuse(reply, "决定须为 pass 或 fail (decision must be pass|fail)");
    if (!step_zh(cmd->step))
        return dsp_refuse(reply, "未知环节 (unknown step) %s; one of screen deliberate publicize "
                                 "object town_review county_approve reject eliminate",
                          cmd->step);
    dsp_case_t c;
    bool found;
    int e = dsp_case_load(pg, cmd->case_id, false, &c, &found);
    if (e)
        return e;
    if (!found)
        return dsp_refuse(reply, "没有这个案件 (no such case) %s", cmd->case_id);
    if (!strcmp(c.status, "eliminated") || !strcmp(c.status, "rejected"))
        return dsp_refuse(reply, "案件 %s 已结束 (case is closed: %s)", c.case_id, c.status);
    return !strcmp(c.status, "monitoring") ? exit_step(pg, &c, cmd, v, reply)
                                            : entry_step(pg, &c, cmd, v, reply);
}

/* ---- timer ------------------------------------------------------------ */

/* 公示 periods that ended, of identification or of 风险消除: the case moves
 * on to 乡镇审核. One transaction per case; a crash in between leaves the
 * rest for the next tick. */
int dsp_end_publicity(dsp_t *d, PGconn *pg)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return 0;
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[1] = {now};
    PGresult *res;
    if (lv_pg_query(pg, &res,
                    "SELECT case_id FROM hcase WHERE (status = 'publicizing' OR exit_stage = "
                    "'publicizing') AND publicity_end_ms <= $1 ORDER BY publicity_end_ms, case_id "
                    "LIMIT " DSP_TICK_BATCH,
                    1, p))
        return 0;
    int n = PQntuples(res), done = 0;
    for (int i = 0; i < n; i++) {
        dsp_case_t c;
        bool found;
        if (lv_pg_begin(pg))
            break;
        int e = dsp_case_load(pg, PQgetvalue(res, i, 0), false, &c, &found);
        bool entry = found && !strcmp(c.status, "publicizing");
        bool exit = found && !strcmp(c.exit_stage, "publicizing");
        if (e || (!entry && !exit) || c.publicity_end_ms > dsp_now_ms()) {
            lv_pg_rollback(pg);
            continue;
        }
        e = entry ? move(pg, &c, "reviewing", "town_review", "", 0)
                  : move(pg, &c, c.status, c.stage, "town_review", 0);
        if (!e)
            e = dsp_timeline(pg, &c, "levee-dispatch", "system", "publicity_ended",
                             entry ? "公示期满, 无异议, 进入乡镇审核"
                                   : "风险消除公示期满, 无异议, 进入乡镇审核",
                             v->version);
        if (e || lv_pg_commit(pg)) {
            lv_pg_rollback(pg);
            lv_warn("case %s: could not end its 公示 (%s); retried", PQgetvalue(res, i, 0),
                    lv_strerror(e));
            break;
        }
        done++;
    }
    PQclear(res);
    return done;
}
