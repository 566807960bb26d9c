/* lv_expr: compiler (recursive descent straight to a flat instruction list,
 * with the types checked on the way) and evaluator (one loop over the list
 * with a fixed operand stack). See lv_expr.h for the language. */
#include "lv_expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

/* ---- exact arithmetic --------------------------------------------------- */

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    int shift = __builtin_ctzll(a | b);
    a >>= __builtin_ctzll(a);
    do {
        b >>= __builtin_ctzll(b);
        if (a > b) {
            uint64_t t = a;
            a = b;
            b = t;
        }
        b -= a;
    } while (b);
    return a << shift;
}

static u128 gcd128(u128 a, u128 b)
{
    if (a <= UINT64_MAX && b <= UINT64_MAX)
        return gcd64((uint64_t)a, (uint64_t)b);
    while (b) {
        u128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* n/d (d != 0) in lowest terms, or an overflow when either part does not
 * fit int64 after the reduction. */
static int norm128(i128 n, i128 d, lv_num_t *out)
{
    if (d < 0) {
        n = -n;
        d = -d;
    }
    if (n == 0) {
        *out = (lv_num_t){0, 1};
        return 0;
    }
    if (d != 1) {
        u128 g = gcd128(n < 0 ? (u128)-n : (u128)n, (u128)d);
        if (g > 1) {
            n /= (i128)g;
            d /= (i128)g;
        }
    }
    if (n < INT64_MIN || n > INT64_MAX || d > INT64_MAX)
        return LV_EXPR_EOVERFLOW;
    out->num = (int64_t)n;
    out->den = (int64_t)d;
    return 0;
}

int lv_num_make(int64_t num, int64_t den, lv_num_t *out)
{
    if (den == 0)
        return LV_EXPR_EDIVZERO;
    return norm128(num, den, out);
}

/* a + b, or a - b when subtract. */
static inline int num_addsub(lv_num_t a, lv_num_t b, bool subtract, lv_num_t *out)
{
    if (a.den == 1 && b.den == 1) {
        int64_t r;
        if (subtract ? __builtin_sub_overflow(a.num, b.num, &r)
                     : __builtin_add_overflow(a.num, b.num, &r))
            return LV_EXPR_EOVERFLOW;
        *out = (lv_num_t){r, 1};
        return 0;
    }
    i128 bn = subtract ? -(i128)b.num : (i128)b.num;
    if (a.den == b.den)
        return norm128(a.num + bn, a.den, out);
    return norm128((i128)a.num * b.den + bn * a.den, (i128)a.den * b.den, out);
}

static inline int num_add(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    return num_addsub(a, b, false, out);
}

static inline int num_sub(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    return num_addsub(a, b, true, out);
}

static inline int num_mul(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    if (a.den == 1 && b.den == 1) {
        int64_t r;
        if (__builtin_mul_overflow(a.num, b.num, &r))
            return LV_EXPR_EOVERFLOW;
        *out = (lv_num_t){r, 1};
        return 0;
    }
    return norm128((i128)a.num * b.num, (i128)a.den * b.den, out);
}

static inline int num_div(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    if (b.num == 0)
        return LV_EXPR_EDIVZERO;
    return norm128((i128)a.num * b.den, (i128)a.den * b.num, out);
}

static inline int num_cmp(lv_num_t a, lv_num_t b)
{
    if (a.den == b.den)
        return (a.num > b.num) - (a.num < b.num);
    i128 l = (i128)a.num * b.den, r = (i128)b.num * a.den;
    return (l > r) - (l < r);
}

static inline int64_t num_floor(lv_num_t a)
{
    int64_t q = a.num / a.den;
    if (a.num % a.den != 0 && a.num < 0)
        q--;
    return q;
}

int lv_num_add(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    return num_add(a, b, out);
}

int lv_num_sub(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    return num_sub(a, b, out);
}

int lv_num_mul(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    return num_mul(a, b, out);
}

int lv_num_div(lv_num_t a, lv_num_t b, lv_num_t *out)
{
    return num_div(a, b, out);
}

int lv_num_cmp(lv_num_t a, lv_num_t b)
{
    return num_cmp(a, b);
}

int64_t lv_num_floor(lv_num_t a)
{
    return num_floor(a);
}

static int num_ceil(lv_num_t a, lv_num_t *out)
{
    int64_t f = num_floor(a);
    if (a.den != 1 && f == INT64_MAX)
        return LV_EXPR_EOVERFLOW;
    *out = (lv_num_t){a.den == 1 ? f : f + 1, 1};
    return 0;
}

/* Half up: floor(a + 1/2) = floor((2 num + den) / (2 den)), in 128 bits. */
static int num_round(lv_num_t a, lv_num_t *out)
{
    i128 n = (i128)a.num * 2 + a.den, d = (i128)a.den * 2;
    i128 q = n / d;
    if (n % d != 0 && n < 0)
        q--;
    return norm128(q, 1, out);
}

static int num_abs(lv_num_t a, lv_num_t *out)
{
    if (a.num == INT64_MIN)
        return LV_EXPR_EOVERFLOW;
    *out = (lv_num_t){a.num < 0 ? -a.num : a.num, a.den};
    return 0;
}

static int num_neg(lv_num_t a, lv_num_t *out)
{
    if (a.num == INT64_MIN)
        return LV_EXPR_EOVERFLOW;
    *out = (lv_num_t){-a.num, a.den};
    return 0;
}

const char *lv_expr_strerror(int code)
{
    switch (code) {
    case 0: return "ok";
    case LV_EXPR_EOVERFLOW: return "数值溢出 (overflow: a value does not fit 64 bits)";
    case LV_EXPR_EDIVZERO: return "除以零 (division by zero)";
    default: return "表达式错误 (expression error)";
    }
}

int lv_num_format(lv_num_t v, lv_expr_type_t type, char *buf, size_t n)
{
    if (type == LV_EXPR_BOOLEAN)
        return snprintf(buf, n, "%s", v.num ? "true" : "false");
    if (v.den == 1)
        return snprintf(buf, n, "%lld", (long long)v.num);
    return snprintf(buf, n, "(%lld/%lld)", (long long)v.num, (long long)v.den);
}

/* ---- the compiled form -------------------------------------------------- */

enum {
    OP_CONST, /* push consts[arg] */
    OP_SLOT,  /* push slots[arg] */
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_NEG,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_NOT,
    OP_AND, /* if top is false jump to arg keeping it, else pop it */
    OP_OR,  /* if top is true jump to arg keeping it, else pop it */
    OP_FLOOR,
    OP_CEIL,
    OP_ROUND,
    OP_ABS,
    OP_MIN,
    OP_MAX,
};

typedef struct {
    uint8_t op;
    int16_t arg;
} ins_t;

/* A name in the source, for explanations: where it is and what it stands for. */
typedef struct {
    uint16_t off, len;
    int16_t slot; /* -1: a constant */
    uint8_t type;
    lv_num_t value;
} ref_t;

struct lv_expr {
    lv_expr_type_t type;
    int ncode, nconst, nref;
    uint64_t slots_used;
    ins_t code[LV_EXPR_MAX_CODE];
    lv_num_t consts[LV_EXPR_MAX_CONSTS];
    ref_t refs[LV_EXPR_MAX_REFS];
    char src[LV_EXPR_MAX_SRC + 1];
};

/* ---- tokens ------------------------------------------------------------- */

enum {
    T_END,
    T_NUM,
    T_NAME,
    T_LP,
    T_RP,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_EQ,
    T_NE,
    T_AND,
    T_OR,
    T_NOT,
    T_TRUE,
    T_FALSE,
};

typedef struct {
    const char *src;
    size_t pos;
    int tok;
    size_t tok_off, tok_len;
    lv_num_t tok_num;
    const lv_expr_name_t *names;
    int nnames;
    lv_expr_t *e;
    int depth, nest, barrier;
    lv_expr_error_t *err;
    bool failed;
} parser_t;

static void perr(parser_t *p, size_t off, const char *fmt, const char *arg)
{
    if (p->failed)
        return;
    p->failed = true;
    p->err->column = (int)off + 1;
    snprintf(p->err->message, sizeof p->err->message, fmt, arg ? arg : "");
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A decimal literal with at most 6 decimals, exactly. */
static void lex_number(parser_t *p)
{
    const char *s = p->src;
    size_t i = p->pos;
    int64_t v = 0;
    int64_t scale = 1;
    bool dot = false;
    int decimals = 0;
    for (;; i++) {
        if (is_digit(s[i])) {
            if (dot && ++decimals > 6) {
                perr(p, p->pos, "小数位过多, 最多 6 位 (more than 6 decimals)", NULL);
                return;
            }
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v)) {
                perr(p, p->pos, "数字过大 (number too large)", NULL);
                return;
            }
            if (dot)
                scale *= 10;
        } else if (s[i] == '.' && !dot && is_digit(s[i + 1])) {
            dot = true;
        } else {
            break;
        }
    }
    if (is_alpha(s[i]) || s[i] == '.') {
        perr(p, i, "数字格式错误 (malformed number)", NULL);
        return;
    }
    lv_num_make(v, scale, &p->tok_num);
    p->tok = T_NUM;
    p->tok_len = i - p->pos;
    p->pos = i;
}

/* A two-character operator: <=, >=, ==, !=. */
static void take2(parser_t *p, int tok)
{
    p->tok = tok;
    p->pos++;
    p->tok_len = 2;
}

static void next(parser_t *p)
{
    const char *s = p->src;
    while (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r')
        p->pos++;
    p->tok_off = p->pos;
    p->tok_len = 1;
    char c = s[p->pos];
    if (!c) {
        p->tok = T_END;
        p->tok_len = 0;
        return;
    }
    if (is_digit(c)) {
        lex_number(p);
        return;
    }
    if (is_alpha(c)) {
        size_t i = p->pos;
        while (is_alpha(s[i]) || is_digit(s[i]))
            i++;
        p->tok_len = i - p->pos;
        p->pos = i;
        static const struct {
            const char *word;
            int tok;
        } kw[] = {{"and", T_AND},   {"or", T_OR},       {"not", T_NOT},
                  {"true", T_TRUE}, {"false", T_FALSE}};
        p->tok = T_NAME;
        for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
            if (strlen(kw[k].word) == p->tok_len && !memcmp(kw[k].word, s + p->tok_off, p->tok_len))
                p->tok = kw[k].tok;
        return;
    }
    char d = s[p->pos + 1];
    p->pos++;
    switch (c) {
    case '(': p->tok = T_LP; return;
    case ')': p->tok = T_RP; return;
    case ',': p->tok = T_COMMA; return;
    case '+': p->tok = T_PLUS; return;
    case '-': p->tok = T_MINUS; return;
    case '*': p->tok = T_STAR; return;
    case '/': p->tok = T_SLASH; return;
    case '<':
    case '>':
        if (d == '=')
            take2(p, c == '<' ? T_LE : T_GE);
        else
            p->tok = c == '<' ? T_LT : T_GT;
        return;
    case '=':
        if (d == '=') {
            take2(p, T_EQ);
            return;
        }
        perr(p, p->tok_off, "请用 == 比较 (use == to compare)", NULL);
        break;
    case '!':
        if (d == '=') {
            take2(p, T_NE);
            return;
        }
        perr(p, p->tok_off, "请用 not (use not, not !)", NULL);
        break;
    case '&':
    case '|':
        perr(p, p->tok_off, "请用 and / or (use and, or)", NULL);
        break;
    default: {
        char ch[8];
        if ((unsigned char)c < 0x80)
            snprintf(ch, sizeof ch, "'%c'", c);
        else
            snprintf(ch, sizeof ch, "(UTF-8)");
        perr(p, p->tok_off, "意外的字符 (unexpected character) %s", ch);
    }
    }
    p->tok = T_END;
}

/* ---- code generation ---------------------------------------------------- */

static void emit(parser_t *p, int op, int arg, int stack_change)
{
    if (p->failed)
        return;
    if (p->e->ncode >= LV_EXPR_MAX_CODE) {
        perr(p, p->tok_off, "表达式过长 (expression too long)", NULL);
        return;
    }
    p->e->code[p->e->ncode++] = (ins_t){(uint8_t)op, (int16_t)arg};
    p->depth += stack_change;
    if (p->depth > LV_EXPR_MAX_STACK)
        perr(p, p->tok_off, "表达式过于复杂 (expression too complex)", NULL);
}

static void emit_const(parser_t *p, lv_num_t v)
{
    lv_expr_t *e = p->e;
    int k = 0;
    while (k < e->nconst && !(e->consts[k].num == v.num && e->consts[k].den == v.den))
        k++;
    if (k == e->nconst) {
        if (e->nconst >= LV_EXPR_MAX_CONSTS) {
            perr(p, p->tok_off, "常量过多 (too many constants)", NULL);
            return;
        }
        e->consts[e->nconst++] = v;
    }
    emit(p, OP_CONST, k, +1);
}

/* The constant the instruction at i pushes, when it is a constant that no
 * jump lands between (only then may it be folded). */
static bool const_at(const parser_t *p, int i, lv_num_t *v)
{
    if (i < p->barrier || i < 0 || p->e->code[i].op != OP_CONST)
        return false;
    *v = p->e->consts[p->e->code[i].arg];
    return true;
}

/* Emits a unary numeric operation, folding it when its operand is constant. */
static void emit_unary(parser_t *p, int op, size_t off)
{
    lv_num_t a, r;
    int n = p->e->ncode;
    if (!p->failed && const_at(p, n - 1, &a)) {
        int f;
        switch (op) {
        case OP_NEG: f = num_neg(a, &r); break;
        case OP_FLOOR: r = (lv_num_t){num_floor(a), 1}; f = 0; break;
        case OP_CEIL: f = num_ceil(a, &r); break;
        case OP_ROUND: f = num_round(a, &r); break;
        default: f = num_abs(a, &r); break;
        }
        if (f) {
            perr(p, off, "常量计算出错 (constant arithmetic fails): %s", lv_expr_strerror(f));
            return;
        }
        p->e->ncode--;
        p->depth--;
        emit_const(p, r);
        return;
    }
    emit(p, op, 0, 0);
}

/* Emits a binary numeric operation, folding two constant operands. */
static void emit_binary(parser_t *p, int op, size_t off)
{
    lv_num_t a, b, r;
    int n = p->e->ncode;
    if (!p->failed && const_at(p, n - 2, &a) && const_at(p, n - 1, &b)) {
        int f = 0;
        switch (op) {
        case OP_ADD: f = num_add(a, b, &r); break;
        case OP_SUB: f = num_sub(a, b, &r); break;
        case OP_MUL: f = num_mul(a, b, &r); break;
        case OP_DIV: f = num_div(a, b, &r); break;
        case OP_MIN: r = num_cmp(a, b) <= 0 ? a : b; break;
        default: r = num_cmp(a, b) >= 0 ? a : b; break;
        }
        if (f) {
            perr(p, off, "常量计算出错 (constant arithmetic fails): %s", lv_expr_strerror(f));
            return;
        }
        p->e->ncode -= 2;
        p->depth -= 2;
        emit_const(p, r);
        return;
    }
    if (!p->failed && op == OP_DIV && const_at(p, n - 1, &b) && b.num == 0) {
        perr(p, off, "除以零 (division by zero)", NULL);
        return;
    }
    emit(p, op, 0, -1);
}

/* ---- the parser: each level returns the type of what it compiled -------- */

static lv_expr_type_t parse_or(parser_t *p);

static const char *type_name(lv_expr_type_t t)
{
    return t == LV_EXPR_BOOLEAN ? "布尔值 (a boolean)" : "数值 (a number)";
}

static void want_type(parser_t *p, lv_expr_type_t got, lv_expr_type_t want, size_t off,
                      const char *what)
{
    if (got == want || p->failed)
        return;
    char msg[160];
    snprintf(msg, sizeof msg, "类型错误 (type error): %s 需要%s, 得到%s", what, type_name(want),
             type_name(got));
    perr(p, off, "%s", msg);
}

static bool enter(parser_t *p)
{
    if (++p->nest > LV_EXPR_MAX_NEST) {
        perr(p, p->tok_off, "嵌套过深 (nested too deeply)", NULL);
        return false;
    }
    return true;
}

static const struct {
    const char *name;
    int op, nargs;
} s_funcs[] = {
    {"floor", OP_FLOOR, 1}, {"ceil", OP_CEIL, 1}, {"round", OP_ROUND, 1},
    {"abs", OP_ABS, 1},     {"min", OP_MIN, 2},   {"max", OP_MAX, 2},
};

static lv_expr_type_t parse_call(parser_t *p, int f, size_t off)
{
    next(p); /* the '(' */
    for (int i = 0; i < s_funcs[f].nargs && !p->failed; i++) {
        if (i) {
            if (p->tok != T_COMMA) {
                perr(p, p->tok_off, "%s 需要两个参数 (needs two arguments)", s_funcs[f].name);
                return LV_EXPR_NUMBER;
            }
            next(p);
        }
        size_t aoff = p->tok_off;
        want_type(p, parse_or(p), LV_EXPR_NUMBER, aoff, s_funcs[f].name);
    }
    if (p->tok != T_RP) {
        perr(p, p->tok_off, "需要 ')' (expected ')' closing %s)", s_funcs[f].name);
        return LV_EXPR_NUMBER;
    }
    next(p);
    if (s_funcs[f].nargs == 1)
        emit_unary(p, s_funcs[f].op, off);
    else
        emit_binary(p, s_funcs[f].op, off);
    return LV_EXPR_NUMBER;
}

static lv_expr_type_t parse_name(parser_t *p)
{
    size_t off = p->tok_off, len = p->tok_len;
    const char *s = p->src + off;
    next(p);
    for (size_t f = 0; f < sizeof s_funcs / sizeof s_funcs[0]; f++)
        if (strlen(s_funcs[f].name) == len && !memcmp(s_funcs[f].name, s, len)) {
            if (p->tok != T_LP) {
                perr(p, off, "%s 是函数, 需要 ( (is a function: write floor(x))", s_funcs[f].name);
                return LV_EXPR_NUMBER;
            }
            return parse_call(p, (int)f, off);
        }
    const lv_expr_name_t *nm = NULL;
    for (int i = 0; i < p->nnames && !nm; i++)
        if (strlen(p->names[i].name) == len && !memcmp(p->names[i].name, s, len))
            nm = &p->names[i];
    if (!nm) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < 60 ? len : 60), s);
        perr(p, off, "未知名称 (unknown name) \"%s\"", name);
        return LV_EXPR_NUMBER;
    }
    if (p->e->nref >= LV_EXPR_MAX_REFS) {
        perr(p, off, "名称过多 (too many names)", NULL);
        return nm->type;
    }
    p->e->refs[p->e->nref++] = (ref_t){(uint16_t)off, (uint16_t)len, (int16_t)nm->slot,
                                       (uint8_t)nm->type, nm->value};
    if (nm->slot < 0) {
        emit_const(p, nm->value);
    } else {
        emit(p, OP_SLOT, nm->slot, +1);
        p->e->slots_used |= (uint64_t)1 << nm->slot;
    }
    return nm->type;
}

