/* Matching works set-wise: a batch of records becomes a handful of
 * statements with array parameters (unnest), never a round trip per row.
 * Records whose person is unknown are parked in unmatched_record and linked
 * when the registry brings the person. */
#define _POSIX_C_SOURCE 200809L
#include "match.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_rules.h"
#include "lv_time.h"

#define ARR_MAX ((size_t)256 << 20)
#define MAX_COLS 16

#define DAY_MS 86400000LL

/* Array parameters under construction, one buffer per column. */
typedef struct {
    lv_buf_t b[MAX_COLS];
    int n;
} cols_t;

static void cols_begin(cols_t *c, int n)
{
    c->n = n;
    for (int i = 0; i < n; i++) {
        lv_buf_init(&c->b[i], ARR_MAX);
        lv_arr_begin(&c->b[i]);
    }
}

static bool cols_end(cols_t *c, const char **params)
{
    bool ok = true;
    for (int i = 0; i < c->n; i++) {
        lv_arr_end(&c->b[i]);
        ok = ok && !c->b[i].failed;
        params[i] = lv_buf_str(&c->b[i]);
    }
    return ok;
}

static void cols_free(cols_t *c)
{
    for (int i = 0; i < c->n; i++)
        lv_buf_free(&c->b[i]);
    c->n = 0;
}

static void arr_str(lv_buf_t *b, const char *s)
{
    lv_arr_text(b, s ? s : "", s ? strlen(s) : 0);
}

static void arr_opt_int(lv_buf_t *b, int64_t v)
{
    if (v < 0)
        lv_arr_null(b);
    else
        lv_arr_int(b, v);
}

/* Appends a household id to the set of households to evaluate, with the
 * record that touched it last (its trigger). */
typedef struct {
    lv_buf_t ids;
    int n;
} hset_t;

/* ---- registry -------------------------------------------------------- */

static const char *const SQL_HOUSEHOLDS =
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], "
    "  $5::bigint[], $6::text[], $7::bigint[]) AS t(hid, region, htype, exit_year, income, phone, row_no)), "
    "a AS (SELECT hid, (array_agg(region ORDER BY row_no DESC))[1] AS region, "
    "  (array_agg(htype ORDER BY row_no DESC))[1] AS htype, "
    "  (array_agg(exit_year ORDER BY row_no DESC))[1] AS exit_year, "
    "  (array_agg(income ORDER BY row_no DESC) FILTER (WHERE income IS NOT NULL))[1] AS income, "
    "  (array_agg(phone ORDER BY row_no DESC) FILTER (WHERE phone <> ''))[1] AS phone "
    "  FROM r GROUP BY hid), "
    "hist AS (INSERT INTO household_history (household_id, county, at_ms, what, old_value, new_value) "
    "  SELECT a.hid, substr(a.region, 1, 6), $8, 'household', "
    "  concat_ws('|', h.region_code, h.household_type, h.annual_income_fen), "
    "  concat_ws('|', a.region, a.htype, coalesce(a.income, h.annual_income_fen)) "
    "  FROM a JOIN household h ON h.household_id = a.hid "
    "  WHERE (h.region_code, h.household_type, h.annual_income_fen) IS DISTINCT FROM "
    "  (a.region, a.htype, coalesce(a.income, h.annual_income_fen))) "
    "INSERT INTO household (household_id, region_code, county, household_type, exit_year, "
    "  annual_income_fen, phone, updated_ms) "
    "SELECT hid, region, substr(region, 1, 6), htype, exit_year, income, phone, $8 FROM a "
    "ON CONFLICT (household_id) DO UPDATE SET region_code = EXCLUDED.region_code, "
    "  county = EXCLUDED.county, household_type = EXCLUDED.household_type, "
    "  exit_year = EXCLUDED.exit_year, "
    "  annual_income_fen = coalesce(EXCLUDED.annual_income_fen, household.annual_income_fen), "
    "  phone = coalesce(EXCLUDED.phone, household.phone), updated_ms = EXCLUDED.updated_ms";

