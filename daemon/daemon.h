/* daemon.h — retrieverd's life: take the socket, serve, stop on a signal.
 *
 *   1. SIGTERM/SIGINT are blocked before any thread exists (gRPC starts
 *      several), so every thread inherits the mask and only the main
 *      thread receives them, synchronously, with sigwaitinfo(): nothing
 *      runs in a signal handler. SIGPIPE is ignored.
 *   2. The socket: the one systemd passed (sd_listen_fds), else bound at
 *      --socket or the per-user default (socket.h).
 *   3. The gRPC server (server.h), then the accept thread handing each
 *      admitted connection to it.
 *   4. Ready: sd_notify("READY=1"), and the line "ready '<path>'" on stderr
 *      — tests and scripts wait for it instead of polling.
 *   5. On SIGTERM/SIGINT: sd_notify("STOPPING=1"); stop accepting and
 *      remove the socket file we bound; shut the server down (running calls
 *      get RVD_SHUTDOWN_GRACE_MS, then are cancelled); everything is over
 *      within RVD_SHUTDOWN_BOUND_MS or the daemon exits with status 1.
 */
#ifndef RVD_DAEMON_H
#define RVD_DAEMON_H

#include "cli.h"

#define RVD_SHUTDOWN_GRACE_MS 1000
#define RVD_SHUTDOWN_BOUND_MS 4000

/* Run until stopped; returns the exit status (RVD_EXIT_*). Logs every
 * failure itself, once. Call from main, before any thread is created. */
int rvd_daemon_run(const rvd_options *o);

#endif
