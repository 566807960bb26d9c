/* Decisions: a verification result or a procedure step goes to dispatch as a
 * Command and dispatch answers ok / dup / refused / dead. Investigators are
 * registered directly in Postgres. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cli.h"
#include "cli_table.h"
#include "levee.pb-c.h"
#include "lv_bus.h"
#include "lv_err.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_time.h"

#define CALL_TIMEOUT_MS 10000
#define MAX_MEMBERS 100
#define MAX_TEXT 4000 /* bytes of a note or findings */

static const char *const s_risks[] = {
    "因病", "因残", "因学", "因灾", "因意外事故", "因务工就业不稳", "因产业项目失败", "大额刚性支出",
    "其他", NULL,
};

/* Steps and the role that takes each by default. */
static const struct {
    const char *step, *role;
} s_steps[] = {
    {"screen", "town"},          {"deliberate", "village"}, {"publicize", "village"},
    {"object", "village"},       {"town_review", "town"},   {"county_approve", "county"},
    {"reject", "county"},        {"eliminate", "county"},
};

static bool in_list(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

const char *cli_default_actor(void)
{
    const char *u = getenv("USER");
    return u && *u ? u : "cli";
}

/* "cli:" and 16 random hex characters: the command's idempotency key. */
int cli_new_cmd_id(char out[21])
{
    if (sodium_init() < 0)
        return LV_EIO;
    unsigned char b[8];
    randombytes_buf(b, sizeof b);
    memcpy(out, "cli:", 4);
    sodium_bin2hex(out + 4, 17, b, sizeof b);
    return 0;
}

static int check_text(cli_t *cli, const char *opt, const char *v)
{
    if (v && strlen(v) > MAX_TEXT)
        return cli_fail(cli, CLI_EXIT_USAGE, "%s 太长 (longer than %d bytes)", opt, MAX_TEXT);
    return 0;
}

/* Sends cmd to dispatch and reports the answer. */
static int send_command(cli_t *cli, Levee__Command *cmd)
{
    return cli_send_command(cli, cli->cfg.ep_dispatch, "dispatch", cmd);
}

int cli_send_command(cli_t *cli, const char *endpoint, const char *service, Levee__Command *cmd)
{
    return cli_send_message(cli, endpoint, service, cmd->cmd_id, "cmd", &cmd->base, "cmd_id");
}

int cli_send_message(cli_t *cli, const char *endpoint, const char *service, const char *msg_id,
                     const char *type, const struct ProtobufCMessage *msg, const char *id_key)
{
    void *z = zmq_ctx_new();
    if (!z)
        return cli_fail(cli, CLI_EXIT_FAIL, "zmq_ctx_new failed");
    char status[16] = "";
    Levee__Reply *reply = NULL;
    int e = lv_bus_call(z, endpoint, msg_id, type, msg, CALL_TIMEOUT_MS, status, &reply);
    zmq_ctx_term(z);
    if (e == LV_ENOMEM)
        return cli_fail(cli, CLI_EXIT_FAIL, "内存不足 (out of memory)");
    if (e)
        return cli_fail(cli, CLI_EXIT_DOWN, "%s 无响应 (%s not reachable at %s)", service, service,
                        endpoint);
    const char *detail = reply && reply->detail ? reply->detail : "";
    const char *error = reply && reply->error ? reply->error : "";
    bool ok = !strcmp(status, "ok") || !strcmp(status, "dup");
    int rc = ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (cli->json) {
        json_t *o = json_object();
        json_object_set_new(o, id_key, json_string(msg_id));
        json_object_set_new(o, "status", json_string(status));
        json_object_set_new(o, "ok", json_boolean(ok));
        json_object_set_new(o, "detail", json_string(detail));
        json_object_set_new(o, "error", *error ? json_string(error) : json_null());
        cli_json_out(o);
    } else if (ok) {
        printf("%s%s\n", *detail ? detail : "已受理 (accepted)",
               !strcmp(status, "dup") ? "  (重复提交, 未再处理 duplicate, no change)" : "");
    } else if (!strcmp(status, "refused")) {
        fprintf(stderr, "被拒绝 (refused): %s\n", *error ? error : "-");
    } else if (!strcmp(status, "dead")) {
        fprintf(stderr, "命令无效, 已转入死信 (invalid command, dead-lettered): %s\n",
                *error ? error : "-");
    } else {
        fprintf(stderr, "%s 回复未知状态 (unknown reply status) %s: %s\n", service, status, error);
    }
    if (reply)
        levee__reply__free_unpacked(reply, NULL);
    return rc;
}

int cli_parse_money(cli_t *cli, const char *opt, const char *v, int64_t *fen)
{
    if (!v)
        return cli_fail(cli, CLI_EXIT_USAGE, "缺少 %s 元 (%s is required)", opt, opt);
    const char *reason = NULL;
    if (lv_money_parse(v, strlen(v), fen, &reason))
        return cli_fail(cli, CLI_EXIT_USAGE, "%s 金额无效 (bad amount) \"%s\": %s", opt, v,
                        reason ? reason : "-");
    return 0;
}

int cli_cmd_task_result(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    int rc;
    const char *task = a->pos[0];
    if (!*task)
        return cli_fail(cli, CLI_EXIT_USAGE, "缺少任务编号 (TASK_ID is empty)");
    if ((rc = cli_parse_money(cli, "--income", cli_opt(a, "--income"), &cmd.income_fen)) ||
        (rc = cli_parse_money(cli, "--rigid", cli_opt(a, "--rigid"), &cmd.rigid_fen)))
        return rc;
    const char *m = cli_opt(a, "--members");
    int64_t members;
    if (!m || cli_parse_i64(m, 1, MAX_MEMBERS, &members))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "--members 须为 1..%d 的整数 (household size, a whole number) %s",
                        MAX_MEMBERS, m ? m : "");
    const char *excluded = cli_opt(a, "--excluded");
    if (excluded && !*excluded)
        return cli_fail(cli, CLI_EXIT_USAGE, "--excluded 需要原因 (needs a reason)");
    const char *risk = cli_opt(a, "--risk");
    if (risk && !in_list(risk, s_risks))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "未知风险类型 (unknown risk type) %s; one of 因病 因残 因学 因灾 因意外事故 "
                        "因务工就业不稳 因产业项目失败 大额刚性支出 其他",
                        risk);
    const char *findings = cli_opt(a, "--findings");
    const char *actor = cli_opt(a, "--actor");
    if ((rc = check_text(cli, "--findings", findings)) || (rc = check_text(cli, "--excluded", excluded)))
        return rc;
    if (cli_new_cmd_id(id))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成命令编号 (no random source)");
    /* protobuf-c fields are char *; the strings are only read while packing. */
    cmd.cmd_id = id;
    cmd.name = (char *)"task_result";
    cmd.task_id = (char *)task;
    cmd.members = (int32_t)members;
    cmd.excluded = excluded != NULL;
    cmd.exclusion_reason = (char *)(excluded ? excluded : "");
    cmd.risk_factor = (char *)(risk ? risk : "");
    cmd.findings = (char *)(findings ? findings : "");
    cmd.risk_remains = cli_opt(a, "--risk-remains") != NULL;
    cmd.declared_refused = cli_opt(a, "--refuse-declared") != NULL;
    cmd.actor = (char *)(actor && *actor ? actor : cli_default_actor());
    cmd.role = (char *)"investigator";
    cmd.at_ms = lv_now_ms();
    return send_command(cli, &cmd);
}

