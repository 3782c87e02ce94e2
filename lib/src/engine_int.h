/* engine_int.h — the engine's internal data model, shared by engine.c (the
 * loop, scheduling and object lifecycle), object.c (the object core),
 * sink.c (what sources report), http.c (curl transfers), filesrc.c
 * (file:// copies) and outfile.c (the temporary file and the digest).
 *
 * An object is split into ranges ("chunks"). Each chunk is fetched by at most
 * one transfer at a time. Bytes [start, pos) of a chunk have arrived;
 * [pos, end) have not. A retried chunk continues at pos. Of what arrived,
 * [start, landed) is in the file; [landed, pos) is still on its way there
 * (staged objects only, stage.c; for all others landed == pos).
 *
 * Chunk states:
 *   TODO    not running; may start when limits allow (due_ms has passed)
 *   ACTIVE  a transfer owns it (chunk->xfer != NULL)
 *   DONE    pos == end; its bytes are in the file
 */
#ifndef RV_ENGINE_INT_H
#define RV_ENGINE_INT_H

#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "digester.h"
#include "flusher.h"
#include "hostlimit.h"
#include "store.h"
#include "retriever.h"
#include "retry.h"
#include "sha256.h"
#include "source.h"
#include "tempname.h"
#include "url.h"
#include "writer.h"

/* Size of a size not yet known, and of the end of an open range. */
#define RV_UNKNOWN UINT64_MAX

typedef struct rv_transfer rv_transfer;

/* Groups (rv_request.group, with cfg.max_connections_per_group set): the
 * connections each group's objects hold, in all and per host. Transfers
 * start in engine.c but end in http.c, so the counts are taken afresh from
 * the objects (o->active) at the start of every scheduling pass and raised
 * by each start during it; between passes they may only be too high,
 * which holds a start back until the next pass, never lets one too many
 * through. Owned by the engine, never freed before it: a group is a tag
 * (a daemon's caller uid), few of them. */
typedef struct rv_group {
    uint64_t tag;              /* != 0 */
    unsigned active;           /* connections of its objects, all hosts */
    bool wanting;              /* this pass: some object of it may want one more */
} rv_group;

typedef struct rv_hostgroup {
    struct rv_hostlimit *host;
    rv_group *group;
    unsigned active;           /* connections of the group's objects to host */
} rv_hostgroup;

typedef enum rv_chunk_state {
    RV_CHUNK_TODO = 0,
    RV_CHUNK_ACTIVE,
    RV_CHUNK_DONE,
} rv_chunk_state;

typedef struct rv_chunk {
    uint64_t start, end, pos; /* end is exclusive; RV_UNKNOWN: until EOF */
    uint64_t landed;          /* start <= landed <= pos */
    /* With durable state: start <= durable <= submitted <= landed. [start,
     * durable) is synced and recorded; [durable, submitted) is being synced;
     * crc covers [start, durable) (the engine extends it with each synced
     * span's CRC, in order: written_crc below, or the flusher's). */
    uint64_t submitted, durable;
    uint32_t crc;
    /* The CRC-32C of [submitted, landed), extended as each write lands
     * (from the network buffer, still in the CPU's cache: cheaper than
     * reading the bytes back; or the writer's, stage.c);
     * written_crc_unknown when some of those bytes were copied in the
     * kernel instead (file:// sources): the flusher reads them back. */
    uint32_t written_crc;
    bool written_crc_unknown;
    rv_chunk_state state;
    unsigned failures;        /* consecutive failures without progress */
    uint64_t refused_since_ms; /* the first of the refused connections in a row
                                  (RV_FAULT_REFUSED), else 0 */
    uint64_t due_ms;          /* TODO: not before this monotonic time */
    rv_transfer *xfer;        /* ACTIVE only */
} rv_chunk;

/* The reason a transfer stopped, recorded by a callback before it aborts (a
 * curl callback cannot touch other transfers) and acted on after
 * curl_multi_perform returns. */
typedef enum rv_xfer_verdict {
    RV_XFER_OK = 0,     /* no verdict: judge by the curl result */
    RV_XFER_RETRY,      /* transient/throttle: err, fault, retry_after_ms */
    RV_XFER_FAIL,       /* permanent: fail the object with err */
    RV_XFER_CHANGED,    /* the object changed on the origin */
    RV_XFER_NORANGES,   /* origin ignores ranges: switch to one stream */
    RV_XFER_DONE_EMPTY, /* probe answered 416 for a 0-byte object */
    RV_XFER_FRESH,      /* revalidation: the cached copy is current */
} rv_xfer_verdict;

