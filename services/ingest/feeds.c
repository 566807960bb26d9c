/* The eight feeds of SPEC.md: a column table and a parse function each, and
 * for the six kept in a typed table (civil ... visit) the table's columns as
 * offsets into the Record, so one generic statement stores any of them. */
#define _POSIX_C_SOURCE 200809L
#include "feeds.h"

#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_region.h"
#include "lv_time.h"

#define MAX_TEXT 200  /* bytes of a name, a type, an id */
#define MAX_NOTE 2000 /* bytes of a description or a note */
#define ARR_MAX ((size_t)256 << 20)

/* ---- columns ------------------------------------------------------------ */

/* Optional columns of the person-keyed feeds that help identity matching
 * when a row's ID number is missing or broken: where to search (a village or
 * county code) and the person's birth date and gender. */
#define REGION_COL {"region_code", "行政区划代码", false}
#define BIRTH_COL {"birth_date", "出生日期", false}
#define GENDER_COL {"gender", "性别", false}

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

enum { M_RECORD, M_ID, M_NAME, M_DATE, M_TOTAL, M_COMPLIANT, M_REIMB, M_SELF, M_REGION, M_BIRTH,
       M_GENDER, M_NCOLS };
static const lv_csv_col_t medical_cols[M_NCOLS] = {
    [M_RECORD] = {"record_id", "结算单号", true},
    [M_ID] = {"id_number", "身份证号", true},
    [M_NAME] = {"name", "姓名", true},
    [M_DATE] = {"settle_date", "结算日期", true},
    [M_TOTAL] = {"total_cost", "总费用", true},
    [M_COMPLIANT] = {"compliant_cost", "合规费用", false},
    [M_REIMB] = {"reimbursed", "报销金额", true},
    [M_SELF] = {"self_paid", "个人自付", true},
    [M_REGION] = REGION_COL, [M_BIRTH] = BIRTH_COL, [M_GENDER] = GENDER_COL,
};

enum { C_RECORD, C_ID, C_NAME, C_DATE, C_KIND, C_AMOUNT, C_DIS, C_REGION, C_BIRTH, C_GENDER,
       C_NCOLS };
static const lv_csv_col_t civil_cols[C_NCOLS] = {
    [C_RECORD] = {"record_id", "记录编号", true},
    [C_ID] = {"id_number", "身份证号", true},
    [C_NAME] = {"name", "姓名", true},
    [C_DATE] = {"event_date", "日期", true},
    [C_KIND] = {"kind", "类别", true},
    [C_AMOUNT] = {"amount", "金额", false},
    [C_DIS] = {"disability_grade", "残疾等级", false},
    [C_REGION] = REGION_COL, [C_BIRTH] = BIRTH_COL, [C_GENDER] = GENDER_COL,
};

enum { D_RECORD, D_ID, D_DATE, D_TYPE, D_LOSS, D_HOUSE, D_REGION, D_NCOLS };
static const lv_csv_col_t disaster_cols[D_NCOLS] = {
    [D_RECORD] = {"record_id", "记录编号", true},
    [D_ID] = {"id_number", "户主身份证号|身份证号", true},
    [D_DATE] = {"event_date", "日期|灾害日期", true},
    [D_TYPE] = {"disaster_type", "灾害类型", true},
    [D_LOSS] = {"loss_amount", "损失金额", true},
    [D_HOUSE] = {"house_damage", "房屋损毁", false},
    [D_REGION] = REGION_COL,
};

enum { E_RECORD, E_ID, E_NAME, E_DATE, E_STAGE, E_COST, E_AID, E_SCHOOL, E_REGION, E_BIRTH,
       E_GENDER, E_NCOLS };
static const lv_csv_col_t education_cols[E_NCOLS] = {
    [E_RECORD] = {"record_id", "记录编号", true},
    [E_ID] = {"id_number", "学生身份证号|身份证号", true},
    [E_NAME] = {"name", "姓名|学生姓名", true},
    [E_DATE] = {"event_date", "日期", true},
    [E_STAGE] = {"stage", "学段", true},
    [E_COST] = {"cost", "应缴费用", true},
    [E_AID] = {"aid", "已获资助", false},
    [E_SCHOOL] = {"school", "学校", false},
    [E_REGION] = REGION_COL, [E_BIRTH] = BIRTH_COL, [E_GENDER] = GENDER_COL,
};

