/* outfile.c — an object's temporary file and its digest.
 *
 * The temporary file lives next to the destination (so the final rename is
 * atomic and never crosses file systems) under a hidden name:
 *   <dir>/.<name>.rvpart-XXXXXX
 * It is preallocated to the object's size once the size is known, written
 * with pwrite at each range's offset straight from libcurl's buffer, and
 * renamed over the destination only after verification. The destination
 * never shows a partial file: until the rename it is untouched.
 *
 * Digest: bytes are hashed in file order, on the digester thread
 * (digester.h), one request per object at a time: the engine hands over
 * what has landed contiguously from the hash frontier, each held stage
 * (stage.c) as a span hashed from its buffer, the bytes between them as
 * spans read back from the file; it takes the context and the stages back
 * when the thread is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"
#include "tempname.h"

/* The digester gets a downloading object's bytes to read back in steps of
 * at least this much (fewer, larger requests). */
#define DIGEST_STEP (4u << 20)

/* The file the object's bytes go to, for messages. */
static const char *file_name(const rv_object *o) {
    return o->blob_path ? o->blob_path : o->tmp_path ? o->tmp_path : o->dest_path;
}

int rv_errno_to_error(int errnum) {
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
        return RV_E_NO_SPACE;
    case EFBIG:
    case EOVERFLOW:
        return RV_E_TOO_LARGE;
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOENT:
    case ENOTDIR:
        return RV_E_DEST_UNWRITABLE;
    case EISDIR:
        return RV_E_DEST_IS_DIR;
    case EEXIST: /* a delivery that may not replace its destination (no_replace);
                    else only 100 hidden names in a row all taken */
        return RV_E_DEST_EXISTS;
    case ENOMEM:
        return RV_E_NOMEM;
    default:
        return RV_E_IO;
    }
}

/* A new file beside dest, for writing: unnamed (O_TMPFILE) in its
 * directory, so that it appears whole under its final name with one link
 * when done and a crash leaves nothing behind; where the file system (or
 * a missing /proc, needed to link it) does not allow that, under a hidden
 * temporary name next to dest (*ret_path, malloc'd), which does the same
 * job. Its mode is the object's (tempname.h: set before either way gives
 * it a name). Returns 0 or an errno; *ret_named says whether the hidden
 * name was the one that failed. */
static int create_beside(const rv_object *o, int *ret_fd, char **ret_path, bool *ret_named) {
    rv_engine *e = o->engine;
    const char *dest = o->dest_path;
    char *copy = strdup(dest);

    *ret_named = false;
    if (!copy)
        return ENOMEM;
    if (e->proc_fd_ok < 0) /* asked once per engine, not per file */
        e->proc_fd_ok = access("/proc/self/fd", X_OK) == 0;
    errno = ENOENT;
    int fd = e->proc_fd_ok ? open(dirname(copy), O_TMPFILE | O_RDWR | O_CLOEXEC,
                                  rv_new_file_create_mode(o->mode))
                           : -1;
    int errnum = errno;
    free(copy);
    if (fd >= 0 && (errnum = rv_new_file_set_mode(fd, o->mode)) != 0) {
        close(fd);
        return errnum;
    }
    if (fd >= 0) {
        *ret_fd = fd;
        return 0;
    }
    if (errnum != EOPNOTSUPP && errnum != EISDIR && errnum != EINVAL && errnum != ENOENT)
        return errnum;
    *ret_named = true;
    return rv_tempname_make(dest, NULL, o->mode, &e->rng, ret_path, ret_fd);
}

/* The download starts as a new file beside its destination
 * (create_beside). */
int rv_outfile_create(rv_object *o) {
    bool named;
    int errnum = create_beside(o, &o->fd, &o->tmp_path, &named);

    if (errnum == 0)
        return RV_OK;
    int r = rv_errno_to_error(errnum);
    if (errnum == ENOMEM && !named)
        rv_object_fail(o, r, "out of memory");
    else
        rv_object_fail(o, r, "cannot create %s next to '%s': %s",
                       named ? "a temporary file" : "a file", o->dest_path, strerror(errnum));
    return r;
}

