/* request.c — decode and validate request messages (see request.h).
 *
 * Two steps per message:
 *
 *   1. decode: protobuf-c unpacks the bytes (with an allocator that tells
 *      an allocation failure apart from malformed input), then find_nul()
 *      walks the same bytes once more, because protobuf-c hands strings out
 *      as C strings: a string field with a NUL byte inside would silently
 *      arrive cut short ("/tmp/a\0/../x" as "/tmp/a", a header value as a
 *      different credential). Such a message is refused, naming the field.
 *   2. validate and convert: each field against request.h's limits, into
 *      the plain structs. The generated types never leave this file.
 */
#include "request.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>
#include <retriever/retriever.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retriever/v1/retriever.pb-c.h"

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/* -EINVAL with *ret_error = the formatted sentence (when ret_error is not
 * NULL), or -ENOMEM when the sentence cannot be allocated. */
static int invalid(char **ret_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(char **ret_error, const char *fmt, ...) {
    if (!ret_error)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    *ret_error = s;
    return -EINVAL;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

/* protobuf-c reports every failure as NULL; this allocator remembers
 * whether one of them was an allocation. */
static void *pb_alloc(void *data, size_t size) {
    void *p = malloc(size);
    if (!p)
        *(bool *)data = true;
    return p;
}

static void pb_free(void *data, void *p) {
    (void)data;
    free(p);
}

/* Deepest nesting find_nul follows (DownloadRequest.sources.headers is 3). */
#define WIRE_DEPTH_MAX 8
/* Room for a field path such as "sources[999].headers[99].value". */
#define WIRE_PATH_MAX 128

static bool wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *ret) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *ret = v;
            return true;
        }
    }
    return false;
}

/* Walk the wire bytes [p, end) of a message of type desc, looking for a
 * string field of desc (or of a message field, recursively) that holds a
 * NUL byte. 1: found, its path ("sources[3].destination") appended to
 * path at offset at; 0: none; -1: the bytes do not parse (protobuf-c
 * accepted them, so this does not happen; the caller treats it as
 * malformed anyway). Fields desc does not know are skipped. */
static int find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end,
                    unsigned depth, char *path, size_t at) {
    unsigned seen[16] = {0}; /* occurrences per field, for repeated indices */

    if (depth > WIRE_DEPTH_MAX)
        return -1;
    while (p < end) {
        uint64_t tag, n;
        if (!wire_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
            return -1;
        switch (tag & 7) {
        case 0: /* varint */
            if (!wire_varint(&p, end, &n))
                return -1;
            continue;
        case 1: /* 64-bit */
            if (end - p < 8)
                return -1;
            p += 8;
            continue;
        case 5: /* 32-bit */
            if (end - p < 4)
                return -1;
            p += 4;
            continue;
        case 2: /* length-delimited: below */
            break;
        default: /* groups: not in proto3 */
            return -1;
        }
        if (!wire_varint(&p, end, &n) || n > (uint64_t)(end - p))
            return -1;
        const uint8_t *body = p;
        p += n;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
        if (!f || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        size_t k = (size_t)(f - desc->fields);
        unsigned index = k < sizeof(seen) / sizeof(seen[0]) ? seen[k]++ : 0;
        size_t len = at;
        int w = f->label == PROTOBUF_C_LABEL_REPEATED
                    ? snprintf(path + at, WIRE_PATH_MAX - at, "%s%s[%u]", at ? "." : "", f->name,
                               index)
                    : snprintf(path + at, WIRE_PATH_MAX - at, "%s%s", at ? "." : "", f->name);
        if (w > 0)
            len = at + (size_t)w < WIRE_PATH_MAX ? at + (size_t)w : WIRE_PATH_MAX - 1;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            if (memchr(body, '\0', n))
                return 1;
            continue;
        }
        int r = find_nul(f->descriptor, body, body + n, depth + 1, path, len);
        if (r != 0)
            return r;
    }
    path[at] = '\0';
    return 0;
}

/* Unpack buf as a desc. On success *ret is the message (free with
 * protobuf_c_message_free_unpacked(msg, NULL): the allocator frees with
 * free()). */
static int unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                  ProtobufCMessage **ret, char **ret_error) {
    static const uint8_t empty[1];
    bool nomem = false;
    ProtobufCAllocator allocator = {.alloc = pb_alloc, .free = pb_free, .allocator_data = &nomem};
    char path[WIRE_PATH_MAX] = "";

    if (len > RVD_REQ_MAX_BYTES)
        return invalid(ret_error, "the request is larger than %u bytes", RVD_REQ_MAX_BYTES);
    if (!buf) {
        if (len)
            return invalid(ret_error, "the request has no bytes");
        buf = empty; /* an empty message: every field at its default */
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &allocator, len, buf);
    if (!msg) {
        if (nomem)
            return -ENOMEM;
        return invalid(ret_error, "the request is not a valid %s message", desc->name);
    }
    int r = find_nul(desc, buf, buf + len, 0, path, 0);
    if (r != 0) {
        protobuf_c_message_free_unpacked(msg, &allocator);
        if (r < 0)
            return invalid(ret_error, "the request is not a valid %s message", desc->name);
        return invalid(ret_error, "%s: contains a NUL byte", path);
    }
    *ret = msg;
    return 0;
}

