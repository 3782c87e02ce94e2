/* sha256.h — incremental SHA-256 over OpenSSL's EVP interface, which uses
 * the CPU's SHA extensions where present (several times a portable
 * implementation's speed: `openssl speed -evp sha256`). */
#ifndef RV_SHA256_H
#define RV_SHA256_H

#include <stddef.h>

typedef struct rv_sha256 rv_sha256;

/* RV_E_NOMEM or RV_E_INTERNAL on failure. */
int rv_sha256_new(rv_sha256 **ret);
rv_sha256 *rv_sha256_free(rv_sha256 *h);
int rv_sha256_reset(rv_sha256 *h);
int rv_sha256_update(rv_sha256 *h, const void *p, size_t n);
/* Writes 64 lower-case hex digits and a NUL into hex. */
int rv_sha256_final_hex(rv_sha256 *h, char hex[65]);

#endif
