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
#include "lv_money.h"
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

/* One payout request to ledger, in the approval's transaction: id
 * <kind>:<case>:<year>[:<n>], deterministic, so a redelivery is one payout.
 * Ledger computes the amount from the policy; a basis that comes to 0 is
 * still recorded there, with the computation and the reason. */
static int put_request(PGconn *pg, const dsp_case_t *c, const char *htype, const char *kind,
                       int year, int64_t basis, int student_no, const char *student,
                       const char *detail)
{
    char id[200];
    if (student_no > 0)
        snprintf(id, sizeof id, "%s:%s:%d:%d", kind, c->case_id, year, student_no);
    else
        snprintf(id, sizeof id, "%s:%s:%d", kind, c->case_id, year);
    Levee__PayoutRequest pr = LEVEE__PAYOUT_REQUEST__INIT;
    pr.payout_id = id;
    pr.case_id = (char *)c->case_id;
    pr.household_id = (char *)c->household_id;
    pr.region_code = (char *)c->region;
    pr.household_type = (char *)htype;
    pr.kind = (char *)kind;
    pr.basis_fen = basis;
    pr.year = year;
    pr.at_ms = dsp_now_ms();
    pr.student_id = (char *)(student ? student : "");
    pr.basis_detail = (char *)detail;
    return lv_outbox_put(pg, "dispatch", "ledger", id, "payout", &pr.base);
}

/* The SQL of a year's window on a column of ms: <col> within year <yr>. */
#define IN_YEAR(col, yr)                                                                           \
    col " >= extract(epoch FROM make_date(" yr ", 1, 1))::bigint * 1000 AND " col                 \
        " < extract(epoch FROM make_date(" yr " + 1, 1, 1))::bigint * 1000 "
/* A query on the household's rows ($1 = its id). */
static int by_household(PGconn *pg, const dsp_case_t *c, const char *sql, PGresult **res)
{
    const char *p[1] = {c->household_id};
    return lv_pg_query(pg, res, sql, 1, p);
}

/* The household's rows of a table in the year (UTC) of its latest one:
 * year, Σ sum_col, count, and one more column (extra). No row when the
 * household has none. */
static int year_total(PGconn *pg, const dsp_case_t *c, const char *table, const char *ms_col,
                      const char *sum_col, const char *extra, PGresult **res)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "WITH y AS (SELECT extract(year FROM to_timestamp(max(%s) / 1000.0) AT TIME ZONE "
             "'UTC')::int AS yr FROM %s WHERE household_id = $1) "
             "SELECT y.yr, sum(x.%s), count(*), %s FROM y JOIN %s x ON x.household_id = $1 AND "
             "x.%s >= extract(epoch FROM make_date(y.yr, 1, 1))::bigint * 1000 AND "
             "x.%s < extract(epoch FROM make_date(y.yr + 1, 1, 1))::bigint * 1000 GROUP BY y.yr",
             ms_col, table, sum_col, extra, table, ms_col, ms_col);
    return by_household(pg, c, sql, res);
}

/* 因病: the year's self-paid compliant medical cost, the year of the
 * latest settlement. Always requested: with no medical cost ledger records
 * a payout of 0 with its reason, so every approved case has a payout row. */
static int request_illness(PGconn *pg, const dsp_case_t *c, const char *htype)
{
    PGresult *res;
    int e = year_total(pg, c, "medical_expense", "settle_ms", "compliant_self_fen", "''", &res);
    if (e)
        return e;
    int year;
    int64_t basis = 0;
    char detail[200], yuan[32];
    if (PQntuples(res) == 0) {
        int m, d;
        lv_civil_from_days(dsp_now_ms() / LV_DAY_MS, &year, &m, &d);
        snprintf(detail, sizeof detail, "无医保结算记录 (no medical settlement)");
    } else {
        year = atoi(PQgetvalue(res, 0, 0));
        basis = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        lv_money_format(basis, yuan, sizeof yuan);
        snprintf(detail, sizeof detail, "医保结算 %s 笔, %d 年合规自付 %s 元", PQgetvalue(res, 0, 2),
                 year, yuan);
    }
    PQclear(res);
    return put_request(pg, c, htype, "illness", year, basis, 0, NULL, detail);
}