static const char *const SQL_PERSONS =
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], "
    "  $6::boolean[], $7::text[], $8::text[], $9::bigint[]) "
    "  AS t(id, hid, name, relation, dis, chronic, labour, phone, row_no)), "
    "p AS (SELECT DISTINCT ON (id) r.*, h.county FROM r JOIN household h ON h.household_id = r.hid "
    "  ORDER BY id, row_no DESC), "
    "hist AS (INSERT INTO household_history (household_id, county, at_ms, what, old_value, new_value) "
    "  SELECT p.hid, p.county, $10, 'person', "
    "  concat_ws('|', o.household_id, o.name, o.relation, o.disability_grade, o.chronic_illness, o.labour), "
    "  concat_ws('|', p.hid, p.name, p.relation, p.dis, p.chronic, p.labour) "
    "  FROM p JOIN person o ON o.id_number = p.id "
    "  WHERE (o.household_id, o.name, o.relation, o.disability_grade, o.chronic_illness, o.labour) "
    "  IS DISTINCT FROM (p.hid, p.name, p.relation, p.dis, p.chronic, p.labour)) "
    "INSERT INTO person (id_number, household_id, county, name, relation, disability_grade, "
    "  chronic_illness, labour, phone, updated_ms) "
    "SELECT id, hid, county, name, relation, dis, chronic, labour, nullif(phone, ''), $10 FROM p "
    "ON CONFLICT (id_number) DO UPDATE SET household_id = EXCLUDED.household_id, "
    "  county = EXCLUDED.county, name = EXCLUDED.name, relation = EXCLUDED.relation, "
    "  disability_grade = EXCLUDED.disability_grade, chronic_illness = EXCLUDED.chronic_illness, "
    "  labour = EXCLUDED.labour, phone = EXCLUDED.phone, updated_ms = EXCLUDED.updated_ms";

/* Records that waited for these people are linked now. */
static const char *const SQL_CLAIM_UNMATCHED =
    "WITH m AS (DELETE FROM unmatched_record u USING person p "
    "  WHERE u.id_number = p.id_number AND u.id_number = ANY($1::text[]) "
    "  RETURNING u.*, p.household_id AS hid, p.county AS pcounty) "
    "INSERT INTO medical_expense (record_id, household_id, county, id_number, settle_ms, "
    "  self_paid_fen, compliant_self_fen) "
    "SELECT record_id, hid, pcounty, id_number, event_ms, self_paid_fen, compliant_self_fen "
    "FROM m WHERE source = 'medical' ON CONFLICT DO NOTHING RETURNING household_id, record_id";

static int registry(PGconn *pg, const Levee__RecordBatch *b, lv_buf_t *touched, lv_buf_t *trig)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    cols_t h, p;
    const char *hp[8], *pp[10];
    cols_begin(&h, 7);
    cols_begin(&p, 9);
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        arr_str(&h.b[0], r->household_id);
        arr_str(&h.b[1], r->region_code);
        arr_str(&h.b[2], r->household_type);
        arr_opt_int(&h.b[3], r->exit_year > 0 ? r->exit_year : -1);
        arr_opt_int(&h.b[4], r->annual_net_income_fen);
        arr_str(&h.b[5], r->phone);
        lv_arr_int(&h.b[6], r->row_no);

        arr_str(&p.b[0], r->id_number);
        arr_str(&p.b[1], r->household_id);
        arr_str(&p.b[2], r->name);
        arr_str(&p.b[3], r->relation);
        lv_arr_int(&p.b[4], r->disability_grade);
        arr_str(&p.b[5], r->chronic_illness ? "t" : "f");
        arr_str(&p.b[6], r->labour);
        arr_str(&p.b[7], r->phone);
        lv_arr_int(&p.b[8], r->row_no);

        lv_arr_text(touched, r->household_id, strlen(r->household_id));
        lv_arr_text(trig, r->record_id, strlen(r->record_id));
    }
    int e = LV_ENOMEM;
    if (cols_end(&h, hp) && cols_end(&p, pp)) {
        hp[7] = now;
        pp[9] = now;
        e = lv_pg_cmd(pg, SQL_HOUSEHOLDS, 8, hp);
        if (!e)
            e = lv_pg_cmd(pg, SQL_PERSONS, 10, pp);
        if (!e) {
            PGresult *res;
            const char *cp[1] = {pp[0]};
            e = lv_pg_query(pg, &res, SQL_CLAIM_UNMATCHED, 1, cp);
            if (!e) {
                for (int i = 0; i < PQntuples(res); i++) {
                    lv_arr_text(touched, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
                    lv_arr_text(trig, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
                }
                PQclear(res);
            }
        }
    }
    cols_free(&h);
    cols_free(&p);
    return e;
}

/* ---- medical --------------------------------------------------------- */

static const char *const SQL_MEDICAL =
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], "
    "  $5::bigint[]) AS t(record_id, id, settle_ms, self_paid, compliant_self)), "
    "ins AS (INSERT INTO medical_expense (record_id, household_id, county, id_number, settle_ms, "
    "  self_paid_fen, compliant_self_fen) "
    "  SELECT r.record_id, p.household_id, p.county, r.id, r.settle_ms, r.self_paid, r.compliant_self "
    "  FROM r JOIN person p ON p.id_number = r.id ON CONFLICT DO NOTHING "
    "  RETURNING household_id, record_id), "
    "un AS (INSERT INTO unmatched_record (source, record_id, county, id_number, event_ms, "
    "  self_paid_fen, compliant_self_fen, reason, created_ms) "
    "  SELECT 'medical', r.record_id, substr(r.id, 1, 6), r.id, r.settle_ms, r.self_paid, "
    "  r.compliant_self, '户籍底册中无此身份证号 (ID number not in the registry)', $6 "
    "  FROM r WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id_number = r.id) "
    "  ON CONFLICT DO NOTHING) "
    "SELECT household_id, record_id FROM ins";

