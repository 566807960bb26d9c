/* The case state machine. Every transition writes the case row and an
 * append-only timeline row (who, role, when, what, why, policy version) in
 * the consumer's transaction, so the household's file (一户一档) is exactly
 * what happened. Statuses: verifying → reviewing (stage deliberate, then
 * publicize) → publicizing (timer) → reviewing (stage town_review, then
 * county_approve) → monitoring; rejected from any open state. */
#define _POSIX_C_SOURCE 200809L
#include "dispatch.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_rules.h"
#include "lv_time.h"

#define DAY_MS 86400000LL
#define TICK_MS 1000
#define TICK_BATCH "200"

typedef struct {
    char case_id[96];
    char household_id[64];
    char county[7];
    char region[13];
    char status[16];
    char stage[24];
    char grade[8];
    char category[32];
    char primary_risk[32];
    int64_t income, rigid;
    int members;
    int episode;
    int64_t publicity_end_ms;
} case_t;

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

static int timeline(PGconn *pg, const case_t *c, const char *actor, const char *role,
                    const char *action, const char *detail, const char *version)
{
    char now[24];
    i64s(now, sizeof now, lv_now_ms());
    const char *p[8] = {c->household_id, c->county, c->case_id, now, actor, role, action, detail};
    const char *sql =
        "INSERT INTO timeline (household_id, county, case_id, at_ms, actor, role, action, detail, "
        "policy_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    const char *q[9];
    memcpy(q, p, sizeof p);
    q[8] = version;
    return lv_pg_cmd(pg, sql, 9, q);
}

static const char *policy_version(dsp_t *d, const lv_policy_version_t **v)
{
    *v = lv_policy_at(lv_service_policy(d->svc), lv_now_ms());
    return *v ? (*v)->version : NULL;
}

/* News for notify, with an id that is deterministic for the case and kind. */
static int event(PGconn *pg, const case_t *c, const char *kind, const char *title,
                 const char *body)
{
    char id[160];
    snprintf(id, sizeof id, "ev:%s:%s", kind, c->case_id);
    Levee__Event ev = LEVEE__EVENT__INIT;
    ev.event_id = id;
    ev.kind = (char *)kind;
    ev.household_id = (char *)c->household_id;
    ev.region_code = (char *)c->region;
    ev.case_id = (char *)c->case_id;
    ev.title = (char *)title;
    ev.body = (char *)body;
    ev.at_ms = lv_now_ms();
    return lv_outbox_put(pg, "dispatch", "notify", id, "event", &ev.base);
}

/* Picks the active investigator whose region prefix is the longest match
 * for the case's region, the one with the fewest open tasks first. */
static int assign(PGconn *pg, const case_t *c, const char *task_id, const char *version)
{
    const char *p[2] = {c->region, task_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "UPDATE task SET assignee = (SELECT i.investigator_id FROM investigator i "
                        "  WHERE i.active AND $1 LIKE i.region_prefix || '%' "
                        "  ORDER BY length(i.region_prefix) DESC, (SELECT count(*) FROM task t2 "
                        "  WHERE t2.assignee = i.investigator_id AND t2.status = 'open'), "
                        "  i.investigator_id LIMIT 1) "
                        "WHERE task_id = $2 AND assignee IS NULL RETURNING assignee",
                        2, p);
    if (e)
        return e;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        char detail[256];
        snprintf(detail, sizeof detail, "入户核查任务 %s 指派给 %s", task_id, PQgetvalue(res, 0, 0));
        e = timeline(pg, c, "levee-dispatch", "system", "task_assigned", detail, version);
    }
    PQclear(res);
    return e;
}

