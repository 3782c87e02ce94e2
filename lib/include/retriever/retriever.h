/* retriever.h — public API of libretriever, the download engine.
 *
 * The engine downloads objects (http://, https://, file://) to files with
 * parallel ranged requests driven by one libcurl multi loop, retries
 * transient failures, never mixes two versions of an object, verifies size
 * and (optionally) sha256, and delivers each file atomically by renaming a
 * temporary file into place.
 *
 * Threading: an engine and its objects belong to the thread that calls
 * rv_engine_perform(). Every function here must be called on that thread,
 * except rv_engine_wakeup(), which any thread may call. Hooks run on the
 * engine thread from inside rv_engine_perform() and must not block; they may
 * call rv_engine_cancel() and the rv_object_* getters, and nothing else.
 *
 * Ownership: strings passed in are copied; the caller keeps its own. Strings
 * returned by getters are owned by the object and stay valid until the object
 * is released (rv_engine_release) or the engine is freed.
 */
#ifndef RETRIEVER_H
#define RETRIEVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rv_engine rv_engine;
typedef struct rv_object rv_object;

/* Object lifecycle. Every transition goes through one function in the
 * engine; terminal states (DONE, FAILED, CANCELLED) are final.
 *
 *   state        what holds
 *   QUEUED       accepted; nothing created on disk yet
 *   RESOLVING    temporary file exists; first request in flight to learn
 *                size, validator and range support
 *   DOWNLOADING  size known (or streaming an unknown size); transfers run
 *   VERIFYING    all bytes written; size and digest being checked
 *   DONE         file renamed into place under its final name; digest known
 *   FAILED       temporary file removed; final name untouched
 *   CANCELLED    as FAILED, by the caller's request
 */
typedef enum rv_state {
    RV_STATE_QUEUED = 0,
    RV_STATE_RESOLVING,
    RV_STATE_DOWNLOADING,
    RV_STATE_VERIFYING,
    RV_STATE_DONE,
    RV_STATE_FAILED,
    RV_STATE_CANCELLED,
} rv_state;

const char *rv_state_name(rv_state s); /* "queued", "done", ...; static */
bool rv_state_is_terminal(rv_state s);

/* What to do when the origin's object changes during a download (its
 * validator no longer matches). Either way the old bytes are never mixed with
 * the new: RESTART discards them and starts over (bounded number of times),
 * FAIL fails the object with RV_E_CHANGED. */
typedef enum rv_change_policy {
    RV_CHANGE_RESTART = 0,
    RV_CHANGE_FAIL,
} rv_change_policy;

typedef struct rv_progress {
    uint64_t bytes_done;  /* bytes written and accounted, including resumed */
    uint64_t bytes_total; /* 0 when total_known is false */
    bool total_known;
    double rate_bps;      /* recent rate, bytes per second */
} rv_progress;

typedef struct rv_retry_info {
    uint64_t offset;      /* where the retried range resumes */
    unsigned attempt;     /* 1 for the first retry */
    int error;            /* rv_error of the failure being retried */
    long http_status;     /* 0 when the failure was not an HTTP status */
    uint64_t wait_ms;     /* delay before the retry starts */
    const char *reason;   /* human-readable; valid during the call only */
} rv_retry_info;

/* Which HTTP version an https transfer asks for (ALPN; an origin that does
 * not offer h2 gets HTTP/1.1 either way; plain http is always 1.1).
 * docs/engine.md, "HTTP version", gives the rule and the measurements. */
typedef enum rv_http2_mode {
    RV_HTTP2_AUTO = 0, /* h2 for a request that fetches a whole object (the
                          probe: small objects, and a big object's first
                          range); 1.1 for the parallel ranges of a split one */
    RV_HTTP2_NEVER,    /* HTTP/1.1 only */
    RV_HTTP2_ALWAYS,   /* h2 for every https request, ranges too */
} rv_http2_mode;

