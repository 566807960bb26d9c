/* Households, cases and verification tasks: the file of a household (一户一档),
 * the work lists, and the two decisions people make through the API (a
 * procedure step, a verification result), which go to dispatch.
 *
 * Scope: every object is looked up within the caller's region; one outside
 * it answers 404 like one that does not exist. Investigators see only their
 * own tasks and the households of those tasks, and only they see ID numbers
 * and phones unmasked (they visit the family); everyone else sees them
 * masked. Steps: the town takes 筛查, 村级评议, 公示, 异议 and 乡镇审核 (it runs
 * the village's deliberation and publicity); the county takes 县级审定, 终止
 * and 风险消除. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "levee.pb-c.h"
#include "lv_err.h"
#include "lv_pg.h"

#define MEMBERS_MAX 100
#define TIMELINE_MAX 5000 /* steps of one household's file returned at once */

static const char *const s_case_status[] = {
    "candidate", "verifying", "reviewing", "publicizing", "monitoring", "eliminated", "rejected", NULL,
};
static const char *const s_grades[] = {"red", "orange", "yellow", NULL};
static const char *const s_task_status[] = {"open", "done", "cancelled", NULL};

static const struct {
    const char *step;
    lv_role_t roles;
} s_steps[] = {
    {"screen", LV_ROLE_TOWN},         {"deliberate", LV_ROLE_TOWN},
    {"publicize", LV_ROLE_TOWN},      {"object", LV_ROLE_TOWN},
    {"town_review", LV_ROLE_TOWN},    {"county_approve", LV_ROLE_COUNTY},
    {"reject", LV_ROLE_COUNTY},       {"eliminate", LV_ROLE_COUNTY},
};
#define NSTEPS (sizeof s_steps / sizeof s_steps[0])

static json_t *col_json(const PGresult *res, int col, json_t *dflt)
{
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, col))
        return dflt;
    json_t *v = json_loads(PQgetvalue(res, 0, col), JSON_DECODE_ANY, NULL);
    if (!v)
        return dflt;
    json_decref(dflt);
    return v;
}

/* ---- GET /api/v1/households/{household_id} -------------------------------- */

static void mask_household(json_t *h)
{
    gw_mask_member(h); /* the head's phone on the household row */
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(h, "members"), i, v) gw_mask_member(v);
    json_array_foreach(json_object_get(h, "timeline"), i, v)
    {
        gw_mask_text_field(v, "detail");
        gw_mask_text_field(v, "actor");
    }
}

/* A text member of src, or null when absent or empty (matching keeps ""
 * for "none"). */
static json_t *text_or_null(json_t *src, const char *key)
{
    json_t *v = src ? json_object_get(src, key) : NULL;
    const char *s = json_string_value(v);
    return s && *s ? json_incref(v) : json_null();
}

/* Status, category, grade and risk factors: the latest case's when one is
 * open, else matching's current view; `normal` when there never was a case. */
static void household_status(json_t *h, json_t *state)
{
    json_t *cases = json_object_get(h, "cases");
    json_t *last = json_array_get(cases, json_array_size(cases) - 1);
    const char *status = last ? json_string_value(json_object_get(last, "status")) : NULL;
    bool open = status && strcmp(status, "eliminated") != 0 && strcmp(status, "rejected") != 0;
    json_t *src = open ? last : state;
    json_object_set_new(h, "status", json_string(status ? status : "normal"));
    json_object_set_new(h, "category", text_or_null(src, "category"));
    json_object_set_new(h, "grade", text_or_null(src, "grade"));
    json_t *factors = json_array(), *f;
    size_t i;
    json_array_foreach(src ? json_object_get(src, "risk_factors") : NULL, i, f)
        if (json_string_value(f) && *json_string_value(f))
            json_array_append(factors, f);
    json_object_set_new(h, "risk_factors", factors);
    json_object_set_new(h, "primary_risk_factor",
                        open ? text_or_null(last, "primary_risk_factor") : json_null());
    json_t *pci = state ? json_object_get(state, "pci_fen") : NULL;
    json_t *rigid = state ? json_object_get(state, "rigid_fen") : NULL;
    json_object_set(h, "income_per_capita_fen", pci ? pci : json_null());
    json_object_set(h, "rigid_expense_12m_fen", rigid ? rigid : json_null());
}

