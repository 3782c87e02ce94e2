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

/* "--name=value" or "--name value": the value, advancing *i for the second
 * form; NULL when missing. */
static const char *option_value(int argc, char **argv, int *i, const char *arg, size_t name_len) {
    if (arg[name_len] == '=')
        return arg + name_len + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int rvd_cli_parse(int argc, char **argv, rvd_options *ret, char **ret_error) {
    rvd_options o = {
        .verb = RVD_VERB_RUN,
        .socket_path = NULL,
        .socket_mode = RVD_DEFAULT_SOCKET_MODE,
        .foreground = false,
    };
    char *msg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o.verb = RVD_VERB_HELP;
            break;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            o.verb = RVD_VERB_VERSION;
            break;
        }
        if (a[0] != '-')
            return usage(ret_error, rvd_strdupf("unexpected argument '%s'", a));
        if (a[1] != '-') /* no short options but -h and -V */
            return usage(ret_error, rvd_strdupf("unknown option '%s'", a));

        size_t n = 2 + strcspn(a + 2, "=");
        char name[64];
        int k = -1;
        if (n - 2 < sizeof(name)) {
            memcpy(name, a + 2, n - 2);
            name[n - 2] = '\0';
            k = rvd_settings_key_find(name);
        } else {
            name[0] = '\0';
        }
        if (strcmp(name, "foreground") == 0) {
            if (a[n] == '=')
                return usage(ret_error, rvd_strdupf("option '--foreground' takes no value"));
            o.foreground = true;
        } else if (strcmp(name, "config") == 0) {
            const char *v = option_value(argc, argv, &i, a, n);
            if (!v)
                return usage(ret_error, rvd_strdupf("option '--config' needs a path"));
            if (v[0] != '/')
                return usage(ret_error,
                             rvd_strdupf("invalid value '%s' for --config: expected an absolute "
                                         "path (starting with '/')",
                                         v));
            o.args.config = v;
        } else if (k >= 0) {
            const char *v = option_value(argc, argv, &i, a, n);
            int r = rvd_settings_check((rvd_key)k, v, &msg);
            if (r < 0)
                return r == -ENOMEM && !msg ? -ENOMEM : usage(ret_error, msg);
            o.args.value[k] = v;
            if (k == RVD_KEY_SOCKET)
                o.socket_path = v;
            else if (k == RVD_KEY_SOCKET_MODE)
                o.socket_mode = (mode_t)strtoul(v, NULL, 8); /* checked above */
        } else {
            char word[64];
            snprintf(word, sizeof(word), "%.*s", (int)(n - 2 < 63 ? n - 2 : 63), a + 2);
            const char *hint = rvd_settings_suggest(word, true);
            return usage(ret_error, rvd_strdupf("unknown option '%s'%s%s%s", a,
                                                hint ? "; did you mean '--" : "", hint ? hint : "",
                                                hint ? "'?" : ""));
        }
    }
    *ret = o;
    return 0;
}

int rvd_cli_load(rvd_options *o, const rvd_settings_env *env, char **ret_error) {
    rvd_settings s;
    int r = rvd_settings_load(env, &o->args, &s, ret_error);
    if (r < 0)
        return r;
    rvd_settings_free(&o->settings);
    o->settings = s;
    o->env = *env;
    o->socket_path = o->settings.socket;
    o->socket_mode = o->settings.socket_mode;
    return 0;
}

void rvd_cli_options_free(rvd_options *o) {
    if (!o)
        return;
    rvd_settings_free(&o->settings);
    o->socket_path = o->args.value[RVD_KEY_SOCKET];
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
          "socket (docs/api.md). Stop it with SIGTERM or SIGINT; SIGHUP re-reads the\n"
          "config file and applies the settings marked [SIGHUP].\n"
          "\n"
          "Run by root without XDG_RUNTIME_DIR, it is a system daemon (/run/retriever,\n"
          "/var/lib/retriever, /var/cache/retriever); otherwise a per-user one\n"
          "(XDG directories, as 'retrieverctl download --local' uses). See\n"
          "docs/daemon.md.\n"
          "\n"
          "Options:\n"
          "  --config PATH               read settings from PATH, which must exist\n"
          "                              (default, may be missing: $XDG_CONFIG_HOME/\n"
          "                              retriever/retrieverd.conf, else ~/.config/...;\n"
          "                              system: /etc/retriever/retrieverd.conf)\n"
          "  --foreground                stay in the foreground (always the case)\n"
          "  -h, --help                  show this help and exit\n"
          "  -V, --version               show the version and exit\n"
          "\n"
          "Settings: each is also a key of the config file ('key = value'); a flag\n"
          "overrides the file, the file the defaults. Paths are absolute; a SIZE is\n"
          "bytes or has a K, M, G or T suffix (powers of 1024).\n",
          f);
    rvd_settings_help(f);
    fputs("\n"
          "Exit status: 0 after a clean stop, 1 when it could not start or stop\n"
          "cleanly, 2 on a usage error.\n",
          f);
}

void rvd_cli_version(FILE *f) {
    fprintf(f, "retrieverd %s (API retriever.v1)\n", RETRIEVERD_VERSION);
}
