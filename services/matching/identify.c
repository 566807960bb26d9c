/* Identity matching in the record path (identify.h): the candidate sets
 * cached per village and county, the link / review decision per record, and
 * feeding on the reviews a person resolved. */
#define _POSIX_C_SOURCE 200809L
#include "identify.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_log.h"
#include "lv_pg.h"
#include "lv_time.h"
#include "match.h"

#define SCOPE_MAX 24          /* "v:" + 12 digits, "c:" + 6 */
#define CACHE_SETS_MAX 512    /* candidate sets kept at once, whatever their size */
#define CACHE_PERSONS_DEFAULT 2000000
#define DETAIL_MAX 512
#define FEED_RETRY_MS 5000    /* after a resolved review could not be fed */
#define FEED_POLL_MS 1000     /* how often Postgres is asked for resolved reviews */
#define REMATCH_BATCH "200"   /* open reviews matched again in one transaction */

/* ---- configuration ------------------------------------------------------ */

static int env_fraction(const char *name, double dflt, double *out)
{
    const char *v = getenv(name);
    *out = dflt;
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !(x >= 0.0 && x <= 1.0)) {
        fprintf(stderr, "配置错误 (bad config): %s=%s, expected a number in 0..1\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int mat_ident_cfg_load(mat_ident_cfg_t *cfg)
{
    lv_ident_params_t d = lv_ident_params_default();
    cfg->cache_persons = CACHE_PERSONS_DEFAULT;
    if (env_fraction("LEVEE_IDENT_LINK_THRESHOLD", d.link_threshold, &cfg->params.link_threshold) ||
        env_fraction("LEVEE_IDENT_MIN_MARGIN", d.min_margin, &cfg->params.min_margin))
        return -1;
    const char *v = getenv("LEVEE_IDENT_CACHE_PERSONS");
    if (v && *v) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || *end || n < 1 || n > 100000000) {
            fprintf(stderr, "配置错误 (bad config): LEVEE_IDENT_CACHE_PERSONS=%s, expected 1..100000000\n",
                    v);
            return -1;
        }
        cfg->cache_persons = (size_t)n;
    }
    return 0;
}

/* ---- the cache of candidate sets ------------------------------------------ */

typedef struct {
    char id[19];
    char *name;
    char *household_id;
} person_t;

typedef struct {
    char scope[SCOPE_MAX];
    int64_t version;
    uint64_t used; /* the LRU clock when last used */
    lv_ident_set_t *set;
    person_t *persons; /* a candidate's tag is its index here */
    size_t n;
} scope_t;

struct mat_ident {
    mat_ident_cfg_t cfg;
    lv_ident_t *ctx;
    scope_t *scopes[CACHE_SETS_MAX];
    size_t nscopes;
    size_t persons; /* in all cached sets */
    uint64_t clock;
};

static void scope_free(scope_t **sp)
{
    scope_t *s = *sp;
    if (!s)
        return;
    lv_ident_set_destroy(&s->set);
    for (size_t i = 0; i < s->n; i++) {
        free(s->persons[i].name);
        free(s->persons[i].household_id);
    }
    free(s->persons);
    free(s);
    *sp = NULL;
}

mat_ident_t *mat_ident_new(const mat_ident_cfg_t *cfg)
{
    mat_ident_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = *cfg;
    const char *why = "";
    self->ctx = lv_ident_new(&why);
    if (!self->ctx) {
        lv_error("identity matching unavailable: %s", why);
        free(self);
        return NULL;
    }
    return self;
}

void mat_ident_destroy(mat_ident_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mat_ident_t *self = *self_p;
    for (size_t i = 0; i < self->nscopes; i++)
        scope_free(&self->scopes[i]);
    lv_ident_destroy(&self->ctx);
    free(self);
    *self_p = NULL;
}

static void cache_drop(mat_ident_t *self, size_t i)
{
    self->persons -= self->scopes[i]->n;
    scope_free(&self->scopes[i]);
    self->scopes[i] = self->scopes[--self->nscopes];
}

static void cache_forget(mat_ident_t *self, const char *scope)
{
    for (size_t i = 0; i < self->nscopes; i++) {
        if (!strcmp(self->scopes[i]->scope, scope)) {
            cache_drop(self, i);
            return;
        }
    }
}

/* Drops least recently used sets until `incoming` more persons fit (a set
 * larger than the whole bound is still built: it is dropped next time). A
 * record's result is copied out as soon as it is matched, so any set may go. */
