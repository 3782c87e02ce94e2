/* test_url.c — rv_url_parse, rv_url_filename, rv_url_file_path, and the
 * public rv_url_normalize and rv_url_redact. */
#include "url.h"

#include <stdlib.h>

#include "retriever.h"
#include "rv_error.h"
#include "rv_test.h"

struct good {
    const char *in;
    const char *scheme, *host;
    unsigned port;
    const char *path, *query, *normalised, *host_key;
};

static const struct good goods[] = {
    {"http://example.com/a/b", "http", "example.com", 80, "/a/b", NULL,
     "http://example.com/a/b", "http://example.com:80"},
    /* case, default port, fragment */
    {"HTTP://Example.COM:80/A/b?X=1#frag", "http", "example.com", 80, "/A/b", "X=1",
     "http://example.com/A/b?X=1", "http://example.com:80"},
    {"HTTPS://H:443", "https", "h", 443, "/", NULL, "https://h/", "https://h:443"},
    {"https://h:8443/x", "https", "h", 8443, "/x", NULL, "https://h:8443/x", "https://h:8443"},
    /* 443 is not http's default, 80 not https's */
    {"http://h:443/", "http", "h", 443, "/", NULL, "http://h:443/", "http://h:443"},
    {"https://h:80/", "https", "h", 80, "/", NULL, "https://h:80/", "https://h:80"},
    {"http://h:080/", "http", "h", 80, "/", NULL, "http://h/", "http://h:80"},
    {"http://h:/x", "http", "h", 80, "/x", NULL, "http://h/x", "http://h:80"},
    {"http://h:65535", "http", "h", 65535, "/", NULL, "http://h:65535/", "http://h:65535"},
    {"http://h", "http", "h", 80, "/", NULL, "http://h/", "http://h:80"},
    {"http://h?q", "http", "h", 80, "/", "q", "http://h/?q", "http://h:80"},
    {"http://h/?", "http", "h", 80, "/", "", "http://h/?", "http://h:80"},
    {"http://h/x?a=b?c&d=%2F#f#g", "http", "h", 80, "/x", "a=b?c&d=%2F",
     "http://h/x?a=b?c&d=%2F", "http://h:80"},
    /* userinfo accepted, never in normalised or host_key */
    {"http://user:secret@h/p", "http", "h", 80, "/p", NULL, "http://h/p", "http://h:80"},
    {"https://user@H:8443/p", "https", "h", 8443, "/p", NULL, "https://h:8443/p",
     "https://h:8443"},
    /* IPv4 and IPv6 */
    {"http://192.168.1.1:8080/x", "http", "192.168.1.1", 8080, "/x", NULL,
     "http://192.168.1.1:8080/x", "http://192.168.1.1:8080"},
    {"http://[::1]:8080/x", "http", "[::1]", 8080, "/x", NULL, "http://[::1]:8080/x",
     "http://[::1]:8080"},
    {"http://[::1]/", "http", "[::1]", 80, "/", NULL, "http://[::1]/", "http://[::1]:80"},
    {"https://[2001:DB8::A]:443/f", "https", "[2001:db8::a]", 443, "/f", NULL,
     "https://[2001:db8::a]/f", "https://[2001:db8::a]:443"},
    {"http://[::FFFF:1.2.3.4]/", "http", "[::ffff:1.2.3.4]", 80, "/", NULL,
     "http://[::ffff:1.2.3.4]/", "http://[::ffff:1.2.3.4]:80"},
    /* zone id: kept, address lower-cased, interface name as given */
    {"http://[FE80::1%25Eth0]:81/", "http", "[fe80::1%25Eth0]", 81, "/", NULL,
     "http://[fe80::1%25Eth0]:81/", "http://[fe80::1%25Eth0]:81"},
    /* percent-encoding stays as given; dot segments go */
    {"http://h/a%20b/%2e%2e/C%2fd", "http", "h", 80, "/a%20b/%2e%2e/C%2fd", NULL,
     "http://h/a%20b/%2e%2e/C%2fd", "http://h:80"},
    {"http://h/a/../b/./c", "http", "h", 80, "/b/c", NULL, "http://h/b/c", "http://h:80"},
    {"http://h/../../etc/passwd", "http", "h", 80, "/etc/passwd", NULL,
     "http://h/etc/passwd", "http://h:80"},
    {"http://h/a;b=c/", "http", "h", 80, "/a;b=c/", NULL, "http://h/a;b=c/", "http://h:80"},
    /* a percent-encoded host is decoded, then lower-cased */
    {"http://ex%41mple.com/", "http", "example.com", 80, "/", NULL, "http://example.com/",
     "http://example.com:80"},
    {"http://a%2Eb/", "http", "a.b", 80, "/", NULL, "http://a.b/", "http://a.b:80"},
    /* IPv4 in inet_aton's forms is a dotted quad, however it was spelled */
    {"http://0x7f.1/", "http", "127.0.0.1", 80, "/", NULL, "http://127.0.0.1/",
     "http://127.0.0.1:80"},
    {"http://0x7f%2e1/", "http", "127.0.0.1", 80, "/", NULL, "http://127.0.0.1/",
     "http://127.0.0.1:80"},
    {"HTTP://4%2E3/", "http", "4.0.0.3", 80, "/", NULL, "http://4.0.0.3/", "http://4.0.0.3:80"},
    {"http://%31/", "http", "0.0.0.1", 80, "/", NULL, "http://0.0.0.1/", "http://0.0.0.1:80"},
    {"http://1.2.3.4.5/", "http", "1.2.3.4.5", 80, "/", NULL, "http://1.2.3.4.5/",
     "http://1.2.3.4.5:80"},
    /* a dotted quad with leading zeros is not canonical (inet_aton: octal) */
    {"http://127.000.0.010/", "http", "127.0.0.8", 80, "/", NULL, "http://127.0.0.8/",
     "http://127.0.0.8:80"},
    {"http://1%2E2.3.0377/", "http", "1.2.3.255", 80, "/", NULL, "http://1.2.3.255/",
     "http://1.2.3.255:80"},
    {"http://255.255.255.255/", "http", "255.255.255.255", 80, "/", NULL,
     "http://255.255.255.255/", "http://255.255.255.255:80"},
    {"http://abc.def/", "http", "abc.def", 80, "/", NULL, "http://abc.def/",
     "http://abc.def:80"},
    {"http://xn--9ca.com/", "http", "xn--9ca.com", 80, "/", NULL, "http://xn--9ca.com/",
     "http://xn--9ca.com:80"},
    {"http://my_host-1.local/", "http", "my_host-1.local", 80, "/", NULL,
     "http://my_host-1.local/", "http://my_host-1.local:80"},
    /* file:// */
    {"file:///etc/passwd", "file", "", 0, "/etc/passwd", NULL, "file:///etc/passwd", "file://:0"},
    {"FILE://localhost/tmp/a%20b", "file", "", 0, "/tmp/a%20b", NULL, "file:///tmp/a%20b",
     "file://:0"},
    {"file://LocalHost/x", "file", "", 0, "/x", NULL, "file:///x", "file://:0"},
    {"file:///", "file", "", 0, "/", NULL, "file:///", "file://:0"},
    /* other schemes parse; the registry decides support */
    {"ftp://H/x", "ftp", "h", 21, "/x", NULL, "ftp://h/x", "ftp://h:21"},
    {"ftp://h:2121/x", "ftp", "h", 2121, "/x", NULL, "ftp://h:2121/x", "ftp://h:2121"},
    {"Foo+bar.baz-1://H/x", "foo+bar.baz-1", "h", 0, "/x", NULL, "foo+bar.baz-1://h/x",
     "foo+bar.baz-1://h:0"},
    {"s3://bucket:9000/k", "s3", "bucket", 9000, "/k", NULL, "s3://bucket:9000/k",
     "s3://bucket:9000"},
};

