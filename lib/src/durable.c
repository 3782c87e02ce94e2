/* durable.c — the engine's side of durable state (docs/state.md).
 *
 * With a state directory, an object downloads into a blob in the cache
 * directory (blobs/<id>), and its ranges' progress is made durable in
 * rounds:
 *
 *   1. written      pwrite into the blob; the range's crc extends
 *   2. submitted    a sync job (dup'd fd + marks) goes to the flusher thread
 *                   every flush_bytes new bytes or flush_interval_ms
 *   3. synced       the flusher fdatasyncs (or one syncfs for a batch, when
 *                   that costs less)
 *   4. recorded     the marks enter the store's open transaction
 *   5. committed    the transaction commits (every 200 ms, or at once when
 *                   an object waits to be delivered)
 *
 * A mark is never written before its sync finished (3 before 4), which is
 * the store's invariant. Losing 4-5 in a crash only loses marks: those
 * bytes are fetched again. An object is delivered only after its final
 * sync and the commit that records it complete.
 *
 * Only the engine thread touches the store; the flusher only syncs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cachefiles.h"
#include "crc32c.h"
#include "readback.h"
#include "engine_int.h"

/* Longest a recorded mark waits for its commit when nothing is waiting. */
#define COMMIT_INTERVAL_MS 200

/* Most blobs made ahead for queued objects (cachefiles.h): enough to cover
 * the objects that start while the thread makes the next ones. */
#define BLOBS_AHEAD 32

static void notice(rv_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(rv_engine *e, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    if (!e->hooks.on_notice)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->hooks.on_notice(e->cfg.hooks_ud, msg);
}

static void evict(rv_engine *e, bool at_open);

/* mkdir -p (mode 0700 for what it creates), then check it is a writable
 * directory. */
static int make_dir(const char *path) {
    char *p = strdup(path);
    if (!p)
        return RV_E_NOMEM;
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        int made = mkdir(p, 0700);
        *q = '/';
        if (made != 0 && errno != EEXIST)
            break;
    }
    free(p);
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && access(path, W_OK | X_OK) == 0)
            return RV_OK;
    }
    return RV_E_DEST_UNWRITABLE;
}

/* ----------------------------------------------------------------------- */
/* Transactions: one per round                                              */

static int tx(rv_engine *e) {
    if (e->tx_open)
        return RV_OK;
    int r = rv_store_begin(e->store);
    if (r == RV_OK) {
        e->tx_open = true;
        e->tx_opened_ms = rv_now_ms();
    }
    return r;
}

static int commit(rv_engine *e) {
    if (!e->tx_open)
        return RV_OK;
    e->tx_open = false;
    int r = rv_store_end(e->store);
    if (r != RV_OK)
        notice(e, "state database commit failed: %s", rv_store_errmsg(e->store));
    return r;
}

/* ----------------------------------------------------------------------- */
/* Opening and recovery                                                     */

/* A growable list of row ids. */
typedef struct id_list {
    int64_t *ids;
    size_t n, cap;
} id_list;

static int id_list_push(id_list *l, int64_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        int64_t *ids = realloc(l->ids, cap * sizeof(*ids));
        if (!ids)
            return RV_E_NOMEM;
        l->ids = ids;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return RV_OK;
}

struct recovery {
    rv_engine *e;
    id_list kept;
    unsigned dropped;
};

static int check_row(void *ud, const rv_store_object *so) {
    struct recovery *rc = ud;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", rc->e->blob_dir, so->blob);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        (so->complete && (uint64_t)st.st_size != so->size)) {
        /* A row whose blob is gone (or a complete one that is no longer
         * whole) promises bytes nobody has: forget it. */
        rc->dropped++;
        return rv_store_delete(rc->e->store, so->id);
    }
    /* Blobs an older version made 0444 (or a resumed one 0644) lose what
     * they grant others: a blob may hold what was fetched with
     * credentials, and a hard-linked delivery of it is the same inode
     * (cachefiles.h, RV_BLOB_MODE). Best effort. */
    if (st.st_mode & 077)
        (void)chmod(path, st.st_mode & 0700);
    if (id_list_push(&rc->kept, so->id) != RV_OK)
        return RV_E_NOMEM;
    if (so->size != RV_STORE_UNKNOWN)
        rc->e->cache_bytes += so->size;
    return RV_OK;
}

static bool known_id(const struct recovery *rc, const char *name) {
    char *end = NULL;
    long long id = strtoll(name, &end, 10);
    if (!end || *end || end == name)
        return false;
    for (size_t i = 0; i < rc->kept.n; i++)
        if (rc->kept.ids[i] == id)
            return true;
    return false;
}

/* Rows without blobs go; blobs without rows go. */
static int recover(rv_engine *e) {
    struct recovery rc = {.e = e};
    unsigned orphans = 0;
    int r = rv_store_begin(e->store);
    if (r == RV_OK) {
        r = rv_store_each(e->store, check_row, &rc);
        int r2 = rv_store_end(e->store);
        r = r == RV_OK ? r2 : r;
    }
    DIR *d = r == RV_OK ? opendir(e->blob_dir) : NULL;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.' || known_id(&rc, de->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", e->blob_dir, de->d_name);
        if (unlink(path) == 0)
            orphans++;
    }
    if (d)
        closedir(d);
    if (rc.dropped)
        notice(e, "recovery: forgot %u download(s) whose cache files were missing", rc.dropped);
    if (orphans)
        notice(e, "recovery: removed %u cache file(s) that no download owned", orphans);
    free(rc.kept.ids);
    return r;
}

/* The key of the credential fingerprint (make_key): <state_dir>/
 * retriever.key, 32 random bytes, mode 0600, read at each open and made at
 * the first. It is
 * kept beside the database, not in it: with an unkeyed digest, a copy of
 * retriever.db let anyone test guesses of a weak password offline. A key
 * that is missing or damaged is made anew; that costs only cache matches
 * of credentialed objects (their old rows are never matched again and age
 * out), never a wrong match. The store's lock is held: one writer. */
static int load_state_key(rv_engine *e, char **ret_note) {
    char *path = NULL, *tmp = NULL;
    int r = RV_E_NOMEM, fd = -1;
    struct stat st;

    if (asprintf(&path, "%s/retriever.key", e->state_dir) < 0) {
        path = NULL;
        goto out;
    }
    if (asprintf(&tmp, "%s/retriever.key.new", e->state_dir) < 0) {
        tmp = NULL;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size == (off_t)sizeof(e->state_key) &&
        read(fd, e->state_key, sizeof(e->state_key)) == (ssize_t)sizeof(e->state_key)) {
        r = RV_OK;
        goto out;
    }
    if (fd >= 0)
        close(fd);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 ||
        getrandom(e->state_key, sizeof(e->state_key), 0) != (ssize_t)sizeof(e->state_key) ||
        write(fd, e->state_key, sizeof(e->state_key)) != (ssize_t)sizeof(e->state_key) ||
        fsync(fd) != 0 || rename(tmp, path) != 0) {
        r = RV_E_DEST_UNWRITABLE;
        if (asprintf(ret_note, "cannot make the state key '%s': %s", path, strerror(errno)) < 0)
            *ret_note = NULL;
        unlink(tmp);
        goto out;
    }
    r = RV_OK;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    free(tmp);
    return r;
}