static lv_expr_type_t parse_unary(parser_t *p)
{
    if (p->failed)
        return LV_EXPR_NUMBER;
    size_t off = p->tok_off;
    lv_expr_type_t t = LV_EXPR_NUMBER;
    switch (p->tok) {
    case T_MINUS:
        if (!enter(p))
            return t;
        next(p);
        want_type(p, parse_unary(p), LV_EXPR_NUMBER, off, "-");
        emit_unary(p, OP_NEG, off);
        p->nest--;
        return LV_EXPR_NUMBER;
    case T_NUM:
        emit_const(p, p->tok_num);
        next(p);
        return LV_EXPR_NUMBER;
    case T_TRUE:
    case T_FALSE:
        emit_const(p, (lv_num_t){p->tok == T_TRUE, 1});
        next(p);
        return LV_EXPR_BOOLEAN;
    case T_NAME:
        if (!enter(p))
            return t;
        t = parse_name(p);
        p->nest--;
        return t;
    case T_LP:
        if (!enter(p))
            return t;
        next(p);
        t = parse_or(p);
        if (p->tok != T_RP)
            perr(p, p->tok_off, "需要 ')' (expected ')')", NULL);
        next(p);
        p->nest--;
        return t;
    case T_END:
        perr(p, off, "表达式不完整 (expression ends too early)", NULL);
        return t;
    default:
        perr(p, off, "语法错误 (syntax error): 这里需要数值、名称或 ( (expected a value here)",
             NULL);
        return t;
    }
}

