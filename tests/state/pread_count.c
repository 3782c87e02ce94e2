/* pread_count.c — an LD_PRELOAD shim for test_digest_stages.py: counts the
 * bytes a process reads back from files in large reads, as the digester
 * does (1 MiB at a time) and the state database does not (pages of a few
 * KiB), and writes the total to the file named by RV_SHIM_PREAD_LOG when
 * the process exits. Only pread/pread64 of at least 64 KiB on regular
 * files count; nothing is changed. */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BIG_READ (64 * 1024)

static atomic_llong read_back;
static atomic_llong copied;

static void count(int fd, size_t asked, ssize_t got) {
    struct stat st;
    if (got > 0 && asked >= BIG_READ && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        atomic_fetch_add(&read_back, (long long)got);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real)
        real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    ssize_t got = real(fd, buf, n, off);
    count(fd, n, got);
    return got;
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) {
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real)
        real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    ssize_t got = real(fd, buf, n, off);
    count(fd, n, got);
    return got;
}

int access(const char *path, int mode) {
    static int (*real)(const char *, int);
    if (!real)
        real = (int (*)(const char *, int))dlsym(RTLD_NEXT, "access");
    const char *hide = getenv("RV_SHIM_NO_PROC_FD");
    if (hide && *hide == '1' && strcmp(path, "/proc/self/fd") == 0) {
        errno = ENOENT;
        return -1;
    }
    return real(path, mode);
}

ssize_t copy_file_range(int in, loff_t *in_off, int out, loff_t *out_off, size_t n,
                        unsigned flags) {
    static ssize_t (*real)(int, loff_t *, int, loff_t *, size_t, unsigned);
    if (!real)
        real = (ssize_t (*)(int, loff_t *, int, loff_t *, size_t, unsigned))dlsym(
            RTLD_NEXT, "copy_file_range");
    ssize_t got = real(in, in_off, out, out_off, n, flags);
    if (got > 0)
        atomic_fetch_add(&copied, (long long)got);
    return got;
}

__attribute__((destructor)) static void report(void) {
    const char *copy_log = getenv("RV_SHIM_COPY_LOG");
    FILE *c = copy_log ? fopen(copy_log, "w") : NULL;
    if (c) {
        fprintf(c, "%lld\n", (long long)atomic_load(&copied));
        fclose(c);
    }
    const char *path = getenv("RV_SHIM_PREAD_LOG");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "%lld\n", (long long)atomic_load(&read_back));
        fclose(f);
    }
}
