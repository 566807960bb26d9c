/* Read-only views: lists of cases, tasks, payouts, funds and messages, a
 * household's file (一户一档) and the summary. Each is SQL over Postgres with
 * the user's input passed as parameters. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_err.h"
#include "lv_pg.h"

static const char *const s_case_status[] = {
    "candidate", "verifying", "reviewing", "publicizing", "monitoring", "eliminated", "rejected", NULL,
};
static const char *const s_case_status_zh[] = {
    "待核实 candidate",  "核实中 verifying",     "审核中 reviewing", "公示中 publicizing",
    "监测帮扶 monitoring", "风险已消除 eliminated", "未纳入 rejected", NULL,
};
static const char *const s_sources[] = {
    "registry", "medical", "civil", "disaster", "education", "income", "declaration", "visit", NULL,
};
static const char *const s_sources_zh[] = {
    "建档立卡 registry", "医保结算 medical", "民政 civil",       "应急管理 disaster",
    "教育 education",    "务工收入 income",  "农户申报 declaration", "干部走访 visit", NULL,
};

static bool in_list(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

static int parse_limit(cli_t *cli, const cli_args_t *a, char out[24])
{
    /* The limit travels as a query parameter, so it is kept as text. */
    const char *v = cli_opt(a, "--limit");
    int64_t n = CLI_LIST_DEFAULT;
    if (v && cli_parse_i64(v, 1, CLI_LIST_MAX, &n))
        return cli_fail(cli, CLI_EXIT_USAGE, "--limit 须为 1..%d (must be 1..%d): %s", CLI_LIST_MAX,
                        CLI_LIST_MAX, v);
    snprintf(out, 24, "%lld", (long long)n);
    return 0;
}

int cli_list(cli_t *cli, const char *sql, int n, const char *const *p, const cli_col_t *cols,
             const char *limit)
{
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    PGresult *r;
    int e = lv_pg_query(pg, &r, sql, n, p);
    if (e)
        return cli_pg_fail(cli, e);
    cli_res_print(r, cols, cli->json);
    int64_t max = 0;
    if (limit && !cli->json && !cli_parse_i64(limit, 1, CLI_LIST_MAX, &max) &&
        PQntuples(r) == max)
        fprintf(stderr, "仅显示前 %s 条 (only the first %s shown; use --limit)\n", limit, limit);
    PQclear(r);
    return CLI_EXIT_OK;
}

int cli_cmd_cases(cli_t *cli, const cli_args_t *a)
{
    char limit[24];
    int rc = parse_limit(cli, a, limit);
    if (rc)
        return rc;
    const char *status = cli_opt(a, "--status"), *region = cli_opt(a, "--region");
    if (status && !in_list(status, s_case_status))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "未知状态 (unknown status) %s; one of candidate verifying reviewing "
                        "publicizing monitoring eliminated rejected",
                        status);
    if (region && (!*region || strspn(region, "0123456789") != strlen(region) || strlen(region) > 12))
        return cli_fail(cli, CLI_EXIT_USAGE, "--region 须为区划代码前缀 (1..12 digits): %s", region);
    static const cli_col_t cols[] = {
        {"opened_at", NULL, CLI_F_DATE, 0},
        {"deadline", NULL, CLI_F_DATE, 0},
        {"exit_stage", "风险消除", CLI_F_AUTO, 0},
        {"no_labour", "无劳动力(持续监测)", CLI_F_AUTO, 0},
        {NULL, NULL, 0, 0},
    };
    const char *p[] = {status, region, limit};
    return cli_list(cli,
                "SELECT case_id, household_id, status, stage, grade, category, risk_factors, "
                "opened_ms AS opened_at, deadline_ms AS deadline, exit_stage, "
                "lifecycle_no_labour(household_id) AS no_labour FROM hcase "
                "WHERE ($1::text IS NULL OR status = $1) "
                "AND ($2::text IS NULL OR left(region_code, length($2)) = $2) "
                "ORDER BY opened_ms DESC, case_id LIMIT $3::int",
                3, p, cols, limit);
}

