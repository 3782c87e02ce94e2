/* flusher.c — the sync thread. */
#include "flusher.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "crc32c.h"
#include "rv_error.h"

#define SPAN_BUFFER_SIZE (256u << 10)

struct rv_flusher {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;     /* signalled when todo gains a request or stop is set */
    rv_sync_req *todo, **todo_tail;
    rv_sync_req *done, **done_tail;
    unsigned pending;        /* submitted, not yet taken */
    unsigned char *buf;      /* the thread's read-back buffer */
    bool stop, joined;
    void (*wake)(void *ud);
    void *ud;
};

/* CRC-32C of each span of r's file. Returns 0 or an errno. */
static int checksum(rv_flusher *f, rv_sync_req *r) {
    for (size_t i = 0; i < r->n_spans; i++) {
        rv_sync_span *sp = &r->spans[i];
        uint32_t crc = 0;
        for (uint64_t at = sp->from; at < sp->to;) {
            size_t n = sp->to - at < SPAN_BUFFER_SIZE ? (size_t)(sp->to - at) : SPAN_BUFFER_SIZE;
            ssize_t got = pread(r->fd, f->buf, n, (off_t)at);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return got < 0 ? errno : EIO;
            crc = rv_crc32c(crc, f->buf, (size_t)got);
            at += (uint64_t)got;
        }
        sp->crc = crc;
    }
    return 0;
}

static void sync_batch(rv_flusher *f, rv_sync_req *batch) {
    unsigned n = 0;
    for (rv_sync_req *r = batch; r; r = r->next)
        r->err = checksum(f, r);
    for (rv_sync_req *r = batch; r; r = r->next)
        n++;
    if (n >= RV_FLUSHER_SYNCFS_MIN) {
        /* One call for the whole file system: far cheaper than n fdatasyncs.
         * Since Linux 5.8 it reports writeback errors of the file system. */
        int err = syncfs(batch->fd) == 0 ? 0 : errno;
        for (rv_sync_req *r = batch; r; r = r->next)
            r->err = r->err ? r->err : err;
    } else {
        for (rv_sync_req *r = batch; r; r = r->next)
            r->err = r->err ? r->err : fdatasync(r->fd) == 0 ? 0 : errno;
    }
    for (rv_sync_req *r = batch; r; r = r->next) {
        close(r->fd);
        r->fd = -1;
    }
}

static void *run(void *arg) {
    rv_flusher *f = arg;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->todo && !f->stop)
            pthread_cond_wait(&f->work, &f->lock);
        if (!f->todo)
            break; /* stop, and nothing left to sync */
        rv_sync_req *batch = f->todo;
        rv_sync_req **batch_tail = f->todo_tail;
        f->todo = NULL;
        f->todo_tail = &f->todo;
        pthread_mutex_unlock(&f->lock);
        sync_batch(f, batch);
        pthread_mutex_lock(&f->lock);
        *f->done_tail = batch;
        f->done_tail = batch_tail;
        pthread_mutex_unlock(&f->lock);
        if (f->wake)
            f->wake(f->ud);
        pthread_mutex_lock(&f->lock);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

int rv_flusher_new(void (*wake)(void *ud), void *ud, rv_flusher **ret) {
    rv_flusher *f = calloc(1, sizeof(*f));
    if (!f)
        return RV_E_NOMEM;
    f->buf = malloc(SPAN_BUFFER_SIZE);
    if (!f->buf) {
        free(f);
        return RV_E_NOMEM;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->work, NULL);
    f->todo_tail = &f->todo;
    f->done_tail = &f->done;
    f->wake = wake;
    f->ud = ud;
    /* The library's thread takes no signals: the application's threads
     * handle them (a default action landing here would kill the process). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&f->thread, NULL, run, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&f->work);
        pthread_mutex_destroy(&f->lock);
        free(f->buf);
        free(f);
        return RV_E_NOMEM;
    }
    *ret = f;
    return RV_OK;
}

void rv_flusher_stop(rv_flusher *f) {
    if (f->joined)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    f->joined = true;
}

rv_flusher *rv_flusher_free(rv_flusher *f) {
    if (!f)
        return NULL;
    rv_flusher_stop(f);
    free(f->buf);
    pthread_cond_destroy(&f->work);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return NULL;
}

void rv_flusher_submit(rv_flusher *f, rv_sync_req *req) {
    req->next = NULL;
    req->err = 0;
    for (size_t i = 0; i < req->n_spans; i++)
        req->spans[i].crc = 0;
    pthread_mutex_lock(&f->lock);
    *f->todo_tail = req;
    f->todo_tail = &req->next;
    f->pending++;
    pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->lock);
}

rv_sync_req *rv_flusher_take_done(rv_flusher *f) {
    pthread_mutex_lock(&f->lock);
    rv_sync_req *list = f->done;
    for (rv_sync_req *r = list; r; r = r->next)
        f->pending--;
    f->done = NULL;
    f->done_tail = &f->done;
    pthread_mutex_unlock(&f->lock);
    return list;
}

unsigned rv_flusher_pending(rv_flusher *f) {
    pthread_mutex_lock(&f->lock);
    unsigned n = f->pending;
    pthread_mutex_unlock(&f->lock);
    return n;
}
