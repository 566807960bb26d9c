/* The policy: effective-dated versions loaded from a JSON file. Every value
 * a rule or a payout uses comes from here, never from a constant in code. */
#ifndef LV_POLICY_H
#define LV_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define LV_POLICY_MAX_TIERS 8
#define LV_POLICY_MAX_FUNDS 16
#define LV_POLICY_MAX_VERSIONS 32
#define LV_POLICY_MAX_BUDGETS 64 /* county budgets per fund */
#define LV_POLICY_MAX_BYTES ((size_t)4 << 20) /* a policy file larger than this is refused */

struct lv_ruleset; /* lv_rules.h */

typedef struct {
    int64_t from_fen;  /* the tier applies from here up to the next tier's from_fen */
    int rate_permille;
} lv_tier_t;

/* Whom a yearly cap is counted for. */
typedef enum { LV_CAP_PER_HOUSEHOLD, LV_CAP_PER_STUDENT } lv_cap_per_t;

typedef struct {
    lv_tier_t tiers[LV_POLICY_MAX_TIERS];
    int ntiers;
    int64_t cap_fen;       /* per year, per household or per student (cap_per) */
    lv_cap_per_t cap_per;  /* "cap_per" in the file; education defaults to student */
} lv_payout_rule_t;

/* A county sub-allocation of a fund: the county's payouts are reserved from
 * an account funded with this much from the fund. */
typedef struct {
    char county[7];
    int64_t fen;
} lv_budget_t;

typedef struct {
    char fund_id[32];
    char name[96];
    int64_t opening_fen;
    lv_budget_t budgets[LV_POLICY_MAX_BUDGETS]; /* sorted by county */
    int nbudgets;
} lv_fund_def_t;

typedef struct {
    char version[64];
    int64_t effective_ms;
    int64_t income_line_fen;
    int64_t poverty_num, poverty_den; /* poverty_line = line * num / den */
    int64_t watch_num, watch_den;     /* yellow watch line = line * num / den */
    int rigid_window_days;
    int verification_due_days;
    int publicity_days;
    int identification_target_days;
    int recheck_rate_permille;
    int recheck_tolerance_permille;
    /* Risk factors and the lifecycle (SPEC.md Default policy). */
    int wage_drop_permille;         /* 因务工就业不稳: wage income down by at least this share */
    int wage_prior_months;          /* ... against the mean of this many prior months */
    int elimination_months;         /* 风险消除: at least this long after identification, */
    int elimination_min_measures;   /* with at least this many assistance measures delivered */
    int overdue_escalate_hours;     /* an overdue task is escalated and reassigned after this */
    unsigned house_damage_red;      /* bit (1 << lv_house_damage_t) per damage that counts as red */
    /* The scope, category and grade rules, compiled at load (lv_rules.h);
     * owned by the policy, NULL only in a version built by hand. */
    const struct lv_ruleset *rules;
    lv_payout_rule_t illness, disaster, education;
    /* The medical-assistance calculator: basic, and tilted for monitoring
     * objects (医疗救助 基本 / 倾斜), on the year's compliant self-paid cost. */
    lv_payout_rule_t med_basic, med_tilted;
    int64_t relief_max_fen;
    int reservation_days; /* a reserved payout not paid by then is voided */
    lv_fund_def_t funds[LV_POLICY_MAX_FUNDS];
    int nfunds;
} lv_policy_version_t;

typedef struct lv_policy lv_policy_t;

/* Loads and validates the file (docs/policy.md) and compiles its rules. On
 * error returns NULL and writes a message naming the file, the line and, for
 * anything but a syntax error, the key path, e.g.
 *   策略文件错误 (policy error) policy.json line 12, at versions[0].rules.grade[1].when:
 *   第 3 列 (column 3): 未知名称 (unknown name) "incme"
 * A missing key is reported at the line of the object that lacks it. */
lv_policy_t *lv_policy_load(const char *path, char *err, size_t errlen);
void lv_policy_destroy(lv_policy_t **self_p);

/* The version in effect at a time (the latest effective_from <= at_ms), or
 * NULL when none is. */
const lv_policy_version_t *lv_policy_at(const lv_policy_t *self, int64_t at_ms);

/* The budget of a county (6 digits) in a fund, or NULL when the fund has
 * none for it (its payouts then come from the fund itself). */
const lv_budget_t *lv_fund_budget(const lv_fund_def_t *f, const char *county);

/* A payout from a tier table: the sum over tiers of (part of basis in the
 * tier) x rate, in fen x permille, divided by 1000 once at the end rounding
 * half up, then capped at cap_fen - already_paid_fen (never below 0).
 * Writes the computation in words into explain. */
int64_t lv_payout_compute(const lv_payout_rule_t *rule, int64_t basis_fen, int64_t already_paid_fen,
                          char *explain, size_t n);

#endif
