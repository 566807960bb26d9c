#define _POSIX_C_SOURCE 200809L
#include "feeds.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_money.h"
#include "lv_region.h"
#include "lv_time.h"

enum { R_HOUSEHOLD, R_REGION, R_TYPE, R_EXIT, R_ID, R_NAME, R_REL, R_DIS, R_CHRONIC, R_LABOUR,
       R_PHONE, R_INCOME, R_NCOLS };
static const lv_csv_col_t registry_cols[R_NCOLS] = {
    [R_HOUSEHOLD] = {"household_id", "户编号", true},
    [R_REGION] = {"region_code", "行政区划代码", true},
    [R_TYPE] = {"household_type", "户类型", true},
    [R_EXIT] = {"exit_year", "脱贫年度", false},
    [R_ID] = {"id_number", "身份证号", true},
    [R_NAME] = {"name", "姓名", true},
    [R_REL] = {"relation", "与户主关系", true},
    [R_DIS] = {"disability_grade", "残疾等级", false},
    [R_CHRONIC] = {"chronic_illness", "大病慢病", false},
    [R_LABOUR] = {"labour", "劳动能力", false},
    [R_PHONE] = {"phone", "联系电话", false},
    [R_INCOME] = {"annual_net_income", "家庭年纯收入", false},
};

enum { M_RECORD, M_ID, M_NAME, M_DATE, M_TOTAL, M_COMPLIANT, M_REIMB, M_SELF, M_NCOLS };
static const lv_csv_col_t medical_cols[M_NCOLS] = {
    [M_RECORD] = {"record_id", "结算单号", true},
    [M_ID] = {"id_number", "身份证号", true},
    [M_NAME] = {"name", "姓名", true},
    [M_DATE] = {"settle_date", "结算日期", true},
    [M_TOTAL] = {"total_cost", "总费用", true},
    [M_COMPLIANT] = {"compliant_cost", "合规费用", false},
    [M_REIMB] = {"reimbursed", "报销金额", true},
    [M_SELF] = {"self_paid", "个人自付", true},
};

static const ing_feed_t feeds[] = {
    {"registry", registry_cols, R_NCOLS},
    {"medical", medical_cols, M_NCOLS},
};

const ing_feed_t *ing_feed_find(const char *source)
{
    for (size_t i = 0; i < sizeof feeds / sizeof feeds[0]; i++)
        if (!strcmp(feeds[i].source, source))
            return &feeds[i];
    return NULL;
}

#define MAX_TEXT 200

typedef struct {
    const ing_feed_t *feed;
    const lv_csv_t *csv;
    const int *map;
    lv_arena_t *arena;
    const char **column;
    char *reason;
    size_t reasonlen;
} parse_t;

static int bad(parse_t *p, int col, const char *why)
{
    *p->column = p->feed->cols[col].name_en;
    snprintf(p->reason, p->reasonlen, "%s", why);
    return LV_EINVAL;
}

/* The trimmed field, or "" when the column is absent. */
static const char *field(parse_t *p, int col, size_t *len)
{
    if (p->map[col] < 0) {
        *len = 0;
        return "";
    }
    const char *s = lv_csv_field(p->csv, (size_t)p->map[col], len);
    while (*len && (*s == ' ' || *s == '\t')) {
        s++;
        (*len)--;
    }
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        (*len)--;
    return s;
}

static int text(parse_t *p, int col, char **out)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len && p->feed->cols[col].required)
        return bad(p, col, "必填项为空 (required value missing)");
    if (len > MAX_TEXT)
        return bad(p, col, "内容过长 (value too long)");
    char *d = lv_arena_alloc(p->arena, len + 1);
    if (!d)
        return LV_ENOMEM;
    memcpy(d, s, len);
    d[len] = '\0';
    *out = d;
    return 0;
}

static int money(parse_t *p, int col, int64_t *fen)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len) {
        if (p->feed->cols[col].required)
            return bad(p, col, "必填项为空 (required value missing)");
        *fen = -1;
        return 0;
    }
    const char *why;
    if (lv_money_parse(s, len, fen, &why))
        return bad(p, col, why);
    return 0;
}

static int idnum(parse_t *p, int col, Levee__Record *r)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len)
        return bad(p, col, "必填项为空 (required value missing)");
    lv_idnum_t id;
    const char *why;
    if (lv_idnum_parse(s, len, &id, &why))
        return bad(p, col, why);
    r->id_number = lv_arena_alloc(p->arena, sizeof id.s);
    if (!r->id_number)
        return LV_ENOMEM;
    memcpy(r->id_number, id.s, sizeof id.s);
    return 0;
}

static int small_int(parse_t *p, int col, int lo, int hi, int dflt, int *out)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len) {
        *out = dflt;
        return 0;
    }
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 6)
            return bad(p, col, "不是有效的整数 (not a valid integer)");
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return bad(p, col, "数值超出范围 (value out of range)");
    *out = v;
    return 0;
}

static bool is(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && !memcmp(s, word, len);
}