/* Hooks: stateless callbacks run on the engine thread. Any may be NULL. */
typedef struct rv_hooks {
    void (*on_state)(void *ud, rv_object *obj, rv_state state);
    void (*on_progress)(void *ud, rv_object *obj, const rv_progress *p);
    void (*on_chunk_done)(void *ud, rv_object *obj, uint64_t offset, uint64_t length);
    void (*on_retry)(void *ud, rv_object *obj, const rv_retry_info *r);
    /* Something the owner should log that is not any object's failure:
     * recovery at start (a corrupt database moved aside, orphan files
     * removed). msg is valid during the call only. */
    void (*on_notice)(void *ud, const char *msg);
    /* Optional: rv_engine_perform is about to wait (for the network, a
     * timer or rv_engine_wakeup). An owner that holds back what the other
     * hooks told it, to pass it on in batches, passes it on now. */
    void (*on_wait)(void *ud);
    /* Optional: an object of a request with name_from_disposition is about
     * to be delivered under the server's name path (not its dest_path), a
     * name that exists, and the request allows replacing it (no_replace
     * false). False keeps the file: the object fails (RV_E_DEST_EXISTS). A
     * daemon that writes for someone else checks here that its caller may
     * replace that file. Without the hook it is replaced. */
    bool (*may_replace)(void *ud, rv_object *obj, const char *path);
} rv_hooks;

typedef struct rv_config {
    unsigned max_connections;            /* all objects together */
    unsigned max_connections_per_host;   /* per scheme://host:port */
    unsigned max_connections_per_object;
    unsigned max_connections_per_group;  /* 0 (default): no limit. Else the
                                            connections the objects of one group
                                            (rv_request.group) hold at once, in all,
                                            and on one host the same fraction of
                                            max_connections_per_host (its current
                                            limit), rounded up. Waiting objects of
                                            the group holding the fewest are served
                                            first; running transfers are never cut
                                            (docs/engine.md, "Groups") */
    uint64_t chunk_size;                 /* bytes; largest range per request */
    uint64_t min_chunk_size;             /* smallest range worth its own request */
    unsigned max_attempts;               /* per range, first try included */
    unsigned backoff_base_ms;            /* full jitter: U(0, min(max, base*2^n)) */
    unsigned backoff_max_ms;
    unsigned retry_after_cap_ms;         /* longer Retry-After fails the object */
    unsigned stall_timeout_ms;           /* no bytes for this long: retry */
    unsigned connect_timeout_ms;
    unsigned connect_retry_ms;           /* a refused connection (nobody listens:
                                            a server restarting) is retried, with
                                            backoff, for at most this long from the
                                            first refusal in a row, then the object
                                            fails naming the address; 0: not
                                            retried. Within max_attempts too */
    unsigned max_redirects;
    rv_http2_mode http2;                 /* default RV_HTTP2_AUTO. h2 streams count
                                            as connections in every limit above
                                            (per host, object, group, in all):
                                            a limit bounds requests in flight */
    unsigned max_restarts;               /* RV_CHANGE_RESTART bound per object */
    rv_change_policy on_change;
    unsigned progress_interval_ms;       /* minimum gap between progress hooks, and from
                                            an object's start to its first */
    bool compute_sha256;                 /* digest every object (always done when a
                                            request carries sha256_hex) */
    const char *user_agent;              /* copied; NULL for the default */
    const char *ca_file;                 /* copied; PEM CA certificates that https
                                            origins must chain to, replacing the
                                            system's store; NULL: the system's.
                                            Verification is off only for a request
                                            that sets insecure. A request's
                                            ca_pem adds to this store (or replaces
                                            it, with ca_only) */
    const char *deny_networks;           /* copied; NULL or "": none. Destination
                                            networks never connected to, "10.0.0.0/8,
                                            ::1/128" (CIDR, IPv4 and IPv6, commas or
                                            blanks between): checked on the address of
                                            every connection, after DNS and after
                                            redirects; a refused one fails the object
                                            (RV_E_CONNECT, not retried). A bad list:
                                            rv_engine_open says RV_E_INVALID_ARGUMENT
                                            (see rv_check_networks) */

    /* Durable state (docs/state.md). With state_dir NULL the engine keeps
     * nothing between runs and writes each download next to its
     * destination. With it, partial downloads live as blobs in cache_dir,
     * their durable ranges are recorded in state_dir's database, and an
     * interrupted download resumes where its durable ranges end. The engine
     * owns both directories while it lives (one owner at a time). */
    const char *state_dir;               /* copied; NULL: no state */
    const char *cache_dir;               /* copied; NULL: <state_dir>/cache */
    uint64_t flush_bytes;                /* sync an object after this many new bytes */
    unsigned flush_interval_ms;          /* ... or after this long with new bytes */
    uint64_t cache_quota;                /* bytes of cache kept; least recently used
                                            objects go first, finished ones before
                                            unfinished (kept to resume), never one in
                                            use or pinned; 0: no limit */
    bool cache_revalidate;               /* a cache hit first asks the origin (one
                                            conditional request, no body) whether the
                                            object changed; false trusts the cache */
    bool link_deliveries;                /* deliver every object from the cache by hard
                                            link where possible (as rv_request.link);
                                            default false: a reflink or a copy */
    const rv_hooks *hooks;               /* copied */
    void *hooks_ud;
} rv_config;

