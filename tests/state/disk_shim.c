/* disk_shim.c — an LD_PRELOAD shim for test_state.py: a disk whose syncs
 * fail, or hang, and an account of what reaches the files in a cache's
 * blobs/ directory (the database's own files pass through untouched).
 *
 * RV_SHIM_SYNC=eio      every fdatasync, fsync and syncfs of a blob fails
 *                       with EIO and syncs nothing (a disk that lost the
 *                       writes, as Linux reports a writeback error)
 * RV_SHIM_SYNC=hold:N   syncs of blobs 1..N-1 go through; the Nth and
 *                       every later one block (at most 120 s, then go
 *                       through), so whatever was written after the last
 *                       returned sync began is never durable
 * RV_SHIM_SYNC=slowfs:MS the first syncfs (of any file) sleeps MS
 *                       milliseconds before it runs, as one does while
 *                       another process writes gigabytes; every syncfs
 *                       is logged as "syncfs SEQ NS" (NS: CLOCK_MONOTONIC
 *                       at entry), blobs' or not
 * (unset)               syncs go through
 * RV_SHIM_LOG=FILE      append one line per blob sync:
 *                         enter SEQ FN WRITTEN
 *                         return SEQ FN RC WRITTEN_AT_ENTER
 *                       WRITTEN: bytes that pwrite/pwrite64/write/pwritev
 *                       calls on blobs had put in files, counted when they
 *                       returned; a sync can only make durable what was
 *                       written before it began. At exit, one line
 *                         writes direct D buffered B
 *                       the bytes written to blobs with and without
 *                       O_DIRECT (to the page cache).
 *
 * Lines are written with one write(2) each on an O_APPEND descriptor, so
 * threads do not interleave within a line. Stacks after another shim in
 * LD_PRELOAD (each calls the next definition). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HOLD_LIMIT_S 120

static enum { PASS, EIO_ALL, HOLD, SLOW_SYNCFS } mode = PASS;
static long hold_from;            /* HOLD: the first sequence number held */
static long slow_ms;              /* SLOW_SYNCFS: the first syncfs's delay */
static atomic_long syncfs_seq;    /* SLOW_SYNCFS: syncfs calls so far */
static int log_fd = -1;
static atomic_long seq;           /* blob syncs so far */
static atomic_ullong written;     /* bytes written to blobs so far */
static atomic_ullong direct, buffered; /* of them, with and without O_DIRECT */

__attribute__((constructor)) static void read_env(void) {
    const char *m = getenv("RV_SHIM_SYNC");
    const char *l = getenv("RV_SHIM_LOG");
    if (m && !strcmp(m, "eio"))
        mode = EIO_ALL;
    else if (m && !strncmp(m, "hold:", 5)) {
        mode = HOLD;
        hold_from = atol(m + 5);
    } else if (m && !strncmp(m, "slowfs:", 7)) {
        mode = SLOW_SYNCFS;
        slow_ms = atol(m + 7);
    }
    if (l)
        log_fd = open(l, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

/* Whether fd is a file in a blobs/ directory. */
static int is_blob(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    return strstr(path, "/blobs/") != NULL;
}

static void log_line(const char *line, int n) {
    if (log_fd >= 0 && n > 0)
        (void)!write(log_fd, line, (size_t)n);
}

/* Runs one sync of a blob through the mode; real() does the real call. */
static int shim_sync(int fd, const char *fn, int (*real)(int)) {
    if (!is_blob(fd))
        return real(fd);
    long s = atomic_fetch_add(&seq, 1) + 1;
    unsigned long long w = atomic_load(&written);
    int rc, err = 0;
    char line[128];
    log_line(line, snprintf(line, sizeof(line), "enter %ld %s %llu\n", s, fn, w));
    if (mode == HOLD && s >= hold_from) {
        struct timespec ts = {1, 0};
        for (int i = 0; i < HOLD_LIMIT_S; i++)
            nanosleep(&ts, NULL);
    }
    if (mode == EIO_ALL) {
        rc = -1;
        err = EIO;
    } else {
        rc = real(fd);
        err = errno;
    }
    log_line(line, snprintf(line, sizeof(line), "return %ld %s %d %llu\n", s, fn, rc, w));
    errno = err;
    return rc;
}

/* real_<name>: the next definition of name (libc's), looked up once. */
#define REAL(name) \
    static __typeof__(&name) real_##name; \
    if (!real_##name) \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

int fdatasync(int fd) {
    REAL(fdatasync);
    return shim_sync(fd, "fdatasync", real_fdatasync);
}

int fsync(int fd) {
    REAL(fsync);
    return shim_sync(fd, "fsync", real_fsync);
}

int syncfs(int fd) {
    REAL(syncfs);
    if (mode != SLOW_SYNCFS)
        return shim_sync(fd, "syncfs", real_syncfs);
    long s = atomic_fetch_add(&syncfs_seq, 1) + 1;
    struct timespec now;
    char line[96];
    clock_gettime(CLOCK_MONOTONIC, &now);
    log_line(line, snprintf(line, sizeof(line), "syncfs %ld %lld\n", s,
                            (long long)now.tv_sec * 1000000000 + now.tv_nsec));
    if (s == 1) {
        struct timespec delay = {slow_ms / 1000, (slow_ms % 1000) * 1000000};
        nanosleep(&delay, NULL);
    }
    return real_syncfs(fd);
}

static ssize_t count(int fd, ssize_t n) {
    if (n > 0 && is_blob(fd)) {
        int flags = fcntl(fd, F_GETFL);
        atomic_fetch_add(flags >= 0 && (flags & O_DIRECT) ? &direct : &buffered,
                         (unsigned long long)n);
        atomic_fetch_add(&written, (unsigned long long)n);
    }
    return n;
}

__attribute__((destructor)) static void account(void) {
    char line[96];
    log_line(line, snprintf(line, sizeof(line), "writes direct %llu buffered %llu\n",
                            (unsigned long long)atomic_load(&direct),
                            (unsigned long long)atomic_load(&buffered)));
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    return count(fd, real_pwrite(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    return count(fd, real_pwrite64(fd, buf, n, off));
}

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    /* Not through count(): the log's own write comes here too. */
    ssize_t r = real_write(fd, buf, n);
    if (fd != log_fd)
        count(fd, r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev);
    return count(fd, real_pwritev(fd, iov, cnt, off));
}
