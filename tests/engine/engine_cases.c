/* engine_cases.c — engine integration cases, linked against the real
 * library and run by test_engine.py against real origins it starts.
 *
 *   engine_cases ok URL DEST SHA256              download; check file and hooks
 *   engine_cases error URL DEST ERROR_NAME [SHA256]  expect failure with that code
 *   engine_cases retries URL DEST SHA256 N STATUS  exactly N retries on STATUS;
 *                                                  prints RETRY_WAIT <ms> each
 *   engine_cases cancel URL DEST                 cancel mid-transfer
 *   engine_cases fail_fast URL DEST              object changes, policy FAIL
 *   engine_cases many DIR URL SHA256 [URL SHA256]...  concurrent objects
 *   engine_cases groups DIR CAP FULL N GROUP URL SHA256 [GROUP URL SHA256]...
 *                                                concurrent objects tagged with
 *                                                groups (max_connections_per_group
 *                                                CAP); the first N are added, and
 *                                                the rest once the engine runs FULL
 *                                                transfers (printed as
 *                                                LATER_ADDED <seconds>)
 *   engine_cases bad_input DIR                   rejected requests create nothing
 *   engine_cases fd_table                        the engine grows the descriptor table
 *
 * Timestamps printed as "NAME <seconds>" are CLOCK_MONOTONIC, the clock the
 * Python origin's time.monotonic() reads, so the driver can compare them
 * with the origin's connection log. Exit status 0 only when every check
 * passed.
 *
 * Environment (all optional):
 *   RV_TEST_STALL_MS=N          stall_timeout_ms
 *   RV_TEST_MAX_CONNECTIONS=N   max_connections (all objects)
 *   RV_TEST_MAX_CONNECTIONS_PER_HOST=N, RV_TEST_MAX_CONNECTIONS_PER_OBJECT=N
 *   RV_TEST_HEADER="Name: value"  one request header sent on every request
 *   RV_TEST_STATE_DIR=DIR       durable state in DIR (cache in DIR/cache)
 *   RV_TEST_CA_FILE=FILE        CA certificates https origins must chain to
 *   RV_TEST_CA_PEM=FILE         the request's own CA certificates (ca_pem),
 *                               added to the store above (or the system's)
 *   RV_TEST_CA_ONLY=1           ... replacing it instead (ca_only)
 *   RV_TEST_INSECURE=1          the request does not verify certificates
 *   RV_TEST_MAX_ATTEMPTS=N      max_attempts
 *   RV_TEST_NO_REVALIDATE=1     cache_revalidate off (a hit is trusted as is)
 *   RV_TEST_CONNECT_RETRY_MS=N  connect_retry_ms
 *   RV_TEST_IDLE_WAIT_MS=N      "error": then one rv_engine_perform(N) with
 *                               nothing live, printed as IDLE_WAIT <seconds>
 *   RV_TEST_MAY_RESTART=1       "ok": the download may legitimately start
 *                               over (object changed, origin stopped doing
 *                               ranges, a rangeless stream retried), so
 *                               progress may go back and completed ranges
 *                               may overlap; without it both are checked
 *   RV_TEST_RESUMED=1           "ok": the object resumes from durable state
 *                               (RV_TEST_STATE_DIR) or is a cache hit; the
 *                               ranges an earlier run finished are not
 *                               reported again, so the ranges-cover-the-file
 *                               checks are off
 */
#include <dirent.h>
#include <retriever/retriever.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rv_test.h"

#define MAX_EVENTS 64
#define MAX_CHUNKS 4096 /* on_chunk_done calls kept for the tiling check */

typedef struct span {
    uint64_t off, len;
} span;