enum { I_RECORD, I_ID, I_PERIOD, I_AMOUNT, I_KIND, I_REGION, I_NCOLS };
static const lv_csv_col_t income_cols[I_NCOLS] = {
    [I_RECORD] = {"record_id", "记录编号", true},
    [I_ID] = {"id_number", "身份证号", true},
    [I_PERIOD] = {"period", "所属期|收入月份", true},
    [I_AMOUNT] = {"amount", "收入|收入金额", true},
    [I_KIND] = {"kind", "收入类型|类别", false},
    [I_REGION] = REGION_COL,
};

enum { S_RECORD, S_ID, S_NAME, S_DATE, S_REASON, S_AMOUNT, S_DESC, S_REGION, S_BIRTH, S_GENDER,
       S_NCOLS };
static const lv_csv_col_t declaration_cols[S_NCOLS] = {
    [S_RECORD] = {"record_id", "记录编号|申报编号", true},
    [S_ID] = {"id_number", "身份证号", true},
    [S_NAME] = {"name", "姓名", true},
    [S_DATE] = {"event_date", "日期|申报日期", true},
    [S_REASON] = {"reason", "风险类型", true},
    [S_AMOUNT] = {"amount", "金额", false},
    [S_DESC] = {"description", "情况说明", false},
    [S_REGION] = REGION_COL, [S_BIRTH] = BIRTH_COL, [S_GENDER] = GENDER_COL,
};

enum { V_RECORD, V_HOUSEHOLD, V_DATE, V_VISITOR, V_RISK, V_ESTIMATE, V_NOTE, V_NCOLS };
static const lv_csv_col_t visit_cols[V_NCOLS] = {
    [V_RECORD] = {"record_id", "记录编号|走访编号", true},
    [V_HOUSEHOLD] = {"household_id", "户编号", true},
    [V_DATE] = {"visit_date", "走访日期", true},
    [V_VISITOR] = {"visitor", "走访人", true},
    [V_RISK] = {"risk_factor", "风险类型", false},
    [V_ESTIMATE] = {"income_estimate", "家庭年纯收入估算", false},
    [V_NOTE] = {"note", "备注", false},
};

/* ---- typed tables ------------------------------------------------------- */

typedef enum {
    T_TEXT,     /* char * */
    T_OPT_TEXT, /* char *, "" stored as NULL */
    T_I64,      /* int64_t */
    T_OPT_I64,  /* int64_t, negative stored as NULL */
    T_OPT_I32,  /* int32_t, negative stored as NULL */
    T_MONTH,    /* char * "YYYY-MM", stored as the month's first day */
} ftype_t;

typedef struct {
    const char *column;
    ftype_t type;
    size_t offset; /* into Levee__Record */
} tcol_t;

#define F(col, type, field) {col, type, offsetof(Levee__Record, field)}
#define TCOLS_MAX 10

