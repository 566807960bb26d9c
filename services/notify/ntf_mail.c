#define _POSIX_C_SOURCE 200809L
#include "ntf_mail.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lv_time.h"

#define WORD_BYTES 39 /* UTF-8 bytes per encoded-word: 52 base64 characters, 64 in all */
#define BODY_COLS 76

void ntf_mail_date(int64_t ms, char out[40])
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t days = ms >= 0 ? ms / LV_DAY_MS : -((-ms + LV_DAY_MS - 1) / LV_DAY_MS);
    int64_t sec = (ms - days * LV_DAY_MS) / 1000;
    int y, m, d;
    lv_civil_from_days(days, &y, &m, &d);
    /* 1970-01-01 was a Thursday. */
    int w = (int)(((days % 7) + 7 + 4) % 7);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[w], d, mo[m - 1], y,
             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
}

static bool plain_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7E)
            return false;
    return strstr(s, "=?") == NULL;
}

static void put_base64(lv_buf_t *out, const unsigned char *bin, size_t n)
{
    char b64[sodium_base64_ENCODED_LEN(WORD_BYTES > BODY_COLS / 4 * 3 ? WORD_BYTES : BODY_COLS / 4 * 3,
                                       sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, bin, n, sodium_base64_VARIANT_ORIGINAL);
    lv_buf_puts(out, b64);
}

void ntf_mail_encode_header(const char *utf8, lv_buf_t *out)
{
    if (plain_ascii(utf8)) {
        lv_buf_puts(out, utf8);
        return;
    }
    const unsigned char *p = (const unsigned char *)utf8;
    size_t left = strlen(utf8);
    bool first = true;
    while (left > 0) {
        size_t n = left < WORD_BYTES ? left : WORD_BYTES;
        /* Back off to a character start so no word splits a character. */
        while (n < left && n > 0 && (p[n] & 0xC0) == 0x80)
            n--;
        if (n == 0)
            n = left < WORD_BYTES ? left : WORD_BYTES; /* not UTF-8: split anyway */
        lv_buf_puts(out, first ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
        put_base64(out, p, n);
        lv_buf_puts(out, "?=");
        p += n;
        left -= n;
        first = false;
    }
}

/* The body with CRLF line ends, then base64 in lines of 76 characters. */
static void put_body(const char *body, lv_buf_t *out)
{
    lv_buf_t crlf;
    lv_buf_init(&crlf, (size_t)4 << 20);
    for (const char *p = body; *p; p++) {
        if (*p == '\n' && (p == body || p[-1] != '\r'))
            lv_buf_put(&crlf, "\r", 1);
        lv_buf_put(&crlf, p, 1);
    }
    const unsigned char *b = (const unsigned char *)lv_buf_str(&crlf);
    size_t left = crlf.len, line = BODY_COLS / 4 * 3;
    while (left > 0) {
        size_t n = left < line ? left : line;
        put_base64(out, b, n);
        lv_buf_puts(out, "\r\n");
        b += n;
        left -= n;
    }
    lv_buf_free(&crlf);
}

void ntf_mail_compose(const ntf_mail_t *m, lv_buf_t *out)
{
    char date[40];
    ntf_mail_date(m->date_ms, date);
    lv_buf_printf(out, "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\nMessage-ID: <%s>\r\nSubject: ", date,
                  m->from, m->to, m->message_id);
    ntf_mail_encode_header(m->subject, out);
    lv_buf_printf(out,
                  "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                  "Content-Transfer-Encoding: base64\r\nX-Levee-Delivery: %s\r\n"
                  "Auto-Submitted: auto-generated\r\n\r\n",
                  m->delivery_id);
    put_body(m->body, out);
}

bool ntf_mail_address_ok(const char *s)
{
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n == 0 || n > 254 || !at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F || strchr("\"'<>(),;:[]\\", *p))
            return false;
    return true;
}
