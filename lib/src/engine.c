/* engine.c — the engine: objects, their lifecycle, range planning, retry
 * decisions, scheduling under connection limits, and the perform loop.
 *
 * One libcurl multi handle drives every transfer of every object on the
 * thread that calls rv_engine_perform(). Per call:
 *   1. wait (curl_multi_poll) for network activity, a due retry, a wake-up,
 *      or not at all when CPU work is pending;
 *   2. curl_multi_perform: callbacks write bytes and record verdicts;
 *   3. finish completed transfers (retry, fail, complete ranges);
 *   4. attend to objects whose callbacks left work (failures, resolution);
 *   5. schedule: start objects and ranges as limits allow, copy file://
 *      slices, advance digests, verify and deliver finished objects;
 *   6. emit progress hooks.
 *
 * Sources: the engine names none. It asks the registry (source.c) for the
 * source of a URL's scheme and calls it only through its table
 * (rv_source.h): resolve, start_range, revalidate, stop, finish, step,
 * close; the source reports back through the sink (sink.h).
 *
 * Object state transitions: all through object_set_state, which lower
 * modules reach as rv_object_set_state through rv_engine.life; the machine
 * is drawn in object.c next to its table (rv_object_transition_legal),
 * with the ranges' machine (rv_chunk_set_state).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "engine_int.h"
#include "httphdr.h"
#include "netdeny.h"
#include "socktab.h"

/* Largest share of one perform call spent digesting or copying, so the loop
 * keeps serving the network. */
#define WORK_BUDGET (8u << 20)
#define SCRATCH_SIZE (256u << 10)
#define MAX_HEADERS 100
#define MAX_HEADER_LEN 8192
/* Descriptors the process's table holds from the engine's start on (as
 * the open-files limit allows): see rv_reserve_descriptors. */
#define RESERVED_DESCRIPTORS 1024

/* rv_engine.life: engine.c's side of the lifecycle (rv_lifecycle). */
static const rv_lifecycle lifecycle;

/* ----------------------------------------------------------------------- */
/* Configuration                                                            */

void rv_config_init(rv_config *cfg) {
    /* Why these values: docs/engine.md, "Defaults". */
    *cfg = (rv_config){
        .max_connections = 64,
        .max_connections_per_host = 16,
        .max_connections_per_object = 16,
        .chunk_size = 16u << 20,
        .min_chunk_size = 1u << 20,
        .max_attempts = 8,
        .backoff_base_ms = 250,
        .backoff_max_ms = 30000,
        .retry_after_cap_ms = 120000,
        .stall_timeout_ms = 30000,
        .connect_timeout_ms = 15000,
        .connect_retry_ms = 3000,
        .max_redirects = 10,
        .http2 = RV_HTTP2_AUTO,
        .max_restarts = 3,
        .on_change = RV_CHANGE_RESTART,
        .progress_interval_ms = 200,
        .compute_sha256 = false, /* a CPU-second or so per GiB: on request only */
        .flush_bytes = 64u << 20,
        .flush_interval_ms = 1000,
        .link_deliveries = false,
        .cache_revalidate = true,
    };
}

int rv_parse_size(const char *s, uint64_t *ret) {
    char *end = NULL;
    unsigned shift = 0;

    if (!s || !*s || *s == '-' || *s == '+')
        return RV_E_INVALID_ARGUMENT;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return RV_E_INVALID_ARGUMENT;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return RV_E_INVALID_ARGUMENT;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return RV_E_INVALID_ARGUMENT;
    *ret = (uint64_t)v << shift;
    return RV_OK;
}

/* ----------------------------------------------------------------------- */
/* Engine                                                                   */

/* The kernel grows the table on demand, but growing it while other
 * threads run waits for an RCU grace period (expand_fdtable in
 * fs/file.c), milliseconds on a virtual machine, on whichever thread
 * opens the descriptor that does not fit. With durable state the engine
 * holds more descriptors than the 64 a process starts with (sockets, blobs
 * being written, synced, made ahead and delivered): many small files grew
 * the table several times, each growth on the engine thread (docs/benchmarks.md, "What each default was chosen from"). A table
 * never shrinks; 1024 entries are 8 KiB. Best effort: nothing fails
 * without it. */
void rv_reserve_descriptors(unsigned n) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && n > rl.rlim_cur)
        n = (unsigned)rl.rlim_cur;
    int fd = n > 0 ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return;
    /* The lowest free descriptor from n - 1 up: the table grows to hold it. */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)n - 1);
    if (high >= 0)
        close(high);
    close(fd);
}

/* The receive buffer libcurl allocates at each transfer's start and frees
 * at its end (256 KiB: RECV_BUFFER_SIZE in http.c) is the engine's largest
 * allocation that comes and goes. With glibc's dynamic thresholds, freed
 * buffers at the top of the heap were trimmed (brk) and the next transfers
 * grew it again: hundreds of brk calls for many small files, each growth
 * paid in page faults and zeroed pages, and each trim, with the engine's
 * helper threads running, in an IPI to flush the other CPUs' TLBs. Held on
 * to instead, a few dozen, and the run faster (docs/benchmarks.md, "What each default was chosen from"). Below the mmap
 * threshold, the buffers come from the heap and are reused; 8 MiB of free
 * heap top (16 transfers' buffers are 4 MiB) is kept before any is
 * returned. The 512 KiB stages of stage.c stay above the threshold, mapped
 * and unmapped with their free list. */
#define MALLOC_MMAP_THRESHOLD (512 << 10)
#define MALLOC_TRIM_THRESHOLD (8 << 20)

void rv_tune_malloc(void) {
    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
}

int rv_engine_open(const rv_config *cfg, rv_engine **ret, char **ret_detail) {
    rv_engine *e = NULL;
    int r = RV_E_INVALID_ARGUMENT;

    if (ret_detail)
        *ret_detail = NULL;
    if (!cfg || !ret || cfg->max_connections == 0 || cfg->max_connections_per_host == 0 ||
        cfg->max_connections_per_object == 0 || cfg->chunk_size == 0 ||
        cfg->min_chunk_size == 0 || cfg->min_chunk_size > cfg->chunk_size ||
        cfg->max_attempts == 0 || (unsigned)cfg->http2 > RV_HTTP2_ALWAYS ||
        (cfg->state_dir && (!*cfg->state_dir || cfg->flush_bytes == 0)))
        goto fail;
    r = RV_E_NOMEM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    e = calloc(1, sizeof(*e));
    if (!e)
        goto fail;
    e->cfg = *cfg;
    e->cfg.hooks = NULL;
    e->cfg.user_agent = NULL;
    e->cfg.ca_file = NULL;
    e->cfg.deny_networks = NULL; /* parsed into e->deny */
    e->cfg.state_dir = e->cfg.cache_dir = NULL; /* copies live in e->state_dir, e->cache_dir */
    if (cfg->hooks)
        e->hooks = *cfg->hooks;
    e->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "retriever/" RV_VERSION);
    if (cfg->ca_file && !(e->ca_file = strdup(cfg->ca_file)))
        goto fail;
    r = rv_netdeny_parse(cfg->deny_networks, &e->deny, ret_detail);
    if (r != RV_OK)
        goto fail;
    r = RV_E_NOMEM;
    e->buf_size = SCRATCH_SIZE;
    e->proc_fd_ok = -1;
    e->buf = malloc(e->buf_size);
    e->life = &lifecycle;
    e->multi = curl_multi_init();
    e->socks = rv_socktab_new();
    if (!e->user_agent || !e->buf || !e->multi || !e->socks)
        goto fail;
    /* Keep idle connections for reuse across ranges and objects. */
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_connections * 2);
    /* h2 streams share a connection (libcurl's default since 7.62, set so it
     * does not depend on the version); each stream is one of the transfers
     * the limits count, so max_connections bounds the streams too. */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)cfg->max_connections);
    rv_rng_seed(&e->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ rv_now_ms());
    rv_reserve_descriptors(RESERVED_DESCRIPTORS); /* before rv_durable_open starts threads */
    if (cfg->state_dir) {
        e->cfg.state_dir = cfg->state_dir; /* read by rv_durable_open only */
        e->cfg.cache_dir = cfg->cache_dir;
        r = rv_durable_open(e, ret_detail);
        e->cfg.state_dir = e->cfg.cache_dir = NULL;
        if (r != RV_OK)
            goto fail;
    }
    *ret = e;
    return RV_OK;