void gw_h_household(gw_req_t *r)
{
    const char *hid = r->params[0];
    if (!gw_ident_ok(hid, GW_PARAM_MAX)) {
        gw_not_found(r);
        return;
    }
    bool inv = r->caller.role == LV_ROLE_INVESTIGATOR;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", TIMELINE_MAX);
    const char *p[4] = {hid, r->caller.prefix, inv ? r->caller.investigator : NULL, limit};
    PGresult *res = gw_sql_one(
        r,
        "SELECT json_build_object('household_id', h.household_id, 'region_code', h.region_code, "
        "  'region_name', (SELECT n.name FROM region_name n WHERE n.code = h.region_code), "
        "  'household_type', h.household_type, 'exit_year', h.exit_year, 'phone', h.phone, "
        "  'annual_income_fen', h.annual_income_fen)::text, "
        "(SELECT json_build_object('grade', s.grade, 'category', s.category, 'risk_factors', "
        "  s.risk_factors, 'in_scope', s.in_scope, 'pci_fen', s.pci_fen, 'rigid_fen', s.rigid_fen) "
        "  FROM household_state s WHERE s.household_id = h.household_id)::text, "
        "(SELECT coalesce(json_agg(json_build_object('id_number', m.id_number, 'name', m.name, "
        "  'relation', m.relation, 'disability_grade', m.disability_grade, 'chronic_illness', "
        "  m.chronic_illness, 'labour', m.labour, 'phone', m.phone) "
        "  ORDER BY (m.relation = '户主') DESC NULLS LAST, m.id_number), '[]') "
        "  FROM person m WHERE m.household_id = h.household_id)::text, "
        "(SELECT coalesce(json_agg(" GW_CASE_JSON " ORDER BY c.episode), '[]') "
        "  FROM hcase c WHERE c.household_id = h.household_id)::text, "
        "(SELECT coalesce(json_agg(" GW_PAYOUT_JSON " ORDER BY p.created_ms, p.payout_id), '[]') "
        "  FROM payout p WHERE p.household_id = h.household_id)::text, "
        "(SELECT coalesce(json_agg(json_build_object('time', l.at_ms, 'actor', l.actor, 'role', "
        "  l.role, 'action', l.action, 'detail', l.detail, 'case_id', l.case_id) ORDER BY l.seq), "
        "  '[]') FROM (SELECT * FROM timeline WHERE household_id = h.household_id "
        "  ORDER BY seq LIMIT $4::int) l)::text "
        "FROM household h WHERE h.household_id = $1 AND left(h.region_code, length($2)) = $2 "
        "AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM task t WHERE t.household_id = h.household_id "
        "  AND t.assignee = $3))",
        4, p);
    if (!res)
        return;
    json_t *h = col_json(res, 0, json_object());
    json_t *state = col_json(res, 1, NULL);
    json_object_set_new(h, "members", col_json(res, 2, json_array()));
    json_object_set_new(h, "cases", col_json(res, 3, json_array()));
    json_object_set_new(h, "payouts", col_json(res, 4, json_array()));
    json_object_set_new(h, "timeline", col_json(res, 5, json_array()));
    PQclear(res);
    household_status(h, state);
    json_decref(state);
    /* An investigator reaches only households of their own tasks (the
     * query above), and needs the family's numbers to visit it. */
    if (!inv)
        mask_household(h);
    gw_reply_json(r, 200, h);
}

/* ---- GET /api/v1/cases ------------------------------------------------------ */

void gw_h_cases(gw_req_t *r)
{
    const char *status = gw_query(r, "status"), *grade = gw_query(r, "grade");
    if (status && !gw_in_list(status, s_case_status)) {
        gw_bad_request(r, "status 须为 candidate verifying reviewing publicizing monitoring "
                          "eliminated rejected 之一 (unknown status)");
        return;
    }
    if (grade && !gw_in_list(grade, s_grades)) {
        gw_bad_request(r, "grade 须为 red orange yellow 之一 (unknown grade)");
        return;
    }
    char scope[13];
    gw_page_t pg;
    if (!gw_query_scope(r, scope) ||
        !gw_page_begin(r, "is", GW_LIMIT_DEFAULT, GW_LIMIT_MAX, &pg))
        return;
    const char *p[6] = {scope, status, grade, pg.after[0], pg.after[1], pg.limit_plus_one};
    gw_list_reply(r,
                  "SELECT " GW_CASE_JSON "::text, c.opened_ms, c.case_id FROM hcase c "
                  "WHERE left(c.region_code, length($1)) = $1 "
                  "AND ($2::text IS NULL OR c.status = $2) AND ($3::text IS NULL OR c.grade = $3) "
                  "AND ($4::bigint IS NULL OR (c.opened_ms, c.case_id) < ($4::bigint, $5::text)) "
                  "ORDER BY c.opened_ms DESC, c.case_id DESC LIMIT $6::int",
                  6, p, &pg);
}

/* ---- POST /api/v1/cases/{case_id}/steps ----------------------------------- */

/* The case of the path within the caller's region; false after replying. */
static bool case_in_scope(gw_req_t *r, const char *case_id)
{
    if (!gw_ident_ok(case_id, GW_PARAM_MAX)) {
        gw_not_found(r);
        return false;
    }
    const char *p[2] = {case_id, r->caller.prefix};
    PGresult *res = gw_sql_one(r,
                               "SELECT 1 FROM hcase WHERE case_id = $1 "
                               "AND left(region_code, length($2)) = $2",
                               2, p);
    PQclear(res);
    return res != NULL;
}

