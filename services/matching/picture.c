/* The money picture of the touched households (SPEC.md Default policy,
 * Terms), the policy's rules on it, and the alerts for dispatch.
 *
 * One query computes, per household:
 * - the evidence of risk in the rolling window, which ends at the household's
 *   latest evidence (so the result depends on the data alone, never on when
 *   it was processed): medical → 因病 (self-paid), education → 因学 (cost −
 *   aid, not below 0), disaster → 因灾 (loss), civil 残疾认定 → 因残,
 *   declaration and visit → the stated type, sweep findings → their factor;
 *   each with its money effect;
 * - rigid = Σ medical self_paid + Σ education max(cost − aid, 0) + Σ disaster
 *   loss + Σ declared amounts over the window, a declaration counting once
 *   a verification result recorded after it accepted it (declared_accepted;
 *   dispatch then has matching judge the household again);
 * - income = the first known of, in order of trust: the latest verification
 *   result, the latest visit estimate, the registry's annual_net_income, the
 *   sum of income rows over the 12 months ending at the latest period;
 * - the risk factors ordered by money effect (largest first), then by their
 *   earliest evidence: the first is the primary factor;
 * - the worst house damage (房屋损毁) a disaster in the window left: the
 *   policy's house_damage_red says which levels make a household red. */
#define _POSIX_C_SOURCE 200809L
#include "match.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_pg.h"
#include "lv_rules.h"
#include "lv_time.h"

/* $1 households, $2 their trigger records, $3 the triggers' sources, one
 * element a household (mat_touched_end), $4 window (ms). */
static const char *const SQL_PICTURE =
    "WITH t AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS x(hid, rid, src)), "
    "ev AS ("
    "  SELECT household_id AS hid, '因病'::text AS factor, self_paid_fen AS fen, settle_ms AS at, "
    "    true AS rigid FROM medical_expense WHERE household_id IN (SELECT hid FROM t) "
    "  UNION ALL SELECT household_id, '因学', greatest(cost_fen - coalesce(aid_fen, 0), 0), "
    "    event_ms, true FROM education_record WHERE household_id IN (SELECT hid FROM t) "
    "  UNION ALL SELECT household_id, '因灾', loss_amount_fen, event_ms, true "
    "    FROM disaster_record WHERE household_id IN (SELECT hid FROM t) "
    "  UNION ALL SELECT household_id, '因残', coalesce(amount_fen, 0), event_ms, false "
    "    FROM civil_record WHERE kind = '残疾认定' AND household_id IN (SELECT hid FROM t) "
    "  UNION ALL SELECT d.household_id, d.reason, coalesce(d.amount_fen, 0), d.event_ms, "
    "    EXISTS (SELECT 1 FROM task v WHERE v.household_id = d.household_id "
    "      AND v.status = 'done' AND (v.result->>'declared_accepted')::boolean "
    "      AND v.completed_ms >= d.event_ms) "
    "    FROM declaration_record d WHERE d.household_id IN (SELECT hid FROM t) "
    "  UNION ALL SELECT household_id, risk_factor, 0, event_ms, false FROM visit_record "
    "    WHERE risk_factor IS NOT NULL AND household_id IN (SELECT hid FROM t) "
    "  UNION ALL SELECT household_id, factor, effect_fen, at_ms, false FROM risk_signal "
    "    WHERE household_id IN (SELECT hid FROM t)), "
    "last AS (SELECT hid, max(at) AS last_ms FROM ev GROUP BY hid), "
    "w AS (SELECT ev.* FROM ev JOIN last USING (hid) WHERE ev.at > last.last_ms - $4::bigint), "
    "f AS (SELECT hid, factor, sum(fen) AS effect, min(at) AS first_ms FROM w GROUP BY hid, factor), "
    "fa AS (SELECT hid, string_agg(factor, ',' ORDER BY effect DESC, first_ms, factor) AS factors "
    "  FROM f GROUP BY hid), "
    "rg AS (SELECT hid, sum(fen) AS rigid FROM w WHERE rigid GROUP BY hid), "
    "hc AS (SELECT d.household_id AS hid, max(array_position(ARRAY['无', '轻微', '严重', '倒塌'], "
    "  d.house_damage)) AS lvl FROM disaster_record d JOIN last ON last.hid = d.household_id "
    "  AND d.household_id IN (SELECT hid FROM t) "
    "  WHERE d.event_ms > last.last_ms - $4::bigint GROUP BY d.household_id), "
    "ver AS (SELECT DISTINCT ON (household_id) household_id AS hid, "
    "  (result->>'annual_net_income_fen')::bigint AS fen FROM task "
    "  WHERE household_id IN (SELECT hid FROM t) AND status = 'done' "
    "  AND result->>'annual_net_income_fen' IS NOT NULL "
    "  ORDER BY household_id, completed_ms DESC, task_id DESC), "
    "vis AS (SELECT DISTINCT ON (household_id) household_id AS hid, income_estimate_fen AS fen "
    "  FROM visit_record WHERE household_id IN (SELECT hid FROM t) "
    "  AND income_estimate_fen IS NOT NULL ORDER BY household_id, event_ms DESC, record_id DESC), "
    "lp AS (SELECT household_id AS hid, max(period) AS last_period FROM income_record "
    "  WHERE household_id IN (SELECT hid FROM t) GROUP BY household_id), "
    "inc AS (SELECT i.household_id AS hid, sum(i.amount_fen) AS fen FROM income_record i "
    "  JOIN lp ON lp.hid = i.household_id "
    "  WHERE i.period > lp.last_period - interval '12 months' GROUP BY i.household_id) "
    "SELECT h.household_id, h.region_code, h.county, h.household_type, "
    "  coalesce(ver.fen, vis.fen, h.annual_income_fen, inc.fen), "
    "  CASE WHEN ver.fen IS NOT NULL THEN 'verification' WHEN vis.fen IS NOT NULL THEN 'visit' "
    "    WHEN h.annual_income_fen IS NOT NULL THEN 'registry' "
    "    WHEN inc.fen IS NOT NULL THEN 'income' ELSE '' END, "
    "  (SELECT count(*) FROM person p WHERE p.household_id = h.household_id), "
    "  coalesce(rg.rigid, 0), last.last_ms, st.in_scope, st.grade, t.rid, t.src, "
    "  coalesce(cardinality(st.risk_factors), 0), coalesce(fa.factors, ''), coalesce(hc.lvl, 0) "
    "FROM t JOIN household h ON h.household_id = t.hid "
    "LEFT JOIN last ON last.hid = h.household_id LEFT JOIN fa ON fa.hid = h.household_id "
    "LEFT JOIN rg ON rg.hid = h.household_id LEFT JOIN hc ON hc.hid = h.household_id "
    "LEFT JOIN ver ON ver.hid = h.household_id LEFT JOIN vis ON vis.hid = h.household_id "
    "LEFT JOIN inc ON inc.hid = h.household_id "
    "LEFT JOIN household_state st ON st.household_id = h.household_id "
    "ORDER BY h.household_id";