static const tcol_t civil_t[] = {
    F("record_id", T_TEXT, record_id),   F("id_number", T_OPT_TEXT, id_number),
    F("name", T_TEXT, name),             F("event_ms", T_I64, event_ms),
    F("kind", T_TEXT, kind),             F("amount_fen", T_OPT_I64, amount_fen),
    F("disability_grade", T_OPT_I32, disability_grade),
};
static const tcol_t disaster_t[] = {
    F("record_id", T_TEXT, record_id),         F("id_number", T_OPT_TEXT, id_number),
    F("event_ms", T_I64, event_ms),            F("disaster_type", T_TEXT, disaster_type),
    F("loss_amount_fen", T_I64, loss_amount_fen), F("house_damage", T_OPT_TEXT, house_damage),
};
static const tcol_t education_t[] = {
    F("record_id", T_TEXT, record_id), F("id_number", T_OPT_TEXT, id_number),
    F("name", T_TEXT, name),           F("event_ms", T_I64, event_ms),
    F("stage", T_TEXT, stage),         F("cost_fen", T_I64, cost_fen),
    F("aid_fen", T_OPT_I64, aid_fen),  F("school", T_OPT_TEXT, school),
};
static const tcol_t income_t[] = {
    F("record_id", T_TEXT, record_id), F("id_number", T_OPT_TEXT, id_number),
    F("period", T_MONTH, period),      F("event_ms", T_I64, event_ms),
    F("amount_fen", T_I64, amount_fen), F("kind", T_OPT_TEXT, kind),
};
static const tcol_t declaration_t[] = {
    F("record_id", T_TEXT, record_id),    F("id_number", T_OPT_TEXT, id_number),
    F("name", T_TEXT, name),              F("event_ms", T_I64, event_ms),
    F("reason", T_TEXT, risk_factor),     F("amount_fen", T_OPT_I64, amount_fen),
    F("description", T_OPT_TEXT, description),
};
static const tcol_t visit_t[] = {
    F("record_id", T_TEXT, record_id),        F("household_id", T_TEXT, household_id),
    F("event_ms", T_I64, event_ms),           F("visitor", T_TEXT, visitor),
    F("risk_factor", T_OPT_TEXT, risk_factor),
    F("income_estimate_fen", T_OPT_I64, income_estimate_fen), F("note", T_OPT_TEXT, description),
};

/* ---- the feeds ---------------------------------------------------------- */

typedef struct parse parse_t;
typedef int (*parse_fn)(parse_t *p, ing_row_t *row);

struct ing_feed {
    const char *source;
    const lv_csv_col_t *cols;
    size_t ncols;
    parse_fn parse;
    const char *table; /* the typed table, or NULL */
    const tcol_t *tcols;
    size_t ntcols;
    bool by_household;
};

static int parse_registry(parse_t *p, ing_row_t *row);
static int parse_medical(parse_t *p, ing_row_t *row);
static int parse_civil(parse_t *p, ing_row_t *row);
static int parse_disaster(parse_t *p, ing_row_t *row);
static int parse_education(parse_t *p, ing_row_t *row);
static int parse_income(parse_t *p, ing_row_t *row);
static int parse_declaration(parse_t *p, ing_row_t *row);
static int parse_visit(parse_t *p, ing_row_t *row);

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const ing_feed_t feeds[] = {
    {"registry", registry_cols, R_NCOLS, parse_registry, NULL, NULL, 0, false},
    {"medical", medical_cols, M_NCOLS, parse_medical, NULL, NULL, 0, false},
    {"civil", civil_cols, C_NCOLS, parse_civil, "civil_record", civil_t, N(civil_t), false},
    {"disaster", disaster_cols, D_NCOLS, parse_disaster, "disaster_record", disaster_t,
     N(disaster_t), false},
    {"education", education_cols, E_NCOLS, parse_education, "education_record", education_t,
     N(education_t), false},
    {"income", income_cols, I_NCOLS, parse_income, "income_record", income_t, N(income_t), false},
    {"declaration", declaration_cols, S_NCOLS, parse_declaration, "declaration_record",
     declaration_t, N(declaration_t), false},
    {"visit", visit_cols, V_NCOLS, parse_visit, "visit_record", visit_t, N(visit_t), true},
};

const ing_feed_t *ing_feed_find(const char *source)
{
    for (size_t i = 0; i < N(feeds); i++)
        if (!strcmp(feeds[i].source, source))
            return &feeds[i];
    return NULL;
}

const char *ing_feed_source(const ing_feed_t *feed)
{
    return feed->source;
}

const lv_csv_col_t *ing_feed_cols(const ing_feed_t *feed, size_t *ncols)
{
    *ncols = feed->ncols;
    return feed->cols;
}

bool ing_feed_by_household(const ing_feed_t *feed)
{
    return feed->by_household;
}

/* ---- field parsers ------------------------------------------------------ */

struct parse {
    const ing_feed_t *feed;
    const lv_csv_t *csv;
    const int *map;
    lv_arena_t *arena;
    const char **column;
    char *reason;
    size_t reasonlen;
};

