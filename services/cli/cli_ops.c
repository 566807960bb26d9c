/* Dead letters: list the messages a service could not handle, with the
 * reason, and send one again once its cause is fixed. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_bus.h"
#include "lv_err.h"
#include "lv_pg.h"
#include "lv_time.h"

#define REPLAY_TIMEOUT_MS 30000

int cli_cmd_dead_letters(cli_t *cli, const cli_args_t *a)
{
    const char *consumer = cli_opt(a, "--consumer");
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {consumer};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT id, consumer, msg_type, msg_id, reason, created_ms, replayed_ms, "
                        "replay_msg_id FROM dead_letter WHERE ($1::text IS NULL OR consumer = $1) "
                        "ORDER BY id DESC LIMIT 500",
                        1, p);
    if (e)
        return cli_pg_fail(cli, e);
    static const cli_col_t cols[] = {{"consumer", "服务", CLI_F_TEXT, 0},
                                     {"msg_type", "类型", CLI_F_TEXT, 0},
                                     {"msg_id", "消息编号", CLI_F_TEXT, 40},
                                     {"reason", "原因", CLI_F_AUTO, 60},
                                     {"replayed_ms", "重放时间", CLI_F_DATETIME, 0},
                                     {NULL, NULL, 0, 0}};
    cli_res_print(res, cols, cli->json);
    PQclear(res);
    return CLI_EXIT_OK;
}

static const char *endpoint_of(const cli_t *cli, const char *consumer)
{
    return !strcmp(consumer, "matching")   ? cli->cfg.ep_matching
           : !strcmp(consumer, "dispatch") ? cli->cfg.ep_dispatch
           : !strcmp(consumer, "ledger")   ? cli->cfg.ep_ledger
           : !strcmp(consumer, "notify")   ? cli->cfg.ep_notify
                                           : NULL;
}

/* levee replay ID: the dead letter's payload again, under the id
 * "<original>#replay-<ID>", so a second replay of the same letter is a
 * no-op ("dup") and the original stays consumed. */
int cli_cmd_replay(cli_t *cli, const cli_args_t *a)
{
    int64_t id;
    if (cli_parse_i64(a->pos[0], 1, INT64_MAX, &id))
        return cli_fail(cli, CLI_EXIT_USAGE, "死信编号无效 (bad dead letter id): %s", a->pos[0]);
    PGconn *pg = cli_pg(cli);
    if (!pg)
        return CLI_EXIT_DOWN;
    const char *p[1] = {a->pos[0]};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT consumer, msg_id, msg_type, payload FROM dead_letter WHERE id = $1",
                        1, p);
    if (e)
        return cli_pg_fail(cli, e);
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 3)) {
        PQclear(res);
        return cli_fail(cli, CLI_EXIT_FAIL, "没有这封死信或它没有内容 (no such dead letter, or no payload): %s",
                        a->pos[0]);
    }
    const char *endpoint = endpoint_of(cli, PQgetvalue(res, 0, 0));
    size_t len = 0;
    unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 3), &len);
    char msg_id[LV_MSG_ID_MAX + 1], type[64];
    int n = snprintf(msg_id, sizeof msg_id, "%s#replay-%lld", PQgetvalue(res, 0, 1), (long long)id);
    snprintf(type, sizeof type, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    if (!endpoint || !body || n >= (int)sizeof msg_id) {
        PQfreemem(body);
        return cli_fail(cli, CLI_EXIT_FAIL, "无法重放 (cannot replay): %s",
                        !endpoint ? "unknown consumer" : !body ? "bad payload" : "id too long");
    }
    void *z = zmq_ctx_new();
    char status[16] = "";
    Levee__Reply *reply = NULL;
    e = z ? lv_bus_call_raw(z, endpoint, msg_id, type, body, len, REPLAY_TIMEOUT_MS, status, &reply)
          : LV_ENOMEM;
    if (z)
        zmq_ctx_term(z);
    PQfreemem(body);
    if (e)
        return cli_fail(cli, CLI_EXIT_DOWN, "服务无响应 (the consumer did not answer at %s)", endpoint);
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    const char *q[3] = {a->pos[0], now, msg_id};
    bool handled = strcmp(status, "dead") != 0;
    if (handled)
        lv_pg_cmd(pg, "UPDATE dead_letter SET replayed_ms = $2, replay_msg_id = $3 WHERE id = $1", 3,
                  q);
    const char *error = reply && reply->error ? reply->error : "";
    if (cli->json) {
        cli_json_out(json_pack("{s:s, s:s, s:b, s:s}", "msg_id", msg_id, "status", status, "ok",
                               !strcmp(status, "ok") || !strcmp(status, "dup"), "error", error));
    } else {
        printf("重放 (replayed) %s: %s%s%s\n", msg_id, status, *error ? " — " : "", error);
    }
    if (reply)
        levee__reply__free_unpacked(reply, NULL);
    return !strcmp(status, "ok") || !strcmp(status, "dup") ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
