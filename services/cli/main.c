/* levee-cli: the command line of Levee (防返贫动态监测与帮扶平台). Reads go
 * straight to Postgres with parameterised queries; decisions go to dispatch
 * as Commands over the bus. Text for people by default, one JSON document on
 * stdout with --json. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_err.h"
#include "lv_log.h"

typedef struct {
    const char *name;
    int (*fn)(cli_t *cli, const cli_args_t *a);
    int min_pos, max_pos;
    const cli_opt_t *opts; /* ends with a NULL name */
    const char *synopsis;
    const char *what;
} cli_cmd_t;

static const cli_opt_t o_none[] = {{NULL, false}};
static const cli_opt_t o_load[] = {
    {"--no-wait", false}, {"--timeout", true}, {"--encoding", true}, {NULL, false}};
static const cli_opt_t o_wait[] = {{"--timeout", true}, {NULL, false}};
static const cli_opt_t o_task_result[] = {
    {"--income", true}, {"--members", true},  {"--rigid", true}, {"--excluded", true},
    {"--risk", true},   {"--findings", true}, {"--actor", true}, {"--risk-remains", false},
    {"--refuse-declared", false}, {NULL, false},
};
static const cli_opt_t o_step[] = {
    {"--note", true}, {"--actor", true}, {"--role", true}, {NULL, false}};
static const cli_opt_t o_cases[] = {
    {"--status", true}, {"--region", true}, {"--limit", true}, {NULL, false}};
static const cli_opt_t o_tasks[] = {
    {"--assignee", true}, {"--status", true}, {"--limit", true}, {NULL, false}};
static const cli_opt_t o_payouts[] = {{"--household", true}, {"--limit", true}, {NULL, false}};
static const cli_opt_t o_inbox[] = {{"--limit", true}, {NULL, false}};
static const cli_opt_t o_pay[] = {{"--all", false},  {"--region", true},  {"--actor", true},
                                  {"--role", true},  {"--note", true},    {"--channel", true},
                                  {NULL, false}};
static const cli_opt_t o_export[] = {{"--region", true}, {"--status", true}, {"--out", true},
                                     {NULL, false}};
static const cli_opt_t o_consumer[] = {{"--consumer", true}, {NULL, false}};
static const cli_opt_t o_year[] = {{"--year", true}, {NULL, false}};
static const cli_opt_t o_report[] = {{"--region", true}, {"--csv", false}, {NULL, false}};
static const cli_opt_t o_token[] = {{"--investigator", true}, {"--label", true}, {"--out", true},
                                    {"--all", false}, {NULL, false}};
static const cli_opt_t o_identity[] = {{"--region", true}, {"--status", true}, {"--limit", true},
                                       {"--note", true},   {"--actor", true},  {NULL, false}};
static const cli_opt_t o_sweep[] = {{"--month", true}, {"--county", true}, {NULL, false}};
static const cli_opt_t o_shadow[] = {
    {"--at", true}, {"--region", true}, {"--csv", false}, {NULL, false}};
static const cli_opt_t o_measure[] = {{"--kind", true},  {"--note", true}, {"--delivered", true},
                                      {"--actor", true}, {"--role", true}, {NULL, false}};
static const cli_opt_t o_delivered[] = {
    {"--date", true}, {"--actor", true}, {"--role", true}, {NULL, false}};
static const cli_opt_t o_measures[] = {{"--case", true}, {"--household", true}, {NULL, false}};
static const cli_opt_t o_county[] = {{"--county", true}, {NULL, false}};
static const cli_opt_t o_money[] = {{"--note", true}, {"--actor", true}, {"--role", true},
                                    {"--date", true}, {NULL, false}};
static const cli_opt_t o_channel[] = {{"--secret-env", true}, {"--secret-file", true},
                                      {"--from", true},       {"--user", true},
                                      {"--rate", true},       {NULL, false}};
static const cli_opt_t o_deliveries[] = {{"--status", true}, {"--recipient", true},
                                         {"--event", true},  {"--limit", true},
                                         {NULL, false}};
static const cli_opt_t o_notify_test[] = {
    {"--household", true}, {"--case", true},     {"--title", true},  {"--body", true},
    {"--assignee", true},  {"--grade", true},    {"--event-id", true}, {"--msg-id", true},
    {NULL, false}};