static void cache_make_room(mat_ident_t *self, size_t incoming)
{
    while (self->nscopes &&
           (self->nscopes == CACHE_SETS_MAX || self->persons + incoming > self->cfg.cache_persons)) {
        size_t lru = 0;
        for (size_t i = 1; i < self->nscopes; i++)
            if (self->scopes[i]->used < self->scopes[lru]->used)
                lru = i;
        cache_drop(self, lru);
    }
}

static const char *const SQL_VILLAGE =
    "SELECT p.id_number, p.name, p.household_id FROM person p "
    "JOIN household h USING (household_id) WHERE h.region_code = $1 ORDER BY p.id_number";
static const char *const SQL_COUNTY =
    "SELECT id_number, name, household_id FROM person WHERE county = $1 ORDER BY id_number";

/* Builds the set of a scope from Postgres. */
static int scope_build(mat_ident_t *self, PGconn *pg, const char *scope, int64_t version,
                       scope_t **out)
{
    const char *p[1] = {scope + 2};
    PGresult *res;
    int e = lv_pg_query(pg, &res, scope[0] == 'v' ? SQL_VILLAGE : SQL_COUNTY, 1, p);
    if (e)
        return e;
    size_t n = (size_t)PQntuples(res);
    scope_t *s = calloc(1, sizeof *s);
    if (s)
        s->persons = calloc(n ? n : 1, sizeof *s->persons);
    if (s && s->persons)
        s->set = lv_ident_set_new(self->ctx);
    if (!s || !s->persons || !s->set) {
        PQclear(res);
        scope_free(&s);
        return LV_ENOMEM;
    }
    snprintf(s->scope, sizeof s->scope, "%s", scope);
    s->version = version;
    for (size_t i = 0; i < n && !e; i++) {
        person_t *x = &s->persons[s->n];
        snprintf(x->id, sizeof x->id, "%s", PQgetvalue(res, (int)i, 0));
        const char *why = "";
        int a = lv_ident_set_add(s->set, x->id, PQgetvalue(res, (int)i, 1), (int64_t)s->n, &why);
        if (a == LV_ENOMEM) {
            e = a;
            break;
        }
        if (a) {
            lv_warn("identity set %s: person skipped: %s", scope, why);
            continue;
        }
        x->name = strdup(PQgetvalue(res, (int)i, 1));
        x->household_id = strdup(PQgetvalue(res, (int)i, 2));
        s->n++;
        if (!x->name || !x->household_id)
            e = LV_ENOMEM;
    }
    PQclear(res);
    if (e) {
        scope_free(&s);
        return e;
    }
    *out = s;
    return 0;
}

/* The set of a scope at the version Postgres has, from the cache or built. */
static int scope_get(mat_ident_t *self, PGconn *pg, const char *scope, int64_t version,
                     scope_t **out)
{
    for (size_t i = 0; i < self->nscopes; i++) {
        scope_t *s = self->scopes[i];
        if (strcmp(s->scope, scope) != 0)
            continue;
        if (s->version == version) {
            s->used = ++self->clock;
            *out = s;
            return 0;
        }
        cache_drop(self, i); /* the registry changed it */
        break;
    }
    scope_t *s = NULL;
    int e = scope_build(self, pg, scope, version, &s);
    if (e)
        return e;
    cache_make_room(self, s->n);
    s->used = ++self->clock;
    self->scopes[self->nscopes++] = s;
    self->persons += s->n;
    *out = s;
    return 0;
}

/* ---- a record's scope and query -------------------------------------------- */

/* Where to look for the person of a row: its village when the row names one,
 * else its county (from the region column or the broken ID's first digits);
 * "" when the row offers neither. */
static void record_scope(const Levee__Record *r, char out[SCOPE_MAX])
{
    const char *region = r->region_code ? r->region_code : "";
    const char *raw = r->raw_id_number ? r->raw_id_number : "";
    out[0] = '\0';
    if (strlen(region) == 12)
        snprintf(out, SCOPE_MAX, "v:%s", region);
    else if (strlen(region) >= 6)
        snprintf(out, SCOPE_MAX, "c:%.6s", region);
    else if (strlen(raw) >= 6 && strspn(raw, "0123456789") >= 6 && memcmp(raw, "000000", 6))
        snprintf(out, SCOPE_MAX, "c:%.6s", raw);
}