/* protobuf-c gives absent proto3 strings as "", but never trust that. */
static const char *str(const char *s) {
    return s ? s : "";
}

/* ------------------------------------------------------------------------
 * Fields
 * ------------------------------------------------------------------------ */

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 9110 token characters: what a header name is made of. */
static bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_job_id(const char *s) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == RVD_JOB_ID_LEN;
}

static int job_id_copy(const char *id, char ret_id[RVD_JOB_ID_LEN + 1], char **ret_error) {
    if (!is_job_id(id))
        return invalid(ret_error, "job_id must be 32 hex digits, lower case");
    memcpy(ret_id, id, RVD_JOB_ID_LEN + 1);
    return 0;
}

static int url_field(size_t i, const char *url, rvd_source *s, char **ret_error) {
    size_t len = strnlen(url, RVD_REQ_URL_MAX + 1);
    if (len == 0)
        return invalid(ret_error, "sources[%zu].url: required", i);
    if (len > RVD_REQ_URL_MAX)
        return invalid(ret_error, "sources[%zu].url: longer than %d bytes", i, RVD_REQ_URL_MAX);
    int r = rv_url_normalize(url, &s->url_key);
    if (r == RV_E_UNSUPPORTED_SCHEME)
        return invalid(ret_error, "sources[%zu].url: unsupported scheme (use http, https or file)",
                       i);
    if (r == RV_E_NOMEM)
        return -ENOMEM;
    if (r != RV_OK)
        return invalid(ret_error,
                       "sources[%zu].url: not a valid URL (printable ASCII, scheme://host[:port]"
                       "/path, %%-escapes of two hex digits, file:// with an absolute path)",
                       i);
    if (rv_url_redact(url, &s->url_display) != RV_OK || !(s->url = strdup(url)))
        return -ENOMEM;
    return 0;
}

/* Absolute, at most RVD_REQ_DEST_MAX bytes, names a file (no trailing
 * '/'), and has no "", "." or ".." component, so the path given is the
 * path meant and two equal strings are the only way to name one file
 * twice. "" is no destination. */
static int destination_field(size_t i, const char *d, rvd_source *s, char **ret_error) {
    size_t len = strnlen(d, RVD_REQ_DEST_MAX + 1);
    if (len == 0)
        return 0;
    if (len > RVD_REQ_DEST_MAX)
        return invalid(ret_error, "sources[%zu].destination: longer than %d bytes", i,
                       RVD_REQ_DEST_MAX);
    if (d[0] != '/')
        return invalid(ret_error, "sources[%zu].destination: must be an absolute path", i);
    if (d[len - 1] == '/')
        return invalid(ret_error, "sources[%zu].destination: must name a file, not end in '/'",
                       i);
    for (const char *c = d + 1;;) {
        size_t n = strcspn(c, "/");
        if (n == 0)
            return invalid(ret_error, "sources[%zu].destination: has an empty component ('//')",
                           i);
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return invalid(ret_error, "sources[%zu].destination: has a '.' or '..' component",
                           i);
        if (!c[n])
            break;
        c += n + 1;
    }
    return (s->destination = strdup(d)) ? 0 : -ENOMEM;
}

static int sha256_field(size_t i, const char *h, rvd_source *s, char **ret_error) {
    size_t len = strnlen(h, 65);
    if (len == 0)
        return 0;
    bool ok = len == 64;
    for (size_t k = 0; ok && k < len; k++)
        ok = is_hex(h[k]);
    if (!ok)
        return invalid(ret_error, "sources[%zu].sha256: must be empty or 64 hex digits", i);
    if (!(s->sha256 = strdup(h)))
        return -ENOMEM;
    for (size_t k = 0; k < len; k++)
        s->sha256[k] = (char)(s->sha256[k] | 0x20); /* digits keep, letters lower */
    return 0;
}

