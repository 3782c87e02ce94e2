/* test_httphdr.c — the header parsers, good and hostile input. */
#include "httphdr.h"

#include <stdlib.h>

#include "rv_test.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* ---- header lines ---- */

struct split_case {
    const char *line;
    const char *name, *value; /* name NULL: not a header */
};

static const struct split_case splits[] = {
    {"Content-Length: 123\r\n", "Content-Length", "123"},
    {"content-length:123", "content-length", "123"},
    {"ETag:   \"abc\"  \t\r\n", "ETag", "\"abc\""},
    {"X-Empty:\r\n", "X-Empty", ""},
    {"X-Empty:   \n", "X-Empty", ""},
    {"Location: http://h/a:b\r\n", "Location", "http://h/a:b"},
    {"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", "Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
    {"X-Odd!#$%&'*+-.^_`|~: v", "X-Odd!#$%&'*+-.^_`|~", "v"},
    {"HTTP/1.1 200 OK\r\n", NULL, NULL},
    {"HTTP/1.1 200 Note: colon\r\n", NULL, NULL},
    {"\r\n", NULL, NULL},
    {"", NULL, NULL},
    {": no name\r\n", NULL, NULL},
    {"Bad Name: x\r\n", NULL, NULL},
    {"Name : x\r\n", NULL, NULL},
    {" folded: continuation\r\n", NULL, NULL},
    {"\tfolded\r\n", NULL, NULL},
    {"Name: a\rb\r\n", NULL, NULL},
    {"Name: a\nb\r\n", NULL, NULL},
    {"N(ame): x", NULL, NULL},
};

static void test_split(void) {
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        const struct split_case *c = &splits[i];
        const char *n = NULL, *v = NULL;
        size_t nl = 999, vl = 999;
        bool ok = rv_http_header_split(c->line, strlen(c->line), &n, &nl, &v, &vl);
        CHECK(ok == (c->name != NULL));
        if (ok && c->name) {
            CHECK_EQ_U64(nl, strlen(c->name));
            CHECK(strncmp(n, c->name, nl) == 0);
            CHECK_EQ_U64(vl, strlen(c->value));
            CHECK(strncmp(v, c->value, vl) == 0);
        }
        if (!ok) /* outputs untouched */
            CHECK(n == NULL && v == NULL && nl == 999 && vl == 999);
        if (ok != (c->name != NULL))
            fprintf(stderr, "    for '%s'\n", c->line);
    }
    /* a NUL inside the value, and len honoured (no reading past it) */
    static const char nul[] = "Name: a\0b\r\n";
    const char *n, *v;
    size_t nl, vl;
    CHECK(!rv_http_header_split(nul, sizeof(nul) - 1, &n, &nl, &v, &vl));
    CHECK(rv_http_header_split("Name: abcdef", 9, &n, &nl, &v, &vl));
    CHECK_EQ_U64(vl, 3);
    CHECK(!rv_http_header_split("Name: x", 4, &n, &nl, &v, &vl)); /* colon beyond len */
    CHECK(!rv_http_header_split(NULL, 0, &n, &nl, &v, &vl));

    CHECK(rv_http_name_is(S("content-RANGE"), "Content-Range"));
    CHECK(rv_http_name_is(S("ETAG"), "etag"));
    CHECK(!rv_http_name_is(S("ETa"), "ETag"));
    CHECK(!rv_http_name_is(S("ETags"), "ETag"));
    CHECK(!rv_http_name_is("ETagXYZ", 3, "ETag"));
    CHECK(rv_http_name_is("ETagXYZ", 4, "ETag"));
    CHECK(!rv_http_name_is(S("Content_Range"), "Content-Range"));
    CHECK(rv_http_name_is("", 0, ""));
}

/* ---- status lines ---- */

