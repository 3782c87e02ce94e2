/* fuzz_url_normalize.c — rv_url_normalize on any string.
 *
 * Properties: a key is accepted again and is its own key (idempotent);
 * a key is printable ASCII with no fragment and no longer than the input
 * plus what a re-attached "%25" zone id may add, and its scheme is one the
 * engine supports; rejections are one of the documented codes and write
 * nothing. */
#include <retriever/retriever.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *url = fuzz_cstr(data, size);
    if (!url)
        return 0;
    char *key = (char *)&url, *again = NULL;
    int r = rv_url_normalize(url, &key);
    if (r != RV_OK) {
        FUZZ_CHECK(r == RV_E_BAD_URL || r == RV_E_UNSUPPORTED_SCHEME || r == RV_E_NOMEM);
        FUZZ_CHECK(key == (char *)&url);
        free(url);
        return 0;
    }
    FUZZ_CHECK(key != NULL);
    FUZZ_CHECK(strchr(key, '#') == NULL);
    for (const char *p = key; *p; p++)
        FUZZ_CHECK(*p > 0x20 && *p < 0x7f);
    /* A built-in source's scheme (the registry's, with no engine). */
    const char *sep = strstr(key, "://");
    FUZZ_CHECK(sep != NULL && (size_t)(sep - key) < 16);
    char scheme[16];
    memcpy(scheme, key, (size_t)(sep - key));
    scheme[sep - key] = '\0';
    FUZZ_CHECK(rv_engine_supports_scheme(NULL, scheme));
    r = rv_url_normalize(key, &again);
    FUZZ_CHECK(r == RV_OK || r == RV_E_NOMEM);
    if (r == RV_OK)
        FUZZ_CHECK(strcmp(again, key) == 0);
    free(again);
    free(key);
    free(url);
    return 0;
}