struct rv_transfer {
    rv_object *obj;            /* first: CURLOPT_PRIVATE points here (rv_source_ops.finish) */
    CURL *easy;
    rv_chunk *chunk;           /* the range this transfer fills */
    bool probe;                /* first request of the object: learns size */
    bool revalidate;           /* conditional request for a cached object */
    bool body_ok;              /* headers accepted; body goes to the file */
    long status;               /* status of the last header block */
    uint64_t resp_first, resp_last, resp_total; /* Content-Range, if any */
    bool has_range;
    uint64_t resp_length;      /* Content-Length or RV_UNKNOWN */
    uint64_t retry_after_ms;   /* RV_UNKNOWN when absent */
    char *resp_etag, *resp_last_modified;
    char *resp_date;           /* Date: judges Last-Modified's strength */
    char *resp_range_raw;      /* Content-Range as sent (truncated), for messages */
    uint64_t started_pos;      /* chunk->pos when this transfer started */
    rv_xfer_verdict verdict;
    rv_fault fault;
    int err;
    char *detail;              /* malloc'd; reason for the verdict */
    char *bucket_region;       /* malloc'd: the answer's x-amz-bucket-region */
    char *errbody;             /* malloc'd: the start of an s3 object's error
                                  answer (its XML names the error) */
    size_t errbody_len;
    struct curl_slist *req_headers;
    struct rv_stage *stage;    /* staged objects: the bytes received next go here */
    bool paused;               /* waits for its object's digest to give stages back
                                  (rv_stage_hold_back); rv_stage_resume restarts it */
    int sock;                  /* the connection's socket while known, else -1 */
    char denied[64];           /* the last address deny_networks refused, else "" */
    char errbuf[CURL_ERROR_SIZE];
    rv_transfer *next_free;    /* engine's pool of idle handles */
};

struct rv_object {
    rv_object *prev, *next;    /* engine's object list, in submission order */
    rv_object *dest_next;      /* chain in engine->dest_buckets while live */
    rv_engine *engine;
    uint64_t id;
    void *user_data;
    bool copy;                 /* rv_request.copy: never hard-link the blob */
    bool link;                 /* rv_request.link: hard-link the blob where possible */
    unsigned max_conns;        /* rv_request.connections, bounded by the config */
    int mode;                  /* rv_request.mode of the files it delivers, or
                                  RV_MODE_UMASK (tempname.h) */
    /* rv_request's settings, resolved against the config (never 0) */
    unsigned max_attempts, connect_timeout_ms, stall_timeout_ms, connect_retry_ms;
    char *proxy, *noproxy;      /* rv_request's, owned; NULL: libcurl's default */
    uint64_t max_bytes_per_sec; /* rv_request's: shared among its running
                                   transfers (http.c rate_share); 0: none */
    char *ca_pem;              /* rv_request.ca_pem, owned; NULL: the engine's store */
    bool ca_only;              /* ca_pem replaces the engine's store */
    bool insecure;             /* rv_request.insecure: no certificate verification */

