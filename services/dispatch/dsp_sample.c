#define _POSIX_C_SOURCE 200809L
#include "dsp_sample.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

bool dsp_sample_draw(int64_t n, int64_t s, int rate_permille, const char *county,
                     const char *case_id)
{
    int64_t rate = rate_permille > 1000 ? 1000 : rate_permille;
    if (rate <= 0 || n < 1)
        return false;
    int64_t start = s * 1000 / rate + 1, end = (s + 1) * 1000 / rate;
    if (n < start)
        return false; /* this window's sample is already taken */
    if (n >= end)
        return true; /* the window's last position: nobody was drawn before */
    char msg[256];
    unsigned char h[8];
    snprintf(msg, sizeof msg, "%s|%lld|%s", county, (long long)n, case_id);
    crypto_generichash(h, sizeof h, (const unsigned char *)msg, strlen(msg), NULL, 0);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | h[i];
    /* One in the positions left of the window: uniform over the window. */
    return x % (uint64_t)(end - n + 1) == 0;
}