static const char *const bads[] = {
    "",
    "example.com/x",
    "/just/a/path",
    "http:",
    "http:/x",      /* libcurl would make host "x" */
    "http:///x",    /* (same) */
    "http://",
    "http://?q",
    "http://#f",
    "http:x",
    "1http://h/",   /* scheme must start with a letter */
    "ht_tp://h/",
    "://h/",
    " http://h/",
    "http://h/ ",
    "http://h/a b",
    "http://h/a\tb",
    "http://h/a\nb",
    "http://h/a\rb",
    "http://h/\x7f",
    "http://h/\x01",
    "http://h/\xc3\xa9", /* raw UTF-8: must be percent-encoded */
    "http://h\xc3\xa9.com/",
    "http://h:0/",
    "http://h:65536/",
    "http://h:99999999999999999999/",
    "http://h:-1/",
    "http://h:+80/",
    "http://h:80:90/",
    "http://h:8o/",
    "http://:80/",
    "http://user@/x",
    "http://[::1/",
    "http://[::1]x/",
    "http://[::g]/",
    "http://[v1.x]/",
    "http://h/%zz",
    "http://h/a%",
    "http://h/a%4",
    "http://h/?q=%G0",
    "http://h%2f/",
    "http://%00/",
    "http://h\\x",
    "http://%C3%A9.com/", /* decodes to non-ASCII: IDN must come as punycode */
    "http://a%25b/",      /* decodes to a '%' in the host */
    "http://a%7Bb/",
    "http://[::1%25a%2Fb]/",
    "http://[::1%25eth0%25]/",
    "file://otherhost/etc/passwd",
    "file://localhost:80/x",
    "file://user@localhost/x",
    "file://",
    "file://localhost",
    "file:///C:/x",     /* libcurl: a DOS drive */
    "file:///c|/x",
    "file:///C:",
    "file:///a/../C:/x", /* ... also when dot segments make one */
    "file:///A%cc/../e://02",
    "file:/etc/passwd", /* we want "scheme://" literally */
    "file:etc",
    "foo:///x",
    "foo:x",
};