    /* the request */
    char *url_in;              /* as the caller gave it: never in a message */
    char *url_shown;           /* rv_url_redact(url_in): how messages name it */
    rv_url *url;
    const rv_source_ops *source; /* fetches it; the engine calls it only through this */
    rv_hostlimit *host;        /* http(s) only; owned by the engine */
    rv_hostgroup *hg;          /* its group on that host; NULL: no group (untagged,
                                  file://, or no max_connections_per_group) */
    char *dest_path;           /* rv_request.dest_path; the final path once
                                  rv_object_choose_name has chosen it */
    bool name_from_disposition; /* rv_request's */
    bool no_replace;           /* rv_request's */
    char *disposition_name;    /* the first 2xx answer's Content-Disposition
                                  file name, as sent (http.c); NULL: none */
    char *tmp_path;            /* NULL until the temporary file exists */
    int fd;                    /* temporary file; -1 when closed */
    int dfd;                   /* staged: the blob opened with O_DIRECT, or -1 */
    bool direct_tried;         /* dfd was opened (or refused) once for this blob: never again */
    bool stage_decided;        /* rv_stage_wanted has decided, for this blob */
    bool staged;               /* bytes go through stages and the writer (stage.c) */
    unsigned write_lanes;      /* staged: how many of the writer's lanes its ranges use; fixed
                                * when decided, as a range's stages stay on one lane even if
                                * O_DIRECT is refused later (dfd -1) */
    unsigned writes;           /* stages in the writer */
    /* The tee (stage.c): staged with state and delivered as a copy, each
     * stage is also written into this file next to the destination, which
     * delivery then renames into place instead of copying the blob. An
     * unnamed file (O_TMPFILE), or a hidden name (tee_path) where the file
     * system has none. tee_bytes: the bytes of this version written to it
     * (stages of the current gen that landed); it serves only when they
     * are the object's size. */
    int tee_fd;                /* -1: none */
    char *tee_path;            /* NULL: unnamed, or none */
    uint64_t tee_bytes;
    char expected_sha256[65];  /* "" when not given */
    struct curl_slist *user_headers;
    bool want_digest;

    /* lifecycle */
    rv_state state;
    int err;
    char *err_detail;
    uint64_t t_start_ms, t_end_ms;
    unsigned restarts, retries;

    /* what the origin told us */
    uint64_t size;             /* RV_UNKNOWN until known */
    uint64_t probe_wait_us;    /* from the probe's request to its answer's first byte */
    bool ranges;               /* origin honours Range for this object */
    char *etag;                /* strong ETag, or NULL */
    char *last_modified;       /* strong Last-Modified (before Date), or NULL */
    /* Weak validators: later responses are compared with them, but they
     * are never sent (If-Range needs a strong one) nor stored for a resume. */
    char *weak_etag;           /* a W/ ETag, or NULL */
    char *weak_last_modified;  /* a Last-Modified without Date, or NULL */
    char *fetch_url;           /* after redirects; what ranges are asked of */
    /* s3:// (rv_request.s3, copied; s3.c): where and as whom. The secret
     * is cleansed when the object goes and never shown. */
    bool s3;                   /* the request had s3 parameters */
    bool s3_path_style;
    char *s3_endpoint, *s3_region, *s3_key_id, *s3_secret, *s3_token;
    /* Set by the object's source before its first transfer: */
    char *origin_url;          /* what transfers ask for in place of
                                  url->normalised (s3: the https URL) */
    char *sigv4;               /* CURLOPT_AWS_SIGV4's provider string
                                  ("aws:amz:REGION:s3"), or NULL: unsigned;
                                  the key pair is s3_key_id/s3_secret */
    bool s3_region_followed;   /* a wrong-region answer was followed (once) */
    bool if_match;             /* later ranges carry If-Match with the
                                  ETag, not If-Range (a changed object is
                                  refused with 412, never sent whole) */

    /* ranges */
    rv_chunk *chunks;          /* sorted by start, contiguous, cover [0, size) */
    size_t n_chunks;
    bool planned;              /* chunks are a real plan (not the probe's placeholder) */
    unsigned active;           /* transfers running for this object */
    uint64_t bytes_done;       /* sum of (pos - start) over chunks */

    void *src;                 /* the source's own state for it (filesrc.c's open
                                  file), freed by its close op; NULL: none */

    /* digest: bytes [0, hashed) are in the hash. While digest_job is set
     * the digester thread is adding more, and hash is its to touch. */
    rv_sha256 *hash;
    uint64_t hashed;
    struct rv_digest_job *digest_job;
    /* Staged objects: stages that landed beyond hashed, kept for the
     * digester to hash from memory (stage.c), sorted by offset, linked by
     * next_free; each lies in the file's landed bytes, at or after hashed. */
    struct rv_stage *held;
    bool digest_paced;         /* its ranges are small and kept near hashed (stage.c) */
    char sha256_hex[65];

    /* progress */
    uint64_t progress_last_ms, progress_last_bytes;
    double rate_bps;

