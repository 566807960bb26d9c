/* A PGresult as an aligned text table or as JSON, so a list command is one
 * SQL query and one call.
 *
 * Values are typed by the column's Postgres type: integers become JSON
 * integers (numeric too, when the name ends in _fen / _ms or is a count),
 * booleans true/false, text[] a JSON array, json/jsonb parsed JSON, NULL null.
 * In text, columns named *_fen show 元, *_ms a date and time, arrays are
 * joined with "、". Columns named id_number and phone are masked in both
 * forms, and free-text columns (detail, body, raw, ...) have ID-like and
 * phone-like digit runs masked. */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CLI_F_AUTO = 0, /* by name and type */
    CLI_F_TEXT,
    CLI_F_YUAN,     /* integer fen shown as 元 */
    CLI_F_DATE,     /* ms shown as YYYY-MM-DD */
    CLI_F_DATETIME, /* ms shown as YYYY-MM-DD HH:MM */
    CLI_F_HIDE,     /* JSON only */
} cli_fmt_t;

/* Per-column overrides, matched by result column name; a list ends with a
 * NULL name. Any field may be left 0/NULL. */
typedef struct {
    const char *name;
    const char *header; /* text header; default from a built-in dictionary, else the name */
    cli_fmt_t fmt;
    int max_width;      /* display columns in text; 0 = 40 */
} cli_col_t;

/* One row as a JSON object; NULL on out of memory. */
json_t *cli_row_json(const PGresult *res, int row);

/* All rows as a JSON array of objects. */
json_t *cli_res_json(const PGresult *res);

/* The rows as an aligned table, each line prefixed by indent spaces, with a
 * "(N 条 rows)" footer; "(无记录 none)" when empty. */
void cli_res_table(FILE *out, const PGresult *res, const cli_col_t *cols, int indent);

/* Either of the two, by the --json flag; the JSON array goes to stdout. */
void cli_res_print(const PGresult *res, const cli_col_t *cols, int json);

/* The text form of one cell (masked, formatted) in a malloc'ed string. */
char *cli_cell_text(const PGresult *res, int row, int col, cli_fmt_t fmt);

/* One CSV field, quoted when it must be (RFC 4180). */
void cli_csv_field(FILE *out, const char *s);

/* The rows as CSV that Excel opens correctly in Chinese: UTF-8 with a BOM,
 * CRLF, a header of the Chinese name and the column name, money in 元 as
 * plain numbers, ID numbers and phones masked as in the table. */
void cli_res_csv(FILE *out, const PGresult *res, const cli_col_t *cols);

/* Prints a JSON document on stdout and frees it. */
void cli_json_out(json_t *doc);

/* Cell access by column name: NULL when the column is missing or SQL NULL. */
const char *cli_get(const PGresult *res, int row, const char *name);
/* An integer cell, dflt when missing, NULL or not an integer. */
int64_t cli_get_i64(const PGresult *res, int row, const char *name, int64_t dflt);

/* Splits a one-dimensional Postgres array literal, calling fn per element
 * (elem NULL for a NULL element). Returns 0, or -1 on a malformed literal. */
int cli_pg_array(const char *lit, void (*fn)(void *ctx, const char *elem), void *ctx);

#endif
