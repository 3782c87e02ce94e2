/* flusher.c — the sync thread. */
#include "flusher.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "bgthread.h"
#include "monoclock.h"
#include "readback.h"
#include "rv_error.h"

#define SPAN_BUFFER_SIZE (256u << 10)

/* Starting costs, in ns, before any are measured: the break-even batch is
 * 8 files (measured on ext4: docs/benchmarks.md, "What each default was chosen from"). */
#define FDATASYNC_NS_START 330000u
#define SYNCFS_NS_START (8u * FDATASYNC_NS_START)

/* Least time between the starts of two syncs. Every sync has a fixed cost
 * besides the data: the file system's metadata blocks written again, a
 * cache flush of the disk, the requests' interrupts (on a virtual disk a
 * kick each, and a flush on the host). Without spacing, many small objects
 * finishing one after another got a syncfs for a handful of them each,
 * back to back; with spacing the batches grow and the run is faster
 * (docs/benchmarks.md, "What each default was chosen from"). The first sync after a quiet spell starts at
 * once, so a lone download waits no longer; a busy one waits 3 ms at most,
 * and the last objects of a run not at all (rv_flusher_hurry). */
#define SYNC_SPACING_US 3000u

/* How long a syncfs estimate is trusted. Its cost depends on what else the
 * file system has dirty at that moment: one syncfs measured while another
 * process wrote gigabytes would otherwise make every later batch take the
 * per-file path for the rest of a daemon's life, as nothing measures
 * syncfs again once it is not chosen. An older estimate is put to the test
 * on the next batch large enough for the starting costs to choose syncfs,
 * and the new sample replaces it rather than being averaged in: at most one
 * syncfs per period where it really is dear. */
#define SYNCFS_STALE_NS 1000000000u

struct rv_flusher {
    rv_bgthread *thread;
    unsigned char *buf;      /* the thread's read-back buffer */
    /* What one fdatasync and one syncfs cost on this file system lately
     * (moving averages, flusher thread only). syncfs writes back every
     * dirty file of the file system, so its cost depends on what else the
     * machine writes: measuring both keeps the choice right when that
     * changes. */
    uint64_t fdatasync_ns, syncfs_ns;
    uint64_t syncfs_at; /* when syncfs_ns last took a sample (rv_mono_ns), 0: never */
};

static rv_sync_req *next_req(rv_sync_req *r) {
    return (rv_sync_req *)r->bg.next;
}

/* CRC-32C of each span of r's file. Returns 0 or an errno. */
static int checksum(rv_flusher *f, rv_sync_req *r) {
    for (size_t i = 0; i < r->n_spans; i++) {
        rv_sync_span *sp = &r->spans[i];
        int err = sp->have_crc ? 0
                               : rv_readback_crc32c(r->fd, sp->from, sp->to, f->buf,
                                                    SPAN_BUFFER_SIZE, &sp->crc);
        if (err)
            return err;
    }
    return 0;
}

/* avg += (sample - avg) / 4 */
static void average_in(uint64_t *avg, uint64_t sample) {
    *avg = *avg - *avg / 4 + sample / 4;
}

/* Whether a batch of n files is synced with one syncfs rather than n
 * fdatasyncs: where the estimates say it is cheaper, or where the syncfs
 * estimate is stale and the starting costs would choose it. */
static bool batch_syncfs(const rv_flusher *f, unsigned n, bool stale) {
    if (n < 2)
        return false;
    if ((uint64_t)n * f->fdatasync_ns >= f->syncfs_ns)
        return true;
    return stale && (uint64_t)n * f->fdatasync_ns >= SYNCFS_NS_START;
}

/* The thread's work: one batch of requests. */
static void sync_batch(void *ctx, rv_bg_req *list) {
    rv_flusher *f = ctx;
    rv_sync_req *batch = (rv_sync_req *)list;
    unsigned n = 0, synced = 0;
    for (rv_sync_req *r = batch; r; r = next_req(r)) {
        r->err = checksum(f, r);
        n++;
    }
    uint64_t t0 = rv_mono_ns();
    bool stale = t0 - f->syncfs_at >= SYNCFS_STALE_NS;
    if (batch_syncfs(f, n, stale)) {
        /* One call for the whole file system, cheaper than n fdatasyncs.
         * Since Linux 5.8 it reports writeback errors of the file system. */
        int err = syncfs(batch->fd) == 0 ? 0 : errno;
        for (rv_sync_req *r = batch; r; r = next_req(r))
            r->err = r->err ? r->err : err;
        f->syncfs_at = rv_mono_ns();
        if (stale)
            f->syncfs_ns = f->syncfs_at - t0; /* the old estimate says nothing now */
        else
            average_in(&f->syncfs_ns, f->syncfs_at - t0);
    } else {
        for (rv_sync_req *r = batch; r; r = next_req(r), synced++)
            r->err = r->err ? r->err : fdatasync(r->fd) == 0 ? 0 : errno;
        average_in(&f->fdatasync_ns, (rv_mono_ns() - t0) / synced);
    }
    for (rv_sync_req *r = batch; r; r = next_req(r)) {
        close(r->fd);
        r->fd = -1;
    }
}

int rv_flusher_new(void (*wake)(void *ud), void *ud, rv_flusher **ret) {
    rv_flusher *f = calloc(1, sizeof(*f));
    if (!f || !(f->buf = malloc(SPAN_BUFFER_SIZE))) {
        free(f);
        return RV_E_NOMEM;
    }
    f->fdatasync_ns = FDATASYNC_NS_START;
    f->syncfs_ns = SYNCFS_NS_START;
    int r = rv_bgthread_new("rv-flusher", sync_batch, f, wake, ud, SYNC_SPACING_US, 0,
                            &f->thread);
    if (r != RV_OK) {
        free(f->buf);
        free(f);
        return r;
    }
    *ret = f;
    return RV_OK;
}

void rv_flusher_stop(rv_flusher *f) {
    rv_bgthread_stop(f->thread);
}

rv_flusher *rv_flusher_free(rv_flusher *f) {
    if (!f)
        return NULL;
    rv_bgthread_free(f->thread);
    free(f->buf);
    free(f);
    return NULL;
}

void rv_flusher_submit(rv_flusher *f, rv_sync_req *req) {
    req->err = 0;
    for (size_t i = 0; i < req->n_spans; i++)
        if (!req->spans[i].have_crc)
            req->spans[i].crc = 0;
    rv_bgthread_submit(f->thread, &req->bg);
}

void rv_flusher_hurry(rv_flusher *f) {
    rv_bgthread_hurry(f->thread);
}

rv_sync_req *rv_flusher_take_done(rv_flusher *f) {
    return (rv_sync_req *)rv_bgthread_take_done(f->thread);
}
