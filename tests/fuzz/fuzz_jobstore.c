/* fuzz_jobstore.c — the daemon's job store decoder (daemon/jobstore.c:
 * rvd_jobstore_load, which unseals each stored request and decodes the
 * owner's groups and an ended job's objects) on rows made from any bytes.
 *
 * One job store is opened per process in a directory of its own; a second
 * SQLite connection to its database plays whoever damaged the rows. Each
 * input empties the tables and writes one job:
 *
 *   byte 0      flags: 1 the request is sealed by the store (else the raw
 *               bytes are the column), 2 groups NULL, 4 the job ended (its
 *               objects are read), 8 the id is NULL
 *   then fields, each a 2-byte little-endian length and that many bytes
 *   (cut short at the input's end): request, groups, id, and for an ended
 *   job up to 4 objects of 3 texts each (sha256, crc32c, error detail)
 *
 * Properties besides "no crash, no leak, no UB":
 *   - a job is either handed over or counted as skipped, never both;
 *   - a request the store did not seal (no key, no tag) is never handed
 *     over; a sealed one comes back byte for byte;
 *   - groups: NULL is "unknown"; a blob is handed over only when it is a
 *     whole number of 32-bit little-endian gids within the limit, decoded
 *     as such;
 *   - an ended job's objects come back in order with their texts (up to a
 *     NUL, as SQLite's text reads them).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "fuzz.h"
#include "jobstore.h"

#define MAX_OBJECTS 4

static char dir[64];
static rvd_jobstore *store;
static sqlite3 *db;

struct field {
    const uint8_t *p;
    size_t len;
};

struct expect {
    unsigned flags;
    struct field request, groups, id;
    struct field text[MAX_OBJECTS][3];
    size_t n_objects;
    unsigned handed;
};

static void once(void) {
    char *err = NULL, path[128];
    if (store)
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/rv-fuzz-jobs.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    FUZZ_CHECK(rvd_jobstore_open(dir, &store, &err) == 0);
    snprintf(path, sizeof(path), "%s/jobs.sqlite", dir);
    FUZZ_CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
}

static struct field take(const uint8_t **p, const uint8_t *end) {
    struct field f = {NULL, 0};
    if (end - *p < 2)
        return f;
    size_t len = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
    *p += 2;
    if (len > (size_t)(end - *p))
        len = (size_t)(end - *p);
    f.p = *p;
    f.len = len;
    *p += len;
    return f;
}

static void sql(const char *q) {
    FUZZ_CHECK(sqlite3_exec(db, q, NULL, NULL, NULL) == SQLITE_OK);
}

/* Prepare, bind with fn, step to the end. */
static void run(const char *q, void (*fn)(sqlite3_stmt *, const void *), const void *arg) {
    sqlite3_stmt *st = NULL;
    FUZZ_CHECK(sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK);
    fn(st, arg);
    FUZZ_CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
}

static void bind_blob_or_null(sqlite3_stmt *st, int i, const struct field *f, bool null) {
    if (null)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_blob(st, i, f->p ? (const void *)f->p : "", (int)f->len, SQLITE_STATIC);
}

static void bind_raw(sqlite3_stmt *st, const void *arg) {
    const struct expect *x = arg;
    if (x->flags & 8)
        sqlite3_bind_null(st, 1);
    else
        sqlite3_bind_text(st, 1, x->id.p ? (const char *)x->id.p : "", (int)x->id.len,
                          SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, x->request.p ? (const void *)x->request.p : "", (int)x->request.len,
                      SQLITE_STATIC);
    bind_blob_or_null(st, 3, &x->groups, x->flags & 2);
    sqlite3_bind_int64(st, 4, x->flags & 4 ? 1 : 0);
}

static void bind_groups(sqlite3_stmt *st, const void *arg) {
    const struct expect *x = arg;
    bind_blob_or_null(st, 1, &x->groups, x->flags & 2);
    sqlite3_bind_int64(st, 2, x->flags & 4 ? 1 : 0);
}

struct obj_arg {
    const struct expect *x;
    size_t i;
};

static void bind_obj(sqlite3_stmt *st, const void *arg) {
    const struct obj_arg *a = arg;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)a->i);
    for (int k = 0; k < 3; k++) {
        const struct field *t = &a->x->text[a->i][k];
        sqlite3_bind_text(st, 2 + k, t->p ? (const char *)t->p : "", (int)t->len,
                          SQLITE_STATIC);
    }
}

