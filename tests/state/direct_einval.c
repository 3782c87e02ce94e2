/* direct_einval.c — an LD_PRELOAD shim for test_state.py: a disk that
 * refuses O_DIRECT writes with EINVAL, as a device needing more alignment
 * than the engine's 4096 bytes would.
 *
 * RV_SHIM_DIRECT_WRITES=N lets the first N pwrite calls on files opened
 * with O_DIRECT through (default 0); every later one fails with EINVAL and
 * writes nothing. Writes without O_DIRECT are never touched. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static atomic_long direct_left;

__attribute__((constructor)) static void read_budget(void) {
    const char *v = getenv("RV_SHIM_DIRECT_WRITES");
    atomic_store(&direct_left, v ? atol(v) : 0);
}

static ssize_t refuse_direct(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || !(flags & O_DIRECT))
        return 0;
    if (atomic_fetch_sub(&direct_left, 1) > 0)
        return 0;
    errno = EINVAL;
    return -1;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    return refuse_direct(fd) < 0 ? -1 : real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    return refuse_direct(fd) < 0 ? -1 : real(fd, buf, n, off);
}
