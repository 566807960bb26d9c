#define _POSIX_C_SOURCE 200809L
#include "lv_policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_money.h"
#include "lv_time.h"

struct lv_policy {
    lv_policy_version_t v[LV_POLICY_MAX_VERSIONS];
    int n;
};

typedef struct {
    char *err;
    size_t errlen;
    bool failed;
} ctx_t;

static void fail(ctx_t *c, const char *path, const char *what)
{
    if (!c->failed)
        snprintf(c->err, c->errlen, "策略文件错误 (policy error) at %s: %s", path, what);
    c->failed = true;
}

static int64_t get_int(ctx_t *c, json_t *obj, const char *base, const char *key, int64_t lo,
                       int64_t hi)
{
    char path[160];
    snprintf(path, sizeof path, "%s.%s", base, key);
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        fail(c, path, v ? "must be an integer" : "missing");
        return 0;
    }
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "%lld is out of range %lld..%lld", (long long)x, (long long)lo,
                 (long long)hi);
        fail(c, path, msg);
    }
    return x;
}

static void get_ratio(ctx_t *c, json_t *obj, const char *base, const char *key, int64_t *num,
                      int64_t *den)
{
    char path[160];
    snprintf(path, sizeof path, "%s.%s", base, key);
    json_t *v = json_object_get(obj, key);
    if (!json_is_array(v) || json_array_size(v) != 2 ||
        !json_is_integer(json_array_get(v, 0)) || !json_is_integer(json_array_get(v, 1)) ||
        json_integer_value(json_array_get(v, 0)) <= 0 ||
        json_integer_value(json_array_get(v, 1)) <= 0) {
        fail(c, path, "must be [numerator, denominator] with positive integers");
        return;
    }
    *num = json_integer_value(json_array_get(v, 0));
    *den = json_integer_value(json_array_get(v, 1));
}

static void get_rule(ctx_t *c, json_t *payouts, const char *base, const char *key,
                     lv_payout_rule_t *r)
{
    char path[160];
    snprintf(path, sizeof path, "%s.%s", base, key);
    json_t *o = json_object_get(payouts, key);
    if (!json_is_object(o)) {
        fail(c, path, "missing");
        return;
    }
    /* "cap_fen": null means no cap (the tilted medical assistance has none). */
    json_t *cap = json_object_get(o, "cap_fen");
    r->cap_fen = json_is_null(cap) ? LV_MONEY_MAX_FEN
                                   : get_int(c, o, path, "cap_fen", 0, LV_MONEY_MAX_FEN);
    json_t *tiers = json_object_get(o, "tiers");
    if (!json_is_array(tiers) || json_array_size(tiers) == 0 ||
        json_array_size(tiers) > LV_POLICY_MAX_TIERS) {
        fail(c, path, "tiers must be a list of 1..8 tiers");
        return;
    }
    r->ntiers = (int)json_array_size(tiers);
    for (int i = 0; i < r->ntiers; i++) {
        char tp[192];
        snprintf(tp, sizeof tp, "%s.tiers[%d]", path, i);
        json_t *t = json_array_get(tiers, (size_t)i);
        r->tiers[i].from_fen = get_int(c, t, tp, "from_fen", 0, LV_MONEY_MAX_FEN);
        r->tiers[i].rate_permille = (int)get_int(c, t, tp, "rate_permille", 0, 1000);
        if (i && r->tiers[i].from_fen <= r->tiers[i - 1].from_fen)
            fail(c, tp, "from_fen must increase from tier to tier");
    }
}

