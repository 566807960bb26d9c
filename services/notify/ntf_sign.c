#define _POSIX_C_SOURCE 200809L
#include "ntf_sign.h"

#include <sodium.h>
#include <string.h>

void ntf_sign(const unsigned char *key, size_t keylen, const char *timestamp, const char *body,
              size_t bodylen, char out[NTF_SIGNATURE_LEN])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)timestamp, strlen(timestamp));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, bodylen);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, NTF_SIGNATURE_LEN - 7, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
}