/* Fill *cfg with the defaults (see docs/engine.md for why each is what it
 * is). Callers change fields after this, never build an rv_config from
 * scratch, so new fields get sane defaults. rv_engine_new refuses zero
 * limits, zero attempts, and min_chunk_size > chunk_size. */
void rv_config_init(rv_config *cfg);

/* The library's version, "MAJOR.MINOR.PATCH"; static. */
const char *rv_version(void);

/* Check a list for rv_config.deny_networks. RV_OK, or RV_E_INVALID_ARGUMENT
 * with *ret_detail (when not NULL) a malloc'd sentence quoting the bad
 * entry, or RV_E_NOMEM. */
int rv_check_networks(const char *list, char **ret_detail);

/* Bytes, with an optional K, M, G or T suffix (powers of 1024): "4M". */
int rv_parse_size(const char *s, uint64_t *ret);

/* How an s3:// URL is fetched (rv_request.s3; lib/src/s3.c, docs/sources.md).
 * Every string is optional and copied. */
typedef struct rv_s3_params {
    const char *endpoint_url;  /* "https://host[:port]" (or http://): a custom
                                  endpoint; NULL: AWS's for region */
    const char *region;        /* signing region (and AWS's endpoint); NULL:
                                  us-east-1 */
    bool path_style;           /* endpoint/bucket/key rather than
                                  bucket.endpoint/key (always for an endpoint
                                  that is an IP address or localhost) */
    const char *access_key_id; /* NULL: anonymous (no signature) */
    const char *secret_access_key; /* with access_key_id */
    const char *session_token; /* optional: temporary credentials */
} rv_s3_params;

