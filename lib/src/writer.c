/* writer.c — the write thread. */
#include "writer.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "crc32c.h"
#include "rv_error.h"

struct rv_writer {
    rv_bgthread *thread;
};

static int write_all(int fd, const unsigned char *p, size_t n, uint64_t off) {
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
        r->crc = rv_crc32c(0, r->buf, r->len);
        r->err = write_all(r->fd, r->buf, r->len, r->off);
        close(r->fd);
        r->fd = -1;
    }
}

int rv_writer_new(void (*wake)(void *ud), void *ud, rv_writer **ret) {
    rv_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return RV_E_NOMEM;
    int r = rv_bgthread_new("rv-writer", write_batch, w, wake, ud, 0, true, &w->thread);
    if (r != RV_OK) {
        free(w);
        return r;
    }
    *ret = w;
    return RV_OK;
}

void rv_writer_stop(rv_writer *w) {
    rv_bgthread_stop(w->thread);
}

rv_writer *rv_writer_free(rv_writer *w) {
    if (!w)
        return NULL;
    rv_bgthread_free(w->thread);
    free(w);
    return NULL;
}

void rv_writer_submit(rv_writer *w, rv_write_req *req) {
    req->err = 0;
    rv_bgthread_submit(w->thread, &req->bg);
}

rv_write_req *rv_writer_take_done(rv_writer *w) {
    return (rv_write_req *)rv_bgthread_take_done(w->thread);
}

void rv_writer_wait(rv_writer *w) {
    rv_bgthread_wait_done(w->thread);
}