int cli_cmd_tasks(cli_t *cli, const cli_args_t *a)
{
    char limit[24];
    int rc = parse_limit(cli, a, limit);
    if (rc)
        return rc;
    const char *status = cli_opt(a, "--status");
    static const char *const st[] = {"open", "done", "cancelled", NULL};
    if (status && !in_list(status, st))
        return cli_fail(cli, CLI_EXIT_USAGE, "未知状态 (unknown status) %s; one of open done cancelled",
                        status);
    static const cli_col_t cols[] = {{"due_at", NULL, CLI_F_DATETIME, 0}, {NULL, NULL, 0, 0}};
    const char *p[] = {cli_opt(a, "--assignee"), status, limit};
    return cli_list(cli,
                "SELECT t.task_id, t.case_id, t.household_id, t.assignee, t.status, "
                "t.due_ms AS due_at, t.kind, h.grade FROM task t JOIN hcase h USING (case_id) "
                "WHERE ($1::text IS NULL OR t.assignee = $1) "
                "AND ($2::text IS NULL OR t.status = $2) "
                "ORDER BY lv_grade_rank(h.grade) DESC, t.due_ms, t.task_id LIMIT $3::int",
                3, p, cols, limit);
}

int cli_cmd_payouts(cli_t *cli, const cli_args_t *a)
{
    char limit[24];
    int rc = parse_limit(cli, a, limit);
    if (rc)
        return rc;
    static const cli_col_t cols[] = {
        {"created_ms", "时间", CLI_F_DATE, 0},
        {"reason", NULL, CLI_F_AUTO, 40},
        {NULL, NULL, 0, 0},
    };
    const char *p[] = {cli_opt(a, "--household"), limit};
    return cli_list(cli,
                "SELECT payout_id, household_id, case_id, kind, amount_fen, status, reason, "
                "created_ms FROM payout WHERE ($1::text IS NULL OR household_id = $1) "
                "ORDER BY created_ms, payout_id LIMIT $2::int",
                2, p, cols, limit);
}

/* A fund's balance is what it can still pay: posted credits less posted
 * and reserved debits. Paid and reserved totals are the fund's debits. */
static const char *const SQL_FUNDS =
    "SELECT CASE WHEN a.account_id LIKE 'fund:%' THEN substr(a.account_id, 6) "
    "ELSE a.account_id END AS fund_id, a.name, "
    "(a.credits_posted - a.debits_posted - a.debits_pending) AS balance_fen, "
    "a.debits_posted - ledger_allocated_out(a.account_id) AS paid_fen, "
    "a.debits_pending AS pending_fen, ledger_allocated_out(a.account_id) AS allocated_fen "
    "FROM account a WHERE a.kind = 'fund' ORDER BY a.account_id";

int cli_cmd_funds(cli_t *cli, const cli_args_t *a)
{
    static const cli_col_t cols[] = {{"name", "名称", CLI_F_AUTO, 0}, {NULL, NULL, 0, 0}};
    return cli_list(cli, SQL_FUNDS, 0, NULL, cols, NULL);
}

/* What left through each payment channel (一卡通, 银行代发, ...). */
int cli_cmd_channels(cli_t *cli, const cli_args_t *a)
{
    (void)a;
    static const cli_col_t cols[] = {{"channel", "支付渠道", CLI_F_AUTO, 0},
                                     {NULL, NULL, 0, 0}};
    return cli_list(cli,
                "SELECT substr(a.account_id, 9) AS channel, a.credits_posted AS paid_fen, "
                "(SELECT count(*) FROM transfer t WHERE t.credit_account = a.account_id) AS payouts "
                "FROM account a WHERE a.kind = 'paidout' ORDER BY a.account_id",
                0, NULL, cols, NULL);
}

int cli_cmd_inbox(cli_t *cli, const cli_args_t *a)
{
    char limit[24];
    int rc = parse_limit(cli, a, limit);
    if (rc)
        return rc;
    static const cli_col_t cols[] = {
        {"created", NULL, CLI_F_DATETIME, 0},
        {"body", NULL, CLI_F_AUTO, 60},
        {NULL, NULL, 0, 0},
    };
    const char *p[] = {a->npos > 0 ? a->pos[0] : NULL, limit};
    return cli_list(cli,
                "SELECT recipient, recipient_name, kind, title, body, created_ms AS created "
                "FROM inbox WHERE ($1::text IS NULL OR recipient = $1 OR recipient_name = $1) "
                "ORDER BY created_ms DESC, event_id LIMIT $2::int",
                2, p, cols, limit);
}

