/* Resolving an identity review: one statement that checks and records the
 * decision, so two people deciding at once cannot both win. */
#define _POSIX_C_SOURCE 200809L
#include "lv_review.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_pg.h"
#include "lv_time.h"

/* $1 review id, $2 region prefix, $3 action, $4 ID number, $5 candidate
 * number, $6 note, $7 actor, $8 role, $9 now. Answers the review's status
 * before (NULL: not found), whether the person qualifies, whether it was
 * updated. */
static const char *const SQL_RESOLVE =
    "WITH r AS (SELECT * FROM identity_review r WHERE r.review_id = $1::bigint AND "
    LV_REVIEW_IN_REGION("2") " FOR UPDATE), "
    "want AS (SELECT coalesce($4::text, (SELECT r.candidates->($5::int - 1)->>'id_number' "
    "  FROM r WHERE $5::int >= 1)) AS id), "
    "p AS (SELECT p.id_number FROM person p JOIN household h USING (household_id), want "
    "  WHERE p.id_number = want.id AND left(h.region_code, length($2)) = $2), "
    "u AS (UPDATE identity_review x SET status = CASE $3 WHEN 'link' THEN 'linked' "
    "  ELSE 'dismissed' END, chosen_id = CASE $3 WHEN 'link' THEN (SELECT id_number FROM p) END, "
    "  note = $6, resolved_by = $7, resolved_role = $8, resolved_ms = $9::bigint "
    "  FROM r WHERE x.review_id = r.review_id AND r.status = 'open' "
    "  AND ($3 = 'dismiss' OR EXISTS (SELECT 1 FROM p)) RETURNING x.review_id) "
    "SELECT (SELECT status FROM r), (SELECT count(*) FROM p), (SELECT count(*) FROM u), "
    "(SELECT coalesce(resolved_by, '') FROM r)";

int lv_review_resolve(PGconn *pg, const lv_review_decision_t *d, char *why, size_t whylen)
{
    bool link = !strcmp(d->action, "link");
    if (!link && strcmp(d->action, "dismiss") != 0) {
        snprintf(why, whylen, "action 须为 link 或 dismiss (action must be link or dismiss)");
        return LV_EINVAL;
    }
    if (link && !d->id_number && d->candidate < 1) {
        snprintf(why, whylen, "关联须给出身份证号或候选编号 (a link needs an ID number or a candidate number)");
        return LV_EINVAL;
    }
    char id[24], cand[16], now[24];
    snprintf(id, sizeof id, "%lld", (long long)d->review_id);
    snprintf(cand, sizeof cand, "%d", d->candidate);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[9] = {id,   d->region_prefix, d->action, link ? d->id_number : NULL,
                        cand, d->note,          d->actor,  d->role,
                        now};
    PGresult *res;
    int e = lv_pg_query(pg, &res, SQL_RESOLVE, 9, p);
    if (e)
        return e;
    bool found = !PQgetisnull(res, 0, 0);
    const char *status = PQgetvalue(res, 0, 0);
    bool person = strcmp(PQgetvalue(res, 0, 1), "0") != 0;
    bool updated = strcmp(PQgetvalue(res, 0, 2), "0") != 0;
    if (!found) {
        e = LV_ENOTFOUND;
        snprintf(why, whylen, "无此复核事项 (no such review in your region)");
    } else if (strcmp(status, "open") != 0) {
        e = LV_ESTATE;
        snprintf(why, whylen, "该复核事项已处理: %s, 由 %s (already resolved: %s by %s)",
                 !strcmp(status, "linked") ? "已关联" : "已驳回", PQgetvalue(res, 0, 3), status,
                 PQgetvalue(res, 0, 3));
    } else if (!updated && link && !person) {
        e = LV_EINVAL;
        snprintf(why, whylen, "户籍底册中 (本辖区) 无此人员 (no registry person with that ID number "
                              "or candidate number in your region)");
    } else if (!updated) {
        e = LV_ESTATE;
        snprintf(why, whylen, "该复核事项已处理 (already resolved)");
    }
    PQclear(res);
    return e;
}
