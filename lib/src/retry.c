/* retry.c — which failures are worth another attempt, and how long to wait.
 *
 * Sections: HTTP status classification; libcurl result classification;
 * the PRNG; backoff and wait.
 */
#include "retry.h"

#include <curl/curl.h>
#include <stddef.h>

#include "rv_error.h"

static rv_fault classified(rv_fault f, int err, int *ret_err) {
    if (ret_err)
        *ret_err = err;
    return f;
}

/* ---- HTTP status ----
 *
 *   status                 fault       error
 *   2xx                    NONE        RV_OK
 *   408, 425 (Too Early:   TRANSIENT   RV_E_TIMEOUT
 *   the same request later
 *   is what it asks for)
 *   429, 503               THROTTLE    RV_E_THROTTLED
 *   404, 410               PERMANENT   RV_E_NOT_FOUND
 *   401, 403, 407          PERMANENT   RV_E_ACCESS_DENIED
 *   other 4xx (e.g. 416)   PERMANENT   RV_E_HTTP_STATUS
 *   500, 502, 504, other   TRANSIENT   RV_E_SERVER_ERROR
 *   5xx
 *   1xx, 3xx (a redirect   PERMANENT   RV_E_PROTOCOL
 *   or interim answer as
 *   the final status),
 *   < 100, >= 600
 */
rv_fault rv_retry_classify_http(long status, int *ret_err) {
    switch (status) {
    case 408:
    case 425:
        return classified(RV_FAULT_TRANSIENT, RV_E_TIMEOUT, ret_err);
    case 429:
    case 503:
        return classified(RV_FAULT_THROTTLE, RV_E_THROTTLED, ret_err);
    case 404:
    case 410:
        return classified(RV_FAULT_PERMANENT, RV_E_NOT_FOUND, ret_err);
    case 401:
    case 403:
    case 407:
        return classified(RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED, ret_err);
    default:
        break;
    }
    if (status >= 200 && status <= 299)
        return classified(RV_FAULT_NONE, RV_OK, ret_err);
    if (status >= 400 && status <= 499)
        return classified(RV_FAULT_PERMANENT, RV_E_HTTP_STATUS, ret_err);
    if (status >= 500 && status <= 599)
        return classified(RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR, ret_err);
    return classified(RV_FAULT_PERMANENT, RV_E_PROTOCOL, ret_err);
}