static void test_good(void) {
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        const struct good *g = &goods[i];
        unsigned before = rv_test_failures_;
        rv_url *u = NULL;
        int r = rv_url_parse(g->in, &u);
        CHECK_EQ_U64(r, RV_OK);
        CHECK(u != NULL);
        if (u) {
            CHECK_STREQ(u->scheme, g->scheme);
            CHECK_STREQ(u->host, g->host);
            CHECK_EQ_U64(u->port, g->port);
            CHECK_STREQ(u->path, g->path);
            CHECK_STREQ(u->query, g->query);
            CHECK_STREQ(u->normalised, g->normalised);
            CHECK_STREQ(u->host_key, g->host_key);
            CHECK(strstr(u->normalised, "secret") == NULL);
            CHECK(strstr(u->normalised, "user") == NULL);
            CHECK(strchr(u->normalised, '#') == NULL);
            /* normalising is idempotent */
            rv_url *again = NULL;
            CHECK_EQ_U64(rv_url_parse(u->normalised, &again), RV_OK);
            if (again)
                CHECK_STREQ(again->normalised, u->normalised);
            rv_url_free(again);
        }
        rv_url_free(u);
        if (rv_test_failures_ != before)
            fprintf(stderr, "    for '%s'\n", g->in);
    }
}

static void test_bad(void) {
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        rv_url *u = (rv_url *)&u; /* must stay untouched on failure */
        int r = rv_url_parse(bads[i], &u);
        CHECK_EQ_U64(r, RV_E_BAD_URL);
        CHECK(u == (rv_url *)&u);
        if (r != RV_E_BAD_URL) {
            fprintf(stderr, "    for '%s'\n", bads[i]);
            if (r == RV_OK)
                rv_url_free(u);
        }
    }
    rv_url *u = NULL;
    CHECK_EQ_U64(rv_url_parse(NULL, &u), RV_E_INVALID_ARGUMENT);
    CHECK_EQ_U64(rv_url_parse("http://h/", NULL), RV_E_INVALID_ARGUMENT);
    CHECK(rv_url_free(NULL) == NULL);
}

