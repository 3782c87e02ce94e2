/* test_request.c — request.c: every request message decoded and validated.
 *
 * Requests are built with the generated protobuf-c types and packed here,
 * exactly as a client's bytes arrive; a few are then patched by hand to
 * make what no well-behaved encoder produces (a NUL inside a string,
 * truncation, garbage). Each rejection must be -EINVAL with a sentence
 * that names the field (and its index), leave the output untouched, and
 * never quote a credential; each acceptance must come out normalised.
 */
#include "request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "retriever/v1/retriever.pb-c.h"
#include "rv_test.h"

#define ID "0123456789abcdef0123456789abcdef"

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(m, buf);
    return buf;
}

/* ---- building DownloadRequests ---------------------------------------- */

#define MAX_SRC 1001
#define MAX_HDR 101

/* A request under construction: fixed storage, filled by the helpers. */
struct dl {
    Retriever__V1__DownloadRequest m;
    Retriever__V1__Source src[MAX_SRC];
    Retriever__V1__Source *srcp[MAX_SRC];
    Retriever__V1__Header hdr[MAX_HDR];
    Retriever__V1__Header *hdrp[MAX_HDR];
};

static struct dl *dl_new(void) {
    static struct dl d;
    Retriever__V1__DownloadRequest m = RETRIEVER__V1__DOWNLOAD_REQUEST__INIT;
    d.m = m;
    d.m.sources = d.srcp;
    for (size_t i = 0; i < MAX_SRC; i++) {
        Retriever__V1__Source s = RETRIEVER__V1__SOURCE__INIT;
        d.src[i] = s;
        d.srcp[i] = &d.src[i];
    }
    for (size_t i = 0; i < MAX_HDR; i++) {
        Retriever__V1__Header h = RETRIEVER__V1__HEADER__INIT;
        d.hdr[i] = h;
        d.hdrp[i] = &d.hdr[i];
    }
    return &d;
}

/* Append a source; returns it. */
static Retriever__V1__Source *dl_add(struct dl *d, const char *url, const char *dest) {
    Retriever__V1__Source *s = &d->src[d->m.n_sources++];
    s->url = (char *)url;
    s->destination = (char *)dest;
    return s;
}

/* Give source s the first n of the shared header slots. */
static void dl_headers(struct dl *d, Retriever__V1__Source *s, size_t n) {
    s->headers = d->hdrp;
    s->n_headers = n;
}

static int dl_decode(struct dl *d, rvd_download_req **ret, char **err) {
    size_t len = 0;
    uint8_t *buf = pack(&d->m.base, &len);
    int r = buf ? rvd_request_download(buf, len, ret, err) : -ENOMEM;
    free(buf);
    return r;
}

/* Decoding d fails with -EINVAL and a message containing want (and not
 * containing secret, when given); *ret stays untouched. */
static void expect_reject(struct dl *d, const char *want, const char *secret, int line) {
    rvd_download_req *req = (rvd_download_req *)&req;
    char *err = NULL;
    unsigned before = rv_test_failures_;
    int r = dl_decode(d, &req, &err);
    CHECK_EQ_U64(r, -EINVAL);
    CHECK(req == (rvd_download_req *)&req);
    CHECK(err != NULL);
    if (err)
        CHECK(strstr(err, want) != NULL);
    if (err && secret)
        CHECK(strstr(err, secret) == NULL);
    if (rv_test_failures_ != before)
        fprintf(stderr, "    line %d: want '%s', got '%s'\n", line, want, err ? err : "(null)");
    if (r == 0)
        rvd_download_req_free(req);
    free(err);
}
#define REJECT(d, want) expect_reject((d), (want), NULL, __LINE__)
#define REJECT_SECRET(d, want, secret) expect_reject((d), (want), (secret), __LINE__)

static rvd_download_req *expect_accept(struct dl *d, int line) {
    rvd_download_req *req = NULL;
    char *err = NULL;
    int r = dl_decode(d, &req, &err);
    CHECK_EQ_U64(r, 0);
    CHECK(err == NULL);
    if (r != 0)
        fprintf(stderr, "    line %d: refused: %s\n", line, err ? err : "(null)");
    free(err);
    return req;
}
#define ACCEPT(d) rvd_download_req_free(expect_accept((d), __LINE__))

/* ---- Download: what is accepted, and how it comes out ------------------ */

