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

#include "sink.h"

/* What the source holds for an object (rv_object.src) while it copies. */
typedef struct filesrc {
    int fd;
    uint64_t mtime_ns;         /* the file's at open */
} filesrc;

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

int rv_file_url_path(const char *url, char **ret) {
    rv_url *u = NULL;
    int r = rv_url_parse(url, &u);
    if (r == RV_OK)
        r = strcmp(u->scheme, "file") == 0 ? rv_url_file_path(u, ret) : RV_E_UNSUPPORTED_SCHEME;
    rv_url_free(u);
    return r;
}

static int file_check_url(const char *url) {
    char *path = NULL;
    int r = rv_file_url_path(url, &path);
    free(path);
    return r;
}

static void file_close(rv_object *o) {
    filesrc *f = o->src;
    if (f) {
        close(f->fd);
        free(f);
        o->src = NULL;
    }
}

/* Open the file and plan the copy: its size is known at once. */
static int file_resolve(rv_object *o) {
    char *path = NULL;
    struct stat st;
    filesrc *f = NULL;
    int r = rv_url_file_path(o->url, &path);

    file_close(o);
    if (r != RV_OK) {
        rv_sink_failed(o, r, "'%s' is not a usable file URL", o->url_shown);
        goto out;
    }
    if (!(f = malloc(sizeof(*f)))) {
        r = RV_E_NOMEM;
        rv_sink_failed(o, r, "out of memory");
        goto out;
    }
    f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (f->fd < 0) {
        r = source_error(errno);
        rv_sink_failed(o, r, "cannot open source '%s': %s", path, strerror(errno));
        goto out;
    }
    o->src = f; /* from here on file_close closes it */
    f = NULL;
    filesrc *src = o->src;
    if (fstat(src->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = RV_E_INVALID_ARGUMENT;
        rv_sink_failed(o, r, "source '%s' is not a regular file", path);
        goto out;
    }
    src->mtime_ns = mtime_ns(&st);
    o->ranges = true;
    r = rv_sink_plan(o, (uint64_t)st.st_size, (uint64_t)st.st_size);
    if (r == RV_OK)
        r = rv_outfile_preallocate(o, (uint64_t)st.st_size);
    if (r == RV_OK) {
        rv_sink_planned(o);
        rv_sink_resolved(o);
    }
out:
    free(f);
    free(path);
    return r;
}

/* Copy up to budget bytes of the one range. */
static int file_step(rv_object *o, uint64_t budget) {
    rv_engine *e = o->engine;
    filesrc *src = o->src;
    rv_chunk *c = &o->chunks[0];
    uint64_t done = 0;

    while (done < budget && c->pos < c->end) {
        size_t n = (size_t)(c->end - c->pos < budget - done ? c->end - c->pos : budget - done);
        loff_t in = (loff_t)c->pos, out = (loff_t)c->pos;
        ssize_t got = copy_file_range(src->fd, &in, o->fd, &out, n, 0);
        if (got < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                        errno == EOPNOTSUPP)) {
            got = pread(src->fd, e->buf, n < e->buf_size ? n : e->buf_size, (off_t)c->pos);
            if (got > 0 && rv_outfile_write(o, e->buf, (size_t)got, c->pos) != RV_OK)
                return -o->err;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno == ENOSPC || errno == EDQUOT ? RV_E_NO_SPACE : RV_E_IO;
            rv_sink_failed(o, err, "cannot copy '%s': %s", o->url_shown, strerror(errno));
            return -err;
        }
        if (got == 0) {
            rv_sink_changed(o, "source file shrank during the copy");
            return (int)done;
        }
        c->written_crc_unknown = true; /* copied in the kernel: read back to sync */
        rv_sink_landed(o, c, (uint64_t)got);
        done += (uint64_t)got;
    }
    if (c->pos == c->end && c->state != RV_CHUNK_DONE) {
        struct stat st;
        if (fstat(src->fd, &st) != 0 || (uint64_t)st.st_size != o->size ||
            mtime_ns(&st) != src->mtime_ns) {
            rv_sink_changed(o, "source file changed during the copy");
            return (int)done;
        }
        rv_sink_range_done(o, c);
    }
    return (int)(done > INT32_MAX ? INT32_MAX : done);
}

static const char *const file_schemes[] = {"file", NULL};

const rv_source_ops rv_source_file = {
    .name = "file",
    .schemes = file_schemes,
    /* Its one range is copied whole, but resumes mid-file (ranges). */
    .caps = RV_SOURCE_CAP_RANGES | RV_SOURCE_CAP_SIZE_KNOWN,
    .url_form = "a local file URL (file:///absolute/path)",
    .check_url = file_check_url,
    .resolve = file_resolve,
    .step = file_step,
    .close = file_close,
};
