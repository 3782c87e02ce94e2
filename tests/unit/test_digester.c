/* test_digester.c — the sha256 thread: requests in file order add up to
 * the file's digest, spans with a buffer are hashed from it (not read from
 * the file) mixed with spans read back, a read past the end fails with
 * EIO, stopping finishes what was queued, and the wake callback runs once
 * per batch. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digester.h"
#include "rv_error.h"
#include "rv_test.h"
#include "wake_count.h"

/* Wait for the next wake, then take the finished requests. */
static rv_digest_req *wait_done(rv_digester *d, unsigned *seen) {
    *seen = wait_wakes(*seen + 1);
    return rv_digester_take_done(d);
}

static void hex_of(const unsigned char *p, size_t n, char hex[65]) {
    rv_sha256 *h = NULL;
    CHECK_EQ_U64(rv_sha256_new(&h), RV_OK);
    CHECK_EQ_U64(rv_sha256_update(h, p, n), RV_OK);
    CHECK_EQ_U64(rv_sha256_final_hex(h, hex), RV_OK);
    rv_sha256_free(h);
}

int main(void) {
    char path[] = "/tmp/rv-test-digester-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    size_t n = 3000007; /* several of the thread's 1 MiB reads, and a tail */
    unsigned char *data = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    CHECK_EQ_U64((uint64_t)pwrite(fd, data, n, 0), n);

    rv_digester *d = NULL;
    CHECK_EQ_U64(rv_digester_new(wake, NULL, &d), RV_OK);
    rv_sha256 *h = NULL;
    CHECK_EQ_U64(rv_sha256_new(&h), RV_OK);

    /* Three requests, one at a time, cover the file in order. */
    uint64_t cuts[] = {0, 1, 1500000, n};
    unsigned seen = 0;
    for (int i = 0; i < 3; i++) {
        rv_digest_span sp = {.from = cuts[i], .to = cuts[i + 1]};
        rv_digest_req r = {.fd = dup(fd), .spans = &sp, .n_spans = 1, .hash = h};
        rv_digester_submit(d, &r);
        rv_digest_req *back = wait_done(d, &seen);
        CHECK(back == &r);
        CHECK(back && back->bg.next == NULL);
        CHECK_EQ_U64(r.err, 0);
        CHECK_EQ_U64((uint64_t)r.fd, (uint64_t)-1); /* the digester closed it */
    }
    char got[65], want[65];
    CHECK_EQ_U64(rv_sha256_final_hex(h, got), RV_OK);
    hex_of(data, n, want);
    CHECK_STREQ(got, want);

    /* Past the end of the file: EIO, not a short digest. */
    CHECK_EQ_U64(rv_sha256_reset(h), RV_OK);
    rv_digest_span past_sp = {.from = n - 10, .to = n + 10};
    rv_digest_req past = {.fd = dup(fd), .spans = &past_sp, .n_spans = 1, .hash = h};
    rv_digester_submit(d, &past);
    CHECK(wait_done(d, &seen) == &past);
    CHECK_EQ_U64(past.err, EIO);

    /* Spans with a buffer are hashed from it, between spans read back: the
     * file holds other bytes there (zeros), so reading them would give
     * another digest. One request, in file order. */
    unsigned char *file2 = malloc(n);
    CHECK(file2 != NULL);
    memcpy(file2, data, n);
    uint64_t held_a = 4096, held_b = 2000000; /* two buffers, 512 KiB each */
    size_t held_len = 512u << 10;
    memset(file2 + held_a, 0, held_len);
    memset(file2 + held_b, 0, held_len);
    char path2[] = "/tmp/rv-test-digester-XXXXXX";
    int fd2 = mkstemp(path2);
    CHECK(fd2 >= 0);
    unlink(path2);
    CHECK_EQ_U64((uint64_t)pwrite(fd2, file2, n, 0), n);
    rv_digest_span mixed[] = {
        {.from = 0, .to = held_a},
        {.from = held_a, .to = held_a + held_len, .buf = data + held_a},
        {.from = held_a + held_len, .to = held_b},
        {.from = held_b, .to = held_b + held_len, .buf = data + held_b},
        {.from = held_b + held_len, .to = n},
    };
    CHECK_EQ_U64(rv_sha256_reset(h), RV_OK);
    rv_digest_req mix = {.fd = dup(fd2), .spans = mixed, .n_spans = 5, .hash = h};
    rv_digester_submit(d, &mix);
    CHECK(wait_done(d, &seen) == &mix);
    CHECK_EQ_U64(mix.err, 0);
    CHECK_EQ_U64((uint64_t)mix.fd, (uint64_t)-1);
    CHECK_EQ_U64(rv_sha256_final_hex(h, got), RV_OK);
    hex_of(data, n, want);
    CHECK_STREQ(got, want);

    /* Buffers only need no descriptor; a span to read without one is EBADF. */
    CHECK_EQ_U64(rv_sha256_reset(h), RV_OK);
    rv_digest_span bufs[] = {{.from = 0, .to = 1000, .buf = data},
                             {.from = 1000, .to = n, .buf = data + 1000}};
    rv_digest_req only = {.fd = -1, .spans = bufs, .n_spans = 2, .hash = h};
    rv_digester_submit(d, &only);
    CHECK(wait_done(d, &seen) == &only);
    CHECK_EQ_U64(only.err, 0);
    CHECK_EQ_U64(rv_sha256_final_hex(h, got), RV_OK);
    CHECK_STREQ(got, want);
    rv_digest_span nofd_sp = {.from = 0, .to = 10};
    rv_digest_req nofd = {.fd = -1, .spans = &nofd_sp, .n_spans = 1, .hash = h};
    rv_digester_submit(d, &nofd);
    CHECK(wait_done(d, &seen) == &nofd);
    CHECK_EQ_U64(nofd.err, EBADF);
    close(fd2);
    free(file2);

    /* Stopping works through what is queued; the requests stay to be taken. */
    rv_sha256 *h2 = NULL;
    CHECK_EQ_U64(rv_sha256_new(&h2), RV_OK);
    rv_digest_span a_sp = {.from = 0, .to = n}, b_sp = {.from = 0, .to = 1000};
    rv_digest_req a = {.fd = dup(fd), .spans = &a_sp, .n_spans = 1, .hash = h};
    rv_digest_req b = {.fd = dup(fd), .spans = &b_sp, .n_spans = 1, .hash = h2};
    CHECK_EQ_U64(rv_sha256_reset(h), RV_OK);
    rv_digester_submit(d, &a);
    rv_digester_submit(d, &b);
    rv_digester_stop(d);
    unsigned taken = 0;
    for (rv_digest_req *r = rv_digester_take_done(d); r; r = (rv_digest_req *)r->bg.next) {
        CHECK_EQ_U64(r->err, 0);
        taken++;
    }
    CHECK_EQ_U64(taken, 2);
    CHECK_EQ_U64(rv_sha256_final_hex(h, got), RV_OK);
    CHECK_STREQ(got, want);
    CHECK_EQ_U64(rv_sha256_final_hex(h2, got), RV_OK);
    hex_of(data, 1000, want);
    CHECK_STREQ(got, want);

    rv_digester_free(d);
    rv_sha256_free(h);
    rv_sha256_free(h2);
    free(data);
    close(fd);
    return rv_test_result();
}
