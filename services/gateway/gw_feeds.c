/* Feeds through the API: a posted CSV is spooled under the stack's home and
 * queued as an import exactly as `levee load` queues a file; imports, their
 * rejected rows, and one declaration at a time (a one-row declaration feed).
 *
 * Who may post what: province, city and county offices any feed; towns the
 * declarations and visits they collect; departments their own feeds
 * (medical, civil, disaster, education, income). A posted file may only
 * touch the caller's region: rows naming a region code, a household or a
 * registered person outside it refuse the whole upload (403, with the first
 * rows named), before anything is queued. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gw.h"
#include "lv_csv.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_time.h"

#define REJECTS_LIMIT_DEFAULT 1000
#define REJECTS_LIMIT_MAX 10000
#define REJECTS_MAX_BYTES (16 << 20) /* one page of rejects as CSV */
#define SCOPE_SHOW_ROWS 10           /* out-of-region rows named in a 403 */
#define SCOPE_COPY_CHUNK (256 << 10)
#define DECLARATION_POLL_MS 100

static const char *const s_sources[] = {
    "registry", "medical", "civil", "disaster", "education", "income", "declaration", "visit", NULL,
};
static const char *const s_department_feeds[] = {
    "medical", "civil", "disaster", "education", "income", NULL,
};
static const char *const s_town_feeds[] = {"declaration", "visit", NULL};

static bool may_post(lv_role_t role, const char *source)
{
    if (role & (LV_ROLE_PROVINCE | LV_ROLE_CITY | LV_ROLE_COUNTY))
        return true;
    if (role == LV_ROLE_TOWN)
        return gw_in_list(source, s_town_feeds);
    if (role == LV_ROLE_DEPARTMENT)
        return gw_in_list(source, s_department_feeds);
    return false;
}

/* One CSV field, always quoted (RFC 4180): for the files the gateway writes
 * and for COPY ... (FORMAT csv). */
static void csv_put(lv_buf_t *b, const char *s, bool last)
{
    lv_buf_put(b, "\"", 1);
    for (const char *q; (q = strchr(s, '"')); s = q + 1) {
        lv_buf_put(b, s, (size_t)(q - s));
        lv_buf_put(b, "\"\"", 2);
    }
    lv_buf_puts(b, s);
    lv_buf_puts(b, last ? "\"\r\n" : "\",");
}

