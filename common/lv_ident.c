/* Identity matching: prepared names, candidate sets with hash indexes, and
 * the scoring that decides between link and review. */
#define _POSIX_C_SOURCE 200809L

#include "lv_ident.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/ustring.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>
#include <unicode/utrans.h>

#include "lv_err.h"
#include "lv_idnum.h"
#include "lv_time.h"

/* ---- per-character preparation ------------------------------------------ */

/* Names use a few thousand distinct characters; the cache holds up to half
 * its slots and, when full, characters are converted without being kept. */
#define CHAR_SLOTS (1u << 15)
#define SYLLABLE_MAX 2048
#define SYLLABLE_LEN 8 /* the longest syllable, "zhuang", and its NUL */

typedef struct {
    uint32_t cp; /* 0: empty slot */
    uint32_t simp;
    uint16_t py;
} char_slot_t;

struct lv_ident {
    UTransliterator *t2s; /* Traditional-Simplified */
    UTransliterator *han; /* Han-Latin; Latin-ASCII: toneless pinyin */
    char_slot_t *slots;
    size_t cached;
    char syllable[SYLLABLE_MAX][SYLLABLE_LEN]; /* [0] is "no syllable" */
    uint16_t n_syllables;
};

static UTransliterator *open_trans(const char *id, const char **reason)
{
    UChar uid[64];
    u_uastrncpy(uid, id, 63);
    uid[63] = 0;
    UErrorCode status = U_ZERO_ERROR;
    UParseError pe;
    UTransliterator *t = utrans_openU(uid, -1, UTRANS_FORWARD, NULL, 0, &pe, &status);
    if (U_FAILURE(status)) {
        *reason = "ICU 无法打开转写器 (ICU cannot open a transliterator: is its data installed?)";
        return NULL;
    }
    return t;
}

lv_ident_t *lv_ident_new(const char **reason)
{
    const char *dummy;
    if (!reason)
        reason = &dummy;
    lv_ident_t *self = calloc(1, sizeof *self);
    if (!self) {
        *reason = "内存不足 (out of memory)";
        return NULL;
    }
    self->slots = calloc(CHAR_SLOTS, sizeof *self->slots);
    self->n_syllables = 1;
    if (!self->slots) {
        *reason = "内存不足 (out of memory)";
        lv_ident_destroy(&self);
        return NULL;
    }
    self->t2s = open_trans("Traditional-Simplified", reason);
    if (self->t2s)
        self->han = open_trans("Han-Latin; Latin-ASCII", reason);
    if (!self->han) {
        lv_ident_destroy(&self);
        return NULL;
    }
    return self;
}

