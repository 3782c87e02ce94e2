/* readback.c — read a span of a file back through a buffer. */
#include "readback.h"

#include <errno.h>
#include <unistd.h>

#include "crc32c.h"

int rv_readback(int fd, uint64_t from, uint64_t to, unsigned char *buf, size_t size,
                int (*eat)(void *ud, const unsigned char *p, size_t n), void *ud) {
    for (uint64_t at = from; at < to;) {
        size_t n = to - at < size ? (size_t)(to - at) : size;
        ssize_t got = pread(fd, buf, n, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? errno : EIO;
        int err = eat(ud, buf, (size_t)got);
        if (err)
            return err;
        at += (uint64_t)got;
    }
    return 0;
}

static int eat_crc(void *ud, const unsigned char *p, size_t n) {
    uint32_t *crc = ud;
    *crc = rv_crc32c(*crc, p, n);
    return 0;
}

int rv_readback_crc32c(int fd, uint64_t from, uint64_t to, unsigned char *buf, size_t size,
                       uint32_t *ret) {
    uint32_t crc = 0;
    int err = rv_readback(fd, from, to, buf, size, eat_crc, &crc);
    if (err == 0)
        *ret = crc;
    return err;
}
