/* Identity matching benchmark: every row of the identity-carrying feeds that
 * scripts/gen-province wrote is matched with lv_ident against the registry,
 * and the verdict is compared with the row's truth. Prints precision and
 * recall on the rows whose identity was corrupted (by kind), the same for
 * clean rows and for people who are not in the registry, the review-queue
 * share, and matches per second.
 *
 *   levee-bench-ident DIR [--scope village|county] [--threshold T]
 *                         [--margin M] [--show N] [--min-precision P]
 *                         [--min-recall R]
 *
 * --scope: the candidate set of a row is its village's registry persons
 * (the default) or its county's. The rows' village and county come from the
 * truth files; the files must be grouped by county as gen-province writes
 * them, so that one county's sets are in memory at a time.
 * --show N prints up to N wrong links and N missed corrupted rows.
 * --min-precision / --min-recall: exit 1 when the corrupted rows' figures
 * are below them (for smoke runs). Dirty rows are skipped: ingest rejects
 * them before matching. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lv_csv.h"
#include "lv_err.h"
#include "lv_ident.h"

#define N_FEEDS 6
static const char *FEEDS[N_FEEDS] = {"medical", "civil", "disaster", "education", "income",
                                     "declaration"};

typedef struct {
    const char *dir;
    bool county_scope;
    lv_ident_params_t params;
    long show;
    double min_precision, min_recall;
} opts_t;

/* A CSV file read one record at a time, with its header mapped. */
typedef struct {
    FILE *fp;
    lv_csv_t *csv;
    int map[8];
    bool has_row;
} cursor_t;

static int cursor_open(cursor_t *c, const char *path, const lv_csv_col_t *cols, size_t ncols)
{
    char err[256];
    memset(c, 0, sizeof *c);
    c->fp = fopen(path, "r");
    if (!c->fp) {
        fprintf(stderr, "levee-bench-ident: cannot open %s\n", path);
        return LV_EIO;
    }
    c->csv = lv_csv_new(c->fp, NULL);
    if (!c->csv || lv_csv_read_header(c->csv, cols, ncols, c->map, err, sizeof err)) {
        fprintf(stderr, "levee-bench-ident: %s: %s\n", path, c->csv ? err : "out of memory");
        return LV_EINVAL;
    }
    return 0;
}

static int cursor_next(cursor_t *c)
{
    int r = lv_csv_next(c->csv);
    c->has_row = r == LV_CSV_ROW;
    return r < 0 ? r : 0;
}