static int32_t birth_day(const char *yyyymmdd)
{
    if (!yyyymmdd || strlen(yyyymmdd) != 8 || strspn(yyyymmdd, "0123456789") != 8)
        return LV_IDENT_UNKNOWN_DAY;
    int v = atoi(yyyymmdd);
    return (int32_t)lv_days_from_civil(v / 10000, v / 100 % 100, v % 100);
}

/* The basis of a link as stored: lv_ident's, with a name match that had a
 * birth date to compare called name_birth. */
static const char *basis_code(const lv_ident_cand_t *c, const Levee__Record *r)
{
    if (c->basis == LV_IDENT_BY_NAME && birth_day(r->birth_date) != LV_IDENT_UNKNOWN_DAY)
        return "name_birth";
    return lv_ident_basis_name(c->basis);
}

/* The basis in words, for the household's file. */
static const char *basis_text(const char *code)
{
    static const struct {
        const char *code, *text;
    } t[] = {
        {"id", "按身份证号关联"},
        {"id_swap", "按身份证号(两位互换)关联"},
        {"id_typo", "按身份证号(一位之差)关联"},
        {"id_parts", "按身份证号中的地区、出生日期与姓名关联"},
        {"name", "按姓名关联"},
        {"name_birth", "按姓名+出生日期关联"},
        {"review", "人工核对关联"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].code, code))
            return t[i].text;
    return code;
}

static const char *source_text(const char *source)
{
    static const char *const t[][2] = {
        {"medical", "医保结算"}, {"civil", "民政"},     {"disaster", "应急管理"},
        {"education", "教育"},   {"income", "人社"},    {"declaration", "农户自主申报"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i][0], source))
            return t[i][1];
    return source;
}

/* The feeds ingest keeps in a typed table with an id_number column. */
static const char *typed_table(const char *source)
{
    static const char *const t[][2] = {
        {"civil", "civil_record"},     {"disaster", "disaster_record"},
        {"education", "education_record"}, {"income", "income_record"},
        {"declaration", "declaration_record"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i][0], source))
            return t[i][1];
    return NULL;
}

/* The row's amount shown in the review queue. */
static int64_t record_amount(const Levee__Record *r)
{
    if (!strcmp(r->source, "medical"))
        return r->self_paid_fen;
    if (!strcmp(r->source, "disaster"))
        return r->loss_amount_fen;
    if (!strcmp(r->source, "education"))
        return r->cost_fen;
    return r->amount_fen;
}

static void arr_opt(lv_buf_t *b, int64_t v)
{
    if (v < 0)
        lv_arr_null(b);
    else
        lv_arr_int(b, v);
}

/* ---- links and reviews, written set-wise ------------------------------------ */

/* $1 source, $2 record ids, $3 ID numbers, $4 basis, $5 scores, $6 raw IDs,
 * $7 raw names, $8 review ids (NULL: lv_ident's link), $9 actors, $10 timeline
 * details, $11 now. The person's household and county come from person. */
static const char *const SQL_LINKS =
    "WITH x AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[], "
    "  $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[]) "
    "  AS t(record_id, id, basis, score, raw_id, raw_name, review_id, actor, detail)), "
    "l AS (INSERT INTO identity_link (source, record_id, county, id_number, household_id, basis, "
    "  score, raw_id_number, raw_name, review_id, actor, linked_ms) "
    "  SELECT $1, x.record_id, p.county, x.id, p.household_id, x.basis, x.score, x.raw_id, "
    "  x.raw_name, x.review_id, x.actor, $11 FROM x JOIN person p ON p.id_number = x.id "
    "  ON CONFLICT DO NOTHING RETURNING record_id, household_id, county) "
    "INSERT INTO timeline (household_id, county, at_ms, actor, role, action, detail) "
    "SELECT l.household_id, l.county, $11, x.actor, 'system', 'identity_link', x.detail "
    "FROM l JOIN x USING (record_id)";

typedef struct {
    mat_cols_t c; /* the arrays of SQL_LINKS $2..$10 */
} links_t;

