/* bgthread.c — a batch worker thread with a to-do and a done list. */
#include "bgthread.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "monoclock.h"
#include "rv_error.h"

struct rv_bgthread {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work_cond; /* signalled when stop is set, or todo gains a request while idle */
    pthread_cond_t done_cond; /* broadcast when the thread goes idle (after a batch) or ends */
    rv_bg_req *todo, **todo_tail;
    rv_bg_req *done, **done_tail;
    bool idle;                /* the thread waits for a first request */
    bool stop, joined;
    bool hurry;               /* the next batch starts without spacing */
    uint64_t spacing_ns;      /* least time between the starts of two batches */
    uint64_t last_start_ns;   /* thread only */
    unsigned flags;           /* RV_BG_* */
    void (*work)(void *ctx, rv_bg_req *batch);
    void *ctx;
    void (*wake)(void *ud);
    void *ud;
};

/* With t->lock held and a request queued: wait until spacing_ns has passed
 * since the previous batch started (or stop or hurry is set). What is
 * submitted meanwhile joins the batch without waking the thread. */
static void space_out(rv_bgthread *t) {
    uint64_t until_ns = t->last_start_ns + t->spacing_ns;
    while (!t->stop && !t->hurry && rv_mono_ns() < until_ns) {
        struct timespec until = {.tv_sec = (time_t)(until_ns / 1000000000u),
                                 .tv_nsec = (long)(until_ns % 1000000000u)};
        pthread_cond_timedwait(&t->work_cond, &t->lock, &until);
    }
    t->hurry = false;
    t->last_start_ns = rv_mono_ns();
}

static void *run(void *arg) {
    rv_bgthread *t = arg;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        t->idle = true;
        pthread_cond_broadcast(&t->done_cond); /* a batch is done, or none was there */
        while (!t->todo && !t->stop)
            pthread_cond_wait(&t->work_cond, &t->lock);
        t->idle = false;
        if (!t->todo)
            break; /* stop, and nothing left to do */
        if (t->spacing_ns)
            space_out(t);
        rv_bg_req *batch = t->todo;
        rv_bg_req **batch_tail = t->todo_tail;
        if ((t->flags & RV_BG_ONE_AT_A_TIME) && batch->next) {
            t->todo = batch->next;
            batch_tail = &batch->next;
            batch->next = NULL;
        } else {
            t->todo = NULL;
            t->todo_tail = &t->todo;
        }
        pthread_mutex_unlock(&t->lock);
        t->work(t->ctx, batch);
        pthread_mutex_lock(&t->lock);
        *t->done_tail = batch;
        t->done_tail = batch_tail;
        bool wake = t->wake && (!(t->flags & RV_BG_WAKE_WHEN_IDLE) || !t->todo);
        pthread_mutex_unlock(&t->lock);
        if (wake)
            t->wake(t->ud);
        pthread_mutex_lock(&t->lock);
    }
    pthread_cond_broadcast(&t->done_cond);
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int rv_bgthread_new(const char *name, void (*work)(void *ctx, rv_bg_req *batch), void *ctx,
                    void (*wake)(void *ud), void *ud, unsigned spacing_us, unsigned flags,
                    rv_bgthread **ret) {
    rv_bgthread *t = calloc(1, sizeof(*t));
    if (!t)
        return RV_E_NOMEM;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* space_out's deadlines */
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->work_cond, &attr);
    pthread_cond_init(&t->done_cond, NULL);
    pthread_condattr_destroy(&attr);
    t->spacing_ns = (uint64_t)spacing_us * 1000u;
    t->flags = flags;
    t->todo_tail = &t->todo;
    t->done_tail = &t->done;
    t->work = work;
    t->ctx = ctx;
    t->wake = wake;
    t->ud = ud;
    /* The library's threads take no signals: the application's threads
     * handle them (a default action landing here would kill the process). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->thread, NULL, run, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&t->done_cond);
        pthread_cond_destroy(&t->work_cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return RV_E_NOMEM;
    }
    pthread_setname_np(t->thread, name); /* else it carries its creator's */
    *ret = t;
    return RV_OK;
}

void rv_bgthread_stop(rv_bgthread *t) {
    if (t->joined)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->work_cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    t->joined = true;
}

rv_bgthread *rv_bgthread_free(rv_bgthread *t) {
    if (!t)
        return NULL;
    rv_bgthread_stop(t);
    pthread_cond_destroy(&t->done_cond);
    pthread_cond_destroy(&t->work_cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return NULL;
}

void rv_bgthread_submit_list(rv_bgthread *t, rv_bg_req *list) {
    rv_bg_req *last = list;
    if (!list)
        return;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&t->lock);
    *t->todo_tail = list;
    t->todo_tail = &last->next;
    if (t->idle)
        pthread_cond_signal(&t->work_cond);
    pthread_mutex_unlock(&t->lock);
}

void rv_bgthread_submit(rv_bgthread *t, rv_bg_req *req) {
    req->next = NULL;
    rv_bgthread_submit_list(t, req);
}

void rv_bgthread_hurry(rv_bgthread *t) {
    pthread_mutex_lock(&t->lock);
    t->hurry = true;
    pthread_cond_signal(&t->work_cond);
    pthread_mutex_unlock(&t->lock);
}

rv_bg_req *rv_bgthread_take_done(rv_bgthread *t) {
    pthread_mutex_lock(&t->lock);
    rv_bg_req *list = t->done;
    t->done = NULL;
    t->done_tail = &t->done;
    pthread_mutex_unlock(&t->lock);
    return list;
}

void rv_bgthread_wait_done(rv_bgthread *t) {
    pthread_mutex_lock(&t->lock);
    while (!t->done && !t->stop && (t->todo || !t->idle))
        pthread_cond_wait(&t->done_cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
}