/* The sha256 of the lines, each followed by "\n" (a line has no '\n', so
 * the concatenation is unambiguous). */
static int headers_digest(char *const *lines, size_t n, char out[65]) {
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int r = -ENOMEM;

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t k = 0; k < n; k++)
        if (EVP_DigestUpdate(ctx, lines[k], strlen(lines[k])) != 1 ||
            EVP_DigestUpdate(ctx, "\n", 1) != 1)
            goto out;
    if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32)
        goto out;
    for (unsigned k = 0; k < md_len; k++) {
        out[2 * k] = digits[md[k] >> 4];
        out[2 * k + 1] = digits[md[k] & 15];
    }
    out[64] = '\0';
    r = 0;
out:
    EVP_MD_CTX_free(ctx);
    return r;
}

/* A header's name is a token; its value has no control character but
 * HTAB (rv_header_allowed checks only CR and LF: NUL is caught at
 * decoding, the rest here). Error sentences name a header by its name
 * only once that is known to be a token, and never show a value. */
static int headers_field(size_t i, Retriever__V1__Header *const *hs, size_t n, rvd_source *s,
                         char **ret_error) {
    if (n > RVD_REQ_HEADERS_MAX)
        return invalid(ret_error, "sources[%zu].headers: at most %d headers (got %zu)", i,
                       RVD_REQ_HEADERS_MAX, n);
    if (n == 0)
        return 0;
    if (!(s->headers = calloc(n, sizeof(*s->headers))))
        return -ENOMEM;
    s->n_headers = n;
    for (size_t j = 0; j < n; j++) {
        const char *name = hs[j] ? str(hs[j]->name) : "";
        const char *value = hs[j] ? str(hs[j]->value) : "";
        size_t name_len = strnlen(name, RVD_REQ_HEADER_MAX + 1);
        size_t value_len = strnlen(value, RVD_REQ_HEADER_MAX + 1);
        if (name_len == 0)
            return invalid(ret_error, "sources[%zu].headers[%zu].name: required", i, j);
        for (size_t k = 0; k < name_len; k++)
            if (!is_tchar(name[k]))
                return invalid(ret_error,
                               "sources[%zu].headers[%zu].name: not a header name (letters, "
                               "digits and !#$%%&'*+-.^_`|~ only)",
                               i, j);
        for (size_t k = 0; k < value_len; k++) {
            unsigned char c = (unsigned char)value[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return invalid(ret_error,
                               "sources[%zu].headers[%zu].value: contains a control character",
                               i, j);
        }
        if (name_len + 2 + value_len > RVD_REQ_HEADER_MAX)
            return invalid(ret_error,
                           "sources[%zu].headers[%zu]: longer than %d bytes as 'Name: value'", i,
                           j, RVD_REQ_HEADER_MAX);
        if (asprintf(&s->headers[j], "%s: %s", name, value) < 0) {
            s->headers[j] = NULL;
            return -ENOMEM;
        }
        if (!rv_header_allowed(s->headers[j]))
            return invalid(ret_error,
                           "sources[%zu].headers[%zu]: '%s' is set by the engine itself and "
                           "cannot be sent",
                           i, j, name);
    }
    return headers_digest(s->headers, s->n_headers, s->headers_digest);
}

/* Order for finding equal destinations: by path, then by index. */
static int dest_cmp(const void *a, const void *b) {
    const rvd_source *x = *(const rvd_source *const *)a, *y = *(const rvd_source *const *)b;
    int c = strcmp(x->destination, y->destination);
    return c ? c : (x < y ? -1 : x > y);
}

/* No two sources write one file. Sorting keeps this O(n log n) for the
 * largest request (RVD_REQ_SOURCES_MAX long paths). */
static int destinations_distinct(const rvd_download_req *req, char **ret_error) {
    const rvd_source **v = calloc(req->n_sources, sizeof(*v));
    size_t n = 0;
    int r = 0;

    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < req->n_sources; i++)
        if (req->sources[i].destination)
            v[n++] = &req->sources[i];
    qsort(v, n, sizeof(*v), dest_cmp);
    /* Equal paths sort together, each run by index. Report the run whose
     * second index is smallest: the clash a person reading the request
     * top-down meets first. */
    size_t first = 0, second = SIZE_MAX;
    for (size_t k = 0; k + 1 < n;) {
        size_t run = k + 1;
        while (run < n && strcmp(v[k]->destination, v[run]->destination) == 0)
            run++;
        if (run - k >= 2 && (size_t)(v[k + 1] - req->sources) < second) {
            first = (size_t)(v[k] - req->sources);
            second = (size_t)(v[k + 1] - req->sources);
        }
        k = run;
    }
    if (second != SIZE_MAX)
        r = invalid(ret_error, "sources[%zu].destination: the same as sources[%zu].destination",
                    second, first);
    free(v);
    return r;
}

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

