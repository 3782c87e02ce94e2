/* cli.c — retrieverctl's argument parser and help text.
 *
 * One table describes every option of `download`: the parser looks options
 * up in it and the help is printed from it, so the two cannot drift apart.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "exitcode.h"
#include "retriever/retriever.h"

#ifndef RETRIEVER_VERSION
#define RETRIEVER_VERSION "unknown"
#endif

#define PROG "retrieverctl"

/* ------------------------------------------------------------------------
 * The option table
 * ------------------------------------------------------------------------ */

enum opt_id {
    OPT_LOCAL,
    OPT_SOCKET,
    OPT_DETACH,
    OPT_OUTPUT,
    OPT_DIR,
    OPT_REMOTE_NAME,
    OPT_FORCE,
    OPT_NO_CLOBBER,
    OPT_INPUT_FILE,
    OPT_CONNECTIONS,
    OPT_CHUNK_SIZE,
    OPT_HTTP2,
    OPT_HEADER,
    OPT_NETRC,
    OPT_NETRC_FILE,
    OPT_RETRIES,
    OPT_CONNECT_TIMEOUT,
    OPT_STALL_TIMEOUT,
    OPT_RETRY_REFUSED,
    OPT_CACERT,
    OPT_CACERT_ONLY,
    OPT_INSECURE,
    OPT_ENDPOINT_URL,
    OPT_REGION,
    OPT_S3_PATH_STYLE,
    OPT_NO_SIGN_REQUEST,
    OPT_STATE_DIR,
    OPT_CACHE_DIR,
    OPT_NO_STATE,
    OPT_CACHE_QUOTA,
    OPT_COPY,
    OPT_LINK,
    OPT_SHA256,
    OPT_JSON,
    OPT_DIGEST,
    OPT_NO_DIGEST,
    OPT_QUIET,
    OPT_NO_PROGRESS,
    OPT_HELP,
    OPT_NO_AUTOSTART,
    OPT_ALL,
    OPT_STATE,
    OPT_LIMIT_RATE, /* h21net: network options */
    OPT_USER,
    OPT_PROXY,
    OPT_COUNT_,
};

/* Which mode of `download` an option belongs to. The parser refuses an
 * option of the other mode (nothing is silently ignored); the help marks
 * them. */
enum opt_mode {
    MODE_ANY = 0,
    MODE_LOCAL,  /* engine settings: only --local runs an engine here */
    MODE_DAEMON, /* only meaningful when talking to retrieverd */
};

struct opt_def {
    enum opt_id id;
    const char *long_name; /* without "--" */
    char short_name;       /* '\0': none */
    const char *arg;       /* NULL: a flag; else the value's name in the help */
    bool repeatable;       /* may be given more than once */
    const char *section;   /* starts a new help section when non-NULL */
    const char *help;      /* '\n' separates lines */
    enum opt_mode mode;
};

static const struct opt_def download_opts[] = {
    {OPT_LOCAL, "local", 0, NULL, true, "Mode",
     "run the download engine in this process instead\n"
     "of asking retrieverd", MODE_ANY},
    {OPT_SOCKET, "socket", 0, "PATH", false, NULL,
     "the socket of retrieverd (default:\n"
     "$RETRIEVER_SOCKET, else the system's or the\n"
     "per-user one, started when none answers: see\n"
     "'" PROG " help', \"Finding retrieverd\")", MODE_DAEMON},
    {OPT_NO_AUTOSTART, "no-autostart", 0, NULL, true, NULL,
     "when no retrieverd answers, fail instead of\n"
     "starting a per-user one (also\n"
     "RETRIEVER_NO_AUTOSTART=1)", MODE_DAEMON},
    {OPT_DETACH, "detach", 0, NULL, true, NULL,
     "hand the download to retrieverd, print its job id\n"
     "on stdout and exit; the job runs on without this\n"
     "command", MODE_DAEMON},
    {OPT_OUTPUT, "output", 'o', "FILE", false, "Destination",
     "save to FILE (only with exactly one URL); -o -:\n"
     "to standard output as it downloads (see 'cat')", MODE_ANY},
    {OPT_DIR, "dir", 'd', "DIR", false, NULL,
     "save into the existing directory DIR, each file\n"
     "named as the server's Content-Disposition says,\n"
     "else after the last segment of its URL's path\n"
     "(made safe: no '/', no leading dot, no control\n"
     "characters; default: the current directory)", MODE_ANY},
    {OPT_REMOTE_NAME, "remote-name", 'O', NULL, true, NULL,
     "name each file as -d does, in the current\n"
     "directory (the default without -o or -d)", MODE_ANY},
    {OPT_INPUT_FILE, "input-file", 'i', "FILE", false, NULL,
     "also download the URLs listed in FILE ('-':\n"
     "stdin), aria2's format: a URL per line, then\n"
     "indented out=, dir=, checksum=sha-256=HEX,\n"
     "header=NAME: VALUE lines for it", MODE_ANY},
    {OPT_FORCE, "force", 0, NULL, true, NULL,
     "replace a destination that exists (default:\n"
     "refuse, exit 10, nothing downloaded)", MODE_ANY},
    {OPT_NO_CLOBBER, "no-clobber", 0, NULL, true, NULL,
     "skip a URL whose destination exists, with a\n"
     "notice (exit 0 when nothing else fails)", MODE_ANY},
    {OPT_COPY, "copy", 0, NULL, true, NULL,
     "never deliver a hard link to the cached file, even\n"
     "where retrieverd's link-deliveries would: a\n"
     "private, writable file (the default is a reflink\n"
     "or copy already)", MODE_ANY},
    {OPT_LINK, "link", 0, NULL, true, NULL,
     "deliver a hard link to the cached file where\n"
     "possible: no copy, no space used, but read-only\n"
     "(0400) and sharing the cache's inode, so it must\n"
     "never be modified in place", MODE_ANY},
    {OPT_CONNECTIONS, "connections", 'c', "N", false, "Transfer",
     "up to N parallel ranged connections per URL\n"
     "(1 to 64; the total and per-host limits are raised\n"
     "to at least N)", MODE_ANY},
    {OPT_PROXY, "proxy", 'x', "URL", false, NULL,
     "fetch through the proxy at URL (curl's -x: http://,\n"
     "https://, socks5h://...). Default: $http_proxy,\n"
     "$https_proxy, $all_proxy; $no_proxy lists hosts\n"
     "that bypass it. retrieverd gets yours, never its own", MODE_ANY},
    {OPT_LIMIT_RATE, "limit-rate", 0, "RATE", false, NULL,
     "download each URL at most RATE bytes a second,\n"
     "all its connections together: bytes, or with a K,\n"
     "M or G suffix (powers of 1024), 500K; at least 1K", MODE_ANY},
    {OPT_HEADER, "header", 0, "@FILE", true, "Headers and credentials",
     "send the header lines of FILE ('@-': stdin) with\n"
     "every request: one 'Name: value' per line, empty\n"
     "lines skipped (curl's -H @FILE). Also --header\n"
     "'NAME: VALUE', but every local user can read the\n"
     "command line: keep secrets out of it. Lines in\n"
     "$RETRIEVER_HEADERS are sent too (repeatable)", MODE_ANY},
    {OPT_NETRC, "netrc", 0, NULL, true, NULL,
     "HTTP basic auth for each URL's host from ~/.netrc\n"
     "(machine/default, login, password); an\n"
     "Authorization header or a URL's user:password\n"
     "wins", MODE_ANY},
    {OPT_NETRC_FILE, "netrc-file", 0, "FILE", false, NULL,
     "as --netrc, from FILE instead of ~/.netrc", MODE_ANY},
    {OPT_USER, "user", 'u', "USER:PASS", false, NULL,
     "HTTP basic auth for every URL (curl's -u; wins\n"
     "over --netrc). Every local user can read the\n"
     "command line: --netrc-file is the safe way. No\n"
     "password prompt: PASS is required", MODE_ANY},
    {OPT_CHUNK_SIZE, "chunk-size", 0, "SIZE", false, "Engine",
     "largest range fetched by one request: bytes, or\n"
     "with a K, M, G or T suffix (powers of 1024), 4M;\n"
     "at least 64K", MODE_LOCAL},
    {OPT_HTTP2, "http2", 0, "WHEN", false, NULL,
     "HTTP/2 for https: auto (whole small objects\n"
     "multiplexed on one connection, a big object's\n"
     "ranges over HTTP/1.1 connections), never, always", MODE_LOCAL},
    {OPT_RETRIES, "retries", 0, "N", false, "Retries, timeouts and TLS",
     "retry a failed range up to N times (0 to 100;\n"
     "0: never retry). Unknown hosts, TLS failures and\n"
     "4xx answers (but 408, 425, 429) fail at once", MODE_ANY},
    {OPT_RETRY_REFUSED, "retry-refused", 0, "SECS", false, NULL,
     "retry a refused connection (a server restarting)\n"
     "for SECS seconds from the first refusal, then\n"
     "fail naming the address", MODE_ANY},
    {OPT_CONNECT_TIMEOUT, "connect-timeout", 0, "SECS", false, NULL,
     "give up a connection attempt after SECS seconds", MODE_ANY},
    {OPT_STALL_TIMEOUT, "stall-timeout", 0, "SECS", false, NULL,
     "retry a transfer that received nothing for SECS\n"
     "seconds", MODE_ANY},
    {OPT_CACERT, "cacert", 0, "FILE", false, NULL,
     "also trust https origins whose certificates chain\n"
     "to the CA certificates in FILE (PEM), besides the\n"
     "system's (retrieverd reads FILE as you)", MODE_ANY},
    {OPT_CACERT_ONLY, "cacert-only", 0, "FILE", false, NULL,
     "as --cacert, but trust only FILE's certificates,\n"
     "not the system's", MODE_ANY},
    {OPT_INSECURE, "insecure", 0, NULL, true, NULL,
     "do not verify https certificates: anyone on the\n"
     "path may change the bytes. Long form only (no\n"
     "-k); warns every time; cached apart", MODE_LOCAL},
    {OPT_ENDPOINT_URL, "endpoint-url", 0, "URL", false,
     "S3 (s3://bucket/key; s3://bucket/prefix/ or .../*.ext with -d DIR)",
     "the S3 endpoint (default: $AWS_ENDPOINT_URL_S3,\n"
     "$AWS_ENDPOINT_URL, the profile's endpoint_url,\n"
     "else AWS's for the region)", MODE_ANY},
    {OPT_REGION, "region", 0, "REGION", false, NULL,
     "the bucket's region (default: $AWS_REGION,\n"
     "$AWS_DEFAULT_REGION, the profile's, us-east-1)", MODE_ANY},
    {OPT_S3_PATH_STYLE, "s3-path-style", 0, NULL, true, NULL,
     "address buckets as ENDPOINT/BUCKET/KEY, not\n"
     "BUCKET.ENDPOINT/KEY (automatic for an IP address\n"
     "or localhost endpoint)", MODE_ANY},
    {OPT_NO_SIGN_REQUEST, "no-sign-request", 0, NULL, true, NULL,
     "anonymous s3:// requests (public buckets); else\n"
     "signed with $AWS_ACCESS_KEY_ID/..., or the\n"
     "~/.aws/credentials profile ($AWS_PROFILE)", MODE_ANY},
    {OPT_STATE_DIR, "state-dir", 0, "DIR", false, "State and cache",
     "keep download state (what is durable, for resume)\n"
     "in DIR (default: $XDG_STATE_HOME/retriever, else\n"
     "~/.local/state/retriever); one process owns it", MODE_LOCAL},
    {OPT_CACHE_DIR, "cache-dir", 0, "DIR", false, NULL,
     "keep partial and finished downloads in DIR\n"
     "(default: $XDG_CACHE_HOME/retriever, else\n"
     "~/.cache/retriever); a finished one is a cache hit", MODE_LOCAL},
    {OPT_CACHE_QUOTA, "cache-quota", 0, "SIZE", false, NULL,
     "keep at most SIZE of downloads in the cache, least\n"
     "recently used go first, finished before unfinished\n"
     "(default 10G; 0: no limit)", MODE_LOCAL},
    {OPT_NO_STATE, "no-state", 0, NULL, true, NULL,
     "no state and no cache: nothing resumes, the file is\n"
     "written next to its destination", MODE_LOCAL},
    {OPT_SHA256, "sha256", 0, "HEX", false, "Verification",
     "the file's expected sha256 (64 hex digits, one URL\n"
     "only); a mismatch fails and keeps no file (a cache\n"
     "hit is fetched again once first)", MODE_ANY},
    {OPT_DIGEST, "digest", 0, NULL, true, NULL,
     "compute every file's sha256 and report it (costs\n"
     "about a CPU-second per GiB; on by default with\n"
     "--json)", MODE_ANY},
    {OPT_NO_DIGEST, "no-digest", 0, NULL, true, NULL,
     "do not compute sha256 unless --sha256 needs it\n"
     "(--json then reports \"sha256\": null)", MODE_ANY},
    {OPT_JSON, "json", 0, NULL, true, "Output",
     "print one JSON object per URL to stdout when it\n"
     "finishes (see docs/cli.md for the schema)", MODE_ANY},
    {OPT_QUIET, "quiet", 'q', NULL, true, NULL, "print errors only (no progress, no summaries)",
     MODE_ANY},
    {OPT_NO_PROGRESS, "no-progress", 0, NULL, true, NULL,
     "no progress bar or progress lines; still print\n"
     "retries, completions and errors", MODE_ANY},
    {OPT_HELP, "help", 'h', NULL, true, "Other", "show this help and exit", MODE_ANY},
};

