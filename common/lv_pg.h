/* PostgreSQL helpers over libpq: parameterised statements only, results
 * checked in one place, connection loss reported as LV_ETRANSIENT. */
#ifndef LV_PG_H
#define LV_PG_H

#include <libpq-fe.h>
#include <stdint.h>

/* Connects, retrying for up to wait_ms. NULL on failure (logged). */
PGconn *lv_pg_connect(const char *conninfo, int wait_ms);

/* From now on, statements with parameters run on this connection through
 * lv_pg_cmd/query/scalar are prepared once and then executed by name: a
 * service of many small statements (dispatch, notify) spares Postgres the
 * parse and plan of each. Not for large set-wise statements over array
 * parameters, whose plan should see the arrays. A reset forgets them. */
int lv_pg_prepare_statements(PGconn *pg);

/* Resets a broken connection. Returns 0 when it is usable. */
int lv_pg_ensure(PGconn *pg);

/* Runs a statement that returns no rows. n text params. Returns 0,
 * LV_ETRANSIENT (connection, serialization, deadlock) or LV_EINVAL (anything
 * else, logged with the statement's first words). */
int lv_pg_cmd(PGconn *pg, const char *sql, int n, const char *const *params);

/* Like lv_pg_cmd but returns the number of rows affected (>= 0) or an error. */
int64_t lv_pg_cmd_count(PGconn *pg, const char *sql, int n, const char *const *params);

/* Runs a query; *res is the result on success (caller PQclear's it). */
int lv_pg_query(PGconn *pg, PGresult **res, const char *sql, int n, const char *const *params);

/* One text value of a one-row query, copied into out; LV_ENOTFOUND when no row. */
int lv_pg_scalar(PGconn *pg, char *out, size_t outlen, const char *sql, int n,
                 const char *const *params);

int lv_pg_begin(PGconn *pg);
int lv_pg_commit(PGconn *pg);
void lv_pg_rollback(PGconn *pg);

/* The error class of a failed result: LV_ETRANSIENT or LV_EINVAL. */
int lv_pg_classify(PGconn *pg, const PGresult *res);


#endif
