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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "sink.h"
#include "url.h"

static bool unreserved(unsigned char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)(ch | 0x20);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
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
        if (ch == '%' && i + 2 < n && hexval(path[i + 1]) >= 0 && hexval(path[i + 2]) >= 0) {
            ch = (unsigned char)(hexval(path[i + 1]) * 16 + hexval(path[i + 2]));
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

/* Make o's origin_url and sigv4 from its URL and s3 parameters. */
static int s3_prepare(rv_object *o) {
    const char *region = o->s3_region && o->s3_region[0] ? o->s3_region : "us-east-1";
    const char *bucket = o->url->host;
    char *key = canonical_key(o->url->path + 1), *url = NULL, *sig = NULL;
    int r = RV_E_NOMEM;

    if (!key)
        goto out;
    if (o->s3_endpoint && o->s3_endpoint[0]) {
        const char *ep = o->s3_endpoint;
        const char *sep = strstr(ep, "://");
        size_t elen = strlen(ep);
        while (elen > 0 && ep[elen - 1] == '/')
            elen--; /* endpoint/bucket, not endpoint//bucket */
        if (!sep || (strncmp(ep, "https://", 8) != 0 && strncmp(ep, "http://", 7) != 0)) {
            rv_sink_failed(o, RV_E_BAD_URL, "the S3 endpoint '%s' is not an http(s) URL", ep);
            r = RV_E_BAD_URL;
            goto out;
        }
        const char *host = sep + 3;
        size_t hlen = strcspn(host, ":/");
        if (host[0] == '[')
            hlen = strcspn(host, "]") + 1;
        if (o->s3_path_style || needs_path_style(host, hlen) || strchr(bucket, '.')) {
            if (asprintf(&url, "%.*s/%s/%s", (int)elen, ep, bucket, key) < 0)
                url = NULL;
        } else if (asprintf(&url, "%.*s%s.%.*s/%s", (int)(host - ep), ep, bucket,
                            (int)(elen - (size_t)(host - ep)), host, key) < 0) {
            url = NULL;
        }
    } else if (o->s3_path_style || strchr(bucket, '.')) {
        /* A dotted bucket breaks the wildcard certificate as a subdomain. */
        if (asprintf(&url, "https://s3.%s.amazonaws.com/%s/%s", region, bucket, key) < 0)
            url = NULL;
    } else if (asprintf(&url, "https://%s.s3.%s.amazonaws.com/%s", bucket, region, key) < 0) {
        url = NULL;
    }
    if (!url)
        goto out;
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
