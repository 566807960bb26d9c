/* Money at the terminal: paying and voiding reserved payouts, donations to
 * village relief funds, temporary relief, and the reconciliation that proves
 * the books. Changes go to levee-ledger as Commands; reconciliation only
 * reads. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_table.h"
#include "levee.pb-c.h"
#include "lv_err.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_policy.h"
#include "lv_reconcile.h"
#include "lv_time.h"

#define MAX_TEXT 2000

static int prepare(cli_t *cli, Levee__Command *cmd, char id[21], const char *name,
                   const cli_args_t *a, const char *role)
{
    if (cli_new_cmd_id(id))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成命令编号 (no random source)");
    const char *actor = cli_opt(a, "--actor");
    const char *r = cli_opt(a, "--role");
    const char *note = cli_opt(a, "--note");
    if (note && strlen(note) > MAX_TEXT)
        return cli_fail(cli, CLI_EXIT_USAGE, "--note 太长 (longer than %d bytes)", MAX_TEXT);
    cmd->cmd_id = id;
    cmd->name = (char *)name;
    cmd->actor = (char *)(actor && *actor ? actor : cli_default_actor());
    cmd->role = (char *)(r && *r ? r : role);
    cmd->note = (char *)(note ? note : "");
    cmd->at_ms = lv_now_ms();
    return 0;
}

int cli_cmd_pay(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    int rc = prepare(cli, &cmd, id, "pay", a, "fund");
    if (rc)
        return rc;
    const char *all = cli_opt(a, "--all");
    if ((a->npos == 1) == (all != NULL))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "给出一个发放编号, 或 --all [--region PREFIX] (a PAYOUT_ID or --all)");
    const char *region = cli_opt(a, "--region");
    if (region && strspn(region, "0123456789") != strlen(region))
        return cli_fail(cli, CLI_EXIT_USAGE, "--region 须为数字前缀 (a digit prefix): %s", region);
    cmd.payout_id = (char *)(a->npos == 1 ? a->pos[0] : "");
    cmd.region_code = (char *)(region ? region : "");
    const char *channel = cli_opt(a, "--channel");
    cmd.channel = (char *)(channel ? channel : "一卡通");
    return cli_send_command(cli, cli->cfg.ep_ledger, "ledger", &cmd);
}

int cli_cmd_void(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    int rc = prepare(cli, &cmd, id, "void", a, "fund");
    if (rc)
        return rc;
    if (!*cmd.note)
        return cli_fail(cli, CLI_EXIT_USAGE, "作废须说明原因 (--note is required)");
    cmd.payout_id = (char *)a->pos[0];
    return cli_send_command(cli, cli->cfg.ep_ledger, "ledger", &cmd);
}

int cli_cmd_donate(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    int rc = prepare(cli, &cmd, id, "donate", a, "village");
    if (rc)
        return rc;
    if ((rc = cli_parse_money(cli, "AMOUNT", a->pos[2], &cmd.amount_fen)))
        return rc;
    if (cmd.amount_fen <= 0)
        return cli_fail(cli, CLI_EXIT_USAGE, "捐赠金额须大于 0 (the amount must be above 0)");
    if (!*a->pos[1] || strlen(a->pos[1]) > 200)
        return cli_fail(cli, CLI_EXIT_USAGE, "捐赠人须为 1..200 字节 (DONOR must be 1..200 bytes)");
    cmd.region_code = (char *)a->pos[0];
    cmd.donor = (char *)a->pos[1];
    const char *date = cli_opt(a, "--date");
    if (date) {
        const char *why = NULL;
        if (lv_date_parse(date, strlen(date), &cmd.at_ms, &why))
            return cli_fail(cli, CLI_EXIT_USAGE, "--date 无效 (bad date) %s: %s", date, why);
    }
    return cli_send_command(cli, cli->cfg.ep_ledger, "ledger", &cmd);
}

int cli_cmd_relief(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    int rc = prepare(cli, &cmd, id, "relief", a, "village");
    if (rc)
        return rc;
    if ((rc = cli_parse_money(cli, "AMOUNT", a->pos[1], &cmd.amount_fen)))
        return rc;
    if (!*cmd.note)
        return cli_fail(cli, CLI_EXIT_USAGE, "请说明救助原因 (--note is required)");
    cmd.household_id = (char *)a->pos[0];
    return cli_send_command(cli, cli->cfg.ep_ledger, "ledger", &cmd);
}

/* ---- reconciliation ---------------------------------------------------- */

