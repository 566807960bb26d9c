/* The department feeds (SPEC.md Feeds): their columns, how a row becomes a
 * Record, and the typed table each feed's rows are kept in. */
#ifndef ING_FEEDS_H
#define ING_FEEDS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "levee.pb-c.h"
#include "lv_arena.h"
#include "lv_csv.h"

#define ING_MAX_COLS 16

typedef struct ing_feed ing_feed_t;

/* A parsed, valid row: the record plus its dedup key parts. */
typedef struct {
    Levee__Record rec;
    char county[7];
    char rev[17]; /* registry: content hash, else "" */
    int64_t amount_fen;
    const char *raw; /* the row as read, kept in the record table */
    size_t rawlen;
} ing_row_t;

const ing_feed_t *ing_feed_find(const char *source);
const char *ing_feed_source(const ing_feed_t *feed);
const lv_csv_col_t *ing_feed_cols(const ing_feed_t *feed, size_t *ncols);

/* True for a feed keyed by household (visit): its rows' county is the
 * household's, which the caller looks up and writes into each row. */
bool ing_feed_by_household(const ing_feed_t *feed);

/* Validates the current CSV record against the feed. On success fills row
 * (strings allocated in arena) and returns 0; on a bad row returns LV_EINVAL
 * with *column (the English column name) and reason set. */
int ing_feed_parse(const ing_feed_t *feed, const lv_csv_t *csv, const int *map, lv_arena_t *arena,
                   ing_row_t *row, const char **column, char *reason, size_t reasonlen);

/* Inserts the rows into the feed's typed table in one statement (unnest of
 * array parameters), inside the caller's transaction; a record_id already
 * there is left alone. A feed without a typed table (registry, medical:
 * matching keeps those) stores nothing. Returns 0 or an lv_pg error. */
int ing_feed_store(const ing_feed_t *feed, PGconn *pg, ing_row_t *const *rows, size_t n);

#endif
