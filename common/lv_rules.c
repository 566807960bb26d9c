#include "lv_rules.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_money.h"

/* The slots of the facts, in the order the evaluator reads them. */
enum { S_INCOME, S_RIGID, S_MEMBERS, S_PCI, S_PCI_AFTER, S_EXITED, S_HOUSE_RED, S_IN_SCOPE, NSLOTS };
#define BIT(s) ((uint64_t)1 << (s))

/* The categories of SPEC.md, the only ones the API knows. */
static const char *const s_categories[] = {"脱贫不稳定户", "边缘易致贫户", "突发严重困难户"};
#define NCATEGORIES ((int)(sizeof s_categories / sizeof s_categories[0]))

static const char *const s_house[] = {NULL, "无", "轻微", "严重", "倒塌"};

typedef struct {
    char name[64];
    lv_expr_t *when;
    int result; /* the category's index, or an lv_grade_t */
} rule_t;

struct lv_ruleset {
    rule_t rules[LV_RULE_KINDS][LV_RULES_MAX];
    int n[LV_RULE_KINDS];
    uint64_t slots_used;
};

/* ---- names ------------------------------------------------------------- */

const char *lv_grade_name(lv_grade_t g)
{
    switch (g) {
    case LV_GRADE_RED: return "red";
    case LV_GRADE_ORANGE: return "orange";
    case LV_GRADE_YELLOW: return "yellow";
    default: return NULL;
    }
}

int lv_grade_rank(const char *name)
{
    if (!name)
        return 0;
    return !strcmp(name, "red") ? 3 : !strcmp(name, "orange") ? 2 : !strcmp(name, "yellow") ? 1 : 0;
}

int lv_house_damage_parse(const char *s, lv_house_damage_t *out)
{
    for (int i = LV_HOUSE_NONE; i <= LV_HOUSE_COLLAPSED; i++)
        if (s && !strcmp(s, s_house[i])) {
            *out = (lv_house_damage_t)i;
            return 0;
        }
    return LV_EINVAL;
}

const char *lv_house_damage_name(lv_house_damage_t d)
{
    return d >= LV_HOUSE_NONE && d <= LV_HOUSE_COLLAPSED ? s_house[d] : NULL;
}

const char *lv_rule_kind_name(lv_rule_kind_t kind)
{
    return kind == LV_RULE_SCOPE ? "scope" : kind == LV_RULE_CATEGORY ? "category" : "grade";
}

/* ---- compiling ----------------------------------------------------------- */

lv_ruleset_t *lv_ruleset_new(void)
{
    return calloc(1, sizeof(lv_ruleset_t));
}

void lv_ruleset_destroy(lv_ruleset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_ruleset_t *self = *self_p;
    for (int k = 0; k < LV_RULE_KINDS; k++)
        for (int i = 0; i < self->n[k]; i++)
            lv_expr_destroy(&self->rules[k][i].when);
    free(self);
    *self_p = NULL;
}

int lv_ruleset_count(const lv_ruleset_t *self, lv_rule_kind_t kind)
{
    return self ? self->n[kind] : 0;
}

static int set_err(lv_expr_error_t *err, int code, const char *msg)
{
    err->column = 0;
    snprintf(err->message, sizeof err->message, "%s", msg);
    return code;
}

/* The names a rule of this version may use. Returns how many, or -1 when a
 * constant does not fit (err filled). */
