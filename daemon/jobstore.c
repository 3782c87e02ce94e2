/* jobstore.c — the job table on disk (see jobstore.h). */
#include "jobstore.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "retriever/retriever.h"

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define BUSY_TIMEOUT_MS 5000
#define SCHEMA_VERSION 2

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS jobs ("
    "  id TEXT PRIMARY KEY,"
    "  seq INTEGER NOT NULL,"
    "  uid INTEGER NOT NULL,"
    "  gid INTEGER NOT NULL,"
    "  detached INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  ended_ms INTEGER NOT NULL DEFAULT 0,"
    "  request BLOB NOT NULL," /* nonce || AES-256-GCM(DownloadRequest) || tag */
    "  groups BLOB);"          /* schema 1 */
    "CREATE TABLE IF NOT EXISTS objects ("
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  bytes_done INTEGER NOT NULL, bytes_total INTEGER NOT NULL,"
    "  total_known INTEGER NOT NULL, from_cache INTEGER NOT NULL,"
    "  retries INTEGER NOT NULL,"
    "  sha256 TEXT, crc32c TEXT, error INTEGER NOT NULL, error_detail TEXT,"
    "  PRIMARY KEY (job_id, idx)) WITHOUT ROWID;"
    "PRAGMA foreign_keys=ON;";

struct rvd_jobstore {
    sqlite3 *db;
    pthread_mutex_t lock;
    unsigned char key[KEY_LEN];
};

/* The key file: read it, or make it (O_EXCL, 0600) at the first start. */
static int load_key(const char *state_dir, unsigned char *key, char **ret_error) {
    char *path = rvd_strdupf("%s/jobs.key", state_dir);
    int r = 0, fd = -1;
    if (!path)
        return -ENOMEM;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || getrandom(key, KEY_LEN, 0) != KEY_LEN ||
            write(fd, key, KEY_LEN) != KEY_LEN || fsync(fd) != 0) {
            r = -errno;
            *ret_error = rvd_strdupf("cannot create the job key '%s': %s", path, strerror(errno));
            if (fd >= 0)
                unlink(path);
        }
        goto out;
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        r = -errno;
        *ret_error = rvd_strdupf("cannot open the job key '%s': %s", path, strerror(errno));
    } else if ((st.st_mode & 077) || st.st_uid != geteuid()) {
        r = -EPERM;
        *ret_error = rvd_strdupf("the job key '%s' must be the daemon's and mode 0600", path);
    } else if (read(fd, key, KEY_LEN) != KEY_LEN) {
        r = -EIO;
        *ret_error = rvd_strdupf("the job key '%s' is damaged (not %d bytes)", path, KEY_LEN);
    }
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return r;
}

/* SQL rvd_scrub(text): rv_url_scrub of text with no URL of its own, for
 * the migration to schema 2. NULL stays NULL. */
static void sql_scrub(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *in = (const char *)sqlite3_value_text(argv[0]);
    char *out = NULL;
    if (!in)
        sqlite3_result_null(ctx);
    else if (rv_url_scrub(in, NULL, 0, &out) != RV_OK)
        sqlite3_result_error_nomem(ctx);
    else
        sqlite3_result_text(ctx, out, -1, free);
}

/* Bring a database made by an older daemon up to SCHEMA_VERSION. The
 * CREATEs above make a new database current at once; an old one has its
 * tables already, and gains what each version added. */