static void load_version(ctx_t *c, json_t *o, int idx, lv_policy_version_t *v)
{
    char base[32];
    snprintf(base, sizeof base, "versions[%d]", idx);
    if (!json_is_object(o)) {
        fail(c, base, "must be an object");
        return;
    }
    const char *ver = json_string_value(json_object_get(o, "version"));
    if (!ver || !*ver || strlen(ver) >= sizeof v->version) {
        fail(c, base, "version: missing or too long");
        return;
    }
    snprintf(v->version, sizeof v->version, "%s", ver);
    const char *eff = json_string_value(json_object_get(o, "effective_from"));
    const char *why = NULL;
    char ep[64];
    snprintf(ep, sizeof ep, "%s.effective_from", base);
    if (!eff || lv_date_parse(eff, strlen(eff), &v->effective_ms, &why)) {
        fail(c, ep, why ? why : "missing (YYYY-MM-DD)");
        return;
    }
    v->income_line_fen = get_int(c, o, base, "income_line_fen", 1, LV_MONEY_MAX_FEN);
    get_ratio(c, o, base, "poverty_line_ratio", &v->poverty_num, &v->poverty_den);
    get_ratio(c, o, base, "watch_ratio", &v->watch_num, &v->watch_den);
    v->rigid_window_days = (int)get_int(c, o, base, "rigid_window_days", 1, 3660);
    v->verification_due_days = (int)get_int(c, o, base, "verification_due_days", 1, 365);
    v->publicity_days = (int)get_int(c, o, base, "publicity_days", 1, 365);
    v->identification_target_days = (int)get_int(c, o, base, "identification_target_days", 1, 365);
    v->recheck_rate_permille = (int)get_int(c, o, base, "recheck_rate_permille", 0, 1000);
    v->recheck_tolerance_permille = (int)get_int(c, o, base, "recheck_tolerance_permille", 0, 1000);
    v->wage_drop_permille = (int)get_int(c, o, base, "wage_drop_permille", 1, 1000);
    v->wage_prior_months = (int)get_int(c, o, base, "wage_prior_months", 1, 60);
    v->elimination_months = (int)get_int(c, o, base, "elimination_months", 0, 120);
    v->elimination_min_measures = (int)get_int(c, o, base, "elimination_min_measures", 0, 100);
    v->overdue_escalate_hours = (int)get_int(c, o, base, "overdue_escalate_hours", 0, 24 * 365);
    json_t *p = json_object_get(o, "payouts");
    char pp[64];
    snprintf(pp, sizeof pp, "%s.payouts", base);
    if (!json_is_object(p)) {
        fail(c, pp, "missing");
        return;
    }
    get_rule(c, p, pp, "illness", &v->illness);
    get_rule(c, p, pp, "disaster", &v->disaster);
    get_rule(c, p, pp, "education", &v->education);
    char mp[96];
    snprintf(mp, sizeof mp, "%s.medical_assistance", pp);
    json_t *ma = json_object_get(p, "medical_assistance");
    get_rule(c, ma, mp, "basic", &v->med_basic);
    get_rule(c, ma, mp, "tilted", &v->med_tilted);
    char rp[96];
    snprintf(rp, sizeof rp, "%s.relief", pp);
    v->relief_max_fen = get_int(c, json_object_get(p, "relief"), rp, "max_per_event_fen", 0,
                                LV_MONEY_MAX_FEN);
    v->reservation_days = (int)get_int(c, p, pp, "reservation_days", 1, 3660);
    json_t *funds = json_object_get(o, "funds");
    char fp[64];
    snprintf(fp, sizeof fp, "%s.funds", base);
    if (!json_is_array(funds) || json_array_size(funds) < 1 ||
        json_array_size(funds) > LV_POLICY_MAX_FUNDS) {
        fail(c, fp, "must be a list of 1..16 funds (the first pays the 防贫 payouts)");
        return;
    }
    v->nfunds = (int)json_array_size(funds);
    for (int i = 0; i < v->nfunds; i++) {
        char fi[96];
        snprintf(fi, sizeof fi, "%s[%d]", fp, i);
        json_t *f = json_array_get(funds, (size_t)i);
        const char *id = json_string_value(json_object_get(f, "fund_id"));
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!id || !name || !*id || strlen(id) >= sizeof v->funds[i].fund_id ||
            strlen(name) >= sizeof v->funds[i].name) {
            fail(c, fi, "fund_id and name are required");
            return;
        }
        snprintf(v->funds[i].fund_id, sizeof v->funds[i].fund_id, "%s", id);
        snprintf(v->funds[i].name, sizeof v->funds[i].name, "%s", name);
        v->funds[i].opening_fen = get_int(c, f, fi, "opening_fen", 0, LV_MONEY_MAX_FEN);
    }
}

