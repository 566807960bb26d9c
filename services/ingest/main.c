/* levee-ingest: feeds in, validated, deduplicated, persisted with COPY, and
 * sent on to matching in batches. One import at a time per worker; each batch
 * commits its records, its rejects, its outbox message and the import's
 * checkpoint in one transaction, so a killed import resumes exactly. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "feeds.h"
#include "lv_buf.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_redis.h"
#include "lv_service.h"
#include "lv_time.h"

/* Bytes looked at to tell GB18030 from UTF-8 when the import does not say. */
#define DETECT_BYTES (1 << 20)
#define ARR_MAX ((size_t)256 << 20)

typedef struct ing {
    lv_service_t *svc;
    const lv_cfg_t *cfg;
    char name[32]; /* this worker's: "ingest", "ingest-1", ... */
    /* The urgent reader: small imports only (a declaration posted to the
     * API), read between two batches of the main reader's import, or in a
     * process of its own (LEVEE_LANE=urgent). */
    bool urgent;
    struct ing *lane; /* the urgent reader of this process, or NULL */
    /* What this reader writes in import.worker: the worker's number, or
     * -1 - it for an urgent process, whose small imports left running are
     * its own to resume. */
    int claim_worker;
    lv_redis_t *redis;
    lv_arena_t *arena;
    /* the import being read */
    int64_t import_id;
    const ing_feed_t *feed;
    FILE *fp;
    lv_csv_t *csv;
    int map[ING_MAX_COLS];
    int64_t rows_done, batch_no, batch_consumed;
    bool eof;
    bool small;   /* its bytes are within LEVEE_URGENT_BYTES: sent on the urgent lane */
    bool decoded; /* the file is GB18030, read through the decoder */
    /* the batch being built */
    ing_row_t *rows;
    size_t nrows, cap;
    int64_t nrejects;
    lv_buf_t rej_row, rej_col, rej_reason, rej_raw;
    lv_buf_t copy;
} ing_t;

/* ---- small text helpers ---------------------------------------------- */

/* Raw text kept for a reject: invalid bytes become '?', so Postgres takes it. */
static void put_sanitized(lv_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            k = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
            if (i + k > n || !lv_csv_utf8_valid(s + i, k)) {
                lv_buf_put(b, "?", 1);
                i++;
                continue;
            }
        } else if (c == 0) {
            lv_buf_put(b, "?", 1);
            i++;
            continue;
        }
        lv_buf_put(b, s + i, k);
        i += k;
    }
}

/* A COPY text-format field: backslash, tab, newline and CR escaped. */
static void copy_field(lv_buf_t *b, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        lv_buf_put(b, s + start, i - start);
        lv_buf_puts(b, esc);
        start = i + 1;
    }
    lv_buf_put(b, s + start, n - start);
}

static void copy_int(lv_buf_t *b, int64_t v, bool null_if_negative)
{
    if (null_if_negative && v < 0)
        lv_buf_puts(b, "\\N");
    else
        lv_buf_printf(b, "%lld", (long long)v);
}

/* ---- import lifecycle -------------------------------------------------- */

static void close_import(ing_t *g)
{
    lv_csv_destroy(&g->csv);
    if (g->fp)
        fclose(g->fp);
    g->fp = NULL;
    g->import_id = 0;
    g->feed = NULL;
}

static void fail_import(ing_t *g, int64_t import_id, const char *why)
{
    PGconn *pg = lv_service_pg(g->svc);
    char id[24], now[24];
    snprintf(id, sizeof id, "%lld", (long long)import_id);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[3] = {id, why, now};
    lv_pg_cmd(pg, "UPDATE import SET status = 'failed', error = $2, finished_ms = $3 "
                  "WHERE import_id = $1", 3, p);
    lv_warn("import %lld failed: %s", (long long)import_id, why);
    close_import(g);
}

/* The file's encoding: the import's own, or detected from the first bytes
 * and recorded, so a resumed import reads the file the same way. */
