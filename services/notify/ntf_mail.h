/* An e-mail message as SMTP carries it (RFC 5322 headers, RFC 2047 encoded
 * UTF-8 subject, a base64 UTF-8 text body). Pure functions: no I/O. */
#ifndef NTF_MAIL_H
#define NTF_MAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "lv_buf.h"

typedef struct {
    const char *from;        /* addr-spec, checked with ntf_mail_address_ok */
    const char *to;
    const char *subject;     /* UTF-8 */
    const char *body;        /* UTF-8, lines end in \n */
    const char *message_id;  /* without the angle brackets: id@domain */
    const char *delivery_id; /* X-Levee-Delivery, so a receiver can drop a repeat */
    int64_t date_ms;
} ntf_mail_t;

/* "Thu, 01 Oct 2026 08:30:00 +0000" (RFC 5322 date in UTC). */
void ntf_mail_date(int64_t ms, char out[40]);

/* Appends a header value: printable ASCII as it is, anything else as RFC 2047
 * encoded-words (=?UTF-8?B?...?=, each under 75 characters, never splitting
 * a character, folded with CRLF SP). */
void ntf_mail_encode_header(const char *utf8, lv_buf_t *out);

/* Appends the whole message with CRLF line ends. */
void ntf_mail_compose(const ntf_mail_t *m, lv_buf_t *out);

/* A plain addr-spec safe in a header and an SMTP envelope: local@domain,
 * printable ASCII without spaces, quotes, brackets, commas or semicolons,
 * at most 254 bytes. */
bool ntf_mail_address_ok(const char *s);

#endif