int gw_queue_import(gw_req_t *r, const char *source, const char *path, long long bytes,
                    char import_id[24])
{
    PGconn *pg = gw_pg(r);
    if (!pg)
        return LV_ETRANSIENT;
    char now[24], size[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    snprintf(size, sizeof size, "%lld", bytes);
    const char *p[6] = {source, path, now, size, r->caller.prefix, r->caller.token_id};
    int e = lv_pg_scalar(pg, import_id, 24,
                         "INSERT INTO import (source, path, status, created_ms, bytes_total, "
                         "region_prefix, token_id) VALUES ($1, $2, 'queued', $3, $4, $5, $6) "
                         "RETURNING import_id",
                         6, p);
    if (e)
        return e;
    /* A wake-up hint only: ingest also scans for queued imports. */
    const char *pn[1] = {import_id};
    lv_pg_cmd(pg, "SELECT pg_notify('levee_import', $1)", 1, pn);
    return 0;
}

/* ---- the region of a posted file ----------------------------------------- */

typedef enum { KEY_REGION = 1, KEY_HOUSEHOLD = 2, KEY_PERSON = 4 } key_kind_t;

/* The columns that place a row, by their English and Chinese names. */
static const struct {
    const char *name;
    key_kind_t kind;
} s_key_cols[] = {
    {"region_code", KEY_REGION},     {"行政区划代码", KEY_REGION},
    {"household_id", KEY_HOUSEHOLD}, {"户编号", KEY_HOUSEHOLD},
    {"id_number", KEY_PERSON},       {"身份证号", KEY_PERSON},
    {"户主身份证号", KEY_PERSON},    {"学生身份证号", KEY_PERSON},
};
#define NKEYCOLS (sizeof s_key_cols / sizeof s_key_cols[0])

/* The placing columns each feed reads. */
static unsigned feed_keys(const char *source)
{
    if (!strcmp(source, "registry"))
        return KEY_REGION | KEY_HOUSEHOLD | KEY_PERSON;
    if (!strcmp(source, "visit"))
        return KEY_HOUSEHOLD;
    /* The person feeds' optional region_code tells identity matching where
     * to look for a row without a valid ID number. */
    return KEY_REGION | KEY_PERSON;
}

/* A broken ID number is matched within the county its first six digits
 * name: one outside the caller's region (compared as far as both go) puts
 * the row outside. */
static bool broken_id_outside(const gw_req_t *r, const char *v)
{
    size_t n = strlen(r->caller.prefix);
    if (n > 6)
        n = 6;
    return strlen(v) >= 6 && strspn(v, "0123456789") >= 6 && strncmp(v, r->caller.prefix, n) != 0;
}

typedef struct {
    int col[3]; /* field index per kind (region, household, person), -1 if absent */
    int64_t shown[2 * SCOPE_SHOW_ROWS]; /* out-of-region rows: the file's own, then the database's */
    int nshown;
    int64_t outside;
    lv_buf_t copy; /* kind, row, key for the database's part of the check */
} scope_scan_t;

static int kind_slot(key_kind_t k)
{
    return k == KEY_REGION ? 0 : k == KEY_HOUSEHOLD ? 1 : 2;
}

static void trimmed(const char *s, size_t n, char *out, size_t outlen)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void scan_header(const lv_csv_t *csv, unsigned wanted, scope_scan_t *sc)
{
    for (int k = 0; k < 3; k++)
        sc->col[k] = -1;
    for (size_t f = 0; f < lv_csv_nfields(csv); f++) {
        size_t n;
        const char *v = lv_csv_field(csv, f, &n);
        char name[64];
        trimmed(v, n, name, sizeof name);
        for (size_t i = 0; i < NKEYCOLS; i++) {
            int slot = kind_slot(s_key_cols[i].kind);
            if ((wanted & s_key_cols[i].kind) && sc->col[slot] < 0 &&
                !strcasecmp(name, s_key_cols[i].name))
                sc->col[slot] = (int)f;
        }
    }
}

static void note_outside(scope_scan_t *sc, int64_t row)
{
    if (sc->nshown < 2 * SCOPE_SHOW_ROWS)
        sc->shown[sc->nshown++] = row;
}

static void scan_row(gw_req_t *r, const lv_csv_t *csv, scope_scan_t *sc)
{
    char v[256], row[24];
    snprintf(row, sizeof row, "%lld", (long long)lv_csv_row(csv));
    for (int k = 0; k < 3; k++) {
        if (sc->col[k] < 0)
            continue;
        size_t n;
        const char *f = lv_csv_field(csv, (size_t)sc->col[k], &n);
        trimmed(f, n, v, sizeof v);
        if (k == 0) {
            /* A malformed code is left for ingest to reject with its reason;
             * a county or town code (person feeds) must lie in the region too. */
            size_t len = strlen(v);
            if ((len == 12 || len == 9 || len == 6) && strspn(v, "0123456789") == len &&
                !gw_in_region(r, v)) {
                if (sc->outside++ < SCOPE_SHOW_ROWS)
                    note_outside(sc, lv_csv_row(csv));
                return; /* counted once, whatever else the row names */
            }
        } else if (k == 1) {
            if (*v && gw_ident_ok(v, sizeof v - 1)) {
                csv_put(&sc->copy, "H", false);
                csv_put(&sc->copy, row, false);
                csv_put(&sc->copy, v, true);
            }
        } else {
            lv_idnum_t id;
            const char *why;
            if (!lv_idnum_parse(v, strlen(v), &id, &why)) {
                csv_put(&sc->copy, "P", false);
                csv_put(&sc->copy, row, false);
                csv_put(&sc->copy, id.s, true);
            } else if (broken_id_outside(r, v)) {
                if (sc->outside++ < SCOPE_SHOW_ROWS)
                    note_outside(sc, lv_csv_row(csv));
                return;
            }
        }
    }
}

/* Sends the keys gathered so far into the COPY in progress. */
static int copy_flush(PGconn *pg, lv_buf_t *b)
{
    if (b->failed)
        return LV_ENOMEM;
    if (b->len && PQputCopyData(pg, b->s, (int)b->len) != 1)
        return LV_ETRANSIENT;
    lv_buf_reset(b);
    return 0;
}

/* The households and registered persons the file names, looked up in one
 * statement over a temporary table filled with COPY. */
static int scope_db(gw_req_t *r, PGconn *pg, FILE *fp, const lv_csv_limits_t *lim,
                    unsigned wanted, scope_scan_t *sc)
{
    int e;
    if ((e = lv_pg_begin(pg)) ||
        (e = lv_pg_cmd(pg,
                       "CREATE TEMP TABLE gw_feed_keys (kind text, row_no bigint, key text) "
                       "ON COMMIT DROP",
                       0, NULL)))
        return e;
    PGresult *res = PQexec(pg, "COPY gw_feed_keys FROM STDIN (FORMAT csv)");
    bool copying = PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    if (!copying)
        return LV_ETRANSIENT;
    lv_csv_t *csv = lv_csv_new(fp, lim);
    e = csv ? 0 : LV_ENOMEM;
    if (!e && lv_csv_next(csv) == LV_CSV_ROW) {
        scan_header(csv, wanted, sc);
        for (int rc; !e && (rc = lv_csv_next(csv)) != LV_CSV_EOF;) {
            if (rc == LV_ELIMIT)
                continue;
            if (rc < 0)
                break; /* a broken file: ingest reports it */
            scan_row(r, csv, sc);
            if (sc->copy.len >= SCOPE_COPY_CHUNK)
                e = copy_flush(pg, &sc->copy);
        }
    }
    lv_csv_destroy(&csv);
    if (!e)
        e = copy_flush(pg, &sc->copy);
    if (PQputCopyEnd(pg, e ? "scan failed" : NULL) != 1)
        e = e ? e : LV_ETRANSIENT;
    while ((res = PQgetResult(pg))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !e)
            e = lv_pg_classify(pg, res);
        PQclear(res);
    }
    if (e)
        return e;
    char show[8];
    snprintf(show, sizeof show, "%d", SCOPE_SHOW_ROWS);
    const char *p[2] = {r->caller.prefix, show};
    e = lv_pg_query(pg, &res,
                    "SELECT row_no, count(*) OVER () FROM ("
                    "  SELECT k.row_no, h.region_code FROM gw_feed_keys k "
                    "  JOIN household h ON h.household_id = k.key WHERE k.kind = 'H' "
                    "  UNION ALL SELECT k.row_no, h.region_code FROM gw_feed_keys k "
                    "  JOIN person p ON p.id_number = k.key "
                    "  JOIN household h ON h.household_id = p.household_id WHERE k.kind = 'P') x "
                    "WHERE left(region_code, length($1)) <> $1 "
                    "GROUP BY row_no ORDER BY row_no LIMIT $2::int",
                    2, p);
    if (e)
        return e;
    for (int i = 0; i < PQntuples(res); i++) {
        if (i == 0)
            sc->outside += strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        note_outside(sc, strtoll(PQgetvalue(res, i, 0), NULL, 10));
    }
    PQclear(res);
    return lv_pg_commit(pg);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Returns true when every row of the file lies in the caller's region;
 * otherwise false after replying (403 with the rows, or an error). */
static bool check_scope(gw_req_t *r, const char *source, const char *path)
{
    PGconn *pg = gw_pg(r);
    if (!pg)
        return false;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        gw_reply_error(r, 500, "internal", "cannot read the spool file");
        return false;
    }
    scope_scan_t sc;
    memset(&sc, 0, sizeof sc);
    lv_buf_init(&sc.copy, SCOPE_COPY_CHUNK * 2);
    lv_csv_limits_t lim = {r->gw->cfg.max_record_bytes, r->gw->cfg.max_fields};
    int e = scope_db(r, pg, fp, &lim, feed_keys(source), &sc);
    fclose(fp);
    lv_buf_free(&sc.copy);
    if (e) {
        lv_pg_rollback(pg);
        gw_db_error(r, e);
        return false;
    }
    if (sc.outside == 0)
        return true;
    qsort(sc.shown, (size_t)sc.nshown, sizeof sc.shown[0], cmp_i64);
    json_t *rows = json_array();
    for (int i = 0; i < sc.nshown && i < SCOPE_SHOW_ROWS; i++)
        json_array_append_new(rows, json_integer(sc.shown[i]));
    gw_reply_error_json(
        r, 403, "forbidden",
        json_pack("{s:s, s:I, s:o}", "reason",
                  "文件含管辖范围以外的行, 未导入 (rows outside your region; nothing queued)",
                  "rows_outside", (json_int_t)sc.outside, "rows", rows));
    return false;
}

