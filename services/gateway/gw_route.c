/* The routes of the API and how a path finds one. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "gw.h"

#define REGION LV_ROLES_REGION
#define INV LV_ROLE_INVESTIGATOR
#define DEPT LV_ROLE_DEPARTMENT
#define FUND LV_ROLE_FUND

/* Roles per route are the first gate; handlers narrow further (which feeds,
 * which steps, whose tasks) and scope every object to the caller's region. */
const gw_route_t gw_routes[] = {
    {"GET", "/healthz", gw_h_healthz, 0, GW_BODY_NONE, NULL},
    {"GET", "/metrics", gw_h_metrics, 0, GW_BODY_NONE, NULL},
    {"POST", "/api/v1/feeds/{source}", gw_h_feed, REGION | DEPT, GW_BODY_SPOOL, gw_h_feed_begin},
    {"GET", "/api/v1/imports/{import_id}", gw_h_import, REGION | DEPT, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/imports/{import_id}/rejects", gw_h_rejects, REGION | DEPT, GW_BODY_NONE, NULL},
    {"POST", "/api/v1/declarations", gw_h_declaration, LV_ROLE_COUNTY | LV_ROLE_TOWN, GW_BODY_JSON,
     NULL},
    {"GET", "/api/v1/households/{household_id}", gw_h_household, REGION | INV, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/cases", gw_h_cases, REGION, GW_BODY_NONE, NULL},
    {"POST", "/api/v1/cases/{case_id}/steps", gw_h_step, LV_ROLE_COUNTY | LV_ROLE_TOWN, GW_BODY_JSON,
     NULL},
    {"GET", "/api/v1/tasks", gw_h_tasks, REGION | INV, GW_BODY_NONE, NULL},
    {"POST", "/api/v1/tasks/{task_id}/result", gw_h_task_result, INV, GW_BODY_JSON, NULL},
    {"GET", "/api/v1/funds", gw_h_funds, REGION | FUND, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/payouts", gw_h_payouts, REGION | FUND, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/stats", gw_h_stats, REGION, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/reconciliation", gw_h_reconciliation, LV_ROLE_PROVINCE | FUND, GW_BODY_NONE,
     NULL},
    {"GET", "/api/v1/stats/regions", gw_h_stats_regions, REGION, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/stats/trend", gw_h_stats_trend, REGION, GW_BODY_NONE, NULL},
    {"GET", "/api/v1/identity-reviews", gw_h_identity_reviews, REGION, GW_BODY_NONE, NULL},
    {"POST", "/api/v1/identity-reviews/{review_id}", gw_h_identity_resolve,
     LV_ROLE_COUNTY | LV_ROLE_TOWN, GW_BODY_JSON, NULL},
    /* The dashboard: files anyone may load; its data needs a token. */
    {"GET", "/", gw_h_web_index, 0, GW_BODY_NONE, NULL},
    {"GET", "/web/*", gw_h_web, 0, GW_BODY_NONE, NULL},
};
const size_t gw_nroutes = sizeof gw_routes / sizeof gw_routes[0];

/* Matches one template against a path, segment by segment. */
static bool match(const char *tpl, const char *path, char params[][GW_PARAM_MAX + 1])
{
    int np = 0;
    while (*tpl && *path) {
        if (*tpl != '/' || *path != '/')
            return false;
        tpl++;
        path++;
        size_t tl = strcspn(tpl, "/"), pl = strcspn(path, "/");
        if (!strcmp(tpl, "*")) {
            size_t rest = strlen(path);
            if (rest == 0 || rest > GW_PARAM_MAX || np >= GW_MAX_PARAMS)
                return false;
            memcpy(params[np], path, rest + 1);
            return true;
        }
        if (tpl[0] == '{') {
            if (pl == 0 || pl > GW_PARAM_MAX || np >= GW_MAX_PARAMS)
                return false;
            memcpy(params[np], path, pl);
            params[np++][pl] = '\0';
        } else if (tl != pl || memcmp(tpl, path, tl) != 0) {
            return false;
        }
        tpl += tl;
        path += pl;
    }
    return !*tpl && !*path;
}

int gw_route_match(const char *method, const char *path, char params[][GW_PARAM_MAX + 1],
                   char *allow, size_t allow_len)
{
    char scratch[GW_MAX_PARAMS][GW_PARAM_MAX + 1];
    size_t used = 0;
    bool path_known = false;
    if (allow_len)
        allow[0] = '\0';
    /* HEAD is answered as GET without the body. */
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < gw_nroutes; i++) {
        if (!match(gw_routes[i].path, path, scratch))
            continue;
        if (!strcmp(gw_routes[i].method, m)) {
            memcpy(params, scratch, sizeof scratch);
            return (int)i;
        }
        path_known = true;
        size_t ml = strlen(gw_routes[i].method);
        if (allow_len && used + ml + 3 < allow_len) {
            if (used) {
                memcpy(allow + used, ", ", 2);
                used += 2;
            }
            memcpy(allow + used, gw_routes[i].method, ml + 1);
            used += ml;
        }
    }
    return path_known ? -2 : -1;
}