static const char *const MISSING = "必填项为空 (required value missing)";

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

static int text_max(parse_t *p, int col, size_t max, char **out)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len && p->feed->cols[col].required)
        return bad(p, col, MISSING);
    if (len > max)
        return bad(p, col, "内容过长 (value too long)");
    char *d = lv_arena_alloc(p->arena, len + 1);
    if (!d)
        return LV_ENOMEM;
    memcpy(d, s, len);
    d[len] = '\0';
    *out = d;
    return 0;
}

static int text(parse_t *p, int col, char **out)
{
    return text_max(p, col, MAX_TEXT, out);
}

static int money(parse_t *p, int col, int64_t *fen)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len) {
        if (p->feed->cols[col].required)
            return bad(p, col, MISSING);
        *fen = -1;
        return 0;
    }
    const char *why;
    if (lv_money_parse(s, len, fen, &why))
        return bad(p, col, why);
    return 0;
}

static int date(parse_t *p, int col, int64_t *ms)
{
    size_t len;
    const char *s = field(p, col, &len);
    const char *why;
    if (!len)
        return bad(p, col, MISSING);
    if (lv_date_parse(s, len, ms, &why))
        return bad(p, col, why);
    return 0;
}

/* Where a person-keyed feed keeps what identifies the person (a column
 * index, or -1 when the feed has no such column). The registry defines the
 * persons: its rows need a valid ID number (name = ID_STRICT). */
#define ID_STRICT (-2)
typedef struct {
    int id, name, region, birth, gender;
} ident_cols_t;

/* Can fuzzy identity matching work on a row whose ID number is missing or
 * broken? With a name, yes; in a feed with no name column only when the
 * broken ID still carries its region and birth date (15 or 18 characters,
 * the first 15 or 17 digits). */
static bool matchable(parse_t *p, int name_col, const char *id, size_t len)
{
    if (name_col == ID_STRICT)
        return false;
    if (name_col >= 0) {
        size_t nlen;
        field(p, name_col, &nlen);
        return nlen > 0;
    }
    size_t digits = len == 18 ? 17 : len == 15 ? 15 : 0;
    if (!digits)
        return false;
    for (size_t i = 0; i < digits; i++)
        if (id[i] < '0' || id[i] > '9')
            return false;
    return true;
}

/* The row's ID number: a valid one (15 digits upgraded) is the key. A
 * missing or broken one rejects the row only when nothing is left to match
 * on (matchable); otherwise the text as written goes on with id_invalid set
 * and matching links the row or refers it to review. */
static int idnum(parse_t *p, int col, int name_col, Levee__Record *r)
{
    size_t len;
    const char *s = field(p, col, &len);
    lv_idnum_t id;
    const char *why = MISSING;
    if (len && !lv_idnum_parse(s, len, &id, &why)) {
        r->id_number = lv_arena_alloc(p->arena, sizeof id.s);
        if (!r->id_number)
            return LV_ENOMEM;
        memcpy(r->id_number, id.s, sizeof id.s);
        return 0;
    }
    if (!matchable(p, name_col, s, len))
        return bad(p, col, why);
    if (len > MAX_TEXT)
        return bad(p, col, "内容过长 (value too long)");
    r->raw_id_number = lv_arena_alloc(p->arena, len + 1);
    if (!r->raw_id_number)
        return LV_ENOMEM;
    memcpy(r->raw_id_number, s, len);
    r->raw_id_number[len] = '\0';
    r->id_number = (char *)"";
    r->id_invalid = true;
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

/* A value from a fixed list (the list ends with NULL); an empty optional
 * value is "". why names the allowed values. */
static int one_of(parse_t *p, int col, const char *const *allowed, const char *why, char **out)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len) {
        if (p->feed->cols[col].required)
            return bad(p, col, MISSING);
        *out = (char *)"";
        return 0;
    }
    for (size_t i = 0; allowed[i]; i++) {
        if (is(s, len, allowed[i])) {
            *out = (char *)allowed[i];
            return 0;
        }
    }
    return bad(p, col, why);
}

