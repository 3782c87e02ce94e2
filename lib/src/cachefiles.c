/* cachefiles.c — the thread that makes blobs and puts finished ones in
 * place. */
#include "cachefiles.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "readback.h"
#include "retry.h"
#include "rv_error.h"
#include "tempname.h"
#include "writer.h"

/* The buffer of copies the kernel cannot do (across file system types)
 * and of a cache hit's verification. A read of this size costs little
 * beside the CRC of what it brings, and stays in the CPU's cache. */
#define COPY_BUFFER_SIZE (256u << 10)

enum { KIND_ORDER = 1, KIND_DELIVERY };

/* An order for n blobs with consecutive ids. */
typedef struct blob_order {
    rv_bg_req bg;   /* first: the queue's link */
    int kind;       /* KIND_ORDER */
    int64_t first;  /* in: the first id */
    unsigned n;     /* in */
    unsigned taken; /* engine side: fds[0..taken) are handed out */
    int fds[];      /* out: the new blobs, -1 where one could not be made */
} blob_order;

_Static_assert(offsetof(blob_order, kind) == offsetof(rv_delivery, kind),
               "a request's kind is found at one place");

static int kind_of(const rv_bg_req *b) {
    int kind;
    memcpy(&kind, (const char *)b + offsetof(rv_delivery, kind), sizeof(kind));
    return kind;
}

struct rv_cachefiles {
    rv_bgthread *thread;
    char *blob_dir;
    void (*wake)(void *ud);
    void *ud;
    /* The thread's. */
    rv_rng rng;            /* temporary names */
    unsigned char *buf;    /* COPY_BUFFER_SIZE, made on first use */
    unsigned char *buf2;   /* the same, for verify_blob's helper thread */
    atomic_bool delivered; /* the batch just done had deliveries */
    /* The engine's: requests back from the thread, oldest first (orders
     * with blobs left to take; deliveries not yet taken back), and how
     * many blobs are ordered and not taken (queued, in work, or here). */
    rv_bg_req *orders, **orders_tail;
    rv_bg_req *deliveries, **deliveries_tail;
    unsigned ordered;
};

static void blob_path(const rv_cachefiles *c, int64_t id, char *buf, size_t size) {
    snprintf(buf, size, "%s/%lld", c->blob_dir, (long long)id);
}

/* ----------------------------------------------------------------------- */
/* The thread                                                               */

/* A name that exists already is left alone: the engine's own creation
 * deals with it. */
static void make_blobs(rv_cachefiles *c, blob_order *o) {
    char path[4096];
    for (unsigned i = 0; i < o->n; i++) {
        blob_path(c, o->first + i, path, sizeof(path));
        o->fds[i] = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, RV_BLOB_MODE);
    }
}

/* Copy the blob into fd: a reflink where the file system shares extents
 * (btrfs, XFS), else an in-kernel copy, else (across file system types,
 * where copy_file_range refuses) through the buffer. Returns 0 or an
 * errno. */
static int copy_blob(rv_cachefiles *c, const rv_delivery *d, int fd) {
    bool in_kernel = true;

    if (ioctl(fd, FICLONE, d->fd) == 0)
        return 0;
    for (uint64_t at = 0; at < d->size;) {
        loff_t in = (loff_t)at, out = (loff_t)at;
        size_t want = (size_t)(d->size - at);
        ssize_t n = -1;
        if (in_kernel) {
            n = copy_file_range(d->fd, &in, fd, &out, want, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                          errno == EOPNOTSUPP)) {
                in_kernel = false;
                continue;
            }
        } else {
            if (!c->buf && !(c->buf = malloc(COPY_BUFFER_SIZE)))
                return ENOMEM;
            n = pread(d->fd, c->buf, want < COPY_BUFFER_SIZE ? want : COPY_BUFFER_SIZE,
                      (off_t)at);
            int err = n > 0 ? rv_write_all(fd, c->buf, (size_t)n, at) : 0;
            if (err)
                return err;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        at += (uint64_t)n;
    }
    return 0;
}