static lv_expr_type_t parse_product(parser_t *p);

/* One left-associative level of arithmetic: a product (* /) of unary
 * terms, or a sum (+ -) of products. */
static lv_expr_type_t parse_arith(parser_t *p, bool product)
{
    lv_expr_type_t (*operand)(parser_t *) = product ? parse_unary : parse_product;
    int first = product ? T_STAR : T_PLUS, second = product ? T_SLASH : T_MINUS;
    size_t off = p->tok_off;
    lv_expr_type_t t = operand(p);
    while (!p->failed && (p->tok == first || p->tok == second)) {
        int op = product ? (p->tok == T_STAR ? OP_MUL : OP_DIV) : (p->tok == T_PLUS ? OP_ADD : OP_SUB);
        char what[2] = {p->src[p->tok_off], '\0'};
        size_t opoff = p->tok_off;
        want_type(p, t, LV_EXPR_NUMBER, off, what);
        next(p);
        size_t roff = p->tok_off;
        want_type(p, operand(p), LV_EXPR_NUMBER, roff, what);
        emit_binary(p, op, opoff);
        t = LV_EXPR_NUMBER;
    }
    return t;
}

static lv_expr_type_t parse_product(parser_t *p)
{
    return parse_arith(p, true);
}

static lv_expr_type_t parse_sum(parser_t *p)
{
    return parse_arith(p, false);
}