static const char *const RISK_TYPES[] = {"因病", "因残", "因学", "因灾", "因意外事故",
                                         "因务工就业不稳", "因产业项目失败", "大额刚性支出",
                                         "其他", NULL};
static const char *const RISK_WHY =
    "风险类型应为 因病、因残、因学、因灾、因意外事故、因务工就业不稳、因产业项目失败、"
    "大额刚性支出 或 其他 (not a risk type of SPEC.md)";

/* The disability grade: 0-4, or 一级..四级 / 无 as the 残联 writes it. */
static int disability(parse_t *p, int col, int dflt, int *out)
{
    static const char *const words[] = {"无", "一级", "二级", "三级", "四级"};
    size_t len;
    const char *s = field(p, col, &len);
    for (int i = 0; i < 5; i++) {
        if (len && is(s, len, words[i])) {
            *out = i;
            return 0;
        }
    }
    return small_int(p, col, 0, 4, dflt, out);
}

/* An income period: YYYY-MM (also YYYY/MM and YYYYMM): the month's first day
 * must be a date lv_date_parse accepts. */
static int month(parse_t *p, int col, Levee__Record *r)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len)
        return bad(p, col, MISSING);
    char day[16];
    const char *why;
    bool sep = len == 7 && (s[4] == '-' || s[4] == '/');
    if (!sep && len != 6)
        return bad(p, col, "所属期格式错误 (bad period: want YYYY-MM)");
    snprintf(day, sizeof day, "%.*s%s", (int)len, s, sep ? (s[4] == '-' ? "-01" : "/01") : "01");
    if (lv_date_parse(day, strlen(day), &r->event_ms, &why))
        return bad(p, col, "所属期不存在或格式错误 (bad period: want YYYY-MM)");
    r->period = lv_arena_alloc(p->arena, 8);
    if (!r->period)
        return LV_ENOMEM;
    snprintf(r->period, 8, "%.4s-%.2s", day, day + (sep ? 5 : 4));
    return 0;
}

/* The optional region column: a county (6 digits), town (9) or village (12)
 * code, where identity matching searches for the person. */
static int region_hint(parse_t *p, int col, Levee__Record *r)
{
    size_t len;
    const char *s = field(p, col, &len);
    if (!len)
        return 0;
    if ((len != 6 && len != 9 && len != 12) || strspn(s, "0123456789") < len ||
        !memcmp(s, "000000", 6))
        return bad(p, col, "行政区划代码应为 6、9 或 12 位数字 (must be a 6, 9 or 12-digit region code)");
    return text(p, col, &r->region_code);
}

/* The optional birth date (YYYYMMDD kept) and gender (男 / 女) columns. */
static int birth_gender(parse_t *p, const ident_cols_t *c, Levee__Record *r)
{
    size_t len = 0;
    const char *s = c->birth >= 0 ? field(p, c->birth, &len) : "";
    if (len) {
        int64_t ms;
        const char *why;
        if (lv_date_parse(s, len, &ms, &why))
            return bad(p, c->birth, why);
        int y, mo, d;
        lv_civil_from_days(ms / LV_DAY_MS, &y, &mo, &d);
        r->birth_date = lv_arena_alloc(p->arena, 16);
        if (!r->birth_date)
            return LV_ENOMEM;
        snprintf(r->birth_date, 16, "%04d%02d%02d", y, mo, d);
    }
    len = 0;
    s = c->gender >= 0 ? field(p, c->gender, &len) : "";
    if (!len)
        return 0;
    if (is(s, len, "男"))
        r->gender = 1;
    else if (is(s, len, "女"))
        r->gender = 2;
    else
        return bad(p, c->gender, "性别应为 男 或 女 (must be 男 or 女)");
    return 0;
}

/* A feed keyed by a person lives in the county of the person's ID number
 * until matching knows the person's household. A row without a valid ID
 * lives in the county its region column names, else the one its broken ID
 * starts with, else in 000000 (unknown). */
