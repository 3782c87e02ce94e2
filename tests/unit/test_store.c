/* test_store.c — the state database: locking, objects and ranges, marks
 * that only move forward, batches, cascade deletes, and recovery from a
 * corrupt or too-new database. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rv_error.h"
#include "rv_test.h"
#include "store.h"

static char dir[256];

static void write_file(const char *name, const char *data) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(data, f);
    fclose(f);
}

static bool exists(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static int count_each(void *ud, const rv_store_object *o) {
    (*(int *)ud)++;
    (void)o;
    return RV_OK;
}

static void test_lock(void) {
    rv_store *a = NULL, *b = NULL;
    char *note = NULL;
    CHECK_EQ_U64(rv_store_open(dir, &a, &note), RV_OK);
    CHECK(note == NULL);
    /* A second owner is refused, and told who the owner is. */
    CHECK_EQ_U64(rv_store_open(dir, &b, &note), RV_E_STATE_BUSY);
    CHECK(b == NULL);
    char pid[32];
    snprintf(pid, sizeof(pid), "process %ld", (long)getpid());
    CHECK(note && strstr(note, pid));
    free(note);
    rv_store_close(a);
    /* Released on close. */
    CHECK_EQ_U64(rv_store_open(dir, &b, NULL), RV_OK);
    rv_store_close(b);
}

static void test_objects_and_marks(void) {
    rv_store *s = NULL;
    CHECK_EQ_U64(rv_store_open(dir, &s, NULL), RV_OK);
    if (!s)
        return;
    rv_store_object o = {.key = "http://h/a|", .url = "http://h/a", .size = RV_STORE_UNKNOWN,
                         .blob = "0001.blob"};
    CHECK_EQ_U64(rv_store_insert(s, &o), RV_OK);
    CHECK(o.id > 0);
    /* The key is unique. */
    rv_store_object dup = o;
    dup.blob = "0002.blob";
    CHECK_EQ_U64(rv_store_insert(s, &dup), RV_E_STATE);

    bool found = true;
    rv_store_object got;
    CHECK_EQ_U64(rv_store_find(s, "nope", &got, &found), RV_OK);
    CHECK(!found);
    CHECK_EQ_U64(rv_store_find(s, "http://h/a|", &got, &found), RV_OK);
    CHECK(found);
    CHECK_EQ_U64(got.size, RV_STORE_UNKNOWN);
    CHECK(got.etag == NULL);
    CHECK(!got.complete);
    rv_store_object_clear(&got);

    /* Resolution records validators and the plan. */
    rv_store_range plan[3] = {{.start = 0, .end = 100}, {.start = 100, .end = 200},
                              {.start = 200, .end = 250}};
    o.size = 250;
    o.etag = "\"e1\"";
    CHECK_EQ_U64(rv_store_resolve(s, &o, plan, 3), RV_OK);
    rv_store_range *r = NULL;
    size_t n = 0;
    CHECK_EQ_U64(rv_store_ranges(s, o.id, &r, &n), RV_OK);
    CHECK_EQ_U64(n, 3);
    for (size_t i = 0; r && i < n; i++) {
        CHECK_EQ_U64(r[i].start, plan[i].start);
        CHECK_EQ_U64(r[i].end, plan[i].end);
        CHECK_EQ_U64(r[i].durable, plan[i].start);
        CHECK_EQ_U64(r[i].batch, 0);
    }
    free(r);

    /* Marks: one batch, numbered; only forward; never past the end. */
    int64_t b1 = 0, b2 = 0, last = 0;
    rv_store_mark m1[] = {{o.id, 0, 100, 0xaaaa}, {o.id, 100, 150, 0xbbbb}};
    CHECK_EQ_U64(rv_store_commit(s, m1, 2, &b1), RV_OK);
    CHECK_EQ_U64(b1, 1);
    rv_store_mark m2[] = {{o.id, 100, 120, 0xcccc}, /* backwards: ignored */
                          {o.id, 200, 999, 0xdddd}, /* past the end: ignored */
                          {o.id, 200, 210, 0xeeee}};
    CHECK_EQ_U64(rv_store_commit(s, m2, 3, &b2), RV_OK);
    CHECK_EQ_U64(b2, 2);
    CHECK_EQ_U64(rv_store_last_batch(s, &last), RV_OK);
    CHECK_EQ_U64(last, 2);
    CHECK_EQ_U64(rv_store_ranges(s, o.id, &r, &n), RV_OK);
    CHECK_EQ_U64(r[0].durable, 100);
    CHECK_EQ_U64(r[0].crc32c, 0xaaaa);
    CHECK_EQ_U64(r[0].batch, 1);
    CHECK_EQ_U64(r[1].durable, 150);
    CHECK_EQ_U64(r[1].crc32c, 0xbbbb);
    CHECK_EQ_U64(r[2].durable, 210);
    CHECK_EQ_U64(r[2].batch, 2);
    free(r);

    /* Re-resolving (the object changed) resets every range. */
    CHECK_EQ_U64(rv_store_resolve(s, &o, plan, 2), RV_OK);
    CHECK_EQ_U64(rv_store_ranges(s, o.id, &r, &n), RV_OK);
    CHECK_EQ_U64(n, 2);
    CHECK_EQ_U64(r[0].durable, 0);
    free(r);

    CHECK_EQ_U64(rv_store_complete(s, o.id, 0x12345678, NULL), RV_OK);
    CHECK_EQ_U64(rv_store_find(s, "http://h/a|", &got, &found), RV_OK);
    CHECK(got.complete && got.has_crc32c);
    CHECK_EQ_U64(got.crc32c, 0x12345678);
    CHECK_STREQ(got.etag, "\"e1\"");
    CHECK_EQ_U64(got.size, 250);
    rv_store_object_clear(&got);
    rv_store_close(s);

    /* Everything survives a reopen. */
    CHECK_EQ_U64(rv_store_open(dir, &s, NULL), RV_OK);
    int count = 0;
    CHECK_EQ_U64(rv_store_each(s, count_each, &count), RV_OK);
    CHECK_EQ_U64(count, 1);
    CHECK_EQ_U64(rv_store_last_batch(s, &last), RV_OK);
    CHECK_EQ_U64(last, 2);
    /* Deleting an object deletes its ranges. */
    CHECK_EQ_U64(rv_store_delete(s, o.id), RV_OK);
    CHECK_EQ_U64(rv_store_ranges(s, o.id, &r, &n), RV_OK);
    CHECK_EQ_U64(n, 0);
    free(r);
    rv_store_close(s);
}

