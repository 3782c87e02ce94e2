/* http.c — http(s) transfers on the engine's curl multi handle.
 *
 * Every object starts with a probe: a GET for its first range
 * (Range: bytes=0-<min_chunk_size-1>). Its answer resolves the object —
 * size (Content-Range total or Content-Length), validators (ETag,
 * Last-Modified), whether ranges work (206 or 200) — and already carries the
 * first bytes, so a small object costs one request, not a HEAD and a GET, and
 * an origin that refuses HEAD needs no fallback. docs/engine.md says more.
 *
 * Every later range asks for bytes=pos-(end-1) with If-Range set to a
 * strong validator, so an origin whose object changed answers 200 with the
 * new version instead of 206 with bytes of it; the header callback then
 * refuses the body before a byte of the new version reaches the file.
 * Without a strong validator the range goes without If-Range (an origin
 * answers 200 to an If-Range it cannot trust, which would cost the ranges)
 * and each answer's size and validators are checked instead.
 *
 * Callbacks only record a verdict on the transfer (and abort it by returning
 * a short count); http_finish acts on the verdict once curl is out of its
 * callbacks.
 *
 * The engine calls this source only through its table (rv_source_http, at
 * the end); it reports through the sink (sink.h).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>

#include "crc32c.h"
#include "http.h"
#include "s3err.h"
#include "sink.h"
#include "httphdr.h"
#include "netdeny.h"
#include "socktab.h"

/* libcurl's receive buffer per transfer: large enough that the write
 * callback runs rarely, small enough that memory stays flat (docs/engine.md).
 * libcurl allocates it at each transfer's start: see rv_tune_malloc. */
#define RECV_BUFFER_SIZE (256L << 10)
#define RATE_BUFFER_MIN 1024L /* libcurl's smallest CURLOPT_BUFFERSIZE */

static void xfer_reset(rv_transfer *t) {
    curl_slist_free_all(t->req_headers);
    free(t->resp_etag);
    free(t->resp_last_modified);
    free(t->resp_date);
    free(t->resp_range_raw);
    free(t->detail);
    free(t->errbody);
    free(t->bucket_region);
    CURL *easy = t->easy;
    rv_transfer *next = t->next_free;
    memset(t, 0, sizeof(*t));
    t->easy = easy;
    t->next_free = next;
}

static rv_transfer *xfer_free(rv_transfer *t) {
    if (t) {
        xfer_reset(t);
        if (t->easy)
            curl_easy_cleanup(t->easy);
        free(t);
    }
    return NULL;
}

