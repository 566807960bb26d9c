/* The identity review queue (identity_review, db/011): what the command line
 * and the gateway share to list it and to resolve an item. Resolving only
 * records the decision; levee-matching then feeds a linked row on as the
 * chosen person's, exactly once. */
#ifndef LV_REVIEW_H
#define LV_REVIEW_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* SQL expressions over identity_review r: the candidates with their ID
 * numbers masked and numbered from 1 (the number a link may name), and the
 * raw ID number masked (first 6 and last 4 kept when longer than 10). */
#define LV_REVIEW_CANDIDATES_MASKED                                                               \
    "(SELECT coalesce(jsonb_agg(x.c || jsonb_build_object('no', x.n, 'id_number', "               \
    "left(x.c->>'id_number', 6) || '********' || right(x.c->>'id_number', 4)) ORDER BY x.n), "     \
    "'[]'::jsonb) FROM jsonb_array_elements(r.candidates) WITH ORDINALITY AS x(c, n))"
#define LV_REVIEW_RAW_ID_MASKED                                                                   \
    "(CASE WHEN length(r.raw_id_number) > 10 THEN left(r.raw_id_number, 6) || "                   \
    "repeat('*', length(r.raw_id_number) - 10) || right(r.raw_id_number, 4) "                     \
    "ELSE repeat('*', length(r.raw_id_number)) END)"

/* The region of a review as a caller sees it: a review whose row named no
 * region (region_code 000000) belongs to the whole province. $N is the
 * caller's region prefix. */
#define LV_REVIEW_IN_REGION(n)                                                                    \
    "(left(r.region_code, length($" n ")) = $" n " OR (r.region_code = '000000' AND "            \
    "length($" n ") <= 2))"

typedef struct {
    int64_t review_id;
    const char *region_prefix; /* the caller's ("" = everywhere) */
    const char *action;        /* "link" or "dismiss" */
    const char *id_number;     /* link: a registry person's ID number, or NULL and ... */
    int candidate;             /* ... the candidate's number (1..), 0 = none */
    const char *note;          /* may be NULL */
    const char *actor;
    const char *role;
} lv_review_decision_t;

/* Records the decision if the review is open and in the caller's region and,
 * for a link, the person is in the registry within that region. Returns 0,
 * LV_ENOTFOUND (no such review in the region), LV_ESTATE (already resolved;
 * why says how), LV_EINVAL (why says what is wrong), or an lv_pg error. */
int lv_review_resolve(PGconn *pg, const lv_review_decision_t *d, char *why, size_t whylen);

#endif