static void link_add(links_t *l, const Levee__Record *r, const char *id, const char *basis,
                     double score, const char *review_id, const char *actor)
{
    char sc[16], detail[DETAIL_MAX];
    snprintf(sc, sizeof sc, "%.3f", score);
    const char *raw = r->raw_id_number && *r->raw_id_number ? r->raw_id_number : "";
    char masked[256];
    if (strlen(raw) < sizeof masked)
        lv_mask_idnum_field(raw, masked);
    else
        snprintf(masked, sizeof masked, "(过长)");
    snprintf(detail, sizeof detail, "%s记录 %s 身份证号%s%s, %s, %s", source_text(r->source),
             r->record_id, *raw ? "有误: " : "缺失", masked, basis_text(basis), sc);
    mat_arr_str(&l->c.b[0], r->record_id);
    mat_arr_str(&l->c.b[1], id);
    mat_arr_str(&l->c.b[2], basis);
    mat_arr_str(&l->c.b[3], sc);
    mat_arr_str(&l->c.b[4], raw);
    mat_arr_str(&l->c.b[5], r->name);
    if (review_id)
        mat_arr_str(&l->c.b[6], review_id);
    else
        lv_arr_null(&l->c.b[6]);
    mat_arr_str(&l->c.b[7], actor);
    mat_arr_str(&l->c.b[8], detail);
}

/* The parameters of a set-wise statement: $1 the source, then the arrays of
 * c, then the time. Returns 0, 1 when there is no row, or LV_ENOMEM. */
static int set_params(mat_cols_t *c, size_t nrows, const char *source, const char **p,
                      char now[24])
{
    if (!mat_cols_end(c, p + 1))
        return LV_ENOMEM;
    if (!nrows)
        return 1;
    snprintf(now, 24, "%lld", (long long)lv_now_ms());
    p[0] = source;
    p[c->n + 1] = now;
    return 0;
}

static int links_write(PGconn *pg, const char *source, links_t *l, size_t n)
{
    const char *p[11];
    char now[24];
    int e = set_params(&l->c, n, source, p, now);
    if (!e)
        e = lv_pg_cmd(pg, SQL_LINKS, 11, p);
    if (e)
        return e < 0 ? e : 0;
    /* The typed row takes the person's ID number, so it links as any other. */
    const char *table = typed_table(source);
    if (!table)
        return 0;
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE %s t SET id_number = x.id FROM unnest($1::text[], $2::text[]) AS x(rid, id) "
             "WHERE t.record_id = x.rid",
             table);
    const char *u[2] = {p[1], p[2]};
    return lv_pg_cmd(pg, sql, 2, u);
}

static const char *const SQL_REVIEWS =
    "INSERT INTO identity_review (source, record_id, county, region_code, raw_id_number, name, "
    "  birth_date, event_ms, amount_fen, record, candidates, reason, created_ms) "
    "SELECT $1, t.record_id, t.county, t.region, t.raw_id, t.name, t.birth, t.event_ms, t.amount, "
    "  decode(t.record, 'hex'), t.cands::jsonb, t.reason, $13 "
    "FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
    "  $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[]) "
    "  AS t(record_id, county, region, raw_id, name, birth, event_ms, amount, record, cands, reason) "
    "ON CONFLICT (source, record_id) DO NOTHING";

typedef struct {
    mat_cols_t c; /* $2..$12 */
} reviews_t;

/* The candidates as JSON, best first, with who each one is. */
static char *candidates_json(const scope_t *s, const lv_ident_result_t *res)
{
    json_t *a = json_array();
    for (int i = 0; a && s && i < res->n; i++) {
        const lv_ident_cand_t *c = &res->cand[i];
        if (c->tag < 0 || (size_t)c->tag >= s->n)
            continue;
        const person_t *x = &s->persons[c->tag];
        json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:s, s:f}", "id_number", x->id, "name", x->name,
                              "household_id", x->household_id, "score",
                              (double)(int)(c->score * 1000 + 0.5) / 1000, "basis",
                              lv_ident_basis_name(c->basis), "name_similarity",
                              (double)(int)(c->name_similarity * 1000 + (c->name_similarity < 0 ? -0.5 : 0.5)) / 1000);
        if (o)
            json_array_append_new(a, o);
    }
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

