/* cli.c — retrieverd's argument parser and help text. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#ifndef RETRIEVERD_VERSION
#define RETRIEVERD_VERSION "unknown"
#endif

#define HINT "\nTry 'retrieverd --help' for more information."

static int usage(char **ret_error, char *msg) {
    if (!msg)
        return -ENOMEM;
    char *full = rvd_strdupf("%s" HINT, msg);
    free(msg);
    if (!full)
        return -ENOMEM;
    *ret_error = full;
    return -EINVAL;
}

/* "0600", "600", "0660": octal, at most 4 digits, at most 0777, and the
 * owner may read and write (else the daemon's own clients are shut out). */
static int parse_mode(const char *s, mode_t *ret) {
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
    *ret = (mode_t)v;
    return 0;
}

/* "--name=value" or "--name value": the value, advancing *i for the second
 * form; NULL when missing. */
static const char *option_value(int argc, char **argv, int *i, const char *arg, size_t name_len) {
    if (arg[name_len] == '=')
        return arg + name_len + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static bool is_option(const char *arg, const char *name, size_t *ret_len) {
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
        return false;
    *ret_len = n;
    return true;
}

int rvd_cli_parse(int argc, char **argv, rvd_options *ret, char **ret_error) {
    rvd_options o = {
        .verb = RVD_VERB_RUN,
        .socket_path = NULL,
        .socket_mode = RVD_DEFAULT_SOCKET_MODE,
        .foreground = false,
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t n;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o.verb = RVD_VERB_HELP;
            break;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            o.verb = RVD_VERB_VERSION;
            break;
        }
        if (strcmp(a, "--foreground") == 0) {
            o.foreground = true;
        } else if (is_option(a, "--socket", &n)) {
            const char *v = option_value(argc, argv, &i, a, n);
            if (!v)
                return usage(ret_error, rvd_strdupf("option '--socket' needs a path"));
            if (*v == '\0')
                return usage(ret_error, rvd_strdupf("option '--socket' needs a non-empty path"));
            o.socket_path = v;
        } else if (is_option(a, "--socket-mode", &n)) {
            const char *v = option_value(argc, argv, &i, a, n);
            if (!v)
                return usage(ret_error, rvd_strdupf("option '--socket-mode' needs an octal mode"));
            if (parse_mode(v, &o.socket_mode) < 0)
                return usage(ret_error,
                             rvd_strdupf("invalid socket mode '%s': expected octal permission bits "
                                         "from 0600 to 0777 that include 0600 (owner read and "
                                         "write), e.g. 0660",
                                         v));
        } else if (a[0] == '-') {
            return usage(ret_error, rvd_strdupf("unknown option '%s'", a));
        } else {
            return usage(ret_error, rvd_strdupf("unexpected argument '%s'", a));
        }
    }
    *ret = o;
    return 0;
}

int rvd_default_socket_path(const char *xdg_runtime_dir, char **ret, char **ret_error) {
    if (!xdg_runtime_dir || !*xdg_runtime_dir) {
        *ret_error = rvd_strdupf("XDG_RUNTIME_DIR is not set, so there is no per-user socket "
                                 "path; pass --socket PATH");
        return *ret_error ? -EINVAL : -ENOMEM;
    }
    if (xdg_runtime_dir[0] != '/') {
        *ret_error = rvd_strdupf("XDG_RUNTIME_DIR '%s' is not an absolute path; pass --socket "
                                 "PATH",
                                 xdg_runtime_dir);
        return *ret_error ? -EINVAL : -ENOMEM;
    }
    size_t n = strlen(xdg_runtime_dir);
    while (n > 1 && xdg_runtime_dir[n - 1] == '/')
        n--;
    char *p = rvd_strdupf("%.*s/" RVD_SOCKET_SUBDIR "/" RVD_SOCKET_NAME, (int)n, xdg_runtime_dir);
    if (!p)
        return -ENOMEM;
    *ret = p;
    return 0;
}

void rvd_cli_help(FILE *f) {
    fputs("Usage: retrieverd [OPTIONS]\n"
          "\n"
          "The retriever download daemon: serves the retriever.v1 gRPC API on a Unix\n"
          "socket (docs/api.md). Stop it with SIGTERM or SIGINT.\n"
          "\n"
          "Options:\n"
          "  --socket PATH        listen on PATH (default for a per-user daemon:\n"
          "                       $XDG_RUNTIME_DIR/" RVD_SOCKET_SUBDIR "/" RVD_SOCKET_NAME ");\n"
          "                       a missing parent directory is created (0700);\n"
          "                       a socket started by systemd is used instead\n"
          "  --socket-mode OCTAL  permission bits of the socket file, which decide\n"
          "                       who may connect (default 0600: this user only;\n"
          "                       0660: also the file's group)\n"
          "  --foreground         stay in the foreground (always the case for now)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n"
          "\n"
          "Exit status: 0 after a clean stop, 1 when it could not start or stop\n"
          "cleanly, 2 on a usage error.\n",
          f);
}

void rvd_cli_version(FILE *f) {
    fprintf(f, "retrieverd %s (API retriever.v1)\n", RETRIEVERD_VERSION);
}
