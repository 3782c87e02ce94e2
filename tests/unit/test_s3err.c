/* s3err.c: the <Code> of S3's error bodies and what each means. */
#include "s3err.h"

#include <string.h>

#include "rv_error.h"
#include "rv_test.h"

static void test_code(void) {
    char code[32];
    const char *body = "<?xml version=\"1.0\"?>\n<Error><Code>NoSuchKey</Code>"
                       "<Message>The specified key does not exist.</Message></Error>";
    CHECK(rv_s3_error_code(body, strlen(body), code, sizeof(code)));
    CHECK_STREQ(code, "NoSuchKey");
    /* Cut before the end of the code: none. */
    CHECK(!rv_s3_error_code(body, strstr(body, "</Code>") - body + 3, code, sizeof(code)));
    /* No code, an empty one, one with markup or spaces: none. */
    CHECK(!rv_s3_error_code("<Error></Error>", 15, code, sizeof(code)));
    CHECK(!rv_s3_error_code("<Code></Code>", 13, code, sizeof(code)));
    CHECK(!rv_s3_error_code("<Code>a b</Code>", 16, code, sizeof(code)));
    CHECK(!rv_s3_error_code("<Code>x<y</Code>", 16, code, sizeof(code)));
    /* Longer than the buffer: cut to it. */
    CHECK(rv_s3_error_code("<Code>SignatureDoesNotMatch</Code>", 34, code, 10));
    CHECK_STREQ(code, "Signature"); /* 9 bytes and the NUL */
    CHECK(!rv_s3_error_code("<Code>A</Code>", 14, code, 0));
}

static void test_text(void) {
    bool permanent = false;
    int err = RV_OK;
    static const char *const refused[] = {"AccessDenied", "NoSuchKey", "NoSuchBucket",
                                          "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                          "ExpiredToken"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        permanent = false;
        CHECK(rv_s3_error_text(refused[i], &permanent, &err) != NULL);
        CHECK(permanent);
    }
    CHECK(rv_s3_error_text("NoSuchKey", &permanent, &err) && err == RV_E_NOT_FOUND);
    CHECK(rv_s3_error_text("SlowDown", &permanent, &err) && !permanent);
    CHECK(rv_s3_error_text("InternalError", &permanent, &err) && !permanent);
    CHECK(rv_s3_error_text("SomethingNew", &permanent, &err) == NULL);
}

int main(void) {
    test_code();
    test_text();
    return rv_test_result();
}
