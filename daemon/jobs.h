/* jobs.h — the job table: who asked for what, and what it has become.
 *
 * A job is one Download request: one or more objects (sources), an owner
 * (the caller's uid/gid), and its subscribers — the open Download and
 * Watch streams that receive its events. Identical requests from the same
 * uid (same normalised URLs, destinations, sha256s and header digests)
 * attach to the running job instead of creating another — when that job
 * gives them what they asked for: a digest if they asked for one, and no
 * hard link unless they accept one (see job_satisfies) — so the origin is
 * read once however many callers ask; the engine below shares one origin
 * read between jobs that fetch the same object to different destinations.
 *
 * Life of a job:
 *
 *   QUEUED   submitted; waits while max_running jobs run, or while its
 *            owner's per_uid_running do (higher priority, then older,
 *            first, among the jobs whose owner may start one)
 *   RUNNING  its objects are in the engine
 *   DONE | FAILED | CANCELLED
 *            every object ended: DONE if all were delivered, FAILED if one
 *            failed, else CANCELLED. Subscribers' streams end (OK); the job
 *            stays in the history (Status, List) until its owner has
 *            per_uid_history newer ended jobs, or the history as a whole is
 *            over job_history while its owner holds the most (jobstate.c, "Per
 *            uid").
 *
 * A job stops (CANCELLED) when its last subscriber leaves (Cancel, or the
 * stream broke), unless it was submitted detached. Cancel by the owner of a
 * detached job that holds no subscription of theirs stops it.
 *
 * Threads: two sides share the table under one lock.
 *   - The RPC side (gRPC completion-queue thread): submit, watch, cancel,
 *     unsubscribe, status, list, stats.
 *   - The engine side (the worker thread, which owns the rv_engine):
 *     rvd_jobs_pump, and the engine hooks (rvd_jobs_hooks). Only this side
 *     calls the engine, and only it frees jobs, so it may use a job without
 *     the lock while it is the one that would free it.
 * The lock is never held while calling the engine. Sinks are called with
 * the lock held: they must only queue, never block or call back into the
 * table.
 *
 * Visibility: a caller sees (Status, List, Watch, Read, Cancel) its own
 * uid's jobs; root and the daemon's own uid see all. Another uid's job is
 * NOT_FOUND, so ids reveal nothing.
 */
#ifndef RVD_JOBS_H
#define RVD_JOBS_H

#include <retriever/retriever.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobstore.h"
#include "peer.h"
#include "request.h"

/* Outcomes of table calls, numbered as the gRPC status codes they become
 * (server.c passes them through). */
typedef enum rvd_code {
    RVD_OK = 0,
    RVD_INVALID_ARGUMENT = 3,
    RVD_NOT_FOUND = 5,
    RVD_ALREADY_EXISTS = 6, /* a destination the request may not replace exists */
    RVD_PERMISSION_DENIED = 7,
    RVD_RESOURCE_EXHAUSTED = 8,
    RVD_FAILED_PRECONDITION = 9,
    RVD_ABORTED = 10,
    RVD_INTERNAL = 13,
    RVD_UNAVAILABLE = 14,
} rvd_code;

typedef enum rvd_job_state {
    RVD_JOB_QUEUED = 1, /* the proto's JobState numbers */
    RVD_JOB_RUNNING,
    RVD_JOB_DONE,
    RVD_JOB_FAILED,
    RVD_JOB_CANCELLED,
} rvd_job_state;

/* What Status, List and Snapshot show of an object. Strings are owned by
 * the table; a view is valid only while the table's lock is held (inside
 * the callback that received it). */
typedef struct rvd_object_view {
    const char *url;         /* redacted: no credentials */
    const char *destination; /* as requested; NULL when none */
    rv_state state;
    rv_progress progress;
    const char *sha256; /* NULL until done (and digested) */
    const char *crc32c; /* 8 hex digits; NULL until done (and known) */
    unsigned retries;
    bool from_cache;
    uint64_t resumed_bytes;   /* durable when it started (a resume, or all of it: a hit) */
    int error;                /* rv_error; RV_OK unless failed/cancelled */
    const char *error_detail; /* "" when none */
} rvd_object_view;

typedef struct rvd_job_view {
    const char *id;
    rvd_job_state state;
    const rvd_object_view *objects;
    size_t n_objects;
    bool detached;
    unsigned subscribers;
    int64_t created_ms, ended_ms; /* unix ms; ended 0 while it runs */
} rvd_job_view;

typedef enum rvd_event_kind {
    RVD_EV_ACCEPTED = 1,
    RVD_EV_SNAPSHOT,
    RVD_EV_QUEUED,
    RVD_EV_STARTED,
    RVD_EV_PROGRESS,
    RVD_EV_RETRYING,
    RVD_EV_COMPLETED,
    RVD_EV_FAILED,
    RVD_EV_CANCELLED,
} rvd_event_kind;