static int review_add(reviews_t *v, const Levee__Record *r, const char *scope, const scope_t *s,
                      const lv_ident_result_t *res)
{
    char county[7] = "000000";
    const char *region = "000000";
    if (*scope) {
        memcpy(county, scope + 2, 6);
        region = scope + 2;
    }
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(len ? len : 1);
    char *hex = malloc(2 * len + 1);
    char *cands = candidates_json(s, res);
    int e = 0;
    if (!buf || !hex || !cands) {
        e = LV_ENOMEM;
        goto done;
    }
    protobuf_c_message_pack(&r->base, buf);
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", buf[i]);
    hex[2 * len] = '\0';
    mat_arr_str(&v->c.b[0], r->record_id);
    mat_arr_str(&v->c.b[1], county);
    mat_arr_str(&v->c.b[2], region);
    mat_arr_str(&v->c.b[3], r->raw_id_number);
    mat_arr_str(&v->c.b[4], r->name);
    mat_arr_str(&v->c.b[5], r->birth_date);
    arr_opt(&v->c.b[6], r->event_ms);
    arr_opt(&v->c.b[7], record_amount(r));
    mat_arr_str(&v->c.b[8], hex);
    mat_arr_str(&v->c.b[9], cands);
    mat_arr_str(&v->c.b[10], *scope ? res->reason : "未提供行政区划代码, 无法确定查找范围 (no region to search)");
done:
    free(buf);
    free(hex);
    free(cands);
    return e;
}

static int reviews_write(PGconn *pg, const char *source, reviews_t *v, size_t n)
{
    const char *p[13];
    char now[24];
    int e = set_params(&v->c, n, source, p, now);
    if (!e)
        e = lv_pg_cmd(pg, SQL_REVIEWS, 13, p);
    return e < 0 ? e : 0;
}

/* ---- the registry changed ---------------------------------------------------- */

/* Bumps the version of every village and county the batch touches, before
 * and after the change (a person may have moved), and forgets their sets.
 * The ID numbers go as char(18)[], the key's type: as text[] each batch
 * read the whole person table twice (a province's registry took four times
 * as long). */
static int registry_changed(mat_ident_t *self, PGconn *pg, const Levee__RecordBatch *b)
{
    mat_cols_t c;
    const char *p[3];
    mat_cols_begin(&c, 3);
    for (size_t i = 0; i < b->n_records; i++) {
        const Levee__Record *r = b->records[i];
        char scope[SCOPE_MAX];
        snprintf(scope, sizeof scope, "v:%s", r->region_code);
        mat_arr_str(&c.b[0], scope);
        snprintf(scope, sizeof scope, "c:%.6s", r->region_code);
        mat_arr_str(&c.b[0], scope);
        mat_arr_str(&c.b[1], r->id_number);
        mat_arr_str(&c.b[2], r->household_id);
    }
    int e = LV_ENOMEM;
    PGresult *res = NULL;
    if (mat_cols_end(&c, p))
        e = lv_pg_query(
            pg, &res,
            "WITH s AS (SELECT unnest($1::text[]) AS scope "
            "  UNION SELECT 'v:' || h.region_code FROM household h "
            "  WHERE h.household_id = ANY($3::text[]) "
            "  UNION SELECT 'v:' || h.region_code FROM person p JOIN household h USING (household_id) "
            "  WHERE p.id_number = ANY($2::char(18)[]) "
            "  UNION SELECT 'c:' || p.county FROM person p WHERE p.id_number = ANY($2::char(18)[])) "
            "INSERT INTO identity_scope (scope, version) SELECT scope, 1 FROM s "
            "ON CONFLICT (scope) DO UPDATE SET version = identity_scope.version + 1 RETURNING scope",
            3, p);
    mat_cols_free(&c);
    if (e)
        return e;
    for (int i = 0; i < PQntuples(res); i++)
        cache_forget(self, PQgetvalue(res, i, 0));
    PQclear(res);
    return 0;
}

/* ---- the hook ------------------------------------------------------------------ */

static bool needs_identity(const Levee__Record *r)
{
    return r->id_invalid && (!r->id_number || !*r->id_number);
}

/* The versions Postgres holds for the scopes of the batch's records. */
static int scope_versions(PGconn *pg, const Levee__RecordBatch *b, PGresult **res)
{
    lv_buf_t a;
    lv_buf_init(&a, MAT_ARR_MAX);
    lv_arr_begin(&a);
    for (size_t i = 0; i < b->n_records; i++) {
        char scope[SCOPE_MAX];
        if (!needs_identity(b->records[i]))
            continue;
        record_scope(b->records[i], scope);
        if (*scope)
            mat_arr_str(&a, scope);
    }
    lv_arr_end(&a);
    const char *p[1] = {lv_buf_str(&a)};
    int e = a.failed ? LV_ENOMEM
                     : lv_pg_query(pg, res,
                                   "SELECT s, coalesce(v.version, 0) FROM (SELECT DISTINCT "
                                   "unnest($1::text[]) AS s) x LEFT JOIN identity_scope v "
                                   "ON v.scope = x.s",
                                   1, p);
    lv_buf_free(&a);
    return e;
}