typedef struct rv_request {
    const char *url;           /* required */
    const char *dest_path;     /* required: the final file name */
    const char *sha256_hex;    /* optional: 64 hex digits (either case) to verify the
                                  delivered bytes against; a cache hit that does not
                                  match is fetched again once before it fails */
    const char *const *headers;/* optional: "Name: value" lines sent on every request;
                                  each must pass rv_header_allowed() */
    size_t n_headers;
    void *user_data;           /* returned by rv_object_user_data */
    uint64_t group;            /* opaque tag; 0: none. Objects with one tag share
                                  cfg.max_connections_per_group (a daemon tags
                                  each caller's uid); untagged ones are limited
                                  by the other limits only */
    unsigned connections;      /* at most this many at once for this object;
                                  0 (or more than the config's): the config's
                                  max_connections_per_object */
    bool copy;                 /* deliver a private copy even where link or
                                  cfg.link_deliveries would hard-link the
                                  cache's blob (the file is to change owner) */
    bool digest;               /* compute the sha256 of the delivered bytes
                                  (rv_object_sha256_hex) without one to verify
                                  against; implied by sha256_hex and
                                  cfg.compute_sha256 */
    bool link;                 /* with durable state: deliver by hard link to
                                  the cache's blob where possible (no copy, no
                                  space used; the file is read-only and shares
                                  the blob's inode, so it must never be
                                  modified in place). Default: a reflink where
                                  the file system shares extents, else a copy */
    bool has_mode;             /* the delivered file gets exactly mode's bits */
    unsigned mode;             /* with has_mode: the permission bits (at most
                                  0777) of the delivered file, set while it has
                                  no name or only its hidden one and never wider
                                  before (a daemon applies its caller's umask
                                  this way, not through its own). Without:
                                  0666 less the process's umask, as any new
                                  file. A hard link (link) is the blob's inode
                                  and keeps the blob's mode, 0400, either way */
    const char *ca_pem;        /* optional, copied: PEM CA certificates (the text
                                  of a CA file, NUL-terminated, at most
                                  RV_CA_PEM_MAX bytes, at least one "BEGIN
                                  CERTIFICATE") that https origins of this object
                                  may also chain to: added to the engine's store
                                  (cfg.ca_file, else the system's). Objects with
                                  different CA sets never share connections, TLS
                                  sessions or cached bytes */
    bool ca_only;              /* with ca_pem: ca_pem replaces the engine's store
                                  for this object instead of adding to it */
    bool insecure;             /* https without certificate verification (anyone
                                  on the path may change the bytes). For a user
                                  who spelled it out (retrieverctl --local
                                  --insecure); never for a daemon's callers. Its
                                  bytes are cached apart: a verified request
                                  never gets them */
    unsigned max_attempts;     /* per range, first try included; 0: the config's */
    unsigned connect_timeout_ms; /* 0: the config's */
    unsigned stall_timeout_ms; /* 0: the config's */
    unsigned connect_retry_ms; /* 0: the config's (to never retry a refused
                                  connection, set max_attempts to 1) */
    uint64_t max_bytes_per_sec; /* 0: no cap. The object's download rate, all its
                                  connections together, stays at or under this
                                  (averaged by libcurl over a few seconds; http
                                  and https): each running connection gets an
                                  equal share, recomputed as connections start
                                  and end; the object's connection limit is
                                  lowered so that a share is at least
                                  RV_RATE_SHARE_MIN. file:// is not capped */
    const char *proxy;         /* optional, copied: NULL: libcurl's default, the
                                  process's environment (http_proxy, HTTPS_PROXY,
                                  ALL_PROXY, ...); "": no proxy, whatever the
                                  environment says; else the proxy's URL (libcurl's
                                  CURLOPT_PROXY: http://, https://, socks5h://...;
                                  user:password@ allowed). A proxy with credentials
                                  keeps the object's cached bytes apart */
    bool name_from_disposition; /* dest_path's directory holds the file, named
                                  as the origin's Content-Disposition says
                                  (filename*= in UTF-8, else filename=) when
                                  an answer carries one, after
                                  rv_filename_sanitize's rules (no '/' or '\\',
                                  no leading dots, no control characters, cut
                                  to the directory's NAME_MAX); else (no such
                                  header, nothing usable left, a cache hit
                                  delivered without asking the origin, another
                                  live object writing that name) dest_path
                                  itself. rv_object_path is the final path
                                  from delivery on */
    bool no_replace;           /* the delivery never replaces a file at the
                                  final path: the object fails with
                                  RV_E_DEST_EXISTS instead (checked when the
                                  name is chosen, and by the delivery's link
                                  or rename itself, so a file that appears
                                  in between is kept too) */
    const char *noproxy;       /* optional, copied: NULL: the environment's
                                  no_proxy/NO_PROXY; else CURLOPT_NOPROXY's list
                                  (hosts or domains, comma-separated; "*": all;
                                  "": none, whatever the environment says) */
    const rv_s3_params *s3;    /* optional, copied: for an s3:// URL, where and
                                  as whom (NULL: AWS us-east-1, anonymous).
                                  The endpoint, region, style and access key
                                  id go into the object's cache key (as a
                                  keyed digest), never the secret */
} rv_request;

