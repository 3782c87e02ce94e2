/* worker.h — the engine thread: one rv_engine, driven by one thread, fed
 * by the job table.
 *
 * The worker owns the engine and its thread. The RPC side never calls the
 * engine: it changes the job table (jobs.h), which wakes the worker
 * (rv_engine_wakeup); the worker then runs rvd_jobs_pump. Each loop
 * iteration stamps a heartbeat, which the main thread turns into the
 * systemd watchdog's keep-alive: a wedged engine loop stops the pings.
 */
#ifndef RVD_WORKER_H
#define RVD_WORKER_H

#include <retriever/retriever.h>
#include <stdint.h>

#include "jobs.h"

typedef struct rvd_worker rvd_worker;

/* Open the engine with cfg (its hooks are replaced by the job table's)
 * and start the thread. 0, or -errno with *ret_error a malloc'd sentence
 * (e.g. the state directory is busy, naming its owner). */
int rvd_worker_start(const rv_config *cfg, const rvd_jobs_limits *limits, rvd_worker **ret,
                     char **ret_error);

rvd_jobs *rvd_worker_jobs(rvd_worker *w);

/* A new cache quota (SIGHUP): the engine thread applies it, trimming the
 * cache at once. Thread-safe. */
void rvd_worker_set_cache_quota(rvd_worker *w, uint64_t quota);

/* Monotonic milliseconds of the loop's last iteration. Thread-safe. */
int64_t rvd_worker_heartbeat_ms(rvd_worker *w);
/* Make the loop go round once (its heartbeat then moves on). Thread-safe. */
void rvd_worker_poke(rvd_worker *w);

/* Stop: end every stream with UNAVAILABLE, stop the thread, close the
 * engine (which keeps what it made durable, for the next start), free the
 * table. NULL is fine. Returns NULL. */
rvd_worker *rvd_worker_stop(rvd_worker *w);

#endif
