/* lv_ident: every kind of corrupted identity, and the refusals. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lv_err.h"
#include "lv_ident.h"
#include "lv_idnum.h"
#include "lv_time.h"

/* A village. The traps: 王伟 and 王玮 sound the same; 张建国 and 张建军 are
 * one character apart; two women are both called 李秀英; the twins 陈晨 and
 * 陈辰 share a birth date and a pinyin. */
enum { WANG_WEI, WANG_WEI2, ZHANG_JIANGUO, ZHANG_JIANJUN, LI_XIUYING, LI_XIUYING2, LIU_HUA,
       CHEN_CHEN, CHEN_CHEN2, N_PERSONS };

static const struct {
    const char *name, *birth8, *seq3;
} PERSON[N_PERSONS] = {
    [WANG_WEI] = {"王伟", "19850312", "011"},
    [WANG_WEI2] = {"王玮", "19870405", "022"},
    [ZHANG_JIANGUO] = {"张建国", "19600101", "031"},
    [ZHANG_JIANJUN] = {"张建军", "19620202", "041"},
    [LI_XIUYING] = {"李秀英", "19551111", "042"},
    [LI_XIUYING2] = {"李秀英", "19580707", "062"},
    [LIU_HUA] = {"刘华", "19900909", "051"},
    [CHEN_CHEN] = {"陈晨", "20100505", "013"},
    [CHEN_CHEN2] = {"陈辰", "20100505", "015"},
};

typedef struct {
    lv_ident_t *ctx;
    lv_ident_set_t *set;
    char id[N_PERSONS][19];
} village_t;

static int setup(void **state)
{
    static village_t v;
    const char *why = NULL;
    v.ctx = lv_ident_new(&why);
    if (!v.ctx) {
        print_error("lv_ident_new: %s\n", why);
        return -1;
    }
    v.set = lv_ident_set_new(v.ctx);
    for (int i = 0; i < N_PERSONS; i++) {
        lv_idnum_compose("620521", PERSON[i].birth8, PERSON[i].seq3, v.id[i]);
        if (lv_ident_set_add(v.set, v.id[i], PERSON[i].name, i, &why)) {
            print_error("add %s: %s\n", PERSON[i].name, why);
            return -1;
        }
    }
    *state = &v;
    return 0;
}

static int teardown(void **state)
{
    village_t *v = *state;
    lv_ident_set_destroy(&v->set);
    lv_ident_destroy(&v->ctx);
    assert_null(v->set);
    assert_null(v->ctx);
    return 0;
}

static lv_ident_result_t match(village_t *v, const char *name, const char *id)
{
    lv_ident_query_t q = {name, id, LV_IDENT_UNKNOWN_DAY, 0};
    lv_ident_result_t r;
    assert_int_equal(lv_ident_match(v->set, &q, NULL, &r), 0);
    return r;
}

static void expect_link(const lv_ident_result_t *r, int who, lv_ident_basis_t basis)
{
    if (r->verdict != LV_IDENT_LINK || r->cand[0].tag != who)
        print_error("want link to %d, got %s (%s) n=%d best=%lld score=%.3f\n", who,
                    lv_ident_verdict_name(r->verdict), r->reason, r->n,
                    r->n ? (long long)r->cand[0].tag : -1LL, r->n ? r->cand[0].score : 0.0);
    assert_int_equal(r->verdict, LV_IDENT_LINK);
    assert_int_equal(r->cand[0].tag, who);
    assert_int_equal(r->cand[0].basis, basis);
    assert_true(r->cand[0].score >= LV_IDENT_LINK_THRESHOLD);
    assert_non_null(r->reason);
}

static void expect_review(const lv_ident_result_t *r, const char *english)
{
    if (r->verdict != LV_IDENT_REVIEW || !strstr(r->reason, english))
        print_error("want review \"%s\", got %s (%s)\n", english,
                    lv_ident_verdict_name(r->verdict), r->reason ? r->reason : "");
    assert_int_equal(r->verdict, LV_IDENT_REVIEW);
    assert_non_null(strstr(r->reason, english));
}