fail:
    rv_engine_free(e);
    return r;
}

int rv_check_networks(const char *list, char **ret_detail) {
    rv_netdeny *n = NULL;
    if (ret_detail)
        *ret_detail = NULL;
    int r = rv_netdeny_parse(list, &n, ret_detail);
    rv_netdeny_free(n);
    return r;
}

int rv_engine_new(const rv_config *cfg, rv_engine **ret) {
    return rv_engine_open(cfg, ret, NULL);
}

static void object_free(rv_object *o);
static void source_close(rv_object *o);

/* The set of live destinations: a chained hash table keyed by path, so a
 * thousand adds into one directory do not compare a thousand paths each. */
static size_t dest_hash(const char *path, size_t n_buckets) {
    return (size_t)(rv_str_hash(path) % n_buckets);
}

static rv_object *dest_find(const rv_engine *e, const char *path) {
    if (!e->n_dest_buckets)
        return NULL;
    for (rv_object *o = e->dest_buckets[dest_hash(path, e->n_dest_buckets)]; o; o = o->dest_next)
        if (strcmp(o->dest_path, path) == 0)
            return o;
    return NULL;
}

static int dest_insert(rv_engine *e, rv_object *o) {
    if (e->n_dests >= e->n_dest_buckets) { /* grow: keep chains short */
        size_t n = e->n_dest_buckets ? 2 * e->n_dest_buckets : 64;
        rv_object **b = calloc(n, sizeof(*b));
        if (!b)
            return RV_E_NOMEM;
        for (size_t i = 0; i < e->n_dest_buckets; i++)
            for (rv_object *x = e->dest_buckets[i], *next; x; x = next) {
                next = x->dest_next;
                size_t h = dest_hash(x->dest_path, n);
                x->dest_next = b[h];
                b[h] = x;
            }
        free(e->dest_buckets);
        e->dest_buckets = b;
        e->n_dest_buckets = n;
    }
    size_t h = dest_hash(o->dest_path, e->n_dest_buckets);
    o->dest_next = e->dest_buckets[h];
    e->dest_buckets[h] = o;
    e->n_dests++;
    return RV_OK;
}

static void dest_remove(rv_engine *e, rv_object *o) {
    if (!e->n_dest_buckets)
        return;
    for (rv_object **p = &e->dest_buckets[dest_hash(o->dest_path, e->n_dest_buckets)]; *p;
         p = &(*p)->dest_next)
        if (*p == o) {
            *p = o->dest_next;
            o->dest_next = NULL;
            e->n_dests--;
            return;
        }
}

/* The path the server's name gives o (in dest_path's directory), malloc'd;
 * NULL to keep dest_path (no usable name, the same path, or no memory:
 * the URL's name is as good a destination). */
static char *disposition_path(const rv_object *o) {
    const char *slash = strrchr(o->dest_path, '/');
    size_t dir_len = slash ? (size_t)(slash - o->dest_path) : 0;
    char *dir = slash ? strndup(o->dest_path, dir_len ? dir_len : 1) : strdup(".");
    char *name = NULL, *path = NULL;
    if (!dir)
        return NULL;
    /* The file system's own limit, else Linux's usual one. */
    long name_max = pathconf(dir, _PC_NAME_MAX);
    name = rv_filename_sanitize(o->disposition_name,
                                name_max > 0 ? (size_t)name_max : (size_t)NAME_MAX);
    if (name && !slash) {
        path = name; /* a name in the current directory stays one */
        name = NULL;
    } else if (name && asprintf(&path, "%s/%s", dir_len ? dir : "", name) < 0) {
        path = NULL;
    }
    if (path && strcmp(path, o->dest_path) == 0) {
        free(path);
        path = NULL;
    }
    free(name);
    free(dir);
    return path;
}

static int object_choose_name(rv_object *o) {
    rv_engine *e = o->engine;
    if (o->name_from_disposition && o->disposition_name) {
        char *path = disposition_path(o);
        /* Another live object's destination stays its own. */
        if (path && !dest_find(e, path)) {
            dest_remove(e, o);
            free(o->dest_path);
            o->dest_path = path;
            path = NULL;
            /* Cannot fail: the table held o a moment ago, so it does not grow. */
            (void)dest_insert(e, o);
        }
        free(path);
    }
    if (!o->name_from_disposition && !o->no_replace)
        return RV_OK;
    struct stat st;
    if (lstat(o->dest_path, &st) != 0 || S_ISDIR(st.st_mode))
        return RV_OK; /* nothing there; a directory fails the delivery itself */
    if (o->no_replace) {
        rv_object_fail(o, RV_E_DEST_EXISTS, "'%s' exists and is not replaced", o->dest_path);
        return RV_E_DEST_EXISTS;
    }
    const rv_hooks *h = &e->hooks;
    if (h->may_replace && !h->may_replace(e->cfg.hooks_ud, o, o->dest_path)) {
        rv_object_fail(o, RV_E_DEST_EXISTS, "'%s' exists and may not be replaced",
                       o->dest_path);
        return RV_E_DEST_EXISTS;
    }
    return RV_OK;
}