/* The smallest per-connection share of rv_request.max_bytes_per_sec: a cap
 * below (connections x this) uses fewer connections. */
#define RV_RATE_SHARE_MIN (64u * 1024u)

/* The largest rv_request.ca_pem accepted (a system bundle is ~220 KiB). */
#define RV_CA_PEM_MAX (1u << 20)

/* Create an engine. On success *ret owns it; free with rv_engine_free.
 * With cfg->state_dir set this opens (and recovers) the state; on failure
 * *ret_detail (when not NULL) gets a malloc'd sentence naming the problem,
 * e.g. the pid owning the state directory (RV_E_STATE_BUSY). */
int rv_engine_open(const rv_config *cfg, rv_engine **ret, char **ret_detail);
/* rv_engine_open without the detail. */
int rv_engine_new(const rv_config *cfg, rv_engine **ret);

/* Cancel everything, remove temporary files, free all objects. NULL is fine.
 * Returns NULL. */
rv_engine *rv_engine_free(rv_engine *e);

/* Validate and queue a download. Checks the URL, the scheme and the
 * destination at once (bad input fails here and creates nothing). On
 * success *ret is the object, owned by the engine. On failure
 * rv_engine_error_detail() says what was wrong. */
int rv_engine_add(rv_engine *e, const rv_request *req, rv_object **ret);

/* Why the last rv_engine_add() failed, naming the offending input; "" after
 * a success. Valid until the next rv_engine_add() call. */
const char *rv_engine_error_detail(const rv_engine *e);

/* Whether a request header line may be sent: "Name: value" with a token
 * name, no CR or LF, at most 8 KiB, and not one the engine owns because it
 * decides which bytes land where (Range, If-Range, If-Match, If-None-Match,
 * If-Modified-Since, If-Unmodified-Since, Accept-Encoding, Content-Length,
 * Host, Transfer-Encoding, Connection). */
bool rv_header_allowed(const char *line);

/* Grow the process's descriptor table to n entries now (as the open-files
 * limit allows). The kernel grows it on demand, but while several threads
 * share it that waits for an RCU grace period (milliseconds) on whichever
 * thread opens the descriptor that does not fit. A process that will hold
 * many descriptors calls this once, before it starts threads; the engine
 * does it for 1024 when it opens. Best effort. */
void rv_reserve_descriptors(unsigned n);

/* Set the process's malloc thresholds for the engine's pattern of
 * allocation: libcurl takes a 256 KiB receive buffer when a transfer starts
 * and frees it when the transfer ends, and glibc's defaults give such
 * memory back to the kernel and fault it in again, over and over, when
 * many short transfers run. Process-wide (mallopt), so the library never
 * calls it itself: a program that runs the engine calls it once at start,
 * as retrieverctl and retrieverd do. Does nothing under another malloc. */
void rv_tune_malloc(void);

/* Cancel an object: all its transfers stop before this returns, its
 * temporary file is removed, and its state becomes CANCELLED (the on_state
 * hook runs from inside this call). Cancelling an object in a terminal
 * state does nothing. Neither does cancelling one that is complete and
 * being put in place at its destination (with durable state that runs on
 * a helper thread, for microseconds to a copy's duration): it is past
 * cancelling, and ends DONE (or FAILED) in a later rv_engine_perform(), as
 * if the cancel had come after. */
int rv_engine_cancel(rv_engine *e, rv_object *obj);

