/* The identity review queue over HTTP (身份复核): rows whose ID number was
 * missing or broken and that identity matching could not link on its own.
 *
 * GET lists them in the caller's region (a row that named no region belongs
 * to the province), ID numbers masked for every role: no investigator's task
 * is involved. POST records a decision (link to a registry person of the
 * caller's region, by ID number or candidate number, or dismiss with a
 * note); levee-matching then feeds a linked row on once, as that person's.
 * A review outside the caller's region answers 404, a second decision 409. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_review.h"

static const char *const s_status[] = {"open", "linked", "dismissed", "all", NULL};

#define REVIEW_JSON                                                                               \
    "json_build_object('review_id', r.review_id, 'status', r.status, 'source', r.source, "        \
    "'record_id', r.record_id, 'region_code', r.region_code, 'raw_id_number', "                   \
    LV_REVIEW_RAW_ID_MASKED ", 'name', r.name, 'birth_date', nullif(r.birth_date, ''), "            \
    "'event_at', r.event_ms, 'amount_fen', r.amount_fen, 'reason', r.reason, 'candidates', "      \
    LV_REVIEW_CANDIDATES_MASKED ", 'chosen_id', left(r.chosen_id, 6) || '********' || "             \
    "right(r.chosen_id, 4), 'note', r.note, 'resolved_by', r.resolved_by, 'resolved_at', "         \
    "r.resolved_ms, 'fed', r.fed_ms IS NOT NULL, 'created_at', r.created_ms)"

void gw_h_identity_reviews(gw_req_t *r)
{
    const char *status = gw_query(r, "status");
    if (status && !gw_in_list(status, s_status)) {
        gw_bad_request(r, "status 须为 open linked dismissed all 之一 (unknown status)");
        return;
    }
    char scope[13];
    gw_page_t pg;
    if (!gw_query_scope(r, scope) || !gw_page_begin(r, "i", GW_LIMIT_DEFAULT, GW_LIMIT_MAX, &pg))
        return;
    const char *p[4] = {scope, status ? status : "open", pg.after[0], pg.limit_plus_one};
    gw_list_reply(r,
                  "SELECT " REVIEW_JSON "::text, r.review_id FROM identity_review r "
                  "WHERE " LV_REVIEW_IN_REGION("1") " AND ($2 = 'all' OR r.status = $2) "
                  "AND ($3::bigint IS NULL OR r.review_id > $3::bigint) "
                  "ORDER BY r.review_id LIMIT $4::int",
                  4, p, &pg);
}

/* Reads the decision from the body into d; false after replying 400. */
static bool read_decision(gw_req_t *r, json_t *o, lv_review_decision_t *d, lv_idnum_t *id)
{
    bool bad = false;
    d->action = gw_json_text(r, o, "action", 16, &bad);
    const char *idn = gw_json_text(r, o, "id_number", 64, &bad);
    d->note = gw_json_text(r, o, "note", GW_TEXT_MAX, &bad);
    if (bad)
        return false;
    json_t *cand = json_object_get(o, "candidate");
    const char *why = "";
    if (!d->action || (strcmp(d->action, "link") != 0 && strcmp(d->action, "dismiss") != 0)) {
        gw_bad_request(r, "action 须为 link 或 dismiss (action must be link or dismiss)");
    } else if (!strcmp(d->action, "dismiss") && (!d->note || !*d->note)) {
        gw_bad_request(r, "驳回须说明理由 (dismiss needs a note)");
    } else if (!strcmp(d->action, "dismiss")) {
        return true;
    } else if (cand && (!json_is_integer(cand) || json_integer_value(cand) < 1 ||
                        json_integer_value(cand) > 99)) {
        gw_bad_request(r, "candidate 须为候选编号 1..99 (candidate must be a candidate number)");
    } else if (cand && idn) {
        gw_bad_request(r, "id_number 与 candidate 只能给一个 (give id_number or candidate, not both)");
    } else if (cand) {
        d->candidate = (int)json_integer_value(cand);
        return true;
    } else if (!idn) {
        gw_bad_request(r, "关联须给出 id_number 或 candidate (a link needs id_number or candidate)");
    } else if (lv_idnum_parse(idn, strlen(idn), id, &why)) {
        gw_bad_request(r, "身份证号无效 (bad ID number): %s", why);
    } else {
        d->id_number = id->s;
        return true;
    }
    return false;
}

void gw_h_identity_resolve(gw_req_t *r)
{
    const char *path_id = r->params[0];
    char *end;
    long long review_id = strtoll(path_id, &end, 10);
    if (*end || review_id < 1 || strspn(path_id, "0123456789") != strlen(path_id)) {
        gw_not_found(r);
        return;
    }
    json_t *o = gw_body_object(r);
    if (!o)
        return;
    lv_review_decision_t d = {.review_id = review_id, .region_prefix = r->caller.prefix,
                              .actor = gw_actor(r), .role = lv_token_role_name(r->caller.role)};
    lv_idnum_t id;
    PGconn *pg;
    if (!read_decision(r, o, &d, &id) || !(pg = gw_pg(r))) {
        json_decref(o);
        return;
    }
    char why[512] = "";
    int e = lv_review_resolve(pg, &d, why, sizeof why);
    if (e == LV_ENOTFOUND)
        gw_not_found(r);
    else if (e == LV_ESTATE)
        gw_reply_error(r, 409, "conflict", "%s", why);
    else if (e == LV_EINVAL)
        gw_bad_request(r, "%s", why);
    else if (e)
        gw_db_error(r, e);
    else
        gw_reply_json(r, 200, json_pack("{s:I, s:s}", "review_id", (json_int_t)review_id, "status",
                                        !strcmp(d.action, "link") ? "linked" : "dismissed"));
    json_decref(o);
}
