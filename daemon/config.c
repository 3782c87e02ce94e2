/* config.c — retrieverd's settings: the key table, defaults, the config
 * file, flags, reload. See config.h for the rules. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <retriever/retriever.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * The key table
 * ---------------------------------------------------------------------- */

typedef enum kind {
    KIND_PATH,  /* char *; absolute */
    KIND_MODE,  /* mode_t; octal */
    KIND_SIZE,  /* uint64_t; rv_parse_size */
    KIND_UINT,  /* unsigned; decimal */
    KIND_LEVEL, /* rvd_log_level */
    KIND_BOOL,  /* bool; true or false */
    KIND_HTTP2, /* unsigned, an rv_http2_mode; auto, never or always */
    KIND_NETS,  /* char *; a CIDR list (rv_check_networks); NULL: none */
} kind;

/* Kinds whose field is a malloc'd string. */
static bool is_str(kind k) {
    return k == KIND_PATH || k == KIND_NETS;
}

typedef struct key_def {
    const char *name;
    kind kind;
    size_t off;        /* the field in rvd_settings */
    uint64_t min, max; /* KIND_SIZE, KIND_UINT: bounds; KIND_PATH: max length (0: PATH_MAX - 1) */
    bool zero_ok;      /* KIND_SIZE: 0 is allowed besides [min, max] (0 = unlimited) */
    bool reloadable;
    const char *arg;  /* the flag's value in --help */
    const char *def;  /* the default, parsed like a value; NULL: from the environment */
    const char *help; /* --help lines, '\n'-separated, at most 48 columns */
} key_def;

#define F(field) offsetof(rvd_settings, field)
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define K 1024ull
#define M (1024ull * K)
#define G (1024ull * M)

