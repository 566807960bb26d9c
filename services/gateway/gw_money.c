/* Money and figures: funds, payouts, and the statistics of the households
 * currently monitored (三类户占比 and 返贫风险因素), overall and by the regions
 * one level down, and the cases of each month (the dashboard's trend).
 * Funds are seen by the fund managers and the offices: the province-wide
 * fund by all of them, a county or village fund by callers whose region it
 * serves or contains. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "lv_err.h"
#include "lv_time.h"
#include "lv_reconcile.h"
#include "lv_policy.h"

static const char *const s_payout_kinds[] = {"illness", "disaster", "education", "relief", NULL};
static const char *const s_categories[] = {"脱贫不稳定户", "边缘易致贫户", "突发严重困难户", NULL};
static const char *const s_grades[] = {"red", "orange", "yellow", NULL};

void gw_h_funds(gw_req_t *r)
{
    gw_page_t pg;
    if (!gw_page_begin(r, "s", GW_LIMIT_DEFAULT, GW_LIMIT_MAX, &pg))
        return;
    const char *p[3] = {r->caller.prefix, pg.after[0], pg.limit_plus_one};
    /* A village fund's region is in its account id; a policy fund has none
     * (it serves the whole province). */
    gw_list_reply(r,
                  "SELECT json_build_object('fund_id', f.fund_id, 'name', a.name, 'balance_fen', "
                  "  a.credits_posted - a.debits_posted - a.debits_pending, 'paid_fen', "
                  "  a.debits_posted - ledger_allocated_out(a.account_id), 'pending_fen', "
                  "  a.debits_pending, 'allocated_fen', ledger_allocated_out(a.account_id), "
                  "  'region_code', f.region)::text, "
                  "  a.account_id FROM account a CROSS JOIN LATERAL (SELECT "
                  "  CASE WHEN a.account_id LIKE 'fund:%' THEN substr(a.account_id, 6) "
                  "  ELSE a.account_id END AS fund_id, "
                  "  CASE WHEN a.account_id LIKE 'fund:village:%' THEN substr(a.account_id, 14) "
                  "  ELSE a.county END AS region) f "
                  "WHERE a.kind = 'fund' AND (f.region IS NULL "
                  "  OR left(f.region, length($1)) = $1 OR left($1, length(f.region)) = f.region) "
                  "AND ($2::text IS NULL OR a.account_id > $2) "
                  "ORDER BY a.account_id LIMIT $3::int",
                  3, p, &pg);
}

void gw_h_payouts(gw_req_t *r)
{
    const char *household = gw_query(r, "household_id"), *kind = gw_query(r, "kind");
    if (household && !gw_ident_ok(household, GW_PARAM_MAX)) {
        gw_bad_request(r, "household_id 无效 (bad household_id)");
        return;
    }
    if (kind && !gw_in_list(kind, s_payout_kinds)) {
        gw_bad_request(r, "kind 须为 illness disaster education relief 之一 (unknown kind)");
        return;
    }
    char scope[13];
    gw_page_t pg;
    if (!gw_query_scope(r, scope) ||
        !gw_page_begin(r, "is", GW_LIMIT_DEFAULT, GW_LIMIT_MAX, &pg))
        return;
    const char *p[6] = {scope, household, kind, pg.after[0], pg.after[1], pg.limit_plus_one};
    gw_list_reply(r,
                  "SELECT " GW_PAYOUT_JSON "::text, p.created_ms, p.payout_id FROM payout p "
                  "JOIN household h ON h.household_id = p.household_id "
                  "WHERE left(h.region_code, length($1)) = $1 "
                  "AND ($2::text IS NULL OR p.household_id = $2) AND ($3::text IS NULL OR p.kind = $3) "
                  "AND ($4::bigint IS NULL OR (p.created_ms, p.payout_id) < ($4::bigint, $5::text)) "
                  "ORDER BY p.created_ms DESC, p.payout_id DESC LIMIT $6::int",
                  6, p, &pg);
}

/* {"households": n, "persons": m} */
static json_t *counts(const PGresult *res, int row)
{
    return json_pack("{s:I, s:I}", "households", (json_int_t)strtoll(PQgetvalue(res, row, 2), NULL, 10),
                     "persons", (json_int_t)strtoll(PQgetvalue(res, row, 3), NULL, 10));
}

/* One breakdown: the known keys first (zero when absent), then any other
 * value the data holds. */
static json_t *breakdown(const PGresult *res, const char *dim, const char *const *known)
{
    json_t *o = json_object();
    for (int i = 0; known[i]; i++)
        json_object_set_new(o, known[i], json_pack("{s:i, s:i}", "households", 0, "persons", 0));
    for (int i = 0; i < PQntuples(res); i++)
        if (!strcmp(PQgetvalue(res, i, 0), dim))
            json_object_set_new(o, PQgetvalue(res, i, 1), counts(res, i));
    return o;
}