rv_engine *rv_engine_free(rv_engine *e) {
    if (!e)
        return NULL;
    for (rv_object *o = e->head; o; o = o->next)
        rv_engine_cancel(e, o);
    rv_outfile_digest_end(e);
    rv_stage_end(e);
    rv_durable_close(e);
    while (e->head) {
        rv_object *o = e->head;
        e->head = o->next;
        object_free(o);
    }
    rv_source_engine_free(e);
    for (size_t i = 0; i < e->n_hosts; i++)
        rv_hostlimit_free(e->hosts[i]);
    free(e->hosts);
    for (size_t i = 0; i < e->n_hostgroups; i++)
        free(e->hostgroups[i]);
    free(e->hostgroups);
    for (size_t i = 0; i < e->n_groups; i++)
        free(e->groups[i]);
    free(e->groups);
    if (e->multi)
        curl_multi_cleanup(e->multi);
    rv_socktab_free(e->socks);
    rv_netdeny_free(e->deny);
    free(e->buf);
    free(e->user_agent);
    free(e->ca_file);
    free(e->ca_base);
    free(e->dest_dir_ok);
    free(e->dest_buckets);
    free(e);
    curl_global_cleanup();
    return NULL;
}

bool rv_engine_supports_scheme(const rv_engine *e, const char *scheme) {
    (void)e;
    return rv_source_lookup(scheme) != NULL;
}

int rv_default_filename(const char *url, char **ret) {
    rv_url *u = NULL;
    int r = rv_url_parse(url, &u);
    if (r == RV_OK)
        r = rv_url_filename(u, ret);
    rv_url_free(u);
    return r;
}

unsigned rv_engine_transfers(const rv_engine *e) {
    return e->active;
}

uint64_t rv_engine_cache_bytes(const rv_engine *e) {
    return e->cache_bytes;
}

void rv_engine_set_cache_quota(rv_engine *e, uint64_t quota) {
    rv_durable_set_quota(e, quota);
}

static int engine_host(rv_engine *e, const char *key, rv_hostlimit **ret) {
    for (size_t i = 0; i < e->n_hosts; i++)
        if (strcmp(rv_hostlimit_key(e->hosts[i]), key) == 0) {
            *ret = e->hosts[i];
            return RV_OK;
        }
    rv_hostlimit **hosts = realloc(e->hosts, (e->n_hosts + 1) * sizeof(*hosts));
    if (!hosts)
        return RV_E_NOMEM;
    e->hosts = hosts;
    int r = rv_hostlimit_new(key, e->cfg.max_connections_per_host, &e->hosts[e->n_hosts]);
    if (r != RV_OK)
        return r;
    *ret = e->hosts[e->n_hosts++];
    return RV_OK;
}

/* The group of tag on host, made on first use (rv_group). Linear: the
 * tables hold (hosts x tags) entries, few, and are searched once per add. */
static int engine_hostgroup(rv_engine *e, uint64_t tag, rv_hostlimit *host, rv_hostgroup **ret) {
    rv_group *g = NULL;
    for (size_t i = 0; i < e->n_hostgroups; i++)
        if (e->hostgroups[i]->host == host && e->hostgroups[i]->group->tag == tag) {
            *ret = e->hostgroups[i];
            return RV_OK;
        }
    for (size_t i = 0; i < e->n_groups && !g; i++)
        if (e->groups[i]->tag == tag)
            g = e->groups[i];
    if (!g) {
        rv_group **groups = realloc(e->groups, (e->n_groups + 1) * sizeof(*groups));
        if (!groups)
            return RV_E_NOMEM;
        e->groups = groups;
        if (!(g = calloc(1, sizeof(*g))))
            return RV_E_NOMEM;
        g->tag = tag;
        e->groups[e->n_groups++] = g;
    }
    rv_hostgroup **hgs = realloc(e->hostgroups, (e->n_hostgroups + 1) * sizeof(*hgs));
    if (!hgs)
        return RV_E_NOMEM;
    e->hostgroups = hgs;
    rv_hostgroup *hg = calloc(1, sizeof(*hg));
    if (!hg)
        return RV_E_NOMEM;
    hg->host = host;
    hg->group = g;
    e->hostgroups[e->n_hostgroups++] = hg;
    *ret = hg;
    return RV_OK;
}

/* ----------------------------------------------------------------------- */
/* Objects: creation and validation                                         */

static void object_free(rv_object *o) {
    if (!o)
        return;
    rv_outfile_discard(o);
    source_close(o);
    free(o->url_in);
    free(o->url_shown);
    free(o->ca_pem);
    free(o->proxy);
    free(o->noproxy);
    rv_url_free(o->url);
    free(o->dest_path);
    free(o->disposition_name);
    curl_slist_free_all(o->user_headers);
    free(o->err_detail);
    free(o->etag);
    free(o->last_modified);
    free(o->weak_etag);
    free(o->weak_last_modified);
    free(o->fetch_url);
    free(o->origin_url);
    free(o->sigv4);
    free(o->s3_endpoint);
    free(o->s3_region);
    free(o->s3_key_id);
    if (o->s3_secret)
        OPENSSL_cleanse(o->s3_secret, strlen(o->s3_secret));
    free(o->s3_secret);
    if (o->s3_token)
        OPENSSL_cleanse(o->s3_token, strlen(o->s3_token));
    free(o->s3_token);
    free(o->chunks);
    if (o->digest_job)
        o->digest_job->obj = NULL; /* the context goes with the request */
    else
        rv_sha256_free(o->hash);
    free(o->key);
    free(o->blob_path);
    free(o);
}

static bool is_hex64(const char *s) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return i == 64;
}

/* A header the caller may send: "Name: value", a token name, no line
 * breaks, and not one the engine owns (Range and validators decide what
 * bytes land where; letting a caller set them would break that). */
bool rv_header_allowed(const char *h) {
    static const char *const reserved[] = {"range", "if-range", "if-match", "if-none-match",
                                           "if-modified-since", "if-unmodified-since",
                                           "accept-encoding", "content-length", "host",
                                           "transfer-encoding", "connection"};
    if (!h)
        return false;
    const char *colon = strchr(h, ':');
    size_t len = strlen(h);

    if (!colon || colon == h || len > MAX_HEADER_LEN || strpbrk(h, "\r\n"))
        return false;
    for (const char *p = h; p < colon; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p))
            return false;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == (size_t)(colon - h) &&
            strncasecmp(h, reserved[i], (size_t)(colon - h)) == 0)
            return false;
    return true;
}

/* Record why rv_engine_add refused a request; returns err. */
static int reject(rv_engine *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int reject(rv_engine *e, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->add_detail, sizeof(e->add_detail), fmt, ap);
    va_end(ap);
    return err;
}

/* The destination must be a non-directory in a directory we can write.
 * *ret_exists says whether something is there already. The last directory
 * found usable is remembered: many downloads into one directory check it
 * once (a directory that turns unwritable meanwhile still fails, clearly,
 * when the temporary file is created). */