/* One event for subscribers; valid during the sink call only. */
typedef struct rvd_event {
    rvd_event_kind kind;
    const char *job_id;
    uint32_t object_index;
    int64_t time_ms;
    const rvd_job_view *job;        /* SNAPSHOT */
    const rvd_object_view *object;  /* per-object events: the object now */
    rv_retry_info retry;            /* RETRYING */
} rvd_event;

/* A subscriber: the RPC side's end of a stream. The table holds the sink
 * from a successful subscribe until it calls end() or the RPC side's
 * rvd_jobs_unsubscribe() returns true; after either it never touches the
 * sink again. Both callbacks run with the table's lock held. */
typedef struct rvd_sink {
    void (*event)(void *ctx, const rvd_event *ev);
    /* Optional: send what event() queued. Called after a run of events
     * (what one iteration of the engine produced, or what one call such as
     * a subscribe replayed), so the events of a run may go out together.
     * NULL: event() must send at once. end() implies a flush. */
    void (*flush)(void *ctx);
    /* The stream is over: code RVD_OK when the job ended, RVD_UNAVAILABLE
     * at shutdown. message may be NULL. */
    void (*end)(void *ctx, rvd_code code, const char *message);
    void *ctx;
} rvd_sink;

/* Where a Read of one object stands; valid during the call only. */
typedef struct rvd_read_state {
    uint64_t ready; /* bytes [0, ready) may be read, in order */
    bool done;      /* delivered: ready is the object's size */
    bool failed;    /* ended without delivery, or changed on the origin:
                       the read cannot go on (code and why say so) */
    rvd_code code;
    const char *why;
    int data_fd;    /* the file to read, borrowed (dup it); -1: none yet */
} rvd_read_state;

/* A reader: the RPC side's end of a Read stream. The table calls
 * notify() (lock held) when more bytes are ready or the object ended; it
 * holds the sink until a notify with done or failed, or until
 * rvd_jobs_read_stop() returns true. */
typedef struct rvd_reader {
    void (*notify)(void *ctx, const rvd_read_state *st);
    void *ctx;
} rvd_reader;

typedef struct rvd_jobs_limits {
    unsigned max_running;     /* jobs in the engine at once */
    unsigned max_queued;      /* jobs waiting; beyond: RESOURCE_EXHAUSTED */
    unsigned max_subscribers; /* per job */
    unsigned history;         /* ended jobs kept */
    /* The same, for one uid (fairness, see "Per uid" in jobstate.c): its
     * jobs start only while it has fewer than per_uid_running running;
     * it may have per_uid_queued waiting (beyond: RESOURCE_EXHAUSTED
     * naming per-uid-queued-jobs); its ended jobs beyond per_uid_history
     * leave the history, oldest first. Root and the daemon's own uid are
     * held only to the global limits (here and below). */
    unsigned per_uid_running;
    unsigned per_uid_queued;
    unsigned per_uid_history;
    /* Bytes of requests (as received) one uid's jobs may hold: a
     * submission that would take its queued and running jobs' requests
     * over it is refused (RESOURCE_EXHAUSTED naming
     * per-uid-request-bytes), and its oldest ended jobs leave the history
     * while all of them are over it. 0: no limit. */
    uint64_t per_uid_request_bytes;
    bool link_deliveries;     /* a job that sets neither link nor copy
                                 delivers by hard link (link-deliveries);
                                 decided when the job is submitted */
} rvd_jobs_limits;

typedef struct rvd_jobs_stats {
    unsigned running, queued, subscribers;
    unsigned transfers;          /* origin connections in use */
    double rate_bps;             /* sum over running objects */
    uint64_t bytes_from_origin;  /* delivered since start, plus what runs now */
    uint64_t bytes_from_cache;   /* delivered from the cache since start */
    uint64_t cache_bytes;        /* what the cache holds */
    uint64_t cache_quota;        /* its limit (rvd_jobs_set_cache_quota); 0: none */
    unsigned done, failed, cancelled; /* ended jobs in the history, by state */
} rvd_jobs_stats;

typedef struct rvd_jobs rvd_jobs;

/* The cache quota in effect, for Stats (the worker applies it to the
 * engine and tells the table). */
void rvd_jobs_set_cache_quota(rvd_jobs *j, uint64_t quota);

/* wake(wake_ud) is called (without the lock) when the engine side has work:
 * the owner wakes the worker (rv_engine_wakeup). */
int rvd_jobs_new(const rvd_jobs_limits *limits, void (*wake)(void *), void *wake_ud,
                 rvd_jobs **ret);

/* Keep jobs in store (borrowed; it must outlive the table) from now on,
 * deliver objects that have no destination (Read-only) into reads_dirfd
 * (taken; a directory only the daemon writes),
 * and load what it holds: unfinished jobs are queued again (detached:
 * their callers are gone, they carry on by themselves; the engine resumes
 * each object from its durable ranges), ended ones return to the history.
 * Counts what was done; rows that cannot be read (e.g. the key changed)
 * are skipped. 0 or -errno. Call once, before the worker runs. */