/* The row's ID with the digits at i and i+1 swapped. */
static void swapped(const char *id, int i, char out[19])
{
    memcpy(out, id, 19);
    out[i] = id[i + 1];
    out[i + 1] = id[i];
    assert_true(out[i] != id[i]);
    assert_int_not_equal(lv_idnum_check_char(out), out[17]); /* it fails the check */
}

static void test_prepare_names(void **state)
{
    village_t *v = *state;
    lv_ident_name_t a, b;
    char key[64];
    assert_int_equal(lv_ident_name_prepare(v->ctx, "王偉", strlen("王偉"), &a), 0);
    assert_int_equal(lv_ident_name_prepare(v->ctx, " 王 伟 ", strlen(" 王 伟 "), &b), 0);
    assert_int_equal(a.len, 2);
    assert_true(lv_ident_name_similarity(&a, &b) == 1.0);
    assert_int_equal(lv_ident_pinyin_key(v->ctx, &a, key, sizeof key), 8);
    assert_string_equal(key, "wang wei");
    assert_int_equal(lv_ident_pinyin_key(v->ctx, &a, key, 5), LV_ELIMIT);

    /* A middle dot and full-width letters are not part of the name. */
    const char *dotted = "买买提·吐尔逊";
    assert_int_equal(lv_ident_name_prepare(v->ctx, dotted, strlen(dotted), &a), 0);
    assert_int_equal(a.len, 6);
    assert_int_equal(lv_ident_name_prepare(v->ctx, "ＡＢ", strlen("ＡＢ"), &a), 0);
    assert_int_equal(a.len, 2);
    assert_int_equal(a.cp[0], 'a');

    /* Similarities: a homophone costs 0.15, a typo 1, over the longer name. */
    lv_ident_name_prepare(v->ctx, "王伟", strlen("王伟"), &a);
    lv_ident_name_prepare(v->ctx, "王玮", strlen("王玮"), &b);
    assert_float_equal(lv_ident_name_similarity(&a, &b), 0.925, 1e-9);
    lv_ident_name_prepare(v->ctx, "张建国", strlen("张建国"), &a);
    lv_ident_name_prepare(v->ctx, "张建军", strlen("张建军"), &b);
    assert_float_equal(lv_ident_name_similarity(&a, &b), 2.0 / 3.0, 1e-9);
    lv_ident_name_prepare(v->ctx, "", 0, &b);
    assert_true(lv_ident_name_similarity(&a, &b) < 0);

    assert_int_equal(lv_ident_name_prepare(v->ctx, "\xe7\x8e", 2, &a), LV_EINVAL);
}

static void test_exact_id(void **state)
{
    village_t *v = *state;
    lv_ident_result_t r = match(v, "王伟", v->id[WANG_WEI]);
    expect_link(&r, WANG_WEI, LV_IDENT_BY_ID);
    assert_float_equal(r.cand[0].score, 1.0, 1e-9);
    assert_int_equal(r.id_state, LV_IDENT_ID_VALID);
    /* Feeds without a name column (disaster, income) link on the ID alone. */
    r = match(v, NULL, v->id[LIU_HUA]);
    expect_link(&r, LIU_HUA, LV_IDENT_BY_ID);
    /* A lowercase x check character and surrounding spaces are fine. */
    char id[32];
    for (int seq = 1; seq < 999; seq += 2) {
        char s[4];
        snprintf(s, sizeof s, "%03d", seq);
        lv_idnum_compose("620521", "19991231", s, id);
        if (id[17] == 'X')
            break;
    }
    assert_int_equal(id[17], 'X');
    assert_int_equal(lv_ident_set_add(v->set, id, "赵敏", 100, NULL), 0);
    id[17] = 'x';
    char padded[40];
    snprintf(padded, sizeof padded, " %s ", id);
    r = match(v, "赵敏", padded);
    expect_link(&r, 100, LV_IDENT_BY_ID);
}

static void test_name_corrupted_valid_id(void **state)
{
    village_t *v = *state;
    /* One-character typo, traditional characters, homophone: the ID decides. */
    lv_ident_result_t r = match(v, "张建民", v->id[ZHANG_JIANGUO]);
    expect_link(&r, ZHANG_JIANGUO, LV_IDENT_BY_ID);
    r = match(v, "張建國", v->id[ZHANG_JIANGUO]);
    expect_link(&r, ZHANG_JIANGUO, LV_IDENT_BY_ID);
    assert_float_equal(r.cand[0].score, 1.0, 1e-9);
    r = match(v, "王为", v->id[WANG_WEI]);
    expect_link(&r, WANG_WEI, LV_IDENT_BY_ID);
    /* A name with nothing in common: the ID may be someone else's. */
    r = match(v, "马小红", v->id[WANG_WEI]);
    expect_review(&r, "name differs");
    assert_int_equal(r.cand[0].tag, WANG_WEI);
}