static int new_task(PGconn *pg, const case_t *c, const lv_policy_version_t *v)
{
    char n[24], task_id[128], now[24], due[24];
    int64_t t = lv_now_ms();
    PGresult *res;
    const char *p0[1] = {c->case_id};
    int e = lv_pg_query(pg, &res, "SELECT count(*) + 1 FROM task WHERE case_id = $1", 1, p0);
    if (e)
        return e;
    snprintf(n, sizeof n, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    snprintf(task_id, sizeof task_id, "%s-V%s", c->case_id, n);
    i64s(now, sizeof now, t);
    i64s(due, sizeof due, t + v->verification_due_days * DAY_MS);
    const char *p[6] = {task_id, c->case_id, c->household_id, c->county, now, due};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO task (task_id, case_id, household_id, county, kind, status, "
                       "created_ms, due_ms) VALUES ($1, $2, $3, $4, 'verify', 'open', $5, $6)",
                       6, p)))
        return e;
    char detail[256];
    snprintf(detail, sizeof detail, "创建入户核查任务 %s, %d 天内完成", task_id,
             v->verification_due_days);
    if ((e = timeline(pg, c, "levee-dispatch", "system", "task_created", detail, v->version)))
        return e;
    return assign(pg, c, task_id, v->version);
}

/* ---- alerts ---------------------------------------------------------- */

static int load_open_case(PGconn *pg, const char *household_id, case_t *c, bool *found)
{
    const char *p[1] = {household_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT case_id, household_id, county, region_code, status, stage, "
                        "coalesce(grade, ''), coalesce(category, ''), coalesce(primary_risk, ''), "
                        "coalesce(income_fen, 0), coalesce(rigid_fen, 0), coalesce(members, 0), "
                        "episode, coalesce(publicity_end_ms, 0) FROM hcase "
                        "WHERE household_id = $1 AND status NOT IN ('eliminated', 'rejected') "
                        "FOR UPDATE",
                        1, p);
    if (e)
        return e;
    *found = PQntuples(res) == 1;
    if (*found) {
        memset(c, 0, sizeof *c);
        snprintf(c->case_id, sizeof c->case_id, "%s", PQgetvalue(res, 0, 0));
        snprintf(c->household_id, sizeof c->household_id, "%s", PQgetvalue(res, 0, 1));
        snprintf(c->county, sizeof c->county, "%s", PQgetvalue(res, 0, 2));
        snprintf(c->region, sizeof c->region, "%s", PQgetvalue(res, 0, 3));
        snprintf(c->status, sizeof c->status, "%s", PQgetvalue(res, 0, 4));
        snprintf(c->stage, sizeof c->stage, "%s", PQgetvalue(res, 0, 5));
        snprintf(c->grade, sizeof c->grade, "%s", PQgetvalue(res, 0, 6));
        snprintf(c->category, sizeof c->category, "%s", PQgetvalue(res, 0, 7));
        snprintf(c->primary_risk, sizeof c->primary_risk, "%s", PQgetvalue(res, 0, 8));
        c->income = strtoll(PQgetvalue(res, 0, 9), NULL, 10);
        c->rigid = strtoll(PQgetvalue(res, 0, 10), NULL, 10);
        c->members = atoi(PQgetvalue(res, 0, 11));
        c->episode = atoi(PQgetvalue(res, 0, 12));
        c->publicity_end_ms = strtoll(PQgetvalue(res, 0, 13), NULL, 10);
    }
    PQclear(res);
    return 0;
}

/* The risk factors as a Postgres array literal; a factor with a quote or a
 * backslash (never sent by matching) is left out rather than escaped. */
static void risk_array(const Levee__Alert *a, char *out, size_t n)
{
    size_t len = 0;
    out[len++] = '{';
    for (size_t i = 0; i < a->n_risk_factors && len + 64 < n; i++) {
        if (strpbrk(a->risk_factors[i], "\\\"{},"))
            continue;
        len += (size_t)snprintf(out + len, n - len, "%s\"%s\"", len > 1 ? "," : "",
                                a->risk_factors[i]);
    }
    snprintf(out + len, n - len, "}");
}