/* ---- POST /api/v1/feeds/{source} ------------------------------------------- */

void gw_h_feed_begin(gw_req_t *r)
{
    const char *source = r->params[0];
    if (!gw_in_list(source, s_sources)) {
        gw_reply_error(r, 404, "not_found",
                       "未知数据源 (unknown feed); one of registry medical civil disaster education "
                       "income declaration visit");
        return;
    }
    if (!may_post(r->caller.role, source)) {
        gw_forbidden(r, "您的角色不能上传此数据源 (your role may not post this feed)");
        return;
    }
    const char *enc = gw_query(r, "encoding");
    bool gb = enc && !strcasecmp(enc, "gb18030");
    if (enc && !gb && strcasecmp(enc, "utf-8") && strcasecmp(enc, "utf8")) {
        gw_bad_request(r, "encoding 须为 gb18030 或 utf-8 (encoding must be gb18030 or utf-8)");
        return;
    }
    r->spool = gw_spool_new(r->gw->spool, source, gb);
    if (!r->spool)
        gw_reply_error(r, 500, "internal", "无法创建暂存文件 (cannot create the spool file)");
}

void gw_h_feed(gw_req_t *r)
{
    const char *source = r->params[0];
    char why[256];
    if (!r->spool) {
        gw_reply_error(r, 500, "internal", "no spool file");
        return;
    }
    if (gw_spool_bytes(r->spool) == 0) {
        gw_bad_request(r, "请求体为空, 需要 CSV 文件内容 (empty body: the CSV file is required)");
        return;
    }
    int e = gw_spool_finish(r->spool, why, sizeof why);
    if (e == LV_EINVAL) {
        gw_bad_request(r, "%s", why);
        return;
    }
    if (e) {
        gw_reply_error(r, 500, "internal", "写入暂存文件失败 (could not write the spool file)");
        return;
    }
    if (!check_scope(r, source, gw_spool_path(r->spool)))
        return;
    char id[24];
    if ((e = gw_queue_import(r, source, gw_spool_path(r->spool), gw_spool_bytes(r->spool), id))) {
        gw_db_error(r, e);
        return;
    }
    gw_spool_destroy(&r->spool, true);
    gw_reply_json(r, 202, json_pack("{s:I, s:s}", "import_id", (json_int_t)strtoll(id, NULL, 10),
                                    "source", source));
}