    /* durable state (engine->store set): the object's row and blob */
    char *key;                 /* store key; never holds header values */
    uint64_t key_hash;         /* of key, to compare keys quickly */
    unsigned followers;        /* objects that ever took this one as leader */
    rv_object *lead_next, **lead_prevp; /* in engine->leaders while listed */
    uint64_t counted;          /* bytes of this object in engine->cache_bytes */
    rv_object *leader;         /* another live object fetching the same key: this
                                  one waits for its blob (no transfers, no fd);
                                  cleared when the leader ends */
    int64_t store_id;          /* 0 until the object has a row id */
    bool row_exists;           /* the row is in the store (or its open transaction) */
    bool row_complete;         /* its complete row is committed: the blob is a cache
                                  entry, whatever becomes of this request */
    char *blob_path;           /* cache_dir/blobs/<store_id> */
    uint64_t gen;              /* bumped on restart: stale syncs are dropped */
    uint64_t last_submit_ms;   /* last sync submitted */
    bool final_sync;           /* all bytes written and verified; final sync queued */
    bool blob_writable;        /* the blob's mode allows writing (reopened to resume) */
    bool cached;               /* a complete blob from an earlier run: a cache hit */
    bool revalidating;         /* a cache hit waiting for the origin's word */
    bool digest_known;         /* sha256_hex is final already: a follower's, from its
                                  leader's digest of the same bytes (follow_done); never
                                  from the database (a hit's is computed from its bytes) */
    bool refetched;            /* a bad cache hit was fetched again (rv_durable_refetch):
                                  at most once */
    bool deliver_ready;        /* final marks written in the open transaction */
    bool delivering;           /* the cachefiles thread puts the blob in place; it
                                  can no longer be cancelled (cachefiles.h) */
    bool has_crc32c;
    uint32_t crc32c;           /* combined from the ranges at completion */

    /* Work a curl callback found but may not do itself (it may not touch
     * other transfers, and hooks never run inside curl callbacks): done by
     * the engine right after curl_multi_perform returns. */
    bool resolved_pending;     /* probe learnt the size: enter DOWNLOADING */
    bool needs_attention;
};

/* What the modules below engine.c (durable.c, the sink) ask of an
 * object's lifecycle, which engine.c owns: engine.c fills it in
 * (rv_engine_open). These calls through it are the only way up the
 * layers (object.c says which), so lib/src's call graph stays acyclic. */
typedef struct rv_lifecycle {
    /* The state becomes s (checked against object.c's table); a terminal
     * one frees the destination and ends the object's followers. */
    void (*set_state)(rv_object *o, rv_state s);
    /* Discard every byte of o and resolve it again from the origin (a
     * changed object, a corrupt cache entry). */
    void (*start_over)(rv_object *o);
    /* Before delivery: a name_from_disposition object's final path
     * (dest_path changes to it), and no_replace's and the may_replace
     * hook's check of what is there. RV_OK, or the object failed and its
     * error. */
    int (*choose_name)(rv_object *o);
} rv_lifecycle;

struct rv_engine {
    rv_config cfg;
    const rv_lifecycle *life;
    rv_hooks hooks;
    char *user_agent;
    char *ca_file;             /* NULL: libcurl's default CA store */
    char *ca_base;             /* the bundle a request's ca_pem adds to (ca_file's,
                                  else libcurl's default bundle's text), read at
                                  the first such request; NULL: not read yet or
                                  unreadable (then the default CA path alone) */
    size_t ca_base_len;
    bool ca_base_read;         /* the read was tried */
    CURLM *multi;
    struct rv_socktab *socks;  /* the multi's sockets; outlives it (socktab.h) */
    struct rv_netdeny *deny;   /* cfg.deny_networks parsed; NULL: nothing denied */
    rv_rng rng;
    rv_object *head, *tail;    /* all objects, submission order */
    rv_object *live_head;      /* no object before it is live (see rv_live_head) */
    rv_object **dest_buckets;  /* live objects by destination path (hash set) */
    size_t n_dest_buckets, n_dests;
    unsigned n_live;           /* objects not in a terminal state */
    uint64_t n_entered[RV_STATE_CANCELLED + 1]; /* state changes, by the state entered
                                                   (object_set_state) */
    unsigned active;           /* transfers running, all objects */
    rv_hostlimit **hosts;
    size_t n_hosts;
    rv_group **groups;         /* every group seen (see rv_group) */
    size_t n_groups;
    rv_hostgroup **hostgroups;
    size_t n_hostgroups;
    rv_transfer *free_xfers;   /* idle easy handles, reused */
    unsigned char *buf;        /* scratch for copies */
    rv_digester *digester;     /* the sha256 thread; started by the first digest */
    rv_writer *writer;         /* the write thread; started by the first stage */
    struct rv_stage *free_stages;
    unsigned n_stages;         /* stages allocated: free, a transfer's, the writer's or
                                  held for a digest */
    unsigned held_stages;      /* in objects' held lists and in digest jobs */
    bool paused_xfers;         /* some transfer may be paused (rv_stage_hold_back) */
    size_t buf_size;
    uint64_t next_id;
    bool attention;            /* some object has needs_attention set */
    char add_detail[512];      /* why the last rv_engine_add failed */
    char *dest_dir_ok;         /* the last destination directory found usable */
    int proc_fd_ok;            /* /proc/self/fd usable (to link O_TMPFILE files):
                                  -1 not yet known, 0 no, 1 yes */