static const struct opt_def ping_opts[] = {
    {OPT_SOCKET, "socket", 0, "PATH", false, "Options",
     "the socket of retrieverd (default:\n"
     "$RETRIEVER_SOCKET, else\n"
     "$XDG_RUNTIME_DIR/retriever/retrieverd.sock)", MODE_ANY},
    {OPT_HELP, "help", 'h', NULL, true, NULL, "show this help and exit", MODE_ANY},
};

#define SOCKET_OPT                                                                     \
    {OPT_SOCKET, "socket", 0, "PATH", false, "Options",                                \
     "the socket of retrieverd (default: see\n"                                        \
     "'" PROG " help', \"Finding retrieverd\")", MODE_ANY}
#define JSON_OPT                                                                       \
    {OPT_JSON, "json", 0, NULL, true, NULL,                                            \
     "print JSON on stdout instead of text (see\n"                                     \
     "docs/cli.md for the fields)", MODE_ANY}
#define HELP_OPT {OPT_HELP, "help", 'h', NULL, true, NULL, "show this help and exit", MODE_ANY}

static const struct opt_def status_opts[] = {
    SOCKET_OPT, JSON_OPT,
    {OPT_NO_AUTOSTART, "no-autostart", 0, NULL, true, NULL,
     "when no retrieverd answers, fail instead of\n"
     "starting a per-user one", MODE_ANY},
    HELP_OPT,
};
static const struct opt_def list_opts[] = {
    SOCKET_OPT, JSON_OPT,
    {OPT_ALL, "all", 'a', NULL, true, NULL,
     "ended jobs too (done, failed, cancelled: the\n"
     "daemon's history); default: queued and running", MODE_ANY},
    {OPT_STATE, "state", 0, "STATE", true, NULL,
     "only jobs in STATE: queued, running, done,\n"
     "failed or cancelled (repeatable, or\n"
     "comma-separated)", MODE_ANY},
    HELP_OPT,
};
static const struct opt_def watch_opts[] = {SOCKET_OPT, JSON_OPT, HELP_OPT};
static const struct opt_def cancel_opts[] = {SOCKET_OPT, JSON_OPT, HELP_OPT};
static const struct opt_def stats_opts[] = {SOCKET_OPT, JSON_OPT, HELP_OPT};
static const struct opt_def version_opts[] = {SOCKET_OPT, JSON_OPT, HELP_OPT};

/* cache ACTION and cat URL: the daemon's (or with --local the local
 * state directory's) cache, and an object's bytes to stdout. */
static const struct opt_def cache_opts[] = {
    {OPT_LOCAL, "local", 0, NULL, true, "Options",
     "act on the local state directory instead of\n"
     "asking retrieverd", MODE_ANY},
    {OPT_SOCKET, "socket", 0, "PATH", false, NULL, "the socket of retrieverd", MODE_DAEMON},
    {OPT_STATE_DIR, "state-dir", 0, "DIR", false, NULL,
     "the state directory (as download --local)", MODE_LOCAL},
    {OPT_CACHE_DIR, "cache-dir", 0, "DIR", false, NULL,
     "the cache directory (as download --local)", MODE_LOCAL},
    {OPT_JSON, "json", 0, NULL, true, NULL, "one JSON object per entry (docs/cli.md)", MODE_ANY},
    {OPT_HELP, "help", 'h', NULL, true, NULL, "show this help and exit", MODE_ANY},
};

/* cat takes download's options (the same table, the same parser and the
 * same request builders in both modes), but for these: cat writes one
 * URL's bytes to standard output and keeps no file, shows no progress and
 * prints no JSON. `download -o -` refuses them too (less -o itself). */