static void test_status(void) {
    static const struct {
        const char *line;
        long status; /* 0: not a status line */
    } cases[] = {
        {"HTTP/1.1 206 Partial Content\r\n", 206},
        {"HTTP/1.0 404 Not Found", 404},
        {"HTTP/2 200", 200},
        {"HTTP/2 200 \r\n", 200},
        {"HTTP/3 503\r\n", 503},
        {"HTTP/1.1 100 Continue\r\n", 100},
        {"HTTP/1.1 999 Odd\r\n", 999},
        {"HTTP/1.1 099 x", 0},
        {"HTTP/1.1 20 OK", 0},
        {"HTTP/1.1 2000 OK", 0},
        {"HTTP/1.1 20x OK", 0},
        {"HTTP/1.1  200 OK", 0},
        {"HTTP/1.1 200OK", 0},
        {"HTTP/1. 200 OK", 0},
        {"HTTP/x.1 200 OK", 0},
        {"HTTP/ 200", 0},
        {"http/1.1 200 OK", 0},
        {"ICY 200 OK", 0},
        {"Content-Length: 200", 0},
        {"", 0},
        {"HTTP/1.1", 0},
        {"HTTP/1.1 ", 0},
        {"HTTP/1.1 -200", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long st = -7;
        bool ok = rv_http_parse_status(cases[i].line, strlen(cases[i].line), &st);
        CHECK(ok == (cases[i].status != 0));
        CHECK_EQ_U64(st, ok ? cases[i].status : -7);
        if (ok != (cases[i].status != 0))
            fprintf(stderr, "    for '%s'\n", cases[i].line);
    }
    long st;
    CHECK(!rv_http_parse_status("HTTP/1.1 200", 10, &st)); /* cut inside the code */
}

/* ---- Content-Range ---- */

#define UNK RV_HTTP_UNKNOWN_TOTAL

static void test_content_range(void) {
    static const struct {
        const char *v;
        bool ok;
        uint64_t first, last, total;
    } cases[] = {
        {"bytes 0-99/100", true, 0, 99, 100},
        {"bytes 100-199/1000", true, 100, 199, 1000},
        {"bytes 0-0/1", true, 0, 0, 1},
        {"Bytes 5-9/*", true, 5, 9, UNK},
        {"BYTES 0-99/100", true, 0, 99, 100},
        {"bytes */1000", true, UNK, UNK, 1000},
        {"bytes */0", true, UNK, UNK, 0},
        {"bytes 000-099/0100", true, 0, 99, 100},
        /* the largest values that still fit */
        {"bytes 18446744073709551613-18446744073709551613/18446744073709551614", true,
         UINT64_MAX - 2, UINT64_MAX - 2, UINT64_MAX - 1},
        {"bytes 0-18446744073709551613/*", true, 0, UINT64_MAX - 2, UNK},
        {"bytes 0-18446744073709551614/*", true, 0, UINT64_MAX - 1, UNK},
        {"bytes */18446744073709551614", true, UNK, UNK, UINT64_MAX - 1},
        /* UINT64_MAX collides with the sentinel */
        {"bytes 0-18446744073709551615/*", false, 0, 0, 0},
        {"bytes */18446744073709551615", false, 0, 0, 0},
        {"bytes 0-1/18446744073709551615", false, 0, 0, 0},
        /* overflow */
        {"bytes 0-18446744073709551616/*", false, 0, 0, 0},
        {"bytes 0-99/18446744073709551616", false, 0, 0, 0},
        {"bytes 99999999999999999999-99999999999999999999/*", false, 0, 0, 0},
        {"bytes */99999999999999999999999999999999", false, 0, 0, 0},
        /* semantics */
        {"bytes 100-99/1000", false, 0, 0, 0},
        {"bytes 0-100/100", false, 0, 0, 0},
        {"bytes 0-99/99", false, 0, 0, 0},
        {"bytes 0-0/0", false, 0, 0, 0},
        /* syntax */
        {"", false, 0, 0, 0},
        {"bytes", false, 0, 0, 0},
        {"bytes ", false, 0, 0, 0},
        {"bytes 0-99", false, 0, 0, 0},
        {"bytes 0-99/", false, 0, 0, 0},
        {"bytes -99/100", false, 0, 0, 0},
        {"bytes 0-/100", false, 0, 0, 0},
        {"bytes 0--99/100", false, 0, 0, 0},
        {"bytes -1-99/100", false, 0, 0, 0},
        {"bytes +0-99/100", false, 0, 0, 0},
        {"bytes 0-+99/100", false, 0, 0, 0},
        {"bytes 0-99/+100", false, 0, 0, 0},
        {"bytes 0 -99/100", false, 0, 0, 0},
        {"bytes 0-99 /100", false, 0, 0, 0},
        {"bytes 0-99/100 ", false, 0, 0, 0},
        {"bytes  0-99/100", false, 0, 0, 0},
        {"bytes0-99/100", false, 0, 0, 0},
        {"items 0-99/100", false, 0, 0, 0},
        {"bytes=0-99/100", false, 0, 0, 0},
        {"bytes 0-99/100x", false, 0, 0, 0},
        {"bytes 0x0-0x63/100", false, 0, 0, 0},
        {"bytes 0-99/**", false, 0, 0, 0},
        {"bytes */*", false, 0, 0, 0},
        {"bytes *", false, 0, 0, 0},
        {"bytes */", false, 0, 0, 0},
        {"bytes * /100", false, 0, 0, 0},
        {"bytes 0-99,200-299/1000", false, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t f = 7, l = 7, t = 7;
        bool ok = rv_http_parse_content_range(cases[i].v, strlen(cases[i].v), &f, &l, &t);
        CHECK(ok == cases[i].ok);
        CHECK_EQ_U64(f, ok ? cases[i].first : 7);
        CHECK_EQ_U64(l, ok ? cases[i].last : 7);
        CHECK_EQ_U64(t, ok ? cases[i].total : 7);
        if (ok != cases[i].ok)
            fprintf(stderr, "    for '%s'\n", cases[i].v);
    }
    /* len is honoured: the tail after len is not read */
    uint64_t f, l, t;
    CHECK(rv_http_parse_content_range("bytes 0-9/100garbage", 13, &f, &l, &t));
    CHECK_EQ_U64(t, 100);
    CHECK(rv_http_parse_content_range("bytes 0-9/100", 12, &f, &l, &t));
    CHECK_EQ_U64(t, 10);
    CHECK(!rv_http_parse_content_range("bytes 0-9/100", 11, &f, &l, &t)); /* 0-9/9 */
}

/* ---- Content-Length ---- */

static void test_u64(void) {
    static const struct {
        const char *v;
        bool ok;
        uint64_t want;
    } cases[] = {
        {"0", true, 0},
        {"123", true, 123},
        {"000123", true, 123},
        {"18446744073709551615", true, UINT64_MAX},
        {"018446744073709551615", true, UINT64_MAX},
        {"18446744073709551616", false, 0},
        {"18446744073709551620", false, 0},
        {"99999999999999999999", false, 0},
        {"184467440737095516150", false, 0},
        {"", false, 0},
        {"-1", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"1,2", false, 0},
        {"0x10", false, 0},
        {"1e3", false, 0},
        {"12a", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 7;
        bool ok = rv_http_parse_u64(cases[i].v, strlen(cases[i].v), &v);
        CHECK(ok == cases[i].ok);
        CHECK_EQ_U64(v, ok ? cases[i].want : 7);
        if (ok != cases[i].ok)
            fprintf(stderr, "    for '%s'\n", cases[i].v);
    }
    uint64_t v;
    CHECK(rv_http_parse_u64("12345", 2, &v));
    CHECK_EQ_U64(v, 12);
    CHECK(!rv_http_parse_u64("12345", 0, &v));
}

/* ---- Retry-After ---- */

/* 1994-11-06 08:49:37 UTC, the RFC's example date. */
#define RFC_DATE ((time_t)784111777)

static void test_retry_after(void) {
    static const struct {
        const char *v;
        time_t now;
        bool ok;
        uint64_t ms;
    } cases[] = {
        {"0", 0, true, 0},
        {"120", 0, true, 120000},
        {"00120", 0, true, 120000},
        {"18446744073709551", 0, true, UINT64_MAX / 2}, /* *1000 would overflow */
        {"9223372036854775", 0, true, 9223372036854775000u},
        {"9223372036854776", 0, true, UINT64_MAX / 2},
        {"99999999999999999999999999999999999", 0, true, UINT64_MAX / 2},
        {"18446744073709551616", 0, true, UINT64_MAX / 2},
        /* the three HTTP-date forms, future */
        {"Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE - 10, true, 10000},
        {"Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE - 10, true, 10000},
        {"Sun Nov  6 08:49:37 1994", RFC_DATE - 10, true, 10000},
        {"Sun Nov 06 08:49:37 1994", RFC_DATE - 10, true, 10000},
        /* now and the past give 0 */
        {"Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE, true, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE + 1, true, 0},
        {"Thu, 01 Jan 1970 00:00:00 GMT", RFC_DATE, true, 0},
        {"Mon, 01 Jan 0001 00:00:00 GMT", RFC_DATE, true, 0},
        /* calendar arithmetic: leap day, year ends, far future */
        {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400 - 1, true, 1000},
        {"Thu, 01 Jan 2037 00:00:00 GMT", 2114380800 - 3600, true, 3600000},
        {"Wed, 31 Dec 2099 23:59:59 GMT", 4102444799 - 1, true, 1000},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 0, true, 253402300799000u},
        {"Fri, 31 Dec 9999 23:59:59 GMT", -((time_t)1 << 62), true, UINT64_MAX / 2},
        /* date - now overflows */
        {"Sun, 06 Nov 1994 08:49:37 GMT", INT64_MIN, true, UINT64_MAX / 2},
        {"Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX, true, 0},
        {"1", INT64_MIN, true, 1000},
        {"Sat, 31 Dec 2016 23:59:60 GMT", 1483228800 - 2, true, 2000}, /* leap second */
        /* RFC 850 two-digit years: within 50 years ahead of now, else the
         * century before */
        {"Thursday, 01-Jan-70 00:00:00 GMT", 0, true, 0},
        {"Friday, 01-Jan-60 00:00:00 GMT", 1577836800 /* 2020 */, true, 1262304000000u},
        {"Saturday, 01-Jan-99 00:00:00 GMT", 1577836800 /* 2020: 1999 */, true, 0},
        /* garbage and near misses */
        {"", 0, false, 0},
        {"soon", 0, false, 0},
        {"-1", 0, false, 0},
        {"+5", 0, false, 0},
        {" 5", 0, false, 0},
        {"5 ", 0, false, 0},
        {"5s", 0, false, 0},
        {"1.5", 0, false, 0},
        {"0x10", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:37 GMT garbage", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:37 UTC", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:37", 0, false, 0},
        {"Sun, 6 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 nov 1994 08:49:37 GMT", 0, false, 0},
        {"sun, 06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun,06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 94 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 8:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49 GMT", 0, false, 0},
        {"Xyz, 06 Nov 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Foo 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 32 Jan 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 00 Jan 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 29 Feb 1900 08:49:37 GMT", 0, false, 0},
        {"Sun, 29 Feb 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 31 Apr 1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 24:00:00 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 08:60:00 GMT", 0, false, 0},
        {"Sun, 06 Nov 1994 08:49:61 GMT", 0, false, 0},
        {"Sunday, 06-Nov-1994 08:49:37 GMT", 0, false, 0},
        {"Sun, 06-Nov-94 08:49:37 GMT", 0, false, 0},
        {"Sun Nov 6 08:49:37 1994", 0, false, 0},
        {"Sun Nov  6 08:49:37 1994 GMT", 0, false, 0},
        {"1994-11-06T08:49:37Z", 0, false, 0},
        {"06 Nov 1994", 0, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 7;
        bool ok = rv_http_parse_retry_after(cases[i].v, strlen(cases[i].v), cases[i].now, &ms);
        CHECK(ok == cases[i].ok);
        CHECK_EQ_U64(ms, ok ? cases[i].ms : 7);
        if (ok != cases[i].ok || ms != (ok ? cases[i].ms : 7))
            fprintf(stderr, "    for '%s'\n", cases[i].v);
    }
    uint64_t ms;
    CHECK(rv_http_parse_retry_after("120xyz", 3, 0, &ms));
    CHECK_EQ_U64(ms, 120000);
    static const char nul[] = "Sun, 06 Nov 1994 08:49:37 GMT\0";
    CHECK(!rv_http_parse_retry_after(nul, sizeof(nul), 0, &ms));
}

static void test_etag(void) {
    CHECK(rv_http_etag_is_weak("W/\"abc\""));
    CHECK(rv_http_etag_is_weak("W/"));
    CHECK(!rv_http_etag_is_weak("\"abc\""));
    CHECK(!rv_http_etag_is_weak("w/\"abc\""));
    CHECK(!rv_http_etag_is_weak("\"W/abc\""));
    CHECK(!rv_http_etag_is_weak("W"));
    CHECK(!rv_http_etag_is_weak(""));
    CHECK(!rv_http_etag_is_weak(NULL));
}

static void test_etag_weak_equal(void) {
    CHECK(rv_http_etag_weak_equal("W/\"abc\"", "\"abc\""));
    CHECK(rv_http_etag_weak_equal("\"abc\"", "W/\"abc\""));
    CHECK(rv_http_etag_weak_equal("W/\"abc\"", "W/\"abc\""));
    CHECK(!rv_http_etag_weak_equal("W/\"abc\"", "W/\"abd\""));
    CHECK(!rv_http_etag_weak_equal("W/\"abc\"", NULL));
    CHECK(!rv_http_etag_weak_equal(NULL, NULL));
}

static void test_last_modified_kind(void) {
    static const char date[] = "Sun, 06 Nov 1994 08:49:37 GMT";
    /* a second earlier: strong; same second, later: says nothing */
    CHECK(rv_http_last_modified_kind("Sun, 06 Nov 1994 08:49:36 GMT", date, 0) ==
          RV_HTTP_LM_STRONG);
    CHECK(rv_http_last_modified_kind("Sat, 01 Jan 1994 00:00:00 GMT", date, 0) ==
          RV_HTTP_LM_STRONG);
    CHECK(rv_http_last_modified_kind(date, date, 0) == RV_HTTP_LM_NONE);
    CHECK(rv_http_last_modified_kind("Sun, 06 Nov 1994 08:49:38 GMT", date, 0) ==
          RV_HTTP_LM_NONE);
    /* the other two spellings of an HTTP-date compare by their time */
    CHECK(rv_http_last_modified_kind("Sunday, 06-Nov-94 08:49:36 GMT", date, 788000000) ==
          RV_HTTP_LM_STRONG);
    CHECK(rv_http_last_modified_kind("Sun Nov  6 08:49:37 1994", date, 0) == RV_HTTP_LM_NONE);
    /* without a Date (or one that does not parse) nothing proves strength */
    CHECK(rv_http_last_modified_kind("Sat, 01 Jan 1994 00:00:00 GMT", NULL, 0) == RV_HTTP_LM_WEAK);
    CHECK(rv_http_last_modified_kind("Sat, 01 Jan 1994 00:00:00 GMT", "yesterday", 0) ==
          RV_HTTP_LM_WEAK);
    CHECK(rv_http_last_modified_kind("last week", date, 0) == RV_HTTP_LM_WEAK);
    CHECK(rv_http_last_modified_kind(NULL, date, 0) == RV_HTTP_LM_NONE);
}

int main(void) {
    test_split();
    test_status();
    test_content_range();
    test_u64();
    test_retry_after();
    test_etag();
    test_etag_weak_equal();
    test_last_modified_kind();
    return rv_test_result();
}