void lv_ident_destroy(lv_ident_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_ident_t *self = *self_p;
    if (self->t2s)
        utrans_close(self->t2s);
    if (self->han)
        utrans_close(self->han);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

/* Runs one code point through a transliterator; the result is written to
 * out (UTF-16, NUL-terminated). Returns its length, or -1. */
static int32_t trans_one(UTransliterator *t, uint32_t cp, UChar *out, int32_t cap)
{
    int32_t len = 0;
    U16_APPEND_UNSAFE(out, len, cp);
    int32_t limit = len;
    UErrorCode status = U_ZERO_ERROR;
    utrans_transUChars(t, out, &len, cap - 1, 0, &limit, &status);
    if (U_FAILURE(status) || len <= 0 || len >= cap)
        return -1;
    out[len] = 0;
    return len;
}

static uint16_t intern_syllable(lv_ident_t *self, const char *s)
{
    for (uint16_t i = 1; i < self->n_syllables; i++)
        if (strcmp(self->syllable[i], s) == 0)
            return i;
    if (self->n_syllables >= SYLLABLE_MAX)
        return 0;
    memcpy(self->syllable[self->n_syllables], s, strlen(s) + 1);
    return self->n_syllables++;
}

/* The simplified form and pinyin syllable of a non-ASCII code point. */
static void convert_char(lv_ident_t *self, uint32_t cp, uint32_t *simp, uint16_t *py)
{
    UChar buf[32];
    *simp = cp;
    *py = 0;
    int32_t n = trans_one(self->t2s, cp, buf, 32);
    if (n > 0) {
        int32_t i = 0;
        UChar32 c;
        U16_NEXT(buf, i, n, c);
        if (i == n && c > 0)
            *simp = (uint32_t)c;
    }
    n = trans_one(self->han, *simp, buf, 32);
    if (n <= 0 || n >= SYLLABLE_LEN)
        return;
    char s[SYLLABLE_LEN];
    for (int32_t i = 0; i < n; i++) {
        UChar c = buf[i];
        if (c >= 'A' && c <= 'Z')
            c = (UChar)(c - 'A' + 'a');
        if (c < 'a' || c > 'z')
            return; /* no pinyin for it: left as it is */
        s[i] = (char)c;
    }
    s[n] = '\0';
    *py = intern_syllable(self, s);
}

static uint32_t cp_hash(uint32_t cp)
{
    return (cp * 2654435761u) >> 17;
}

static void char_info(lv_ident_t *self, uint32_t cp, uint32_t *simp, uint16_t *py)
{
    uint32_t i = cp_hash(cp) & (CHAR_SLOTS - 1);
    for (;;) {
        char_slot_t *s = &self->slots[i];
        if (s->cp == cp) {
            *simp = s->simp;
            *py = s->py;
            return;
        }
        if (s->cp == 0)
            break;
        i = (i + 1) & (CHAR_SLOTS - 1);
    }
    convert_char(self, cp, simp, py);
    if (self->cached < CHAR_SLOTS / 2) {
        self->slots[i] = (char_slot_t){cp, *simp, *py};
        self->cached++;
    }
}

/* Characters that separate or decorate but never distinguish names. */
static bool ignorable(uint32_t cp)
{
    switch (cp) {
    case ' ': case '\t': case '\r': case '\n': case '.': case '-':
    case 0x00A0: /* no-break space */
    case 0x00B7: /* middle dot in minority names: 买买提·吐尔逊 */
    case 0x2022: case 0x2027: case 0x30FB: case 0xFF0E: case 0xFF65:
    case 0x200B: case 0x200C: case 0x200D: case 0xFEFF:
    case 0x3000: /* ideographic space */
        return true;
    default:
        return false;
    }
}

int lv_ident_name_prepare(lv_ident_t *self, const char *utf8, size_t len, lv_ident_name_t *out)
{
    out->len = 0;
    if (!utf8)
        return 0;
    int32_t i = 0, n = len > INT32_MAX ? INT32_MAX : (int32_t)len;
    while (i < n) {
        UChar32 c;
        U8_NEXT(utf8, i, n, c);
        if (c < 0)
            return LV_EINVAL;
        uint32_t cp = (uint32_t)c;
        if (cp == 0 || ignorable(cp))
            continue;
        if (cp >= 0xFF01 && cp <= 0xFF5E)
            cp -= 0xFEE0; /* full-width ASCII */
        uint32_t simp = cp;
        uint16_t py = 0;
        if (cp < 0x80) {
            if (cp >= 'A' && cp <= 'Z')
                simp = cp - 'A' + 'a';
        } else {
            char_info(self, cp, &simp, &py);
        }
        if (out->len == LV_IDENT_NAME_MAX)
            break;
        out->cp[out->len] = simp;
        out->py[out->len] = py;
        out->len++;
    }
    return 0;
}

int lv_ident_pinyin_key(const lv_ident_t *self, const lv_ident_name_t *name, char *out, size_t cap)
{
    size_t pos = 0;
    for (int i = 0; i < name->len; i++) {
        char tmp[12];
        const char *s = tmp;
        if (name->py[i]) {
            s = self->syllable[name->py[i]];
        } else if (name->cp[i] < 0x80) {
            tmp[0] = (char)name->cp[i];
            tmp[1] = '\0';
        } else {
            /* No pinyin: the code point itself keeps the key distinct. */
            int k = 0;
            tmp[k++] = 'U';
            for (int shift = 20; shift >= 0; shift -= 4)
                tmp[k++] = "0123456789abcdef"[(name->cp[i] >> shift) & 0xF];
            tmp[k] = '\0';
        }
        size_t l = strlen(s);
        if (pos + l + (i ? 1 : 0) + 1 > cap) {
            if (cap)
                out[0] = '\0';
            return LV_ELIMIT;
        }
        if (i)
            out[pos++] = ' ';
        memcpy(out + pos, s, l);
        pos += l;
    }
    if (cap)
        out[pos] = '\0';
    return (int)pos;
}

/* ---- name similarity ------------------------------------------------------ */

#define HOMOPHONE_COST 0.15

static double similarity(const uint32_t *acp, const uint16_t *apy, int la, const uint32_t *bcp,
                         const uint16_t *bpy, int lb)
{
    if (la == 0 || lb == 0)
        return -1.0;
    /* Weighted edit distance over characters, two rows. */
    double prev[LV_IDENT_NAME_MAX + 1], cur[LV_IDENT_NAME_MAX + 1];
    for (int j = 0; j <= lb; j++)
        prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            double sub = 1.0;
            if (acp[i - 1] == bcp[j - 1])
                sub = 0.0;
            else if (apy[i - 1] && apy[i - 1] == bpy[j - 1])
                sub = HOMOPHONE_COST;
            double best = prev[j - 1] + sub;
            if (prev[j] + 1.0 < best)
                best = prev[j] + 1.0;
            if (cur[j - 1] + 1.0 < best)
                best = cur[j - 1] + 1.0;
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(double) * (size_t)(lb + 1));
    }
    double longer = la > lb ? la : lb;
    double sim = 1.0 - prev[lb] / longer;
    return sim < 0 ? 0 : sim;
}

