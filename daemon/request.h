/* request.h — decoding and validating request messages (the only place).
 *
 * Every request the daemon receives goes through one function here before
 * anything else sees it: the bytes are decoded (protobuf-c), every field is
 * checked against the limits below, and what passes comes out as plain C
 * structs with no protobuf types, already normalised. Anything that fails
 * is -EINVAL with a sentence that names the field and its index
 * ("sources[3].headers[0]: ..."), which the server returns as
 * INVALID_ARGUMENT; nothing else has happened by then, so bad input changes
 * nothing.
 *
 * Conventions: functions return 0, -EINVAL (then *ret_error, when ret_error
 * is not NULL, is a malloc'd sentence the caller frees) or -ENOMEM. Output
 * parameters are written only on success; on failure nothing is left
 * allocated. Error sentences never quote a URL, a header value or any
 * other field that may carry a credential: they name the field.
 *
 * Tests: tests/daemon/test_request.c; fuzzers: tests/fuzz/ (docs/testing.md).
 */
#ifndef RVD_REQUEST_H
#define RVD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The limits (docs/api.md, "Limits", lists the same numbers). */
#define RVD_REQ_MAX_BYTES (4u << 20)    /* one encoded request message (gRPC's
                                           default receive limit) */
#define RVD_REQ_SOURCES_MAX 1000        /* sources per Download */
#define RVD_REQ_URL_MAX 8192            /* bytes of a URL (the engine's limit) */
#define RVD_REQ_DEST_MAX 4096           /* bytes of a destination (PATH_MAX) */
#define RVD_REQ_HEADERS_MAX 100         /* headers per source (the engine's) */
#define RVD_REQ_HEADER_MAX 8192         /* bytes of one "Name: value" line */
#define RVD_REQ_CONNECTIONS_MAX 64      /* DownloadRequest.connections */
#define RVD_REQ_ATTEMPTS_MAX 101        /* DownloadRequest.max_attempts (retrieverctl's
                                           --retries 100, plus the first try) */
#define RVD_REQ_TIMEOUT_MS_MAX 86400000u /* the *_ms transfer settings: a day */
#define RVD_REQ_RATE_MIN 1024u          /* DownloadRequest.max_bytes_per_sec, when set */
#define RVD_REQ_RATE_MAX (1ull << 50)
#define RVD_REQ_PROXY_MAX 4096          /* http_proxy, https_proxy, no_proxy */
#define RVD_REQ_LIST_DEFAULT 100        /* ListRequest.limit 0 */
#define RVD_REQ_LIST_MAX 10000          /* larger limits are lowered to this */

#define RVD_JOB_ID_LEN 32 /* lower-case hex digits of 128 random bits */

/* One source of a Download, validated. All strings are owned by the
 * request and freed with it. */
typedef struct rvd_source {
    char *url;         /* as given: what the engine fetches */
    char *url_key;     /* rv_url_normalize(url): the dedupe key's URL part */
    char *url_display; /* rv_url_redact(url): the only form to log or show */
    char *destination; /* absolute, as given; NULL when none (Read only) */
    char *sha256;      /* 64 lower-case hex digits, or NULL */
    char **headers;    /* n_headers "Name: value" lines, in the order given,
                          each passing rv_header_allowed(); NULL when none */
    size_t n_headers;
    bool name_from_disposition; /* Source.name_from_disposition: the engine
                                   names the file from the answer's
                                   Content-Disposition in destination's
                                   directory (rv_request's) */
    char headers_digest[65]; /* lower-case hex sha256 over the header lines
                                in order, each followed by "\n"; "" when
                                there are none. The credential part of the
                                dedupe key: compare it, never the lines. */
} rvd_source;

typedef struct rvd_download_req {
    rvd_source *sources; /* 1..RVD_REQ_SOURCES_MAX, no two with one
                            destination */
    size_t n_sources;
    int32_t priority;     /* higher first; any value */
    bool detach;
    uint32_t connections; /* per object, 0..RVD_REQ_CONNECTIONS_MAX;
                             0: the daemon's default */
    bool batch_events;    /* this caller's stream may batch events; not
                             part of the job (dedupe ignores it) */
    bool digest;          /* compute every object's sha256 (as rv_request.digest) */
    bool link;            /* deliver by hard link to the cache where possible */
    bool copy;            /* never hard-link, whatever the daemon's default;
                             never set together with link */
    unsigned mode;        /* each delivered file's permission bits: 0666 less
                             the caller's umask, or 0600 when it sent none */
    /* Transfer settings (rv_request's); 0 / NULL: the daemon's own. */
    char *ca_file;        /* absolute path of the caller's CA file (opened as
                             the caller when the job starts: jobs.c), or NULL */
    bool ca_only;         /* its certificates replace the daemon's store; only
                             with ca_file */
    uint32_t max_attempts; /* 0..RVD_REQ_ATTEMPTS_MAX */
    uint32_t connect_timeout_ms, stall_timeout_ms, connect_retry_ms; /* each at most
                             RVD_REQ_TIMEOUT_MS_MAX */
    bool no_replace;      /* refuse at submission when a destination exists */
    uint64_t max_bytes_per_sec; /* 0, or RVD_REQ_RATE_MIN..RVD_REQ_RATE_MAX */
    /* Proxies (secrets: may carry user:password): NULL for none. */
    char *http_proxy, *https_proxy, *no_proxy;
    char proxy_digest[65]; /* sha256 of the three (for the dedupe key), hex */
    /* S3 (DownloadRequest.s3): has_s3 false without one. The secret and
     * token are secrets: never stored (rvd_request_stored drops them),
     * never shown, zeroed when freed. */
    bool has_s3, s3_path_style;
    char *s3_endpoint, *s3_region, *s3_key_id, *s3_secret, *s3_token;
    char s3_digest[65];   /* HMAC (a key of this process) of endpoint, region,
                             style and access key id, hex; "" without s3 */
} rvd_download_req;