static int on_alert(dsp_t *d, PGconn *pg, const Levee__Alert *a)
{
    const lv_policy_version_t *v;
    if (!policy_version(d, &v))
        return LV_ETRANSIENT;
    case_t c;
    bool found;
    int e = load_open_case(pg, a->household_id, &c, &found);
    if (e)
        return e;
    char risks[512], inc[24], rig[24], mem[16];
    risk_array(a, risks, sizeof risks);
    i64s(inc, sizeof inc, a->income_fen);
    i64s(rig, sizeof rig, a->rigid_fen);
    snprintf(mem, sizeof mem, "%d", a->members);
    if (found) {
        /* The same episode: a worse picture raises the grade of the open
         * case; it never opens a second one. */
        if (lv_grade_rank(a->grade) <= lv_grade_rank(c.grade))
            return 0;
        const char *p[6] = {c.case_id, a->grade, a->category, risks, inc, rig};
        if ((e = lv_pg_cmd(pg,
                           "UPDATE hcase SET grade = $2, category = $3, risk_factors = $4, "
                           "income_fen = CASE WHEN status = 'verifying' THEN $5::bigint ELSE income_fen END, "
                           "rigid_fen = CASE WHEN status = 'verifying' THEN $6::bigint ELSE rigid_fen END "
                           "WHERE case_id = $1",
                           6, p)))
            return e;
        char detail[700];
        snprintf(detail, sizeof detail, "预警升级 %s → %s: %s", c.grade, a->grade, a->explanation);
        return timeline(pg, &c, "levee-matching", "system", "alert_raised", detail,
                        a->policy_version);
    }
    PGresult *res;
    const char *p0[1] = {a->household_id};
    if ((e = lv_pg_query(pg, &res,
                         "SELECT coalesce(max(episode), 0) + 1 FROM hcase WHERE household_id = $1",
                         1, p0)))
        return e;
    memset(&c, 0, sizeof c);
    c.episode = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    snprintf(c.case_id, sizeof c.case_id, "%s-%d", a->household_id, c.episode);
    snprintf(c.household_id, sizeof c.household_id, "%s", a->household_id);
    snprintf(c.region, sizeof c.region, "%s", a->region_code);
    snprintf(c.county, sizeof c.county, "%.6s", a->region_code);
    int64_t now = lv_now_ms();
    int64_t start = a->read_ms > 0 && a->read_ms <= now ? a->read_ms : now;
    char nows[24], deadline[24], ep[16];
    i64s(nows, sizeof nows, now);
    i64s(deadline, sizeof deadline, start + v->identification_target_days * DAY_MS);
    snprintf(ep, sizeof ep, "%d", c.episode);
    const char *p[15] = {c.case_id,      c.household_id,       c.county, c.region, ep,
                         a->grade,       a->category,          risks,    a->primary_risk_factor,
                         inc,            mem,                  rig,      nows,     deadline,
                         a->alert_id};
    const char *q[16];
    memcpy(q, p, sizeof p);
    q[15] = v->version;
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO hcase (case_id, household_id, county, region_code, episode, "
                       "status, stage, grade, category, risk_factors, primary_risk, income_fen, "
                       "members, rigid_fen, opened_ms, deadline_ms, trigger_alert, policy_version) "
                       "VALUES ($1, $2, $3, $4, $5, 'verifying', 'verify', $6, $7, $8, $9, $10, "
                       "$11, $12, $13, $14, $15, $16)",
                       16, q)))
        return e;
    char detail[900];
    snprintf(detail, sizeof detail, "部门筛查预警 (%s %s) 纳入识别: %s; %s", a->trigger_source,
             a->trigger_record_id, a->category, a->explanation);
    if ((e = timeline(pg, &c, "levee-matching", "system", "case_opened", detail,
                      a->policy_version)))
        return e;
    if ((e = new_task(pg, &c, v)))
        return e;
    static const char *const grade_zh[] = {"", "黄色提醒", "橙色预警", "红色报警"};
    char title[256], body[700];
    snprintf(title, sizeof title, "新增监测识别对象: 户 %s (%s)", c.household_id,
             grade_zh[lv_grade_rank(a->grade)]);
    snprintf(body, sizeof body,
             "户 %s 因%s进入识别程序, 类别 %s, 预警等级 %s。已派发入户核查, 请关注。",
             c.household_id, a->primary_risk_factor + (strncmp(a->primary_risk_factor, "因", 3) ? 0 : 3),
             a->category, grade_zh[lv_grade_rank(a->grade)]);
    return event(pg, &c, "case_opened", title, body);
}

