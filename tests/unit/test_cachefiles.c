/* test_cachefiles.c — the cache's file thread: blobs made ahead come back
 * in id order, read-only and open; a name already taken is skipped and
 * left alone; blobs not taken are removed when the thread is freed.
 * Deliveries link where they may, replace an existing destination, copy
 * when told to, report the errno of a failure, and wake the caller (blob
 * orders alone do not). A verified delivery (a cache hit) is put in place
 * only when the blob's bytes have the CRC-32C given; else it comes back
 * corrupt, with nothing at its destination. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachefiles.h"
#include "crc32c.h"
#include "rv_error.h"
#include "rv_test.h"
#include "wake_count.h"

static char dir[] = "/tmp/rv-test-cachefiles-XXXXXX";

static char *path_of(const char *name) {
    static char buf[4][256];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK_EQ_U64((uint64_t)write(fd, text, strlen(text)), strlen(text));
    close(fd);
}

static void check_content(const char *path, const char *text) {
    char got[64] = "";
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = read(fd, got, sizeof(got) - 1);
    close(fd);
    CHECK_STREQ(n >= 0 ? got : "", text);
}

/* A delivery of blob name to dest name; the blob is opened for it. */
static rv_delivery *delivery(const char *blob, const char *dest, bool link) {
    rv_delivery *d = rv_delivery_new();
    CHECK(d != NULL);
    d->blob_path = strdup(path_of(blob));
    d->dest_path = strdup(path_of(dest));
    d->fd = open(d->blob_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    CHECK(d->fd >= 0 && fstat(d->fd, &st) == 0);
    d->size = (uint64_t)st.st_size;
    d->link = link;
    return d;
}

/* Submit one delivery list, wait for its wake, return what came back. */
static rv_delivery *deliver(rv_cachefiles *c, rv_delivery *list, unsigned *seen) {
    rv_cachefiles_deliver(c, list);
    *seen = wait_wakes(*seen + 1);
    return rv_cachefiles_delivered(c);
}

/* Entries of dir whose names start with a dot, but . and .. */
static unsigned hidden_names(void) {
    unsigned n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static ino_t inode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    rv_cachefiles *c = NULL;
    CHECK_EQ_U64(rv_cachefiles_new(dir, 42, wake, NULL, &c), RV_OK);
    unsigned seen = 0;
    int64_t id = 0;
    int fd = -1;

    /* Nothing ordered: nothing to take. */
    CHECK(!rv_cachefiles_take(c, &id, &fd));

    /* Orders: 9 exists already; 7..10 are ordered. A delivery queued
     * after them comes back when they are done (one thread, in order). */
    write_file(path_of("9"), "keep");
    write_file(path_of("b1"), "blob one");
    CHECK_EQ_U64(rv_cachefiles_order(c, 7, 4), RV_OK);
    CHECK_EQ_U64(rv_cachefiles_ordered(c), 4);
    rv_delivery *back = deliver(c, delivery("b1", "d1", true), &seen);
    CHECK(back != NULL && back->bg.next == NULL);
    CHECK_EQ_U64((uint64_t)back->err, 0);
    CHECK_EQ_U64((uint64_t)back->fd, (uint64_t)-1); /* the thread closed it */
    rv_delivery_free(back);
    CHECK_EQ_U64(inode_of(path_of("d1")), inode_of(path_of("b1"))); /* a hard link */
    int64_t want[] = {7, 8, 10};
    for (int i = 0; i < 3; i++) {
        CHECK(rv_cachefiles_take(c, &id, &fd));
        CHECK_EQ_U64((uint64_t)id, (uint64_t)want[i]);
        struct stat st;
        CHECK(fstat(fd, &st) == 0);
        CHECK_EQ_U64(st.st_mode & 07777, 0400); /* RV_BLOB_MODE */
        CHECK_EQ_U64((uint64_t)pwrite(fd, "x", 1, 0), 1); /* the descriptor writes */
        close(fd);
    }
    CHECK(!rv_cachefiles_take(c, &id, &fd));
    CHECK_EQ_U64(rv_cachefiles_ordered(c), 0);
    check_content(path_of("9"), "keep"); /* skipped, untouched */

    /* Over an existing destination: replaced, by a link. A copy: another
     * file with the same bytes, made read-only first when asked, with
     * exactly the mode asked for (not through the umask). A missing
     * directory: ENOENT. Three deliveries in one list. */
    write_file(path_of("b2"), "blob two");
    write_file(path_of("d2"), "old");
    rv_delivery *list = delivery("b2", "d2", true);
    rv_delivery *copy = delivery("b2", "d3", false);
    copy->make_readonly = true;
    copy->mode = 0640;
    rv_delivery *lost = delivery("b2", "no/such/dir", true);
    list->bg.next = &copy->bg;
    copy->bg.next = &lost->bg;
    back = deliver(c, list, &seen);
    rv_delivery *want_order[] = {list, copy, lost};
    int want_err[] = {0, 0, ENOENT};
    for (int i = 0; i < 3; i++) {
        CHECK(back == want_order[i]);
        if (!back)
            break;
        CHECK_EQ_U64((uint64_t)back->err, (uint64_t)want_err[i]);
        rv_delivery *next = (rv_delivery *)back->bg.next;
        rv_delivery_free(back);
        back = next;
    }
    CHECK_EQ_U64(inode_of(path_of("d2")), inode_of(path_of("b2")));
    CHECK(inode_of(path_of("d3")) != inode_of(path_of("b2")));
    check_content(path_of("d3"), "blob two");
    struct stat st;
    CHECK(stat(path_of("b2"), &st) == 0 && (st.st_mode & 07777) == 0400);
    CHECK(stat(path_of("d3"), &st) == 0);
    CHECK_EQ_U64(st.st_mode & 07777, 0640);
    CHECK_EQ_U64(hidden_names(), 0); /* no temporary name is left behind */

    /* Verified: the right CRC delivers; another CRC, or a blob of another
     * size than recorded (same CRC of its first bytes), delivers nothing. */
    write_file(path_of("b3"), "blob three");
    uint32_t crc3 = rv_crc32c(0, "blob three", 10);
    rv_delivery *good = delivery("b3", "d4", false);
    rv_delivery *bad = delivery("b3", "d5", true);
    rv_delivery *cut = delivery("b3", "d6", false);
    good->verify = bad->verify = cut->verify = true;
    good->crc32c = crc3;
    bad->crc32c = crc3 ^ 1;
    cut->crc32c = rv_crc32c(0, "blob thr", 8);
    cut->size = 8;
    good->bg.next = &bad->bg;
    bad->bg.next = &cut->bg;
    back = deliver(c, good, &seen);
    bool want_corrupt[] = {false, true, true};
    rv_delivery *verified[] = {good, bad, cut};
    for (int i = 0; i < 3; i++) {
        CHECK(back == verified[i]);
        if (!back)
            break;
        CHECK_EQ_U64((uint64_t)back->err, 0);
        CHECK_EQ_U64(back->corrupt, want_corrupt[i]);
        rv_delivery *next = (rv_delivery *)back->bg.next;
        rv_delivery_free(back);
        back = next;
    }
    check_content(path_of("d4"), "blob three");
    CHECK(access(path_of("d5"), F_OK) != 0 && access(path_of("d6"), F_OK) != 0);
    CHECK_EQ_U64(hidden_names(), 0);

    /* A blob big enough to be checked in two halves at once: right, then
     * with one byte changed in the second half, then in the first. */
    {
        size_t big = (64u << 20) + 3;
        unsigned char *bytes = malloc(big);
        CHECK(bytes != NULL);
        for (size_t i = 0; bytes && i < big; i++)
            bytes[i] = (unsigned char)(i * 2654435761u >> 13);
        uint32_t crc = bytes ? rv_crc32c(0, bytes, big) : 0;
        int bfd = open(path_of("b4"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(bfd >= 0 && bytes && write(bfd, bytes, big) == (ssize_t)big);
        close(bfd);
        free(bytes);
        uint64_t edits[] = {0, big - 2, 5};
        for (int i = 0; i < 3; i++) {
            if (i > 0) {
                bfd = open(path_of("b4"), O_WRONLY);
                CHECK(bfd >= 0 && pwrite(bfd, "!", 1, (off_t)edits[i]) == 1);
                close(bfd);
            }
            rv_delivery *v = delivery("b4", "d7", false);
            v->verify = true;
            v->crc32c = crc;
            back = deliver(c, v, &seen);
            CHECK(back == v);
            CHECK_EQ_U64((uint64_t)v->err, 0);
            CHECK_EQ_U64(v->corrupt, i > 0);
            CHECK_EQ_U64(access(path_of("d7"), F_OK) == 0, i == 0);
            rv_delivery_free(v);
            unlink(path_of("d7"));
        }
        unlink(path_of("b4"));
    }

    /* Orders alone wake nobody; blobs not taken go with the thread. */
    reset_wakes();
    seen = 0;
    CHECK_EQ_U64(rv_cachefiles_order(c, 20, 3), RV_OK);
    for (int i = 0; i < 1000 && access(path_of("22"), F_OK) != 0; i++)
        usleep(1000);
    CHECK(access(path_of("22"), F_OK) == 0);
    usleep(20000);
    CHECK_EQ_U64(wakes_so_far(), 0);
    c = rv_cachefiles_free(c);
    CHECK(c == NULL);
    for (int i = 20; i <= 22; i++) {
        char name[8];
        snprintf(name, sizeof(name), "%d", i);
        CHECK(access(path_of(name), F_OK) != 0);
    }
    CHECK(access(path_of("7"), F_OK) == 0); /* taken blobs are the caller's */

    const char *left[] = {"7", "8", "9", "10", "b1", "b2", "b3", "d1", "d2", "d3", "d4"};
    for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
        unlink(path_of(left[i]));
    CHECK(rmdir(dir) == 0);
    return rv_test_result();
}
