/* cli.h — parsing retrieverctl's command line into an rvc_cmd, and the help
 * text generated from the same option table. Pure: no I/O except the
 * explicit help/version printers, no global state (getopt is not used: its
 * state is global).
 *
 * Grammar:
 *   retrieverctl [-h|--help] [-V|--version] [--socket PATH] COMMAND [ARGS...]
 *   retrieverctl help [COMMAND | exit-codes]   (help COMMAND is COMMAND --help)
 *   retrieverctl ping [--socket PATH]
 *   retrieverctl download [OPTIONS] URL...
 * `download --local` runs the engine in this process; without --local the
 * command talks to retrieverd (the daemon mode). --socket may come before
 * the command or among its options, once. Options and URLs may be mixed; "--" ends the options. Long options take
 * their value as "--name=value" or "--name value", short ones as "-c4" or
 * "-c 4"; short flags can be bundled ("-qc4"). Long option names must be
 * spelled out in full.
 */
#ifndef RVC_CLI_H
#define RVC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits on what one command line may ask for. */
#define RVC_MAX_URLS 10000
#define RVC_MAX_HEADERS 64
#define RVC_MAX_HEADER_LEN 8192
#define RVC_MAX_CONNECTIONS 64
#define RVC_MAX_RETRIES 100
#define RVC_MAX_TIMEOUT_S 86400
#define RVC_MIN_RATE 1024ull       /* --limit-rate, bytes a second */
#define RVC_MAX_RATE (1ull << 50)
#define RVC_MAX_PROXY_LEN 4096     /* --proxy, and the proxy variables sent to retrieverd */
#define RVC_MIN_CHUNK_SIZE (64 * 1024) /* smaller ranges cost more in requests than they gain */

typedef enum rvc_verb {
    RVC_VERB_HELP = 1, /* print help for help_topic, exit 0 */
    RVC_VERB_VERSION,  /* print the version, exit 0 */
    RVC_VERB_DOWNLOAD, /* run dl: in-process when dl.local, else through retrieverd */
    RVC_VERB_PING,     /* ask retrieverd for its version */
    /* The job commands (cmd_jobs.c, in the daemon mode's module): */
    RVC_VERB_STATUS,   /* status [JOB]: one job, or the daemon and its running jobs */
    RVC_VERB_LIST,     /* list [--all] [--state S]...: the caller's jobs */
    RVC_VERB_WATCH,    /* watch JOB: follow a job's progress to its end */
    RVC_VERB_CANCEL,   /* cancel JOB...: leave (or stop) the caller's jobs */
    RVC_VERB_STATS,    /* stats: daemon-wide figures */
    RVC_VERB_DVERSION, /* version: this client's, retrieverd's and the API's versions */
    RVC_VERB_CACHE,    /* cache_action on the cache (dl.local: the local one) */
    RVC_VERB_CAT,      /* dl.urls[0]'s bytes to stdout (cat, download -o -) */
} rvc_verb;

/* Longest job id accepted on the command line (retrieverd's are 32 hex
 * digits; anything else is answered "no such job"). */
#define RVC_MAX_JOB_ID 64
#define RVC_MAX_JOB_IDS 1000

/* The job commands' arguments. */
typedef struct rvc_jobs_opts {
    bool json;          /* --json: JSON on stdout instead of text */
    bool all;           /* list --all: ended jobs too */
    unsigned states;    /* list --state: bit (1 << JobState number) per state; 0: none given */
    const char **ids;   /* status/watch/cancel: job ids; array owned, strings borrowed */
    size_t n_ids;
} rvc_jobs_opts;

/* The environment variable that turns autostarting retrieverd off ("1"). */
#define RVC_NO_AUTOSTART_ENV "RETRIEVER_NO_AUTOSTART"

/* The cache kept by default: finished downloads beyond it go, least
 * recently used first (a hard-linked destination keeps its data). */
#define RVC_DEFAULT_CACHE_QUOTA (10ull << 30)

/* One URL's own fields from -i FILE (input.h); all empty for a URL of the
 * command line. Strings borrowed from rvc_download_opts.owned. */
typedef struct rvc_input_item {
    const char *out;      /* out=: its file name, relative to dir (or -d); NULL: from the URL */
    const char *dir;      /* dir=: its directory; NULL: -d's, else the current one */
    char sha256[65];      /* checksum=sha-256=HEX in lower case; "" when absent */
    const char **headers; /* header= lines, after the common ones; array owned */
    size_t n_headers;
} rvc_input_item;