int cli_parse_limit(cli_t *cli, const cli_args_t *a, char out[24])
{
    return parse_limit(cli, a, out);
}

/* ---- household ---------------------------------------------------------- */

typedef struct {
    const char *key;
    const char *sql;
    const char *title;
    const cli_col_t *cols;
} section_t;

static const cli_col_t c_members[] = {{NULL, NULL, 0, 0}};
static const cli_col_t c_cases[] = {
    {"opened_at", NULL, CLI_F_DATE, 0},
    {"deadline", NULL, CLI_F_DATE, 0},
    {"closed_at", NULL, CLI_F_DATE, 0},
    {"income_fen", NULL, CLI_F_HIDE, 0},
    {"rigid_fen", NULL, CLI_F_HIDE, 0},
    {"members", NULL, CLI_F_HIDE, 0},
    {NULL, NULL, 0, 0},
};
static const cli_col_t c_tasks[] = {
    {"created_at", "派发时间", CLI_F_DATETIME, 0},
    {"due_at", NULL, CLI_F_DATETIME, 0},
    {"completed_at", NULL, CLI_F_DATETIME, 0},
    {NULL, NULL, 0, 0},
};
static const cli_col_t c_payouts[] = {
    {"created_at", NULL, CLI_F_DATE, 0},
    {"computation", NULL, CLI_F_HIDE, 0},
    {NULL, NULL, 0, 0},
};
static const cli_col_t c_timeline[] = {
    {"time", NULL, CLI_F_DATETIME, 0},
    {"detail", NULL, CLI_F_AUTO, 70},
    {NULL, NULL, 0, 0},
};
static const cli_col_t c_history[] = {
    {"time", NULL, CLI_F_DATETIME, 0},
    {NULL, NULL, 0, 0},
};

static const section_t s_sections[] = {
    {"members",
     "SELECT id_number, name, relation, disability_grade, chronic_illness, labour, phone "
     "FROM person WHERE household_id = $1 ORDER BY (relation = '户主') DESC, id_number",
     "家庭成员 members", c_members},
    {"cases",
     "SELECT case_id, status, stage, grade, category, risk_factors, "
     "primary_risk AS primary_risk_factor, income_fen, members, rigid_fen, "
     "opened_ms AS opened_at, deadline_ms AS deadline, closed_ms AS closed_at "
     "FROM hcase WHERE household_id = $1 ORDER BY episode",
     "案件 cases", c_cases},
    {"tasks",
     "SELECT task_id, case_id, kind, assignee, status, created_ms AS created_at, "
     "due_ms AS due_at, completed_ms AS completed_at "
     "FROM task WHERE household_id = $1 ORDER BY created_ms, task_id",
     "核实任务 tasks", c_tasks},
    {"payouts",
     "SELECT payout_id, case_id, kind, year, basis_fen, amount_fen, status, reason, computation, "
     "created_ms AS created_at FROM payout WHERE household_id = $1 ORDER BY created_ms, payout_id",
     "帮扶资金 payouts", c_payouts},
    {"timeline",
     "SELECT at_ms AS time, actor, role, action, detail, case_id "
     "FROM timeline WHERE household_id = $1 ORDER BY seq",
     "办理记录 timeline", c_timeline},
    {"history",
     "SELECT at_ms AS time, what, old_value, new_value "
     "FROM household_history WHERE household_id = $1 ORDER BY seq",
     "底册变更 registry history", c_history},
};
#define NSECTIONS (sizeof s_sections / sizeof s_sections[0])

static json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A text[] cell as a JSON array (empty when NULL). */
static json_t *json_array_cell(const PGresult *r, int row, const char *name)
{
    int c = PQfnumber(r, name);
    if (c < 0 || row >= PQntuples(r))
        return json_array();
    json_t *o = cli_row_json(r, row);
    json_t *v = o ? json_object_get(o, name) : NULL;
    json_t *out = json_is_array(v) ? json_incref(v) : json_array();
    json_decref(o);
    return out;
}