static int on_alerts(dsp_t *d, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__AlertBatch *b = levee__alert_batch__unpack(lv_arena_allocator(d->arena), msg->len,
                                                      msg->body);
    if (!b) {
        snprintf(reply->error, sizeof reply->error, "not an AlertBatch (bad protobuf)");
        return LV_EINVAL;
    }
    for (size_t i = 0; i < b->n_alerts; i++) {
        const Levee__Alert *a = b->alerts[i];
        if (!*a->household_id || strlen(a->region_code) != 12 || !*a->grade) {
            snprintf(reply->error, sizeof reply->error, "alert %zu: missing household or region", i);
            return LV_EINVAL;
        }
        int e = on_alert(d, pg, a);
        if (e)
            return e == LV_EINVAL ? LV_ETRANSIENT : e;
    }
    snprintf(reply->detail, sizeof reply->detail, "%zu alerts", b->n_alerts);
    return 0;
}

/* ---- commands -------------------------------------------------------- */

static int refuse(lv_reply_t *reply, const char *fmt, const char *a, const char *b)
{
    snprintf(reply->error, sizeof reply->error, fmt, a, b);
    return LV_ESTATE;
}

static int close_case(dsp_t *d, PGconn *pg, case_t *c, const Levee__Command *cmd, const char *why)
{
    const lv_policy_version_t *v;
    if (!policy_version(d, &v))
        return LV_ETRANSIENT;
    char now[24];
    i64s(now, sizeof now, lv_now_ms());
    const char *p[2] = {c->case_id, now};
    int e = lv_pg_cmd(pg,
                      "UPDATE hcase SET status = 'rejected', stage = 'closed', closed_ms = $2 "
                      "WHERE case_id = $1",
                      2, p);
    if (!e)
        e = lv_pg_cmd(pg,
                      "UPDATE task SET status = 'cancelled', completed_ms = $2 "
                      "WHERE case_id = $1 AND status = 'open'",
                      2, p);
    if (!e)
        e = timeline(pg, c, cmd->actor, cmd->role, "case_rejected", why, v->version);
    if (!e) {
        char title[160];
        snprintf(title, sizeof title, "识别终止: 户 %s", c->household_id);
        e = event(pg, c, "case_rejected", title, why);
    }
    return e;
}