static void test_swapped_digits(void **state)
{
    village_t *v = *state;
    char bad[19];
    swapped(v->id[ZHANG_JIANGUO], 8, bad); /* inside the birth date */
    lv_ident_result_t r = match(v, "张建国", bad);
    assert_int_equal(r.id_state, LV_IDENT_ID_BROKEN);
    expect_link(&r, ZHANG_JIANGUO, LV_IDENT_BY_ID_SWAP);
    /* With a homophone or traditional name as well. */
    swapped(v->id[WANG_WEI2], 14, bad);
    r = match(v, "王伟", bad);
    expect_link(&r, WANG_WEI2, LV_IDENT_BY_ID_SWAP);
    r = match(v, "王瑋", bad);
    expect_link(&r, WANG_WEI2, LV_IDENT_BY_ID_SWAP);
    /* No name column at all: the near ID alone. */
    swapped(v->id[LIU_HUA], 3, bad);
    r = match(v, NULL, bad);
    expect_link(&r, LIU_HUA, LV_IDENT_BY_ID_SWAP);
    /* A swap with the check character. */
    memcpy(bad, v->id[LI_XIUYING2], 19);
    if (bad[16] != bad[17]) {
        bad[16] = v->id[LI_XIUYING2][17];
        bad[17] = v->id[LI_XIUYING2][16];
        r = match(v, "李秀英", bad);
        expect_link(&r, LI_XIUYING2, LV_IDENT_BY_ID_SWAP);
    }
}

static void test_one_wrong_character(void **state)
{
    village_t *v = *state;
    char bad[19];
    memcpy(bad, v->id[LI_XIUYING], 19);
    bad[2] = bad[2] == '9' ? '0' : (char)(bad[2] + 1);
    lv_ident_result_t r = match(v, "李秀英", bad);
    expect_link(&r, LI_XIUYING, LV_IDENT_BY_ID_TYPO);
    /* The namesake is far behind: her ID differs in the birth date. */
    assert_true(r.n == 1 || r.cand[0].score - r.cand[1].score > 0.3);
}

static void test_missing_id(void **state)
{
    village_t *v = *state;
    lv_ident_result_t r = match(v, "张建军", "");
    assert_int_equal(r.id_state, LV_IDENT_ID_MISSING);
    expect_link(&r, ZHANG_JIANJUN, LV_IDENT_BY_NAME);
    /* The typo neighbour 张建国 is a candidate, well behind. */
    assert_true(r.n >= 2);
    assert_int_equal(r.cand[1].tag, ZHANG_JIANGUO);
    r = match(v, "劉華", NULL);
    expect_link(&r, LIU_HUA, LV_IDENT_BY_NAME);
    /* Garbage in the ID column counts as no ID. */
    r = match(v, "刘华", "不详");
    assert_int_equal(r.id_state, LV_IDENT_ID_GARBLED);
    expect_link(&r, LIU_HUA, LV_IDENT_BY_NAME);
}

static void test_missing_id_refusals(void **state)
{
    village_t *v = *state;
    /* Two women called 李秀英: equally good, so a person decides. */
    lv_ident_result_t r = match(v, "李秀英", "");
    expect_review(&r, "several candidates");
    assert_int_equal(r.n, 2);
    assert_float_equal(r.cand[0].score, r.cand[1].score, 1e-9);
    assert_true((r.cand[0].tag == LI_XIUYING && r.cand[1].tag == LI_XIUYING2) ||
                (r.cand[0].tag == LI_XIUYING2 && r.cand[1].tag == LI_XIUYING));
    /* A homophone alone never links, even to the only 王伟 who sounds so. */
    r = match(v, "王威", "");
    expect_review(&r, "name alone");
    assert_int_equal(r.n, 2);
    /* A typo alone never links. */
    r = match(v, "张建民", "");
    expect_review(&r, "name alone");
    assert_true(r.n >= 2);
    /* No one at all: review with no candidate, never dropped. */
    r = match(v, "欧阳修", "");
    expect_review(&r, "no candidate");
    assert_int_equal(r.n, 0);
    /* Neither name nor ID. */
    r = match(v, "", "");
    expect_review(&r, "no candidate");
}