int rv_durable_open(rv_engine *e, char **ret_detail) {
    const rv_config *cfg = &e->cfg;
    char *note = NULL;
    int r = RV_E_NOMEM;

    e->sync_due_ms = UINT64_MAX;
    e->state_dir = strdup(cfg->state_dir);
    if (cfg->cache_dir)
        e->cache_dir = strdup(cfg->cache_dir);
    else if (e->state_dir && asprintf(&e->cache_dir, "%s/cache", e->state_dir) < 0)
        e->cache_dir = NULL;
    if (!e->state_dir || !e->cache_dir || asprintf(&e->blob_dir, "%s/blobs", e->cache_dir) < 0)
        goto out;
    if (make_dir(e->state_dir) != RV_OK) {
        r = RV_E_DEST_UNWRITABLE;
        if (asprintf(&note, "state directory '%s' cannot be created or written: %s",
                     e->state_dir, strerror(errno)) < 0)
            note = NULL;
        goto out;
    }
    r = rv_store_open(e->state_dir, &e->store, &note);
    if (r != RV_OK) {
        if (!note && asprintf(&note, "cannot use state directory '%s': %s", e->state_dir,
                              rv_strerror(r)) < 0)
            note = NULL;
        goto out;
    }
    if (note)
        notice(e, "%s", note);
    free(note);
    note = NULL;
    if ((r = load_state_key(e, &note)) != RV_OK)
        goto out;
    if (make_dir(e->cache_dir) != RV_OK || make_dir(e->blob_dir) != RV_OK) {
        r = RV_E_DEST_UNWRITABLE;
        if (asprintf(&note, "cache directory '%s' cannot be created or written: %s", e->blob_dir,
                     strerror(errno)) < 0)
            note = NULL;
        goto out;
    }
    r = rv_store_max_id(e->store, &e->next_store_id);
    if (r == RV_OK)
        r = rv_store_last_batch(e->store, &e->recheck_batch);
    if (r == RV_OK)
        r = recover(e);
    if (r == RV_OK)
        evict(e, true); /* the quota may have shrunk since the last run */
    if (r != RV_OK) {
        if (asprintf(&note, "state database in '%s' failed: %s", e->state_dir,
                     rv_store_errmsg(e->store)) < 0)
            note = NULL;
        goto out;
    }
    r = rv_flusher_new(rv_engine_wake_cb, e, &e->flusher);
    if (r == RV_OK)
        r = rv_cachefiles_new(e->blob_dir, rv_rng_next(&e->rng), rv_engine_wake_cb, e,
                              &e->cachefiles);
out:
    if (ret_detail)
        *ret_detail = note;
    else
        free(note);
    return r;
}

void rv_durable_close(rv_engine *e) {
    /* Every object has ended, but those being delivered. Their deliveries
     * are finished (their blobs are recorded complete) and the results
     * dropped with the objects: no state changes while the engine closes. */
    e->cachefiles = rv_cachefiles_free(e->cachefiles);
    if (e->flusher) {
        rv_flusher_stop(e->flusher);
        rv_durable_progress(e, rv_now_ms()); /* record what the last syncs proved */
        e->flusher = rv_flusher_free(e->flusher);
    }
    if (e->store)
        commit(e);
    e->store = rv_store_close(e->store);
    free(e->state_dir);
    free(e->cache_dir);
    free(e->blob_dir);
}

/* ----------------------------------------------------------------------- */
/* Starting an object: resume, or a new row                                 */

/* The store key: what names the object, plus a fingerprint of the
 * credentials the request carries (headers, URL userinfo, its own CA
 * certificates, or none checked (insecure): only their digest is kept), so
 * requests with different credentials never share state.
 *
 * What names the object is the normalised URL (its query only inside the
 * fingerprint), except for file:// sources:
 * there it is the file itself (device and inode), because a path is not an
 * identity. A daemon hands the engine "file:///proc/self/fd/N" for files
 * it opened as its callers, and N names a different file each time.
 *
 * The fingerprint is HMAC-SHA256, keyed by the state directory's key
 * (load_state_key), of the query, the userinfo and the header lines, each
 * ended by a NUL (none contains one), truncated to 128 bits: equal
 * credentials give equal keys, and the database alone reveals nothing
 * about them, not even to someone guessing a weak password. */
/* The part of the key that names the object (malloc'd, or NULL: no
 * memory). rv_cache_matches names a URL the same way. */
static char *key_name(const rv_url *u) {
    char *name = NULL, *path = NULL;
    struct stat st;
    if (strcmp(u->scheme, "file") == 0 && rv_url_file_path(u, &path) == RV_OK &&
        stat(path, &st) == 0) {
        if (asprintf(&name, "file:dev=%llx,ino=%llx", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino) < 0)
            name = NULL;
    } else {
        /* The query goes in only as part of the fingerprint: it may be a
         * signature (a presigned URL), and keys are stored in clear. */
        const char *q = strchr(u->normalised, '?');
        name = strndup(u->normalised, q ? (size_t)(q - u->normalised) : strlen(u->normalised));
    }
    free(path);
    return name;
}

/* A presigned S3 URL's query without its signing parameters (X-Amz-*,
 * which change with every signing), malloc'd; NULL: not presigned (no
 * X-Amz-Signature), or no memory (*nomem). Presigned URLs of one object
 * then share a key, and so the cache; the "presigned" mark keeps them
 * apart from requests without a signature. */