static void test_download_accepted(void) {
    struct dl *d = dl_new();
    Retriever__V1__Source *s =
        dl_add(d, "HTTPS://User:pw@Example.COM:443/a/%7e%2f?token=x&b=1#frag", "/tmp/out.bin");
    s->sha256 = "0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef";
    d->hdr[0].name = "Authorization";
    d->hdr[0].value = "Bearer abc";
    d->hdr[1].name = "X-A";
    d->hdr[1].value = "1";
    dl_headers(d, s, 2);
    dl_add(d, "file:///etc/hostname", ""); /* no destination: Read only */
    d->m.priority = -5;
    d->m.detach = true;
    d->m.connections = 16;
    d->m.batch_events = true;
    d->m.digest = true;
    d->m.link = true;

    rvd_download_req *req = expect_accept(d, __LINE__);
    CHECK(req != NULL);
    if (!req)
        return;
    CHECK_EQ_U64(req->n_sources, 2);
    CHECK(req->priority == -5);
    CHECK(req->detach);
    CHECK_EQ_U64(req->connections, 16);
    CHECK(req->batch_events);
    CHECK(req->digest);
    CHECK(req->link);
    CHECK(!req->copy);
    const rvd_source *a = &req->sources[0], *b = &req->sources[1];
    CHECK_STREQ(a->url, "HTTPS://User:pw@Example.COM:443/a/%7e%2f?token=x&b=1#frag");
    CHECK_STREQ(a->url_key, "https://User:pw@example.com/a/~%2F?token=x&b=1");
    CHECK_STREQ(a->url_display,
                "HTTPS://***@Example.COM:443/a/%7e%2f?token=REDACTED&b=REDACTED#REDACTED");
    CHECK_STREQ(a->destination, "/tmp/out.bin");
    CHECK_STREQ(a->sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    CHECK_EQ_U64(a->n_headers, 2);
    if (a->n_headers == 2) {
        CHECK_STREQ(a->headers[0], "Authorization: Bearer abc");
        CHECK_STREQ(a->headers[1], "X-A: 1");
    }
    /* sha256("Authorization: Bearer abc\nX-A: 1\n"), computed by Python */
    CHECK_STREQ(a->headers_digest,
                "583e6a66bb0ac524031406083b23e491a1fb49de1b2944f11da3018a57dfdee6");
    CHECK_STREQ(b->url_key, "file:///etc/hostname");
    CHECK_STREQ(b->url_display, "file:///etc/hostname");
    CHECK(b->destination == NULL);
    CHECK(b->sha256 == NULL);
    CHECK(b->headers == NULL);
    CHECK_EQ_U64(b->n_headers, 0);
    CHECK_STREQ(b->headers_digest, "");
    rvd_download_req_free(req);

    /* The digest follows the lines and their order. */
    d = dl_new();
    s = dl_add(d, "http://h/x", "/tmp/a");
    d->hdr[0].name = "X-A";
    d->hdr[0].value = "1";
    d->hdr[1].name = "Authorization";
    d->hdr[1].value = "Bearer abc";
    dl_headers(d, s, 2);
    s = dl_add(d, "http://h/x", "/tmp/b");
    dl_headers(d, s, 1);
    req = expect_accept(d, __LINE__);
    if (req) {
        CHECK_EQ_U64(strlen(req->sources[0].headers_digest), 64);
        CHECK(strcmp(req->sources[0].headers_digest,
                     "583e6a66bb0ac524031406083b23e491a1fb49de1b2944f11da3018a57dfdee6") != 0);
        CHECK(strcmp(req->sources[0].headers_digest, req->sources[1].headers_digest) != 0);
        /* same URL, two destinations: allowed (the engine shares the read) */
        CHECK_STREQ(req->sources[0].url_key, req->sources[1].url_key);
    }
    rvd_download_req_free(req);

    /* Defaults: an empty message but for one URL. */
    d = dl_new();
    dl_add(d, "http://h/", "");
    req = expect_accept(d, __LINE__);
    if (req) {
        CHECK(req->priority == 0);
        CHECK(!req->detach);
        CHECK_EQ_U64(req->connections, 0);
        CHECK(!req->batch_events);
        CHECK(!req->digest);
        CHECK(!req->link);
        CHECK(!req->copy);
        CHECK_STREQ(req->sources[0].url_key, "http://h/");
    }
    rvd_download_req_free(req);

    /* copy alone; link and copy together are a contradiction. */
    d = dl_new();
    dl_add(d, "http://h/", "/tmp/c");
    d->m.copy = true;
    req = expect_accept(d, __LINE__);
    if (req)
        CHECK(req->copy && !req->link && !req->digest);
    rvd_download_req_free(req);
    d->m.link = true;
    REJECT(d, "link, copy: at most one of them may be set");

    /* The umask: none, 0600; given, 0666 less it (0 and 0777 included);
     * a bit beyond 0777 is refused, naming the field. */
    static const struct {
        bool set;
        uint32_t bits;
        unsigned mode;
    } masks[] = {{false, 0, 0600}, {true, 0, 0666},     {true, 022, 0644},
                 {true, 027, 0640}, {true, 077, 0600}, {true, 0777, 0}};
    for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
        Retriever__V1__Umask um = RETRIEVER__V1__UMASK__INIT;
        d = dl_new();
        dl_add(d, "http://h/", "/tmp/u");
        um.bits = masks[i].bits;
        d->m.umask = masks[i].set ? &um : NULL;
        req = expect_accept(d, __LINE__);
        if (req)
            CHECK_EQ_U64(req->mode, masks[i].mode);
        rvd_download_req_free(req);
    }
    static const uint32_t bad_masks[] = {01000, 04022, 0xffffffffu};
    for (size_t i = 0; i < sizeof(bad_masks) / sizeof(bad_masks[0]); i++) {
        Retriever__V1__Umask um = RETRIEVER__V1__UMASK__INIT;
        d = dl_new();
        dl_add(d, "http://h/", "/tmp/u");
        um.bits = bad_masks[i];
        d->m.umask = &um;
        REJECT(d, "umask.bits: only permission bits (at most 0777)");
    }

    /* ret_error may be NULL. */
    d = dl_new();
    rvd_download_req *none = NULL;
    size_t len = 0;
    uint8_t *buf = pack(&d->m.base, &len);
    CHECK_EQ_U64(rvd_request_download(buf, len, &none, NULL), -EINVAL);
    CHECK(none == NULL);
    free(buf);
    CHECK(rvd_download_req_free(NULL) == NULL);
}

/* ---- Download: the limits, each at its edge ---------------------------- */

static char *repeat(const char *prefix, char c, size_t total) {
    char *s = malloc(total + 1);
    if (!s)
        abort();
    size_t n = strlen(prefix);
    memcpy(s, prefix, n);
    memset(s + n, c, total - n);
    s[total] = '\0';
    return s;
}

