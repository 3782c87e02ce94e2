/* cachefiles.h — the cache's file-system work, off the engine thread
 * (internal).
 *
 * Creating a blob and linking a finished one to its destination are the
 * costliest steps of a small object with durable state: each changes a
 * directory and an inode, tens of microseconds, and more while the
 * flusher's sync writes those inode-table blocks out (the change then
 * waits for the write). On the engine thread they held up every transfer.
 * One thread does them instead:
 *
 * - Blobs made ahead: when objects wait in the queue, the engine orders
 *   their blobs under store ids it reserved, and takes the open
 *   descriptors as the objects start. A blob made ahead has no row until
 *   its object records one, so a crash leaves it for recovery to remove,
 *   like any blob without a row.
 * - Deliveries: a finished, recorded blob is put in place at its
 *   destination (a hard link, or a copy under a hidden name renamed over
 *   the destination, or the tee the writer filled with the same bytes as
 *   the blob, stage.c, renamed the same way), and handed back with the
 *   result. A cache hit's blob
 *   is read back and checked against its recorded CRC-32C first (verify):
 *   its bytes may have changed since they were written (a hard link edited
 *   in place, a bad disk), and a 1 GiB read must not hold up the engine.
 *
 * Ownership: a blob handed out by rv_cachefiles_take is the caller's
 * (name and descriptor); every other one made is unlinked by
 * rv_cachefiles_free. A submitted delivery is the thread's until
 * rv_cachefiles_delivered returns it.
 */
#ifndef RV_CACHEFILES_H
#define RV_CACHEFILES_H

#include <stdbool.h>
#include <stdint.h>

#include "bgthread.h"

typedef struct rv_cachefiles rv_cachefiles;

/* A finished blob to put in place. */
typedef struct rv_delivery {
    rv_bg_req bg;        /* first: the queue's link */
    int kind;            /* the thread's */
    int fd;              /* in: the blob, open (closed by the thread) */
    char *blob_path;     /* in: owned by the request */
    char *dest_path;     /* in: owned by the request */
    uint64_t size;       /* in */
    bool link;           /* in: a hard link may serve; else a copy */
    int mode;            /* in: a copy's mode (tempname.h), RV_MODE_UMASK by
                            default; a link's is the blob's */
    int tee_fd;          /* in: -1, or a file already holding the blob's bytes
                            (stage.c's tee), put in place instead of a copy;
                            closed by the thread */
    char *tee_path;      /* in: the tee's hidden name, or NULL (unnamed); owned
                            by the request, removed unless put in place */
    bool make_readonly;  /* in: RV_BLOB_MODE first (a resumed blob was made writable) */
    bool no_replace;     /* in: never replace a file at dest_path (err EEXIST) */
    bool verify;         /* in: check the blob's bytes against crc32c first */
    uint32_t crc32c;     /* in: the CRC-32C of the blob's size bytes, with verify */
    bool corrupt;        /* out: verify found other bytes: nothing was put in place */
    int err;             /* out: 0, or the errno of the step that failed */
    void *tag;           /* the submitter's; untouched */
} rv_delivery;

/* A blob's mode: read-only, because delivered blobs become hard links,
 * which must not be writable (the descriptor that made it still writes);
 * readable by the cache's owner only, because a blob may hold what a
 * caller fetched with credentials, and a hard link to it (a delivery with
 * link) is the same inode wherever it is. Not 0444: a linked delivery
 * would be readable by every user, whatever its owner's umask. */
#define RV_BLOB_MODE 0400

/* Blobs are made as <blob_dir>/<id>, mode RV_BLOB_MODE.
 * wake(ud) runs on the thread after it finished deliveries. */
int rv_cachefiles_new(const char *blob_dir, uint64_t seed, void (*wake)(void *ud), void *ud,
                      rv_cachefiles **ret);
/* Finish what is queued, then unlink and close every blob made and not
 * taken, and free deliveries not taken back. NULL is fine. Returns NULL. */
rv_cachefiles *rv_cachefiles_free(rv_cachefiles *c);

/* Order blobs for n ids from first on (one request to the thread). */
int rv_cachefiles_order(rv_cachefiles *c, int64_t first, unsigned n);
/* Blobs ordered and not yet taken (made or not). */
unsigned rv_cachefiles_ordered(const rv_cachefiles *c);
/* The oldest blob made, without waiting: true with its id and open
 * descriptor, false when none is ready. Blobs the thread could not make
 * are skipped (the caller creates its own and reports what fails then). */
bool rv_cachefiles_take(rv_cachefiles *c, int64_t *ret_id, int *ret_fd);

/* A new delivery (kind set, fd and tee_fd -1), or NULL. */
rv_delivery *rv_delivery_new(void);
/* Closes fd and tee_fd, removes a tee_path still set, frees the paths and
 * d. NULL is fine. */
void rv_delivery_free(rv_delivery *d);
/* Queue deliveries: a list linked through bg.next, one request to the
 * thread. */
void rv_cachefiles_deliver(rv_cachefiles *c, rv_delivery *list);
/* Finished deliveries, oldest first, linked through bg.next; NULL when
 * none. */
rv_delivery *rv_cachefiles_delivered(rv_cachefiles *c);

#endif