rvd_download_req *rvd_download_req_free(rvd_download_req *r) {
    if (!r)
        return NULL;
    for (size_t i = 0; r->sources && i < r->n_sources; i++) {
        rvd_source *s = &r->sources[i];
        free(s->url);
        free(s->url_key);
        free(s->url_display);
        free(s->destination);
        free(s->sha256);
        for (size_t j = 0; s->headers && j < s->n_headers; j++)
            free(s->headers[j]);
        free(s->headers);
    }
    free(r->sources);
    free(r->ca_file);
    free(r->s3_endpoint);
    free(r->s3_region);
    free(r->s3_key_id);
    /* proxies may carry credentials; the S3 secrets are */
    for (char **p = (char *[]){r->s3_secret, r->s3_token}, **end = p + 2; p < end; p++)
        if (*p) {
            explicit_bzero(*p, strlen(*p));
            free(*p);
        }
    for (char **p = (char *[]){r->http_proxy, r->https_proxy, r->no_proxy}, **end = p + 3;
         p < end; p++)
        if (*p) {
            explicit_bzero(*p, strlen(*p));
            free(*p);
        }
    free(r);
    return NULL;
}

/* The part of a job's identity its S3 options make: HMAC-SHA256, keyed
 * by a random key of this process, of the endpoint, region, style and
 * access key id. Keyed, so that the identity (kept in memory, compared,
 * never shown) says nothing about the key id even to one who guesses it;
 * never the secret, which is the same account's. */
static int s3_digest(rvd_download_req *req) {
    static unsigned char key[32];
    static bool keyed;
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char *msg = NULL;
    int n;

    if (!keyed) {
        if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
            return -EIO;
        keyed = true;
    }
    n = asprintf(&msg, "%s%c%s%c%d%c%s", req->s3_endpoint ? req->s3_endpoint : "", 0,
                 req->s3_region ? req->s3_region : "", 0, req->s3_path_style, 0,
                 req->s3_key_id ? req->s3_key_id : "");
    if (n < 0)
        return -ENOMEM;
    bool ok = HMAC(EVP_sha256(), key, (int)sizeof(key), (unsigned char *)msg, (size_t)n, md,
                   &md_len) && md_len == 32;
    free(msg);
    if (!ok)
        return -ENOMEM;
    for (unsigned k = 0; k < 32; k++) {
        req->s3_digest[2 * k] = digits[md[k] >> 4];
        req->s3_digest[2 * k + 1] = digits[md[k] & 15];
    }
    req->s3_digest[64] = '\0';
    return 0;
}

int rvd_request_unsecret(const uint8_t *buf, size_t len, uint8_t **ret, size_t *ret_len) {
    Retriever__V1__DownloadRequest *m = retriever__v1__download_request__unpack(NULL, len, buf);
    uint8_t *out = NULL;
    int r = 0;

    if (!m)
        return -EINVAL;
    if (m->s3) {
        /* protobuf-c's unpacked strings: blanked in place, then left out
         * (an empty proto3 string is not packed). */
        for (char **p = (char *[]){m->s3->access_key_id, m->s3->secret_access_key,
                                   m->s3->session_token},
                  **end = p + 3;
             p < end; p++)
            if (*p)
                explicit_bzero(*p, strlen(*p));
    }
    size_t size = retriever__v1__download_request__get_packed_size(m);
    out = malloc(size ? size : 1);
    if (!out)
        r = -ENOMEM;
    else
        *ret_len = retriever__v1__download_request__pack(m, out);
    retriever__v1__download_request__free_unpacked(m, NULL);
    if (r == 0)
        *ret = out;
    return r;
}

