/* Linking the feeds that ingest keeps in typed tables (civil, disaster,
 * education, income, declaration: by the person's ID number; visit: by the
 * household id) to their households. One statement per batch; a row whose
 * person or household is not in the registry waits in unmatched_record and
 * is linked by mat_link_waiting when the registry brings it. */
#define _POSIX_C_SOURCE 200809L
#include "match.h"

#include <stdio.h>
#include <string.h>

#include "lv_err.h"
#include "lv_pg.h"
#include "lv_time.h"

typedef struct {
    const char *source;
    const char *table;
    bool by_household; /* keyed by household_id (visit), else by id_number */
} link_t;

static const link_t s_links[] = {
    {"civil", "civil_record", false},
    {"disaster", "disaster_record", false},
    {"education", "education_record", false},
    {"income", "income_record", false},
    {"declaration", "declaration_record", false},
    {"visit", "visit_record", true},
};
#define NLINKS (sizeof s_links / sizeof s_links[0])

/* $1 record ids, $2 source, $3 now. The table name comes from s_links. */
static const char *const SQL_BY_PERSON =
    "WITH r AS (SELECT unnest($1::text[]) AS record_id), "
    "l AS (UPDATE %1$s t SET household_id = p.household_id, county = p.county FROM r, person p "
    "  WHERE t.record_id = r.record_id AND p.id_number = t.id_number "
    "  RETURNING t.household_id, t.record_id), "
    "un AS (INSERT INTO unmatched_record (source, record_id, county, id_number, event_ms, reason, "
    "  created_ms) "
    "  SELECT $2, t.record_id, t.county, t.id_number, t.event_ms, "
    "  '户籍底册中无此身份证号 (ID number not in the registry)', $3 "
    "  FROM %1$s t JOIN r USING (record_id) "
    "  WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id_number = t.id_number) "
    "  ON CONFLICT DO NOTHING) "
    "SELECT household_id, record_id FROM l";

static const char *const SQL_BY_HOUSEHOLD =
    "WITH r AS (SELECT unnest($1::text[]) AS record_id), "
    "l AS (UPDATE %1$s t SET county = h.county FROM r, household h "
    "  WHERE t.record_id = r.record_id AND h.household_id = t.household_id "
    "  RETURNING t.household_id, t.record_id), "
    "un AS (INSERT INTO unmatched_record (source, record_id, county, household_id, event_ms, "
    "  reason, created_ms) "
    "  SELECT $2, t.record_id, t.county, t.household_id, t.event_ms, "
    "  '户籍底册中无此户编号 (household_id not in the registry)', $3 "
    "  FROM %1$s t JOIN r USING (record_id) "
    "  WHERE NOT EXISTS (SELECT 1 FROM household h WHERE h.household_id = t.household_id) "
    "  ON CONFLICT DO NOTHING) "
    "SELECT household_id, record_id FROM l";

int mat_link(PGconn *pg, const char *source, const char *record_ids, mat_touched_t *t)
{
    const link_t *l = NULL;
    for (size_t i = 0; i < NLINKS; i++)
        if (!strcmp(s_links[i].source, source))
            l = &s_links[i];
    if (!l)
        return LV_ENOTFOUND;
    char sql[2048], now[24];
    snprintf(sql, sizeof sql, l->by_household ? SQL_BY_HOUSEHOLD : SQL_BY_PERSON, l->table);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[3] = {record_ids, source, now};
    PGresult *res;
    int e = lv_pg_query(pg, &res, sql, 3, p);
    if (e)
        return e;
    mat_touched_add_rows(t, res, source);
    PQclear(res);
    return 0;
}

/* One statement for every table: a CTE per person-keyed table links the rows
 * of the new people; the visits of the new households leave
 * unmatched_record and take their county. $1 ID numbers, $2 household ids. */
static int waiting_sql(lv_buf_t *b)
{
    lv_buf_puts(b, "WITH ids AS (SELECT DISTINCT unnest($1::char(18)[]) AS id)");
    for (size_t i = 0; i < NLINKS; i++) {
        if (s_links[i].by_household)
            continue;
        lv_buf_printf(b,
                      ", l%zu AS (UPDATE %s t SET household_id = p.household_id, county = p.county "
                      "FROM ids, person p WHERE t.household_id IS NULL AND t.id_number = ids.id "
                      "AND p.id_number = ids.id RETURNING t.household_id, t.record_id, '%s'::text "
                      "AS source)",
                      i, s_links[i].table, s_links[i].source);
    }
    for (size_t i = 0; i < NLINKS; i++) {
        if (!s_links[i].by_household)
            continue;
        lv_buf_printf(b,
                      ", c%zu AS (UPDATE %s t SET county = h.county FROM household h "
                      "WHERE t.household_id = ANY($2::text[]) AND h.household_id = t.household_id "
                      "AND t.county <> h.county), "
                      "l%zu AS (DELETE FROM unmatched_record u USING household h "
                      "WHERE u.source = '%s' AND u.household_id = ANY($2::text[]) "
                      "AND h.household_id = u.household_id "
                      "RETURNING u.household_id, u.record_id, u.source)",
                      i, s_links[i].table, i, s_links[i].source);
    }
    for (size_t i = 0; i < NLINKS; i++)
        lv_buf_printf(b, "%s SELECT * FROM l%zu", i ? " UNION ALL" : "", i);
    return b->failed ? LV_ENOMEM : 0;
}

int mat_link_waiting(PGconn *pg, const char *ids, const char *hids, mat_touched_t *t)
{
    lv_buf_t sql;
    lv_buf_init(&sql, 16384);
    int e = waiting_sql(&sql);
    PGresult *res = NULL;
    const char *p[2] = {ids, hids};
    if (!e)
        e = lv_pg_query(pg, &res, lv_buf_str(&sql), 2, p);
    lv_buf_free(&sql);
    if (e)
        return e;
    mat_touched_add_rows(t, res, NULL);
    PQclear(res);
    return 0;
}