static int task_result(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v;
    if (!policy_version(d, &v))
        return LV_ETRANSIENT;
    const char *p0[1] = {cmd->task_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT household_id, status, kind FROM task WHERE task_id = $1 FOR UPDATE",
                        1, p0);
    if (e)
        return e;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return refuse(reply, "没有这个任务 (no such task) %s%s", cmd->task_id, "");
    }
    char hid[64], status[16];
    snprintf(hid, sizeof hid, "%s", PQgetvalue(res, 0, 0));
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (strcmp(status, "open") != 0)
        return refuse(reply, "任务 %s 已是 %s 状态, 不能再提交结果 (task is not open)", cmd->task_id,
                      status);
    case_t c;
    bool found;
    if ((e = load_open_case(pg, hid, &c, &found)))
        return e;
    if (!found || strcmp(c.status, "verifying") != 0)
        return refuse(reply, "户 %s 的案件不在核查阶段 (case is not verifying)%s", hid, "");
    if (cmd->members < 1 || cmd->income_fen < 0 || cmd->rigid_fen < 0)
        return refuse(reply, "核查结果无效: 人口须 ≥ 1, 金额不能为负 (bad result)%s%s", "", "");

    json_t *r = json_pack("{s:I, s:i, s:I, s:b, s:s, s:s, s:s, s:s}", "annual_net_income_fen",
                          (json_int_t)cmd->income_fen, "members", cmd->members, "rigid_expense_fen",
                          (json_int_t)cmd->rigid_fen, "excluded", cmd->excluded, "exclusion_reason",
                          cmd->exclusion_reason, "risk_factor", cmd->risk_factor, "findings",
                          cmd->findings, "investigator", cmd->actor);
    char *rj = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    if (!rj)
        return LV_ETRANSIENT;
    char now[24];
    i64s(now, sizeof now, lv_now_ms());
    const char *p1[3] = {cmd->task_id, now, rj};
    e = lv_pg_cmd(pg,
                  "UPDATE task SET status = 'done', completed_ms = $2, result = $3::jsonb "
                  "WHERE task_id = $1",
                  3, p1);
    free(rj);
    if (e)
        return e;

    char detail[1200], inc[32], rig[32];
    lv_money_format(cmd->income_fen, inc, sizeof inc);
    lv_money_format(cmd->rigid_fen, rig, sizeof rig);
    snprintf(detail, sizeof detail, "入户核查完成 %s: 家庭年纯收入 %s 元, %d 人, 刚性支出 %s 元%s%s%s",
             cmd->task_id, inc, cmd->members, rig, *cmd->findings ? "; " : "", cmd->findings,
             cmd->excluded ? "; 发现排除情形" : "");
    if ((e = timeline(pg, &c, cmd->actor, cmd->role, "verified", detail, v->version)))
        return e;
    if (cmd->excluded) {
        char why[700];
        snprintf(why, sizeof why, "入户核查发现排除情形: %s", cmd->exclusion_reason);
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 终止: %s", c.case_id, why);
        return close_case(d, pg, &c, cmd, why);
    }
    lv_facts_t f = {.income_fen = cmd->income_fen, .members = cmd->members,
                    .rigid_fen = cmd->rigid_fen};
    PGresult *hres;
    const char *ph[1] = {hid};
    if ((e = lv_pg_query(pg, &hres, "SELECT household_type FROM household WHERE household_id = $1",
                         1, ph)))
        return e;
    f.exited = PQntuples(hres) == 1 && !strcmp(PQgetvalue(hres, 0, 0), "脱贫户");
    PQclear(hres);
    lv_verdict_t vd;
    lv_rules_eval(v, &f, &vd);
    if (!vd.in_scope) {
        char why[700];
        snprintf(why, sizeof why, "核查后不在监测范围: %s", vd.explain);
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 终止: %s", c.case_id, why);
        return close_case(d, pg, &c, cmd, why);
    }
    char mem[16];
    snprintf(mem, sizeof mem, "%d", cmd->members);
    char incs[24], rigs[24];
    i64s(incs, sizeof incs, cmd->income_fen);
    i64s(rigs, sizeof rigs, cmd->rigid_fen);
    const char *primary = *cmd->risk_factor ? cmd->risk_factor : c.primary_risk;
    const char *p2[7] = {c.case_id, incs, mem, rigs, lv_grade_name(vd.grade), vd.category, primary};
    if ((e = lv_pg_cmd(pg,
                       "UPDATE hcase SET status = 'reviewing', stage = 'deliberate', income_fen = $2, "
                       "members = $3, rigid_fen = $4, grade = $5, category = $6, primary_risk = $7 "
                       "WHERE case_id = $1",
                       7, p2)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "案件 %s 核查属实, 进入村级评议 (next: deliberate)",
             c.case_id);
    return 0;
}

/* The payout the approval entitles the household to: the 因病 basis is the
 * year's self-paid compliant medical cost, the year of its latest settlement.
 * Ledger reserves it; a fund manager pays it (levee pay). */
static int request_payout(PGconn *pg, const case_t *c)
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
        lv_civil_from_days(lv_now_ms() / DAY_MS, &y, &m, &d);
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
    pr.at_ms = lv_now_ms();
    PGresult *hres;
    if ((e = lv_pg_query(pg, &hres, "SELECT household_type FROM household WHERE household_id = $1",
                         1, p)))
        return e;
    char htype[32] = "";
    if (PQntuples(hres) == 1)
        snprintf(htype, sizeof htype, "%s", PQgetvalue(hres, 0, 0));
    PQclear(hres);
    pr.household_type = htype;
    return lv_outbox_put(pg, "dispatch", "ledger", id, "payout", &pr.base);
}

