/* Notification channels at the terminal: webhook and e-mail channels, who
 * subscribes to which at which address, the deliveries with their state and
 * reasons, and a test event sent straight to levee-notify. Channels name
 * where their secret is read (env:NAME or file:PATH); the secret itself
 * never enters the database. */
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
#include "lv_pg.h"
#include "lv_time.h"
#include "ntf_mail.h"

#define MAX_URL 1000
#define MAX_CODE 200 /* bytes after "role:" in a recipient */
#define MAX_TEXT 2000

static const char *const s_roles[] = {"town", "village", "county", "investigator", "school",
                                      "household", NULL};

/* Phones are shown as 138****5678, wherever they are listed. */
#define SQL_MASKED_ADDRESS \
    "regexp_replace(address, '^(\\+?(?:86)?1[0-9]{2})[0-9]{4}([0-9]{4})$', '\\1****\\2')"

static bool printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return false;
    return true;
}

static bool channel_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || !strcmp(s, "inbox"))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_'));
        if (!ok)
            return false;
    }
    return true;
}

static bool env_name_ok(const char *s)
{
    if (!*s || strlen(s) > 100 || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* scheme://host... with no user:password@ part (secrets never sit in a URL
 * we store) and no spaces or control characters. */
static const char *url_problem(const char *url, const char *const *schemes)
{
    bool known = false;
    const char *rest = NULL;
    for (int i = 0; schemes[i]; i++) {
        size_t n = strlen(schemes[i]);
        if (!strncmp(url, schemes[i], n)) {
            known = true;
            rest = url + n;
        }
    }
    if (!known)
        return "不支持的地址 (unsupported URL scheme)";
    if (strlen(url) > MAX_URL || !printable(url) || strchr(url, ' '))
        return "地址过长或含控制字符 (URL too long or with spaces/control characters)";
    size_t host = strcspn(rest, "/?#");
    if (host == 0)
        return "地址缺少主机 (URL without a host)";
    if (memchr(rest, '@', host))
        return "地址中不得含用户名或密码 (no user:password in the URL; use --user and a secret)";
    return NULL;
}

/* A recipient or a pattern: role:code, role:prefix* or role:*. */
static bool recipient_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon || !colon[1] || strlen(colon + 1) > MAX_CODE || !printable(s))
        return false;
    bool role = false;
    for (int i = 0; s_roles[i]; i++)
        role = role || ((size_t)(colon - s) == strlen(s_roles[i]) &&
                        !strncmp(s, s_roles[i], strlen(s_roles[i])));
    const char *star = strchr(colon + 1, '*');
    return role && (!star || star[1] == '\0');
}

