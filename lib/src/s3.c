/* s3.c — the s3 source: s3://bucket/key is an https object (or the custom
 * endpoint's scheme) fetched by the http source's machinery — ranges,
 * retries, state and cache as for https — with every request signed by
 * SigV4 (libcurl's CURLOPT_AWS_SIGV4; http.c adds the headers it needs).
 *
 * This source only decides where an object is (origin_url) and how it is
 * signed (sigv4), before its first transfer; everything else is http.c's.
 * Where: AWS's endpoint for the region, virtual-hosted
 * (https://bucket.s3.REGION.amazonaws.com/key); a custom endpoint
 * virtual-hosted too, or path style (endpoint/bucket/key) when asked or
 * when the endpoint is an IP address or localhost, which have no
 * subdomains. docs/sources.md has the user's side. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "hexdigit.h"
#include "s3err.h"
#include "sink.h"
#include "url.h"

static bool unreserved(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

/* The key (percent-encoded as the URL gave it) in SigV4's canonical form:
 * every byte but the unreserved ones and '/' as %XX, upper case, each
 * encoded once. libcurl signs the path exactly as written, so the request
 * must already be in this form or S3 computes another signature. */
static char *canonical_key(const char *path) {
    size_t n = strlen(path);
    char *out = malloc(3 * n + 1), *w = out;
    static const char digits[] = "0123456789ABCDEF";
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch == '%' && i + 2 < n && rv_hex_value(path[i + 1]) >= 0 &&
            rv_hex_value(path[i + 2]) >= 0) {
            ch = (unsigned char)(rv_hex_value(path[i + 1]) * 16 + rv_hex_value(path[i + 2]));
            i += 2;
        }
        if (unreserved(ch) || ch == '/') {
            *w++ = (char)ch;
        } else {
            *w++ = '%';
            *w++ = digits[ch >> 4];
            *w++ = digits[ch & 15];
        }
    }
    *w = '\0';
    return out;
}

/* Whether host (as in a URL: an IPv6 literal in brackets) has no
 * subdomains to put a bucket in. */
static bool needs_path_style(const char *host, size_t len) {
    char buf[256];
    unsigned char addr[16];
    if (len == 0 || len >= sizeof(buf) || host[0] == '[')
        return true;
    memcpy(buf, host, len);
    buf[len] = '\0';
    return strcasecmp(buf, "localhost") == 0 || inet_pton(AF_INET, buf, addr) == 1;
}

static int s3_check_url(const char *url) {
    rv_url *u = NULL;
    int r = rv_url_parse(url, &u);
    if (r != RV_OK)
        return r;
    /* A bucket, and a key that names one object (a prefix, ending in
     * '/', is a listing: not an object). */
    if (!u->host[0] || strlen(u->path) < 2 || u->path[strlen(u->path) - 1] == '/' || u->query)
        r = RV_E_BAD_URL;
    rv_url_free(u);
    return r;
}

/* The bucket's URL without a trailing '/' (key URLs add "/KEY"), and
 * whether it is virtual-hosted (a listing then asks for "/?..."). NULL
 * *ret: out of memory, or with *bad set, an endpoint that is not http(s). */
static void bucket_url(const char *endpoint, const char *region, bool path_style,
                       const char *bucket, char **ret, bool *virtual, bool *bad) {
    char *url = NULL;
    *bad = false;
    *virtual = false;
    if (endpoint && endpoint[0]) {
        const char *sep = strstr(endpoint, "://");
        size_t elen = strlen(endpoint);
        while (elen > 0 && endpoint[elen - 1] == '/')
            elen--; /* endpoint/bucket, not endpoint//bucket */
        if (!sep || (strncmp(endpoint, "https://", 8) != 0 &&
                     strncmp(endpoint, "http://", 7) != 0)) {
            *bad = true;
            *ret = NULL;
            return;
        }
        const char *host = sep + 3;
        size_t hlen = strcspn(host, ":/");
        if (host[0] == '[')
            hlen = strcspn(host, "]") + 1;
        if (path_style || needs_path_style(host, hlen) || strchr(bucket, '.')) {
            if (asprintf(&url, "%.*s/%s", (int)elen, endpoint, bucket) < 0)
                url = NULL;
        } else {
            *virtual = true;
            if (asprintf(&url, "%.*s%s.%.*s", (int)(host - endpoint), endpoint, bucket,
                         (int)(elen - (size_t)(host - endpoint)), host) < 0)
                url = NULL;
        }
    } else if (path_style || strchr(bucket, '.')) {
        /* A dotted bucket breaks the wildcard certificate as a subdomain. */
        if (asprintf(&url, "https://s3.%s.amazonaws.com/%s", region, bucket) < 0)
            url = NULL;
    } else {
        *virtual = true;
        if (asprintf(&url, "https://%s.s3.%s.amazonaws.com", bucket, region) < 0)
            url = NULL;
    }
    *ret = url;
}