static int64_t version_of(const PGresult *res, const char *scope)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (!strcmp(PQgetvalue(res, i, 0), scope))
            return strtoll(PQgetvalue(res, i, 1), NULL, 10);
    return 0;
}

int mat_identify(mat_ident_t *self, PGconn *pg, Levee__RecordBatch *b, lv_arena_t *arena,
                 char *err, size_t errlen)
{
    if (!strcmp(b->source, "registry")) {
        int e = registry_changed(self, pg, b);
        if (e)
            snprintf(err, errlen, "identity scopes not updated: %s", lv_strerror(e));
        return e;
    }
    size_t todo = 0;
    for (size_t i = 0; i < b->n_records; i++)
        todo += needs_identity(b->records[i]);
    if (!todo)
        return 0;
    if (!strcmp(b->source, "visit") || !strcmp(b->source, "registry")) {
        snprintf(err, errlen, "%s records carry no identity to match", b->source);
        return LV_EINVAL;
    }
    PGresult *versions = NULL;
    int e = scope_versions(pg, b, &versions);
    if (e) {
        snprintf(err, errlen, "identity scopes not read: %s", lv_strerror(e));
        return e;
    }
    links_t links;
    reviews_t reviews;
    mat_cols_begin(&links.c, 9);
    mat_cols_begin(&reviews.c, 11);
    size_t nlinks = 0, nreviews = 0, kept = 0;
    for (size_t i = 0; i < b->n_records && !e; i++) {
        Levee__Record *r = b->records[i];
        if (!needs_identity(r)) {
            b->records[kept++] = r;
            continue;
        }
        char scope[SCOPE_MAX];
        record_scope(r, scope);
        scope_t *s = NULL;
        if (*scope && (e = scope_get(self, pg, scope, version_of(versions, scope), &s)))
            break;
        lv_ident_result_t res = {0};
        if (s) {
            lv_ident_query_t q = {r->name, r->raw_id_number, birth_day(r->birth_date), r->gender};
            lv_ident_match(s->set, &q, &self->cfg.params, &res); /* bad UTF-8: a review */
        }
        if (s && res.verdict == LV_IDENT_LINK && res.n > 0 && (size_t)res.cand[0].tag < s->n) {
            const person_t *x = &s->persons[res.cand[0].tag];
            char *id = lv_arena_alloc(arena, sizeof x->id);
            if (!id) {
                e = LV_ENOMEM;
                break;
            }
            memcpy(id, x->id, sizeof x->id);
            r->id_number = id;
            link_add(&links, r, id, basis_code(&res.cand[0], r), res.cand[0].score, NULL,
                     "levee-matching");
            nlinks++;
            b->records[kept++] = r;
        } else {
            e = review_add(&reviews, r, scope, s, &res);
            nreviews++;
        }
    }
    PQclear(versions);
    if (!e)
        e = links_write(pg, b->source, &links, nlinks);
    if (!e)
        e = reviews_write(pg, b->source, &reviews, nreviews);
    mat_cols_free(&links.c);
    mat_cols_free(&reviews.c);
    if (e) {
        snprintf(err, errlen, "identity matching failed: %s", lv_strerror(e));
        return e;
    }
    b->n_records = kept;
    return 0;
}

/* ---- feeding on resolved reviews -------------------------------------------------- */

/* A worker feeds and matches again only the reviews of the counties it
 * owns (county modulo workers, as ingest routes records). */
static void worker_params(const mat_t *m, char workers[16], char worker[16])
{
    snprintf(workers, 16, "%d", m->workers > 1 ? m->workers : 1);
    snprintf(worker, 16, "%d", m->workers > 1 ? m->worker : 0);
}

static const char *const SQL_NEXT_RESOLVED =
    "SELECT r.review_id, r.source, r.record_id, r.chosen_id, encode(r.record, 'hex'), "
    "  coalesce(r.resolved_by, '') FROM identity_review r "
    "WHERE r.status = 'linked' AND r.fed_ms IS NULL AND r.county::int % $1::int = $2::int "
    "ORDER BY r.review_id LIMIT 1 "
    "FOR UPDATE SKIP LOCKED";

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The Record a review stored (hex of its bytes), unpacked with the default
 * allocator (free with levee__record__free_unpacked); NULL when it is not one. */