static const enum opt_id cat_refused[] = {
    OPT_DETACH, OPT_OUTPUT, OPT_DIR,  OPT_REMOTE_NAME, OPT_INPUT_FILE, OPT_FORCE, OPT_NO_CLOBBER,
    OPT_COPY,   OPT_LINK,   OPT_JSON, OPT_DIGEST,      OPT_NO_DIGEST,  OPT_NO_PROGRESS,
};

/* What a command's positional arguments are. */
enum positional {
    POS_NONE = 0,
    POS_URLS, /* into dl.urls */
    POS_JOBS, /* job ids, into jobs.ids */
};

/* A command: its name (also its help topic), its options, and its
 * positional arguments: what they are and how many (min..max). */
struct command {
    const char *name;
    rvc_verb verb;
    const struct opt_def *opts;
    size_t n_opts;
    enum positional pos;
    size_t min_args, max_args;
    const char *args_name; /* for messages: "JOB" */
    const enum opt_id *refused; /* options of opts this command does not take */
    size_t n_refused;
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
static const struct command cmd_download = {"download", RVC_VERB_DOWNLOAD, download_opts,
                                            N_OF(download_opts), POS_URLS, 1, RVC_MAX_URLS,
                                            "URL", NULL, 0};
static const struct command cmd_ping = {"ping", RVC_VERB_PING, ping_opts, N_OF(ping_opts),
                                        POS_NONE, 0, 0, NULL, NULL, 0};
static const struct command cmd_status = {"status", RVC_VERB_STATUS, status_opts,
                                          N_OF(status_opts), POS_JOBS, 0, 1, "JOB", NULL, 0};
static const struct command cmd_list = {"list", RVC_VERB_LIST, list_opts, N_OF(list_opts),
                                        POS_NONE, 0, 0, NULL, NULL, 0};
static const struct command cmd_watch = {"watch", RVC_VERB_WATCH, watch_opts, N_OF(watch_opts),
                                         POS_JOBS, 1, 1, "JOB", NULL, 0};
static const struct command cmd_cancel = {"cancel", RVC_VERB_CANCEL, cancel_opts,
                                          N_OF(cancel_opts), POS_JOBS, 1, RVC_MAX_JOB_IDS, "JOB",
                                          NULL, 0};
static const struct command cmd_stats = {"stats", RVC_VERB_STATS, stats_opts, N_OF(stats_opts),
                                         POS_NONE, 0, 0, NULL, NULL, 0};
static const struct command cmd_version = {"version", RVC_VERB_DVERSION, version_opts,
                                           N_OF(version_opts), POS_NONE, 0, 0, NULL, NULL, 0};
/* cache: its first argument is the action (ls, rm, clear, verify), the
 * rest rm's URLs; both go into dl.urls. */
static const struct command cmd_cache = {"cache", RVC_VERB_CACHE, cache_opts, N_OF(cache_opts),
                                         POS_URLS, 1, RVC_MAX_URLS, "ACTION", NULL, 0};
static const struct command cmd_cat = {"cat",       RVC_VERB_CAT, download_opts,
                                       N_OF(download_opts), POS_URLS, 1,
                                       1,           "URL",        cat_refused,
                                       N_OF(cat_refused)};
/* Every command, in the order the overview lists them ("help" is handled
 * apart: it has no options). */
static const struct command *const commands[] = {
    &cmd_download, &cmd_cat,   &cmd_status, &cmd_list,  &cmd_watch,
    &cmd_cancel,   &cmd_cache, &cmd_stats,  &cmd_ping,  &cmd_version,
};

/* Whether command c does not take option id (it is in c->opts all the
 * same: cat shares download's table). */
static bool opt_refused(const struct command *c, enum opt_id id) {
    for (size_t i = 0; i < c->n_refused; i++)
        if (c->refused[i] == id)
            return true;
    return false;
}

/* The options accepted before the command. */
static const char *const top_opts[] = {"help", "version", "socket"};

/* ------------------------------------------------------------------------
 * "did you mean": the closest known name by edit distance
 * ------------------------------------------------------------------------ */

#define NAME_MAX_SUGGEST 64 /* longer words get no suggestion */

/* The optimal-string-alignment distance between a[0..na) and b[0..nb):
 * insertions, deletions, substitutions and swaps of two neighbours cost 1
 * each ("downlaod" is 1 from "download"). Case is ignored. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb) {
    size_t d[NAME_MAX_SUGGEST + 1][NAME_MAX_SUGGEST + 1];
    for (size_t i = 0; i <= na; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[na][nb];
}

/* Keeps the best candidate for word seen so far. A candidate qualifies when
 * word is a prefix of it (an abbreviation, which the parser does not
 * accept) or is within a third of its length (at least 1, at most 2)
 * edits of it. */
struct suggest {
    const char *word;
    size_t len;
    const char *best;
    size_t best_d;
};

static void suggest_try(struct suggest *sg, const char *cand) {
    size_t n = strlen(cand);
    if (sg->len == 0 || sg->len > NAME_MAX_SUGGEST || n > NAME_MAX_SUGGEST)
        return;
    size_t d = n > sg->len && strncmp(cand, sg->word, sg->len) == 0 && sg->len >= 2
                   ? 1
                   : edit_distance(sg->word, sg->len, cand, n);
    size_t limit = n / 3 < 1 ? 1 : n / 3 > 2 ? 2 : n / 3;
    if (d <= limit && (!sg->best || d < sg->best_d)) {
        sg->best = cand;
        sg->best_d = d;
    }
}

/* The command closest to word, or NULL. */
static const char *suggest_command(const char *word) {
    struct suggest sg = {word, strlen(word), NULL, 0};
    for (size_t i = 0; i < N_OF(commands); i++)
        suggest_try(&sg, commands[i]->name);
    suggest_try(&sg, "help");
    return sg.best;
}

/* The long option of c (or, c NULL, before the command) closest to
 * name[0..len), or NULL. */
static const char *suggest_option(const struct command *c, const char *name, size_t len) {
    struct suggest sg = {name, len, NULL, 0};
    if (c) {
        for (size_t k = 0; k < c->n_opts; k++)
            if (!opt_refused(c, c->opts[k].id))
                suggest_try(&sg, c->opts[k].long_name);
    } else {
        for (size_t i = 0; i < sizeof(top_opts) / sizeof(top_opts[0]); i++)
            suggest_try(&sg, top_opts[i]);
    }
    return sg.best;
}

static const struct opt_def *opt_by_long(const struct command *c, const char *name, size_t len) {
    for (size_t i = 0; i < c->n_opts; i++)
        if (strlen(c->opts[i].long_name) == len && memcmp(c->opts[i].long_name, name, len) == 0)
            return &c->opts[i];
    return NULL;
}

static const struct opt_def *opt_by_short(const struct command *c, char ch) {
    for (size_t i = 0; i < c->n_opts; i++)
        if (c->opts[i].short_name && c->opts[i].short_name == ch)
            return &c->opts[i];
    return NULL;
}

/* ------------------------------------------------------------------------
 * Value parsers. Each returns true and sets *ret, or false.
 * ------------------------------------------------------------------------ */

/* A whole decimal number in [min, max]: digits only, no sign or spaces. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *ret) {
    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *ret = v;
    return true;
}

/* Seconds, possibly fractional ("2.5"), in (0, RVC_MAX_TIMEOUT_S], as
 * milliseconds rounded up (so 0.0001 is 1 ms, never 0 = "default"). */
static bool parse_seconds_ms(const char *s, unsigned *ret) {
    if (!isdigit((unsigned char)s[0]) && s[0] != '.')
        return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !(v > 0) || v > RVC_MAX_TIMEOUT_S)
        return false;
    *ret = (unsigned)ceil(v * 1000.0);
    return true;
}