/* Give the unnamed file its final name: a link where the name is free,
 * else a link under a hidden name renamed over the old file. */
static int link_unnamed(rv_object *o) {
    char proc[64], *tmp = NULL;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, o->dest_path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != EEXIST || o->no_replace)
        return errno;
    int err = rv_tempname_make(o->dest_path, proc, RV_MODE_UMASK, &o->engine->rng, &tmp, NULL);
    if (err == 0 && rename(tmp, o->dest_path) != 0) {
        err = errno;
        unlink(tmp);
    }
    free(tmp);
    return err;
}

int rv_outfile_preallocate(rv_object *o, uint64_t size) {
    if (size > (uint64_t)INT64_MAX) {
        rv_object_fail(o, RV_E_TOO_LARGE, "origin reports a size of %llu bytes",
                       (unsigned long long)size);
        return RV_E_TOO_LARGE;
    }
    if (size == 0)
        return RV_OK;
    /* Reserve the space now: a full disk fails here, before any body byte,
     * and the file does not fragment. FALLOC_FL_KEEP_SIZE is not used: the
     * file gets its final size, so writes never extend it. */
    int r = posix_fallocate(o->fd, 0, (off_t)size);
    if (r == EOPNOTSUPP || r == EINVAL)
        r = ftruncate(o->fd, (off_t)size) == 0 ? 0 : errno;
    if (r != 0) {
        int err = rv_errno_to_error(r);
        rv_object_fail(o, err, "cannot allocate %llu bytes for '%s' in '%s': %s",
                       (unsigned long long)size, o->dest_path, file_name(o), strerror(r));
        return err;
    }
    return RV_OK;
}

int rv_outfile_write_failed(rv_object *o, int errnum) {
    int err = rv_errno_to_error(errnum);
    rv_object_fail(o, err, "cannot write '%s' (for '%s'): %s", file_name(o), o->dest_path,
                   strerror(errnum));
    return err;
}

int rv_outfile_write(rv_object *o, const void *p, size_t n, uint64_t off) {
    int errnum = rv_write_all(o->fd, p, n, off);
    return errnum == 0 ? RV_OK : rv_outfile_write_failed(o, errnum);
}

/* A new file beside the destination, as the download's without state is
 * (create_beside): a crash leaves nothing, or a hidden name where the file
 * system has no unnamed files. Made by this process with the object's
 * mode, as the copy it replaces would be (cachefiles.c), so the delivered
 * file is the same (the daemon then gives it to its caller,
 * daemon/asuser.c, as it would the copy). A tee that cannot be made is
 * none: the delivery copies. */
void rv_outfile_tee_open(rv_object *o) {
    bool named;
    if (create_beside(o, &o->tee_fd, &o->tee_path, &named) != 0)
        o->tee_fd = -1;
    o->tee_bytes = 0;
}

void rv_outfile_tee_discard(rv_object *o) {
    if (o->tee_fd >= 0)
        close(o->tee_fd);
    o->tee_fd = -1;
    if (o->tee_path)
        unlink(o->tee_path);
    free(o->tee_path);
    o->tee_path = NULL;
    o->tee_bytes = 0;
}

void rv_outfile_close(rv_object *o) {
    rv_stage_release_held(o); /* the blob's bytes are no longer this object's to hash */
    /* A tee is of this blob's bytes: a new blob (or none) makes it moot.
     * (Stages still in the writer write into the removed file.) */
    rv_outfile_tee_discard(o);
    if (o->fd >= 0)
        close(o->fd);
    if (o->dfd >= 0)
        close(o->dfd);
    o->fd = o->dfd = -1;
    o->stage_decided = o->staged = o->direct_tried = false;
}

