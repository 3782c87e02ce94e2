/* digester.c — the sha256 thread. */
#include "digester.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "readback.h"
#include "rv_error.h"

/* Reads of 1 MiB: large enough that a read costs little next to hashing
 * it, small enough to stay in the CPU's cache until it is hashed. */
#define READ_SIZE (1u << 20)

struct rv_digester {
    rv_bgthread *thread;
    unsigned char *buf; /* the thread's */
};

static int eat_sha256(void *hash, const unsigned char *p, size_t n) {
    return rv_sha256_update(hash, p, n) == RV_OK ? 0 : EPROTO;
}

/* The thread's work: one batch of requests. */
static void digest_batch(void *ctx, rv_bg_req *batch) {
    rv_digester *d = ctx;
    for (rv_bg_req *b = batch; b; b = b->next) {
        rv_digest_req *r = (rv_digest_req *)b;
        r->err = 0;
        for (size_t i = 0; i < r->n_spans && r->err == 0; i++) {
            const rv_digest_span *sp = &r->spans[i];
            if (sp->buf)
                r->err = eat_sha256(r->hash, sp->buf, (size_t)(sp->to - sp->from));
            else if (r->fd < 0)
                r->err = EBADF;
            else
                r->err = rv_readback(r->fd, sp->from, sp->to, d->buf, READ_SIZE, eat_sha256,
                                     r->hash);
        }
        if (r->fd >= 0)
            close(r->fd);
        r->fd = -1;
    }
}

int rv_digester_new(void (*wake)(void *ud), void *ud, rv_digester **ret) {
    rv_digester *d = calloc(1, sizeof(*d));
    if (!d || !(d->buf = malloc(READ_SIZE))) {
        free(d);
        return RV_E_NOMEM;
    }
    int r = rv_bgthread_new("rv-digester", digest_batch, d, wake, ud, 0, 0, &d->thread);
    if (r != RV_OK) {
        free(d->buf);
        free(d);
        return r;
    }
    *ret = d;
    return RV_OK;
}

void rv_digester_stop(rv_digester *d) {
    rv_bgthread_stop(d->thread);
}

rv_digester *rv_digester_free(rv_digester *d) {
    if (!d)
        return NULL;
    rv_bgthread_free(d->thread);
    free(d->buf);
    free(d);
    return NULL;
}

void rv_digester_submit(rv_digester *d, rv_digest_req *req) {
    req->err = 0;
    rv_bgthread_submit(d->thread, &req->bg);
}

rv_digest_req *rv_digester_take_done(rv_digester *d) {
    return (rv_digest_req *)rv_bgthread_take_done(d->thread);
}
