#include "lv_rules.h"

#include <stdio.h>
#include <string.h>

#include "lv_err.h"
#include "lv_money.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

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

int lv_rules_eval(const lv_policy_version_t *v, const lv_facts_t *f, lv_verdict_t *out)
{
    if (f->members < 1)
        return LV_EINVAL;
    int64_t m = f->members;
    int64_t after = f->income_fen - f->rigid_fen;
    out->pci_fen = floor_div(f->income_fen, m);
    out->pci_after_fen = floor_div(after, m);
    out->in_scope = after < v->income_line_fen * m;
    out->grade = LV_GRADE_NONE;
    out->category = NULL;

    char line[32], pa[32], rig[32], inc[32];
    lv_money_format(v->income_line_fen, line, sizeof line);
    lv_money_format(out->pci_after_fen, pa, sizeof pa);
    lv_money_format(f->rigid_fen, rig, sizeof rig);
    lv_money_format(f->income_fen, inc, sizeof inc);

    if (out->in_scope) {
        /* pci < line, with the same exactness as above. */
        bool under = f->income_fen < v->income_line_fen * m;
        out->category = !under ? "突发严重困难户" : f->exited ? "脱贫不稳定户" : "边缘易致贫户";
        /* poverty_line = line x num / den; pci_after < poverty_line
         * <=> after x den < line x num x members. */
        bool below_poverty = after * v->poverty_den < v->income_line_fen * v->poverty_num * m;
        bool rigid_over = f->rigid_fen >= f->income_fen;
        out->grade = (below_poverty || rigid_over || f->house_collapsed) ? LV_GRADE_RED
                                                                         : LV_GRADE_ORANGE;
        snprintf(out->explain, sizeof out->explain,
                 "pci_after_rigid %s < line %s (income %s, rigid %s, members %d); %s%s%s",
                 pa, line, inc, rig, f->members, out->category,
                 below_poverty ? "; red: pci_after < poverty_line" : "",
                 rigid_over ? "; red: rigid >= income" : "");
    } else if (after * v->watch_den < v->income_line_fen * v->watch_num * m) {
        out->grade = LV_GRADE_YELLOW;
        snprintf(out->explain, sizeof out->explain,
                 "yellow watch: pci_after_rigid %s < %lld/%lld x line %s (income %s, rigid %s, "
                 "members %d)",
                 pa, (long long)v->watch_num, (long long)v->watch_den, line, inc, rig, f->members);
    } else {
        snprintf(out->explain, sizeof out->explain,
                 "not in scope: pci_after_rigid %s >= line %s (income %s, rigid %s, members %d)",
                 pa, line, inc, rig, f->members);
    }
    return 0;
}