/* Make o's origin_url and sigv4 from its URL and s3 parameters. */
static int s3_prepare(rv_object *o) {
    const char *region = o->s3_region && o->s3_region[0] ? o->s3_region : "us-east-1";
    char *key = canonical_key(o->url->path + 1), *base = NULL, *url = NULL, *sig = NULL;
    bool virtual, bad;
    int r = RV_E_NOMEM;

    if (!key)
        goto out;
    bucket_url(o->s3_endpoint, region, o->s3_path_style, o->url->host, &base, &virtual, &bad);
    if (bad) {
        rv_sink_failed(o, RV_E_BAD_URL, "the S3 endpoint '%s' is not an http(s) URL",
                       o->s3_endpoint);
        r = RV_E_BAD_URL;
        goto out;
    }
    if (!base || asprintf(&url, "%s/%s", base, key) < 0) {
        url = NULL;
        goto out;
    }
    if (o->s3_key_id && o->s3_key_id[0]) {
        if (!o->s3_secret || !o->s3_secret[0]) {
            rv_sink_failed(o, RV_E_INVALID_ARGUMENT,
                           "S3 access key id without its secret access key");
            r = RV_E_INVALID_ARGUMENT;
            goto out;
        }
        if (asprintf(&sig, "aws:amz:%s:s3", region) < 0) {
            sig = NULL;
            goto out;
        }
    }
    free(o->origin_url);
    free(o->sigv4);
    o->origin_url = url;
    o->sigv4 = sig;
    url = sig = NULL;
    o->if_match = true;
    r = RV_OK;
out:
    if (r == RV_E_NOMEM)
        rv_sink_failed(o, r, "out of memory");
    free(key);
    free(base);
    free(url);
    free(sig);
    return r;
}

static int s3_start_range(rv_object *o, rv_chunk *c, bool probe) {
    int r;
    if (!o->origin_url && (r = s3_prepare(o)) != RV_OK)
        return r;
    return rv_http_start_range(o, c, probe);
}

static int s3_revalidate(rv_object *o) {
    int r;
    if (!o->origin_url && (r = s3_prepare(o)) != RV_OK)
        return r;
    return rv_http_revalidate(o);
}

static const char *const s3_schemes[] = {"s3", NULL};

/* The http source frees the idle handles both share (engine_free). */
const rv_source_ops rv_source_s3 = {
    .name = "s3",
    .schemes = s3_schemes,
    .caps = RV_SOURCE_CAP_HOSTS | RV_SOURCE_CAP_RANGES | RV_SOURCE_CAP_VALIDATORS,
    .url_form = "an S3 object URL (s3://bucket/key)",
    .check_url = s3_check_url,
    .start_range = s3_start_range,
    .revalidate = s3_revalidate,
    .stop = rv_http_stop_range,
    .finish = rv_http_finish,
};

/* ----------------------------------------------------------------------- */
/* Listing (rv_s3_list): ListObjectsV2, one blocking request a page.       */

#define LIST_BODY_MAX (16u << 20) /* a page of 1,000 keys is far less */

struct body {
    char *p;
    size_t len;
};

static size_t on_list_body(char *p, size_t size, size_t nmemb, void *ud) {
    struct body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > LIST_BODY_MAX)
        return 0;
    char *q = realloc(b->p, b->len + n + 1);
    if (!q)
        return 0;
    memcpy(q + b->len, p, n);
    b->p = q;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* The x-amz-bucket-region header of a listing's answer (ud: char[64]). */
static size_t on_list_header(char *line, size_t size, size_t nmemb, void *ud) {
    static const char name[] = "x-amz-bucket-region:";
    char *region = ud;
    size_t n = size * nmemb;
    if (n > sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0) {
        const char *v = line + sizeof(name) - 1;
        size_t vlen = n - (sizeof(name) - 1);
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        size_t k = 0;
        for (; k < vlen && k < 63; k++) {
            char c = v[k];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                break;
        }
        if (k == vlen && k < 64) {
            memcpy(region, v, k);
            region[k] = '\0';
        }
    }
    return n;
}

/* Percent-encode s for a signed query: every byte but the unreserved ones
 * (libcurl signs the query as written, so it must be canonical already). */
static char *query_encode(const char *s) {
    static const char digits[] = "0123456789ABCDEF";
    char *out = malloc(3 * strlen(s) + 1), *w = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (unreserved(ch)) {
            *w++ = (char)ch;
        } else {
            *w++ = '%';
            *w++ = digits[ch >> 4];
            *w++ = digits[ch & 15];
        }
    }
    *w = '\0';
    return out;
}

