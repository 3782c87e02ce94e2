/* sigwatch.h — turning SIGINT/SIGTERM into a flag plus an engine wake-up.
 *
 * Why a thread and not a signal handler: rv_engine_wakeup() is documented
 * as thread-safe, not as async-signal-safe. So the signals are blocked in
 * the calling thread (and in every thread created after it, such as
 * libcurl's resolver threads), and one small thread waits for them with
 * sigwait(). When one arrives it records the signal number and calls
 * rv_engine_wakeup(); the engine thread sees the number with
 * rvc_sigwatch_received() after rv_engine_perform() returns.
 *
 *   rvc_sigwatch *w;
 *   rvc_sigwatch_start(engine, &w);      // block SIGINT/SIGTERM, start thread
 *   ... loop: perform; if (rvc_sigwatch_received(w)) cancel everything ...
 *   rvc_sigwatch_stop(w);                // join thread, restore signal mask
 *   rv_engine_free(engine);              // only after stop: the thread uses it
 *
 * Only the first signal is recorded; later ones are swallowed until stop
 * (cancelling is synchronous, so a second Ctrl-C has nothing left to do).
 */
#ifndef RVC_SIGWATCH_H
#define RVC_SIGWATCH_H

#include "retriever/retriever.h"

typedef struct rvc_sigwatch rvc_sigwatch;

/* Start watching; e must outlive the watch (stop before freeing e). Call it
 * on the engine thread. On success *ret owns the watch. Errors: RV_E_NOMEM,
 * RV_E_INTERNAL (thread creation failed; the signal mask is restored). */
int rvc_sigwatch_start(rv_engine *e, rvc_sigwatch **ret);

/* The same, calling fn(ud) on the watch thread when the first signal
 * arrives, instead of waking an engine: fn must be thread-safe (the daemon
 * mode cancels its gRPC call with it). ud must outlive the watch. */
typedef void (*rvc_sigwatch_fn)(void *ud);
int rvc_sigwatch_start_fn(rvc_sigwatch_fn fn, void *ud, rvc_sigwatch **ret);

/* The first signal received (SIGINT or SIGTERM), or 0. */
int rvc_sigwatch_received(const rvc_sigwatch *w);

/* Stop the thread, restore the signal mask of the calling thread, free w.
 * A signal that arrives after the thread stopped is delivered normally once
 * the mask is restored. NULL is fine. Returns NULL. */
rvc_sigwatch *rvc_sigwatch_stop(rvc_sigwatch *w);

#endif