int rvd_request_download(const uint8_t *buf, size_t len, rvd_download_req **ret,
                         char **ret_error) {
    ProtobufCMessage *msg = NULL;
    rvd_download_req *req = NULL;
    int r;

    r = unpack(&retriever__v1__download_request__descriptor, buf, len, &msg, ret_error);
    if (r < 0)
        return r;
    const Retriever__V1__DownloadRequest *m = (const Retriever__V1__DownloadRequest *)msg;

    if (m->n_sources == 0) {
        r = invalid(ret_error, "sources: at least one source is required");
        goto out;
    }
    if (m->n_sources > RVD_REQ_SOURCES_MAX) {
        r = invalid(ret_error, "sources: at most %d sources per request (got %zu)",
                    RVD_REQ_SOURCES_MAX, m->n_sources);
        goto out;
    }
    if (m->link && m->copy) {
        r = invalid(ret_error, "link, copy: at most one of them may be set");
        goto out;
    }
    if (m->connections > RVD_REQ_CONNECTIONS_MAX) {
        r = invalid(ret_error, "connections: at most %d (got %u)", RVD_REQ_CONNECTIONS_MAX,
                    m->connections);
        goto out;
    }
    if (m->ca_only && !str(m->ca_file)[0]) {
        r = invalid(ret_error, "ca_only: needs ca_file (the certificates to trust instead)");
        goto out;
    }
    if (str(m->ca_file)[0] && (m->ca_file[0] != '/' || strlen(m->ca_file) > RVD_REQ_DEST_MAX)) {
        r = invalid(ret_error, "ca_file: must be an absolute path of at most %d bytes",
                    RVD_REQ_DEST_MAX);
        goto out;
    }
    if (m->max_attempts > RVD_REQ_ATTEMPTS_MAX) {
        r = invalid(ret_error, "max_attempts: at most %d, the first try included (got %u)",
                    RVD_REQ_ATTEMPTS_MAX, m->max_attempts);
        goto out;
    }
    if (m->connect_timeout_ms > RVD_REQ_TIMEOUT_MS_MAX ||
        m->stall_timeout_ms > RVD_REQ_TIMEOUT_MS_MAX ||
        m->connect_retry_ms > RVD_REQ_TIMEOUT_MS_MAX) {
        r = invalid(ret_error, "%s: at most %u ms (a day)",
                    m->connect_timeout_ms > RVD_REQ_TIMEOUT_MS_MAX ? "connect_timeout_ms"
                    : m->stall_timeout_ms > RVD_REQ_TIMEOUT_MS_MAX ? "stall_timeout_ms"
                                                                   : "connect_retry_ms",
                    RVD_REQ_TIMEOUT_MS_MAX);
        goto out;
    }
    if (m->max_bytes_per_sec &&
        (m->max_bytes_per_sec < RVD_REQ_RATE_MIN || m->max_bytes_per_sec > RVD_REQ_RATE_MAX)) {
        r = invalid(ret_error,
                    "max_bytes_per_sec: 0 (no cap), or from %u to %llu bytes a second (got %llu)",
                    RVD_REQ_RATE_MIN, (unsigned long long)RVD_REQ_RATE_MAX,
                    (unsigned long long)m->max_bytes_per_sec);
        goto out;
    }
    {
        const char *names[] = {"http_proxy", "https_proxy", "no_proxy"};
        const char *vals[] = {str(m->http_proxy), str(m->https_proxy), str(m->no_proxy)};
        for (size_t k = 0; k < 3; k++) {
            bool ctl = false;
            for (const unsigned char *c = (const unsigned char *)vals[k]; *c; c++)
                ctl = ctl || *c < 0x20 || *c == 0x7f;
            /* The value is not quoted back: it may hold a password. */
            if (ctl || strlen(vals[k]) > RVD_REQ_PROXY_MAX) {
                r = invalid(ret_error, "%s: at most %d bytes, no control characters", names[k],
                            RVD_REQ_PROXY_MAX);
                goto out;
            }
        }
    }
    if (m->s3) {
        const char *names[] = {"s3.endpoint_url", "s3.region", "s3.access_key_id",
                               "s3.secret_access_key", "s3.session_token"};
        const char *vals[] = {str(m->s3->endpoint_url), str(m->s3->region),
                              str(m->s3->access_key_id), str(m->s3->secret_access_key),
                              str(m->s3->session_token)};
        for (size_t k = 0; k < 5; k++) {
            bool ctl = false;
            for (const unsigned char *c = (const unsigned char *)vals[k]; *c; c++)
                ctl = ctl || *c < 0x20 || *c == 0x7f;
            /* Not quoted back: it may be a secret. */
            if (ctl || strlen(vals[k]) > RVD_REQ_PROXY_MAX) {
                r = invalid(ret_error, "%s: at most %d bytes, no control characters", names[k],
                            RVD_REQ_PROXY_MAX);
                goto out;
            }
        }
        if (vals[0][0] && strncmp(vals[0], "http://", 7) != 0 &&
            strncmp(vals[0], "https://", 8) != 0) {
            r = invalid(ret_error, "s3.endpoint_url: an http:// or https:// URL");
            goto out;
        }
        if (!vals[2][0] != !vals[3][0]) {
            r = invalid(ret_error, "s3.access_key_id and s3.secret_access_key: both or neither");
            goto out;
        }
    }
    if (m->umask && (m->umask->bits & ~0777u)) {
        r = invalid(ret_error,
                    "umask.bits: only permission bits (at most 0777) may be set (got %#o)",
                    m->umask->bits);
        goto out;
    }

    r = -ENOMEM;
    req = calloc(1, sizeof(*req));
    if (!req || !(req->sources = calloc(m->n_sources, sizeof(*req->sources))))
        goto out;
    req->n_sources = m->n_sources;
    req->priority = m->priority;
    req->detach = m->detach;
    req->connections = m->connections;
    req->batch_events = m->batch_events;
    req->digest = m->digest;
    req->link = m->link;
    req->copy = m->copy;
    /* Without a umask the safe default: nobody else reads the file. */
    req->mode = m->umask ? 0666u & ~m->umask->bits : 0600u;
    req->ca_only = m->ca_only;
    req->max_attempts = m->max_attempts;
    req->connect_timeout_ms = m->connect_timeout_ms;
    req->stall_timeout_ms = m->stall_timeout_ms;
    req->connect_retry_ms = m->connect_retry_ms;
    req->no_replace = m->no_replace;
    req->max_bytes_per_sec = m->max_bytes_per_sec;
    if (str(m->ca_file)[0] && !(req->ca_file = strdup(m->ca_file)))
        goto out;
    if ((str(m->http_proxy)[0] && !(req->http_proxy = strdup(m->http_proxy))) ||
        (str(m->https_proxy)[0] && !(req->https_proxy = strdup(m->https_proxy))) ||
        (str(m->no_proxy)[0] && !(req->no_proxy = strdup(m->no_proxy))))
        goto out;
    {
        char *const lines[] = {(char *)str(m->http_proxy), (char *)str(m->https_proxy),
                               (char *)str(m->no_proxy)};
        if (headers_digest(lines, 3, req->proxy_digest) < 0)
            goto out;
    }
    if (m->s3) {
        const Retriever__V1__S3Options *o = m->s3;
        req->has_s3 = true;
        req->s3_path_style = o->path_style;
        if ((str(o->endpoint_url)[0] && !(req->s3_endpoint = strdup(o->endpoint_url))) ||
            (str(o->region)[0] && !(req->s3_region = strdup(o->region))) ||
            (str(o->access_key_id)[0] && !(req->s3_key_id = strdup(o->access_key_id))) ||
            (str(o->secret_access_key)[0] && !(req->s3_secret = strdup(o->secret_access_key))) ||
            (str(o->session_token)[0] && !(req->s3_token = strdup(o->session_token))))
            goto out;
        if (s3_digest(req) < 0)
            goto out;
    }

    for (size_t i = 0; i < m->n_sources; i++) {
        const Retriever__V1__Source *src = m->sources[i];
        rvd_source *s = &req->sources[i];
        if (!src) { /* protobuf-c never does this; an empty Source would fail the url */
            r = invalid(ret_error, "sources[%zu].url: required", i);
            goto out;
        }
        if ((r = url_field(i, str(src->url), s, ret_error)) < 0 ||
            (r = destination_field(i, str(src->destination), s, ret_error)) < 0 ||
            (r = sha256_field(i, str(src->sha256), s, ret_error)) < 0 ||
            (r = headers_field(i, src->headers, src->n_headers, s, ret_error)) < 0)
            goto out;
        s->name_from_disposition = src->name_from_disposition;
        if (s->name_from_disposition && !s->destination) {
            r = invalid(ret_error, "sources[%zu].name_from_disposition: needs a destination", i);
            goto out;
        }
    }
    r = destinations_distinct(req, ret_error);
    if (r < 0)
        goto out;

    *ret = req;
    req = NULL;
    r = 0;
out:
    rvd_download_req_free(req);
    protobuf_c_message_free_unpacked(msg, NULL);
    return r;
}

