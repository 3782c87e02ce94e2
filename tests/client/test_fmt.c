/* test_fmt.c — human formatting, terminal sanitizing, the bounded buffer. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"
#include "check.h"
#include "fmt.h"
#include "retriever/rv_error.h"
#include "utf8.h"

static const char *size(uint64_t b) {
    static char buf[RVC_FMT_MAX];
    rvc_fmt_size(b, buf);
    return buf;
}

static const char *rate(double r) {
    static char buf[RVC_FMT_MAX];
    rvc_fmt_rate(r, buf);
    return buf;
}

static const char *dur(uint64_t s) {
    static char buf[RVC_FMT_MAX];
    rvc_fmt_duration(s, buf);
    return buf;
}

static const char *elapsed(double s) {
    static char buf[RVC_FMT_MAX];
    rvc_fmt_elapsed(s, buf);
    return buf;
}

static void test_sizes(void) {
    CHECK_STR_EQ(size(0), "0 B");
    CHECK_STR_EQ(size(1), "1 B");
    CHECK_STR_EQ(size(1023), "1023 B");
    CHECK_STR_EQ(size(1024), "1.0 KiB");
    CHECK_STR_EQ(size(1536), "1.5 KiB");
    CHECK_STR_EQ(size(12900000), "12.3 MiB");
    CHECK_STR_EQ(size(1048575), "1.0 MiB");          /* 1023.999 KiB rounds up a unit */
    CHECK_STR_EQ(size(1024ull * 1023 + 900), "1023.9 KiB");
    CHECK_STR_EQ(size(1ull << 30), "1.0 GiB");
    CHECK_STR_EQ(size(5ull << 40), "5.0 TiB");
    CHECK_STR_EQ(size(1ull << 50), "1.0 PiB");
    CHECK_STR_EQ(size(1ull << 60), "1.0 EiB");
    CHECK_STR_EQ(size(UINT64_MAX), "16.0 EiB");
}

static void test_rates(void) {
    CHECK_STR_EQ(rate(0), "0 B/s");
    CHECK_STR_EQ(rate(-5), "0 B/s");
    CHECK_STR_EQ(rate(NAN), "0 B/s");
    CHECK_STR_EQ(rate(INFINITY), "0 B/s");
    CHECK_STR_EQ(rate(512.7), "512 B/s");
    CHECK_STR_EQ(rate(4.5 * 1024 * 1024), "4.5 MiB/s");
    CHECK_STR_EQ(rate(1e30), "16.0 EiB/s");
}

static void test_durations(void) {
    CHECK_STR_EQ(dur(0), "0s");
    CHECK_STR_EQ(dur(59), "59s");
    CHECK_STR_EQ(dur(60), "1m00s");
    CHECK_STR_EQ(dur(65), "1m05s");
    CHECK_STR_EQ(dur(3599), "59m59s");
    CHECK_STR_EQ(dur(3600), "1h00m");
    CHECK_STR_EQ(dur(86399), "23h59m");
    CHECK_STR_EQ(dur(86400), "1d00h");
    CHECK_STR_EQ(dur(999ull * 86400 + 23 * 3600), "999d23h");
    CHECK_STR_EQ(dur(1000ull * 86400), ">999d");
    CHECK_STR_EQ(dur(UINT64_MAX), ">999d");

    CHECK_STR_EQ(elapsed(0), "0.0s");
    CHECK_STR_EQ(elapsed(-1), "0.0s");
    CHECK_STR_EQ(elapsed(NAN), "0.0s");
    CHECK_STR_EQ(elapsed(0.04), "0.0s");
    CHECK_STR_EQ(elapsed(12.34), "12.3s");
    CHECK_STR_EQ(elapsed(59.9), "59.9s");
    CHECK_STR_EQ(elapsed(59.96), "1m00s");
    CHECK_STR_EQ(elapsed(125.4), "2m05s");
    CHECK_STR_EQ(elapsed(1e300), ">999d");
}

static void test_eta_percent_bar(void) {
    uint64_t eta = 12345;
    CHECK(!rvc_eta_seconds(0, 100, 0, &eta));
    CHECK(!rvc_eta_seconds(0, 100, -1, &eta));
    CHECK(!rvc_eta_seconds(0, 100, NAN, &eta));
    CHECK(!rvc_eta_seconds(200, 100, 10, &eta));
    CHECK_INT_EQ(eta, 12345); /* untouched on false */
    CHECK(rvc_eta_seconds(100, 100, 0, &eta));
    CHECK_INT_EQ(eta, 0);
    CHECK(rvc_eta_seconds(0, 100, 10, &eta));
    CHECK_INT_EQ(eta, 10);
    CHECK(rvc_eta_seconds(0, 101, 10, &eta));
    CHECK_INT_EQ(eta, 11); /* rounded up */
    CHECK(rvc_eta_seconds(0, UINT64_MAX, 1e-300, &eta));
    CHECK(eta == UINT64_MAX);

    CHECK_INT_EQ(rvc_percent(0, 0), 0);
    CHECK_INT_EQ(rvc_percent(5, 0), 0);
    CHECK_INT_EQ(rvc_percent(0, 100), 0);
    CHECK_INT_EQ(rvc_percent(45, 100), 45);
    CHECK_INT_EQ(rvc_percent(999, 1000), 99);
    CHECK_INT_EQ(rvc_percent(99999, 100000), 99); /* 100 only when complete */
    CHECK_INT_EQ(rvc_percent(100, 100), 100);
    CHECK_INT_EQ(rvc_percent(200, 100), 100);
    CHECK_INT_EQ(rvc_percent(UINT64_MAX - 1, UINT64_MAX), 99); /* no overflow */
    CHECK_INT_EQ(rvc_percent(UINT64_MAX / 2, UINT64_MAX), 49);

    char bar[32];
    rvc_fmt_bar(0, 100, 10, bar);
    CHECK_STR_EQ(bar, "          ");
    rvc_fmt_bar(50, 100, 10, bar);
    CHECK_STR_EQ(bar, "====>     ");
    rvc_fmt_bar(100, 100, 10, bar);
    CHECK_STR_EQ(bar, "==========");
    rvc_fmt_bar(5, 0, 4, bar);
    CHECK_STR_EQ(bar, "    ");
    rvc_fmt_bar(1, 2, 0, bar);
    CHECK_STR_EQ(bar, "");
}