static void test_batches(void) {
    rv_store *s = NULL;
    CHECK_EQ_U64(rv_store_open(dir, &s, NULL), RV_OK);
    if (!s)
        return;
    int64_t max = -1;
    CHECK_EQ_U64(rv_store_max_id(s, &max), RV_OK);
    /* A batch with a failing write inside commits nothing. */
    rv_store_object a = {.id = max + 10, .key = "k-a", .url = "u", .size = 5, .blob = "b-a"};
    rv_store_object clash = {.id = max + 11, .key = "k-a", .url = "u", .size = 5, .blob = "b-x"};
    CHECK_EQ_U64(rv_store_begin(s), RV_OK);
    CHECK_EQ_U64(rv_store_insert(s, &a), RV_OK);
    CHECK_EQ_U64(a.id, max + 10); /* the owner's id is kept */
    CHECK_EQ_U64(rv_store_insert(s, &clash), RV_E_STATE);
    CHECK_EQ_U64(rv_store_end(s), RV_E_STATE);
    bool found = true;
    rv_store_object got;
    CHECK_EQ_U64(rv_store_find(s, "k-a", &got, &found), RV_OK);
    CHECK(!found);
    /* A good batch commits everything at once, nested calls included. */
    rv_store_range plan[] = {{.start = 0, .end = 5}};
    CHECK_EQ_U64(rv_store_begin(s), RV_OK);
    CHECK_EQ_U64(rv_store_insert(s, &a), RV_OK);
    CHECK_EQ_U64(rv_store_resolve(s, &a, plan, 1), RV_OK); /* nests */
    rv_store_mark m = {a.id, 0, 5, 7};
    CHECK_EQ_U64(rv_store_commit(s, &m, 1, NULL), RV_OK);  /* nests */
    CHECK_EQ_U64(rv_store_end(s), RV_OK);
    CHECK_EQ_U64(rv_store_find(s, "k-a", &got, &found), RV_OK);
    CHECK(found);
    rv_store_object_clear(&got);
    CHECK_EQ_U64(rv_store_max_id(s, &max), RV_OK);
    CHECK_EQ_U64(max, a.id);
    CHECK_EQ_U64(rv_store_delete(s, a.id), RV_OK);
    rv_store_close(s);
}

