/* store.c — the state database (see store.h for the invariant). */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "retriever.h"
#include "rv_error.h"

#define DB_NAME "retriever.db"
#define LOCK_NAME "lock"
/* Longest a statement waits for a lock held by another connection (the
 * owner has one connection, so this only covers outside readers). */
#define BUSY_TIMEOUT_MS 5000

/* Forward migrations: migrations[i] takes schema version i to i + 1. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE objects ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  url TEXT NOT NULL,"
    "  size INTEGER,"
    "  etag TEXT,"
    "  last_modified TEXT,"
    "  blob TEXT NOT NULL UNIQUE,"
    "  complete INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),"
    "  crc32c INTEGER,"
    "  sha256 TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  used_at INTEGER NOT NULL,"
    "  pinned INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX objects_used_at ON objects(used_at);"
    "CREATE TABLE ranges ("
    "  object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,"
    "  start INTEGER NOT NULL,"
    "  end INTEGER NOT NULL,"
    "  durable INTEGER NOT NULL,"
    "  crc32c INTEGER NOT NULL DEFAULT 0,"
    "  batch INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (object_id, start),"
    "  CHECK (start <= durable AND durable <= end)) WITHOUT ROWID;"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  object_id INTEGER REFERENCES objects(id) ON DELETE SET NULL,"
    "  spec TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO counters VALUES ('batch', 0);",
    /* 1 -> 2: the url column shows what rv_url_redact's rule of today
     * shows (version 1 rows hid only a list of secret names: sessionid=,
     * jwt=, api-key= were kept in clear). rv_redact is registered by
     * open_db; migrate() turns secure_delete on so the old text does not
     * linger in freed pages. Identity (key) is untouched. */
    "UPDATE objects SET url = rv_redact(url);",
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(N_MIGRATIONS == RV_STORE_SCHEMA_VERSION, "one migration per schema version");

enum stmt_id {
    ST_FIND,
    ST_INSERT,
    ST_RESOLVE_OBJECT,
    ST_DELETE_RANGES,
    ST_INSERT_RANGE,
    ST_RANGES,
    ST_NEXT_BATCH,
    ST_LAST_BATCH,
    ST_MARK,
    ST_COMPLETE,
    ST_TOUCH,
    ST_DELETE,
    ST_EACH,
    ST_MAX_ID,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT_,
};

#define OBJECT_COLUMNS                                                                      \
    "id, key, url, size, etag, last_modified, blob, complete, crc32c, sha256, used_at, pinned"

static const char *const stmt_sql[ST_COUNT_] = {
    [ST_FIND] = "SELECT " OBJECT_COLUMNS " FROM objects WHERE key = ?1",
    [ST_INSERT] = "INSERT INTO objects (id, key, url, size, etag, last_modified, blob, complete, "
                  "crc32c, sha256, created_at, used_at) VALUES (?11, ?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                  "?8, ?9, ?10, ?10)",
    [ST_MAX_ID] = "SELECT COALESCE(MAX(id), 0) FROM objects",
    /* Prepared once like the rest: a batch is a BEGIN and a COMMIT each
     * few milliseconds, not worth parsing every time. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_RESOLVE_OBJECT] = "UPDATE objects SET size = ?2, etag = ?3, last_modified = ?4, "
                          "complete = 0, crc32c = NULL, sha256 = NULL WHERE id = ?1",
    [ST_DELETE_RANGES] = "DELETE FROM ranges WHERE object_id = ?1",
    [ST_INSERT_RANGE] = "INSERT INTO ranges (object_id, start, end, durable) VALUES (?1, ?2, ?3, ?2)",
    [ST_RANGES] = "SELECT start, end, durable, crc32c, batch FROM ranges WHERE object_id = ?1 "
                  "ORDER BY start",
    [ST_NEXT_BATCH] = "UPDATE counters SET value = value + 1 WHERE name = 'batch' RETURNING value",
    [ST_LAST_BATCH] = "SELECT value FROM counters WHERE name = 'batch'",
    /* Marks only move forward: a late, smaller mark never undoes a larger. */
    [ST_MARK] = "UPDATE ranges SET durable = ?3, crc32c = ?4, batch = ?5 "
                "WHERE object_id = ?1 AND start = ?2 AND durable < ?3 AND ?3 <= end",
    [ST_COMPLETE] = "UPDATE objects SET complete = 1, crc32c = ?2, sha256 = ?3 WHERE id = ?1",
    [ST_TOUCH] = "UPDATE objects SET used_at = ?2 WHERE id = ?1",
    [ST_DELETE] = "DELETE FROM objects WHERE id = ?1",
    [ST_EACH] = "SELECT " OBJECT_COLUMNS " FROM objects ORDER BY used_at, id",
};

