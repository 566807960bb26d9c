/* Tokens of the HTTP API (levee-gateway): issue one for a role and a region
 * prefix (the token is shown once; only its hash is stored), list them,
 * revoke one, or check the token in a file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_err.h"
#include "lv_pg.h"
#include "lv_time.h"
#include "lv_token.h"

#define LABEL_MAX 128

static const char *const s_usage =
    "token issue ROLE REGION_PREFIX [--investigator ID] [--label TEXT] [--out FILE] | "
    "token list [--all] | token revoke TOKEN_ID | token check FILE";

/* Writes the token to a file only its owner can read. */
static int write_token_file(cli_t *cli, const char *path, const char *token)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return cli_fail(cli, CLI_EXIT_FAIL, "无法写入 (cannot write) %s: %s", path, strerror(errno));
    size_t n = strlen(token);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    ok = close(fd) == 0 && ok;
    if (!ok)
        return cli_fail(cli, CLI_EXIT_FAIL, "无法写入 (cannot write) %s", path);
    return 0;
}

static int token_issue(cli_t *cli, const cli_args_t *a)
{
    if (a->npos != 3)
        return cli_fail(cli, CLI_EXIT_USAGE, "用法 usage: %s", s_usage);
    const char *role = a->pos[1], *prefix = a->pos[2], *why;
    const char *inv = cli_opt(a, "--investigator"), *label = cli_opt(a, "--label");
    const char *out = cli_opt(a, "--out");
    if (lv_token_check_scope(role, prefix, &why))
        return cli_fail(cli, CLI_EXIT_USAGE, "%s", why);
    bool is_inv = lv_token_role(role) == LV_ROLE_INVESTIGATOR;
    if (is_inv != (inv != NULL))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "调查员令牌须且只有调查员令牌可带 --investigator ID (an investigator token, "
                        "and only one, names its investigator with --investigator)");
    if (label && strlen(label) > LABEL_MAX)
        return cli_fail(cli, CLI_EXIT_USAGE, "--label 太长 (longer than %d bytes)", LABEL_MAX);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    char one[8];
    const char *pi[1] = {inv};
    int e = inv ? lv_pg_scalar(pg, one, sizeof one,
                               "SELECT 1 FROM investigator WHERE investigator_id = $1", 1, pi)
                : 0;
    if (e == LV_ENOTFOUND)
        return cli_fail(cli, CLI_EXIT_FAIL,
                        "调查员不存在 (no such investigator): %s; levee investigator-add first", inv);
    if (e)
        return cli_pg_fail(cli, e);
    char token[LV_TOKEN_MAX], id[LV_TOKEN_ID_MAX], hash[LV_TOKEN_HASH_HEX], now[24];
    if (lv_token_new(token, id) || lv_token_hash(token, strlen(token), hash))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成令牌 (no random source)");
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[7] = {id, hash, role, prefix, inv, label ? label : "", now};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO api_token (token_id, token_hash, role, region_prefix, "
                       "investigator_id, label, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                       7, p)))
        return cli_pg_fail(cli, e);
    int rc = out ? write_token_file(cli, out, token) : 0;
    if (rc)
        return rc;
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "token_id", id, "role", role, "region_prefix",
                              prefix, "label", label ? label : "");
        json_object_set_new(o, "investigator_id", inv ? json_string(inv) : json_null());
        json_object_set_new(o, out ? "file" : "token", json_string(out ? out : token));
        cli_json_out(o);
    } else if (out) {
        printf("令牌已写入 (token written to) %s\n  编号 id %s, 角色 role %s, 区划 region %s\n", out,
               id, role, prefix);
    } else {
        printf("令牌 token (只显示这一次, 请妥善保存 shown only once, keep it safe):\n  %s\n"
               "  编号 id %s, 角色 role %s, 区划 region %s%s%s\n",
               token, id, role, prefix, inv ? ", 调查员 investigator " : "", inv ? inv : "");
    }
    return CLI_EXIT_OK;
}