static const cli_cmd_t s_cmds[] = {
    {"load", cli_cmd_load, 2, 2, o_load,
     "load SOURCE FILE [--encoding utf-8|gb18030] [--no-wait] [--timeout S]",
     "导入数据文件并显示进度 (load a feed file); SOURCE: registry medical civil disaster "
     "education income declaration visit"},
    {"import", cli_cmd_import, 1, 1, o_none, "import ID", "导入结果 (an import's summary)"},
    {"rejects", cli_cmd_rejects, 1, 1, o_none, "rejects ID",
     "全部拒绝行, CSV (all rejected rows of an import as CSV)"},
    {"wait-idle", cli_cmd_wait_idle, 0, 0, o_wait, "wait-idle [--timeout S]",
     "等待全部处理完毕 (wait until no import is pending and the outbox is empty)"},
    {"investigator-add", cli_cmd_investigator_add, 3, 3, o_none,
     "investigator-add ID NAME REGION_PREFIX", "登记或更新调查员 (add or update an investigator)"},
    {"task-result", cli_cmd_task_result, 1, 1, o_task_result,
     "task-result TASK_ID --income 元 --members N --rigid 元 [--excluded REASON] [--risk 因病] "
     "[--findings TEXT] [--actor NAME] [--risk-remains] [--refuse-declared]",
     "提交入户核查、抽样复核或回访结果 (submit a verify, recheck or revisit result; "
     "--risk-remains: the 回访 finds the risk not resolved; --refuse-declared: 申报金额不予认定, "
     "the household's declared amounts do not count as rigid expenditure)"},
    {"step", cli_cmd_step, 3, 3, o_step,
     "step CASE_ID STEP pass|fail [--note TEXT] [--actor NAME] [--role ROLE]",
     "办理流程环节 (record a step); STEP: screen deliberate publicize object town_review "
     "county_approve reject eliminate"},
    {"sweep", cli_cmd_sweep, 0, 0, o_sweep, "sweep [--month YYYY-MM] [--county C]",
     "月度监测分析 (monthly sweep: wage income drops → 因务工就业不稳, visit reminders for the "
     "yellow watch list; default last month, every county)"},
    {"cases", cli_cmd_cases, 0, 0, o_cases, "cases [--status S] [--region PREFIX] [--limit N]",
     "案件列表 (cases)"},
    {"tasks", cli_cmd_tasks, 0, 0, o_tasks, "tasks [--assignee A] [--status S] [--limit N]",
     "核实任务 (verification tasks)"},
    {"payouts", cli_cmd_payouts, 0, 0, o_payouts, "payouts [--household H] [--limit N]",
     "帮扶资金发放 (payouts)"},
    {"funds", cli_cmd_funds, 0, 0, o_none, "funds", "资金账户 (funds and balances)"},
    {"dead-letters", cli_cmd_dead_letters, 0, 0, o_consumer, "dead-letters [--consumer SVC]",
     "死信: 无法处理的消息及原因 (messages a service could not handle, with the reason)"},
    {"replay", cli_cmd_replay, 1, 1, o_none, "replay DEAD_LETTER_ID",
     "原因排除后重发一封死信 (send a dead letter again once its cause is fixed)"},
    {"export", cli_cmd_export, 0, 0, o_export,
     "export [--region PREFIX] [--status monitoring|all|...] [--out FILE]",
     "导出监测对象台账 CSV, Excel 可直接打开 (the monitoring ledger as CSV; --json for scripts)"},
    {"channels", cli_cmd_channels, 0, 0, o_none, "channels",
     "各支付渠道已付出金额 (what left through each payment channel)"},
    {"inbox", cli_cmd_inbox, 0, 1, o_inbox, "inbox [RECIPIENT] [--limit N]",
     "消息 (notifications, newest first)"},
    {"household", cli_cmd_household, 1, 1, o_none, "household ID",
     "一户一档 (a household's file)"},
    {"summary", cli_cmd_summary, 0, 0, o_none, "summary", "汇总 (figures at a glance)"},
    {"pay", cli_cmd_pay, 0, 1, o_pay, "pay PAYOUT_ID | --all [--region PREFIX] [--channel 一卡通] [--role town]",
     "支付已预留的发放, 经指定渠道 (pay reserved payouts through a channel, default 一卡通; "
     "relief needs --role town)"},
    {"void", cli_cmd_void, 1, 1, o_money, "void PAYOUT_ID --note WHY",
     "作废已预留的发放 (void a reserved payout)"},
    {"donate", cli_cmd_donate, 3, 3, o_money, "donate VILLAGE_CODE DONOR AMOUNT [--date D]",
     "向村级救助基金捐赠 (a donation to a village relief fund)"},
    {"relief", cli_cmd_relief, 2, 2, o_money, "relief HOUSEHOLD_ID AMOUNT --note WHY",
     "申请村级临时救助, 待乡镇审批 (temporary relief, paid on the town's approval)"},
    {"medcalc", cli_cmd_medcalc, 1, 1, o_year, "medcalc HOUSEHOLD_ID [--year Y]",
     "医疗救助测算: 基本与倾斜救助各付多少 (what basic and tilted medical assistance would pay)"},
    {"payout-report", cli_cmd_payout_report, 0, 0, o_report, "payout-report [--region P] [--csv]",
     "发放统计, 按类别/户类型/县/月 (payouts by kind, household type, county, month; CSV for Excel)"},
    {"shadow", cli_cmd_shadow, 1, 1, o_shadow,
     "shadow DRAFT.json [--at YYYY-MM-DD] [--region PREFIX] [--csv]",
     "影子运行: 草案政策会让哪些户纳入、退出或改变类别/等级, 不改变数据 (what a draft policy "
     "would change: households entering or leaving the scope, changing category or grade; "
     "changes nothing)"},
    {"measure", cli_cmd_measure, 1, 1, o_measure,
     "measure CASE_ID --kind KIND --note TEXT [--delivered DATE]",
     "登记一户一策帮扶措施 (record an assistance measure); KIND: industry employment medical "
     "education social relief fund other (或 产业帮扶 就业帮扶 医疗帮扶 教育帮扶 社会救助 临时救助 "
     "资金帮扶 其他帮扶); without --delivered it is planned"},
    {"measure-delivered", cli_cmd_measure_delivered, 1, 1, o_delivered,
     "measure-delivered MEASURE_ID [--date DATE]", "帮扶措施已落实 (a planned measure was delivered)"},
    {"measures", cli_cmd_measures, 0, 0, o_measures, "measures [--case C] [--household H]",
     "帮扶措施列表 (assistance measures)"},
    {"recheck-stats", cli_cmd_recheck_stats, 0, 0, o_county, "recheck-stats [--county C]",
     "抽样复核统计, 按县 (re-check sampling: verified, sampled, agreed, sent back)"},
    {"queue", cli_cmd_queue, 1, 1, o_none, "queue INVESTIGATOR",
     "调查员任务队列, 红色优先 (an investigator's work queue, red first, as Redis holds it)"},
    {"reconcile", cli_cmd_reconcile, 0, 0, o_none, "reconcile",
     "对账 (prove the books: balanced, every account equals its transfers, no overdraft, "
     "payouts match cases and caps)"},
    {"channel", cli_cmd_channel, 1, 4, o_channel,
     "channel add NAME webhook|email URL [--secret-env VAR | --secret-file PATH] [--from ADDR] "
     "[--user NAME] [--rate N] | channel list | channel remove NAME",
     "通知渠道: webhook (短信网关等, HMAC 签名) 或 email (SMTP); 密钥只从环境变量或文件读取 "
     "(notification channels; secrets come from the environment or a file)"},
    {"subscribe", cli_cmd_subscribe, 3, 3, o_none, "subscribe RECIPIENT CHANNEL ADDRESS",
     "订阅: 收件人 (town:乡镇码, village:村码, county:县码, investigator:ID, school:校名, "
     "household:户编号, 或前缀* ) 经渠道收通知; ADDRESS 为电话、邮箱或 @phone (户主电话)"},
    {"unsubscribe", cli_cmd_unsubscribe, 2, 2, o_none, "unsubscribe RECIPIENT CHANNEL",
     "取消订阅 (remove a subscription)"},
    {"subscriptions", cli_cmd_subscriptions, 0, 1, o_none, "subscriptions [RECIPIENT]",
     "订阅列表 (subscriptions)"},
    {"deliveries", cli_cmd_deliveries, 0, 0, o_deliveries,
     "deliveries [--status pending|sent|dead] [--recipient R] [--event ID] [--limit N]",
     "通知投递及失败原因 (deliveries by webhook and e-mail, with attempts and reasons)"},
    {"notify-test", cli_cmd_notify_test, 2, 2, o_notify_test,
     "notify-test KIND REGION_CODE [--household H] [--case C] [--title T] [--body B] "
     "[--assignee A] [--grade G] [--event-id ID] [--msg-id ID]",
     "向 levee-notify 发送测试事件 (send a test event to levee-notify: try routes and channels)"},
    {"token", cli_cmd_token, 1, 3, o_token,
     "token issue ROLE REGION_PREFIX [--investigator ID] [--label TEXT] [--out FILE] | token list "
     "[--all] | token revoke TOKEN_ID | token check FILE",
     "HTTP 接口令牌: 签发 (只显示一次), 列出, 吊销, 检查 (API tokens: issue, shown once; list; "
     "revoke; check); ROLE: province city county town investigator department fund"},
    {"identity", cli_cmd_identity, 1, 3, o_identity,
     "identity list [--region P] [--status open|linked|dismissed|all] [--limit N] | identity link "
     "REVIEW_ID ID_NUMBER|CANDIDATE_NO [--note T] | identity dismiss REVIEW_ID --note WHY",
     "身份复核: 身份证号缺失或有误、未能自动关联的记录及其候选人; 关联到户籍人员或驳回 (the "
     "identity review queue: rows without a valid ID that were not linked on their own, with "
     "their candidates; link one to a registry person or dismiss it)"},
};
#define NCMDS (sizeof s_cmds / sizeof s_cmds[0])