struct rv_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT_];
    int lock_fd;
    char *dir;
    unsigned depth;   /* nesting of rv_store_begin / internal transactions */
    int batch_result; /* first failure inside the outermost transaction */
};

/* ----------------------------------------------------------------------- */
/* Opening, locking, recovery                                               */

/* Take <dir>/lock. On contention *ret_note names the owner's pid. */
static int take_lock(rv_store *s, char **ret_note) {
    char path[4096], pid[32] = "";
    snprintf(path, sizeof(path), "%s/" LOCK_NAME, s->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return RV_E_DEST_UNWRITABLE;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (ret_note &&
            asprintf(ret_note, "state directory '%s' is in use by process %s", s->dir,
                     pid[0] ? pid : "(unknown)") < 0)
            *ret_note = NULL;
        close(fd);
        return RV_E_STATE_BUSY;
    }
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        close(fd);
        return RV_E_DEST_UNWRITABLE;
    }
    s->lock_fd = fd;
    return RV_OK;
}

static void close_db(rv_store *s) {
    for (int i = 0; i < ST_COUNT_; i++) {
        sqlite3_finalize(s->stmt[i]);
        s->stmt[i] = NULL;
    }
    if (s->db)
        sqlite3_close(s->db);
    s->db = NULL;
}

static bool is_corruption(int rc) {
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/* Bring the schema to RV_STORE_SCHEMA_VERSION; refuse a newer one. */
static int migrate(rv_store *s) {
    sqlite3_stmt *st = NULL;
    int version = 0, rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0), rc = SQLITE_OK;
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rc;
    if (version > (int)N_MIGRATIONS)
        return SQLITE_MISMATCH; /* written by a newer retriever */
    /* Migrations may rewrite text that must not survive (1 -> 2): freed
     * and overwritten cells are zeroed while they run. */
    if (version < (int)N_MIGRATIONS &&
        (rc = sqlite3_exec(s->db, "PRAGMA secure_delete = ON", NULL, NULL, NULL)) != SQLITE_OK)
        return rc;
    for (int v = version; v < (int)N_MIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, bump, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    if (version < (int)N_MIGRATIONS)
        rc = sqlite3_exec(s->db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
    /* The WAL outlives a close (no checkpoint on close) and its old frames
     * still hold what a migration rewrote: fold it in and empty it. A new
     * database (version 0) has nothing old to forget. */
    if (rc == SQLITE_OK && version > 0 && version < (int)N_MIGRATIONS)
        rc = sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    return rc;
}

/* SQL rv_redact(text): rv_url_redact, for migrations. NULL stays NULL. */
static void sql_redact(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *in = (const char *)sqlite3_value_text(argv[0]);
    char *out = NULL;
    if (!in) {
        sqlite3_result_null(ctx);
        return;
    }
    if (rv_url_redact(in, &out) != RV_OK) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, out, -1, free);
}

/* Open the database and check it. Returns an SQLite code.
 *
 * Two syncs SQLite would do are skipped, both only ever costing a resume:
 * - A new database starts in rollback-journal mode; its switch to WAL and
 *   the creation of its schema are writes SQLite syncs several times
 *   (milliseconds, for every fresh state directory). They run with
 *   synchronous = OFF: the file holds nothing yet, and a torn one fails
 *   quick_check at the next open and is quarantined and rebuilt like any
 *   corrupt database, or misses tables, which migrate() creates.
 * - Closing does not checkpoint (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE): the
 *   WAL stays, and the next open reads it. That checkpoint wrote and
 *   synced the run's pages at exit, after the last delivery (milliseconds
 *   for many small files); SQLite's automatic checkpoints still bound the WAL
 *   (1000 pages). The WAL's commits are as durable as before: with
 *   synchronous = NORMAL a power failure may lose the last ones, which
 *   only loses marks (docs/state.md). */
/* The database and its side files are private (0600), in --local mode as
 * in the daemon: they name every URL fetched. SQLite makes a new database
 * 0644 less the umask, and each side file (-wal, -shm, -journal) with the
 * database's mode at the time, exactly (it fchmods them): so the database
 * is made 0600 here before SQLite opens it, and files an older version left
 * wider are narrowed. Best effort: what cannot be opened, SQLite reports. */
static void make_private(const char *path) {
    static const char *const side[] = {"", "-wal", "-shm", "-journal"};
    char name[4200];
    for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
        snprintf(name, sizeof(name), "%s%s", path, side[i]);
        /* Only the database is created; O_NONBLOCK: a FIFO put there does
         * not hang the open. */
        int fd = open(name, (i == 0 ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW |
                                O_NONBLOCK, 0600);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            (st.st_mode & 07777) != 0600)
            (void)fchmod(fd, 0600);
        if (fd >= 0)
            close(fd);
    }
}