/* Bounds: see docs/daemon.md for the why of each. */
static const key_def keys[RVD_KEY_COUNT] = {
    [RVD_KEY_SOCKET] = {"socket", KIND_PATH, F(socket), 0, SUN_PATH_MAX, false, false, "PATH", NULL,
                        "listen on PATH; default $XDG_RUNTIME_DIR/\n"
                        "retriever/retrieverd.sock (system daemon:\n"
                        "/run/retriever/retrieverd.sock); a missing\n"
                        "parent directory is created (0700). A socket\n"
                        "passed by systemd is used instead"},
    [RVD_KEY_SOCKET_MODE] = {"socket-mode", KIND_MODE, F(socket_mode), 0, 0, false, false, "OCTAL",
                             "0600",
                             "permission bits of the socket file, which\n"
                             "decide who may connect: 0600 this user only\n"
                             "(default), 0660 also the file's group"},
    [RVD_KEY_STATE_DIR] = {"state-dir", KIND_PATH, F(state_dir), 0, 0, false, false, "DIR", NULL,
                           "durable job and download state; default\n"
                           "$XDG_STATE_HOME/retriever, else ~/.local/\n"
                           "state/retriever (system: /var/lib/retriever)"},
    [RVD_KEY_CACHE_DIR] = {"cache-dir", KIND_PATH, F(cache_dir), 0, 0, false, false, "DIR", NULL,
                           "downloads in progress and the cache; default\n"
                           "$XDG_CACHE_HOME/retriever, else ~/.cache/\n"
                           "retriever (system: /var/cache/retriever)"},
    [RVD_KEY_CACHE_QUOTA] = {"cache-quota", KIND_SIZE, F(cache_quota), 0, UINT64_MAX, true, true,
                             "SIZE", "10G",
                             "bytes of cache kept, least recently used\n"
                             "first out; 0: no limit (default 10G)"},
    [RVD_KEY_LINK_DELIVERIES] = {"link-deliveries", KIND_BOOL, F(link_deliveries), 0, 0, false,
                                 true, "BOOL", "false",
                                 "true: deliver by hard link to the cache\n"
                                 "(read-only, shares its inode: never modify\n"
                                 "it in place) unless a request asks for a\n"
                                 "copy; false: a reflink or a copy unless a\n"
                                 "request asks for a link (default false)"},
    [RVD_KEY_CA_FILE] = {"ca-file", KIND_PATH, F(ca_file), 0, 0, false, false, "FILE", NULL,
                         "PEM CA certificates https origins must chain\n"
                         "to (default: the system's)"},
    [RVD_KEY_DENY_NETWORKS] = {"deny-networks", KIND_NETS, F(deny_networks), 0, 0, false, false,
                               "CIDRS", NULL,
                               "never connect to these networks, e.g.\n"
                               "127.0.0.0/8, ::1/128, 10.0.0.0/8 (checked\n"
                               "for every address connected to, also after\n"
                               "DNS and redirects; default: none)"},
    [RVD_KEY_MAX_CONNECTIONS] = {"max-connections", KIND_UINT, F(max_connections), 1, 1024, false,
                                 false, "N", "64", "connections in all, 1..1024 (default 64)"},
    [RVD_KEY_MAX_CONNECTIONS_PER_HOST] = {"max-connections-per-host", KIND_UINT,
                                          F(max_connections_per_host), 1, 1024, false, false, "N",
                                          "16", "connections per host, 1..1024 (default 16)"},
    [RVD_KEY_MAX_CONNECTIONS_PER_OBJECT] = {"max-connections-per-object", KIND_UINT,
                                            F(max_connections_per_object), 1, 64, false, false, "N",
                                            "16", "connections per object, 1..64 (default 16)"},
    [RVD_KEY_PER_UID_ORIGIN_CONNECTIONS] = {"per-uid-origin-connections", KIND_UINT,
                                            F(per_uid_origin_connections), 0, 1024, false,
                                            false, "N", "0",
                                            "of max-connections, those one uid's\n"
                                            "downloads hold at once (and of a host's,\n"
                                            "the same fraction), 0..1024; 0 (default):\n"
                                            "half of max-connections"},
    [RVD_KEY_CHUNK_SIZE] = {"chunk-size", KIND_SIZE, F(chunk_size), 64 * K, 1 * G, false, false,
                            "SIZE", "16M",
                            "largest range one request fetches, 64K..1G\n"
                            "(default 16M)"},
    [RVD_KEY_HTTP2] = {"http2", KIND_HTTP2, F(http2), 0, 0, false, false, "WHEN", "auto",
                       "HTTP/2 for https: auto (default; whole\n"
                       "small objects multiplexed on one\n"
                       "connection, a big object's ranges over\n"
                       "HTTP/1.1), never or always; a stream\n"
                       "counts as a connection in every limit"},
    [RVD_KEY_CONNECT_RETRY_MS] = {"connect-retry-ms", KIND_UINT, F(connect_retry_ms), 0,
                                  86400000, false, false, "MS", "3000",
                                  "how long a refused connection is retried\n"
                                  "(an origin restarting), from the first\n"
                                  "refusal; 0: never, 0..86400000 (default\n"
                                  "3000); a request may ask for its own"},
    [RVD_KEY_MAX_RUNNING_JOBS] = {"max-running-jobs", KIND_UINT, F(max_running_jobs), 1, 10000,
                                  false, true, "N", "64",
                                  "jobs downloading at once; more wait queued,\n"
                                  "1..10000 (default 64)"},
    [RVD_KEY_MAX_QUEUED_JOBS] = {"max-queued-jobs", KIND_UINT, F(max_queued_jobs), 0, 1000000,
                                 false, true, "N", "10000",
                                 "jobs waiting; more are refused\n"
                                 "(RESOURCE_EXHAUSTED), 0..1000000 (default\n"
                                 "10000)"},
    [RVD_KEY_MAX_SUBSCRIBERS] = {"max-subscribers", KIND_UINT, F(max_subscribers), 1, 10000, false,
                                 true, "N", "256",
                                 "streams watching one job, 1..10000\n"
                                 "(default 256)"},
    [RVD_KEY_JOB_HISTORY] = {"job-history", KIND_UINT, F(job_history), 0, 1000000, false, true, "N",
                             "1000",
                             "finished jobs kept for Status and List,\n"
                             "0..1000000 (default 1000)"},
    [RVD_KEY_PER_UID_RUNNING_JOBS] = {"per-uid-running-jobs", KIND_UINT, F(per_uid_running_jobs),
                                      0, 10000, false, true, "N", "0",
                                      "jobs of one uid downloading at once; its\n"
                                      "others wait while other uids' start,\n"
                                      "0..10000; 0 (default): half of\n"
                                      "max-running-jobs"},
    [RVD_KEY_PER_UID_QUEUED_JOBS] = {"per-uid-queued-jobs", KIND_UINT, F(per_uid_queued_jobs), 0,
                                     1000000, false, true, "N", "0",
                                     "jobs of one uid waiting; more are refused,\n"
                                     "0..1000000; 0 (default): half of\n"
                                     "max-queued-jobs"},
    [RVD_KEY_PER_UID_JOB_HISTORY] = {"per-uid-job-history", KIND_UINT, F(per_uid_job_history), 0,
                                     1000000, false, true, "N", "0",
                                     "finished jobs of one uid kept, 0..1000000;\n"
                                     "0 (default): half of job-history"},
    [RVD_KEY_PER_UID_REQUEST_BYTES] = {"per-uid-request-bytes", KIND_SIZE,
                                       F(per_uid_request_bytes), 64 * K, 1024 * G, true, true,
                                       "SIZE", "256M",
                                       "bytes of requests one uid's jobs hold\n"
                                       "(memory and job store); 0: no limit\n"
                                       "(default 256M)"},
    [RVD_KEY_MAX_CLIENT_CONNECTIONS] = {"max-client-connections", KIND_UINT,
                                        F(max_client_connections), 0, 1000000, false, false, "N",
                                        "0",
                                        "callers' connections open at once, in all,\n"
                                        "0..1000000; 0 (default): a quarter of the\n"
                                        "open-file limit"},
    [RVD_KEY_PER_UID_CONNECTIONS] = {"per-uid-connections", KIND_UINT, F(per_uid_connections), 0,
                                     1000000, false, false, "N", "0",
                                     "connections of one uid open at once,\n"
                                     "0..1000000; 0 (default): half of\n"
                                     "max-client-connections"},
    [RVD_KEY_PER_UID_CALLS] = {"per-uid-calls", KIND_UINT, F(per_uid_calls), 1, 100000, false,
                               false, "N", "256",
                               "calls and streams of one uid open at once,\n"
                               "1..100000 (default 256)"},
    [RVD_KEY_IDLE_EXIT] = {"idle-exit", KIND_UINT, F(idle_exit), 0, 604800, false, true, "SECS",
                           "0",
                           "exit after SECS seconds with no job running\n"
                           "or queued and no call open, 0..604800;\n"
                           "0 (default): never (retrieverctl starts\n"
                           "per-user daemons with 300)"},
    [RVD_KEY_LOG_LEVEL] = {"log-level", KIND_LEVEL, F(log_level), 0, 0, false, true, "LEVEL",
                           "info", "error, warning, info (default) or debug"},
};

