/* digester.h — sha256 of objects' bytes off the engine thread (internal).
 *
 * SHA-256 is slower on one core than a loopback download: hashing on the
 * engine thread, as the bytes arrived, took half of that thread's time
 * and made --digest runs several times slower than the download. The
 * engine submits requests instead ("add these spans, in order, to this
 * context"), in file order per object, one at a time per object, and the
 * digester thread hashes them on another core. A span is either a buffer
 * that holds its bytes (a stage that landed at the digest frontier,
 * stage.c: hashed from memory, nothing is read) or a part of the file
 * (read back through the page cache, or from the disk when it was written
 * with O_DIRECT).
 *
 * Ownership: a submitted request, its descriptor, its spans, the buffers
 * they point to and its hash context are the digester's until
 * rv_digester_take_done returns the request; the digester closes req->fd
 * (when it is not -1).
 */
#ifndef RV_DIGESTER_H
#define RV_DIGESTER_H

#include <stdint.h>

#include "bgthread.h"
#include "sha256.h"

typedef struct rv_digester rv_digester;

/* Bytes [from, to) of the file: in buf[0 .. to - from) when buf is set,
 * else read from the request's fd. */
typedef struct rv_digest_span {
    uint64_t from, to;
    const unsigned char *buf;
} rv_digest_span;

typedef struct rv_digest_req {
    rv_bg_req bg;          /* first: the queue's link */
    int fd;                /* in: a descriptor of the file (closed by the digester),
                              or -1 when every span has its buffer */
    const rv_digest_span *spans; /* in: contiguous, in file order, following
                                    what hash has seen */
    size_t n_spans;
    rv_sha256 *hash;       /* in/out: the context they go into */
    int err;               /* out: 0, the errno of a failed read (EIO: the file
                              ended before a span's end; EBADF: a span to read
                              without a descriptor), or EPROTO: the hash update
                              failed. The spans before the failing one are hashed. */
} rv_digest_req;

/* wake(ud) is called on the digester thread after each batch. */
int rv_digester_new(void (*wake)(void *ud), void *ud, rv_digester **ret);
/* Finish what is queued and end the thread; idempotent. */
void rv_digester_stop(rv_digester *d);
/* Stops, then frees. Requests not taken back are the caller's: take them
 * first. Returns NULL. */
rv_digester *rv_digester_free(rv_digester *d);
void rv_digester_submit(rv_digester *d, rv_digest_req *req);
/* Completed requests, oldest first, as a list; NULL when none. */
rv_digest_req *rv_digester_take_done(rv_digester *d);

#endif