static int open_db(rv_store *s, const char *path) {
    struct stat st_db;
    make_private(path);
    bool fresh = stat(path, &st_db) != 0 || st_db.st_size == 0;
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    rc = sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if (rc == SQLITE_OK) /* before the switch to WAL, which it governs */
        rc = sqlite3_exec(s->db, fresh ? "PRAGMA synchronous = OFF" : "PRAGMA synchronous = NORMAL",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;", NULL,
                          NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            rc = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0 ? SQLITE_OK
                                                                              : SQLITE_CORRUPT;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(s->db, "rv_redact", 1,
                                     SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                     sql_redact, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = migrate(s);
    if (rc == SQLITE_OK && fresh)
        rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    for (int i = 0; rc == SQLITE_OK && i < ST_COUNT_; i++)
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                                NULL);
    return rc;
}

/* Move a corrupt database (and its WAL and shared memory) aside. */
static int quarantine(const char *path, char *moved, size_t moved_size) {
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    snprintf(moved, moved_size, "%s.corrupt-%lld", path, (long long)time(NULL));
    for (size_t i = 0; i < 3; i++) {
        char from[4200], to[4300];
        snprintf(from, sizeof(from), "%s%s", path, suffixes[i]);
        snprintf(to, sizeof(to), "%s%s", moved, suffixes[i]);
        if (rename(from, to) != 0 && errno != ENOENT)
            return -1;
    }
    return 0;
}

int rv_store_open(const char *dir, rv_store **ret, char **ret_note) {
    rv_store *s = NULL;
    char path[4096], moved[4200];
    int r = RV_E_NOMEM, rc;

    if (ret_note)
        *ret_note = NULL;
    if (!dir || !*dir || strlen(dir) > 3900)
        return RV_E_INVALID_ARGUMENT;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return RV_E_DEST_UNWRITABLE;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(dir)))
        goto fail;
    s->lock_fd = -1;
    r = take_lock(s, ret_note);
    if (r != RV_OK)
        goto fail;
    snprintf(path, sizeof(path), "%s/" DB_NAME, dir);
    rc = open_db(s, path);
    if (is_corruption(rc)) {
        close_db(s);
        if (quarantine(path, moved, sizeof(moved)) != 0) {
            r = RV_E_STATE;
            goto fail;
        }
        if (ret_note &&
            asprintf(ret_note, "state database '%s' was corrupt; moved it to '%s' and started "
                               "a new one (downloads in progress start over)",
                     path, moved) < 0)
            *ret_note = NULL;
        rc = open_db(s, path);
    }
    if (rc != SQLITE_OK) {
        if (ret_note && !*ret_note &&
            asprintf(ret_note, "cannot use state database '%s': %s", path,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc)) < 0)
            *ret_note = NULL;
        r = rc == SQLITE_MISMATCH ? RV_E_STATE : (rc & 0xff) == SQLITE_CANTOPEN ? RV_E_DEST_UNWRITABLE
                                                                                 : RV_E_STATE;
        goto fail;
    }
    *ret = s;
    return RV_OK;
fail:
    rv_store_close(s);
    return r;
}

rv_store *rv_store_close(rv_store *s) {
    if (!s)
        return NULL;
    close_db(s);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    free(s->dir);
    free(s);
    return NULL;
}

