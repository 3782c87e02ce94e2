/* exitcode.h — retrieverctl's exit codes and the one mapping from rv_error.
 *
 * The exit codes are part of the command line's interface: scripts branch on
 * them. Numbers never change; new classes get new numbers. The table below is
 * the only place they are defined; --help prints it and docs/cli.md copies it
 * (a test checks that every code is documented there).
 *
 * Columns: enum name, number, one-line description.
 */
#ifndef RVC_EXITCODE_H
#define RVC_EXITCODE_H

#include <stdio.h>

#define RVC_EXITS(X)                                                                           \
    X(RVC_EXIT_OK, 0, "every download finished and was verified")                              \
    X(RVC_EXIT_INTERNAL, 1, "internal error (out of memory, engine failure)")                   \
    X(RVC_EXIT_USAGE, 2, "usage error: unknown option, bad value or combination, no URL")       \
    X(RVC_EXIT_LOCAL, 3,                                                                       \
      "local file problem: destination unwritable, a directory, shared by two URLs, "          \
      "no space, I/O error, too large")                                                        \
    X(RVC_EXIT_TEMPORARY, 4,                                                                   \
      "network or origin failing for now (connect, DNS, timeout, truncated body, "             \
      "server errors, throttling, Retry-After too long); retrying later may work")             \
    X(RVC_EXIT_REFUSED, 5,                                                                     \
      "origin refused (not found, access denied, other HTTP error status), bad URL, "          \
      "unsupported scheme, TLS failure, too many redirects")                                   \
    X(RVC_EXIT_VERIFY, 6, "verification failed: size or sha256 mismatch")                     \
    X(RVC_EXIT_PROTOCOL, 7, "origin sent an invalid response, or the object changed during the download") \
    X(RVC_EXIT_SIGINT, 130, "interrupted by SIGINT (Ctrl-C); unfinished downloads cancelled, temporary files removed") \
    X(RVC_EXIT_SIGTERM, 143, "terminated by SIGTERM; as for SIGINT")

typedef enum rvc_exit {
#define RVC_EXIT_ENUM_(name, num, desc) name = num,
    RVC_EXITS(RVC_EXIT_ENUM_)
#undef RVC_EXIT_ENUM_
} rvc_exit;

/* The exit code for a failure with rv_error code. RV_OK gives 0; numbers
 * outside the table give RVC_EXIT_INTERNAL. RV_E_CANCELLED gives
 * RVC_EXIT_SIGINT: the command line cancels only when interrupted (the run
 * itself uses rvc_exit_for_signal when it knows the signal). */
rvc_exit rvc_exit_code(int rv_err);

/* 128 + signo for SIGINT and SIGTERM (the documented ones); else
 * RVC_EXIT_INTERNAL. */
rvc_exit rvc_exit_for_signal(int signo);

/* The table's description of code, or NULL when code is not in the table. */
const char *rvc_exit_describe(int code);

/* Print the table as "  N  description" lines (the --help epilogue). */
void rvc_exit_print_table(FILE *f);

#endif
