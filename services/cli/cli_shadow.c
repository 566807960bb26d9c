/* levee shadow: what a draft policy would change before it is switched on.
 * Every household's stored facts (household_state: income, members, rigid;
 * household: type) are read in one read-only transaction through a single
 * cursor, judged by the current policy's version and the draft's version in
 * effect at --at with the same code matching uses (lv_rules_decide), and
 * every household that would enter or leave the scope, or change category
 * or grade, is reported with the rules and values behind both verdicts.
 * Nothing is written. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_table.h"
#include "lv_err.h"
#include "lv_pg.h"
#include "lv_rules.h"
#include "lv_time.h"

#define FETCH_ROWS "20000"
#define EXPLAIN_BYTES 1024

/* One household whose verdict would change. Strings live in the pool. */
typedef struct {
    size_t hid, region, htype; /* offsets into the pool */
    lv_facts_t facts;
    lv_decision_t cur, draft;
    unsigned change;
} change_t;

typedef struct {
    const lv_policy_version_t *cur, *draft;
    change_t *changes;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
    long households, unjudged, skipped;
    long counts[4]; /* enter, leave, category, grade */
} shadow_t;

static bool pool_add(shadow_t *s, const char *str, size_t *off)
{
    size_t len = strlen(str) + 1;
    if (s->pool_len + len > s->pool_cap) {
        size_t cap = s->pool_cap ? s->pool_cap * 2 : 1 << 16;
        while (cap < s->pool_len + len)
            cap *= 2;
        char *p = realloc(s->pool, cap);
        if (!p)
            return false;
        s->pool = p;
        s->pool_cap = cap;
    }
    memcpy(s->pool + s->pool_len, str, len);
    *off = s->pool_len;
    s->pool_len += len;
    return true;
}

static const char *str(const shadow_t *s, size_t off)
{
    return s->pool + off;
}

/* Judges one household under both versions; keeps it when anything changes. */
static int judge(shadow_t *s, const char *hid, const char *region, const char *htype,
                 const lv_facts_t *f)
{
    s->households++;
    lv_decision_t cur, draft;
    if (lv_rules_decide(s->cur, f, &cur) || lv_rules_decide(s->draft, f, &draft)) {
        s->unjudged++; /* facts beyond the limits the rules were checked for */
        return 0;
    }
    unsigned c = lv_rules_diff(&cur, &draft);
    if (!c)
        return 0;
    for (int b = 0; b < 4; b++)
        s->counts[b] += (c >> b) & 1u;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        change_t *p = realloc(s->changes, cap * sizeof *p);
        if (!p)
            return LV_ENOMEM;
        s->changes = p;
        s->cap = cap;
    }
    change_t *ch = &s->changes[s->n];
    if (!pool_add(s, hid, &ch->hid) || !pool_add(s, region, &ch->region) ||
        !pool_add(s, htype, &ch->htype))
        return LV_ENOMEM;
    ch->facts = *f;
    ch->cur = cur;
    ch->draft = draft;
    ch->change = c;
    s->n++;
    return 0;
}

/* Reads every household's facts through one cursor in a read-only
 * transaction (a consistent snapshot; nothing can be written). */
static int scan(PGconn *pg, const char *region, shadow_t *s)
{
    int e = lv_pg_cmd(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
    if (e)
        return e;
    /* The whole result is read: plan for all rows (a hash join), not the first few. */
    const char *p[1] = {region};
    if ((e = lv_pg_cmd(pg, "SET LOCAL cursor_tuple_fraction = 1.0", 0, NULL)) ||
        (e = lv_pg_cmd(pg,
                       "DECLARE shadow_scan NO SCROLL CURSOR FOR "
                       "SELECT s.household_id, h.region_code, h.household_type, s.income_fen, "
                       "  s.members, s.rigid_fen, s.house_damage, s.house_collapsed "
                       "FROM household_state s JOIN household h ON h.household_id = s.household_id "
                       "WHERE h.region_code LIKE $1 || '%'",
                       1, p))) {
        lv_pg_rollback(pg);
        return e;
    }
    for (;;) {
        PGresult *res;
        if ((e = lv_pg_query(pg, &res, "FETCH FORWARD " FETCH_ROWS " FROM shadow_scan", 0, NULL)))
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && !e; i++) {
            lv_facts_t f = {.income_fen = strtoll(PQgetvalue(res, i, 3), NULL, 10),
                            .members = (int)strtol(PQgetvalue(res, i, 4), NULL, 10),
                            .rigid_fen = strtoll(PQgetvalue(res, i, 5), NULL, 10),
                            .exited = !strcmp(PQgetvalue(res, i, 2), "脱贫户"),
                            .house_collapsed = PQgetvalue(res, i, 7)[0] == 't'};
            if (lv_house_damage_parse(PQgetvalue(res, i, 6), &f.house_damage))
                f.house_damage = LV_HOUSE_UNKNOWN; /* no disaster record says */
            if (f.members < 1) {
                s->skipped++;
                continue;
            }
            e = judge(s, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), &f);
        }
        PQclear(res);
        if (e || rows == 0)
            break;
    }
    lv_pg_rollback(pg); /* read only: there is nothing to commit */
    return e;
}