int rvd_request_job_id(rvd_id_request kind, const uint8_t *buf, size_t len,
                       char ret_id[RVD_JOB_ID_LEN + 1], char **ret_error) {
    ProtobufCMessage *msg = NULL;
    const char *id;
    int r;

    /* The messages differ only in name; each is decoded as itself so
     * errors name the right one. */
    switch (kind) {
    case RVD_REQ_STATUS:
        r = unpack(&retriever__v1__status_request__descriptor, buf, len, &msg, ret_error);
        id = r < 0 ? NULL : ((Retriever__V1__StatusRequest *)msg)->job_id;
        break;
    case RVD_REQ_CANCEL:
        r = unpack(&retriever__v1__cancel_request__descriptor, buf, len, &msg, ret_error);
        id = r < 0 ? NULL : ((Retriever__V1__CancelRequest *)msg)->job_id;
        break;
    default: /* a caller's bug, not the client's */
        return invalid(ret_error, "unknown request kind %d", (int)kind);
    }
    if (r < 0)
        return r;
    r = job_id_copy(str(id), ret_id, ret_error);
    protobuf_c_message_free_unpacked(msg, NULL);
    return r;
}

int rvd_request_watch(const uint8_t *buf, size_t len, rvd_watch_req *ret, char **ret_error) {
    ProtobufCMessage *msg = NULL;
    int r = unpack(&retriever__v1__watch_request__descriptor, buf, len, &msg, ret_error);
    if (r < 0)
        return r;
    const Retriever__V1__WatchRequest *m = (const Retriever__V1__WatchRequest *)msg;
    r = job_id_copy(str(m->job_id), ret->job_id, ret_error);
    if (r == 0)
        ret->batch_events = m->batch_events;
    protobuf_c_message_free_unpacked(msg, NULL);
    return r;
}

