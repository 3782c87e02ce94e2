/* test_evict.c — cache eviction when the state database cannot be read
 * whole: the failure is reported (on_notice), not taken for "enough room";
 * nothing is evicted half-way; the next eviction, with memory again, does
 * the work.
 *
 * The failure is real: this program is linked with -Wl,--wrap=realloc
 * (tests/unit/CMakeLists.txt), so the library's own realloc calls come
 * here, and one chosen call fails as an exhausted heap would. Before the
 * fix, eviction stopped on a callback result of 1 to mean "under the
 * quota now", which is also RV_E_NOMEM: the failure passed unreported. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retriever/retriever.h"
#include "rv_test.h"
#include "store.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

/* One realloc of fail_size bytes on the armed thread fails. The size and
 * the thread single out the store's list of rows (rv_store_each), not the
 * engine's helper threads or another buffer. */
static bool fail_armed;
static size_t fail_size;
static pthread_t fail_thread;

void *__wrap_realloc(void *p, size_t n) {
    if (fail_armed && n == fail_size && pthread_equal(pthread_self(), fail_thread)) {
        fail_armed = false;
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

static char dir[] = "/tmp/rv-test-evict-XXXXXX";
static char notices[4096];

static void on_notice(void *ud, const char *msg) {
    (void)ud;
    size_t used = strlen(notices);
    snprintf(notices + used, sizeof(notices) - used, "%s\n", msg);
}

static const rv_hooks hooks = {.on_notice = on_notice};

static char *path_of(const char *name) {
    static char buf[4][512];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, size_t size, char fill) {
    char block[4096];
    memset(block, fill, sizeof(block));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    for (size_t at = 0; at < size; at += sizeof(block))
        CHECK(write(fd, block, sizeof(block)) == (ssize_t)sizeof(block));
    close(fd);
}

/* Blobs with bytes: the entries (an empty one may be made ahead for an
 * object that did not need it, cachefiles.h). */
static unsigned blobs(void) {
    unsigned n = 0;
    DIR *d = opendir(path_of("state/cache/blobs"));
    for (struct dirent *de; d && (de = readdir(d));) {
        struct stat st;
        n += de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
             st.st_size > 0;
    }
    if (d)
        closedir(d);
    return n;
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    rv_config cfg;
    rv_engine *e = NULL;
    rv_config_init(&cfg);
    cfg.state_dir = path_of("state");
    cfg.hooks = &hooks;
    cfg.cache_quota = 0; /* no limit until the test sets one */
    CHECK_EQ_U64(rv_engine_new(&cfg, &e), RV_OK);
    if (!e)
        return rv_test_result();

    /* Two complete entries. */
    const char *names[] = {"a", "b"};
    for (int i = 0; i < 2; i++) {
        char url[600], dest[512];
        write_file(path_of(names[i]), 64 << 10, (char)('a' + i));
        snprintf(url, sizeof(url), "file://%s", path_of(names[i]));
        snprintf(dest, sizeof(dest), "%s.out", path_of(names[i]));
        rv_request req = {.url = url, .dest_path = dest};
        CHECK_EQ_U64(rv_engine_add(e, &req, NULL), RV_OK);
    }
    unsigned active = 1;
    for (int i = 0; active > 0 && i < 100000; i++)
        CHECK_EQ_U64(rv_engine_perform(e, 1000, &active), RV_OK);
    CHECK_EQ_U64(blobs(), 2);
    CHECK_EQ_U64(rv_engine_cache_bytes(e), 2 * (64 << 10));

    /* Room for nothing, and the list of rows cannot be made: reported,
     * nothing evicted. */
    fail_size = 64 * sizeof(rv_store_object); /* the list's first size */
    fail_thread = pthread_self();
    fail_armed = true;
    rv_engine_set_cache_quota(e, 1);
    CHECK(!fail_armed); /* the failure happened where it was meant to */
    CHECK(strstr(notices, "cache eviction failed: out of memory") != NULL);
    CHECK_EQ_U64(blobs(), 2);
    CHECK_EQ_U64(rv_engine_cache_bytes(e), 2 * (64 << 10));

    /* With memory again, the same quota evicts both. */
    notices[0] = '\0';
    rv_engine_set_cache_quota(e, 1);
    CHECK_STREQ(notices, "");
    CHECK_EQ_U64(blobs(), 0);
    CHECK_EQ_U64(rv_engine_cache_bytes(e), 0);

    rv_engine_free(e);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
    CHECK(system(cmd) == 0);
    return rv_test_result();
}