static void test_download_limits(void) {
    struct dl *d;
    static char dests[MAX_SRC][16];

    /* sources: 1..1000 */
    d = dl_new();
    REJECT(d, "sources: at least one source is required");
    CHECK_EQ_U64(rvd_request_download(NULL, 0, &(rvd_download_req *){NULL}, NULL), -EINVAL);
    d = dl_new();
    for (size_t i = 0; i < 1000; i++) {
        snprintf(dests[i], sizeof(dests[i]), "/tmp/%zu", i);
        dl_add(d, "http://h/x", dests[i]);
    }
    ACCEPT(d);
    snprintf(dests[1000], sizeof(dests[1000]), "/tmp/1000");
    dl_add(d, "http://h/x", dests[1000]);
    REJECT(d, "sources: at most 1000 sources per request (got 1001)");

    /* url */
    d = dl_new();
    dl_add(d, "", "/tmp/a");
    REJECT(d, "sources[0].url: required");
    char *url = repeat("http://h/", 'a', 8192);
    d = dl_new();
    dl_add(d, url, "");
    ACCEPT(d);
    free(url);
    url = repeat("http://h/", 'a', 8193);
    d->src[0].url = url;
    REJECT(d, "sources[0].url: longer than 8192 bytes");
    free(url);
    d = dl_new();
    dl_add(d, "http://h/1", "");
    dl_add(d, "http://h/2", "");
    dl_add(d, "ftp://user:hunter2@h/x", "");
    REJECT_SECRET(d, "sources[2].url: unsupported scheme", "hunter2");
    d->src[2].url = "http://user:hunter2@h/a b";
    REJECT_SECRET(d, "sources[2].url: not a valid URL", "hunter2");
    d->src[2].url = "http://h:0/";
    REJECT(d, "sources[2].url: not a valid URL");
    d->src[2].url = "file:///a%00b";
    REJECT(d, "sources[2].url: not a valid URL");
    d->src[2].url = "gs://bucket/key";
    REJECT(d, "sources[2].url: unsupported scheme");

    /* destination */
    static const struct {
        const char *dest, *want; /* want NULL: accepted */
    } dests_cases[] = {
        {"tmp/x", "sources[0].destination: must be an absolute path"},
        {"./x", "must be an absolute path"},
        {"/", "must name a file, not end in '/'"},
        {"/tmp/x/", "must name a file, not end in '/'"},
        {"/tmp//x", "has an empty component ('//')"},
        {"//tmp/x", "has an empty component"},
        {"/tmp/./x", "has a '.' or '..' component"},
        {"/tmp/../etc/passwd", "has a '.' or '..' component"},
        {"/..", "has a '.' or '..' component"},
        {"/tmp/..", "has a '.' or '..' component"},
        {"/tmp/.", "has a '.' or '..' component"},
        {"/tmp/.x", NULL},
        {"/tmp/..x", NULL},
        {"/tmp/x..", NULL},
        {"/tmp/...", NULL},
        {"/x", NULL},
        {"/tmp/a b\tc\xc3\xa9", NULL}, /* any byte but NUL is a file name */
    };
    for (size_t i = 0; i < sizeof(dests_cases) / sizeof(dests_cases[0]); i++) {
        d = dl_new();
        dl_add(d, "http://h/x", dests_cases[i].dest);
        if (dests_cases[i].want) {
            REJECT(d, dests_cases[i].want);
        } else {
            rvd_download_req *req = expect_accept(d, __LINE__);
            if (req)
                CHECK_STREQ(req->sources[0].destination, dests_cases[i].dest);
            rvd_download_req_free(req);
        }
    }
    char *dest = repeat("/", 'd', 4096);
    d = dl_new();
    dl_add(d, "http://h/x", dest);
    ACCEPT(d);
    free(dest);
    dest = repeat("/", 'd', 4097);
    d->src[0].destination = dest;
    REJECT(d, "sources[0].destination: longer than 4096 bytes");
    free(dest);

    /* two sources, one destination: the first clash is named */
    d = dl_new();
    dl_add(d, "http://h/1", "/tmp/b");
    dl_add(d, "http://h/2", "/tmp/a");
    dl_add(d, "http://h/3", "");
    dl_add(d, "http://h/4", "");
    dl_add(d, "http://h/5", "/tmp/a");
    dl_add(d, "http://h/6", "/tmp/b");
    dl_add(d, "http://h/7", "/tmp/a");
    REJECT(d, "sources[4].destination: the same as sources[1].destination");
    d->src[4].destination = "/tmp/c";
    REJECT(d, "sources[5].destination: the same as sources[0].destination");
    d->src[5].destination = "";
    REJECT(d, "sources[6].destination: the same as sources[1].destination");
    d->src[6].destination = "/tmp/a2";
    ACCEPT(d);

    /* sha256 */
    static const struct {
        const char *sha, *want;
    } shas[] = {
        {"", NULL},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF", NULL},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
         "sources[0].sha256: must be empty or 64 hex digits"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
         "sources[0].sha256: must be empty or 64 hex digits"},
        {"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "sources[0].sha256: must be empty or 64 hex digits"},
        {" 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         "sources[0].sha256: must be empty or 64 hex digits"},
    };
    for (size_t i = 0; i < sizeof(shas) / sizeof(shas[0]); i++) {
        d = dl_new();
        dl_add(d, "http://h/x", "")->sha256 = (char *)shas[i].sha;
        if (shas[i].want)
            REJECT(d, shas[i].want);
        else
            ACCEPT(d);
    }

    /* connections: 0..64 */
    d = dl_new();
    dl_add(d, "http://h/x", "");
    d->m.connections = 64;
    ACCEPT(d);
    d->m.connections = 65;
    REJECT(d, "connections: at most 64 (got 65)");
    d->m.connections = UINT32_MAX;
    REJECT(d, "connections: at most 64");

    /* Transfer settings (issue 21): bounds, and ca_only needs ca_file. */
    d = dl_new();
    dl_add(d, "http://h/x", "");
    d->m.max_attempts = 101;
    d->m.connect_timeout_ms = d->m.stall_timeout_ms = d->m.connect_retry_ms = 86400000;
    d->m.ca_file = "/etc/ca.pem";
    d->m.ca_only = true;
    rvd_download_req *req = expect_accept(d, __LINE__);
    if (req) {
        CHECK_STREQ(req->ca_file, "/etc/ca.pem");
        CHECK(req->ca_only);
        CHECK_EQ_U64(req->max_attempts, 101);
        CHECK_EQ_U64(req->connect_timeout_ms, 86400000);
        CHECK_EQ_U64(req->stall_timeout_ms, 86400000);
        CHECK_EQ_U64(req->connect_retry_ms, 86400000);
        rvd_download_req_free(req);
    }
    d->m.max_attempts = 102;
    REJECT(d, "max_attempts: at most 101, the first try included (got 102)");
    d->m.max_attempts = 0;
    d->m.stall_timeout_ms = 86400001;
    REJECT(d, "stall_timeout_ms: at most 86400000 ms");
    d->m.stall_timeout_ms = 0;
    d->m.connect_retry_ms = UINT32_MAX;
    REJECT(d, "connect_retry_ms: at most 86400000 ms");
    d->m.connect_retry_ms = 0;
    d->m.connect_timeout_ms = 86400001;
    REJECT(d, "connect_timeout_ms: at most 86400000 ms");
    d->m.connect_timeout_ms = 0;
    d->m.ca_file = "ca.pem";
    REJECT(d, "ca_file: must be an absolute path");
    d->m.ca_file = "";
    REJECT(d, "ca_only: needs ca_file");
    d->m.ca_only = false;
    ACCEPT(d);

    /* --limit-rate (issue 21): 0 is no cap, else 1024..2^50 bytes a second. */
    d->m.max_bytes_per_sec = 1024;
    req = expect_accept(d, __LINE__);
    if (req) {
        CHECK_EQ_U64(req->max_bytes_per_sec, 1024);
        rvd_download_req_free(req);
    }
    d->m.max_bytes_per_sec = 1023;
    REJECT(d, "max_bytes_per_sec: 0 (no cap), or from 1024 to");
    d->m.max_bytes_per_sec = UINT64_MAX;
    REJECT(d, "max_bytes_per_sec: 0 (no cap), or from 1024 to");
    d->m.max_bytes_per_sec = 0;
    ACCEPT(d);

    /* Proxies: accepted and kept; control characters refused without the
     * value quoted back (it may hold a password). */
    d->m.http_proxy = "http://u:pw@proxy:3128";
    d->m.no_proxy = "localhost,.example";
    req = expect_accept(d, __LINE__);
    if (req) {
        CHECK_STREQ(req->http_proxy, "http://u:pw@proxy:3128");
        CHECK(req->https_proxy == NULL);
        CHECK_STREQ(req->no_proxy, "localhost,.example");
        CHECK(strlen(req->proxy_digest) == 64);
        rvd_download_req_free(req);
    }
    d->m.https_proxy = "http://u:pw\n@proxy";
    REJECT(d, "https_proxy: at most 4096 bytes, no control characters");
    d->m.https_proxy = "";
    d->m.http_proxy = d->m.no_proxy = "";
    ACCEPT(d);
}

static void test_download_headers(void) {
    struct dl *d;
    Retriever__V1__Source *s;

    /* count: 100 pass, 101 do not */
    d = dl_new();
    s = dl_add(d, "http://h/x", "");
    for (size_t i = 0; i < MAX_HDR; i++) {
        d->hdr[i].name = "X-Many";
        d->hdr[i].value = "v";
    }
    dl_headers(d, s, 100);
    ACCEPT(d);
    dl_headers(d, s, 101);
    REJECT(d, "sources[0].headers: at most 100 headers (got 101)");

    /* one header at a time, in the second source's third slot */
    static const struct {
        const char *name, *value, *want; /* want NULL: accepted */
    } cases[] = {
        {"X-Ok", "SECRETVALUE", NULL},
        {"X-Tab", "a\tb", NULL},
        {"X-Empty", "", NULL},
        {"X-Utf8", "\xc3\xa9", NULL},
        {"!#$%&'*+-.^_`|~09azAZ", "v", NULL},
        {"", "SECRETVALUE", "sources[1].headers[2].name: required"},
        {"Bad Name", "SECRETVALUE", "sources[1].headers[2].name: not a header name"},
        {"X:Y", "SECRETVALUE", "sources[1].headers[2].name: not a header name"},
        {"X(Y)", "SECRETVALUE", "sources[1].headers[2].name: not a header name"},
        {"X\xc3\xa9", "SECRETVALUE", "sources[1].headers[2].name: not a header name"},
        {"X-Inject", "SECRETVALUE\r\nHost: evil",
         "sources[1].headers[2].value: contains a control character"},
        {"X-Inject", "SECRETVALUE\n", "sources[1].headers[2].value: contains a control character"},
        {"X-Ctl", "SECRETVALUE\x01", "sources[1].headers[2].value: contains a control character"},
        {"X-Del", "SECRETVALUE\x7f", "sources[1].headers[2].value: contains a control character"},
        {"Range", "SECRETVALUE",
         "sources[1].headers[2]: 'Range' is set by the engine itself and cannot be sent"},
        {"if-none-match", "SECRETVALUE", "'if-none-match' is set by the engine itself"},
        {"HOST", "SECRETVALUE", "'HOST' is set by the engine itself"},
        {"Transfer-Encoding", "SECRETVALUE", "is set by the engine itself"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        d = dl_new();
        dl_add(d, "http://h/x", "");
        s = dl_add(d, "http://h/y", "");
        d->hdr[0].name = "X-A";
        d->hdr[0].value = "1";
        d->hdr[1].name = "X-B";
        d->hdr[1].value = "2";
        d->hdr[2].name = (char *)cases[i].name;
        d->hdr[2].value = (char *)cases[i].value;
        dl_headers(d, s, 3);
        if (!cases[i].want) {
            rvd_download_req *req = expect_accept(d, __LINE__);
            if (req && req->sources[1].n_headers == 3) {
                char line[128];
                snprintf(line, sizeof(line), "%s: %s", cases[i].name, cases[i].value);
                CHECK_STREQ(req->sources[1].headers[2], line);
            }
            rvd_download_req_free(req);
        } else {
            REJECT_SECRET(d, cases[i].want, "SECRETVALUE");
        }
    }

    /* size: "Name: value" of 8192 bytes pass, 8193 do not */
    d = dl_new();
    s = dl_add(d, "http://h/x", "");
    char *value = repeat("", 'v', 8192 - strlen("X: "));
    d->hdr[0].name = "X";
    d->hdr[0].value = value;
    dl_headers(d, s, 1);
    ACCEPT(d);
    free(value);
    value = repeat("", 'v', 8193 - strlen("X: "));
    d->hdr[0].value = value;
    REJECT_SECRET(d, "sources[0].headers[0]: longer than 8192 bytes", "vvvv");
    free(value);
}

/* ---- Download: bytes no encoder would send ----------------------------- */

/* Pack d, replace the first "@" in the bytes with a NUL, decode. */
static void expect_nul_reject(struct dl *d, const char *want) {
    size_t len = 0;
    uint8_t *buf = pack(&d->m.base, &len);
    uint8_t *at = buf ? memchr(buf, '@', len) : NULL;
    CHECK(at != NULL);
    if (at) {
        *at = '\0';
        rvd_download_req *req = NULL;
        char *err = NULL;
        CHECK_EQ_U64(rvd_request_download(buf, len, &req, &err), -EINVAL);
        CHECK(req == NULL);
        CHECK_STREQ(err, want);
        rvd_download_req_free(req);
        free(err);
    }
    free(buf);
}

#define BAD_DOWNLOAD "the request is not a valid retriever.v1.DownloadRequest message"

static void test_download_bytes(void) {
    struct dl *d;

    /* A NUL inside a string would cut it short: refused, by field. */
    d = dl_new();
    dl_add(d, "http://h/x", "/tmp/a@/../../etc/passwd");
    expect_nul_reject(d, "sources[0].destination: contains a NUL byte");
    d = dl_new();
    dl_add(d, "http://h/x", "");
    dl_add(d, "http://h/@x", "");
    expect_nul_reject(d, "sources[1].url: contains a NUL byte");
    d = dl_new();
    dl_add(d, "http://h/x", "/tmp/1");
    Retriever__V1__Source *s = dl_add(d, "http://h/y", "/tmp/2");
    d->hdr[0].name = "A";
    d->hdr[0].value = "1";
    d->hdr[1].name = "B";
    d->hdr[1].value = "2";
    d->hdr[2].name = "Authorization";
    d->hdr[2].value = "Bearer x@y";
    dl_headers(d, s, 3);
    expect_nul_reject(d, "sources[1].headers[2].value: contains a NUL byte");

    /* Garbage, truncation, an oversized message. */
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
    rvd_download_req *req = NULL;
    char *err = NULL;
    CHECK_EQ_U64(rvd_request_download(garbage, sizeof(garbage), &req, &err), -EINVAL);
    CHECK(err && strcmp(err, BAD_DOWNLOAD) == 0);
    free(err);
    err = NULL;

    d = dl_new();
    dl_add(d, "http://h/x", "/tmp/x");
    size_t len = 0;
    uint8_t *buf = pack(&d->m.base, &len);
    CHECK_EQ_U64(buf ? rvd_request_download(buf, len - 1, &req, &err) : -1, -EINVAL);
    CHECK(err && strcmp(err, BAD_DOWNLOAD) == 0);
    free(err);
    err = NULL;
    /* an unknown field (number 99, varint) is skipped: newer clients */
    uint8_t *more = buf ? realloc(buf, len + 3) : NULL;
    if (more) {
        buf = more;
        buf[len] = 0x98; /* tag (99 << 3 | 0) as a two-byte varint */
        buf[len + 1] = 0x06;
        buf[len + 2] = 0x01;
        req = NULL;
        CHECK_EQ_U64(rvd_request_download(buf, len + 3, &req, &err), 0);
        CHECK(req && req->n_sources == 1);
        rvd_download_req_free(req);
        req = NULL;
    }
    free(buf);

    uint8_t *big = calloc(1, RVD_REQ_MAX_BYTES + 1);
    CHECK(big != NULL);
    if (big) {
        CHECK_EQ_U64(rvd_request_download(big, RVD_REQ_MAX_BYTES + 1, &req, &err), -EINVAL);
        CHECK(err && strstr(err, "larger than 4194304 bytes"));
        free(err);
        err = NULL;
        free(big);
    }
    CHECK(req == NULL);
}

/* ---- Status, Cancel, Watch ---------------------------------------------- */

static const char *const bad_ids[] = {
    "", "0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcde",
    "0123456789abcdef0123456789abcdef0", "0123456789abcdef0123456789abcdeg",
    "../../../../../../../../etc/pass",
};

static void test_job_id(void) {
    for (int kind = RVD_REQ_STATUS; kind <= RVD_REQ_CANCEL; kind++) {
        Retriever__V1__StatusRequest st = RETRIEVER__V1__STATUS_REQUEST__INIT;
        Retriever__V1__CancelRequest ca = RETRIEVER__V1__CANCEL_REQUEST__INIT;
        ProtobufCMessage *m = kind == RVD_REQ_STATUS ? &st.base : &ca.base;
        st.job_id = ca.job_id = ID;
        size_t len = 0;
        uint8_t *buf = pack(m, &len);
        char id[RVD_JOB_ID_LEN + 1] = "untouched";
        char *err = NULL;
        CHECK_EQ_U64(rvd_request_job_id(kind, buf, len, id, &err), 0);
        CHECK_STREQ(id, ID);
        CHECK(err == NULL);
        free(buf);

        for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
            st.job_id = ca.job_id = (char *)bad_ids[i];
            buf = pack(m, &len);
            strcpy(id, "untouched");
            CHECK_EQ_U64(rvd_request_job_id(kind, buf, len, id, &err), -EINVAL);
            CHECK_STREQ(id, "untouched");
            CHECK(err && strstr(err, "job_id must be 32 hex digits"));
            free(err);
            err = NULL;
            free(buf);
        }
        /* an empty message has job_id "" */
        CHECK_EQ_U64(rvd_request_job_id(kind, NULL, 0, id, NULL), -EINVAL);
        static const uint8_t garbage[] = {0x0a, 0x05, 'a'};
        CHECK_EQ_U64(rvd_request_job_id(kind, garbage, sizeof(garbage), id, &err), -EINVAL);
        CHECK(err && strstr(err, "is not a valid retriever.v1."));
        free(err);
        err = NULL;
    }
    /* The messages are named right. */
    static const uint8_t garbage[] = {0xff};
    char id[RVD_JOB_ID_LEN + 1], *err = NULL;
    CHECK_EQ_U64(rvd_request_job_id(RVD_REQ_CANCEL, garbage, 1, id, &err), -EINVAL);
    CHECK_STREQ(err, "the request is not a valid retriever.v1.CancelRequest message");
    free(err);
    CHECK_EQ_U64(rvd_request_job_id((rvd_id_request)99, garbage, 1, id, NULL), -EINVAL);
}

static void test_watch(void) {
    Retriever__V1__WatchRequest wa = RETRIEVER__V1__WATCH_REQUEST__INIT;
    wa.job_id = ID;
    for (int batch = 0; batch <= 1; batch++) {
        wa.batch_events = batch;
        size_t len = 0;
        uint8_t *buf = pack(&wa.base, &len);
        rvd_watch_req w = {.batch_events = !batch};
        char *err = NULL;
        CHECK_EQ_U64(rvd_request_watch(buf, len, &w, &err), 0);
        CHECK_STREQ(w.job_id, ID);
        CHECK(w.batch_events == (bool)batch);
        CHECK(err == NULL);
        free(buf);
    }
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        wa.job_id = (char *)bad_ids[i];
        size_t len = 0;
        uint8_t *buf = pack(&wa.base, &len);
        rvd_watch_req w = {.job_id = "untouched", .batch_events = false};
        char *err = NULL;
        CHECK_EQ_U64(rvd_request_watch(buf, len, &w, &err), -EINVAL);
        CHECK_STREQ(w.job_id, "untouched");
        CHECK(!w.batch_events);
        CHECK(err && strstr(err, "job_id must be 32 hex digits"));
        free(err);
        free(buf);
    }
    static const uint8_t garbage[] = {0xff};
    rvd_watch_req w;
    char *err = NULL;
    CHECK_EQ_U64(rvd_request_watch(garbage, 1, &w, &err), -EINVAL);
    CHECK_STREQ(err, "the request is not a valid retriever.v1.WatchRequest message");
    free(err);
    CHECK_EQ_U64(rvd_request_watch(NULL, 0, &w, NULL), -EINVAL);
}

