/* fuzz_url_redact.c — rv_url_redact on any string.
 *
 * Properties: it never fails but for memory; redacting twice changes
 * nothing more; the userinfo of a URL the parser accepts never survives
 * (no '@' is left in the authority); and a credential value of the form
 * the input plants ("token=<value>") never appears in the output. */
#include <retriever/retriever.h>

#include "fuzz.h"

/* The authority of a redacted "scheme://..." string keeps only the "***@"
 * mark, if any '@' at all. */
static void check_authority(const char *s) {
    const char *p = strstr(s, "://");
    if (!p || (size_t)(p - s) != strcspn(s, ":/?#@"))
        return;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at)
        FUZZ_CHECK(at == p + 3 && strncmp(p, "***@", 4) == 0 && !memchr(at + 1, '@', n - 4));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *in = fuzz_cstr(data, size), *out = NULL, *again = NULL, *planted = NULL;
    if (!in)
        return 0;
    int r = rv_url_redact(in, &out);
    FUZZ_CHECK(r == RV_OK || r == RV_E_NOMEM);
    if (r != RV_OK)
        goto done;
    check_authority(out);
    r = rv_url_redact(out, &again);
    FUZZ_CHECK(r == RV_OK || r == RV_E_NOMEM);
    if (r == RV_OK)
        FUZZ_CHECK(strcmp(again, out) == 0);

    /* Plant a secret after the input as one more query parameter: it must
     * be gone whatever came before (unless the input ended in a place a
     * parameter cannot start: then nothing is promised). */
    const char secret[] = "S3CR3TvALU3";
    size_t n = strlen(in);
    planted = malloc(n + 32);
    if (planted) {
        char *red = NULL;
        snprintf(planted, n + 32, "%s%stoken=%s", in, strchr(in, '?') ? "&" : "?", secret);
        if (rv_url_redact(planted, &red) == RV_OK) {
            /* The planted value may only survive where the input itself
             * contained it. */
            if (!strstr(in, secret))
                FUZZ_CHECK(strstr(red, secret) == NULL);
            free(red);
        }
    }
done:
    free(planted);
    free(again);
    free(out);
    free(in);
    return 0;
}
