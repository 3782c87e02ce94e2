/* config.h — retrieverd's settings: defaults, the config file, the same
 * keys as flags, and reloading on SIGHUP.
 *
 * Every key is one row of a table in config.c (name, kind, field, bounds,
 * reloadable, default, help); the config file, the flags, --help and the
 * reload all read that table. docs/daemon.md lists the keys.
 *
 * Where a value comes from, lowest precedence first:
 *
 *   1. built-in defaults, which depend on the scope (below);
 *   2. systemd's StateDirectory=/CacheDirectory=/RuntimeDirectory= (the
 *      STATE_DIRECTORY, CACHE_DIRECTORY, RUNTIME_DIRECTORY variables);
 *   3. the config file: --config PATH (which must exist), else the default
 *      file, which may be missing;
 *   4. the flags, --KEY VALUE or --KEY=VALUE (the last one given wins).
 *
 * Scope: a system daemon when the effective uid is 0 and XDG_RUNTIME_DIR
 * is unset or empty; otherwise a per-user daemon.
 *
 *   socket     per-user: $XDG_RUNTIME_DIR/retriever/retrieverd.sock
 *              system:   /run/retriever/retrieverd.sock
 *   state-dir  per-user: $XDG_STATE_HOME/retriever, else ~/.local/state/retriever
 *              system:   /var/lib/retriever
 *   cache-dir  per-user: $XDG_CACHE_HOME/retriever, else ~/.cache/retriever
 *              system:   /var/cache/retriever
 *   file       per-user: $XDG_CONFIG_HOME/retriever/retrieverd.conf, else
 *                        ~/.config/retriever/retrieverd.conf
 *              system:   /etc/retriever/retrieverd.conf
 *
 * (the per-user state and cache directories are those of `retrieverctl
 * download --local`). An XDG_* variable counts only when it is an absolute
 * path, like in client/local.c.
 *
 * The config file: one `key = value` per line; blank lines; lines whose
 * first non-blank character is '#' are comments (a '#' after a value is
 * part of the value). Blanks around the key and the value are ignored.
 * A key set twice in one file is an error (naming both lines). At most
 * RVD_SETTINGS_MAX_FILE bytes, lines of at most RVD_SETTINGS_MAX_LINE.
 * The file must be a regular file owned by root or by the daemon's own
 * user, and not writable by others: whoever can write it controls the
 * daemon (its CA file, its directories).
 *
 * Pure: nothing here logs or reads the environment, except
 * rvd_settings_env_get (which reads it) and the loaders (which read the
 * config file). Errors and notices are sentences for the caller to log.
 */
#ifndef RVD_CONFIG_H
#define RVD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "log.h"

#define RVD_SETTINGS_MAX_FILE (1u << 20)  /* bytes of config file */
#define RVD_SETTINGS_MAX_LINE 8192u       /* bytes of one line */
#define RVD_SETTINGS_CONFIG_NAME "retrieverd.conf"
/* The socket: RVD_SOCKET_SUBDIR/RVD_SOCKET_NAME below $XDG_RUNTIME_DIR or
 * /run; RVD_SOCKET_NAME in systemd's RuntimeDirectory=. */
#define RVD_SOCKET_SUBDIR "retriever"
#define RVD_SOCKET_NAME "retrieverd.sock"

/* The keys, in the order of --help, the docs and the example file. */
typedef enum rvd_key {
    RVD_KEY_SOCKET,
    RVD_KEY_SOCKET_MODE,
    RVD_KEY_STATE_DIR,
    RVD_KEY_CACHE_DIR,
    RVD_KEY_CACHE_QUOTA,
    RVD_KEY_LINK_DELIVERIES,
    RVD_KEY_CA_FILE,
    RVD_KEY_DENY_NETWORKS,
    RVD_KEY_MAX_CONNECTIONS,
    RVD_KEY_MAX_CONNECTIONS_PER_HOST,
    RVD_KEY_MAX_CONNECTIONS_PER_OBJECT,
    RVD_KEY_PER_UID_ORIGIN_CONNECTIONS,
    RVD_KEY_CHUNK_SIZE,
    RVD_KEY_HTTP2,
    RVD_KEY_CONNECT_RETRY_MS,
    RVD_KEY_MAX_RUNNING_JOBS,
    RVD_KEY_MAX_QUEUED_JOBS,
    RVD_KEY_MAX_SUBSCRIBERS,
    RVD_KEY_JOB_HISTORY,
    RVD_KEY_PER_UID_RUNNING_JOBS,
    RVD_KEY_PER_UID_QUEUED_JOBS,
    RVD_KEY_PER_UID_JOB_HISTORY,
    RVD_KEY_PER_UID_REQUEST_BYTES,
    RVD_KEY_MAX_CLIENT_CONNECTIONS,
    RVD_KEY_PER_UID_CONNECTIONS,
    RVD_KEY_PER_UID_CALLS,
    RVD_KEY_IDLE_EXIT,
    RVD_KEY_LOG_LEVEL,
    RVD_KEY_COUNT
} rvd_key;

