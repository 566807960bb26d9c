#define _POSIX_C_SOURCE 200809L
#include "cli_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lv_money.h"
#include "lv_time.h"

/* Type OIDs from pg_type.h (a server header, so not included). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_INT2ARRAY 1005
#define OID_INT4ARRAY 1007
#define OID_TEXTARRAY 1009
#define OID_BPCHARARRAY 1014
#define OID_VARCHARARRAY 1015
#define OID_INT8ARRAY 1016
#define OID_NUMERIC 1700
#define OID_JSONB 3802

#define DEFAULT_MAX_WIDTH 40

/* Text headers for the column names the commands use. */
static const struct {
    const char *name, *header;
} s_headers[] = {
    {"case_id", "案件编号"},
    {"household_id", "户编号"},
    {"status", "状态"},
    {"stage", "下一步"},
    {"grade", "等级"},
    {"category", "监测类别"},
    {"risk_factors", "风险类型"},
    {"primary_risk_factor", "主要风险"},
    {"opened_at", "立案日期"},
    {"deadline", "办结期限"},
    {"closed_at", "结案日期"},
    {"task_id", "任务编号"},
    {"assignee", "核实人"},
    {"due_at", "截止时间"},
    {"completed_at", "完成时间"},
    {"created_at", "时间"},
    {"kind", "类别"},
    {"payout_id", "发放编号"},
    {"amount_fen", "金额(元)"},
    {"basis_fen", "计算基数(元)"},
    {"year", "年度"},
    {"reason", "原因"},
    {"fund_id", "资金编号"},
    {"balance_fen", "余额(元)"},
    {"paid_fen", "已发放(元)"},
    {"pending_fen", "待发放(元)"},
    {"allocated_fen", "已拨付县级预算(元)"},
    {"recipient", "接收方"},
    {"recipient_name", "接收方名称"},
    {"title", "标题"},
    {"body", "内容"},
    {"created", "时间"},
    {"time", "时间"},
    {"actor", "操作人"},
    {"role", "角色"},
    {"action", "操作"},
    {"detail", "详情"},
    {"row", "行号"},
    {"column", "列"},
    {"raw", "原始行"},
    {"id_number", "身份证号"},
    {"name", "姓名"},
    {"relation", "与户主关系"},
    {"disability_grade", "残疾等级"},
    {"chronic_illness", "大病慢病"},
    {"labour", "劳动能力"},
    {"phone", "联系电话"},
    {"income_fen", "收入(元)"},
    {"rigid_fen", "刚性支出(元)"},
    {"members", "人数"},
    {"what", "变更项"},
    {"old_value", "原值"},
    {"new_value", "新值"},
    {"region_code", "行政区划代码"},
    {"household_type", "户类型"},
    {"head_name", "户主姓名"},
    {"head_id_number", "户主身份证号"},
    {"pci_fen", "人均纯收入(元)"},
    {"pci_after_fen", "扣除刚性支出后人均纯收入(元)"},
    {"identified_at", "识别日期"},
    {"policy_version", "政策版本"},
    {"phase", "监测阶段"},
};

/* Columns whose text is free-form and may quote an ID number or a phone. */
static const char *const s_free_text[] = {
    "raw", "detail", "body", "title", "reason", "note", "findings", "explanation",
    "error", "computation", "old_value", "new_value", "exclusion_reason", NULL,
};

typedef enum { MASK_NONE, MASK_IDNUM, MASK_PHONE, MASK_FREE } mask_t;

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

static mask_t mask_of(const char *name)
{
    if (!strcmp(name, "id_number") || ends_with(name, "_id_number"))
        return MASK_IDNUM;
    if (!strcmp(name, "phone") || ends_with(name, "_phone"))
        return MASK_PHONE;
    for (int i = 0; s_free_text[i]; i++)
        if (!strcmp(name, s_free_text[i]))
            return MASK_FREE;
    return MASK_NONE;
}

static bool is_int_type(Oid t)
{
    return t == OID_INT2 || t == OID_INT4 || t == OID_INT8 || t == OID_OID;
}

static bool is_array_type(Oid t)
{
    return t == OID_TEXTARRAY || t == OID_BPCHARARRAY || t == OID_VARCHARARRAY ||
           t == OID_INT2ARRAY || t == OID_INT4ARRAY || t == OID_INT8ARRAY;
}

