/* Feeds: queue a file for levee-ingest and follow it, show an import's
 * summary and its rejected rows, and wait until the pipeline is idle. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_err.h"
#include "lv_pg.h"
#include "lv_time.h"

#define POLL_MS 200
#define LOAD_TIMEOUT_S 3600
#define IDLE_TIMEOUT_S 300
#define IDLE_CHECKS 3
#define IDLE_GAP_MS 150
#define SUMMARY_REJECTS 10
#define BAR_CELLS 24
#define MAX_TIMEOUT_S (30LL * 86400)

static const char *const s_sources[] = {
    "registry", "medical", "civil", "disaster", "education", "income", "declaration", "visit", NULL,
};

static const char *const SQL_IMPORT =
    "SELECT import_id, source, path, status, rows_done, bytes_done, bytes_total, accepted, "
    "duplicates, rejected, error, created_ms, started_ms, finished_ms "
    "FROM import WHERE import_id = $1";

static int parse_timeout(cli_t *cli, const cli_args_t *a, int64_t dflt, int64_t *ms)
{
    const char *v = cli_opt(a, "--timeout");
    int64_t s = dflt;
    if (v && cli_parse_i64(v, 1, MAX_TIMEOUT_S, &s))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "--timeout 须为秒数 (must be whole seconds, 1..%lld): %s",
                        (long long)MAX_TIMEOUT_S, v);
    *ms = s * 1000;
    return 0;
}

static int parse_import_id(cli_t *cli, const char *s, int64_t *id)
{
    if (cli_parse_i64(s, 1, INT64_MAX, id))
        return cli_fail(cli, CLI_EXIT_USAGE, "导入编号无效 (bad import id): %s", s);
    return 0;
}

/* ms the import has been (or was) working. */
static int64_t import_elapsed_ms(const PGresult *r)
{
    int64_t start = cli_get_i64(r, 0, "started_ms", cli_get_i64(r, 0, "created_ms", 0));
    int64_t end = cli_get_i64(r, 0, "finished_ms", lv_now_ms());
    return end > start ? end - start : 0;
}

/* Prints the summary of the import in r (one row of SQL_IMPORT) and its first
 * rejects; returns the exit code its status calls for. */
static int import_summary(cli_t *cli, PGconn *pg, const PGresult *r)
{
    const char *id = cli_get(r, 0, "import_id");
    const char *status = cli_get(r, 0, "status");
    const char *error = cli_get(r, 0, "error");
    int64_t rows = cli_get_i64(r, 0, "rows_done", 0);
    int64_t rejected = cli_get_i64(r, 0, "rejected", 0);
    int64_t ms = import_elapsed_ms(r);
    PGresult *rej = NULL;
    if (rejected > 0) {
        const char *p[] = {id};
        int e = lv_pg_query(pg, &rej,
                            "SELECT row_no AS row, column_name AS column, reason FROM import_reject "
                            "WHERE import_id = $1 ORDER BY row_no LIMIT 10",
                            1, p);
        if (e)
            return cli_pg_fail(cli, e);
    }
    int rc = !strcmp(status, "failed") ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, "import_id", json_integer(cli_get_i64(r, 0, "import_id", 0)));
        json_object_set_new(o, "source", json_string(cli_get(r, 0, "source")));
        json_object_set_new(o, "path", json_string(cli_get(r, 0, "path")));
        json_object_set_new(o, "status", json_string(status));
        json_object_set_new(o, "rows", json_integer(rows));
        json_object_set_new(o, "accepted", json_integer(cli_get_i64(r, 0, "accepted", 0)));
        json_object_set_new(o, "duplicates", json_integer(cli_get_i64(r, 0, "duplicates", 0)));
        json_object_set_new(o, "rejected", json_integer(rejected));
        json_object_set_new(o, "error", error ? json_string(error) : json_null());
        json_object_set_new(o, "seconds", json_real((double)ms / 1000.0));
        json_object_set_new(o, "bytes_done", json_integer(cli_get_i64(r, 0, "bytes_done", 0)));
        json_object_set_new(o, "bytes_total", json_integer(cli_get_i64(r, 0, "bytes_total", 0)));
        json_object_set_new(o, "rejects", rej ? cli_res_json(rej) : json_array());
        cli_json_out(o);
        PQclear(rej);
        return rc;
    }
    const char *head = "导入进行中 (running)";
    if (!strcmp(status, "done"))
        head = "导入完成 (done)";
    else if (!strcmp(status, "failed"))
        head = "导入失败 (failed)";
    else if (!strcmp(status, "queued"))
        head = "排队中 (queued)";
    printf("%s  导入编号 import %s: %s %s\n", head, id, cli_get(r, 0, "source"),
           cli_get(r, 0, "path"));
    if (error)
        printf("  错误 error: %s\n", error);
    const struct {
        const char *label, *col;
    } lines[] = {
        {"行数 rows", "rows_done"},
        {"接受 accepted", "accepted"},
        {"重复 duplicates", "duplicates"},
        {"拒绝 rejected", "rejected"},
    };
    char v[64];
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char num[32];
        cli_count(cli_get_i64(r, 0, lines[i].col, 0), num, sizeof num);
        snprintf(v, sizeof v, "%12s", num);
        cli_kv(stdout, 2, lines[i].label, 16, v);
    }
    snprintf(v, sizeof v, "%8lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
    cli_kv(stdout, 2, "用时 seconds", 16, v);
    if (rej) {
        printf("前 %d 条拒绝行 first rejected rows:\n", SUMMARY_REJECTS);
        static const cli_col_t cols[] = {{"reason", NULL, CLI_F_AUTO, 60}, {NULL, NULL, 0, 0}};
        cli_res_table(stdout, rej, cols, 2);
        if (rejected > SUMMARY_REJECTS)
            printf("全部拒绝行 all %lld: levee-cli rejects %s > rejects.csv\n",
                   (long long)rejected, id);
    }
    PQclear(rej);
    return rc;
}