/* The self-paid compliant cost of a settlement: compliant − reimbursed (not
 * below 0) when the compliant cost is given, else the self-paid amount. */
static int64_t compliant_self(const Levee__Record *r)
{
    if (r->compliant_cost_fen < 0)
        return r->self_paid_fen;
    int64_t v = r->compliant_cost_fen - r->reimbursed_fen;
    return v > 0 ? v : 0;
}

static int medical(PGconn *pg, const Levee__RecordBatch *b, lv_buf_t *touched, lv_buf_t *trig)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    cols_t c;
    const char *p[6];
    cols_begin(&c, 5);
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        arr_str(&c.b[0], r->record_id);
        arr_str(&c.b[1], r->id_number);
        lv_arr_int(&c.b[2], r->event_ms);
        lv_arr_int(&c.b[3], r->self_paid_fen);
        lv_arr_int(&c.b[4], compliant_self(r));
    }
    int e = LV_ENOMEM;
    if (cols_end(&c, p)) {
        p[5] = now;
        PGresult *res;
        e = lv_pg_query(pg, &res, SQL_MEDICAL, 6, p);
        if (!e) {
            for (int i = 0; i < PQntuples(res); i++) {
                lv_arr_text(touched, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
                lv_arr_text(trig, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1));
            }
            PQclear(res);
        }
    }
    cols_free(&c);
    return e;
}

/* ---- evaluation ------------------------------------------------------ */

/* The money picture of each touched household. The rolling window ends at
 * the household's latest settlement, so the result depends on the data
 * alone, not on when it was processed. The trigger is the last record of
 * the batch that touched the household. */
static const char *const SQL_PICTURE =
    "WITH t AS (SELECT DISTINCT ON (hid) hid, rid FROM unnest($1::text[], $2::text[]) "
    "  WITH ORDINALITY AS x(hid, rid, ord) ORDER BY hid, ord DESC) "
    "SELECT h.household_id, h.region_code, h.county, h.household_type, "
    "  h.annual_income_fen, (SELECT count(*) FROM person p WHERE p.household_id = h.household_id), "
    "  coalesce(s.rigid, 0), l.last_ms, st.in_scope, st.grade, t.rid, "
    "  coalesce(cardinality(st.risk_factors), 0) "
    "FROM t JOIN household h ON h.household_id = t.hid "
    "LEFT JOIN LATERAL (SELECT max(settle_ms) AS last_ms FROM medical_expense e "
    "  WHERE e.household_id = h.household_id) l ON true "
    "LEFT JOIN LATERAL (SELECT sum(self_paid_fen) AS rigid FROM medical_expense e "
    "  WHERE e.household_id = h.household_id AND e.settle_ms > l.last_ms - $3::bigint) s ON true "
    "LEFT JOIN household_state st ON st.household_id = h.household_id "
    "ORDER BY h.household_id";

