/* main.c — retrieverd: parse, run, return. Everything else lives in
 * retrieverd_core, which the tests link too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"

int main(int argc, char **argv) {
    rvd_options o;
    char *error = NULL;

    int r = rvd_cli_parse(argc, argv, &o, &error);
    if (r < 0) {
        fprintf(stderr, "retrieverd: %s\n", error ? error : strerror(-r));
        free(error);
        return RVD_EXIT_USAGE;
    }
    switch (o.verb) {
    case RVD_VERB_HELP:
        rvd_cli_help(stdout);
        break;
    case RVD_VERB_VERSION:
        rvd_cli_version(stdout);
        break;
    case RVD_VERB_RUN:
        r = rvd_daemon_run(&o);
        rvd_cli_options_free(&o);
        return r;
    }
    if (fflush(stdout) != 0) {
        perror("retrieverd: cannot write to standard output");
        return RVD_EXIT_FAILURE;
    }
    return RVD_EXIT_OK;
}