typedef struct observed {
    rv_state states[MAX_EVENTS];
    unsigned n_states;
    uint64_t last_progress, progress_total;
    bool progress_went_back, progress_total_wrong;
    uint64_t chunk_bytes;
    span chunks[MAX_CHUNKS]; /* every on_chunk_done, in call order */
    unsigned n_chunks;       /* calls made; may exceed MAX_CHUNKS */
    unsigned retries;
    long retry_status[MAX_EVENTS];
    uint64_t retry_wait[MAX_EVENTS];
    unsigned retry_attempt[MAX_EVENTS];
    double max_rate; /* of any progress report, bytes/s */
    double failed_at;
    unsigned waits; /* on_wait calls */
} observed;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_state(void *ud, rv_object *o, rv_state s) {
    observed *ob = ud;
    if (ob->n_states < MAX_EVENTS)
        ob->states[ob->n_states++] = s;
    if (s == RV_STATE_FAILED)
        ob->failed_at = now_s();
    (void)o;
}

static void on_progress(void *ud, rv_object *o, const rv_progress *p) {
    observed *ob = ud;
    if (p->bytes_done < ob->last_progress)
        ob->progress_went_back = true;
    if (p->total_known && p->bytes_done > p->bytes_total)
        ob->progress_total_wrong = true;
    ob->last_progress = p->bytes_done;
    ob->progress_total = p->bytes_total;
    if (p->rate_bps > ob->max_rate)
        ob->max_rate = p->rate_bps;
    (void)o;
}

static void on_chunk(void *ud, rv_object *o, uint64_t off, uint64_t len) {
    observed *ob = ud;
    ob->chunk_bytes += len;
    if (ob->n_chunks < MAX_CHUNKS)
        ob->chunks[ob->n_chunks] = (span){off, len};
    ob->n_chunks++;
    (void)o;
}

static void on_retry(void *ud, rv_object *o, const rv_retry_info *r) {
    observed *ob = ud;
    if (ob->retries < MAX_EVENTS) {
        ob->retry_status[ob->retries] = r->http_status;
        ob->retry_wait[ob->retries] = r->wait_ms;
        ob->retry_attempt[ob->retries] = r->attempt;
    }
    ob->retries++;
    (void)o;
}

static void on_wait(void *ud) {
    ((observed *)ud)->waits++;
}

static const rv_hooks hooks = {.on_state = on_state,
                               .on_progress = on_progress,
                               .on_chunk_done = on_chunk,
                               .on_retry = on_retry,
                               .on_wait = on_wait};

/* RV_TEST_<...>=N from the environment overrides *field. */
static void env_unsigned(const char *name, unsigned *field) {
    const char *v = getenv(name);
    if (v)
        *field = (unsigned)strtoul(v, NULL, 10);
}

static rv_engine *engine(observed *ob, void (*tweak)(rv_config *)) {
    rv_config cfg;
    rv_engine *e = NULL;
    rv_config_init(&cfg);
    cfg.hooks = &hooks;
    cfg.hooks_ud = ob;
    cfg.backoff_base_ms = 20; /* keep retry cases quick */
    cfg.backoff_max_ms = 200;
    cfg.progress_interval_ms = 10;
    env_unsigned("RV_TEST_STALL_MS", &cfg.stall_timeout_ms);
    env_unsigned("RV_TEST_MAX_ATTEMPTS", &cfg.max_attempts);
    env_unsigned("RV_TEST_CONNECT_RETRY_MS", &cfg.connect_retry_ms);
    env_unsigned("RV_TEST_MAX_CONNECTIONS", &cfg.max_connections);
    env_unsigned("RV_TEST_MAX_CONNECTIONS_PER_HOST", &cfg.max_connections_per_host);
    env_unsigned("RV_TEST_MAX_CONNECTIONS_PER_OBJECT", &cfg.max_connections_per_object);
    cfg.state_dir = getenv("RV_TEST_STATE_DIR");
    cfg.ca_file = getenv("RV_TEST_CA_FILE");
    if (getenv("RV_TEST_NO_REVALIDATE"))
        cfg.cache_revalidate = false;
    if (tweak)
        tweak(&cfg);
    int r = rv_engine_new(&cfg, &e);
    CHECK_EQ_U64(r, RV_OK);
    return e;
}

static void run(rv_engine *e) {
    unsigned active = 1;
    for (int i = 0; active > 0 && i < 1000000; i++)
        CHECK_EQ_U64(rv_engine_perform(e, 1000, &active), RV_OK);
    CHECK_EQ_U64(active, 0);
}

