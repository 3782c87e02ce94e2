/* cli.h — retrieverd's command line.
 *
 *   retrieverd [--socket PATH] [--socket-mode OCTAL] [--foreground]
 *   retrieverd -h | --help
 *   retrieverd -V | --version
 *
 * Values go as "--name value" or "--name=value". Pure: no I/O except the
 * explicit help/version printers, no globals (getopt's state is global).
 */
#ifndef RVD_CLI_H
#define RVD_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit statuses of retrieverd. */
#define RVD_EXIT_OK 0      /* stopped by SIGTERM/SIGINT, or help/version */
#define RVD_EXIT_FAILURE 1 /* could not start, or could not stop cleanly */
#define RVD_EXIT_USAGE 2   /* bad command line */

#define RVD_DEFAULT_SOCKET_MODE 0600
/* Below $XDG_RUNTIME_DIR for a per-user daemon. */
#define RVD_SOCKET_SUBDIR "retriever"
#define RVD_SOCKET_NAME "retrieverd.sock"

typedef enum rvd_verb {
    RVD_VERB_RUN = 1,
    RVD_VERB_HELP,
    RVD_VERB_VERSION,
} rvd_verb;

typedef struct rvd_options {
    rvd_verb verb;
    const char *socket_path; /* --socket; NULL: the default (rvd_default_socket_path);
                                borrowed from argv */
    mode_t socket_mode;      /* --socket-mode; RVD_DEFAULT_SOCKET_MODE when absent */
    bool foreground;         /* --foreground (retrieverd always runs in the foreground) */
} rvd_options;

/* Parse argv[1..argc-1]. argv must outlive *ret. 0: *ret filled. -EINVAL:
 * a usage error, *ret_error a malloc'd message (no "retrieverd: " prefix,
 * ends with a pointer to --help), owned by the caller. -ENOMEM: no
 * message. */
int rvd_cli_parse(int argc, char **argv, rvd_options *ret, char **ret_error);

/* The per-user default socket path, $XDG_RUNTIME_DIR/retriever/retrieverd.sock,
 * from the given value of XDG_RUNTIME_DIR (NULL when unset). 0: *ret is a
 * malloc'd path. -EINVAL: unset, empty or relative, with *ret_error a
 * malloc'd sentence. -ENOMEM. */
int rvd_default_socket_path(const char *xdg_runtime_dir, char **ret, char **ret_error);

void rvd_cli_help(FILE *f);
void rvd_cli_version(FILE *f);

#endif
