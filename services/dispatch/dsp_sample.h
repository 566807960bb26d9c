/* 抽样复核: which verified case of a county is drawn for a re-check. Pure:
 * no I/O, so a unit test can run it over any number of cases. */
#ifndef DSP_SAMPLE_H
#define DSP_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

/* The n-th verified case of the county (n >= 1), s of the n - 1 before it
 * sampled, rate in permille. Within each window of about 1000 / rate
 * consecutive cases exactly one is sampled (the j-th sample falls among
 * positions floor((j-1)·1000/rate)+1 .. floor(j·1000/rate)), at a position
 * drawn uniformly by a hash of county, n and case id: after n cases the
 * count is floor(n·rate/1000) or one more, the draw cannot be foreseen from
 * the case order, and it is the same on every run (an auditor can redo it). */
bool dsp_sample_draw(int64_t n, int64_t s, int rate_permille, const char *county,
                     const char *case_id);

#endif