static int check_destination(rv_engine *e, const char *path, bool *ret_exists) {
    struct stat st;
    char *copy = NULL;
    int r = RV_OK;

    *ret_exists = false;
    if (!*path)
        return reject(e, RV_E_INVALID_ARGUMENT, "the destination path is empty");
    if (path[strlen(path) - 1] == '/')
        return reject(e, RV_E_DEST_IS_DIR, "destination '%s' is a directory", path);
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return reject(e, RV_E_DEST_IS_DIR, "destination '%s' is a directory", path);
        *ret_exists = true;
    }
    copy = strdup(path);
    if (!copy)
        return reject(e, RV_E_NOMEM, "out of memory");
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    if (e->dest_dir_ok && strcmp(e->dest_dir_ok, dir) == 0)
        goto out;
    if (stat(dir, &st) != 0)
        r = reject(e, RV_E_DEST_UNWRITABLE, "cannot use directory '%s': %s", dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        r = reject(e, RV_E_DEST_UNWRITABLE, "'%s' is not a directory", dir);
    else if (access(dir, W_OK | X_OK) != 0)
        r = reject(e, RV_E_DEST_UNWRITABLE, "cannot write in directory '%s': %s", dir,
                   strerror(errno));
    if (r == RV_OK) {
        free(e->dest_dir_ok);
        e->dest_dir_ok = strdup(dir);
    }
out:
    free(copy);
    return r;
}

/* Whether a live object already writes path (by name, or, when the file
 * exists, by inode: two names for one file). */
