/* Who is calling: the bearer token, looked up by its hash on every request
 * (so a revoked token stops at once), and the masks of personal data for
 * callers whose role does not need it. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw.h"
#include "lv_err.h"
#include "lv_idnum.h"

static void unauthorized(gw_req_t *r, const char *why)
{
    r->www_auth = true;
    gw_reply_error(r, 401, "unauthorized", "%s", why);
}

bool gw_authenticate(gw_req_t *r)
{
    const char *h = gw_header(r, "Authorization");
    if (!h) {
        unauthorized(r, "缺少令牌 (missing token): Authorization: Bearer <token>");
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(r, "令牌格式错误 (expected Authorization: Bearer <token>)");
        return false;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(tok);
    while (n > 0 && tok[n - 1] == ' ')
        n--;
    if (n == 0 || n > LV_TOKEN_TEXT_MAX) {
        unauthorized(r, "令牌无效 (invalid token)");
        return false;
    }
    char hash[LV_TOKEN_HASH_HEX];
    if (lv_token_hash(tok, n, hash)) {
        gw_reply_error(r, 500, "internal", "hash failed");
        return false;
    }
    const char *p[1] = {hash};
    PGresult *res = gw_sql(r,
                           "SELECT token_id, role, region_prefix, coalesce(investigator_id, ''), "
                           "label FROM api_token WHERE token_hash = $1 AND revoked_ms IS NULL",
                           1, p);
    if (!res)
        return false;
    if (PQntuples(res) != 1) {
        PQclear(res);
        unauthorized(r, "令牌无效或已吊销 (invalid or revoked token)");
        return false;
    }
    gw_caller_t *c = &r->caller;
    snprintf(c->token_id, sizeof c->token_id, "%s", PQgetvalue(res, 0, 0));
    c->role = lv_token_role(PQgetvalue(res, 0, 1));
    snprintf(c->prefix, sizeof c->prefix, "%s", PQgetvalue(res, 0, 2));
    snprintf(c->investigator, sizeof c->investigator, "%s", PQgetvalue(res, 0, 3));
    snprintf(c->label, sizeof c->label, "%s", PQgetvalue(res, 0, 4));
    PQclear(res);
    if (!c->role) {
        unauthorized(r, "令牌角色未知 (token with an unknown role)");
        return false;
    }
    return true;
}

bool gw_in_region(const gw_req_t *r, const char *region)
{
    size_t n = strlen(r->caller.prefix);
    return region && strlen(region) >= n && !strncmp(region, r->caller.prefix, n);
}

const char *gw_actor(const gw_req_t *r)
{
    if (r->caller.role == LV_ROLE_INVESTIGATOR && r->caller.investigator[0])
        return r->caller.investigator;
    return r->caller.label[0] ? r->caller.label : r->caller.token_id;
}

/* Replaces a string member by its masked form. */
static void mask_member_field(json_t *o, const char *key, void (*fn)(const char *, char *))
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        return;
    char *m = malloc(strlen(s) + 1);
    if (!m)
        return;
    fn(s, m);
    json_object_set_new(o, key, json_string(m));
    free(m);
}

void gw_mask_member(json_t *m)
{
    mask_member_field(m, "id_number", lv_mask_idnum_field);
    mask_member_field(m, "phone", lv_mask_phone);
}

void gw_mask_text_field(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        return;
    char *m = strdup(s);
    if (!m)
        return;
    lv_mask_text(m);
    json_object_set_new(o, key, json_string(m));
    free(m);
}