static int import_encoding(ing_t *g, int64_t id, const char *given, char out[16])
{
    if (*given) {
        snprintf(out, 16, "%s", given);
        return 0;
    }
    char *buf = malloc(DETECT_BYTES);
    if (!buf)
        return LV_ENOMEM;
    size_t n = fread(buf, 1, DETECT_BYTES, g->fp);
    bool complete = n < DETECT_BYTES && feof(g->fp);
    snprintf(out, 16, "%s", lv_csv_detect_encoding(buf, n, complete));
    free(buf);
    if (ferror(g->fp) || fseek(g->fp, 0, SEEK_SET) != 0)
        return LV_EIO;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[2] = {ids, out};
    return lv_pg_cmd(lv_service_pg(g->svc), "UPDATE import SET encoding = $2 WHERE import_id = $1",
                     2, p);
}

/* Claims the oldest queued import, or resumes one this worker left running. */
static int claim(ing_t *g)
{
    PGconn *pg = lv_service_pg(g->svc);
    char now[24], worker[16], workers[16], small[24], orphans[16];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    snprintf(worker, sizeof worker, "%d", g->claim_worker);
    snprintf(workers, sizeof workers, "%d", g->cfg->ingest_workers);
    /* The urgent reader takes small imports only (-1: any). */
    snprintf(small, sizeof small, "%lld", g->urgent ? g->cfg->urgent_bytes : -1LL);
    /* Imports an urgent process left running (worker < 0) are resumed by
     * the main reader only when no urgent process runs (lanes in one). */
    snprintf(orphans, sizeof orphans, "%d", g->cfg->lane == LV_LANE_BOTH ? 0 : -64);
    const char *p[5] = {now, worker, workers, small, orphans};
    PGresult *res;
    /* A running import is this reader's own, left by a crash, or one of a
     * worker that no longer exists (fewer workers now): never another
     * live worker's. */
    int e = lv_pg_query(pg, &res,
                        "UPDATE import SET status = 'running', started_ms = coalesce(started_ms, $1), "
                        "worker = $2::int "
                        "WHERE import_id = (SELECT import_id FROM import WHERE $4::bigint < 0 "
                        "AND (status = 'queued' OR (status = 'running' AND "
                        "(coalesce(worker, 0) = $2::int OR coalesce(worker, 0) >= $3::int "
                        "OR coalesce(worker, 0) < $5::int))) "
                        "OR bytes_total <= $4::bigint AND (status = 'queued' "
                        "OR status = 'running' AND worker = $2::int) "
                        "ORDER BY import_id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                        "RETURNING import_id, source, path, rows_done, batches, coalesce(encoding, ''), "
                        "bytes_total",
                        5, p);
    if (e)
        return e;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return LV_ENOTFOUND;
    }
    int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char source[32], path[1024], given[16], encoding[16];
    snprintf(source, sizeof source, "%s", PQgetvalue(res, 0, 1));
    snprintf(path, sizeof path, "%s", PQgetvalue(res, 0, 2));
    snprintf(given, sizeof given, "%s", PQgetvalue(res, 0, 5));
    g->rows_done = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    g->batch_no = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    g->small = !PQgetisnull(res, 0, 6) &&
               strtoll(PQgetvalue(res, 0, 6), NULL, 10) <= g->cfg->urgent_bytes;
    PQclear(res);
    g->import_id = id;
    g->eof = false;
    g->feed = ing_feed_find(source);
    if (!g->feed) {
        fail_import(g, id, "未知的数据源 (unknown feed source)");
        return 0;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !(g->fp = fopen(path, "rb"))) {
        char why[256];
        snprintf(why, sizeof why, "无法打开文件 (cannot open file): %s", strerror(errno));
        fail_import(g, id, why);
        return 0;
    }
    if (st.st_size > g->cfg->max_file_bytes) {
        char why[256];
        snprintf(why, sizeof why,
                 "文件超过大小上限 (file of %lld bytes over LEVEE_MAX_FILE_BYTES = %lld)",
                 (long long)st.st_size, (long long)g->cfg->max_file_bytes);
        fail_import(g, id, why);
        return 0;
    }
    e = import_encoding(g, id, given, encoding);
    if (e == LV_EIO) {
        fail_import(g, id, "读取文件出错 (read error)");
        return 0;
    }
    if (e) {
        close_import(g); /* still 'running': claimed again on a later turn */
        return e;
    }
    lv_csv_limits_t lim = {g->cfg->max_record_bytes, g->cfg->max_fields};
    g->csv = lv_csv_new(g->fp, &lim);
    g->decoded = !strcmp(encoding, "gb18030");
    if (g->csv && g->decoded && lv_csv_set_encoding(g->csv, "GB18030")) {
        fail_import(g, id, "无法解码 GB18030 (GB18030 decoder unavailable)");
        return 0;
    }
    char err[256];
    size_t ncols;
    const lv_csv_col_t *cols = ing_feed_cols(g->feed, &ncols);
    if (!g->csv || lv_csv_read_header(g->csv, cols, ncols, g->map, err, sizeof err)) {
        fail_import(g, id, g->csv ? err : "out of memory");
        return 0;
    }
    /* Resume: the rows before the checkpoint were committed by an earlier run. */
    for (int64_t i = 0; i < g->rows_done; i++) {
        int r = lv_csv_next(g->csv);
        if (r == LV_CSV_EOF) {
            g->eof = true;
            break;
        }
        if (r == LV_EIO) {
            fail_import(g, id, "读取文件出错 (read error)");
            return 0;
        }
    }
    lv_info("import %lld (%s, %s) started at row %lld", (long long)id, source, encoding,
            (long long)g->rows_done);
    return 0;
}

