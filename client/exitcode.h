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
    X(RVC_EXIT_INTERNAL, 1,                                                                    \
      "internal error (out of memory, engine failure, the daemon mode's module missing, "      \
      "an unexpected answer from retrieverd)")                                                 \
    X(RVC_EXIT_USAGE, 2,                                                                       \
      "usage error: unknown option, bad value or combination, no URL; or retrieverd found "    \
      "the request invalid")                                                                   \
    X(RVC_EXIT_LOCAL, 3,                                                                       \
      "local file problem: destination unwritable, a directory, shared by two URLs, "          \
      "no space, I/O error, too large")                                                        \
    X(RVC_EXIT_TEMPORARY, 4,                                                                   \
      "network or origin failing for now (connect, DNS, timeout, truncated body, "             \
      "server errors, throttling, Retry-After too long), or retrieverd too busy; retrying "    \
      "later may work")                                                                        \
    X(RVC_EXIT_REFUSED, 5,                                                                     \
      "origin refused (not found, access denied, other HTTP error status), bad URL, "          \
      "unsupported scheme, TLS failure, too many redirects")                                   \
    X(RVC_EXIT_VERIFY, 6, "verification failed: size or sha256 mismatch")                     \
    X(RVC_EXIT_PROTOCOL, 7, "origin sent an invalid response, or the object changed during the download") \
    X(RVC_EXIT_DAEMON_UNAVAILABLE, 8,                                                          \
      "retrieverd cannot be reached: nothing listens at its socket, the path is not a "        \
      "socket, no answer in time, or it is stopping")                                          \
    X(RVC_EXIT_DAEMON_REFUSED, 9,                                                              \
      "retrieverd refused: permission denied (its socket, this user, a destination or a "      \
      "file:// source), or it does not support the request")                                   \
    X(RVC_EXIT_DEST_EXISTS, 10,                                                                \
      "the destination exists: download neither replaces it without --force nor skips it "     \
      "without --no-clobber; nothing was downloaded")                                          \
    X(RVC_EXIT_SIGINT, 130,                                                                    \
      "interrupted by SIGINT (Ctrl-C): unfinished downloads were cancelled (through "          \
      "retrieverd: unless another client follows the job) and their durable part kept; "       \
      "running the same command resumes them (--no-state: nothing kept)")                      \
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

/* The exit code for a call to retrieverd that ended with the gRPC status
 * code (rvc_rpc_code, rpc.h): OK 0; INVALID_ARGUMENT, OUT_OF_RANGE
 * RVC_EXIT_USAGE; RESOURCE_EXHAUSTED RVC_EXIT_TEMPORARY; UNAVAILABLE,
 * DEADLINE_EXCEEDED RVC_EXIT_DAEMON_UNAVAILABLE; PERMISSION_DENIED,
 * UNAUTHENTICATED, UNIMPLEMENTED RVC_EXIT_DAEMON_REFUSED; anything else
 * RVC_EXIT_INTERNAL (CANCELLED too: the command line cancels only when
 * interrupted, and then exits with rvc_exit_for_signal). A download's own
 * failure is not a status: it arrives as an rv_error (rvc_exit_code). */
rvc_exit rvc_exit_for_rpc(int rpc_code);

/* 128 + signo for SIGINT and SIGTERM (the documented ones); else
 * RVC_EXIT_INTERNAL. */
rvc_exit rvc_exit_for_signal(int signo);

/* The table's description of code, or NULL when code is not in the table. */
const char *rvc_exit_describe(int code);

/* Print the table as "  N  description" lines (the --help epilogue). */
void rvc_exit_print_table(FILE *f);

#endif