static int channel_add(cli_t *cli, const cli_args_t *a)
{
    if (a->npos != 4)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "用法 usage: channel add NAME webhook|email URL [--secret-env VAR | "
                        "--secret-file PATH] [--from ADDR] [--user NAME] [--rate N]");
    const char *name = a->pos[1], *kind = a->pos[2], *url = a->pos[3];
    const char *senv = cli_opt(a, "--secret-env"), *sfile = cli_opt(a, "--secret-file");
    const char *from = cli_opt(a, "--from"), *user = cli_opt(a, "--user");
    const char *rate = cli_opt(a, "--rate");
    if (!channel_name_ok(name))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "渠道名须为 1..32 个小写字母、数字、- 或 _, 且不是 inbox "
                        "(NAME: 1..32 of a-z 0-9 - _, not \"inbox\"): %s",
                        name);
    bool email = !strcmp(kind, "email");
    if (!email && strcmp(kind, "webhook") != 0)
        return cli_fail(cli, CLI_EXIT_USAGE, "渠道类型须为 webhook 或 email (kind): %s", kind);
    static const char *const web[] = {"http://", "https://", NULL};
    static const char *const smtp[] = {"smtp://", "smtps://", NULL};
    const char *bad = url_problem(url, email ? smtp : web);
    if (bad)
        return cli_fail(cli, CLI_EXIT_USAGE, "%s: %s", bad, url);
    if (senv && sfile)
        return cli_fail(cli, CLI_EXIT_USAGE, "--secret-env 与 --secret-file 只能选一个 (one of them)");
    if (senv && !env_name_ok(senv))
        return cli_fail(cli, CLI_EXIT_USAGE, "--secret-env 须为环境变量名 (A-Z 0-9 _): %s", senv);
    if (sfile && (sfile[0] != '/' || !printable(sfile) || strlen(sfile) > 500))
        return cli_fail(cli, CLI_EXIT_USAGE, "--secret-file 须为绝对路径 (an absolute path): %s",
                        sfile);
    if (!email && !senv && !sfile)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "webhook 须有签名密钥 (a webhook needs --secret-env VAR or --secret-file PATH)");
    if (email && (!from || !ntf_mail_address_ok(from)))
        return cli_fail(cli, CLI_EXIT_USAGE, "email 须有有效的 --from 地址 (a valid --from address): %s",
                        from ? from : "");
    if (!email && (from || user))
        return cli_fail(cli, CLI_EXIT_USAGE, "--from 和 --user 只用于 email (email only)");
    if (user && (!*user || strlen(user) > 200 || !printable(user)))
        return cli_fail(cli, CLI_EXIT_USAGE, "--user 无效 (bad user name)");
    if (user && !senv && !sfile)
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "--user 须配密码来源 (--user needs --secret-env or --secret-file)");
    int64_t r = 0;
    if (rate && cli_parse_i64(rate, 1, 1000, &r))
        return cli_fail(cli, CLI_EXIT_USAGE, "--rate 须为 1..1000 (per second): %s", rate);
    char ref[520] = "", rs[24] = "", now[24];
    if (senv || sfile)
        snprintf(ref, sizeof ref, "%s:%s", senv ? "env" : "file", senv ? senv : sfile);
    if (rate)
        snprintf(rs, sizeof rs, "%lld", (long long)r);
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[8] = {name, kind, url, from, user, *ref ? ref : NULL, rate ? rs : NULL, now};
    int e = lv_pg_cmd(pg,
                      "INSERT INTO notify_channel (channel_id, kind, url, sender, username, "
                      "secret_ref, rate_per_s, created_ms) VALUES ($1, $2, $3, $4, $5, $6, "
                      "$7::int, $8) ON CONFLICT (channel_id) DO UPDATE SET kind = EXCLUDED.kind, "
                      "url = EXCLUDED.url, sender = EXCLUDED.sender, username = EXCLUDED.username, "
                      "secret_ref = EXCLUDED.secret_ref, rate_per_s = EXCLUDED.rate_per_s",
                      8, p);
    if (e)
        return cli_pg_fail(cli, e);
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:o}", "channel_id", name, "kind",
                               kind, "url", url, "sender", from, "username", user, "secret_ref",
                               *ref ? ref : NULL, "rate_per_s",
                               rate ? json_integer(r) : json_null()));
    else
        printf("渠道已保存 (channel saved): %s %s %s%s%s\n", name, kind, url,
               *ref ? ", 密钥来源 secret from " : "", ref);
    return CLI_EXIT_OK;
}

static int channel_list(cli_t *cli)
{
    static const cli_col_t cols[] = {
        {"channel_id", "渠道", CLI_F_AUTO, 0},      {"url", "地址", CLI_F_AUTO, 50},
        {"sender", "发件人", CLI_F_AUTO, 0},        {"username", "登录名", CLI_F_AUTO, 0},
        {"secret_ref", "密钥来源", CLI_F_AUTO, 0},  {"rate_per_s", "每秒上限", CLI_F_AUTO, 0},
        {"subscriptions", "订阅数", CLI_F_AUTO, 0}, {"pending", "待发送", CLI_F_AUTO, 0},
        {"dead", "死信", CLI_F_AUTO, 0},            {NULL, NULL, 0, 0},
    };
    return cli_list(cli,
                    "SELECT c.channel_id, c.kind, c.url, c.sender, c.username, c.secret_ref, "
                    "c.rate_per_s, "
                    "(SELECT count(*) FROM notify_subscription s WHERE s.channel_id = c.channel_id) "
                    "AS subscriptions, "
                    "(SELECT count(*) FROM notify_delivery d WHERE d.channel_id = c.channel_id "
                    "AND d.status = 'pending') AS pending, "
                    "(SELECT count(*) FROM notify_delivery d WHERE d.channel_id = c.channel_id "
                    "AND d.status = 'dead') AS dead "
                    "FROM notify_channel c ORDER BY c.channel_id",
                    0, NULL, cols, NULL);
}