/* ---- Read ------------------------------------------------------------- */

static void test_read(void) {
    Retriever__V1__ReadRequest m = RETRIEVER__V1__READ_REQUEST__INIT;
    m.job_id = ID;
    m.object_index = 999;
    m.offset = INT64_MAX;
    size_t len = 0;
    uint8_t *buf = pack(&m.base, &len);
    rvd_read_req r = {.object_index = 7};
    char *err = NULL;
    CHECK_EQ_U64(rvd_request_read(buf, len, &r, &err), 0);
    CHECK_STREQ(r.job_id, ID);
    CHECK_EQ_U64(r.object_index, 999);
    CHECK_EQ_U64(r.offset, INT64_MAX);
    free(buf);

    static const struct {
        const char *id;
        uint32_t index;
        uint64_t offset;
        const char *want;
    } bads[] = {
        {"nope", 0, 0, "job_id must be 32 hex digits"},
        {ID, 1000, 0, "object_index: at most 999"},
        {ID, UINT32_MAX, 0, "object_index: at most 999"},
        {ID, 0, (uint64_t)INT64_MAX + 1, "offset: at most 9223372036854775807"},
        {ID, 0, UINT64_MAX, "offset: at most"},
    };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        m.job_id = (char *)bads[i].id;
        m.object_index = bads[i].index;
        m.offset = bads[i].offset;
        buf = pack(&m.base, &len);
        rvd_read_req untouched = {.object_index = 7};
        CHECK_EQ_U64(rvd_request_read(buf, len, &untouched, &err), -EINVAL);
        CHECK(untouched.object_index == 7 && untouched.job_id[0] == '\0');
        CHECK(err && strstr(err, bads[i].want));
        if (err && !strstr(err, bads[i].want))
            fprintf(stderr, "    want '%s', got '%s'\n", bads[i].want, err);
        free(err);
        err = NULL;
        free(buf);
    }
}

