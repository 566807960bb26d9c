#define _POSIX_C_SOURCE 200809L
#include "lv_policy.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_money.h"
#include "lv_rules.h"
#include "lv_time.h"

struct lv_policy {
    lv_policy_version_t v[LV_POLICY_MAX_VERSIONS];
    lv_ruleset_t *rules[LV_POLICY_MAX_VERSIONS]; /* v[i].rules, owned */
    int n;
};

typedef struct {
    char *err;
    size_t errlen;
    bool failed;
    const char *file; /* for messages */
    const char *text; /* the file's text, to find a key's line */
    size_t len;
} ctx_t;

/* ---- the line of a key path ------------------------------------------------
 * jansson gives the line of a syntax error only; for a value that parses but
 * is wrong, the file is scanned again (it is valid JSON by then) keeping the
 * path of every value, e.g. versions[0].rules.grade[1].when, and the line
 * where the value starts. A path that does not exist (a missing key) yields
 * the line of its deepest existing ancestor: the object that lacks the key. */

#define PATH_MAX_LEN 256
#define SCAN_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    int line;
    const char *target;
    size_t tlen;
    int best_line;
    size_t best_len;
    bool done;
} pscan_t;

static void ps_ws(pscan_t *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                           c->s[c->i] == '\r')) {
        if (c->s[c->i] == '\n')
            c->line++;
        c->i++;
    }
}

/* Skips a string whose opening quote is at c->i; returns the raw span inside. */
static void ps_string(pscan_t *c, size_t *start, size_t *len)
{
    c->i++;
    *start = c->i;
    while (c->i < c->n && c->s[c->i] != '"') {
        if (c->s[c->i] == '\\')
            c->i++;
        c->i++;
    }
    *len = (c->i < c->n ? c->i : c->n) - *start;
    c->i++;
}

static void ps_value(pscan_t *c, char *path, size_t plen, int depth)
{
    ps_ws(c);
    if (c->done || c->i >= c->n)
        return;
    if (plen == c->tlen && !memcmp(path, c->target, plen)) {
        c->best_line = c->line;
        c->done = true;
        return;
    }
    /* An ancestor of the target: remember the deepest one. */
    bool ancestor = plen < c->tlen && !memcmp(path, c->target, plen) &&
                    (plen == 0 || c->target[plen] == '.' || c->target[plen] == '[');
    if (ancestor && (plen > c->best_len || c->best_line == 0)) {
        c->best_len = plen;
        c->best_line = c->line;
    }
    char ch = c->s[c->i];
    if ((ch == '{' || ch == '[') && depth < SCAN_MAX_DEPTH) {
        char close = ch == '{' ? '}' : ']';
        c->i++;
        for (int idx = 0; !c->done; idx++) {
            ps_ws(c);
            if (c->i >= c->n || c->s[c->i] == close) {
                c->i++;
                return;
            }
            int w;
            if (ch == '{') {
                size_t ks, kl;
                ps_string(c, &ks, &kl);
                ps_ws(c);
                c->i++; /* ':' */
                w = snprintf(path + plen, PATH_MAX_LEN - plen, "%s%.*s", plen ? "." : "", (int)kl,
                             c->s + ks);
            } else {
                w = snprintf(path + plen, PATH_MAX_LEN - plen, "[%d]", idx);
            }
            size_t sub = w > 0 && plen + (size_t)w < PATH_MAX_LEN ? plen + (size_t)w : PATH_MAX_LEN;
            ps_value(c, path, sub, depth + 1);
            path[plen < PATH_MAX_LEN ? plen : PATH_MAX_LEN - 1] = '\0';
            ps_ws(c);
            if (c->i < c->n && c->s[c->i] == ',')
                c->i++;
        }
        return;
    }
    if (ch == '"') {
        size_t a, b;
        ps_string(c, &a, &b);
        return;
    }
    while (c->i < c->n && !strchr(",}] \t\r\n", c->s[c->i]))
        c->i++;
}