/* ---- libcurl result codes ----
 *
 * Every CURLcode of libcurl 7.88 is listed by family. Codes not listed
 * (the OBSOLETE ones, codes added after 7.88, garbage) are PERMANENT
 * RV_E_INTERNAL: an unknown failure should surface at once, not be retried
 * blindly. "Never" below means the engine does not use the feature (no
 * uploads, no FTP/TFTP/LDAP/RTSP/SSH sources, no easy send/recv); should one
 * appear anyway it fails the object rather than looping.
 *
 *   family                          codes                           fault / error
 *   success                         OK                              NONE       RV_OK
 *   name resolution (the resolver   COULDNT_RESOLVE_HOST, _PROXY    PERMANENT  RESOLVE_HOST
 *   answered, or gave up after its
 *   own retries: another attempt
 *   seconds later gets the same)
 *   connection refused or           COULDNT_CONNECT,                REFUSED    CONNECT
 *   unreachable (bounded in time)   QUIC_CONNECT_ERROR
 *   connecting                      PROXY
 *                                   (proxy handshake), INTERFACE_
 *                                   FAILED (local interface may come
 *                                   up), NO_CONNECTION_AVAILABLE,
 *                                   FTP_ACCEPT_FAILED
 *   timeouts                        OPERATION_TIMEDOUT,             TRANSIENT  TIMEOUT
 *                                   FTP_ACCEPT_TIMEOUT
 *   reset / closed mid-transfer     PARTIAL_FILE, RECV_ERROR,       TRANSIENT  TRUNCATED
 *                                   SEND_ERROR, GOT_NOTHING, HTTP2,
 *                                   HTTP2_STREAM, HTTP3
 *   garbled reply (may be a         WEIRD_SERVER_REPLY              TRANSIENT  PROTOCOL
 *   middlebox or a glitch)
 *   TLS                             SSL_CONNECT_ERROR,              PERMANENT  TLS
 *                                   PEER_FAILED_VERIFICATION,
 *                                   SSL_CERTPROBLEM, SSL_CIPHER,
 *                                   SSL_CACERT_BADFILE, SSL_CRL_
 *                                   BADFILE, SSL_ISSUER_ERROR,
 *                                   SSL_PINNEDPUBKEYNOTMATCH,
 *                                   SSL_INVALIDCERTSTATUS, SSL_
 *                                   CLIENTCERT, SSL_ENGINE_NOTFOUND,
 *                                   _SETFAILED, _INITFAILED,
 *                                   SSL_SHUTDOWN_FAILED, USE_SSL_FAILED
 *   the URL                         URL_MALFORMAT                   PERMANENT  BAD_URL
 *                                   UNSUPPORTED_PROTOCOL            PERMANENT  UNSUPPORTED_SCHEME
 *   redirects                       TOO_MANY_REDIRECTS              PERMANENT  TOO_MANY_REDIRECTS
 *   memory                          OUT_OF_MEMORY                   PERMANENT  NOMEM
 *   origin says no such object      REMOTE_FILE_NOT_FOUND,          PERMANENT  NOT_FOUND
 *                                   FILE_COULDNT_READ_FILE (file://
 *                                   open failed), FTP_COULDNT_RETR_
 *                                   FILE, TFTP_NOTFOUND
 *   origin refuses us               REMOTE_ACCESS_DENIED,           PERMANENT  ACCESS_DENIED
 *                                   LOGIN_DENIED, AUTH_ERROR,
 *                                   TFTP_PERM, TFTP_NOSUCHUSER,
 *                                   LDAP_CANNOT_BIND
 *   origin cannot serve the range   RANGE_ERROR, BAD_DOWNLOAD_      PERMANENT  PROTOCOL
 *                                   RESUME
 *   deterministic protocol errors   BAD_CONTENT_ENCODING, CHUNK_    PERMANENT  PROTOCOL
 *                                   FAILED, SSH, QUOTE_ERROR,
 *                                   FTP_WEIRD_PASS_REPLY, _PASV_
 *                                   REPLY, _227_FORMAT, FTP_CANT_
 *                                   GET_HOST, FTP_COULDNT_SET_TYPE,
 *                                   FTP_PORT_FAILED, FTP_COULDNT_
 *                                   USE_REST, FTP_PRET_FAILED,
 *                                   FTP_BAD_FILE_LIST, TFTP_ILLEGAL,
 *                                   TFTP_UNKNOWNID, RTSP_CSEQ_ERROR,
 *                                   RTSP_SESSION_ERROR,
 *                                   LDAP_SEARCH_FAILED
 *   status with FAILONERROR (the    HTTP_RETURNED_ERROR             PERMANENT  HTTP_STATUS
 *   engine classifies the status
 *   itself; this is a fallback)
 *   size limit                      FILESIZE_EXCEEDED               PERMANENT  TOO_LARGE
 *   our own abort (the engine       WRITE_ERROR,                    PERMANENT  INTERNAL
 *   records its reason first)       ABORTED_BY_CALLBACK
 *   misuse of libcurl or uploads    FAILED_INIT, NOT_BUILT_IN,      PERMANENT  INTERNAL
 *   (never)                         FUNCTION_NOT_FOUND, BAD_
 *                                   FUNCTION_ARGUMENT, UNKNOWN_
 *                                   OPTION, SETOPT_OPTION_SYNTAX,
 *                                   RECURSIVE_API_CALL, AGAIN,
 *                                   UNRECOVERABLE_POLL, READ_ERROR,
 *                                   UPLOAD_FAILED, SEND_FAIL_REWIND,
 *                                   HTTP_POST_ERROR, REMOTE_DISK_
 *                                   FULL, REMOTE_FILE_EXISTS
 *   anything else                                                   PERMANENT  INTERNAL
 */
