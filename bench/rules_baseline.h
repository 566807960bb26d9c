/* The default policy's scope, category and grade rules written out by hand
 * in C, with the thresholds taken from the policy version: the baseline the
 * rule engine is measured against (bench/expr_bench.c) and the oracle it is
 * checked against (tests/unit/test_rules.c). It is what lv_rules did before
 * the rules became expressions in the policy file. */
#ifndef RULES_BASELINE_H
#define RULES_BASELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "lv_rules.h"

typedef struct {
    bool in_scope;
    lv_grade_t grade;
    const char *category;
} baseline_verdict_t;

static inline void baseline_decide(const lv_policy_version_t *v, const lv_facts_t *f,
                                   baseline_verdict_t *out)
{
    int64_t m = f->members, line = v->income_line_fen;
    int64_t after = f->income_fen - f->rigid_fen;
    out->in_scope = after < line * m;
    out->grade = LV_GRADE_NONE;
    out->category = NULL;
    if (out->in_scope) {
        bool under = f->income_fen < line * m;
        out->category = !under ? "突发严重困难户" : f->exited ? "脱贫不稳定户" : "边缘易致贫户";
        bool house = f->house_damage == LV_HOUSE_UNKNOWN
                         ? f->house_collapsed
                         : ((v->house_damage_red >> f->house_damage) & 1u) != 0;
        bool red = after * v->poverty_den < line * v->poverty_num * m ||
                   f->rigid_fen >= f->income_fen || house;
        out->grade = red ? LV_GRADE_RED : LV_GRADE_ORANGE;
    } else if (after * v->watch_den < line * v->watch_num * m) {
        out->grade = LV_GRADE_YELLOW;
    }
}

#endif