static int path_line(const ctx_t *c, const char *path)
{
    if (!c->text)
        return 0;
    pscan_t ps = {.s = c->text, .n = c->len, .line = 1, .target = path, .tlen = strlen(path)};
    char buf[PATH_MAX_LEN + 1] = "";
    ps_value(&ps, buf, 0, 0);
    return ps.best_line;
}

static void fail(ctx_t *c, const char *path, const char *what)
{
    if (!c->failed)
        snprintf(c->err, c->errlen, "策略文件错误 (policy error) %s line %d, at %s: %s", c->file,
                 path_line(c, path), path, what);
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
    /* Education's cap is per student unless the file says otherwise. */
    r->cap_per = !strcmp(key, "education") ? LV_CAP_PER_STUDENT : LV_CAP_PER_HOUSEHOLD;
    json_t *per = json_object_get(o, "cap_per");
    if (per) {
        const char *w = json_string_value(per);
        if (w && !strcmp(w, "household"))
            r->cap_per = LV_CAP_PER_HOUSEHOLD;
        else if (w && !strcmp(w, "student"))
            r->cap_per = LV_CAP_PER_STUDENT;
        else {
            char pp[192];
            snprintf(pp, sizeof pp, "%s.cap_per", path);
            fail(c, pp, "must be \"household\" or \"student\"");
        }
    }
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

static int cmp_budget(const void *a, const void *b)
{
    return strcmp(((const lv_budget_t *)a)->county, ((const lv_budget_t *)b)->county);
}

/* "budgets": {"620521": fen, ...}, optional: county sub-allocations of the
 * fund, together at most its opening allocation. */
static void load_budgets(ctx_t *c, json_t *f, const char *base, lv_fund_def_t *fd)
{
    char path[160];
    snprintf(path, sizeof path, "%s.budgets", base);
    fd->nbudgets = 0;
    json_t *b = json_object_get(f, "budgets");
    if (!b)
        return;
    if (!json_is_object(b) || json_object_size(b) > LV_POLICY_MAX_BUDGETS) {
        fail(c, path, "must be an object of at most 64 \"county code\": fen");
        return;
    }
    const char *county;
    json_t *amount;
    int64_t total = 0;
    json_object_foreach(b, county, amount)
    {
        if (strlen(county) != 6 || strspn(county, "0123456789") != 6) {
            fail(c, path, "县级预算的键须为 6 位县代码 (keys are 6-digit county codes)");
            return;
        }
        lv_budget_t *bd = &fd->budgets[fd->nbudgets++];
        snprintf(bd->county, sizeof bd->county, "%s", county);
        bd->fen = get_int(c, b, path, county, 0, LV_MONEY_MAX_FEN);
        total += bd->fen;
    }
    if (total > fd->opening_fen)
        fail(c, path, "县级预算合计超过基金期初 (the budgets add up to more than opening_fen)");
    qsort(fd->budgets, (size_t)fd->nbudgets, sizeof fd->budgets[0], cmp_budget);
}

const lv_budget_t *lv_fund_budget(const lv_fund_def_t *f, const char *county)
{
    lv_budget_t key;
    snprintf(key.county, sizeof key.county, "%.6s", county);
    return bsearch(&key, f->budgets, (size_t)f->nbudgets, sizeof key, cmp_budget);
}

/* house_damage_red: the damage levels that make a household red. */
static void load_house_damage(ctx_t *c, json_t *o, const char *base, lv_policy_version_t *v)
{
    char path[96];
    snprintf(path, sizeof path, "%s.house_damage_red", base);
    json_t *list = json_object_get(o, "house_damage_red");
    if (!json_is_array(list)) {
        fail(c, path, list ? "must be a list of 无 / 轻微 / 严重 / 倒塌" : "missing");
        return;
    }
    v->house_damage_red = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        lv_house_damage_t d;
        if (lv_house_damage_parse(json_string_value(json_array_get(list, i)), &d)) {
            char ip[128];
            snprintf(ip, sizeof ip, "%s[%zu]", path, i);
            fail(c, ip, "房屋损毁程度须为 无 / 轻微 / 严重 / 倒塌 (unknown house damage)");
            return;
        }
        v->house_damage_red |= 1u << d;
    }
}

