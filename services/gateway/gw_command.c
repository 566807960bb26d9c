/* Decisions go to the service that owns them as a Command over the bus, and
 * the service's answer (ok, dup, refused, dead) becomes the HTTP status. */
#define _POSIX_C_SOURCE 200809L
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "levee.pb-c.h"
#include "lv_bus.h"
#include "lv_err.h"
#include "lv_time.h"

#define IDEMPOTENCY_KEY_MAX 64

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    return n >= 1 && n <= IDEMPOTENCY_KEY_MAX &&
           strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

bool gw_send_command(gw_req_t *r, const char *endpoint, const char *service, Levee__Command *cmd,
                     char *detail, size_t detail_len)
{
    char id[LV_MSG_ID_MAX];
    const char *key = gw_header(r, "Idempotency-Key");
    if (key && !key_ok(key)) {
        gw_bad_request(r, "Idempotency-Key 须为 1..%d 个字母、数字或 ._:- (letters, digits, ._:-)",
                       IDEMPOTENCY_KEY_MAX);
        return false;
    }
    if (key) {
        /* The token is part of the id: two callers never share a key. */
        snprintf(id, sizeof id, "gw:%s:%s", r->caller.token_id, key);
    } else {
        unsigned char b[8];
        char hex[17];
        randombytes_buf(b, sizeof b);
        sodium_bin2hex(hex, sizeof hex, b, sizeof b);
        snprintf(id, sizeof id, "gw:%s", hex);
    }
    cmd->cmd_id = id;
    cmd->at_ms = lv_now_ms();
    /* No Postgres connection is held while the service works. */
    gw_pg_release(r);
    char status[16] = "";
    Levee__Reply *reply = NULL;
    int e = lv_bus_call(r->gw->zctx, endpoint, id, "cmd", &cmd->base, r->gw->cfg.http_call_timeout_ms,
                        status, &reply);
    if (e) {
        if (e == LV_ENOMEM)
            gw_reply_error(r, 500, "internal", "out of memory");
        else
            gw_reply_error(r, 504, "timeout", "%s 无响应, 可用同一 Idempotency-Key 重试 (%s did not "
                                              "answer; retry with the same Idempotency-Key)",
                           service, service);
        return false;
    }
    const char *err = reply && reply->error && *reply->error ? reply->error : "-";
    bool ok = !strcmp(status, "ok") || !strcmp(status, "dup");
    if (ok)
        snprintf(detail, detail_len, "%s", reply && reply->detail ? reply->detail : "");
    else if (!strcmp(status, "refused"))
        gw_reply_error(r, 409, "conflict", "%s", err);
    else if (!strcmp(status, "dead"))
        gw_bad_request(r, "%s", err);
    else
        gw_reply_error(r, 502, "bad_gateway", "%s: %s", service, err);
    if (reply)
        levee__reply__free_unpacked(reply, NULL);
    return ok;
}