/* The length limit: exactly RV_URL_MAX bytes parse, one more does not. */
static void test_length(void) {
    static const char prefix[] = "http://h/";
    char *s = malloc(RV_URL_MAX + 2);
    CHECK(s != NULL);
    if (!s)
        return;
    memcpy(s, prefix, sizeof(prefix) - 1);
    memset(s + sizeof(prefix) - 1, 'a', RV_URL_MAX - (sizeof(prefix) - 1));
    s[RV_URL_MAX] = '\0';
    rv_url *u = NULL;
    CHECK_EQ_U64(rv_url_parse(s, &u), RV_OK);
    if (u)
        CHECK_EQ_U64(strlen(u->normalised), RV_URL_MAX);
    u = rv_url_free(u);
    s[RV_URL_MAX] = 'a';
    s[RV_URL_MAX + 1] = '\0';
    CHECK_EQ_U64(rv_url_parse(s, &u), RV_E_BAD_URL);
    CHECK(u == NULL);
    free(s);
}

struct name_case {
    const char *url;
    const char *name; /* NULL: refused with RV_E_BAD_URL */
};

static const struct name_case names[] = {
    {"http://h/dir/file.iso", "file.iso"},
    {"http://h/file.tar.gz?x=1#y", "file.tar.gz"},
    {"http://h/a%20b%2Bc", "a b+c"},
    {"http://h/%C3%A9t%C3%A9.txt", "\xc3\xa9t\xc3\xa9.txt"},
    {"http://h/.hidden", ".hidden"},
    {"http://h/...", "..."},
    {"http://h/%2e%2e%2e", "..."},
    {"http://h/a..b", "a..b"},
    {"http://h/back\\slash", "back\\slash"},
    {"file:///tmp/x.bin", "x.bin"},
    /* refused */
    {"http://h/", NULL},
    {"http://h", NULL},
    {"http://h/dir/", NULL},
    {"http://h/?name=x", NULL},
    {"http://h/%2e", NULL},
    {"http://h/%2E%2e", NULL},
    {"http://h/a/%2e%2e", NULL},
    {"http://h/..%2f..%2fetc%2fpasswd", NULL},
    {"http://h/%2fetc%2fpasswd", NULL},
    {"http://h/%2F", NULL},
    {"http://h/a%00b", NULL},
    {"http://h/%00", NULL},
    {"http://h/a%0Ab", NULL},
    {"http://h/a%1bb", NULL},
    {"http://h/a%7Fb", NULL},
};

static void test_filename(void) {
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unsigned before = rv_test_failures_;
        rv_url *u = NULL;
        char *name = (char *)&u;
        CHECK_EQ_U64(rv_url_parse(names[i].url, &u), RV_OK);
        if (!u)
            continue;
        int r = rv_url_filename(u, &name);
        if (names[i].name) {
            CHECK_EQ_U64(r, RV_OK);
            CHECK_STREQ(r == RV_OK ? name : NULL, names[i].name);
            if (r == RV_OK)
                free(name);
        } else {
            CHECK_EQ_U64(r, RV_E_BAD_URL);
            CHECK(name == (char *)&u);
            if (r == RV_OK)
                free(name);
        }
        rv_url_free(u);
        if (rv_test_failures_ != before)
            fprintf(stderr, "    for '%s'\n", names[i].url);
    }

    /* 255 bytes after decoding pass, 256 do not; the limit is on the
     * decoded name ("%41" is one byte). */
    char url[1024] = "http://h/";
    size_t n = strlen(url);
    for (int i = 0; i < 255; i++, n += 3)
        memcpy(url + n, "%41", 3);
    url[n] = '\0';
    rv_url *u = NULL;
    char *name = NULL;
    CHECK_EQ_U64(rv_url_parse(url, &u), RV_OK);
    CHECK_EQ_U64(u ? rv_url_filename(u, &name) : -1, RV_OK);
    CHECK_EQ_U64(name ? strlen(name) : 0, 255);
    free(name);
    name = NULL;
    u = rv_url_free(u);
    memcpy(url + n, "B", 2);
    CHECK_EQ_U64(rv_url_parse(url, &u), RV_OK);
    CHECK_EQ_U64(u ? rv_url_filename(u, &name) : -1, RV_E_BAD_URL);
    CHECK(name == NULL);
    rv_url_free(u);
}

