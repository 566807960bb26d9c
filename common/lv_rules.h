/* The monitoring rules of the default policy, as pure functions of a
 * household's money picture and a policy version: scope, category, grade.
 * No I/O, no allocation; every threshold comes from the policy version. */
#ifndef LV_RULES_H
#define LV_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lv_policy.h"

typedef struct {
    int64_t income_fen; /* annual net income of the household */
    int members;        /* >= 1 */
    int64_t rigid_fen;  /* rigid expenditure over the rolling window */
    bool exited;        /* 脱贫户 */
    bool house_collapsed; /* 倒塌 or 严重 damage (disaster feed, later issues) */
} lv_facts_t;

typedef enum { LV_GRADE_NONE = 0, LV_GRADE_YELLOW, LV_GRADE_ORANGE, LV_GRADE_RED } lv_grade_t;

typedef struct {
    bool in_scope;        /* pci_after < line */
    lv_grade_t grade;     /* red / orange in scope; yellow = watch list; none */
    const char *category; /* static string, NULL when not in scope */
    int64_t pci_fen;      /* income / members, rounded toward minus infinity */
    int64_t pci_after_fen;
    char explain[512];    /* the rule that fired and the values it saw */
} lv_verdict_t;

/* Evaluates the facts under policy version v. Comparisons are exact: the
 * per-capita figures are never rounded before a comparison (income - rigid <
 * line x members, not a rounded quotient). Returns 0, or LV_EINVAL when
 * members < 1. */
int lv_rules_eval(const lv_policy_version_t *v, const lv_facts_t *f, lv_verdict_t *out);

const char *lv_grade_name(lv_grade_t g);

/* The order of a grade by its name: none/unknown 0, yellow 1, orange 2, red 3. */
int lv_grade_rank(const char *name);

#endif