static const char *const SQL_STATE =
    "INSERT INTO household_state (household_id, county, in_scope, grade, category, risk_factors, "
    "  income_fen, members, rigid_fen, pci_fen, pci_after_fen, policy_version, explanation, "
    "  evaluated_ms) "
    "SELECT hid, county, sc, nullif(gr, ''), nullif(cat, ''), "
    "  CASE WHEN rf = '' THEN '{}'::text[] ELSE string_to_array(rf, ',') END, "
    "  inc, mem, rig, pci, pca, $12, ex, $13 "
    "FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], "
    "  $7::bigint[], $8::int[], $9::bigint[], $10::bigint[], $11::bigint[], $14::text[]) "
    "  AS t(hid, county, sc, gr, cat, rf, inc, mem, rig, pci, pca, ex) "
    "ON CONFLICT (household_id) DO UPDATE SET in_scope = EXCLUDED.in_scope, grade = EXCLUDED.grade, "
    "  category = EXCLUDED.category, risk_factors = EXCLUDED.risk_factors, "
    "  income_fen = EXCLUDED.income_fen, members = EXCLUDED.members, rigid_fen = EXCLUDED.rigid_fen, "
    "  pci_fen = EXCLUDED.pci_fen, pci_after_fen = EXCLUDED.pci_after_fen, "
    "  policy_version = EXCLUDED.policy_version, explanation = EXCLUDED.explanation, "
    "  evaluated_ms = EXCLUDED.evaluated_ms";

static const char *const SQL_ALERTS =
    "INSERT INTO alert (alert_id, household_id, county, grade, category, risk_factors, income_fen, "
    "  members, rigid_fen, pci_fen, pci_after_fen, policy_version, trigger_source, "
    "  trigger_record_id, explanation, read_ms, created_ms) "
    "SELECT aid, hid, county, gr, cat, string_to_array(rf, ','), inc, mem, rig, pci, pca, $13, "
    "  $14, trig, ex, $15::bigint, $16 "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "  $7::bigint[], $8::int[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], "
    "  $17::text[]) AS t(aid, hid, county, gr, cat, rf, inc, mem, rig, pci, pca, trig, ex) "
    "ON CONFLICT (alert_id) DO NOTHING";