/* ---- one batch --------------------------------------------------------- */

static void add_reject(ing_t *g, int64_t row, const char *column, const char *reason,
                       const char *raw, size_t rawlen)
{
    lv_arr_int(&g->rej_row, row);
    lv_arr_text(&g->rej_col, column, strlen(column));
    lv_arr_text(&g->rej_reason, reason, strlen(reason));
    lv_buf_t tmp;
    lv_buf_init(&tmp, g->cfg->max_record_bytes * 2 + 16);
    put_sanitized(&tmp, raw, rawlen);
    lv_arr_text(&g->rej_raw, lv_buf_str(&tmp), tmp.len);
    lv_buf_free(&tmp);
    g->nrejects++;
}

static int read_batch(ing_t *g)
{
    lv_arena_reset(g->arena);
    g->nrows = 0;
    g->nrejects = 0;
    lv_buf_t *bufs[4] = {&g->rej_row, &g->rej_col, &g->rej_reason, &g->rej_raw};
    for (int i = 0; i < 4; i++) {
        lv_buf_reset(bufs[i]);
        lv_arr_begin(bufs[i]);
    }
    int64_t consumed = 0;
    while (g->nrows + (size_t)g->nrejects < g->cfg->batch_rows) {
        int r = lv_csv_next(g->csv);
        if (r == LV_CSV_EOF) {
            g->eof = true;
            break;
        }
        if (r == LV_EIO)
            return LV_EIO;
        consumed++;
        size_t rawlen;
        const char *raw = lv_csv_raw(g->csv, &rawlen);
        if (r == LV_ELIMIT) {
            /* The raw text is kept up to the record limit. */
            bool long_row = rawlen >= g->cfg->max_record_bytes;
            add_reject(g, lv_csv_row(g->csv), "(row)",
                       long_row ? "记录超过长度上限 (record over LEVEE_MAX_RECORD_BYTES)"
                                : "字段数超过上限 (more fields than LEVEE_MAX_FIELDS)",
                       raw, rawlen);
            continue;
        }
        if (r == LV_EINVAL) {
            add_reject(g, lv_csv_row(g->csv), "(row)", "引号未闭合 (unterminated quote)", raw,
                       rawlen);
            g->eof = true;
            break;
        }
        if (!lv_csv_utf8_valid(raw, rawlen)) {
            add_reject(g, lv_csv_row(g->csv), "(row)",
                       g->decoded ? "不是有效的 GB18030 编码 (not valid GB18030)"
                                  : "不是有效的 UTF-8 编码 (not valid UTF-8; GB18030 files: "
                                    "encoding=gb18030)",
                       raw, rawlen);
            continue;
        }
        if (g->nrows == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 1024;
            ing_row_t *rows = realloc(g->rows, cap * sizeof *rows);
            if (!rows)
                return LV_ENOMEM;
            g->rows = rows;
            g->cap = cap;
        }
        ing_row_t *row = &g->rows[g->nrows];
        const char *column = "";
        char reason[256];
        int e = ing_feed_parse(g->feed, g->csv, g->map, g->arena, row, &column, reason, sizeof reason);
        if (e == LV_ENOMEM)
            return e;
        if (e) {
            add_reject(g, lv_csv_row(g->csv), column, reason, raw, rawlen);
            continue;
        }
        /* The raw line is kept in the record table. */
        char *copy = lv_arena_alloc(g->arena, rawlen + 1);
        if (!copy)
            return LV_ENOMEM;
        memcpy(copy, raw, rawlen);
        copy[rawlen] = '\0';
        row->raw = copy;
        row->rawlen = rawlen;
        /* For the read-to-alert latency that matching stores with an alert. */
        row->rec.read_ms = lv_now_ms();
        g->nrows++;
    }
    g->batch_consumed = consumed;
    for (int i = 0; i < 4; i++)
        lv_arr_end(bufs[i]);
    return 0;
}