double lv_ident_name_similarity(const lv_ident_name_t *a, const lv_ident_name_t *b)
{
    return similarity(a->cp, a->py, a->len, b->cp, b->py, b->len);
}

/* ---- candidate sets ------------------------------------------------------- */

typedef struct {
    char id[18];
    uint8_t gender;
    uint8_t name_len;
    int32_t birth;     /* days since 1970-01-01 */
    uint32_t name_off; /* into the set's code point and syllable pools */
    int64_t tag;
} person_t;

typedef struct {
    uint64_t key;
    int32_t person;
    int32_t next;
} entry_t;

struct lv_ident_set {
    lv_ident_t *ctx;
    person_t *persons;
    size_t n, cap;
    uint32_t *cps;
    uint16_t *pys;
    size_t pool_len, pool_cap;
    entry_t *entries;
    size_t n_entries, entries_cap;
    int32_t *buckets;
    size_t n_buckets; /* a power of two */
    uint32_t *mark;   /* == epoch: already considered in the current match */
    size_t mark_cap;
    uint32_t epoch;
};

/* Index kinds, mixed into every key. */
enum { KEY_ID17 = 1, KEY_BIRTH, KEY_NAME, KEY_PINYIN, KEY_WILD };

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t finish(uint64_t h)
{
    /* splitmix64's finaliser: FNV's low bits alone spread poorly. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static uint64_t key_start(int kind)
{
    unsigned char k = (unsigned char)kind;
    return fnv(0xcbf29ce484222325ULL, &k, 1);
}

static uint64_t key_id17(const char *id)
{
    return finish(fnv(key_start(KEY_ID17), id, 17));
}

static uint64_t key_birth(int32_t day)
{
    return finish(fnv(key_start(KEY_BIRTH), &day, sizeof day));
}

static uint64_t key_name(const uint32_t *cp, int len)
{
    return finish(fnv(key_start(KEY_NAME), cp, sizeof *cp * (size_t)len));
}

static uint64_t key_pinyin(const uint16_t *py, int len)
{
    return finish(fnv(key_start(KEY_PINYIN), py, sizeof *py * (size_t)len));
}

/* The name with character `pos` unknown: names one typo apart share one.
 * Only for names of three characters or more: a two-character name with one
 * unknown is its surname alone, which half a village may share. */
#define WILD_MIN_LEN 3
static uint64_t key_wild(const uint32_t *cp, int len, int pos)
{
    unsigned char head[2] = {(unsigned char)len, (unsigned char)pos};
    uint64_t h = fnv(key_start(KEY_WILD), head, 2);
    h = fnv(h, cp, sizeof *cp * (size_t)pos);
    h = fnv(h, cp + pos + 1, sizeof *cp * (size_t)(len - pos - 1));
    return finish(h);
}

static bool all_pinyin(const uint16_t *py, int len)
{
    for (int i = 0; i < len; i++)
        if (!py[i])
            return false;
    return len > 0;
}

lv_ident_set_t *lv_ident_set_new(lv_ident_t *ctx)
{
    lv_ident_set_t *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->ctx = ctx;
    set->n_buckets = 64;
    set->buckets = malloc(set->n_buckets * sizeof *set->buckets);
    if (!set->buckets) {
        free(set);
        return NULL;
    }
    memset(set->buckets, 0xff, set->n_buckets * sizeof *set->buckets);
    return set;
}

void lv_ident_set_destroy(lv_ident_set_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lv_ident_set_t *set = *self_p;
    free(set->persons);
    free(set->cps);
    free(set->pys);
    free(set->entries);
    free(set->buckets);
    free(set->mark);
    free(set);
    *self_p = NULL;
}

size_t lv_ident_set_size(const lv_ident_set_t *set)
{
    return set->n;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return LV_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* Room for one more person with a name of name_len characters. */
static int reserve(lv_ident_set_t *set, size_t name_len)
{
    size_t mark_cap = set->mark_cap, pool_cap = set->pool_cap;
    if (grow((void **)&set->persons, &set->cap, set->n + 1, sizeof(person_t)) ||
        grow((void **)&set->mark, &set->mark_cap, set->n + 1, sizeof(uint32_t)) ||
        grow((void **)&set->cps, &set->pool_cap, set->pool_len + name_len, sizeof(uint32_t)))
        return LV_ENOMEM;
    if (set->mark_cap != mark_cap)
        memset(set->mark + mark_cap, 0, (set->mark_cap - mark_cap) * sizeof *set->mark);
    if (set->pool_cap != pool_cap) {
        /* The syllable pool follows the code point pool's capacity. */
        uint16_t *pys = realloc(set->pys, set->pool_cap * sizeof *pys);
        if (!pys) {
            set->pool_cap = pool_cap;
            return LV_ENOMEM;
        }
        set->pys = pys;
    }
    return 0;
}

static int rehash(lv_ident_set_t *set, size_t n_buckets)
{
    int32_t *b = malloc(n_buckets * sizeof *b);
    if (!b)
        return LV_ENOMEM;
    memset(b, 0xff, n_buckets * sizeof *b);
    for (size_t e = 0; e < set->n_entries; e++) {
        size_t h = set->entries[e].key & (n_buckets - 1);
        set->entries[e].next = b[h];
        b[h] = (int32_t)e;
    }
    free(set->buckets);
    set->buckets = b;
    set->n_buckets = n_buckets;
    return 0;
}

static int index_add(lv_ident_set_t *set, uint64_t key, int32_t person)
{
    if (set->n_entries >= set->n_buckets && rehash(set, set->n_buckets * 2))
        return LV_ENOMEM;
    if (grow((void **)&set->entries, &set->entries_cap, set->n_entries + 1, sizeof(entry_t)))
        return LV_ENOMEM;
    size_t h = key & (set->n_buckets - 1);
    set->entries[set->n_entries] = (entry_t){key, person, set->buckets[h]};
    set->buckets[h] = (int32_t)set->n_entries++;
    return 0;
}

int lv_ident_set_add(lv_ident_set_t *set, const char *id_number, const char *name, int64_t tag,
                     const char **reason)
{
    const char *dummy;
    if (!reason)
        reason = &dummy;
    lv_idnum_t id;
    if (!id_number || lv_idnum_parse(id_number, strlen(id_number), &id, reason))
        return LV_EINVAL;
    lv_ident_name_t nm;
    if (!name || lv_ident_name_prepare(set->ctx, name, strlen(name), &nm)) {
        *reason = "姓名不是有效的 UTF-8 (name is not valid UTF-8)";
        return LV_EINVAL;
    }
    if (set->n >= INT32_MAX - 1) {
        *reason = "候选集已满 (candidate set full)";
        return LV_ELIMIT;
    }
    if (reserve(set, nm.len)) {
        *reason = "内存不足 (out of memory)";
        return LV_ENOMEM;
    }

    int32_t idx = (int32_t)set->n;
    person_t *p = &set->persons[idx];
    memcpy(p->id, id.s, 18);
    p->gender = (uint8_t)lv_idnum_gender(&id);
    p->birth = (int32_t)(lv_idnum_birth_ms(&id) / LV_DAY_MS);
    p->name_len = nm.len;
    p->name_off = (uint32_t)set->pool_len;
    p->tag = tag;
    memcpy(set->cps + set->pool_len, nm.cp, sizeof(uint32_t) * nm.len);
    memcpy(set->pys + set->pool_len, nm.py, sizeof(uint16_t) * nm.len);
    set->pool_len += nm.len;
    set->n++;

    int e = index_add(set, key_id17(p->id), idx);
    if (!e)
        e = index_add(set, key_birth(p->birth), idx);
    if (!e && nm.len) {
        e = index_add(set, key_name(nm.cp, nm.len), idx);
        if (!e && all_pinyin(nm.py, nm.len))
            e = index_add(set, key_pinyin(nm.py, nm.len), idx);
        for (int i = 0; !e && nm.len >= WILD_MIN_LEN && i < nm.len; i++)
            e = index_add(set, key_wild(nm.cp, nm.len, i), idx);
    }
    if (e) {
        *reason = "内存不足 (out of memory)";
        return e;
    }
    return 0;
}

/* ---- matching ------------------------------------------------------------- */

/* How a candidate's ID relates to the row's. */
typedef enum {
    REL_EXACT,
    REL_SWAP,
    REL_TYPO,
    REL_PARTS_BR,  /* broken ID: birth date and region both as the candidate's */
    REL_PARTS_B,   /* broken ID: birth date as the candidate's, region not */
    REL_PARTS_NO,  /* broken ID: birth date differs or unreadable */
    REL_NAME,      /* no usable ID */
    REL_HIDDEN,    /* valid ID, one swap the check cannot see away: never linked */
    REL_CONFLICT,  /* valid ID of someone else */
    REL_COUNT
} rel_t;

enum { NC_EXACT, NC_HOMOPHONE, NC_CLOSE, NC_FAR, NC_UNKNOWN, NC_COUNT };

/* Scores by ID relation and name class. The shape: an ID that is right
 * decides; an ID one slip away decides with the name's help; the birth date
 * a broken ID still carries plus the same name decides; a name alone links
 * only when it is the same name and no one else in the set has it; a
 * homophone or a typo alone never links. A name that differs entirely sends
 * even a matching ID to review. */
static const double SCORE[REL_COUNT][NC_COUNT] = {
    /*                exact homophone close far  unknown */
    [REL_EXACT]    = {1.00, 0.99, 0.97, 0.60, 1.00},
    [REL_SWAP]     = {0.98, 0.97, 0.93, 0.40, 0.88},
    [REL_TYPO]     = {0.95, 0.93, 0.85, 0.35, 0.84},
    [REL_PARTS_BR] = {0.90, 0.86, 0.70, 0.20, 0.50},
    [REL_PARTS_B]  = {0.85, 0.80, 0.60, 0.20, 0.40},
    [REL_PARTS_NO] = {0.50, 0.45, 0.30, 0.00, 0.10},
    [REL_NAME]     = {0.88, 0.75, 0.55, 0.00, 0.00},
    [REL_HIDDEN]   = {0.70, 0.70, 0.65, 0.30, 0.65},
    [REL_CONFLICT] = {0.00, 0.00, 0.00, 0.00, 0.00},
};
static const lv_ident_basis_t BASIS[REL_COUNT] = {
    [REL_EXACT] = LV_IDENT_BY_ID,          [REL_SWAP] = LV_IDENT_BY_ID_SWAP,
    [REL_TYPO] = LV_IDENT_BY_ID_TYPO,      [REL_PARTS_BR] = LV_IDENT_BY_ID_PARTS,
    [REL_PARTS_B] = LV_IDENT_BY_ID_PARTS,  [REL_PARTS_NO] = LV_IDENT_BY_ID_PARTS,
    [REL_NAME] = LV_IDENT_BY_NAME,         [REL_HIDDEN] = LV_IDENT_BY_ID_SWAP,
    [REL_CONFLICT] = LV_IDENT_BY_ID,
};

/* A row's birth date or gender, when given, that disagrees with the ID's. */
#define BIRTH_AGREES_BONUS 0.04
#define BIRTH_DIFFERS_FACTOR 0.5
#define GENDER_DIFFERS_FACTOR 0.6

/* The most an ID with no check character (a 15-digit one) earns for being
 * near a candidate's when no name agrees: below any sensible threshold. */
#define OLD15_NEAR_CAP 0.70

/* Candidates considered per match: a bound on the work a very common name
 * in a county-wide set can cause. */
#define CONSIDER_MAX 512

typedef struct {
    lv_ident_set_t *set;
    const lv_ident_query_t *q;
    lv_ident_name_t name;
    lv_ident_id_state_t state;
    char id[19];        /* valid or upgraded: the 18 characters; broken: the raw ones */
    bool check_usable;  /* the 18th character was written, not computed */
    bool birth_ok;      /* id[6..14) is a real date */
    int32_t id_birth;
    int n_considered;
    lv_ident_result_t *out;
} match_t;

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool date_part(const char *id, int32_t *day)
{
    if (!is_digits(id + 6, 8))
        return false;
    int64_t ms;
    const char *why;
    if (lv_date_parse(id + 6, 8, &ms, &why) || id[6] < '1')
        return false;
    *day = (int32_t)(ms / LV_DAY_MS);
    return true;
}

/* Sorts out the row's ID: valid, a 15-digit one upgraded, broken (kept raw
 * for near matches), garbled or missing. */
static void read_id(match_t *m)
{
    const char *s = m->q->id_number ? m->q->id_number : "";
    size_t len = strlen(s);
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0) {
        m->state = LV_IDENT_ID_MISSING;
        return;
    }
    lv_idnum_t id;
    const char *why;
    if (lv_idnum_parse(s, len, &id, &why) == 0) {
        memcpy(m->id, id.s, 19);
        m->state = len == 15 ? LV_IDENT_ID_OLD15 : LV_IDENT_ID_VALID;
        m->check_usable = len == 18;
    } else if (len == 18) {
        for (size_t i = 0; i < 18; i++) {
            char c = s[i] == 'x' ? 'X' : s[i];
            if ((c < '0' || c > '9') && c != 'X') {
                m->state = LV_IDENT_ID_GARBLED;
                return;
            }
            m->id[i] = c;
        }
        m->id[18] = '\0';
        m->state = LV_IDENT_ID_BROKEN;
        m->check_usable = true;
    } else if (len == 15 && is_digits(s, 15)) {
        /* A legacy number whose date is wrong: upgraded all the same. */
        memcpy(m->id, s, 6);
        memcpy(m->id + 6, "19", 2);
        memcpy(m->id + 8, s + 6, 9);
        m->id[17] = lv_idnum_check_char(m->id);
        m->id[18] = '\0';
        m->state = LV_IDENT_ID_BROKEN;
        m->check_usable = false;
    } else {
        m->state = LV_IDENT_ID_GARBLED;
        return;
    }
    m->birth_ok = date_part(m->id, &m->id_birth);
}

/* Weights of the check: positions i and i+10 weigh the same, so swapping
 * them goes unseen. */
static const int ID_WEIGHT[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};

static rel_t id_relation(const match_t *m, const person_t *p)
{
    if (m->state == LV_IDENT_ID_MISSING || m->state == LV_IDENT_ID_GARBLED)
        return REL_NAME;
    int n = m->check_usable ? 18 : 17;
    int diff[3], nd = 0;
    for (int i = 0; i < n && nd < 3; i++)
        if (m->id[i] != p->id[i])
            diff[nd++] = i;
    if (nd == 0)
        return REL_EXACT;
    bool swap = nd == 2 && m->id[diff[0]] == p->id[diff[1]] && m->id[diff[1]] == p->id[diff[0]];
    if (m->state == LV_IDENT_ID_VALID) {
        /* A valid ID differing from the candidate's is someone else's,
         * unless it is a swap the check character cannot see. */
        if (swap && diff[1] < 17 && ID_WEIGHT[diff[0]] == ID_WEIGHT[diff[1]])
            return REL_HIDDEN;
        return REL_CONFLICT;
    }
    if (swap)
        return REL_SWAP;
    if (nd == 1)
        return REL_TYPO;
    if (!m->birth_ok || m->id_birth != p->birth)
        return REL_PARTS_NO;
    return memcmp(m->id, p->id, 6) == 0 ? REL_PARTS_BR : REL_PARTS_B;
}

static int name_class(double sim)
{
    if (sim < 0)
        return NC_UNKNOWN;
    if (sim >= 1.0)
        return NC_EXACT;
    if (sim >= 0.85)
        return NC_HOMOPHONE;
    if (sim >= 0.5)
        return NC_CLOSE;
    return NC_FAR;
}

static void keep(lv_ident_result_t *out, const lv_ident_cand_t *c)
{
    int pos = out->n;
    while (pos > 0 && out->cand[pos - 1].score < c->score)
        pos--;
    if (pos >= LV_IDENT_MAX_CANDS)
        return;
    int last = out->n < LV_IDENT_MAX_CANDS ? out->n : LV_IDENT_MAX_CANDS - 1;
    memmove(&out->cand[pos + 1], &out->cand[pos], sizeof(lv_ident_cand_t) * (size_t)(last - pos));
    out->cand[pos] = *c;
    if (out->n < LV_IDENT_MAX_CANDS)
        out->n++;
}

static void consider(match_t *m, int32_t idx)
{
    lv_ident_set_t *set = m->set;
    if (set->mark[idx] == set->epoch || m->n_considered == CONSIDER_MAX)
        return;
    set->mark[idx] = set->epoch;
    m->n_considered++;

    const person_t *p = &set->persons[idx];
    rel_t rel = id_relation(m, p);
    double sim = similarity(m->name.cp, m->name.py, m->name.len, set->cps + p->name_off,
                            set->pys + p->name_off, p->name_len);
    int nc = name_class(sim);
    double score = SCORE[rel][nc];
    /* A 15-digit number has no check character, so nothing says it was
     * mistyped: near it is not enough without a name that agrees. */
    if (!m->check_usable && rel != REL_EXACT && nc == NC_UNKNOWN && score > OLD15_NEAR_CAP)
        score = OLD15_NEAR_CAP;
    const lv_ident_query_t *q = m->q;
    if (q->birth_day != LV_IDENT_UNKNOWN_DAY) {
        if (q->birth_day == p->birth)
            score = score + BIRTH_AGREES_BONUS > 1.0 ? 1.0 : score + BIRTH_AGREES_BONUS;
        else
            score *= BIRTH_DIFFERS_FACTOR;
    }
    if ((q->gender == 1 || q->gender == 2) && q->gender != p->gender)
        score *= GENDER_DIFFERS_FACTOR;
    if (score <= 0.0)
        return;
    lv_ident_cand_t c = {p->tag, score, sim, BASIS[rel]};
    keep(m->out, &c);
}

static void lookup(match_t *m, uint64_t key)
{
    const lv_ident_set_t *set = m->set;
    for (int32_t e = set->buckets[key & (set->n_buckets - 1)]; e >= 0; e = set->entries[e].next)
        if (set->entries[e].key == key)
            consider(m, set->entries[e].person);
}

/* Candidates whose first 17 characters are one swap or one character away
 * from the row's (the 18th, the check, is compared in id_relation). */
static void gather_near_ids(match_t *m)
{
    char v[19];
    memcpy(v, m->id, 19);
    lookup(m, key_id17(v));
    int n = m->check_usable ? 18 : 17;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (v[i] == v[j])
                continue;
            char t = v[i];
            v[i] = v[j];
            v[j] = t;
            lookup(m, key_id17(v));
            v[j] = v[i];
            v[i] = t;
        }
    for (int i = 0; i < 17; i++) {
        char keep_c = v[i];
        for (char d = '0'; d <= '9'; d++) {
            if (d == keep_c)
                continue;
            v[i] = d;
            lookup(m, key_id17(v));
        }
        v[i] = keep_c;
    }
}