static void usage(FILE *out)
{
    fputs("levee-cli: 防返贫动态监测与帮扶平台 命令行 (Levee command line)\n\n"
          "用法 usage: levee-cli COMMAND [ARGS] [--json]\n\n",
          out);
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(out, "  %s\n      %s\n", s_cmds[i].synopsis, s_cmds[i].what);
    fputs("\n  --json   输出一个 JSON 文档 (print exactly one JSON document on stdout)\n"
          "  --help   本说明 (this text); COMMAND --help for one command\n\n"
          "退出码 exit codes: 0 成功 ok; 1 失败或被拒绝 failed or refused; 2 用法错误 bad usage;\n"
          "  3 无法连接 Postgres/dispatch 或超时 (unreachable or timed out)\n"
          "环境变量 environment: LEVEE_PG, LEVEE_PORT_BASE, LEVEE_EP_DISPATCH, LEVEE_EP_NOTIFY\n",
          out);
}

static int usage_json(void)
{
    json_t *cmds = json_array();
    for (size_t i = 0; i < NCMDS; i++)
        json_array_append_new(cmds, json_pack("{s:s, s:s, s:s}", "name", s_cmds[i].name,
                                              "synopsis", s_cmds[i].synopsis, "description",
                                              s_cmds[i].what));
    cli_json_out(json_pack("{s:o}", "commands", cmds));
    return CLI_EXIT_OK;
}

