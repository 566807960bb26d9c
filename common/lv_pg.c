#define _POSIX_C_SOURCE 200809L
#include "lv_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-events.h>

#include "lv_err.h"
#include "lv_log.h"
#include "lv_time.h"

/* Server notices go to the structured log, never raw to stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    size_t n = strlen(message);
    lv_warn("postgres: %.*s", (int)(n && message[n - 1] == '\n' ? n - 1 : n), message);
}

/* Per-session settings, again after every reconnect. */
static void session_setup(PGconn *pg)
{
    PQsetNoticeProcessor(pg, on_notice, NULL);
    PGresult *r = PQexec(pg, "SET client_min_messages = warning");
    PQclear(r);
    /* Our statements are short and planned at every call; JIT compiling
     * them cost more than it saved (a fifth of matching's Postgres time in
     * a monthly peak, bench/run-peak under perf). */
    r = PQexec(pg, "SET jit = off");
    PQclear(r);
}

PGconn *lv_pg_connect(const char *conninfo, int wait_ms)
{
    int64_t until = lv_mono_ms() + wait_ms;
    for (;;) {
        PGconn *pg = PQconnectdb(conninfo);
        if (PQstatus(pg) == CONNECTION_OK) {
            session_setup(pg);
            return pg;
        }
        if (lv_mono_ms() >= until) {
            lv_error("postgres connect failed: %s", PQerrorMessage(pg));
            PQfinish(pg);
            return NULL;
        }
        PQfinish(pg);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int lv_pg_ensure(PGconn *pg)
{
    if (PQstatus(pg) == CONNECTION_OK)
        return 0;
    PQreset(pg);
    if (PQstatus(pg) == CONNECTION_OK) {
        session_setup(pg);
        lv_warn("postgres connection re-established");
        return 0;
    }
    return LV_ETRANSIENT;
}

int lv_pg_classify(PGconn *pg, const PGresult *res)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return LV_ETRANSIENT;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return LV_ETRANSIENT;
    /* 40xxx: serialization failure / deadlock; 08xxx: connection; 57P: shutdown;
     * 53xxx: insufficient resources. All worth a retry. */
    if (!strncmp(state, "40", 2) || !strncmp(state, "08", 2) || !strncmp(state, "57P", 3) ||
        !strncmp(state, "53", 2))
        return LV_ETRANSIENT;
    return LV_EINVAL;
}

static int check(PGconn *pg, PGresult *res, const char *sql, ExecStatusType want)
{
    if (res && PQresultStatus(res) == want)
        return 0;
    int e = lv_pg_classify(pg, res);
    char head[64];
    snprintf(head, sizeof head, "%s", sql);
    lv_error("sql failed (%s...): %s", head, res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
    return e;
}

/* ---- prepared statements ------------------------------------------- */

#define PREP_SLOTS 512 /* a power of 2; beyond it statements run unprepared */

typedef struct {
    char *sql;
    uint64_t hash;
} prep_slot_t;

typedef struct {
    prep_slot_t slot[PREP_SLOTS];
} prep_t;

static void prep_clear(prep_t *c)
{
    for (int i = 0; i < PREP_SLOTS; i++) {
        free(c->slot[i].sql);
        c->slot[i].sql = NULL;
    }
}

static int prep_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET || id == PGEVT_CONNDESTROY) {
        PGconn *pg = id == PGEVT_CONNRESET ? ((PGEventConnReset *)info)->conn
                                           : ((PGEventConnDestroy *)info)->conn;
        prep_t *c = PQinstanceData(pg, prep_event);
        if (c) {
            prep_clear(c); /* a new session has none of them */
            if (id == PGEVT_CONNDESTROY)
                free(c);
        }
    }
    return 1;
}

int lv_pg_prepare_statements(PGconn *pg)
{
    if (PQinstanceData(pg, prep_event))
        return 0;
    prep_t *c = calloc(1, sizeof *c);
    if (!c || !PQregisterEventProc(pg, prep_event, "lv_pg_prepare", NULL) ||
        !PQsetInstanceData(pg, prep_event, c)) {
        free(c);
        return LV_ENOMEM;
    }
    return 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Runs sql with its parameters, by name when the connection prepares its
 * statements (preparing it at the first call). */
static PGresult *exec(PGconn *pg, const char *sql, int n, const char *const *params)
{
    prep_t *c = n > 0 ? PQinstanceData(pg, prep_event) : NULL;
    if (!c)
        return PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    uint64_t h = fnv1a(sql);
    for (unsigned k = 0; k < PREP_SLOTS; k++) {
        unsigned i = (unsigned)(h + k) & (PREP_SLOTS - 1);
        prep_slot_t *s = &c->slot[i];
        char name[16];
        snprintf(name, sizeof name, "lv%u", i);
        if (s->sql && s->hash == h && !strcmp(s->sql, sql))
            return PQexecPrepared(pg, name, n, params, NULL, NULL, 0);
        if (s->sql)
            continue;
        PGresult *res = PQprepare(pg, name, sql, n, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
            return res; /* the caller reports it as the statement's error */
        PQclear(res);
        s->sql = strdup(sql);
        s->hash = h;
        if (!s->sql) { /* prepared but not remembered: drop them all, run it plain */
            PQclear(PQexec(pg, "DEALLOCATE ALL"));
            prep_clear(c);
            return PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
        }
        return PQexecPrepared(pg, name, n, params, NULL, NULL, 0);
    }
    return PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
}

int lv_pg_cmd(PGconn *pg, const char *sql, int n, const char *const *params)
{
    int64_t r = lv_pg_cmd_count(pg, sql, n, params);
    return r < 0 ? (int)r : 0;
}

int64_t lv_pg_cmd_count(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *res = exec(pg, sql, n, params);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int e = check(pg, res, sql, st == PGRES_TUPLES_OK ? PGRES_TUPLES_OK : PGRES_COMMAND_OK);
    int64_t count = 0;
    if (!e) {
        const char *t = PQcmdTuples(res);
        count = (t && *t) ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(res);
    return e ? e : count;
}

int lv_pg_query(PGconn *pg, PGresult **out, const char *sql, int n, const char *const *params)
{
    PGresult *res = exec(pg, sql, n, params);
    int e = check(pg, res, sql, PGRES_TUPLES_OK);
    if (e) {
        PQclear(res);
        *out = NULL;
        return e;
    }
    *out = res;
    return 0;
}

int lv_pg_scalar(PGconn *pg, char *out, size_t outlen, const char *sql, int n,
                 const char *const *params)
{
    PGresult *res;
    int e = lv_pg_query(pg, &res, sql, n, params);
    if (e)
        return e;
    if (PQntuples(res) < 1) {
        PQclear(res);
        return LV_ENOTFOUND;
    }
    snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int lv_pg_begin(PGconn *pg)
{
    return lv_pg_cmd(pg, "BEGIN", 0, NULL);
}

int lv_pg_commit(PGconn *pg)
{
    PGresult *res = PQexec(pg, "COMMIT");
    int e = check(pg, res, "COMMIT", PGRES_COMMAND_OK);
    /* COMMIT of an aborted transaction "succeeds" with the tag ROLLBACK. */
    if (!e && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        lv_error("commit turned into %s", PQcmdStatus(res));
        e = LV_ETRANSIENT;
    }
    PQclear(res);
    return e;
}

void lv_pg_rollback(PGconn *pg)
{
    PGresult *res = PQexec(pg, "ROLLBACK");
    PQclear(res);
}
