/* jobstore.h — the job table on disk, so jobs outlive the daemon.
 *
 * One SQLite database, <state-dir>/jobs.sqlite (WAL), next to the engine's
 * own. A job row holds who submitted it and its request message exactly as
 * received — encrypted (AES-256-GCM), because a request may carry
 * credentials (headers, URL userinfo, signed query strings) and nothing
 * credential-bearing is stored in clear. The key lives in
 * <state-dir>/jobs.key (mode 0600, 32 random bytes, made at the first
 * start); the database alone reveals no request. An ended job also has one
 * row per object with its outcome, for Status and List after a restart.
 *
 * The schema has a version (PRAGMA user_version, now 1) and is migrated
 * forward on open; a database from a newer daemon is refused, not guessed
 * at. Version 1 added the owner's supplementary groups (jobs.groups: gids
 * as 32-bit little-endian integers, NULL when unknown).
 *
 * On start, unfinished jobs are resubmitted (the engine resumes each
 * object from its durable ranges) and ended ones return to the history.
 *
 * Thread-safe: one connection behind one mutex (the RPC side writes new
 * jobs, the worker side writes ends). Writes are small and WAL commits
 * with synchronous=NORMAL do not wait for the disk: losing the last
 * instants of history to a power cut is acceptable, losing a job's
 * identity is not, and a job is committed before its id is returned.
 */
#ifndef RVD_JOBSTORE_H
#define RVD_JOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "peer.h"

typedef struct rvd_jobstore rvd_jobstore;

/* One object's outcome (an ended job). Strings may be NULL. */
typedef struct rvd_stored_object {
    int state;          /* rv_state */
    uint64_t bytes_done, bytes_total;
    bool total_known, from_cache;
    unsigned retries;
    const char *sha256, *crc32c;
    int error;          /* rv_error */
    const char *error_detail;
} rvd_stored_object;

typedef struct rvd_stored_job {
    const char *id;
    uint64_t seq;       /* submission order */
    rvd_peer owner;     /* pid unused; groups borrowed (owned by whoever made
                           the struct); groups_known false for a row written
                           before groups were recorded (schema 0) */
    bool detached;
    int state;          /* rvd_job_state */
    int64_t created_ms, ended_ms;
    const uint8_t *request; /* the DownloadRequest message, decrypted */
    size_t request_len;
    const rvd_stored_object *objects; /* ended jobs only; else NULL */
    size_t n_objects;
} rvd_stored_job;

/* Open (creating) the database and key in state_dir. 0 or -errno with
 * *ret_error a malloc'd sentence. */
int rvd_jobstore_open(const char *state_dir, rvd_jobstore **ret, char **ret_error);
rvd_jobstore *rvd_jobstore_close(rvd_jobstore *s);

/* Record a new job (j->objects ignored). 0 or -errno. */
int rvd_jobstore_add(rvd_jobstore *s, const rvd_stored_job *j);
int rvd_jobstore_set_detached(rvd_jobstore *s, const char *id, bool detached);
/* What of an ended job's request is kept (rvd_request_scrub): 0 and a
 * malloc'd message, or -errno. */
typedef int (*rvd_jobstore_scrub_fn)(const uint8_t *buf, size_t len, uint8_t **ret,
                                     size_t *ret_len);

/* The job ended: its state, end time and objects' outcomes; and, with
 * scrub, its stored request replaced by scrub's version of it, in the same
 * transaction (j->request is not read). */
int rvd_jobstore_end(rvd_jobstore *s, const rvd_stored_job *j, rvd_jobstore_scrub_fn scrub);
int rvd_jobstore_remove(rvd_jobstore *s, const char *id);

/* Call fn for every stored job, oldest first. A row that cannot be
 * decrypted or read is skipped and counted in *ret_skipped. 0 or -errno. */
int rvd_jobstore_load(rvd_jobstore *s, void (*fn)(void *ud, const rvd_stored_job *j), void *ud,
                      unsigned *ret_skipped);

#endif
