/* dsp_sample_draw: the 抽样复核 share per county holds exactly at every
 * count, one case per window, at positions that vary, the same on every run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dsp_sample.h"

/* Runs n cases of one county; returns how many were sampled and checks
 * after each case that the count is floor(k·rate/1000) or one more. */
static int64_t run(int rate, int64_t n, const char *county, int64_t *positions, size_t maxpos)
{
    int64_t s = 0;
    size_t np = 0;
    for (int64_t k = 1; k <= n; k++) {
        char case_id[40];
        snprintf(case_id, sizeof case_id, "H%s%07lld-1", county, (long long)k);
        if (dsp_sample_draw(k, s, rate, county, case_id)) {
            s++;
            if (np < maxpos)
                positions[np++] = k;
        }
        int64_t lo = k * rate / 1000, hi = (k * rate + 999) / 1000;
        assert_true(s >= lo && s <= hi);
    }
    return s;
}

static void share_is_exact(void **state)
{
    (void)state;
    int64_t pos[200];
    assert_int_equal(run(100, 1000, "620521", pos, 200), 100);
    assert_int_equal(run(100, 20, "620521", pos, 200), 2);
    assert_int_equal(run(300, 1000, "620522", pos, 200), 300);
    assert_int_equal(run(1000, 50, "620523", pos, 200), 50);
    assert_int_equal(run(0, 50, "620523", pos, 200), 0);
    assert_int_equal(run(7, 1000, "620524", pos, 200), 7);
}

static void one_per_window_at_varying_positions(void **state)
{
    (void)state;
    int64_t pos[100];
    assert_int_equal(run(100, 1000, "620521", pos, 100), 100);
    int at_end = 0, seen[10] = {0};
    for (int j = 0; j < 100; j++) {
        assert_true(pos[j] > j * 10 && pos[j] <= (j + 1) * 10); /* the j-th window */
        seen[(pos[j] - 1) % 10] = 1;
        at_end += pos[j] % 10 == 0;
    }
    int distinct = 0;
    for (int i = 0; i < 10; i++)
        distinct += seen[i];
    assert_true(distinct >= 8);   /* not always the same position */
    assert_true(at_end < 30);     /* uniform: about 10 of 100 at the last position */
}

static void same_on_every_run(void **state)
{
    (void)state;
    int64_t a[100], b[100];
    run(100, 1000, "620521", a, 100);
    run(100, 1000, "620521", b, 100);
    assert_memory_equal(a, b, sizeof a);
    run(100, 1000, "620599", b, 100);
    assert_true(memcmp(a, b, sizeof a) != 0); /* another county draws otherwise */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(share_is_exact),
        cmocka_unit_test(one_per_window_at_varying_positions),
        cmocka_unit_test(same_on_every_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