static int compare_op(int tok)
{
    switch (tok) {
    case T_LT: return OP_LT;
    case T_LE: return OP_LE;
    case T_GT: return OP_GT;
    case T_GE: return OP_GE;
    case T_EQ: return OP_EQ;
    case T_NE: return OP_NE;
    default: return -1;
    }
}

static lv_expr_type_t parse_compare(parser_t *p)
{
    size_t off = p->tok_off;
    lv_expr_type_t t = parse_sum(p);
    int op = compare_op(p->tok);
    if (op < 0 || p->failed)
        return t;
    char what[4];
    snprintf(what, sizeof what, "%.*s", (int)p->tok_len, p->src + p->tok_off);
    next(p);
    size_t roff = p->tok_off;
    lv_expr_type_t r = parse_sum(p);
    if (op == OP_EQ || op == OP_NE) {
        want_type(p, r, t, roff, what);
    } else {
        want_type(p, t, LV_EXPR_NUMBER, off, what);
        want_type(p, r, LV_EXPR_NUMBER, roff, what);
    }
    emit(p, op, 0, -1);
    if (compare_op(p->tok) >= 0)
        perr(p, p->tok_off, "比较不能连用, 请用 and (comparisons do not chain; use and)", NULL);
    return LV_EXPR_BOOLEAN;
}