static void test_birth_and_gender(void **state)
{
    village_t *v = *state;
    /* A declaration with the birth date tells the two 李秀英 apart. */
    lv_ident_query_t q = {"李秀英", "", (int32_t)lv_days_from_civil(1958, 7, 7), 0};
    lv_ident_result_t r;
    assert_int_equal(lv_ident_match(v->set, &q, NULL, &r), 0);
    expect_link(&r, LI_XIUYING2, LV_IDENT_BY_NAME);
    /* A birth date that disagrees sends even a unique name to review. */
    q = (lv_ident_query_t){"刘华", "", (int32_t)lv_days_from_civil(1991, 9, 9), 0};
    assert_int_equal(lv_ident_match(v->set, &q, NULL, &r), 0);
    expect_review(&r, "name alone");
    /* So does a gender that disagrees (刘华 is male: 051 is odd). */
    q = (lv_ident_query_t){"刘华", "", LV_IDENT_UNKNOWN_DAY, 2};
    assert_int_equal(lv_ident_match(v->set, &q, NULL, &r), 0);
    expect_review(&r, "name alone");
    q.gender = 1;
    assert_int_equal(lv_ident_match(v->set, &q, NULL, &r), 0);
    expect_link(&r, LIU_HUA, LV_IDENT_BY_NAME);
}

static void test_old_id15(void **state)
{
    village_t *v = *state;
    char old[16];
    const char *id = v->id[ZHANG_JIANJUN];
    memcpy(old, id, 6);
    memcpy(old + 6, id + 8, 9);
    old[15] = '\0';
    lv_ident_result_t r = match(v, "张建军", old);
    assert_int_equal(r.id_state, LV_IDENT_ID_OLD15);
    expect_link(&r, ZHANG_JIANJUN, LV_IDENT_BY_ID);
    /* A 15-digit number has no check character: a swap in it is looked for. */
    char t = old[9];
    old[9] = old[10];
    old[10] = t;
    assert_int_not_equal(old[9], old[10]);
    r = match(v, "张建军", old);
    expect_link(&r, ZHANG_JIANJUN, LV_IDENT_BY_ID_SWAP);
    /* Without a name it could as well be someone not in the registry. */
    r = match(v, NULL, old);
    expect_review(&r, "no name to confirm");
    assert_int_equal(r.cand[0].tag, ZHANG_JIANJUN);
}

static void test_valid_id_not_in_set(void **state)
{
    village_t *v = *state;
    /* Someone who is not in the registry, even with a registry name. */
    char other[19];
    lv_idnum_compose("620521", "19700101", "999", other);
    lv_ident_result_t r = match(v, "王伟", other);
    assert_int_equal(r.verdict, LV_IDENT_NONE);
    assert_int_equal(r.n, 0);
    assert_non_null(strstr(r.reason, "not among"));
    /* Positions i and i+10 weigh the same: a swap there passes the check.
     * Such an ID is never linked, but its owner is offered for review. */
    char hidden[19];
    const char *id = v->id[WANG_WEI];
    lv_idnum_t parsed;
    const char *why;
    int i;
    for (i = 0; i + 10 < 17; i++) {
        memcpy(hidden, id, 19);
        hidden[i] = id[i + 10];
        hidden[i + 10] = id[i];
        if (id[i] != id[i + 10] && lv_idnum_parse(hidden, 18, &parsed, &why) == 0)
            break;
    }
    assert_true(i + 10 < 17);
    assert_int_equal(lv_idnum_check_char(hidden), id[17]);
    r = match(v, "王伟", hidden);
    expect_review(&r, "");
    assert_int_equal(r.n, 1);
    assert_int_equal(r.cand[0].tag, WANG_WEI);
}