static int step(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v;
    if (!policy_version(d, &v))
        return LV_ETRANSIENT;
    const char *p0[1] = {cmd->case_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res, "SELECT household_id FROM hcase WHERE case_id = $1", 1, p0);
    if (e)
        return e;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return refuse(reply, "没有这个案件 (no such case) %s%s", cmd->case_id, "");
    }
    char hid[64];
    snprintf(hid, sizeof hid, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    case_t c;
    bool found;
    if ((e = load_open_case(pg, hid, &c, &found)))
        return e;
    if (!found || strcmp(c.case_id, cmd->case_id) != 0)
        return refuse(reply, "案件 %s 已结束 (case is closed)%s", cmd->case_id, "");
    bool pass = !strcmp(cmd->decision, "pass");
    const char *s = cmd->step;
    char why[900];
    snprintf(why, sizeof why, "%s %s%s%s", s, pass ? "通过" : "不通过", *cmd->note ? ": " : "",
             cmd->note);

    if (!strcmp(s, "reject") || (!pass && strcmp(s, "publicize") && strcmp(s, "object"))) {
        if (!strcmp(s, "screen") && strcmp(c.stage, "verify"))
            return refuse(reply, "筛查只在核查前进行 (screening comes before verification); stage %s%s",
                          c.stage, "");
        if (!*cmd->note)
            return refuse(reply, "终止识别须说明原因 (a rejection needs --note)%s%s", "", "");
        snprintf(reply->detail, sizeof reply->detail, "案件 %s 终止 (rejected)", c.case_id);
        return close_case(d, pg, &c, cmd, why);
    }
    const char *next = NULL, *status = NULL, *action = s;
    char now[24], pend[24] = "";
    int64_t t = lv_now_ms();
    i64s(now, sizeof now, t);
    if (!strcmp(s, "screen")) {
        if (strcmp(c.stage, "verify"))
            return refuse(reply, "筛查只在核查前进行 (screening comes before verification); stage %s%s",
                          c.stage, "");
        next = c.stage;
        status = c.status;
    } else if (!strcmp(s, "object")) {
        if (strcmp(c.status, "publicizing"))
            return refuse(reply, "只有公示期内可以提出异议 (objections only during 公示); status %s%s",
                          c.status, "");
        next = "verify";
        status = "verifying";
    } else if (strcmp(s, c.stage) != 0 || !strcmp(c.status, "publicizing")) {
        return refuse(reply, "环节顺序不符: 案件 %s 当前待办环节为 %s (wrong step for this stage)",
                      c.case_id, !strcmp(c.status, "publicizing") ? "公示期 (publicity running)" : c.stage);
    } else if (!strcmp(s, "deliberate")) {
        next = "publicize";
        status = "reviewing";
    } else if (!strcmp(s, "publicize")) {
        if (!pass)
            return refuse(reply, "公示不设不通过, 异议请用 object (use the object step)%s%s", "", "");
        next = "town_review";
        status = "publicizing";
        i64s(pend, sizeof pend, t + v->publicity_days * DAY_MS);
        snprintf(why, sizeof why, "公示开始, 为期 %d 天%s%s", v->publicity_days,
                 *cmd->note ? ": " : "", cmd->note);
    } else if (!strcmp(s, "town_review")) {
        next = "county_approve";
        status = "reviewing";
    } else if (!strcmp(s, "county_approve")) {
        next = "assist";
        status = "monitoring";
    } else {
        return refuse(reply, "环节 %s 在此版本尚未开放 (step not supported yet)%s", s, "");
    }
    const char *p[5] = {c.case_id, status, next, *pend ? pend : NULL, now};
    if ((e = lv_pg_cmd(pg,
                       "UPDATE hcase SET status = $2, stage = $3, "
                       "publicity_end_ms = coalesce($4::bigint, publicity_end_ms), "
                       "closed_ms = CASE WHEN $2 = 'monitoring' THEN $5::bigint ELSE closed_ms END "
                       "WHERE case_id = $1",
                       5, p)))
        return e;
    if ((e = timeline(pg, &c, cmd->actor, cmd->role, action, why, v->version)))
        return e;
    if (!strcmp(s, "object")) {
        snprintf(c.status, sizeof c.status, "verifying");
        if ((e = new_task(pg, &c, v)))
            return e;
    }
    if (!strcmp(s, "county_approve")) {
        if ((e = request_payout(pg, &c)))
            return e;
        char title[160], body[400];
        snprintf(title, sizeof title, "县级审定通过: 户 %s 纳入监测", c.household_id);
        snprintf(body, sizeof body, "户 %s 经县级审定纳入防返贫监测, 类别 %s, 请落实一户一策帮扶措施。",
                 c.household_id, c.category);
        if ((e = event(pg, &c, "case_approved", title, body)))
            return e;
    }
    snprintf(reply->detail, sizeof reply->detail, "案件 %s: %s 已记录, 下一环节 %s", c.case_id, s,
             next);
    return 0;
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
        return task_result(d, pg, cmd, reply);
    if (!strcmp(cmd->name, "step"))
        return step(d, pg, cmd, reply);
    snprintf(reply->error, sizeof reply->error, "unknown command %s", cmd->name);
    return LV_EINVAL;
}

