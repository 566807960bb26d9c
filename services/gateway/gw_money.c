/* Money and figures: funds, payouts, and the statistics of the households
 * currently monitored (三类户占比 and 返贫风险因素). Funds are seen by the fund
 * managers and the offices: the province-wide fund by all of them, a county
 * or village fund by callers whose region it serves or contains. */
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
                  "  a.debits_posted, 'pending_fen', a.debits_pending, 'region_code', f.region)::text, "
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
    gw_page_t pg;
    if (!gw_page_begin(r, "is", GW_LIMIT_DEFAULT, GW_LIMIT_MAX, &pg))
        return;
    const char *p[6] = {r->caller.prefix, household, kind, pg.after[0], pg.after[1],
                        pg.limit_plus_one};
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
    const char *region = gw_query(r, "region");
    if (region && !gw_region_ok(region)) {
        gw_bad_request(r, "region 须为 1..12 位数字的区划代码前缀 (region must be 1..12 digits)");
        return;
    }
    char scope[13];
    if (!gw_scope_region(r, region, scope))
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