    /* durable state; all NULL without cfg.state_dir */
    rv_store *store;
    rv_object *leaders;        /* live objects with a store id that follow no
                                  other: the ones a new request may follow */
    rv_flusher *flusher;
    struct rv_cachefiles *cachefiles; /* blobs made ahead; deliveries */
    char *state_dir, *cache_dir, *blob_dir;
    unsigned char state_key[32]; /* keys the credential fingerprint (durable.c) */
    int64_t next_store_id;     /* ids are allocated here, inserts are batched */
    int64_t recheck_batch;     /* ranges this batch advanced are re-checked */
    bool tx_open;              /* a store transaction collects this round's writes */
    uint64_t cache_bytes;      /* sizes of every object in the store */
    uint64_t tx_opened_ms;
    uint64_t sync_due_ms;      /* the next interval sync, as of the last round */
};

/* A sync request and what it proves once done: for each span, range
 * span_start[i] is durable up to spans[i].to. */
typedef struct rv_sync_job {
    rv_sync_req req;           /* first: the flusher hands this back */
    uint64_t object_id, gen;
    bool final;
    uint64_t *span_start;      /* the range each span extends (by its start) */
    rv_sync_span spans[];
} rv_sync_job;

/* Set h's CA options for a transfer of o (cacerts.c). RV_E_NOMEM. */
int rv_cacerts_set(rv_engine *e, rv_object *o, CURL *h);

uint64_t rv_now_ms(void);

/* object.c: the object core (every module may call it; it calls none of
 * the engine's modules back) */

/* The live object with this id, or NULL. */
rv_object *rv_object_by_id(rv_engine *e, uint64_t id);
/* The chunk of o starting at start, or NULL. */
rv_chunk *rv_chunk_starting(rv_object *o, uint64_t start);
/* The state machines' tables (drawn in object.c): whether a change from
 * one state to another is allowed (to the same state: yes, no change). */
bool rv_object_transition_legal(rv_state from, rv_state to);
bool rv_chunk_transition_legal(rv_chunk_state from, rv_chunk_state to);
/* The one way a range's state changes: RV_OK, or (an illegal change: a
 * bug) an assertion in debug builds and, in release builds, the change
 * refused, o failed with RV_E_INTERNAL naming it, and RV_E_INTERNAL. */
int rv_chunk_set_state(rv_object *o, rv_chunk *c, rv_chunk_state to);

/* rv_engine_wakeup as a helper thread's wake callback (ud: the engine). */
void rv_engine_wake_cb(void *engine);

/* A string's hash (FNV-1a): for hash tables, and a cheap first comparison
 * of keys that share long prefixes. */
uint64_t rv_str_hash(const char *s);

/* The first object not in a terminal state, or NULL. Every object before it
 * is terminal (terminal is final, and objects mostly end in submission
 * order), so loops over live objects start here instead of at the head. */
rv_object *rv_live_head(rv_engine *e);

/* Record the object's first failure. Safe inside curl callbacks: the
 * transfers stop, the temporary file goes and the state becomes FAILED when
 * the engine next attends to the object, before rv_engine_perform returns.
 * Until then o->err != RV_OK tells every path to stop feeding it. */