/* Replies 200 with the case as it stands now and the service's words. */
static void reply_case(gw_req_t *r, const char *case_id, json_t *extra, const char *detail)
{
    const char *p[1] = {case_id};
    PGresult *res = gw_sql(r, "SELECT " GW_CASE_JSON "::text FROM hcase c WHERE c.case_id = $1",
                           1, p);
    if (!res) {
        json_decref(extra);
        return;
    }
    json_t *o = extra ? extra : json_object();
    json_object_set_new(o, "case", col_json(res, 0, json_null()));
    json_object_set_new(o, "detail", json_string(detail));
    PQclear(res);
    gw_reply_json(r, 200, o);
}

void gw_h_step(gw_req_t *r)
{
    const char *case_id = r->params[0];
    json_t *o = gw_body_object(r);
    if (!o)
        return;
    bool bad = false;
    const char *step = gw_json_text(r, o, "step", 32, &bad);
    const char *decision = gw_json_text(r, o, "decision", 8, &bad);
    const char *note = gw_json_text(r, o, "note", GW_TEXT_MAX, &bad);
    lv_role_t roles = 0;
    for (size_t i = 0; step && i < NSTEPS; i++)
        if (!strcmp(step, s_steps[i].step))
            roles = s_steps[i].roles;
    if (bad) {
    } else if (!roles) {
        gw_bad_request(r, "step 须为 screen deliberate publicize object town_review county_approve "
                          "reject eliminate 之一 (unknown step)");
    } else if (!decision || (strcmp(decision, "pass") != 0 && strcmp(decision, "fail") != 0)) {
        gw_bad_request(r, "decision 须为 pass 或 fail (decision must be pass or fail)");
    } else if (!(roles & r->caller.role)) {
        gw_forbidden(r, "此环节不由您的层级办理 (this step belongs to another level)");
    } else if (case_in_scope(r, case_id)) {
        Levee__Command cmd = LEVEE__COMMAND__INIT;
        /* protobuf-c fields are char *; they are only read while packing. */
        cmd.name = (char *)"step";
        cmd.case_id = (char *)case_id;
        cmd.step = (char *)step;
        cmd.decision = (char *)decision;
        cmd.note = (char *)(note ? note : "");
        cmd.actor = (char *)gw_actor(r);
        cmd.role = (char *)lv_token_role_name(r->caller.role);
        char detail[1024];
        if (gw_send_command(r, r->gw->cfg.ep_dispatch, "dispatch", &cmd, detail, sizeof detail))
            reply_case(r, case_id, NULL, detail);
    }
    json_decref(o);
}

/* ---- GET /api/v1/tasks ------------------------------------------------------ */

void gw_h_tasks(gw_req_t *r)
{
    const char *status = gw_query(r, "status"), *assignee = gw_query(r, "assignee");
    if (status && !gw_in_list(status, s_task_status)) {
        gw_bad_request(r, "status 须为 open done cancelled 之一 (unknown status)");
        return;
    }
    if (assignee && !gw_ident_ok(assignee, 64)) {
        gw_bad_request(r, "assignee 无效 (bad assignee)");
        return;
    }
    /* An investigator's list is their own tasks, whatever they ask for. */
    if (r->caller.role == LV_ROLE_INVESTIGATOR)
        assignee = r->caller.investigator;
    char scope[13];
    gw_page_t pg;
    if (!gw_query_scope(r, scope) ||
        !gw_page_begin(r, "is", GW_LIMIT_DEFAULT, GW_LIMIT_MAX, &pg))
        return;
    const char *p[6] = {scope, assignee, status, pg.after[0], pg.after[1], pg.limit_plus_one};
    gw_list_reply(r,
                  "SELECT " GW_TASK_JSON "::text, t.due_ms, t.task_id FROM task t "
                  "JOIN hcase c ON c.case_id = t.case_id "
                  "WHERE left(c.region_code, length($1)) = $1 "
                  "AND ($2::text IS NULL OR t.assignee = $2) AND ($3::text IS NULL OR t.status = $3) "
                  "AND ($4::bigint IS NULL OR (t.due_ms, t.task_id) > ($4::bigint, $5::text)) "
                  "ORDER BY t.due_ms, t.task_id LIMIT $6::int",
                  6, p, &pg);
}

/* ---- POST /api/v1/tasks/{task_id}/result ------------------------------------ */

typedef struct {
    int64_t income, rigid;
    int members;
    bool excluded, risk_remains, declared_accepted;
    const char *reason, *risk, *findings;
} result_t;