int rvd_request_read(const uint8_t *buf, size_t len, rvd_read_req *ret, char **ret_error) {
    ProtobufCMessage *msg = NULL;
    rvd_read_req out;
    memset(&out, 0, sizeof(out));
    int r = unpack(&retriever__v1__read_request__descriptor, buf, len, &msg, ret_error);
    if (r < 0)
        return r;
    const Retriever__V1__ReadRequest *m = (const Retriever__V1__ReadRequest *)msg;

    if ((r = job_id_copy(str(m->job_id), out.job_id, ret_error)) < 0)
        goto out;
    if (m->object_index >= RVD_REQ_SOURCES_MAX) {
        r = invalid(ret_error, "object_index: at most %d (a job has at most %d sources)",
                    RVD_REQ_SOURCES_MAX - 1, RVD_REQ_SOURCES_MAX);
        goto out;
    }
    if (m->offset > INT64_MAX) {
        r = invalid(ret_error, "offset: at most %lld", (long long)INT64_MAX);
        goto out;
    }
    out.object_index = m->object_index;
    out.offset = m->offset;
    *ret = out;
out:
    protobuf_c_message_free_unpacked(msg, NULL);
    return r;
}

int rvd_request_list(const uint8_t *buf, size_t len, rvd_list_req *ret, char **ret_error) {
    ProtobufCMessage *msg = NULL;
    rvd_list_req out = {0, 0};
    int r = unpack(&retriever__v1__list_request__descriptor, buf, len, &msg, ret_error);
    if (r < 0)
        return r;
    const Retriever__V1__ListRequest *m = (const Retriever__V1__ListRequest *)msg;

    for (size_t i = 0; i < m->n_states; i++) {
        int s = (int)m->states[i];
        if (s < RETRIEVER__V1__JOB_STATE__JOB_STATE_QUEUED ||
            s > RETRIEVER__V1__JOB_STATE__JOB_STATE_CANCELLED) {
            r = invalid(ret_error,
                        "states[%zu]: %d is not a job state (1..5: QUEUED, RUNNING, DONE, "
                        "FAILED, CANCELLED)",
                        i, s);
            goto out;
        }
        out.states |= 1u << s;
    }
    out.limit = m->limit == 0 ? RVD_REQ_LIST_DEFAULT
                : m->limit > RVD_REQ_LIST_MAX ? RVD_REQ_LIST_MAX
                                              : m->limit;
    *ret = out;
out:
    protobuf_c_message_free_unpacked(msg, NULL);
    return r;
}

int rvd_request_empty(rvd_empty_request kind, const uint8_t *buf, size_t len,
                      char **ret_error) {
    ProtobufCMessage *msg = NULL;
    const ProtobufCMessageDescriptor *desc;
    switch (kind) {
    case RVD_REQ_STATS:
        desc = &retriever__v1__stats_request__descriptor;
        break;
    case RVD_REQ_PING:
        desc = &retriever__v1__ping_request__descriptor;
        break;
    case RVD_REQ_CACHE_LIST:
        desc = &retriever__v1__cache_list_request__descriptor;
        break;
    case RVD_REQ_CACHE_VERIFY:
        desc = &retriever__v1__cache_verify_request__descriptor;
        break;
    default: /* a caller's bug, not the client's */
        return invalid(ret_error, "unknown request kind %d", (int)kind);
    }
    int r = unpack(desc, buf, len, &msg, ret_error);
    if (r < 0)
        return r;
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}