void rv_object_fail(rv_object *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rv_object_vfail(rv_object *o, int err, const char *fmt, va_list ap);
void rv_object_attention(rv_object *o);
/* Stop every transfer of o (not from inside a curl callback). */
void rv_object_stop_transfers(rv_object *o);
/* text as it may leave the engine (a failure detail, a retry's reason):
 * every word with "://" redacted. malloc'd; NULL when out of memory. */
char *rv_object_scrub(const char *text);
/* Whether o's blob is delivered by a hard link (else a reflink or copy). */
bool rv_object_links(const rv_object *o);

/* engine.c, through rv_engine.life (rv_lifecycle) */
static inline void rv_object_set_state(rv_object *o, rv_state s) {
    o->engine->life->set_state(o, s);
}
static inline void rv_object_start_over(rv_object *o) {
    o->engine->life->start_over(o);
}
static inline int rv_object_choose_name(rv_object *o) {
    return o->engine->life->choose_name(o);
}

/* durable.c: the engine's side of durable state (docs/state.md) */
int rv_durable_open(rv_engine *e, char **ret_detail);
void rv_durable_close(rv_engine *e);
/* A new cache quota: evict down to it now (rv_engine_set_cache_quota). */
void rv_durable_set_quota(rv_engine *e, uint64_t quota);
/* Look the object up and set it up to resume, or insert it. */
int rv_durable_start(rv_object *o);
/* o was just queued (rv_engine_add). */
void rv_durable_added(rv_object *o);
/* The object's plan is known: record it (in the open transaction). */
void rv_durable_planned(rv_object *o);
/* Submit the interval syncs that are due. Returns when the next one falls
 * due with no more bytes arriving (UINT64_MAX: none). */
uint64_t rv_durable_sync_due(rv_engine *e, uint64_t now);
int rv_durable_sync_object(rv_object *o, bool final);
/* Take completed syncs, write their marks, commit when due, deliver. */
void rv_durable_progress(rv_engine *e, uint64_t now);
/* When the open transaction must be committed (UINT64_MAX: none open). */
uint64_t rv_durable_commit_due(const rv_engine *e);
/* The object is over (failed/cancelled): keep what can be resumed. */
void rv_durable_end(rv_object *o);
/* The object changed and starts over: forget its old ranges durably. */
void rv_durable_restarted(rv_object *o);
/* A cache hit whose bytes are not what was recorded or expected (what says
 * how, after the URL): notice, evict its entry and fetch it again from the
 * origin (or follow another request fetching it). Once only: a second
 * time fails o with err_again. */
void rv_durable_refetch(rv_object *o, int err_again, const char *what);
/* o reached a terminal state: its followers deliver, take over, or fail. */
void rv_durable_leader_ended(rv_object *o);

/* stage.c: a staging buffer on its way to the writer */
typedef struct rv_stage {
    rv_write_req req;          /* first: the writer hands this back */
    size_t cap;                /* req.len grows up to this, then it is submitted */
    uint64_t object_id, gen, chunk_start; /* where it lands, if still wanted */
    unsigned lane;             /* the writer's lane: the range's index modulo write_lanes */
    bool direct;               /* written through the O_DIRECT descriptor */
    bool teed;                 /* also written into the object's tee (req.tee_fd) */
    struct rv_stage *next_free;
} rv_stage;
/* Whether o's bytes go through stages (decided once per blob: big objects
 * of a known size; with state through O_DIRECT where it works). */
bool rv_stage_wanted(rv_object *o);
/* For a digested object being planned: the largest range, so that what
 * its connections fill beyond the digest frontier fits in the held window,
 * and sets o->digest_paced; or 0 (not paced) when its origin is far (each
 * range's request costs a round trip): its ranges keep their size. */
uint64_t rv_stage_digest_range(rv_object *o);
/* Whether range c of a digested object waits before it starts: it begins
 * too far past what is hashed (and is not the range the digest waits
 * for). The digest's progress wakes the engine, which starts it then. */
bool rv_stage_range_waits(rv_object *o, rv_chunk *c);
/* Whether t must wait before taking n more bytes (then its on_body
 * pauses it): its object is digested, the bytes need a new stage, none is
 * free, and only the digest will give stages back; never the transfer at
 * the digest frontier, whose bytes are what lets the digest advance. */
bool rv_stage_hold_back(rv_transfer *t, size_t n);
/* Restart paused transfers once stages are free again (not from inside a
 * curl callback). */
void rv_stage_resume(rv_engine *e);
/* Take n received bytes of t's range at t->chunk->pos. A failure fails o. */
int rv_stage_body(rv_transfer *t, const unsigned char *p, size_t n);
/* t stops: submit what its stage holds (dropped if o has failed). */
void rv_stage_flush(rv_transfer *t);
/* Submit what every running transfer of o holds in its stage (a sync is
 * due: bytes of a slow transfer must not wait for a stage to fill). */
void rv_stage_flush_object(rv_object *o);
/* Take back the writer's finished stages; returns how many. */
unsigned rv_stage_collect(rv_engine *e);
/* Wait until none of o's stages is in the writer. */
void rv_stage_drain(rv_object *o);
/* Discard o's bytes: o->gen moves on (syncs and stages in flight become
 * moot), its stages in the writer land, then its file is emptied
 * (rv_outfile_reset). RV_OK, or the RV_E_* code o failed with. */
int rv_stage_reset(rv_object *o);
/* Free the stages nobody holds. */
void rv_stage_trim(rv_engine *e);
/* Stop the writer and free every stage (the engine is going away). */
void rv_stage_end(rv_engine *e);

/* stagepool.c: the pool of free stages */
/* Put s back in the pool (inline: stage.c does it for every stage). */
static inline void rv_stage_put(rv_engine *e, rv_stage *s) {
    s->teed = false;
    s->next_free = e->free_stages;
    e->free_stages = s;
}
/* Give back stages held for a digest (a list linked by next_free). */
void rv_stage_release(rv_engine *e, rv_stage *list);
/* Give back o's held stages (o->held): its digest will not use them. */
void rv_stage_release_held(rv_object *o);

/* outfile.c */
int rv_outfile_create(rv_object *o);
/* Close the file's descriptors; the next blob decides staging afresh. */
void rv_outfile_close(rv_object *o);
int rv_outfile_preallocate(rv_object *o, uint64_t size);
int rv_outfile_write(rv_object *o, const void *p, size_t n, uint64_t off);
/* A write of o's file failed with errnum: fail o saying so; returns the
 * RV_E_* code. */
int rv_outfile_write_failed(rv_object *o, int errnum);
/* Empty o's file, its tee and its digest. Only through rv_stage_reset,
 * which first makes the stages in flight moot and lands them. */
int rv_outfile_reset(rv_object *o);
/* The tee (stage.c): make o's, empty, next to its destination; without
 * one (it cannot be made) o is delivered by a copy as before. */
void rv_outfile_tee_open(rv_object *o);
/* Close o's tee and remove it; nothing when it has none. */
void rv_outfile_tee_discard(rv_object *o);
/* Without durable state: give the finished file its final name. */
int rv_outfile_deliver(rv_object *o);
void rv_outfile_discard(rv_object *o);
/* A request to the digester for o (digester.h). */
typedef struct rv_digest_job {
    rv_digest_req req;  /* first: the digester hands this back */
    rv_object *obj;     /* NULL once the object is freed: then the job owns req.hash */
    uint64_t gen;       /* obj->gen at submission: a restart since makes it moot */
    uint64_t to;        /* obj->hashed once it is done */
    struct rv_stage *stages; /* held stages whose buffers spans point into; back to
                                the pool when the job returns */
    rv_digest_span spans[];
} rv_digest_job;
/* Hand the digester what is written contiguously from o->hashed, unless a
 * request is out already: at least DIGEST_STEP bytes, or any when `all`
 * (the object is all written). A failure fails o. */
void rv_outfile_digest_submit(rv_engine *e, rv_object *o, bool all);
/* The range holding the first byte o's digest waits for (past what the
 * digester has or is hashing, and what landed contiguously after it), or
 * NULL when every byte has landed. */
rv_chunk *rv_outfile_digest_frontier(rv_object *o);
/* Take back the digester's finished requests (on the engine thread). */
void rv_outfile_digest_collect(rv_engine *e);
/* Stop the digester, leaving every context with its object (or freeing
 * it, for a freed object). For rv_engine_free, before objects go. */
void rv_outfile_digest_end(rv_engine *e);
/* Errno of a failed local write or allocation, as an rv_error. */
int rv_errno_to_error(int errnum);

#endif