int cli_cmd_household(cli_t *cli, const cli_args_t *a)
{
    const char *hid = a->pos[0];
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[] = {hid};
    PGresult *h = NULL, *st = NULL, *sec[NSECTIONS] = {NULL};
    int rc = CLI_EXIT_OK, e;
    if ((e = lv_pg_query(pg, &h,
                         "SELECT household_id, region_code, county, household_type, exit_year, "
                         "annual_income_fen, phone, updated_ms FROM household WHERE household_id = $1",
                         1, p))) {
        rc = cli_pg_fail(cli, e);
        goto done;
    }
    if (PQntuples(h) != 1) {
        rc = cli_fail(cli, CLI_EXIT_FAIL, "户不存在 (no such household): %s", hid);
        goto done;
    }
    if ((e = lv_pg_query(pg, &st,
                         "SELECT in_scope, grade, category, risk_factors, income_fen, members, "
                         "rigid_fen, pci_fen, pci_after_fen, policy_version, explanation, "
                         "evaluated_ms FROM household_state WHERE household_id = $1",
                         1, p))) {
        rc = cli_pg_fail(cli, e);
        goto done;
    }
    for (size_t i = 0; i < NSECTIONS; i++)
        if ((e = lv_pg_query(pg, &sec[i], s_sections[i].sql, 1, p))) {
            rc = cli_pg_fail(cli, e);
            goto done;
        }

    /* The household's status is its latest case's; category, grade and risk
     * factors come from an open case, else from matching's current view. */
    const PGresult *cases = sec[1];
    int last = PQntuples(cases) - 1;
    const char *status = last >= 0 ? cli_get(cases, last, "status") : "normal";
    bool open = last >= 0 && strcmp(status, "eliminated") != 0 && strcmp(status, "rejected") != 0;
    bool has_state = PQntuples(st) == 1;
    const PGresult *src = open ? cases : (has_state ? st : NULL);
    int srow = open ? last : 0;
    const char *grade = src ? cli_get(src, srow, "grade") : NULL;
    const char *category = src ? cli_get(src, srow, "category") : NULL;
    const char *primary = open ? cli_get(cases, last, "primary_risk_factor") : NULL;

    if (cli->json) {
        json_t *o = cli_row_json(h, 0);
        json_object_set_new(o, "status", json_string(status));
        json_object_set_new(o, "category", json_str_or_null(category));
        json_object_set_new(o, "grade", json_str_or_null(grade));
        json_object_set_new(o, "risk_factors",
                            src ? json_array_cell(src, srow, "risk_factors") : json_array());
        json_object_set_new(o, "primary_risk_factor", json_str_or_null(primary));
        json_object_set_new(o, "income_per_capita_fen",
                            has_state ? json_integer(cli_get_i64(st, 0, "pci_fen", 0)) : json_null());
        json_object_set_new(o, "rigid_expense_12m_fen",
                            has_state ? json_integer(cli_get_i64(st, 0, "rigid_fen", 0))
                                      : json_null());
        json_object_set_new(o, "state", has_state ? cli_row_json(st, 0) : json_null());
        for (size_t i = 0; i < NSECTIONS; i++)
            json_object_set_new(o, s_sections[i].key, cli_res_json(sec[i]));
        cli_json_out(o);
        goto done;
    }

    printf("一户一档 household %s\n", hid);
    const struct {
        const char *label, *col;
    } hf[] = {
        {"行政区划 region", "region_code"},
        {"户类型 type", "household_type"},
        {"脱贫年度 exit year", "exit_year"},
        {"年纯收入 income (元)", "annual_income_fen"},
        {"联系电话 phone", "phone"},
    };
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
        char *t = cli_cell_text(h, 0, PQfnumber(h, hf[i].col), CLI_F_AUTO);
        cli_kv(stdout, 2, hf[i].label, 22, t);
        free(t);
    }
    cli_kv(stdout, 2, "状态 status", 22, status);
    cli_kv(stdout, 2, "监测类别 category", 22, category ? category : "-");
    cli_kv(stdout, 2, "风险等级 grade", 22, grade ? grade : "-");
    if (src) {
        char *t = cli_cell_text(src, srow, PQfnumber(src, "risk_factors"), CLI_F_AUTO);
        cli_kv(stdout, 2, "风险类型 risk factors", 22, t);
        free(t);
    }
    cli_kv(stdout, 2, "主要风险 primary risk", 22, primary ? primary : "-");
    if (has_state) {
        printf("\n监测测算 assessment\n");
        const struct {
            const char *label, *col;
        } sf[] = {
            {"纳入监测范围 in scope", "in_scope"},
            {"家庭年纯收入 income (元)", "income_fen"},
            {"家庭人口 members", "members"},
            {"刚性支出 rigid (元)", "rigid_fen"},
            {"人均纯收入 pci (元)", "pci_fen"},
            {"扣除支出后人均 pci_after (元)", "pci_after_fen"},
            {"政策版本 policy", "policy_version"},
            {"测算时间 evaluated", "evaluated_ms"},
            {"说明 explanation", "explanation"},
        };
        for (size_t i = 0; i < sizeof sf / sizeof sf[0]; i++) {
            char *t = cli_cell_text(st, 0, PQfnumber(st, sf[i].col), CLI_F_AUTO);
            cli_kv(stdout, 2, sf[i].label, 30, t);
            free(t);
        }
    }
    for (size_t i = 0; i < NSECTIONS; i++) {
        if (!strcmp(s_sections[i].key, "history") && PQntuples(sec[i]) == 0)
            continue;
        printf("\n%s\n", s_sections[i].title);
        cli_res_table(stdout, sec[i], s_sections[i].cols, 2);
    }