/* Integer-valued by name: money, times and counts. */
static bool is_int_name(const char *name)
{
    return ends_with(name, "_fen") || ends_with(name, "_ms") || !strcmp(name, "count") ||
           ends_with(name, "_count") || !strncmp(name, "n_", 2);
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

const char *cli_get(const PGresult *res, int row, const char *name)
{
    int c = PQfnumber(res, name);
    if (c < 0 || row >= PQntuples(res) || PQgetisnull(res, row, c))
        return NULL;
    return PQgetvalue(res, row, c);
}

int64_t cli_get_i64(const PGresult *res, int row, const char *name, int64_t dflt)
{
    int64_t v;
    return parse_i64(cli_get(res, row, name), &v) ? v : dflt;
}

int cli_pg_array(const char *lit, void (*fn)(void *ctx, const char *elem), void *ctx)
{
    size_t n = strlen(lit);
    if (n < 2 || lit[0] != '{' || lit[n - 1] != '}')
        return -1;
    char *elem = malloc(n);
    if (!elem)
        return -1;
    const char *p = lit + 1, *end = lit + n - 1;
    int rc = 0;
    while (p < end) {
        size_t k = 0;
        bool quoted = false;
        while (p < end && *p == ' ')
            p++;
        if (*p == '{') { /* nested arrays are not ours to show */
            rc = -1;
            break;
        }
        if (*p == '"') {
            quoted = true;
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end)
                    p++;
                elem[k++] = *p++;
            }
            if (p >= end) {
                rc = -1;
                break;
            }
            p++; /* closing quote */
        } else {
            while (p < end && *p != ',') {
                if (*p == '\\' && p + 1 < end)
                    p++;
                elem[k++] = *p++;
            }
            while (k > 0 && elem[k - 1] == ' ')
                k--;
        }
        elem[k] = '\0';
        bool is_null = !quoted && k == 4 && !strncmp(elem, "NULL", 4);
        fn(ctx, is_null ? NULL : elem);
        while (p < end && *p == ' ')
            p++;
        if (p < end) {
            if (*p != ',') {
                rc = -1;
                break;
            }
            p++;
        }
    }
    free(elem);
    return rc;
}

/* ---- JSON ----------------------------------------------------------------- */

typedef struct {
    json_t *arr;
    bool ints;
} arr_json_t;

static void arr_json_add(void *ctx, const char *elem)
{
    arr_json_t *a = ctx;
    int64_t v;
    if (!elem)
        json_array_append_new(a->arr, json_null());
    else if (a->ints && parse_i64(elem, &v))
        json_array_append_new(a->arr, json_integer((json_int_t)v));
    else
        json_array_append_new(a->arr, json_string(elem));
}

static char *masked_copy(const char *v, mask_t m)
{
    size_t n = strlen(v);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    switch (m) {
    case MASK_IDNUM:
        cli_mask_idnum(v, s);
        break;
    case MASK_PHONE:
        cli_mask_phone(v, s);
        break;
    case MASK_FREE:
        memcpy(s, v, n + 1);
        cli_mask_free(s);
        break;
    default:
        memcpy(s, v, n + 1);
        break;
    }
    return s;
}

static json_t *cell_json(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_null();
    const char *v = PQgetvalue(res, row, col);
    const char *name = PQfname(res, col);
    Oid t = PQftype(res, col);
    int64_t i;
    if (t == OID_BOOL)
        return json_boolean(v[0] == 't');
    if ((is_int_type(t) || (t == OID_NUMERIC && is_int_name(name))) && parse_i64(v, &i))
        return json_integer((json_int_t)i);
    if (t == OID_FLOAT4 || t == OID_FLOAT8)
        return json_real(strtod(v, NULL));
    if (is_array_type(t)) {
        arr_json_t a = {json_array(), t == OID_INT2ARRAY || t == OID_INT4ARRAY || t == OID_INT8ARRAY};
        if (a.arr && cli_pg_array(v, arr_json_add, &a) == 0)
            return a.arr;
        json_decref(a.arr);
    }
    if (t == OID_JSON || t == OID_JSONB) {
        json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
        if (j)
            return j;
    }
    char *s = masked_copy(v, mask_of(name));
    json_t *j = s ? json_string(s) : json_null();
    free(s);
    return j ? j : json_null();
}

