/* The department feeds: their columns and how a row becomes a Record. */
#ifndef ING_FEEDS_H
#define ING_FEEDS_H

#include <stddef.h>
#include <stdint.h>

#include "levee.pb-c.h"
#include "lv_arena.h"
#include "lv_csv.h"

#define ING_MAX_COLS 16

typedef struct {
    const char *source;
    const lv_csv_col_t *cols;
    size_t ncols;
} ing_feed_t;

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

/* Validates the current CSV record against the feed. On success fills row
 * (strings allocated in arena) and returns 0; on a bad row returns LV_EINVAL
 * with *column (the English column name) and reason set. */
int ing_feed_parse(const ing_feed_t *feed, const lv_csv_t *csv, const int *map, lv_arena_t *arena,
                   ing_row_t *row, const char **column, char *reason, size_t reasonlen);

#endif