static bool same_destination(rv_engine *e, const char *path, bool exists) {
    struct stat a, b;
    if (dest_find(e, path))
        return true;
    if (!exists || stat(path, &a) != 0)
        return false;
    for (const rv_object *o = rv_live_head(e); o; o = o->next)
        if (!rv_state_is_terminal(o->state) && stat(o->dest_path, &b) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return true;
    return false;
}

static int validate_request(rv_engine *e, const rv_request *req) {
    if (!req->url || !req->dest_path)
        return reject(e, RV_E_INVALID_ARGUMENT, "a request needs a URL and a destination");
    if (req->n_headers > MAX_HEADERS || (req->n_headers && !req->headers))
        return reject(e, RV_E_INVALID_ARGUMENT, "at most %d request headers are allowed",
                      MAX_HEADERS);
    if (req->sha256_hex && !is_hex64(req->sha256_hex))
        return reject(e, RV_E_INVALID_ARGUMENT, "sha256 must be 64 hexadecimal digits");
    for (size_t i = 0; i < req->n_headers; i++)
        if (!rv_header_allowed(req->headers[i]))
            return reject(e, RV_E_INVALID_ARGUMENT,
                          "header %zu is not allowed: it must be 'Name: value' on one line, "
                          "at most %d bytes, and not one the engine sets itself (Range, "
                          "If-Range, ...)",
                          i + 1, MAX_HEADER_LEN);
    if (req->has_mode && (req->mode & ~0777u))
        return reject(e, RV_E_INVALID_ARGUMENT,
                      "mode %#o has bits outside 0777 (only permission bits may be set)",
                      req->mode);
    if (req->ca_pem && strlen(req->ca_pem) > RV_CA_PEM_MAX)
        return reject(e, RV_E_INVALID_ARGUMENT, "the CA certificates are larger than %u bytes",
                      RV_CA_PEM_MAX);
    if (req->ca_pem && !strstr(req->ca_pem, "-----BEGIN CERTIFICATE-----"))
        return reject(e, RV_E_INVALID_ARGUMENT,
                      "the CA certificates hold no PEM certificate (-----BEGIN CERTIFICATE-----)");
    if (req->ca_only && !req->ca_pem)
        return reject(e, RV_E_INVALID_ARGUMENT, "ca_only needs ca_pem");
    return RV_OK;
}

int rv_engine_add(rv_engine *e, const rv_request *req, rv_object **ret) {
    rv_object *o = NULL;
    int r;

    if (!e || !req)
        return RV_E_INVALID_ARGUMENT;
    e->add_detail[0] = '\0';
    r = validate_request(e, req);
    if (r != RV_OK)
        return r;
    o = calloc(1, sizeof(*o));
    if (!o)
        return reject(e, RV_E_NOMEM, "out of memory");
    o->fd = o->dfd = o->tee_fd = -1;
    o->engine = e;
    o->size = RV_UNKNOWN;
    o->user_data = req->user_data;
    o->copy = req->copy;
    o->link = req->link && !req->copy;
    o->mode = req->has_mode ? (int)req->mode : RV_MODE_UMASK;
    o->max_conns = req->connections && req->connections < e->cfg.max_connections_per_object
                       ? req->connections
                       : e->cfg.max_connections_per_object;
    /* Made first: every message about the request names it by this. */
    if (rv_url_redact(req->url, &o->url_shown) != RV_OK) {
        r = reject(e, RV_E_NOMEM, "out of memory");
        goto fail;
    }
    o->max_attempts = req->max_attempts ? req->max_attempts : e->cfg.max_attempts;
    o->connect_timeout_ms = req->connect_timeout_ms ? req->connect_timeout_ms
                                                    : e->cfg.connect_timeout_ms;
    o->stall_timeout_ms = req->stall_timeout_ms ? req->stall_timeout_ms
                                                : e->cfg.stall_timeout_ms;
    o->connect_retry_ms = req->connect_retry_ms ? req->connect_retry_ms
                                                : e->cfg.connect_retry_ms;
    if (req->max_bytes_per_sec) {
        /* Per object, not per transfer (http.c rate_share). Fewer
         * connections where a share would be tiny: a connection held open
         * at a few bytes a second only costs the origin a slot. */
        uint64_t most = req->max_bytes_per_sec / RV_RATE_SHARE_MIN;
        if (most < 1)
            most = 1;
        if (o->max_conns > most)
            o->max_conns = (unsigned)most;
        o->max_bytes_per_sec = req->max_bytes_per_sec;
    }
    o->ca_only = req->ca_only;
    o->insecure = req->insecure;
    o->name_from_disposition = req->name_from_disposition;
    o->no_replace = req->no_replace;
    r = rv_url_parse(req->url, &o->url);
    if (r != RV_OK) {
        reject(e, r, "'%.200s' is not a valid URL", o->url_shown);
        goto fail;
    }
    o->source = rv_source_lookup(o->url->scheme);
    if (!o->source) {
        char known[256];
        rv_source_schemes(known, sizeof(known));
        r = reject(e, RV_E_UNSUPPORTED_SCHEME, "'%s://' URLs are not supported (use %s)",
                   o->url->scheme, known);
        goto fail;
    }
    if (o->source->check_url && (r = o->source->check_url(req->url)) != RV_OK) {
        reject(e, r, "'%.200s' is not %s", o->url_shown,
               o->source->url_form ? o->source->url_form : "a URL its source accepts");
        goto fail;
    }
    bool exists = false;
    r = check_destination(e, req->dest_path, &exists);
    if (r != RV_OK)
        goto fail;
    if (same_destination(e, req->dest_path, exists)) {
        r = reject(e, RV_E_DEST_CONFLICT, "another download already writes '%s'",
                   req->dest_path);
        goto fail;
    }
    r = RV_E_NOMEM;
    o->url_in = strdup(req->url);
    o->dest_path = strdup(req->dest_path);
    if (!o->url_in || !o->dest_path || (req->ca_pem && !(o->ca_pem = strdup(req->ca_pem))) ||
        (req->proxy && !(o->proxy = strdup(req->proxy))) ||
        (req->noproxy && !(o->noproxy = strdup(req->noproxy))))
        goto fail;
    if (req->s3) {
        const rv_s3_params *p = req->s3;
        o->s3 = true;
        o->s3_path_style = p->path_style;
        if ((p->endpoint_url && !(o->s3_endpoint = strdup(p->endpoint_url))) ||
            (p->region && !(o->s3_region = strdup(p->region))) ||
            (p->access_key_id && !(o->s3_key_id = strdup(p->access_key_id))) ||
            (p->secret_access_key && !(o->s3_secret = strdup(p->secret_access_key))) ||
            (p->session_token && !(o->s3_token = strdup(p->session_token))))
            goto fail;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *l = curl_slist_append(o->user_headers, req->headers[i]);
        if (!l)
            goto fail;
        o->user_headers = l;
    }
    if (req->sha256_hex) {
        for (int i = 0; i < 64; i++)
            o->expected_sha256[i] = (char)(req->sha256_hex[i] | 0x20); /* lower case */
        o->expected_sha256[64] = '\0';
    }
    o->want_digest = e->cfg.compute_sha256 || req->sha256_hex || req->digest;
    if (o->want_digest && rv_sha256_new(&o->hash) != RV_OK)
        goto fail;
    if (o->source->caps & RV_SOURCE_CAP_HOSTS) {
        r = engine_host(e, o->url->host_key, &o->host);
        if (r != RV_OK)
            goto fail;
        if (req->group && e->cfg.max_connections_per_group &&
            (r = engine_hostgroup(e, req->group, o->host, &o->hg)) != RV_OK)
            goto fail;
    }
    if (dest_insert(e, o) != RV_OK) {
        r = reject(e, RV_E_NOMEM, "out of memory");
        goto fail;
    }
    o->id = ++e->next_id;
    o->state = RV_STATE_QUEUED; /* the machine's start (object.c) */
    e->n_entered[RV_STATE_QUEUED]++;
    o->t_start_ms = rv_now_ms();
    o->prev = e->tail;
    if (e->tail)
        e->tail->next = o;
    else
        e->head = o;
    e->tail = o;
    e->n_live++;
    if (e->store)
        rv_durable_added(o);
    if (ret)
        *ret = o;
    return RV_OK;
fail:
    if (!e->add_detail[0])
        reject(e, r, "%s", rv_strerror(r));
    object_free(o);
    return r;
}

const char *rv_engine_error_detail(const rv_engine *e) {
    return e->add_detail;
}

const char *rv_version(void) {
    return RV_VERSION;
}

/* ----------------------------------------------------------------------- */
/* Object lifecycle                                                         */

/* What the object's source holds for it (its open file) goes. */
static void source_close(rv_object *o) {
    if (o->source && o->source->close)
        o->source->close(o);
}

/* The one way an object's state changes (the machine is drawn in object.c,
 * next to its table, rv_object_transition_legal). A change to the state it
 * is in is none. An illegal change is a bug: an assertion in debug builds;
 * in release builds it is refused and the object fails with RV_E_INTERNAL
 * naming it (nothing changes once terminal). Each change is counted
 * (n_entered) and reported (on_state), except a follower's return to
 * QUEUED: to its caller it goes on where it was, and its next change
 * (RESOLVING) is the one reported. */
static void object_set_state(rv_object *o, rv_state s) {
    rv_engine *e = o->engine;
    rv_state from = o->state;

    if (from == s)
        return;
    if (!rv_object_transition_legal(from, s)) {
        assert(!"illegal object state change");
        rv_object_fail(o, RV_E_INTERNAL, "illegal state change %s -> %s (a bug in the engine)",
                       rv_state_name(from), rv_state_name(s));
        return;
    }
    o->state = s;
    e->n_entered[s]++;
    if (s == RV_STATE_QUEUED)
        return;
    if (rv_state_is_terminal(s)) {
        o->t_end_ms = rv_now_ms();
        e->n_live--;
        dest_remove(e, o);
        if (e->store)
            rv_durable_leader_ended(o);
    }
    if (e->hooks.on_state)
        e->hooks.on_state(e->cfg.hooks_ud, o, s);
}

/* Terminal failure or cancellation: stop, remove the temporary file. */
static void object_end(rv_object *o, rv_state s) {
    rv_object_stop_transfers(o);
    if (o->store_id)
        rv_durable_end(o);
    else
        rv_outfile_discard(o);
    source_close(o);
    object_set_state(o, s);
}

int rv_engine_cancel(rv_engine *e, rv_object *o) {
    if (!e || !o || o->engine != e)
        return RV_E_INVALID_ARGUMENT;
    /* Too late once the finished object is being put in place: it ends
     * DONE (or FAILED) when that returns, as if the cancel had come after. */
    if (rv_state_is_terminal(o->state) || o->delivering)
        return RV_OK;
    if (o->err == RV_OK) {
        o->err = RV_E_CANCELLED;
        free(o->err_detail);
        o->err_detail = strdup("cancelled by the caller");
    }
    object_end(o, o->err == RV_E_CANCELLED ? RV_STATE_CANCELLED : RV_STATE_FAILED);
    return RV_OK;
}

int rv_engine_release(rv_engine *e, rv_object *o) {
    if (!e || !o || o->engine != e || !rv_state_is_terminal(o->state))
        return RV_E_INVALID_ARGUMENT;
    if (e->live_head == o)
        e->live_head = o->next;
    if (o->prev)
        o->prev->next = o->next;
    else
        e->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        e->tail = o->prev;
    object_free(o);
    return RV_OK;
}

/* The placeholder range of an object whose size is not known yet: the probe
 * fills it; planning replaces it. */
static int object_plan_unresolved(rv_object *o) {
    free(o->chunks);
    o->chunks = calloc(1, sizeof(*o->chunks));
    if (!o->chunks) {
        o->n_chunks = 0;
        rv_object_fail(o, RV_E_NOMEM, "out of memory");
        return RV_E_NOMEM;
    }
    o->chunks[0] = (rv_chunk){.start = 0, .end = RV_UNKNOWN, .pos = 0};
    o->n_chunks = 1;
    o->size = RV_UNKNOWN;
    o->bytes_done = 0;
    o->planned = false;
    return RV_OK;
}

/* Discard every byte of o and resolve it again (a new version, or a cache
 * entry found corrupt: rv_durable_refetch). */
static void object_start_over(rv_object *o) {
    rv_object_stop_transfers(o);
    free(o->etag);
    free(o->last_modified);
    free(o->weak_etag);
    free(o->weak_last_modified);
    free(o->fetch_url);
    o->etag = o->last_modified = o->fetch_url = NULL;
    o->weak_etag = o->weak_last_modified = NULL;
    o->ranges = false;
    if (o->store_id)
        rv_durable_restarted(o);
    if (o->err != RV_OK || rv_stage_reset(o) != RV_OK || object_plan_unresolved(o) != RV_OK)
        return;
    if (o->source->resolve) { /* learns the size at once: no probe, no RESOLVING */
        source_close(o);
        o->source->resolve(o);
        return;
    }
    object_set_state(o, RV_STATE_RESOLVING);
}

static const rv_lifecycle lifecycle = {
    .set_state = object_set_state,
    .start_over = object_start_over,
    .choose_name = object_choose_name,
};

/* ----------------------------------------------------------------------- */
/* Scheduling                                                               */

static int object_start(rv_object *o) {
    int r = o->engine->store ? rv_durable_start(o) : rv_outfile_create(o);
    if (r != RV_OK)
        return o->err != RV_OK ? o->err : r;
    /* The first progress report comes an interval after the start (bytes
     * already durable or cached are not part of the rate): an object done
     * sooner reports only its end, which says everything. */
    o->progress_last_ms = rv_now_ms();
    o->progress_last_bytes = o->bytes_done;
    object_set_state(o, RV_STATE_RESOLVING);
    if (o->planned && o->revalidating)
        return RV_OK; /* a cache hit: the origin's answer decides (object_schedule) */
    if (o->planned) { /* resumed from durable state: its plan is known */
        object_set_state(o, RV_STATE_DOWNLOADING);
        rv_object_attention(o); /* perhaps every range is already durable */
        return RV_OK;
    }
    if (o->source->resolve)
        return o->source->resolve(o);
    return object_plan_unresolved(o); /* the first transfer, a probe, resolves it */
}

static bool all_chunks_done(const rv_object *o) {
    for (size_t i = 0; i < o->n_chunks; i++)
        if (o->chunks[i].state != RV_CHUNK_DONE)
            return false;
    return true;
}

/* Once the digester has hashed all of it, check size and sha256, and
 * rename into place. The object stays VERIFYING until then. */
static void object_verify(rv_engine *e, rv_object *o) {
    if (o->writes)
        return; /* the writer's return wakes the loop */
    if (o->hash && !o->digest_known && (o->hashed < o->size || o->digest_job)) {
        rv_outfile_digest_submit(e, o, true);
        return;
    }
    if (o->fd >= 0) {
        struct stat st;
        if (fstat(o->fd, &st) != 0 || (uint64_t)st.st_size != o->size) {
            rv_object_fail(o, RV_E_SIZE_MISMATCH, "expected %llu bytes, the file has %lld",
                           (unsigned long long)o->size, (long long)st.st_size);
            return;
        }
    }
    if (o->hash) {
        if (!o->digest_known && rv_sha256_final_hex(o->hash, o->sha256_hex) != RV_OK) {
            rv_object_fail(o, RV_E_INTERNAL, "sha256 finalisation failed");
            return;
        }
        if (o->expected_sha256[0] && strcmp(o->expected_sha256, o->sha256_hex) != 0 &&
            o->cached) {
            /* A cache hit's bytes may have been damaged since they were
             * fetched: fetched again once, the mismatch then fails. */
            char what[200];
            snprintf(what, sizeof(what), "has sha256 %s, not the expected %s", o->sha256_hex,
                     o->expected_sha256);
            rv_durable_refetch(o, RV_E_CHECKSUM_MISMATCH, what);
            return;
        }
        if (o->expected_sha256[0] && strcmp(o->expected_sha256, o->sha256_hex) != 0) {
            rv_object_fail(o, RV_E_CHECKSUM_MISMATCH, "expected sha256 %s, got %s",
                           o->expected_sha256, o->sha256_hex);
            o->sha256_hex[0] = '\0';
            return;
        }
    }
    source_close(o);
    if (o->store_id) {
        /* Delivered once the final sync and its commit are done
         * (rv_durable_progress). */
        if (!o->final_sync && rv_durable_sync_object(o, true) == RV_OK)
            o->final_sync = true;
        return;
    }
    if (object_choose_name(o) != RV_OK || rv_outfile_deliver(o) != RV_OK)
        return;
    object_set_state(o, RV_STATE_DONE);
    return;
}

/* All bytes are written: settle an unknown size, then verify. */
static void object_all_written(rv_object *o) {
    if (o->size == RV_UNKNOWN) {
        o->size = o->chunks[o->n_chunks - 1].pos;
        o->chunks[o->n_chunks - 1].end = o->size;
    }
    object_set_state(o, RV_STATE_VERIFYING);
}

/* Whether o may want one more connection: an approximation that may say
 * yes for an object with nothing left to start (it only decides which
 * groups are served first, see groups_count). */
static bool may_want_connection(const rv_object *o) {
    return (o->state == RV_STATE_QUEUED || o->state == RV_STATE_RESOLVING ||
            o->state == RV_STATE_DOWNLOADING) &&
           o->err == RV_OK && !o->leader && o->active < o->max_conns;
}

/* Count the groups' connections afresh (rv_group: transfers end in
 * http.c) and return this pass's level: the fewest connections held by a
 * group that may want one more, or UINT_MAX when there is none. One walk
 * of the live objects, as schedule's own; nothing without groups. */
static unsigned groups_count(rv_engine *e) {
    unsigned level = UINT_MAX;
    if (!e->n_hostgroups)
        return level;
    for (size_t i = 0; i < e->n_groups; i++) {
        e->groups[i]->active = 0;
        e->groups[i]->wanting = false;
    }
    for (size_t i = 0; i < e->n_hostgroups; i++)
        e->hostgroups[i]->active = 0;
    for (rv_object *o = rv_live_head(e); o; o = o->next) {
        rv_hostgroup *hg = o->hg;
        if (!hg || rv_state_is_terminal(o->state))
            continue;
        hg->active += o->active;
        hg->group->active += o->active;
        if (may_want_connection(o))
            hg->group->wanting = true;
    }
    for (size_t i = 0; i < e->n_groups; i++)
        if (e->groups[i]->wanting && e->groups[i]->active < level)
            level = e->groups[i]->active;
    return level;
}

/* A group's share of one host: the fraction max_connections_per_group is
 * of max_connections, of the host's current limit, rounded up (so at
 * least 1). Without it the per-host limit, lower than the group's, would
 * let one group hold a whole host that others download from too. */
static unsigned host_share(const rv_engine *e, const rv_hostlimit *host) {
    uint64_t cap = e->cfg.max_connections_per_group, all = e->cfg.max_connections;
    if (cap >= all)
        return UINT_MAX;
    return (unsigned)(((uint64_t)rv_hostlimit_current(host) * cap + all - 1) / all);
}

/* Whether o's group may not have one more connection now: it holds its
 * cap, or its share of o's host (these until its transfers end), or more
 * than level, this pass's lowest (then *deferred: a later pass in the same
 * schedule may give it what the groups served first left). */
static bool group_holds_back(const rv_engine *e, const rv_object *o, unsigned level,
                             bool *deferred) {
    const rv_hostgroup *hg = o->hg;
    if (!hg)
        return false;
    if (hg->group->active >= e->cfg.max_connections_per_group ||
        hg->active >= host_share(e, o->host))
        return true;
    if (hg->group->active > level) {
        *deferred = true;
        return true;
    }
    return false;
}

static void group_started(rv_object *o) {
    if (o->hg) {
        o->hg->active++;
        o->hg->group->active++;
    }
}

/* Start what limits allow for one object. Returns false when the global
 * limit is reached (stop scheduling further objects). level and *deferred:
 * see group_holds_back. */
static bool object_schedule(rv_engine *e, rv_object *o, uint64_t now, uint64_t *next_due,
                            unsigned level, bool *deferred) {
    if (o->state == RV_STATE_QUEUED) {
        if (o->host && (!rv_hostlimit_can_start(o->host) ||
                        group_holds_back(e, o, level, deferred)))
            return true;
        if (object_start(o) != RV_OK)
            return true;
    }
    if (!o->source->start_range || o->err != RV_OK || o->leader)
        return true;
    if (o->revalidating) {
        if (o->active == 0 && e->active < e->cfg.max_connections &&
            rv_hostlimit_can_start(o->host) && !group_holds_back(e, o, level, deferred) &&
            o->source->revalidate && o->source->revalidate(o) == RV_OK)
            group_started(o);
        return e->active < e->cfg.max_connections;
    }
    for (size_t i = 0; i < o->n_chunks; i++) {
        rv_chunk *c = &o->chunks[i];
        if (c->state != RV_CHUNK_TODO)
            continue;
        if (c->due_ms > now) {
            if (c->due_ms < *next_due)
                *next_due = c->due_ms;
            continue;
        }
        if (e->active >= e->cfg.max_connections)
            return false;
        if (o->active >= o->max_conns || !rv_hostlimit_can_start(o->host) ||
            group_holds_back(e, o, level, deferred))
            return true;
        if (rv_stage_range_waits(o, c))
            return true; /* and so do the ranges after it */
        if (o->source->start_range(o, c, !o->planned) != RV_OK)
            return true;
        group_started(o);
        if (!o->planned)
            return true; /* one probe; ranges are planned from its answer */
    }
    return true;
}

/* Finish failures and resolutions that callbacks recorded. */
static void attend(rv_engine *e) {
    if (!e->attention)
        return;
    e->attention = false;
    for (rv_object *o = rv_live_head(e); o; o = o->next) {
        if (!o->needs_attention)
            continue;
        o->needs_attention = false;
        if (rv_state_is_terminal(o->state))
            continue;
        if (o->err != RV_OK) {
            object_end(o, o->err == RV_E_CANCELLED ? RV_STATE_CANCELLED : RV_STATE_FAILED);
            continue;
        }
        if (o->resolved_pending) {
            o->resolved_pending = false;
            if (o->state == RV_STATE_RESOLVING)
                object_set_state(o, RV_STATE_DOWNLOADING);
        }
        if ((o->state == RV_STATE_DOWNLOADING || o->state == RV_STATE_RESOLVING) && !o->leader &&
            o->active == 0 && o->n_chunks > 0 && all_chunks_done(o))
            object_all_written(o);
    }
}

/* Whether CPU work is waiting (the next wait must not block): copies,
 * digests to finish, attention. Judged after scheduling: an object still
 * QUEUED then is held by a connection limit, and a finishing transfer (a
 * network event) is what frees it, so it is not work to spin on. */
static bool cpu_work_pending(rv_engine *e) {
    if (e->attention)
        return true;
    for (const rv_object *o = rv_live_head(e); o; o = o->next) {
        if (o->err != RV_OK || rv_state_is_terminal(o->state) || o->leader)
            continue;
        if (o->state == RV_STATE_VERIFYING && !o->final_sync && !o->digest_job && !o->writes)
            return true; /* a digest or the writer wakes the loop when done */
        if (o->state == RV_STATE_DOWNLOADING && o->source->step)
            return true;
    }
    return false;
}

/* Hand libcurl what it can do now without waiting (send the requests of
 * transfers just added), and finish the transfers that ended meanwhile. */
static int drive(rv_engine *e) {
    int running = 0;
    if (curl_multi_perform(e->multi, &running) != CURLM_OK)
        return RV_E_INTERNAL;
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(e->multi, &left);
        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* The handle's private pointer leads to the object it fills
         * (rv_source_ops.finish); its source takes the message. */
        rv_object **owner = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&owner);
        (*owner)->source->finish(e, msg);
    }
    return RV_OK;
}