static lv_expr_type_t parse_not(parser_t *p)
{
    if (p->tok != T_NOT)
        return parse_compare(p);
    size_t off = p->tok_off;
    if (!enter(p))
        return LV_EXPR_BOOLEAN;
    next(p);
    want_type(p, parse_not(p), LV_EXPR_BOOLEAN, off, "not");
    emit(p, OP_NOT, 0, 0);
    p->nest--;
    return LV_EXPR_BOOLEAN;
}

/* a and b: a; AND -> end; b; end:   (the jump keeps a false a as the result) */
static lv_expr_type_t parse_logic(parser_t *p, int tok, int op, const char *what,
                                  lv_expr_type_t (*operand)(parser_t *))
{
    size_t off = p->tok_off;
    lv_expr_type_t t = operand(p);
    while (!p->failed && p->tok == tok) {
        want_type(p, t, LV_EXPR_BOOLEAN, off, what);
        next(p);
        int jump = p->e->ncode;
        emit(p, op, 0, -1);
        size_t roff = p->tok_off;
        want_type(p, operand(p), LV_EXPR_BOOLEAN, roff, what);
        if (p->failed)
            break;
        p->e->code[jump].arg = (int16_t)p->e->ncode;
        p->barrier = p->e->ncode; /* a jump lands here: no folding across it */
        t = LV_EXPR_BOOLEAN;
    }
    return t;
}