static void test_file_path(void) {
    static const struct name_case paths[] = {
        {"file:///tmp/a%20b", "/tmp/a b"},
        {"file://localhost/etc/passwd", "/etc/passwd"},
        {"file:///a%2Fb", "/a/b"},
        {"file:///", "/"},
        {"file:///x?q", "/x"},
        {"file:///a%00b", NULL},
        {"http://h/x", NULL},
        {"https://h/x", NULL},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        unsigned before = rv_test_failures_;
        rv_url *u = NULL;
        char *p = NULL;
        CHECK_EQ_U64(rv_url_parse(paths[i].url, &u), RV_OK);
        if (!u)
            continue;
        int r = rv_url_file_path(u, &p);
        CHECK_EQ_U64(r, paths[i].name ? RV_OK : RV_E_BAD_URL);
        CHECK_STREQ(p, paths[i].name);
        free(p);
        rv_url_free(u);
        if (rv_test_failures_ != before)
            fprintf(stderr, "    for '%s'\n", paths[i].url);
    }
}

struct pair {
    const char *in, *out;
};

static const struct pair norm_goods[] = {
    /* case, default port, fragment; userinfo and query byte for byte */
    {"HTTP://User:Pw@Example.COM:80/a/%7e%2fb/./c?Q=%2f&X=%7e#frag",
     "http://User:Pw@example.com/a/~%2Fb/c?Q=%2f&X=%7e"},
    {"https://h:443", "https://h/"},
    {"https://h", "https://h/"},
    {"https://h:8443/x", "https://h:8443/x"},
    {"http://h:443/x", "http://h:443/x"},
    {"http://h?q", "http://h/?q"},
    {"http://[::1]:80/", "http://[::1]/"},
    {"http://[FE80::1%25Eth0]:81/", "http://[fe80::1%25Eth0]:81/"},
    /* escaped unreserved decoded, other escapes upper-cased */
    {"http://h/%41%42c%2D%5f%7E", "http://h/ABc-_~"},
    {"http://h/%c3%a9/%20/%2f", "http://h/%C3%A9/%20/%2F"},
    {"http://h/a%2e", "http://h/a."},
    {"http://h/%2e%2e%2e", "http://h/..."},
    /* ... but never into a new dot segment */
    {"http://h/a/%2e%2E/b", "http://h/a/%2E%2E/b"},
    {"http://h/%2e", "http://h/%2E"},
    {"http://h/%2e/", "http://h/%2E/"},
    {"http://h/.%2e/x", "http://h/.%2E/x"},
    /* libcurl's dot-segment removal still happens */
    {"http://h/a/../b/./c", "http://h/b/c"},
    /* userinfo forms */
    {"http://@h/", "http://@h/"},
    {"http://u:@h/", "http://u:@h/"},
    {"http://:p@h/", "http://:p@h/"},
    {"http://a%40b:p%3aw@h/", "http://a%40b:p%3aw@h/"},
    /* file:// */
    {"file:///tmp/a%20b", "file:///tmp/a%20b"},
    {"FILE://localhost/x", "file:///x"},
    {"file:///%7euser/x", "file:///~user/x"},
    /* decoding would make a drive letter, which libcurl refuses: kept */
    {"file:///%44:///%06me", "file:///%44:///%06me"},
    {"file:///%43%3a/x", "file:///C%3A/x"}, /* no drive letter: the colon stays escaped */
};

