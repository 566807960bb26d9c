/* The case record and what every transition writes with it: the timeline
 * row (一户一档), the events for notify, the grade; and the alerts from
 * matching that open an episode or raise its grade. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_int.h"
#include "lv_err.h"
#include "lv_pg.h"
#include "lv_rules.h"
#include "lv_time.h"

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

static void copy(char *dst, size_t n, const PGresult *res, int col)
{
    snprintf(dst, n, "%s", PQgetvalue(res, 0, col));
}

const lv_policy_version_t *dsp_policy(dsp_t *d)
{
    return lv_policy_at(lv_service_policy(d->svc), dsp_now_ms());
}

int dsp_refuse(lv_reply_t *reply, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reply->error, sizeof reply->error, fmt, ap);
    va_end(ap);
    return LV_ESTATE;
}

#define CASE_COLS                                                                                  \
    "SELECT case_id, household_id, county, region_code, status, stage, coalesce(exit_stage, ''), " \
    "coalesce(grade, ''), coalesce(category, ''), coalesce(primary_risk, ''), "                   \
    "coalesce(verified_by, ''), coalesce(income_fen, 0), coalesce(rigid_fen, 0), "                \
    "coalesce(members, 0), episode, coalesce(publicity_end_ms, 0) FROM hcase "

int dsp_case_load(PGconn *pg, const char *key, bool by_household, dsp_case_t *c, bool *found)
{
    const char *p[1] = {key};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        by_household ? CASE_COLS "WHERE household_id = $1 AND status NOT IN "
                                                 "('eliminated', 'rejected') FOR UPDATE"
                                     : CASE_COLS "WHERE case_id = $1 FOR UPDATE",
                        1, p);
    if (e)
        return e;
    *found = PQntuples(res) == 1;
    if (*found) {
        memset(c, 0, sizeof *c);
        copy(c->case_id, sizeof c->case_id, res, 0);
        copy(c->household_id, sizeof c->household_id, res, 1);
        copy(c->county, sizeof c->county, res, 2);
        copy(c->region, sizeof c->region, res, 3);
        copy(c->status, sizeof c->status, res, 4);
        copy(c->stage, sizeof c->stage, res, 5);
        copy(c->exit_stage, sizeof c->exit_stage, res, 6);
        copy(c->grade, sizeof c->grade, res, 7);
        copy(c->category, sizeof c->category, res, 8);
        copy(c->primary_risk, sizeof c->primary_risk, res, 9);
        copy(c->verified_by, sizeof c->verified_by, res, 10);
        c->income = strtoll(PQgetvalue(res, 0, 11), NULL, 10);
        c->rigid = strtoll(PQgetvalue(res, 0, 12), NULL, 10);
        c->members = atoi(PQgetvalue(res, 0, 13));
        c->episode = atoi(PQgetvalue(res, 0, 14));
        c->publicity_end_ms = strtoll(PQgetvalue(res, 0, 15), NULL, 10);
    }
    PQclear(res);
    return 0;
}

int dsp_timeline(PGconn *pg, const dsp_case_t *c, const char *actor, const char *role,
                 const char *action, const char *detail, const char *version)
{
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[9] = {c->household_id, c->county, c->case_id, now, actor, role, action, detail,
                        version};
    return lv_pg_cmd(pg,
                     "INSERT INTO timeline (household_id, county, case_id, at_ms, actor, role, "
                     "action, detail, policy_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                     9, p);
}

int dsp_event(PGconn *pg, const dsp_case_t *c, const char *kind, const char *suffix,
              const char *assignee, const char *title, const char *body)
{
    char id[256];
    snprintf(id, sizeof id, "ev:%s:%s%s%s", kind, c->case_id, suffix ? ":" : "", suffix ? suffix : "");
    Levee__Event ev = LEVEE__EVENT__INIT;
    ev.event_id = id;
    ev.kind = (char *)kind;
    ev.household_id = (char *)c->household_id;
    ev.region_code = (char *)c->region;
    ev.case_id = (char *)c->case_id;
    ev.title = (char *)title;
    ev.body = (char *)body;
    ev.at_ms = dsp_now_ms();
    ev.assignee = (char *)(assignee ? assignee : "");
    ev.grade = (char *)c->grade;
    return lv_outbox_put(pg, "dispatch", "notify", id, "event", &ev.base);
}

int dsp_case_reject(PGconn *pg, dsp_case_t *c, const char *actor, const char *role,
                    const char *why, const lv_policy_version_t *v)
{
    char now[24];
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[2] = {c->case_id, now};
    int e = lv_pg_cmd(pg,
                      "UPDATE hcase SET status = 'rejected', stage = 'closed', exit_stage = NULL, "
                      "closed_ms = $2 WHERE case_id = $1",
                      2, p);
    if (!e)
        e = dsp_tasks_cancel(pg, c->case_id, NULL);
    if (!e)
        e = dsp_timeline(pg, c, actor, role, "case_rejected", why, v->version);
    snprintf(c->status, sizeof c->status, "rejected");
    if (!e) {
        char title[160];
        snprintf(title, sizeof title, "识别终止: 户 %s", c->household_id);
        e = dsp_event(pg, c, "case_rejected", NULL, NULL, title, why);
    }
    return e;
}

static const char *grade_zh(const char *grade)
{
    static const char *const zh[] = {"无", "黄色提醒", "橙色预警", "红色报警"};
    return zh[lv_grade_rank(grade)];
}

/* A number that grows with the case's history: the suffix of events that
 * can happen more than once to a case (deterministic, unlike a sequence). */