void gw_h_stats(gw_req_t *r)
{
    char scope[13];
    if (!gw_query_scope(r, scope))
        return;
    const char *p[1] = {scope};
    /* A monitored household is one whose open case is in monitoring; each
     * counts once per breakdown, under its primary risk factor (else its
     * first, else 其他), so every breakdown sums to the total. */
    PGresult *res = gw_sql(
        r,
        "WITH m AS (SELECT c.household_id, coalesce(c.category, '未知') AS category, "
        "  coalesce(c.grade, '未知') AS grade, "
        "  coalesce(nullif(c.primary_risk, ''), c.risk_factors[1], '其他') AS factor, "
        "  (SELECT count(*) FROM person p WHERE p.household_id = c.household_id) AS persons "
        "  FROM hcase c WHERE c.status = 'monitoring' AND left(c.region_code, length($1)) = $1) "
        "SELECT 'total', '', count(*), coalesce(sum(persons), 0) FROM m "
        "UNION ALL SELECT 'category', category, count(*), sum(persons) FROM m GROUP BY category "
        "UNION ALL SELECT 'risk', factor, count(*), sum(persons) FROM m GROUP BY factor "
        "UNION ALL SELECT 'grade', grade, count(*), sum(persons) FROM m GROUP BY grade",
        1, p);
    if (!res)
        return;
    json_t *o = json_object();
    json_object_set_new(o, "region", json_string(scope));
    for (int i = 0; i < PQntuples(res); i++)
        if (!strcmp(PQgetvalue(res, i, 0), "total")) {
            json_object_set_new(o, "households", json_integer(strtoll(PQgetvalue(res, i, 2), NULL, 10)));
            json_object_set_new(o, "persons", json_integer(strtoll(PQgetvalue(res, i, 3), NULL, 10)));
        }
    json_object_set_new(o, "by_category", breakdown(res, "category", s_categories));
    json_object_set_new(o, "by_risk_factor", breakdown(res, "risk", gw_risk_factors));
    json_object_set_new(o, "by_grade", breakdown(res, "grade", s_grades));
    PQclear(res);
    gw_reply_json(r, 200, o);
}

/* The proof of the books, as `levee reconcile` gives it: province-wide,
 * so for the province and fund roles of the whole province only. */
void gw_h_reconciliation(gw_req_t *r)
{
    if (strlen(r->caller.prefix) > 2) {
        gw_reply_error(r, 403, "forbidden", "对账须全省令牌 (reconciliation needs a province-wide token)");
        return;
    }
    char err[512];
    lv_policy_t *policy = lv_policy_load(r->gw->cfg.policy_path, err, sizeof err);
    const lv_policy_version_t *v = policy ? lv_policy_at(policy, lv_now_ms()) : NULL;
    if (!v) {
        lv_policy_destroy(&policy);
        gw_reply_error(r, 503, "unavailable", "没有生效的政策 (no policy in effect): %s",
                       policy ? "-" : err);
        return;
    }
    PGconn *pg = gw_pg(r);
    json_t *checks = NULL;
    int failed = 0;
    int e = pg ? lv_reconcile(pg, v, &checks, &failed) : LV_ETRANSIENT;
    lv_policy_destroy(&policy);
    if (!pg)
        return; /* gw_pg replied 503 */
    if (e) {
        gw_reply_error(r, 503, "unavailable", "数据库不可用 (database unavailable)");
        return;
    }
    gw_reply_json(r, 200, json_pack("{s:b, s:o}", "ok", failed == 0, "checks", checks));
}

/* The standard level below a region prefix: province 2 → city 4 → county 6
 * → town 9 → village 12 (a village is its own level). */