/* Schedule transfers and do bounded CPU work. Returns true when CPU work
 * remains (the next wait must not block).
 *
 * Transfers start first, and their requests go out at once (drive), before
 * the CPU work of the objects that finished: the origin answers while the
 * engine verifies and delivers. With many small files this keeps every
 * connection busy; starting them after the deliveries left the
 * connections idle for the length of a round of deliveries. */
static bool schedule(rv_engine *e, uint64_t *next_due) {
    uint64_t now = rv_now_ms(), budget = WORK_BUDGET;
    unsigned before = e->active;
    bool room = true, deferred = false;

    rv_outfile_digest_collect(e);
    rv_stage_collect(e);
    if (e->held_stages > 0) /* hand them over first: transfers run on past what is given */
        for (rv_object *o = rv_live_head(e); o; o = o->next)
            if (o->state == RV_STATE_DOWNLOADING && o->held && o->err == RV_OK)
                rv_outfile_digest_submit(e, o, false);
    rv_stage_resume(e); /* transfers the digest caught up with */
    /* With groups, connections go first to the groups that hold the fewest
     * (level): the waiting objects are served in submission order, so
     * without this the first group would win back every connection its
     * own transfers free while a later group waits. A second pass gives
     * what they left to the others, still in order (and under their caps). */
    unsigned level = groups_count(e);
    for (rv_object *o = rv_live_head(e); o && room; o = o->next)
        if (!rv_state_is_terminal(o->state) && o->state != RV_STATE_VERIFYING)
            room = object_schedule(e, o, now, next_due, level, &deferred);
    for (rv_object *o = deferred ? rv_live_head(e) : NULL; o && room; o = o->next)
        if (!rv_state_is_terminal(o->state) && o->state != RV_STATE_VERIFYING)
            room = object_schedule(e, o, now, next_due, UINT_MAX, &deferred);
    if (e->active > before)
        (void)drive(e); /* a failure shows again at the perform's own drive */
    for (rv_object *o = rv_live_head(e); o; o = o->next) {
        if (rv_state_is_terminal(o->state))
            continue;
        if (o->err != RV_OK || budget == 0 || o->leader)
            continue; /* a follower has no work until its leader ends */
        int64_t n = 0;
        if (o->state == RV_STATE_DOWNLOADING) {
            if (o->source->step)
                n = o->source->step(o, budget);
            rv_outfile_digest_submit(e, o, false);
        } else if (o->state == RV_STATE_VERIFYING && !o->final_sync) {
            object_verify(e, o);
        }
        if (n > 0)
            budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
    }
    if (e->active == 0)
        rv_stage_trim(e); /* no transfer holds one: give the memory back */
    attend(e);
    return cpu_work_pending(e);
}