static int migrate(rvd_jobstore *s, const char *path, char **ret_error) {
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) {
        *ret_error = rvd_strdupf("cannot read the schema version of '%s': %s", path,
                                 sqlite3_errmsg(s->db));
        return -EIO;
    }
    if (version > SCHEMA_VERSION) {
        *ret_error = rvd_strdupf("the job database '%s' was written by a newer retrieverd "
                                 "(schema %d; this one knows up to %d): run that version, or "
                                 "move the file away to start with no job history",
                                 path, version, SCHEMA_VERSION);
        return -EPROTO;
    }
    if (version == SCHEMA_VERSION)
        return 0;
    /* Version 0 is either a database just created (it has the column) or
     * one from before groups were recorded (it has not). */
    bool has_groups = sqlite3_prepare_v2(s->db, "SELECT groups FROM jobs LIMIT 0", -1, &st,
                                         NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    bool fresh = version == 0 && has_groups;
    /* Schema 2: details stored before may quote a URL in clear (issue 20);
     * rewritten as today's rule shows them (rvd_scrub: the URL-looking
     * words of the text), with freed cells zeroed and the WAL's old frames
     * folded in and dropped. A new database has no rows: none of that. */
    char sql[320];
    snprintf(sql, sizeof(sql),
             "%sBEGIN IMMEDIATE;%s"
             "UPDATE objects SET error_detail = rvd_scrub(error_detail) "
             "WHERE error_detail IS NOT NULL;PRAGMA user_version=%d;COMMIT;%s",
             fresh ? "" : "PRAGMA secure_delete=ON;",
             has_groups ? "" : "ALTER TABLE jobs ADD COLUMN groups BLOB;", SCHEMA_VERSION,
             fresh ? "" : "PRAGMA secure_delete=OFF;PRAGMA wal_checkpoint(TRUNCATE);");
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        *ret_error = rvd_strdupf("cannot update the job database '%s' to schema %d: %s", path,
                                 SCHEMA_VERSION, sqlite3_errmsg(s->db));
        return -EIO;
    }
    return 0;
}

/* The job database and its side files are 0600 (they name who fetched
 * what). SQLite makes each side file (-wal, -shm, -journal) with the
 * database's mode at that moment, exactly, whatever the umask: so the
 * database is made 0600 before SQLite opens it (the daemon's umask, 077,
 * would do for a new one), and files an older version left 0644 are
 * narrowed before SQLite uses them again. Best effort: what cannot be
 * opened, SQLite reports. */
static void make_private(const char *path) {
    static const char *const side[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
        char *name = rvd_strdupf("%s%s", path, side[i]);
        if (!name)
            return;
        /* Only the database is created; O_NONBLOCK: a FIFO there does not
         * hang the open. */
        int fd = open(name, (i == 0 ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW |
                                O_NONBLOCK, 0600);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            (st.st_mode & 07777) != 0600)
            (void)fchmod(fd, 0600);
        if (fd >= 0)
            close(fd);
        free(name);
    }
}

int rvd_jobstore_open(const char *state_dir, rvd_jobstore **ret, char **ret_error) {
    rvd_jobstore *s = calloc(1, sizeof(*s));
    char *path = rvd_strdupf("%s/jobs.sqlite", state_dir);
    int r = -ENOMEM;
    if (!s || !path)
        goto fail;
    pthread_mutex_init(&s->lock, NULL);
    if ((r = load_key(state_dir, s->key, ret_error)) < 0)
        goto fail;
    make_private(path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        r = -EIO;
        *ret_error = rvd_strdupf("cannot open the job database '%s': %s", path,
                                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    if (sqlite3_create_function(s->db, "rvd_scrub", 1,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                sql_scrub, NULL, NULL) != SQLITE_OK) {
        r = -ENOMEM;
        *ret_error = rvd_strdupf("cannot open the job database '%s': %s", path,
                                 sqlite3_errmsg(s->db));
        goto fail;
    }
    if ((r = migrate(s, path, ret_error)) < 0)
        goto fail;
    free(path);
    *ret = s;
    return 0;
fail:
    free(path);
    rvd_jobstore_close(s);
    return r;
}

rvd_jobstore *rvd_jobstore_close(rvd_jobstore *s) {
    if (!s)
        return NULL;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    OPENSSL_cleanse(s->key, sizeof(s->key));
    free(s);
    return NULL;
}

/* nonce || ciphertext || tag, malloc'd; NULL on failure. */
static unsigned char *seal(const rvd_jobstore *s, const uint8_t *in, size_t len, size_t *ret_len) {
    unsigned char *out = malloc(NONCE_LEN + len + TAG_LEN);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, f = 0;
    bool ok = out && c && getrandom(out, NONCE_LEN, 0) == NONCE_LEN &&
              EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, s->key, out) == 1 &&
              EVP_EncryptUpdate(c, out + NONCE_LEN, &n, in, (int)len) == 1 &&
              EVP_EncryptFinal_ex(c, out + NONCE_LEN + n, &f) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + NONCE_LEN + len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(out);
        return NULL;
    }
    *ret_len = NONCE_LEN + len + TAG_LEN;
    return out;
}

