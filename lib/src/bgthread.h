/* bgthread.h — a thread that works through queued requests in batches, off
 * the engine thread (internal).
 *
 * The engine submits requests: any struct whose first member is an
 * rv_bg_req. The thread takes everything queued as one batch, runs
 * work(ctx, batch) on it, appends the batch to the done list and calls
 * wake(ud); the engine takes the done list back on its own thread. The
 * flusher (syncs) and the digester (sha256) are two of these.
 *
 * Ownership: a submitted request is the thread's until rv_bgthread_take_done
 * returns it. work() runs on the thread and touches nothing but the batch
 * and ctx.
 */
#ifndef RV_BGTHREAD_H
#define RV_BGTHREAD_H

#include <stdbool.h>

typedef struct rv_bg_req {
    struct rv_bg_req *next;
} rv_bg_req;

typedef struct rv_bgthread rv_bgthread;

/* Flags of rv_bgthread_new. */
enum {
    /* Call wake only after a batch that leaves nothing queued: a submitter
     * that takes results back as it goes needs no wake while it keeps the
     * thread busy. */
    RV_BG_WAKE_WHEN_IDLE = 1 << 0,
    /* A batch is one request: each is handed back as soon as it is done,
     * for a submitter waiting for its buffers. */
    RV_BG_ONE_AT_A_TIME = 1 << 1,
};

/* Start the thread, named name (at most 15 characters: what top -H and
 * debuggers show). It blocks every signal (the application's threads
 * handle them). With spacing_us > 0, a batch starts no sooner than
 * spacing_us after the previous one did; requests submitted meanwhile join
 * it. The first batch after a quiet spell starts at once. wake(ud) runs
 * after each batch; flags (RV_BG_*) change that and the batches. */
int rv_bgthread_new(const char *name, void (*work)(void *ctx, rv_bg_req *batch), void *ctx,
                    void (*wake)(void *ud), void *ud, unsigned spacing_us, unsigned flags,
                    rv_bgthread **ret);
/* Work through everything still queued (without spacing), then end the
 * thread; idempotent.
 * Completed requests stay for rv_bgthread_take_done. */
void rv_bgthread_stop(rv_bgthread *t);
/* Stops, then frees the thread. Requests not taken back are the caller's:
 * take them first. NULL is fine. Returns NULL. */
rv_bgthread *rv_bgthread_free(rv_bgthread *t);
void rv_bgthread_submit(rv_bgthread *t, rv_bg_req *req);
/* Submit a NULL-terminated list of requests at once (one batch, at most
 * one wake of the thread). */
void rv_bgthread_submit_list(rv_bgthread *t, rv_bg_req *list);
/* Start the next batch without waiting for the spacing: nothing more is
 * coming to join it. */
void rv_bgthread_hurry(rv_bgthread *t);
/* Completed requests, oldest first, as a list; NULL when none. */
rv_bg_req *rv_bgthread_take_done(rv_bgthread *t);
/* Block until a completed request waits to be taken, or nothing is queued
 * or in work (then there is nothing to wait for). */
void rv_bgthread_wait_done(rv_bgthread *t);

#endif