/* Drive the engine: wait up to timeout_ms for network activity, a due retry
 * or a wake-up, then do all work that is ready. Work that falls due by time
 * (retries, libcurl's timers, durable state's syncs and commits) ends the
 * wait early, so a long timeout delays nothing. *ret_active (optional) is
 * the number of objects not yet in a terminal state. */
int rv_engine_perform(rv_engine *e, int timeout_ms, unsigned *ret_active);

/* Make a blocked rv_engine_perform() return early. Thread-safe, but not
 * async-signal-safe: from a signal, wake a thread that calls it. */
int rv_engine_wakeup(rv_engine *e);

/* Free a terminal object. Its pointer and strings become invalid. */
int rv_engine_release(rv_engine *e, rv_object *obj);

/* Getters; valid on the engine thread while the object lives. */
rv_state rv_object_state(const rv_object *obj);
int rv_object_error(const rv_object *obj);              /* RV_OK unless FAILED/CANCELLED */
const char *rv_object_error_detail(const rv_object *obj); /* never NULL; "" when no error */
/* The URL as the caller gave it (secrets and all: the caller has them
 * already); anything shown to others uses rv_url_redact. */
const char *rv_object_url(const rv_object *obj);
/* The destination: rv_request.dest_path, or from delivery on the final
 * path a name_from_disposition request was delivered to. */
const char *rv_object_path(const rv_object *obj);
void rv_object_progress(const rv_object *obj, rv_progress *ret);
const char *rv_object_sha256_hex(const rv_object *obj);  /* set when DONE, else NULL */
/* The CRC-32C of the delivered file, combined from its ranges' (computed
 * with durable state only). True and *ret set when DONE and known. */
bool rv_object_crc32c(const rv_object *obj, uint32_t *ret);
double rv_object_seconds(const rv_object *obj);          /* from start to terminal (or now) */
unsigned rv_object_retries(const rv_object *obj);
/* DONE, and delivered from the cache (an earlier download, or another
 * request for the same object in this engine) rather than read from the
 * origin by this request. */
bool rv_object_from_cache(const rv_object *obj);
/* Bytes of the object that are durable (with state): what a later run
 * resumes from if this one stops now. 0 without state, or when the object
 * cannot be resumed (no known size, or no ETag/Last-Modified to check it
 * against). When the object starts, it is what was resumed. */
uint64_t rv_object_durable(const rv_object *obj);
/* How many bytes from the start of the object are written, in order: a
 * reader may read [0, ready) from rv_object_open_data's file while the
 * download runs. A cache hit is ready only once its bytes were checked
 * (when it is DONE): a bad one is fetched again, never read. *ret_restarts (optional) counts restarts: when it
 * changes, the object changed on the origin and bytes read before belong
 * to the old version. */
uint64_t rv_object_ready(const rv_object *obj, unsigned *ret_restarts);
/* A new O_RDONLY descriptor (the caller closes it) on the file the
 * object's bytes are written to (its cache blob, or its temporary file),
 * or -errno (-ENOENT before it exists). */
int rv_object_open_data(const rv_object *obj);
void *rv_object_user_data(const rv_object *obj);

/* The file name a download of url gets in a destination directory: the
 * last path segment, percent-decoded. RV_E_BAD_URL when the URL has none or
 * it is unsafe ("", ".", "..", contains '/'). On success *ret is malloc'd and
 * owned by the caller. */
int rv_default_filename(const char *url, char **ret);

/* The canonical form of url, for telling whether two URLs name the same
 * object (the daemon's dedupe key). url must pass the checks rv_engine_add
 * makes: at most 8192 bytes of printable ASCII, "scheme://", a host (none
 * for file://), a port in 1..65535, valid %-escapes, a scheme the engine
 * fetches (http, https, file, and any registered with rv_source_register,
 * rv_source.h), and a URL its source accepts (file://: an absolute local
 * path).
 * The form: scheme and host lower case, the scheme's default port dropped,
 * dot segments removed, an empty path "/", in the path every escaped
 * unreserved character (A-Z a-z 0-9 - . _ ~) decoded and every other
 * escape in upper-case hex (except a segment that would decode to "." or
 * ".."), the fragment dropped. Userinfo and the query are kept byte for
 * byte: they may select a different object. rv_url_normalize of the result
 * gives the result again. Errors: RV_E_BAD_URL, RV_E_UNSUPPORTED_SCHEME,
 * RV_E_NOMEM, RV_E_INVALID_ARGUMENT (NULL). On success *ret is malloc'd
 * and owned by the caller. */
