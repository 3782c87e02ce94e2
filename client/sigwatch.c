/* sigwatch.c — a sigwait() thread that records SIGINT/SIGTERM and wakes the
 * engine (or whoever waits: rvc_sigwatch_start_fn). */
#include "sigwatch.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct rvc_sigwatch {
    rvc_sigwatch_fn fn; /* called once, on the first signal */
    void *ud;           /* fn's argument; borrowed */
    pthread_t thread;
    sigset_t watched;     /* SIGINT, SIGTERM */
    sigset_t saved_mask;  /* the caller's mask before start */
    atomic_int received;  /* first signal number, 0 until then */
    atomic_bool stopping; /* set by stop() before it wakes the thread */
};

static void *watch_thread(void *arg) {
    rvc_sigwatch *w = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&w->watched, &sig) != 0)
            continue;
        if (atomic_load(&w->stopping))
            break;
        int none = 0;
        if (atomic_compare_exchange_strong(&w->received, &none, sig))
            w->fn(w->ud);
    }
    return NULL;
}

static void wake_engine(void *engine) {
    rv_engine_wakeup(engine);
}

int rvc_sigwatch_start(rv_engine *e, rvc_sigwatch **ret) {
    return rvc_sigwatch_start_fn(wake_engine, e, ret);
}

int rvc_sigwatch_start_fn(rvc_sigwatch_fn fn, void *ud, rvc_sigwatch **ret) {
    rvc_sigwatch *w = calloc(1, sizeof(*w));
    if (!w)
        return RV_E_NOMEM;
    w->fn = fn;
    w->ud = ud;
    atomic_init(&w->received, 0);
    atomic_init(&w->stopping, false);
    sigemptyset(&w->watched);
    sigaddset(&w->watched, SIGINT);
    sigaddset(&w->watched, SIGTERM);

    /* Block first, so the new thread inherits the blocked mask and no
     * signal can slip in between. */
    if (pthread_sigmask(SIG_BLOCK, &w->watched, &w->saved_mask) != 0) {
        free(w);
        return RV_E_INTERNAL;
    }
    if (pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
        pthread_sigmask(SIG_SETMASK, &w->saved_mask, NULL);
        free(w);
        return RV_E_INTERNAL;
    }
    *ret = w;
    return RV_OK;
}

int rvc_sigwatch_received(const rvc_sigwatch *w) {
    return atomic_load(&((rvc_sigwatch *)w)->received);
}

rvc_sigwatch *rvc_sigwatch_stop(rvc_sigwatch *w) {
    if (!w)
        return NULL;
    /* Wake the thread with a watched signal aimed at it alone; it sees
     * `stopping` and exits without calling fn. */
    atomic_store(&w->stopping, true);
    pthread_kill(w->thread, SIGTERM);
    pthread_join(w->thread, NULL);
    pthread_sigmask(SIG_SETMASK, &w->saved_mask, NULL);
    free(w);
    return NULL;
}
