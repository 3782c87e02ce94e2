/* test_source.c — a source registered from outside lib/ (rv_source.h):
 * with only the public headers, a "mem" scheme whose objects are made up
 * of a byte pattern is registered, downloaded through the engine, and
 * failed from its resolve; a URL its check refuses is refused by
 * rv_engine_add with its url_form. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "retriever.h"
#include "rv_error.h"
#include "rv_source.h"
#include "rv_test.h"

#define MEM_SIZE ((100u << 10) + 5) /* not a multiple of a slice */
#define MEM_SLICE (16u << 10)        /* the most one step writes */

static unsigned steps, closes, resolves;

static unsigned char pattern(uint64_t off) {
    return (unsigned char)(off * 7 + 3);
}

static int mem_check_url(const char *url) {
    return strstr(url, "/bad") ? RV_E_BAD_URL : RV_OK;
}

static int mem_resolve(rv_object *o) {
    resolves++;
    if (strstr(rv_object_url(o), "/missing")) {
        rv_sink_failed(o, RV_E_NOT_FOUND, "no such mem object");
        return RV_E_NOT_FOUND;
    }
    *rv_sink_source_data(o) = malloc(1); /* something close must free */
    int r = rv_sink_plan(o, MEM_SIZE, MEM_SIZE);
    if (r == RV_OK) {
        rv_sink_planned(o);
        rv_sink_resolved(o);
    }
    return r;
}

static int mem_step(rv_object *o, uint64_t budget) {
    unsigned char buf[MEM_SLICE];
    rv_chunk *c = rv_sink_next_range(o);
    uint64_t pos, end;
    if (!c)
        return 0;
    steps++;
    rv_sink_range(c, &pos, &end);
    size_t n = end - pos < MEM_SLICE ? (size_t)(end - pos) : MEM_SLICE;
    if (n > budget)
        n = (size_t)budget;
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(pos + i);
    int r = rv_sink_write(o, c, buf, n);
    if (r != RV_OK)
        return -r;
    if (pos + n == end)
        rv_sink_range_done(o, c);
    return (int)n;
}

static void mem_close(rv_object *o) {
    void **data = rv_sink_source_data(o);
    if (*data) {
        closes++;
        free(*data);
        *data = NULL;
    }
}

static const char *const mem_schemes[] = {"mem", NULL};
static const rv_source_ops mem_source = {
    .name = "mem",
    .schemes = mem_schemes,
    .caps = RV_SOURCE_CAP_SIZE_KNOWN,
    .url_form = "a mem URL without /bad",
    .check_url = mem_check_url,
    .resolve = mem_resolve,
    .step = mem_step,
    .close = mem_close,
};

static void run(rv_engine *e) {
    unsigned active = 1;
    for (int i = 0; active > 0 && i < 100000; i++)
        CHECK_EQ_U64(rv_engine_perform(e, 1000, &active), RV_OK);
    CHECK_EQ_U64(active, 0);
}

int main(void) {
    char dir[] = "/tmp/rv_test_source_XXXXXX", dest[256], missing[256];
    rv_config cfg;
    rv_engine *e = NULL;
    rv_object *o = NULL, *m = NULL;
    char *key = NULL;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(dest, sizeof(dest), "%s/obj", dir);
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    rv_config_init(&cfg);
    CHECK_EQ_U64(rv_engine_new(&cfg, &e), RV_OK);
    if (!e)
        return rv_test_result();

    /* Unknown until registered; a table that cannot work is refused. */
    CHECK(!rv_engine_supports_scheme(e, "mem"));
    rv_request nope = {.url = "mem://h/a", .dest_path = dest};
    CHECK_EQ_U64(rv_engine_add(e, &nope, NULL), RV_E_UNSUPPORTED_SCHEME);
    CHECK(strstr(rv_engine_error_detail(e), "(use http, https, file or s3)") != NULL);
    rv_source_ops bad = mem_source;
    bad.step = NULL; /* neither start_range nor step */
    CHECK_EQ_U64(rv_source_register(&bad), RV_E_INVALID_ARGUMENT);
    CHECK_EQ_U64(rv_source_register(&mem_source), RV_OK);
    CHECK(rv_engine_supports_scheme(e, "mem"));
    CHECK(rv_engine_supports_scheme(e, "http")); /* the built-in ones stay */
    nope.url = "nope://h/a"; /* the message names the registered scheme too */
    CHECK_EQ_U64(rv_engine_add(e, &nope, NULL), RV_E_UNSUPPORTED_SCHEME);
    CHECK(strstr(rv_engine_error_detail(e), "(use http, https, file, s3 or mem)") != NULL);
    CHECK_EQ_U64(rv_url_normalize("MEM://h/a", &key), RV_OK);
    CHECK(key && strcmp(key, "mem://h/a") == 0);
    free(key);
    CHECK_EQ_U64(rv_url_normalize("mem://h/bad", &key), RV_E_BAD_URL);

    /* Its check refuses a URL: so does rv_engine_add, saying how one must look. */
    rv_request req = {.url = "mem://h/bad", .dest_path = dest};
    CHECK_EQ_U64(rv_engine_add(e, &req, NULL), RV_E_BAD_URL);
    CHECK(strstr(rv_engine_error_detail(e), "is not a mem URL without /bad") != NULL);

    /* A download through it: every byte where the source put it. */
    req.url = "mem://h/obj";
    CHECK_EQ_U64(rv_engine_add(e, &req, &o), RV_OK);
    rv_request req2 = {.url = "mem://h/missing", .dest_path = missing};
    CHECK_EQ_U64(rv_engine_add(e, &req2, &m), RV_OK);
    run(e);
    if (o) {
        CHECK_EQ_U64(rv_object_state(o), RV_STATE_DONE);
        rv_progress p;
        rv_object_progress(o, &p);
        CHECK_EQ_U64(p.bytes_done, MEM_SIZE);
    }
    CHECK(steps >= MEM_SIZE / MEM_SLICE); /* in bounded slices */
    CHECK_EQ_U64(closes, 1);              /* its state freed once done */
    CHECK_EQ_U64(resolves, 2);
    int fd = open(dest, O_RDONLY);
    CHECK(fd >= 0);
    static unsigned char got[MEM_SIZE + 1];
    ssize_t n = fd >= 0 ? read(fd, got, sizeof(got)) : -1;
    CHECK_EQ_U64(n, MEM_SIZE);
    size_t bad_at = 0;
    for (size_t i = 0; n > 0 && i < (size_t)n && !bad_at; i++)
        if (got[i] != pattern(i))
            bad_at = i + 1;
    CHECK_EQ_U64(bad_at, 0);
    if (fd >= 0)
        close(fd);

    /* A failure its resolve reports is the object's. */
    if (m) {
        CHECK_EQ_U64(rv_object_state(m), RV_STATE_FAILED);
        CHECK_EQ_U64(rv_object_error(m), RV_E_NOT_FOUND);
        CHECK(strstr(rv_object_error_detail(m), "no such mem object") != NULL);
    }
    CHECK(access(missing, F_OK) != 0);

    e = rv_engine_free(e);
    unlink(dest);
    rmdir(dir);
    return rv_test_result();
}
