/* flusher.c — the sync thread. */
#include "flusher.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "rv_error.h"

#define SPAN_BUFFER_SIZE (256u << 10)

/* Starting costs, in ns, before any are measured: the break-even batch is
 * 8 files (measured on ext4 here: 0.33 ms per fdatasync of a small file,
 * 0.04 s for one syncfs of 900). */
#define FDATASYNC_NS_START 330000u
#define SYNCFS_NS_START (8u * FDATASYNC_NS_START)

struct rv_flusher {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work;     /* signalled when todo gains a request or stop is set */
    rv_sync_req *todo, **todo_tail;
    rv_sync_req *done, **done_tail;
    unsigned pending;        /* submitted, not yet taken */
    unsigned char *buf;      /* the thread's read-back buffer */
    bool stop, joined;
    /* What one fdatasync and one syncfs cost on this file system lately
     * (moving averages, flusher thread only). syncfs writes back every
     * dirty file of the file system, so its cost depends on what else the
     * machine writes: measuring both keeps the choice right when that
     * changes. */
    uint64_t fdatasync_ns, syncfs_ns;
    void (*wake)(void *ud);
    void *ud;
};

/* CRC-32C of each span of r's file. Returns 0 or an errno. */
static int checksum(rv_flusher *f, rv_sync_req *r) {
    for (size_t i = 0; i < r->n_spans; i++) {
        rv_sync_span *sp = &r->spans[i];
        uint32_t crc = 0;
        if (sp->have_crc)
            continue;
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

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* avg += (sample - avg) / 4 */
static void average_in(uint64_t *avg, uint64_t sample) {
    *avg = *avg - *avg / 4 + sample / 4;
}

static void sync_batch(rv_flusher *f, rv_sync_req *batch) {
    unsigned n = 0, synced = 0;
    for (rv_sync_req *r = batch; r; r = r->next) {
        r->err = checksum(f, r);
        n++;
    }
    uint64_t t0 = now_ns();
    if (n >= 2 && n * f->fdatasync_ns >= f->syncfs_ns) {
        /* One call for the whole file system, cheaper than n fdatasyncs.
         * Since Linux 5.8 it reports writeback errors of the file system. */
        int err = syncfs(batch->fd) == 0 ? 0 : errno;
        for (rv_sync_req *r = batch; r; r = r->next)
            r->err = r->err ? r->err : err;
        average_in(&f->syncfs_ns, now_ns() - t0);
    } else {
        for (rv_sync_req *r = batch; r; r = r->next, synced++)
            r->err = r->err ? r->err : fdatasync(r->fd) == 0 ? 0 : errno;
        average_in(&f->fdatasync_ns, (now_ns() - t0) / synced);
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
    f->fdatasync_ns = FDATASYNC_NS_START;
    f->syncfs_ns = SYNCFS_NS_START;
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
        if (!req->spans[i].have_crc)
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
