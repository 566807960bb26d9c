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

#include "lv_err.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_time.h"
#include "identify.h"

/* ---- array parameters (shared with the other matching modules) ------- */

void mat_cols_begin(mat_cols_t *c, int n)
{
    c->n = n;
    for (int i = 0; i < n; i++) {
        lv_buf_init(&c->b[i], MAT_ARR_MAX);
        lv_arr_begin(&c->b[i]);
    }
}

bool mat_cols_end(mat_cols_t *c, const char **params)
{
    bool ok = true;
    for (int i = 0; i < c->n; i++) {
        lv_arr_end(&c->b[i]);
        ok = ok && !c->b[i].failed;
        params[i] = lv_buf_str(&c->b[i]);
    }
    return ok;
}

void mat_cols_free(mat_cols_t *c)
{
    for (int i = 0; i < c->n; i++)
        lv_buf_free(&c->b[i]);
    c->n = 0;
}

void mat_arr_str(lv_buf_t *b, const char *s)
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

struct mat_touch {
    char *hid, *rid, *src;
    size_t ord;
};

void mat_touched_init(mat_touched_t *t)
{
    memset(t, 0, sizeof *t);
    lv_buf_t *b[3] = {&t->hid, &t->rid, &t->src};
    for (int i = 0; i < 3; i++)
        lv_buf_init(b[i], MAT_ARR_MAX);
}

void mat_touched_free(mat_touched_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->rows[i].hid);
        free(t->rows[i].rid);
        free(t->rows[i].src);
    }
    free(t->rows);
    lv_buf_free(&t->hid);
    lv_buf_free(&t->rid);
    lv_buf_free(&t->src);
}

void mat_touched_add(mat_touched_t *t, const char *hid, const char *rid, const char *src)
{
    if (t->failed)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        struct mat_touch *rows = realloc(t->rows, sizeof *rows * cap);
        if (!rows) {
            t->failed = true;
            return;
        }
        t->rows = rows;
        t->cap = cap;
    }
    struct mat_touch *r = &t->rows[t->n];
    r->hid = strdup(hid);
    r->rid = strdup(rid);
    r->src = strdup(src);
    r->ord = t->n++;
    if (!r->hid || !r->rid || !r->src)
        t->failed = true;
}

void mat_touched_add_rows(mat_touched_t *t, const PGresult *res, const char *src)
{
    bool has_src = PQnfields(res) >= 3;
    for (int i = 0; i < PQntuples(res); i++)
        mat_touched_add(t, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        has_src ? PQgetvalue(res, i, 2) : src);
}

/* By household, then the greatest record id first (the last added of
 * equals): the first row of each household is its trigger. Byte order is
 * Postgres's order too: its databases are made with the C collation. */
static int by_trigger(const void *pa, const void *pb)
{
    const struct mat_touch *a = pa, *b = pb;
    int c = strcmp(a->hid, b->hid);
    if (!c)
        c = strcmp(b->rid, a->rid);
    if (!c)
        c = a->ord < b->ord ? 1 : a->ord > b->ord ? -1 : 0;
    return c;
}

int mat_touched_end(mat_touched_t *t)
{
    if (t->failed)
        return LV_ENOMEM;
    if (t->n > 1)
        qsort(t->rows, t->n, sizeof *t->rows, by_trigger);
    lv_buf_t *b[3] = {&t->hid, &t->rid, &t->src};
    for (int i = 0; i < 3; i++)
        lv_arr_begin(b[i]);
    for (size_t i = 0; i < t->n; i++) {
        if (i && !strcmp(t->rows[i].hid, t->rows[i - 1].hid))
            continue;
        mat_arr_str(&t->hid, t->rows[i].hid);
        mat_arr_str(&t->rid, t->rows[i].rid);
        mat_arr_str(&t->src, t->rows[i].src);
    }
    for (int i = 0; i < 3; i++)
        lv_arr_end(b[i]);
    return t->hid.failed || t->rid.failed || t->src.failed ? LV_ENOMEM : 0;
}

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
    "WITH r AS (SELECT * FROM unnest($1::char(18)[], $2::text[], $3::text[], $4::text[], $5::int[], "
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
    "  WHERE p.id_number = u.id_number::char(18) AND u.id_number = ANY($1::text[]) "
    "  RETURNING u.*, p.household_id AS hid, p.county AS pcounty) "
    "INSERT INTO medical_expense (record_id, household_id, county, id_number, settle_ms, "
    "  self_paid_fen, compliant_self_fen) "
    "SELECT record_id, hid, pcounty, id_number, event_ms, self_paid_fen, compliant_self_fen "
    "FROM m WHERE source = 'medical' ON CONFLICT DO NOTHING RETURNING household_id, record_id";