static void emit_progress(rv_engine *e, bool force_all) {
    uint64_t now = rv_now_ms();

    if (!e->hooks.on_progress)
        return;
    for (rv_object *o = rv_live_head(e); o; o = o->next) {
        if (rv_state_is_terminal(o->state) || o->state == RV_STATE_QUEUED)
            continue;
        if (o->leader) { /* a follower shows its leader's progress */
            o->bytes_done = o->leader->bytes_done;
            o->size = o->leader->size;
        }
        uint64_t dt = now - o->progress_last_ms;
        if (!force_all && dt < e->cfg.progress_interval_ms)
            continue;
        if (dt > 0 && o->progress_last_ms != 0) {
            /* Bytes go back when an object restarts: no negative rate. */
            uint64_t moved = o->bytes_done > o->progress_last_bytes
                                 ? o->bytes_done - o->progress_last_bytes
                                 : 0;
            double inst = (double)moved * 1000.0 / (double)dt;
            /* Exponential moving average with a ~2 s time constant. */
            double alpha = 1.0 - exp(-(double)dt / 2000.0);
            o->rate_bps = o->rate_bps == 0 ? inst : o->rate_bps + alpha * (inst - o->rate_bps);
        }
        if (o->bytes_done == o->progress_last_bytes && o->progress_last_ms != 0 && !force_all) {
            o->progress_last_ms = now;
            continue;
        }
        o->progress_last_ms = now;
        o->progress_last_bytes = o->bytes_done;
        rv_progress p;
        rv_object_progress(o, &p);
        e->hooks.on_progress(e->cfg.hooks_ud, o, &p);
    }
}