/* qsort has no context argument in C11: the pool the offsets point into. */
static const char *s_sort_pool;

static int cmp_change(const void *a, const void *b)
{
    const change_t *x = a, *y = b;
    return strcmp(s_sort_pool + x->hid, s_sort_pool + y->hid);
}

/* ---- output ------------------------------------------------------------- */

static const char *const s_change_names[4] = {"enter", "leave", "category", "grade"};

/* "enter", "category+grade", ... */
static void change_text(unsigned c, char *out, size_t n)
{
    size_t at = 0;
    out[0] = '\0';
    for (int b = 0; b < 4; b++)
        if (c & (1u << b))
            at += (size_t)snprintf(out + at, at < n ? n - at : 0, "%s%s", at ? "+" : "",
                                   s_change_names[b]);
}

static const char *grade_or_dash(lv_grade_t g)
{
    const char *s = lv_grade_name(g);
    return s ? s : "-";
}

static json_t *verdict_json(const lv_policy_version_t *v, const lv_facts_t *f,
                            const lv_decision_t *d)
{
    char ex[EXPLAIN_BYTES];
    lv_rules_explain(v, f, d, ex, sizeof ex);
    return json_pack("{s:b, s:s?, s:s?, s:s}", "in_scope", d->in_scope, "category", d->category,
                     "grade", lv_grade_name(d->grade), "explain", ex);
}

static json_t *change_json(const shadow_t *s, const change_t *c)
{
    json_t *kinds = json_array();
    for (int b = 0; b < 4; b++)
        if (c->change & (1u << b))
            json_array_append_new(kinds, json_string(s_change_names[b]));
    return json_pack("{s:s, s:s, s:s, s:I, s:i, s:I, s:o, s:o, s:o}", "household_id",
                     str(s, c->hid), "region_code", str(s, c->region), "household_type",
                     str(s, c->htype), "income_fen", (json_int_t)c->facts.income_fen, "members",
                     c->facts.members, "rigid_fen", (json_int_t)c->facts.rigid_fen, "change",
                     kinds, "current", verdict_json(s->cur, &c->facts, &c->cur), "draft",
                     verdict_json(s->draft, &c->facts, &c->draft));
}

/* One JSON document, written as it goes: the head, then "changes" one
 * object a line, so a million changes never sit in memory as one tree. */
static int print_json(const shadow_t *s, const char *at, const char *region,
                      const char *cur_file, const char *draft_file)
{
    json_t *head = json_pack(
        "{s:s, s:s?, s:{s:s, s:s}, s:{s:s, s:s}, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}}", "at",
        at, "region", *region ? region : NULL, "current", "file", cur_file, "version",
        s->cur->version, "draft", "file", draft_file, "version", s->draft->version, "households",
        (json_int_t)s->households, "not_judged", (json_int_t)s->unjudged, "no_members",
        (json_int_t)s->skipped, "summary", "enter", (json_int_t)s->counts[0], "leave",
        (json_int_t)s->counts[1], "category", (json_int_t)s->counts[2], "grade",
        (json_int_t)s->counts[3]);
    char *text = head ? json_dumps(head, JSON_INDENT(2)) : NULL;
    json_decref(head);
    char *close = text ? strrchr(text, '}') : NULL;
    if (!close)
        return LV_ENOMEM;
    /* "{\n  ...\n}": everything but the last newline and brace, then the list. */
    fwrite(text, 1, (size_t)(close - text) - 1, stdout);
    free(text);
    fputs(",\n  \"changes\": [", stdout);
    for (size_t i = 0; i < s->n; i++) {
        json_t *c = change_json(s, &s->changes[i]);
        char *line = c ? json_dumps(c, JSON_COMPACT) : NULL;
        json_decref(c);
        if (!line)
            return LV_ENOMEM;
        printf("%s\n    %s", i ? "," : "", line);
        free(line);
    }
    fputs("\n  ]\n}\n", stdout);
    fflush(stdout);
    return 0;
}

