#define _POSIX_C_SOURCE 200809L
#include "lv_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lv_buf_init(lv_buf_t *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void lv_buf_free(lv_buf_t *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

void lv_buf_reset(lv_buf_t *b)
{
    b->len = 0;
    b->failed = false;
    if (b->s)
        b->s[0] = '\0';
}

static bool grow(lv_buf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    size_t need = b->len + extra + 1;
    if (need > b->max) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void lv_buf_put(lv_buf_t *b, const char *s, size_t n)
{
    if (!grow(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void lv_buf_puts(lv_buf_t *b, const char *s)
{
    lv_buf_put(b, s, strlen(s));
}

void lv_buf_printf(lv_buf_t *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = true;
        return;
    }
    lv_buf_put(b, tmp, (size_t)n);
}

const char *lv_buf_str(lv_buf_t *b)
{
    if (!b->s && grow(b, 0))
        b->s[0] = '\0';
    return b->s ? b->s : "";
}

void lv_arr_begin(lv_buf_t *b)
{
    lv_buf_put(b, "{", 1);
}

static void sep(lv_buf_t *b)
{
    if (b->len && b->s[b->len - 1] != '{')
        lv_buf_put(b, ",", 1);
}

void lv_arr_text(lv_buf_t *b, const char *s, size_t n)
{
    sep(b);
    if (!grow(b, n * 2 + 2))
        return;
    char *o = b->s + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *o++ = '\\';
        *o++ = s[i];
    }
    *o++ = '"';
    b->len = (size_t)(o - b->s);
    b->s[b->len] = '\0';
}

void lv_arr_int(lv_buf_t *b, int64_t v)
{
    sep(b);
    lv_buf_printf(b, "%lld", (long long)v);
}

void lv_arr_null(lv_buf_t *b)
{
    sep(b);
    lv_buf_put(b, "NULL", 4);
}

void lv_arr_end(lv_buf_t *b)
{
    lv_buf_put(b, "}", 1);
}