/* 64 hex digits, stored lower-cased into out[65]. */
static bool parse_sha256(const char *s, char *out) {
    size_t i;
    for (i = 0; s[i] && i < 64; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    if (i != 64 || s[i])
        return false;
    out[64] = '\0';
    return true;
}

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

/* Parser state; owns the error message until it is handed out. */
struct parser {
    char *error; /* malloc'd; set once, by fail() */
};

/* Record a usage error (only the first one counts) with the --help hint for
 * topic, and return RV_E_INVALID_ARGUMENT (or RV_E_NOMEM). */
static int fail(struct parser *p, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, const char *topic, const char *fmt, ...) {
    if (p->error)
        return RV_E_INVALID_ARGUMENT;
    rvc_buf b;
    rvc_buf_init(&b, 64 * 1024);
    va_list ap;
    va_start(ap, fmt);
    rvc_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    rvc_buf_printf(&b, "\nTry '" PROG "%s%s --help' for more information.", topic ? " " : "",
                   topic ? topic : "");
    int r = rvc_buf_error(&b);
    if (r == RV_E_TOO_LARGE) {
        /* A message made of a huge argument: say so without quoting it. */
        rvc_buf_done(&b);
        r = rvc_buf_puts(&b, "invalid argument (too long to show)");
    }
    if (r == RV_OK)
        r = rvc_buf_steal(&b, &p->error);
    rvc_buf_done(&b);
    return r == RV_OK ? RV_E_INVALID_ARGUMENT : r;
}

/* How an option was written, for messages: "-o" or "--output". */
static void opt_spelling(const struct opt_def *o, bool as_short, char *buf, size_t n) {
    if (as_short)
        snprintf(buf, n, "-%c", o->short_name);
    else
        snprintf(buf, n, "--%s", o->long_name);
}

/* Append p to a borrowed-pointer array of at most max entries. */
static int push(const char ***arr, size_t *n, size_t max, const char *s) {
    if (*n >= max)
        return RV_E_TOO_LARGE;
    const char **a = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!a)
        return RV_E_NOMEM;
    a[(*n)++] = s;
    *arr = a;
    return RV_OK;
}

/* The JobState numbers of retriever.v1 (proto/), by name. */
static const char *const job_state_names[] = {NULL,   "queued",    "running",
                                              "done", "failed",    "cancelled"};

/* --state v: comma-separated state names, added to *states as bits. */
static int parse_states(struct parser *p, const char *topic, const char *spelled, const char *v,
                        unsigned *states) {
    const char *s = v;
    for (;;) {
        size_t len = strcspn(s, ",");
        unsigned bit = 0;
        for (unsigned k = 1; k < N_OF(job_state_names); k++)
            if (strlen(job_state_names[k]) == len && strncasecmp(s, job_state_names[k], len) == 0)
                bit = 1u << k;
        if (!bit)
            return fail(p, topic,
                        "option '%s' needs queued, running, done, failed or cancelled, not '%s'",
                        spelled, v);
        *states |= bit;
        if (!s[len])
            return RV_OK;
        s += len + 1;
    }
}

/* Apply one option of command `topic` with its value (NULL for flags).
 * `spelled` is how the user wrote it. On usage errors the message quotes
 * the value. */
static int apply_opt(struct parser *p, rvc_cmd *cmd, const char *topic, const struct opt_def *o,
                     const char *spelled, const char *v, bool *seen, bool *ret_help) {
    rvc_download_opts *d = &cmd->dl;
    unsigned long n;
    int r;

    if ((seen[o->id] && !o->repeatable) || (o->id == OPT_SOCKET && cmd->socket))
        return fail(p, topic, "option '%s' given more than once", spelled);
    seen[o->id] = true;

    switch (o->id) {
    case OPT_LOCAL:
        d->local = true;
        return RV_OK;
    case OPT_SOCKET:
        if (!*v)
            return fail(p, topic, "option '%s' needs the path of retrieverd's socket", spelled);
        cmd->socket = v;
        return RV_OK;
    case OPT_DETACH:
        d->detach = true;
        return RV_OK;
    case OPT_OUTPUT:
        if (!*v)
            return fail(p, topic, "option '%s' needs a file name", spelled);
        d->output = v; /* "-": standard output, as cat (parse_command) */
        return RV_OK;
    case OPT_DIR:
        if (!*v)
            return fail(p, topic, "option '%s' needs a directory", spelled);
        d->dir = v;
        return RV_OK;
    case OPT_CONNECTIONS:
        if (!parse_uint(v, 1, RVC_MAX_CONNECTIONS, &n))
            return fail(p, topic, "option '%s' needs a whole number from 1 to %d, not '%s'",
                        spelled, RVC_MAX_CONNECTIONS, v);
        d->connections = (unsigned)n;
        return RV_OK;
    case OPT_CHUNK_SIZE:
        if (rv_parse_size(v, &d->chunk_size) != RV_OK || d->chunk_size < RVC_MIN_CHUNK_SIZE)
            return fail(p, topic,
                        "option '%s' needs a size of at least %dK (bytes, or a number with a K, "
                        "M, G or T suffix such as 4M), not '%s'",
                        spelled, RVC_MIN_CHUNK_SIZE / 1024, v);
        return RV_OK;
    case OPT_HTTP2:
        if (strcmp(v, "auto") == 0)
            d->http2 = RV_HTTP2_AUTO;
        else if (strcmp(v, "never") == 0)
            d->http2 = RV_HTTP2_NEVER;
        else if (strcmp(v, "always") == 0)
            d->http2 = RV_HTTP2_ALWAYS;
        else
            return fail(p, "download", "option '%s' needs auto, never or always, not '%s'",
                        spelled, v);
        return RV_OK;
    case OPT_HEADER:
        /* @FILE and @-: read later (rvc_secrets_resolve); no header name
         * starts with '@', so nothing else is meant. */
        if (v[0] == '@' && !v[1])
            return fail(p, topic,
                        "option '%s' needs '@FILE' (a file of header lines), '@-' (standard "
                        "input) or 'Name: value'",
                        spelled);
        if (v[0] == '@') {
            r = push(&d->headers, &d->n_headers, RVC_MAX_HEADERS, v);
            if (r == RV_E_TOO_LARGE)
                return fail(p, topic, "more than %d --header options", RVC_MAX_HEADERS);
            return r;
        }
        if (strlen(v) > RVC_MAX_HEADER_LEN)
            return fail(p, topic, "option '%s': header longer than %d bytes", spelled,
                        RVC_MAX_HEADER_LEN);
        if (!rv_header_allowed(v))
            return fail(p, topic,
                        "option '%s' needs 'Name: value' on one line, and not a header the "
                        "engine sets itself (Range, If-Range, If-Match, Host, Content-Length, "
                        "...), or @FILE, not '%s'",
                        spelled, v);
        r = push(&d->headers, &d->n_headers, RVC_MAX_HEADERS, v);
        if (r == RV_E_TOO_LARGE)
            return fail(p, topic, "more than %d --header options", RVC_MAX_HEADERS);
        return r;
    case OPT_NETRC:
        d->netrc = true;
        return RV_OK;
    case OPT_NETRC_FILE:
        if (!*v)
            return fail(p, topic, "option '%s' needs a file", spelled);
        d->netrc = true;
        d->netrc_file = v;
        return RV_OK;
    case OPT_USER:
        /* curl prompts for a missing password; a download tool that may
         * run unattended refuses instead of hanging on a terminal. */
        if (!strchr(v, ':'))
            return fail(p, topic,
                        "option '%s' needs USER:PASSWORD (no password prompt); or keep the "
                        "password out of the command line with --netrc-file FILE",
                        spelled);
        d->user = v;
        return RV_OK;
    case OPT_PROXY: {
        bool ctl = false;
        for (const unsigned char *c = (const unsigned char *)v; *c; c++)
            ctl = ctl || *c < 0x20 || *c == 0x7f;
        if (!*v || ctl || strlen(v) > RVC_MAX_PROXY_LEN)
            return fail(p, topic,
                        "option '%s' needs the proxy's URL (at most %d bytes, no control "
                        "characters), such as http://proxy.example:3128",
                        spelled, RVC_MAX_PROXY_LEN);
        d->proxy = v;
        return RV_OK;
    }
    case OPT_LIMIT_RATE:
        if (rv_parse_size(v, &d->limit_rate) != RV_OK || d->limit_rate < RVC_MIN_RATE ||
            d->limit_rate > RVC_MAX_RATE)
            return fail(p, topic,
                        "option '%s' needs bytes a second, at least 1K (a number with a K, M or "
                        "G suffix such as 500K or 2M), not '%s'",
                        spelled, v);
        return RV_OK;
    case OPT_RETRIES:
        if (!parse_uint(v, 0, RVC_MAX_RETRIES, &n))
            return fail(p, topic, "option '%s' needs a whole number from 0 to %d, not '%s'",
                        spelled, RVC_MAX_RETRIES, v);
        d->retries = (int)n;
        return RV_OK;
    case OPT_CONNECT_TIMEOUT:
    case OPT_STALL_TIMEOUT:
    case OPT_RETRY_REFUSED:
        if (!parse_seconds_ms(v, o->id == OPT_CONNECT_TIMEOUT ? &d->connect_timeout_ms
                                 : o->id == OPT_STALL_TIMEOUT ? &d->stall_timeout_ms
                                                              : &d->connect_retry_ms))
            return fail(p, topic,
                        "option '%s' needs a number of seconds above 0 and at most %d, not '%s'",
                        spelled, RVC_MAX_TIMEOUT_S, v);
        return RV_OK;
    case OPT_SHA256:
        if (!parse_sha256(v, d->sha256))
            return fail(p, topic, "option '%s' needs 64 hexadecimal digits, not '%s'", spelled,
                        v);
        return RV_OK;
    case OPT_JSON:
        d->json = true;
        cmd->jobs.json = true;
        return RV_OK;
    case OPT_NO_AUTOSTART:
        cmd->no_autostart = d->no_autostart = true;
        return RV_OK;
    case OPT_ALL:
        cmd->jobs.all = true;
        return RV_OK;
    case OPT_STATE:
        return parse_states(p, topic, spelled, v, &cmd->jobs.states);
    case OPT_DIGEST:
        d->digest = 1;
        return RV_OK;
    case OPT_CACERT:
    case OPT_CACERT_ONLY:
        if (!*v)
            return fail(p, topic, "option '%s' needs a file", spelled);
        if (d->ca_file)
            return fail(p, topic, "options '--cacert' and '--cacert-only' cannot be used "
                        "together (nor either twice): put every certificate in one file");
        d->ca_file = v;
        d->ca_only = o->id == OPT_CACERT_ONLY;
        return RV_OK;
    case OPT_INSECURE:
        d->insecure = true;
        return RV_OK;
    case OPT_ENDPOINT_URL:
        if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
            return fail(p, topic, "option '%s' needs an http:// or https:// URL", spelled);
        d->s3_endpoint = v;
        return RV_OK;
    case OPT_REGION:
        if (!*v)
            return fail(p, topic, "option '%s' needs a region", spelled);
        d->s3_region = v;
        return RV_OK;
    case OPT_S3_PATH_STYLE:
        d->s3_path_style = true;
        return RV_OK;
    case OPT_NO_SIGN_REQUEST:
        d->s3_no_sign = true;
        return RV_OK;
    case OPT_STATE_DIR:
        if (!*v)
            return fail(p, topic, "option '%s' needs a directory", spelled);
        d->state_dir = v;
        return RV_OK;
    case OPT_CACHE_DIR:
        if (!*v)
            return fail(p, topic, "option '%s' needs a directory", spelled);
        d->cache_dir = v;
        return RV_OK;
    case OPT_NO_STATE:
        d->no_state = true;
        return RV_OK;
    case OPT_INPUT_FILE:
        if (!*v)
            return fail(p, topic, "option '%s' needs a file name ('-': stdin)", spelled);
        d->input_file = v;
        return RV_OK;
    case OPT_REMOTE_NAME:
        d->remote_name = true;
        return RV_OK;
    case OPT_FORCE:
        d->force = true;
        return RV_OK;
    case OPT_NO_CLOBBER:
        d->no_clobber = true;
        return RV_OK;
    case OPT_COPY:
        d->copy = true;
        return RV_OK;
    case OPT_LINK:
        d->link = true;
        return RV_OK;
    case OPT_CACHE_QUOTA:
        if (rv_parse_size(v, &d->cache_quota) != RV_OK)
            return fail(p, topic,
                        "option '%s' needs a size (bytes, or a number with a K, M, G or T "
                        "suffix such as 20G; 0 for no limit), not '%s'",
                        spelled, v);
        return RV_OK;
    case OPT_NO_DIGEST:
        d->digest = 0;
        return RV_OK;
    case OPT_QUIET:
        d->quiet = true;
        return RV_OK;
    case OPT_NO_PROGRESS:
        d->no_progress = true;
        return RV_OK;
    case OPT_HELP:
        *ret_help = true;
        return RV_OK;
    case OPT_COUNT_:
        break;
    }
    return RV_E_INTERNAL;
}