static const struct {
    const char *in;
    int err;
} norm_bads[] = {
    {"", RV_E_BAD_URL},
    {"http://h/a b", RV_E_BAD_URL},
    {"http://h:0/", RV_E_BAD_URL},
    {"http://h:65536/", RV_E_BAD_URL},
    {"http://h/%zz", RV_E_BAD_URL},
    {"http:///x", RV_E_BAD_URL},
    {"http://h/\x01", RV_E_BAD_URL},
    {"file:///a%00b", RV_E_BAD_URL}, /* the engine refuses it too */
    {"file://otherhost/x", RV_E_BAD_URL},
    {"ftp://h/x", RV_E_UNSUPPORTED_SCHEME},
    {"gs://bucket/key", RV_E_UNSUPPORTED_SCHEME},
    {"s3://bucket/prefix/", RV_E_BAD_URL}, /* a prefix, not one object */
    {"s3://bucket/", RV_E_BAD_URL},
    {"gopher://h/", RV_E_UNSUPPORTED_SCHEME},
};

static void test_normalize(void) {
    for (size_t i = 0; i < sizeof(norm_goods) / sizeof(norm_goods[0]); i++) {
        unsigned before = rv_test_failures_;
        char *key = NULL, *again = NULL;
        CHECK_EQ_U64(rv_url_normalize(norm_goods[i].in, &key), RV_OK);
        CHECK_STREQ(key, norm_goods[i].out);
        /* a key is its own key */
        CHECK_EQ_U64(key ? rv_url_normalize(key, &again) : -1, RV_OK);
        CHECK_STREQ(again, key);
        free(key);
        free(again);
        if (rv_test_failures_ != before)
            fprintf(stderr, "    for '%s'\n", norm_goods[i].in);
    }
    for (size_t i = 0; i < sizeof(norm_bads) / sizeof(norm_bads[0]); i++) {
        char *key = (char *)&key; /* untouched on failure */
        CHECK_EQ_U64(rv_url_normalize(norm_bads[i].in, &key), norm_bads[i].err);
        CHECK(key == (char *)&key);
        if (key != (char *)&key) {
            fprintf(stderr, "    for '%s'\n", norm_bads[i].in);
            free(key);
        }
    }
    /* Every URL the parser accepts with a scheme the engine fetches
     * normalises, idempotently, and agrees with rv_url_parse on
     * everything but userinfo and escapes. */
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        char *key = NULL, *again = NULL;
        int r = rv_url_normalize(goods[i].in, &key);
        bool supported = strcmp(goods[i].scheme, "http") == 0 ||
                         strcmp(goods[i].scheme, "https") == 0 ||
                         strcmp(goods[i].scheme, "file") == 0 ||
                         strcmp(goods[i].scheme, "s3") == 0;
        CHECK_EQ_U64(r, supported ? RV_OK : RV_E_UNSUPPORTED_SCHEME);
        if (r == RV_OK) {
            CHECK_EQ_U64(rv_url_normalize(key, &again), RV_OK);
            CHECK_STREQ(again, key);
            CHECK(strchr(key, '#') == NULL);
        }
        free(key);
        free(again);
    }
    /* the length limit is the parser's */
    char *s = malloc(RV_URL_MAX + 2), *key = NULL;
    CHECK(s != NULL);
    if (s) {
        memcpy(s, "http://h/", 9);
        memset(s + 9, 'a', RV_URL_MAX - 9);
        s[RV_URL_MAX] = '\0';
        CHECK_EQ_U64(rv_url_normalize(s, &key), RV_OK);
        CHECK_EQ_U64(key ? strlen(key) : 0, RV_URL_MAX);
        free(key);
        key = NULL;
        s[RV_URL_MAX] = 'a';
        s[RV_URL_MAX + 1] = '\0';
        CHECK_EQ_U64(rv_url_normalize(s, &key), RV_E_BAD_URL);
        CHECK(key == NULL);
        free(s);
    }
    CHECK_EQ_U64(rv_url_normalize(NULL, &key), RV_E_INVALID_ARGUMENT);
    CHECK_EQ_U64(rv_url_normalize("http://h/", NULL), RV_E_INVALID_ARGUMENT);
}