int cli_cmd_reconcile(cli_t *cli, const cli_args_t *a)
{
    (void)a;
    char err[512];
    lv_policy_t *policy = lv_policy_load(cli->cfg.policy_path, err, sizeof err);
    if (!policy)
        return cli_fail(cli, CLI_EXIT_FAIL, "%s", err);
    const lv_policy_version_t *v = lv_policy_at(policy, lv_now_ms());
    if (!v) {
        lv_policy_destroy(&policy);
        return cli_fail(cli, CLI_EXIT_FAIL, "没有生效的政策版本 (no policy version in effect)");
    }
    PGconn *pg = cli_pg(cli);
    if (!pg) {
        lv_policy_destroy(&policy);
        return CLI_EXIT_DOWN;
    }
    json_t *out = NULL;
    int failed = 0;
    int e = lv_reconcile(pg, v, &out, &failed);
    lv_policy_destroy(&policy);
    if (e)
        return cli_pg_fail(cli, e);
    if (cli->json) {
        cli_json_out(json_pack("{s:b, s:o}", "ok", failed == 0, "checks", out));
    } else {
        size_t i;
        json_t *c;
        json_array_foreach(out, i, c)
        {
            json_t *f = json_object_get(c, "findings");
            printf("%s  %s\n", json_is_true(json_object_get(c, "ok")) ? "通过 ok  " : "不符 FAIL",
                   json_string_value(json_object_get(c, "check")));
            for (size_t k = 0; k < json_array_size(f) && k < 20; k++)
                printf("            %s\n", json_string_value(json_array_get(f, k)));
            if (json_array_size(f) > 20)
                printf("            … 共 %zu 条 (%zu in all)\n", json_array_size(f),
                       json_array_size(f));
        }
        printf("%s\n", failed ? "对账不平 (the books do not reconcile)" : "对账平衡 (the books reconcile)");
        json_decref(out);
    }
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- the medical-assistance calculator ---------------------------------- */

/* What the basic and the tilted medical assistance would pay on a
 * household's compliant self-paid medical cost of a year, so staff see what
 * identification is worth to the family. */
int cli_cmd_medcalc(cli_t *cli, const cli_args_t *a)
{
    const char *year = cli_opt(a, "--year");
    int64_t y = 0;
    if (year && cli_parse_i64(year, 1900, 2200, &y))
        return cli_fail(cli, CLI_EXIT_USAGE, "--year 须为年份 (a year): %s", year);
    char err[512];
    lv_policy_t *policy = lv_policy_load(cli->cfg.policy_path, err, sizeof err);
    if (!policy)
        return cli_fail(cli, CLI_EXIT_FAIL, "%s", err);
    PGconn *pg = cli_pg(cli);
    if (!pg) {
        lv_policy_destroy(&policy);
        return CLI_EXIT_DOWN;
    }
    const char *p[2] = {a->pos[0], year};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "WITH y AS (SELECT coalesce($2::int, extract(year FROM "
                        "  to_timestamp(max(settle_ms) / 1000.0) AT TIME ZONE 'UTC')::int) AS yr "
                        "  FROM medical_expense WHERE household_id = $1) "
                        "SELECT y.yr, coalesce(sum(e.compliant_self_fen), 0)::bigint, count(e.*) "
                        "FROM y LEFT JOIN medical_expense e ON e.household_id = $1 AND "
                        "  e.settle_ms >= extract(epoch FROM make_date(y.yr, 1, 1))::bigint * 1000 AND "
                        "  e.settle_ms < extract(epoch FROM make_date(y.yr + 1, 1, 1))::bigint * 1000 "
                        "WHERE y.yr IS NOT NULL GROUP BY y.yr",
                        2, p);
    if (e) {
        lv_policy_destroy(&policy);
        return cli_pg_fail(cli, e);
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        lv_policy_destroy(&policy);
        return cli_fail(cli, CLI_EXIT_FAIL, "户 %s 没有医保结算记录 (no medical settlements)",
                        a->pos[0]);
    }
    int yr = atoi(PQgetvalue(res, 0, 0));
    int64_t basis = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    long n = strtol(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    const lv_policy_version_t *v =
        lv_policy_at(policy, lv_days_from_civil(yr, 12, 31) * 86400000LL);
    if (!v)
        v = lv_policy_at(policy, lv_now_ms());
    if (!v) {
        lv_policy_destroy(&policy);
        return cli_fail(cli, CLI_EXIT_FAIL, "没有生效的政策版本 (no policy version in effect)");
    }
    char ex_basic[1024], ex_tilted[1024];
    int64_t basic = lv_payout_compute(&v->med_basic, basis, 0, ex_basic, sizeof ex_basic);
    int64_t tilted = lv_payout_compute(&v->med_tilted, basis, 0, ex_tilted, sizeof ex_tilted);
    if (cli->json) {
        cli_json_out(json_pack("{s:s, s:i, s:i, s:I, s:{s:I, s:s}, s:{s:I, s:s}, s:I, s:s}",
                               "household_id", a->pos[0], "year", yr, "settlements", (int)n,
                               "compliant_self_paid_fen", (json_int_t)basis, "basic", "amount_fen",
                               (json_int_t)basic, "computation", ex_basic, "tilted", "amount_fen",
                               (json_int_t)tilted, "computation", ex_tilted, "difference_fen",
                               (json_int_t)(tilted - basic), "policy_version", v->version));
    } else {
        char b[32], x[32], t[32], d[32];
        cli_yuan(basis, b, sizeof b);
        cli_yuan(basic, x, sizeof x);
        cli_yuan(tilted, t, sizeof t);
        cli_yuan(tilted - basic, d, sizeof d);
        printf("医疗救助测算 (medical assistance) 户 %s, %d 年, %ld 笔结算, 政策 %s\n", a->pos[0], yr,
               n, v->version);
        printf("  合规自付费用 compliant self-paid      %14s 元\n", b);
        printf("  基本医疗救助 basic assistance         %14s 元   %s\n", x, ex_basic);
        printf("  监测对象倾斜救助 tilted assistance    %14s 元   %s\n", t, ex_tilted);
        printf("  差额 (倾斜 − 基本) difference         %14s 元\n", d);
    }
    lv_policy_destroy(&policy);
    return CLI_EXIT_OK;
}

/* ---- the payout report ------------------------------------------------- */

static const char *const SQL_REPORT =
    "SELECT p.kind, coalesce(p.household_type, '') AS household_type, p.county, "
    "  to_char(to_timestamp(p.created_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM') AS month, "
    "  count(*) FILTER (WHERE p.status = 'posted') AS paid_count, "
    "  coalesce(sum(p.amount_fen) FILTER (WHERE p.status = 'posted'), 0)::bigint AS paid_fen, "
    "  count(*) FILTER (WHERE p.status = 'pending') AS pending_count, "
    "  coalesce(sum(p.amount_fen) FILTER (WHERE p.status = 'pending'), 0)::bigint AS pending_fen, "
    "  count(*) FILTER (WHERE p.status IN ('none', 'refused', 'voided')) AS unpaid_count "
    "FROM payout p WHERE p.county LIKE substr($1, 1, 6) || '%' "
    "GROUP BY 1, 2, 3, 4 ORDER BY 4, 3, 1, 2";

/* Payouts by kind, household type (脱贫户 / 一般农户), county and month,
 * with the funds' balances; --csv writes UTF-8 with a BOM so Excel opens
 * the Chinese correctly. */
int cli_cmd_payout_report(cli_t *cli, const cli_args_t *a)
{
    const char *region = cli_opt(a, "--region");
    if (region && strspn(region, "0123456789") != strlen(region))
        return cli_fail(cli, CLI_EXIT_USAGE, "--region 须为数字前缀 (a digit prefix): %s", region);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {region ? region : ""};
    PGresult *res, *funds;
    int e = lv_pg_query(pg, &res, SQL_REPORT, 1, p);
    if (e)
        return cli_pg_fail(cli, e);
    if ((e = lv_pg_query(pg, &funds,
                         "SELECT account_id AS fund, name, credits_posted - debits_posted - "
                         "debits_pending AS balance_fen, debits_posted AS paid_fen, "
                         "debits_pending AS pending_fen FROM account WHERE kind = 'fund' AND "
                         "(county IS NULL OR county LIKE substr($1, 1, 6) || '%') "
                         "ORDER BY account_id",
                         1, p))) {
        PQclear(res);
        return cli_pg_fail(cli, e);
    }
    if (cli_opt(a, "--csv")) {
        static const cli_col_t cols[] = {
            {"county", "县", CLI_F_TEXT, 0},        {"month", "月份", CLI_F_TEXT, 0},
            {"paid_count", "已发放笔数", CLI_F_TEXT, 0}, {"pending_count", "待发放笔数", CLI_F_TEXT, 0},
            {"unpaid_count", "未发放笔数", CLI_F_TEXT, 0}, {NULL, NULL, 0, 0}};
        cli_res_csv(stdout, res, cols);
    } else if (cli->json) {
        cli_json_out(json_pack("{s:o, s:o}", "payouts", cli_res_json(res), "funds",
                               cli_res_json(funds)));
    } else {
        printf("发放统计 (payouts by kind, household type, county and month)\n");
        cli_res_table(stdout, res, NULL, 2);
        printf("\n资金余额 (funds)\n");
        static const cli_col_t fcols[] = {{"name", "名称", CLI_F_AUTO, 0}, {NULL, NULL, 0, 0}};
        cli_res_table(stdout, funds, fcols, 2);
    }
    PQclear(res);
    PQclear(funds);
    return CLI_EXIT_OK;
}