rv_fault rv_retry_classify_curl(int curl_code, int *ret_err) {
    switch (curl_code) {
    case CURLE_OK:
        return classified(RV_FAULT_NONE, RV_OK, ret_err);

    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return classified(RV_FAULT_PERMANENT, RV_E_RESOLVE_HOST, ret_err);

    case CURLE_COULDNT_CONNECT:
    case CURLE_QUIC_CONNECT_ERROR:
        return classified(RV_FAULT_REFUSED, RV_E_CONNECT, ret_err);

    case CURLE_PROXY:
    case CURLE_INTERFACE_FAILED:
    case CURLE_NO_CONNECTION_AVAILABLE:
    case CURLE_FTP_ACCEPT_FAILED:
        return classified(RV_FAULT_TRANSIENT, RV_E_CONNECT, ret_err);

    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_FTP_ACCEPT_TIMEOUT:
        return classified(RV_FAULT_TRANSIENT, RV_E_TIMEOUT, ret_err);

    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
        return classified(RV_FAULT_TRANSIENT, RV_E_TRUNCATED, ret_err);

    case CURLE_WEIRD_SERVER_REPLY:
        return classified(RV_FAULT_TRANSIENT, RV_E_PROTOCOL, ret_err);

    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return classified(RV_FAULT_PERMANENT, RV_E_TLS, ret_err);

    case CURLE_URL_MALFORMAT:
        return classified(RV_FAULT_PERMANENT, RV_E_BAD_URL, ret_err);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return classified(RV_FAULT_PERMANENT, RV_E_UNSUPPORTED_SCHEME, ret_err);
    case CURLE_TOO_MANY_REDIRECTS:
        return classified(RV_FAULT_PERMANENT, RV_E_TOO_MANY_REDIRECTS, ret_err);
    case CURLE_OUT_OF_MEMORY:
        return classified(RV_FAULT_PERMANENT, RV_E_NOMEM, ret_err);

    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_FTP_COULDNT_RETR_FILE:
    case CURLE_TFTP_NOTFOUND:
        return classified(RV_FAULT_PERMANENT, RV_E_NOT_FOUND, ret_err);

    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
    case CURLE_TFTP_PERM:
    case CURLE_TFTP_NOSUCHUSER:
    case CURLE_LDAP_CANNOT_BIND:
        return classified(RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED, ret_err);

    case CURLE_RANGE_ERROR:
    case CURLE_BAD_DOWNLOAD_RESUME:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_CHUNK_FAILED:
    case CURLE_SSH:
    case CURLE_QUOTE_ERROR:
    case CURLE_FTP_WEIRD_PASS_REPLY:
    case CURLE_FTP_WEIRD_PASV_REPLY:
    case CURLE_FTP_WEIRD_227_FORMAT:
    case CURLE_FTP_CANT_GET_HOST:
    case CURLE_FTP_COULDNT_SET_TYPE:
    case CURLE_FTP_PORT_FAILED:
    case CURLE_FTP_COULDNT_USE_REST:
    case CURLE_FTP_PRET_FAILED:
    case CURLE_FTP_BAD_FILE_LIST:
    case CURLE_TFTP_ILLEGAL:
    case CURLE_TFTP_UNKNOWNID:
    case CURLE_RTSP_CSEQ_ERROR:
    case CURLE_RTSP_SESSION_ERROR:
    case CURLE_LDAP_SEARCH_FAILED:
        return classified(RV_FAULT_PERMANENT, RV_E_PROTOCOL, ret_err);

    case CURLE_HTTP_RETURNED_ERROR:
        return classified(RV_FAULT_PERMANENT, RV_E_HTTP_STATUS, ret_err);
    case CURLE_FILESIZE_EXCEEDED:
        return classified(RV_FAULT_PERMANENT, RV_E_TOO_LARGE, ret_err);

    default: /* WRITE_ERROR, ABORTED_BY_CALLBACK, misuse, unknown: see table */
        return classified(RV_FAULT_PERMANENT, RV_E_INTERNAL, ret_err);
    }
}

/* ---- the PRNG: splitmix64 (Steele, Lea, Flood 2014) ---- */

void rv_rng_seed(rv_rng *r, uint64_t seed) {
    r->state = seed;
}

uint64_t rv_rng_next(rv_rng *r) {
    uint64_t z = (r->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Rejection sampling, so every value in [0, bound] is equally likely: draws
 * below 2^64 mod n would make the low residues one more likely than the
 * rest; they are redrawn (with probability < 1/2 each time). */
uint64_t rv_rng_uniform(rv_rng *r, uint64_t bound) {
    if (bound == UINT64_MAX)
        return rv_rng_next(r);
    uint64_t n = bound + 1;
    uint64_t threshold = (0 - n) % n; /* 2^64 mod n */
    uint64_t x;
    do
        x = rv_rng_next(r);
    while (x < threshold);
    return x % n;
}

/* ---- backoff and wait ---- */

/* min(max_ms, base_ms * 2^(attempt-1)) without ever forming a product that
 * overflows: base << s <= max exactly when base <= max >> s. */
static uint64_t backoff_bound(unsigned attempt, uint64_t base_ms, uint64_t max_ms) {
    unsigned shift = attempt > 0 ? attempt - 1 : 0; /* attempt 0 is treated as 1 */
    if (base_ms == 0)
        return 0;
    if (shift >= 64 || base_ms > (max_ms >> shift))
        return max_ms;
    return base_ms << shift;
}

uint64_t rv_retry_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, rv_rng *rng) {
    return rv_rng_uniform(rng, backoff_bound(attempt, base_ms, max_ms));
}

uint64_t rv_retry_wait_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms,
                          uint64_t retry_after_ms, uint64_t cap_ms, rv_rng *rng,
                          int *ret_too_long) {
    int too_long = 0;
    uint64_t wait;
    if (retry_after_ms != UINT64_MAX) {
        wait = retry_after_ms;
        too_long = retry_after_ms > cap_ms;
    } else {
        wait = rv_retry_backoff_ms(attempt, base_ms, max_ms, rng);
    }
    if (ret_too_long)
        *ret_too_long = too_long;
    return wait;
}
