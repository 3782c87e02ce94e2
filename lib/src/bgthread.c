/* bgthread.c — a batch worker thread with a to-do and a done list. */
#include "bgthread.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "rv_error.h"

struct rv_bgthread {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work_cond; /* signalled when todo gains a request or stop is set */
    rv_bg_req *todo, **todo_tail;
    rv_bg_req *done, **done_tail;
    unsigned pending;         /* submitted, not yet taken */
    bool stop, joined;
    void (*work)(void *ctx, rv_bg_req *batch);
    void *ctx;
    void (*wake)(void *ud);
    void *ud;
};

static void *run(void *arg) {
    rv_bgthread *t = arg;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->todo && !t->stop)
            pthread_cond_wait(&t->work_cond, &t->lock);
        if (!t->todo)
            break; /* stop, and nothing left to do */
        rv_bg_req *batch = t->todo;
        rv_bg_req **batch_tail = t->todo_tail;
        t->todo = NULL;
        t->todo_tail = &t->todo;
        pthread_mutex_unlock(&t->lock);
        t->work(t->ctx, batch);
        pthread_mutex_lock(&t->lock);
        *t->done_tail = batch;
        t->done_tail = batch_tail;
        pthread_mutex_unlock(&t->lock);
        if (t->wake)
            t->wake(t->ud);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int rv_bgthread_new(void (*work)(void *ctx, rv_bg_req *batch), void *ctx,
                    void (*wake)(void *ud), void *ud, rv_bgthread **ret) {
    rv_bgthread *t = calloc(1, sizeof(*t));
    if (!t)
        return RV_E_NOMEM;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->work_cond, NULL);
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
        pthread_cond_destroy(&t->work_cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return RV_E_NOMEM;
    }
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
    pthread_cond_destroy(&t->work_cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
    return NULL;
}

void rv_bgthread_submit(rv_bgthread *t, rv_bg_req *req) {
    req->next = NULL;
    pthread_mutex_lock(&t->lock);
    *t->todo_tail = req;
    t->todo_tail = &req->next;
    t->pending++;
    pthread_cond_signal(&t->work_cond);
    pthread_mutex_unlock(&t->lock);
}

rv_bg_req *rv_bgthread_take_done(rv_bgthread *t) {
    pthread_mutex_lock(&t->lock);
    rv_bg_req *list = t->done;
    for (rv_bg_req *r = list; r; r = r->next)
        t->pending--;
    t->done = NULL;
    t->done_tail = &t->done;
    pthread_mutex_unlock(&t->lock);
    return list;
}

unsigned rv_bgthread_pending(rv_bgthread *t) {
    pthread_mutex_lock(&t->lock);
    unsigned n = t->pending;
    pthread_mutex_unlock(&t->lock);
    return n;
}
