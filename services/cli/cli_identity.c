/* levee identity: the review queue of identity matching (身份复核). Rows whose
 * ID number was missing or broken and that lv_ident could not link on its
 * own wait here with their candidates; a person links one to the right
 * registry person or dismisses it. The decision is recorded in Postgres and
 * levee-matching feeds a linked row on once, as that person's. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_pg.h"
#include "lv_review.h"

#define NOTE_MAX 4000

static const char *const s_usage =
    "identity list [--region P] [--status open|linked|dismissed|all] [--limit N] | "
    "identity link REVIEW_ID ID_NUMBER|CANDIDATE_NO [--note TEXT] [--actor NAME] | "
    "identity dismiss REVIEW_ID --note TEXT [--actor NAME]";

static int identity_list(cli_t *cli, const cli_args_t *a)
{
    char limit[24];
    int rc = cli_parse_limit(cli, a, limit);
    if (rc)
        return rc;
    const char *status = cli_opt(a, "--status"), *region = cli_opt(a, "--region");
    static const char *const st[] = {"open", "linked", "dismissed", "all", NULL};
    bool known = !status;
    for (int i = 0; status && st[i]; i++)
        known = known || !strcmp(status, st[i]);
    if (!known)
        return cli_fail(cli, CLI_EXIT_USAGE, "未知状态 (unknown status) %s; one of open linked dismissed all",
                        status);
    if (!status)
        status = "open";
    if (region && (!*region || strspn(region, "0123456789") != strlen(region) || strlen(region) > 12))
        return cli_fail(cli, CLI_EXIT_USAGE, "--region 须为区划代码前缀 (1..12 digits): %s", region);
    static const cli_col_t cols[] = {
        {"created_at", NULL, CLI_F_DATETIME, 0},
        {"resolved_at", NULL, CLI_F_DATETIME, 0},
        {"event_at", NULL, CLI_F_DATE, 0},
        {"candidates", NULL, CLI_F_AUTO, 80},
        {NULL, NULL, 0, 0},
    };
    const char *p[] = {region ? region : "", status, limit};
    return cli_list(cli,
                    "SELECT r.review_id, r.status, r.source, r.record_id, r.region_code, "
                    LV_REVIEW_RAW_ID_MASKED " AS raw_id_number, r.name, r.birth_date, "
                    "r.event_ms AS event_at, r.amount_fen, r.reason, "
                    LV_REVIEW_CANDIDATES_MASKED " AS candidates, "
                    "left(r.chosen_id, 6) || '********' || right(r.chosen_id, 4) AS chosen_id, "
                    "r.note, r.resolved_by, r.resolved_ms AS resolved_at, r.fed_ms IS NOT NULL AS fed, "
                    "r.created_ms AS created_at FROM identity_review r "
                    "WHERE " LV_REVIEW_IN_REGION("1") " AND ($2 = 'all' OR r.status = $2) "
                    "ORDER BY r.review_id LIMIT $3::int",
                    3, p, cols, limit);
}

static int identity_resolve(cli_t *cli, const cli_args_t *a, const char *action)
{
    int64_t review_id;
    if (a->npos < 2 || cli_parse_i64(a->pos[1], 1, INT64_MAX, &review_id))
        return cli_fail(cli, CLI_EXIT_USAGE, "复核编号须为正整数 (REVIEW_ID must be a positive integer); %s",
                        s_usage);
    const char *note = cli_opt(a, "--note");
    if (note && strlen(note) > NOTE_MAX)
        return cli_fail(cli, CLI_EXIT_USAGE, "--note 太长 (longer than %d bytes)", NOTE_MAX);
    lv_review_decision_t d = {.review_id = review_id, .region_prefix = "", .action = action,
                              .note = note, .role = "county"};
    const char *actor = cli_opt(a, "--actor");
    d.actor = actor && *actor ? actor : cli_default_actor();
    lv_idnum_t id;
    if (!strcmp(action, "link")) {
        if (a->npos != 3)
            return cli_fail(cli, CLI_EXIT_USAGE, "用法 (usage): %s", s_usage);
        const char *who = a->pos[2], *why = "";
        int64_t n;
        if (strlen(who) <= 2 && !cli_parse_i64(who, 1, 99, &n)) {
            d.candidate = (int)n;
        } else if (lv_idnum_parse(who, strlen(who), &id, &why)) {
            return cli_fail(cli, CLI_EXIT_USAGE, "身份证号无效 (bad ID number): %s", why);
        } else {
            d.id_number = id.s;
        }
    } else {
        if (a->npos != 2)
            return cli_fail(cli, CLI_EXIT_USAGE, "用法 (usage): %s", s_usage);
        if (!note || !*note)
            return cli_fail(cli, CLI_EXIT_USAGE, "驳回须说明理由 (dismiss needs --note WHY)");
    }
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    char why[512] = "";
    int e = lv_review_resolve(pg, &d, why, sizeof why);
    if (e == LV_ENOTFOUND || e == LV_ESTATE || e == LV_EINVAL)
        return cli_fail(cli, CLI_EXIT_FAIL, "被拒绝 (refused): %s", why);
    if (e)
        return cli_pg_fail(cli, e);
    bool link = !strcmp(action, "link");
    if (cli->json)
        cli_json_out(json_pack("{s:I, s:s, s:b}", "review_id", (json_int_t)review_id, "status",
                               link ? "linked" : "dismissed", "ok", 1));
    else
        printf("复核 %lld %s\n", (long long)review_id,
               link ? "已关联; levee-matching 将按所选人员处理该记录 (linked; matching feeds the row "
                      "on as that person's)"
                    : "已驳回 (dismissed)");
    return CLI_EXIT_OK;
}

int cli_cmd_identity(cli_t *cli, const cli_args_t *a)
{
    const char *sub = a->pos[0];
    if (!strcmp(sub, "list"))
        return a->npos == 1 ? identity_list(cli, a)
                            : cli_fail(cli, CLI_EXIT_USAGE, "用法 (usage): %s", s_usage);
    if (!strcmp(sub, "link") || !strcmp(sub, "dismiss"))
        return identity_resolve(cli, a, sub);
    return cli_fail(cli, CLI_EXIT_USAGE, "未知子命令 (unknown subcommand) %s; %s", sub, s_usage);
}
