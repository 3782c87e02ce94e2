/* readback.h — read a span of a file back through a buffer (internal).
 *
 * The flusher checksums what it syncs, resume re-checks durable ranges,
 * the digester hashes objects: all read [from, to) of a blob back from the
 * page cache in buffer-sized pieces, with the same handling of EINTR and
 * of a file that ends early.
 */
#ifndef RV_READBACK_H
#define RV_READBACK_H

#include <stddef.h>
#include <stdint.h>

/* Read [from, to) of fd through buf (size bytes) and pass each piece, in
 * order, to eat, which returns 0 to go on or an errno to stop. Returns 0,
 * the errno of a failed read, EIO when the file ends before `to`, or what
 * eat returned. */
int rv_readback(int fd, uint64_t from, uint64_t to, unsigned char *buf, size_t size,
                int (*eat)(void *ud, const unsigned char *p, size_t n), void *ud);

/* rv_readback into a CRC-32C: *ret (written on success only) is the CRC
 * of [from, to) alone. */
int rv_readback_crc32c(int fd, uint64_t from, uint64_t to, unsigned char *buf, size_t size,
                       uint32_t *ret);

#endif
