/* test_json.c — JSON escaping and the --json line. */
#include <stdlib.h>

#include "buf.h"
#include "check.h"
#include "json.h"
#include "retriever/rv_error.h"

static const char *esc(const char *s) {
    static rvc_buf b;
    rvc_buf_done(&b);
    rvc_buf_init(&b, 4096);
    CHECK_INT_EQ(rvc_json_string(&b, s), RV_OK);
    return rvc_buf_str(&b);
}

static void test_escape(void) {
    CHECK_STR_EQ(esc(NULL), "null");
    CHECK_STR_EQ(esc(""), "\"\"");
    CHECK_STR_EQ(esc("plain"), "\"plain\"");
    CHECK_STR_EQ(esc("say \"hi\""), "\"say \\\"hi\\\"\"");
    CHECK_STR_EQ(esc("C:\\dir\\"), "\"C:\\\\dir\\\\\"");
    CHECK_STR_EQ(esc("/a/b"), "\"/a/b\""); /* '/' needs no escape */
    CHECK_STR_EQ(esc("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
    CHECK_STR_EQ(esc("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
    CHECK_STR_EQ(esc("\x1b[31m"), "\"\\u001b[31m\"");
    /* Valid UTF-8 passes through unchanged, 2, 3 and 4 bytes. */
    CHECK_STR_EQ(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                 "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* Invalid bytes become U+FFFD, one per byte. */
    CHECK_STR_EQ(esc("a\xff" "b"), "\"a\\ufffdb\"");
    CHECK_STR_EQ(esc("\xc3"), "\"\\ufffd\"");
    CHECK_STR_EQ(esc("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
    CHECK_STR_EQ(esc("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
    /* The JavaScript line separators. */
    CHECK_STR_EQ(esc("\xe2\x80\xa8\xe2\x80\xa9"), "\"\\u2028\\u2029\"");

    /* A bounded buffer fails cleanly. */
    rvc_buf b;
    rvc_buf_init(&b, 4);
    CHECK_INT_EQ(rvc_json_string(&b, "abcdef"), RV_E_TOO_LARGE);
    rvc_buf_done(&b);
}

static void test_lines(void) {
    rvc_buf b;
    rvc_buf_init(&b, 65536);

    rvc_json_result done = {
        .url = "http://h/a.bin",
        .path = "out/a.bin",
        .state = "done",
        .bytes = 1048576,
        .sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .has_crc32c = true,
        .crc32c = 0x0000abcd, /* leading zeros kept: always 8 digits */
        .seconds = 1.23456,
        .retries = 2,
        .cached_bytes = 1048576,
        .resumed_bytes = 0,
        .error = RV_OK,
    };
    CHECK_INT_EQ(rvc_json_result_line(&b, &done), RV_OK);
    CHECK_STR_EQ(rvc_buf_str(&b),
                 "{\"url\":\"http://h/a.bin\",\"path\":\"out/a.bin\",\"state\":\"done\","
                 "\"bytes\":1048576,"
                 "\"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
                 "\"crc32c\":\"0000abcd\",\"seconds\":1.235,\"retries\":2,"
                 "\"cached_bytes\":1048576,\"resumed_bytes\":0,\"error\":null}\n");

    rvc_buf_reset(&b);
    rvc_json_result failed = {
        .url = "http://h/\"q\"",
        .path = NULL,
        .state = "failed",
        .bytes = 0,
        .sha256 = NULL,
        .seconds = -3, /* clamped */
        .retries = 0,
        .resumed_bytes = 4096,
        .error = RV_E_NOT_FOUND,
        .detail = "HTTP 404\n",
    };
    CHECK_INT_EQ(rvc_json_result_line(&b, &failed), RV_OK);
    CHECK_STR_EQ(rvc_buf_str(&b),
                 "{\"url\":\"http://h/\\\"q\\\"\",\"path\":null,\"state\":\"failed\",\"bytes\":0,"
                 "\"sha256\":null,\"crc32c\":null,\"seconds\":0.000,\"retries\":0,"
                 "\"cached_bytes\":0,\"resumed_bytes\":4096,"
                 "\"error\":{\"code\":\"RV_E_NOT_FOUND\",\"number\":11,"
                 "\"message\":\"origin has no such object\",\"detail\":\"HTTP 404\\n\","
                 "\"retryable\":false}}\n");

    rvc_buf_reset(&b);
    failed.error = RV_E_SERVER_ERROR;
    failed.detail = NULL;
    CHECK_INT_EQ(rvc_json_result_line(&b, &failed), RV_OK);
    CHECK_STR_HAS(rvc_buf_str(&b), "\"detail\":\"\",\"retryable\":true}}\n");

    rvc_buf_done(&b);
}

int main(void) {
    test_escape();
    test_lines();
    return CHECK_RESULT();
}