const char *rv_store_errmsg(const rv_store *s) {
    return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

/* ----------------------------------------------------------------------- */
/* Statements                                                               */

static sqlite3_stmt *stmt(rv_store *s, enum stmt_id id) {
    sqlite3_stmt *st = s->stmt[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Step a statement that returns no rows. */
static int run(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? RV_OK : RV_E_STATE;
}

/* A single write: inside a batch, its failure fails the batch. */
static int write1(rv_store *s, sqlite3_stmt *st) {
    int r = run(st);
    if (r != RV_OK && s->depth > 0 && s->batch_result == RV_OK)
        s->batch_result = r;
    return r;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_size(sqlite3_stmt *st, int i, uint64_t v) {
    if (v == RV_STORE_UNKNOWN)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static char *column_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static int read_object(sqlite3_stmt *st, rv_store_object *o) {
    memset(o, 0, sizeof(*o));
    o->id = sqlite3_column_int64(st, 0);
    o->key = column_dup(st, 1);
    o->url = column_dup(st, 2);
    o->size = sqlite3_column_type(st, 3) == SQLITE_NULL ? RV_STORE_UNKNOWN
                                                         : (uint64_t)sqlite3_column_int64(st, 3);
    o->etag = column_dup(st, 4);
    o->last_modified = column_dup(st, 5);
    o->blob = column_dup(st, 6);
    o->complete = sqlite3_column_int(st, 7) != 0;
    o->has_crc32c = sqlite3_column_type(st, 8) != SQLITE_NULL;
    o->crc32c = (uint32_t)sqlite3_column_int64(st, 8);
    const unsigned char *sha = sqlite3_column_text(st, 9);
    if (sha && strlen((const char *)sha) == 64)
        memcpy(o->sha256, sha, 65);
    o->used_at = sqlite3_column_int64(st, 10);
    o->pinned = sqlite3_column_int(st, 11) != 0;
    if (!o->key || !o->url || !o->blob) {
        rv_store_object_clear(o);
        return RV_E_NOMEM;
    }
    return RV_OK;
}

void rv_store_object_clear(rv_store_object *o) {
    free(o->key);
    free(o->url);
    free(o->etag);
    free(o->last_modified);
    free(o->blob);
    memset(o, 0, sizeof(*o));
}

/* Transactions nest: only the outermost BEGIN/COMMIT reach SQLite, and a
 * failure anywhere inside rolls the whole outermost transaction back. */
static int begin(rv_store *s) {
    if (s->depth++ > 0)
        return RV_OK;
    s->batch_result = RV_OK;
    if (run(stmt(s, ST_BEGIN)) == RV_OK)
        return RV_OK;
    s->depth = 0;
    return RV_E_STATE;
}

static int end(rv_store *s, int r) {
    if (r != RV_OK && s->batch_result == RV_OK)
        s->batch_result = r;
    if (--s->depth > 0)
        return r;
    r = s->batch_result;
    if (r == RV_OK && run(stmt(s, ST_COMMIT)) == RV_OK)
        return RV_OK;
    run(stmt(s, ST_ROLLBACK));
    return r == RV_OK ? RV_E_STATE : r;
}

int rv_store_begin(rv_store *s) {
    return begin(s);
}

int rv_store_end(rv_store *s) {
    return end(s, RV_OK);
}

/* ----------------------------------------------------------------------- */
/* Objects and ranges                                                       */

int rv_store_find(rv_store *s, const char *key, rv_store_object *ret, bool *found) {
    sqlite3_stmt *st = stmt(s, ST_FIND);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), r = RV_OK;
    *found = false;
    if (rc == SQLITE_ROW) {
        r = read_object(st, ret);
        *found = r == RV_OK;
    } else if (rc != SQLITE_DONE) {
        r = RV_E_STATE;
    }
    sqlite3_reset(st);
    return r;
}

int rv_store_insert(rv_store *s, rv_store_object *o) {
    sqlite3_stmt *st = stmt(s, ST_INSERT);
    sqlite3_bind_text(st, 1, o->key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, o->url, -1, SQLITE_TRANSIENT);
    bind_size(st, 3, o->size);
    bind_text_or_null(st, 4, o->etag);
    bind_text_or_null(st, 5, o->last_modified);
    sqlite3_bind_text(st, 6, o->blob, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 7, o->complete);
    if (o->has_crc32c)
        sqlite3_bind_int64(st, 8, o->crc32c);
    bind_text_or_null(st, 9, o->sha256[0] ? o->sha256 : NULL);
    sqlite3_bind_int64(st, 10, o->used_at ? o->used_at : (int64_t)time(NULL));
    if (o->id > 0)
        sqlite3_bind_int64(st, 11, o->id);
    int r = write1(s, st);
    if (r == RV_OK)
        o->id = sqlite3_last_insert_rowid(s->db);
    return r;
}

int rv_store_resolve(rv_store *s, const rv_store_object *o, const rv_store_range *ranges,
                     size_t n) {
    int r = begin(s);
    if (r != RV_OK)
        return r;
    sqlite3_stmt *st = stmt(s, ST_RESOLVE_OBJECT);
    sqlite3_bind_int64(st, 1, o->id);
    bind_size(st, 2, o->size);
    bind_text_or_null(st, 3, o->etag);
    bind_text_or_null(st, 4, o->last_modified);
    r = run(st);
    if (r == RV_OK) {
        st = stmt(s, ST_DELETE_RANGES);
        sqlite3_bind_int64(st, 1, o->id);
        r = run(st);
    }
    if (r == RV_OK)
        r = rv_store_add_ranges(s, o->id, ranges, n);
    return end(s, r);
}

int rv_store_add_ranges(rv_store *s, int64_t id, const rv_store_range *ranges, size_t n) {
    int r = RV_OK;
    for (size_t i = 0; r == RV_OK && i < n; i++) {
        sqlite3_stmt *st = stmt(s, ST_INSERT_RANGE);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)ranges[i].start);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)ranges[i].end);
        r = write1(s, st);
    }
    return r;
}