/* Removes a channel with its subscriptions; its pending deliveries are
 * dead-lettered with the reason, in the same transaction. */
static int channel_remove(cli_t *cli, const cli_args_t *a)
{
    if (a->npos != 2)
        return cli_fail(cli, CLI_EXIT_USAGE, "用法 usage: channel remove NAME");
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {a->pos[1]};
    int e = lv_pg_begin(pg);
    int64_t dead = 0, gone = 0;
    if (!e)
        dead = lv_pg_cmd_count(pg,
                               "UPDATE notify_delivery SET status = 'dead', last_error = "
                               "'渠道已删除 (channel removed)' WHERE channel_id = $1 "
                               "AND status = 'pending'",
                               1, p);
    if (!e && dead >= 0)
        gone = lv_pg_cmd_count(pg, "DELETE FROM notify_channel WHERE channel_id = $1", 1, p);
    e = e ? e : dead < 0 ? (int)dead : gone < 0 ? (int)gone : 0;
    if (!e && gone == 0) {
        lv_pg_rollback(pg);
        return cli_fail(cli, CLI_EXIT_FAIL, "没有该渠道 (no such channel): %s", a->pos[1]);
    }
    if (!e)
        e = lv_pg_commit(pg);
    if (e) {
        lv_pg_rollback(pg);
        return cli_pg_fail(cli, e);
    }
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:b, s:I}", "channel_id", a->pos[1], "removed", 1,
                               "deliveries_dead", (json_int_t)dead));
    else
        printf("渠道已删除 (channel removed): %s; %lld 条待发送已转入死信 (pending deliveries "
               "dead-lettered)\n",
               a->pos[1], (long long)dead);
    return CLI_EXIT_OK;
}

int cli_cmd_channel(cli_t *cli, const cli_args_t *a)
{
    const char *sub = a->pos[0];
    if (!strcmp(sub, "add"))
        return channel_add(cli, a);
    if (!strcmp(sub, "list") && a->npos == 1)
        return channel_list(cli);
    if (!strcmp(sub, "remove"))
        return channel_remove(cli, a);
    return cli_fail(cli, CLI_EXIT_USAGE, "用法 usage: channel add|list|remove ... (got %s)", sub);
}

/* The channel's kind, "" when there is no such channel; or an exit code. */
static int channel_kind(cli_t *cli, const char *channel, char kind[16])
{
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {channel};
    int e = lv_pg_scalar(pg, kind, 16, "SELECT kind FROM notify_channel WHERE channel_id = $1", 1,
                         p);
    if (e == LV_ENOTFOUND)
        return cli_fail(cli, CLI_EXIT_FAIL,
                        "没有该渠道 (no such channel): %s; see levee channel list", channel);
    return e ? cli_pg_fail(cli, e) : 0;
}