static int parse_registry(parse_t *p, ing_row_t *row)
{
    Levee__Record *r = &row->rec;
    int e;
    if ((e = text(p, R_HOUSEHOLD, &r->household_id)))
        return e;
    size_t len;
    const char *s = field(p, R_REGION, &len);
    char region[13];
    const char *why;
    if (!len)
        return bad(p, R_REGION, "必填项为空 (required value missing)");
    if (lv_region_parse(s, len, region, &why))
        return bad(p, R_REGION, why);
    r->region_code = lv_arena_alloc(p->arena, 13);
    if (!r->region_code)
        return LV_ENOMEM;
    memcpy(r->region_code, region, 13);
    lv_region_county(region, row->county);
    s = field(p, R_TYPE, &len);
    if (!is(s, len, "脱贫户") && !is(s, len, "一般农户"))
        return bad(p, R_TYPE, "户类型应为 脱贫户 或 一般农户 (must be 脱贫户 or 一般农户)");
    if ((e = text(p, R_TYPE, &r->household_type)))
        return e;
    int exit_year;
    if ((e = small_int(p, R_EXIT, 1980, 2100, 0, &exit_year)))
        return e;
    r->exit_year = exit_year;
    if ((e = idnum(p, R_ID, r)) || (e = text(p, R_NAME, &r->name)) || (e = text(p, R_REL, &r->relation)))
        return e;
    int dis;
    if ((e = small_int(p, R_DIS, 0, 4, 0, &dis)))
        return e;
    r->disability_grade = dis;
    s = field(p, R_CHRONIC, &len);
    if (len && !is(s, len, "是") && !is(s, len, "否"))
        return bad(p, R_CHRONIC, "应为 是 或 否 (must be 是 or 否)");
    r->chronic_illness = is(s, len, "是");
    s = field(p, R_LABOUR, &len);
    if (len && !is(s, len, "有") && !is(s, len, "弱") && !is(s, len, "无"))
        return bad(p, R_LABOUR, "应为 有、弱 或 无 (must be 有, 弱 or 无)");
    if ((e = text(p, R_LABOUR, &r->labour)) || (e = text(p, R_PHONE, &r->phone)))
        return e;
    if ((e = money(p, R_INCOME, &r->annual_net_income_fen)))
        return e;
    row->amount_fen = r->annual_net_income_fen;

    /* The key is household + person; a changed row is a new revision. */
    size_t klen = strlen(r->household_id) + 20;
    r->record_id = lv_arena_alloc(p->arena, klen);
    if (!r->record_id)
        return LV_ENOMEM;
    snprintf(r->record_id, klen, "%s:%s", r->household_id, r->id_number);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 8);
    const char *parts[] = {r->region_code, r->household_type, r->name, r->relation, r->labour,
                           r->phone};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        crypto_generichash_update(&st, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    int64_t nums[] = {r->exit_year, r->disability_grade, r->chronic_illness,
                      r->annual_net_income_fen};
    crypto_generichash_update(&st, (const unsigned char *)nums, sizeof nums);
    unsigned char h[8];
    crypto_generichash_final(&st, h, sizeof h);
    for (int i = 0; i < 8; i++)
        snprintf(row->rev + 2 * i, 3, "%02x", h[i]);
    return 0;
}

static int parse_medical(parse_t *p, ing_row_t *row)
{
    Levee__Record *r = &row->rec;
    int e;
    if ((e = text(p, M_RECORD, &r->record_id)) || (e = idnum(p, M_ID, r)) ||
        (e = text(p, M_NAME, &r->name)))
        return e;
    size_t len;
    const char *s = field(p, M_DATE, &len);
    const char *why;
    if (!len)
        return bad(p, M_DATE, "必填项为空 (required value missing)");
    if (lv_date_parse(s, len, &r->event_ms, &why))
        return bad(p, M_DATE, why);
    if ((e = money(p, M_TOTAL, &r->total_cost_fen)) ||
        (e = money(p, M_COMPLIANT, &r->compliant_cost_fen)) ||
        (e = money(p, M_REIMB, &r->reimbursed_fen)) || (e = money(p, M_SELF, &r->self_paid_fen)))
        return e;
    if (r->compliant_cost_fen > r->total_cost_fen)
        return bad(p, M_COMPLIANT, "合规费用大于总费用 (compliant cost above total cost)");
    if (r->reimbursed_fen > r->total_cost_fen)
        return bad(p, M_REIMB, "报销金额大于总费用 (reimbursed above total cost)");
    if (r->self_paid_fen > r->total_cost_fen)
        return bad(p, M_SELF, "个人自付大于总费用 (self-paid above total cost)");
    memcpy(row->county, r->id_number, 6);
    row->county[6] = '\0';
    row->rev[0] = '\0';
    row->amount_fen = r->self_paid_fen;
    return 0;
}

int ing_feed_parse(const ing_feed_t *feed, const lv_csv_t *csv, const int *map, lv_arena_t *arena,
                   ing_row_t *row, const char **column, char *reason, size_t reasonlen)
{
    parse_t p = {feed, csv, map, arena, column, reason, reasonlen};
    levee__record__init(&row->rec);
    row->rec.annual_net_income_fen = -1;
    row->rec.compliant_cost_fen = -1;
    row->rec.source = (char *)feed->source;
    row->rec.row_no = lv_csv_row(csv);
    row->rec.read_ms = lv_now_ms();
    if (!strcmp(feed->source, "registry"))
        return parse_registry(&p, row);
    return parse_medical(&p, row);
}