static const char *san(const char *s, size_t cols) {
    static rvc_buf b;
    rvc_buf_done(&b);
    rvc_buf_init(&b, 4096);
    CHECK_INT_EQ(rvc_sanitize(&b, s, cols), RV_OK);
    return rvc_buf_str(&b);
}

static void test_sanitize(void) {
    CHECK_STR_EQ(san("file.iso", 100), "file.iso");
    CHECK_STR_EQ(san("a\x1b[31mred", 100), "a?[31mred");         /* ESC */
    CHECK_STR_EQ(san("tab\there\nnl\x7f", 100), "tab?here?nl?"); /* C0, DEL */
    CHECK_STR_EQ(san("c1\xc2\x9b", 100), "c1?");                 /* C1 CSI as UTF-8 */
    CHECK_STR_EQ(san("bad\xff\xfe", 100), "bad??");              /* invalid UTF-8 */
    CHECK_STR_EQ(san("caf\xc3\xa9", 100), "caf\xc3\xa9");        /* valid UTF-8 kept */
    CHECK_INT_EQ(rvc_sanitized_cols("caf\xc3\xa9"), 5);          /* non-ASCII counts 2 */
    CHECK_STR_EQ(san("a-very-long-name.iso", 10), "...ame.iso");
    CHECK_STR_EQ(san("abcdef", 6), "abcdef");
    CHECK_STR_EQ(san("abcdefg", 6), "...efg");
    CHECK_STR_EQ(san("abcdef", 2), "..");
    CHECK_STR_EQ(san("abcdef", 0), "");
    /* A wide character is dropped whole, never split. */
    CHECK_STR_EQ(san("x\xc3\xa9y\xc3\xa9", 6), "x\xc3\xa9y\xc3\xa9"); /* 6 columns: fits */
    CHECK_STR_EQ(san("x\xc3\xa9y\xc3\xa9", 5), "...\xc3\xa9");
    CHECK_STR_EQ(san("\xc3\xa9\xc3\xa9\xc3\xa9", 4), "...");
}

static void test_utf8(void) {
    uint32_t cp = 0;
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"A", 1, &cp), 1);
    CHECK_INT_EQ(cp, 'A');
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
    CHECK_INT_EQ(cp, 0xE9);
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    CHECK_INT_EQ(cp, 0x20AC);
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
    CHECK_INT_EQ(cp, 0x1F600);
    cp = 7;
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\x80", 1, &cp), 0);         /* stray */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xc3", 1, &cp), 0);         /* truncated */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xc3\x41", 2, &cp), 0);     /* bad cont. */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xc0\xaf", 2, &cp), 0);     /* overlong */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xe0\x80\xaf", 3, &cp), 0); /* overlong */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0); /* surrogate */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0); /* >10FFFF */
    CHECK_INT_EQ(rvc_utf8_next((const unsigned char *)"\xff", 1, &cp), 0);
    CHECK_INT_EQ(cp, 7); /* untouched on failure */
}

static void test_buf(void) {
    rvc_buf b;
    rvc_buf_init(&b, 8);
    CHECK_STR_EQ(rvc_buf_str(&b), "");
    CHECK_INT_EQ(rvc_buf_puts(&b, "abcd"), RV_OK);
    CHECK_INT_EQ(rvc_buf_printf(&b, "%d", 123), RV_OK);
    CHECK_STR_EQ(rvc_buf_str(&b), "abcd123");
    CHECK_INT_EQ(rvc_buf_puts(&b, "xy"), RV_E_TOO_LARGE); /* 9 > 8 */
    CHECK_STR_EQ(rvc_buf_str(&b), "abcd123");             /* unchanged */
    CHECK_INT_EQ(rvc_buf_putc(&b, 'z'), RV_E_TOO_LARGE);  /* sticky */
    CHECK_INT_EQ(rvc_buf_error(&b), RV_E_TOO_LARGE);
    rvc_buf_reset(&b);
    CHECK_INT_EQ(rvc_buf_error(&b), RV_OK);
    CHECK_INT_EQ(rvc_buf_puts(&b, "12345678"), RV_OK); /* exactly max */
    CHECK_INT_EQ(b.len, 8);
    char *s = NULL;
    CHECK_INT_EQ(rvc_buf_steal(&b, &s), RV_OK);
    CHECK_STR_EQ(s, "12345678");
    CHECK_INT_EQ(b.len, 0);
    free(s);
    CHECK_INT_EQ(rvc_buf_steal(&b, &s), RV_OK); /* empty gives "" */
    CHECK_STR_EQ(s, "");
    free(s);
    rvc_buf_done(&b);
}

int main(void) {
    test_sizes();
    test_rates();
    test_durations();
    test_eta_percent_bar();
    test_sanitize();
    test_utf8();
    test_buf();
    return CHECK_RESULT();
}
