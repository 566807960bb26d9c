/* Matching: records linked to people and households, the money picture
 * updated, the policy's rules evaluated, alerts raised for dispatch; and the
 * monthly sweep (平台监测分析) over the data already stored. */
#ifndef MAT_MATCH_H
#define MAT_MATCH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "lv_arena.h"
#include "lv_buf.h"
#include "lv_bus.h"
#include "lv_service.h"

typedef struct {
    lv_service_t *svc; /* for the current policy (swapped on SIGHUP) */
    /* Which of the matching workers this is: its name is the producer of
     * its outbox rows; it sweeps and re-judges only the counties it owns
     * (county::int % workers = worker), as ingest routes their records. */
    char name[32];
    int worker, workers;
    /* The batch in hand came on the urgent lane: its alerts take dispatch's. */
    bool urgent;
    /* The lanes are two processes: lock the households judged (picture.c). */
    bool lock_households;
    lv_arena_t *arena;
    /* The sweep timer: looked at every sweep_check_ms (0 = off), sweeping a
     * month once the day sweep_day of the next month has come. */
    int64_t sweep_check_ms;
    int sweep_day;
    int64_t next_sweep_check_ms; /* in memory only: when to look at Postgres again */
    /* Re-judging after a policy switch (rejudge.c): the version every
     * household has been judged by in this process, and where the walk is. */
    char judged_version[64];
    char rejudge_after[128];
    /* Identity matching of rows without a valid ID (identify.c), and when to
     * look again for reviews a person resolved (in memory only: the reviews
     * themselves are in Postgres). */
    struct mat_ident *ident;
    int64_t next_identity_feed_ms;
    int64_t next_identity_rematch_ms;
} mat_t;

/* The consumer handler: a RecordBatch ("records") or a Command ("cmd":
 * sweep), all effects in the consumer's transaction, alerts for dispatch and
 * events for notify in the outbox. */
int mat_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply);

/* The service tick: runs the monthly sweep of counties not yet swept. */
int mat_tick(void *ctx, lv_service_t *svc);

/* One step of re-judging after a policy switch: when the version in effect
 * is not the one households were judged by, the next batch of households
 * judged by another version is evaluated again (alerts as for new data), in
 * one transaction. Returns the ms the tick may sleep (0: more to do). */
int mat_rejudge_step(mat_t *m, lv_service_t *svc);

/* ---- shared by the matching modules --------------------------------------- */

#define MAT_ARR_MAX ((size_t)256 << 20)
#define MAT_MAX_COLS 20

/* Array parameters under construction, one buffer per column. */
typedef struct {
    lv_buf_t b[MAT_MAX_COLS];
    int n;
} mat_cols_t;

void mat_cols_begin(mat_cols_t *c, int n);
/* Closes the arrays and points params[i] at them; false when one overflowed. */
bool mat_cols_end(mat_cols_t *c, const char **params);
void mat_cols_free(mat_cols_t *c);
void mat_arr_str(lv_buf_t *b, const char *s);

/* The households to evaluate, each with the record (and its source) that
 * touched it last: its trigger, its greatest record id (the rows come from
 * UPDATE ... RETURNING, in no promised order, and two runs of the same data
 * must agree). mat_touched_end makes three parallel array literals, one
 * element a household. */
typedef struct {
    struct mat_touch *rows;
    size_t n, cap;
    bool failed;
    lv_buf_t hid, rid, src;
} mat_touched_t;

void mat_touched_init(mat_touched_t *t);
void mat_touched_free(mat_touched_t *t);
void mat_touched_add(mat_touched_t *t, const char *hid, const char *rid, const char *src);
/* Adds every row of res: column 0 the household, 1 the record, 2 the source
 * (or src for all rows when the result has two columns). */
void mat_touched_add_rows(mat_touched_t *t, const PGresult *res, const char *src);
/* Makes the array literals; LV_ENOMEM when out of memory. */
int mat_touched_end(mat_touched_t *t);

/* link.c: the feeds kept in typed tables by ingest (civil ... visit). Links
 * the batch's rows to their households, parks the others in
 * unmatched_record; the households touched are added to t. Returns
 * LV_ENOTFOUND when the source is not one of them. */
int mat_link(PGconn *pg, const char *source, const char *record_ids, mat_touched_t *t);
/* The registry brought these people (ids) and households (hids): rows that
 * waited for them are linked now and their households added to t. */
int mat_link_waiting(PGconn *pg, const char *ids, const char *hids, mat_touched_t *t);

/* picture.c: evaluates the touched households (money picture, rules, risk
 * factors), stores household_state, raises alerts. run_id makes the alert ids
 * (one run, one id). *nalerts (may be NULL) gets the number raised. */
int mat_evaluate(mat_t *m, PGconn *pg, const char *run_id, mat_touched_t *t, int64_t read_ms,
                 int *nalerts, char *err, size_t errlen);

/* rejudge.c: judges a household again after a verification result
 * (task_id) was recorded for it, in the caller's transaction. */
int mat_verified(mat_t *m, PGconn *pg, const char *msg_id, const char *household_id,
                 const char *task_id, lv_reply_t *reply);

/* identify.c: feeds the record of the next review a person resolved with a
 * link through the record path as the chosen person's, exactly once (the
 * feed and the review's fed_ms commit together). Returns the ms the tick may
 * sleep (0: more to do). */
int mat_identify_feed(mat_t *m, lv_service_t *svc);
/* identify.c: matches again a batch of open reviews whose scope the registry
 * changed since; a clear link now resolves the review as levee-matching's,
 * and mat_identify_feed feeds it on. Returns the ms the tick may sleep. */
int mat_identify_rematch(mat_t *m, lv_service_t *svc);

/* sweep.c: the monthly sweep of one county ("" = all) for month y-mo, in the
 * caller's transaction. Writes a summary into detail. */
int mat_sweep(mat_t *m, PGconn *pg, const char *run_id, const char *county, int y, int mo,
              char *detail, size_t n);

#endif