typedef struct rvc_download_opts {
    bool local;                  /* --local */
    bool detach;                 /* --detach (daemon mode only) */
    bool no_autostart;           /* --no-autostart (daemon mode only) */
    unsigned connections;        /* -c; 0: engine (or daemon) default, else 1..RVC_MAX_CONNECTIONS */
    uint64_t limit_rate;         /* --limit-rate, bytes a second per URL; 0: no cap */
    const char *proxy;           /* --proxy; NULL: the environment's (libcurl's rules,
                                    remote.c sends them); borrowed from argv, or (one
                                    with user:password@, after rvc_secrets_resolve) a
                                    copy in owned */
    const char *proxy_argv;      /* that argv string, whose password main.c wipes */
    uint64_t chunk_size;         /* --chunk-size; 0: engine default */
    int http2;                   /* --http2: an rv_http2_mode; -1: engine default */
    const char *output;          /* -o; NULL when absent; borrowed from argv */
    const char *dir;             /* -d; NULL when absent; borrowed from argv */
    bool remote_name;            /* -O: the default naming, spelled out (never with -o) */
    bool force;                  /* --force: replace an existing destination */
    bool no_clobber;             /* --no-clobber: skip a URL whose destination exists
                                    (rvc_skip_existing); neither: refuse it
                                    (RV_E_DEST_EXISTS). Never both */
    char sha256[65];             /* --sha256 in lower case; "" when absent */
    bool json;                   /* --json */
    int digest;                  /* --digest 1, --no-digest 0; -1: only when
                                    --json or --sha256 needs it */
    bool quiet;                  /* -q: errors only on stderr */
    bool no_progress;            /* --no-progress: no progress bar or lines */
    int retries;                 /* --retries; -1: engine default, else 0..RVC_MAX_RETRIES */
    unsigned connect_timeout_ms; /* 0: engine default */
    unsigned stall_timeout_ms;   /* 0: engine default */
    unsigned connect_retry_ms;   /* --retry-refused; 0: engine (or daemon) default */
    const char *ca_file;         /* --cacert or --cacert-only; NULL: the system's CA store */
    bool ca_only;                /* --cacert-only: ca_file replaces the system's store */
    bool insecure;               /* --insecure (--local only): no certificate checks */
    const char *s3_endpoint;     /* --endpoint-url; NULL: the environment's, the config's */
    const char *s3_region;       /* --region; NULL: the environment's, the config's */
    bool s3_path_style;          /* --s3-path-style */
    bool s3_no_sign;             /* --no-sign-request: anonymous s3:// requests */
    const char *state_dir;       /* --state-dir; NULL: $XDG_STATE_HOME/retriever */
    const char *cache_dir;       /* --cache-dir; NULL: $XDG_CACHE_HOME/retriever */
    bool no_state;               /* --no-state: no resume, no cache */
    bool copy;                   /* --copy: never a hard link to the cache */
    bool link;                   /* --link: a hard link to the cache where possible
                                    (never with copy or no_state) */
    uint64_t cache_quota;        /* --cache-quota; 0: no limit */
    unsigned umask;              /* the process's umask, which the daemon applies
                                    to deliveries (main.c reads it; the parser
                                    leaves it 0) */
    const char **headers;        /* --header lines; array owned, strings borrowed from argv
                                    or (after rvc_secrets_resolve) from owned. Before it,
                                    a value starting with '@' is an unread @FILE / @- */
    size_t n_headers;
    bool netrc;                  /* --netrc, or --netrc-file */
    const char *netrc_file;      /* --netrc-file; NULL: ~/.netrc; borrowed from argv */
    const char *user;            /* --user USER:PASSWORD (has a ':'); borrowed from argv,
                                    whose password main.c wipes once it is resolved */
    const char **auth;           /* NULL, or (after rvc_secrets_resolve with netrc or
                                    user) n_urls entries: URL i's "Authorization: Basic"
                                    line from --user or the netrc, or NULL; array owned,
                                    strings in owned */
    char **owned;                /* what rvc_secrets_resolve read (header lines, auth
                                    lines); owned, wiped before they are freed */
    size_t n_owned;
    const char *input_file;      /* -i FILE ("-": stdin); NULL when absent */
    rvc_input_item *inputs;      /* NULL, or (after rvc_input_read) n_urls entries; owned */
    const char **urls; /* array owned, strings borrowed from argv */
    size_t n_urls;
} rvc_download_opts;

typedef struct rvc_cmd {
    rvc_verb verb;
    const char *help_topic; /* RVC_VERB_HELP: NULL for the overview, a command's
                               name, or "exit-codes" */
    const char *socket;     /* --socket, borrowed from argv; NULL when absent (then
                               $RETRIEVER_SOCKET or the default: see remote.h) */
    bool no_autostart;      /* --no-autostart (download, status): never start retrieverd */
    rvc_download_opts dl;   /* RVC_VERB_DOWNLOAD, CAT; CACHE: local, dirs, json and
                               urls (urls[0] is the action, the rest rm's URLs) */
    rvc_jobs_opts jobs;     /* the job commands only */
    const char *cache_action; /* RVC_VERB_CACHE: "ls", "rm", "clear", "verify" */
} rvc_cmd;

/* Parse argv[1..argc-1] (argv[0] is ignored). argv must outlive *ret: the
 * result borrows its strings.
 *
 * RV_OK: *ret is filled; release it with rvc_cmd_done.
 * RV_E_INVALID_ARGUMENT: a usage error; *ret_error is a malloc'd message,
 *   owned by the caller: one line saying what is wrong, then a line
 *   pointing at the relevant --help; no "retrieverctl: " prefix and no final
 *   newline.
 * RV_E_NOMEM.
 * Nothing is written to *ret or *ret_error except as stated. */
int rvc_cli_parse(int argc, char *const *argv, rvc_cmd *ret, char **ret_error);

/* Keep str (malloc'd; NULL: out of memory) in o->owned, freed (wiped)
 * with the command; on failure str is freed. RV_OK or RV_E_NOMEM. */
int rvc_download_own(rvc_download_opts *o, char *str);

/* Free what *c owns; c may be a zeroed struct. */
void rvc_cmd_done(rvc_cmd *c);

/* The help for topic (NULL: the overview, one screen; a command's name: all
 * its options; "exit-codes": the exit-code table, printed by no other
 * topic) to f. false when there is no such topic (nothing is printed then).
 * A usage error naming an unknown command or long option carries "did you
 * mean '...'?" when a known name is close (rvc_cli_parse). */
bool rvc_cli_help(FILE *f, const char *topic);

/* One line: "retrieverctl VERSION". */
void rvc_cli_version(FILE *f);

#endif