static int version_names(const lv_policy_version_t *v, lv_expr_name_t *nm, lv_expr_error_t *err)
{
    static const struct {
        const char *name;
        lv_expr_type_t type;
        int slot;
    } facts[] = {
        {"income", LV_EXPR_NUMBER, S_INCOME},       {"rigid", LV_EXPR_NUMBER, S_RIGID},
        {"members", LV_EXPR_NUMBER, S_MEMBERS},     {"pci", LV_EXPR_NUMBER, S_PCI},
        {"pci_after", LV_EXPR_NUMBER, S_PCI_AFTER}, {"exited", LV_EXPR_BOOLEAN, S_EXITED},
        {"house_damage_red", LV_EXPR_BOOLEAN, S_HOUSE_RED},
        {"in_scope", LV_EXPR_BOOLEAN, S_IN_SCOPE},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        nm[n++] = (lv_expr_name_t){facts[i].name, facts[i].type, facts[i].slot, {0, 1}};
    lv_num_t line = {v->income_line_fen, 1}, pl, wl, t;
    if (lv_num_mul(line, (lv_num_t){v->poverty_num, 1}, &t) ||
        lv_num_div(t, (lv_num_t){v->poverty_den, 1}, &pl) ||
        lv_num_mul(line, (lv_num_t){v->watch_num, 1}, &t) ||
        lv_num_div(t, (lv_num_t){v->watch_den, 1}, &wl)) {
        set_err(err, LV_EINVAL, "poverty_line 或 watch_line 无法计算 (the line times a ratio overflows)");
        return -1;
    }
    nm[n++] = (lv_expr_name_t){"line", LV_EXPR_NUMBER, -1, line};
    nm[n++] = (lv_expr_name_t){"poverty_line", LV_EXPR_NUMBER, -1, pl};
    nm[n++] = (lv_expr_name_t){"watch_line", LV_EXPR_NUMBER, -1, wl};
    return n;
}

static int rule_result(lv_rule_kind_t kind, const char *result, int *out, lv_expr_error_t *err)
{
    *out = 0;
    if (kind == LV_RULE_SCOPE)
        return 0;
    if (kind == LV_RULE_CATEGORY) {
        for (int i = 0; i < NCATEGORIES; i++)
            if (result && !strcmp(result, s_categories[i])) {
                *out = i;
                return 0;
            }
        return set_err(err, LV_EINVAL,
                       "category 须为 脱贫不稳定户 / 边缘易致贫户 / 突发严重困难户 "
                       "(must be one of the three categories)");
    }
    for (int g = LV_GRADE_YELLOW; g <= LV_GRADE_RED; g++)
        if (result && !strcmp(result, lv_grade_name((lv_grade_t)g))) {
            *out = g;
            return 0;
        }
    return set_err(err, LV_EINVAL, "grade 须为 red / orange / yellow (must be red, orange or yellow)");
}

int lv_rule_result_check(lv_rule_kind_t kind, const char *result, lv_expr_error_t *err)
{
    int r;
    memset(err, 0, sizeof *err);
    return rule_result(kind, result, &r, err);
}

int lv_ruleset_add(lv_ruleset_t *self, const lv_policy_version_t *v, lv_rule_kind_t kind,
                   const char *name, const char *when, const char *result, lv_expr_error_t *err)
{
    memset(err, 0, sizeof *err);
    if (self->n[kind] >= LV_RULES_MAX)
        return set_err(err, LV_ELIMIT, "规则过多, 每类最多 16 条 (at most 16 rules of a kind)");
    rule_t r = {.result = 0};
    if (name && strlen(name) >= sizeof r.name)
        return set_err(err, LV_EINVAL, "name 过长 (longer than 63 bytes)");
    snprintf(r.name, sizeof r.name, "%s", name ? name : "");
    if (rule_result(kind, result, &r.result, err))
        return LV_EINVAL;
    lv_expr_name_t names[16];
    int nn = version_names(v, names, err);
    if (nn < 0)
        return LV_EINVAL;
    r.when = lv_expr_compile(when, names, nn, err);
    if (!r.when)
        return LV_EINVAL;
    if (lv_expr_type(r.when) != LV_EXPR_BOOLEAN) {
        lv_expr_destroy(&r.when);
        return set_err(err, LV_EINVAL,
                       "条件须为真假值, 不能是数值 (a condition must be true or false, not a number)");
    }
    if (kind == LV_RULE_SCOPE && (lv_expr_slots_used(r.when) & BIT(S_IN_SCOPE))) {
        const char *at = strstr(when, "in_scope");
        lv_expr_destroy(&r.when);
        set_err(err, LV_EINVAL,
                "范围规则不能用 in_scope, 它是范围规则的结果 (in_scope is what the scope rules "
                "decide)");
        err->column = at ? (int)(at - when) + 1 : 0;
        return LV_EINVAL;
    }
    self->slots_used |= lv_expr_slots_used(r.when);
    self->rules[kind][self->n[kind]++] = r;
    return 0;
}

/* ---- evaluating ---------------------------------------------------------- */

static int fill_slots(const lv_policy_version_t *v, uint64_t used, const lv_facts_t *f,
                      lv_num_t *s)
{
    s[S_INCOME] = (lv_num_t){f->income_fen, 1};
    s[S_RIGID] = (lv_num_t){f->rigid_fen, 1};
    s[S_MEMBERS] = (lv_num_t){f->members, 1};
    s[S_EXITED] = (lv_num_t){f->exited, 1};
    bool red = f->house_damage == LV_HOUSE_UNKNOWN ? f->house_collapsed
                                                   : (v->house_damage_red >> f->house_damage) & 1u;
    s[S_HOUSE_RED] = (lv_num_t){red, 1};
    s[S_IN_SCOPE] = (lv_num_t){0, 1};
    s[S_PCI] = s[S_PCI_AFTER] = (lv_num_t){0, 1};
    if (used & (BIT(S_PCI) | BIT(S_PCI_AFTER))) {
        int64_t after;
        if (__builtin_sub_overflow(f->income_fen, f->rigid_fen, &after))
            return LV_EXPR_EOVERFLOW;
        int r = lv_num_make(f->income_fen, f->members, &s[S_PCI]);
        if (!r)
            r = lv_num_make(after, f->members, &s[S_PCI_AFTER]);
        return r;
    }
    return 0;
}

/* The first rule of the kind whose condition holds, in *fired (-1: none). */
static int first_true(const lv_ruleset_t *rs, lv_rule_kind_t k, const lv_num_t *s,
                      lv_decision_t *d, int *fired)
{
    *fired = -1;
    for (int i = 0; i < rs->n[k]; i++) {
        int r = lv_expr_test(rs->rules[k][i].when, s);
        if (r < 0) {
            d->fault = r;
            d->fault_kind = k;
            d->fault_rule = i;
            return r;
        }
        if (r) {
            *fired = i;
            return 0;
        }
    }
    return 0;
}

int lv_rules_decide(const lv_policy_version_t *v, const lv_facts_t *f, lv_decision_t *d)
{
    *d = (lv_decision_t){.scope_rule = -1, .category_rule = -1, .grade_rule = -1,
                         .fault_rule = -1};
    const lv_ruleset_t *rs = v->rules;
    if (!rs || f->members < 1)
        return LV_EINVAL;
    lv_num_t s[NSLOTS];
    int r = fill_slots(v, rs->slots_used, f, s);
    if (r) {
        d->fault = r;
        return r;
    }
    if ((r = first_true(rs, LV_RULE_SCOPE, s, d, &d->scope_rule)))
        return r;
    d->in_scope = d->scope_rule >= 0;
    s[S_IN_SCOPE].num = d->in_scope;
    if (d->in_scope) {
        if ((r = first_true(rs, LV_RULE_CATEGORY, s, d, &d->category_rule)))
            return r;
        if (d->category_rule >= 0)
            d->category = s_categories[rs->rules[LV_RULE_CATEGORY][d->category_rule].result];
    }
    if ((r = first_true(rs, LV_RULE_GRADE, s, d, &d->grade_rule)))
        return r;
    if (d->grade_rule >= 0)
        d->grade = (lv_grade_t)rs->rules[LV_RULE_GRADE][d->grade_rule].result;
    return 0;
}

unsigned lv_rules_diff(const lv_decision_t *before, const lv_decision_t *after)
{
    if (!before->in_scope && after->in_scope)
        return LV_CHANGE_ENTER;
    if (before->in_scope && !after->in_scope)
        return LV_CHANGE_LEAVE;
    unsigned c = 0;
    if (before->in_scope && before->category != after->category &&
        (!before->category || !after->category || strcmp(before->category, after->category)))
        c |= LV_CHANGE_CATEGORY;
    if (before->grade != after->grade)
        c |= LV_CHANGE_GRADE;
    return c;
}

/* ---- explaining ---------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t n, at, want;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = o->at < o->n ? o->buf + o->at : NULL;
    int w = vsnprintf(dst, dst ? o->n - o->at : 0, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    o->want += (size_t)w;
    o->at = o->at + (size_t)w < o->n ? o->at + (size_t)w : (o->n ? o->n - 1 : 0);
}

/* "grade red (name): when: values → true" */
static void put_rule(out_t *o, const lv_ruleset_t *rs, lv_rule_kind_t k, int i,
                     const lv_num_t *s, const char *outcome)
{
    const rule_t *r = &rs->rules[k][i];
    if (o->want)
        put(o, "; ");
    put(o, "%s", lv_rule_kind_name(k));
    if (k == LV_RULE_CATEGORY)
        put(o, " %s", s_categories[r->result]);
    else if (k == LV_RULE_GRADE)
        put(o, " %s", lv_grade_name((lv_grade_t)r->result));
    else if (rs->n[k] > 1)
        put(o, "[%d]", i);
    if (r->name[0])
        put(o, " (%s)", r->name);
    char vals[LV_EXPR_MAX_SRC + LV_EXPR_MAX_REFS * 48];
    lv_expr_substitute(r->when, s, vals, sizeof vals);
    put(o, ": %s: %s → %s", lv_expr_source(r->when), vals, outcome);
}

int lv_rules_explain(const lv_policy_version_t *v, const lv_facts_t *f, const lv_decision_t *d,
                     char *buf, size_t n)
{
    out_t o = {buf, n, 0, 0};
    if (n)
        buf[0] = '\0';
    const lv_ruleset_t *rs = v->rules;
    if (!rs) {
        put(&o, "政策版本 %s 没有规则 (the policy version has no compiled rules)", v->version);
        return (int)o.want;
    }
    if (f->members < 1) {
        put(&o, "家庭人数须至少为 1 (members must be at least 1, got %d)", f->members);
        return (int)o.want;
    }
    lv_num_t s[NSLOTS];
    if (fill_slots(v, rs->slots_used, f, s)) {
        put(&o, "人均收入无法计算: %s (income %lld, rigid %lld, members %d)",
            lv_expr_strerror(LV_EXPR_EOVERFLOW), (long long)f->income_fen,
            (long long)f->rigid_fen, f->members);
        return (int)o.want;
    }
    s[S_IN_SCOPE].num = d->in_scope;
    /* The scope rule that fired, or every one that did not. */
    if (d->scope_rule >= 0) {
        put_rule(&o, rs, LV_RULE_SCOPE, d->scope_rule, s, "true");
    } else {
        int upto = d->fault && d->fault_kind == LV_RULE_SCOPE ? d->fault_rule : rs->n[LV_RULE_SCOPE];
        for (int i = 0; i < upto; i++)
            put_rule(&o, rs, LV_RULE_SCOPE, i, s, "false");
    }
    if (d->category_rule >= 0)
        put_rule(&o, rs, LV_RULE_CATEGORY, d->category_rule, s, "true");
    else if (d->in_scope && !d->fault)
        put(&o, "; category: 没有规则命中 (no category rule fired)");
    if (d->grade_rule >= 0)
        put_rule(&o, rs, LV_RULE_GRADE, d->grade_rule, s, "true");
    if (d->fault) {
        const rule_t *r = &rs->rules[d->fault_kind][d->fault_rule];
        put(&o, "%s%s[%d] 无法计算 (cannot be evaluated): %s: %s", o.want ? "; " : "",
            lv_rule_kind_name(d->fault_kind), d->fault_rule, lv_expr_source(r->when),
            lv_expr_strerror(d->fault));
    }
    return (int)o.want;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int lv_rules_eval(const lv_policy_version_t *v, const lv_facts_t *f, lv_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    lv_decision_t d;
    int r = lv_rules_decide(v, f, &d);
    if (f->members >= 1) {
        int64_t after;
        out->pci_fen = floor_div(f->income_fen, f->members);
        out->pci_after_fen = __builtin_sub_overflow(f->income_fen, f->rigid_fen, &after)
                                 ? (f->income_fen < 0 ? INT64_MIN : INT64_MAX)
                                 : floor_div(after, f->members);
    }
    out->in_scope = d.in_scope;
    out->grade = d.grade;
    out->category = d.category;
    lv_rules_explain(v, f, &d, out->explain, sizeof out->explain);
    return r;
}

/* ---- the load-time check ------------------------------------------------- */

int lv_ruleset_probe(const lv_ruleset_t *self, lv_rule_kind_t *kind, int *index, char *why,
                     size_t n)
{
    const int64_t money[2] = {0, LV_MONEY_MAX_FEN};
    const int64_t members[2] = {1, LV_RULES_PROBE_MEMBERS};
    for (unsigned m = 0; m < 64; m++) {
        lv_num_t s[NSLOTS];
        int64_t inc = money[m & 1], rig = money[(m >> 1) & 1], mem = members[(m >> 2) & 1];
        s[S_INCOME] = (lv_num_t){inc, 1};
        s[S_RIGID] = (lv_num_t){rig, 1};
        s[S_MEMBERS] = (lv_num_t){mem, 1};
        s[S_EXITED] = (lv_num_t){(m >> 3) & 1, 1};
        s[S_HOUSE_RED] = (lv_num_t){(m >> 4) & 1, 1};
        s[S_IN_SCOPE] = (lv_num_t){(m >> 5) & 1, 1};
        lv_num_make(inc, mem, &s[S_PCI]);
        lv_num_make(inc - rig, mem, &s[S_PCI_AFTER]);
        for (int k = 0; k < LV_RULE_KINDS; k++)
            for (int i = 0; i < self->n[k]; i++) {
                int r = lv_expr_test(self->rules[k][i].when, s);
                if (r >= 0)
                    continue;
                *kind = (lv_rule_kind_t)k;
                *index = i;
                snprintf(why, n,
                         "%s, 当 (when) income = %lld, rigid = %lld, members = %lld "
                         "(规则须对所有 0..%lld 分 的金额和 1..%d 人可算 / a rule must work for "
                         "every amount up to %lld fen and 1..%d members)",
                         lv_expr_strerror(r), (long long)inc, (long long)rig, (long long)mem,
                         (long long)LV_MONEY_MAX_FEN, LV_RULES_PROBE_MEMBERS,
                         (long long)LV_MONEY_MAX_FEN, LV_RULES_PROBE_MEMBERS);
                return r;
            }
    }
    return 0;
}