#define RVD_KEY_BIT(k) (1u << (k))

typedef enum rvd_scope {
    RVD_SCOPE_USER = 1,
    RVD_SCOPE_SYSTEM,
} rvd_scope;

/* Where a key's value came from. */
typedef enum rvd_setting_source {
    RVD_SOURCE_DEFAULT = 0,
    RVD_SOURCE_SYSTEMD, /* STATE_DIRECTORY, CACHE_DIRECTORY, RUNTIME_DIRECTORY */
    RVD_SOURCE_FILE,
    RVD_SOURCE_FLAG,
} rvd_setting_source;

/* The process's environment, as input. Strings are borrowed (from environ,
 * or from the test); NULL when unset. */
typedef struct rvd_settings_env {
    uid_t euid;
    const char *home;
    const char *xdg_runtime_dir;
    const char *xdg_state_home;
    const char *xdg_cache_home;
    const char *xdg_config_home;
    /* Set by systemd for a unit's StateDirectory= etc.: colon-separated
     * lists, of which the first entry is used. */
    const char *state_directory;
    const char *cache_directory;
    const char *runtime_directory;
    const char *configuration_directory;
    /* systemd passed us the listening socket (LISTEN_PID is us and
     * LISTEN_FDS >= 1): then no default socket path is needed. */
    bool socket_activated;
} rvd_settings_env;

/* What the command line says about settings: --config, and each --KEY's
 * last value. Strings are borrowed from argv. */
typedef struct rvd_settings_args {
    const char *config;               /* --config PATH; NULL: the default file */
    const char *value[RVD_KEY_COUNT]; /* NULL: not given */
} rvd_settings_args;

/* The resolved settings. Strings are malloc'd and owned by the struct
 * (rvd_settings_free). A zeroed struct is "not loaded" and may be freed. */
typedef struct rvd_settings {
    rvd_scope scope;
    char *config_file;       /* the file read, or the default that was absent;
                                NULL when there is no default (no $HOME) */
    bool config_file_read;   /* false: the default file did not exist */

    char *socket;            /* NULL only when systemd passed the socket and
                                none was configured */
    mode_t socket_mode;      /* of a socket we bind */
    char *state_dir;         /* absolute, no trailing '/' */
    char *cache_dir;         /* absolute, no trailing '/' */
    uint64_t cache_quota;    /* bytes; 0: unlimited */
    bool link_deliveries;    /* deliver by hard link to the cache unless a
                                request sets copy (or its uid is not ours) */
    char *ca_file;           /* NULL: the system's CA certificates */
    char *deny_networks;     /* NULL: connect anywhere; else rv_config.deny_networks */
    unsigned max_connections;
    unsigned max_connections_per_host;
    unsigned max_connections_per_object;
    unsigned per_uid_origin_connections; /* of max_connections, one uid's objects
                                            (docs/security.md); 0: half of it */
    uint64_t chunk_size;     /* bytes */
    unsigned http2;          /* an rv_http2_mode (rv_config.http2) */
    unsigned connect_retry_ms; /* rv_config.connect_retry_ms */
    unsigned max_running_jobs;
    unsigned max_queued_jobs;  /* 0: no queue, every job beyond the running ones is refused */
    unsigned max_subscribers;  /* per job */
    unsigned job_history;      /* finished jobs kept for Status/List */
    /* Fairness between callers' uids (docs/security.md). 0 in the first
     * five: derived (half of the global limit; max-client-connections: a
     * quarter of the open-file limit), see rvd_daemon's resolution. */
    unsigned per_uid_running_jobs;
    unsigned per_uid_queued_jobs;
    unsigned per_uid_job_history;
    uint64_t per_uid_request_bytes; /* 0: no limit */
    unsigned max_client_connections;
    unsigned per_uid_connections;
    unsigned per_uid_calls;
    unsigned idle_exit;        /* seconds with no job running or queued and no
                                  subscriber before the daemon exits; 0: never */
    rvd_log_level log_level;

    rvd_setting_source source[RVD_KEY_COUNT];
} rvd_settings;