int rvd_jobs_restore(rvd_jobs *j, rvd_jobstore *store, int reads_dirfd, unsigned *ret_resumed,
                     unsigned *ret_ended, unsigned *ret_skipped);
/* Ends every remaining sink with UNAVAILABLE. NULL is fine. Returns NULL.
 * The engine must be gone (its objects reference the table). */
rvd_jobs *rvd_jobs_free(rvd_jobs *j);

void rvd_jobs_set_limits(rvd_jobs *j, const rvd_jobs_limits *limits);

/* --- RPC side ----------------------------------------------------------- */

/* Submit req for caller; raw is the request message req was decoded from
 * (what the store keeps). Takes ownership of req (always). First the
 * caller's access to every destination and file:// source is checked as
 * the caller (PERMISSION_DENIED; INVALID_ARGUMENT for a missing
 * directory). With sink NULL (detached) nothing is subscribed. On RVD_OK
 * ret_id (RVD_JOB_ID_LEN+1 bytes) holds the job's id, the job is on disk,
 * and the sink (if any) has already received ACCEPTED and the job's events
 * so far. Otherwise *ret_msg is a malloc'd sentence. */
rvd_code rvd_jobs_submit(rvd_jobs *j, const rvd_peer *caller, rvd_download_req *req,
                         const uint8_t *raw, size_t raw_len, const rvd_sink *sink, char *ret_id,
                         char **ret_msg);

/* Attach sink to a job (Watch): SNAPSHOT first, then live events; a job
 * that already ended gets SNAPSHOT and end(OK) at once. */
rvd_code rvd_jobs_watch(rvd_jobs *j, const rvd_peer *caller, const char *id,
                        const rvd_sink *sink, char **ret_msg);

/* The stream behind sink went away: detach it. true when it was still
 * subscribed (the table has let go of it now); false when end() was, or
 * is being, called. */
bool rvd_jobs_unsubscribe(rvd_jobs *j, const char *id, const rvd_sink *sink);

/* Cancel for caller: detach the caller's newest subscriber of the job (its
 * stream gets CANCELLED for each unfinished object, then ends OK), or stop
 * a detached job of theirs that they hold no subscription to. *ret_state
 * and *ret_subscribers say where the job stands after. */
rvd_code rvd_jobs_cancel(rvd_jobs *j, const rvd_peer *caller, const char *id,
                         rvd_job_state *ret_state, unsigned *ret_subscribers, char **ret_msg);

/* Read object index of a job: notify() is called at once with where it
 * stands (from inside this call), then as it goes. An object delivered
 * earlier is read from its destination, opened as the caller. NOT_FOUND
 * (no such job or object), FAILED_PRECONDITION (the object failed, or its
 * file is gone). */
rvd_code rvd_jobs_read(rvd_jobs *j, const rvd_peer *caller, const char *id, uint32_t index,
                       const rvd_reader *reader, char **ret_msg);
/* The Read stream went away: true when the table let go of the reader now. */
bool rvd_jobs_read_stop(rvd_jobs *j, const char *id, uint32_t index, const rvd_reader *reader);

/* Call fn with the job's view, under the lock. */
rvd_code rvd_jobs_status(rvd_jobs *j, const rvd_peer *caller, const char *id,
                         void (*fn)(void *ud, const rvd_job_view *v), void *ud, char **ret_msg);

/* Call fn once, under the lock, with the visible jobs whose state is in
 * states_mask (bit 1<<state; 0: all), newest first, at most limit (n may
 * be 0). RVD_INTERNAL (fn not called): out of memory. */
rvd_code rvd_jobs_list(rvd_jobs *j, const rvd_peer *caller, unsigned states_mask,
                       unsigned limit,
                       void (*fn)(void *ud, const rvd_job_view *const *views, size_t n),
                       void *ud);

void rvd_jobs_stats_get(rvd_jobs *j, rvd_jobs_stats *ret);
/* The cache RPCs' queue (cacheops.h), owned by the table: pumped with it,
 * stopped with it. */
struct rvd_cacheops *rvd_jobs_cacheops(rvd_jobs *j);

/* --- Engine side (the worker thread) ------------------------------------ */

/* The hooks the engine must be created with (hooks_ud = the table). */
const rv_hooks *rvd_jobs_hooks(void);

/* Do what the RPC side asked: start queued jobs, cancel stopped ones,
 * release ended engine objects, trim the history; and flush the sinks of
 * the events since the last pump. Call after every rv_engine_perform
 * (before waiting again). */
void rvd_jobs_pump(rvd_jobs *j, rv_engine *e);

/* Shutdown: end every sink with UNAVAILABLE and stop reacting to the
 * engine's cancellations (they are the shutdown's, not the callers': the
 * jobs resume at the next start). Call before freeing the engine. */
void rvd_jobs_stop(rvd_jobs *j);

#endif
