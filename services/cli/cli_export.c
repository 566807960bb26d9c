/* The monitoring ledger (监测对象台账): one row per household case, for the
 * county's spreadsheet. CSV that Excel opens in Chinese by default; --json
 * for scripts. ID numbers and phones are masked as everywhere. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_pg.h"

static const char *const SQL_LEDGER =
    "SELECT c.household_id, h.region_code, h.household_type, hd.name AS head_name, "
    "  hd.id_number AS head_id_number, coalesce(s.members, c.members) AS members, "
    "  c.category, c.grade, c.risk_factors, c.primary_risk AS primary_risk_factor, "
    "  coalesce(c.income_fen, s.income_fen) AS income_fen, s.pci_fen, "
    "  coalesce(c.rigid_fen, s.rigid_fen) AS rigid_fen, s.pci_after_fen, c.status, c.case_id, "
    "  coalesce((SELECT max(t.at_ms) FROM timeline t WHERE t.case_id = c.case_id "
    "    AND t.action LIKE 'county_approve%'), c.closed_ms) AS identified_at, "
    "  (SELECT coalesce(sum(p.amount_fen), 0)::bigint FROM payout p WHERE p.case_id = c.case_id "
    "    AND p.status = 'posted') AS paid_fen, c.policy_version "
    "FROM hcase c JOIN household h USING (household_id) "
    "LEFT JOIN household_state s USING (household_id) "
    "LEFT JOIN LATERAL (SELECT p.name, p.id_number FROM person p "
    "  WHERE p.household_id = c.household_id "
    "  ORDER BY (p.relation = '户主') DESC NULLS LAST, p.id_number LIMIT 1) hd ON true "
    "WHERE h.region_code LIKE $1 || '%' AND ($2::text = 'all' OR c.status = $2) "
    "ORDER BY h.region_code, c.household_id, c.episode";

/* levee export [--region PREFIX] [--status S|all] [--out FILE] */
int cli_cmd_export(cli_t *cli, const cli_args_t *a)
{
    const char *region = cli_opt(a, "--region");
    const char *status = cli_opt(a, "--status");
    const char *path = cli_opt(a, "--out");
    if (region && strspn(region, "0123456789") != strlen(region))
        return cli_fail(cli, CLI_EXIT_USAGE, "--region 须为数字前缀 (a digit prefix): %s", region);
    static const char *const STATUSES[] = {"all", "candidate", "verifying", "reviewing",
                                           "publicizing", "monitoring", "eliminated", "rejected",
                                           NULL};
    int known = 0;
    for (int i = 0; status && STATUSES[i]; i++)
        known |= !strcmp(status, STATUSES[i]);
    if (status && !known)
        return cli_fail(cli, CLI_EXIT_USAGE, "--status 无效 (unknown status): %s", status);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[2] = {region ? region : "", status ? status : "monitoring"};
    PGresult *res;
    int e = lv_pg_query(pg, &res, SQL_LEDGER, 2, p);
    if (e)
        return cli_pg_fail(cli, e);
    if (cli->json) {
        cli_json_out(cli_res_json(res));
        PQclear(res);
        return CLI_EXIT_OK;
    }
    FILE *out = path ? fopen(path, "wb") : stdout;
    if (!out) {
        PQclear(res);
        return cli_fail(cli, CLI_EXIT_FAIL, "无法写入 (cannot write) %s", path);
    }
    static const cli_col_t cols[] = {{"status", "案件状态", CLI_F_TEXT, 0},
                                     {"identified_at", NULL, CLI_F_DATE, 0},
                                     {NULL, NULL, 0, 0}};
    cli_res_csv(out, res, cols);
    int rows = PQntuples(res);
    PQclear(res);
    if (path) {
        if (fclose(out) != 0)
            return cli_fail(cli, CLI_EXIT_FAIL, "写入失败 (write failed) %s", path);
        fprintf(stderr, "监测对象台账 %d 户已导出到 %s (%d rows written)\n", rows, path, rows);
    }
    return CLI_EXIT_OK;
}