static int64_t num(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int evaluate(mat_t *m, PGconn *pg, const lv_msg_t *msg, const Levee__RecordBatch *b,
                    const char *touched, const char *trig, lv_reply_t *reply)
{
    int64_t now = lv_now_ms();
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(m->svc), now);
    if (!v) {
        snprintf(reply->error, sizeof reply->error, "no policy version in effect");
        return LV_ETRANSIENT; /* a policy fix and a reload make it work: retry */
    }
    char window[24], nows[24];
    snprintf(window, sizeof window, "%lld", (long long)v->rigid_window_days * DAY_MS);
    snprintf(nows, sizeof nows, "%lld", (long long)now);
    const char *pp[3] = {touched, trig, window};
    PGresult *res;
    int e = lv_pg_query(pg, &res, SQL_PICTURE, 3, pp);
    if (e)
        return e;

    cols_t st, al;
    const char *sp[14], *ap[17];
    cols_begin(&st, 12);
    cols_begin(&al, 13);
    int rows = PQntuples(res), nalerts = 0;
    Levee__Alert *alerts = lv_arena_alloc(m->arena, sizeof *alerts * (size_t)(rows ? rows : 1));
    Levee__Alert **aptr = lv_arena_alloc(m->arena, sizeof *aptr * (size_t)(rows ? rows : 1));
    if (!alerts || !aptr) {
        PQclear(res);
        cols_free(&st);
        cols_free(&al);
        return LV_ENOMEM;
    }
    int64_t read_ms = 0;
    for (size_t i = 0; i < b->n_records; i++)
        if (b->records[i]->read_ms && (!read_ms || b->records[i]->read_ms < read_ms))
            read_ms = b->records[i]->read_ms;

    for (int i = 0; i < rows; i++) {
        const char *hid = PQgetvalue(res, i, 0);
        int64_t income = num(res, i, 4), members = num(res, i, 5), rigid = num(res, i, 6);
        int64_t last_ms = num(res, i, 7);
        if (income < 0 || members < 1)
            continue; /* no income known yet, or no member: nothing to judge */
        lv_facts_t f = {.income_fen = income, .members = (int)members, .rigid_fen = rigid,
                        .exited = !strcmp(PQgetvalue(res, i, 3), "脱贫户")};
        lv_verdict_t vd;
        if (lv_rules_eval(v, &f, &vd))
            continue;
        /* Evidence-based risk factors: medical spending in the window → 因病. */
        const char *rf = rigid > 0 ? "因病" : "";
        const char *grade = lv_grade_name(vd.grade);
        arr_str(&st.b[0], hid);
        arr_str(&st.b[1], PQgetvalue(res, i, 2));
        arr_str(&st.b[2], vd.in_scope ? "t" : "f");
        arr_str(&st.b[3], grade);
        arr_str(&st.b[4], vd.category);
        arr_str(&st.b[5], rf);
        lv_arr_int(&st.b[6], income);
        lv_arr_int(&st.b[7], members);
        lv_arr_int(&st.b[8], rigid);
        lv_arr_int(&st.b[9], vd.pci_fen);
        lv_arr_int(&st.b[10], vd.pci_after_fen);
        arr_str(&st.b[11], vd.explain);

        /* An alert when the household is in scope with a risk factor and
         * was not before (it entered scope, or the evidence of a risk came
         * after the income put it in scope), or when its grade worsens; an
         * unchanged picture raises nothing new. */
        bool was_alerted = !PQgetisnull(res, i, 8) && PQgetvalue(res, i, 8)[0] == 't' &&
                           strtol(PQgetvalue(res, i, 11), NULL, 10) > 0;
        const char *old_grade = PQgetisnull(res, i, 9) ? "" : PQgetvalue(res, i, 9);
        if (!vd.in_scope || !*rf || (was_alerted && lv_grade_rank(grade) <= lv_grade_rank(old_grade)))
            continue;
        size_t idlen = strlen(msg->msg_id) + strlen(hid) + 8;
        char *aid = lv_arena_alloc(m->arena, idlen);
        char *rid = lv_arena_alloc(m->arena, (size_t)PQgetlength(res, i, 10) + 1);
        char *h = lv_arena_alloc(m->arena, strlen(hid) + 1);
        char *region = lv_arena_alloc(m->arena, 13);
        char *htype = lv_arena_alloc(m->arena, (size_t)PQgetlength(res, i, 3) + 1);
        char *ex = lv_arena_alloc(m->arena, strlen(vd.explain) + 1);
        char **rfs = lv_arena_alloc(m->arena, sizeof *rfs);
        if (!aid || !rid || !h || !region || !htype || !ex || !rfs) {
            e = LV_ENOMEM;
            break;
        }
        snprintf(aid, idlen, "a:%s:%s", msg->msg_id, hid);
        strcpy(rid, PQgetvalue(res, i, 10));
        strcpy(h, hid);
        snprintf(region, 13, "%s", PQgetvalue(res, i, 1));
        strcpy(htype, PQgetvalue(res, i, 3));
        strcpy(ex, vd.explain);
        rfs[0] = (char *)"因病";
        Levee__Alert *a = &alerts[nalerts];
        levee__alert__init(a);
        a->alert_id = aid;
        a->household_id = h;
        a->region_code = region;
        a->household_type = htype;
        a->grade = (char *)grade;
        a->category = (char *)vd.category;
        a->n_risk_factors = 1;
        a->risk_factors = rfs;
        a->primary_risk_factor = (char *)"因病";
        a->income_fen = income;
        a->members = (int32_t)members;
        a->rigid_fen = rigid;
        a->pci_fen = vd.pci_fen;
        a->pci_after_fen = vd.pci_after_fen;
        a->policy_version = (char *)v->version;
        a->trigger_source = b->source;
        a->trigger_record_id = rid;
        a->event_ms = last_ms;
        a->explanation = ex;
        a->read_ms = read_ms;
        aptr[nalerts++] = a;

        arr_str(&al.b[0], aid);
        arr_str(&al.b[1], hid);
        arr_str(&al.b[2], PQgetvalue(res, i, 2));
        arr_str(&al.b[3], grade);
        arr_str(&al.b[4], vd.category);
        arr_str(&al.b[5], rf);
        lv_arr_int(&al.b[6], income);
        lv_arr_int(&al.b[7], members);
        lv_arr_int(&al.b[8], rigid);
        lv_arr_int(&al.b[9], vd.pci_fen);
        lv_arr_int(&al.b[10], vd.pci_after_fen);
        arr_str(&al.b[11], rid);
        arr_str(&al.b[12], vd.explain);
    }
    PQclear(res);
    char reads[24];
    snprintf(reads, sizeof reads, "%lld", (long long)read_ms);
    const char *tmp[13];
    if (!e && (!cols_end(&st, tmp) || !cols_end(&al, ap)))
        e = LV_ENOMEM;
    if (!e) {
        /* SQL_STATE takes the explanation last ($14). */
        for (int i = 0; i < 11; i++)
            sp[i] = tmp[i];
        sp[11] = v->version;
        sp[12] = nows;
        sp[13] = tmp[11];
        e = lv_pg_cmd(pg, SQL_STATE, 14, sp);
    }
    if (!e && nalerts) {
        const char *x[17];
        for (int i = 0; i < 12; i++)
            x[i] = ap[i];
        x[12] = v->version;
        x[13] = b->source;
        x[14] = reads;
        x[15] = nows;
        x[16] = ap[12];
        e = lv_pg_cmd(pg, SQL_ALERTS, 17, x);
        if (!e) {
            Levee__AlertBatch ab = LEVEE__ALERT_BATCH__INIT;
            char id[LV_MSG_ID_MAX + 1];
            snprintf(id, sizeof id, "m:%s", msg->msg_id);
            ab.batch_id = id;
            ab.n_alerts = (size_t)nalerts;
            ab.alerts = aptr;
            e = lv_outbox_put(pg, "matching", "dispatch", id, "alerts", &ab.base);
        }
    }
    cols_free(&st);
    cols_free(&al);
    return e;
}