/* Only these keys may appear in a rule, so a misspelt one is not ignored. */
static bool rule_keys_ok(ctx_t *c, json_t *r, const char *path, const char *result_key)
{
    const char *key;
    json_t *val;
    json_object_foreach(r, key, val)
    {
        if (strcmp(key, "when") && strcmp(key, "name") && !(result_key && !strcmp(key, result_key))) {
            char kp[192], msg[160];
            snprintf(kp, sizeof kp, "%s.%s", path, key);
            snprintf(msg, sizeof msg, "未知的键 (unknown key); a rule has when, name%s%s",
                     result_key ? " and " : "", result_key ? result_key : "");
            fail(c, kp, msg);
            return false;
        }
    }
    return true;
}

static void load_rule(ctx_t *c, json_t *r, const char *path, lv_rule_kind_t kind,
                      const char *result_key, lv_ruleset_t *rs, const lv_policy_version_t *v)
{
    char kp[192];
    if (!json_is_object(r)) {
        fail(c, path, "must be an object {\"when\": ...}");
        return;
    }
    if (!rule_keys_ok(c, r, path, result_key))
        return;
    json_t *name = json_object_get(r, "name");
    if (name && (!json_is_string(name) || strlen(json_string_value(name)) > 63)) {
        snprintf(kp, sizeof kp, "%s.name", path);
        fail(c, kp, "must be text of at most 63 bytes");
        return;
    }
    lv_expr_error_t ee;
    const char *result = NULL;
    if (result_key) {
        snprintf(kp, sizeof kp, "%s.%s", path, result_key);
        json_t *res = json_object_get(r, result_key);
        result = json_string_value(res);
        if (!res || lv_rule_result_check(kind, result, &ee)) {
            fail(c, kp, res ? ee.message : "missing");
            return;
        }
    }
    snprintf(kp, sizeof kp, "%s.when", path);
    const char *when = json_string_value(json_object_get(r, "when"));
    if (!when) {
        fail(c, kp, json_object_get(r, "when") ? "must be text (an expression)" : "missing");
        return;
    }
    if (lv_ruleset_add(rs, v, kind, json_string_value(name), when, result, &ee)) {
        char msg[320];
        if (ee.column > 0)
            snprintf(msg, sizeof msg, "第 %d 列 (column %d): %s", ee.column, ee.column, ee.message);
        else
            snprintf(msg, sizeof msg, "%s", ee.message);
        fail(c, kp, msg);
    }
}

/* rules: {"scope": [...], "category": [...], "grade": [...]}, each an
 * ordered list of {"when": expression, "name": label, <result>}. */