static int history_len(PGconn *pg, const char *case_id, char out[24])
{
    const char *p[1] = {case_id};
    return lv_pg_scalar(pg, out, 24, "SELECT count(*) FROM timeline WHERE case_id = $1", 1, p);
}

static int red_alert(PGconn *pg, const dsp_case_t *c, const char *why)
{
    char n[24], title[256], body[900];
    int e = history_len(pg, c->case_id, n);
    if (e)
        return e;
    snprintf(title, sizeof title, "红色报警: 户 %s", c->household_id);
    snprintf(body, sizeof body, "户 %s (案件 %s) 为红色报警, 请县级优先督办。%s", c->household_id,
             c->case_id, why);
    return dsp_event(pg, c, "red_alert", n, NULL, title, body);
}

int dsp_case_set_grade(PGconn *pg, dsp_case_t *c, const char *grade, const char *actor,
                       const char *why, const char *version)
{
    if (!strcmp(grade, c->grade))
        return 0;
    const char *p[2] = {c->case_id, grade};
    int e = lv_pg_cmd(pg, "UPDATE hcase SET grade = $2 WHERE case_id = $1", 2, p);
    if (e)
        return e;
    char detail[900], old[8];
    snprintf(old, sizeof old, "%s", c->grade);
    snprintf(detail, sizeof detail, "预警等级 %s → %s: %s", grade_zh(old), grade_zh(grade), why);
    snprintf(c->grade, sizeof c->grade, "%s", grade);
    if ((e = dsp_timeline(pg, c, actor, "system", "grade_changed", detail, version)))
        return e;
    /* The open tasks move to the lane of the new grade. */
    PGresult *res;
    const char *q[1] = {c->case_id};
    if ((e = lv_pg_query(pg, &res,
                         "SELECT assignee, task_id FROM task WHERE case_id = $1 AND status = 'open' "
                         "AND assignee IS NOT NULL",
                         1, q)))
        return e;
    for (int i = 0; i < PQntuples(res) && !e; i++)
        e = dsp_queue_op(pg, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), "add");
    PQclear(res);
    if (!e && !strcmp(grade, "red"))
        e = red_alert(pg, c, why);
    return e;
}

/* ---- alerts ---------------------------------------------------------- */

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

/* New evidence for a household with an open case: the risk factors join
 * the case's, a worse grade is taken, and a 风险消除 under way stops. */
static int alert_open_case(PGconn *pg, dsp_case_t *c, const Levee__Alert *a, const char *risks,
                           const lv_policy_version_t *v)
{
    char now[24], inc[24], rig[24];
    i64s(now, sizeof now, dsp_now_ms());
    i64s(inc, sizeof inc, a->income_fen);
    i64s(rig, sizeof rig, a->rigid_fen);
    bool worse = lv_grade_rank(a->grade) > lv_grade_rank(c->grade);
    const char *p[6] = {c->case_id, risks, now, worse ? a->category : NULL, inc, rig};
    /* Figures from matching stand until an investigator has verified. */
    int e = lv_pg_cmd(pg,
                      "UPDATE hcase SET last_alert_ms = $3::bigint, "
                      "risk_factors = ARRAY(SELECT DISTINCT x FROM unnest(risk_factors || $2::text[]) "
                      "  AS x ORDER BY x), category = coalesce($4, category), "
                      "income_fen = CASE WHEN stage IN ('screen', 'verify') THEN $5::bigint ELSE income_fen END, "
                      "rigid_fen = CASE WHEN stage IN ('screen', 'verify') THEN $6::bigint ELSE rigid_fen END "
                      "WHERE case_id = $1",
                      6, p);
    if (e)
        return e;
    if (worse && (e = dsp_case_set_grade(pg, c, a->grade, "levee-matching", a->explanation,
                                         a->policy_version)))
        return e;
    if (!worse && !strcmp(c->status, "monitoring")) {
        char detail[900];
        snprintf(detail, sizeof detail, "监测期间新的风险证据 (%s %s): %s", a->trigger_source,
                 a->trigger_record_id, a->explanation);
        if ((e = dsp_timeline(pg, c, "levee-matching", "system", "alert_raised", detail,
                              a->policy_version)))
            return e;
    }
    if (*c->exit_stage) {
        const char *q[1] = {c->case_id};
        if ((e = lv_pg_cmd(pg, "UPDATE hcase SET exit_stage = NULL WHERE case_id = $1", 1, q)) ||
            (e = dsp_tasks_cancel(pg, c->case_id, "revisit")))
            return e;
        e = dsp_timeline(pg, c, "levee-dispatch", "system", "elimination_withdrawn",
                         "出现新的风险, 风险消除程序中止, 继续监测帮扶", v->version);
    }
    return e;
}