/* No temporary files (".*.rvpart-*") left in dir. */
static unsigned leftovers(const char *dir) {
    unsigned n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strstr(de->d_name, ".rvpart-"))
            n++;
    closedir(d);
    return n;
}

static unsigned dir_entries(const char *dir) {
    unsigned n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *dir_of(const char *path) {
    char *d = strdup(path);
    char *slash = strrchr(d, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(d, ".");
    return d;
}

/* The whole of a small file, NUL-terminated (malloc'd), or NULL. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (!f)
        return NULL;
    buf = calloc(1, 1u << 20);
    if (buf)
        n = fread(buf, 1, (1u << 20) - 1, f);
    fclose(f);
    (void)n;
    return buf;
}

static rv_object *add(rv_engine *e, const char *url, const char *dest, const char *sha) {
    rv_object *o = NULL;
    const char *header = getenv("RV_TEST_HEADER");
    const char *ca = getenv("RV_TEST_CA_PEM");
    char *pem = ca ? slurp(ca) : NULL;
    CHECK(!ca || pem);
    rv_request req = {.url = url, .dest_path = dest, .sha256_hex = sha,
                      .headers = header ? &header : NULL, .n_headers = header ? 1 : 0,
                      .ca_pem = pem, .ca_only = getenv("RV_TEST_CA_ONLY") != NULL,
                      .insecure = getenv("RV_TEST_INSECURE") != NULL};
    int r = rv_engine_add(e, &req, &o);
    free(pem); /* the engine copied it */
    if (r != RV_OK)
        printf("ADD_ERROR %s\n", rv_error_name(r));
    CHECK_EQ_U64(r, RV_OK);
    return o;
}

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Whether the completed ranges cover [0, size) exactly once: sorted by
 * offset, each starts where the one before ended (no gap, no overlap, no
 * range reported twice), and the last ends at size. No range is empty,
 * except the one range of an empty object. Says what is wrong on stderr. */
static bool chunks_tile(observed *ob, uint64_t size) {
    if (ob->n_chunks > MAX_CHUNKS) {
        fprintf(stderr, "%u chunks, more than the %u recorded\n", ob->n_chunks, MAX_CHUNKS);
        return false;
    }
    qsort(ob->chunks, ob->n_chunks, sizeof(ob->chunks[0]), span_cmp);
    uint64_t end = 0;
    for (unsigned i = 0; i < ob->n_chunks; i++) {
        const span *c = &ob->chunks[i];
        bool empty_ok = size == 0 && ob->n_chunks == 1;
        if (c->off != end || (c->len == 0 && !empty_ok)) {
            fprintf(stderr, "chunk %u of %u is [%llu, +%llu), expected one at %llu\n", i,
                    ob->n_chunks, (unsigned long long)c->off, (unsigned long long)c->len,
                    (unsigned long long)end);
            return false;
        }
        end += c->len;
    }
    if (end != size)
        fprintf(stderr, "chunks end at %llu, the file at %llu\n", (unsigned long long)end,
                (unsigned long long)size);
    return end == size;
}

static int case_ok(char **argv) {
    observed ob = {0};
    rv_engine *e = engine(&ob, NULL);
    rv_object *o = add(e, argv[0], argv[1], argv[2]);
    if (!o) {
        rv_engine_free(e);
        return rv_test_result();
    }
    run(e);
    CHECK_EQ_U64(rv_object_state(o), RV_STATE_DONE);
    if (rv_object_state(o) != RV_STATE_DONE)
        fprintf(stderr, "failed: %s (%s)\n", rv_strerror(rv_object_error(o)),
                rv_object_error_detail(o));
    CHECK_STREQ(rv_object_sha256_hex(o), argv[2]);
    struct stat st;
    CHECK(stat(argv[1], &st) == 0);
    /* The lifecycle, in order, with nothing skipped; restarts (object
     * changed) go back to resolving, so only the edges are fixed. */
    CHECK(ob.n_states >= 4);
    if (strncmp(argv[0], "file:", 5) != 0)
        CHECK(ob.waits > 0); /* a download over the network waits for it */
    CHECK_EQ_U64(ob.states[0], RV_STATE_RESOLVING);
    CHECK_EQ_U64(ob.states[ob.n_states - 2], RV_STATE_VERIFYING);
    CHECK_EQ_U64(ob.states[ob.n_states - 1], RV_STATE_DONE);
    CHECK(!ob.progress_total_wrong);
    /* No rate beyond what loopback carries, also across a restart (bytes
     * done going back once made it wrap to ~1e19). */
    CHECK(ob.max_rate < 1e11);
    bool resumed = getenv("RV_TEST_RESUMED") != NULL;
    CHECK_EQ_U64(resumed || ob.chunk_bytes >= (uint64_t)st.st_size, 1);
    /* A download that cannot start over only moves forward, and its
     * completed ranges are the file, each byte in exactly one of them. */
    if (!getenv("RV_TEST_MAY_RESTART")) {
        CHECK(!ob.progress_went_back);
        CHECK(resumed || chunks_tile(&ob, (uint64_t)st.st_size));
    }
    rv_progress p;
    rv_object_progress(o, &p);
    CHECK_EQ_U64(p.bytes_done, (uint64_t)st.st_size);
    CHECK_EQ_U64(p.bytes_total, (uint64_t)st.st_size);
    char *dir = dir_of(argv[1]);
    CHECK_EQ_U64(leftovers(dir), 0);
    free(dir);
    printf("RETRIES %u\n", rv_object_retries(o));
    printf("CHUNKS %u\n", ob.n_chunks);
    rv_engine_free(e);
    return rv_test_result();
}

static int case_error(char **argv) {
    observed ob = {0};
    rv_engine *e = engine(&ob, NULL);
    double t_add = now_s();
    rv_object *o = add(e, argv[0], argv[1], argv[3]);
    if (!o) {
        rv_engine_free(e);
        return rv_test_result();
    }
    run(e);
    CHECK_EQ_U64(rv_object_state(o), RV_STATE_FAILED);
    CHECK_STREQ(rv_error_name(rv_object_error(o)), argv[2]);
    CHECK(rv_object_error_detail(o)[0] != '\0');
    printf("DETAIL %s\n", rv_object_error_detail(o));
    printf("RETRIES %u\n", rv_object_retries(o));
    printf("ELAPSED %.3f\n", ob.failed_at - t_add);
    CHECK(access(argv[1], F_OK) != 0); /* nothing under the final name */
    char *dir = dir_of(argv[1]);
    CHECK_EQ_U64(leftovers(dir), 0);
    free(dir);
    CHECK_EQ_U64(ob.states[ob.n_states - 1], RV_STATE_FAILED);
    const char *idle_ms = getenv("RV_TEST_IDLE_WAIT_MS");
    if (idle_ms) { /* one more wait with nothing live: how long it took */
        double t0 = now_s();
        CHECK_EQ_U64(rv_engine_perform(e, atoi(idle_ms), NULL), RV_OK);
        printf("IDLE_WAIT %.3f\n", now_s() - t0);
    }
    rv_engine_free(e);
    return rv_test_result();
}

static int case_retries(char **argv) {
    observed ob = {0};
    unsigned want = (unsigned)atoi(argv[3]);
    long status = atol(argv[4]);
    rv_engine *e = engine(&ob, NULL);
    rv_object *o = add(e, argv[0], argv[1], argv[2]);
    if (!o) {
        rv_engine_free(e);
        return rv_test_result();
    }
    run(e);
    CHECK_EQ_U64(rv_object_state(o), RV_STATE_DONE);
    CHECK_EQ_U64(ob.retries, want);
    CHECK_EQ_U64(rv_object_retries(o), want);
    /* The waits are printed for the driver, which knows whether the origin
     * sent a Retry-After (then the wait is its value) or not (then a full
     * jitter within [0, min(max, base * 2^(n-1))]). */
    for (unsigned i = 0; i < want && i < MAX_EVENTS; i++) {
        CHECK_EQ_U64(ob.retry_status[i], (uint64_t)status);
        CHECK_EQ_U64(ob.retry_attempt[i], i + 1);
        printf("RETRY_WAIT %llu\n", (unsigned long long)ob.retry_wait[i]);
    }
    rv_engine_free(e);
    return rv_test_result();
}

static int case_cancel(char **argv) {
    observed ob = {0};
    rv_engine *e = engine(&ob, NULL);
    rv_object *o = add(e, argv[0], argv[1], NULL);
    unsigned active = 1;
    if (!o) {
        rv_engine_free(e);
        return rv_test_result();
    }
    /* Cancel once more bytes have come than the first request's 1 MiB
     * probe holds: then at least one more range's request has reached the
     * origin, and at the origin's 2 MiB/s per connection no range has
     * finished yet (the probe takes 0.5 s). Cancelling at the first bytes
     * raced the other ranges' requests, which a slow build often lost. */
    for (int i = 0; active && ob.last_progress <= (1u << 20) && i < 100000; i++)
        CHECK_EQ_U64(rv_engine_perform(e, 1000, &active), RV_OK);
    CHECK(ob.last_progress > (1u << 20));
    CHECK_EQ_U64(rv_object_state(o), RV_STATE_DOWNLOADING);
    printf("CANCEL_AT %.6f\n", now_s());
    fflush(stdout);
    CHECK_EQ_U64(rv_engine_cancel(e, o), RV_OK);
    CHECK_EQ_U64(rv_object_state(o), RV_STATE_CANCELLED);
    CHECK_EQ_U64(rv_object_error(o), RV_E_CANCELLED);
    CHECK(access(argv[1], F_OK) != 0);
    char *dir = dir_of(argv[1]);
    CHECK_EQ_U64(leftovers(dir), 0);
    free(dir);
    CHECK_EQ_U64(rv_engine_perform(e, 0, &active), RV_OK);
    CHECK_EQ_U64(active, 0);
    CHECK_EQ_U64(rv_engine_cancel(e, o), RV_OK); /* idempotent */
    CHECK_EQ_U64(rv_engine_release(e, o), RV_OK);
    rv_engine_free(e);
    return rv_test_result();
}

static void policy_fail(rv_config *cfg) { cfg->on_change = RV_CHANGE_FAIL; }

static int case_fail_fast(char **argv) {
    observed ob = {0};
    rv_engine *e = engine(&ob, policy_fail);
    rv_object *o = add(e, argv[0], argv[1], NULL);
    if (!o) {
        rv_engine_free(e);
        return rv_test_result();
    }
    run(e);
    CHECK_EQ_U64(rv_object_state(o), RV_STATE_FAILED);
    CHECK_STREQ(rv_error_name(rv_object_error(o)), "RV_E_CHANGED");
    printf("FAILED_AT %.6f\n", ob.failed_at);
    rv_engine_free(e);
    return rv_test_result();
}

static void digest_on(rv_config *cfg) { cfg->compute_sha256 = true; }

static int case_many(int argc, char **argv) {
    observed ob = {0};
    rv_engine *e = engine(&ob, digest_on);
    int n = (argc - 1) / 2;
    rv_object **objs = calloc((size_t)n, sizeof(*objs));
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/f%04d", argv[0], i);
        objs[i] = add(e, argv[1 + 2 * i], path, NULL);
    }
    run(e);
    for (int i = 0; i < n; i++) {
        if (!objs[i])
            continue;
        if (rv_object_state(objs[i]) != RV_STATE_DONE)
            fprintf(stderr, "object %d did not end DONE: %s\n", i,
                    rv_object_error_detail(objs[i]));
        CHECK_EQ_U64(rv_object_state(objs[i]), RV_STATE_DONE);
        CHECK_STREQ(rv_object_sha256_hex(objs[i]), argv[2 + 2 * i]);
    }
    free(objs);
    rv_engine_free(e);
    return rv_test_result();
}