int rv_engine_perform(rv_engine *e, int timeout_ms, unsigned *ret_active) {
    uint64_t next_due = UINT64_MAX;

    if (!e)
        return RV_E_INVALID_ARGUMENT;
    unsigned live = e->n_live;
    /* Objects this schedule ends (the deliveries of transfers its own drive
     * finished) are news the caller must see before any wait: blocking
     * here left a finished run asleep for the caller's whole timeout. */
    bool busy = schedule(e, &next_due) || e->n_live != live;
    if (e->store) {
        /* Durable work due by time alone wakes the wait too, whatever the
         * caller's timeout: an interval sync, the open transaction's commit. */
        uint64_t commit = rv_durable_commit_due(e);
        next_due = e->sync_due_ms < next_due ? e->sync_due_ms : next_due;
        next_due = commit < next_due ? commit : next_due;
    }
    /* Nothing live is no reason to return at once: a daemon's loop waits
     * here for its next object (rv_engine_wakeup) without spinning. */
    long wait = timeout_ms < 0 ? 0 : timeout_ms;
    if (busy)
        wait = 0;
    else if (next_due != UINT64_MAX) {
        uint64_t now = rv_now_ms();
        uint64_t until = next_due > now ? next_due - now : 0;
        if ((uint64_t)wait > until)
            wait = (long)until;
    }
    if (e->active > 0 || wait > 0) {
        if (wait > 0 && e->hooks.on_wait)
            e->hooks.on_wait(e->cfg.hooks_ud);
        if (curl_multi_poll(e->multi, NULL, 0, (int)wait, NULL) != CURLM_OK)
            return RV_E_INTERNAL;
    }
    if (drive(e) != RV_OK)
        return RV_E_INTERNAL;
    attend(e);
    if (e->store) {
        uint64_t now = rv_now_ms();
        e->sync_due_ms = rv_durable_sync_due(e, now);
        rv_durable_progress(e, now);
        attend(e);
    }
    schedule(e, &next_due);
    emit_progress(e, false);
    if (ret_active)
        *ret_active = e->n_live;
    return RV_OK;
}

/* ----------------------------------------------------------------------- */
/* Getters                                                                  */

rv_state rv_object_state(const rv_object *o) { return o->state; }
int rv_object_error(const rv_object *o) { return o->err; }
const char *rv_object_url(const rv_object *o) { return o->url_in; }
const char *rv_object_path(const rv_object *o) { return o->dest_path; }
unsigned rv_object_retries(const rv_object *o) { return o->retries; }
bool rv_object_from_cache(const rv_object *o) { return o->state == RV_STATE_DONE && o->cached; }

uint64_t rv_object_durable(const rv_object *o) {
    const rv_object *d = o->leader ? o->leader : o; /* a follower's bytes are its leader's */
    uint64_t n = 0;
    /* What rv_durable_end keeps: ranges of a known size and a validator. */
    if (!d->engine->store || !d->ranges || d->size == RV_UNKNOWN ||
        (!d->etag && !d->last_modified))
        return 0;
    for (size_t i = 0; i < d->n_chunks; i++)
        n += d->chunks[i].durable - d->chunks[i].start;
    return n;
}

uint64_t rv_object_ready(const rv_object *o, unsigned *ret_restarts) {
    const rv_object *d = o->leader ? o->leader : o; /* a follower reads its leader's */
    uint64_t ready = 0;
    if (ret_restarts)
        *ret_restarts = d->restarts;
    if (o->state == RV_STATE_DONE || d->state == RV_STATE_DONE)
        return o->size != RV_UNKNOWN ? o->size : d->size;
    /* A cache hit's bytes are someone's until its delivery has checked
     * them against the recorded CRC-32C (cachefiles.h): a bad one is
     * fetched again (rv_durable_refetch), and a reader must not have had
     * the old bytes. Nothing is ready before that. */
    if (o->cached || d->cached)
        return 0;
    /* landed, not pos: bytes received may still wait in a staging buffer
     * for the writer thread (stage.c); only landed ones are in the file. */
    for (size_t i = 0; i < d->n_chunks; i++) {
        ready = d->chunks[i].landed;
        if (d->chunks[i].landed != d->chunks[i].end)
            break;
    }
    return ready == RV_UNKNOWN ? 0 : ready;
}

int rv_object_open_data(const rv_object *o) {
    const rv_object *d = o->leader ? o->leader : o;
    char proc[64];
    const char *path = d->blob_path;
    if (!path && d->fd >= 0) {
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", d->fd);
        path = proc;
    }
    if (!path)
        return -ENOENT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}
void *rv_object_user_data(const rv_object *o) { return o->user_data; }

const char *rv_object_sha256_hex(const rv_object *o) {
    return o->state == RV_STATE_DONE && o->sha256_hex[0] ? o->sha256_hex : NULL;
}

bool rv_object_crc32c(const rv_object *o, uint32_t *ret) {
    if (o->state != RV_STATE_DONE || !o->has_crc32c)
        return false;
    *ret = o->crc32c;
    return true;
}

void rv_object_progress(const rv_object *o, rv_progress *ret) {
    ret->bytes_done = o->bytes_done;
    ret->total_known = o->size != RV_UNKNOWN;
    ret->bytes_total = ret->total_known ? o->size : 0;
    ret->rate_bps = o->rate_bps;
}

double rv_object_seconds(const rv_object *o) {
    uint64_t end = o->t_end_ms ? o->t_end_ms : rv_now_ms();
    return (double)(end - o->t_start_ms) / 1000.0;
}
