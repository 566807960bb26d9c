/* lv_expr: the small expression language of the policy's rules.
 *
 * An expression is compiled once, when the policy is loaded, into a flat
 * list of instructions; evaluating it per household allocates nothing (a
 * fixed operand stack) and touches no global state.
 *
 * Values are exact: a number is a fraction num/den of two int64 (money in
 * fen), in lowest terms with den >= 1, so `/` never rounds and a comparison
 * such as `(income - rigid) / members < poverty_line` is exact. A value is
 * rounded only where the expression says so: floor(x) (toward minus
 * infinity), ceil(x), round(x) (half up). Every operation is checked: a
 * result that does not fit int64 is an overflow error, never a wrong value
 * (products and sums are formed in 128 bits, then reduced and checked).
 *
 * Grammar, lowest precedence first:
 *   or      := and ("or" and)*
 *   and     := not ("and" not)*
 *   not     := "not" not | compare
 *   compare := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]   (no chains)
 *   sum     := product (("+" | "-") product)*
 *   product := unary (("*" | "/") unary)*
 *   unary   := "-" unary | primary
 *   primary := number | "true" | "false" | name | function "(" args ")" | "(" or ")"
 * Numbers are decimal, with up to 6 decimals ("1.2" is exactly 6/5). Names
 * are those the caller declares (facts and constants); functions are floor,
 * ceil, round, abs (one number) and min, max (two numbers). Types are
 * checked at compile time: and/or/not take booleans, arithmetic and < <= >
 * >= take numbers, == and != take two of the same type. */
#ifndef LV_EXPR_H
#define LV_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An exact number num/den, den >= 1, in lowest terms; a boolean is 0 or 1
 * over 1. */
typedef struct {
    int64_t num;
    int64_t den;
} lv_num_t;

typedef enum { LV_EXPR_NUMBER = 1, LV_EXPR_BOOLEAN = 2 } lv_expr_type_t;

/* A name an expression may use: a fact read from the slots array at each
 * evaluation (slot 0..63), or a constant (slot -1) folded into the code. */
typedef struct {
    const char *name;
    lv_expr_type_t type;
    int slot;
    lv_num_t value; /* the constant's value when slot is -1 */
} lv_expr_name_t;

#define LV_EXPR_MAX_SRC 1024  /* bytes of source text */
#define LV_EXPR_MAX_CODE 256  /* instructions */
#define LV_EXPR_MAX_CONSTS 64 /* distinct literals and constants */
#define LV_EXPR_MAX_STACK 32  /* operand stack depth during evaluation */
#define LV_EXPR_MAX_NEST 32   /* nesting of parentheses, calls and unary operators */
#define LV_EXPR_MAX_REFS 64   /* names referenced (for explanations) */
#define LV_EXPR_MAX_SLOTS 64

/* Evaluation faults (negative, apart from the LV_E* codes). */
#define LV_EXPR_EOVERFLOW -101 /* a value does not fit int64 */
#define LV_EXPR_EDIVZERO -102  /* division by zero */

typedef struct lv_expr lv_expr_t;

typedef struct {
    int column;        /* 1-based byte column in the source, 0 when not about a place */
    char message[192]; /* Chinese with English in brackets */
} lv_expr_error_t;

/* Compiles src against the declared names. NULL on error, with err filled
 * (unknown name, type error, syntax error, a limit exceeded). */
lv_expr_t *lv_expr_compile(const char *src, const lv_expr_name_t *names, int nnames,
                           lv_expr_error_t *err);
void lv_expr_destroy(lv_expr_t **self_p);

lv_expr_type_t lv_expr_type(const lv_expr_t *self);
const char *lv_expr_source(const lv_expr_t *self);
/* Bit i set when the expression reads slot i. */
uint64_t lv_expr_slots_used(const lv_expr_t *self);

/* Evaluates with the facts in slots (indexed by the names' slot numbers).
 * Returns 0, LV_EXPR_EOVERFLOW or LV_EXPR_EDIVZERO. No allocation. */
int lv_expr_eval(const lv_expr_t *self, const lv_num_t *slots, lv_num_t *out);

/* Evaluates and tells whether a boolean expression is true; an error code
 * (< 0) when evaluation fails. */
int lv_expr_test(const lv_expr_t *self, const lv_num_t *slots);

/* The source with every name replaced by the value it has in slots, e.g.
 * "income - rigid < line * members" -> "1200000 - 900000 < 520000 * 4".
 * Returns the length it wanted (like snprintf). */
int lv_expr_substitute(const lv_expr_t *self, const lv_num_t *slots, char *buf, size_t n);

/* A value as text: "1200", "-7", "(1040000/3)" or, for a boolean, "true" /
 * "false". Returns the length it wanted (like snprintf). */
int lv_num_format(lv_num_t v, lv_expr_type_t type, char *buf, size_t n);

/* A fault code as text (Chinese with English in brackets). */
const char *lv_expr_strerror(int code);

/* Exact arithmetic on lv_num_t, the same the evaluator uses: 0 or a fault. */
int lv_num_make(int64_t num, int64_t den, lv_num_t *out); /* reduces; den != 0 */
int lv_num_add(lv_num_t a, lv_num_t b, lv_num_t *out);
int lv_num_sub(lv_num_t a, lv_num_t b, lv_num_t *out);
int lv_num_mul(lv_num_t a, lv_num_t b, lv_num_t *out);
int lv_num_div(lv_num_t a, lv_num_t b, lv_num_t *out);
/* -1, 0 or 1; exact. */
int lv_num_cmp(lv_num_t a, lv_num_t b);
/* Rounded toward minus infinity. */
int64_t lv_num_floor(lv_num_t a);

#endif