int mat_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    mat_t *m = ctx;
    lv_arena_reset(m->arena);
    if (strcmp(msg->type, "records") != 0) {
        snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
        return LV_EINVAL;
    }
    Levee__RecordBatch *b =
        levee__record_batch__unpack(lv_arena_allocator(m->arena), msg->len, msg->body);
    if (!b) {
        snprintf(reply->error, sizeof reply->error, "not a RecordBatch (bad protobuf)");
        return LV_EINVAL;
    }
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        if (strlen(r->id_number) != 18 || !*r->record_id) {
            snprintf(reply->error, sizeof reply->error, "record %zu: bad id_number or record_id", i);
            return LV_EINVAL;
        }
    }
    lv_buf_t touched, trig;
    lv_buf_init(&touched, ARR_MAX);
    lv_buf_init(&trig, ARR_MAX);
    lv_arr_begin(&touched);
    lv_arr_begin(&trig);
    int e;
    if (!strcmp(b->source, "registry")) {
        e = registry(pg, b, &touched, &trig);
    } else if (!strcmp(b->source, "medical")) {
        e = medical(pg, b, &touched, &trig);
    } else {
        snprintf(reply->error, sizeof reply->error, "unknown source %s", b->source);
        e = LV_EINVAL;
    }
    lv_arr_end(&touched);
    lv_arr_end(&trig);
    if (!e && (touched.failed || trig.failed))
        e = LV_ENOMEM;
    if (!e)
        e = evaluate(m, pg, msg, b, lv_buf_str(&touched), lv_buf_str(&trig), reply);
    lv_buf_free(&touched);
    lv_buf_free(&trig);
    if (e == LV_ENOMEM)
        e = LV_ETRANSIENT;
    return e;
}