/* Fill *ret from getenv() and geteuid(). Call before anything (e.g.
 * sd_listen_fds(1)) unsets variables; the strings stay valid as long as
 * nobody calls setenv/putenv on them. */
void rvd_settings_env_get(rvd_settings_env *ret);

/* The key named name ("max-running-jobs", no dashes in front), or -1. */
int rvd_settings_key_find(const char *name);
/* For "did you mean": the key (with flags, also the flag-only names
 * config, foreground, help, version) closest to word, when it looks like a
 * typo of it (a few edits away); else NULL. Static. */
const char *rvd_settings_suggest(const char *word, bool flags);
/* "max-running-jobs"; static. */
const char *rvd_settings_key_name(rvd_key k);
bool rvd_settings_key_reloadable(rvd_key k);

/* Check value as the value of the flag --K. 0: fine. -EINVAL: *ret_error
 * is a malloc'd sentence saying what is allowed ("invalid value '0' for
 * --max-running-jobs: expected a whole number from 1 to 10000"; for a NULL
 * value "option '--socket' needs a path"). -ENOMEM: maybe no sentence. */
int rvd_settings_check(rvd_key k, const char *value, char **ret_error);

/* Resolve the settings: defaults for env, then the config file, then
 * args (precedence above). 0: *ret filled (the caller frees it with
 * rvd_settings_free). -EINVAL (a bad value, file line, or a required value
 * with no default, e.g. no $HOME and no state-dir), -ENOENT (--config file
 * missing), -EACCES/-EPERM (unreadable, or writable by others) or another
 * -errno: *ret untouched, *ret_error a malloc'd sentence naming the file
 * and line or the flag. -ENOMEM: maybe no sentence. */
int rvd_settings_load(const rvd_settings_env *env, const rvd_settings_args *args,
                      rvd_settings *ret, char **ret_error);

/* What a reload did. Owned by the caller: rvd_settings_changes_clear. */
typedef struct rvd_settings_changes {
    uint32_t applied; /* RVD_KEY_BIT(k): reloadable keys that changed; the new value is in effect */
    uint32_t kept;    /* RVD_KEY_BIT(k): keys that changed but are not reloadable; the old
                         value stays until the next restart */
    char *text[RVD_KEY_COUNT]; /* for each key in applied or kept, a malloc'd sentence
                                  ("max-running-jobs changed from 64 to 32", or "state-dir
                                  changed in the file to '/b'; it takes effect at the next
                                  restart, '/a' stays in use until then"); else NULL */
} rvd_settings_changes;

/* SIGHUP: resolve again with the same env and args (the flags keep their
 * precedence), re-reading the same config file, and compare with cur.
 * 0: *ret is the new settings (reloadable keys take their new values, the
 * others keep cur's) and *ret_changes says what changed; the caller frees
 * both, and still owns cur. An error (same codes as rvd_settings_load,
 * e.g. a broken file): *ret and *ret_changes untouched, *ret_error as in
 * rvd_settings_load; cur stays in effect entirely. */
int rvd_settings_reload(const rvd_settings *cur, const rvd_settings_env *env,
                        const rvd_settings_args *args, rvd_settings *ret,
                        rvd_settings_changes *ret_changes, char **ret_error);

/* The value of key k as it would be written in the file ("16M", "0660",
 * "info", a path, "" for an unset path); malloc'd, NULL on ENOMEM. */
char *rvd_settings_value_text(const rvd_settings *s, rvd_key k);

/* "error", "warning", "info", "debug"; static. */
const char *rvd_settings_log_level_name(rvd_log_level l);

/* Free the strings of *s and zero it. NULL is fine. */
void rvd_settings_free(rvd_settings *s);
void rvd_settings_changes_clear(rvd_settings_changes *c);

/* The keys' lines of --help ("  --max-running-jobs N  ..."). */
void rvd_settings_help(FILE *f);

#endif