/* The text as SQLite's text read gives it back: up to a NUL. */
static bool same_text(const char *got, const struct field *f) {
    size_t n = f->p ? strnlen((const char *)f->p, f->len) : 0;
    return got && strlen(got) == n && memcmp(got, f->p ? (const char *)f->p : "", n) == 0;
}

static void on_job(void *ud, const rvd_stored_job *j) {
    struct expect *x = ud;
    x->handed++;
    FUZZ_CHECK(x->flags & 1); /* only what the store sealed */
    FUZZ_CHECK(j->request_len == x->request.len);
    FUZZ_CHECK(j->request_len == 0 || memcmp(j->request, x->request.p, j->request_len) == 0);
    FUZZ_CHECK(j->id != NULL);
    if (x->flags & 2) {
        FUZZ_CHECK(!j->owner.groups_known && j->owner.n_groups == 0);
    } else {
        FUZZ_CHECK(j->owner.groups_known);
        FUZZ_CHECK(x->groups.len % 4 == 0 && x->groups.len / 4 <= RVD_PEER_MAX_GROUPS);
        FUZZ_CHECK(j->owner.n_groups == x->groups.len / 4);
        for (size_t i = 0; i < j->owner.n_groups; i++) {
            const uint8_t *g = x->groups.p + 4 * i;
            uint32_t want = (uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16 |
                            (uint32_t)g[3] << 24;
            FUZZ_CHECK(j->owner.groups[i] == (gid_t)want);
        }
    }
    if (x->flags & 4) {
        FUZZ_CHECK(j->n_objects == x->n_objects);
        for (size_t i = 0; i < j->n_objects; i++) {
            FUZZ_CHECK(same_text(j->objects[i].sha256, &x->text[i][0]));
            FUZZ_CHECK(same_text(j->objects[i].crc32c, &x->text[i][1]));
            FUZZ_CHECK(same_text(j->objects[i].error_detail, &x->text[i][2]));
        }
    } else {
        FUZZ_CHECK(j->n_objects == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct expect x = {0};
    const uint8_t *p = data + 1, *end = data + size;
    unsigned skipped = 0;

    if (size == 0)
        return 0;
    once();
    x.flags = data[0];
    x.request = take(&p, end);
    x.groups = take(&p, end);
    x.id = take(&p, end);
    if (!(x.flags & 1) && (x.flags & 8))
        x.flags &= ~4u; /* objects need their job's id */
    if (x.flags & 4)
        for (; x.n_objects < MAX_OBJECTS && p < end; x.n_objects++)
            for (int k = 0; k < 3; k++)
                x.text[x.n_objects][k] = take(&p, end);

    sql("DELETE FROM objects; DELETE FROM jobs;");
    if (x.flags & 1) {
        /* Sealed by the store under a fixed id, then the rest damaged. */
        rvd_stored_job j = {.id = "0123456789abcdef0123456789abcdef", .seq = 1,
                            .request = x.request.p ? x.request.p : (const uint8_t *)"",
                            .request_len = x.request.len};
        FUZZ_CHECK(rvd_jobstore_add(store, &j) == 0);
        x.flags &= ~8u; /* the id is the store's */
        run("UPDATE jobs SET groups = ?1, ended_ms = ?2", bind_groups, &x);
    } else {
        run("INSERT INTO jobs (id, seq, uid, gid, detached, state, created_ms, request, groups,"
            " ended_ms) VALUES (?1, 1, 0, 0, 0, 0, 0, ?2, ?3, ?4)",
            bind_raw, &x);
    }
    for (size_t i = 0; i < x.n_objects; i++) {
        struct obj_arg a = {&x, i};
        run("INSERT INTO objects (job_id, idx, state, bytes_done, bytes_total, total_known,"
            " from_cache, retries, sha256, crc32c, error, error_detail)"
            " SELECT id, ?1, 0, 0, 0, 0, 0, 0, ?2, ?3, 0, ?4 FROM jobs",
            bind_obj, &a);
    }
    FUZZ_CHECK(rvd_jobstore_load(store, on_job, &x, &skipped) == 0);
    FUZZ_CHECK(x.handed + skipped == 1);
    /* A sealed request with well-formed groups is never skipped. */
    if ((x.flags & 1) && ((x.flags & 2) || (x.groups.len % 4 == 0 &&
                                            x.groups.len / 4 <= RVD_PEER_MAX_GROUPS)))
        FUZZ_CHECK(x.handed == 1);
    return 0;
}