static unsigned char *unseal(const rvd_jobstore *s, const unsigned char *in, size_t len,
                             size_t *ret_len) {
    if (len < NONCE_LEN + TAG_LEN)
        return NULL;
    size_t n_ct = len - NONCE_LEN - TAG_LEN;
    unsigned char *out = malloc(n_ct ? n_ct : 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, f = 0;
    bool ok = out && c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, s->key, in) == 1 &&
              EVP_DecryptUpdate(c, out, &n, in + NONCE_LEN, (int)n_ct) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                  (void *)(in + NONCE_LEN + n_ct)) == 1 &&
              EVP_DecryptFinal_ex(c, out + n, &f) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(out);
        return NULL;
    }
    *ret_len = n_ct;
    return out;
}

/* Run sql with the binder's values; under s->lock. */
static int exec(rvd_jobstore *s, const char *sql, void (*bind)(sqlite3_stmt *, const void *),
                const void *arg) {
    sqlite3_stmt *st = NULL;
    int r = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (r == SQLITE_OK) {
        bind(st, arg);
        r = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : -EIO;
}

struct add_args {
    const rvd_stored_job *j;
    const unsigned char *blob, *groups;
    size_t blob_len;
};

static void bind_add(sqlite3_stmt *st, const void *arg) {
    const struct add_args *a = arg;
    const rvd_peer *owner = &a->j->owner;
    sqlite3_bind_text(st, 1, a->j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)a->j->seq);
    sqlite3_bind_int64(st, 3, owner->uid);
    sqlite3_bind_int64(st, 4, owner->gid);
    sqlite3_bind_int(st, 5, a->j->detached);
    sqlite3_bind_int(st, 6, a->j->state);
    sqlite3_bind_int64(st, 7, a->j->created_ms);
    sqlite3_bind_blob(st, 8, a->blob, (int)a->blob_len, SQLITE_STATIC);
    if (!owner->groups_known)
        sqlite3_bind_null(st, 9);
    else if (owner->n_groups == 0) /* a NULL pointer would bind NULL */
        sqlite3_bind_zeroblob(st, 9, 0);
    else
        sqlite3_bind_blob(st, 9, a->groups, (int)(4 * owner->n_groups), SQLITE_STATIC);
}

/* The groups column: 32-bit little-endian gids. */
static unsigned char *groups_encode(const rvd_peer *p) {
    unsigned char *out = malloc(4 * p->n_groups + 1);
    for (size_t i = 0; out && i < p->n_groups; i++) {
        uint32_t g = p->groups[i];
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (unsigned char)(g >> (8 * b));
    }
    return out;
}

/* Into p (groups_known stays false for NULL); -EINVAL for a length that
 * is not a list of gids, -ENOMEM. */
static int groups_decode(sqlite3_stmt *st, int col, rvd_peer *p) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    const unsigned char *in = sqlite3_column_blob(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    if (len % 4 != 0 || len / 4 > RVD_PEER_MAX_GROUPS)
        return -EINVAL;
    if (len > 0) {
        p->groups = malloc(len);
        if (!p->groups)
            return -ENOMEM;
        for (size_t i = 0; i < len / 4; i++)
            p->groups[i] = (gid_t)in[4 * i] | (gid_t)in[4 * i + 1] << 8 |
                           (gid_t)in[4 * i + 2] << 16 | (gid_t)in[4 * i + 3] << 24;
    }
    p->n_groups = len / 4;
    p->groups_known = true;
    return 0;
}

int rvd_jobstore_add(rvd_jobstore *s, const rvd_stored_job *j) {
    struct add_args a = {.j = j};
    unsigned char *blob = seal(s, j->request, j->request_len, &a.blob_len);
    unsigned char *groups = groups_encode(&j->owner);
    int r = -ENOMEM;
    if (!blob || !groups)
        goto out;
    a.blob = blob;
    a.groups = groups;
    pthread_mutex_lock(&s->lock);
    r = exec(s, "INSERT INTO jobs (id, seq, uid, gid, detached, state, created_ms, request,"
                " groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", bind_add, &a);
    pthread_mutex_unlock(&s->lock);
out:
    free(groups);
    free(blob);
    return r;
}