/* 因灾: the verified losses (应急管理) of the year of the latest one, when
 * the household has any. */
static int request_disaster(PGconn *pg, const dsp_case_t *c, const char *htype)
{
    PGresult *res;
    int e = year_total(pg, c, "disaster_record", "event_ms", "loss_amount_fen",
                       "left(string_agg(DISTINCT x.disaster_type, '、'), 40)", &res);
    if (e)
        return e;
    if (PQntuples(res) == 1) {
        int year = atoi(PQgetvalue(res, 0, 0));
        int64_t basis = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        char detail[300], yuan[32];
        lv_money_format(basis, yuan, sizeof yuan);
        snprintf(detail, sizeof detail, "应急管理核定损失 %s 笔 (%s), %d 年合计 %s 元",
                 PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), year, yuan);
        e = put_request(pg, c, htype, "disaster", year, basis, 0, NULL, detail);
    }
    PQclear(res);
    return e;
}

#define DSP_MAX_STUDENTS "20" /* per household: more is a data error, not a family */

/* 因学: one request per student of the household, on the student's year of
 * the latest record: Σ (cost − aid, not below 0) of that year. */
static int request_education(PGconn *pg, const dsp_case_t *c, const char *htype)
{
    PGresult *res;
    int e = by_household(pg, c,
                         "WITH s AS (SELECT id_number, extract(year FROM to_timestamp(max(event_ms) "
                         "  / 1000.0) AT TIME ZONE 'UTC')::int AS yr FROM education_record "
                         "  WHERE household_id = $1 GROUP BY id_number) "
                         "SELECT s.id_number, s.yr, left(max(e.name), 20), "
                         "  sum(greatest(e.cost_fen - coalesce(e.aid_fen, 0), 0)), sum(e.cost_fen), "
                         "  sum(coalesce(e.aid_fen, 0)), count(*) FROM s "
                         "JOIN education_record e ON e.household_id = $1 AND e.id_number = s.id_number "
                         "  AND " IN_YEAR("e.event_ms", "s.yr")
                         "GROUP BY s.id_number, s.yr ORDER BY s.id_number LIMIT " DSP_MAX_STUDENTS,
                         &res);
    if (e)
        return e;
    for (int i = 0; !e && i < PQntuples(res); i++) {
        const char *student = PQgetvalue(res, i, 0);
        int year = atoi(PQgetvalue(res, i, 1));
        int64_t basis = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        char detail[400], net[32], cost[32], aid[32];
        lv_money_format(basis, net, sizeof net);
        lv_money_format(strtoll(PQgetvalue(res, i, 4), NULL, 10), cost, sizeof cost);
        lv_money_format(strtoll(PQgetvalue(res, i, 5), NULL, 10), aid, sizeof aid);
        snprintf(detail, sizeof detail,
                 "学生 %s (%.6s********%.4s) %d 年教育记录 %s 笔: 应缴 %s 元, 已获资助 %s 元, "
                 "自负 %s 元",
                 PQgetvalue(res, i, 2), student, student + 14, year, PQgetvalue(res, i, 6), cost, aid,
                 net);
        e = put_request(pg, c, htype, "education", year, basis, i + 1, student, detail);
    }
    PQclear(res);
    return e;
}

/* The payouts the approval entitles the household to, one request per kind
 * it qualifies for (and per student for 因学). Ledger reserves them; a fund
 * manager pays them (levee pay). */
static int request_payouts(PGconn *pg, const dsp_case_t *c)
{
    const char *p[1] = {c->household_id};
    char htype[32] = "";
    int e = lv_pg_scalar(pg, htype, sizeof htype,
                         "SELECT household_type FROM household WHERE household_id = $1", 1, p);
    if (e && e != LV_ENOTFOUND)
        return e;
    if ((e = request_illness(pg, c, htype)) || (e = request_disaster(pg, c, htype)))
        return e;
    return request_education(pg, c, htype);
}

static int approve(PGconn *pg, dsp_case_t *c)
{
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[2] = {c->case_id, now};
    int e = lv_pg_cmd(pg, "UPDATE hcase SET identified_ms = $2, closed_ms = $2 WHERE case_id = $1",
                      2, p);
    if (e || (e = request_payouts(pg, c)))
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
