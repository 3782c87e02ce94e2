/* fuzz_request_download.c — rvd_request_download on any bytes.
 *
 * Properties of an accepted request: every field within request.h's
 * limits and in the normalised form its comment promises (keys are their
 * own keys, destinations absolute with no dot components and pairwise
 * distinct, sha256 lower-case hex, header lines allowed by the engine and
 * digested); of a refused one: -EINVAL with a sentence, output untouched.
 * Leaks on either path are caught by LeakSanitizer. */
#include <errno.h>
#include <retriever/retriever.h>
#include <stdbool.h>

#include "fuzz.h"
#include "request.h"

static bool lower_hex(const char *s, size_t n) {
    if (strlen(s) != n)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static void check_source(const rvd_source *s) {
    char *key = NULL;
    FUZZ_CHECK(s->url && s->url_key && s->url_display);
    FUZZ_CHECK(strlen(s->url) <= RVD_REQ_URL_MAX);
    int r = rv_url_normalize(s->url_key, &key);
    FUZZ_CHECK(r == RV_OK || r == RV_E_NOMEM);
    if (r == RV_OK)
        FUZZ_CHECK(strcmp(key, s->url_key) == 0);
    free(key);
    if (s->destination) {
        const char *d = s->destination;
        size_t n = strlen(d);
        FUZZ_CHECK(n >= 2 && n <= RVD_REQ_DEST_MAX && d[0] == '/' && d[n - 1] != '/');
        FUZZ_CHECK(!strstr(d, "//") && !strstr(d, "/./") && !strstr(d, "/../"));
        FUZZ_CHECK(strcmp(d + n - 2, "/.") != 0 && (n < 3 || strcmp(d + n - 3, "/..") != 0));
    }
    if (s->sha256)
        FUZZ_CHECK(lower_hex(s->sha256, 64));
    FUZZ_CHECK(s->n_headers <= RVD_REQ_HEADERS_MAX);
    FUZZ_CHECK((s->n_headers == 0) == (s->headers == NULL));
    FUZZ_CHECK(s->n_headers ? lower_hex(s->headers_digest, 64) : s->headers_digest[0] == '\0');
    for (size_t j = 0; j < s->n_headers; j++) {
        FUZZ_CHECK(rv_header_allowed(s->headers[j]));
        FUZZ_CHECK(strlen(s->headers[j]) <= RVD_REQ_HEADER_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rvd_download_req *req = (rvd_download_req *)&size;
    char *err = NULL;
    int r = rvd_request_download(data, size, &req, &err);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
        FUZZ_CHECK(req == (rvd_download_req *)&size);
        FUZZ_CHECK(r == -ENOMEM || (err && *err));
        free(err);
        return 0;
    }
    FUZZ_CHECK(r == 0 && err == NULL);
    FUZZ_CHECK(req->n_sources >= 1 && req->n_sources <= RVD_REQ_SOURCES_MAX);
    FUZZ_CHECK(req->connections <= RVD_REQ_CONNECTIONS_MAX);
    for (size_t i = 0; i < req->n_sources; i++) {
        check_source(&req->sources[i]);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(!req->sources[i].destination || !req->sources[k].destination ||
                       strcmp(req->sources[i].destination, req->sources[k].destination) != 0);
    }
    rvd_download_req_free(req);
    return 0;
}