static int registry(PGconn *pg, const Levee__RecordBatch *b, mat_touched_t *t)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    mat_cols_t h, p, hids;
    const char *hp[8], *pp[10], *hidp[1];
    mat_cols_begin(&h, 7);
    mat_cols_begin(&p, 9);
    mat_cols_begin(&hids, 1);
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        mat_arr_str(&h.b[0], r->household_id);
        mat_arr_str(&h.b[1], r->region_code);
        mat_arr_str(&h.b[2], r->household_type);
        arr_opt_int(&h.b[3], r->exit_year > 0 ? r->exit_year : -1);
        arr_opt_int(&h.b[4], r->annual_net_income_fen);
        mat_arr_str(&h.b[5], r->phone);
        lv_arr_int(&h.b[6], r->row_no);

        mat_arr_str(&p.b[0], r->id_number);
        mat_arr_str(&p.b[1], r->household_id);
        mat_arr_str(&p.b[2], r->name);
        mat_arr_str(&p.b[3], r->relation);
        lv_arr_int(&p.b[4], r->disability_grade);
        mat_arr_str(&p.b[5], r->chronic_illness ? "t" : "f");
        mat_arr_str(&p.b[6], r->labour);
        mat_arr_str(&p.b[7], r->phone);
        lv_arr_int(&p.b[8], r->row_no);

        mat_arr_str(&hids.b[0], r->household_id);
        mat_touched_add(t, r->household_id, r->record_id, "registry");
    }
    int e = LV_ENOMEM;
    if (mat_cols_end(&h, hp) && mat_cols_end(&p, pp) && mat_cols_end(&hids, hidp)) {
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
                mat_touched_add_rows(t, res, "medical");
                PQclear(res);
            }
        }
        if (!e)
            e = mat_link_waiting(pg, pp[0], hidp[0], t);
    }
    mat_cols_free(&h);
    mat_cols_free(&p);
    mat_cols_free(&hids);
    return e;
}

/* ---- medical --------------------------------------------------------- */

/* The ID numbers travel as char(18)[], the type of person's key: compared
 * as text, the person table would be scanned whole for every batch. Each
 * row's person is looked up once, for both the linked and the parked rows. */
static const char *const SQL_MEDICAL =
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::char(18)[], $3::bigint[], $4::bigint[], "
    "  $5::bigint[]) AS t(record_id, id, settle_ms, self_paid, compliant_self)), "
    "j AS MATERIALIZED (SELECT r.*, p.household_id, p.county FROM r "
    "  LEFT JOIN person p ON p.id_number = r.id), "
    "ins AS (INSERT INTO medical_expense (record_id, household_id, county, id_number, settle_ms, "
    "  self_paid_fen, compliant_self_fen) "
    "  SELECT record_id, household_id, county, id, settle_ms, self_paid, compliant_self "
    "  FROM j WHERE household_id IS NOT NULL ON CONFLICT DO NOTHING "
    "  RETURNING household_id, record_id), "
    "un AS (INSERT INTO unmatched_record (source, record_id, county, id_number, event_ms, "
    "  self_paid_fen, compliant_self_fen, reason, created_ms) "
    "  SELECT 'medical', record_id, substr(id, 1, 6), id, settle_ms, self_paid, "
    "  compliant_self, '户籍底册中无此身份证号 (ID number not in the registry)', $6 "
    "  FROM j WHERE household_id IS NULL "
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