#undef F
#undef K
#undef M
#undef G

/* Indexed by rv_http2_mode. */
static const char *const http2_names[] = {
    [RV_HTTP2_AUTO] = "auto",
    [RV_HTTP2_NEVER] = "never",
    [RV_HTTP2_ALWAYS] = "always",
};
#define N_HTTP2 (sizeof(http2_names) / sizeof(http2_names[0]))

static const char *const level_names[] = {
    [RVD_LOG_ERROR] = "error",
    [RVD_LOG_WARNING] = "warning",
    [RVD_LOG_INFO] = "info",
    [RVD_LOG_DEBUG] = "debug",
};

/* Flags that are not keys: named in the error for such a line in a file. */
static const char *const flag_only[] = {"config", "foreground", "help", "version"};

/* ------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------- */

static void set_error(char **ret_error, char *msg) {
    if (ret_error)
        *ret_error = msg;
    else
        free(msg);
}

/* r with the sentence msg (taken), or -ENOMEM when msg could not be made. */
static int fail(char **ret_error, int r, char *msg) {
    if (!msg)
        return -ENOMEM;
    set_error(ret_error, msg);
    return r;
}

static bool streq_null(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static char **path_field(rvd_settings *s, const key_def *k) {
    return (char **)(void *)((char *)s + k->off);
}

static const char *path_value(const rvd_settings *s, const key_def *k) {
    return *(char *const *)(const void *)((const char *)s + k->off);
}

static uint64_t num_value(const rvd_settings *s, const key_def *k) {
    const void *p = (const char *)s + k->off;
    switch (k->kind) {
    case KIND_MODE: return *(const mode_t *)p;
    case KIND_SIZE: return *(const uint64_t *)p;
    case KIND_UINT: return *(const unsigned *)p;
    case KIND_LEVEL: return (uint64_t)(*(const rvd_log_level *)p);
    case KIND_BOOL: return *(const bool *)p;
    case KIND_HTTP2: return *(const unsigned *)p;
    case KIND_PATH: break;
    case KIND_NETS: break;
    }
    return 0;
}

static void set_num(rvd_settings *s, const key_def *k, uint64_t v) {
    void *p = (char *)s + k->off;
    switch (k->kind) {
    case KIND_MODE: *(mode_t *)p = (mode_t)v; break;
    case KIND_SIZE: *(uint64_t *)p = v; break;
    case KIND_UINT: *(unsigned *)p = (unsigned)v; break;
    case KIND_LEVEL: *(rvd_log_level *)p = (rvd_log_level)v; break;
    case KIND_BOOL: *(bool *)p = v != 0; break;
    case KIND_HTTP2: *(unsigned *)p = (unsigned)v; break;
    case KIND_PATH: break;
    case KIND_NETS: break;
    }
}

/* "16M", "10G", "65536": the largest unit that divides v exactly. */
static void size_text(uint64_t v, char *buf, size_t n) {
    static const char units[] = "KMGT";
    int u = -1;
    while (v != 0 && u < 3 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, n, "%llu", (unsigned long long)v);
    else
        snprintf(buf, n, "%llu%c", (unsigned long long)v, units[u]);
}

/* "a/b//" -> "a/b"; "/" stays. In place. */
static void strip_slashes(char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
}

/* The first entry of a colon-separated list of absolute paths (systemd's
 * STATE_DIRECTORY etc.), malloc'd; NULL when absent or not absolute. */
static int first_dir(const char *list, char **ret) {
    *ret = NULL;
    if (!list || list[0] != '/')
        return 0;
    size_t n = strcspn(list, ":");
    char *p = strndup(list, n);
    if (!p)
        return -ENOMEM;
    strip_slashes(p);
    *ret = p;
    return 0;
}

/* dir + "/" + a + b, with dir's trailing slashes dropped; NULL unless dir
 * is absolute. -ENOMEM only. */
static int join(const char *dir, const char *a, const char *b, char **ret) {
    *ret = NULL;
    if (!dir || dir[0] != '/')
        return 0;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    char *p = rvd_strdupf("%.*s%s%s%s", (int)n, dir, n == 1 ? "" : "/", a, b);
    if (!p)
        return -ENOMEM;
    *ret = p;
    return 0;
}

/* Levenshtein distance, for "did you mean". Both strings are short (keys,
 * and a user's word cut to 64 bytes). */
static size_t distance(const char *a, const char *b) {
    size_t la = strnlen(a, 64), lb = strnlen(b, 64);
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *rvd_settings_suggest(const char *word, bool flags) {
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t n = RVD_KEY_COUNT + (flags ? sizeof(flag_only) / sizeof(flag_only[0]) : 0);
    for (size_t i = 0; i < n; i++) {
        const char *cand = i < RVD_KEY_COUNT ? keys[i].name : flag_only[i - RVD_KEY_COUNT];
        size_t d = distance(word, cand);
        if (d < best_d) {
            best_d = d;
            best = cand;
        }
    }
    /* A typo: two edits, or a quarter of a long name. */
    size_t allowed = strlen(best) / 4 > 2 ? strlen(best) / 4 : 2;
    return best_d <= allowed ? best : NULL;
}

/* ------------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

/* A parsed value: str (malloc'd) for paths, num for the rest. */
typedef struct value {
    char *str;
    uint64_t num;
} value;

static int parse_uint(const char *s, uint64_t *ret) {
    uint64_t v = 0;
    if (!*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

/* "0600", "600", "0660": octal, at most 4 digits, at most 0777, and the
 * owner may read and write (else the daemon's own clients are shut out). */
static int parse_mode(const char *s, uint64_t *ret) {
    size_t n = strlen(s);
    if (n == 0 || n > 4)
        return -EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -EINVAL;
        v = v * 8 + (unsigned)(s[i] - '0');
    }
    if (v > 0777 || (v & 0600) != 0600)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* Parse text as a value of k. what names the setting in the message:
 * "--chunk-size" for a flag, "chunk-size" for a line of the file. */
static bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int parse_value(const key_def *k, const char *text, const char *what, value *ret,
                       char **ret_error) {
    char lo[32], hi[32];
    uint64_t v = 0;

    switch (k->kind) {
    case KIND_NETS: {
        char *detail = NULL;
        int e = rv_check_networks(text, &detail);
        if (e == RV_E_NOMEM) {
            free(detail);
            return -ENOMEM;
        }
        if (e != RV_OK) {
            int f = fail(ret_error, -EINVAL,
                         rvd_strdupf("invalid value for %s: %s", what,
                                     detail ? detail : "not a list of networks"));
            free(detail);
            return f;
        }
        if (!(ret->str = strdup(text)))
            return -ENOMEM;
        return 0;
    }
    case KIND_PATH: {
        size_t max = k->max ? k->max : PATH_MAX - 1;
        size_t n = strlen(text);
        if (n == 0)
            return fail(ret_error, -EINVAL, rvd_strdupf("%s needs a non-empty path", what));
        if (text[0] != '/')
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid value '%s' for %s: expected an absolute path "
                                    "(starting with '/')",
                                    text, what));
        if (n > max)
            return fail(
                ret_error, -EINVAL,
                rvd_strdupf("%s '%s' is too long (%zu bytes; at most %zu)", what, text, n, max));
        for (const char *c = text; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return fail(ret_error, -EINVAL,
                            rvd_strdupf("%s has a control character: not a path this daemon "
                                        "will use",
                                        what));
        char *p = strdup(text);
        if (!p)
            return -ENOMEM;
        strip_slashes(p);
        /* "/a  /" would become "/a  ", whose blanks the file syntax trims:
         * a value that cannot be written back as it reads. */
        if (is_blank(p[strlen(p) - 1])) {
            free(p);
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("%s '%s' ends in a blank before its last '/': rename the "
                                    "directory",
                                    what, text));
        }
        ret->str = p;
        return 0;
    }
    case KIND_MODE:
        if (parse_mode(text, &v) < 0)
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid socket mode '%s' for %s: expected octal permission "
                                    "bits from 0600 to 0777 that include 0600 (owner read and "
                                    "write), e.g. 0660",
                                    text, what));
        break;
    case KIND_SIZE:
        size_text(k->min, lo, sizeof(lo));
        size_text(k->max, hi, sizeof(hi));
        if (rv_parse_size(text, &v) != RV_OK ||
            ((v < k->min || v > k->max) && !(k->zero_ok && v == 0))) {
            if (k->max == UINT64_MAX)
                return fail(ret_error, -EINVAL,
                            rvd_strdupf("invalid value '%s' for %s: expected a size in bytes, or "
                                        "with a K, M, G or T suffix (powers of 1024), e.g. 10G%s",
                                        text, what, k->zero_ok ? "; 0 for no limit" : ""));
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid value '%s' for %s: expected a size from %s to %s, in "
                                    "bytes or with a K, M, G or T suffix (powers of 1024), e.g. "
                                    "%s%s",
                                    text, what, lo, hi, k->def,
                                    k->zero_ok ? "; 0 for no limit" : ""));
        }
        break;
    case KIND_UINT:
        if (parse_uint(text, &v) < 0 || v < k->min || v > k->max)
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid value '%s' for %s: expected a whole number from "
                                    "%llu to %llu",
                                    text, what, (unsigned long long)k->min,
                                    (unsigned long long)k->max));
        break;
    case KIND_LEVEL: {
        size_t i;
        for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
            if (strcmp(text, level_names[i]) == 0)
                break;
        if (i == sizeof(level_names) / sizeof(level_names[0]))
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid value '%s' for %s: expected error, warning, info or "
                                    "debug",
                                    text, what));
        v = i;
        break;
    }
    case KIND_HTTP2: {
        size_t i;
        for (i = 0; i < N_HTTP2; i++)
            if (strcmp(text, http2_names[i]) == 0)
                break;
        if (i == N_HTTP2)
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid value '%s' for %s: expected auto, never or always",
                                    text, what));
        v = i;
        break;
    }
    case KIND_BOOL:
        /* Only the two words: "yes", "1" or "on" could be read either
         * way by the next person, and a typo must not mean false. */
        if (strcmp(text, "true") == 0)
            v = 1;
        else if (strcmp(text, "false") == 0)
            v = 0;
        else
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("invalid value '%s' for %s: expected true or false", text,
                                    what));
        break;
    }
    ret->num = v;
    return 0;
}