static void verdict(rv_transfer *t, rv_xfer_verdict v, rv_fault fault, int err, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
static void verdict(rv_transfer *t, rv_xfer_verdict v, rv_fault fault, int err, const char *fmt,
                    ...) {
    va_list ap;
    if (t->verdict != RV_XFER_OK)
        return;
    t->verdict = v;
    t->fault = fault;
    t->err = err;
    va_start(ap, fmt);
    if (vasprintf(&t->detail, fmt, ap) < 0)
        t->detail = NULL;
    va_end(ap);
}

static char *dup_value(const char *v, size_t len) {
    return strndup(v, len);
}

/* Append "name: value" to *list. The value is a validator the origin sent
 * (ETag, Last-Modified), so it is as long as the origin made it: libcurl
 * refuses response header lines over CURL_MAX_HTTP_HEADER (100 KiB), and
 * nothing shorter may cut it here (a cut ETag in If-Range is a value the
 * origin never sent). The line is built on the heap; curl_slist_append
 * copies it. */
static int append_header(struct curl_slist **list, const char *name, const char *value) {
    char *line = NULL;
    int r = RV_E_NOMEM;

    if (asprintf(&line, "%s: %s", name, value) < 0) {
        line = NULL;
        goto out;
    }
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        goto out;
    *list = l;
    r = RV_OK;
out:
    free(line);
    return r;
}

/* Whether the response carries a validator that differs from ours. A
 * weak ETag compares weakly: an origin may send W/"x" while the object is
 * fresh and "x" a second later (Apache does). */
static bool validator_differs(const rv_transfer *t, const rv_object *o) {
    const char *lm = o->last_modified ? o->last_modified : o->weak_last_modified;

    if (t->resp_etag && o->etag && strcmp(t->resp_etag, o->etag) != 0)
        return true;
    if (t->resp_etag && o->weak_etag && !rv_http_etag_weak_equal(t->resp_etag, o->weak_etag))
        return true;
    if (t->resp_last_modified && lm && strcmp(t->resp_last_modified, lm) != 0)
        return true;
    return false;
}

/* Keep the probe's validators, each by its worth (httphdr.h): a strong one
 * goes into If-Range and the store; a weak one only checks later answers;
 * a Last-Modified not before its Date is dropped, as it may move every
 * second on its own (an mtime in the future). */
static void record_validators(rv_transfer *t, rv_object *o) {
    free(o->etag);
    free(o->last_modified);
    free(o->weak_etag);
    free(o->weak_last_modified);
    o->etag = o->last_modified = o->weak_etag = o->weak_last_modified = NULL;
    if (t->resp_etag && !rv_http_etag_is_weak(t->resp_etag))
        o->etag = strdup(t->resp_etag);
    else if (t->resp_etag)
        o->weak_etag = strdup(t->resp_etag);
    switch (rv_http_last_modified_kind(t->resp_last_modified, t->resp_date, time(NULL))) {
    case RV_HTTP_LM_STRONG:
        o->last_modified = strdup(t->resp_last_modified);
        break;
    case RV_HTTP_LM_WEAK:
        o->weak_last_modified = strdup(t->resp_last_modified);
        break;
    case RV_HTTP_LM_NONE:
        break;
    }
    free(o->fetch_url);
    o->fetch_url = NULL;
    char *eff = NULL;
    if (curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff)
        o->fetch_url = strdup(eff);
}

/* The probe's answer: learn the object and plan its ranges. The planned
 * first range replaces the placeholder the probe was filling. */
static bool accept_probe(rv_transfer *t) {
    rv_object *o = t->obj;
    uint64_t size, first_end;

    if (t->status == 206) {
        if (!t->has_range || t->resp_first != 0 || t->resp_total == RV_HTTP_UNKNOWN_TOTAL) {
            verdict(t, RV_XFER_FAIL, RV_FAULT_PERMANENT, RV_E_PROTOCOL,
                    "asked '%s' for its first bytes, origin answered with Content-Range '%s'",
                    o->url_shown, t->resp_range_raw ? t->resp_range_raw : "(none)");
            return false;
        }
        o->ranges = true;
        size = t->resp_total;
        first_end = t->resp_last + 1;
    } else if (t->status == 200) {
        o->ranges = false;
        size = first_end = t->resp_length;
    } else {
        return false;
    }
    record_validators(t, o);
    /* Space first: an object too large for the disk fails before planning.
     * Not for one the probe brings whole: its bytes are already on the way. */
    if (size != RV_UNKNOWN && first_end < size && rv_outfile_preallocate(o, size) != RV_OK)
        return false;
    /* How long the origin took to answer once asked: what each range's
     * request will cost (a digest plans its ranges by it, stage.c). */
    curl_off_t asked = 0, answered = 0;
    curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &asked);
    curl_easy_getinfo(t->easy, CURLINFO_STARTTRANSFER_TIME_T, &answered);
    o->probe_wait_us = answered > asked ? (uint64_t)(answered - asked) : 0;
    if (rv_sink_plan(o, size, first_end) != RV_OK)
        return false;
    t->chunk = &o->chunks[0];
    if (rv_chunk_set_state(o, t->chunk, RV_CHUNK_ACTIVE) != RV_OK)
        return false;
    t->chunk->xfer = t;
    rv_sink_planned(o);
    rv_sink_resolved(o);
    return true;
}

/* A later range's answer: refuse anything that is not exactly our bytes. */
static bool accept_range(rv_transfer *t) {
    rv_object *o = t->obj;
    rv_chunk *c = t->chunk;

    if (t->status == 200) {
        bool differs = validator_differs(t, o) ||
                       (o->size != RV_UNKNOWN && t->resp_length != RV_UNKNOWN &&
                        t->resp_length != o->size);
        if (differs)
            verdict(t, RV_XFER_CHANGED, RV_FAULT_NONE, RV_E_CHANGED,
                    "origin sent a different version of '%s' (validator or size changed)",
                    o->url_shown);
        else if (o->ranges)
            verdict(t, RV_XFER_NORANGES, RV_FAULT_NONE, RV_OK,
                    "origin ignored a range request for '%s'", o->url_shown);
        return !o->ranges && !differs && c->pos == 0; /* a single stream's retry */
    }
    if (!o->ranges) {
        verdict(t, RV_XFER_FAIL, RV_FAULT_PERMANENT, RV_E_PROTOCOL,
                "origin answered a plain request for '%s' with %ld", o->url_shown, t->status);
        return false;
    }
    if (!t->has_range || t->resp_first != c->pos || t->resp_last >= c->end) {
        verdict(t, RV_XFER_FAIL, RV_FAULT_PERMANENT, RV_E_PROTOCOL,
                "asked '%s' for bytes %llu-%llu, origin answered with Content-Range '%s'",
                o->url_shown, (unsigned long long)c->pos, (unsigned long long)(c->end - 1),
                t->resp_range_raw ? t->resp_range_raw : "(none)");
        return false;
    }
    if (t->resp_total != o->size || validator_differs(t, o)) {
        verdict(t, RV_XFER_CHANGED, RV_FAULT_NONE, RV_E_CHANGED,
                "'%s' changed on the origin (size %llu, was %llu)", o->url_shown,
                (unsigned long long)t->resp_total, (unsigned long long)o->size);
        return false;
    }
    return true;
}