int cli_cmd_step(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    int rc;
    const char *case_id = a->pos[0], *step = a->pos[1], *decision = a->pos[2];
    if (!*case_id)
        return cli_fail(cli, CLI_EXIT_USAGE, "缺少案件编号 (CASE_ID is empty)");
    const char *role = NULL;
    for (size_t i = 0; i < sizeof s_steps / sizeof s_steps[0]; i++)
        if (!strcmp(step, s_steps[i].step))
            role = s_steps[i].role;
    if (!role)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "未知环节 (unknown step) %s; one of screen deliberate publicize object "
                        "town_review county_approve reject eliminate",
                        step);
    if (strcmp(decision, "pass") != 0 && strcmp(decision, "fail") != 0)
        return cli_fail(cli, CLI_EXIT_USAGE, "决定须为 pass 或 fail (decision must be pass|fail): %s",
                        decision);
    const char *r = cli_opt(a, "--role");
    if (r && !*r)
        return cli_fail(cli, CLI_EXIT_USAGE, "--role 为空 (empty role)");
    const char *note = cli_opt(a, "--note");
    const char *actor = cli_opt(a, "--actor");
    if ((rc = check_text(cli, "--note", note)))
        return rc;
    if (cli_new_cmd_id(id))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成命令编号 (no random source)");
    cmd.cmd_id = id;
    cmd.name = (char *)"step";
    cmd.case_id = (char *)case_id;
    cmd.step = (char *)step;
    cmd.decision = (char *)decision;
    cmd.note = (char *)(note ? note : "");
    cmd.actor = (char *)(actor && *actor ? actor : cli_default_actor());
    cmd.role = (char *)(r ? r : role);
    cmd.at_ms = lv_now_ms();
    return send_command(cli, &cmd);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int cli_cmd_investigator_add(cli_t *cli, const cli_args_t *a)
{
    const char *id = a->pos[0], *name = a->pos[1], *prefix = a->pos[2];
    if (!*id || strlen(id) > 64)
        return cli_fail(cli, CLI_EXIT_USAGE, "调查员编号须为 1..64 字节 (ID must be 1..64 bytes)");
    if (!*name || strlen(name) > 200)
        return cli_fail(cli, CLI_EXIT_USAGE, "姓名须为 1..200 字节 (NAME must be 1..200 bytes)");
    if (!all_digits(prefix) || strlen(prefix) > 12)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "区划前缀须为 1..12 位数字 (REGION_PREFIX must be 1..12 digits): %s", prefix);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[] = {id, name, prefix};
    int e = lv_pg_cmd(pg,
                      "INSERT INTO investigator (investigator_id, name, region_prefix, active) "
                      "VALUES ($1, $2, $3, true) ON CONFLICT (investigator_id) DO UPDATE SET "
                      "name = EXCLUDED.name, region_prefix = EXCLUDED.region_prefix, active = true",
                      3, p);
    if (e)
        return cli_pg_fail(cli, e);
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:s, s:s, s:b}", "investigator_id", id, "name", name,
                               "region_prefix", prefix, "active", 1));
    else
        printf("调查员已登记 (investigator saved): %s %s, 负责区划 region %s\n", id, name, prefix);
    return CLI_EXIT_OK;
}