/* One CSV row from fields; quoted where RFC 4180 needs it. */
static void csv_row(const char *const *fields, int n)
{
    for (int i = 0; i < n; i++) {
        const char *f = fields[i] ? fields[i] : "";
        if (i)
            putchar(',');
        if (!strpbrk(f, ",\"\r\n")) {
            fputs(f, stdout);
            continue;
        }
        putchar('"');
        for (; *f; f++) {
            if (*f == '"')
                putchar('"');
            putchar(*f);
        }
        putchar('"');
    }
    fputs("\r\n", stdout);
}

static void print_csv(const shadow_t *s)
{
    fputs("\xEF\xBB\xBF", stdout); /* a BOM, so Excel reads the Chinese as UTF-8 */
    static const char *const header[] = {
        "户编号 household_id", "区划 region_code", "户类型 household_type", "变化 change",
        "收入(分) income_fen", "人数 members", "刚性支出(分) rigid_fen",
        "现行纳入 in_scope_current", "草案纳入 in_scope_draft", "现行类别 category_current",
        "草案类别 category_draft", "现行等级 grade_current", "草案等级 grade_draft",
        "现行依据 explain_current", "草案依据 explain_draft"};
    csv_row(header, 15);
    for (size_t i = 0; i < s->n; i++) {
        const change_t *c = &s->changes[i];
        char kinds[40], inc[24], mem[16], rig[24], exc[EXPLAIN_BYTES], exd[EXPLAIN_BYTES];
        change_text(c->change, kinds, sizeof kinds);
        snprintf(inc, sizeof inc, "%lld", (long long)c->facts.income_fen);
        snprintf(mem, sizeof mem, "%d", c->facts.members);
        snprintf(rig, sizeof rig, "%lld", (long long)c->facts.rigid_fen);
        lv_rules_explain(s->cur, &c->facts, &c->cur, exc, sizeof exc);
        lv_rules_explain(s->draft, &c->facts, &c->draft, exd, sizeof exd);
        const char *row[] = {str(s, c->hid),
                             str(s, c->region),
                             str(s, c->htype),
                             kinds,
                             inc,
                             mem,
                             rig,
                             c->cur.in_scope ? "true" : "false",
                             c->draft.in_scope ? "true" : "false",
                             c->cur.category,
                             c->draft.category,
                             lv_grade_name(c->cur.grade),
                             lv_grade_name(c->draft.grade),
                             exc,
                             exd};
        csv_row(row, 15);
    }
}

static void print_text(const shadow_t *s, const char *at, const char *region,
                       const char *cur_file, const char *draft_file)
{
    char n1[32], n2[32];
    printf("影子运行 (shadow run), 不改变任何数据 (nothing is changed)\n");
    printf("  现行 current  %s  版本 version %s\n", cur_file, s->cur->version);
    printf("  草案 draft    %s  版本 version %s\n", draft_file, s->draft->version);
    printf("  生效日 at     %s%s%s\n", at, *region ? "  区域 region " : "", region);
    cli_count(s->households, n1, sizeof n1);
    cli_count(s->unjudged + s->skipped, n2, sizeof n2);
    printf("  评估户数 households %s, 未能评估 not judged %s\n\n", n1, n2);
    static const char *const labels[4] = {"新纳入 enter scope", "退出 leave scope",
                                          "类别变化 category", "等级变化 grade"};
    for (int b = 0; b < 4; b++) {
        cli_count(s->counts[b], n1, sizeof n1);
        fputs("  ", stdout);
        cli_put_padded(stdout, labels[b], 24, false);
        cli_put_padded(stdout, n1, 10, true);
        putchar('\n');
    }
    if (!s->n) {
        printf("\n  (无变化 no change)\n");
        return;
    }
    printf("\n");
    for (size_t i = 0; i < s->n; i++) {
        const change_t *c = &s->changes[i];
        char kinds[40], inc[32], rig[32], ex[EXPLAIN_BYTES];
        change_text(c->change, kinds, sizeof kinds);
        cli_yuan(c->facts.income_fen, inc, sizeof inc);
        cli_yuan(c->facts.rigid_fen, rig, sizeof rig);
        printf("%s  %s  %s  %s: %s/%s → %s/%s  (收入 %s 元, %d 人, 刚性支出 %s 元)\n",
               str(s, c->hid), str(s, c->region), str(s, c->htype), kinds,
               c->cur.in_scope ? c->cur.category ? c->cur.category : "纳入" : "不在范围",
               grade_or_dash(c->cur.grade),
               c->draft.in_scope ? c->draft.category ? c->draft.category : "纳入" : "不在范围",
               grade_or_dash(c->draft.grade), inc, c->facts.members, rig);
        lv_rules_explain(s->cur, &c->facts, &c->cur, ex, sizeof ex);
        printf("    现行 current: %s\n", ex);
        lv_rules_explain(s->draft, &c->facts, &c->draft, ex, sizeof ex);
        printf("    草案 draft:   %s\n", ex);
    }
}