static int copy_rows(ing_t *g, PGconn *pg)
{
    PGresult *res = PQexec(pg, "COPY stage_record (source, record_id, rev, county, id_number, "
                               "event_ms, amount_fen, import_id, row_no, raw) FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        int e = lv_pg_classify(pg, res);
        lv_error("COPY failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return e;
    }
    PQclear(res);
    lv_buf_t *b = &g->copy;
    for (size_t i = 0; i < g->nrows; i++) {
        ing_row_t *r = &g->rows[i];
        copy_field(b, r->rec.source, strlen(r->rec.source));
        lv_buf_put(b, "\t", 1);
        copy_field(b, r->rec.record_id, strlen(r->rec.record_id));
        lv_buf_put(b, "\t", 1);
        lv_buf_puts(b, r->rev);
        lv_buf_put(b, "\t", 1);
        lv_buf_puts(b, r->county);
        lv_buf_put(b, "\t", 1);
        lv_buf_puts(b, r->rec.id_number);
        lv_buf_put(b, "\t", 1);
        copy_int(b, r->rec.event_ms, true);
        lv_buf_put(b, "\t", 1);
        copy_int(b, r->amount_fen, true);
        lv_buf_printf(b, "\t%lld\t%lld\t", (long long)g->import_id, (long long)r->rec.row_no);
        copy_field(b, r->raw, r->rawlen);
        lv_buf_put(b, "\n", 1);
        /* Flush in chunks so the buffer stays bounded. */
        if (b->len > (1u << 20) || i + 1 == g->nrows) {
            if (b->failed || PQputCopyData(pg, b->s, (int)b->len) != 1) {
                PQputCopyEnd(pg, "ingest buffer failure");
                lv_buf_reset(b);
                return LV_ETRANSIENT;
            }
            lv_buf_reset(b);
        }
    }
    if (PQputCopyEnd(pg, NULL) != 1)
        return LV_ETRANSIENT;
    res = PQgetResult(pg);
    int e = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : lv_pg_classify(pg, res);
    if (e)
        lv_error("COPY failed: %s", PQresultErrorMessage(res));
    PQclear(res);
    while ((res = PQgetResult(pg)))
        PQclear(res);
    return e;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool contains(const int64_t *sorted, size_t n, int64_t v)
{
    return bsearch(&v, sorted, n, sizeof v, cmp_i64) != NULL;
}

static void dedup_key(const ing_row_t *r, char *out, size_t n)
{
    /* The county is a hash tag so Redis Cluster keeps a county on one shard. */
    snprintf(out, n, "lv:dd:{%s}:%s:%s:%s", r->county, r->rec.source, r->rec.record_id, r->rev);
}

/* The county of each row's household, looked up in one query per batch:
 * by household id (a visit) or by the person's ID number; a row whose key
 * the registry does not know keeps what out[] held. */
static int lookup_counties(ing_t *g, PGconn *pg, bool by_household, char (*out)[8])
{
    lv_buf_t ids;
    lv_buf_init(&ids, ARR_MAX);
    lv_arr_begin(&ids);
    for (size_t i = 0; i < g->nrows; i++) {
        const char *k = by_household ? g->rows[i].rec.household_id : g->rows[i].rec.id_number;
        lv_arr_text(&ids, k, strlen(k));
    }
    lv_arr_end(&ids);
    if (ids.failed) {
        lv_buf_free(&ids);
        return LV_ENOMEM;
    }
    const char *p[1] = {lv_buf_str(&ids)};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        by_household
                            ? "SELECT x.ord, h.county FROM unnest($1::text[]) WITH ORDINALITY "
                              "AS x(hid, ord) JOIN household h ON h.household_id = x.hid"
                            : "SELECT x.ord, p.county FROM unnest($1::char(18)[]) WITH ORDINALITY "
                              "AS x(id, ord) JOIN person p ON p.id_number = x.id",
                        1, p);
    lv_buf_free(&ids);
    if (e)
        return e;
    for (int i = 0; i < PQntuples(res); i++) {
        long long ord = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (ord >= 1 && (size_t)ord <= g->nrows)
            snprintf(out[ord - 1], sizeof out[ord - 1], "%s", PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return 0;
}

/* A visit names a household, not a person: its county is the household's
 * when the registry knows it, else it stays 000000. */
static int household_counties(ing_t *g, PGconn *pg)
{
    char(*found)[8] = calloc(g->nrows ? g->nrows : 1, sizeof *found);
    if (!found)
        return LV_ENOMEM;
    for (size_t i = 0; i < g->nrows; i++)
        snprintf(found[i], sizeof found[i], "%s", g->rows[i].county);
    int e = lookup_counties(g, pg, true, found);
    for (size_t i = 0; !e && i < g->nrows; i++)
        snprintf(g->rows[i].county, sizeof g->rows[i].county, "%s", found[i]);
    free(found);
    return e;
}

/* With several matching workers, a record goes to the worker that owns the
 * county of its household: for a person's record that is the county of the
 * household the registry puts the person in, which the region of the ID
 * number (the place of birth) need not be. A person not in the registry
 * keeps the ID number's county. */
static int route_counties(ing_t *g, PGconn *pg, char (*route)[8])
{
    for (size_t i = 0; i < g->nrows; i++)
        snprintf(route[i], sizeof route[i], "%s", g->rows[i].county);
    if (g->cfg->matching_workers < 2 || ing_feed_by_household(g->feed) ||
        !strcmp(ing_feed_source(g->feed), "registry") || !g->nrows)
        return 0;
    return lookup_counties(g, pg, false, route);
}

/* The stored records as one RecordBatch per matching worker that owns any
 * of their counties, in the outbox. With one worker the batch id is
 * ing:IMPORT:BATCH as it always was. */
static int put_batches(ing_t *g, PGconn *pg, Levee__Record **out, ing_row_t **stored,
                       size_t nout, char (*route)[8])
{
    int workers = g->cfg->matching_workers;
    Levee__Record **mine = calloc(nout ? nout : 1, sizeof *mine);
    if (!mine)
        return LV_ENOMEM;
    int e = 0;
    for (int k = 0; k < workers && !e; k++) {
        size_t n = 0;
        for (size_t i = 0; i < nout; i++)
            if (lv_cfg_county_worker(g->cfg, route[stored[i] - g->rows]) == k)
                mine[n++] = out[i];
        if (!n)
            continue;
        Levee__RecordBatch batch = LEVEE__RECORD_BATCH__INIT;
        char msg_id[96], dest[32];
        if (workers > 1)
            snprintf(msg_id, sizeof msg_id, "ing:%lld:%lld:%d", (long long)g->import_id,
                     (long long)g->batch_no + 1, k);
        else
            snprintf(msg_id, sizeof msg_id, "ing:%lld:%lld", (long long)g->import_id,
                     (long long)g->batch_no + 1);
        lv_cfg_worker_name("matching", k, dest, sizeof dest);
        if (g->small)
            strncat(dest, LV_URGENT_SUFFIX, sizeof dest - strlen(dest) - 1);
        batch.urgent = g->small;
        batch.batch_id = msg_id;
        batch.import_id = g->import_id;
        batch.source = (char *)ing_feed_source(g->feed);
        batch.n_records = n;
        batch.records = mine;
        e = lv_outbox_put(pg, g->name, dest, msg_id, "records", &batch.base);
    }
    free(mine);
    return e;
}

static int commit_batch(ing_t *g)
{
    PGconn *pg = lv_service_pg(g->svc);
    size_t n = g->nrows;
    int e = 0;
    char **keys = calloc(n ? n : 1, sizeof *keys);
    bool *seen = calloc(n ? n : 1, sizeof *seen);
    int64_t *inserted = calloc(n ? n : 1, sizeof *inserted);
    Levee__Record **out = calloc(n ? n : 1, sizeof *out);
    ing_row_t **stored = calloc(n ? n : 1, sizeof *stored);
    char(*route)[8] = calloc(n ? n : 1, sizeof *route);
    if (!keys || !seen || !inserted || !out || !stored || !route) {
        e = LV_ENOMEM;
        goto done;
    }
    if (n && ing_feed_by_household(g->feed) &&
        (lv_pg_ensure(pg) || (e = household_counties(g, pg)))) {
        if (!e)
            e = LV_ETRANSIENT;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = lv_arena_alloc(g->arena, 320);
        if (!keys[i]) {
            e = LV_ENOMEM;
            goto done;
        }
        dedup_key(&g->rows[i], keys[i], 320);
    }
    /* Fast path: a key in Redis was marked after its commit, so it is surely
     * a duplicate. A key missing from Redis proves nothing: Postgres decides. */
    lv_redis_seen(g->redis, (const char *const *)keys, n, seen);
    size_t kept = 0, redis_dups = 0;
    for (size_t i = 0; i < n; i++) {
        if (seen[i]) {
            redis_dups++;
            continue;
        }
        g->rows[kept] = g->rows[i];
        keys[kept] = keys[i];
        kept++;
    }
    g->nrows = kept;

    if (lv_pg_ensure(pg)) {
        e = LV_ETRANSIENT; /* never report a batch committed that was not */
        goto done;
    }
    if ((e = route_counties(g, pg, route)))
        goto done;
    if ((e = lv_pg_begin(pg)))
        goto fail;
    if ((e = lv_pg_cmd(pg, "CREATE TEMP TABLE IF NOT EXISTS stage_record (LIKE record) "
                           "ON COMMIT DELETE ROWS", 0, NULL)))
        goto fail;
    size_t ninserted = 0;
    if (kept) {
        if ((e = copy_rows(g, pg)))
            goto fail;
        PGresult *res;
        if ((e = lv_pg_query(pg, &res, "INSERT INTO record SELECT * FROM stage_record "
                                       "ON CONFLICT DO NOTHING RETURNING row_no", 0, NULL)))
            goto fail;
        for (int i = 0; i < PQntuples(res); i++)
            inserted[ninserted++] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        PQclear(res);
        qsort(inserted, ninserted, sizeof *inserted, cmp_i64);
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)g->import_id);
    if (g->nrejects) {
        const char *p[5] = {id, lv_buf_str(&g->rej_row), lv_buf_str(&g->rej_col),
                            lv_buf_str(&g->rej_reason), lv_buf_str(&g->rej_raw)};
        if (g->rej_raw.failed || g->rej_reason.failed) {
            e = LV_ENOMEM;
            goto fail;
        }
        if ((e = lv_pg_cmd(pg, "INSERT INTO import_reject (import_id, row_no, column_name, reason, raw) "
                               "SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) "
                               "ON CONFLICT DO NOTHING", 5, p)))
            goto fail;
    }
    size_t nout = 0;
    for (size_t i = 0; i < kept; i++) {
        if (contains(inserted, ninserted, g->rows[i].rec.row_no)) {
            stored[nout] = &g->rows[i];
            out[nout++] = &g->rows[i].rec;
        }
    }
    /* The typed rows of exactly the records just inserted, so a record_id
     * seen twice in a batch keeps the same row in both tables. */
    if ((e = ing_feed_store(g->feed, pg, stored, nout)))
        goto fail;
    if ((e = put_batches(g, pg, out, stored, nout, route)))
        goto fail;
    char done[24], acc[24], dup[24], rej[24], now[24], bytes[24];
    snprintf(done, sizeof done, "%lld", (long long)g->batch_consumed);
    snprintf(acc, sizeof acc, "%zu", ninserted);
    snprintf(dup, sizeof dup, "%zu", redis_dups + kept - ninserted);
    snprintf(rej, sizeof rej, "%lld", (long long)g->nrejects);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    snprintf(bytes, sizeof bytes, "%lld", (long long)lv_csv_bytes(g->csv));
    const char *p[8] = {id, done, acc, dup, rej, g->eof ? "done" : "running", now, bytes};
    if ((e = lv_pg_cmd(pg, "UPDATE import SET rows_done = rows_done + $2, accepted = accepted + $3, "
                           "duplicates = duplicates + $4, rejected = rejected + $5, "
                           "batches = batches + 1, status = $6, bytes_done = $8, "
                           "finished_ms = CASE WHEN $6 = 'done' THEN $7::bigint END "
                           "WHERE import_id = $1", 8, p)))
        goto fail;
    if ((e = lv_pg_commit(pg)))
        goto done;
    g->rows_done += g->batch_consumed;
    g->batch_no++;
    /* Only now, after the commit, may Redis say these keys exist. */
    lv_redis_mark(g->redis, (const char *const *)keys, kept, g->cfg->dedup_ttl_s);
    if (nout)
        lv_relay_kick(lv_service_relay(g->svc));
    goto done;
fail:
    lv_pg_rollback(pg);
done:
    free(keys);
    free(seen);
    free(inserted);
    free(out);
    free(stored);
    free(route);
    return e;
}

/* ---- the loop ---------------------------------------------------------- */

/* One batch of the reader's import, which it claims first when it has
 * none. Returns the loop's wait in ms (0: more to do), or -1 when there was
 * nothing to claim. */
static int step(ing_t *g)
{
    if (!g->import_id) {
        int e = claim(g);
        if (e == LV_ENOTFOUND)
            return -1;
        if (e)
            return 1000;
        if (!g->import_id)
            return 0;
    }
    int64_t rows_before = g->rows_done;
    int e = read_batch(g);
    if (e) {
        fail_import(g, g->import_id, e == LV_EIO ? "读取文件出错 (read error)" : "内存不足 (out of memory)");
        return 0;
    }
    e = commit_batch(g);
    if (e) {
        /* Nothing of the batch was kept: reopen the import from its checkpoint. */
        lv_warn("batch of import %lld not committed (%s); resuming from row %lld",
                (long long)g->import_id, lv_strerror(e), (long long)rows_before);
        close_import(g);
        return 1000;
    }
    if (g->eof) {
        lv_info("import %lld done: %lld rows", (long long)g->import_id, (long long)g->rows_done);
        close_import(g);
    }
    return 0;
}

/* A small import (a declaration posted to the HTTP API) is read first,
 * between two batches of a big one, so it never waits for a peak. */
static int tick(void *ctx, lv_service_t *svc)
{
    ing_t *g = ctx;
    (void)svc;
    if (g->lane && step(g->lane) == 0)
        return 0;
    int wait = step(g);
    return wait < 0 ? 200 : wait;
}

/* A reader's own buffers; the service's pieces are shared. */
static int reader_init(ing_t *g, lv_service_t *svc, lv_redis_t *redis, const char *name,
                       bool urgent)
{
    g->svc = svc;
    g->cfg = lv_service_cfg(svc);
    g->redis = redis;
    g->urgent = urgent;
    g->claim_worker = g->cfg->lane == LV_LANE_URGENT ? -1 - g->cfg->worker : g->cfg->worker;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->arena = lv_arena_new((size_t)4 << 20);
    size_t cap = g->cfg->batch_rows * (g->cfg->max_record_bytes * 2 + 64) + 4096;
    lv_buf_init(&g->rej_row, cap);
    lv_buf_init(&g->rej_col, cap);
    lv_buf_init(&g->rej_reason, cap);
    lv_buf_init(&g->rej_raw, cap);
    lv_buf_init(&g->copy, (size_t)64 << 20);
    return g->arena ? 0 : LV_ENOMEM;
}

static void reader_free(ing_t *g)
{
    close_import(g);
    lv_buf_free(&g->rej_row);
    lv_buf_free(&g->rej_col);
    lv_buf_free(&g->rej_reason);
    lv_buf_free(&g->rej_raw);
    lv_buf_free(&g->copy);
    free(g->rows);
    lv_arena_destroy(&g->arena);
}

/* Two destinations per matching worker: its normal and its urgent lane. */
static int add_matching_dests(lv_service_t *svc, const lv_cfg_t *cfg)
{
    for (int k = 0; k < cfg->matching_workers; k++) {
        char name[32], urgent[48], endpoint[600], urgent_ep[600];
        lv_cfg_worker_name("matching", k, name, sizeof name);
        snprintf(urgent, sizeof urgent, "%s%s", name, LV_URGENT_SUFFIX);
        lv_cfg_matching_endpoint(cfg, k, endpoint, sizeof endpoint);
        lv_cfg_urgent_endpoint(endpoint, urgent_ep, sizeof urgent_ep);
        if (lv_service_add_dest(svc, name, endpoint) || lv_service_add_dest(svc, urgent, urgent_ep))
            return -1;
    }
    return 0;
}

int main(void)
{
    ing_t g, lane;
    memset(&g, 0, sizeof g);
    memset(&lane, 0, sizeof lane);
    lv_cfg_t cfg;
    char name[32];
    if (lv_cfg_load(&cfg))
        return 1;
    if (cfg.worker >= cfg.ingest_workers) {
        fprintf(stderr, "配置错误 (bad config): LEVEE_WORKER=%d, expected 0..%d (LEVEE_INGEST_WORKERS)\n",
                cfg.worker, cfg.ingest_workers - 1);
        return 1;
    }
    lv_cfg_process_name(&cfg, "ingest", name, sizeof name);
    lv_service_opts_t opts = {.name = name, .tick = tick, .ctx = &g, .listen = "levee_import"};
    lv_service_t *svc = lv_service_new(&opts);
    if (!svc)
        return 1;
    lv_redis_t *redis = lv_redis_new(cfg.redis_host, cfg.redis_port);
    /* One reader per lane this process serves. */
    if (cfg.lane == LV_LANE_BOTH)
        g.lane = &lane;
    if (!redis || reader_init(&g, svc, redis, name, cfg.lane == LV_LANE_URGENT) ||
        (g.lane && reader_init(g.lane, svc, redis, name, true)) || add_matching_dests(svc, &cfg))
        return 1;
    int rc = lv_service_run(svc);
    reader_free(&g);
    if (g.lane)
        reader_free(g.lane);
    lv_redis_destroy(&redis);
    lv_service_destroy(&svc);
    return rc;
}