enum { P_HID, P_REGION, P_COUNTY, P_TYPE, P_INCOME, P_INCOME_SRC, P_MEMBERS, P_RIGID, P_LAST,
       P_OLD_SCOPE, P_OLD_GRADE, P_RID, P_SRC, P_OLD_NFACTORS, P_FACTORS, P_HOUSE };

/* $1..$13 arrays, $14 policy version, $15 now, $16 explanations, $17 house
 * damage (as the arrays of the state columns, in this order). */
static const char *const SQL_STATE =
    "INSERT INTO household_state (household_id, county, in_scope, grade, category, risk_factors, "
    "  primary_risk, income_fen, income_source, members, rigid_fen, pci_fen, pci_after_fen, "
    "  house_collapsed, house_damage, explanation, policy_version, evaluated_ms) "
    "SELECT hid, county, sc, nullif(gr, ''), nullif(cat, ''), "
    "  CASE WHEN rf = '' THEN '{}'::text[] ELSE string_to_array(rf, ',') END, "
    "  nullif(split_part(rf, ',', 1), ''), inc, nullif(isrc, ''), mem, rig, pci, pca, hc, "
    "  nullif(hd, ''), ex, "
    "  $14, $15 "
    "FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], "
    "  $7::bigint[], $8::text[], $9::int[], $10::bigint[], $11::bigint[], $12::bigint[], "
    "  $13::boolean[], $17::text[], $16::text[]) "
    "  AS t(hid, county, sc, gr, cat, rf, inc, isrc, mem, rig, pci, pca, hc, hd, ex) "
    "ON CONFLICT (household_id) DO UPDATE SET in_scope = EXCLUDED.in_scope, grade = EXCLUDED.grade, "
    "  category = EXCLUDED.category, risk_factors = EXCLUDED.risk_factors, "
    "  primary_risk = EXCLUDED.primary_risk, income_fen = EXCLUDED.income_fen, "
    "  income_source = EXCLUDED.income_source, members = EXCLUDED.members, "
    "  rigid_fen = EXCLUDED.rigid_fen, pci_fen = EXCLUDED.pci_fen, "
    "  pci_after_fen = EXCLUDED.pci_after_fen, house_collapsed = EXCLUDED.house_collapsed, "
    "  house_damage = EXCLUDED.house_damage, "
    "  policy_version = EXCLUDED.policy_version, explanation = EXCLUDED.explanation, "
    "  evaluated_ms = EXCLUDED.evaluated_ms";