static rv_object *add_grouped(rv_engine *e, const char *group, const char *url,
                              const char *dest) {
    rv_object *o = NULL;
    rv_request req = {.url = url, .dest_path = dest,
                      .group = strtoull(group, NULL, 10)};
    int r = rv_engine_add(e, &req, &o);
    if (r != RV_OK)
        printf("ADD_ERROR %s\n", rv_error_name(r));
    CHECK_EQ_U64(r, RV_OK);
    return o;
}

static unsigned group_cap;
static void groups_on(rv_config *cfg) {
    cfg->compute_sha256 = true;
    cfg->max_connections_per_group = group_cap;
}

static int case_groups(int argc, char **argv) {
    observed ob = {0};
    group_cap = (unsigned)strtoul(argv[1], NULL, 10);
    unsigned full = (unsigned)strtoul(argv[2], NULL, 10);
    int first = atoi(argv[3]);
    rv_engine *e = engine(&ob, groups_on);
    int n = (argc - 4) / 3;
    rv_object **objs = calloc((size_t)n, sizeof(*objs));
    char path[4096];
    for (int i = 0; i < n && i < first; i++) {
        snprintf(path, sizeof(path), "%s/f%04d", argv[0], i);
        objs[i] = add_grouped(e, argv[4 + 3 * i], argv[5 + 3 * i], path);
    }
    /* The first objects' groups take what they may; then the others come. */
    unsigned active = 1;
    for (int i = 0; active > 0 && rv_engine_transfers(e) < full && i < 100000; i++)
        CHECK_EQ_U64(rv_engine_perform(e, 100, &active), RV_OK);
    CHECK(rv_engine_transfers(e) >= full);
    printf("LATER_ADDED %.6f\n", now_s());
    for (int i = first; i < n; i++) {
        snprintf(path, sizeof(path), "%s/f%04d", argv[0], i);
        objs[i] = add_grouped(e, argv[4 + 3 * i], argv[5 + 3 * i], path);
    }
    run(e);
    for (int i = 0; i < n; i++) {
        if (!objs[i])
            continue;
        if (rv_object_state(objs[i]) != RV_STATE_DONE)
            fprintf(stderr, "object %d did not end DONE: %s\n", i,
                    rv_object_error_detail(objs[i]));
        CHECK_EQ_U64(rv_object_state(objs[i]), RV_STATE_DONE);
        CHECK_STREQ(rv_object_sha256_hex(objs[i]), argv[6 + 3 * i]);
    }
    free(objs);
    rv_engine_free(e);
    return rv_test_result();
}