static lv_ruleset_t *load_rules(ctx_t *c, json_t *o, const char *base, const lv_policy_version_t *v)
{
    static const struct {
        const char *key;
        lv_rule_kind_t kind;
        const char *result_key;
    } kinds[] = {{"scope", LV_RULE_SCOPE, NULL},
                 {"category", LV_RULE_CATEGORY, "category"},
                 {"grade", LV_RULE_GRADE, "grade"}};
    char rp[64];
    snprintf(rp, sizeof rp, "%s.rules", base);
    json_t *rules = json_object_get(o, "rules");
    if (!json_is_object(rules)) {
        fail(c, rp, rules ? "must be an object with scope, category and grade" : "missing");
        return NULL;
    }
    lv_ruleset_t *rs = lv_ruleset_new();
    if (!rs) {
        fail(c, rp, "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && !c->failed; k++) {
        char lp[96];
        snprintf(lp, sizeof lp, "%s.%s", rp, kinds[k].key);
        json_t *list = json_object_get(rules, kinds[k].key);
        if (!json_is_array(list) || json_array_size(list) < 1 ||
            json_array_size(list) > LV_RULES_MAX) {
            fail(c, lp, list ? "must be a list of 1..16 rules" : "missing");
            break;
        }
        for (size_t i = 0; i < json_array_size(list) && !c->failed; i++) {
            char ip[128];
            snprintf(ip, sizeof ip, "%s[%zu]", lp, i);
            load_rule(c, json_array_get(list, i), ip, kinds[k].kind, kinds[k].result_key, rs, v);
        }
    }
    if (!c->failed) {
        lv_rule_kind_t kind;
        int idx;
        char why[320];
        if (lv_ruleset_probe(rs, &kind, &idx, why, sizeof why)) {
            char wp[112];
            snprintf(wp, sizeof wp, "%s.%s[%d].when", rp, lv_rule_kind_name(kind), idx);
            fail(c, wp, why);
        }
    }
    if (c->failed)
        lv_ruleset_destroy(&rs);
    return rs;
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
    load_house_damage(c, o, base, v);
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
        load_budgets(c, f, fi, &v->funds[i]);
    }
}

/* The whole file, NUL-terminated, or NULL with err written. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "策略文件错误 (policy error) %s: 无法读取 (cannot read): %s", path,
                 strerror(errno));
        return NULL;
    }
    char *text = malloc(LV_POLICY_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, LV_POLICY_MAX_BYTES + 1, f) : 0;
    bool bad = !text || ferror(f) || n > LV_POLICY_MAX_BYTES;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "策略文件错误 (policy error) %s: %s", path,
                 !text ? "out of memory"
                       : n > LV_POLICY_MAX_BYTES ? "文件过大 (larger than 4 MiB)"
                                                 : "读取失败 (read error)");
        free(text);
        return NULL;
    }
    text[n] = '\0';
    *len = n;
    return text;
}

lv_policy_t *lv_policy_load(const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = read_file(path, &len, err, errlen);
    if (!text)
        return NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "策略文件错误 (policy error) %s line %d column %d: %s", path, je.line,
                 je.column, je.text);
        free(text);
        return NULL;
    }
    ctx_t c = {err, errlen, false, path, text, len};
    lv_policy_t *self = calloc(1, sizeof *self);
    json_t *versions = json_object_get(root, "versions");
    if (!self) {
        fail(&c, "versions", "out of memory");
    } else if (!json_is_array(versions) || json_array_size(versions) == 0 ||
               json_array_size(versions) > LV_POLICY_MAX_VERSIONS) {
        fail(&c, "versions", "must be a list of 1..32 versions");
    } else {
        self->n = (int)json_array_size(versions);
        for (int i = 0; i < self->n && !c.failed; i++) {
            json_t *vo = json_array_get(versions, (size_t)i);
            load_version(&c, vo, i, &self->v[i]);
            if (!c.failed) {
                char base[32];
                snprintf(base, sizeof base, "versions[%d]", i);
                self->rules[i] = load_rules(&c, vo, base, &self->v[i]);
                self->v[i].rules = self->rules[i];
            }
        }
        for (int i = 1; i < self->n && !c.failed; i++)
            if (self->v[i].effective_ms <= self->v[i - 1].effective_ms) {
                char ep[48];
                snprintf(ep, sizeof ep, "versions[%d].effective_from", i);
                fail(&c, ep, "effective_from must increase from version to version");
            }
    }
    json_decref(root);
    free(text);
    if (c.failed) {
        lv_policy_destroy(&self);
        return NULL;
    }
    return self;
}

void lv_policy_destroy(lv_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_policy_t *self = *self_p;
    for (int i = 0; i < LV_POLICY_MAX_VERSIONS; i++)
        lv_ruleset_destroy(&self->rules[i]);
    free(self);
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