int cli_cmd_subscribe(cli_t *cli, const cli_args_t *a)
{
    const char *who = a->pos[0], *channel = a->pos[1], *address = a->pos[2];
    if (!recipient_ok(who))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "收件人须为 角色:编码 (RECIPIENT: role:code, role:prefix* or role:*; roles "
                        "town village county investigator school household): %s",
                        who);
    char kind[16];
    int rc = channel_kind(cli, channel, kind);
    if (rc)
        return rc;
    if (!strcmp(address, "@phone")) {
        if (strncmp(who, "household:", 10) != 0)
            return cli_fail(cli, CLI_EXIT_USAGE,
                            "@phone (户主电话) 只适用于 household:... (only for households)");
        if (!strcmp(kind, "email"))
            return cli_fail(cli, CLI_EXIT_USAGE, "@phone 不能用于 email 渠道 (not for e-mail)");
    } else if (!strcmp(kind, "email") ? !ntf_mail_address_ok(address)
                                      : (!*address || strlen(address) > 100 ||
                                         !printable(address) || strchr(address, ' '))) {
        return cli_fail(cli, CLI_EXIT_USAGE, "地址无效 (bad %s address): %s",
                        !strcmp(kind, "email") ? "e-mail" : "webhook", address);
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *p[4] = {who, channel, address, now};
    int e = lv_pg_cmd(cli->pg,
                      "INSERT INTO notify_subscription (recipient, channel_id, address, created_ms) "
                      "VALUES ($1, $2, $3, $4) ON CONFLICT (recipient, channel_id) DO UPDATE SET "
                      "address = EXCLUDED.address",
                      4, p);
    if (e)
        return cli_pg_fail(cli, e);
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:s, s:s}", "recipient", who, "channel_id", channel,
                               "address", address));
    else
        printf("已订阅 (subscribed): %s 经 %s 收到通知 (by %s)\n", who, channel, kind);
    return CLI_EXIT_OK;
}

int cli_cmd_unsubscribe(cli_t *cli, const cli_args_t *a)
{
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[2] = {a->pos[0], a->pos[1]};
    int64_t n = lv_pg_cmd_count(
        pg, "DELETE FROM notify_subscription WHERE recipient = $1 AND channel_id = $2", 2, p);
    if (n < 0)
        return cli_pg_fail(cli, (int)n);
    if (n == 0)
        return cli_fail(cli, CLI_EXIT_FAIL, "没有该订阅 (no such subscription): %s %s", p[0], p[1]);
    if (cli->json)
        cli_json_out(json_pack("{s:s, s:s, s:b}", "recipient", p[0], "channel_id", p[1],
                               "removed", 1));
    else
        printf("已取消订阅 (unsubscribed): %s %s\n", p[0], p[1]);
    return CLI_EXIT_OK;
}

int cli_cmd_subscriptions(cli_t *cli, const cli_args_t *a)
{
    static const cli_col_t cols[] = {
        {"channel_id", "渠道", CLI_F_AUTO, 0}, {"address", "地址", CLI_F_AUTO, 0},
        {"created_ms", "订阅时间", CLI_F_DATE, 0}, {NULL, NULL, 0, 0},
    };
    const char *p[1] = {a->npos > 0 ? a->pos[0] : NULL};
    return cli_list(cli,
                    "SELECT s.recipient, s.channel_id, c.kind, " SQL_MASKED_ADDRESS " AS address, "
                    "s.created_ms FROM notify_subscription s JOIN notify_channel c USING "
                    "(channel_id) WHERE ($1::text IS NULL OR s.recipient = $1) "
                    "ORDER BY s.recipient, s.channel_id",
                    1, p, cols, NULL);
}