/* An optional boolean field: absent or null gives dflt; false after a 400
 * when it is something else. */
static bool opt_bool(gw_req_t *r, json_t *o, const char *key, bool dflt, bool *out)
{
    json_t *b = json_object_get(o, key);
    if (b && !json_is_boolean(b) && !json_is_null(b)) {
        gw_bad_request(r, "%s 须为 true 或 false (%s must be a boolean)", key, key);
        return false;
    }
    *out = json_is_boolean(b) ? json_is_true(b) : dflt;
    return true;
}

static bool result_parse(gw_req_t *r, json_t *o, result_t *v)
{
    bool bad = false;
    v->reason = gw_json_text(r, o, "exclusion_reason", GW_TEXT_MAX, &bad);
    v->risk = gw_json_text(r, o, "risk_factor", 64, &bad);
    v->findings = gw_json_text(r, o, "findings", GW_TEXT_MAX, &bad);
    if (bad)
        return false;
    int hi = gw_json_yuan(r, o, "annual_net_income", &v->income);
    if (hi < 0)
        return false;
    int hr = gw_json_yuan(r, o, "rigid_expense", &v->rigid);
    if (hr < 0)
        return false;
    if (!hi || !hr) {
        gw_bad_request(r, "缺少必填字段 %s (missing required field)",
                       !hi ? "annual_net_income" : "rigid_expense");
        return false;
    }
    json_t *m = json_object_get(o, "members");
    if (!json_is_integer(m) || json_integer_value(m) < 1 || json_integer_value(m) > MEMBERS_MAX) {
        gw_bad_request(r, "members 须为 1..%d 的整数 (members must be an integer 1..%d)",
                       MEMBERS_MAX, MEMBERS_MAX);
        return false;
    }
    v->members = (int)json_integer_value(m);
    if (!opt_bool(r, o, "excluded", false, &v->excluded) ||
        !opt_bool(r, o, "risk_remains", false, &v->risk_remains) ||
        !opt_bool(r, o, "declared_accepted", true, &v->declared_accepted))
        return false;
    if (v->excluded && (!v->reason || !*v->reason)) {
        gw_bad_request(r, "排除时须填写 exclusion_reason (an exclusion needs exclusion_reason)");
        return false;
    }
    if (v->risk && !gw_in_list(v->risk, gw_risk_factors)) {
        gw_bad_request(r, "risk_factor 须为风险类型之一 (unknown risk type): 因病 因残 因学 因灾 "
                          "因意外事故 因务工就业不稳 因产业项目失败 大额刚性支出 其他");
        return false;
    }
    return true;
}

void gw_h_task_result(gw_req_t *r)
{
    const char *task_id = r->params[0];
    if (!gw_ident_ok(task_id, GW_PARAM_MAX)) {
        gw_not_found(r);
        return;
    }
    /* Only the investigator the task is assigned to, within the region. */
    const char *p[3] = {task_id, r->caller.prefix, r->caller.investigator};
    PGresult *res = gw_sql_one(r,
                               "SELECT t.case_id FROM task t JOIN hcase c ON c.case_id = t.case_id "
                               "WHERE t.task_id = $1 AND left(c.region_code, length($2)) = $2 "
                               "AND t.assignee = $3",
                               3, p);
    if (!res)
        return;
    char case_id[GW_PARAM_MAX + 1];
    snprintf(case_id, sizeof case_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    json_t *o = gw_body_object(r);
    result_t v;
    if (!o || !result_parse(r, o, &v)) {
        json_decref(o);
        return;
    }
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    cmd.name = (char *)"task_result";
    cmd.task_id = (char *)task_id;
    cmd.income_fen = v.income;
    cmd.rigid_fen = v.rigid;
    cmd.members = v.members;
    cmd.excluded = v.excluded;
    cmd.risk_remains = v.risk_remains;
    cmd.declared_refused = !v.declared_accepted;
    cmd.exclusion_reason = (char *)(v.reason ? v.reason : "");
    cmd.risk_factor = (char *)(v.risk ? v.risk : "");
    cmd.findings = (char *)(v.findings ? v.findings : "");
    cmd.actor = (char *)gw_actor(r);
    cmd.role = (char *)"investigator";
    char detail[1024];
    bool ok = gw_send_command(r, r->gw->cfg.ep_dispatch, "dispatch", &cmd, detail, sizeof detail);
    json_decref(o);
    if (!ok)
        return;
    const char *pt[1] = {task_id};
    res = gw_sql(r, "SELECT " GW_TASK_JSON "::text FROM task t WHERE t.task_id = $1", 1, pt);
    if (!res)
        return;
    json_t *extra = json_object();
    json_object_set_new(extra, "task", col_json(res, 0, json_null()));
    PQclear(res);
    reply_case(r, case_id, extra, detail);
}
