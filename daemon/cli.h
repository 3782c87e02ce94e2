/* cli.h — retrieverd's command line.
 *
 *   retrieverd [--config PATH] [--foreground] [--KEY VALUE]...
 *   retrieverd -h | --help
 *   retrieverd -V | --version
 *
 * Every key of the config file is also a flag (--socket, --state-dir,
 * --max-running-jobs, ...; config.h has the list). Values go as
 * "--name value" or "--name=value"; a flag given twice keeps the last.
 *
 * Two steps: rvd_cli_parse reads argv (pure: it checks each value but
 * reads no file and no environment), then rvd_cli_load resolves the
 * settings against the environment and the config file (config.h).
 */
#ifndef RVD_CLI_H
#define RVD_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"

/* Exit statuses of retrieverd. */
#define RVD_EXIT_OK 0      /* stopped by SIGTERM/SIGINT, or help/version */
#define RVD_EXIT_FAILURE 1 /* could not start, or could not stop cleanly */
#define RVD_EXIT_USAGE 2   /* bad command line */

#define RVD_DEFAULT_SOCKET_MODE 0600

typedef enum rvd_verb {
    RVD_VERB_RUN = 1,
    RVD_VERB_HELP,
    RVD_VERB_VERSION,
} rvd_verb;

typedef struct rvd_options {
    rvd_verb verb;
    /* socket_path and socket_mode: after rvd_cli_parse, the flags (NULL:
     * --socket not given; RVD_DEFAULT_SOCKET_MODE when --socket-mode is
     * absent); after rvd_cli_load, the resolved settings.socket (borrowed
     * from settings; NULL when systemd passes the socket) and
     * settings.socket_mode. */
    const char *socket_path;
    mode_t socket_mode;
    bool foreground;        /* --foreground (retrieverd always runs in the foreground) */
    rvd_settings_args args; /* --config and the --KEY flags, borrowed from argv: what
                               rvd_settings_reload re-applies on SIGHUP */
    rvd_settings_env env;   /* after rvd_cli_load: the environment it resolved against
                               (pass it to rvd_settings_reload) */
    rvd_settings settings;  /* zero after rvd_cli_parse; the resolved settings after
                               rvd_cli_load, owned by *o (rvd_cli_options_free) */
} rvd_options;

/* Parse argv[1..argc-1]. argv must outlive *ret. Each value is checked
 * (rvd_settings_check), so a bad one is a usage error here. 0: *ret
 * filled. -EINVAL: a usage error, *ret_error a malloc'd message (no
 * "retrieverd: " prefix, ends with a pointer to --help), owned by the
 * caller. -ENOMEM: no message. */
int rvd_cli_parse(int argc, char **argv, rvd_options *ret, char **ret_error);

/* Resolve o->settings with rvd_settings_load(env, &o->args) and keep a copy
 * of *env in o->env (its strings stay borrowed). 0: o->settings, o->env,
 * o->socket_path and o->socket_mode set. Errors as rvd_settings_load
 * (*ret_error a malloc'd sentence naming the file and line, or the missing
 * default); *o unchanged. The flags were checked by rvd_cli_parse, so an
 * error here is about the file or the environment: exit RVD_EXIT_FAILURE. */
int rvd_cli_load(rvd_options *o, const rvd_settings_env *env, char **ret_error);

/* Free what rvd_cli_load put in *o (settings); the rest is borrowed. */
void rvd_cli_options_free(rvd_options *o);

/* The per-user default socket path, $XDG_RUNTIME_DIR/retriever/retrieverd.sock,
 * from the given value of XDG_RUNTIME_DIR (NULL when unset). 0: *ret is a
 * malloc'd path. -EINVAL: unset, empty or relative, with *ret_error a
 * malloc'd sentence. -ENOMEM. */
int rvd_default_socket_path(const char *xdg_runtime_dir, char **ret, char **ret_error);

void rvd_cli_help(FILE *f);
void rvd_cli_version(FILE *f);

#endif