static int child_length(size_t len, const char **level)
{
    static const struct {
        int len;
        const char *name;
    } levels[] = {{4, "city"}, {6, "county"}, {9, "town"}, {12, "village"}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if ((size_t)levels[i].len > len || levels[i].len == 12) {
            *level = levels[i].name;
            return levels[i].len;
        }
    return 12; /* not reached: the last level always matches */
}

/* Every known key of a breakdown, zero when the data has none. */
static void zero_fill(json_t *o, const char *const *known)
{
    for (int i = 0; known[i]; i++)
        if (!json_object_get(o, known[i]))
            json_object_set_new(o, known[i], json_pack("{s:i, s:i}", "households", 0, "persons", 0));
}

/* GET /api/v1/stats/regions?region=P: the figures of /stats for each region
 * one level below P (the towns of a county, the villages of a town), plus
 * the cases still in progress there. At most 1000 items (three digits of
 * the code), so the list is not paged. */
void gw_h_stats_regions(gw_req_t *r)
{
    char scope[13], len[4];
    if (!gw_query_scope(r, scope))
        return;
    const char *level;
    snprintf(len, sizeof len, "%d", child_length(strlen(scope), &level));
    const char *p[2] = {scope, len};
    /* One open case per household (hcase_one_open), so cases count
     * households. Persons only for monitored ones, as /stats counts them. */
    PGresult *res = gw_sql(
        r,
        "WITH c AS (SELECT left(c.region_code, $2::int) AS code, c.status, "
        "  coalesce(c.category, '未知') AS category, coalesce(c.grade, '未知') AS grade, "
        "  CASE WHEN c.status = 'monitoring' THEN (SELECT count(*) FROM person p "
        "    WHERE p.household_id = c.household_id) ELSE 0 END AS persons "
        "  FROM hcase c WHERE left(c.region_code, length($1)) = $1 "
        "  AND c.status NOT IN ('eliminated', 'rejected')), "
        "m AS (SELECT * FROM c WHERE status = 'monitoring'), "
        "cat AS (SELECT code, json_object_agg(category, json_build_object('households', n, "
        "  'persons', s)) AS o FROM (SELECT code, category, count(*) AS n, sum(persons) AS s "
        "  FROM m GROUP BY 1, 2) x GROUP BY code), "
        "gr AS (SELECT code, json_object_agg(grade, json_build_object('households', n, "
        "  'persons', s)) AS o FROM (SELECT code, grade, count(*) AS n, sum(persons) AS s "
        "  FROM m GROUP BY 1, 2) x GROUP BY code), "
        "tot AS (SELECT code, count(*) FILTER (WHERE status = 'monitoring') AS households, "
        "  sum(persons) AS persons, count(*) FILTER (WHERE status <> 'monitoring') AS open_cases "
        "  FROM c GROUP BY code) "
        "SELECT json_build_object('region_code', tot.code, "
        "  'region_name', (SELECT n.name FROM region_name n WHERE n.code = tot.code), "
        "  'households', tot.households, "
        "  'persons', tot.persons, 'open_cases', tot.open_cases, "
        "  'by_category', coalesce(cat.o, '{}'), 'by_grade', coalesce(gr.o, '{}'))::text "
        "FROM tot LEFT JOIN cat USING (code) LEFT JOIN gr USING (code) ORDER BY tot.code",
        2, p);
    if (!res)
        return;
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *item = json_loads(PQgetvalue(res, i, 0), 0, NULL);
        if (!item)
            continue;
        zero_fill(json_object_get(item, "by_category"), s_categories);
        zero_fill(json_object_get(item, "by_grade"), s_grades);
        json_array_append_new(items, item);
    }
    PQclear(res);
    gw_reply_json(r, 200, json_pack("{s:s, s:s, s:o}", "region", scope, "level", level, "items",
                                    items));
}

#define TREND_MONTHS_DEFAULT 12
#define TREND_MONTHS_MAX 60

/* GET /api/v1/stats/trend?region=P&months=N: per calendar month (UTC, as
 * the payout report counts them) of the last N, this one included: the
 * cases opened, those approved into monitoring (县级审定, from the
 * timeline) and those closed as rejected. Months without any are zero. */
void gw_h_stats_trend(gw_req_t *r)
{
    const char *months = gw_query(r, "months");
    char n[8];
    snprintf(n, sizeof n, "%d", TREND_MONTHS_DEFAULT);
    if (months) {
        char *end;
        long v = strtol(months, &end, 10);
        if (!*months || *end || v < 1 || v > TREND_MONTHS_MAX) {
            gw_bad_request(r, "months 须为 1..%d 的整数 (months must be 1..%d)", TREND_MONTHS_MAX,
                           TREND_MONTHS_MAX);
            return;
        }
        snprintf(n, sizeof n, "%ld", v);
    }
    char scope[13];
    if (!gw_query_scope(r, scope))
        return;
    const char *p[2] = {scope, n};
    PGresult *res = gw_sql(
        r,
        "WITH mon AS (SELECT to_char(d, 'YYYY-MM') AS month FROM generate_series("
        "  date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => $2::int - 1), "
        "  date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') d), "
        "c AS (SELECT case_id, status, opened_ms, closed_ms FROM hcase "
        "  WHERE left(region_code, length($1)) = $1), "
        "o AS (SELECT to_char(to_timestamp(opened_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM') AS m, "
        "  count(*) AS k FROM c GROUP BY 1), "
        "a AS (SELECT to_char(to_timestamp(t.at_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM') AS m, "
        "  count(DISTINCT t.case_id) AS k FROM timeline t JOIN c ON c.case_id = t.case_id "
        "  WHERE t.action = 'county_approve' AND left(t.county, least(length($1), 6)) = left($1, 6) "
        "  GROUP BY 1), "
        "x AS (SELECT to_char(to_timestamp(closed_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM') AS m, "
        "  count(*) AS k FROM c WHERE status = 'rejected' AND closed_ms IS NOT NULL GROUP BY 1) "
        "SELECT mon.month, coalesce(o.k, 0), coalesce(a.k, 0), coalesce(x.k, 0) FROM mon "
        "LEFT JOIN o ON o.m = mon.month LEFT JOIN a ON a.m = mon.month "
        "LEFT JOIN x ON x.m = mon.month ORDER BY mon.month",
        2, p);
    if (!res)
        return;
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            list, json_pack("{s:s, s:I, s:I, s:I}", "month", PQgetvalue(res, i, 0), "opened",
                            (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10), "approved",
                            (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10), "rejected",
                            (json_int_t)strtoll(PQgetvalue(res, i, 3), NULL, 10)));
    PQclear(res);
    gw_reply_json(r, 200, json_pack("{s:s, s:o}", "region", scope, "months", list));
}