/* Checks that need the whole command line. */
static int check_download(struct parser *p, const char *topic, const rvc_cmd *cmd,
                          const bool *seen) {
    const rvc_download_opts *d = &cmd->dl;
    if (d->n_urls == 0 && !d->input_file)
        return fail(p, topic, "no URL given");
    /* -i adds URLs the parser has not seen: what takes one URL is refused
     * with it, whatever the file holds (it has out= and checksum=). */
    if (d->input_file && d->output)
        return fail(p, topic,
                    "option '-o/--output' names one file; with -i, name each in the file "
                    "(out=) or use -d DIR");
    if (d->input_file && d->sha256[0])
        return fail(p, topic,
                    "option '--sha256' checks one file; with -i, give each its "
                    "checksum=sha-256=HEX line");
    for (size_t k = 0; d->input_file && strcmp(d->input_file, "-") == 0 && k < d->n_headers; k++)
        if (strcmp(d->headers[k], "@-") == 0)
            return fail(p, topic,
                        "'-i -' and '--header @-' both read standard input: give one a file");
    if (d->output && d->dir)
        return fail(p, topic, "options '-o/--output' and '-d/--dir' cannot be used together");
    if (d->output && d->remote_name)
        return fail(p, topic,
                    "options '-o/--output' and '-O/--remote-name' cannot be used together");
    if (d->output && d->n_urls > 1)
        return fail(p, topic,
                    "option '-o/--output' names one file, but %zu URLs were given; use -d DIR for "
                    "several",
                    d->n_urls);
    if (d->no_state && (d->state_dir || d->cache_dir || d->copy || d->link))
        return fail(p, topic, "option '--no-state' cannot be combined with '%s'",
                    d->state_dir   ? "--state-dir"
                    : d->cache_dir ? "--cache-dir"
                    : d->copy      ? "--copy"
                                   : "--link");
    if (d->copy && d->link)
        return fail(p, topic, "options '--copy' and '--link' cannot be used together");
    if (d->force && d->no_clobber)
        return fail(p, topic,
                    "options '--force' (replace) and '--no-clobber' (skip) cannot be used "
                    "together");
    if (d->insecure && d->ca_file)
        return fail(p, topic, "option '--insecure' checks no certificate, so '--cacert%s' "
                    "would do nothing: give one or the other",
                    d->ca_only ? "-only" : "");
    if (d->insecure && !d->local)
        return fail(p, topic,
                    "option '--insecure' cannot apply through retrieverd: it verifies every "
                    "origin (its cache is shared); use --cacert FILE, or --local --insecure");
    if (d->sha256[0] && d->n_urls > 1)
        return fail(p, topic, "option '--sha256' checks one file, but %zu URLs were given",
                    d->n_urls);
    /* Options of the other mode: refused rather than ignored. */
    if (d->local && cmd->socket)
        return fail(p, topic,
                    "option '--socket' talks to retrieverd; it cannot be used with --local");
    for (size_t i = 0; i < N_OF(download_opts); i++) {
        const struct opt_def *o = &download_opts[i];
        if (!seen[o->id])
            continue;
        if (d->local && o->mode == MODE_DAEMON)
            return fail(p, topic, "option '--%s' talks to retrieverd; it cannot be used "
                        "with --local", o->long_name);
        if (!d->local && o->mode == MODE_LOCAL)
            return fail(p, topic, "option '--%s' applies only with --local (retrieverd "
                        "downloads with its own settings)", o->long_name);
    }
    if (d->detach && d->json)
        return fail(p, topic, "options '--detach' and '--json' cannot be used together: "
                    "--detach prints only the job id");
    return RV_OK;
}

/* The one line for an option of download that cat (and download -o -)
 * does not take. */
static int refuse(struct parser *p, const struct command *c, const char *spelled) {
    return fail(p, c->name,
                "'%s' does not take '%s': it writes one URL's bytes to standard output as "
                "they arrive, and keeps no file, shows no progress and prints no JSON (use "
                "'download')",
                c == &cmd_cat ? "cat" : "download -o -", spelled);
}

/* Parse the arguments of command c (argv[0] is the first after its name)
 * into *cmd. */