/* Store v (taking its string) into s as key k from source. */
static void store(rvd_settings *s, rvd_key k, value *v, rvd_setting_source source) {
    const key_def *d = &keys[k];
    if (is_str(d->kind)) {
        char **f = path_field(s, d);
        free(*f);
        *f = v->str;
        v->str = NULL;
    } else {
        set_num(s, d, v->num);
    }
    s->source[k] = source;
}

/* Set a path key from the environment (taking p, which may be NULL: no
 * default). */
static void store_path(rvd_settings *s, rvd_key k, char *p, rvd_setting_source source) {
    value v = {.str = p};
    if (p)
        store(s, k, &v, source);
}

/* ------------------------------------------------------------------------
 * Public small things
 * ---------------------------------------------------------------------- */

void rvd_settings_env_get(rvd_settings_env *ret) {
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    uint64_t p = 0, n = 0;
    *ret = (rvd_settings_env){
        .euid = geteuid(),
        .home = getenv("HOME"),
        .xdg_runtime_dir = getenv("XDG_RUNTIME_DIR"),
        .xdg_state_home = getenv("XDG_STATE_HOME"),
        .xdg_cache_home = getenv("XDG_CACHE_HOME"),
        .xdg_config_home = getenv("XDG_CONFIG_HOME"),
        .state_directory = getenv("STATE_DIRECTORY"),
        .cache_directory = getenv("CACHE_DIRECTORY"),
        .runtime_directory = getenv("RUNTIME_DIRECTORY"),
        .configuration_directory = getenv("CONFIGURATION_DIRECTORY"),
        .socket_activated = pid && fds && parse_uint(pid, &p) == 0 && p == (uint64_t)getpid() &&
                            parse_uint(fds, &n) == 0 && n >= 1,
    };
}

