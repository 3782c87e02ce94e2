/* filesrc.c — file:// sources: a local file copied into the temporary file
 * in bounded slices on the engine loop (a large copy never blocks other
 * objects). copy_file_range lets the kernel move the bytes (or share
 * extents); where it cannot, pread/pwrite through the engine's scratch
 * buffer. The source's size and mtime are recorded at open and checked at
 * the end: a source that changed mid-copy is an object that changed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

static uint64_t mtime_ns(const struct stat *st) {
    return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

static int source_error(int errnum) {
    switch (errnum) {
    case ENOENT:
    case ENOTDIR:
        return RV_E_NOT_FOUND;
    case EACCES:
    case EPERM:
        return RV_E_ACCESS_DENIED;
    default:
        return RV_E_IO;
    }
}

int rv_file_open(rv_object *o) {
    char *path = NULL;
    struct stat st;
    int r = rv_url_file_path(o->url, &path);

    if (r != RV_OK) {
        rv_object_fail(o, r, "'%s' is not a usable file URL", o->url_shown);
        goto out;
    }
    o->src_fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (o->src_fd < 0) {
        r = source_error(errno);
        rv_object_fail(o, r, "cannot open source '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstat(o->src_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = RV_E_INVALID_ARGUMENT;
        rv_object_fail(o, r, "source '%s' is not a regular file", path);
        goto out;
    }
    o->src_mtime_ns = mtime_ns(&st);
    o->ranges = true;
    r = rv_object_plan(o, (uint64_t)st.st_size, (uint64_t)st.st_size);
    if (r == RV_OK)
        r = rv_outfile_preallocate(o, (uint64_t)st.st_size);
    if (r == RV_OK && o->store_id)
        rv_durable_planned(o);
    if (r == RV_OK) {
        o->resolved_pending = true;
        rv_object_attention(o);
    }
out:
    free(path);
    return r;
}

int rv_file_step(rv_engine *e, rv_object *o, uint64_t budget) {
    rv_chunk *c = &o->chunks[0];
    uint64_t done = 0;

    while (done < budget && c->pos < c->end) {
        size_t n = (size_t)(c->end - c->pos < budget - done ? c->end - c->pos : budget - done);
        loff_t in = (loff_t)c->pos, out = (loff_t)c->pos;
        ssize_t got = copy_file_range(o->src_fd, &in, o->fd, &out, n, 0);
        if (got < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                        errno == EOPNOTSUPP)) {
            got = pread(o->src_fd, e->buf, n < e->buf_size ? n : e->buf_size, (off_t)c->pos);
            if (got > 0 && rv_outfile_write(o, e->buf, (size_t)got, c->pos) != RV_OK)
                return -o->err;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno == ENOSPC || errno == EDQUOT ? RV_E_NO_SPACE : RV_E_IO;
            rv_object_fail(o, err, "cannot copy '%s': %s", o->url_shown, strerror(errno));
            return -err;
        }
        if (got == 0) {
            rv_object_changed(o, "source file shrank during the copy");
            return (int)done;
        }
        c->written_crc_unknown = true; /* copied in the kernel: read back to sync */
        rv_object_chunk_progress(o, c, (uint64_t)got);
        done += (uint64_t)got;
    }
    if (c->pos == c->end && c->state != RV_CHUNK_DONE) {
        struct stat st;
        if (fstat(o->src_fd, &st) != 0 || (uint64_t)st.st_size != o->size ||
            mtime_ns(&st) != o->src_mtime_ns) {
            rv_object_changed(o, "source file changed during the copy");
            return (int)done;
        }
        rv_object_chunk_done(o, c);
        rv_object_attention(o);
    }
    return (int)(done > INT32_MAX ? INT32_MAX : done);
}