/* A cached object's revalidation: 304, or any answer carrying the same
 * validator, says the cached copy is current; another validator says the
 * object changed. No body is kept either way. */
static bool accept_revalidation(rv_transfer *t) {
    rv_object *o = t->obj;
    int err = RV_OK;
    bool same = (t->resp_etag && o->etag && strcmp(t->resp_etag, o->etag) == 0) ||
                (!o->etag && t->resp_last_modified && o->last_modified &&
                 strcmp(t->resp_last_modified, o->last_modified) == 0);

    if (t->status == 304 || ((t->status == 200 || t->status == 206) && same))
        verdict(t, RV_XFER_FRESH, RV_FAULT_NONE, RV_OK, "cached copy is current");
    else if (t->status == 200 || t->status == 206)
        verdict(t, RV_XFER_CHANGED, RV_FAULT_NONE, RV_E_CHANGED,
                "'%s' changed on the origin since it was cached", o->url_shown);
    else {
        rv_fault f = rv_retry_classify_http(t->status, &err);
        verdict(t, f == RV_FAULT_PERMANENT ? RV_XFER_FAIL : RV_XFER_RETRY, f, err,
                "HTTP %ld from '%s' when revalidating its cached copy", t->status, o->url_shown);
    }
    return false;
}

/* End of a header block: decide whether the body is ours. */
static bool accept_headers(rv_transfer *t) {
    rv_object *o = t->obj;
    int err = RV_OK;

    if (t->status >= 100 && t->status < 200)
        return true; /* interim response; the real one follows */
    if (t->revalidate && t->status != 301 && t->status != 302 && t->status != 303 &&
        t->status != 307 && t->status != 308)
        return accept_revalidation(t);
    if (t->status >= 300 && t->status < 400)
        return true; /* curl follows the redirect; its body is discarded */
    if (t->status == 200 || t->status == 206) {
        bool ok = t->probe ? accept_probe(t) : accept_range(t);
        if (!ok && t->verdict == RV_XFER_OK && o->err == RV_OK)
            verdict(t, RV_XFER_FAIL, RV_FAULT_PERMANENT, RV_E_PROTOCOL,
                    "unexpected answer %ld from '%s'", t->status, o->url_shown);
        t->body_ok = ok;
        return ok;
    }
    if (t->status == 416) {
        if (t->probe && (!t->has_range || t->resp_total == 0)) {
            verdict(t, RV_XFER_DONE_EMPTY, RV_FAULT_NONE, RV_OK, "empty object");
            return false;
        }
        verdict(t, RV_XFER_CHANGED, RV_FAULT_NONE, RV_E_CHANGED,
                "origin says the range of '%s' is no longer satisfiable (object shrank?)",
                o->url_shown);
        return false;
    }
    if (t->status == 412) {
        verdict(t, RV_XFER_CHANGED, RV_FAULT_NONE, RV_E_CHANGED,
                "'%s' no longer matches its validator", o->url_shown);
        return false;
    }
    rv_fault f = rv_retry_classify_http(t->status, &err);
    verdict(t, f == RV_FAULT_PERMANENT ? RV_XFER_FAIL : RV_XFER_RETRY, f, err,
            "HTTP %ld from '%s'", t->status, o->url_shown);
    /* S3 names the error in the body's XML: read it (s3_error judges it
     * once the transfer ends); the verdict stands if it says nothing. */
    return o->s3 && t->status >= 400;
}

/* An s3 object asked of the wrong region: S3 answers 301 (path style) or
 * 400 (a signature scoped to another region) naming the bucket's region in
 * x-amz-bucket-region. Follow it once: the s3 source makes the URL and
 * signature anew for that region at the range's next start. Whether it
 * did. */
