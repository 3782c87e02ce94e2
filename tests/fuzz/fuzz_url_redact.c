/* fuzz_url_redact.c — rv_url_redact and rv_url_scrub on any string.
 *
 * Properties: it never fails but for memory; redacting twice changes
 * nothing more; the userinfo of a URL the parser accepts never survives
 * (no '@' is left in the authority); a value the input plants under a name
 * that is not on the allow-list ("sessionid=<value>") never appears in the
 * output; and once rv_url_redact hides it, rv_url_scrub removes it from
 * any text that quotes it. */
#include <retriever/retriever.h>

#include <stdbool.h>

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
        snprintf(planted, n + 32, "%s%ssessionid=%s", in, strchr(in, '?') ? "&" : "?", secret);
        if (rv_url_redact(planted, &red) == RV_OK) {
            /* The planted value may only survive where the input itself
             * contained it. */
            if (!strstr(in, secret))
                FUZZ_CHECK(strstr(red, secret) == NULL);
            /* A hidden value is hidden in free text too (when it is a
             * value of its own, not a piece of a longer one: the scrub
             * hides pieces whole). */
            char own[32];
            snprintf(own, sizeof(own), "%ssessionid=REDACTED", strchr(in, '?') ? "&" : "?");
            size_t rn = strlen(red), on = strlen(own);
            bool alone = rn >= on && strcmp(red + rn - on, own) == 0;
            char *text = NULL, *quoted = malloc(n + sizeof(secret) + 16);
            const char *urls[] = {planted};
            if (quoted && alone && !strstr(in, secret)) {
                snprintf(quoted, n + sizeof(secret) + 16, "got '%s' in %s", secret, in);
                if (rv_url_scrub(quoted, urls, 1, &text) == RV_OK) {
                    FUZZ_CHECK(strstr(text, secret) == NULL);
                    free(text);
                }
            }
            free(quoted);
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
