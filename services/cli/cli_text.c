/* Terminal text: display widths of UTF-8 (CJK counts 2), padding, money and
 * counts with separators, and the masks every output goes through. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lv_idnum.h"
#include "lv_money.h"

/* Decodes one UTF-8 sequence at s; returns its length (1 for a bad byte,
 * whose code point is reported as U+FFFD). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
        k = 1;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        k = 2;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
        k = 3;
        v = c & 0x07;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i <= k; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return k + 1;
}

static int cp_width(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7F)
        return 1; /* shown as a space */
    if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0xFEFF)
        return 0;
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
        (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
        (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
        return 2;
    return 1;
}

int cli_text_width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int w = 0;
    while (*p) {
        uint32_t cp;
        p += utf8_next(p, &cp);
        w += cp_width(cp);
    }
    return w;
}

void cli_put_padded(FILE *out, const char *s, int width, bool right)
{
    int pad = width - cli_text_width(s);
    if (right)
        for (int i = 0; i < pad; i++)
            fputc(' ', out);
    fputs(s, out);
    if (!right)
        for (int i = 0; i < pad; i++)
            fputc(' ', out);
}

void cli_text_fit(const char *s, int max_width, char *out)
{
    bool cut = cli_text_width(s) > max_width;
    int limit = cut ? max_width - 3 : max_width;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    int w = 0;
    while (*p) {
        uint32_t cp;
        size_t k = utf8_next(p, &cp);
        int cw = cp_width(cp);
        if (w + cw > limit)
            break;
        if (cp < 0x20 || cp == 0x7F)
            out[o++] = ' ';
        else {
            memcpy(out + o, p, k);
            o += k;
        }
        w += cw;
        p += k;
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Copies a decimal number with its integer part grouped by thousands. */
static void group_digits(const char *in, char *out, size_t n)
{
    if (n == 0)
        return;
    size_t o = 0, i = 0;
    if (in[i] == '-' && o + 1 < n)
        out[o++] = in[i++];
    size_t digits = 0;
    while (in[i + digits] >= '0' && in[i + digits] <= '9')
        digits++;
    for (size_t d = 0; d < digits && o + 1 < n; d++) {
        if (d > 0 && (digits - d) % 3 == 0 && o + 2 < n)
            out[o++] = ',';
        out[o++] = in[i + d];
    }
    i += digits;
    while (in[i] && o + 1 < n)
        out[o++] = in[i++];
    out[o] = '\0';
}

void cli_yuan(int64_t fen, char *out, size_t n)
{
    char tmp[48];
    lv_money_format(fen, tmp, sizeof tmp);
    group_digits(tmp, out, n);
}

void cli_count(int64_t v, char *out, size_t n)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    group_digits(tmp, out, n);
}

void cli_mask_idnum(const char *s, char *out)
{
    lv_mask_idnum_field(s, out);
}

void cli_mask_phone(const char *s, char *out)
{
    lv_mask_phone(s, out);
}

void cli_mask_free(char *s)
{
    lv_mask_text(s);
}

void cli_kv(FILE *out, int indent, const char *label, int label_width, const char *value)
{
    for (int i = 0; i < indent; i++)
        fputc(' ', out);
    cli_put_padded(out, label, label_width, false);
    fputs("  ", out);
    fputs(value ? value : "-", out);
    fputc('\n', out);
}
