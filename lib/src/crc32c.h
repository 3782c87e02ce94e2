/* crc32c.h — CRC-32C (Castagnoli), the checksum S3 and iSCSI use (internal).
 *
 * Every finished range gets one; the object's CRC32C is combined from its
 * ranges' without reading the data again. On x86-64 with SSE4.2 the CPU's
 * crc32 instruction does the work, several GB/s on one core; elsewhere a
 * table-driven loop does. */
#ifndef RV_CRC32C_H
#define RV_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of the bytes seen so far followed by p[0..n): start with
 * crc = 0; rv_crc32c(rv_crc32c(0, a, na), b, nb) == CRC of a then b. */
uint32_t rv_crc32c(uint32_t crc, const void *p, size_t n);

/* rv_crc32c without the CPU instruction; the fallback, exposed for tests. */
uint32_t rv_crc32c_portable(uint32_t crc, const void *p, size_t n);

/* The CRC-32C of A then B from crc_a = CRC(A), crc_b = CRC(B) and B's
 * length, in O(log len_b) time. */
uint32_t rv_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
