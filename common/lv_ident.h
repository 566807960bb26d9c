/* Identity matching: links a feed row's identity (name, ID number, birth
 * date, gender) to one registry person of a candidate set, or refers it to
 * review. Never links silently: every answer has a score, and below the
 * threshold, or when two candidates are about as good, the verdict is review
 * with the candidates listed.
 *
 * A valid 18-character ID number decides on its own (15-digit numbers are
 * upgraded first). When the ID is missing, fails its check, or is a 15-digit
 * number not in the set, the row is matched on what is left: an ID one
 * transposition or one character away from a candidate's, the birth date and
 * region an ID still carries, and the name compared in simplified characters
 * with same-pinyin homophones and one-character typos tolerated.
 *
 * Names are prepared once per person (simplified code points and toneless
 * pinyin syllables through ICU's Traditional-Simplified and
 * Han-Latin; Latin-ASCII transliterators, cached per character), so that a
 * match costs a few hash look-ups and comparisons of small arrays.
 *
 * Not thread-safe: one lv_ident_t (and its sets) per thread. */
#ifndef LV_IDENT_H
#define LV_IDENT_H

#include <stddef.h>
#include <stdint.h>

/* The transliterators and the per-character cache. */
typedef struct lv_ident lv_ident_t;

/* Returns NULL when ICU cannot open its transliterators (*reason says why). */
lv_ident_t *lv_ident_new(const char **reason);
void lv_ident_destroy(lv_ident_t **self_p);

/* A name ready to compare: spaces and middle dots removed, full-width ASCII
 * folded, each character simplified, with its toneless pinyin syllable (0
 * when it has none, e.g. a Latin letter). Longer names are cut. */
#define LV_IDENT_NAME_MAX 24
typedef struct {
    uint32_t cp[LV_IDENT_NAME_MAX];
    uint16_t py[LV_IDENT_NAME_MAX];
    uint8_t len;
} lv_ident_name_t;

/* Prepares utf8[0..len). Returns 0, or LV_EINVAL for malformed UTF-8. */
int lv_ident_name_prepare(lv_ident_t *self, const char *utf8, size_t len, lv_ident_name_t *out);

/* 1 for the same simplified name; a same-pinyin character costs 0.15, any
 * other changed, missing or extra character 1, divided by the longer length.
 * -1 when either name is empty. */
double lv_ident_name_similarity(const lv_ident_name_t *a, const lv_ident_name_t *b);

/* The name's pinyin key, syllables separated by spaces ("wang wei"): a
 * blocking key for storage or SQL. Returns its length, or LV_ELIMIT when it
 * does not fit in cap (out is then ""). */
int lv_ident_pinyin_key(const lv_ident_t *self, const lv_ident_name_t *name, char *out, size_t cap);

/* A candidate set: the registry persons of one village or one county, each
 * with its prepared name and indexes by ID, birth date, name, pinyin and
 * name-with-one-character-unknown. */
typedef struct lv_ident_set lv_ident_set_t;

lv_ident_set_t *lv_ident_set_new(lv_ident_t *ctx);
void lv_ident_set_destroy(lv_ident_set_t **self_p);

/* Adds a person: a valid ID number (18 characters, or 15 upgraded), the
 * registry name, and the caller's handle for it (returned in results).
 * Returns 0, LV_EINVAL with *reason for a bad ID or name, LV_ENOMEM. */
int lv_ident_set_add(lv_ident_set_t *set, const char *id_number, const char *name, int64_t tag,
                     const char **reason);
size_t lv_ident_set_size(const lv_ident_set_t *set);

#define LV_IDENT_UNKNOWN_DAY INT32_MIN

/* A feed row's identity. Absent parts are NULL or "" (strings),
 * LV_IDENT_UNKNOWN_DAY (birth) and 0 (gender). */
typedef struct {
    const char *name;       /* UTF-8 */
    const char *id_number;  /* as written in the row */
    int32_t birth_day;      /* days since 1970-01-01 */
    int gender;             /* 1 male, 2 female */
} lv_ident_query_t;

/* The defaults: a link needs a score of at least 0.80 and a lead of 0.05
 * over the runner-up. */
#define LV_IDENT_LINK_THRESHOLD 0.80
#define LV_IDENT_MIN_MARGIN 0.05

typedef struct {
    double link_threshold;  /* below it: review */
    double min_margin;      /* best − runner-up below it: review */
} lv_ident_params_t;

lv_ident_params_t lv_ident_params_default(void);

typedef enum {
    LV_IDENT_NONE = 0,  /* a valid ID that is not in the set: keep the row as unmatched */
    LV_IDENT_LINK,      /* linked to cand[0] */
    LV_IDENT_REVIEW     /* a person must decide among cand[0..n) (n may be 0) */
} lv_ident_verdict_t;

/* What a candidate's score rests on. */
typedef enum {
    LV_IDENT_BY_ID = 0,     /* the same valid ID (a 15-digit one upgraded) */
    LV_IDENT_BY_ID_SWAP,    /* the row's ID is the candidate's with two characters swapped */
    LV_IDENT_BY_ID_TYPO,    /* the row's ID differs from the candidate's in one character */
    LV_IDENT_BY_ID_PARTS,   /* a broken ID: its birth date and region compared, and the name */
    LV_IDENT_BY_NAME        /* no usable ID: the name (and birth date, gender if given) */
} lv_ident_basis_t;

typedef struct {
    int64_t tag;
    double score;            /* 0..1 */
    double name_similarity;  /* -1 when the row has no name */
    lv_ident_basis_t basis;
} lv_ident_cand_t;

/* The state of the row's ID number. */
typedef enum {
    LV_IDENT_ID_VALID = 0,  /* 18 characters, check character right */
    LV_IDENT_ID_OLD15,      /* a 15-digit number (upgraded; it has no check character) */
    LV_IDENT_ID_BROKEN,     /* 18 (or 15) digits that fail the check or the date */
    LV_IDENT_ID_GARBLED,    /* something else: wrong length, letters */
    LV_IDENT_ID_MISSING
} lv_ident_id_state_t;

#define LV_IDENT_MAX_CANDS 5

typedef struct {
    lv_ident_verdict_t verdict;
    lv_ident_id_state_t id_state;
    int n;                                     /* candidates kept, best first */
    lv_ident_cand_t cand[LV_IDENT_MAX_CANDS];  /* cand[0] best, cand[1] runner-up */
    const char *reason;                        /* static; Chinese, English in brackets */
} lv_ident_result_t;

/* Matches q against the set. Returns 0 (the verdict is in out), or LV_EINVAL
 * when q's name is malformed UTF-8 (out is then a review with that reason). */
int lv_ident_match(lv_ident_set_t *set, const lv_ident_query_t *q, const lv_ident_params_t *p,
                   lv_ident_result_t *out);

const char *lv_ident_verdict_name(lv_ident_verdict_t v);  /* "link", "review", "none" */
const char *lv_ident_basis_name(lv_ident_basis_t b);      /* "id", "id_swap", ... */

#endif