int rv_url_normalize(const char *url, char **ret);

/* url as it may leave the engine (messages, logs, status, databases): the
 * one redaction rule. Userinfo becomes "***@" (a reader sees that
 * credentials were given, not which). In the query and the fragment every
 * parameter's value becomes "REDACTED", and so does a parameter without
 * '=' (the name alone may be a token), except for these harmless names
 * (case-insensitive, after %-decoding): response-content-disposition,
 * response-content-type, versionId, partNumber, X-Amz-Algorithm,
 * X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders, alt, generation,
 * download, dl, format, v, version. Parameters are split on '&', ';', '?'
 * and '#'; a hidden value runs to the next '&', ';' or '#' (an allowed one
 * also ends at '?'). Scheme, host, port and path are kept as given.
 * Redacting the result again changes nothing. Any string is accepted (a
 * malformed URL is redacted as well as it can be); the only failures are
 * RV_E_NOMEM and RV_E_INVALID_ARGUMENT (NULL). On success *ret is malloc'd
 * and owned by the caller. */
int rv_url_redact(const char *url, char **ret);

/* One object a listing found: its key (decoded, as S3 stores it) and size.
 * Return RV_OK to go on, anything else to stop the listing with it. */
typedef int (*rv_s3_list_fn)(void *ud, const char *key, uint64_t size);

/* List the keys of url, "s3://bucket/prefix" (the prefix may be empty or
 * end anywhere), with ListObjectsV2, page by page (continuation tokens),
 * calling fn for each key in S3's order; blocking, on the caller's thread.
 * p as for rv_request.s3 (NULL: anonymous, AWS us-east-1). RV_OK; else an
 * RV_E_* code and, when ret_detail is not NULL, a malloc'd one-line
 * message without credentials (S3's error code when it sent one). */
int rv_s3_list(const char *url, const rv_s3_params *p, rv_s3_list_fn fn, void *ud,
               char **ret_detail);

/* text (a message about a URL) with rv_url_redact's rule applied: every
 * token containing "://" (tokens end at white space and quotes) is
 * redacted, and every piece the rule hides in urls[0..n_urls) (userinfo,
 * its user and password, hidden query values; as given and %-decoded; 4
 * bytes or longer) is replaced by "REDACTED" wherever it appears. For free
 * text such as libcurl's error messages. NULL entries of urls are skipped.
 * Errors: RV_E_NOMEM, RV_E_INVALID_ARGUMENT (NULL text or ret, or NULL urls
 * with n_urls > 0). On success *ret is malloc'd and owned by the caller. */
int rv_url_scrub(const char *text, const char *const *urls, size_t n_urls, char **ret);

/* The local path a file:// URL names, percent-decoded (absolute).
 * RV_E_BAD_URL, RV_E_UNSUPPORTED_SCHEME (not file://), RV_E_NOMEM. On
 * success *ret is malloc'd and owned by the caller. */
int rv_file_url_path(const char *url, char **ret);

/* Transfers (origin connections in use) running now. */
unsigned rv_engine_transfers(const rv_engine *e);
/* Bytes the cache holds (with state; 0 without). */
uint64_t rv_engine_cache_bytes(const rv_engine *e);

/* Change cfg.cache_quota of a running engine; with state, the cache is
 * trimmed to it at once (never an object in use). */
void rv_engine_set_cache_quota(rv_engine *e, uint64_t quota);