int cli_fail(cli_t *cli, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cli && cli->json)
        cli_json_out(json_pack("{s:s, s:i}", "error", msg, "exit", code));
    else
        fprintf(stderr, "%s\n", msg);
    return code;
}

PGconn *cli_pg(cli_t *cli)
{
    if (cli->pg)
        return cli->pg;
    /* Defaults first, the configured conninfo last, so it overrides them. */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"5", "levee-cli", cli->cfg.pg_conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", pg ? PQerrorMessage(pg) : "out of memory");
        size_t n = strlen(why);
        while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
            why[--n] = '\0';
        PQfinish(pg);
        cli_fail(cli, CLI_EXIT_DOWN, "无法连接 Postgres (could not reach Postgres): %s", why);
        return NULL;
    }
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    cli->pg = pg;
    return pg;
}

int cli_pg_fail(cli_t *cli, int e)
{
    if (cli->pg && PQstatus(cli->pg) != CONNECTION_OK)
        return cli_fail(cli, CLI_EXIT_DOWN,
                        "与 Postgres 的连接中断 (lost the connection to Postgres)");
    if (e == LV_ETRANSIENT)
        return cli_fail(cli, CLI_EXIT_FAIL, "数据库繁忙, 请重试 (database busy, try again)");
    return cli_fail(cli, CLI_EXIT_FAIL, "数据库查询失败 (query failed; see the log line above)");
}

int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return LV_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return LV_EINVAL;
    *out = v;
    return 0;
}

void cli_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *cli_opt(const cli_args_t *a, const char *name)
{
    for (int i = 0; i < a->nopts; i++)
        if (!strcmp(a->opt_name[i], name))
            return a->opt_val[i];
    return NULL;
}

static const cli_opt_t *find_opt(const cli_opt_t *opts, const char *name, size_t n)
{
    for (int i = 0; opts[i].name; i++)
        if (strlen(opts[i].name) == n && !strncmp(opts[i].name, name, n))
            return &opts[i];
    return NULL;
}