int rv_outfile_reset(rv_object *o) {
    if (o->fd >= 0 && ftruncate(o->fd, 0) != 0) {
        int err = rv_errno_to_error(errno);
        rv_object_fail(o, err, "cannot truncate '%s': %s", file_name(o), strerror(errno));
        return err;
    }
    /* The tee starts over with the blob; one that cannot is dropped (the
     * delivery copies then). */
    if (o->tee_fd >= 0 && ftruncate(o->tee_fd, 0) != 0)
        rv_outfile_tee_discard(o);
    o->tee_bytes = 0;
    o->hashed = 0;
    rv_stage_release_held(o);
    /* With a request out, the context is the digester's: the request comes
     * back with a stale gen, and the context is reset then. */
    if (o->hash && !o->digest_job && rv_sha256_reset(o->hash) != RV_OK) {
        rv_object_fail(o, RV_E_INTERNAL, "sha256 reset failed");
        return RV_E_INTERNAL;
    }
    return RV_OK;
}

/* The chunk holding byte off (chunks are sorted and contiguous), or NULL. */
static rv_chunk *chunk_at(rv_object *o, uint64_t off) {
    size_t lo = 0, hi = o->n_chunks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        rv_chunk *c = &o->chunks[mid];
        if (off < c->start)
            hi = mid;
        else if (c->end != RV_UNKNOWN && off >= c->end)
            lo = mid + 1;
        else
            return c;
    }
    return NULL;
}

/* Where the bytes in the file contiguously from `at` end. */
static uint64_t written_from(rv_object *o, uint64_t at) {
    for (rv_chunk *c = chunk_at(o, at); c && c->landed > at; c = chunk_at(o, at))
        at = c->landed;
    return at;
}

rv_chunk *rv_outfile_digest_frontier(rv_object *o) {
    return chunk_at(o, written_from(o, o->digest_job ? o->digest_job->to : o->hashed));
}

/* The digester gets the bytes of an unstaged object in steps of at least
 * DIGEST_STEP (they land in small writes); a staged object's go at once
 * (they land a stage at a time, and a held stage is memory held), and an
 * object all written hands over whatever is left. */
