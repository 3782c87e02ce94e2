/* flusher.h — makes blob data durable off the engine thread (internal).
 *
 * fdatasync of a big file, or of many small ones, takes milliseconds to
 * seconds; the engine thread must not wait for it. The engine submits sync
 * requests (a dup of the blob's descriptor plus an opaque tag); one flusher
 * thread takes everything queued (batches start at least 3 ms apart, so
 * that one sync covers more, unless hurried), checksums the spans asked
 * for, syncs it —
 * fdatasync per file, or one syncfs for the batch where that costs less
 * (the flusher measures both as it goes) — and hands the requests back
 * with their result, waking the engine through the callback.
 *
 * Ownership: a submitted request belongs to the flusher until
 * rv_flusher_take_done returns it; the flusher closes req->fd.
 */
#ifndef RV_FLUSHER_H
#define RV_FLUSHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgthread.h"

typedef struct rv_flusher rv_flusher;

/* A span of the file and its CRC-32C: known to the submitter when the
 * bytes passed through its memory, else computed by the flusher while it
 * syncs (read back from the page cache, still hot). */
typedef struct rv_sync_span {
    uint64_t from, to; /* in: [from, to) */
    bool have_crc;     /* in: crc is given */
    uint32_t crc;      /* in with have_crc, else out: CRC-32C of [from, to) alone */
} rv_sync_span;

typedef struct rv_sync_req {
    rv_bg_req bg;        /* first: the queue's link */
    int fd;              /* in: a descriptor of the file to sync (closed by the flusher) */
    size_t n_spans;      /* in: spans to checksum (may be 0) */
    rv_sync_span *spans; /* in/out; owned by the submitter */
    int err;             /* out: 0, or the errno of the failed read or sync */
    void *tag;           /* the submitter's; untouched */
} rv_sync_req;

/* wake(ud) is called on the flusher thread after each batch completes. */
int rv_flusher_new(void (*wake)(void *ud), void *ud, rv_flusher **ret);
/* Sync everything still queued and end the thread; idempotent. Completed
 * requests stay for rv_flusher_take_done. */
void rv_flusher_stop(rv_flusher *f);
/* Stops, then frees the flusher. Requests not taken back are the caller's
 * to free: take them first. Returns NULL. */
rv_flusher *rv_flusher_free(rv_flusher *f);
void rv_flusher_submit(rv_flusher *f, rv_sync_req *req);
/* Sync what is queued without waiting for the spacing between syncs:
 * nothing more is coming soon (the last objects of a run). */
void rv_flusher_hurry(rv_flusher *f);
/* Completed requests, oldest first, as a list; NULL when none. */
rv_sync_req *rv_flusher_take_done(rv_flusher *f);

#endif
