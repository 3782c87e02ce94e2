/* digester.h — sha256 of objects' files off the engine thread (internal).
 *
 * SHA-256 runs at ~1.4 GB/s here: hashing on the engine thread, as the
 * bytes arrived, took half of that thread's time for a 1 GiB download and
 * made --digest runs 3x slower than the download itself. The engine submits
 * requests instead ("add bytes [from, to) of this file to this context"),
 * in file order per object, one at a time per object; the digester thread
 * reads them back from the page cache (still hot: they were just written)
 * and hashes them on another core.
 *
 * Ownership: a submitted request, its descriptor and its hash context are
 * the digester's until rv_digester_take_done returns the request; the
 * digester closes req->fd.
 */
#ifndef RV_DIGESTER_H
#define RV_DIGESTER_H

#include <stdint.h>

#include "bgthread.h"
#include "sha256.h"

typedef struct rv_digester rv_digester;

typedef struct rv_digest_req {
    rv_bg_req bg;      /* first: the queue's link */
    int fd;            /* in: a descriptor of the file (closed by the digester) */
    uint64_t from, to; /* in: the bytes to add, following what hash has seen */
    rv_sha256 *hash;   /* in/out: the context they go into */
    int err;           /* out: 0, the errno of a failed read (EIO: the file
                          ended before to), or EPROTO: the hash update failed */
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
