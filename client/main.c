/* main.c — retrieverctl: parse, dispatch (--local: local.c; ping and the
 * daemon mode: remote.c, in the module retrieverctl-remote.so that
 * remotemod.c loads), return. Everything else lives in retrieverctl_core,
 * which the tests link too. */
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cachecmd.h"
#include "cli.h"
#include "s3expand.h"
#include "dest.h"
#include "input.h"
#include "exitcode.h"
#include "local.h"
#include "remotemod.h"
#include "secrets.h"
#include "retriever/rv_error.h"

int main(int argc, char **argv) {
    rvc_cmd cmd;
    char *error = NULL;
    const rvc_remote_module *remote = NULL;
    int code;

    /* The character set only (not number formats: --json prints numbers
     * with '.'): the progress display counts display columns with
     * wcwidth(), which needs to know the terminal's encoding. */
    setlocale(LC_CTYPE, "");

    /* A closed stdout (--json | head -1) must be a write error, not death. */
    signal(SIGPIPE, SIG_IGN);

    int r = rvc_cli_parse(argc, argv, &cmd, &error);
    if (r == RV_E_INVALID_ARGUMENT) {
        fprintf(stderr, "retrieverctl: %s\n", error);
        free(error);
        return RVC_EXIT_USAGE;
    }
    if (r != RV_OK) {
        fprintf(stderr, "retrieverctl: %s\n", rv_strerror(r));
        return rvc_exit_code(r);
    }

    /* The umask is read by setting it: here, with one thread and nothing
     * being created, putting it back at once changes nothing. The daemon
     * gives deliveries 0666 less it, as --local's files get (remote.c). */
    mode_t mask = umask(077);
    umask(mask);
    cmd.dl.umask = (unsigned)mask;
    /* Header files, $RETRIEVER_HEADERS and the netrc are read once the
     * command line is known to be good, before anything is downloaded. */
    if (cmd.verb == RVC_VERB_DOWNLOAD && cmd.dl.input_file) {
        /* -i FILE's URLs join the command line's before anything else
         * looks at the list (--no-clobber, the netrc, the run). */
        r = rvc_input_read(&cmd.dl, stdin, &error);
        if (r != RV_OK) {
            fprintf(stderr, "retrieverctl: %s\n", r == RV_E_INVALID_ARGUMENT ? error : rv_strerror(r));
            free(error);
            rvc_cmd_done(&cmd);
            return r == RV_E_INVALID_ARGUMENT ? RVC_EXIT_USAGE : rvc_exit_code(r);
        }
    }
    if (cmd.verb == RVC_VERB_DOWNLOAD) {
        /* s3://bucket/prefix/ and patterns become one URL per key, listed
         * as the caller, before anything else looks at the list. */
        bool listing = false;
        for (size_t i = 0; i < cmd.dl.n_urls && !listing; i++)
            listing = rvc_s3_is_listing(cmd.dl.urls[i]);
        if (listing && (r = rvc_s3_expand(&cmd.dl, stderr, &error)) != RV_OK) {
            fprintf(stderr, "retrieverctl: %s\n", error ? error : rv_strerror(r));
            free(error);
            rvc_cmd_done(&cmd);
            return r == RV_E_INVALID_ARGUMENT ? RVC_EXIT_USAGE : rvc_exit_code(r);
        }
    }
    if (cmd.verb == RVC_VERB_DOWNLOAD && cmd.dl.no_clobber) {
        /* Skipped URLs are gone before anything is read or asked for them;
         * when none is left there is nothing to do, and that is success. */
        r = rvc_skip_existing(&cmd.dl, cmd.dl.quiet ? NULL : stderr,
                              cmd.dl.json ? stdout : NULL);
        if (r != RV_OK || cmd.dl.n_urls == 0) {
            if (r != RV_OK)
                fprintf(stderr, "retrieverctl: %s\n", rv_strerror(r));
            rvc_cmd_done(&cmd);
            return rvc_exit_code(r);
        }
    }
    if (cmd.verb == RVC_VERB_DOWNLOAD || cmd.verb == RVC_VERB_CAT) {
        /* cat takes download's options: its secrets are read alike. */
        const char *home = getenv("HOME");
        if (!home || !*home) {
            const struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
        r = rvc_secrets_resolve(&cmd.dl, getenv(RVC_HEADERS_ENV), home, stdin,
                                cmd.dl.quiet ? NULL : stderr, &error);
        if (r != RV_OK) {
            if (r == RV_E_INVALID_ARGUMENT) {
                fprintf(stderr, "retrieverctl: %s\n", error);
                free(error);
            } else {
                fprintf(stderr, "retrieverctl: %s\n", rv_strerror(r));
            }
            rvc_cmd_done(&cmd);
            return r == RV_E_INVALID_ARGUMENT ? RVC_EXIT_USAGE : rvc_exit_code(r);
        }
        /* --user's password is in the Authorization line now: wipe it from
         * argv (the parser lends argv's own bytes, which are writable), so
         * /proc/PID/cmdline shows it only until here, as curl does. */
        if (cmd.dl.user) {
            char *pass = strchr((char *)cmd.dl.user, ':');
            if (pass)
                explicit_bzero(pass + 1, strlen(pass + 1));
            cmd.dl.user = NULL;
        }
        /* --proxy's password likewise: scheme://user:PASSWORD@host... */
        if (cmd.dl.proxy_argv) {
            char *a = (char *)cmd.dl.proxy_argv, *start = strstr(a, "://");
            start = start ? start + 3 : a;
            char *at = strchr(start, '@'), *slash = strchr(start, '/');
            char *colon = at && (!slash || at < slash) ? memchr(start, ':', (size_t)(at - start))
                                                       : NULL;
            if (colon)
                explicit_bzero(colon + 1, (size_t)(at - colon - 1));
            cmd.dl.proxy_argv = NULL;
        }
    }

    switch (cmd.verb) {
    case RVC_VERB_HELP:
        rvc_cli_help(stdout, cmd.help_topic);
        code = RVC_EXIT_OK;
        break;
    case RVC_VERB_VERSION:
        rvc_cli_version(stdout);
        code = RVC_EXIT_OK;
        break;
    case RVC_VERB_DOWNLOAD:
        if (cmd.dl.local) {
            code = rvc_local_download(&cmd.dl, stdout, stderr);
            /* A retrieverd owns the state directory: it downloads, as if
             * --local was not given (no daemon is started for it). */
            if (code == RVC_LOCAL_HANDOVER &&
                (code = rvc_remotemod_load(stderr, &remote)) == RVC_EXIT_OK) {
                cmd.dl.local = false;
                cmd.dl.no_autostart = true;
                code = remote->download(&cmd.dl, cmd.socket, stdout, stderr);
            }
        } else if ((code = rvc_remotemod_load(stderr, &remote)) == RVC_EXIT_OK)
            code = remote->download(&cmd.dl, cmd.socket, stdout, stderr);
        break;
    case RVC_VERB_CACHE:
        if (cmd.dl.local)
            code = rvc_local_cache(&cmd, stdout, stderr);
        else if ((code = rvc_remotemod_load(stderr, &remote)) == RVC_EXIT_OK)
            code = remote->cache(&cmd, cmd.socket, stdout, stderr);
        break;
    case RVC_VERB_CAT:
        /* stdout carries the bytes: nothing else may go there. */
        if (cmd.dl.local)
            code = rvc_local_cat(&cmd.dl, stdout, stderr);
        else if ((code = rvc_remotemod_load(stderr, &remote)) == RVC_EXIT_OK)
            code = remote->cat(&cmd.dl, cmd.socket, stdout, stderr);
        break;
    case RVC_VERB_PING:
        if ((code = rvc_remotemod_load(stderr, &remote)) == RVC_EXIT_OK)
            code = remote->ping(cmd.socket, stdout, stderr);
        break;
    case RVC_VERB_STATUS:
    case RVC_VERB_LIST:
    case RVC_VERB_WATCH:
    case RVC_VERB_CANCEL:
    case RVC_VERB_STATS:
    case RVC_VERB_DVERSION:
        if ((code = rvc_remotemod_load(stderr, &remote)) == RVC_EXIT_OK)
            code = remote->jobs(&cmd, stdout, stderr);
        break;
    default:
        code = RVC_EXIT_INTERNAL;
        break;
    }
    rvc_cmd_done(&cmd);
    if (fflush(stdout) != 0 && code == RVC_EXIT_OK) {
        perror("retrieverctl: cannot write to standard output");
        code = RVC_EXIT_LOCAL;
    }
    return code;
}