int rvd_settings_key_find(const char *name) {
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        if (strcmp(name, keys[k].name) == 0)
            return k;
    return -1;
}

const char *rvd_settings_key_name(rvd_key k) {
    return (unsigned)k < RVD_KEY_COUNT ? keys[k].name : "unknown";
}

bool rvd_settings_key_reloadable(rvd_key k) {
    return (unsigned)k < RVD_KEY_COUNT && keys[k].reloadable;
}

const char *rvd_settings_log_level_name(rvd_log_level l) {
    return (unsigned)l < sizeof(level_names) / sizeof(level_names[0]) ? level_names[l] : "unknown";
}

int rvd_settings_check(rvd_key k, const char *value_text, char **ret_error) {
    if ((unsigned)k >= RVD_KEY_COUNT)
        return -EINVAL;
    static const char *const needs[] = {
        [KIND_PATH] = "a path",   [KIND_MODE] = "an octal mode", [KIND_SIZE] = "a size",
        [KIND_UINT] = "a number", [KIND_LEVEL] = "a log level",
        [KIND_BOOL] = "true or false", [KIND_NETS] = "a list of networks",
        [KIND_HTTP2] = "auto, never or always",
    };
    if (!value_text)
        return fail(ret_error, -EINVAL,
                    rvd_strdupf("option '--%s' needs %s", keys[k].name, needs[keys[k].kind]));
    char what[64];
    snprintf(what, sizeof(what), "--%s", keys[k].name);
    value v = {0};
    int r = parse_value(&keys[k], value_text, what, &v, ret_error);
    free(v.str);
    return r;
}

char *rvd_settings_value_text(const rvd_settings *s, rvd_key k) {
    const key_def *d = &keys[k];
    char buf[32];
    switch (d->kind) {
    case KIND_NETS:
    case KIND_PATH: {
        const char *p = path_value(s, d);
        return strdup(p ? p : "");
    }
    case KIND_MODE: snprintf(buf, sizeof(buf), "%04o", (unsigned)num_value(s, d)); break;
    case KIND_SIZE: size_text(num_value(s, d), buf, sizeof(buf)); break;
    case KIND_UINT: snprintf(buf, sizeof(buf), "%llu", (unsigned long long)num_value(s, d)); break;
    case KIND_LEVEL: return strdup(rvd_settings_log_level_name((rvd_log_level)num_value(s, d)));
    case KIND_BOOL: return strdup(num_value(s, d) ? "true" : "false");
    case KIND_HTTP2: return strdup(http2_names[num_value(s, d) % N_HTTP2]);
    }
    return strdup(buf);
}

void rvd_settings_free(rvd_settings *s) {
    if (!s)
        return;
    free(s->config_file);
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        if (is_str(keys[k].kind))
            free(*path_field(s, &keys[k]));
    *s = (rvd_settings){0};
}

void rvd_settings_changes_clear(rvd_settings_changes *c) {
    if (!c)
        return;
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        free(c->text[k]);
    *c = (rvd_settings_changes){0};
}

