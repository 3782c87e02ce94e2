/* sha256.c — SHA-256 through OpenSSL EVP. */
#include "sha256.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>

#include "rv_error.h"

struct rv_sha256 {
    EVP_MD_CTX *ctx;
};

/* The digest, fetched from OpenSSL's providers once for the process:
 * EVP_sha256() fetches it anew at every init (OpenSSL 3's "implicit
 * fetch"), a lookup in the provider store per object, which showed in the
 * engine thread's profile with many small files. Kept for the process's
 * life. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void) {
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int rv_sha256_new(rv_sha256 **ret) {
    rv_sha256 *h = calloc(1, sizeof(*h));
    if (!h)
        return RV_E_NOMEM;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || rv_sha256_reset(h) != RV_OK) {
        rv_sha256_free(h);
        return RV_E_NOMEM;
    }
    *ret = h;
    return RV_OK;
}

rv_sha256 *rv_sha256_free(rv_sha256 *h) {
    if (h) {
        EVP_MD_CTX_free(h->ctx);
        free(h);
    }
    return NULL;
}

int rv_sha256_reset(rv_sha256 *h) {
    pthread_once(&sha256_once, fetch_sha256);
    const EVP_MD *md = sha256_md ? sha256_md : EVP_sha256();
    return EVP_DigestInit_ex(h->ctx, md, NULL) == 1 ? RV_OK : RV_E_INTERNAL;
}

int rv_sha256_update(rv_sha256 *h, const void *p, size_t n) {
    return EVP_DigestUpdate(h->ctx, p, n) == 1 ? RV_OK : RV_E_INTERNAL;
}

int rv_sha256_final_hex(rv_sha256 *h, char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != 32)
        return RV_E_INTERNAL;
    for (unsigned i = 0; i < len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return RV_OK;
}
