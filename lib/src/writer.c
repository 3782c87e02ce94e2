/* writer.c — the write threads (lanes). */
#include "writer.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "crc32c.h"
#include "rv_error.h"

/* Each lane is a thread writing its requests in order, started by its
 * first request. */
struct rv_writer {
    rv_bgthread *lane[RV_WRITER_LANES];
    unsigned out[RV_WRITER_LANES]; /* submitted and not yet taken back (submitter's) */
    void (*wake)(void *ud);
    void *ud;
};

int rv_write_all(int fd, const void *buf, size_t n, uint64_t off) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : ENOSPC;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* The thread's work: one batch of requests, in order. */
static void write_batch(void *ctx, rv_bg_req *batch) {
    (void)ctx;
    for (rv_bg_req *b = batch; b; b = b->next) {
        rv_write_req *r = (rv_write_req *)b;
        r->crc = r->want_crc ? rv_crc32c(0, r->buf, r->len) : 0;
        r->err = rv_write_all(r->fd, r->buf, r->len, r->off);
        close(r->fd);
        r->fd = -1;
        /* Whatever the first write did: the engine judges each on its own
         * (an O_DIRECT write refused with EINVAL is written again into the
         * first file only). */
        if (r->tee_fd >= 0) {
            r->tee_err = rv_write_all(r->tee_fd, r->buf, r->len, r->off);
            close(r->tee_fd);
            r->tee_fd = -1;
        }
    }
}

rv_writer *rv_writer_free(rv_writer *w) {
    if (!w)
        return NULL;
    for (unsigned i = 0; i < RV_WRITER_LANES; i++)
        rv_bgthread_free(w->lane[i]);
    free(w);
    return NULL;
}

int rv_writer_new(void (*wake)(void *ud), void *ud, rv_writer **ret) {
    rv_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return RV_E_NOMEM;
    w->wake = wake;
    w->ud = ud;
    *ret = w;
    return RV_OK;
}

void rv_writer_stop(rv_writer *w) {
    for (unsigned i = 0; i < RV_WRITER_LANES; i++)
        if (w->lane[i])
            rv_bgthread_stop(w->lane[i]);
}

int rv_writer_submit(rv_writer *w, unsigned lane, rv_write_req *req) {
    lane %= RV_WRITER_LANES;
    if (!w->lane[lane]) {
        int r = rv_bgthread_new("rv-writer", write_batch, w, w->wake, w->ud, 0,
                                RV_BG_WAKE_WHEN_IDLE | RV_BG_ONE_AT_A_TIME, &w->lane[lane]);
        if (r != RV_OK)
            return r;
    }
    req->err = req->tee_err = 0;
    w->out[lane]++;
    rv_bgthread_submit(w->lane[lane], &req->bg);
    return RV_OK;
}

rv_write_req *rv_writer_take_done(rv_writer *w) {
    rv_bg_req *list = NULL, **tail = &list;
    for (unsigned i = 0; i < RV_WRITER_LANES; i++) {
        if (!w->lane[i])
            continue;
        *tail = rv_bgthread_take_done(w->lane[i]);
        for (; *tail; tail = &(*tail)->next)
            w->out[i]--;
    }
    return (rv_write_req *)list;
}

void rv_writer_wait(rv_writer *w) {
    unsigned busiest = 0;
    for (unsigned i = 1; i < RV_WRITER_LANES; i++)
        if (w->out[i] > w->out[busiest])
            busiest = i;
    if (w->lane[busiest])
        rv_bgthread_wait_done(w->lane[busiest]);
}