static char *presigned_rest(const char *query, bool *nomem) {
    if (!query || !strcasestr(query, "X-Amz-Signature="))
        return NULL;
    char *out = malloc(strlen(query) + 1), *w = out;
    if (!out) {
        *nomem = true;
        return NULL;
    }
    for (const char *p = query; *p;) {
        size_t n = strcspn(p, "&");
        if (strncasecmp(p, "X-Amz-", 6) != 0) {
            if (w != out)
                *w++ = '&';
            memcpy(w, p, n);
            w += n;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    *w = '\0';
    return out;
}

static int make_key(rv_object *o) {
    char *name = key_name(o->url), *msg = NULL;
    size_t msg_len = 0;
    char hex[33] = "";
    int r = RV_OK;

    if (!name)
        return RV_E_NOMEM;
    /* A request's own CA certificates decide which origin it trusts: bytes
     * fetched under them are never anyone else's cache hit. */
    /* A proxy that takes credentials may answer differently per account:
     * its bytes are kept apart like those fetched with a header. */
    bool proxy_cred = o->proxy && strchr(o->proxy, '@');
    /* An s3:// object is its bucket and key at one endpoint, as one access
     * key id sees it: the endpoint, region and style name the object, and
     * the key id keeps callers' objects apart (never the secret, nor the
     * session token, which changes while the account stays). */
    if (o->user_headers || o->url->userinfo || o->url->query || o->ca_pem || o->insecure ||
        proxy_cred || o->s3) {
        FILE *f = open_memstream(&msg, &msg_len);
        if (!f) {
            r = RV_E_NOMEM;
            goto out;
        }
        bool nomem = false;
        char *rest = presigned_rest(o->url->query, &nomem);
        if (nomem) {
            fclose(f);
            r = RV_E_NOMEM;
            goto out;
        }
        if (rest) {
            fwrite("presigned", 1, sizeof("presigned"), f);
            fwrite(rest, 1, strlen(rest) + 1, f);
            free(rest);
        } else if (o->url->query) {
            fwrite(o->url->query, 1, strlen(o->url->query) + 1, f);
        }
        if (o->url->userinfo)
            fwrite(o->url->userinfo, 1, strlen(o->url->userinfo) + 1, f);
        for (struct curl_slist *l = o->user_headers; l; l = l->next)
            fwrite(l->data, 1, strlen(l->data) + 1, f);
        if (o->insecure)
            fwrite("insecure", 1, sizeof("insecure"), f);
        if (o->s3) {
            const char *parts[] = {"s3", o->s3_endpoint ? o->s3_endpoint : "",
                                   o->s3_region ? o->s3_region : "",
                                   o->s3_path_style ? "path" : "virtual",
                                   o->s3_key_id ? o->s3_key_id : ""};
            for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++)
                fwrite(parts[k], 1, strlen(parts[k]) + 1, f);
        }
        if (proxy_cred) {
            fwrite("proxy", 1, sizeof("proxy"), f);
            fwrite(o->proxy, 1, strlen(o->proxy) + 1, f);
        }
        if (o->ca_pem) {
            const char *how = o->ca_only ? "ca-only" : "ca-add";
            fwrite(how, 1, strlen(how) + 1, f);
            fwrite(o->ca_pem, 1, strlen(o->ca_pem) + 1, f);
        }
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        if (fclose(f) != 0 || !msg ||
            !HMAC(EVP_sha256(), o->engine->state_key, (int)sizeof(o->engine->state_key),
                  (const unsigned char *)msg, msg_len, md, &md_len) || md_len < 16) {
            r = RV_E_NOMEM;
            goto out;
        }
        static const char digits[] = "0123456789abcdef";
        for (unsigned k = 0; k < 16; k++) {
            hex[2 * k] = digits[md[k] >> 4];
            hex[2 * k + 1] = digits[md[k] & 15];
        }
        hex[32] = '\0';
        OPENSSL_cleanse(md, sizeof(md));
    }
    if (!hex[0]) {
        o->key = name;
        name = NULL;
    } else if (asprintf(&o->key, "%s\ncredentials-mac:%s", name, hex) < 0) {
        o->key = NULL;
        r = RV_E_NOMEM;
    }
out:
    if (msg) {
        OPENSSL_cleanse(msg, msg_len); /* it holds the credentials */
        free(msg);
    }
    free(name);
    return r;
}

static bool resumable(const rv_object *o) {
    return o->ranges && o->size != RV_UNKNOWN && (o->etag || o->last_modified);
}

/* Does [start, durable) of the blob still have the CRC the store recorded? */
static bool range_intact(rv_engine *e, int fd, const rv_store_range *r) {
    uint32_t crc;
    return rv_readback_crc32c(fd, r->start, r->durable, e->buf, e->buf_size, &crc) == 0 &&
           crc == r->crc32c;
}

/* Set o up from its row: chunks at their durable marks. False when the
 * row cannot be trusted for a resume (then the caller starts over). */
static bool resume(rv_object *o, const rv_store_object *so) {
    rv_engine *e = o->engine;
    rv_store_range *ranges = NULL;
    size_t n = 0;
    struct stat st;
    bool ok = false;

    if (so->size == RV_STORE_UNKNOWN || (!so->etag && !so->last_modified) ||
        rv_store_ranges(e->store, so->id, &ranges, &n) != RV_OK || n == 0 ||
        fstat(o->fd, &st) != 0 || (uint64_t)st.st_size != so->size)
        goto out;
    rv_chunk *chunks = calloc(n, sizeof(*chunks));
    if (!chunks)
        goto out;
    uint64_t done = 0;
    for (size_t i = 0; i < n; i++) {
        rv_store_range *r = &ranges[i];
        /* The last batch before the crash is re-checked: its marks are the
         * newest promises, the ones a lying disk would break first. */
        if (r->batch == e->recheck_batch && r->durable > r->start && !range_intact(e, o->fd, r)) {
            r->durable = r->start;
            r->crc32c = 0;
        }
        chunks[i] = (rv_chunk){.start = r->start, .end = r->end, .pos = r->durable,
                               .landed = r->durable,
                               .submitted = r->durable, .durable = r->durable,
                               .crc = r->crc32c};
        if (r->durable == r->end) /* all of it durable: a new range, TODO, is DONE */
            rv_chunk_set_state(o, &chunks[i], RV_CHUNK_DONE);
        done += r->durable - r->start;
    }
    free(o->chunks);
    o->chunks = chunks;
    o->n_chunks = n;
    o->size = so->size;
    o->bytes_done = done;
    o->ranges = true;
    o->planned = true;
    o->counted = so->size; /* counted when the store was opened */
    o->etag = so->etag ? strdup(so->etag) : NULL;
    o->last_modified = so->last_modified ? strdup(so->last_modified) : NULL;
    ok = (!so->etag || o->etag) && (!so->last_modified || o->last_modified);
out:
    free(ranges);
    return ok;
}

/* A complete blob from an earlier run (or a leader's, follow_done):
 * deliver it without fetching (after a revalidation request, by policy),
 * once its bytes are checked against the recorded CRC-32C (delivery_of).
 * False when it cannot serve. */
static bool cache_hit(rv_object *o, const rv_store_object *so) {
    rv_engine *e = o->engine;
    struct stat st;
    bool validator = so->etag || so->last_modified;

    /* A row without a CRC-32C cannot be verified (every complete row has
     * one; a damaged database might not): it is fetched again instead. */
    if (so->size == RV_STORE_UNKNOWN || !so->has_crc32c ||
        (e->cfg.cache_revalidate && !validator))
        return false;
    o->fd = open(o->blob_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (o->fd < 0 || fstat(o->fd, &st) != 0 || (uint64_t)st.st_size != so->size)
        return false;
    rv_chunk *c = calloc(1, sizeof(*c));
    if (!c)
        return false;
    *c = (rv_chunk){.start = 0, .end = so->size, .pos = so->size, .landed = so->size,
                    .submitted = so->size,
                    .durable = so->size, .crc = so->crc32c};
    free(o->chunks);
    o->chunks = c;
    o->n_chunks = 1;
    rv_chunk_set_state(o, c, RV_CHUNK_DONE); /* a new range, TODO: legal */
    o->size = so->size;
    o->bytes_done = so->size; /* honest progress: all of it is here */
    o->ranges = o->planned = o->cached = true;
    o->counted = so->size; /* counted when the store was opened */
    o->etag = so->etag ? strdup(so->etag) : NULL;
    o->last_modified = so->last_modified ? strdup(so->last_modified) : NULL;
    /* The digest the row recorded is not taken: a digest, when wanted, is
     * of the bytes delivered, so the digester reads the blob back
     * (digest_known stays false). Its delivery checks the bytes against
     * the CRC-32C first (delivery_of). */
    o->revalidating = e->cfg.cache_revalidate;
    rv_store_touch(e->store, so->id, (int64_t)time(NULL));
    return (!so->etag || o->etag) && (!so->last_modified || o->last_modified);
}

/* Reopen a partial blob to resume it. Blobs are created read-only (they
 * become hard links of delivered files as they are); a partial one is
 * made writable again first, and read-only again before delivery. */
static int open_blob_to_resume(rv_object *o) {
    (void)chmod(o->blob_path, 0600); /* a missing blob: open says so */
    o->blob_writable = true;
    o->fd = open(o->blob_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (o->fd < 0) {
        int err = rv_errno_to_error(errno);
        rv_object_fail(o, err, "cannot open cache file '%s': %s", o->blob_path, strerror(errno));
        return err;
    }
    return RV_OK;
}

/* Start the blob over as a new, empty file, created read-only (RV_BLOB_MODE:
 * the descriptor still writes; the blob is delivered as hard links, which
 * must not be writable). An old blob may be complete and hard-linked to
 * earlier destinations: it is unlinked, never written. made_fd >= 0 is the
 * new blob already, made ahead (cachefiles.h). */
static int fresh_blob(rv_object *o, int made_fd) {
    o->cached = o->revalidating = o->digest_known = o->planned = o->blob_writable = false;
    o->bytes_done = 0;
    free(o->etag);
    free(o->last_modified);
    o->etag = o->last_modified = NULL;
    o->fd = made_fd;
    if (o->fd >= 0)
        return RV_OK;
    int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
    /* A new row's blob does not exist (recovery removed unowned blobs):
     * create it at once; unlink first only when it does. */
    o->fd = open(o->blob_path, flags, RV_BLOB_MODE);
    if (o->fd < 0 && errno == EEXIST && unlink(o->blob_path) == 0)
        o->fd = open(o->blob_path, flags, RV_BLOB_MODE);
    if (o->fd < 0) {
        int err = rv_errno_to_error(errno);
        rv_object_fail(o, err, "cannot create cache file '%s': %s", o->blob_path,
                       strerror(errno));
        return err;
    }
    return RV_OK;
}

/* A live object already fetching the same key, or NULL. */
static rv_object *find_leader(rv_object *o) {
    for (rv_object *l = o->engine->leaders; l; l = l->lead_next)
        if (l->key_hash == o->key_hash && strcmp(l->key, o->key) == 0)
            return l;
    return NULL;
}

static void leaders_add(rv_object *o) {
    rv_engine *e = o->engine;
    o->lead_next = e->leaders;
    if (e->leaders)
        e->leaders->lead_prevp = &o->lead_next;
    o->lead_prevp = &e->leaders;
    e->leaders = o;
}

static void leaders_remove(rv_object *o) {
    if (!o->lead_prevp)
        return;
    *o->lead_prevp = o->lead_next;
    if (o->lead_next)
        o->lead_next->lead_prevp = o->lead_prevp;
    o->lead_next = NULL;
    o->lead_prevp = NULL;
}

/* Queued objects from o on, towards the queue's tail (next) or its head,
 * counted up to BLOBS_AHEAD. */
static unsigned queued_from(const rv_object *o, bool towards_tail) {
    unsigned n = 0;
    for (; o && n < BLOBS_AHEAD; o = towards_tail ? o->next : o->prev)
        n += o->state == RV_STATE_QUEUED;
    return n;
}

/* Order blobs for the objects waiting in the queue from `from` on, up to
 * BLOBS_AHEAD ordered in all, when at least min_queued wait. Most of them
 * will need one; a cache hit or a resume among them leaves its blob to the
 * next, and rv_durable_close removes what is left. Orders go in batches,
 * once half the blobs ordered are taken: every order that finds the thread
 * idle wakes it, and a wake costs the engine thread more than making one
 * blob would. */
static void order_blobs(rv_engine *e, const rv_object *from, bool towards_tail,
                        unsigned min_queued) {
    unsigned ordered = rv_cachefiles_ordered(e->cachefiles);
    if (ordered >= BLOBS_AHEAD / 2)
        return; /* before the walk: most calls end here */
    unsigned queued = queued_from(from, towards_tail);
    if (queued < min_queued || queued <= ordered)
        return;
    if (rv_cachefiles_order(e->cachefiles, e->next_store_id + 1, queued - ordered) == RV_OK)
        e->next_store_id += queued - ordered;
}

void rv_durable_added(rv_object *o) {
    /* A batch as soon as there is one: the thread makes it while the
     * caller adds the rest, so the first objects to start find theirs. */
    order_blobs(o->engine, o, false, BLOBS_AHEAD / 2);
}

int rv_durable_start(rv_object *o) {
    rv_engine *e = o->engine;
    rv_store_object so = {0};
    bool found = false;
    int made_fd = -1;
    int r = make_key(o);

    /* Two requests for one object in one process share its download. */
    if (r == RV_OK)
        o->key_hash = rv_str_hash(o->key);
    rv_object *leader = r == RV_OK ? find_leader(o) : NULL;
    if (leader) {
        o->leader = leader;
        leader->followers++;
        o->store_id = leader->store_id;
        o->planned = true;
        return RV_OK;
    }
    /* The lookup joins the round's transaction: on its own it would be a
     * read transaction of its own, whose WAL locks cost two fcntl calls
     * (2400 per 1000 small objects, 390 this way). */
    if (r == RV_OK)
        r = tx(e);
    if (r == RV_OK)
        r = rv_store_find(e->store, o->key, &so, &found);
    if (r != RV_OK) {
        rv_object_fail(o, r == RV_E_NOMEM ? r : RV_E_STATE, "state database lookup failed: %s",
                       rv_store_errmsg(e->store));
        goto out;
    }
    /* A new object's row is written when there is something to record
     * (its plan, or its completion): until then a crash leaves only a blob
     * without a row, which recovery removes. */
    o->row_exists = found;
    if (found)
        o->store_id = so.id;
    else if (!rv_cachefiles_take(e->cachefiles, &o->store_id, &made_fd))
        o->store_id = ++e->next_store_id;
    order_blobs(e, o->next, true, 0);
    leaders_add(o);
    if (asprintf(&o->blob_path, "%s/%lld", e->blob_dir, (long long)o->store_id) < 0) {
        o->blob_path = NULL;
        if (made_fd >= 0)
            close(made_fd); /* its blob has no row: the next recovery removes it */
        r = RV_E_NOMEM;
        rv_object_fail(o, r, "out of memory");
        goto out;
    }
    if (found && so.complete) {
        if (tx(e) == RV_OK && cache_hit(o, &so))
            goto out;
    } else if (found) {
        r = open_blob_to_resume(o);
        if (r == RV_OK && resume(o, &so))
            goto out; /* resumed */
    }
    rv_outfile_close(o);
    if (r == RV_OK)
        r = fresh_blob(o, made_fd);
out:
    rv_store_object_clear(&so);
    return r;
}

/* Keep engine->cache_bytes in step with what o occupies. */
static void count(rv_object *o, uint64_t size) {
    rv_engine *e = o->engine;
    e->cache_bytes = e->cache_bytes - o->counted + size;
    o->counted = size;
}

/* Insert o's row as it stands: what resolution learnt, and for a complete
 * object its checksums. */
static int insert_row(rv_object *o, bool complete) {
    rv_engine *e = o->engine;
    char blob[32];
    snprintf(blob, sizeof(blob), "%lld", (long long)o->store_id);
    /* The row shows the redacted URL; the key (make_key) is what matches. */
    rv_store_object row = {.id = o->store_id, .key = o->key, .url = o->url_shown, .size = o->size,
                           .etag = o->etag, .last_modified = o->last_modified, .blob = blob,
                           .complete = complete, .has_crc32c = complete, .crc32c = o->crc32c,
                           .used_at = (int64_t)time(NULL)};
    if (complete)
        memcpy(row.sha256, o->sha256_hex, sizeof(row.sha256));
    int r = tx(e);
    if (r == RV_OK)
        r = rv_store_insert(e->store, &row);
    if (r == RV_OK)
        o->row_exists = true;
    return r;
}

void rv_durable_planned(rv_object *o) {
    rv_engine *e = o->engine;
    if (o->size != RV_UNKNOWN)
        count(o, o->size);
    /* A new object no larger than the probe comes whole in its first
     * response: nothing in it is worth resuming, so its row waits for its
     * completion (one INSERT instead of three statements). A crash before
     * then leaves a blob without a row, which recovery removes. */
    if (!o->row_exists && o->size != RV_UNKNOWN && o->size <= e->cfg.min_chunk_size &&
        o->n_chunks == 1 && o->chunks[0].end == o->size)
        return;
    rv_store_range *ranges = calloc(o->n_chunks ? o->n_chunks : 1, sizeof(*ranges));
    bool keep = resumable(o);
    if (!ranges) {
        rv_object_fail(o, RV_E_NOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; keep && i < o->n_chunks; i++)
        ranges[i] = (rv_store_range){.start = o->chunks[i].start, .end = o->chunks[i].end};
    /* An object that cannot be resumed keeps no ranges: nothing to trust. */
    size_t n = keep ? o->n_chunks : 0;
    int r;
    if (o->row_exists) {
        rv_store_object so = {.id = o->store_id, .size = o->size, .etag = o->etag,
                              .last_modified = o->last_modified};
        r = tx(e);
        if (r == RV_OK)
            r = rv_store_resolve(e->store, &so, ranges, n);
    } else {
        r = insert_row(o, false);
        if (r == RV_OK)
            r = rv_store_add_ranges(e->store, o->store_id, ranges, n);
    }
    if (r != RV_OK)
        rv_object_fail(o, r == RV_E_NOMEM ? r : RV_E_STATE,
                       "cannot record the download's plan: %s", rv_store_errmsg(e->store));
    free(ranges);
}

/* ----------------------------------------------------------------------- */
/* Syncs                                                                    */

int rv_durable_sync_object(rv_object *o, bool final) {
    rv_engine *e = o->engine;
    size_t n = 0;

    for (size_t i = 0; i < o->n_chunks; i++)
        if (o->chunks[i].landed > o->chunks[i].submitted)
            n++;
    if (!final && n == 0)
        return RV_OK;
    rv_sync_job *job = calloc(1, sizeof(*job) + n * sizeof(rv_sync_span));
    uint64_t *starts = calloc(n ? n : 1, sizeof(*starts));
    if (!job || !starts) {
        free(job);
        free(starts);
        rv_object_fail(o, RV_E_NOMEM, "out of memory");
        return RV_E_NOMEM;
    }
    job->req.fd = dup(o->fd);
    if (job->req.fd < 0) {
        free(job);
        free(starts);
        rv_object_fail(o, RV_E_IO, "cannot sync '%s': %s", o->blob_path, strerror(errno));
        return RV_E_IO;
    }
    job->object_id = o->id;
    job->gen = o->gen;
    job->final = final;
    job->span_start = starts;
    job->req.spans = job->spans;
    for (size_t i = 0; i < o->n_chunks; i++) {
        rv_chunk *c = &o->chunks[i];
        if (c->landed <= c->submitted)
            continue;
        starts[job->req.n_spans] = c->start;
        job->spans[job->req.n_spans++] =
            (rv_sync_span){.from = c->submitted, .to = c->landed,
                           .have_crc = !c->written_crc_unknown, .crc = c->written_crc};
        c->submitted = c->landed;
        c->written_crc = 0;
        c->written_crc_unknown = false;
    }
    o->last_submit_ms = rv_now_ms();
    rv_flusher_submit(e->flusher, &job->req);
    /* No transfer left to finish more objects into this batch: the run's
     * last objects wait for no spacing. */
    if (final && e->active == 0)
        rv_flusher_hurry(e->flusher);
    return RV_OK;
}

uint64_t rv_durable_sync_due(rv_engine *e, uint64_t now) {
    uint64_t next = UINT64_MAX;
    for (rv_object *o = rv_live_head(e); o; o = o->next) {
        if (o->state != RV_STATE_DOWNLOADING || o->fd < 0 || !o->store_id || o->err != RV_OK)
            continue;
        uint64_t unsynced = 0, held = 0;
        for (size_t i = 0; i < o->n_chunks; i++) {
            const rv_chunk *c = &o->chunks[i];
            unsynced += c->landed - c->submitted;
            if (c->xfer && c->xfer->stage)
                held += c->xfer->stage->req.len;
        }
        if (o->last_submit_ms == 0)
            o->last_submit_ms = now; /* the interval starts with its download, not at 0:
                                      * else its first partial stages go unaligned at once */
        uint64_t due = o->last_submit_ms + e->cfg.flush_interval_ms;
        /* A slow or stalled transfer's partly filled stage goes to the
         * writer when a sync is due; once it lands, the next round syncs
         * it (the writer wakes the engine). */
        if (held > 0 && now >= due)
            rv_stage_flush_object(o);
        if (unsynced >= e->cfg.flush_bytes || (unsynced > 0 && now >= due))
            rv_durable_sync_object(o, false);
        else if ((unsynced > 0 || (held > 0 && now < due)) && due < next)
            next = due; /* a stalled transfer's bytes still get synced on time */
    }
    return next;
}

/* The object's CRC-32C from its ranges' CRCs. */
static void combine_crc(rv_object *o) {
    uint32_t crc = 0;
    for (size_t i = 0; i < o->n_chunks; i++)
        crc = rv_crc32c_combine(crc, o->chunks[i].crc, o->chunks[i].end - o->chunks[i].start);
    o->crc32c = crc;
    o->has_crc32c = true;
}

/* A sync finished: extend each range's CRC with its span's (jobs of one
 * object finish in submission order), record the marks, and for the final
 * one the object's completion. Returns 1 when the object is ready to be
 * delivered once the transaction commits (deliver_ready), else 0. */
static unsigned sync_done(rv_engine *e, rv_sync_job *job) {
    rv_object *o = rv_object_by_id(e, job->object_id);
    if (!o || o->gen != job->gen || rv_state_is_terminal(o->state))
        return 0; /* cancelled, restarted, or gone: what it proved is moot */
    if (job->req.err) {
        int err = rv_errno_to_error(job->req.err);
        rv_object_fail(o, err == RV_E_DEST_UNWRITABLE ? RV_E_IO : err,
                       "cannot make '%s' durable: %s", o->blob_path, strerror(job->req.err));
        return 0;
    }
    rv_store_mark *marks = calloc(job->req.n_spans ? job->req.n_spans : 1, sizeof(*marks));
    size_t n = 0;
    if (!marks) {
        rv_object_fail(o, RV_E_NOMEM, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < job->req.n_spans; i++) {
        const rv_sync_span *sp = &job->spans[i];
        rv_chunk *c = rv_chunk_starting(o, job->span_start[i]);
        if (!c || c->durable != sp->from || sp->from < c->start || sp->to > c->end) {
            rv_object_fail(o, RV_E_INTERNAL, "durable ranges out of step at offset %llu",
                           (unsigned long long)sp->from);
            free(marks);
            return 0;
        }
        c->crc = rv_crc32c_combine(c->crc, sp->crc, sp->to - sp->from);
        c->durable = sp->to;
        marks[n++] = (rv_store_mark){.object_id = o->store_id, .start = c->start,
                                     .durable = c->durable, .crc32c = c->crc};
    }
    /* An object that cannot resume keeps no marks: nothing to trust. The
     * final sync's would be moot: the row becomes complete instead. */
    int r = RV_OK;
    if (!job->final && n > 0 && resumable(o) && o->row_exists && (r = tx(e)) == RV_OK)
        r = rv_store_commit(e->store, marks, n, NULL);
    free(marks);
    if (r != RV_OK) {
        rv_object_fail(o, RV_E_STATE, "cannot record durable ranges: %s",
                       rv_store_errmsg(e->store));
        return 0;
    }
    if (job->final) {
        combine_crc(o);
        if (o->row_exists)
            r = tx(e) == RV_OK ? rv_store_complete(e->store, o->store_id, o->crc32c,
                                                   o->sha256_hex)
                               : RV_E_STATE;
        else
            r = insert_row(o, true);
        if (r != RV_OK) {
            rv_object_fail(o, r == RV_E_NOMEM ? r : RV_E_STATE,
                           "cannot record the finished download: %s", rv_store_errmsg(e->store));
            return 0;
        }
        o->deliver_ready = true;
        return 1;
    }
    return 0;
}

uint64_t rv_durable_commit_due(const rv_engine *e) {
    return e->tx_open ? e->tx_opened_ms + COMMIT_INTERVAL_MS : UINT64_MAX;
}

/* A delivery of o's recorded blob for the cachefiles thread (the object
 * is DONE when it comes back), or NULL with o failed. Its descriptor goes
 * along: nothing reads it meanwhile. */
static rv_delivery *delivery_of(rv_object *o) {
    if (!o->engine->cachefiles) { /* closing: nothing is delivered any more */
        rv_object_fail(o, RV_E_CANCELLED, "the engine closed before the delivery");
        return NULL;
    }
    if (rv_object_choose_name(o) != RV_OK)
        return NULL;
    rv_delivery *d = rv_delivery_new();
    if (d) {
        d->blob_path = strdup(o->blob_path);
        d->dest_path = strdup(o->dest_path);
    }
    if (!d || !d->blob_path || !d->dest_path) {
        rv_delivery_free(d);
        rv_object_fail(o, RV_E_NOMEM, "out of memory");
        return NULL;
    }
    d->fd = o->fd;
    o->fd = -1;
    d->size = o->size;
    d->link = rv_object_links(o);
    d->mode = o->mode;
    d->make_readonly = o->blob_writable;
    d->no_replace = o->no_replace;
    /* The tee holds this version's bytes when every one of them was
     * written to it (stage.c): then it is renamed into place instead of a
     * copy. Else (resumed ranges, bytes written while it was not open) the
     * copy, and the tee goes. */
    if (!d->link && o->tee_fd >= 0 && o->tee_bytes == o->size) {
        d->tee_fd = o->tee_fd;
        d->tee_path = o->tee_path;
        o->tee_fd = -1;
        o->tee_path = NULL;
        o->tee_bytes = 0;
    } else {
        rv_outfile_tee_discard(o);
    }
    /* A cache hit's bytes were written in an earlier run, or by another
     * request: they are read back and checked before they are delivered.
     * An object fetched by this request is checked as it lands. */
    d->verify = o->cached;
    d->crc32c = o->crc32c;
    d->tag = o;
    o->delivering = true;
    return d;
}

static void take_deliveries(rv_engine *e) {
    if (!e->cachefiles)
        return; /* closing: rv_durable_close */
    for (rv_delivery *d = rv_cachefiles_delivered(e->cachefiles), *next; d; d = next) {
        next = (rv_delivery *)d->bg.next;
        rv_object *o = d->tag;
        o->delivering = false;
        if (d->corrupt) {
            rv_durable_refetch(o, RV_E_IO,
                               "does not have the bytes it recorded (CRC-32C mismatch)");
        } else if (d->err == 0) {
            rv_outfile_close(o);
            rv_object_set_state(o, RV_STATE_DONE);
        } else {
            rv_object_fail(o, rv_errno_to_error(d->err),
                           "cannot deliver the finished download to '%s': %s", o->dest_path,
                           strerror(d->err));
        }
        rv_delivery_free(d);
    }
}

void rv_durable_progress(rv_engine *e, uint64_t now) {
    unsigned ready = 0; /* objects whose completion is in the open transaction */
    rv_bg_req *deliveries = NULL, **tail = &deliveries;

    take_deliveries(e);
    for (rv_sync_req *r = rv_flusher_take_done(e->flusher); r;) {
        rv_sync_req *next = (rv_sync_req *)r->bg.next;
        rv_sync_job *job = (rv_sync_job *)r;
        ready += sync_done(e, job);
        free(job->span_start);
        free(job);
        r = next;
    }
    if (!e->tx_open || (!ready && now - e->tx_opened_ms < COMMIT_INTERVAL_MS))
        return;
    int r = commit(e);
    for (rv_object *o = rv_live_head(e); o && ready > 0; o = o->next) {
        if (!o->deliver_ready)
            continue;
        o->deliver_ready = false;
        ready--;
        if (r != RV_OK) {
            rv_object_fail(o, RV_E_STATE, "cannot record the finished download: %s",
                           rv_store_errmsg(e->store));
            continue;
        }
        o->row_complete = true;
        rv_delivery *d = delivery_of(o);
        if (d) {
            *tail = &d->bg;
            tail = &d->bg.next;
        }
    }
    if (deliveries)
        rv_cachefiles_deliver(e->cachefiles, (rv_delivery *)deliveries);
    evict(e, false);
}

/* The leader's blob is complete (delivered, or its own delivery failed):
 * the follower delivers from the same blob, as a cache hit without
 * revalidation. */
static void follow_done(rv_object *f, rv_object *l) {
    rv_store_object so = {.id = l->store_id, .size = l->size, .etag = l->etag,
                          .last_modified = l->last_modified, .has_crc32c = l->has_crc32c,
                          .crc32c = l->crc32c, .complete = true};
    f->store_id = l->store_id;
    f->row_exists = l->row_exists;
    /* The leader's answer named the object for both (best effort: without
     * memory the follower keeps its URL's name). */
    if (f->name_from_disposition && !f->disposition_name && l->disposition_name)
        f->disposition_name = strdup(l->disposition_name);
    if (asprintf(&f->blob_path, "%s", l->blob_path) < 0) {
        f->blob_path = NULL;
        rv_object_fail(f, RV_E_NOMEM, "out of memory");
        return;
    }
    bool revalidate = f->engine->cfg.cache_revalidate;
    f->engine->cfg.cache_revalidate = false; /* the leader just fetched it */
    bool ok = cache_hit(f, &so);
    f->engine->cfg.cache_revalidate = revalidate;
    if (!ok) {
        rv_object_fail(f, RV_E_IO, "cannot read the shared download '%s'", l->blob_path);
        return;
    }
    /* The leader's digest, when it computed one, is of these bytes: of
     * what it fetched (or, a hit itself, hashed from the blob) in this
     * process, never the database's. The follower's delivery checks that
     * the blob still has the CRC-32C recorded with them, so the digest
     * stands for what the follower delivers, without hashing it again. */
    if (f->hash && l->hash && l->sha256_hex[0]) {
        memcpy(f->sha256_hex, l->sha256_hex, sizeof(f->sha256_hex));
        f->digest_known = true;
    }
    f->counted = 0; /* the leader's bytes, counted once */
    rv_object_attention(f);
}

void rv_durable_leader_ended(rv_object *l) {
    leaders_remove(l);
    for (rv_object *f = l->followers ? l->engine->head : NULL; f; f = f->next) {
        if (f->leader != l)
            continue;
        f->leader = NULL;
        /* A leader whose own delivery failed still left a complete blob
         * (row_complete: rv_durable_end keeps it): deliver from it too. */
        if (l->state == RV_STATE_DONE || l->row_complete) {
            follow_done(f, l);
        } else if (l->state == RV_STATE_CANCELLED) {
            /* Its caller gave up, this one did not: start again; the
             * leader's durable ranges are kept, so this resumes them. */
            f->store_id = 0;
            f->planned = false;
            free(f->key);
            f->key = NULL;
            rv_object_set_state(f, RV_STATE_QUEUED);
        } else {
            rv_object_fail(f, l->err, "%s", rv_object_error_detail(l));
        }
    }
}

void rv_durable_refetch(rv_object *o, int err_again, const char *what) {
    rv_engine *e = o->engine;
    const char *shown = o->url_shown;

    if (o->refetched) {
        /* Fetched again once already, and its blob is bad again (a disk
         * that does not keep what it was given): no loop. */
        rv_object_fail(o, err_again, "the cache entry for '%s' %s, again after fetching it again",
                       shown, what);
        return;
    }
    notice(e, "corrupt cache entry: '%s' %s; evicted, fetching it again from the origin", shown,
           what);
    o->refetched = true;
    o->cached = o->row_complete = o->final_sync = o->deliver_ready = o->has_crc32c = false;
    o->digest_known = false;
    o->crc32c = 0;
    o->sha256_hex[0] = '\0';
    if (!o->lead_prevp) {
        /* A follower that had the blob of its leader, now ended. Another
         * request may be fetching the same object again already (a
         * follower of the same leader that found the same bytes): follow
         * it rather than replace the blob under it. */
        rv_object *l = find_leader(o);
        if (l) {
            free(o->blob_path);
            o->blob_path = NULL;
            o->leader = l;
            l->followers++;
            o->store_id = l->store_id;
            o->planned = true;
            rv_object_set_state(o, RV_STATE_DOWNLOADING);
            return;
        }
        leaders_add(o); /* the one fetching it: later requests follow this one */
        /* Its leader counted the blob this one replaces (follow_done set
         * counted 0): uncount it, the new plan counts the new one. */
        if (o->size != RV_UNKNOWN)
            e->cache_bytes -= o->size < e->cache_bytes ? o->size : e->cache_bytes;
    }
    /* The row is reset and committed and the blob replaced by an empty one
     * (rv_durable_restarted) before a byte is fetched, as for an object
     * that changed. */
    rv_object_start_over(o);
}

void rv_durable_restarted(rv_object *o) {
    rv_engine *e = o->engine;
    o->gen++;
    rv_outfile_close(o);
    if (fresh_blob(o, -1) != RV_OK)
        return;
    /* Forget the old version's ranges now, committed before a byte of the
     * new version lands: a crash must never pair old marks with new data. */
    rv_store_object so = {.id = o->store_id, .size = RV_STORE_UNKNOWN};
    if (o->row_exists && (tx(e) != RV_OK || rv_store_resolve(e->store, &so, NULL, 0) != RV_OK ||
                          commit(e) != RV_OK))
        rv_object_fail(o, RV_E_STATE, "cannot reset the download's state: %s",
                       rv_store_errmsg(e->store));
}

void rv_durable_end(rv_object *o) {
    rv_engine *e = o->engine;
    o->gen++;
    rv_outfile_close(o);
    if (!o->store_id)
        return;
    /* Keep what a later run can resume: cancelled, or a failure that may
     * pass (no space, origin down), and a complete object whose delivery
     * failed (a cache entry like any other: the next request for it is a
     * hit). Anything else, or an object whose plan was never recorded,
     * leaves nothing useful. */
    if (o->row_exists &&
        (o->row_complete || o->err == RV_E_CANCELLED || rv_error_retryable(o->err)))
        return;
    if (o->row_exists && tx(e) == RV_OK)
        rv_store_delete(e->store, o->store_id);
    if (o->blob_path)
        unlink(o->blob_path);
    count(o, 0);
}

/* ----------------------------------------------------------------------- */
/* Eviction                                                                 */

/* evict_one's "under the quota now: stop". Negative: rv_store_each hands
 * back whatever stops it, and every rv_error but RV_OK is positive (1 is
 * RV_E_NOMEM, which must not read as "stop"). */
#define EVICT_ENOUGH (-1)

struct eviction {
    rv_engine *e;
    bool at_open;   /* the store just opened: unfinished entries are kept */
    id_list gone;   /* rows deleted in the open transaction: unlink after commit */
    id_list later;  /* unfinished entries not in use, least recently used first */
    id_list later_size;
};

static bool in_use(rv_engine *e, int64_t store_id) {
    for (rv_object *o = rv_live_head(e); o; o = o->next)
        if (o->store_id == store_id && !rv_state_is_terminal(o->state))
            return true;
    return false;
}

/* Delete row id (size bytes, RV_STORE_UNKNOWN if unknown) in the open
 * transaction; its blob goes after the commit. */
static int drop(struct eviction *ev, int64_t id, uint64_t size) {
    rv_engine *e = ev->e;
    /* Listed only once deleted: a blob is never unlinked under a row that
     * stays (a row deleted but not listed leaves an orphan blob instead,
     * which recovery removes). */
    int r = rv_store_delete(e->store, id);
    if (r == RV_OK)
        r = id_list_push(&ev->gone, id);
    if (r == RV_OK && size != RV_STORE_UNKNOWN)
        e->cache_bytes -= size < e->cache_bytes ? size : e->cache_bytes;
    return r;
}

/* Complete entries go first, least recently used first. Unfinished ones
 * (a download interrupted or cancelled, kept to be resumed) are set aside
 * for a second round: they go only when evicting every complete entry not
 * in use did not make room. */
static int evict_one(void *ud, const rv_store_object *so) {
    struct eviction *ev = ud;
    rv_engine *e = ev->e;
    if (e->cache_bytes <= e->cfg.cache_quota)
        return EVICT_ENOUGH;
    if (so->pinned || in_use(e, so->id))
        return RV_OK;
    if (!so->complete) {
        int r = ev->at_open ? RV_OK : id_list_push(&ev->later, so->id);
        if (r == RV_OK && !ev->at_open)
            r = id_list_push(&ev->later_size, (int64_t)so->size);
        return r;
    }
    return drop(ev, so->id, so->size);
}

/* Bring the cache under its quota, least recently used first (complete
 * entries before unfinished ones, evict_one). The rows go in a committed
 * transaction before their blobs are unlinked: no row ever points at a
 * half-removed blob (a crash in between leaves orphan blobs, which
 * recovery removes).
 *
 * When the store opens (at_open), unfinished entries are not evicted at
 * all: nothing uses them yet, and the request that resumes one is likely
 * the next to come (a download interrupted by a crash or kill -9, run
 * again under a quota smaller than the object). The first eviction with
 * requests running takes them if the room is needed. */
static void evict(rv_engine *e, bool at_open) {
    struct eviction ev = {.e = e, .at_open = at_open};
    char path[4096];

    if (!e->cfg.cache_quota || e->cache_bytes <= e->cfg.cache_quota || tx(e) != RV_OK)
        return;
    int r = rv_store_each(e->store, evict_one, &ev);
    for (size_t i = 0; r == RV_OK && i < ev.later.n && e->cache_bytes > e->cfg.cache_quota; i++)
        r = drop(&ev, ev.later.ids[i], (uint64_t)ev.later_size.ids[i]);
    if (r == EVICT_ENOUGH)
        r = RV_OK;
    if (r != RV_OK)
        notice(e, "cache eviction failed: %s%s%s", rv_strerror(r),
               r == RV_E_NOMEM ? "" : ": ", r == RV_E_NOMEM ? "" : rv_store_errmsg(e->store));
    /* The rows deleted before a failure stay deleted: their blobs are
     * unlinked, or left to the next recovery if the commit fails. */
    if (commit(e) == RV_OK)
        for (size_t i = 0; i < ev.gone.n; i++) {
            snprintf(path, sizeof(path), "%s/%lld", e->blob_dir, (long long)ev.gone.ids[i]);
            unlink(path);
        }
    free(ev.gone.ids);
    free(ev.later.ids);
    free(ev.later_size.ids);
}

void rv_durable_set_quota(rv_engine *e, uint64_t quota) {
    e->cfg.cache_quota = quota;
    if (e->store)
        evict(e, false);
}

/* ----------------------------------------------------------------------- */
/* Managing the cache (rv_engine_cache_scan)                                */

struct scan {
    rv_engine *e;
    rv_cache_op op;
    bool (*select)(void *ud, const rv_cache_entry *en);
    void (*report)(void *ud, const rv_cache_entry *en, rv_cache_result res);
    void *ud;
    struct eviction ev; /* the rows removed: their blobs go after the commit */
};

/* Does the blob still hold what the row promises? The checks a cache hit
 * (the whole object's CRC-32C, as cachefiles.c's verify) and a resume
 * (range_intact) make, on the same read-back path. */
static bool entry_intact(rv_engine *e, const rv_store_object *so) {
    char path[4096];
    struct stat st;
    rv_store_range *ranges = NULL;
    size_t n = 0;
    bool ok = false;
    snprintf(path, sizeof(path), "%s/%s", e->blob_dir, so->blob);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    if (so->complete) {
        uint32_t crc;
        ok = so->has_crc32c && so->size != RV_STORE_UNKNOWN && (uint64_t)st.st_size == so->size &&
             rv_readback_crc32c(fd, 0, so->size, e->buf, e->buf_size, &crc) == 0 &&
             crc == so->crc32c;
        goto out;
    }
    if (rv_store_ranges(e->store, so->id, &ranges, &n) != RV_OK)
        goto out;
    ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = ranges[i].durable <= ranges[i].start || range_intact(e, fd, &ranges[i]);
out:
    if (fd >= 0)
        close(fd);
    free(ranges);
    return ok;
}

static uint64_t durable_bytes(rv_engine *e, const rv_store_object *so) {
    rv_store_range *ranges = NULL;
    size_t n = 0;
    uint64_t sum = 0;
    if (so->complete)
        return so->size;
    if (rv_store_ranges(e->store, so->id, &ranges, &n) == RV_OK)
        for (size_t i = 0; i < n; i++)
            sum += ranges[i].durable - ranges[i].start;
    free(ranges);
    return sum;
}

static int scan_one(void *ud, const rv_store_object *so) {
    struct scan *sc = ud;
    rv_engine *e = sc->e;
    const char *nl = strchr(so->key, '\n');
    char *name = strndup(so->key, nl ? (size_t)(nl - so->key) : strlen(so->key));
    if (!name)
        return RV_E_NOMEM;
    /* bytes (a query for an unfinished entry) only for what is selected:
     * an owner that verifies a few entries per call scans every row. */
    rv_cache_entry en = {.id = so->id, .url = so->url ? so->url : "", .name = name,
                         .keyed = nl != NULL, .size_known = so->size != RV_STORE_UNKNOWN,
                         .size = so->size == RV_STORE_UNKNOWN ? 0 : so->size,
                         .bytes = so->complete ? so->size : 0, .complete = so->complete,
                         .in_use = in_use(e, so->id), .pinned = so->pinned,
                         .used_unix = so->used_at};
    int r = RV_OK;
    if (!sc->select || sc->select(sc->ud, &en)) {
        en.bytes = durable_bytes(e, so);
        rv_cache_result res = RV_CACHE_LISTED;
        bool kept = en.in_use || en.pinned;
        if (sc->op == RV_CACHE_REMOVE) {
            res = kept ? RV_CACHE_IN_USE : RV_CACHE_REMOVED;
        } else if (sc->op == RV_CACHE_VERIFY) {
            res = entry_intact(e, so)  ? RV_CACHE_INTACT
                  : kept               ? RV_CACHE_CORRUPT_IN_USE
                                       : RV_CACHE_CORRUPT_REMOVED;
            if (res == RV_CACHE_CORRUPT_REMOVED)
                notice(e, "cache verify: %s does not have the bytes it recorded; removed",
                       en.url);
        }
        if (res == RV_CACHE_REMOVED || res == RV_CACHE_CORRUPT_REMOVED)
            r = drop(&sc->ev, so->id, so->size);
        if (r == RV_OK && sc->report)
            sc->report(sc->ud, &en, res);
    }
    free(name);
    return r;
}

int rv_engine_cache_scan(rv_engine *e, rv_cache_op op,
                         bool (*select)(void *ud, const rv_cache_entry *en),
                         void (*report)(void *ud, const rv_cache_entry *en, rv_cache_result res),
                         void *ud) {
    char path[4096];
    if (!e || !e->store)
        return RV_E_INVALID_ARGUMENT;
    struct scan sc = {.e = e, .op = op, .select = select, .report = report, .ud = ud,
                      .ev = {.e = e}};
    int r = tx(e);
    if (r == RV_OK)
        r = rv_store_each(e->store, scan_one, &sc);
    /* As evict(): rows first (committed), then their blobs; what was
     * removed before a failure stays removed. */
    int r2 = commit(e);
    if (r2 == RV_OK)
        for (size_t i = 0; i < sc.ev.gone.n; i++) {
            snprintf(path, sizeof(path), "%s/%lld", e->blob_dir, (long long)sc.ev.gone.ids[i]);
            unlink(path);
        }
    free(sc.ev.gone.ids);
    return r != RV_OK ? r : r2;
}

const char *rv_cache_result_name(rv_cache_result r) {
    switch (r) {
    case RV_CACHE_LISTED: return "listed";
    case RV_CACHE_REMOVED: return "removed";
    case RV_CACHE_IN_USE: return "in-use";
    case RV_CACHE_INTACT: return "intact";
    case RV_CACHE_CORRUPT_REMOVED: return "corrupt-removed";
    case RV_CACHE_CORRUPT_IN_USE: return "corrupt-in-use";
    }
    return "unknown";
}

bool rv_cache_matches(const rv_cache_entry *en, const char *url) {
    rv_url *u = NULL;
    char *name = NULL;
    bool same = en && url && rv_url_parse(url, &u) == RV_OK && (name = key_name(u)) &&
                strcmp(name, en->name) == 0;
    free(name);
    rv_url_free(u);
    return same;
}