static int alert_new_case(PGconn *pg, const Levee__Alert *a, const char *risks,
                          const lv_policy_version_t *v)
{
    dsp_case_t c;
    PGresult *res;
    const char *p0[1] = {a->household_id};
    int e = lv_pg_query(pg, &res,
                        "SELECT coalesce(max(episode), 0) + 1 FROM hcase WHERE household_id = $1", 1,
                        p0);
    if (e)
        return e;
    memset(&c, 0, sizeof c);
    c.episode = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    snprintf(c.case_id, sizeof c.case_id, "%s-%d", a->household_id, c.episode);
    snprintf(c.household_id, sizeof c.household_id, "%s", a->household_id);
    snprintf(c.region, sizeof c.region, "%s", a->region_code);
    snprintf(c.county, sizeof c.county, "%.6s", a->region_code);
    snprintf(c.status, sizeof c.status, "candidate");
    snprintf(c.stage, sizeof c.stage, "screen");
    snprintf(c.grade, sizeof c.grade, "%s", a->grade);
    snprintf(c.category, sizeof c.category, "%s", a->category);
    int64_t now = dsp_now_ms();
    int64_t start = a->read_ms > 0 && a->read_ms <= now ? a->read_ms : now;
    char nows[24], deadline[24], ep[16], inc[24], rig[24], mem[16];
    i64s(nows, sizeof nows, now);
    i64s(deadline, sizeof deadline, start + v->identification_target_days * LV_DAY_MS);
    snprintf(ep, sizeof ep, "%d", c.episode);
    i64s(inc, sizeof inc, a->income_fen);
    i64s(rig, sizeof rig, a->rigid_fen);
    snprintf(mem, sizeof mem, "%d", a->members);
    const char *p[16] = {c.case_id, c.household_id, c.county, c.region, ep,
                         a->grade,  a->category,    risks,    a->primary_risk_factor,
                         inc,       mem,            rig,      nows,     deadline,
                         a->alert_id, v->version};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO hcase (case_id, household_id, county, region_code, episode, "
                       "status, stage, grade, category, risk_factors, primary_risk, income_fen, "
                       "members, rigid_fen, opened_ms, deadline_ms, trigger_alert, policy_version, "
                       "last_alert_ms) VALUES ($1, $2, $3, $4, $5, 'candidate', 'screen', $6, $7, "
                       "$8, $9, $10, $11, $12, $13, $14, $15, $16, $13)",
                       16, p)))
        return e;
    char detail[1000], again[64] = "";
    if (c.episode > 1)
        snprintf(again, sizeof again, "第 %d 次纳入识别 (new episode), ", c.episode);
    snprintf(detail, sizeof detail, "%s部门筛查预警 (%s %s) 纳入识别: %s; %s", again,
             a->trigger_source, a->trigger_record_id, a->category, a->explanation);
    if ((e = dsp_timeline(pg, &c, "levee-matching", "system", "case_opened", detail,
                          a->policy_version)))
        return e;
    /* Screening runs alongside: the 入户核查 goes out at once. */
    char task_id[128];
    if ((e = dsp_task_new(pg, &c, "verify", NULL, v, task_id, sizeof task_id)))
        return e;
    char title[256], body[700];
    const char *why = a->primary_risk_factor;
    snprintf(title, sizeof title, "新增监测识别对象: 户 %s (%s)", c.household_id, grade_zh(a->grade));
    snprintf(body, sizeof body,
             "户 %s 因%s进入识别程序, 类别 %s, 预警等级 %s。已派发入户核查, 请关注。",
             c.household_id, why + (strncmp(why, "因", 3) ? 0 : 3), a->category, grade_zh(a->grade));
    if ((e = dsp_event(pg, &c, "case_opened", NULL, NULL, title, body)))
        return e;
    return !strcmp(a->grade, "red") ? red_alert(pg, &c, a->explanation) : 0;
}

static int on_alert(dsp_t *d, PGconn *pg, const Levee__Alert *a)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return LV_ETRANSIENT;
    dsp_case_t c;
    bool found;
    int e = dsp_case_load(pg, a->household_id, true, &c, &found);
    if (e)
        return e;
    char risks[512];
    risk_array(a, risks, sizeof risks);
    return found ? alert_open_case(pg, &c, a, risks, v) : alert_new_case(pg, a, risks, v);
}

int dsp_on_alerts(dsp_t *d, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
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
