/* The reconciliation that proves the books: every check is one SQL query
 * whose rows are violations, all run in one read-only snapshot so they
 * judge the same books. Shared by the CLI and the HTTP gateway. */
#define _POSIX_C_SOURCE 200809L
#include "lv_reconcile.h"

#include <stdio.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_pg.h"

typedef struct {
    const char *name;  /* what must hold */
    const char *sql;   /* each row is one finding: a violation */
    int nparams;
    int first;         /* its $1 is this parameter of lv_reconcile's list */
} check_t;

/* Each account's columns recomputed from the transfers: posted = single and
 * post transfers; pending = pending transfers not yet resolved. */
static const char *const SQL_ACCOUNTS =
    "WITH open_pending AS (SELECT t.* FROM transfer t WHERE t.phase = 'pending' AND NOT EXISTS "
    "  (SELECT 1 FROM transfer r WHERE r.pending_id = t.transfer_id)), "
    "sums AS (SELECT a.account_id, "
    "  coalesce((SELECT sum(amount_fen) FROM transfer t WHERE t.debit_account = a.account_id "
    "    AND t.phase IN ('single', 'post')), 0) AS dp, "
    "  coalesce((SELECT sum(amount_fen) FROM transfer t WHERE t.credit_account = a.account_id "
    "    AND t.phase IN ('single', 'post')), 0) AS cp, "
    "  coalesce((SELECT sum(amount_fen) FROM open_pending t WHERE t.debit_account = a.account_id), 0) AS dn, "
    "  coalesce((SELECT sum(amount_fen) FROM open_pending t WHERE t.credit_account = a.account_id), 0) AS cn, "
    "  a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending FROM account a) "
    "SELECT account_id || ': 账户记录 (stored) posted ' || debits_posted || '/' || credits_posted || "
    "  ' pending ' || debits_pending || '/' || credits_pending || ', 按转账重算 (from transfers) posted ' "
    "  || dp || '/' || cp || ' pending ' || dn || '/' || cn "
    "FROM sums WHERE (debits_posted, credits_posted, debits_pending, credits_pending) <> (dp, cp, dn, cn) "
    "ORDER BY account_id";