static void person_county(ing_row_t *row)
{
    const Levee__Record *r = &row->rec;
    const char *c = r->id_number;
    if (r->id_invalid) {
        const char *raw = r->raw_id_number;
        if (*r->region_code)
            c = r->region_code;
        else if (strlen(raw) >= 6 && strspn(raw, "0123456789") >= 6 && memcmp(raw, "000000", 6))
            c = raw;
        else
            c = "000000";
    }
    memcpy(row->county, c, 6);
    row->county[6] = '\0';
}

/* The identity columns besides the ID number and the name, then the row's
 * county. */
static int identity_rest(parse_t *p, const ident_cols_t *c, ing_row_t *row)
{
    int e;
    if ((e = region_hint(p, c->region, &row->rec)) || (e = birth_gender(p, c, &row->rec)))
        return e;
    person_county(row);
    return 0;
}

/* ---- registry and medical ----------------------------------------------- */

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
        return bad(p, R_REGION, MISSING);
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
    if ((e = idnum(p, R_ID, ID_STRICT, r)) || (e = text(p, R_NAME, &r->name)) || (e = text(p, R_REL, &r->relation)))
        return e;
    int dis;
    if ((e = disability(p, R_DIS, 0, &dis)))
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
    static const ident_cols_t ic = {M_ID, M_NAME, M_REGION, M_BIRTH, M_GENDER};
    if ((e = text(p, M_RECORD, &r->record_id)) || (e = idnum(p, M_ID, M_NAME, r)) ||
        (e = text(p, M_NAME, &r->name)) || (e = date(p, M_DATE, &r->event_ms)))
        return e;
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
    if ((e = identity_rest(p, &ic, row)))
        return e;
    row->amount_fen = r->self_paid_fen;
    return 0;
}

/* ---- the other six ------------------------------------------------------- */

static int parse_civil(parse_t *p, ing_row_t *row)
{
    static const char *const kinds[] = {"低保", "特困", "临时救助", "残疾认定", NULL};
    Levee__Record *r = &row->rec;
    static const ident_cols_t ic = {C_ID, C_NAME, C_REGION, C_BIRTH, C_GENDER};
    int e, dis;
    if ((e = text(p, C_RECORD, &r->record_id)) || (e = idnum(p, C_ID, C_NAME, r)) ||
        (e = text(p, C_NAME, &r->name)) || (e = date(p, C_DATE, &r->event_ms)) ||
        (e = one_of(p, C_KIND, kinds,
                    "类别应为 低保、特困、临时救助 或 残疾认定 (must be 低保, 特困, 临时救助 or 残疾认定)",
                    &r->kind)) ||
        (e = money(p, C_AMOUNT, &r->amount_fen)) || (e = disability(p, C_DIS, -1, &dis)) ||
        (e = identity_rest(p, &ic, row)))
        return e;
    r->disability_grade = dis;
    row->amount_fen = r->amount_fen;
    return 0;
}

static int parse_disaster(parse_t *p, ing_row_t *row)
{
    static const char *const damage[] = {"无", "轻微", "严重", "倒塌", NULL};
    Levee__Record *r = &row->rec;
    int e;
    static const ident_cols_t ic = {D_ID, -1, D_REGION, -1, -1};
    if ((e = text(p, D_RECORD, &r->record_id)) || (e = idnum(p, D_ID, -1, r)) ||
        (e = date(p, D_DATE, &r->event_ms)) || (e = text(p, D_TYPE, &r->disaster_type)) ||
        (e = money(p, D_LOSS, &r->loss_amount_fen)) ||
        (e = one_of(p, D_HOUSE, damage,
                    "房屋损毁应为 无、轻微、严重 或 倒塌 (must be 无, 轻微, 严重 or 倒塌)",
                    &r->house_damage)) ||
        (e = identity_rest(p, &ic, row)))
        return e;
    row->amount_fen = r->loss_amount_fen;
    return 0;
}