void rvd_settings_help(FILE *f) {
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        const key_def *d = &keys[k];
        char opt[64];
        int n = snprintf(opt, sizeof(opt), "  --%s %s", d->name, d->arg);
        /* Descriptions start at column 30; longer options get a line of
         * their own. */
        if (n >= 29)
            fprintf(f, "%s\n%30s", opt, "");
        else
            fprintf(f, "%-30s", opt);
        for (const char *p = d->help; *p;) {
            size_t len = strcspn(p, "\n");
            fprintf(f, "%.*s", (int)len, p);
            p += len;
            if (*p == '\n') {
                p++;
                fprintf(f, "\n%30s", "");
            }
        }
        fputs(d->reloadable ? " [SIGHUP]\n" : "\n", f);
    }
}

/* ------------------------------------------------------------------------
 * Defaults
 * ---------------------------------------------------------------------- */

/* Defaults for env into *s (zeroed by the caller), and the config file's
 * name. A path with no default stays NULL: rvd_settings_load reports it
 * unless the file or a flag sets it. -ENOMEM only. */
static int set_defaults(rvd_settings *s, const rvd_settings_env *env, const char *config_arg) {
    char *p = NULL;
    int r;
    bool sys = env->euid == 0 && (!env->xdg_runtime_dir || !env->xdg_runtime_dir[0]);
    s->scope = sys ? RVD_SCOPE_SYSTEM : RVD_SCOPE_USER;

    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        value v = {0};
        if (keys[k].def && parse_value(&keys[k], keys[k].def, keys[k].name, &v, NULL) == 0)
            store(s, (rvd_key)k, &v, RVD_SOURCE_DEFAULT);
    }

    /* socket: in systemd's RuntimeDirectory=, else the scope's. */
    if ((r = first_dir(env->runtime_directory, &p)) < 0)
        goto out;
    if (p) {
        r = join(p, RVD_SOCKET_NAME, "", &s->socket);
        s->source[RVD_KEY_SOCKET] = RVD_SOURCE_SYSTEMD;
        free(p);
        p = NULL;
    } else if (sys) {
        r = (s->socket = strdup("/run/" RVD_SOCKET_SUBDIR "/" RVD_SOCKET_NAME)) ? 0 : -ENOMEM;
    } else {
        r = join(env->xdg_runtime_dir, RVD_SOCKET_SUBDIR "/", RVD_SOCKET_NAME, &s->socket);
    }
    if (r < 0)
        goto out;

    /* state-dir, cache-dir: systemd's, else the scope's. */
    if ((r = first_dir(env->state_directory, &p)) < 0)
        goto out;
    if (p)
        store_path(s, RVD_KEY_STATE_DIR, p, RVD_SOURCE_SYSTEMD);
    else if (sys)
        r = (s->state_dir = strdup("/var/lib/retriever")) ? 0 : -ENOMEM;
    else if ((r = join(env->xdg_state_home, "retriever", "", &s->state_dir)) == 0 && !s->state_dir)
        r = join(env->home, ".local/state/retriever", "", &s->state_dir);
    p = NULL;
    if (r < 0)
        goto out;

    if ((r = first_dir(env->cache_directory, &p)) < 0)
        goto out;
    if (p)
        store_path(s, RVD_KEY_CACHE_DIR, p, RVD_SOURCE_SYSTEMD);
    else if (sys)
        r = (s->cache_dir = strdup("/var/cache/retriever")) ? 0 : -ENOMEM;
    else if ((r = join(env->xdg_cache_home, "retriever", "", &s->cache_dir)) == 0 && !s->cache_dir)
        r = join(env->home, ".cache/retriever", "", &s->cache_dir);
    p = NULL;
    if (r < 0)
        goto out;

    /* The config file. */
    if (config_arg) {
        r = (s->config_file = strdup(config_arg)) ? 0 : -ENOMEM;
        goto out;
    }
    if ((r = first_dir(env->configuration_directory, &p)) < 0)
        goto out;
    if (p)
        r = join(p, RVD_SETTINGS_CONFIG_NAME, "", &s->config_file);
    else if (sys)
        r = (s->config_file = strdup("/etc/retriever/" RVD_SETTINGS_CONFIG_NAME)) ? 0 : -ENOMEM;
    else if ((r = join(env->xdg_config_home, "retriever/", RVD_SETTINGS_CONFIG_NAME,
                       &s->config_file)) == 0 &&
             !s->config_file)
        r = join(env->home, ".config/retriever/", RVD_SETTINGS_CONFIG_NAME, &s->config_file);
out:
    free(p);
    return r;
}

/* ------------------------------------------------------------------------
 * The config file
 * ---------------------------------------------------------------------- */