/* XML text (between tags) decoded in place: the five entities and
 * numeric references (as UTF-8). false: a reference it cannot decode. */
static bool xml_decode(char *s) {
    char *w = s;
    while (*s) {
        if (*s != '&') {
            *w++ = *s++;
            continue;
        }
        static const struct {
            const char *name;
            char ch;
        } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++)
            if (strncmp(s, ents[i].name, strlen(ents[i].name)) == 0) {
                *w++ = ents[i].ch;
                s += strlen(ents[i].name);
                done = true;
            }
        if (done)
            continue;
        if (s[1] != '#')
            return false;
        char *end = NULL;
        unsigned long cp = s[2] == 'x' ? strtoul(s + 3, &end, 16) : strtoul(s + 2, &end, 10);
        if (!end || *end != ';' || cp == 0 || cp > 0x10FFFF)
            return false;
        if (cp < 0x80) {
            *w++ = (char)cp;
        } else if (cp < 0x800) {
            *w++ = (char)(0xC0 | (cp >> 6));
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *w++ = (char)(0xE0 | (cp >> 12));
            *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *w++ = (char)(0xF0 | (cp >> 18));
            *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        }
        s = end + 1;
    }
    *w = '\0';
    return true;
}

/* The text of the first <tag> in [p, end), decoded, malloc'd; NULL: none
 * (or no memory: *nomem). */
static char *xml_text(const char *p, const char *end, const char *tag, bool *nomem) {
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(p, open);
    if (!a || a >= end)
        return NULL;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b || b > end)
        return NULL;
    char *t = strndup(a, (size_t)(b - a));
    if (!t) {
        *nomem = true;
        return NULL;
    }
    if (!xml_decode(t)) {
        free(t);
        return NULL;
    }
    return t;
}