json_t *cli_row_json(const PGresult *res, int row)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    for (int c = 0; c < PQnfields(res); c++)
        json_object_set_new(o, PQfname(res, c), cell_json(res, row, c));
    return o;
}

json_t *cli_res_json(const PGresult *res)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(a, cli_row_json(res, r));
    return a;
}

void cli_json_out(json_t *doc)
{
    if (!doc) {
        fputs("{\"error\": \"out of memory\"}\n", stdout);
        return;
    }
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(doc);
}

/* ---- text ----------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
} join_t;

static void join_add(void *ctx, const char *elem)
{
    join_t *j = ctx;
    const char *sep = j->len ? "、" : "";
    const char *e = elem ? elem : "-";
    size_t need = j->len + strlen(sep) + strlen(e) + 1;
    if (need > j->cap) {
        size_t cap = need * 2;
        char *s = realloc(j->s, cap);
        if (!s)
            return;
        j->s = s;
        j->cap = cap;
    }
    memcpy(j->s + j->len, sep, strlen(sep));
    j->len += strlen(sep);
    memcpy(j->s + j->len, e, strlen(e));
    j->len += strlen(e);
    j->s[j->len] = '\0';
}

static cli_fmt_t auto_fmt(const PGresult *res, int col)
{
    const char *name = PQfname(res, col);
    Oid t = PQftype(res, col);
    bool integral = is_int_type(t) || t == OID_NUMERIC;
    if (integral && ends_with(name, "_fen"))
        return CLI_F_YUAN;
    if (integral && ends_with(name, "_ms"))
        return CLI_F_DATETIME;
    return CLI_F_TEXT;
}

char *cli_cell_text(const PGresult *res, int row, int col, cli_fmt_t fmt)
{
    if (PQgetisnull(res, row, col))
        return strdup("-");
    const char *v = PQgetvalue(res, row, col);
    Oid t = PQftype(res, col);
    if (fmt == CLI_F_AUTO)
        fmt = auto_fmt(res, col);
    char buf[64];
    int64_t i;
    switch (fmt) {
    case CLI_F_YUAN:
        if (!parse_i64(v, &i))
            break;
        cli_yuan(i, buf, sizeof buf);
        return strdup(buf);
    case CLI_F_DATE:
        if (!parse_i64(v, &i))
            break;
        lv_date_format(i, buf);
        return strdup(buf);
    case CLI_F_DATETIME:
        if (!parse_i64(v, &i))
            break;
        lv_datetime_format(i, buf);
        return strdup(buf);
    default:
        break;
    }
    if (t == OID_BOOL)
        return strdup(v[0] == 't' ? "是" : "否");
    if (is_array_type(t)) {
        join_t j = {NULL, 0, 0};
        if (cli_pg_array(v, join_add, &j) == 0)
            return j.s ? j.s : strdup("-");
        free(j.s);
    }
    return masked_copy(v, mask_of(PQfname(res, col)));
}

static const cli_col_t *find_col(const cli_col_t *cols, const char *name)
{
    for (int i = 0; cols && cols[i].name; i++)
        if (!strcmp(cols[i].name, name))
            return &cols[i];
    return NULL;
}

static const char *header_of(const cli_col_t *o, const char *name)
{
    if (o && o->header)
        return o->header;
    for (size_t i = 0; i < sizeof s_headers / sizeof s_headers[0]; i++)
        if (!strcmp(s_headers[i].name, name))
            return s_headers[i].header;
    return name;
}

static void put_indent(FILE *out, int indent)
{
    for (int i = 0; i < indent; i++)
        fputc(' ', out);
}

void cli_res_table(FILE *out, const PGresult *res, const cli_col_t *cols, int indent)
{
    int nr = PQntuples(res), nc = PQnfields(res);
    if (nr == 0) {
        put_indent(out, indent);
        fputs("(无记录 none)\n", out);
        return;
    }
    char **cell = calloc((size_t)nr * (size_t)nc, sizeof *cell);
    int *width = calloc((size_t)nc, sizeof *width);
    bool *right = calloc((size_t)nc, sizeof *right);
    bool *shown = calloc((size_t)nc, sizeof *shown);
    const char **head = calloc((size_t)nc, sizeof *head);
    if (!cell || !width || !right || !shown || !head) {
        fputs("内存不足 (out of memory)\n", stderr);
        goto done;
    }
    for (int c = 0; c < nc; c++) {
        const char *name = PQfname(res, c);
        const cli_col_t *o = find_col(cols, name);
        cli_fmt_t fmt = o ? o->fmt : CLI_F_AUTO;
        if (fmt == CLI_F_HIDE)
            continue;
        shown[c] = true;
        if (fmt == CLI_F_AUTO)
            fmt = auto_fmt(res, c);
        right[c] = fmt == CLI_F_YUAN || (fmt == CLI_F_TEXT && is_int_type(PQftype(res, c)));
        int maxw = o && o->max_width > 0 ? o->max_width : DEFAULT_MAX_WIDTH;
        head[c] = header_of(o, name);
        width[c] = cli_text_width(head[c]);
        for (int r = 0; r < nr; r++) {
            char *t = cli_cell_text(res, r, c, fmt);
            char *fit = t ? malloc(strlen(t) + 4) : NULL;
            if (fit)
                cli_text_fit(t, maxw, fit);
            free(t);
            cell[(size_t)r * (size_t)nc + (size_t)c] = fit;
            int w = fit ? cli_text_width(fit) : 0;
            if (w > width[c])
                width[c] = w;
        }
    }
    /* The last shown column is not padded, so no line ends in spaces. */
    int last = -1;
    for (int c = 0; c < nc; c++)
        if (shown[c])
            last = c;
    put_indent(out, indent);
    for (int c = 0; c < nc; c++) {
        if (!shown[c])
            continue;
        cli_put_padded(out, head[c], c == last && !right[c] ? 0 : width[c], right[c]);
        fputs(c == last ? "\n" : "  ", out);
    }
    put_indent(out, indent);
    for (int c = 0; c < nc; c++) {
        if (!shown[c])
            continue;
        for (int i = 0; i < width[c]; i++)
            fputc('-', out);
        fputs(c == last ? "\n" : "  ", out);
    }
    for (int r = 0; r < nr; r++) {
        put_indent(out, indent);
        for (int c = 0; c < nc; c++) {
            if (!shown[c])
                continue;
            const char *t = cell[(size_t)r * (size_t)nc + (size_t)c];
            cli_put_padded(out, t ? t : "", c == last && !right[c] ? 0 : width[c], right[c]);
            fputs(c == last ? "\n" : "  ", out);
        }
    }
    put_indent(out, indent);
    fprintf(out, "(%d 条 rows)\n", nr);