static bool follow_region(rv_transfer *t) {
    rv_object *o = t->obj;
    const char *now = o->s3_region && o->s3_region[0] ? o->s3_region : "us-east-1";
    char *region = NULL;

    if (!o->s3 || !t->bucket_region || o->s3_region_followed ||
        (t->status != 301 && t->status != 400) || strcmp(t->bucket_region, now) == 0)
        return false;
    for (const char *p = t->bucket_region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false; /* not a region name: the answer decides as it is */
    if (!(region = strdup(t->bucket_region)))
        return false;
    /* Written before the old region, which now may point into, is freed. */
    char reason[160];
    snprintf(reason, sizeof(reason), "S3: the bucket is in region %s, not %s", region, now);
    free(o->s3_region);
    o->s3_region = region;
    free(o->origin_url);
    free(o->sigv4);
    o->origin_url = o->sigv4 = NULL;
    o->s3_region_followed = true;
    rv_sink_retry(o, t->chunk, RV_E_HTTP_STATUS, t->status, RV_FAULT_TRANSIENT, 0, reason);
    return true;
}

#define S3_ERRBODY_MAX 4096

/* An s3 object's error answer: its <Code> decides the verdict and the
 * message (AccessDenied, NoSuchKey... at once; SlowDown, InternalError
 * retried). */
static void s3_error(rv_transfer *t) {
    rv_object *o = t->obj;
    char code[64];
    bool permanent = false;
    int err = RV_OK;
    const char *text;

    if (!t->errbody || !rv_s3_error_code(t->errbody, t->errbody_len, code, sizeof(code)) ||
        !(text = rv_s3_error_text(code, &permanent, &err)))
        return;
    t->verdict = permanent ? RV_XFER_FAIL : RV_XFER_RETRY;
    t->fault = permanent ? RV_FAULT_PERMANENT : t->fault;
    t->err = err;
    free(t->detail);
    if (asprintf(&t->detail, "S3 %s: %s (HTTP %ld from '%s')", code, text, t->status,
                 o->url_shown) < 0)
        t->detail = NULL;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud) {
    rv_transfer *t = ud;
    size_t len = size * nmemb;
    const char *name, *value;
    size_t nlen, vlen;
    long status;

    if (rv_http_parse_status(line, len, &status)) {
        /* The answer's first bytes are in: acknowledge them now. Sending a
         * request right after the last answer puts the socket in Linux's
         * "ping-pong" mode, where ACKs wait up to 40 ms for data to ride
         * on. An origin whose answer leaves in two segments (nginx with
         * sendfile: 15 pages, then the last one, held by Nagle until the
         * first is acknowledged) then sat idle for those 40 ms; 1000 files
         * of 64 KiB had a few such stalls in every run. */
        if (t->sock >= 0)
            (void)setsockopt(t->sock, IPPROTO_TCP, TCP_QUICKACK, &(int){1}, sizeof(int));
        /* A new header block (after a redirect or an interim answer). */
        t->status = status;
        t->has_range = false;
        t->resp_length = RV_UNKNOWN;
        t->retry_after_ms = RV_UNKNOWN;
        free(t->resp_etag);
        free(t->resp_last_modified);
        free(t->resp_date);
        free(t->resp_range_raw);
        t->resp_etag = t->resp_last_modified = t->resp_date = t->resp_range_raw = NULL;
        free(t->bucket_region);
        t->bucket_region = NULL;
        return len;
    }
    if (len <= 2 && (line[0] == '\r' || line[0] == '\n'))
        return accept_headers(t) ? len : 0;
    if (!rv_http_header_split(line, len, &name, &nlen, &value, &vlen))
        return len;
    if (rv_http_name_is(name, nlen, "content-range")) {
        free(t->resp_range_raw);
        t->resp_range_raw = dup_value(value, vlen < 128 ? vlen : 128);
        t->has_range = rv_http_parse_content_range(value, vlen, &t->resp_first, &t->resp_last,
                                                   &t->resp_total);
    } else if (rv_http_name_is(name, nlen, "content-length")) {
        if (!rv_http_parse_u64(value, vlen, &t->resp_length))
            t->resp_length = RV_UNKNOWN;
    } else if (rv_http_name_is(name, nlen, "etag")) {
        free(t->resp_etag);
        t->resp_etag = dup_value(value, vlen);
    } else if (rv_http_name_is(name, nlen, "last-modified")) {
        free(t->resp_last_modified);
        t->resp_last_modified = dup_value(value, vlen);
    } else if (rv_http_name_is(name, nlen, "content-disposition")) {
        /* The first answer with content that names the object names it
         * (a redirect's or an error's header says nothing about it). */
        rv_object *o = t->obj;
        if (o->name_from_disposition && !o->disposition_name && t->status >= 200 &&
            t->status < 300)
            o->disposition_name = rv_http_disposition_filename(value, vlen);
    } else if (rv_http_name_is(name, nlen, "date")) {
        free(t->resp_date);
        t->resp_date = dup_value(value, vlen);
    } else if (rv_http_name_is(name, nlen, "x-amz-bucket-region") && t->obj->s3) {
        free(t->bucket_region);
        t->bucket_region = dup_value(value, vlen < 64 ? vlen : 64);
    } else if (rv_http_name_is(name, nlen, "retry-after")) {
        if (!rv_http_parse_retry_after(value, vlen, time(NULL), &t->retry_after_ms))
            t->retry_after_ms = RV_UNKNOWN;
    }
    return len;
}

/* The connection is chosen (new or reused): note its socket. */
static int on_prereq(void *ud, char *remote_ip, char *local_ip, int remote_port, int local_port) {
    rv_transfer *t = ud;

    (void)local_ip;
    t->sock = rv_socktab_find(t->obj->engine->socks, remote_ip, remote_port, local_port);
    return CURL_PREREQFUNC_OK;
}

/* deny_networks: libcurl asks for every socket it connects, with the
 * address it is about to connect to (after DNS, each address it tries,
 * each connection after a redirect), so the check sees what is really
 * connected, whatever a name resolved to. A refused address is remembered
 * for the message; libcurl goes on to the next address, if any. */
static curl_socket_t on_opensocket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr) {
    rv_transfer *t = ud;

    if (purpose == CURLSOCKTYPE_IPCXN && rv_netdeny_match(t->obj->engine->deny, &addr->addr)) {
        const void *a = addr->family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)&addr->addr)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)&addr->addr)->sin_addr;
        if (!inet_ntop(addr->family, a, t->denied, sizeof(t->denied)))
            snprintf(t->denied, sizeof(t->denied), "a denied address");
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    rv_transfer *t = ud;
    rv_object *o = t->obj;
    rv_chunk *c = t->chunk;
    size_t n = size * nmemb;

    if (o->err != RV_OK || rv_state_is_terminal(o->state))
        return 0;
    if (!t->body_ok) {
        /* An s3 error answer's XML (accept_headers), else a redirect's or
         * interim answer's body. */
        if (o->s3 && t->status >= 400 && t->errbody_len < S3_ERRBODY_MAX) {
            size_t take = n < S3_ERRBODY_MAX - t->errbody_len ? n : S3_ERRBODY_MAX - t->errbody_len;
            char *b = realloc(t->errbody, t->errbody_len + take);
            if (!b)
                return 0;
            memcpy(b + t->errbody_len, p, take);
            t->errbody = b;
            t->errbody_len += take;
        }
        return n;
    }
    if (c->end != RV_UNKNOWN && n > c->end - c->pos) {
        verdict(t, RV_XFER_FAIL, RV_FAULT_PERMANENT, RV_E_PROTOCOL,
                "origin sent more bytes than asked for '%s' (range ends at %llu)", o->url_shown,
                (unsigned long long)c->end);
        return 0;
    }
    if (rv_stage_wanted(o)) {
        if (rv_stage_hold_back(t, n)) {
            t->paused = true; /* libcurl hands these bytes again once resumed */
            return CURL_WRITEFUNC_PAUSE;
        }
        if (rv_stage_body(t, (const unsigned char *)p, n) != RV_OK)
            return 0;
    } else {
        if (rv_outfile_write(o, p, n, c->pos) != RV_OK)
            return 0;
        if (o->store_id)
            c->written_crc = rv_crc32c(c->written_crc, p, n);
    }
    rv_sink_landed(o, c, n);
    return n;
}