/* Swaps the check cannot see (positions i and i+10), for a valid ID that is
 * not in the set. */
static void gather_hidden_swaps(match_t *m)
{
    char v[19];
    memcpy(v, m->id, 19);
    for (int i = 0; i + 10 < 17; i++) {
        if (v[i] == v[i + 10])
            continue;
        char t = v[i];
        v[i] = v[i + 10];
        v[i + 10] = t;
        lookup(m, key_id17(v));
        v[i + 10] = v[i];
        v[i] = t;
    }
}

static void gather_by_name(match_t *m)
{
    const lv_ident_name_t *nm = &m->name;
    if (!nm->len)
        return;
    lookup(m, key_name(nm->cp, nm->len));
    if (all_pinyin(nm->py, nm->len))
        lookup(m, key_pinyin(nm->py, nm->len));
    for (int i = 0; nm->len >= WILD_MIN_LEN && i < nm->len; i++)
        lookup(m, key_wild(nm->cp, nm->len, i));
}

static const char *reason_of(const lv_ident_result_t *out, const lv_ident_params_t *p)
{
    if (out->n == 0)
        return out->verdict == LV_IDENT_NONE
                   ? "身份证号不在候选人员中 (ID number not among the candidates)"
                   : "没有相符的人员 (no candidate matches)";
    const lv_ident_cand_t *b = &out->cand[0];
    if (out->verdict == LV_IDENT_LINK) {
        switch (b->basis) {
        case LV_IDENT_BY_ID:
            return "身份证号相符 (ID number matches)";
        case LV_IDENT_BY_ID_SWAP:
            return "身份证号两位颠倒，姓名相符 (ID number with two characters swapped)";
        case LV_IDENT_BY_ID_TYPO:
            return "身份证号一位错误，姓名相符 (ID number with one wrong character)";
        case LV_IDENT_BY_ID_PARTS:
            return "身份证号校验失败，出生日期和姓名相符 (bad ID number; birth date and name match)";
        default:
            return "无有效身份证号，姓名唯一相符 (no usable ID number; the only person with this name)";
        }
    }
    if (b->score >= p->link_threshold)
        return "多个候选同样相符 (several candidates match about equally)";
    switch (b->basis) {
    case LV_IDENT_BY_ID:
        return "身份证号相符但姓名不符 (ID number matches, name differs)";
    case LV_IDENT_BY_ID_SWAP:
    case LV_IDENT_BY_ID_TYPO:
        if (b->name_similarity < 0)
            return "身份证号相近，没有姓名可以确认 (ID number close, no name to confirm it)";
        return "身份证号相近但姓名不符 (ID number close, name differs)";
    case LV_IDENT_BY_ID_PARTS:
        return "身份证号校验失败，其余信息不足以确认 (bad ID number; the rest is not enough)";
    default:
        return "无有效身份证号，仅凭姓名不足以确认 (no usable ID number; the name alone is not enough)";
    }
}

