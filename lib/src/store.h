/* store.h — durable download state in SQLite (internal to lib/).
 *
 * One database per state directory holds objects (source key, URL, size,
 * validators, digests, whether complete), their ranges with how much of
 * each is durable, and jobs (the daemon's). The directory has one owner at a
 * time: rv_store_open takes an exclusive lock on <dir>/lock for the store's
 * whole life and writes the owner's pid into it; a second opener fails fast
 * with RV_E_STATE_BUSY naming that pid.
 *
 * THE INVARIANT. A range's `durable` mark never runs ahead of the disk:
 * bytes [start, durable) of a range are fdatasync'ed in the blob before a
 * transaction records durable (and the CRC-32C of exactly those bytes). A
 * batch of marks is one transaction, numbered; after a crash the ranges the
 * last batch advanced are re-checked against their CRC before they are
 * trusted (rv_store_last_batch).
 *
 *   range state        durable        on disk                  after a crash
 *   not started        start          nothing promised         fetched again
 *   in progress        start..end     [start, durable) synced  resumes at durable
 *   done               end            whole range synced       kept
 *
 * Commits use synchronous=NORMAL in WAL mode: a commit may be lost on power
 * failure, which only ever loses marks (the data is refetched), never makes
 * a mark claim bytes that are not on disk.
 *
 * Recovery at open: a database that fails to open or fails PRAGMA
 * quick_check is moved aside as <db>.corrupt-<time> (with its -wal/-shm)
 * and a fresh one is created; *ret_note says so. Never a crash loop.
 */
#ifndef RV_STORE_H
#define RV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RV_STORE_UNKNOWN UINT64_MAX
#define RV_STORE_SCHEMA_VERSION 2

typedef struct rv_store rv_store;

typedef struct rv_store_object {
    int64_t id;
    char *key;           /* identity: normalised URL + credential fingerprint */
    char *url;           /* for display only: rv_url_redact of the URL given */
    uint64_t size;       /* RV_STORE_UNKNOWN until resolved */
    char *etag;          /* strong validator or NULL */
    char *last_modified; /* or NULL */
    char *blob;          /* file name inside the cache directory */
    bool complete;       /* all ranges durable and verified */
    bool has_crc32c;
    uint32_t crc32c;     /* of the whole object, when complete */
    char sha256[65];     /* "" when not computed */
    int64_t used_at;     /* unix seconds of the last use (LRU) */
    bool pinned;         /* never evicted */
} rv_store_object;

typedef struct rv_store_range {
    uint64_t start, end; /* [start, end) */
    uint64_t durable;    /* [start, durable) is on disk; start <= durable <= end */
    uint32_t crc32c;     /* CRC-32C of [start, durable) */
    int64_t batch;       /* the batch that last advanced durable; 0: none */
} rv_store_range;

/* A mark: range (object_id, start) is durable up to `durable`. */
typedef struct rv_store_mark {
    int64_t object_id;
    uint64_t start;
    uint64_t durable;
    uint32_t crc32c;
} rv_store_mark;

/* Open (creating dir, mode 0700, and the database as needed), lock, check,
 * migrate. *ret_note (may be NULL) gets a malloc'd sentence when recovery
 * did something the owner should log. Errors: RV_E_STATE_BUSY (another
 * owner; *ret_note names its pid), RV_E_STATE, RV_E_DEST_UNWRITABLE (the
 * directory cannot be created or written), RV_E_NOMEM. */
int rv_store_open(const char *dir, rv_store **ret, char **ret_note);
rv_store *rv_store_close(rv_store *s);

/* Group the writes between begin and end into one transaction (nesting is
 * allowed; the outermost end commits, or rolls everything back when any
 * write inside failed and returns that failure). */
int rv_store_begin(rv_store *s);
int rv_store_end(rv_store *s);

/* The largest object id in use (0 when none). */
int rv_store_max_id(rv_store *s, int64_t *ret);

/* The last SQLite error message, for details; valid until the next call. */
const char *rv_store_errmsg(const rv_store *s);

/* Free the strings of o (not o itself) and zero it. */
void rv_store_object_clear(rv_store_object *o);

/* Look up by key. *found false (and *ret untouched) when absent. */
int rv_store_find(rv_store *s, const char *key, rv_store_object *ret, bool *found);
/* Insert o; with o->id 0 the database picks the id and sets o->id, else o->id
 * is used (the owner allocates ids itself to batch inserts). The key must
 * not exist. */
int rv_store_insert(rv_store *s, rv_store_object *o);
/* Record what resolution learnt and replace the object's ranges (all with
 * durable = start) in one transaction. */
int rv_store_resolve(rv_store *s, const rv_store_object *o, const rv_store_range *ranges,
                     size_t n);
/* Add ranges (durable = start) to an object that has none. */
int rv_store_add_ranges(rv_store *s, int64_t id, const rv_store_range *ranges, size_t n);
/* The object's ranges, sorted by start. *ret is malloc'd (free it). */
int rv_store_ranges(rv_store *s, int64_t id, rv_store_range **ret, size_t *ret_n);
/* Commit a batch of marks in one transaction; *ret_batch gets its number. */
int rv_store_commit(rv_store *s, const rv_store_mark *marks, size_t n, int64_t *ret_batch);
/* The number of the last committed batch (0 when none). */
int rv_store_last_batch(rv_store *s, int64_t *ret);
/* Mark the object complete with its digests. */
int rv_store_complete(rv_store *s, int64_t id, uint32_t crc32c, const char *sha256);
/* Touch used_at (LRU). */
int rv_store_touch(rv_store *s, int64_t id, int64_t now);
/* Forget an object and its ranges. */
int rv_store_delete(rv_store *s, int64_t id);
/* Every object, for recovery and eviction: calls fn for each (stop early by
 * returning non-zero, which is returned). */
int rv_store_each(rv_store *s, int (*fn)(void *ud, const rv_store_object *o), void *ud);

#endif