static int xfer_get(rv_engine *e, rv_transfer **ret) {
    rv_transfer *t = e->free_xfers;
    if (t) {
        e->free_xfers = t->next_free;
        t->next_free = NULL;
        curl_easy_reset(t->easy);
    } else {
        t = calloc(1, sizeof(*t));
        if (!t)
            return RV_E_NOMEM;
        t->easy = curl_easy_init();
        if (!t->easy) {
            free(t);
            return RV_E_NOMEM;
        }
    }
    *ret = t;
    return RV_OK;
}

static void xfer_put(rv_engine *e, rv_transfer *t) {
    xfer_reset(t);
    t->next_free = e->free_xfers;
    e->free_xfers = t;
}

/* rv_request.max_bytes_per_sec is the object's, not a transfer's: each
 * running transfer gets an equal share, recomputed whenever one starts or
 * ends (libcurl reads the cap at every wake-up, so a running transfer
 * takes its new share at once). The shares sum to at most the cap. */
static void rate_share(rv_object *o) {
    if (!o->max_bytes_per_sec)
        return;
    curl_off_t share = (curl_off_t)(o->max_bytes_per_sec / (o->active ? o->active : 1));
    for (size_t i = 0; i < o->n_chunks; i++) {
        rv_transfer *t = o->chunks[i].xfer;
        if (t && t->obj == o)
            curl_easy_setopt(t->easy, CURLOPT_MAX_RECV_SPEED_LARGE, share ? share : 1);
    }
}

/* Whether a transfer asks for HTTP/2 (docs/engine.md, "HTTP version").
 * Parallel ranges of one big object go over HTTP/1.1 under AUTO: each on
 * its own TCP connection, they get a congestion window and a server-side
 * per-connection limit each, where h2 would put them all behind one. A
 * request that fetches a whole object in one (the probe; a small object is
 * done with it) gains from h2: many of them share one TLS connection. Only
 * https: h2 without TLS (h2c) is not offered by the servers that matter. */