/* DownloadRequest. On success *ret is the caller's; free it with
 * rvd_download_req_free. */
int rvd_request_download(const uint8_t *buf, size_t len, rvd_download_req **ret,
                         char **ret_error);

/* NULL is fine. Returns NULL. */
rvd_download_req *rvd_download_req_free(rvd_download_req *r);

/* What of a DownloadRequest (buf, len: as received) may be kept once its
 * job has ended: the same message with every source's headers removed and
 * its URL as rv_url_redact shows it (no userinfo, query values hidden), so
 * no credential outlives the job that needed it (docs/security.md,
 * Secrets). 0 and *ret (malloc'd, *ret_len bytes), or -EINVAL for a
 * message that does not decode, -ENOMEM. */
int rvd_request_scrub(const uint8_t *buf, size_t len, uint8_t **ret, size_t *ret_len);

/* What of a DownloadRequest (buf, len: as received) goes into the job
 * store while its job lives: the same message without the S3 credentials
 * (access key id, secret, session token), which stay in the daemon's
 * memory only (a job restored after a restart runs without them). 0 and
 * *ret (malloc'd, *ret_len bytes), -EINVAL, -ENOMEM. */
int rvd_request_unsecret(const uint8_t *buf, size_t len, uint8_t **ret, size_t *ret_len);

/* The requests that carry only `string job_id = 1`. */
typedef enum rvd_id_request {
    RVD_REQ_STATUS,
    RVD_REQ_CANCEL,
} rvd_id_request;

/* StatusRequest or CancelRequest (which one: kind). A job id
 * is exactly RVD_JOB_ID_LEN lower-case hex digits; on success it is copied
 * to ret_id, NUL-terminated. */
int rvd_request_job_id(rvd_id_request kind, const uint8_t *buf, size_t len,
                       char ret_id[RVD_JOB_ID_LEN + 1], char **ret_error);

typedef struct rvd_watch_req {
    char job_id[RVD_JOB_ID_LEN + 1];
    bool batch_events; /* as rvd_download_req's */
} rvd_watch_req;

/* WatchRequest; its job id as rvd_request_job_id's. */
int rvd_request_watch(const uint8_t *buf, size_t len, rvd_watch_req *ret, char **ret_error);

typedef struct rvd_read_req {
    char job_id[RVD_JOB_ID_LEN + 1];
    uint32_t object_index; /* < RVD_REQ_SOURCES_MAX; whether the job has it
                              is the job table's question */
    uint64_t offset;       /* <= INT64_MAX (an off_t) */
} rvd_read_req;

/* ReadRequest. */
int rvd_request_read(const uint8_t *buf, size_t len, rvd_read_req *ret, char **ret_error);

/* Bits of rvd_list_req.states: 1 << the proto's JobState number. */
#define RVD_LIST_QUEUED (1u << 1)
#define RVD_LIST_RUNNING (1u << 2)
#define RVD_LIST_DONE (1u << 3)
#define RVD_LIST_FAILED (1u << 4)
#define RVD_LIST_CANCELLED (1u << 5)

typedef struct rvd_list_req {
    uint32_t states; /* RVD_LIST_* bits; 0: every state */
    uint32_t limit;  /* 1..RVD_REQ_LIST_MAX: 0 became RVD_REQ_LIST_DEFAULT,
                        larger values RVD_REQ_LIST_MAX */
} rvd_list_req;

/* ListRequest. A state that is not one of the five (UNSPECIFIED, or a
 * number this version does not know) is -EINVAL. */
int rvd_request_list(const uint8_t *buf, size_t len, rvd_list_req *ret, char **ret_error);

/* The requests with no fields. */
typedef enum rvd_empty_request {
    RVD_REQ_STATS,
    RVD_REQ_PING,
    RVD_REQ_CACHE_LIST,
    RVD_REQ_CACHE_VERIFY,
} rvd_empty_request;

/* StatsRequest, PingRequest, CacheListRequest or CacheVerifyRequest:
 * checks that buf decodes as one. */
int rvd_request_empty(rvd_empty_request kind, const uint8_t *buf, size_t len,
                      char **ret_error);

/* CacheRemoveRequest: either all, or 1..RVD_REQ_SOURCES_MAX URLs of at
 * most RVD_REQ_URL_MAX bytes each (not both, not neither). */
typedef struct rvd_cache_remove_req {
    bool all;
    char **urls; /* n_urls malloc'd strings; free with rvd_cache_remove_req_clear */
    size_t n_urls;
} rvd_cache_remove_req;
int rvd_request_cache_remove(const uint8_t *buf, size_t len, rvd_cache_remove_req *ret,
                             char **ret_error);
void rvd_cache_remove_req_clear(rvd_cache_remove_req *r);

#endif
