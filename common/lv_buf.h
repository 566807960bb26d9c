/* A growing byte buffer with a hard cap, and Postgres array literals built in
 * it (so a whole batch travels as one parameter, never pasted into SQL). */
#ifndef LV_BUF_H
#define LV_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *s;
    size_t len, cap, max;
    bool failed; /* an append hit the cap or ran out of memory */
} lv_buf_t;

void lv_buf_init(lv_buf_t *b, size_t max);
void lv_buf_free(lv_buf_t *b);
void lv_buf_reset(lv_buf_t *b);
void lv_buf_put(lv_buf_t *b, const char *s, size_t n);
void lv_buf_puts(lv_buf_t *b, const char *s);
void lv_buf_printf(lv_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string (always NUL-terminated after any append). */
const char *lv_buf_str(lv_buf_t *b);

/* Postgres array literal: lv_arr_begin, then elements, then lv_arr_end. */
void lv_arr_begin(lv_buf_t *b);
void lv_arr_text(lv_buf_t *b, const char *s, size_t n);
void lv_arr_int(lv_buf_t *b, int64_t v);
void lv_arr_null(lv_buf_t *b);
void lv_arr_end(lv_buf_t *b);

#endif