/* What a transfer asks for: after the probe, where its redirects led;
 * else the URL the object's source made (s3.c), else the object's own. */
static const char *request_url(const rv_object *o, bool probe) {
    if (o->fetch_url && !probe)
        return o->fetch_url;
    return o->origin_url ? o->origin_url : o->url->normalised;
}

static bool want_h2(rv_http2_mode mode, const rv_object *o, bool probe) {
    const char *url = request_url(o, probe);
    if (mode == RV_HTTP2_NEVER || strncmp(url, "https://", 8) != 0)
        return false;
    return mode == RV_HTTP2_ALWAYS || probe || !o->ranges;
}

/* The If-Range of a later range, or NULL for a plain range: only a strong
 * validator (RFC 9110 section 13.1.5). With a weak one an origin must
 * treat If-Range as not matching and answers 200 to every range (Apache
 * does, for a file changed under a second ago or with an mtime in the
 * future); the answers' size and validators are checked instead
 * (accept_range). If-Match and If-Unmodified-Since are not sent in its
 * place: If-Match takes only a strong ETag (then If-Range has it), and a
 * Last-Modified not before its Date, compared by an origin that clamps a
 * future mtime to its clock, would fail ranges of an unchanged object.
 * A resumed object (durable.c) has only strong validators: weak ones are
 * never stored, so the same rule holds after a restart. */
static const char *if_range_value(const rv_object *o) {
    return o->etag ? o->etag : o->last_modified;
}

int rv_http_start_range(rv_object *o, rv_chunk *c, bool probe) {
    rv_engine *e = o->engine;
    const rv_config *cfg = &e->cfg;
    rv_transfer *t = NULL;
    char range[64];
    int r = xfer_get(e, &t);

    if (r != RV_OK) {
        rv_sink_failed(o, r, "out of memory starting a transfer");
        return r;
    }
    t->obj = o;
    t->chunk = c;
    t->probe = probe;
    t->paused = false;
    t->resp_length = RV_UNKNOWN;
    t->retry_after_ms = RV_UNKNOWN;
    t->started_pos = c->pos;
    t->sock = -1;
    t->denied[0] = '\0';

    for (struct curl_slist *h = o->user_headers; h; h = h->next) {
        struct curl_slist *l = curl_slist_append(t->req_headers, h->data);
        if (!l)
            goto nomem;
        t->req_headers = l;
    }
    if (!probe && o->ranges && o->if_match && o->etag) {
        if (append_header(&t->req_headers, "If-Match", o->etag) != RV_OK)
            goto nomem;
    } else if (!probe && o->ranges && if_range_value(o) &&
               append_header(&t->req_headers, "If-Range", if_range_value(o)) != RV_OK) {
        goto nomem;
    }
    /* SigV4 (s3.c): libcurl signs each request, but 7.88 neither adds the
     * payload's hash header S3 requires nor a session token; both go in
     * as headers, which libcurl then signs with the rest. The key pair
     * goes to libcurl only, never into a URL or a message. */
    if (o->sigv4 &&
        (append_header(&t->req_headers, "x-amz-content-sha256", "UNSIGNED-PAYLOAD") != RV_OK ||
         (o->s3_token &&
          append_header(&t->req_headers, "x-amz-security-token", o->s3_token) != RV_OK)))
        goto nomem;

    CURL *h = t->easy;
    curl_easy_setopt(h, CURLOPT_URL, request_url(o, probe));
    if (o->sigv4) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, o->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, o->s3_key_id);
        curl_easy_setopt(h, CURLOPT_PASSWORD, o->s3_secret);
    }
    curl_easy_setopt(h, CURLOPT_PRIVATE, t);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Not for a signed s3 request: libcurl would send its session token
     * header on to wherever a Location points (S3 itself names a wrong
     * region in a header instead: follow_region). */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, o->sigv4 ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)cfg->max_redirects);
    if (want_h2(cfg->http2, o, probe)) {
        /* h2 if the origin offers it in ALPN, else 1.1. PIPEWAIT: a transfer
         * starting while the host's first connection is still in its TLS
         * handshake waits to learn whether it multiplexes, instead of
         * opening a connection of its own. */
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, RECV_BUFFER_SIZE);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    /* Stalled: fewer than 1 byte/s for the whole stall window. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)((o->stall_timeout_ms + 999) / 1000));
    curl_easy_setopt(h, CURLOPT_USERAGENT, e->user_agent);
    if (rv_cacerts_set(e, o, h) != RV_OK)
        goto nomem;
    /* NULL leaves libcurl's default (the environment's proxy variables);
     * a daemon passes "" for callers who asked for no proxy. */
    if (o->proxy)
        curl_easy_setopt(h, CURLOPT_PROXY, o->proxy);
    if (o->noproxy)
        curl_easy_setopt(h, CURLOPT_NOPROXY, o->noproxy);
    if (o->max_bytes_per_sec) {
        /* libcurl looks at the cap between wake-ups, but one wake-up reads
         * the socket until it is empty, up to 100 buffers: with a large
         * buffer on a fast path a whole range arrives before the cap is
         * looked at, and every new transfer starts with such a burst. A
         * buffer of a thousandth of the smallest share keeps a burst
         * within a tenth of a second's worth. */
        long buf = (long)(o->max_bytes_per_sec / o->max_conns / 1000);
        buf = buf < RATE_BUFFER_MIN ? RATE_BUFFER_MIN : buf > RECV_BUFFER_SIZE ? RECV_BUFFER_SIZE : buf;
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, buf);
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
    rv_socktab_attach(e->socks, h);
    if (e->deny) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, t);
    }
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    if (t->req_headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->req_headers);
    if (probe) {
        snprintf(range, sizeof(range), "0-%llu", (unsigned long long)(cfg->min_chunk_size - 1));
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    } else if (o->ranges) {
        snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)c->pos,
                 (unsigned long long)(c->end - 1));
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    if (curl_multi_add_handle(e->multi, h) != CURLM_OK)
        goto nomem;
    /* A revalidation borrows its DONE range: the bytes stay done. */
    if (c->state != RV_CHUNK_DONE && rv_chunk_set_state(o, c, RV_CHUNK_ACTIVE) != RV_OK) {
        curl_multi_remove_handle(e->multi, h);
        xfer_put(e, t);
        return RV_E_INTERNAL;
    }
    c->xfer = t;
    o->active++;
    e->active++;
    rate_share(o);
    rv_hostlimit_started(o->host);
    return RV_OK;