static const check_t s_checks[] = {
    {"借贷平衡 Σ debits = Σ credits (posted and pending)",
     "SELECT 'Σ debits_posted − Σ credits_posted = ' || (sum(debits_posted) - sum(credits_posted)) || "
     "', Σ debits_pending − Σ credits_pending = ' || (sum(debits_pending) - sum(credits_pending)) "
     "FROM account HAVING sum(debits_posted) <> sum(credits_posted) OR "
     "sum(debits_pending) <> sum(credits_pending)",
     0, 0},
    {"账户余额 = 期初 + 捐赠 + 拨付 − 已发放 − 预留 (every account equals its transfers)", SQL_ACCOUNTS, 0, 0},
    {"资金不透支 (no fund below zero)",
     "SELECT account_id || ': ' || (credits_posted - debits_posted - debits_pending) FROM account "
     "WHERE flags & 1 = 1 AND debits_posted + debits_pending > credits_posted",
     0, 0},
    {"发放与转账一致 (each payout matches its transfers)",
     "SELECT p.payout_id || ': ' || p.status || ', ' || coalesce(r.phase, t.phase, 'no transfer') "
     "FROM payout p LEFT JOIN transfer t ON t.transfer_id = p.payout_id "
     "LEFT JOIN transfer r ON r.pending_id = p.payout_id "
     "WHERE (p.status = 'posted' AND (r.phase IS DISTINCT FROM 'post' OR t.amount_fen <> p.amount_fen)) "
     "OR (p.status = 'pending' AND (t.phase IS DISTINCT FROM 'pending' OR r.transfer_id IS NOT NULL "
     "    OR t.amount_fen <> p.amount_fen)) "
     "OR (p.status = 'voided' AND r.phase IS DISTINCT FROM 'void') "
     "OR (p.status IN ('none', 'refused') AND t.transfer_id IS NOT NULL) "
     "ORDER BY p.payout_id",
     0, 0},
    {"已支付均经渠道付出 (every paid payout left through its channel, once)",
     "SELECT p.payout_id || ': ' || p.status || ', 渠道 (channel) ' || coalesce(p.channel, '-') || "
     "', 付出 (out) ' || coalesce(o.amount_fen::text, '-') || ' → ' || coalesce(o.credit_account, '-') "
     "FROM payout p FULL JOIN (SELECT * FROM transfer WHERE kind = 'disburse') o "
     "  ON o.transfer_id = 'out:' || p.payout_id "
     "WHERE (p.status = 'posted' AND (o.transfer_id IS NULL OR o.amount_fen <> p.amount_fen "
     "    OR o.credit_account <> 'paidout:' || p.channel)) "
     "OR (o.transfer_id IS NOT NULL AND p.status IS DISTINCT FROM 'posted') "
     "ORDER BY 1",
     0, 0},
    {"应付账户收支相符 (no household payable account paid out more than it received)",
     "SELECT account_id || ': ' || (credits_posted - debits_posted) FROM account "
     "WHERE kind = 'payable' AND debits_posted > credits_posted ORDER BY account_id",
     0, 0},
    {"已发放均属已审定案件 (every paid payout belongs to an approved case)",
     "SELECT p.payout_id || ': 案件 (case) ' || coalesce(p.case_id, '-') || ' ' || "
     "coalesce(c.status, '不存在 (missing)') FROM payout p LEFT JOIN hcase c USING (case_id) "
     "WHERE p.kind <> 'relief' AND p.status IN ('pending', 'posted') AND "
     "(c.status IS NULL OR c.status NOT IN ('monitoring', 'eliminated')) ORDER BY p.payout_id",
     0, 0},
    {"已审定案件均有发放或原因 (every approved case has its payout or a recorded reason)",
     "SELECT c.case_id FROM hcase c WHERE c.status IN ('monitoring', 'eliminated') AND NOT EXISTS "
     "(SELECT 1 FROM payout p WHERE p.case_id = c.case_id) ORDER BY c.case_id",
     0, 0},
    /* Caps count per household, or per student where the policy says so
     * (因学): $1..$3 the caps, $4..$6 "household" or "student". */
    {"未超年度封顶 (no household or student over its yearly cap)",
     "WITH c(kind, cap, per) AS (VALUES ('illness', $1::bigint, $4::text), "
     "  ('disaster', $2::bigint, $5::text), ('education', $3::bigint, $6::text)) "
     "SELECT min(p.household_id) || CASE WHEN c.per = 'student' THEN ' 学生 (student) ' || "
     "  left(min(p.student_id), 6) || '********' || right(min(p.student_id), 4) ELSE '' END || ' ' || "
     "  p.kind || ' ' || p.year || ': ' || sum(p.amount_fen) || ' > ' || c.cap "
     "FROM payout p JOIN c USING (kind) WHERE p.status IN ('pending', 'posted') "
     "GROUP BY p.kind, p.year, c.cap, c.per, "
     "  CASE WHEN c.per = 'student' THEN coalesce(p.student_id, p.household_id) ELSE p.household_id END "
     "HAVING sum(p.amount_fen) > c.cap ORDER BY 1",
     6, 0},
    /* County sub-allocations: $1 the county accounts of the policy's
     * budgets, $2 their budgets (lv_reconcile's 7th and 8th parameters). A
     * county account holds its budget's net allocation, unless the budget
     * was lowered below what the county had already reserved (then it keeps
     * nothing free). */
    {"县级预算: 拨付 = 预算, 不透支 (each county account holds its budget, never below zero)",
     "WITH b(acc, fen) AS (SELECT * FROM unnest($1::text[], $2::bigint[])), "
     "a AS (SELECT a.account_id, a.credits_posted - a.debits_posted - a.debits_pending AS bal, "
     "  coalesce(sum(CASE WHEN t.credit_account = a.account_id THEN t.amount_fen "
     "    ELSE -t.amount_fen END), 0) AS net FROM account a LEFT JOIN transfer t ON "
     "  t.kind = 'allocation' AND (t.credit_account = a.account_id OR t.debit_account = a.account_id) "
     "  WHERE a.parent_account IS NOT NULL GROUP BY a.account_id) "
     "SELECT coalesce(a.account_id, b.acc) || ': 预算 (budget) ' || coalesce(b.fen, 0) || "
     "  ', 拨付 (allocated) ' || coalesce(a.net::text, '无账户 (no account)') || ', 可用 (free) ' || "
     "  coalesce(a.bal::text, '-') FROM a FULL JOIN b ON b.acc = a.account_id "
     "WHERE a.account_id IS NULL OR a.bal < 0 OR "
     "  (a.net <> coalesce(b.fen, 0) AND NOT (a.net > coalesce(b.fen, 0) AND a.bal = 0)) ORDER BY 1",
     2, 6},
};
#define NCHECKS (sizeof s_checks / sizeof s_checks[0])