/* ---- List ------------------------------------------------------------- */

static void test_list(void) {
    Retriever__V1__ListRequest m = RETRIEVER__V1__LIST_REQUEST__INIT;
    Retriever__V1__JobState states[8];
    m.states = states;
    size_t len = 0;
    uint8_t *buf;
    rvd_list_req r;
    char *err = NULL;

    /* empty: every state, the default limit */
    CHECK_EQ_U64(rvd_request_list(NULL, 0, &r, &err), 0);
    CHECK_EQ_U64(r.states, 0);
    CHECK_EQ_U64(r.limit, RVD_REQ_LIST_DEFAULT);

    states[0] = RETRIEVER__V1__JOB_STATE__JOB_STATE_QUEUED;
    states[1] = RETRIEVER__V1__JOB_STATE__JOB_STATE_DONE;
    states[2] = RETRIEVER__V1__JOB_STATE__JOB_STATE_DONE;
    states[3] = RETRIEVER__V1__JOB_STATE__JOB_STATE_CANCELLED;
    m.n_states = 4;
    m.limit = 5;
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_list(buf, len, &r, &err), 0);
    CHECK_EQ_U64(r.states, RVD_LIST_QUEUED | RVD_LIST_DONE | RVD_LIST_CANCELLED);
    CHECK_EQ_U64(r.limit, 5);
    free(buf);

    /* limits above the maximum are lowered to it (AIP-158's page_size) */
    m.limit = RVD_REQ_LIST_MAX;
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_list(buf, len, &r, &err), 0);
    CHECK_EQ_U64(r.limit, RVD_REQ_LIST_MAX);
    free(buf);
    m.limit = UINT32_MAX;
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_list(buf, len, &r, &err), 0);
    CHECK_EQ_U64(r.limit, RVD_REQ_LIST_MAX);
    free(buf);

    /* UNSPECIFIED and numbers this version does not know */
    static const int bad_states[] = {0, 6, 1000, -1};
    for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++) {
        states[2] = (Retriever__V1__JobState)bad_states[i];
        buf = pack(&m.base, &len);
        rvd_list_req untouched = {.states = 42, .limit = 42};
        CHECK_EQ_U64(rvd_request_list(buf, len, &untouched, &err), -EINVAL);
        CHECK(untouched.states == 42 && untouched.limit == 42);
        CHECK(err && strstr(err, "states[2]: "));
        CHECK(err && strstr(err, "is not a job state"));
        free(err);
        err = NULL;
        free(buf);
    }
}

