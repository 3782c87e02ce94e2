/* daemonfind.h — which retrieverd to talk to, and starting a per-user one
 * when none answers (in the daemon mode's module, retrieverctl-remote.so).
 *
 * The order (docs/cli.md, "Finding the daemon"):
 *   1. --socket PATH                      used as given, never autostarted
 *   2. $RETRIEVER_SOCKET                  the same
 *   3. RVC_SYSTEM_SOCKET                  when it exists, this user may write
 *                                         it, and connect(2) succeeds there
 *                                         (a socket-activated unit's socket
 *                                         always accepts)
 *   4. $XDG_RUNTIME_DIR/retriever/retrieverd.sock, the per-user socket.
 * When 4 is chosen and nothing accepts there, and autostart is on, a
 * per-user retrieverd is started (rvc_daemon_autostart) and waited for.
 *
 * "Answers" is connect(2) on the path succeeding: cheap (no gRPC), and
 * right for a socket systemd holds while the service starts.
 */
#ifndef RVC_DAEMONFIND_H
#define RVC_DAEMONFIND_H

#include <stdbool.h>
#include <stdio.h>

#define RVC_SYSTEM_SOCKET "/run/retriever/retrieverd.sock"
/* The autostarted daemon's idle-exit (seconds), unless RVC_IDLE_EXIT_ENV
 * names another (a whole number; 0: never exit). */
#define RVC_AUTOSTART_IDLE_EXIT_S 300
#define RVC_IDLE_EXIT_ENV "RETRIEVER_IDLE_EXIT"
/* Bound on an autostarted daemon becoming ready (its state recovered and
 * its socket bound). */
#define RVC_AUTOSTART_TIMEOUT_MS 15000
/* The autostarted daemon's log, below the user's state directory
 * ($XDG_STATE_HOME/retriever, else ~/.local/state/retriever). */
#define RVC_AUTOSTART_LOG "retrieverd.log"

/* Whether autostart is allowed: not no_autostart (--no-autostart) and
 * $RETRIEVER_NO_AUTOSTART not "1" (or "yes"/"true"). */
bool rvc_autostart_wanted(bool no_autostart);

/* The socket to use, as above. When autostart is true and the per-user
 * socket does not accept, start retrieverd and wait until it is ready.
 * Returns the path (malloc'd, owned by the caller), or NULL after one line
 * on err saying why, with *ret_code the exit code (exitcode.h). Also for
 * `cat` and any command that needs the daemon. */
char *rvc_daemon_find(const char *socket_opt, bool autostart, FILE *err, int *ret_code);

/* Whether something accepts connections at path (connect(2) succeeds). */
bool rvc_socket_answers(const char *path);

#endif