int dsp_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    dsp_t *d = ctx;
    lv_arena_reset(d->arena);
    if (!strcmp(msg->type, "alerts"))
        return on_alerts(d, pg, msg, reply);
    if (!strcmp(msg->type, "cmd"))
        return on_command(d, pg, msg, reply);
    snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
    return LV_EINVAL;
}

/* ---- timers ---------------------------------------------------------- */

/* 公示 periods that ended: the case moves on to 乡镇审核. One transaction
 * per case; a crash in between leaves the rest for the next tick. */
static int end_publicity(dsp_t *d, PGconn *pg)
{
    const lv_policy_version_t *v;
    if (!policy_version(d, &v))
        return 0;
    char now[24];
    i64s(now, sizeof now, lv_now_ms());
    const char *p[1] = {now};
    PGresult *res;
    if (lv_pg_query(pg, &res,
                    "SELECT household_id FROM hcase WHERE status = 'publicizing' AND "
                    "publicity_end_ms <= $1 ORDER BY publicity_end_ms LIMIT " TICK_BATCH,
                    1, p))
        return 0;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        case_t c;
        bool found;
        if (lv_pg_begin(pg))
            break;
        if (load_open_case(pg, PQgetvalue(res, i, 0), &c, &found) || !found ||
            strcmp(c.status, "publicizing") || c.publicity_end_ms > lv_now_ms()) {
            lv_pg_rollback(pg);
            continue;
        }
        const char *q[1] = {c.case_id};
        if (lv_pg_cmd(pg, "UPDATE hcase SET status = 'reviewing' WHERE case_id = $1", 1, q) ||
            timeline(pg, &c, "levee-dispatch", "system", "publicity_ended",
                     "公示期满, 无异议, 进入乡镇审核", v->version) ||
            lv_pg_commit(pg)) {
            lv_pg_rollback(pg);
            break;
        }
    }
    PQclear(res);
    return n;
}

/* Tasks opened before any investigator covered their region. */
static int assign_waiting(dsp_t *d, PGconn *pg)
{
    const lv_policy_version_t *v;
    if (!policy_version(d, &v))
        return 0;
    PGresult *res;
    if (lv_pg_query(pg, &res,
                    "SELECT t.task_id, t.household_id FROM task t WHERE t.assignee IS NULL AND "
                    "t.status = 'open' AND EXISTS (SELECT 1 FROM investigator i JOIN hcase h ON "
                    "h.case_id = t.case_id WHERE i.active AND h.region_code LIKE i.region_prefix || '%') "
                    "ORDER BY t.created_ms, t.task_id LIMIT " TICK_BATCH,
                    0, NULL))
        return 0;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        case_t c;
        bool found;
        if (lv_pg_begin(pg))
            break;
        if (load_open_case(pg, PQgetvalue(res, i, 1), &c, &found) || !found ||
            assign(pg, &c, PQgetvalue(res, i, 0), v->version) || lv_pg_commit(pg)) {
            lv_pg_rollback(pg);
            break;
        }
    }
    PQclear(res);
    return n;
}

int dsp_tick(void *ctx, lv_service_t *svc)
{
    dsp_t *d = ctx;
    static int64_t next_ms;
    int64_t now = lv_mono_ms();
    if (now < next_ms)
        return (int)(next_ms - now);
    PGconn *pg = lv_service_pg(svc);
    int n = end_publicity(d, pg) + assign_waiting(d, pg);
    next_ms = now + (n ? 0 : TICK_MS);
    return n ? 0 : TICK_MS;
}