static Levee__Record *record_from_hex(const char *hex)
{
    size_t len = strlen(hex) / 2;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    Levee__Record *r = levee__record__unpack(NULL, len, buf);
    free(buf);
    return r;
}

/* Feeds the record of one resolved review through the record path as the
 * chosen person's, in the caller's transaction. */
static int feed_one(mat_t *m, PGconn *pg, const PGresult *res, char *err, size_t errlen)
{
    const char *review_id = PQgetvalue(res, 0, 0), *source = PQgetvalue(res, 0, 1);
    const char *chosen = PQgetvalue(res, 0, 3), *hex = PQgetvalue(res, 0, 4);
    const char *actor = PQgetvalue(res, 0, 5);
    Levee__Record *r = record_from_hex(hex);
    if (!r) {
        snprintf(err, errlen, "review %s: stored record is not a Record", review_id);
        return LV_EINVAL;
    }
    /* Ours to change: unpacked with the default allocator. */
    char *old_id = r->id_number;
    r->id_number = (char *)chosen;
    links_t links;
    mat_cols_begin(&links.c, 9);
    char who[160];
    snprintf(who, sizeof who, "%s", *actor ? actor : "levee-matching");
    link_add(&links, r, chosen, "review", 1.0, review_id, who);
    int e = links_write(pg, source, &links, 1);
    mat_cols_free(&links.c);
    size_t plen = 0;
    uint8_t *body = NULL;
    char msg_id[64];
    snprintf(msg_id, sizeof msg_id, "idr:%s", review_id);
    if (!e) {
        Levee__RecordBatch batch = LEVEE__RECORD_BATCH__INIT;
        Levee__Record *recs[1] = {r};
        batch.batch_id = msg_id;
        batch.source = (char *)source;
        batch.n_records = 1;
        batch.records = recs;
        plen = levee__record_batch__get_packed_size(&batch);
        body = malloc(plen ? plen : 1);
        if (!body)
            e = LV_ENOMEM;
        else
            levee__record_batch__pack(&batch, body);
    }
    r->id_number = old_id;
    levee__record__free_unpacked(r, NULL);
    if (!e) {
        lv_msg_t msg = {msg_id, "records", body, plen};
        lv_reply_t reply;
        memset(&reply, 0, sizeof reply);
        e = mat_handle(m, pg, &msg, &reply);
        if (e)
            snprintf(err, errlen, "%s", reply.error);
    }
    free(body);
    if (!e) {
        char now[24];
        snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
        const char *p[2] = {review_id, now};
        e = lv_pg_cmd(pg, "UPDATE identity_review SET fed_ms = $2 WHERE review_id = $1", 2, p);
    }
    return e;
}