static int case_bad_input(char **argv) {
    observed ob = {0};
    rv_engine *e = engine(&ob, NULL);
    const char *dir = argv[0];
    char ok[4096], sub[4096], ro[4096], file_in_file[4096];
    rv_object *o = NULL;
    snprintf(ok, sizeof(ok), "%s/out", dir);
    snprintf(sub, sizeof(sub), "%s/adir", dir);
    snprintf(ro, sizeof(ro), "%s/missing/out", dir);
    snprintf(file_in_file, sizeof(file_in_file), "%s/out/x", dir);
    mkdir(sub, 0755);

    static const char *const long_header[] = {"X-Ok: 1", "Range: bytes=0-1"};
    static const char *const crlf_header[] = {"X-Evil: a\r\nInjected: b"};
    static const char *const bad_name[] = {"Bad Name: v"};
    struct {
        rv_request req;
        int want;
    } cases[] = {
        {{.url = "http://", .dest_path = ok}, RV_E_BAD_URL},
        {{.url = "not a url", .dest_path = ok}, RV_E_BAD_URL},
        {{.url = "http://exa mple.com/x", .dest_path = ok}, RV_E_BAD_URL},
        {{.url = "gopher://example.com/x", .dest_path = ok}, RV_E_UNSUPPORTED_SCHEME},
        {{.url = "ftp://example.com/x", .dest_path = ok}, RV_E_UNSUPPORTED_SCHEME},
        {{.url = "file://remotehost/etc/hosts", .dest_path = ok}, RV_E_BAD_URL},
        {{.url = "http://127.0.0.1:1/x", .dest_path = sub}, RV_E_DEST_IS_DIR},
        {{.url = "http://127.0.0.1:1/x", .dest_path = dir}, RV_E_DEST_IS_DIR},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ro}, RV_E_DEST_UNWRITABLE},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ""}, RV_E_INVALID_ARGUMENT},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ok, .sha256_hex = "abc"}, RV_E_INVALID_ARGUMENT},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ok,
          .sha256_hex = "zz00000000000000000000000000000000000000000000000000000000000000"},
         RV_E_INVALID_ARGUMENT},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ok, .headers = long_header, .n_headers = 2},
         RV_E_INVALID_ARGUMENT},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ok, .headers = crlf_header, .n_headers = 1},
         RV_E_INVALID_ARGUMENT},
        {{.url = "http://127.0.0.1:1/x", .dest_path = ok, .headers = bad_name, .n_headers = 1},
         RV_E_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        o = NULL;
        int r = rv_engine_add(e, &cases[i].req, &o);
        if (r != cases[i].want)
            fprintf(stderr, "case %zu (%s -> '%s'): got %s, want %s\n", i, cases[i].req.url,
                    cases[i].req.dest_path, rv_error_name(r), rv_error_name(cases[i].want));
        CHECK_EQ_U64(r, cases[i].want);
        CHECK(o == NULL);
    }
    /* Two requests for one destination: the second is refused. */
    rv_request a = {.url = "http://127.0.0.1:1/a", .dest_path = ok};
    CHECK_EQ_U64(rv_engine_add(e, &a, &o), RV_OK);
    rv_request b = {.url = "http://127.0.0.1:1/b", .dest_path = ok};
    rv_object *o2 = NULL;
    CHECK_EQ_U64(rv_engine_add(e, &b, &o2), RV_E_DEST_CONFLICT);
    CHECK(o2 == NULL);
    CHECK_EQ_U64(rv_engine_cancel(e, o), RV_OK);
    /* Nothing was created: only the directory made above. */
    CHECK_EQ_U64(dir_entries(dir), 1);
    rv_engine_free(e);
    return rv_test_result();
}