int cli_cmd_deliveries(cli_t *cli, const cli_args_t *a)
{
    char limit[24];
    int rc = cli_parse_limit(cli, a, limit);
    if (rc)
        return rc;
    const char *status = cli_opt(a, "--status");
    if (status && strcmp(status, "pending") && strcmp(status, "sent") && strcmp(status, "dead"))
        return cli_fail(cli, CLI_EXIT_USAGE, "--status 须为 pending、sent 或 dead: %s", status);
    static const cli_col_t cols[] = {
        {"delivery_id", NULL, CLI_F_HIDE, 0},
        {"event_id", "事件", CLI_F_AUTO, 30},
        {"channel_id", "渠道", CLI_F_AUTO, 0},
        {"address", "地址", CLI_F_AUTO, 0},
        {"attempts", "尝试次数", CLI_F_AUTO, 0},
        {"next_attempt_ms", "下次尝试", CLI_F_DATETIME, 0},
        {"created_ms", "生成时间", CLI_F_DATETIME, 0},
        {"sent_ms", "发送时间", CLI_F_DATETIME, 0},
        {"reason", "原因", CLI_F_AUTO, 60},
        {NULL, NULL, 0, 0},
    };
    const char *p[4] = {status, cli_opt(a, "--recipient"), cli_opt(a, "--event"), limit};
    return cli_list(cli,
                    "SELECT delivery_id, event_id, kind, recipient, channel_id, "
                    SQL_MASKED_ADDRESS " AS address, status, attempts, "
                    "CASE WHEN status = 'pending' THEN next_attempt_ms END AS next_attempt_ms, "
                    "last_error AS reason, created_ms, sent_ms FROM notify_delivery "
                    "WHERE ($1::text IS NULL OR status = $1) "
                    "AND ($2::text IS NULL OR recipient = $2) "
                    "AND ($3::text IS NULL OR event_id = $3) "
                    "ORDER BY created_ms DESC, delivery_id LIMIT $4::int",
                    4, p, cols, limit);
}

static int check_field(cli_t *cli, const char *opt, const char *v, size_t max)
{
    if (v && (strlen(v) > max || !printable(v)))
        return cli_fail(cli, CLI_EXIT_USAGE, "%s 过长或含控制字符 (too long or with control "
                        "characters)", opt);
    return 0;
}

/* Sends one Event straight to levee-notify, as dispatch or ledger would: to
 * try a channel or a route. The event id doubles as the message id unless
 * --msg-id is given (a redelivery under a new id changes nothing either). */
int cli_cmd_notify_test(cli_t *cli, const cli_args_t *a)
{
    const char *kind = a->pos[0], *region = a->pos[1];
    if (!*kind || strlen(kind) > 64 || !printable(kind))
        return cli_fail(cli, CLI_EXIT_USAGE, "事件类型无效 (bad KIND): %s", kind);
    if (strlen(region) != 12 || strspn(region, "0123456789") != 12)
        return cli_fail(cli, CLI_EXIT_USAGE, "区划代码须为 12 位数字 (REGION_CODE: 12 digits): %s",
                        region);
    static const char *const opts[] = {"--household", "--case", "--assignee", "--grade",
                                       "--event-id", "--msg-id", NULL};
    int rc;
    for (int i = 0; opts[i]; i++)
        if ((rc = check_field(cli, opts[i], cli_opt(a, opts[i]), 190)))
            return rc;
    const char *title = cli_opt(a, "--title"), *body = cli_opt(a, "--body");
    if ((title && strlen(title) > MAX_TEXT) || (body && strlen(body) > MAX_TEXT))
        return cli_fail(cli, CLI_EXIT_USAGE, "--title/--body 过长 (longer than %d bytes)", MAX_TEXT);
    char id[21], event_id[32];
    if (cli_new_cmd_id(id))
        return cli_fail(cli, CLI_EXIT_FAIL, "无法生成编号 (no random source)");
    snprintf(event_id, sizeof event_id, "test:%s", id + 4);
    const char *eid = cli_opt(a, "--event-id");
    const char *mid = cli_opt(a, "--msg-id");
    Levee__Event ev = LEVEE__EVENT__INIT;
    ev.event_id = (char *)(eid && *eid ? eid : event_id);
    ev.kind = (char *)kind;
    ev.region_code = (char *)region;
#define OPT_OR(name, dflt) (char *)(cli_opt(a, name) ? cli_opt(a, name) : (dflt))
    ev.household_id = OPT_OR("--household", "");
    ev.case_id = OPT_OR("--case", "");
    ev.assignee = OPT_OR("--assignee", "");
    ev.grade = OPT_OR("--grade", "");
    ev.title = (char *)(title && *title ? title : "测试通知 (test notification)");
    ev.body = (char *)(body ? body : "");
#undef OPT_OR
    ev.at_ms = lv_now_ms();
    return cli_send_message(cli, cli->cfg.ep_notify, "notify", mid && *mid ? mid : ev.event_id,
                            "event", &ev.base, "msg_id");
}