nomem:
    xfer_put(e, t);
    rv_sink_failed(o, RV_E_NOMEM, "out of memory starting a transfer");
    return RV_E_NOMEM;
}

static void http_stop(rv_engine *e, rv_transfer *t);

int rv_http_revalidate(rv_object *o) {
    rv_engine *e = o->engine;
    int r = rv_http_start_range(o, &o->chunks[0], true);
    if (r != RV_OK)
        return r;
    rv_transfer *t = o->chunks[0].xfer;
    t->probe = false;
    t->revalidate = true;
    curl_easy_setopt(t->easy, CURLOPT_RANGE, "0-0");
    if (append_header(&t->req_headers, o->etag ? "If-None-Match" : "If-Modified-Since",
                      o->etag ? o->etag : o->last_modified ? o->last_modified : "") != RV_OK) {
        http_stop(e, t);
        rv_sink_failed(o, RV_E_NOMEM, "out of memory");
        return RV_E_NOMEM;
    }
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->req_headers);
    return RV_OK;
}

/* Take t off the multi handle and its chunk; the chunk keeps its bytes. */
static void xfer_detach(rv_engine *e, rv_transfer *t) {
    rv_object *o = t->obj;
    curl_multi_remove_handle(e->multi, t->easy);
    rv_stage_flush(t);
    if (t->chunk && t->chunk->xfer == t) {
        t->chunk->xfer = NULL;
        if (t->chunk->state == RV_CHUNK_ACTIVE)
            rv_chunk_set_state(o, t->chunk, RV_CHUNK_TODO);
    }
    o->active--;
    e->active--;
    rv_hostlimit_finished(o->host);
    rate_share(o);
}

static void http_stop(rv_engine *e, rv_transfer *t) {
    xfer_detach(e, t);
    xfer_put(e, t);
}

/* Whether t moved its range forward for good. A single stream (no ranges)
 * starts over from byte 0 on a retry, so its progress does not count: an
 * origin that cuts every response short must still run out of attempts. */
static bool kept_progress(const rv_transfer *t) {
    return t->obj->ranges && t->chunk->pos > t->started_pos;
}