static void test_corrupt_database(void) {
    rv_store *s = NULL;
    char *note = NULL, wal[512], shm[512];
    /* Closing leaves the WAL, whose newer pages would stand in for the
     * file's: garbage where no WAL covers it is what a check must find. */
    snprintf(wal, sizeof(wal), "%s/retriever.db-wal", dir);
    snprintf(shm, sizeof(shm), "%s/retriever.db-shm", dir);
    unlink(wal);
    unlink(shm);
    write_file("retriever.db", "this is not an SQLite database, but it is long enough to look "
                               "like one might have been here once upon a time..........");
    CHECK_EQ_U64(rv_store_open(dir, &s, &note), RV_OK);
    CHECK(note && strstr(note, "corrupt"));
    free(note);
    CHECK(exists("retriever.db"));
    rv_store_close(s);
    /* The bad file was kept aside for inspection. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -q 'retriever.db.corrupt-'", dir);
    CHECK_EQ_U64(system(cmd), 0);
}

/* Whether the file dir/name contains needle (binary search through it). */
static bool file_contains(const char *name, const char *needle) {
    char path[512], buf[1 << 16];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = strlen(needle), have = 0, got;
    bool found = false;
    /* keep the last n - 1 bytes of a read for a match across reads */
    while (!found && (got = fread(buf + have, 1, sizeof(buf) - have, f)) > 0) {
        have += got;
        found = memmem(buf, have, needle, n) != NULL;
        if (have >= n) {
            memmove(buf, buf + have - (n - 1), n - 1);
            have = n - 1;
        }
    }
    fclose(f);
    return found;
}

/* Schema 1 rows showed query values a short list did not name (issue 20):
 * opening one migrates its url column to today's rule, keeps the key (the
 * identity), and leaves the value neither in the database nor in its WAL. */
static void test_migration_redacts(void) {
    static const char secret[] = "SEKRITsession42";
    rv_store *s = NULL;
    char *note = NULL, path[512], sql[512];
    CHECK_EQ_U64(rv_store_open(dir, &s, &note), RV_OK);
    free(note);
    note = NULL;
    rv_store_close(s);
    s = NULL;
    snprintf(path, sizeof(path), "%s/retriever.db", dir);
    sqlite3 *db = NULL;
    CHECK_EQ_U64(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "INSERT INTO objects (id, key, url, blob, created_at, used_at) VALUES (777, "
             "'http://h/x\nquery+credentials:00', 'http://h/x?sessionid=%s&v=1', 'b777', 1, 1);"
             "PRAGMA user_version = 1;",
             secret);
    CHECK_EQ_U64(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK(file_contains("retriever.db", secret) || file_contains("retriever.db-wal", secret));

    CHECK_EQ_U64(rv_store_open(dir, &s, &note), RV_OK);
    free(note);
    rv_store_close(s);
    CHECK(!file_contains("retriever.db", secret));
    CHECK(!file_contains("retriever.db-wal", secret));
    db = NULL;
    CHECK_EQ_U64(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    CHECK_EQ_U64(sqlite3_prepare_v2(db,
                                    "SELECT key, url, (SELECT user_version FROM pragma_user_version)"
                                    " FROM objects WHERE id = 777",
                                    -1, &st, NULL),
                 SQLITE_OK);
    CHECK_EQ_U64(sqlite3_step(st), SQLITE_ROW);
    CHECK_STREQ((const char *)sqlite3_column_text(st, 0), "http://h/x\nquery+credentials:00");
    CHECK_STREQ((const char *)sqlite3_column_text(st, 1), "http://h/x?sessionid=REDACTED&v=1");
    CHECK_EQ_U64(sqlite3_column_int(st, 2), RV_STORE_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_exec(db, "DELETE FROM objects WHERE id = 777", NULL, NULL, NULL);
    sqlite3_close(db);
}

static void test_newer_schema_refused(void) {
    rv_store *s = NULL;
    char *note = NULL, path[512];
    snprintf(path, sizeof(path), "%s/retriever.db", dir);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK_EQ_U64(rv_store_open(dir, &s, &note), RV_E_STATE);
    CHECK(s == NULL);
    CHECK(note && strstr(note, "cannot use state database"));
    free(note);
}

int main(void) {
    char tmpl[] = "/tmp/rv-store-test-XXXXXX";
    if (!mkdtemp(tmpl))
        return 2;
    snprintf(dir, sizeof(dir), "%s/state", tmpl);
    test_lock();
    test_objects_and_marks();
    test_batches();
    test_corrupt_database();
    test_migration_redacts();
    test_newer_schema_refused();
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
    if (system(cmd) != 0)
        return 2;
    return rv_test_result();
}