static void set_detail(char **ret_detail, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_detail(char **ret_detail, const char *fmt, ...) {
    va_list ap;
    if (!ret_detail || *ret_detail)
        return;
    va_start(ap, fmt);
    if (vasprintf(ret_detail, fmt, ap) < 0)
        *ret_detail = NULL;
    va_end(ap);
}

int rv_s3_list(const char *url, const rv_s3_params *p, rv_s3_list_fn fn, void *ud,
               char **ret_detail) {
    static const rv_s3_params none = {0};
    rv_url *u = NULL;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    struct body body = {0};
    char *base = NULL, *prefix = NULL, *token = NULL, *sig = NULL, *req_url = NULL;
    char *line = NULL;
    bool virtual = false, bad = false;
    int r;

    if (ret_detail)
        *ret_detail = NULL;
    if (!url || !fn)
        return RV_E_INVALID_ARGUMENT;
    if (!p)
        p = &none;
    r = rv_url_parse(url, &u);
    if (r != RV_OK)
        goto out;
    if (strcmp(u->scheme, "s3") != 0 || !u->host[0] || u->query) {
        r = RV_E_BAD_URL;
        goto out;
    }
    char region[64], answered_region[64] = "";
    bool followed = false;
    snprintf(region, sizeof(region), "%s", p->region && p->region[0] ? p->region : "us-east-1");
    r = RV_E_NOMEM;
    char *decoded = canonical_key(u->path + 1); /* canonical, then decoded below */
    if (!decoded)
        goto out;
    /* The prefix as S3 stores keys: the URL's path decoded. */
    {
        char *w = decoded;
        for (const char *s = decoded; *s; s++) {
            if (s[0] == '%' && rv_hex_value(s[1]) >= 0 && rv_hex_value(s[2]) >= 0) {
                *w++ = (char)(rv_hex_value(s[1]) * 16 + rv_hex_value(s[2]));
                s += 2;
            } else {
                *w++ = *s;
            }
        }
        *w = '\0';
    }
    prefix = query_encode(decoded);
    free(decoded);
    if (!prefix)
        goto out;
    bucket_url(p->endpoint_url, region, p->path_style, u->host, &base, &virtual, &bad);
    if (bad) {
        r = RV_E_INVALID_ARGUMENT;
        set_detail(ret_detail, "the S3 endpoint is not an http(s) URL");
        goto out;
    }
    if (!base || !(h = curl_easy_init()))
        goto out;
    bool signed_req = p->access_key_id && p->access_key_id[0];
    if (signed_req) {
        if (!p->secret_access_key || !p->secret_access_key[0]) {
            r = RV_E_INVALID_ARGUMENT;
            set_detail(ret_detail, "S3 access key id without its secret access key");
            goto out;
        }
        if (asprintf(&sig, "aws:amz:%s:s3", region) < 0) {
            sig = NULL;
            goto out;
        }
        struct curl_slist *l = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
        if (!l)
            goto out;
        hdrs = l;
        if (p->session_token && p->session_token[0]) {
            if (asprintf(&line, "x-amz-security-token: %s", p->session_token) < 0) {
                line = NULL;
                goto out;
            }
            if (!(l = curl_slist_append(hdrs, line)))
                goto out;
            hdrs = l;
        }
    }
    for (unsigned page = 0;; page++) {
        answered_region[0] = '\0';
        /* Query parameters in canonical (sorted) order, each encoded. */
        free(req_url);
        if (asprintf(&req_url, "%s%s?%s%s%slist-type=2&prefix=%s", base, virtual ? "/" : "",
                     token ? "continuation-token=" : "", token ? token : "", token ? "&" : "",
                     prefix) < 0) {
            req_url = NULL;
            r = RV_E_NOMEM;
            goto out;
        }
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, req_url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_list_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_list_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, answered_region);
        if (signed_req) {
            curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig);
            curl_easy_setopt(h, CURLOPT_USERNAME, p->access_key_id);
            curl_easy_setopt(h, CURLOPT_PASSWORD, p->secret_access_key);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        }
        free(body.p);
        body = (struct body){0};
        CURLcode cr = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (cr != CURLE_OK) {
            r = RV_E_CONNECT;
            set_detail(ret_detail, "listing '%s': %s", url, curl_easy_strerror(cr));
            goto out;
        }
        if ((status == 301 || status == 400) && answered_region[0] && !followed &&
            strcmp(answered_region, region) != 0) {
            /* The bucket is in another region: ask there, once. */
            followed = true;
            snprintf(region, sizeof(region), "%s", answered_region);
            free(base);
            free(sig);
            base = sig = NULL;
            bucket_url(p->endpoint_url, region, p->path_style, u->host, &base, &virtual, &bad);
            if (!base || (signed_req && asprintf(&sig, "aws:amz:%s:s3", region) < 0)) {
                sig = NULL;
                r = RV_E_NOMEM;
                goto out;
            }
            continue;
        }
        if (status != 200) {
            char code[64];
            bool permanent = true;
            int err = RV_E_HTTP_STATUS;
            const char *text = NULL;
            if (body.p && rv_s3_error_code(body.p, body.len, code, sizeof(code)))
                text = rv_s3_error_text(code, &permanent, &err);
            r = text ? err : status == 404 ? RV_E_NOT_FOUND
                           : status == 403 ? RV_E_ACCESS_DENIED
                                           : RV_E_HTTP_STATUS;
            if (text)
                set_detail(ret_detail, "listing '%s': S3 %s: %s (HTTP %ld)", url, code, text,
                           status);
            else
                set_detail(ret_detail, "listing '%s': HTTP %ld", url, status);
            goto out;
        }
        if (!body.p) {
            r = RV_E_PROTOCOL;
            set_detail(ret_detail, "listing '%s': empty answer", url);
            goto out;
        }
        /* Each <Contents> holds one key and its size. */
        const char *end = body.p + body.len;
        bool nomem = false;
        for (const char *c = strstr(body.p, "<Contents>"); c; c = strstr(c + 10, "<Contents>")) {
            const char *ce = strstr(c, "</Contents>");
            if (!ce) {
                r = RV_E_PROTOCOL;
                goto out;
            }
            char *key = xml_text(c, ce, "Key", &nomem), *size = xml_text(c, ce, "Size", &nomem);
            int fr = RV_E_PROTOCOL;
            if (key)
                fr = fn(ud, key, size ? strtoull(size, NULL, 10) : 0);
            free(key);
            free(size);
            if (nomem) {
                r = RV_E_NOMEM;
                goto out;
            }
            if (fr != RV_OK) {
                r = fr;
                if (fr == RV_E_PROTOCOL)
                    set_detail(ret_detail, "listing '%s': a key S3 sent cannot be read", url);
                goto out;
            }
        }
        char *more = xml_text(body.p, end, "IsTruncated", &nomem);
        bool truncated = more && strcmp(more, "true") == 0;
        free(more);
        free(token);
        token = NULL;
        if (!truncated)
            break;
        char *next = xml_text(body.p, end, "NextContinuationToken", &nomem);
        if (next) {
            token = query_encode(next);
            free(next);
        }
        if (!token) {
            r = nomem ? RV_E_NOMEM : RV_E_PROTOCOL;
            set_detail(ret_detail, "listing '%s': a truncated page without a continuation token",
                       url);
            goto out;
        }
    }
    r = RV_OK;
out:
    if (r == RV_E_NOMEM)
        set_detail(ret_detail, "out of memory");
    if (line) {
        OPENSSL_cleanse(line, strlen(line));
        free(line);
    }
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    rv_url_free(u);
    free(body.p);
    free(base);
    free(prefix);
    free(token);
    free(sig);
    free(req_url);
    return r;
}
