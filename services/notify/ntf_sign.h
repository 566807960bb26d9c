/* Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>" with the
 * channel's secret, sent as X-Levee-Signature: sha256=<hex>. The timestamp
 * (X-Levee-Timestamp, UTC ms) is inside the MAC so a receiver can refuse an
 * old request replayed. */
#ifndef NTF_SIGN_H
#define NTF_SIGN_H

#include <stddef.h>

#define NTF_SIGNATURE_LEN (7 + 64 + 1) /* "sha256=" + hex + NUL */

/* Writes "sha256=<64 hex>" into out. */
void ntf_sign(const unsigned char *key, size_t keylen, const char *timestamp, const char *body,
              size_t bodylen, char out[NTF_SIGNATURE_LEN]);

#endif