struct id_flag {
    const char *id;
    int flag;
};

static void bind_id_flag(sqlite3_stmt *st, const void *arg) {
    const struct id_flag *a = arg;
    sqlite3_bind_int(st, 1, a->flag);
    sqlite3_bind_text(st, 2, a->id, -1, SQLITE_STATIC);
}

int rvd_jobstore_set_detached(rvd_jobstore *s, const char *id, bool detached) {
    struct id_flag a = {id, detached};
    pthread_mutex_lock(&s->lock);
    int r = exec(s, "UPDATE jobs SET detached = ? WHERE id = ?", bind_id_flag, &a);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void bind_end(sqlite3_stmt *st, const void *arg) {
    const rvd_stored_job *j = arg;
    sqlite3_bind_int(st, 1, j->state);
    sqlite3_bind_int64(st, 2, j->ended_ms);
    sqlite3_bind_text(st, 3, j->id, -1, SQLITE_STATIC);
}

struct obj_args {
    const char *id;
    size_t idx;
    const rvd_stored_object *o;
};

static void bind_obj(sqlite3_stmt *st, const void *arg) {
    const struct obj_args *a = arg;
    const rvd_stored_object *o = a->o;
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)a->idx);
    sqlite3_bind_int(st, 3, o->state);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)o->bytes_done);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)o->bytes_total);
    sqlite3_bind_int(st, 6, o->total_known);
    sqlite3_bind_int(st, 7, o->from_cache);
    sqlite3_bind_int(st, 8, (int)o->retries);
    sqlite3_bind_text(st, 9, o->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, o->crc32c, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 11, o->error);
    sqlite3_bind_text(st, 12, o->error_detail, -1, SQLITE_STATIC);
}

/* Replace job id's sealed request by scrub's version of it; under the
 * lock, inside a transaction. */