static int medical(PGconn *pg, const Levee__RecordBatch *b, mat_touched_t *t)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    mat_cols_t c;
    const char *p[6];
    mat_cols_begin(&c, 5);
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        mat_arr_str(&c.b[0], r->record_id);
        mat_arr_str(&c.b[1], r->id_number);
        lv_arr_int(&c.b[2], r->event_ms);
        lv_arr_int(&c.b[3], r->self_paid_fen);
        lv_arr_int(&c.b[4], compliant_self(r));
    }
    int e = LV_ENOMEM;
    if (mat_cols_end(&c, p)) {
        p[5] = now;
        PGresult *res;
        e = lv_pg_query(pg, &res, SQL_MEDICAL, 6, p);
        if (!e) {
            mat_touched_add_rows(t, res, "medical");
            PQclear(res);
        }
    }
    mat_cols_free(&c);
    return e;
}

/* ---- the handler ------------------------------------------------------ */

/* A record batch: each record's key checked, its rows linked, the touched
 * households evaluated. */
static int records(mat_t *m, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__RecordBatch *b =
        levee__record_batch__unpack(lv_arena_allocator(m->arena), msg->len, msg->body);
    if (!b) {
        snprintf(reply->error, sizeof reply->error, "not a RecordBatch (bad protobuf)");
        return LV_EINVAL;
    }
    /* Rows without a valid ID number are linked by identity matching or
     * held for review (and leave the batch) before anything else. */
    int e = mat_identify(m->ident, pg, b, m->arena, reply->error, sizeof reply->error);
    if (e)
        return e;
    bool by_household = !strcmp(b->source, "visit");
    m->urgent = b->urgent;
    int64_t read_ms = 0;
    lv_buf_t ids;
    lv_buf_init(&ids, MAT_ARR_MAX);
    lv_arr_begin(&ids);
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        bool key_ok = by_household ? *r->household_id != '\0' : strlen(r->id_number) == 18;
        if (!key_ok || !*r->record_id) {
            lv_buf_free(&ids);
            snprintf(reply->error, sizeof reply->error, "record %zu: bad %s or record_id", i,
                     by_household ? "household_id" : "id_number");
            return LV_EINVAL;
        }
        mat_arr_str(&ids, r->record_id);
        if (r->read_ms && (!read_ms || r->read_ms < read_ms))
            read_ms = r->read_ms;
    }
    lv_arr_end(&ids);
    mat_touched_t t;
    mat_touched_init(&t);
    if (ids.failed)
        e = LV_ENOMEM;
    else if (!strcmp(b->source, "registry"))
        e = registry(pg, b, &t);
    else if (!strcmp(b->source, "medical"))
        e = medical(pg, b, &t);
    else if ((e = mat_link(pg, b->source, lv_buf_str(&ids), &t)) == LV_ENOTFOUND) {
        snprintf(reply->error, sizeof reply->error, "unknown source %s", b->source);
        e = LV_EINVAL;
    }
    lv_buf_free(&ids);
    if (!e)
        e = mat_touched_end(&t);
    if (!e)
        e = mat_evaluate(m, pg, msg->msg_id, &t, read_ms, NULL, reply->error, sizeof reply->error);
    m->urgent = false; /* the sweep and the re-judging run on the normal lane */
    mat_touched_free(&t);
    return e;
}

/* The previous calendar month of a time. */
static void previous_month(int64_t ms, int *y, int *mo)
{
    int d;
    lv_civil_from_days(ms / LV_DAY_MS, y, mo, &d);
    if (--*mo == 0) {
        *mo = 12;
        --*y;
    }
}

/* A command: "sweep" with region_code = a county ("" = every county) and
 * at_ms = a day of the month to sweep (0 = last month). */