/* ---- the command ------------------------------------------------------- */

static int load_version(cli_t *cli, const char *path, int64_t at_ms, const char *at,
                        lv_policy_t **p, const lv_policy_version_t **v)
{
    char err[1024];
    *p = lv_policy_load(path, err, sizeof err);
    if (!*p)
        return cli_fail(cli, CLI_EXIT_FAIL, "%s", err);
    *v = lv_policy_at(*p, at_ms);
    if (!*v)
        return cli_fail(cli, CLI_EXIT_FAIL, "%s: %s 没有生效的政策版本 (no version in effect on %s)",
                        path, at, at);
    return 0;
}

int cli_cmd_shadow(cli_t *cli, const cli_args_t *a)
{
    const char *draft_file = a->pos[0], *cur_file = cli->cfg.policy_path;
    const char *region = cli_opt(a, "--region"), *at_opt = cli_opt(a, "--at");
    bool csv = cli_opt(a, "--csv") != NULL;
    if (csv && cli->json)
        return cli_fail(cli, CLI_EXIT_USAGE, "--csv 与 --json 只能选一个 (choose --csv or --json)");
    if (region && (!*region || strlen(region) > 12 || strspn(region, "0123456789") != strlen(region)))
        return cli_fail(cli, CLI_EXIT_USAGE,
                        "--region 须为 1 到 12 位数字前缀 (a prefix of 1 to 12 digits): %s", region);
    int64_t at_ms = lv_now_ms();
    const char *why = NULL;
    if (at_opt && lv_date_parse(at_opt, strlen(at_opt), &at_ms, &why))
        return cli_fail(cli, CLI_EXIT_USAGE, "--at %s: %s (YYYY-MM-DD)", at_opt, why);
    char at[11];
    lv_date_format(at_ms, at);

    lv_policy_t *cur_p = NULL, *draft_p = NULL;
    shadow_t s = {0};
    int rc = load_version(cli, cur_file, at_ms, at, &cur_p, &s.cur);
    if (!rc)
        rc = load_version(cli, draft_file, at_ms, at, &draft_p, &s.draft);
    PGconn *pg = rc ? NULL : cli_pg(cli);
    if (!rc && !pg)
        rc = CLI_EXIT_DOWN;
    if (!rc) {
        int e = scan(pg, region ? region : "", &s);
        if (e == LV_ENOMEM)
            rc = cli_fail(cli, CLI_EXIT_FAIL, "内存不足 (out of memory)");
        else if (e)
            rc = cli_pg_fail(cli, e);
    }
    if (!rc) {
        s_sort_pool = s.pool;
        if (s.n)
            qsort(s.changes, s.n, sizeof *s.changes, cmp_change);
        if (csv) {
            print_csv(&s);
        } else if (cli->json) {
            if (print_json(&s, at, region ? region : "", cur_file, draft_file))
                rc = cli_fail(cli, CLI_EXIT_FAIL, "内存不足 (out of memory)");
        } else {
            print_text(&s, at, region ? region : "", cur_file, draft_file);
        }
    }
    free(s.changes);
    free(s.pool);
    lv_policy_destroy(&cur_p);
    lv_policy_destroy(&draft_p);
    return rc;
}