/* Read path whole. Missing and !must_exist: 0 with *ret_text NULL. */
static int read_file(const char *path, bool must_exist, uid_t euid, char **ret_text,
                     size_t *ret_len, char **ret_error) {
    char *buf = NULL;
    size_t len = 0;
    int r = 0;
    /* O_NONBLOCK: a FIFO put in its place must not hang the daemon (it is
     * refused below, as is anything but a regular file). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        if (!must_exist && (r == -ENOENT || r == -ENOTDIR)) {
            *ret_text = NULL;
            *ret_len = 0;
            return 0;
        }
        return fail(ret_error, r,
                    rvd_strdupf("cannot open the config file '%s': %s", path, strerror(-r)));
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        r = fail(ret_error, r,
                 rvd_strdupf("cannot examine the config file '%s': %s", path, strerror(-r)));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = fail(ret_error, -EINVAL,
                 rvd_strdupf("the config file '%s' is not a regular file", path));
        goto out;
    }
    if (st.st_uid != 0 && st.st_uid != euid) {
        r = fail(ret_error, -EPERM,
                 rvd_strdupf("the config file '%s' belongs to uid %u; it must belong to root or "
                             "to uid %u, which runs retrieverd (whoever can write it controls "
                             "the daemon)",
                             path, (unsigned)st.st_uid, (unsigned)euid));
        goto out;
    }
    if (st.st_mode & S_IWOTH) {
        r = fail(ret_error, -EPERM,
                 rvd_strdupf("the config file '%s' is writable by everyone (mode %04o); "
                             "'chmod o-w' it (whoever can write it controls the daemon)",
                             path, (unsigned)(st.st_mode & 07777)));
        goto out;
    }
    if (st.st_size > (off_t)RVD_SETTINGS_MAX_FILE) {
        r = fail(ret_error, -EFBIG,
                 rvd_strdupf("the config file '%s' is too large (%lld bytes; at most %u)", path,
                             (long long)st.st_size, RVD_SETTINGS_MAX_FILE));
        goto out;
    }
    /* Read until EOF, not st_size: the file may change under us; one byte
     * more than the limit tells a file that grew too large. */
    size_t cap = (size_t)st.st_size + 1;
    if (!(buf = malloc(cap + 1))) {
        r = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > RVD_SETTINGS_MAX_FILE) {
                r = fail(ret_error, -EFBIG,
                         rvd_strdupf("the config file '%s' is too large (more than %u bytes)", path,
                                     RVD_SETTINGS_MAX_FILE));
                goto out;
            }
            size_t ncap = cap * 2 > RVD_SETTINGS_MAX_FILE + 1 ? RVD_SETTINGS_MAX_FILE + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                r = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            r = fail(ret_error, r,
                     rvd_strdupf("cannot read the config file '%s': %s", path, strerror(-r)));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *ret_text = buf;
    *ret_len = len;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return r;
}


/* Apply text (the contents of path) to s. Each key at most once. */
static int apply_file(rvd_settings *s, const char *path, const char *text, size_t len,
                      char **ret_error) {
    unsigned line_of[RVD_KEY_COUNT] = {0};
    unsigned lineno = 0;
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        if (!eol)
            eol = end;
        lineno++;
        if ((size_t)(eol - p) > RVD_SETTINGS_MAX_LINE)
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("%s:%u: the line is too long (more than %u bytes)", path,
                                    lineno, RVD_SETTINGS_MAX_LINE));
        if (memchr(p, '\0', (size_t)(eol - p)))
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("%s:%u: the line contains a NUL byte", path, lineno));
        /* Trim. */
        const char *a = p, *b = eol;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        p = next;
        if (a == b || *a == '#')
            continue;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        const char *ke = eq ? eq : b;
        while (ke > a && is_blank(ke[-1]))
            ke--;
        if (!eq || ke == a)
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("%s:%u: expected 'key = value', got '%.*s'", path, lineno,
                                    (int)(b - a > 80 ? 80 : b - a), a));
        char key[64];
        size_t klen = (size_t)(ke - a);
        snprintf(key, sizeof(key), "%.*s", (int)(klen < sizeof(key) ? klen : sizeof(key) - 1), a);
        const char *v = eq + 1;
        while (v < b && is_blank(*v))
            v++;

        int k = klen < sizeof(key) ? rvd_settings_key_find(key) : -1;
        if (k < 0) {
            for (size_t i = 0; i < sizeof(flag_only) / sizeof(flag_only[0]); i++)
                if (strcmp(key, flag_only[i]) == 0)
                    return fail(ret_error, -EINVAL,
                                rvd_strdupf("%s:%u: '%s' is a command-line option (--%s), not a "
                                            "key of the config file",
                                            path, lineno, key, key));
            const char *hint = rvd_settings_suggest(key, false);
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("%s:%u: unknown key '%s'%s%s%s", path, lineno, key,
                                    hint ? "; did you mean '" : " (retrieverd --help lists keys)",
                                    hint ? hint : "", hint ? "'?" : ""));
        }
        if (line_of[k])
            return fail(ret_error, -EINVAL,
                        rvd_strdupf("%s:%u: '%s' is already set on line %u; set each key once",
                                    path, lineno, key, line_of[k]));
        line_of[k] = lineno;

        char *vtext = strndup(v, (size_t)(b - v));
        if (!vtext)
            return -ENOMEM;
        value val = {0};
        char *msg = NULL;
        int r = parse_value(&keys[k], vtext, keys[k].name, &val, &msg);
        free(vtext);
        if (r < 0) {
            if (!msg)
                return r;
            r = fail(ret_error, r, rvd_strdupf("%s:%u: %s", path, lineno, msg));
            free(msg);
            return r;
        }
        store(s, (rvd_key)k, &val, RVD_SOURCE_FILE);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Load and reload
 * ---------------------------------------------------------------------- */