/* Field i of the wanted columns as a NUL-terminated copy in buf. */
static const char *field(const cursor_t *c, int i, char *buf, size_t cap)
{
    size_t len = 0;
    const char *s = c->map[i] >= 0 ? lv_csv_field(c->csv, (size_t)c->map[i], &len) : "";
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static void cursor_close(cursor_t *c)
{
    lv_csv_destroy(&c->csv);
    if (c->fp)
        fclose(c->fp);
}

enum { REG_HOUSEHOLD, REG_REGION, REG_ID, REG_NAME };
static const lv_csv_col_t REG_COLS[] = {
    {"household_id", NULL, true}, {"region_code", NULL, true},
    {"id_number", NULL, true},    {"name", NULL, true},
};
enum { FEED_ID, FEED_NAME };
static const lv_csv_col_t FEED_COLS[] = {{"id_number", NULL, true}, {"name", NULL, false}};
enum { TRUTH_RECORD, TRUTH_PERSON, TRUTH_REGION, TRUTH_IDENTITY, TRUTH_DIRTY };
static const lv_csv_col_t TRUTH_COLS[] = {
    {"record_id", NULL, true}, {"person_id", NULL, true}, {"region_code", NULL, true},
    {"identity", NULL, true},  {"dirty", NULL, true},
};

/* ---- one county's candidate sets ----------------------------------------- */

typedef struct {
    char code[13];
    lv_ident_set_t *set;
} village_t;

typedef struct {
    char county[7];
    char (*ids)[19]; /* by tag */
    size_t n, cap;
    lv_ident_set_t *all;
    village_t *villages;
    size_t n_villages, cap_villages;
} county_t;

static void county_clear(county_t *c)
{
    lv_ident_set_destroy(&c->all);
    for (size_t i = 0; i < c->n_villages; i++)
        lv_ident_set_destroy(&c->villages[i].set);
    c->n = 0;
    c->n_villages = 0;
    c->county[0] = '\0';
}

static lv_ident_set_t *village_set(county_t *c, const char *code, lv_ident_t *ctx, bool create)
{
    /* Rows come village by village: the last one is the likely hit. */
    for (size_t k = c->n_villages; k-- > 0;)
        if (strcmp(c->villages[k].code, code) == 0)
            return c->villages[k].set;
    if (!create)
        return NULL;
    if (c->n_villages == c->cap_villages) {
        size_t cap = c->cap_villages ? c->cap_villages * 2 : 64;
        village_t *v = realloc(c->villages, cap * sizeof *v);
        if (!v)
            return NULL;
        c->villages = v;
        c->cap_villages = cap;
    }
    village_t *v = &c->villages[c->n_villages];
    snprintf(v->code, sizeof v->code, "%.12s", code);
    v->set = lv_ident_set_new(ctx);
    if (!v->set)
        return NULL;
    c->n_villages++;
    return v->set;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads the registry rows of the next county (the cursor stops at the first
 * row of the county after). Returns 0, 1 at the end, or an error. */
static int load_county(cursor_t *reg, county_t *c, lv_ident_t *ctx, const opts_t *o)
{
    if (!reg->has_row)
        return 1;
    char region[32], id[32], name[256];
    field(reg, REG_REGION, region, sizeof region);
    snprintf(c->county, sizeof c->county, "%.6s", region);
    c->all = lv_ident_set_new(ctx);
    if (!c->all)
        return LV_ENOMEM;
    while (reg->has_row) {
        field(reg, REG_REGION, region, sizeof region);
        if (strncmp(region, c->county, 6) != 0)
            break;
        field(reg, REG_ID, id, sizeof id);
        field(reg, REG_NAME, name, sizeof name);
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 4096;
            char(*ids)[19] = realloc(c->ids, cap * sizeof *ids);
            if (!ids)
                return LV_ENOMEM;
            c->ids = ids;
            c->cap = cap;
        }
        const char *why = NULL;
        lv_ident_set_t *set = o->county_scope ? c->all : village_set(c, region, ctx, true);
        if (!set)
            return LV_ENOMEM;
        int e = lv_ident_set_add(set, id, name, (int64_t)c->n, &why);
        if (e) {
            fprintf(stderr, "levee-bench-ident: registry row %lld: %s\n",
                    (long long)lv_csv_row(reg->csv), why);
            return e;
        }
        snprintf(c->ids[c->n], sizeof c->ids[c->n], "%.18s", id);
        c->n++;
        if (cursor_next(reg))
            return LV_EINVAL;
    }
    return 0;
}

/* ---- tallies ------------------------------------------------------------- */

typedef struct {
    char kind[64];
    long rows, correct, wrong, review, none;
} tally_t;

#define MAX_KINDS 64

typedef struct {
    tally_t clean, corrupted, outsider, outsider_corrupted;
    tally_t kind[MAX_KINDS];
    int n_kinds;
    long dirty;
    long matches;
    double match_s, build_s;
    long persons;
    long shown_wrong, shown_missed;
} stats_t;

static tally_t *kind_tally(stats_t *s, const char *kind)
{
    for (int i = 0; i < s->n_kinds; i++)
        if (strcmp(s->kind[i].kind, kind) == 0)
            return &s->kind[i];
    if (s->n_kinds == MAX_KINDS)
        return NULL;
    tally_t *t = &s->kind[s->n_kinds++];
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    return t;
}

static void count(tally_t *t, const lv_ident_result_t *r, bool right)
{
    if (!t)
        return;
    t->rows++;
    if (r->verdict == LV_IDENT_LINK)
        *(right ? &t->correct : &t->wrong) += 1;
    else if (r->verdict == LV_IDENT_REVIEW)
        t->review++;
    else
        t->none++;
}

static void show(const char *what, const char *feed, const char *record, const char *id,
                 const char *name, const char *truth, const lv_ident_result_t *r,
                 const county_t *c)
{
    printf("  %s %s %s id=\"%s\" name=\"%s\" truth=%s -> %s (%s)", what, feed, record, id, name,
           truth[0] ? truth : "(not in registry)", lv_ident_verdict_name(r->verdict), r->reason);
    for (int i = 0; i < r->n && i < 2; i++)
        printf(" [%s %.2f %s]", c->ids[r->cand[i].tag], r->cand[i].score,
               lv_ident_basis_name(r->cand[i].basis));
    printf("\n");
}

/* Matches one feed's rows of county c; the cursors stop at the next county. */
static int match_rows(const char *feed, cursor_t *rows, cursor_t *truth, county_t *c,
                      lv_ident_t *ctx, const opts_t *o, stats_t *s)
{
    char id[64], name[256], record[64], person[32], region[32], identity[64], dirty[64];
    while (truth->has_row && rows->has_row) {
        field(truth, TRUTH_REGION, region, sizeof region);
        int order = strncmp(region, c->county, 6);
        if (order > 0)
            break;
        if (order < 0) {
            fprintf(stderr, "levee-bench-ident: %s: rows are not grouped by county (%s after %s)\n",
                    feed, region, c->county);
            return LV_EINVAL;
        }
        field(truth, TRUTH_RECORD, record, sizeof record);
        field(truth, TRUTH_PERSON, person, sizeof person);
        field(truth, TRUTH_IDENTITY, identity, sizeof identity);
        field(truth, TRUTH_DIRTY, dirty, sizeof dirty);
        field(rows, FEED_ID, id, sizeof id);
        field(rows, FEED_NAME, name, sizeof name);
        if (dirty[0]) {
            s->dirty++;
        } else {
            lv_ident_set_t *set = o->county_scope ? c->all : village_set(c, region, ctx, false);
            lv_ident_result_t r = {.verdict = LV_IDENT_NONE};
            if (set) {
                lv_ident_query_t q = {name, id, LV_IDENT_UNKNOWN_DAY, 0};
                double t0 = now_s();
                lv_ident_match(set, &q, &o->params, &r);
                s->match_s += now_s() - t0;
                s->matches++;
            }
            bool right = person[0] && r.verdict == LV_IDENT_LINK &&
                         strcmp(c->ids[r.cand[0].tag], person) == 0;
            tally_t *t = !identity[0] ? (person[0] ? &s->clean : &s->outsider)
                                      : (person[0] ? &s->corrupted : &s->outsider_corrupted);
            count(t, &r, right);
            if (identity[0] && person[0])
                count(kind_tally(s, identity), &r, right);
            bool wrong = r.verdict == LV_IDENT_LINK && !right;
            if (wrong && s->shown_wrong < o->show) {
                s->shown_wrong++;
                show("WRONG", feed, record, id, name, person, &r, c);
            } else if (identity[0] && person[0] && !right && s->shown_missed < o->show) {
                s->shown_missed++;
                show("missed", feed, record, id, name, person, &r, c);
            }
        }
        if (cursor_next(truth) || cursor_next(rows))
            return LV_EINVAL;
    }
    return 0;
}

/* ---- report -------------------------------------------------------------- */

static double pct(long a, long b)
{
    return b ? 100.0 * (double)a / (double)b : 0.0;
}

static void print_tally(const char *label, const tally_t *t)
{
    long links = t->correct + t->wrong;
    printf("%-30s %9ld %9ld %7ld %8ld %7ld %9.3f%% %8.3f%% %8.3f%%\n", label, t->rows, t->correct,
           t->wrong, t->review, t->none, links ? pct(t->correct, links) : 100.0,
           pct(t->correct, t->rows), pct(t->review, t->rows));
}

static void report(const stats_t *s, const opts_t *o)
{
    printf("scope %s, threshold %.2f, margin %.2f; %ld registry persons, registry read and sets built in %.2f s\n",
           o->county_scope ? "county" : "village", o->params.link_threshold,
           o->params.min_margin, s->persons, s->build_s);
    printf("%-30s %9s %9s %7s %8s %7s %10s %9s %9s\n", "rows", "n", "correct", "wrong", "review",
           "none", "precision", "recall", "review");
    print_tally("clean, in registry", &s->clean);
    print_tally("corrupted, in registry", &s->corrupted);
    for (int i = 0; i < s->n_kinds; i++) {
        char label[64];
        snprintf(label, sizeof label, "  %s", s->kind[i].kind);
        print_tally(label, &s->kind[i]);
    }
    print_tally("not in registry, clean", &s->outsider);
    print_tally("not in registry, corrupted", &s->outsider_corrupted);
    long corrupted_links = s->corrupted.correct + s->corrupted.wrong +
                           s->outsider_corrupted.wrong;
    long all = s->clean.rows + s->corrupted.rows + s->outsider.rows + s->outsider_corrupted.rows;
    long reviews = s->clean.review + s->corrupted.review + s->outsider.review +
                   s->outsider_corrupted.review;
    printf("corrupted rows: precision %.3f%% (%ld of %ld links right, not-in-registry rows "
           "included), recall %.3f%%, review %.3f%%\n",
           corrupted_links ? pct(s->corrupted.correct, corrupted_links) : 100.0,
           s->corrupted.correct, corrupted_links, pct(s->corrupted.correct, s->corrupted.rows),
           pct(s->corrupted.review + s->outsider_corrupted.review,
               s->corrupted.rows + s->outsider_corrupted.rows));
    printf("all rows: %ld matched, review queue %.3f%%, %ld dirty rows skipped\n", all,
           pct(reviews, all), s->dirty);
    printf("matches/s: %.0f (%ld matches in %.2f s of lv_ident_match)\n",
           s->match_s > 0 ? (double)s->matches / s->match_s : 0.0, s->matches, s->match_s);
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.params = lv_ident_params_default(), .min_precision = -1, .min_recall = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--scope") == 0 && v) {
            if (strcmp(v, "county") != 0 && strcmp(v, "village") != 0)
                return LV_EINVAL;
            o->county_scope = strcmp(v, "county") == 0;
        } else if (strcmp(a, "--threshold") == 0 && v) {
            o->params.link_threshold = strtod(v, NULL);
        } else if (strcmp(a, "--margin") == 0 && v) {
            o->params.min_margin = strtod(v, NULL);
        } else if (strcmp(a, "--show") == 0 && v) {
            o->show = strtol(v, NULL, 10);
        } else if (strcmp(a, "--min-precision") == 0 && v) {
            o->min_precision = strtod(v, NULL);
        } else if (strcmp(a, "--min-recall") == 0 && v) {
            o->min_recall = strtod(v, NULL);
        } else if (a[0] != '-' && !o->dir) {
            o->dir = a;
            continue;
        } else {
            return LV_EINVAL;
        }
        i++;
    }
    return o->dir ? 0 : LV_EINVAL;
}