done:
    if (cell)
        for (size_t i = 0; i < (size_t)nr * (size_t)nc; i++)
            free(cell[i]);
    free(cell);
    free(width);
    free(right);
    free(shown);
    free(head);
}

void cli_res_print(const PGresult *res, const cli_col_t *cols, int json)
{
    if (json)
        cli_json_out(cli_res_json(res));
    else
        cli_res_table(stdout, res, cols, 0);
}

void cli_csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    putc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            putc('"', out);
        putc(*s, out);
    }
    putc('"', out);
}

void cli_res_csv(FILE *out, const PGresult *res, const cli_col_t *cols)
{
    int nc = PQnfields(res);
    fputs("\xEF\xBB\xBF", out);
    for (int c = 0; c < nc; c++) {
        const char *name = PQfname(res, c);
        const char *h = header_of(find_col(cols, name), name);
        if (c)
            putc(',', out);
        char both[256];
        snprintf(both, sizeof both, "%s%s%s", h, strcmp(h, name) ? " " : "",
                 strcmp(h, name) ? name : "");
        cli_csv_field(out, both);
    }
    fputs("\r\n", out);
    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < nc; c++) {
            if (c)
                putc(',', out);
            if (PQgetisnull(res, r, c))
                continue;
            cli_fmt_t fmt = CLI_F_AUTO;
            const cli_col_t *o = find_col(cols, PQfname(res, c));
            if (o)
                fmt = o->fmt;
            if (fmt == CLI_F_AUTO)
                fmt = auto_fmt(res, c);
            if (fmt == CLI_F_YUAN) { /* plain digits: a number to a spreadsheet */
                char y[32];
                lv_money_format(strtoll(PQgetvalue(res, r, c), NULL, 10), y, sizeof y);
                fputs(y, out);
                continue;
            }
            char *t = cli_cell_text(res, r, c, fmt);
            cli_csv_field(out, t ? t : "");
            free(t);
        }
        fputs("\r\n", out);
    }
}
