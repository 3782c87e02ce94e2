/* test_writer.c — the write threads: a lane's thread starts with its first
 * request (lane numbers taken modulo RV_WRITER_LANES), every lane writes
 * its requests in order and hands them back in that order, CRCs only when
 * asked, a failed write comes back with its errno, and stopping finishes
 * what was queued. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "crc32c.h"
#include "rv_error.h"
#include "rv_test.h"
#include "writer.h"

#define PIECE 4096u
/* Two requests per lane, on lane numbers past RV_WRITER_LANES too. */
#define N_REQ (2u * RV_WRITER_LANES)

/* This process's threads named rv-writer. */
static unsigned writer_threads(void) {
    unsigned n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[300], comm[32] = "";
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t got = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        if (got > 0 && strcmp(comm, "rv-writer\n") == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void noop_wake(void *ud) {
    (void)ud;
}

/* Take back every request submitted, checking each lane's order: lane of
 * request i is i % RV_WRITER_LANES, submitted in increasing i. */
static unsigned take_all(rv_writer *w, unsigned n_out, unsigned last_seen[RV_WRITER_LANES],
                         rv_write_req *reqs) {
    unsigned taken = 0;
    while (taken < n_out) {
        rv_write_req *r = rv_writer_take_done(w);
        if (!r) {
            rv_writer_wait(w);
            continue;
        }
        for (; r; r = (rv_write_req *)r->bg.next, taken++) {
            unsigned i = (unsigned)(r - reqs), lane = i % RV_WRITER_LANES;
            CHECK(i < N_REQ);
            CHECK(last_seen[lane] == UINT32_MAX || last_seen[lane] < i);
            last_seen[lane] = i;
        }
    }
    return taken;
}

int main(void) {
    char path[] = "/tmp/rv-test-writer-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    unsigned char *data = malloc(N_REQ * PIECE);
    for (size_t i = 0; i < N_REQ * PIECE; i++)
        data[i] = (unsigned char)(i * 7 + i / 4093);

    rv_writer *w = NULL;
    CHECK_EQ_U64(rv_writer_new(noop_wake, NULL, &w), RV_OK);
    CHECK_EQ_U64(writer_threads(), 0); /* none until a lane has work */

    /* Lanes 0 and 1 first: two threads. */
    rv_write_req reqs[N_REQ];
    for (unsigned i = 0; i < N_REQ; i++)
        reqs[i] = (rv_write_req){.fd = dup(fd), .tee_fd = -1, .buf = data + i * PIECE, .len = PIECE,
                                 .off = (uint64_t)i * PIECE, .want_crc = i % 3 != 0};
    unsigned last_seen[RV_WRITER_LANES];
    memset(last_seen, 0xff, sizeof(last_seen));
    CHECK_EQ_U64(rv_writer_submit(w, 0, &reqs[0]), RV_OK);
    CHECK_EQ_U64(rv_writer_submit(w, 1, &reqs[1]), RV_OK);
    CHECK_EQ_U64(writer_threads(), 2);
    CHECK_EQ_U64(take_all(w, 2, last_seen, reqs), 2);

    /* The rest, lane numbers given as the request's index: i and
     * i + RV_WRITER_LANES share a lane. Every lane has a thread then. */
    for (unsigned i = 2; i < N_REQ; i++)
        CHECK_EQ_U64(rv_writer_submit(w, i, &reqs[i]), RV_OK);
    CHECK_EQ_U64(writer_threads(), RV_WRITER_LANES);
    CHECK_EQ_U64(take_all(w, N_REQ - 2, last_seen, reqs), N_REQ - 2);
    for (unsigned i = 0; i < N_REQ; i++) {
        CHECK_EQ_U64(reqs[i].err, 0);
        CHECK_EQ_U64((uint64_t)reqs[i].fd, (uint64_t)-1); /* the writer closed it */
        CHECK_EQ_U64(reqs[i].crc, reqs[i].want_crc ? rv_crc32c(0, data + i * PIECE, PIECE) : 0);
    }
    unsigned char *back = malloc(N_REQ * PIECE);
    CHECK_EQ_U64((uint64_t)pread(fd, back, N_REQ * PIECE, 0), N_REQ * PIECE);
    CHECK(memcmp(back, data, N_REQ * PIECE) == 0);

    /* A descriptor that cannot write: the request comes back with EBADF. */
    char ro_path[64];
    snprintf(ro_path, sizeof(ro_path), "/proc/self/fd/%d", fd);
    int ro = open(ro_path, O_RDONLY | O_CLOEXEC);
    CHECK(ro >= 0);
    rv_write_req bad = {.fd = ro, .tee_fd = -1, .buf = data, .len = PIECE, .off = 0};
    CHECK_EQ_U64(rv_writer_submit(w, 3, &bad), RV_OK);
    rv_write_req *r = NULL;
    while (!(r = rv_writer_take_done(w)))
        rv_writer_wait(w);
    CHECK(r == &bad);
    CHECK_EQ_U64(bad.err, EBADF);

    /* Stopping writes what is queued; the requests stay to be taken. */
    memset(back, 0, PIECE);
    rv_write_req last = {.fd = dup(fd), .tee_fd = -1, .buf = data + PIECE, .len = PIECE, .off = 0};
    CHECK_EQ_U64(rv_writer_submit(w, 5, &last), RV_OK);
    rv_writer_stop(w);
    CHECK(rv_writer_take_done(w) == &last);
    CHECK_EQ_U64(last.err, 0);
    CHECK_EQ_U64((uint64_t)pread(fd, back, PIECE, 0), PIECE);
    CHECK(memcmp(back, data + PIECE, PIECE) == 0);

    CHECK(rv_writer_free(w) == NULL);
    /* Every lane is joined now; the kernel removes a joined thread's
     * /proc/self/task entry a moment after pthread_join returns (the join
     * wakes on the thread's tid being cleared, before its exit ends), so
     * the count is looked at again for up to 2 s. */
    unsigned left = writer_threads();
    for (int i = 0; i < 200 && left; i++) {
        usleep(10000);
        left = writer_threads();
    }
    CHECK_EQ_U64(left, 0);
    free(back);
    free(data);
    close(fd);
    return rv_test_result();
}