static int open_all(const opts_t *o, cursor_t *reg, cursor_t *rows, cursor_t *truth)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/registry.csv", o->dir);
    int e = cursor_open(reg, path, REG_COLS, 4);
    if (!e)
        e = cursor_next(reg);
    for (int f = 0; !e && f < N_FEEDS; f++) {
        snprintf(path, sizeof path, "%s/%s.csv", o->dir, FEEDS[f]);
        e = cursor_open(&rows[f], path, FEED_COLS, 2);
        if (!e)
            e = cursor_next(&rows[f]);
        snprintf(path, sizeof path, "%s/truth/%s.csv", o->dir, FEEDS[f]);
        if (!e)
            e = cursor_open(&truth[f], path, TRUTH_COLS, 5);
        if (!e)
            e = cursor_next(&truth[f]);
    }
    return e;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse_args(argc, argv, &o)) {
        fprintf(stderr, "usage: levee-bench-ident DIR [--scope village|county] [--threshold T] "
                        "[--margin M] [--show N] [--min-precision P] [--min-recall R]\n");
        return 2;
    }
    const char *why = NULL;
    lv_ident_t *ctx = lv_ident_new(&why);
    if (!ctx) {
        fprintf(stderr, "levee-bench-ident: %s\n", why);
        return 1;
    }
    cursor_t reg = {0}, rows[N_FEEDS], truth[N_FEEDS];
    memset(rows, 0, sizeof rows);
    memset(truth, 0, sizeof truth);
    stats_t *s = calloc(1, sizeof *s);
    county_t county = {0};
    int e = s ? open_all(&o, &reg, rows, truth) : LV_ENOMEM;
    while (!e) {
        double t0 = now_s();
        e = load_county(&reg, &county, ctx, &o);
        s->build_s += now_s() - t0;
        if (e)
            break;
        s->persons += (long)county.n;
        for (int f = 0; !e && f < N_FEEDS; f++)
            e = match_rows(FEEDS[f], &rows[f], &truth[f], &county, ctx, &o, s);
        county_clear(&county);
    }
    int status = e < 0 ? 1 : 0;
    for (int f = 0; !status && f < N_FEEDS; f++)
        if (rows[f].has_row || truth[f].has_row) {
            fprintf(stderr, "levee-bench-ident: %s: rows left over (feed and truth out of step, "
                            "or a county with no registry person)\n", FEEDS[f]);
            status = 1;
        }
    if (!status) {
        report(s, &o);
        long links = s->corrupted.correct + s->corrupted.wrong + s->outsider_corrupted.wrong;
        double precision = links ? (double)s->corrupted.correct / (double)links : 1.0;
        double recall = s->corrupted.rows ? (double)s->corrupted.correct / s->corrupted.rows : 1.0;
        if (s->clean.correct != s->clean.rows) {
            fprintf(stderr, "levee-bench-ident: %ld clean rows not linked to their person\n",
                    s->clean.rows - s->clean.correct);
            status = 1;
        }
        if (o.min_precision >= 0 && precision < o.min_precision) {
            fprintf(stderr, "levee-bench-ident: precision %.5f below %.5f\n", precision,
                    o.min_precision);
            status = 1;
        }
        if (o.min_recall >= 0 && recall < o.min_recall) {
            fprintf(stderr, "levee-bench-ident: recall %.5f below %.5f\n", recall, o.min_recall);
            status = 1;
        }
    }
    cursor_close(&reg);
    for (int f = 0; f < N_FEEDS; f++) {
        cursor_close(&rows[f]);
        cursor_close(&truth[f]);
    }
    county_clear(&county);
    free(county.ids);
    free(county.villages);
    free(s);
    lv_ident_destroy(&ctx);
    return status;
}