static int parse_education(parse_t *p, ing_row_t *row)
{
    Levee__Record *r = &row->rec;
    int e;
    static const ident_cols_t ic = {E_ID, E_NAME, E_REGION, E_BIRTH, E_GENDER};
    if ((e = text(p, E_RECORD, &r->record_id)) || (e = idnum(p, E_ID, E_NAME, r)) ||
        (e = text(p, E_NAME, &r->name)) || (e = date(p, E_DATE, &r->event_ms)) ||
        (e = text(p, E_STAGE, &r->stage)) || (e = money(p, E_COST, &r->cost_fen)) ||
        (e = money(p, E_AID, &r->aid_fen)) || (e = text(p, E_SCHOOL, &r->school)) ||
        (e = identity_rest(p, &ic, row)))
        return e;
    /* What the family pays: cost less aid, never below 0. */
    int64_t net = r->cost_fen - (r->aid_fen > 0 ? r->aid_fen : 0);
    row->amount_fen = net > 0 ? net : 0;
    return 0;
}

static int parse_income(parse_t *p, ing_row_t *row)
{
    static const char *const kinds[] = {"工资性", "经营性", "财产性", "转移性", NULL};
    Levee__Record *r = &row->rec;
    int e;
    static const ident_cols_t ic = {I_ID, -1, I_REGION, -1, -1};
    if ((e = text(p, I_RECORD, &r->record_id)) || (e = idnum(p, I_ID, -1, r)) ||
        (e = month(p, I_PERIOD, r)) || (e = money(p, I_AMOUNT, &r->amount_fen)) ||
        (e = one_of(p, I_KIND, kinds,
                    "收入类型应为 工资性、经营性、财产性 或 转移性 (must be 工资性, 经营性, "
                    "财产性 or 转移性)",
                    &r->kind)) ||
        (e = identity_rest(p, &ic, row)))
        return e;
    row->amount_fen = r->amount_fen;
    return 0;
}

static int parse_declaration(parse_t *p, ing_row_t *row)
{
    Levee__Record *r = &row->rec;
    int e;
    static const ident_cols_t ic = {S_ID, S_NAME, S_REGION, S_BIRTH, S_GENDER};
    if ((e = text(p, S_RECORD, &r->record_id)) || (e = idnum(p, S_ID, S_NAME, r)) ||
        (e = text(p, S_NAME, &r->name)) || (e = date(p, S_DATE, &r->event_ms)) ||
        (e = one_of(p, S_REASON, RISK_TYPES, RISK_WHY, &r->risk_factor)) ||
        (e = money(p, S_AMOUNT, &r->amount_fen)) ||
        (e = text_max(p, S_DESC, MAX_NOTE, &r->description)) ||
        (e = identity_rest(p, &ic, row)))
        return e;
    row->amount_fen = r->amount_fen;
    return 0;
}

static int parse_visit(parse_t *p, ing_row_t *row)
{
    Levee__Record *r = &row->rec;
    int e;
    if ((e = text(p, V_RECORD, &r->record_id)) || (e = text(p, V_HOUSEHOLD, &r->household_id)) ||
        (e = date(p, V_DATE, &r->event_ms)) || (e = text(p, V_VISITOR, &r->visitor)) ||
        (e = one_of(p, V_RISK, RISK_TYPES, RISK_WHY, &r->risk_factor)) ||
        (e = money(p, V_ESTIMATE, &r->income_estimate_fen)) ||
        (e = text_max(p, V_NOTE, MAX_NOTE, &r->description)))
        return e;
    /* The household's county is looked up by the caller, per batch. */
    snprintf(row->county, sizeof row->county, "000000");
    row->amount_fen = r->income_estimate_fen;
    return 0;
}

int ing_feed_parse(const ing_feed_t *feed, const lv_csv_t *csv, const int *map, lv_arena_t *arena,
                   ing_row_t *row, const char **column, char *reason, size_t reasonlen)
{
    parse_t p = {feed, csv, map, arena, column, reason, reasonlen};
    levee__record__init(&row->rec);
    row->rec.annual_net_income_fen = -1;
    row->rec.compliant_cost_fen = -1;
    row->rec.amount_fen = -1;
    row->rec.aid_fen = -1;
    row->rec.income_estimate_fen = -1;
    row->rec.source = (char *)feed->source;
    row->rec.row_no = lv_csv_row(csv);
    row->rec.read_ms = lv_now_ms();
    row->rev[0] = '\0';
    return feed->parse(&p, row);
}