/* ---- Stats, Ping -------------------------------------------------------- */

static void test_empty(void) {
    static const uint8_t unknown_field[] = {0x08, 0x01}; /* field 1 varint: unknown, skipped */
    static const uint8_t garbage[] = {0x0a, 0x7f};
    char *err = NULL;
    for (int kind = RVD_REQ_STATS; kind <= RVD_REQ_PING; kind++) {
        CHECK_EQ_U64(rvd_request_empty(kind, NULL, 0, &err), 0);
        CHECK_EQ_U64(rvd_request_empty(kind, unknown_field, sizeof(unknown_field), &err), 0);
        CHECK(err == NULL);
        CHECK_EQ_U64(rvd_request_empty(kind, garbage, sizeof(garbage), &err), -EINVAL);
        CHECK(err && strstr(err, kind == RVD_REQ_PING ? "PingRequest" : "StatsRequest"));
        free(err);
        err = NULL;
    }
}

/* ---- CacheList, CacheVerify, CacheRemove ------------------------------- */

static void test_cache(void) {
    static const uint8_t garbage[] = {0x0a, 0x7f};
    char *err = NULL;
    for (int kind = RVD_REQ_CACHE_LIST; kind <= RVD_REQ_CACHE_VERIFY; kind++) {
        CHECK_EQ_U64(rvd_request_empty(kind, NULL, 0, &err), 0);
        CHECK_EQ_U64(rvd_request_empty(kind, garbage, sizeof(garbage), &err), -EINVAL);
        CHECK(err && strstr(err, kind == RVD_REQ_CACHE_LIST ? "CacheListRequest"
                                                            : "CacheVerifyRequest"));
        free(err);
        err = NULL;
    }

    Retriever__V1__CacheRemoveRequest m = RETRIEVER__V1__CACHE_REMOVE_REQUEST__INIT;
    char *urls[] = {"https://h/a", "https://h/b"};
    rvd_cache_remove_req r;
    size_t len = 0;
    uint8_t *buf;

    /* neither URLs nor all; both */
    CHECK_EQ_U64(rvd_request_cache_remove(NULL, 0, &r, &err), -EINVAL);
    CHECK(err && strstr(err, "urls: at least one URL, or all"));
    free(err);
    err = NULL;
    m.all = true;
    m.urls = urls;
    m.n_urls = 1;
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_cache_remove(buf, len, &r, &err), -EINVAL);
    CHECK(err && strstr(err, "must be empty with all"));
    free(err);
    err = NULL;
    free(buf);

    m.all = false;
    m.n_urls = 2;
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_cache_remove(buf, len, &r, &err), 0);
    CHECK(!r.all && r.n_urls == 2 && strcmp(r.urls[1], "https://h/b") == 0);
    rvd_cache_remove_req_clear(&r);
    free(buf);

    urls[1] = "";
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_cache_remove(buf, len, &r, &err), -EINVAL);
    CHECK(err && strstr(err, "urls[1]: "));
    free(err);
    err = NULL;
    free(buf);

    m.n_urls = 0;
    m.all = true;
    buf = pack(&m.base, &len);
    CHECK_EQ_U64(rvd_request_cache_remove(buf, len, &r, &err), 0);
    CHECK(r.all && r.n_urls == 0);
    rvd_cache_remove_req_clear(&r);
    free(buf);
}

