/* cacheops.h — the cache RPCs' work (CacheList, CacheRemove, CacheVerify),
 * queued by the RPC side and done on the engine thread, which alone may
 * call the engine (rv_engine_cache_scan).
 *
 * Who may: the cache is shared by every caller of the daemon, and its
 * entries say what others downloaded (URLs) and cost them time to refetch
 * when removed; entries are not attributed to a uid. So only root and the
 * daemon's own uid may list, remove or verify (a per-user daemon's user is
 * its uid: they manage their own cache); any other caller gets
 * PERMISSION_DENIED and nothing happens (docs/security.md, "The cache").
 *
 * An operation's results go to its sink: entry() once per entry acted on,
 * then end(). Both are called on the engine thread with the table's lock
 * held (they must only queue), after a scan, never during one: the scan
 * (and a verify's reads) runs without the lock, so cancel and submit on
 * the RPC side never wait for the disk. A verify checks a bounded batch of entries
 * per pump (cacheops.c, VERIFY_TURN_*), so transfers run between batches;
 * an entry larger than the batch's bytes is read in one turn, holding up
 * the engine thread for that read.
 *
 * The table is owned by the job table (jobs.c creates, pumps, stops and
 * frees it).
 */
#ifndef RVD_CACHEOPS_H
#define RVD_CACHEOPS_H

#include <retriever/retriever.h>
#include <stdbool.h>

#include "peer.h"
#include "request.h"

typedef struct rvd_cache_sink {
    void (*entry)(void *ctx, const rv_cache_entry *en, rv_cache_result res);
    /* code is an rvd_code (jobs.h): 0 when done */
    void (*end)(void *ctx, int code, const char *message);
    void *ctx;
} rvd_cache_sink;

typedef struct rvd_cacheops rvd_cacheops;

int rvd_cacheops_new(void (*wake)(void *), void *wake_ud, rvd_cacheops **ret);
/* Ends what is queued with UNAVAILABLE. NULL is fine. Returns NULL. */
rvd_cacheops *rvd_cacheops_free(rvd_cacheops *o);
/* No more operations; those queued end with UNAVAILABLE. */
void rvd_cacheops_stop(rvd_cacheops *o);

/* Queue op for caller. rm (taken, may be NULL) selects what
 * RV_CACHE_REMOVE removes. 0 (the sink gets its results later), or an
 * rvd_code with *ret_msg a malloc'd sentence (nothing was queued). */
int rvd_cacheops_submit(rvd_cacheops *o, const rvd_peer *caller, rv_cache_op op,
                        rvd_cache_remove_req *rm, const rvd_cache_sink *sink, char **ret_msg);
/* The stream behind sink went away: true when the table let go of it
 * (always: an operation running now finishes without calling it). */
bool rvd_cacheops_cancel(rvd_cacheops *o, const rvd_cache_sink *sink);

/* Engine thread: do the queued work (a verify, one batch per call). */
void rvd_cacheops_pump(rvd_cacheops *o, rv_engine *e);

#endif
