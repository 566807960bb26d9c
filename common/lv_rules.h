/* The monitoring rules of a policy version: scope, category and grade, as
 * expressions over a household's facts (lv_expr), compiled once when the
 * policy is loaded and evaluated per household with no I/O and no
 * allocation. The same evaluation serves matching, dispatch and the shadow
 * run (levee shadow), so a draft policy is judged by the code that will
 * apply it.
 *
 * Names a rule may use (docs/policy.md):
 *   facts      income, rigid (fen), members, pci = income / members,
 *              pci_after = (income - rigid) / members (exact fractions),
 *              exited (脱贫户), house_damage_red (the household's house damage
 *              is one the version counts as red), in_scope (category and
 *              grade rules only: the scope rules' verdict)
 *   constants  line (income_line_fen), poverty_line = line x
 *              poverty_line_ratio, watch_line = line x watch_ratio (exact) */
#ifndef LV_RULES_H
#define LV_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lv_expr.h"
#include "lv_policy.h"

/* House damage (房屋损毁) as the disaster feed reports it. */
typedef enum {
    LV_HOUSE_UNKNOWN = 0, /* no record says */
    LV_HOUSE_NONE,        /* 无 */
    LV_HOUSE_LIGHT,       /* 轻微 */
    LV_HOUSE_SEVERE,      /* 严重 */
    LV_HOUSE_COLLAPSED,   /* 倒塌 */
} lv_house_damage_t;

typedef struct {
    int64_t income_fen; /* annual net income of the household */
    int members;        /* >= 1 */
    int64_t rigid_fen;  /* rigid expenditure over the rolling window */
    bool exited;        /* 脱贫户 */
    /* 倒塌 or 严重 damage, for callers that know only that much: counts as
     * red when house_damage is LV_HOUSE_UNKNOWN. */
    bool house_collapsed;
    lv_house_damage_t house_damage; /* the worst damage on record in the window */
} lv_facts_t;

typedef enum { LV_GRADE_NONE = 0, LV_GRADE_YELLOW, LV_GRADE_ORANGE, LV_GRADE_RED } lv_grade_t;

typedef enum { LV_RULE_SCOPE = 0, LV_RULE_CATEGORY, LV_RULE_GRADE } lv_rule_kind_t;
#define LV_RULE_KINDS 3
#define LV_RULES_MAX 16 /* rules of one kind in one version */

/* What the rules decided, and which rule decided it. */
typedef struct {
    bool in_scope;
    lv_grade_t grade;
    const char *category; /* static string; NULL when not in scope or no category rule fired */
    int scope_rule, category_rule, grade_rule; /* the rule that fired, -1 when none did */
    int fault;                 /* 0, or the evaluation fault (LV_EXPR_E*) */
    lv_rule_kind_t fault_kind; /* ... of this rule */
    int fault_rule;
} lv_decision_t;

typedef struct {
    bool in_scope;        /* a scope rule holds (default: pci_after < line) */
    lv_grade_t grade;     /* the first grade rule that holds; none when no rule does */
    const char *category; /* static string, NULL when not in scope */
    int64_t pci_fen;      /* income / members, rounded toward minus infinity */
    int64_t pci_after_fen;
    char explain[512];    /* the rules that fired and the values they saw (cut to fit) */
} lv_verdict_t;

/* Evaluates the facts under policy version v and explains the verdict, e.g.
 * "scope: income - rigid < line * members: 1200000 - 900000 < 520000 * 4 → true; ...".
 * Comparisons are exact. Returns 0; LV_EINVAL when members < 1 or the
 * version has no compiled rules; an LV_EXPR_E* fault when a rule cannot be
 * evaluated for these facts (explained; only possible for facts beyond the
 * limits checked at load, see lv_ruleset_probe). */
int lv_rules_eval(const lv_policy_version_t *v, const lv_facts_t *f, lv_verdict_t *out);

/* The decision alone, without the explanation: the per-household path of
 * bulk re-evaluation and of the shadow run. Same return values. */
int lv_rules_decide(const lv_policy_version_t *v, const lv_facts_t *f, lv_decision_t *d);

/* The explanation of a decision lv_rules_decide made for the same facts and
 * version. Returns the length it wanted (like snprintf). */
int lv_rules_explain(const lv_policy_version_t *v, const lv_facts_t *f, const lv_decision_t *d,
                     char *buf, size_t n);

/* How a decision changed from before to after (bits): entered or left the
 * scope, or, staying in scope, changed category; the grade changed while
 * the scope did not. */
#define LV_CHANGE_ENTER 1u
#define LV_CHANGE_LEAVE 2u
#define LV_CHANGE_CATEGORY 4u
#define LV_CHANGE_GRADE 8u
unsigned lv_rules_diff(const lv_decision_t *before, const lv_decision_t *after);

const char *lv_grade_name(lv_grade_t g);

/* The order of a grade by its name: none/unknown 0, yellow 1, orange 2, red 3. */
int lv_grade_rank(const char *name);

/* 无 / 轻微 / 严重 / 倒塌 → the level; LV_EINVAL for anything else. */
int lv_house_damage_parse(const char *s, lv_house_damage_t *out);
const char *lv_house_damage_name(lv_house_damage_t d);

/* ---- the compiled rules of one version (built by lv_policy_load) ------- */

typedef struct lv_ruleset lv_ruleset_t;

lv_ruleset_t *lv_ruleset_new(void);
void lv_ruleset_destroy(lv_ruleset_t **self_p);

/* Compiles one rule against v's constants and appends it to its kind's
 * ordered list. result: NULL for a scope rule, the category (脱贫不稳定户 /
 * 边缘易致贫户 / 突发严重困难户) or the grade (red / orange / yellow);
 * name: optional label for explanations. Returns 0, or LV_EINVAL with err
 * filled (err->column > 0 when it is about a place in `when`), LV_ELIMIT
 * when the kind has LV_RULES_MAX rules already. */
int lv_ruleset_add(lv_ruleset_t *self, const lv_policy_version_t *v, lv_rule_kind_t kind,
                   const char *name, const char *when, const char *result, lv_expr_error_t *err);

int lv_ruleset_count(const lv_ruleset_t *self, lv_rule_kind_t kind);

/* Checks a rule's result for its kind (what lv_ruleset_add accepts): 0, or
 * LV_EINVAL with err filled. */
int lv_rule_result_check(lv_rule_kind_t kind, const char *result, lv_expr_error_t *err);

/* Evaluates every rule for facts at the limits a household can have
 * (income and rigid 0 or LV_MONEY_MAX_FEN, 1 or LV_RULES_PROBE_MEMBERS
 * members, every boolean both ways). Returns 0 when none fails, else the
 * fault, with the rule and the facts that make it fail in kind, index and
 * why. */
#define LV_RULES_PROBE_MEMBERS 1000
int lv_ruleset_probe(const lv_ruleset_t *self, lv_rule_kind_t *kind, int *index, char *why,
                     size_t n);

const char *lv_rule_kind_name(lv_rule_kind_t kind);

#endif