/* A transfer ended without a verdict: judge it by curl's result. */
static void finish_plain(rv_engine *e, rv_transfer *t, CURLcode res) {
    rv_object *o = t->obj;
    rv_chunk *c = t->chunk;
    int err = RV_OK;
    char reason[512];

    if (res == CURLE_OK && !t->body_ok) {
        /* Ended on a status the header callback let through (a redirect
         * without Location, an interim answer as the last one). */
        rv_fault f = rv_retry_classify_http(t->status, &err);
        if (f == RV_FAULT_NONE)
            f = RV_FAULT_PERMANENT, err = RV_E_PROTOCOL;
        snprintf(reason, sizeof(reason), "HTTP %ld from '%s'", t->status, o->url_shown);
        if (f == RV_FAULT_PERMANENT)
            rv_sink_failed(o, err, "%s", reason);
        else
            rv_sink_retry(o, c, err, t->status, f, t->retry_after_ms, reason);
        return;
    }
    if (res == CURLE_OK) {
        if (c->end == RV_UNKNOWN) {
            c->end = c->pos; /* a stream of unknown size ended cleanly */
            o->size = c->pos;
        }
        if (c->pos == c->end) {
            rv_sink_range_done(o, c);
            if (o->host)
                rv_hostlimit_on_success(o->host, rv_now_ms());
            return;
        }
        /* The origin sent less than asked, and said so: ask for the rest. */
        if (kept_progress(t)) {
            c->failures = 0;
            c->due_ms = 0;
            return;
        }
        rv_sink_retry(o, c, RV_E_TRUNCATED, t->status, RV_FAULT_TRANSIENT, RV_UNKNOWN,
                      "origin sent an empty range");
        return;
    }
    rv_fault f = rv_retry_classify_curl((int)res, &err);
    /* libcurl's words name the host and, for some errors, a URL or a
     * piece of one (a redirect's target): scrubbed against every URL of
     * the object before they are shown. */
    const char *urls[] = {o->url_in, o->fetch_url};
    char *said = NULL;
    if (rv_url_scrub(t->errbuf[0] ? t->errbuf : curl_easy_strerror(res), urls, 2, &said) != RV_OK)
        said = NULL;
    snprintf(reason, sizeof(reason), "%s from '%s'", said ? said : curl_easy_strerror(res),
             o->url_shown);
    free(said);
    if (f == RV_FAULT_PERMANENT) {
        rv_sink_failed(o, err, "%s", reason);
        return;
    }
    if (kept_progress(t))
        c->failures = 0; /* progress was made: this is a fresh run of failures */
    rv_sink_retry(o, c, err, 0, f, RV_UNKNOWN, reason);
}

void rv_http_finish(rv_engine *e, CURLMsg *msg) {
    rv_transfer *t = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    rv_object *o = t->obj;
    rv_chunk *c = t->chunk;
    CURLcode res = msg->data.result;

    xfer_detach(e, t);
    if (o->err != RV_OK || rv_state_is_terminal(o->state))
        goto out;
    if (res == CURLE_COULDNT_CONNECT && t->denied[0])
        verdict(t, RV_XFER_FAIL, RV_FAULT_PERMANENT, RV_E_CONNECT,
                "connection to %s refused by deny-networks (config)", t->denied);
    if (follow_region(t))
        goto out;
    if (t->errbody)
        s3_error(t);
    switch (t->verdict) {
    case RV_XFER_OK:
        finish_plain(e, t, res);
        break;
    case RV_XFER_RETRY:
        if (kept_progress(t))
            c->failures = 0;
        rv_sink_retry(o, c, t->err, t->status, t->fault, t->retry_after_ms,
                      t->detail ? t->detail : "transient failure");
        break;
    case RV_XFER_FAIL:
        rv_sink_failed(o, t->err, "%s", t->detail ? t->detail : rv_strerror(t->err));
        break;
    case RV_XFER_CHANGED:
        rv_sink_changed(o, t->detail ? t->detail : "object changed");
        break;
    case RV_XFER_NORANGES:
        rv_sink_single_stream(o);
        break;
    case RV_XFER_FRESH:
        o->revalidating = false;
        rv_sink_resolved(o);
        break;
    case RV_XFER_DONE_EMPTY:
        if (rv_sink_plan(o, 0, 0) == RV_OK) {
            rv_chunk_set_state(o, &o->chunks[0], RV_CHUNK_DONE);
            rv_sink_resolved(o);
        }
        break;
    }
out:
    xfer_put(e, t);
}

void rv_http_stop_range(rv_object *o, rv_chunk *c) {
    http_stop(o->engine, c->xfer);
}

/* The idle handles go with the engine. */
static void http_engine_free(rv_engine *e) {
    while (e->free_xfers) {
        rv_transfer *t = e->free_xfers;
        e->free_xfers = t->next_free;
        xfer_free(t);
    }
}

static const char *const http_schemes[] = {"http", "https", NULL};

const rv_source_ops rv_source_http = {
    .name = "http",
    .schemes = http_schemes,
    .caps = RV_SOURCE_CAP_HOSTS | RV_SOURCE_CAP_RANGES | RV_SOURCE_CAP_VALIDATORS,
    .start_range = rv_http_start_range,
    .revalidate = rv_http_revalidate,
    .stop = rv_http_stop_range,
    .finish = rv_http_finish,
    .engine_free = http_engine_free,
};