static lv_expr_type_t parse_and(parser_t *p)
{
    return parse_logic(p, T_AND, OP_AND, "and", parse_not);
}

static lv_expr_type_t parse_or(parser_t *p)
{
    return parse_logic(p, T_OR, OP_OR, "or", parse_and);
}

lv_expr_t *lv_expr_compile(const char *src, const lv_expr_name_t *names, int nnames,
                           lv_expr_error_t *err)
{
    memset(err, 0, sizeof *err);
    size_t len = src ? strlen(src) : 0;
    if (!src || len > LV_EXPR_MAX_SRC) {
        snprintf(err->message, sizeof err->message, "%s",
                 src ? "表达式过长 (expression longer than 1024 bytes)" : "缺少表达式 (no expression)");
        return NULL;
    }
    for (int i = 0; i < nnames; i++)
        if (names[i].slot >= LV_EXPR_MAX_SLOTS) {
            snprintf(err->message, sizeof err->message, "slot %d of %s is out of range",
                     names[i].slot, names[i].name);
            return NULL;
        }
    lv_expr_t *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err->message, sizeof err->message, "内存不足 (out of memory)");
        return NULL;
    }
    memcpy(e->src, src, len + 1);
    parser_t p = {.src = e->src, .names = names, .nnames = nnames, .e = e, .err = err};
    next(&p);
    if (p.tok == T_END && !p.failed)
        perr(&p, 0, "空表达式 (empty expression)", NULL);
    e->type = parse_or(&p);
    if (!p.failed && p.tok != T_END)
        perr(&p, p.tok_off, "多余的内容 (unexpected text after the expression)", NULL);
    if (p.failed) {
        free(e);
        return NULL;
    }
    return e;
}