static void test_broken_id_parts(void **state)
{
    village_t *v = *state;
    /* Two digits of the sequence wrong: not near, but birth date and region
     * still read, and the name is the same. */
    char bad[19];
    memcpy(bad, v->id[LIU_HUA], 19);
    bad[14] = bad[14] == '9' ? '1' : (char)(bad[14] + 1);
    bad[15] = bad[15] == '9' ? '1' : (char)(bad[15] + 1);
    if (lv_idnum_check_char(bad) == bad[17])
        bad[17] = bad[17] == '0' ? '1' : '0';
    lv_ident_result_t r = match(v, "刘华", bad);
    expect_link(&r, LIU_HUA, LV_IDENT_BY_ID_PARTS);
    /* Without the name, that is not enough. */
    r = match(v, NULL, bad);
    expect_review(&r, "bad ID");
    /* The twins: the sequence garbled, no name: both are as likely. */
    memcpy(bad, v->id[CHEN_CHEN], 19);
    bad[15] = '9';
    bad[16] = '7';
    if (lv_idnum_check_char(bad) == bad[17])
        bad[17] = bad[17] == '0' ? '1' : '0';
    r = match(v, NULL, bad);
    expect_review(&r, "bad ID");
    assert_true(r.n >= 2);
    assert_float_equal(r.cand[0].score, r.cand[1].score, 1e-9);
    assert_true((r.cand[0].tag == CHEN_CHEN && r.cand[1].tag == CHEN_CHEN2) ||
                (r.cand[0].tag == CHEN_CHEN2 && r.cand[1].tag == CHEN_CHEN));
}

static void test_threshold_is_a_parameter(void **state)
{
    village_t *v = *state;
    lv_ident_query_t q = {"刘华", "", LV_IDENT_UNKNOWN_DAY, 0};
    lv_ident_params_t p = lv_ident_params_default();
    assert_float_equal(p.link_threshold, LV_IDENT_LINK_THRESHOLD, 1e-12);
    lv_ident_result_t r;
    assert_int_equal(lv_ident_match(v->set, &q, &p, &r), 0);
    assert_int_equal(r.verdict, LV_IDENT_LINK);
    p.link_threshold = 0.95; /* a county that wants every name-only link reviewed */
    assert_int_equal(lv_ident_match(v->set, &q, &p, &r), 0);
    expect_review(&r, "name alone");
    assert_int_equal(r.cand[0].tag, LIU_HUA);
}

static void test_bad_input(void **state)
{
    village_t *v = *state;
    const char *why = NULL;
    assert_int_equal(lv_ident_set_add(v->set, "620521198503120012", "某人", 1, &why), LV_EINVAL);
    assert_non_null(why);
    assert_int_equal(lv_ident_set_add(v->set, "", "某人", 1, &why), LV_EINVAL);
    char id[19];
    lv_idnum_compose("620521", "19800101", "777", id);
    assert_int_equal(lv_ident_set_add(v->set, id, "\xff", 1, &why), LV_EINVAL);
    lv_ident_query_t q = {"\xe7\x8e", "", LV_IDENT_UNKNOWN_DAY, 0};
    lv_ident_result_t r;
    assert_int_equal(lv_ident_match(v->set, &q, NULL, &r), LV_EINVAL);
    assert_int_equal(r.verdict, LV_IDENT_REVIEW);
    /* A very long name is cut, not overflowed. */
    char longname[400] = "";
    for (int i = 0; i < 40; i++)
        strcat(longname, "王");
    lv_ident_name_t nm;
    assert_int_equal(lv_ident_name_prepare(v->ctx, longname, strlen(longname), &nm), 0);
    assert_int_equal(nm.len, LV_IDENT_NAME_MAX);
    lv_ident_destroy(NULL);
    lv_ident_set_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_names),
        cmocka_unit_test(test_exact_id),
        cmocka_unit_test(test_name_corrupted_valid_id),
        cmocka_unit_test(test_swapped_digits),
        cmocka_unit_test(test_one_wrong_character),
        cmocka_unit_test(test_missing_id),
        cmocka_unit_test(test_missing_id_refusals),
        cmocka_unit_test(test_birth_and_gender),
        cmocka_unit_test(test_old_id15),
        cmocka_unit_test(test_valid_id_not_in_set),
        cmocka_unit_test(test_broken_id_parts),
        cmocka_unit_test(test_threshold_is_a_parameter),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
