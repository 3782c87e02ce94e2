/* worker.c — the engine thread (see worker.h). */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobstore.h"
#include "log.h"

/* The longest the loop sleeps without activity. Only a safety net: the
 * engine wakes itself for everything due by time (retries, libcurl's
 * timers, interval syncs and commits), the job table wakes it for new
 * work, and the watchdog's tick pokes it (rvd_worker_poke) to prove the
 * loop alive. An idle daemon thus sleeps instead of going round each
 * second. */
#define LOOP_TIMEOUT_MS 60000

struct rvd_worker {
    rv_engine *engine;
    rvd_jobs *jobs;
    rvd_jobstore *store;
    pthread_t thread;
    bool thread_running;
    atomic_bool quit;
    _Atomic int64_t heartbeat_ms;
    _Atomic uint64_t quota; /* the cache quota the engine should have */
    uint64_t quota_applied; /* worker thread only */
};

static int64_t mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The table's wake-up; the engine exists whenever the table can call it
 * (the table is only reachable through the worker once both exist). */
static void wake(void *ud) {
    rvd_worker *w = ud;
    if (w->engine)
        rv_engine_wakeup(w->engine);
}

static void *loop(void *arg) {
    rvd_worker *w = arg;
    while (!atomic_load(&w->quit)) {
        atomic_store(&w->heartbeat_ms, mono_ms());
        uint64_t quota = atomic_load(&w->quota);
        if (quota != w->quota_applied) {
            rv_engine_set_cache_quota(w->engine, quota);
            rvd_jobs_set_cache_quota(w->jobs, quota);
            w->quota_applied = quota;
        }
        rvd_jobs_pump(w->jobs, w->engine);
        int r = rv_engine_perform(w->engine, LOOP_TIMEOUT_MS, NULL);
        if (r != RV_OK) {
            rvd_log_error("the download engine's loop failed: %s", rv_strerror(r));
            struct timespec pause = {.tv_nsec = 100 * 1000000L}; /* no busy loop */
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

/* <state-dir>/reads: Read-only objects (no destination) live there while
 * their jobs are in the history. */
static int open_reads_dir(const char *state_dir, char **ret_error) {
    char *path = rvd_strdupf("%s/reads", state_dir);
    if (!path)
        return -ENOMEM;
    int fd = -1;
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    int r = fd >= 0 ? fd : -errno;
    if (fd < 0)
        *ret_error = rvd_strdupf("cannot use '%s': %s", path, strerror(errno));
    free(path);
    return r;
}

int rvd_worker_start(const rv_config *cfg, const rvd_jobs_limits *limits,
                     rvd_worker **ret, char **ret_error) {
    unsigned resumed = 0, ended = 0, skipped = 0;
    int r;
    char *detail = NULL;
    rvd_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        *ret_error = rvd_strdupf("out of memory");
        return -ENOMEM;
    }
    atomic_init(&w->quit, false);
    atomic_init(&w->heartbeat_ms, mono_ms());
    atomic_init(&w->quota, cfg->cache_quota);
    w->quota_applied = cfg->cache_quota;
    if ((r = rvd_jobs_new(limits, wake, w, &w->jobs)) < 0) {
        *ret_error = rvd_strdupf("out of memory");
        goto fail;
    }
    rvd_jobs_set_cache_quota(w->jobs, cfg->cache_quota);
    rv_config c = *cfg;
    c.hooks = rvd_jobs_hooks();
    c.hooks_ud = w->jobs;
    int er = rv_engine_open(&c, &w->engine, &detail);
    if (er != RV_OK) {
        *ret_error = rvd_strdupf("cannot start the download engine: %s%s%s", rv_strerror(er),
                                 detail ? ": " : "", detail ? detail : "");
        r = -EIO;
        goto fail;
    }
    /* The engine exists (and holds the state directory): bring the jobs
     * back before the loop starts. */
    if (cfg->state_dir) {
        if ((r = rvd_jobstore_open(cfg->state_dir, &w->store, ret_error)) < 0)
            goto fail;
        int reads = open_reads_dir(cfg->state_dir, ret_error);
        if (reads < 0) {
            r = reads;
            goto fail;
        }
        if (rvd_jobs_restore(w->jobs, w->store, reads, &resumed, &ended, &skipped) < 0)
            rvd_log_warning("the job database could not be read completely");
    }
    if (resumed || ended || skipped)
        rvd_log_info("jobs from the last run: %u resumed, %u in the history, %u unreadable",
                     resumed, ended, skipped);
    /* The engine thread takes no signals: the main thread waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    r = -pthread_create(&w->thread, NULL, loop, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        *ret_error = rvd_strdupf("cannot start the engine thread: %s", strerror(-r));
        goto fail;
    }
    w->thread_running = true;
    pthread_setname_np(w->thread, "rvd-engine"); /* for top -H, gdb, and the tests */
    free(detail);
    *ret = w;
    return 0;
fail:
    free(detail);
    rvd_worker_stop(w);
    return r;
}

void rvd_worker_set_cache_quota(rvd_worker *w, uint64_t quota) {
    atomic_store(&w->quota, quota);
    rv_engine_wakeup(w->engine);
}

void rvd_worker_poke(rvd_worker *w) {
    rv_engine_wakeup(w->engine);
}

rvd_jobs *rvd_worker_jobs(rvd_worker *w) {
    return w->jobs;
}

int64_t rvd_worker_heartbeat_ms(rvd_worker *w) {
    return atomic_load(&w->heartbeat_ms);
}

rvd_worker *rvd_worker_stop(rvd_worker *w) {
    if (!w)
        return NULL;
    if (w->jobs)
        rvd_jobs_stop(w->jobs);
    if (w->thread_running) {
        atomic_store(&w->quit, true);
        rv_engine_wakeup(w->engine);
        pthread_join(w->thread, NULL);
    }
    w->engine = rv_engine_free(w->engine);
    w->jobs = rvd_jobs_free(w->jobs);
    w->store = rvd_jobstore_close(w->store);
    free(w);
    return NULL;
}