void rvd_cache_remove_req_clear(rvd_cache_remove_req *r) {
    for (size_t i = 0; r && i < r->n_urls; i++)
        free(r->urls[i]);
    if (r) {
        free(r->urls);
        *r = (rvd_cache_remove_req){0};
    }
}

int rvd_request_cache_remove(const uint8_t *buf, size_t len, rvd_cache_remove_req *ret,
                             char **ret_error) {
    ProtobufCMessage *msg = NULL;
    int r = unpack(&retriever__v1__cache_remove_request__descriptor, buf, len, &msg, ret_error);
    if (r < 0)
        return r;
    const Retriever__V1__CacheRemoveRequest *m = (const Retriever__V1__CacheRemoveRequest *)msg;
    rvd_cache_remove_req out = {.all = m->all};
    if (m->all && m->n_urls) {
        r = invalid(ret_error, "urls: must be empty with all");
    } else if (!m->all && !m->n_urls) {
        r = invalid(ret_error, "urls: at least one URL, or all");
    } else if (m->n_urls > RVD_REQ_SOURCES_MAX) {
        r = invalid(ret_error, "urls: at most %u", (unsigned)RVD_REQ_SOURCES_MAX);
    } else if (m->n_urls && !(out.urls = calloc(m->n_urls, sizeof(*out.urls)))) {
        r = -ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < m->n_urls; i++) {
        if (strlen(m->urls[i]) == 0 || strlen(m->urls[i]) > RVD_REQ_URL_MAX)
            r = invalid(ret_error, "urls[%zu]: empty or longer than %u bytes", i,
                        (unsigned)RVD_REQ_URL_MAX);
        else if (!(out.urls[out.n_urls++] = strdup(m->urls[i])))
            r = -ENOMEM;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0)
        rvd_cache_remove_req_clear(&out);
    else
        *ret = out;
    return r;
}

int rvd_request_scrub(const uint8_t *buf, size_t len, uint8_t **ret, size_t *ret_len) {
    Retriever__V1__DownloadRequest *m = retriever__v1__download_request__unpack(NULL, len, buf);
    char **shown = NULL, **given = NULL;
    uint8_t *out = NULL;
    size_t n = 0;
    int r = 0;

    if (!m)
        return -EINVAL;
    n = m->n_sources;
    shown = calloc(n ? n : 1, sizeof(*shown));
    given = calloc(n ? n : 1, sizeof(*given));
    if (!shown || !given)
        r = -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        Retriever__V1__Source *src = m->sources[i];
        for (size_t h = 0; h < src->n_headers; h++)
            retriever__v1__header__free_unpacked(src->headers[h], NULL);
        src->n_headers = 0; /* (the array goes with m) */
        /* The redacted URL is lent to the message for the pack only: the
         * one unpack made goes back before m is freed. */
        if (rv_url_redact(src->url, &shown[i]) != RV_OK) {
            r = -ENOMEM;
            break;
        }
        given[i] = src->url;
        src->url = shown[i];
    }
    /* The proxies may carry user:password@: kept redacted, as the URLs. */
    char *proxy_shown[2] = {NULL, NULL}, *proxy_given[2] = {m->http_proxy, m->https_proxy};
    for (size_t k = 0; r == 0 && k < 2; k++) {
        if (!str(proxy_given[k])[0])
            continue;
        if (rv_url_redact(proxy_given[k], &proxy_shown[k]) != RV_OK)
            r = -ENOMEM;
    }
    if (r == 0) {
        if (proxy_shown[0])
            m->http_proxy = proxy_shown[0];
        if (proxy_shown[1])
            m->https_proxy = proxy_shown[1];
        size_t size = retriever__v1__download_request__get_packed_size(m);
        out = malloc(size ? size : 1);
        if (!out)
            r = -ENOMEM;
        else
            *ret_len = retriever__v1__download_request__pack(m, out);
    }
    for (size_t i = 0; given && i < n; i++)
        if (given[i])
            m->sources[i]->url = given[i];
    m->http_proxy = proxy_given[0];
    m->https_proxy = proxy_given[1];
    free(proxy_shown[0]);
    free(proxy_shown[1]);
    retriever__v1__download_request__free_unpacked(m, NULL);
    for (size_t i = 0; shown && i < n; i++)
        free(shown[i]);
    free(shown);
    free(given);
    if (r == 0)
        *ret = out;
    return r;
}