static int command(mat_t *m, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    Levee__Command *c = levee__command__unpack(lv_arena_allocator(m->arena), msg->len, msg->body);
    if (!c) {
        snprintf(reply->error, sizeof reply->error, "not a Command (bad protobuf)");
        return LV_EINVAL;
    }
    if (!strcmp(c->name, "verified"))
        return mat_verified(m, pg, msg->msg_id, c->household_id, c->task_id, reply);
    if (strcmp(c->name, "sweep") != 0) {
        snprintf(reply->error, sizeof reply->error, "unknown command %s", c->name);
        return LV_EINVAL;
    }
    const char *county = c->region_code;
    if (*county && (strlen(county) != 6 || strspn(county, "0123456789") != 6)) {
        snprintf(reply->error, sizeof reply->error, "县代码须为 6 位数字 (county must be 6 digits): %s",
                 county);
        return LV_ESTATE;
    }
    int y, mo, d;
    if (c->at_ms > 0)
        lv_civil_from_days(c->at_ms / LV_DAY_MS, &y, &mo, &d);
    else
        previous_month(lv_now_ms(), &y, &mo);
    return mat_sweep(m, pg, msg->msg_id, county, y, mo, reply->detail, sizeof reply->detail);
}

int mat_handle(void *ctx, PGconn *pg, const lv_msg_t *msg, lv_reply_t *reply)
{
    mat_t *m = ctx;
    lv_arena_reset(m->arena);
    m->urgent = false;
    int e;
    if (!strcmp(msg->type, "records")) {
        e = records(m, pg, msg, reply);
    } else if (!strcmp(msg->type, "cmd")) {
        e = command(m, pg, msg, reply);
    } else {
        snprintf(reply->error, sizeof reply->error, "unknown message type %s", msg->type);
        e = LV_EINVAL;
    }
    return e == LV_ENOMEM ? LV_ETRANSIENT : e;
}

/* ---- the sweep timer ---------------------------------------------------- */

/* Sweeps, one county per turn in its own transaction, the counties whose
 * last swept month is before the month due: last month once the sweep day
 * of this month has come (the feeds arrive by the 5th), else the one before. */
int mat_tick(void *ctx, lv_service_t *svc)
{
    mat_t *m = ctx;
    if (mat_identify_feed(m, svc) == 0 || mat_identify_rematch(m, svc) == 0)
        return 0;
    int wait = mat_rejudge_step(m, svc);
    if (wait == 0)
        return 0;
    int64_t now = lv_now_ms();
    if (m->sweep_check_ms <= 0 || now < m->next_sweep_check_ms)
        return 1000;
    PGconn *pg = lv_service_pg(svc);
    int y, mo, d;
    lv_civil_from_days(now / LV_DAY_MS, &y, &mo, &d);
    int64_t due = d >= m->sweep_day ? now : now - (int64_t)d * LV_DAY_MS;
    previous_month(due, &y, &mo);
    char month[32];
    snprintf(month, sizeof month, "%04d-%02d-01", y, mo);
    char workers[16], worker[16];
    snprintf(workers, sizeof workers, "%d", m->workers);
    snprintf(worker, sizeof worker, "%d", m->worker);
    const char *p[3] = {month, workers, worker};
    char county[16];
    /* Only the counties this worker owns: their households are its alone. */
    int e = lv_pg_scalar(pg, county, sizeof county,
                         "SELECT h.county FROM (SELECT DISTINCT county FROM household) h "
                         "LEFT JOIN sweep_state s ON s.county = h.county "
                         "WHERE (s.last_month IS NULL OR s.last_month < $1::date) "
                         "AND h.county::int % $2::int = $3::int "
                         "ORDER BY h.county LIMIT 1",
                         3, p);
    if (e) {
        /* Nothing due (or Postgres away): look again after the interval. */
        m->next_sweep_check_ms = now + (e == LV_ENOTFOUND ? m->sweep_check_ms : 5000);
        return 1000;
    }
    char run_id[64], detail[512] = "";
    snprintf(run_id, sizeof run_id, "sweep:%s:%04d-%02d", county, y, mo);
    lv_arena_reset(m->arena);
    if ((e = lv_pg_begin(pg)) == 0) {
        e = mat_sweep(m, pg, run_id, county, y, mo, detail, sizeof detail);
        if (e)
            lv_pg_rollback(pg);
        else
            e = lv_pg_commit(pg);
    }
    if (e) {
        lv_warn("sweep %s not done (%s); retrying later", run_id, lv_strerror(e));
        m->next_sweep_check_ms = now + 5000;
        return 1000;
    }
    lv_info("%s: %s", run_id, detail);
    lv_relay_kick(lv_service_relay(svc));
    return 0;
}