/* ---- imports ----------------------------------------------------------------- */

/* An import is seen by the department token that posted it, and by the
 * offices of the region it was posted for; imports queued at the terminal
 * (levee load) belong to the whole province. */
static bool import_visible(const gw_req_t *r, const char *region, const char *token)
{
    if (r->caller.role == LV_ROLE_DEPARTMENT)
        return token && !strcmp(token, r->caller.token_id);
    if (!region)
        return r->caller.role == LV_ROLE_PROVINCE;
    return gw_in_region(r, region);
}

/* The import of the path, if the caller may see it: *res holds its row
 * (json, region_prefix, token_id); false after replying. */
static bool load_import(gw_req_t *r, PGresult **res)
{
    const char *id = r->params[0];
    size_t n = strlen(id);
    if (n > 18 || strspn(id, "0123456789") != n) {
        gw_not_found(r);
        return false;
    }
    const char *p[1] = {id};
    *res = gw_sql_one(r,
                        "SELECT json_build_object('import_id', import_id, 'source', source, "
                        "'status', CASE status WHEN 'queued' THEN 'running' ELSE status END, "
                        "'rows', rows_done, 'accepted', accepted, 'duplicates', duplicates, "
                        "'rejected', rejected, 'error', error, 'bytes_done', bytes_done, "
                        "'bytes_total', bytes_total, 'created_at', created_ms, "
                        "'finished_at', finished_ms)::text, region_prefix, token_id "
                        "FROM import WHERE import_id = $1",
                        1, p);
    if (!*res)
        return false;
    if (!import_visible(r, PQgetisnull(*res, 0, 1) ? NULL : PQgetvalue(*res, 0, 1),
                        PQgetisnull(*res, 0, 2) ? NULL : PQgetvalue(*res, 0, 2))) {
        PQclear(*res);
        gw_not_found(r);
        return false;
    }
    return true;
}

void gw_h_import(gw_req_t *r)
{
    PGresult *res;
    if (!load_import(r, &res))
        return;
    json_t *o = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    gw_reply_json(r, 200, o);
}