static int scrub_request(rvd_jobstore *s, const char *id, rvd_jobstore_scrub_fn scrub) {
    sqlite3_stmt *st = NULL;
    unsigned char *plain = NULL, *blob = NULL;
    uint8_t *kept = NULL;
    size_t plain_len = 0, kept_len = 0, blob_len = 0;
    int r = -EIO;

    if (sqlite3_prepare_v2(s->db, "SELECT request FROM jobs WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    plain = unseal(s, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                   &plain_len);
    sqlite3_finalize(st);
    st = NULL;
    if (!plain || (r = scrub(plain, plain_len, &kept, &kept_len)) < 0)
        goto out;
    r = -ENOMEM;
    if (!(blob = seal(s, kept, kept_len, &blob_len)))
        goto out;
    r = -EIO;
    if (sqlite3_prepare_v2(s->db, "UPDATE jobs SET request = ? WHERE id = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_blob(st, 1, blob, (int)blob_len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
    }
out:
    sqlite3_finalize(st);
    if (plain) {
        OPENSSL_cleanse(plain, plain_len); /* it held the credentials */
        free(plain);
    }
    free(kept);
    free(blob);
    return r;
}

int rvd_jobstore_end(rvd_jobstore *s, const rvd_stored_job *j, rvd_jobstore_scrub_fn scrub) {
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int r = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
    if (r == 0)
        r = exec(s, "UPDATE jobs SET state = ?, ended_ms = ? WHERE id = ?", bind_end, j);
    if (r == 0 && scrub)
        r = scrub_request(s, j->id, scrub);
    /* One statement for all the rows: a job may have a thousand. */
    if (r == 0 && j->n_objects > 0 &&
        sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        r = -EIO;
    for (size_t i = 0; r == 0 && i < j->n_objects; i++) {
        struct obj_args a = {j->id, i, &j->objects[i]};
        bind_obj(st, &a);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_exec(s->db, r == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void bind_id(sqlite3_stmt *st, const void *arg) {
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
}

int rvd_jobstore_remove(rvd_jobstore *s, const char *id) {
    pthread_mutex_lock(&s->lock);
    int r = exec(s, "DELETE FROM jobs WHERE id = ?", bind_id, id);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static const char *col_text(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

/* The objects of an ended job, into a malloc'd array whose strings point
 * into *strings (one allocation each; the caller frees both). */
static int load_objects(rvd_jobstore *s, const char *id, rvd_stored_object **ret, size_t *ret_n,
                        char ***ret_strings) {
    sqlite3_stmt *st = NULL;
    rvd_stored_object *objs = NULL;
    char **strs = NULL;
    size_t n = 0;
    int r = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT idx, state, bytes_done, bytes_total, total_known,"
                           " from_cache, retries, sha256, crc32c, error, error_detail"
                           " FROM objects WHERE job_id = ? ORDER BY idx", -1, &st,
                           NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
        rvd_stored_object *no = realloc(objs, (n + 1) * sizeof(*objs));
        char **ns = no ? realloc(strs, (3 * n + 3) * sizeof(*strs)) : NULL;
        if (no)
            objs = no;
        if (ns)
            strs = ns;
        if (!no || !ns) {
            r = -ENOMEM;
            break;
        }
        rvd_stored_object *o = &objs[n];
        memset(o, 0, sizeof(*o));
        o->state = sqlite3_column_int(st, 1);
        o->bytes_done = (uint64_t)sqlite3_column_int64(st, 2);
        o->bytes_total = (uint64_t)sqlite3_column_int64(st, 3);
        o->total_known = sqlite3_column_int(st, 4);
        o->from_cache = sqlite3_column_int(st, 5);
        o->retries = (unsigned)sqlite3_column_int(st, 6);
        o->error = sqlite3_column_int(st, 9);
        const char *t[3] = {col_text(st, 7), col_text(st, 8), col_text(st, 10)};
        for (int k = 0; k < 3; k++)
            strs[3 * n + k] = t[k] ? strdup(t[k]) : NULL;
        o->sha256 = strs[3 * n];
        o->crc32c = strs[3 * n + 1];
        o->error_detail = strs[3 * n + 2];
        n++;
    }
    sqlite3_finalize(st);
    *ret = objs;
    *ret_n = n;
    *ret_strings = strs;
    return r;
}

int rvd_jobstore_load(rvd_jobstore *s, void (*fn)(void *ud, const rvd_stored_job *j), void *ud,
                      unsigned *ret_skipped) {
    sqlite3_stmt *st = NULL;
    int r = 0;
    *ret_skipped = 0;
    pthread_mutex_lock(&s->lock);
    if (sqlite3_prepare_v2(s->db, "SELECT id, seq, uid, gid, detached, state, created_ms,"
                           " ended_ms, request, groups FROM jobs ORDER BY seq", -1, &st,
                           NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&s->lock);
        return -EIO;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rvd_stored_job j = {
            .id = col_text(st, 0),
            .seq = (uint64_t)sqlite3_column_int64(st, 1),
            .owner = {.uid = (uid_t)sqlite3_column_int64(st, 2),
                      .gid = (gid_t)sqlite3_column_int64(st, 3)},
            .detached = sqlite3_column_int(st, 4),
            .state = sqlite3_column_int(st, 5),
            .created_ms = sqlite3_column_int64(st, 6),
            .ended_ms = sqlite3_column_int64(st, 7),
        };
        size_t len = 0;
        unsigned char *req = unseal(s, sqlite3_column_blob(st, 8),
                                    (size_t)sqlite3_column_bytes(st, 8), &len);
        rvd_stored_object *objs = NULL;
        char **strs = NULL;
        size_t n = 0;
        if (!req || !j.id || groups_decode(st, 9, &j.owner) < 0 ||
            (j.ended_ms && load_objects(s, j.id, &objs, &n, &strs) < 0)) {
            (*ret_skipped)++;
        } else {
            j.request = req;
            j.request_len = len;
            j.objects = objs;
            j.n_objects = n;
            fn(ud, &j);
        }
        for (size_t i = 0; strs && i < 3 * n; i++)
            free(strs[i]);
        free(strs);
        free(objs);
        free(req);
        rvd_peer_clear(&j.owner);
    }
    if (step != SQLITE_DONE)
        r = -EIO;
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return r;
}