#define STATE_ARRAYS 15

/* $1..$15 arrays, $16 policy version, $17 read_ms, $18 now. */
static const char *const SQL_ALERTS =
    "INSERT INTO alert (alert_id, household_id, county, grade, category, risk_factors, "
    "  primary_risk, income_fen, members, rigid_fen, pci_fen, pci_after_fen, trigger_source, "
    "  trigger_record_id, explanation, policy_version, read_ms, created_ms) "
    "SELECT aid, hid, county, gr, cat, string_to_array(rf, ','), split_part(rf, ',', 1), inc, "
    "  mem, rig, pci, pca, src, trig, ex, $13, $14::bigint, $15 "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "  $7::bigint[], $8::int[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], "
    "  $16::text[], $17::text[]) "
    "  AS t(aid, hid, county, gr, cat, rf, inc, mem, rig, pci, pca, src, trig, ex) "
    "ON CONFLICT (alert_id) DO NOTHING";
#define ALERT_ARRAYS 14

static int64_t num(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* An arena copy of a result value. */
static char *dup_value(lv_arena_t *a, const PGresult *res, int row, int col)
{
    size_t n = (size_t)PQgetlength(res, row, col);
    char *s = lv_arena_alloc(a, n + 1);
    if (s) {
        memcpy(s, PQgetvalue(res, row, col), n);
        s[n] = '\0';
    }
    return s;
}

/* Splits "a,b,c" (in the arena) into a list. */
static char **split_factors(lv_arena_t *a, const char *csv, size_t *n)
{
    size_t count = 1;
    for (const char *p = csv; *p; p++)
        count += *p == ',';
    char **list = lv_arena_alloc(a, sizeof *list * count);
    char *copy = lv_arena_alloc(a, strlen(csv) + 1);
    if (!list || !copy)
        return NULL;
    strcpy(copy, csv);
    *n = 0;
    for (char *p = copy; p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        list[(*n)++] = p;
        p = comma ? comma + 1 : NULL;
    }
    return list;
}

typedef struct {
    mat_t *m;
    const lv_policy_version_t *v;
    const char *run_id;
    int64_t read_ms;
    mat_cols_t st, al;
    Levee__Alert *alerts;
    Levee__Alert **aptr;
    int nalerts;
} eval_t;

/* The Alert message for row i of the picture; arrays for the alert table. */
static int add_alert(eval_t *x, const PGresult *res, int i, const lv_verdict_t *vd,
                     const lv_facts_t *f)
{
    lv_arena_t *a = x->m->arena;
    const char *hid = PQgetvalue(res, i, P_HID);
    const char *grade = lv_grade_name(vd->grade);
    const char *factors = PQgetvalue(res, i, P_FACTORS);
    size_t idlen = strlen(x->run_id) + strlen(hid) + 8;
    char *aid = lv_arena_alloc(a, idlen);
    char *ex = lv_arena_alloc(a, strlen(vd->explain) + 1);
    size_t nrf = 0;
    char **rfs = split_factors(a, factors, &nrf);
    Levee__Alert *al = &x->alerts[x->nalerts];
    levee__alert__init(al);
    al->household_id = dup_value(a, res, i, P_HID);
    al->region_code = dup_value(a, res, i, P_REGION);
    al->household_type = dup_value(a, res, i, P_TYPE);
    al->trigger_record_id = dup_value(a, res, i, P_RID);
    al->trigger_source = dup_value(a, res, i, P_SRC);
    if (!aid || !ex || !rfs || !al->household_id || !al->region_code || !al->household_type ||
        !al->trigger_record_id || !al->trigger_source)
        return LV_ENOMEM;
    snprintf(aid, idlen, "a:%s:%s", x->run_id, hid);
    strcpy(ex, vd->explain);
    al->alert_id = aid;
    al->grade = (char *)grade;
    al->category = (char *)vd->category;
    al->n_risk_factors = nrf;
    al->risk_factors = rfs;
    al->primary_risk_factor = rfs[0];
    al->income_fen = f->income_fen;
    al->members = f->members;
    al->rigid_fen = f->rigid_fen;
    al->pci_fen = vd->pci_fen;
    al->pci_after_fen = vd->pci_after_fen;
    al->policy_version = (char *)x->v->version;
    al->event_ms = num(res, i, P_LAST);
    al->explanation = ex;
    al->read_ms = x->read_ms;
    al->house_collapsed = f->house_collapsed;
    x->aptr[x->nalerts++] = al;

    lv_buf_t *b = x->al.b;
    mat_arr_str(&b[0], aid);
    mat_arr_str(&b[1], hid);
    mat_arr_str(&b[2], PQgetvalue(res, i, P_COUNTY));
    mat_arr_str(&b[3], grade);
    mat_arr_str(&b[4], vd->category);
    mat_arr_str(&b[5], factors);
    lv_arr_int(&b[6], f->income_fen);
    lv_arr_int(&b[7], f->members);
    lv_arr_int(&b[8], f->rigid_fen);
    lv_arr_int(&b[9], vd->pci_fen);
    lv_arr_int(&b[10], vd->pci_after_fen);
    mat_arr_str(&b[11], al->trigger_source);
    mat_arr_str(&b[12], al->trigger_record_id);
    mat_arr_str(&b[13], vd->explain);
    return 0;
}

/* Row i: the rules, the state row, and an alert when the household is in
 * scope with a risk factor and was not before (it entered scope, or the
 * evidence came after the income put it there), or when its grade worsens;
 * an unchanged picture raises nothing new. */
static int judge(eval_t *x, const PGresult *res, int i)
{
    int64_t income = num(res, i, P_INCOME), members = num(res, i, P_MEMBERS);
    if (income < 0 || members < 1)
        return 0; /* no income known yet, or no member: nothing to judge */
    const char *factors = PQgetvalue(res, i, P_FACTORS);
    lv_facts_t f = {.income_fen = income,
                    .members = (int)members,
                    .rigid_fen = num(res, i, P_RIGID),
                    .exited = !strcmp(PQgetvalue(res, i, P_TYPE), "脱贫户"),
                    .house_damage = (lv_house_damage_t)num(res, i, P_HOUSE)};
    f.house_collapsed = f.house_damage >= LV_HOUSE_SEVERE;
    lv_verdict_t vd;
    if (lv_rules_eval(x->v, &f, &vd))
        return 0;
    const char *grade = lv_grade_name(vd.grade);
    lv_buf_t *b = x->st.b;
    mat_arr_str(&b[0], PQgetvalue(res, i, P_HID));
    mat_arr_str(&b[1], PQgetvalue(res, i, P_COUNTY));
    mat_arr_str(&b[2], vd.in_scope ? "t" : "f");
    mat_arr_str(&b[3], grade);
    mat_arr_str(&b[4], vd.category);
    mat_arr_str(&b[5], factors);
    lv_arr_int(&b[6], income);
    mat_arr_str(&b[7], PQgetvalue(res, i, P_INCOME_SRC));
    lv_arr_int(&b[8], members);
    lv_arr_int(&b[9], f.rigid_fen);
    lv_arr_int(&b[10], vd.pci_fen);
    lv_arr_int(&b[11], vd.pci_after_fen);
    mat_arr_str(&b[12], f.house_collapsed ? "t" : "f");
    mat_arr_str(&b[13], vd.explain);
    const char *damage = lv_house_damage_name(f.house_damage);
    mat_arr_str(&b[14], damage ? damage : "");

    bool was_alerted = PQgetvalue(res, i, P_OLD_SCOPE)[0] == 't' &&
                       num(res, i, P_OLD_NFACTORS) > 0;
    const char *old_grade = PQgetisnull(res, i, P_OLD_GRADE) ? "" : PQgetvalue(res, i, P_OLD_GRADE);
    if (!vd.in_scope || !*factors ||
        (was_alerted && lv_grade_rank(grade) <= lv_grade_rank(old_grade)))
        return 0;
    return add_alert(x, res, i, &vd, &f);
}

/* Stores the states and the alerts, and puts the alert batch in the outbox. */
static int store(eval_t *x, PGconn *pg)
{
    char nows[24], reads[24];
    snprintf(nows, sizeof nows, "%lld", (long long)lv_now_ms());
    snprintf(reads, sizeof reads, "%lld", (long long)x->read_ms);
    const char *sp[STATE_ARRAYS], *ap[ALERT_ARRAYS];
    if (!mat_cols_end(&x->st, sp) || !mat_cols_end(&x->al, ap))
        return LV_ENOMEM;
    /* The explanation travels last, after the scalars. */
    const char *q[18];
    for (int i = 0; i < 13; i++)
        q[i] = sp[i];
    q[13] = x->v->version;
    q[14] = nows;
    q[15] = sp[13];
    q[16] = sp[14];
    int e = lv_pg_cmd(pg, SQL_STATE, 17, q);
    if (e || !x->nalerts)
        return e;
    for (int i = 0; i < 12; i++)
        q[i] = ap[i];
    q[12] = x->v->version;
    q[13] = reads;
    q[14] = nows;
    q[15] = ap[12];
    q[16] = ap[13];
    if ((e = lv_pg_cmd(pg, SQL_ALERTS, 17, q)))
        return e;
    /* Dispatch handles a message at a time, opening a case per alert: small
     * messages keep what it has in hand short, so an urgent alert behind it
     * (a declaration during a peak) waits little. The first part keeps the
     * id m:RUN; the others are m:RUN:2, m:RUN:3, ... */
    int per = lv_service_cfg(x->m->svc)->alert_batch;
    for (int first = 0, part = 1; first < x->nalerts && !e; first += per, part++) {
        Levee__AlertBatch ab = LEVEE__ALERT_BATCH__INIT;
        char id[LV_MSG_ID_MAX + 1];
        if (part == 1)
            snprintf(id, sizeof id, "m:%s", x->run_id);
        else
            snprintf(id, sizeof id, "m:%s:%d", x->run_id, part);
        ab.batch_id = id;
        ab.n_alerts = (size_t)(x->nalerts - first < per ? x->nalerts - first : per);
        ab.alerts = x->aptr + first;
        e = lv_outbox_put(pg, x->m->name, x->m->urgent ? "dispatch" LV_URGENT_SUFFIX : "dispatch",
                          id, "alerts", &ab.base);
    }
    return e;
}

/* Row locks, not advisory ones: a batch's thousands of households would
 * overflow the shared lock table. NO KEY UPDATE lets the evidence rows'
 * foreign keys (KEY SHARE) through. */
static const char *const SQL_LOCK_HOUSEHOLDS =
    "SELECT count(*) FROM (SELECT 1 FROM household WHERE household_id = ANY($1::text[]) "
    "ORDER BY household_id FOR NO KEY UPDATE) l";

int mat_evaluate(mat_t *m, PGconn *pg, const char *run_id, mat_touched_t *t, int64_t read_ms,
                 int *nalerts, char *err, size_t errlen)
{
    if (nalerts)
        *nalerts = 0;
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(m->svc), lv_now_ms());
    if (!v) {
        snprintf(err, errlen, "no policy version in effect");
        return LV_ETRANSIENT; /* a policy fix and a reload make it work: retry */
    }
    char window[24];
    snprintf(window, sizeof window, "%lld", (long long)v->rigid_window_days * LV_DAY_MS);
    const char *pp[4] = {lv_buf_str(&t->hid), lv_buf_str(&t->rid), lv_buf_str(&t->src), window};
    PGresult *res;
    int e = 0;
    /* With the lanes in two processes, the other one may be judging the
     * same households: each takes them in one order and holds them to its
     * commit, so the picture read next sees the other's evidence. */
    if (m->lock_households)
        e = lv_pg_cmd(pg, SQL_LOCK_HOUSEHOLDS, 1, pp);
    if (!e)
        e = lv_pg_query(pg, &res, SQL_PICTURE, 4, pp);
    if (e)
        return e;
    int rows = PQntuples(res);
    eval_t x = {.m = m, .v = v, .run_id = run_id, .read_ms = read_ms ? read_ms : lv_now_ms()};
    x.alerts = lv_arena_alloc(m->arena, sizeof *x.alerts * (size_t)(rows ? rows : 1));
    x.aptr = lv_arena_alloc(m->arena, sizeof *x.aptr * (size_t)(rows ? rows : 1));
    mat_cols_begin(&x.st, STATE_ARRAYS);
    mat_cols_begin(&x.al, ALERT_ARRAYS);
    e = x.alerts && x.aptr ? 0 : LV_ENOMEM;
    for (int i = 0; i < rows && !e; i++)
        e = judge(&x, res, i);
    PQclear(res);
    if (!e)
        e = store(&x, pg);
    if (!e && nalerts)
        *nalerts = x.nalerts;
    mat_cols_free(&x.st);
    mat_cols_free(&x.al);
    return e;
}