/* Managing the cache (with state only; RV_E_INVALID_ARGUMENT without).
 *
 * rv_engine_cache_scan visits every cache entry (one per object the state
 * knows: complete, or unfinished and kept to be resumed) and does op to
 * each that select(ud, entry) accepts (select NULL: every one), then calls
 * report(ud, entry, result) (report may be NULL). Engine thread only,
 * like every call here; it runs synchronously: RV_CACHE_VERIFY reads the
 * entries it checks, so an owner with transfers running verifies a few
 * entries per call (select) between rv_engine_perform calls.
 *
 *   RV_CACHE_LIST    nothing changes; result RV_CACHE_LISTED
 *   RV_CACHE_REMOVE  the entry (row and blob) goes: RV_CACHE_REMOVED; an
 *                    entry a live object uses (or a pinned one) stays:
 *                    RV_CACHE_IN_USE. Files delivered by hard link keep
 *                    their data (they are the same inode).
 *   RV_CACHE_VERIFY  the blob is read back and checked against the
 *                    CRC-32C the state recorded: a complete entry's whole-
 *                    object CRC, an unfinished one's per-range CRCs of its
 *                    durable bytes (the checks a cache hit and a resume
 *                    make). Intact: RV_CACHE_INTACT. Otherwise (other
 *                    bytes, wrong size, missing, unreadable, no CRC) it is
 *                    removed: RV_CACHE_CORRUPT_REMOVED, or kept when in use:
 *                    RV_CACHE_CORRUPT_IN_USE (the delivery's own check
 *                    refetches it).
 *
 * The entry passed to select and report is valid during the call only.
 * Returns RV_OK, RV_E_STATE (the database failed), RV_E_NOMEM. */
typedef enum rv_cache_op { RV_CACHE_LIST, RV_CACHE_REMOVE, RV_CACHE_VERIFY } rv_cache_op;
typedef enum rv_cache_result {
    RV_CACHE_LISTED,
    RV_CACHE_REMOVED,
    RV_CACHE_IN_USE,
    RV_CACHE_INTACT,
    RV_CACHE_CORRUPT_REMOVED,
    RV_CACHE_CORRUPT_IN_USE,
} rv_cache_result;
typedef struct rv_cache_entry {
    int64_t id;          /* the state's id (stable while the entry lives) */
    const char *url;     /* as first requested, redacted (rv_url_redact) */
    const char *name;    /* what names the object: the normalised URL without
                            userinfo and query, or for a file:// source the
                            file ("file:dev=..,ino=.."); see rv_cache_matches */
    bool keyed;          /* the request had a query, userinfo or headers (only
                            their digest is kept): requests with other ones
                            have other entries */
    bool size_known;
    uint64_t size;       /* the object's size, when size_known */
    uint64_t bytes;      /* bytes held that are durable (size when complete);
                            set for report, and for select only when complete */
    bool complete;
    bool in_use;         /* a live object of this engine uses it */
    bool pinned;
    int64_t used_unix;   /* last use, unix seconds */
} rv_cache_entry;
int rv_engine_cache_scan(rv_engine *e, rv_cache_op op,
                         bool (*select)(void *ud, const rv_cache_entry *en),
                         void (*report)(void *ud, const rv_cache_entry *en, rv_cache_result res),
                         void *ud);
/* "listed", "removed", "in-use", "intact", "corrupt-removed",
 * "corrupt-in-use"; static. */
const char *rv_cache_result_name(rv_cache_result r);
/* Whether entry en is for url (any form rv_url_normalize accepts; its
 * query and userinfo are ignored, as en->url has neither): so "rm URL"
 * takes every entry of that object, whatever credentials fetched it. */
bool rv_cache_matches(const rv_cache_entry *en, const char *url);

/* Whether the engine knows how to fetch URLs of this scheme ("https"):
 * a built-in source's, or one registered (rv_source.h). */
bool rv_engine_supports_scheme(const rv_engine *e, const char *scheme);

#ifdef __cplusplus
}
#endif

#endif