/* Blobs this large are checked in two halves at once, the second on a
 * helper thread (named as this one, whose name it inherits): with the
 * bytes in the page cache, the copy out of it and the CRC are the whole
 * cost, a hit has nothing else to do meanwhile, and two cores about halve
 * it (docs/benchmarks.md). From the disk it changes nothing: the disk is
 * the limit. */
#define VERIFY_SPLIT_MIN (64u << 20)

/* [from, to) of fd into a CRC-32C, through buf (COPY_BUFFER_SIZE). */
typedef struct crc_span {
    int fd;
    uint64_t from, to;
    unsigned char *buf;
    uint32_t crc; /* out */
    int err;      /* out: 0 or an errno (EIO: the file ended early) */
} crc_span;

static void *crc_span_run(void *arg) {
    crc_span *s = arg;
    s->err = rv_readback_crc32c(s->fd, s->from, s->to, s->buf, COPY_BUFFER_SIZE, &s->crc);
    return NULL;
}

/* A cache hit's check: does the blob still have the CRC-32C its row
 * recorded? Read through the descriptor the delivery then uses (a copy)
 * or whose inode it links, not by name; pread, not mmap: a destination
 * hard-linked to the blob may be truncated meanwhile, which would make a
 * mapping's reads SIGBUS. Sets d->corrupt; returns 0 or the errno of a
 * failed read. */