int rv_store_ranges(rv_store *s, int64_t id, rv_store_range **ret, size_t *ret_n) {
    rv_store_range *v = NULL;
    size_t n = 0, cap = 0;
    int rc = SQLITE_DONE, r = RV_OK;
    sqlite3_stmt *st = stmt(s, ST_RANGES);
    sqlite3_bind_int64(st, 1, id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rv_store_range *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                r = RV_E_NOMEM;
                break;
            }
            v = nv;
        }
        v[n++] = (rv_store_range){
            .start = (uint64_t)sqlite3_column_int64(st, 0),
            .end = (uint64_t)sqlite3_column_int64(st, 1),
            .durable = (uint64_t)sqlite3_column_int64(st, 2),
            .crc32c = (uint32_t)sqlite3_column_int64(st, 3),
            .batch = sqlite3_column_int64(st, 4),
        };
    }
    if (r == RV_OK && rc != SQLITE_DONE)
        r = RV_E_STATE;
    sqlite3_reset(st);
    if (r != RV_OK) {
        free(v);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return RV_OK;
}

int rv_store_commit(rv_store *s, const rv_store_mark *marks, size_t n, int64_t *ret_batch) {
    int64_t batch = 0;
    int r = begin(s);
    if (r != RV_OK)
        return r;
    sqlite3_stmt *st = stmt(s, ST_NEXT_BATCH);
    if (sqlite3_step(st) == SQLITE_ROW)
        batch = sqlite3_column_int64(st, 0);
    else
        r = RV_E_STATE;
    sqlite3_reset(st);
    for (size_t i = 0; r == RV_OK && i < n; i++) {
        st = stmt(s, ST_MARK);
        sqlite3_bind_int64(st, 1, marks[i].object_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)marks[i].start);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)marks[i].durable);
        sqlite3_bind_int64(st, 4, marks[i].crc32c);
        sqlite3_bind_int64(st, 5, batch);
        r = run(st);
    }
    r = end(s, r);
    if (r == RV_OK && ret_batch)
        *ret_batch = batch;
    return r;
}

/* A statement that returns one integer. */
static int query_int64(rv_store *s, enum stmt_id id, int64_t *ret) {
    sqlite3_stmt *st = stmt(s, id);
    int r = RV_E_STATE;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *ret = sqlite3_column_int64(st, 0);
        r = RV_OK;
    }
    sqlite3_reset(st);
    return r;
}

int rv_store_max_id(rv_store *s, int64_t *ret) {
    return query_int64(s, ST_MAX_ID, ret);
}

int rv_store_last_batch(rv_store *s, int64_t *ret) {
    return query_int64(s, ST_LAST_BATCH, ret);
}

int rv_store_complete(rv_store *s, int64_t id, uint32_t crc32c, const char *sha256) {
    sqlite3_stmt *st = stmt(s, ST_COMPLETE);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, crc32c);
    bind_text_or_null(st, 3, sha256 && sha256[0] ? sha256 : NULL);
    return write1(s, st);
}

int rv_store_touch(rv_store *s, int64_t id, int64_t now) {
    sqlite3_stmt *st = stmt(s, ST_TOUCH);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return write1(s, st);
}

int rv_store_delete(rv_store *s, int64_t id) {
    sqlite3_stmt *st = stmt(s, ST_DELETE);
    sqlite3_bind_int64(st, 1, id);
    return write1(s, st);
}

int rv_store_each(rv_store *s, int (*fn)(void *ud, const rv_store_object *o), void *ud) {
    /* Collect first: fn may change the database (delete what it visits). */
    rv_store_object *v = NULL;
    size_t n = 0, cap = 0;
    int rc = SQLITE_DONE, r = RV_OK;
    sqlite3_stmt *st = stmt(s, ST_EACH);
    while (r == RV_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rv_store_object *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                r = RV_E_NOMEM;
                break;
            }
            v = nv;
        }
        r = read_object(st, &v[n]);
        if (r == RV_OK)
            n++;
    }
    if (r == RV_OK && rc != SQLITE_DONE)
        r = RV_E_STATE;
    sqlite3_reset(st);
    for (size_t i = 0; r == RV_OK && i < n; i++)
        r = fn(ud, &v[i]);
    for (size_t i = 0; i < n; i++)
        rv_store_object_clear(&v[i]);
    free(v);
    return r;
}