/* An ended job keeps its request without credentials: no headers, URLs
 * redacted; everything else as it was. */
static void test_scrub(void) {
    struct dl *d = dl_new();
    Retriever__V1__Source *s = dl_add(d, "https://joe:PW-SECRET@h/x?token=TOK-SECRET&v=2", "/o/x");
    dl_add(d, "http://h/y", "/o/y");
    d->hdr[0].name = "Authorization";
    d->hdr[0].value = "Bearer HDR-SECRET";
    dl_headers(d, s, 1);
    d->m.connections = 7;
    d->m.http_proxy = "http://pu:PROXY-SECRET@proxy:3128";
    d->m.https_proxy = "http://proxy:3128";
    d->m.no_proxy = "localhost";
    size_t len = 0, out_len = 0;
    uint8_t *buf = pack(&d->m.base, &len), *out = NULL;
    CHECK(buf != NULL);
    CHECK(rvd_request_scrub(buf, len, &out, &out_len) == 0);
    Retriever__V1__DownloadRequest *m =
        retriever__v1__download_request__unpack(NULL, out_len, out);
    CHECK(m != NULL);
    if (m) {
        CHECK(m->n_sources == 2);
        CHECK_STREQ(m->sources[0]->url, "https://***@h/x?token=REDACTED&v=2");
        CHECK_STREQ(m->sources[0]->destination, "/o/x");
        CHECK(m->sources[0]->n_headers == 0);
        CHECK_STREQ(m->sources[1]->url, "http://h/y");
        CHECK(m->connections == 7);
        CHECK_STREQ(m->http_proxy, "http://***@proxy:3128");
        CHECK_STREQ(m->https_proxy, "http://proxy:3128");
        CHECK_STREQ(m->no_proxy, "localhost");
        retriever__v1__download_request__free_unpacked(m, NULL);
    }
    CHECK(out_len > 0 && !memmem(out, out_len, "SECRET", 6));
    free(out);
    out = NULL;
    CHECK(rvd_request_scrub((const uint8_t *)"\xff\xff", 2, &out, &out_len) == -EINVAL);
    CHECK(out == NULL);
    free(buf);
}

