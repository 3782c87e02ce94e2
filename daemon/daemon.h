/* daemon.h — retrieverd's life: take the socket, serve, stop on a signal.
 *
 *   1. SIGTERM/SIGINT/SIGHUP are blocked before any thread exists (gRPC
 *      starts several), so every thread inherits the mask and only the
 *      main thread receives them, synchronously, with sigtimedwait():
 *      nothing runs in a signal handler. SIGPIPE is ignored.
 *   2. The settings (config.h): defaults, the config file, the flags.
 *   3. The engine and the job table on the worker thread (worker.h),
 *      which recovers the durable state first.
 *   4. The socket: the one systemd passed (sd_listen_fds), else bound at
 *      the configured path (socket.h).
 *   5. The gRPC server (server.h), then the accept thread handing each
 *      admitted connection to it.
 *   6. Ready: sd_notify("READY=1"), and the line "ready '<path>'" on stderr
 *      — tests and scripts wait for it instead of polling. While serving,
 *      STATUS= says what runs (every 2 s), and with WATCHDOG_USEC set the
 *      watchdog is fed at half its period, but only when the engine
 *      thread's loop went round since the previous tick poked it.
 *   7. SIGHUP: reload the configuration (RELOADING=1 … READY=1); the keys
 *      that can change live do, the others are logged as waiting for a
 *      restart; a broken file changes nothing.
 *   8. On SIGTERM/SIGINT: sd_notify("STOPPING=1"); stop accepting and
 *      remove the socket file we bound; open streams end UNAVAILABLE and
 *      no job is accepted; running calls get RVD_SHUTDOWN_GRACE_MS, then
 *      are cancelled; the engine closes, keeping its durable state for the
 *      next start. Everything is over within RVD_SHUTDOWN_BOUND_MS or the
 *      daemon exits with status 1.
 */
#ifndef RVD_DAEMON_H
#define RVD_DAEMON_H

#include "cli.h"

#define RVD_SHUTDOWN_GRACE_MS 1000
#define RVD_SHUTDOWN_BOUND_MS 4000

/* Run until stopped; returns the exit status (RVD_EXIT_*). Logs every
 * failure itself, once. Call from main, before any thread is created. */
/* o comes from rvd_cli_parse; the settings are resolved here
 * (rvd_cli_load) and replaced on reload. */
int rvd_daemon_run(rvd_options *o);

#endif