static int parse_command(struct parser *p, const struct command *c, int argc, char *const *argv,
                         rvc_cmd *cmd) {
    rvc_download_opts *d = &cmd->dl;
    bool seen[OPT_COUNT_] = {false};
    bool help = false;
    bool options_done = false;
    int r = RV_OK;

    d->retries = -1;
    d->http2 = -1;
    d->digest = -1;
    d->cache_quota = RVC_DEFAULT_CACHE_QUOTA;
    for (int i = 0; r == RV_OK && !help && i < argc; i++) {
        const char *a = argv[i];

        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (c->pos == POS_NONE) {
                r = fail(p, c->name, "'%s' takes no arguments, not '%s'", c->name, a);
                break;
            }
            if (c->pos == POS_JOBS) {
                r = push(&cmd->jobs.ids, &cmd->jobs.n_ids, c->max_args, a);
                if (r == RV_E_TOO_LARGE)
                    r = fail(p, c->name, "'%s' takes at most %zu %s argument%s", c->name,
                             c->max_args, c->args_name, c->max_args == 1 ? "" : "s");
                continue;
            }
            /* A URL ("-" alone is one too, and is left for the engine to judge). */
            r = push(&d->urls, &d->n_urls, RVC_MAX_URLS, a);
            if (r == RV_E_TOO_LARGE)
                r = fail(p, c->name, "more than %d URLs", RVC_MAX_URLS);
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }

        if (a[1] == '-') {
            /* --name or --name=value */
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const struct opt_def *o = opt_by_long(c, name, len);
            char spelled[64];
            if (!o) {
                const char *near = suggest_option(c, name, len);
                if (near)
                    r = fail(p, c->name, "unknown option '%.*s'; did you mean '--%s'?",
                             (int)(len + 2), a, near);
                else
                    r = fail(p, c->name, "unknown option '%.*s'", (int)(len + 2), a);
                break;
            }
            opt_spelling(o, false, spelled, sizeof(spelled));
            if (opt_refused(c, o->id)) {
                r = refuse(p, c, spelled);
                break;
            }
            const char *v = NULL;
            if (o->arg) {
                if (eq)
                    v = eq + 1;
                else if (i + 1 < argc)
                    v = argv[++i];
                else {
                    r = fail(p, c->name, "option '%s' needs a value (%s)", spelled, o->arg);
                    break;
                }
            } else if (eq) {
                r = fail(p, c->name, "option '%s' takes no value", spelled);
                break;
            }
            r = apply_opt(p, cmd, c->name, o, spelled, v, seen, &help);
            continue;
        }

        /* -x, a bundle of short flags, or -xVALUE */
        for (const char *ch = a + 1; r == RV_OK && *ch; ch++) {
            const struct opt_def *o = opt_by_short(c, *ch);
            char spelled[8];
            if (!o && *ch == 'k' && c == &cmd_download) {
                /* curl's -k: turning verification off is never one letter. */
                r = fail(p, c->name, "option '-k' is not accepted: to download without "
                         "verifying certificates write '--insecure' in full (with --local); to "
                         "trust a private CA use '--cacert FILE'");
                break;
            }
            if (!o) {
                if (isprint((unsigned char)*ch))
                    r = fail(p, c->name, "unknown option '-%c'", *ch);
                else
                    r = fail(p, c->name, "unknown option in '%s'", a);
                break;
            }
            opt_spelling(o, true, spelled, sizeof(spelled));
            if (opt_refused(c, o->id)) {
                r = refuse(p, c, spelled);
                break;
            }
            const char *v = NULL;
            if (o->arg) {
                if (ch[1])
                    v = ch + 1;
                else if (i + 1 < argc)
                    v = argv[++i];
                else {
                    r = fail(p, c->name, "option '%s' needs a value (%s)", spelled, o->arg);
                    break;
                }
            }
            r = apply_opt(p, cmd, c->name, o, spelled, v, seen, &help);
            if (v)
                break; /* the rest of the bundle was the value */
        }
    }

    if (r == RV_OK && help) {
        cmd->verb = RVC_VERB_HELP;
        cmd->help_topic = c->name;
    } else if (r == RV_OK && c == &cmd_download) {
        cmd->verb = RVC_VERB_DOWNLOAD;
        r = check_download(p, c->name, cmd, seen);
        /* -o - : cat (the bytes to stdout, in order); what cat does not
         * take is refused, never ignored. */
        if (r == RV_OK && d->output && strcmp(d->output, "-") == 0) {
            for (size_t k = 0; r == RV_OK && k < cmd_cat.n_refused; k++) {
                if (cmd_cat.refused[k] == OPT_OUTPUT || !seen[cmd_cat.refused[k]])
                    continue;
                for (size_t m = 0; m < c->n_opts; m++)
                    if (c->opts[m].id == cmd_cat.refused[k]) {
                        char spelled[64];
                        opt_spelling(&c->opts[m], false, spelled, sizeof(spelled));
                        r = refuse(p, c, spelled);
                        break;
                    }
            }
            cmd->verb = RVC_VERB_CAT;
        }
    } else if (r == RV_OK && c == &cmd_cat) {
        cmd->verb = RVC_VERB_CAT;
        if (d->n_urls != 1)
            r = fail(p, c->name, "'cat' takes one URL");
        else
            r = check_download(p, c->name, cmd, seen);
    } else if (r == RV_OK && c == &cmd_cache) {
        static const char *const actions[] = {"ls", "rm", "clear", "verify"};
        cmd->verb = RVC_VERB_CACHE;
        cmd->cache_action = d->n_urls ? d->urls[0] : "";
        bool known = false;
        for (size_t k = 0; k < N_OF(actions); k++)
            known = known || strcmp(cmd->cache_action, actions[k]) == 0;
        if (!known)
            r = fail(p, c->name, "'cache' needs one of ls, rm URL..., clear, verify");
        else if (strcmp(cmd->cache_action, "rm") == 0 ? d->n_urls < 2 : d->n_urls > 1)
            r = fail(p, c->name, "'cache %s' %s", cmd->cache_action,
                     d->n_urls < 2 ? "needs at least one URL" : "takes no arguments");
    } else if (r == RV_OK) {
        cmd->verb = c->verb;
        if (c->pos == POS_JOBS && cmd->jobs.n_ids < c->min_args)
            r = fail(p, c->name, "no %s given", c->args_name);
        else if (cmd->jobs.all && cmd->jobs.states)
            r = fail(p, c->name, "options '--all' and '--state' cannot be used together");
        for (size_t k = 0; r == RV_OK && k < cmd->jobs.n_ids; k++)
            if (!*cmd->jobs.ids[k] || strlen(cmd->jobs.ids[k]) > RVC_MAX_JOB_ID)
                r = fail(p, c->name, "'%s' is not a job id ('" PROG " list' shows yours)",
                         *cmd->jobs.ids[k] ? "(too long)" : "");
    }
    return r;
}

static const struct command *command_by_name(const char *name) {
    for (size_t i = 0; i < N_OF(commands); i++)
        if (strcmp(name, commands[i]->name) == 0)
            return commands[i];
    return NULL;
}

/* Help topics that are not commands. */
#define TOPIC_EXIT_CODES "exit-codes"

int rvc_cli_parse(int argc, char *const *argv, rvc_cmd *ret, char **ret_error) {
    struct parser p = {NULL};
    rvc_cmd cmd = {0};
    int r = RV_OK;
    int i = 1;

    /* Options before the command. */
    for (; i < argc && argv[i][0] == '-' && r == RV_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cmd.verb = RVC_VERB_HELP;
            break;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            cmd.verb = RVC_VERB_VERSION;
            break;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "--socket") == 0 || strncmp(a, "--socket=", 9) == 0) {
            const char *v = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
            if (cmd.socket)
                r = fail(&p, NULL, "option '--socket' given more than once");
            else if (!v)
                r = fail(&p, NULL, "option '--socket' needs a value (PATH)");
            else if (!*v)
                r = fail(&p, NULL, "option '--socket' needs the path of retrieverd's socket");
            else
                cmd.socket = v;
        } else {
            const char *name = a[1] == '-' ? a + 2 : a + 1;
            const char *eq = strchr(name, '=');
            const char *near =
                a[1] == '-' ? suggest_option(NULL, name, eq ? (size_t)(eq - name) : strlen(name))
                            : NULL;
            if (near)
                r = fail(&p, NULL, "unknown option '%s'; did you mean '--%s'?", a, near);
            else
                r = fail(&p, NULL, "unknown option '%s'", a);
        }
    }

    if (r == RV_OK && cmd.verb == 0) {
        const struct command *c = i < argc ? command_by_name(argv[i]) : NULL;
        if (i >= argc) {
            r = fail(&p, NULL, "no command given");
        } else if (c) {
            r = parse_command(&p, c, argc - i - 1, argv + i + 1, &cmd);
        } else if (strcmp(argv[i], "help") == 0) {
            cmd.verb = RVC_VERB_HELP;
            if (i + 1 < argc) {
                /* help COMMAND is COMMAND --help. */
                cmd.help_topic = argv[i + 1];
                const char *near = suggest_command(cmd.help_topic);
                if (strcmp(cmd.help_topic, TOPIC_EXIT_CODES) == 0)
                    ;
                else if (!command_by_name(cmd.help_topic) && near && strcmp(near, "help") != 0)
                    r = fail(&p, NULL, "no help for '%s': there is no such command; did you "
                             "mean '%s'?", cmd.help_topic, near);
                else if (!command_by_name(cmd.help_topic))
                    r = fail(&p, NULL, "no help for '%s': there is no such command (the "
                             "topics are the commands and '" TOPIC_EXIT_CODES "')",
                             cmd.help_topic);
                if (r == RV_OK && i + 2 < argc)
                    r = fail(&p, NULL, "'help' takes at most one command name");
            }
        } else {
            const char *near = suggest_command(argv[i]);
            if (near)
                r = fail(&p, NULL, "unknown command '%s'; did you mean '%s'?", argv[i], near);
            else
                r = fail(&p, NULL, "unknown command '%s'", argv[i]);
        }
    }

    if (r == RV_OK) {
        *ret = cmd;
        return RV_OK;
    }
    rvc_cmd_done(&cmd);
    if (r == RV_E_INVALID_ARGUMENT)
        *ret_error = p.error;
    else
        free(p.error);
    return r;
}