static int verify_blob(rv_cachefiles *c, rv_delivery *d) {
    struct stat st;
    pthread_t helper;
    bool split = false;

    if (!c->buf && !(c->buf = malloc(COPY_BUFFER_SIZE)))
        return ENOMEM;
    if (fstat(d->fd, &st) != 0)
        return errno;
    if ((uint64_t)st.st_size != d->size) {
        d->corrupt = true; /* cut or grown since: not the bytes recorded */
        return 0;
    }
    (void)posix_fadvise(d->fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* a cold blob reads ahead */
    uint64_t mid = d->size / 2;
    crc_span head = {.fd = d->fd, .from = 0, .to = d->size, .buf = c->buf};
    crc_span tail = {.fd = d->fd, .from = mid, .to = d->size};
    if (d->size >= VERIFY_SPLIT_MIN && (c->buf2 || (c->buf2 = malloc(COPY_BUFFER_SIZE)))) {
        tail.buf = c->buf2;
        split = pthread_create(&helper, NULL, crc_span_run, &tail) == 0;
        if (split)
            head.to = mid;
    }
    crc_span_run(&head); /* the whole blob when not split */
    if (split) {
        pthread_join(helper, NULL);
        head.err = head.err ? head.err : tail.err;
        head.crc = rv_crc32c_combine(head.crc, tail.crc, d->size - mid);
    }
    if (head.err == EIO) {
        d->corrupt = true; /* ended early, or the disk cannot read it back */
        return 0;
    }
    if (head.err)
        return head.err;
    d->corrupt = head.crc != d->crc32c;
    return 0;
}

/* Rename the hidden name tmp over dest, or to dest where that is free.
 * Over an existing destination, rename(2); but when that already is a link
 * to the same inode, rename succeeds without doing anything and the
 * temporary name would stay: it is removed then. Returns 0 or an errno
 * (tmp is left to the caller then). */
static int rename_into_place(const char *tmp, const char *dest, bool no_replace) {
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
        return 0;
    bool existed = errno == EEXIST; /* else EINVAL: not supported here */
    /* no_replace: an existing file stays; where the file system cannot
     * rename without replacing, a link (which never replaces) then the
     * hidden name's removal. */
    if (no_replace && existed)
        return EEXIST;
    if (no_replace) {
        if (errno != EINVAL || link(tmp, dest) != 0)
            return errno;
        unlink(tmp);
        return 0;
    }
    if ((!existed && errno != EINVAL) || rename(tmp, dest) != 0)
        return errno;
    if (existed)
        unlink(tmp);
    return 0;
}

/* Put the blob in place. A link is made under the destination's name at
 * once where that name is free (a link appears whole); otherwise, and for
 * copies, under a hidden name that is then renamed over the destination.
 * Returns 0 or an errno. */
static int put_in_place(rv_cachefiles *c, const rv_delivery *d) {
    char *tmp = NULL;
    int fd = -1, err = 0;

    if (d->make_readonly && fchmod(d->fd, RV_BLOB_MODE) != 0)
        return errno;
    if (d->link && linkat(AT_FDCWD, d->blob_path, AT_FDCWD, d->dest_path, 0) == 0)
        return 0;
    if (d->link && errno == EEXIST && d->no_replace)
        return EEXIST;
    if (d->link && errno == EEXIST &&
        rv_tempname_make(d->dest_path, d->blob_path, RV_MODE_UMASK, &c->rng, &tmp, NULL) == 0)
        goto rename;
    err = rv_tempname_make(d->dest_path, NULL, d->mode, &c->rng, &tmp, &fd);
    if (err)
        goto out;
    err = copy_blob(c, d, fd);
    if (close(fd) != 0 && !err)
        err = errno;
    if (err)
        goto out;
rename:
    err = rename_into_place(tmp, d->dest_path, d->no_replace);
    if (err)
        goto out;
    free(tmp);
    return 0;
out:
    if (tmp)
        unlink(tmp);
    free(tmp);
    return err;
}

/* Put the tee in place of a copy: it holds the blob's bytes already
 * (stage.c). Unnamed, it is linked under the destination's name where
 * that is free, else under a hidden name renamed over the destination (as
 * rv_outfile_deliver does); named, renamed as a copy's hidden name is.
 * Whatever fails, no hidden name stays. Returns 0 or an errno. */
static int put_tee(rv_cachefiles *c, rv_delivery *d) {
    char proc[64], *tmp = d->tee_path;
    int err = 0;

    if (d->make_readonly && fchmod(d->fd, RV_BLOB_MODE) != 0)
        return errno; /* the blob stays a cache entry: read-only as every one */
    d->tee_path = NULL; /* tmp is this function's now */
    if (!tmp) {
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", d->tee_fd);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, d->dest_path, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST || d->no_replace)
            return errno;
        err = rv_tempname_make(d->dest_path, proc, RV_MODE_UMASK, &c->rng, &tmp, NULL);
        if (err)
            return err;
    }
    err = rename_into_place(tmp, d->dest_path, d->no_replace);
    if (err)
        unlink(tmp);
    free(tmp);
    return err;
}

static void work(void *ctx, rv_bg_req *batch) {
    rv_cachefiles *c = ctx;
    for (rv_bg_req *b = batch; b; b = b->next) {
        if (kind_of(b) == KIND_ORDER) {
            make_blobs(c, (blob_order *)b);
            continue;
        }
        rv_delivery *d = (rv_delivery *)b;
        d->err = d->verify ? verify_blob(c, d) : 0;
        if (!d->err && !d->corrupt)
            d->err = d->tee_fd >= 0 ? put_tee(c, d) : put_in_place(c, d);
        close(d->fd);
        d->fd = -1;
        if (d->tee_fd >= 0)
            close(d->tee_fd);
        d->tee_fd = -1;
        if (d->tee_path) /* not put in place (verify failed): not left behind */
            unlink(d->tee_path);
        free(d->tee_path);
        d->tee_path = NULL;
        atomic_store(&c->delivered, true);
    }
}

/* After each batch, on the thread: blobs made ahead wait to be taken, so
 * only deliveries wake the engine. */
static void wake(void *ctx) {
    rv_cachefiles *c = ctx;
    if (atomic_exchange(&c->delivered, false))
        c->wake(c->ud);
}

/* ----------------------------------------------------------------------- */
/* The engine's side                                                        */

int rv_cachefiles_new(const char *blob_dir, uint64_t seed, void (*wake_cb)(void *ud), void *ud,
                      rv_cachefiles **ret) {
    rv_cachefiles *c = calloc(1, sizeof(*c));
    if (!c || !(c->blob_dir = strdup(blob_dir))) {
        free(c);
        return RV_E_NOMEM;
    }
    c->wake = wake_cb;
    c->ud = ud;
    rv_rng_seed(&c->rng, seed);
    atomic_init(&c->delivered, false);
    c->orders_tail = &c->orders;
    c->deliveries_tail = &c->deliveries;
    int r = rv_bgthread_new("rv-cachefiles", work, c, wake, c, 0, 0, &c->thread);
    if (r != RV_OK) {
        free(c->blob_dir);
        free(c);
        return r;
    }
    *ret = c;
    return RV_OK;
}

/* Sort what the thread finished into orders and deliveries. */
static void collect(rv_cachefiles *c) {
    for (rv_bg_req *b = rv_bgthread_take_done(c->thread), *next; b; b = next) {
        next = b->next;
        b->next = NULL;
        bool order = kind_of(b) == KIND_ORDER;
        rv_bg_req ***tail = order ? &c->orders_tail : &c->deliveries_tail;
        **tail = b;
        *tail = &b->next;
    }
}

/* The next blob made, from the orders back from the thread, oldest first:
 * its id and fd. Blobs the thread could not make are skipped. False when
 * none is left. */
static bool next_blob(rv_cachefiles *c, int64_t *ret_id, int *ret_fd) {
    for (blob_order *o; (o = (blob_order *)c->orders);) {
        int64_t id = o->first + o->taken;
        int fd = o->fds[o->taken++];
        c->ordered--;
        if (o->taken == o->n) {
            c->orders = o->bg.next;
            if (!c->orders)
                c->orders_tail = &c->orders;
            free(o);
        }
        if (fd >= 0) {
            *ret_id = id;
            *ret_fd = fd;
            return true;
        }
    }
    return false;
}

rv_cachefiles *rv_cachefiles_free(rv_cachefiles *c) {
    char path[4096];
    int64_t id;
    int fd;
    if (!c)
        return NULL;
    rv_bgthread_stop(c->thread);
    collect(c);
    while (next_blob(c, &id, &fd)) {
        blob_path(c, id, path, sizeof(path));
        unlink(path);
        close(fd);
    }
    for (rv_delivery *d = rv_cachefiles_delivered(c), *next; d; d = next) {
        next = (rv_delivery *)d->bg.next;
        rv_delivery_free(d);
    }
    rv_bgthread_free(c->thread);
    free(c->buf);
    free(c->buf2);
    free(c->blob_dir);
    free(c);
    return NULL;
}

int rv_cachefiles_order(rv_cachefiles *c, int64_t first, unsigned n) {
    blob_order *o = calloc(1, sizeof(*o) + n * sizeof(o->fds[0]));
    if (!o)
        return RV_E_NOMEM;
    o->kind = KIND_ORDER;
    o->first = first;
    o->n = n;
    c->ordered += n;
    rv_bgthread_submit(c->thread, &o->bg);
    return RV_OK;
}

unsigned rv_cachefiles_ordered(const rv_cachefiles *c) {
    return c->ordered;
}

bool rv_cachefiles_take(rv_cachefiles *c, int64_t *ret_id, int *ret_fd) {
    collect(c);
    return next_blob(c, ret_id, ret_fd);
}

rv_delivery *rv_delivery_new(void) {
    rv_delivery *d = calloc(1, sizeof(*d));
    if (d) {
        d->kind = KIND_DELIVERY;
        d->fd = d->tee_fd = -1;
        d->mode = RV_MODE_UMASK;
    }
    return d;
}

void rv_delivery_free(rv_delivery *d) {
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    if (d->tee_fd >= 0)
        close(d->tee_fd);
    if (d->tee_path)
        unlink(d->tee_path);
    free(d->tee_path);
    free(d->blob_path);
    free(d->dest_path);
    free(d);
}

void rv_cachefiles_deliver(rv_cachefiles *c, rv_delivery *list) {
    rv_bgthread_submit_list(c->thread, &list->bg);
}

rv_delivery *rv_cachefiles_delivered(rv_cachefiles *c) {
    collect(c);
    rv_delivery *list = (rv_delivery *)c->deliveries;
    c->deliveries = NULL;
    c->deliveries_tail = &c->deliveries;
    return list;
}