static const struct pair redacts[] = {
    {"https://user:pw@h/x?a=1&X-Amz-Signature=abc&b=2",
     "https://***@h/x?a=REDACTED&X-Amz-Signature=REDACTED&b=REDACTED"},
    /* a presigned S3 URL: what says how, shown; who may, hidden */
    {"https://h/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20250101%2Fus"
     "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host"
     "&X-Amz-Security-Token=IQo%3D&X-Amz-Signature=0123abcd",
     "https://h/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED"
     "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host"
     "&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"},
    /* names no list could hold (issue 20: sessionid, jwt, api-key) */
    {"http://h/?sessionid=s1&jwt=eyJ&api-key=k&SIG=2&token=3&x=4",
     "http://h/?sessionid=REDACTED&jwt=REDACTED&api-key=REDACTED&SIG=REDACTED&token=REDACTED"
     "&x=REDACTED"},
    /* every allowed name, any case, shown */
    {"http://h/?response-content-disposition=attachment%3B%20filename%3Dx"
     "&Response-Content-Type=text%2Fplain&versionId=3&partNumber=2&alt=media&generation=7"
     "&download=1&dl=1&format=raw&v=2&VERSION=9",
     "http://h/?response-content-disposition=attachment%3B%20filename%3Dx"
     "&Response-Content-Type=text%2Fplain&versionId=3&partNumber=2&alt=media&generation=7"
     "&download=1&dl=1&format=raw&v=2&VERSION=9"},
    /* allowed names compared %-decoded and whole */
    {"http://h/?%76=1&v%00=2&vv=3&ve%72sion=4",
     "http://h/?%76=1&v%00=REDACTED&vv=REDACTED&ve%72sion=4"},
    /* a parameter without '=' may be the secret itself */
    {"http://h/x?SEKRITTOKEN", "http://h/x?REDACTED"},
    {"http://h/x?download&tok", "http://h/x?download&REDACTED"},
    /* a value runs to '&', ';' or '#', not to '?' */
    {"http://h/x?token=abc?def&x=1", "http://h/x?token=REDACTED&x=REDACTED"},
    {"http://h/x?v=b?token=c", "http://h/x?v=b?token=REDACTED"},
    {"http://h/x?token=a=b=c&v=d", "http://h/x?token=REDACTED&v=d"},
    {"http://h/x?a=b;c=d", "http://h/x?a=REDACTED;c=REDACTED"},
    /* fragment parameters (OAuth) */
    {"http://h/x#access_token=t&state=s", "http://h/x#access_token=REDACTED&state=REDACTED"},
    {"http://h/x?sig=1#frag", "http://h/x?sig=REDACTED#REDACTED"},
    /* empty or missing values */
    {"http://h/x?token=", "http://h/x?token=REDACTED"},
    {"http://h/x?token=&a=1", "http://h/x?token=REDACTED&a=REDACTED"},
    {"http://h/x?&&", "http://h/x?&&"},
    /* userinfo: up to the authority's last '@'; '@' elsewhere is not one */
    {"http://u:p@ss@h/?password=a=b&c", "http://***@h/?password=REDACTED&REDACTED"},
    {"http://@h/", "http://***@h/"},
    {"http://h/p@x?q=a@b", "http://h/p@x?q=REDACTED"},
    {"http://h?v=a@b", "http://h?v=a@b"},
    {"file:///tmp/x", "file:///tmp/x"},
    /* malformed input, best effort */
    {"user:pw@host/x?token=1", "***@host/x?token=REDACTED"},
    {"//user@host/", "//***@host/"},
    {"://uw@h/x", "://***@h/x"},
    {"http://u:p@h:99999999/\x01?key=\n", "http://***@h:99999999/\x01?key=REDACTED"},
    {"not a url", "not a url"},
    {"", ""},
    {"?", "?"},
    {"=", "="},
    {"?=&;#", "?=REDACTED&;#"},
    {"?token=&&&", "?token=REDACTED&&&"},
};