int rvc_download_own(rvc_download_opts *o, char *str) {
    char **v = str ? realloc(o->owned, (o->n_owned + 1) * sizeof(*v)) : NULL;
    if (!v) {
        free(str);
        return RV_E_NOMEM;
    }
    v[o->n_owned++] = str;
    o->owned = v;
    return RV_OK;
}

void rvc_cmd_done(rvc_cmd *c) {
    for (size_t i = 0; c->dl.inputs && i < c->dl.n_urls; i++)
        free(c->dl.inputs[i].headers);
    free(c->dl.inputs);
    c->dl.inputs = NULL;
    for (size_t i = 0; i < c->dl.n_owned; i++) {
        explicit_bzero(c->dl.owned[i], strlen(c->dl.owned[i]));
        free(c->dl.owned[i]);
    }
    free(c->dl.owned);
    free(c->dl.auth);
    c->dl.owned = NULL;
    c->dl.auth = NULL;
    c->dl.n_owned = 0;
    free(c->dl.headers);
    free(c->dl.urls);
    free(c->jobs.ids);
    c->jobs.ids = NULL;
    c->jobs.n_ids = 0;
    c->dl.headers = NULL;
    c->dl.urls = NULL;
    c->dl.n_headers = c->dl.n_urls = 0;
}

/* ------------------------------------------------------------------------
 * Help
 * ------------------------------------------------------------------------ */

/* The exit codes are listed once, by `help exit-codes` (and in
 * docs/cli.md); each command's help points there. */
static void print_exit_codes(FILE *f) {
    fputs("Exit codes (with several URLs: the code of the first URL, in command-line\n"
          "order, that failed; an interruption overrides them):\n",
          f);
    rvc_exit_print_table(f);
}

static void print_exit_pointer(FILE *f) {
    fputs("\nExit codes: " PROG " help " TOPIC_EXIT_CODES "\n", f);
}

/* The engine's default for option id, as the help shows it; false when the
 * option has no default worth showing. */
static bool opt_default(enum opt_id id, const rv_config *cfg, char *buf, size_t n) {
    switch (id) {
    case OPT_CONNECTIONS:
        snprintf(buf, n, "%u", cfg->max_connections_per_object);
        return true;
    case OPT_CHUNK_SIZE:
        if (cfg->chunk_size % (1u << 20) == 0)
            snprintf(buf, n, "%lluM", (unsigned long long)(cfg->chunk_size >> 20));
        else
            snprintf(buf, n, "%llu", (unsigned long long)cfg->chunk_size);
        return true;
    case OPT_HTTP2:
        snprintf(buf, n, "%s", cfg->http2 == RV_HTTP2_NEVER    ? "never"
                               : cfg->http2 == RV_HTTP2_ALWAYS ? "always"
                                                                : "auto");
        return true;
    case OPT_RETRIES:
        snprintf(buf, n, "%u", cfg->max_attempts ? cfg->max_attempts - 1 : 0);
        return true;
    case OPT_CONNECT_TIMEOUT:
        snprintf(buf, n, "%g", cfg->connect_timeout_ms / 1000.0);
        return true;
    case OPT_STALL_TIMEOUT:
        snprintf(buf, n, "%g", cfg->stall_timeout_ms / 1000.0);
        return true;
    case OPT_RETRY_REFUSED:
        snprintf(buf, n, "%g", cfg->connect_retry_ms / 1000.0);
        return true;
    default:
        return false;
    }
}

/* A note for options of one mode: "(--local only)". */
static const char *mode_note(enum opt_mode m) {
    switch (m) {
    case MODE_LOCAL:
        return "--local only";
    case MODE_DAEMON:
        return "daemon mode only";
    case MODE_ANY:
        break;
    }
    return NULL;
}

/* The mode shared by every option of the section starting at index i, or
 * MODE_ANY when they differ. */
static enum opt_mode section_mode(const struct command *c, size_t i) {
    bool any = false;
    enum opt_mode m = MODE_ANY;
    for (size_t k = i; k < c->n_opts && (k == i || !c->opts[k].section); k++) {
        if (opt_refused(c, c->opts[k].id))
            continue;
        if (any && c->opts[k].mode != m)
            return MODE_ANY;
        m = c->opts[k].mode;
        any = true;
    }
    return m;
}

/* The option table of c, by section; options of one mode are marked (the
 * section's title when all of it is, else the option). */