void lv_expr_destroy(lv_expr_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

lv_expr_type_t lv_expr_type(const lv_expr_t *self)
{
    return self->type;
}

const char *lv_expr_source(const lv_expr_t *self)
{
    return self->src;
}

uint64_t lv_expr_slots_used(const lv_expr_t *self)
{
    return self->slots_used;
}

/* ---- evaluation ----------------------------------------------------------- */

int lv_expr_eval(const lv_expr_t *self, const lv_num_t *slots, lv_num_t *out)
{
    lv_num_t st[LV_EXPR_MAX_STACK];
    int sp = -1, r = 0;
    const ins_t *code = self->code;
    const int n = self->ncode;
    for (int pc = 0; pc < n; pc++) {
        lv_num_t *a = &st[sp > 0 ? sp - 1 : 0], *b = &st[sp >= 0 ? sp : 0];
        switch (code[pc].op) {
        case OP_CONST: st[++sp] = self->consts[code[pc].arg]; break;
        case OP_SLOT: st[++sp] = slots[code[pc].arg]; break;
        case OP_ADD: r = num_add(*a, *b, a); sp--; break;
        case OP_SUB: r = num_sub(*a, *b, a); sp--; break;
        case OP_MUL: r = num_mul(*a, *b, a); sp--; break;
        case OP_DIV: r = num_div(*a, *b, a); sp--; break;
        case OP_NEG: r = num_neg(*b, b); break;
        case OP_LT: *a = (lv_num_t){num_cmp(*a, *b) < 0, 1}; sp--; break;
        case OP_LE: *a = (lv_num_t){num_cmp(*a, *b) <= 0, 1}; sp--; break;
        case OP_GT: *a = (lv_num_t){num_cmp(*a, *b) > 0, 1}; sp--; break;
        case OP_GE: *a = (lv_num_t){num_cmp(*a, *b) >= 0, 1}; sp--; break;
        case OP_EQ: *a = (lv_num_t){num_cmp(*a, *b) == 0, 1}; sp--; break;
        case OP_NE: *a = (lv_num_t){num_cmp(*a, *b) != 0, 1}; sp--; break;
        case OP_NOT: b->num = !b->num; break;
        case OP_AND:
            if (!b->num)
                pc = code[pc].arg - 1;
            else
                sp--;
            break;
        case OP_OR:
            if (b->num)
                pc = code[pc].arg - 1;
            else
                sp--;
            break;
        case OP_FLOOR: *b = (lv_num_t){num_floor(*b), 1}; break;
        case OP_CEIL: r = num_ceil(*b, b); break;
        case OP_ROUND: r = num_round(*b, b); break;
        case OP_ABS: r = num_abs(*b, b); break;
        case OP_MIN:
            if (num_cmp(*b, *a) < 0)
                *a = *b;
            sp--;
            break;
        case OP_MAX:
            if (num_cmp(*b, *a) > 0)
                *a = *b;
            sp--;
            break;
        }
        if (r)
            return r;
    }
    *out = st[0];
    return 0;
}

int lv_expr_test(const lv_expr_t *self, const lv_num_t *slots)
{
    lv_num_t v;
    int r = lv_expr_eval(self, slots, &v);
    return r ? r : v.num != 0;
}

int lv_expr_substitute(const lv_expr_t *self, const lv_num_t *slots, char *buf, size_t n)
{
    size_t at = 0, want = 0;
    char val[64];
    const char *src = self->src;
    size_t pos = 0;
    for (int i = 0; i <= self->nref; i++) {
        size_t end = i < self->nref ? self->refs[i].off : strlen(src);
        const char *piece = src + pos;
        size_t plen = end - pos;
        for (int k = 0; k < 2; k++) {
            if (k == 1) {
                if (i == self->nref)
                    break;
                const ref_t *rf = &self->refs[i];
                lv_num_t v = rf->slot < 0 ? rf->value : slots[rf->slot];
                int vl = lv_num_format(v, (lv_expr_type_t)rf->type, val, sizeof val);
                piece = val;
                plen = vl < 0 ? 0 : (size_t)vl;
                pos = (size_t)rf->off + rf->len;
            }
            want += plen;
            if (n && at < n - 1) {
                size_t room = n - 1 - at;
                size_t c = plen < room ? plen : room;
                memcpy(buf + at, piece, c);
                at += c;
            }
        }
    }
    if (n)
        buf[at] = '\0';
    return (int)want;
}