lv_ident_params_t lv_ident_params_default(void)
{
    return (lv_ident_params_t){LV_IDENT_LINK_THRESHOLD, LV_IDENT_MIN_MARGIN};
}

int lv_ident_match(lv_ident_set_t *set, const lv_ident_query_t *q, const lv_ident_params_t *p,
                   lv_ident_result_t *out)
{
    memset(out, 0, sizeof *out);
    lv_ident_params_t defaults = lv_ident_params_default();
    if (!p)
        p = &defaults;
    match_t *m = &(match_t){.set = set, .q = q, .out = out};
    if (++set->epoch == 0) {
        /* Wrapped: forget every mark, and never use 0, the fresh mark. */
        memset(set->mark, 0, set->mark_cap * sizeof *set->mark);
        set->epoch = 1;
    }
    read_id(m);
    out->id_state = m->state;
    const char *name = q->name ? q->name : "";
    if (lv_ident_name_prepare(set->ctx, name, strlen(name), &m->name)) {
        out->verdict = LV_IDENT_REVIEW;
        out->reason = "姓名不是有效的 UTF-8 (name is not valid UTF-8)";
        return LV_EINVAL;
    }

    switch (m->state) {
    case LV_IDENT_ID_VALID:
        lookup(m, key_id17(m->id));
        if (out->n && out->cand[0].basis == LV_IDENT_BY_ID &&
            out->cand[0].score >= p->link_threshold)
            break;
        /* Anyone else found by name holds another valid ID: no candidate. */
        if (!out->n)
            gather_hidden_swaps(m);
        break;
    case LV_IDENT_ID_OLD15:
        /* No check character: a typo would go unseen, so look near it too. */
        lookup(m, key_id17(m->id));
        if (out->n && out->cand[0].score >= p->link_threshold)
            break;
        /* fall through */
    case LV_IDENT_ID_BROKEN:
        gather_near_ids(m);
        if (m->birth_ok)
            lookup(m, key_birth(m->id_birth));
        gather_by_name(m);
        break;
    default:
        gather_by_name(m);
        if (q->birth_day != LV_IDENT_UNKNOWN_DAY)
            lookup(m, key_birth(q->birth_day));
        break;
    }

    if (out->n == 0)
        out->verdict = m->state == LV_IDENT_ID_VALID ? LV_IDENT_NONE : LV_IDENT_REVIEW;
    else if (out->cand[0].score >= p->link_threshold &&
             (out->n == 1 || out->cand[0].score - out->cand[1].score >= p->min_margin))
        out->verdict = LV_IDENT_LINK;
    else
        out->verdict = LV_IDENT_REVIEW;
    out->reason = reason_of(out, p);
    return 0;
}

const char *lv_ident_verdict_name(lv_ident_verdict_t v)
{
    switch (v) {
    case LV_IDENT_LINK:
        return "link";
    case LV_IDENT_REVIEW:
        return "review";
    default:
        return "none";
    }
}

const char *lv_ident_basis_name(lv_ident_basis_t b)
{
    static const char *names[] = {"id", "id_swap", "id_typo", "id_parts", "name"};
    return (unsigned)b < sizeof names / sizeof *names ? names[b] : "?";
}