static void print_options(FILE *f, const struct command *c, const rv_config *cfg) {
    enum opt_mode marked = MODE_ANY; /* the current section's title carries it */
    const char *title = NULL;        /* the current section's, until printed */
    for (size_t i = 0; i < c->n_opts; i++) {
        const struct opt_def *o = &c->opts[i];
        char left[64];
        int n;
        if (o->section) {
            marked = section_mode(c, i);
            title = o->section;
        }
        if (opt_refused(c, o->id))
            continue; /* a section of refused options only is not shown */
        if (title) {
            if (marked != MODE_ANY)
                fprintf(f, "\n%s (%s):\n", title, mode_note(marked));
            else
                fprintf(f, "\n%s:\n", title);
            title = NULL;
        }
        if (o->short_name)
            n = snprintf(left, sizeof(left), "  -%c, --%s%s%s", o->short_name, o->long_name,
                         o->arg ? " " : "", o->arg ? o->arg : "");
        else
            n = snprintf(left, sizeof(left), "      --%s%s%s", o->long_name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
        fputs(left, f);
        /* Help column at 28; a long option name gets its help on the next line. */
        const int col = 28;
        if (n >= col - 1)
            fprintf(f, "\n%*s", col, "");
        else
            fprintf(f, "%*s", col - n, "");
        for (const char *h = o->help; *h; h++) {
            fputc(*h, f);
            if (*h == '\n')
                fprintf(f, "%*s", col, "");
        }
        if (o->mode != MODE_ANY && o->mode != marked)
            fprintf(f, "\n%*s(%s)", col, "", mode_note(o->mode));
        char def[32];
        if (cfg && opt_default(o->id, cfg, def, sizeof(def)))
            fprintf(f, "\n%*s(default: %s)", col, "", def);
        fputc('\n', f);
    }
}

static void print_download_help(FILE *f) {
    rv_config cfg;
    rv_config_init(&cfg);
    fputs("Usage: " PROG " download [--local] [OPTIONS] URL... | -i FILE\n"
          "\n"
          "Download each URL (http, https, file) to a file, with parallel ranged\n"
          "requests, retries, verification, and atomic delivery: a file appears under\n"
          "its final name only once it is complete and verified. Every URL and\n"
          "destination is checked before anything is downloaded; if one is rejected,\n"
          "nothing is.\n"
          "\n"
          "Without --local, retrieverd (the daemon) downloads and this command follows\n"
          "the job until it ends; Ctrl-C leaves it (retrieverd stops it unless another\n"
          "client follows it), --detach does not wait at all. With --local the engine\n"
          "runs in this process, with no daemon; when a retrieverd owns the default\n"
          "state directory, --local says so and downloads through it instead.\n"
          "\n"
          "Files get mode 0666 less this process's umask in both modes (it is sent to\n"
          "retrieverd with the request); a --link file is the cache's, mode 0400.\n",
          f);
    print_options(f, &cmd_download, &cfg);
    fputs("\n"
          "Progress goes to stderr: a bar per download and a total on a terminal,\n"
          "plain lines every 2 seconds otherwise. Errors go to stderr as\n"
          "  " PROG ": 'URL': message (detail)\n"
          "stdout carries only the --json lines (and the job id of --detach). In\n"
          "every line and in --json, URLs are redacted: no user:password, and query\n"
          "values shown as REDACTED but for a few harmless names (docs/security.md).\n",
          f);
    print_exit_pointer(f);
}

static void print_ping_help(FILE *f) {
    fputs("Usage: " PROG " ping [--socket PATH]\n"
          "\n"
          "Ask retrieverd for its version. Prints\n"
          "  retrieverd VERSION (API N) at SOCKET\n"
          "and exits 0 when it answers within 5 seconds; otherwise one line says why\n"
          "(nothing listens at the socket, not a socket, permission denied, no answer)\n"
          "and the exit code is 8 or 9.\n",
          f);
    print_options(f, &cmd_ping, NULL);
    print_exit_pointer(f);
}

static void print_cache_help(FILE *f) {
    fputs("Usage: " PROG " cache ls [--json] | rm URL... | clear | verify [--local]\n"
          "\n"
          "The cache of finished and partial downloads: retrieverd's (root or the\n"
          "daemon's own user only, as it is shared by every user of the daemon), or\n"
          "with --local the local state directory's.\n"
          "  ls      one line per entry: size, complete or partial, in use, URL\n"
          "  rm      remove every entry of each URL (whatever credentials fetched it)\n"
          "  clear   remove every entry\n"
          "  verify  read every entry back and check it against the CRC-32C recorded\n"
          "          when it was written; a bad entry is reported and removed\n"
          "An entry a running download uses is kept (reported as in-use). Files\n"
          "delivered by hard link keep their data. URLs are shown redacted.\n"
          "Exit 0; 6 when verify found a bad entry; 9 when retrieverd refuses.\n",
          f);
    print_options(f, &cmd_cache, NULL);
}

static void print_cat_help(FILE *f) {
    fputs("Usage: " PROG " cat [OPTIONS] URL     (also: download -o - URL)\n"
          "\n"
          "Write the object's bytes to standard output, in order, while it downloads:\n"
          "  " PROG " cat https://example.org/a.tar | tar x\n"
          "When the reader stops early (a closed pipe, e.g. | head -c 1) the read ends\n"
          "quietly with exit 0; the download goes on if other callers wait for it,\n"
          "else it is cancelled and keeps its durable ranges for a later resume.\n"
          "\n"
          "It takes download's options, in both modes, but for those about files,\n"
          "progress and JSON (-o, -d, -i, --detach, --force, --json...). With --sha256\n"
          "the bytes still go out as they arrive; the digest is known only at the end:\n"
          "then a line on stderr and the exit code say whether it matched (6: it did\n"
          "not, and what was written must not be used).\n",
          f);
    rv_config cfg;
    rv_config_init(&cfg);
    print_options(f, &cmd_cat, &cfg);
}

/* The download options the overview shows, with a summary each; their
 * spelling comes from the option table, the details from download --help. */
static const struct {
    enum opt_id id;
    const char *summary;
} common_opts[] = {
    {OPT_OUTPUT, "save to FILE"},
    {OPT_DIR, "save into DIR, named after each URL"},
    {OPT_CONNECTIONS, "N parallel connections per URL"},
    {OPT_SHA256, "check the file's sha256"},
    {OPT_LOCAL, "no daemon: download in this process"},
    {OPT_DETACH, "leave it to retrieverd, print the job id"},
    {OPT_JSON, "one JSON line per URL on stdout"},
    {OPT_QUIET, "errors only"},
};

/* The overview: one screen (at most 40 lines, a test checks), commands
 * and the most-used options; the details are in each command's help. */
static void print_overview(FILE *f) {
    fputs("Usage: " PROG " [--socket PATH] COMMAND [OPTIONS] [ARGS...]\n"
          "\n"
          "Download files with retriever: through retrieverd, the daemon, or with\n"
          "--local in this process.\n"
          "\n"
          "Commands:\n"
          "  download URL...  download URLs to files\n"
          "  cat URL          an object's bytes to stdout while it downloads\n"
          "  status [JOB]     a job, or retrieverd and your running jobs\n"
          "  list             your jobs (--all: ended ones too)\n"
          "  watch JOB        follow a job's progress until it ends\n"
          "  cancel JOB...    cancel jobs\n"
          "  cache ACTION     ls, rm, clear or verify the cache\n"
          "  stats            retrieverd's figures: jobs, bytes, cache\n"
          "  ping             check that retrieverd answers, and show its version\n"
          "  version          this program's and retrieverd's versions\n"
          "  help COMMAND     the options of COMMAND (the same as COMMAND --help)\n"
          "\n"
          "Most-used download options:\n",
          f);
    for (size_t k = 0; k < sizeof(common_opts) / sizeof(common_opts[0]); k++) {
        for (size_t i = 0; i < cmd_download.n_opts; i++) {
            const struct opt_def *o = &cmd_download.opts[i];
            if (o->id != common_opts[k].id)
                continue;
            char left[40];
            if (o->short_name)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->long_name,
                         o->arg ? " " : "", o->arg ? o->arg : "");
            else
                snprintf(left, sizeof(left), "    --%s%s%s", o->long_name, o->arg ? " " : "",
                         o->arg ? o->arg : "");
            fprintf(f, "  %-22s %s\n", left, common_opts[k].summary);
        }
    }
    fputs("\n"
          "Options:\n"
          "  -h, --help             show this help and exit\n"
          "  -V, --version          show the version and exit\n"
          "      --socket PATH      the socket of retrieverd; without it: $RETRIEVER_SOCKET,\n"
          "                         the system's, else a per-user one, started when\n"
          "                         none answers (--no-autostart: never)\n"
          "\n"
          "More: '" PROG " help COMMAND' for every option of a command,\n"
          "'" PROG " help " TOPIC_EXIT_CODES "' for the exit codes; the reference is\n"
          "'man retrieverctl', or docs/cli.md in the sources.\n",
          f);
}

/* The job commands' help: usage and what it does, then the options. */
static const struct {
    const struct command *c;
    const char *text;
} job_help[] = {
    {&cmd_status,
     "Usage: " PROG " status [--json] [JOB]\n"
     "\n"
     "With JOB: that job of yours, object by object (URL, destination, state,\n"
     "bytes, rate, ETA, retries, error). Without: which retrieverd answers and\n"
     "your queued and running jobs. Starts a per-user retrieverd when none answers\n"
     "(see '" PROG " help', \"Finding retrieverd\"), unless --no-autostart.\n"
     "An unknown id, and another user's job, are both \"no such job\" (exit 2).\n"},
    {&cmd_list,
     "Usage: " PROG " list [--json] [--all | --state STATE...]\n"
     "\n"
     "Your jobs, newest first, one line each: id, state, objects, bytes, rate,\n"
     "ETA, subscribers, retries, age, and the first URL (credentials removed).\n"
     "By default the queued and running ones.\n"},
    {&cmd_watch,
     "Usage: " PROG " watch [--json] JOB\n"
     "\n"
     "Follow a job of yours (e.g. one started with 'download --detach') with the\n"
     "same progress display as download, until it ends; the exit code is the\n"
     "job's, as download's would be. Ctrl-C stops watching; the job goes on if it\n"
     "was detached or others follow it.\n"},
    {&cmd_cancel,
     "Usage: " PROG " cancel [--json] JOB...\n"
     "\n"
     "Cancel your jobs: a detached job stops; a job others follow goes on for\n"
     "them. Prints each job's state afterwards. An unknown id, and another user's\n"
     "job, are both \"no such job\" (exit 2; the other ids are still cancelled).\n"},
    {&cmd_stats,
     "Usage: " PROG " stats [--json]\n"
     "\n"
     "retrieverd's figures: jobs running and queued, subscribers, connections,\n"
     "rate, bytes from origins and from the cache, and the cache's size.\n"},
    {&cmd_version,
     "Usage: " PROG " version [--json]\n"
     "\n"
     "This program's version, and retrieverd's version and API version when it\n"
     "answers (it is not started for this; exit 0 either way).\n"},
};

bool rvc_cli_help(FILE *f, const char *topic) {
    if (!topic) {
        print_overview(f);
    } else if (strcmp(topic, "download") == 0) {
        print_download_help(f);
    } else if (strcmp(topic, "ping") == 0) {
        print_ping_help(f);
    } else if (strcmp(topic, "cache") == 0) {
        print_cache_help(f);
    } else if (strcmp(topic, "cat") == 0) {
        print_cat_help(f);
    } else if (strcmp(topic, TOPIC_EXIT_CODES) == 0) {
        print_exit_codes(f);
    } else {
        for (size_t i = 0; i < N_OF(job_help); i++) {
            if (strcmp(topic, job_help[i].c->name) != 0)
                continue;
            fputs(job_help[i].text, f);
            print_options(f, job_help[i].c, NULL);
            return true;
        }
        return false;
    }
    return true;
}

void rvc_cli_version(FILE *f) {
    fputs(PROG " " RETRIEVER_VERSION "\n", f);
}