void gw_h_rejects(gw_req_t *r)
{
    PGresult *imp, *res;
    if (!load_import(r, &imp))
        return;
    /* The raw rows are the uploader's own data; anyone else sees them masked. */
    bool own = !PQgetisnull(imp, 0, 2) && !strcmp(PQgetvalue(imp, 0, 2), r->caller.token_id);
    PQclear(imp);
    gw_page_t pg;
    if (!gw_page_begin(r, "i", REJECTS_LIMIT_DEFAULT, REJECTS_LIMIT_MAX, &pg))
        return;
    int limit = pg.limit;
    const char *p[3] = {r->params[0], pg.after[0], pg.limit_plus_one};
    res = gw_sql(r,
                 "SELECT row_no, column_name, reason, raw FROM import_reject "
                 "WHERE import_id = $1 AND ($2::bigint IS NULL OR row_no > $2::bigint) "
                 "ORDER BY row_no LIMIT $3::int",
                 3, p);
    if (!res)
        return;
    lv_buf_t b;
    lv_buf_init(&b, REJECTS_MAX_BYTES + 65536);
    lv_buf_puts(&b, "\xEF\xBB\xBF" "row,column,reason,raw\r\n"); /* the BOM: Excel reads UTF-8 */
    int rows = PQntuples(res), i;
    for (i = 0; i < rows && i < limit && b.len < REJECTS_MAX_BYTES; i++) {
        lv_buf_printf(&b, "%s,", PQgetvalue(res, i, 0));
        for (int c = 1; c < 4; c++) {
            char *v = strdup(PQgetvalue(res, i, c));
            if (v && !own && c >= 2)
                lv_mask_text(v);
            csv_put(&b, v ? v : "", c == 3);
            free(v);
        }
    }
    /* More rows than the page took: the last one sent is where to go on. */
    if (i < rows) {
        json_t *key = json_pack("[I]", (json_int_t)strtoll(PQgetvalue(res, i - 1, 0), NULL, 10));
        gw_cursor_encode(key, r->next_cursor, sizeof r->next_cursor);
        json_decref(key);
    }
    PQclear(res);
    if (b.failed) {
        lv_buf_free(&b);
        gw_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    gw_reply_raw(r, 200, "text/csv; charset=utf-8", b.s, b.len);
}

/* ---- POST /api/v1/declarations -------------------------------------------- */

typedef struct {
    const char *record_id, *name, *reason, *description;
    lv_idnum_t id;
    char date[11];
    char amount[32]; /* 元 with 2 decimals, or "" */
} declaration_t;

/* Validates the body against the declaration feed's columns. */
static bool declaration_parse(gw_req_t *r, json_t *o, declaration_t *d)
{
    bool bad = false;
    d->record_id = gw_json_text(r, o, "record_id", 64, &bad);
    const char *idn = gw_json_text(r, o, "id_number", 32, &bad);
    d->name = gw_json_text(r, o, "name", 64, &bad);
    const char *date = gw_json_text(r, o, "event_date", 16, &bad);
    d->reason = gw_json_text(r, o, "reason", 64, &bad);
    d->description = gw_json_text(r, o, "description", GW_TEXT_MAX, &bad);
    if (bad)
        return false;
    const char *why = NULL, *missing = !d->record_id ? "record_id" : !idn ? "id_number"
                                                 : !d->name ? "name" : !date ? "event_date"
                                                 : !d->reason ? "reason" : NULL;
    if (missing) {
        gw_bad_request(r, "缺少必填字段 %s (missing required field)", missing);
        return false;
    }
    if (!gw_ident_ok(d->record_id, 64) || !gw_ident_ok(d->name, 64)) {
        gw_bad_request(r, "record_id 与 name 不能为空或含控制字符 (record_id and name must be "
                          "non-empty text without control characters)");
        return false;
    }
    if (lv_idnum_parse(idn, strlen(idn), &d->id, &why)) {
        gw_bad_request(r, "id_number: %s", why);
        return false;
    }
    int64_t ms, fen;
    if (lv_date_parse(date, strlen(date), &ms, &why)) {
        gw_bad_request(r, "event_date: %s", why);
        return false;
    }
    lv_date_format(ms, d->date);
    if (!gw_in_list(d->reason, gw_risk_factors)) {
        gw_bad_request(r, "reason 须为风险类型之一 (reason must be a risk type): 因病 因残 因学 因灾 "
                          "因意外事故 因务工就业不稳 因产业项目失败 大额刚性支出 其他");
        return false;
    }
    int has = gw_json_yuan(r, o, "amount", &fen);
    if (has < 0)
        return false;
    d->amount[0] = '\0';
    if (has)
        lv_money_format(fen, d->amount, sizeof d->amount);
    return true;
}

/* The one-row feed file, with the feed's English header. */
static int declaration_spool(gw_req_t *r, const declaration_t *d, gw_spool_t **sp)
{
    lv_buf_t b;
    lv_buf_init(&b, 64 << 10);
    lv_buf_puts(&b, "record_id,id_number,name,event_date,reason,amount,description\r\n");
    const char *f[7] = {d->record_id, d->id.s, d->name, d->date, d->reason, d->amount,
                        d->description ? d->description : ""};
    for (int i = 0; i < 7; i++)
        csv_put(&b, f[i], i == 6);
    char why[256];
    *sp = gw_spool_new(r->gw->spool, "declaration", false);
    int e = b.failed ? LV_ENOMEM : !*sp ? LV_EIO : 0;
    if (!e)
        e = gw_spool_write(*sp, b.s, b.len, why, sizeof why);
    if (!e)
        e = gw_spool_finish(*sp, why, sizeof why);
    lv_buf_free(&b);
    return e;
}

/* Polls for the case the declaration opened, up to the configured wait,
 * holding no connection while it sleeps. Returns the case as JSON, or NULL
 * with *status the import's status. */
static json_t *wait_for_case(gw_req_t *r, const char *import_id, const char *household,
                             int64_t since_ms, char status[16])
{
    char since[24];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    int64_t until = lv_mono_ms() + r->gw->cfg.http_declaration_wait_ms;
    snprintf(status, 16, "running");
    for (;;) {
        PGconn *pg = gw_pg(r);
        if (!pg)
            return NULL;
        const char *p[3] = {import_id, household, since};
        PGresult *res;
        if (lv_pg_query(pg, &res,
                        "SELECT CASE status WHEN 'queued' THEN 'running' ELSE status END, rejected, "
                        "(SELECT " GW_CASE_JSON "::text FROM hcase c WHERE c.household_id = $2 "
                        " AND c.opened_ms >= $3::bigint ORDER BY c.opened_ms LIMIT 1) "
                        "FROM import WHERE import_id = $1",
                        3, p)) {
            gw_pg_release(r);
            return NULL;
        }
        json_t *c = NULL;
        bool over = true;
        if (PQntuples(res) == 1) {
            snprintf(status, 16, "%s", PQgetvalue(res, 0, 0));
            if (!PQgetisnull(res, 0, 2))
                c = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
            /* A failed import or a rejected row opens nothing. */
            over = !strcmp(status, "failed") ||
                   (!strcmp(status, "done") && strcmp(PQgetvalue(res, 0, 1), "0") != 0);
        }
        PQclear(res);
        gw_pg_release(r);
        if (c || over || lv_mono_ms() >= until)
            return c;
        struct timespec ts = {0, DECLARATION_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

void gw_h_declaration(gw_req_t *r)
{
    json_t *o = gw_body_object(r);
    if (!o)
        return;
    declaration_t d;
    bool ok = declaration_parse(r, o, &d);
    /* The declarant must be registered in the caller's region. */
    const char *p[1] = {d.id.s};
    PGresult *res = ok ? gw_sql(r,
                                "SELECT h.household_id, h.region_code FROM person p JOIN household h "
                                "ON h.household_id = p.household_id WHERE p.id_number = $1",
                                1, p)
                       : NULL;
    if (!res) {
        json_decref(o);
        return;
    }
    char household[GW_PARAM_MAX + 1];
    bool found = PQntuples(res) == 1 && gw_in_region(r, PQgetvalue(res, 0, 1));
    snprintf(household, sizeof household, "%s", found ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    if (!found) {
        json_decref(o);
        gw_not_found(r);
        return;
    }
    int64_t t0 = lv_now_ms();
    int e = declaration_spool(r, &d, &r->spool);
    json_decref(o);
    char id[24];
    if (e) {
        gw_reply_error(r, 500, "internal", "写入暂存文件失败 (could not write the spool file)");
        return;
    }
    if ((e = gw_queue_import(r, "declaration", gw_spool_path(r->spool), gw_spool_bytes(r->spool),
                             id))) {
        gw_db_error(r, e);
        return;
    }
    gw_spool_destroy(&r->spool, true);
    char status[16];
    json_t *c = wait_for_case(r, id, household, t0, status);
    json_int_t import_id = (json_int_t)strtoll(id, NULL, 10);
    if (c)
        gw_reply_json(r, 201, json_pack("{s:I, s:o}", "import_id", import_id, "case", c));
    else
        gw_reply_json(r, 202, json_pack("{s:I, s:s, s:n}", "import_id", import_id, "import_status",
                                        status, "case"));
}
