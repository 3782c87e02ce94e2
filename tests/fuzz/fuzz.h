/* fuzz.h — what every libFuzzer target here shares.
 *
 * A target is one file, fuzz_<name>.c, defining LLVMFuzzerTestOneInput. It
 * feeds the input to one decoder or validator and then checks properties
 * that must hold for every input (not only "did not crash"): a violated
 * one calls FUZZ_CHECK's abort(), which libFuzzer reports as a crash with
 * the input saved. AddressSanitizer (with leak detection) and
 * UndefinedBehaviorSanitizer are on in every fuzz build (RV_FUZZ).
 */
#ifndef RV_FUZZ_H
#define RV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                            \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* The input as a NUL-terminated string (cut at its first NUL, as a C
 * caller would pass it). malloc'd; NULL when out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

#endif
