/* writer.h — writes buffers to files off the engine thread (internal).
 *
 * Big objects are written from staging buffers (stage.c). With durable
 * state, with O_DIRECT: the bytes go from a buffer of ours to the disk,
 * not through the page cache, so nothing is copied into the cache and
 * written back later, and the flusher's fdatasync has no data left to
 * write; a direct write waits for the disk. Without state, through the
 * page cache: the copy into it runs here instead of on the engine thread.
 * With state the thread also computes each buffer's CRC-32C, which the
 * engine would otherwise compute as the bytes arrive.
 *
 * Requests go to lanes, threads that each write theirs in submission
 * order, one at a time; the submitter picks the lane, and so how many
 * writes are in flight (stage.c: more for direct writes, which wait for
 * the disk, than for page-cache ones, which wait for a core).
 *
 * A request may name a second file (tee_fd), written the same bytes at
 * the same offset after the first, through the page cache (stage.c: the
 * tee). Both writes are done before the request comes back.
 *
 * Ownership: a submitted request, its buffer and its descriptors are the
 * writer's until rv_writer_take_done returns the request; the writer closes
 * req->fd and req->tee_fd.
 */
#ifndef RV_WRITER_H
#define RV_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgthread.h"

typedef struct rv_writer rv_writer;

/* Lanes at most; a lane's thread starts with its first request. */
#define RV_WRITER_LANES 8

typedef struct rv_write_req {
    rv_bg_req bg;       /* first: the queue's link */
    int fd;             /* in: where to write (closed by the writer) */
    unsigned char *buf; /* in: the bytes (the submitter's memory) */
    size_t len;         /* in */
    uint64_t off;       /* in: the file offset of buf[0] */
    bool want_crc;      /* in: compute crc */
    uint32_t crc;       /* out with want_crc: CRC-32C of buf[0..len) */
    int err;            /* out: 0, or the errno of the failed write */
    int tee_fd;         /* in: also write the bytes here, or -1 (closed by the writer) */
    int tee_err;        /* out: 0, or the errno of the failed write to tee_fd */
} rv_write_req;

/* Write n bytes of buf at off, retrying short writes and EINTR. Returns 0
 * or an errno (ENOSPC when a write makes no progress). */
int rv_write_all(int fd, const void *buf, size_t n, uint64_t off);

/* wake(ud) is called on a lane's thread when it has nothing left queued. */
int rv_writer_new(void (*wake)(void *ud), void *ud, rv_writer **ret);
/* Write what is queued and end the thread; idempotent. */
void rv_writer_stop(rv_writer *w);
/* Stops, then frees. Requests not taken back are the caller's: take them
 * first. NULL is fine. Returns NULL. */
rv_writer *rv_writer_free(rv_writer *w);
/* Queue req on a lane (any number; taken modulo RV_WRITER_LANES).
 * Requests on one lane are written in the order submitted. Fails only
 * when the lane's thread cannot start (req is then still the caller's). */
int rv_writer_submit(rv_writer *w, unsigned lane, rv_write_req *req);
/* Completed requests, as a list, in submission order within each lane;
 * NULL when none. */
rv_write_req *rv_writer_take_done(rv_writer *w);
/* Block until a request of the busiest lane is done, or it has nothing
 * queued. */
void rv_writer_wait(rv_writer *w);

#endif