static void bar_clear(bool bar)
{
    if (bar) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static void bar_draw(const PGresult *r, int64_t waited_ms)
{
    const char *status = cli_get(r, 0, "status");
    if (strcmp(status, "running") != 0) {
        fprintf(stderr, "\r排队中 queued: 等待 levee-ingest (waiting for levee-ingest) %llds\033[K",
                (long long)(waited_ms / 1000));
        fflush(stderr);
        return;
    }
    int64_t done = cli_get_i64(r, 0, "bytes_done", 0), total = cli_get_i64(r, 0, "bytes_total", 0);
    int64_t pct = total > 0 ? done * 100 / total : 0;
    if (pct > 100)
        pct = 100;
    if (pct < 0)
        pct = 0;
    char cells[BAR_CELLS + 1];
    for (int i = 0; i < BAR_CELLS; i++)
        cells[i] = i < pct * BAR_CELLS / 100 ? '#' : '.';
    cells[BAR_CELLS] = '\0';
    int64_t started = cli_get_i64(r, 0, "started_ms", 0);
    int64_t el = started > 0 ? lv_now_ms() - started : 0;
    int64_t rows = cli_get_i64(r, 0, "rows_done", 0);
    int64_t rate = el > 0 ? rows * 1000 / el : 0;
    char srate[32], acc[32], dup[32], rej[32];
    cli_count(rate, srate, sizeof srate);
    cli_count(cli_get_i64(r, 0, "accepted", 0), acc, sizeof acc);
    cli_count(cli_get_i64(r, 0, "duplicates", 0), dup, sizeof dup);
    cli_count(cli_get_i64(r, 0, "rejected", 0), rej, sizeof rej);
    fprintf(stderr, "\r[%s] %3lld%%  %s 行/s  接受 %s  重复 %s  拒绝 %s\033[K", cells,
            (long long)pct, srate, acc, dup, rej);
    fflush(stderr);
}

/* Polls the import until it is done or failed, then prints its summary. */
static int follow_import(cli_t *cli, PGconn *pg, const char *id, int64_t timeout_ms)
{
    bool bar = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    int64_t t0 = lv_mono_ms(), until = t0 + timeout_ms;
    const char *p[] = {id};
    for (;;) {
        PGresult *r;
        int e = lv_pg_query(pg, &r, SQL_IMPORT, 1, p);
        if (e) {
            bar_clear(bar);
            return cli_pg_fail(cli, e);
        }
        if (PQntuples(r) != 1) {
            PQclear(r);
            bar_clear(bar);
            return cli_fail(cli, CLI_EXIT_FAIL, "导入 %s 已不存在 (import vanished)", id);
        }
        const char *status = cli_get(r, 0, "status");
        if (!strcmp(status, "done") || !strcmp(status, "failed")) {
            bar_clear(bar);
            int rc = import_summary(cli, pg, r);
            PQclear(r);
            return rc;
        }
        if (bar)
            bar_draw(r, lv_mono_ms() - t0);
        if (lv_mono_ms() >= until && cli->json) {
            /* Scripts get the id and the state to follow up with. */
            cli_json_out(json_pack("{s:I, s:s, s:s, s:i}", "import_id",
                                   (json_int_t)cli_get_i64(r, 0, "import_id", 0), "status", status,
                                   "error", "timeout", "exit", CLI_EXIT_DOWN));
            PQclear(r);
            return CLI_EXIT_DOWN;
        }
        PQclear(r);
        if (lv_mono_ms() >= until) {
            bar_clear(bar);
            return cli_fail(cli, CLI_EXIT_DOWN,
                            "等待导入 %s 超时 (timed out after %llds); it goes on in the "
                            "background: levee-cli import %s",
                            id, (long long)(timeout_ms / 1000), id);
        }
        cli_sleep_ms(POLL_MS);
    }
}

int cli_cmd_load(cli_t *cli, const cli_args_t *a)
{
    const char *source = a->pos[0], *file = a->pos[1];
    bool known = false;
    for (int i = 0; s_sources[i]; i++)
        known = known || !strcmp(source, s_sources[i]);
    if (!known)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "未知数据源 (unknown source) %s; one of registry medical civil disaster "
                        "education income declaration visit",
                        source);
    int64_t timeout_ms;
    int rc = parse_timeout(cli, a, LOAD_TIMEOUT_S, &timeout_ms);
    if (rc)
        return rc;
    /* Without --encoding, ingest tells GB18030 from UTF-8 by the bytes. */
    const char *encoding = cli_opt(a, "--encoding");
    if (encoding && !strcasecmp(encoding, "utf8"))
        encoding = "utf-8";
    if (encoding && strcasecmp(encoding, "utf-8") != 0 && strcasecmp(encoding, "gb18030") != 0)
        return cli_fail(cli, CLI_EXIT_USAGE, "--encoding 须为 utf-8 或 gb18030 (must be utf-8 or gb18030): %s",
                        encoding);
    char enc[16] = "";
    for (size_t i = 0; encoding && encoding[i] && i + 1 < sizeof enc; i++)
        enc[i] = (char)(encoding[i] >= 'A' && encoding[i] <= 'Z' ? encoding[i] - 'A' + 'a' : encoding[i]);

    /* ingest opens the file itself, so it gets an absolute path. */
    char *path = realpath(file, NULL);
    if (!path)
        return cli_fail(cli, CLI_EXIT_USAGE, "找不到文件 (cannot resolve file) %s: %s", file,
                        strerror(errno));
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        bool notreg = fd >= 0;
        if (fd >= 0)
            close(fd);
        rc = cli_fail(cli, CLI_EXIT_USAGE, "无法读取文件 (cannot read file) %s: %s", path,
                      notreg ? "不是普通文件 (not a regular file)" : strerror(err));
        free(path);
        return rc;
    }
    close(fd);

    PGconn *pg = cli_pg(cli);
    if (!pg) {
        free(path);
        return CLI_EXIT_DOWN;
    }
    char now[24], size[24], id[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    snprintf(size, sizeof size, "%lld", (long long)st.st_size);
    const char *p[] = {source, path, now, size, enc};
    int e = lv_pg_scalar(pg, id, sizeof id,
                         "INSERT INTO import (source, path, status, created_ms, bytes_total, encoding) "
                         "VALUES ($1, $2, 'queued', $3, $4, nullif($5, '')) RETURNING import_id",
                         5, p);
    free(path);
    if (e)
        return cli_pg_fail(cli, e);
    /* A wake-up hint only: ingest also scans for queued imports on its own. */
    const char *pn[] = {id};
    lv_pg_cmd(pg, "SELECT pg_notify('levee_import', $1)", 1, pn);

    if (!cli->json) {
        printf("已提交导入 import queued: %s\n", id);
        fflush(stdout);
    }
    if (cli_opt(a, "--no-wait")) {
        if (cli->json) {
            int64_t v = 0;
            cli_parse_i64(id, 0, INT64_MAX, &v);
            cli_json_out(json_pack("{s:I, s:s}", "import_id", (json_int_t)v, "status", "queued"));
        }
        return CLI_EXIT_OK;
    }
    return follow_import(cli, pg, id, timeout_ms);
}

