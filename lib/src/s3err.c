/* s3err.c — S3's error codes (s3err.h). */
#include "s3err.h"

#include <string.h>

#include "rv_error.h"

bool rv_s3_error_code(const char *body, size_t n, char *code, size_t size) {
    static const char open[] = "<Code>", close[] = "</Code>";
    const char *end = body + n;
    for (const char *p = body; p + sizeof(open) - 1 <= end; p++) {
        if (memcmp(p, open, sizeof(open) - 1) != 0)
            continue;
        const char *v = p + sizeof(open) - 1, *q = v;
        while (q + sizeof(close) - 1 <= end && memcmp(q, close, sizeof(close) - 1) != 0)
            q++;
        if (q + sizeof(close) - 1 > end || size == 0)
            return false;
        size_t len = (size_t)(q - v) < size - 1 ? (size_t)(q - v) : size - 1;
        /* A code is letters; anything else is not shown as one. */
        for (size_t i = 0; i < len; i++)
            if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
                  (v[i] >= '0' && v[i] <= '9')))
                return false;
        memcpy(code, v, len);
        code[len] = '\0';
        return len > 0;
    }
    return false;
}

const char *rv_s3_error_text(const char *code, bool *permanent, int *err) {
    static const struct {
        const char *code;
        bool permanent;
        int err;
        const char *text;
    } known[] = {
        {"AccessDenied", true, RV_E_ACCESS_DENIED,
         "access denied (the credentials may not read it, or the bucket's policy refuses them)"},
        {"NoSuchKey", true, RV_E_NOT_FOUND, "no such key in the bucket"},
        {"NoSuchBucket", true, RV_E_NOT_FOUND, "no such bucket"},
        {"InvalidAccessKeyId", true, RV_E_ACCESS_DENIED,
         "the endpoint does not know the access key id"},
        {"SignatureDoesNotMatch", true, RV_E_ACCESS_DENIED,
         "the signature does not match: wrong secret access key for this access key id "
         "(or wrong region)"},
        {"ExpiredToken", true, RV_E_ACCESS_DENIED, "the session token has expired"},
        {"InvalidToken", true, RV_E_ACCESS_DENIED, "the session token is malformed or invalid"},
        {"SlowDown", false, RV_E_THROTTLED, "the endpoint asks to slow down"},
        {"InternalError", false, RV_E_SERVER_ERROR, "internal error at the endpoint"},
        {"ServiceUnavailable", false, RV_E_SERVER_ERROR, "the endpoint is unavailable"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(code, known[i].code) == 0) {
            *permanent = known[i].permanent;
            *err = known[i].err;
            return known[i].text;
        }
    return NULL;
}
