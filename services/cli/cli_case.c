/* The case lifecycle at the terminal: 一户一策 measures (recorded by
 * dispatch), the measures list, the county re-check statistics (抽样复核)
 * and an investigator's work queue as Redis holds it. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_table.h"
#include "levee.pb-c.h"
#include "lv_err.h"
#include "lv_pg.h"
#include "lv_redis.h"
#include "lv_taskq.h"
#include "lv_time.h"

#define MAX_NOTE 4000
#define QUEUE_MAX 1000

static int parse_date_opt(cli_t *cli, const char *opt, const char *v, int64_t *ms)
{
    const char *reason = NULL;
    if (lv_date_parse(v, strlen(v), ms, &reason))
        return cli_fail(cli, CLI_EXIT_USAGE, "%s 日期无效 (bad date, YYYY-MM-DD) \"%s\": %s", opt, v,
                        reason ? reason : "-");
    return 0;
}

/* The fields every dispatch command from a person carries. */
static int command_init(cli_t *cli, const cli_args_t *a, const char *name, const char *role,
                        Levee__Command *cmd, char id[21])
{
    const char *actor = cli_opt(a, "--actor"), *r = cli_opt(a, "--role");
    if (r && !*r)
        return cli_fail(cli, CLI_EXIT_USAGE, "--role 为空 (empty role)");
    if (cli_new_cmd_id(id))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成命令编号 (no random source)");
    cmd->cmd_id = id;
    cmd->name = (char *)name;
    cmd->actor = (char *)(actor && *actor ? actor : cli_default_actor());
    cmd->role = (char *)(r ? r : role);
    cmd->at_ms = lv_now_ms();
    return 0;
}

int cli_cmd_measure(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    const char *kind = cli_opt(a, "--kind"), *note = cli_opt(a, "--note");
    const char *delivered = cli_opt(a, "--delivered");
    if (!*a->pos[0])
        return cli_fail(cli, CLI_EXIT_USAGE, "缺少案件编号 (CASE_ID is empty)");
    if (!kind || !*kind)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "缺少 --kind (industry employment medical education social relief fund "
                        "other, 或中文名 产业帮扶 就业帮扶 ...)");
    if (!note || !*note || strlen(note) > MAX_NOTE)
        return cli_fail(cli, CLI_EXIT_USAGE, "须用 --note 说明措施内容 (1..%d bytes)", MAX_NOTE);
    int rc;
    if (delivered && (rc = parse_date_opt(cli, "--delivered", delivered, &cmd.delivered_ms)))
        return rc;
    if ((rc = command_init(cli, a, "measure", "town", &cmd, id)))
        return rc;
    cmd.case_id = (char *)a->pos[0];
    cmd.measure_kind = (char *)kind;
    cmd.note = (char *)note;
    return cli_send_command(cli, cli->cfg.ep_dispatch, "dispatch", &cmd);
}

int cli_cmd_measure_delivered(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    const char *date = cli_opt(a, "--date");
    int rc;
    if (date && (rc = parse_date_opt(cli, "--date", date, &cmd.delivered_ms)))
        return rc;
    if ((rc = command_init(cli, a, "measure_delivered", "town", &cmd, id)))
        return rc;
    cmd.measure_id = (char *)a->pos[0];
    return cli_send_command(cli, cli->cfg.ep_dispatch, "dispatch", &cmd);
}

int cli_cmd_measures(cli_t *cli, const cli_args_t *a)
{
    static const cli_col_t cols[] = {
        {"measure_id", "措施编号", CLI_F_AUTO, 0},
        {"note", "内容", CLI_F_AUTO, 40},
        {"delivered_at", "落实日期", CLI_F_DATE, 0},
        {"created_at", "登记时间", CLI_F_DATETIME, 0},
        {NULL, NULL, 0, 0},
    };
    const char *p[2] = {cli_opt(a, "--case"), cli_opt(a, "--household")};
    return cli_list(cli,
                       "SELECT measure_id, case_id, household_id, kind, note, "
                       "delivered_ms AS delivered_at, actor, created_ms AS created_at FROM measure "
                       "WHERE ($1::text IS NULL OR case_id = $1) "
                       "AND ($2::text IS NULL OR household_id = $2) "
                       "ORDER BY household_id, created_ms, measure_id LIMIT 100000",
                       2, p, cols, NULL);
}