lv_policy_t *lv_policy_load(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "策略文件错误 (policy error) %s line %d column %d: %s", path, je.line,
                 je.column, je.text);
        return NULL;
    }
    ctx_t c = {err, errlen, false};
    lv_policy_t *self = calloc(1, sizeof *self);
    json_t *versions = json_object_get(root, "versions");
    if (!self) {
        fail(&c, "(file)", "out of memory");
    } else if (!json_is_array(versions) || json_array_size(versions) == 0 ||
               json_array_size(versions) > LV_POLICY_MAX_VERSIONS) {
        fail(&c, "versions", "must be a list of 1..32 versions");
    } else {
        self->n = (int)json_array_size(versions);
        for (int i = 0; i < self->n && !c.failed; i++)
            load_version(&c, json_array_get(versions, (size_t)i), i, &self->v[i]);
        for (int i = 1; i < self->n && !c.failed; i++)
            if (self->v[i].effective_ms <= self->v[i - 1].effective_ms)
                fail(&c, "versions", "effective_from must increase from version to version");
    }
    json_decref(root);
    if (c.failed) {
        free(self);
        return NULL;
    }
    return self;
}

void lv_policy_destroy(lv_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

const lv_policy_version_t *lv_policy_at(const lv_policy_t *self, int64_t at_ms)
{
    const lv_policy_version_t *best = NULL;
    for (int i = 0; i < self->n; i++)
        if (self->v[i].effective_ms <= at_ms)
            best = &self->v[i];
    return best;
}

int64_t lv_payout_compute(const lv_payout_rule_t *rule, int64_t basis_fen, int64_t already_paid_fen,
                          char *explain, size_t n)
{
    lv_buf_t b;
    lv_buf_init(&b, 4096);
    char m1[32], m2[32];
    lv_money_format(basis_fen, m1, sizeof m1);
    lv_buf_printf(&b, "基数 %s 元", m1);
    /* Feeds cap amounts at LV_MONEY_MAX_FEN; anything larger or negative is
     * clamped so the sum below cannot overflow. */
    if (basis_fen < 0)
        basis_fen = 0;
    if (basis_fen > LV_MONEY_MAX_FEN)
        basis_fen = LV_MONEY_MAX_FEN;
    if (already_paid_fen < 0)
        already_paid_fen = 0;
    int64_t milli = 0; /* fen x permille */
    for (int i = 0; i < rule->ntiers; i++) {
        int64_t lo = rule->tiers[i].from_fen;
        int64_t hi = i + 1 < rule->ntiers ? rule->tiers[i + 1].from_fen : INT64_MAX;
        if (basis_fen <= lo)
            break;
        int64_t part = (basis_fen < hi ? basis_fen : hi) - lo;
        milli += part * rule->tiers[i].rate_permille;
        lv_money_format(lo, m1, sizeof m1);
        lv_money_format(part, m2, sizeof m2);
        lv_buf_printf(&b, "; %s 元以上部分 %s 元 × %d‰", m1, m2, rule->tiers[i].rate_permille);
    }
    int64_t amount = (milli + 500) / 1000; /* round half up, once */
    lv_money_format(amount, m1, sizeof m1);
    lv_buf_printf(&b, "; 合计 %s 元", m1);
    int64_t room = rule->cap_fen - already_paid_fen;
    if (room < 0)
        room = 0;
    if (amount > room) {
        lv_money_format(rule->cap_fen, m1, sizeof m1);
        lv_money_format(room, m2, sizeof m2);
        lv_buf_printf(&b, "; 年度封顶 %s 元, 本次最多 %s 元", m1, m2);
        amount = room;
    }
    snprintf(explain, n, "%s", lv_buf_str(&b));
    lv_buf_free(&b);
    return amount;
}