int mat_identify_feed(mat_t *m, lv_service_t *svc)
{
    int64_t now = lv_now_ms();
    if (now < m->next_identity_feed_ms)
        return 1000;
    PGconn *pg = lv_service_pg(svc);
    PGresult *res = NULL;
    char err[512] = "";
    int e = lv_pg_begin(pg);
    char workers[16], worker[16];
    const char *p[2] = {workers, worker};
    worker_params(m, workers, worker);
    if (!e)
        e = lv_pg_query(pg, &res, SQL_NEXT_RESOLVED, 2, p);
    bool found = !e && PQntuples(res) == 1;
    if (found)
        e = feed_one(m, pg, res, err, sizeof err);
    char review_id[24] = "";
    if (found)
        snprintf(review_id, sizeof review_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (e || !found) {
        lv_pg_rollback(pg);
        if (!found && !e)
            m->next_identity_feed_ms = now + FEED_POLL_MS;
    } else if ((e = lv_pg_commit(pg)) == 0) {
        lv_info("identity review %s fed on as the chosen person's", review_id);
        lv_relay_kick(lv_service_relay(svc));
        return 0;
    }
    if (e) {
        lv_warn("identity review %s not fed (%s: %s); retrying later", review_id, lv_strerror(e),
                err);
        m->next_identity_feed_ms = now + FEED_RETRY_MS;
    }
    return 1000;
}

/* ---- matching open reviews again ---------------------------------------------- */

/* Open reviews whose scope the registry changed since they were matched. */
static const char *const SQL_REMATCH =
    "SELECT r.review_id, encode(r.record, 'hex'), v.version FROM identity_review r "
    "JOIN identity_scope v ON v.scope = CASE WHEN length(r.region_code) = 12 THEN 'v:' "
    "  ELSE 'c:' END || r.region_code "
    "WHERE r.status = 'open' AND r.region_code <> '000000' AND v.version > r.scope_version "
    "AND r.county::int % $1::int = $2::int "
    "ORDER BY r.review_id LIMIT " REMATCH_BATCH " FOR UPDATE OF r SKIP LOCKED";

/* One open review matched again against its scope's current set: a link
 * resolves it as levee-matching's (mat_identify_feed then feeds it on, as
 * for a person's link); otherwise its candidates are refreshed. */
static int rematch_one(mat_ident_t *self, PGconn *pg, const PGresult *res, int i, int *linked)
{
    const char *review_id = PQgetvalue(res, i, 0), *version = PQgetvalue(res, i, 2);
    Levee__Record *r = record_from_hex(PQgetvalue(res, i, 1));
    if (!r) /* feed_one reports it when someone links it */
        return lv_pg_cmd(pg, "UPDATE identity_review SET scope_version = $2 WHERE review_id = $1",
                         2, (const char *[]){review_id, version});
    char scope[SCOPE_MAX];
    record_scope(r, scope);
    scope_t *s = NULL;
    int e = *scope ? scope_get(self, pg, scope, strtoll(version, NULL, 10), &s) : 0;
    lv_ident_result_t m = {0};
    if (!e && s) {
        lv_ident_query_t q = {r->name, r->raw_id_number, birth_day(r->birth_date), r->gender};
        lv_ident_match(s->set, &q, &self->cfg.params, &m);
    }
    char now[24], note[DETAIL_MAX];
    snprintf(now, sizeof now, "%lld", (long long)lv_now_ms());
    if (!e && s && m.verdict == LV_IDENT_LINK && m.n > 0 && (size_t)m.cand[0].tag < s->n) {
        snprintf(note, sizeof note, "户籍底册更新后自动关联 (linked after a registry update): %s, %.2f",
                 basis_text(basis_code(&m.cand[0], r)), m.cand[0].score);
        const char *p[5] = {review_id, s->persons[m.cand[0].tag].id, note, now, version};
        e = lv_pg_cmd(pg,
                      "UPDATE identity_review SET status = 'linked', chosen_id = $2, note = $3, "
                      "resolved_by = 'levee-matching', resolved_ms = $4, scope_version = $5 "
                      "WHERE review_id = $1 AND status = 'open'",
                      5, p);
        *linked += !e;
    } else if (!e) {
        char *cands = candidates_json(s, &m);
        const char *p[3] = {review_id, version, cands};
        e = cands ? lv_pg_cmd(pg,
                              "UPDATE identity_review SET scope_version = $2, candidates = $3::jsonb "
                              "WHERE review_id = $1",
                              3, p)
                  : LV_ENOMEM;
        free(cands);
    }
    levee__record__free_unpacked(r, NULL);
    return e < 0 ? e : 0;
}

int mat_identify_rematch(mat_t *m, lv_service_t *svc)
{
    int64_t now = lv_now_ms();
    if (now < m->next_identity_rematch_ms)
        return 1000;
    PGconn *pg = lv_service_pg(svc);
    PGresult *res = NULL;
    int e = lv_pg_begin(pg), n = 0, linked = 0;
    char workers[16], worker[16];
    const char *p[2] = {workers, worker};
    worker_params(m, workers, worker);
    if (!e)
        e = lv_pg_query(pg, &res, SQL_REMATCH, 2, p);
    if (!e)
        n = PQntuples(res);
    for (int i = 0; i < n && !e; i++)
        e = rematch_one(m->ident, pg, res, i, &linked);
    PQclear(res);
    if (e || n == 0) {
        lv_pg_rollback(pg);
        if (e)
            lv_warn("identity reviews not matched again (%s); retrying later", lv_strerror(e));
        m->next_identity_rematch_ms = now + (e ? FEED_RETRY_MS : FEED_POLL_MS);
        return 1000;
    }
    if ((e = lv_pg_commit(pg))) {
        m->next_identity_rematch_ms = now + FEED_RETRY_MS;
        return 1000;
    }
    lv_info("%d identity review(s) matched again after a registry update, %d linked", n, linked);
    return 0;
}
