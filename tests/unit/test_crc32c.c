/* test_crc32c.c — CRC-32C: known vectors, chaining, hardware against
 * software, and combine against direct computation. */
#include <stdlib.h>

#include "crc32c.h"
#include "rv_test.h"

int main(void) {
    /* The check value of CRC-32C and RFC 3720's iSCSI vectors. */
    CHECK_EQ_U64(rv_crc32c(0, "123456789", 9), 0xe3069283u);
    unsigned char zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    CHECK_EQ_U64(rv_crc32c(0, zeros, 32), 0x8a9136aau);
    CHECK_EQ_U64(rv_crc32c(0, ones, 32), 0x62a8ab43u);
    CHECK_EQ_U64(rv_crc32c(0, inc, 32), 0x46dd794eu);
    CHECK_EQ_U64(rv_crc32c(0, "", 0), 0);

    /* Chaining at every split point and alignment equals one pass. */
    size_t n = 4099;
    unsigned char *buf = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    uint32_t whole = rv_crc32c(0, buf, n);
    for (size_t split = 0; split <= n; split += 37) {
        uint32_t a = rv_crc32c(0, buf, split);
        CHECK_EQ_U64(rv_crc32c(a, buf + split, n - split), whole);
        /* Combine from the two halves' own CRCs. */
        uint32_t b = rv_crc32c(0, buf + split, n - split);
        CHECK_EQ_U64(rv_crc32c_combine(a, b, n - split), whole);
    }
    for (size_t off = 0; off < 16; off++)
        CHECK_EQ_U64(rv_crc32c(rv_crc32c(0, buf, off), buf + off, 100),
                     rv_crc32c(0, buf, off + 100));

    /* Combining many ranges, as an object's ranges are combined. */
    uint32_t acc = 0;
    for (size_t at = 0; at < n; at += 500) {
        size_t len = n - at < 500 ? n - at : 500;
        acc = rv_crc32c_combine(acc, rv_crc32c(0, buf + at, len), len);
    }
    CHECK_EQ_U64(acc, whole);

    /* The portable path (used on CPUs without the instruction) agrees. */
    CHECK_EQ_U64(rv_crc32c_portable(0, "123456789", 9), 0xe3069283u);
    CHECK_EQ_U64(rv_crc32c_portable(0, buf, n), whole);
    CHECK_EQ_U64(rv_crc32c_portable(rv_crc32c_portable(0, buf, 1000), buf + 1000, n - 1000),
                 whole);

    /* Buffers long enough for the three-lane path (3 x 4 KiB blocks), at
     * every alignment and with tails, against the portable loop. */
    size_t big = 100003;
    unsigned char *lb = malloc(big + 16);
    for (size_t i = 0; i < big + 16; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        lb[i] = (unsigned char)x;
    }
    for (size_t off = 0; off < 16; off += 3)
        for (size_t len = 12287; len <= big; len += 8191) {
            uint32_t fast = rv_crc32c(0x12345678, lb + off, len);
            CHECK_EQ_U64(fast, rv_crc32c_portable(0x12345678, lb + off, len));
        }
    CHECK_EQ_U64(rv_crc32c(rv_crc32c(0, lb, 50000), lb + 50000, big - 50000),
                 rv_crc32c(0, lb, big));
    free(lb);

    /* Appending zeros: combine with the CRC of a zero run equals direct. */
    unsigned char *z = calloc(1, 100000);
    CHECK_EQ_U64(rv_crc32c_combine(whole, rv_crc32c(0, z, 100000), 100000),
                 rv_crc32c(whole, z, 100000));
    free(z);
    free(buf);
    return rv_test_result();
}