int cli_cmd_recheck_stats(cli_t *cli, const cli_args_t *a)
{
    const char *county = cli_opt(a, "--county");
    if (county && (strlen(county) != 6 || strspn(county, "0123456789") != 6))
        return cli_fail(cli, CLI_EXIT_USAGE, "--county 须为 6 位县级区划代码 (6 digits): %s", county);
    static const cli_col_t cols[] = {
        {"county", "县", CLI_F_AUTO, 0},
        {"verified", "核查属实", CLI_F_AUTO, 0},
        {"sampled", "抽中复核", CLI_F_AUTO, 0},
        {"agreed", "复核一致", CLI_F_AUTO, 0},
        {"sent_back", "退回重核", CLI_F_AUTO, 0},
        {"pending", "复核中", CLI_F_AUTO, 0},
        {NULL, NULL, 0, 0},
    };
    const char *p[1] = {county};
    return cli_list(cli,
                       "SELECT county, verified, sampled, agreed, sent_back, "
                       "sampled - agreed - sent_back AS pending FROM recheck_stats "
                       "WHERE ($1::text IS NULL OR county = $1) ORDER BY county",
                       1, p, cols, NULL);
}

/* ---- queue -------------------------------------------------------------- */

typedef struct {
    json_t *rows;
} queue_ctx_t;

static void queue_row(void *ctx, const char *entry_id, const lv_taskq_item_t *it)
{
    queue_ctx_t *q = ctx;
    json_array_append_new(q->rows,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "entry_id", entry_id,
                                    "task_id", it->task_id, "case_id", it->case_id, "household_id",
                                    it->household_id, "kind", it->kind, "grade", it->grade,
                                    "due_ms", (json_int_t)it->due_ms));
}

/* When Redis is away, Postgres (the truth) answers in the same order. */
static int queue_from_pg(cli_t *cli, const char *inv, json_t *rows)
{
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {inv};
    PGresult *r;
    int e = lv_pg_query(pg, &r,
                        "SELECT '' AS entry_id, t.task_id, t.case_id, t.household_id, t.kind, "
                        "coalesce(h.grade, '') AS grade, t.due_ms FROM task t "
                        "JOIN hcase h ON h.case_id = t.case_id "
                        "WHERE t.assignee = $1 AND t.status = 'open' "
                        "ORDER BY lv_grade_rank(h.grade) DESC, t.due_ms, t.task_id",
                        1, p);
    if (e)
        return cli_pg_fail(cli, e);
    json_t *all = cli_res_json(r);
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v) json_array_append(rows, v);
    json_decref(all);
    PQclear(r);
    return CLI_EXIT_OK;
}

int cli_cmd_queue(cli_t *cli, const cli_args_t *a)
{
    const char *inv = a->pos[0];
    if (!*inv)
        return cli_fail(cli, CLI_EXIT_USAGE, "缺少调查员编号 (INVESTIGATOR is empty)");
    queue_ctx_t q = {.rows = json_array()};
    const char *source = "redis";
    lv_redis_t *r = lv_redis_new(cli->cfg.redis_host, cli->cfg.redis_port);
    int e = r ? lv_taskq_read(r, inv, QUEUE_MAX, queue_row, &q) : LV_ENOMEM;
    lv_redis_destroy(&r);
    if (e) {
        source = "postgres";
        json_array_clear(q.rows);
        int rc = queue_from_pg(cli, inv, q.rows);
        if (rc) {
            json_decref(q.rows);
            return rc;
        }
    }
    if (cli->json) {
        cli_json_out(json_pack("{s:s, s:s, s:o}", "investigator", inv, "source", source, "tasks",
                               q.rows));
        return CLI_EXIT_OK;
    }
    printf("调查员 %s 的任务队列 (queue, from %s; 红色 → 橙色 → 黄色)\n", inv, source);
    size_t i;
    json_t *v;
    json_array_foreach(q.rows, i, v)
    {
        char due[17];
        lv_datetime_format(json_integer_value(json_object_get(v, "due_ms")), due);
        printf("  %-6s  ", json_string_value(json_object_get(v, "grade")));
        cli_put_padded(stdout, json_string_value(json_object_get(v, "task_id")), 28, false);
        printf("  %-8s  %s  %s\n", json_string_value(json_object_get(v, "kind")),
               json_string_value(json_object_get(v, "household_id")), due);
    }
    printf("  (%zu 条 tasks)\n", json_array_size(q.rows));
    json_decref(q.rows);
    return CLI_EXIT_OK;
}