/* The monthly sweep (平台监测分析) goes to matching: --month YYYY-MM (default
 * last month) travels as the month's first day in at_ms, --county as
 * region_code ("" = every county). */
int cli_cmd_sweep(cli_t *cli, const cli_args_t *a)
{
    Levee__Command cmd = LEVEE__COMMAND__INIT;
    char id[21];
    const char *month = cli_opt(a, "--month");
    const char *county = cli_opt(a, "--county");
    if (month) {
        int64_t y, mo;
        char ys[5] = "", ms[3] = "";
        if (strlen(month) == 7 && month[4] == '-') {
            memcpy(ys, month, 4);
            memcpy(ms, month + 5, 2);
        }
        if (!all_digits(ys) || !all_digits(ms) || cli_parse_i64(ys, 1900, 2100, &y) ||
            cli_parse_i64(ms, 1, 12, &mo))
            return cli_fail(cli, CLI_EXIT_USAGE, "--month 须为 YYYY-MM (must be YYYY-MM): %s",
                            month);
        cmd.at_ms = lv_days_from_civil((int)y, (int)mo, 1) * LV_DAY_MS;
    }
    if (county && (strlen(county) != 6 || !all_digits(county)))
        return cli_fail(cli, CLI_EXIT_USAGE, "--county 须为 6 位县代码 (must be a 6-digit county code): %s",
                        county);
    if (cli_new_cmd_id(id))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成命令编号 (no random source)");
    cmd.cmd_id = id;
    cmd.name = (char *)"sweep";
    cmd.region_code = (char *)(county ? county : "");
    cmd.actor = (char *)cli_default_actor();
    cmd.role = (char *)"county";
    return cli_send_command(cli, cli->cfg.ep_matching, "matching", &cmd);
}