/* ---- storing the typed rows ----------------------------------------------- */

static const char *pg_type(ftype_t t)
{
    switch (t) {
    case T_I64:
    case T_OPT_I64: return "bigint";
    case T_OPT_I32: return "int";
    case T_MONTH: return "date";
    default: return "text";
    }
}

static void put_value(lv_buf_t *b, const tcol_t *c, const Levee__Record *r)
{
    const char *base = (const char *)r + c->offset;
    switch (c->type) {
    case T_TEXT:
    case T_OPT_TEXT: {
        const char *s = *(char *const *)(const void *)base;
        if (!s || (!*s && c->type == T_OPT_TEXT))
            lv_arr_null(b);
        else
            lv_arr_text(b, s, strlen(s));
        break;
    }
    case T_MONTH: {
        char d[16];
        snprintf(d, sizeof d, "%.7s-01", *(char *const *)(const void *)base);
        lv_arr_text(b, d, strlen(d));
        break;
    }
    case T_I64:
        lv_arr_int(b, *(const int64_t *)(const void *)base);
        break;
    case T_OPT_I64: {
        int64_t v = *(const int64_t *)(const void *)base;
        if (v < 0)
            lv_arr_null(b);
        else
            lv_arr_int(b, v);
        break;
    }
    case T_OPT_I32: {
        int32_t v = *(const int32_t *)(const void *)base;
        if (v < 0)
            lv_arr_null(b);
        else
            lv_arr_int(b, v);
        break;
    }
    }
}

int ing_feed_store(const ing_feed_t *feed, PGconn *pg, ing_row_t *const *rows, size_t n)
{
    if (!feed->table || n == 0)
        return 0;
    /* INSERT INTO t (county, c1..cn) SELECT * FROM unnest($1::text[], $2::type[] ...) */
    lv_buf_t sql, names, arrays;
    lv_buf_init(&sql, 4096);
    lv_buf_init(&names, 1024);
    lv_buf_init(&arrays, 1024);
    lv_buf_puts(&names, "county");
    lv_buf_puts(&arrays, "$1::text[]");
    for (size_t i = 0; i < feed->ntcols; i++) {
        lv_buf_printf(&names, ", %s", feed->tcols[i].column);
        lv_buf_printf(&arrays, ", $%zu::%s[]", i + 2, pg_type(feed->tcols[i].type));
    }
    lv_buf_printf(&sql, "INSERT INTO %s (%s) SELECT * FROM unnest(%s) ON CONFLICT DO NOTHING",
                  feed->table, lv_buf_str(&names), lv_buf_str(&arrays));

    lv_buf_t cols[TCOLS_MAX + 1];
    size_t ncols = feed->ntcols + 1;
    for (size_t c = 0; c < ncols; c++) {
        lv_buf_init(&cols[c], ARR_MAX);
        lv_arr_begin(&cols[c]);
    }
    for (size_t i = 0; i < n; i++) {
        const ing_row_t *row = rows[i];
        lv_arr_text(&cols[0], row->county, strlen(row->county));
        for (size_t c = 0; c < feed->ntcols; c++)
            put_value(&cols[c + 1], &feed->tcols[c], &row->rec);
    }
    const char *params[TCOLS_MAX + 1];
    bool ok = !sql.failed && !names.failed && !arrays.failed;
    for (size_t c = 0; c < ncols; c++) {
        lv_arr_end(&cols[c]);
        ok = ok && !cols[c].failed;
        params[c] = lv_buf_str(&cols[c]);
    }
    int e = ok ? lv_pg_cmd(pg, lv_buf_str(&sql), (int)ncols, params) : LV_ENOMEM;
    for (size_t c = 0; c < ncols; c++)
        lv_buf_free(&cols[c]);
    lv_buf_free(&sql);
    lv_buf_free(&names);
    lv_buf_free(&arrays);
    return e;
}