static void test_redact(void) {
    for (size_t i = 0; i < sizeof(redacts) / sizeof(redacts[0]); i++) {
        unsigned before = rv_test_failures_;
        char *out = NULL, *again = NULL;
        CHECK_EQ_U64(rv_url_redact(redacts[i].in, &out), RV_OK);
        CHECK_STREQ(out, redacts[i].out);
        /* redacting twice changes nothing more */
        CHECK_EQ_U64(out ? rv_url_redact(out, &again) : -1, RV_OK);
        CHECK_STREQ(again, out);
        free(out);
        free(again);
        if (rv_test_failures_ != before)
            fprintf(stderr, "    for '%s'\n", redacts[i].in);
    }
    /* the largest growth: every one-byte parameter becomes "REDACTED" */
    char in[64] = "http://h/?";
    for (int i = 0; i < 10; i++)
        strcat(in, "a&");
    char *out = NULL;
    CHECK_EQ_U64(rv_url_redact(in, &out), RV_OK);
    CHECK_EQ_U64(out ? strlen(out) : 0, strlen(in) + 10 * 7);
    free(out);
    out = NULL;
    CHECK_EQ_U64(rv_url_redact(NULL, &out), RV_E_INVALID_ARGUMENT);
    CHECK_EQ_U64(rv_url_redact("x", NULL), RV_E_INVALID_ARGUMENT);
    CHECK(out == NULL);
}

/* rv_url_scrub: free text about an object keeps no piece the rule hides. */
static void test_scrub(void) {
    static const struct {
        const char *text, *out;
    } cases[] = {
        /* a URL anywhere in the text, quoted or not */
        {"Could not resolve host: h.invalid; 'http://u:SEKRIT1@h.invalid/x?token=SEKRIT2'",
         "Could not resolve host: h.invalid; 'http://***@h.invalid/x?token=REDACTED'"},
        {"redirect to https://o/y?sig=abcdef&v=1 refused",
         "redirect to https://o/y?sig=REDACTED&v=1 refused"},
        /* pieces of the object's URL, as given and %-decoded */
        {"login as joe:SEKRIT1 failed", "login as REDACTED failed"},
        {"user joe, password SEKRIT1 and s e/c", "user joe, password REDACTED and REDACTED"},
        {"got SEKRIT2 and sessval", "got REDACTED and REDACTED"},
        /* short pieces (joe, v) and allowed values stay */
        {"joe asked for v=1", "joe asked for v=1"},
        {"", ""},
    };
    const char *urls[] = {"http://joe:SEKRIT1@h.invalid/x?token=SEKRIT2&sid=s%20e%2Fc"
                          "&session=sessval&v=1",
                          NULL};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        CHECK_EQ_U64(rv_url_scrub(cases[i].text, urls, 2, &out), RV_OK);
        CHECK_STREQ(out, cases[i].out);
        free(out);
    }
    char *out = NULL;
    CHECK_EQ_U64(rv_url_scrub("x", NULL, 0, &out), RV_OK);
    CHECK_STREQ(out, "x");
    free(out);
    CHECK_EQ_U64(rv_url_scrub(NULL, urls, 1, &out), RV_E_INVALID_ARGUMENT);
    CHECK_EQ_U64(rv_url_scrub("x", NULL, 1, &out), RV_E_INVALID_ARGUMENT);
}

int main(void) {
    test_normalize();
    test_redact();
    test_scrub();
    test_good();
    test_bad();
    test_length();
    test_filename();
    test_file_path();
    return rv_test_result();
}