static const char *per(const lv_payout_rule_t *r)
{
    return r->cap_per == LV_CAP_PER_STUDENT ? "student" : "household";
}

/* The county accounts of v's budgets and their amounts, as two arrays. */
static void budget_arrays(const lv_policy_version_t *v, lv_buf_t *accs, lv_buf_t *fens)
{
    lv_arr_begin(accs);
    lv_arr_begin(fens);
    for (int i = 0; i < v->nfunds; i++)
        for (int k = 0; k < v->funds[i].nbudgets; k++) {
            char acc[64];
            snprintf(acc, sizeof acc, "fund:%s:%s", v->funds[i].fund_id, v->funds[i].budgets[k].county);
            lv_arr_text(accs, acc, strlen(acc));
            lv_arr_int(fens, v->funds[i].budgets[k].fen);
        }
    lv_arr_end(accs);
    lv_arr_end(fens);
}

int lv_reconcile(PGconn *pg, const lv_policy_version_t *v, json_t **out, int *failed)
{
    char caps[3][24];
    snprintf(caps[0], sizeof caps[0], "%lld", (long long)v->illness.cap_fen);
    snprintf(caps[1], sizeof caps[1], "%lld", (long long)v->disaster.cap_fen);
    snprintf(caps[2], sizeof caps[2], "%lld", (long long)v->education.cap_fen);
    lv_buf_t accs, fens;
    lv_buf_init(&accs, (size_t)1 << 20);
    lv_buf_init(&fens, (size_t)1 << 20);
    budget_arrays(v, &accs, &fens);
    const char *params[8] = {caps[0], caps[1], caps[2], per(&v->illness), per(&v->disaster),
                             per(&v->education), lv_buf_str(&accs), lv_buf_str(&fens)};
    *out = NULL;
    *failed = 0;
    int e = accs.failed || fens.failed ? LV_ENOMEM
                                       : lv_pg_cmd(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                                                   0, NULL);
    if (e) {
        lv_buf_free(&accs);
        lv_buf_free(&fens);
        return e;
    }
    json_t *checks = json_array();
    for (size_t i = 0; i < NCHECKS; i++) {
        PGresult *res;
        e = lv_pg_query(pg, &res, s_checks[i].sql, s_checks[i].nparams, params + s_checks[i].first);
        if (e) {
            lv_pg_rollback(pg);
            json_decref(checks);
            lv_buf_free(&accs);
            lv_buf_free(&fens);
            return e;
        }
        int n = PQntuples(res);
        json_t *findings = json_array();
        for (int r = 0; r < n; r++)
            json_array_append_new(findings, json_string(PQgetvalue(res, r, 0)));
        PQclear(res);
        json_array_append_new(checks, json_pack("{s:s, s:b, s:o}", "check", s_checks[i].name,
                                                "ok", n == 0, "findings", findings));
        *failed += n > 0;
    }
    lv_pg_rollback(pg);
    lv_buf_free(&accs);
    lv_buf_free(&fens);
    *out = checks;
    return 0;
}