int rvd_settings_load(const rvd_settings_env *env, const rvd_settings_args *args, rvd_settings *ret,
                      char **ret_error) {
    rvd_settings s = {0};
    char *text = NULL;
    size_t len = 0;
    int r;

    if (args->config && args->config[0] != '/') {
        r = fail(ret_error, -EINVAL,
                 rvd_strdupf("invalid value '%s' for --config: expected an absolute path "
                             "(starting with '/')",
                             args->config));
        goto out;
    }
    if ((r = set_defaults(&s, env, args->config)) < 0)
        goto out;

    /* 3. The file. */
    if (s.config_file) {
        if ((r = read_file(s.config_file, args->config != NULL, env->euid, &text, &len,
                           ret_error)) < 0)
            goto out;
        s.config_file_read = text != NULL;
        if (text && (r = apply_file(&s, s.config_file, text, len, ret_error)) < 0)
            goto out;
    }

    /* 4. The flags. */
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        if (!args->value[k])
            continue;
        char what[64];
        snprintf(what, sizeof(what), "--%s", keys[k].name);
        value v = {0};
        if ((r = parse_value(&keys[k], args->value[k], what, &v, ret_error)) < 0)
            goto out;
        store(&s, (rvd_key)k, &v, RVD_SOURCE_FLAG);
    }

    /* Required values that have no default here. */
    if (env->socket_activated && s.source[RVD_KEY_SOCKET] <= RVD_SOURCE_SYSTEMD) {
        free(s.socket); /* systemd's socket is used; no path to bind */
        s.socket = NULL;
    } else if (!s.socket) {
        r = fail(ret_error, -EINVAL,
                 rvd_strdupf("XDG_RUNTIME_DIR is not set (or not an absolute path), so there is "
                             "no per-user socket path; pass --socket PATH or set 'socket' in "
                             "the config file"));
        goto out;
    }
    if (!s.state_dir || !s.cache_dir) {
        bool st = !s.state_dir;
        r = fail(ret_error, -EINVAL,
                 rvd_strdupf("neither $%s nor $HOME is an absolute path, so there is no default "
                             "%s; pass --%s DIR or set '%s' in the config file",
                             st ? "XDG_STATE_HOME" : "XDG_CACHE_HOME",
                             st ? "state-dir" : "cache-dir", st ? "state-dir" : "cache-dir",
                             st ? "state-dir" : "cache-dir"));
        goto out;
    }
    *ret = s;
    s = (rvd_settings){0};
out:
    free(text);
    rvd_settings_free(&s);
    return r;
}

/* The value of k in s for a sentence: '/path', 64, 16M, info, or "unset". */
static char *display(const rvd_settings *s, rvd_key k) {
    char *t = rvd_settings_value_text(s, k);
    if (!t || !is_str(keys[k].kind))
        return t;
    char *q = t[0] ? rvd_strdupf("'%s'", t) : strdup("unset");
    free(t);
    return q;
}

static bool same_value(const rvd_settings *a, const rvd_settings *b, rvd_key k) {
    const key_def *d = &keys[k];
    if (is_str(d->kind))
        return streq_null(path_value(a, d), path_value(b, d));
    return num_value(a, d) == num_value(b, d);
}

int rvd_settings_reload(const rvd_settings *cur, const rvd_settings_env *env,
                        const rvd_settings_args *args, rvd_settings *ret,
                        rvd_settings_changes *ret_changes, char **ret_error) {
    rvd_settings s = {0};
    rvd_settings_changes ch = {0};
    char *was = NULL, *now = NULL;
    int r = rvd_settings_load(env, args, &s, ret_error);
    if (r < 0)
        return r;

    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        const key_def *d = &keys[k];
        if (same_value(cur, &s, (rvd_key)k))
            continue;
        if (!(was = display(cur, (rvd_key)k)) || !(now = display(&s, (rvd_key)k))) {
            r = -ENOMEM;
            goto out;
        }
        if (d->reloadable) {
            ch.applied |= RVD_KEY_BIT(k);
            ch.text[k] = rvd_strdupf("%s changed from %s to %s", d->name, was, now);
        } else {
            /* Keep cur's value (and where it came from). */
            ch.kept |= RVD_KEY_BIT(k);
            ch.text[k] = rvd_strdupf("%s changed to %s; it takes effect at the next restart "
                                     "(%s stays in use until then)",
                                     d->name, now, was);
            if (is_str(d->kind)) {
                const char *old = path_value(cur, d);
                value v = {.str = old ? strdup(old) : NULL};
                if (old && !v.str) {
                    r = -ENOMEM;
                    goto out;
                }
                char **f = path_field(&s, d);
                free(*f);
                *f = v.str;
            } else {
                set_num(&s, d, num_value(cur, d));
            }
            s.source[k] = cur->source[k];
        }
        if (!ch.text[k]) {
            r = -ENOMEM;
            goto out;
        }
        free(was);
        free(now);
        was = now = NULL;
    }
    *ret = s;
    *ret_changes = ch;
    s = (rvd_settings){0};
    ch = (rvd_settings_changes){0};
out:
    free(was);
    free(now);
    rvd_settings_free(&s);
    rvd_settings_changes_clear(&ch);
    return r;
}