int cli_cmd_import(cli_t *cli, const cli_args_t *a)
{
    int64_t v;
    int rc = parse_import_id(cli, a->pos[0], &v);
    if (rc)
        return rc;
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    PGresult *r;
    const char *p[] = {a->pos[0]};
    int e = lv_pg_query(pg, &r, SQL_IMPORT, 1, p);
    if (e)
        return cli_pg_fail(cli, e);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return cli_fail(cli, CLI_EXIT_FAIL, "导入不存在 (no such import): %s", a->pos[0]);
    }
    rc = import_summary(cli, pg, r);
    PQclear(r);
    return rc;
}

int cli_cmd_rejects(cli_t *cli, const cli_args_t *a)
{
    int64_t v;
    int rc = parse_import_id(cli, a->pos[0], &v);
    if (rc)
        return rc;
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[] = {a->pos[0]};
    char st[32];
    int e = lv_pg_scalar(pg, st, sizeof st, "SELECT status FROM import WHERE import_id = $1", 1, p);
    if (e == LV_ENOTFOUND)
        return cli_fail(cli, CLI_EXIT_FAIL, "导入不存在 (no such import): %s", a->pos[0]);
    if (e)
        return cli_pg_fail(cli, e);

    /* Row by row, so an import with a million rejects streams in constant memory. */
    if (!PQsendQueryParams(pg,
                           "SELECT row_no AS row, column_name AS column, reason, raw FROM import_reject "
                           "WHERE import_id = $1 ORDER BY row_no",
                           1, NULL, p, NULL, NULL, 0) ||
        !PQsetSingleRowMode(pg))
        return cli_pg_fail(cli, LV_ETRANSIENT);
    if (cli->json)
        fputs("[", stdout);
    else
        fputs("\xEF\xBB\xBFrow,column,reason,raw\r\n", stdout);
    int64_t n = 0;
    bool failed = false;
    PGresult *r;
    while ((r = PQgetResult(pg))) {
        ExecStatusType t = PQresultStatus(r);
        if (t == PGRES_SINGLE_TUPLE) {
            if (cli->json) {
                json_t *o = cli_row_json(r, 0);
                char *line = json_dumps(o, JSON_COMPACT);
                fputs(n ? ",\n  " : "\n  ", stdout);
                fputs(line ? line : "null", stdout);
                free(line);
                json_decref(o);
            } else {
                for (int c = 0; c < 4; c++) {
                    char *t2 = cli_cell_text(r, 0, c, CLI_F_TEXT);
                    if (c)
                        fputc(',', stdout);
                    cli_csv_field(stdout, t2 ? t2 : "");
                    free(t2);
                }
                fputs("\r\n", stdout);
            }
            n++;
        } else if (t != PGRES_TUPLES_OK) {
            fprintf(stderr, "读取拒绝行出错 (query failed): %s", PQresultErrorMessage(r));
            failed = true;
        }
        PQclear(r);
    }
    if (cli->json)
        fputs(n ? "\n]\n" : "]\n", stdout);
    fflush(stdout);
    if (failed)
        return PQstatus(pg) == CONNECTION_OK ? CLI_EXIT_FAIL : CLI_EXIT_DOWN;
    return CLI_EXIT_OK;
}