static void cmd_usage(const cli_cmd_t *c, FILE *out)
{
    fprintf(out, "用法 usage: levee-cli %s [--json]\n  %s\n", c->synopsis, c->what);
}

/* Splits argv into positionals and the command's options ("--x v" or
 * "--x=v"); "--" ends the options. Returns 0 or an exit code. */
static int parse_args(cli_t *cli, const cli_cmd_t *c, int argc, char **argv, cli_args_t *a)
{
    memset(a, 0, sizeof *a);
    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!opts_done && !strcmp(s, "--")) {
            opts_done = true;
            continue;
        }
        if (!opts_done && s[0] == '-' && s[1] == '-') {
            const char *eq = strchr(s, '=');
            size_t n = eq ? (size_t)(eq - s) : strlen(s);
            const cli_opt_t *o = find_opt(c->opts, s, n);
            if (!o) {
                cli_fail(cli, CLI_EXIT_USAGE, "未知选项 (unknown option) %.*s for %s", (int)n, s,
                         c->name);
                if (!cli->json)
                    cmd_usage(c, stderr);
                return CLI_EXIT_USAGE;
            }
            const char *v = "";
            if (o->has_value) {
                if (eq)
                    v = eq + 1;
                else if (i + 1 < argc)
                    v = argv[++i];
                else
                    return cli_fail(cli, CLI_EXIT_USAGE, "选项 %s 缺少值 (option needs a value)",
                                    o->name);
            } else if (eq) {
                return cli_fail(cli, CLI_EXIT_USAGE, "选项 %s 不带值 (option takes no value)",
                                o->name);
            }
            if (cli_opt(a, o->name))
                return cli_fail(cli, CLI_EXIT_USAGE, "选项 %s 重复 (option given twice)",
                                o->name);
            if (a->nopts >= CLI_MAX_OPTS)
                return cli_fail(cli, CLI_EXIT_USAGE, "选项太多 (too many options)");
            a->opt_name[a->nopts] = o->name;
            a->opt_val[a->nopts] = v;
            a->nopts++;
            continue;
        }
        if (a->npos >= CLI_MAX_POS || a->npos >= c->max_pos) {
            cli_fail(cli, CLI_EXIT_USAGE, "多余的参数 (unexpected argument): %s", s);
            if (!cli->json)
                cmd_usage(c, stderr);
            return CLI_EXIT_USAGE;
        }
        a->pos[a->npos++] = s;
    }
    if (a->npos < c->min_pos) {
        cli_fail(cli, CLI_EXIT_USAGE, "缺少参数 (missing arguments) for %s", c->name);
        if (!cli->json)
            cmd_usage(c, stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli_t cli;
    memset(&cli, 0, sizeof cli);
    lv_log_init("levee-cli");

    /* --json may stand anywhere before "--"; take it out first. */
    int n = 0;
    bool help = false, ended = false;
    for (int i = 1; i < argc; i++) {
        if (!ended && !strcmp(argv[i], "--"))
            ended = true;
        if (!ended && !strcmp(argv[i], "--json")) {
            cli.json = true;
            continue;
        }
        if (!ended && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")))
            help = true;
        argv[++n] = argv[i];
    }
    argc = n + 1;

    const cli_cmd_t *c = NULL;
    if (argc >= 2)
        for (size_t i = 0; i < NCMDS; i++)
            if (!strcmp(s_cmds[i].name, argv[1]))
                c = &s_cmds[i];
    if (help) {
        if (cli.json)
            return usage_json();
        if (c)
            cmd_usage(c, stdout);
        else
            usage(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2) {
        if (cli.json)
            return cli_fail(&cli, CLI_EXIT_USAGE, "缺少命令 (no command); try --help");
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!c)
        return cli_fail(&cli, CLI_EXIT_USAGE, "未知命令 (unknown command): %s; try --help",
                        argv[1]);
    cli_args_t a;
    int rc = parse_args(&cli, c, argc - 2, argv + 2, &a);
    if (rc)
        return rc;
    if (lv_cfg_load(&cli.cfg))
        return cli_fail(&cli, CLI_EXIT_USAGE, "配置错误 (bad LEVEE_* configuration)");
    rc = c->fn(&cli, &a);
    if (cli.pg)
        PQfinish(cli.pg);
    fflush(stdout);
    return rc;
}
