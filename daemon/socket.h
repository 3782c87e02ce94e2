/* socket.h — the daemon's listening Unix socket: bound by us (never by
 * gRPC, whose unix: listener unlinks a live daemon's socket), or adopted
 * from systemd; and the accept thread that admits connections.
 *
 *   rvd_socket *s;
 *   rvd_socket_bind("/run/user/1000/retriever/retrieverd.sock", 0600, &s, &err);
 *   rvd_socket_start(s, peers, on_connection, ud, &err);   // accept thread
 *   ...
 *   rvd_socket_stop(s);   // no more connections; the file we bound is gone
 *   rvd_socket_free(s);
 *
 * Binding, step by step:
 *   1. A missing parent directory is created (one level only) with mode
 *      0700, plus search permission for group or others when the socket's
 *      mode grants them write: 0600 → 0700, 0660 → 0710, 0666 → 0711. An
 *      existing directory is left as it is.
 *   2. bind(2). On EADDRINUSE: a path that is not a socket is an error (we
 *      never unlink other files). Otherwise probe-connect to it: success
 *      means a live daemon owns it → error "another retrieverd is serving
 *      '<path>'"; ECONNREFUSED means nobody listens → the file is stale:
 *      unlink it and bind once more. Any other probe error is reported.
 *   3. listen(2), then chmod(2) of the path to the configured mode. (fchmod
 *      on a socket's fd changes the socket's own inode, not the file bound
 *      to it, so the path is used.) Between bind and chmod the file has the
 *      umask's mode; the accept thread already applies the configured mode
 *      through rvd_access, so nobody else is admitted in that window.
 * Residual race: two daemons started at the same instant on a stale path
 * can both see ECONNREFUSED (a socket bound but not yet listening refuses
 * too). The state directory's owner lock (issue 4, later) closes it.
 *
 * The accept thread polls the listening socket and an eventfd (its stop
 * signal), accepts each connection non-blocking and close-on-exec, reads
 * its credentials, applies rvd_access (peer.h) and records admitted peers
 * in the rvd_peers table before handing the fd on. It logs what it handles
 * itself: refused peers and accept failures (one line each; fd exhaustion
 * is logged once per episode and retried after a short pause).
 *
 * Errors are negative errno values; on failure *ret_error (when not NULL)
 * gets a malloc'd sentence naming the path and the cause, owned by the
 * caller, and *ret is untouched.
 */
#ifndef RVD_SOCKET_H
#define RVD_SOCKET_H

#include <stdbool.h>
#include <sys/types.h>

#include "peer.h"

typedef struct rvd_socket rvd_socket;

/* Called on the accept thread for each admitted connection. fd is
 * connected, non-blocking and close-on-exec; the callee owns it. peer is
 * valid during the call. */
typedef void (*rvd_socket_conn_fn)(int fd, const rvd_peer *peer, void *ud);

/* Bind and listen at path (see above). mode: permission bits (& 0777).
 * The path is copied. Errors: -ENAMETOOLONG, -EADDRINUSE (live daemon),
 * -EEXIST (not a socket), or the failing call's -errno. */
int rvd_socket_bind(const char *path, mode_t mode, rvd_socket **ret, char **ret_error);

/* Adopt a listening Unix stream socket passed by systemd (fd). The file is
 * systemd's: its mode is not changed, and stop/free never unlink it. The
 * admission rule uses the file's mode and group as found, or admits only
 * the daemon's uid and root when the path cannot be examined. Errors:
 * -ENOTSOCK (not a listening AF_UNIX stream socket), or -errno. On failure
 * fd stays the caller's. */
int rvd_socket_adopt(int fd, rvd_socket **ret, char **ret_error);

/* The socket's path ("" for an unnamed or abstract adopted socket); valid
 * until rvd_socket_free. */
const char *rvd_socket_path(const rvd_socket *s);
/* The admission rule in force (mode and group of the file). */
const rvd_access *rvd_socket_access(const rvd_socket *s);
/* Whether we bound the file (and so remove it at stop). */
bool rvd_socket_owned(const rvd_socket *s);

/* Start the accept thread. peers (borrowed) must outlive the thread, i.e.
 * stay valid until rvd_socket_stop returns. Call at most once. Errors:
 * -errno of eventfd/pthread_create. */
int rvd_socket_start(rvd_socket *s, rvd_peers *peers, rvd_socket_conn_fn fn, void *ud,
                     char **ret_error);

/* Fairness (peer.h, rvd_conn_limits): connections over a limit are not
 * handed to fn but to refused_fn (same ud), which must answer their calls
 * with rvd_peers_refusal's sentence and close them soon; with refused_fn
 * NULL, or when too many refused ones are open already, they are closed
 * at once. Logged once per run of one uid's refusals. Call before
 * rvd_socket_start. Without it, no limits apply.
 *
 * Out of descriptors (accept fails with EMFILE/ENFILE), the accept thread
 * takes the waiting connections off the queue with a descriptor it keeps
 * in reserve and closes them, so their callers learn at once. */
void rvd_socket_set_limits(rvd_socket *s, const rvd_conn_limits *limits,
                           rvd_socket_conn_fn refused_fn);

/* Stop accepting: wake and join the accept thread, close the listening
 * socket, and unlink the path if we bound it and it is still the file we
 * created (same device and inode). Idempotent. When this returns, fn is
 * not running and will not be called again. */
void rvd_socket_stop(rvd_socket *s);

/* Stop (if needed) and free. NULL is fine. Returns NULL. */
rvd_socket *rvd_socket_free(rvd_socket *s);

#endif