int cli_cmd_wait_idle(cli_t *cli, const cli_args_t *a)
{
    int64_t timeout_ms;
    int rc = parse_timeout(cli, a, IDLE_TIMEOUT_S, &timeout_ms);
    if (rc)
        return rc;
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    int64_t t0 = lv_mono_ms();
    int calm = 0;
    int64_t imports = 0, outbox = 0;
    for (;;) {
        PGresult *r;
        int e = lv_pg_query(pg, &r,
                            "SELECT (SELECT count(*) FROM import WHERE status IN ('queued', "
                            "'running')) AS imports, (SELECT count(*) FROM outbox) AS outbox",
                            0, NULL);
        if (e)
            return cli_pg_fail(cli, e);
        imports = cli_get_i64(r, 0, "imports", -1);
        outbox = cli_get_i64(r, 0, "outbox", -1);
        PQclear(r);
        calm = imports == 0 && outbox == 0 ? calm + 1 : 0;
        int64_t el = lv_mono_ms() - t0;
        if (calm >= IDLE_CHECKS) {
            if (cli->json)
                cli_json_out(json_pack("{s:b, s:f}", "idle", 1, "seconds", (double)el / 1000.0));
            return CLI_EXIT_OK;
        }
        if (el >= timeout_ms) {
            if (cli->json) {
                cli_json_out(json_pack("{s:b, s:f, s:I, s:I, s:s}", "idle", 0, "seconds",
                                       (double)el / 1000.0, "imports_pending", (json_int_t)imports,
                                       "outbox", (json_int_t)outbox, "error", "timeout"));
                return CLI_EXIT_DOWN;
            }
            return cli_fail(cli, CLI_EXIT_DOWN,
                            "等待空闲超时 (not idle after %llds): %lld 个导入未完成 imports "
                            "pending, %lld 条消息未送达 outbox messages",
                            (long long)(timeout_ms / 1000), (long long)imports, (long long)outbox);
        }
        cli_sleep_ms(calm ? IDLE_GAP_MS : POLL_MS);
    }
}