static int token_list(cli_t *cli, const cli_args_t *a)
{
    if (a->npos != 1)
        return cli_fail(cli, CLI_EXIT_USAGE, "用法 usage: %s", s_usage);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {cli_opt(a, "--all") ? "t" : "f"};
    PGresult *r;
    int e = lv_pg_query(pg, &r,
                        "SELECT token_id, role, region_prefix, investigator_id, label, "
                        "created_ms AS created, revoked_ms AS revoked FROM api_token "
                        "WHERE $1::boolean OR revoked_ms IS NULL ORDER BY created_ms, token_id",
                        1, p);
    if (e)
        return cli_pg_fail(cli, e);
    static const cli_col_t cols[] = {
        {"created", "签发时间", CLI_F_DATETIME, 0},
        {"revoked", "吊销时间", CLI_F_DATETIME, 0},
        {NULL, NULL, 0, 0},
    };
    cli_res_print(r, cols, cli->json);
    PQclear(r);
    return CLI_EXIT_OK;
}

static int token_revoke(cli_t *cli, const cli_args_t *a)
{
    if (a->npos != 2)
        return cli_fail(cli, CLI_EXIT_USAGE, "用法 usage: %s", s_usage);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[2] = {a->pos[1], now};
    int64_t n = lv_pg_cmd_count(pg,
                                "UPDATE api_token SET revoked_ms = $2 WHERE token_id = $1 "
                                "AND revoked_ms IS NULL",
                                2, p);
    if (n < 0)
        return cli_pg_fail(cli, (int)n);
    if (n == 0)
        return cli_fail(cli, CLI_EXIT_FAIL,
                        "没有这个有效令牌 (no such token, or already revoked): %s", a->pos[1]);
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:b}", "token_id", a->pos[1], "revoked", 1));
    else
        printf("令牌已吊销 (token revoked): %s\n", a->pos[1]);
    return CLI_EXIT_OK;
}

/* Exit 0 when the file holds a token that is valid now. */
static int token_check(cli_t *cli, const cli_args_t *a)
{
    if (a->npos != 2)
        return cli_fail(cli, CLI_EXIT_USAGE, "用法 usage: %s", s_usage);
    char line[LV_TOKEN_TEXT_MAX + 2] = "";
    FILE *f = fopen(a->pos[1], "r");
    if (!f)
        return cli_fail(cli, CLI_EXIT_FAIL, "无法读取 (cannot read) %s: %s", a->pos[1],
                        strerror(errno));
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    char hash[LV_TOKEN_HASH_HEX];
    if (!got || !*line || lv_token_hash(line, strlen(line), hash))
        return cli_fail(cli, CLI_EXIT_FAIL, "文件中没有令牌 (no token in) %s", a->pos[1]);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {hash};
    char id[LV_TOKEN_ID_MAX];
    int e = lv_pg_scalar(pg, id, sizeof id,
                         "SELECT token_id FROM api_token WHERE token_hash = $1 AND revoked_ms IS NULL",
                         1, p);
    if (e == LV_ENOTFOUND)
        return cli_fail(cli, CLI_EXIT_FAIL, "令牌无效或已吊销 (invalid or revoked token)");
    if (e)
        return cli_pg_fail(cli, e);
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:b}", "token_id", id, "valid", 1));
    else
        printf("令牌有效 (valid token): %s\n", id);
    return CLI_EXIT_OK;
}

int cli_cmd_token(cli_t *cli, const cli_args_t *a)
{
    const char *sub = a->pos[0];
    if (!strcmp(sub, "issue"))
        return token_issue(cli, a);
    if (!strcmp(sub, "list"))
        return token_list(cli, a);
    if (!strcmp(sub, "revoke"))
        return token_revoke(cli, a);
    if (!strcmp(sub, "check"))
        return token_check(cli, a);
    return cli_fail(cli, CLI_EXIT_USAGE, "未知子命令 (unknown subcommand) %s; %s", sub, s_usage);
}