void rv_outfile_digest_submit(rv_engine *e, rv_object *o, bool all) {
    if (!o->hash || o->digest_known || o->digest_job)
        return;
    uint64_t to = written_from(o, o->hashed);
    if (to <= o->hashed)
        return;
    /* The held stages inside [hashed, to): all of them lie in landed bytes
     * at or after hashed (engine_int.h), so they are the list's first k. */
    size_t k = 0;
    for (rv_stage *s = o->held; s && s->req.off < to; s = s->next_free)
        k++;
    if (!all && k == 0 && !o->staged && to - o->hashed < DIGEST_STEP)
        return;
    rv_digest_job *job = calloc(1, sizeof(*job) + (2 * k + 1) * sizeof(rv_digest_span));
    int r = job ? RV_OK : RV_E_NOMEM;
    if (r == RV_OK && !e->digester)
        r = rv_digester_new(rv_engine_wake_cb, e, &e->digester);
    if (r != RV_OK) {
        free(job);
        rv_object_fail(o, r, "cannot start the sha256 thread");
        return;
    }
    /* Spans in file order: each held stage from its buffer, the bytes
     * between them (stages that were not held, bytes never staged) read
     * back. */
    size_t n = 0;
    bool read_back = false;
    rv_stage *s = o->held;
    for (uint64_t at = o->hashed; at < to;) {
        if (s && s->req.off < at) {
            free(job);
            rv_object_fail(o, RV_E_INTERNAL, "digest out of step at offset %llu",
                           (unsigned long long)s->req.off);
            return;
        }
        if (s && s->req.off == at) {
            job->spans[n++] = (rv_digest_span){.from = at, .to = at + s->req.len,
                                               .buf = s->req.buf};
            at += s->req.len;
            s = s->next_free;
            continue;
        }
        uint64_t end = s && s->req.off < to ? s->req.off : to;
        job->spans[n++] = (rv_digest_span){.from = at, .to = end};
        read_back = true;
        at = end;
    }
    job->req.fd = -1;
    if (read_back && (job->req.fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        int errnum = errno;
        free(job);
        rv_object_fail(o, rv_errno_to_error(errnum), "cannot digest '%s': %s", file_name(o),
                       strerror(errnum));
        return;
    }
    /* The first k held stages go with the job. */
    if (k > 0) {
        rv_stage **cut = &o->held;
        for (size_t i = 0; i < k; i++)
            cut = &(*cut)->next_free;
        job->stages = o->held;
        o->held = *cut;
        *cut = NULL;
    }
    job->req.spans = job->spans;
    job->req.n_spans = n;
    job->req.hash = o->hash;
    job->obj = o;
    job->gen = o->gen;
    job->to = to;
    o->digest_job = job;
    rv_digester_submit(e->digester, &job->req);
}

/* What a finished request for o means, on the engine thread. */
static void digest_result(rv_object *o, const rv_digest_job *job) {
    if (job->gen != o->gen) {
        /* Restarted meanwhile (rv_outfile_reset): start the hash over. */
        if (rv_sha256_reset(o->hash) != RV_OK)
            rv_object_fail(o, RV_E_INTERNAL, "sha256 reset failed");
        o->hashed = 0;
    } else if (job->req.err == EPROTO) {
        rv_object_fail(o, RV_E_INTERNAL, "sha256 update failed");
    } else if (job->req.err) {
        rv_object_fail(o, RV_E_IO, "cannot read back '%s' to digest it: %s", file_name(o),
                       strerror(job->req.err));
    } else {
        o->hashed = job->to;
    }
    rv_object_attention(o);
}

/* Take back the digester's finished requests. With settle false (the
 * engine is going away) only ownership is sorted out: the context goes
 * back to its object, or is freed with the request when the object is
 * gone; no state changes, no hooks. */
static void take_back(rv_engine *e, bool settle) {
    for (rv_digest_req *r = rv_digester_take_done(e->digester); r;) {
        rv_digest_job *job = (rv_digest_job *)r;
        r = (rv_digest_req *)r->bg.next;
        rv_stage_release(e, job->stages); /* hashed: their buffers are free */
        if (!job->obj) {
            rv_sha256_free(job->req.hash);
        } else {
            job->obj->digest_job = NULL;
            if (settle)
                digest_result(job->obj, job);
        }
        free(job);
    }
}

void rv_outfile_digest_collect(rv_engine *e) {
    if (e->digester)
        take_back(e, true);
}

void rv_outfile_digest_end(rv_engine *e) {
    if (!e->digester)
        return;
    rv_digester_stop(e->digester);
    take_back(e, false);
    e->digester = rv_digester_free(e->digester);
}

/* rename, or with no_replace a rename that never replaces (where the file
 * system cannot do that, a link then an unlink of the hidden name: a link
 * never replaces either). 0 or an errno. */
static int rename_tmp(const rv_object *o) {
    if (!o->no_replace)
        return rename(o->tmp_path, o->dest_path) == 0 ? 0 : errno;
    if (renameat2(AT_FDCWD, o->tmp_path, AT_FDCWD, o->dest_path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return errno;
    if (link(o->tmp_path, o->dest_path) != 0)
        return errno;
    unlink(o->tmp_path);
    return 0;
}

int rv_outfile_deliver(rv_object *o) {
    int errnum = o->tmp_path ? rename_tmp(o) : link_unnamed(o);
    if (errnum != 0) {
        int err = rv_errno_to_error(errnum);
        rv_object_fail(o, err, "cannot put the finished download in place as '%s': %s",
                       o->dest_path, strerror(errnum));
        return err;
    }
    free(o->tmp_path);
    o->tmp_path = NULL;
    rv_outfile_close(o);
    return RV_OK;
}

void rv_outfile_discard(rv_object *o) {
    rv_outfile_close(o);
    if (o->tmp_path)
        unlink(o->tmp_path);
    free(o->tmp_path);
    o->tmp_path = NULL;
}