/* The process's descriptor table size, FDSize in /proc/self/status. */
static unsigned long fd_table_size(void) {
    char line[256];
    unsigned long size = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "FDSize: %lu", &size) == 1)
            break;
    if (f)
        fclose(f);
    return size;
}

/* The engine grows the descriptor table when it starts, while nothing else
 * runs: growing it later, with the engine's threads running, waits for an
 * RCU grace period on the thread that needs the descriptor. */
static int case_fd_table(void) {
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    unsigned long want = rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1024 ? rl.rlim_cur : 1024;
    unsigned long before = fd_table_size();
    printf("FDSIZE_BEFORE %lu\n", before);
    CHECK(before > 0 && before < want); /* else this case proves nothing */
    observed ob = {0};
    rv_engine *e = engine(&ob, NULL);
    unsigned long after = fd_table_size();
    printf("FDSIZE_AFTER %lu\n", after);
    CHECK(after >= want);
    rv_engine_free(e);
    return rv_test_result();
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: engine_cases CASE ARGS...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines reach the driver even on abort */
    const char *c = argv[1];
    char **a = argv + 2;
    int n = argc - 2;
    if (!strcmp(c, "ok") && n == 3)
        return case_ok(a);
    if (!strcmp(c, "error") && (n == 3 || n == 4))
        return case_error(a);
    if (!strcmp(c, "retries") && n == 5)
        return case_retries(a);
    if (!strcmp(c, "cancel") && n == 2)
        return case_cancel(a);
    if (!strcmp(c, "fail_fast") && n == 2)
        return case_fail_fast(a);
    if (!strcmp(c, "many") && n >= 3 && n % 2 == 1)
        return case_many(n, a);
    if (!strcmp(c, "groups") && n >= 7 && n % 3 == 1)
        return case_groups(n, a);
    if (!strcmp(c, "bad_input") && n == 1)
        return case_bad_input(a);
    if (!strcmp(c, "fd_table") && n == 0)
        return case_fd_table();
    fprintf(stderr, "engine_cases: unknown case or wrong arguments: %s\n", c);
    return 2;
}