done:
    PQclear(h);
    PQclear(st);
    for (size_t i = 0; i < NSECTIONS; i++)
        PQclear(sec[i]);
    return rc;
}

/* ---- summary ---------------------------------------------------------------- */

#define SUM_LABEL 30
#define SUM_VALUE 16

/* Labels padded so every figure ends in the same column. */
static void sum_line(int indent, const char *label, const char *value)
{
    printf("%*s", indent, "");
    cli_put_padded(stdout, label, SUM_LABEL - indent + 2, false);
    cli_put_padded(stdout, value, SUM_VALUE, true);
    fputc('\n', stdout);
}

static void sum_count(int indent, const char *label, int64_t n)
{
    char v[32];
    cli_count(n, v, sizeof v);
    sum_line(indent, label, v);
}

static int64_t group_count(const PGresult *r, const char *key)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (!strcmp(PQgetvalue(r, i, 0), key))
            return cli_get_i64(r, i, "n", 0);
    return 0;
}

/* {key: count} for the known keys in order, then any others the data holds. */
static json_t *group_json(const PGresult *r, const char *const *known)
{
    json_t *o = json_object();
    for (int i = 0; known[i]; i++)
        json_object_set_new(o, known[i], json_integer(group_count(r, known[i])));
    for (int i = 0; i < PQntuples(r); i++)
        if (!in_list(PQgetvalue(r, i, 0), known))
            json_object_set_new(o, PQgetvalue(r, i, 0), json_integer(cli_get_i64(r, i, "n", 0)));
    return o;
}

static void group_text(const PGresult *r, const char *const *known, const char *const *labels)
{
    int64_t total = 0;
    for (int i = 0; i < PQntuples(r); i++)
        total += cli_get_i64(r, i, "n", 0);
    for (int i = 0; known[i]; i++) {
        int64_t n = group_count(r, known[i]);
        if (n)
            sum_count(4, labels[i], n);
    }
    for (int i = 0; i < PQntuples(r); i++)
        if (!in_list(PQgetvalue(r, i, 0), known))
            sum_count(4, PQgetvalue(r, i, 0), cli_get_i64(r, i, "n", 0));
    sum_count(4, "合计 total", total);
}