/* DownloadRequest.s3: checked, kept for the job, left out of what is
 * stored (rvd_request_unsecret), and part of the job's identity only as
 * a keyed digest. */
static void test_s3(void) {
    struct dl *d = dl_new();
    Retriever__V1__S3Options o = RETRIEVER__V1__S3_OPTIONS__INIT;
    dl_add(d, "s3://bucket/key", "/o/x");
    o.endpoint_url = "http://127.0.0.1:9000";
    o.region = "eu-test-1";
    o.access_key_id = "AKID-SECRET";
    o.secret_access_key = "S3-SECRET";
    o.session_token = "TOKEN-SECRET";
    d->m.s3 = &o;
    rvd_download_req *req = NULL;
    char *err = NULL;
    CHECK(dl_decode(d, &req, &err) == 0);
    CHECK(req && req->has_s3 && strcmp(req->s3_secret, "S3-SECRET") == 0 &&
          strcmp(req->s3_token, "TOKEN-SECRET") == 0 && strlen(req->s3_digest) == 64 &&
          !strstr(req->s3_digest, "AKID"));
    char digest[65] = "";
    if (req)
        memcpy(digest, req->s3_digest, sizeof(digest));
    req = rvd_download_req_free(req);
    /* Another key id: another identity; the same one again: the same. */
    o.access_key_id = "AKID-OTHER";
    CHECK(dl_decode(d, &req, &err) == 0);
    CHECK(req && strcmp(req->s3_digest, digest) != 0);
    req = rvd_download_req_free(req);
    o.access_key_id = "AKID-SECRET";
    CHECK(dl_decode(d, &req, &err) == 0);
    CHECK(req && strcmp(req->s3_digest, digest) == 0);
    req = rvd_download_req_free(req);

    /* What the job store gets has none of the credentials. */
    size_t len = 0, out_len = 0;
    uint8_t *buf = pack(&d->m.base, &len), *out = NULL;
    CHECK(buf && rvd_request_unsecret(buf, len, &out, &out_len) == 0);
    CHECK(out && !memmem(out, out_len, "SECRET", 6));
    Retriever__V1__DownloadRequest *m =
        out ? retriever__v1__download_request__unpack(NULL, out_len, out) : NULL;
    CHECK(m && m->s3 && strcmp(m->s3->region, "eu-test-1") == 0 &&
          strcmp(m->s3->endpoint_url, "http://127.0.0.1:9000") == 0);
    if (m)
        retriever__v1__download_request__free_unpacked(m, NULL);
    free(buf);
    free(out);

    /* Refused, naming the field and never quoting a value. */
    o.secret_access_key = "";
    REJECT_SECRET(d, "s3.access_key_id and s3.secret_access_key: both or neither", "AKID-SECRET");
    o.secret_access_key = "S3-SECRET\n";
    REJECT_SECRET(d, "s3.secret_access_key: at most 4096 bytes, no control characters",
                  "S3-SECRET");
    o.secret_access_key = "S3-SECRET";
    o.endpoint_url = "ftp://host";
    REJECT(d, "s3.endpoint_url: an http:// or https:// URL");
}

int main(void) {
    test_s3();
    test_cache();
    test_download_accepted();
    test_download_limits();
    test_download_headers();
    test_download_bytes();
    test_job_id();
    test_watch();
    test_read();
    test_list();
    test_empty();
    test_scrub();
    return rv_test_result();
}