int cli_cmd_summary(cli_t *cli, const cli_args_t *a)
{
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    PGresult *one = NULL, *rec = NULL, *cases = NULL, *funds = NULL;
    int rc = CLI_EXIT_OK, e;
    /* A registry row changed later is a second revision of the same record,
     * so records are counted by key. */
    if ((e = lv_pg_query(pg, &rec,
                         "SELECT source, count(DISTINCT record_id) AS n FROM record "
                         "GROUP BY source ORDER BY source",
                         0, NULL)) ||
        (e = lv_pg_query(pg, &cases,
                         "SELECT status, count(*) AS n FROM hcase GROUP BY status ORDER BY status",
                         0, NULL)) ||
        (e = lv_pg_query(pg, &funds, SQL_FUNDS, 0, NULL)) ||
        (e = lv_pg_query(pg, &one,
                         "SELECT (SELECT count(*) FROM import) AS imports, "
                         "(SELECT count(*) FROM import_reject) AS rejects, "
                         "(SELECT count(*) FROM unmatched_record) AS unmatched_records, "
                         "(SELECT count(*) FROM household) AS households, "
                         "(SELECT count(*) FROM person) AS persons, "
                         "(SELECT count(*) FROM alert) AS alerts, "
                         "(SELECT count(*) FROM task WHERE status = 'open') AS open_tasks, "
                         "(SELECT count(*) FROM payout WHERE status = 'posted') AS payouts_posted, "
                         "(SELECT coalesce(sum(amount_fen), 0)::bigint FROM payout "
                         " WHERE status = 'posted') AS payouts_posted_fen, "
                         "(SELECT count(*) FROM inbox) AS inbox_messages, "
                         "(SELECT count(*) FROM dead_letter) AS dead_letters",
                         0, NULL))) {
        rc = cli_pg_fail(cli, e);
        goto done;
    }
    if (cli->json) {
        json_t *o = cli_row_json(one, 0);
        json_object_set_new(o, "records", group_json(rec, s_sources));
        json_object_set_new(o, "cases", group_json(cases, s_case_status));
        json_object_set_new(o, "funds", cli_res_json(funds));
        cli_json_out(o);
        goto done;
    }
    printf("Levee 汇总 summary\n");
    printf("  数据记录 records\n");
    group_text(rec, s_sources, s_sources_zh);
    sum_count(2, "导入批次 imports", cli_get_i64(one, 0, "imports", 0));
    sum_count(2, "拒绝行 rejected rows", cli_get_i64(one, 0, "rejects", 0));
    sum_count(2, "未匹配记录 unmatched records", cli_get_i64(one, 0, "unmatched_records", 0));
    sum_count(2, "农户 households", cli_get_i64(one, 0, "households", 0));
    sum_count(2, "人口 persons", cli_get_i64(one, 0, "persons", 0));
    sum_count(2, "预警 alerts", cli_get_i64(one, 0, "alerts", 0));
    printf("  案件 cases\n");
    group_text(cases, s_case_status, s_case_status_zh);
    sum_count(2, "待办核实任务 open tasks", cli_get_i64(one, 0, "open_tasks", 0));
    sum_count(2, "已发放笔数 payouts posted", cli_get_i64(one, 0, "payouts_posted", 0));
    char yuan[48], v[64];
    cli_yuan(cli_get_i64(one, 0, "payouts_posted_fen", 0), yuan, sizeof yuan);
    snprintf(v, sizeof v, "%s 元", yuan);
    sum_line(2, "已发放金额 paid out", v);
    printf("  资金余额 fund balances\n");
    if (PQntuples(funds) == 0)
        printf("    (无 none)\n");
    for (int i = 0; i < PQntuples(funds); i++) {
        cli_yuan(cli_get_i64(funds, i, "balance_fen", 0), yuan, sizeof yuan);
        snprintf(v, sizeof v, "%s 元", yuan);
        const char *name = cli_get(funds, i, "name");
        char label[160];
        /* Long fund names are cut so the figures stay in one column. */
        char fit[sizeof label + 4];
        snprintf(label, sizeof label, "%s", name ? name : cli_get(funds, i, "fund_id"));
        cli_text_fit(label, SUM_LABEL - 4, fit);
        sum_line(4, fit, v);
    }
    sum_count(2, "消息 inbox messages", cli_get_i64(one, 0, "inbox_messages", 0));
    sum_count(2, "死信 dead letters", cli_get_i64(one, 0, "dead_letters", 0));
done:
    PQclear(one);
    PQclear(rec);
    PQclear(cases);
    PQclear(funds);
    return rc;
}
