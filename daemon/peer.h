/* peer.h — who is on the other end of a connection, and whether the
 * daemon talks to them.
 *
 * The socket file is the first gate: connect(2) to a Unix socket needs
 * write permission on its file, so the file's mode and group decide who
 * gets through. The daemon then reads each connection's peer credentials
 * (SO_PEERCRED) at accept and applies the same rule itself, so the policy
 * holds even where the file's mode is not ours to set (a socket passed by
 * systemd) or was changed behind our back:
 *
 *   admitted  ⇔  uid == 0                       (root)
 *             ∨  uid == the daemon's uid
 *             ∨  mode grants others write       (o+w: anyone who can reach it)
 *             ∨  mode grants the group write    (g+w)
 *                ∧ the socket's group is the peer's gid or one of its
 *                  supplementary groups (SO_PEERGROUPS)
 *
 * Refused connections are closed at once; the caller sees the connection
 * drop (gRPC: UNAVAILABLE). Admitted connections are recorded in an
 * rvd_peers table keyed by the connection's fd, because gRPC names a call's
 * peer "fd:N" for connections added with grpc_server_add_channel_from_fd:
 * that string maps every call back to the credentials read at accept.
 *
 * Caveat of keying by fd: gRPC closes a connection's fd itself and does not
 * tell us, so an entry stays until a new connection reuses the number and
 * overwrites it. A call is looked up when it starts, while its connection
 * (and so its fd) is alive, which is what makes the mapping sound.
 */
#ifndef RVD_PEER_H
#define RVD_PEER_H

#include <stdbool.h>
#include <sys/types.h>

/* Who a caller is. The ids are the peer's at connect time, as the kernel
 * reports them for the socket: its process may have exited, or changed
 * ids, since; what it was allowed when it connected is what counts.
 *
 * groups: its supplementary groups (SO_PEERGROUPS), exactly what the
 * kernel checks the process's own opens against. They are the process's,
 * not the user database's: a process that dropped a group (a sandboxed
 * service) does not get it back through the daemon, and one given a group
 * its user is not listed in keeps it. groups_known is false only for a
 * job stored by a daemon that did not record them (asuser.h says what
 * then). An rvd_peer owns its groups array: copy with rvd_peer_copy,
 * release with rvd_peer_clear. */
typedef struct rvd_peer {
    pid_t pid; /* at connect time; may have exited or been reused since */
    uid_t uid;
    gid_t gid;
    bool groups_known;
    size_t n_groups;
    gid_t *groups; /* [n_groups], malloc'd; NULL when n_groups is 0 */
} rvd_peer;

/* More than the kernel allows (NGROUPS_MAX): such a list is refused. */
#define RVD_PEER_MAX_GROUPS 65536

/* *dst = a deep copy of src. 0 or -ENOMEM (then *dst is left empty, safe
 * to clear). */
int rvd_peer_copy(rvd_peer *dst, const rvd_peer *src);
/* Free p's groups and forget them; p stays usable. NULL is fine. */
void rvd_peer_clear(rvd_peer *p);

/* The admission rule's inputs: the socket file's group and permission
 * bits, and the daemon's own (effective) uid. */
typedef struct rvd_access {
    uid_t owner_uid;
    gid_t group;
    mode_t mode; /* permission bits only (& 0777) */
} rvd_access;

/* The rule above, pure: p's gid and groups are checked against the
 * socket's group. */
bool rvd_access_admits(const rvd_access *a, const rvd_peer *p);

/* Read fd's peer credentials and supplementary groups, and apply the rule.
 * On success (0) *ret_peer (owned by the caller: rvd_peer_clear) and
 * *ret_admitted are set. Errors: -errno of getsockopt, -E2BIG, -ENOMEM. */
int rvd_access_check(const rvd_access *a, int fd, rvd_peer *ret_peer, bool *ret_admitted);

/* The credentials of admitted connections, keyed by fd. Thread-safe: the
 * accept thread writes, the gRPC thread reads. */
typedef struct rvd_peers rvd_peers;

/* fds at or above this are refused by rvd_peers_set (-EMFILE). */
#define RVD_PEERS_MAX_FD (1 << 20)

/* 0 or -ENOMEM. On success *ret owns the table; free with rvd_peers_free. */
int rvd_peers_new(rvd_peers **ret);
/* NULL is fine. Returns NULL. */
rvd_peers *rvd_peers_free(rvd_peers *t);

/* Record (or overwrite) fd's credentials, a copy of *p. 0, -EINVAL
 * (fd < 0), -EMFILE (fd >= RVD_PEERS_MAX_FD), -ENOMEM. */
int rvd_peers_set(rvd_peers *t, int fd, const rvd_peer *p);
/* Forget fd (no-op when unknown). */
void rvd_peers_forget(rvd_peers *t, int fd);
/* 0 and *ret a copy the caller owns (rvd_peer_clear), or -ENOENT, or
 * -ENOMEM. */
int rvd_peers_get(rvd_peers *t, int fd, rvd_peer *ret);

/* Fairness of connections (docs/security.md, "Fairness"): how many
 * connections rvd_peers_admit lets in. 0 in a field: no such limit. */
typedef struct rvd_conn_limits {
    unsigned max_total;   /* admitted connections of all callers */
    unsigned max_per_uid; /* of one uid; root and the daemon's own uid are
                             held only to max_total */
    unsigned max_refused; /* refused connections kept open at once so that
                             their calls get the refusal as an answer */
} rvd_conn_limits;

typedef enum rvd_conn_verdict {
    RVD_CONN_ADMITTED = 1, /* serve it */
    RVD_CONN_REFUSED,      /* over a limit: answer its calls with the refusal
                              (rvd_peers_refusal), then close it */
    RVD_CONN_DROPPED,      /* over a limit and too many refused ones are being
                              answered: close it now (nothing recorded) */
} rvd_conn_verdict;

/* The counts are corrected (dead connections dropped) at most this often,
 * and only when a connection meets a limit. */
#define RVD_CONN_SWEEP_MS 100

/* Record fd (a connected socket) for p under lim, counting it, as
 * rvd_peers_set does plus the limits: *ret_verdict says what to do with
 * it, and for REFUSED and DROPPED *ret_why (when not NULL) gets the
 * malloc'd sentence naming the limit ("uid 1001 has 16 of 16 connections
 * open (per-uid-connections); …"). A connection counts from here until
 * its fd is found closed or reused (gRPC closes it without telling us):
 * by a sweep, or when fd is recorded again. 0, or -EINVAL/-EMFILE as
 * rvd_peers_set, -errno of fstat, -ENOMEM (nothing recorded). */
int rvd_peers_admit(rvd_peers *t, int fd, const rvd_peer *p, const rvd_conn_limits *lim,
                    rvd_conn_verdict *ret_verdict, char **ret_why);
/* Drop the connections whose fds were closed or reused from the counts
 * now (rvd_peers_admit does it by itself when a limit is met). */
void rvd_peers_sweep(rvd_peers *t);
/* The refusal of a REFUSED connection (malloc'd), or NULL for one that
 * is not (or ENOMEM). */
char *rvd_peers_refusal(rvd_peers *t, int fd);
/* The counts as of the last sweep or admission: admitted connections in
 * all, of uid, and refused ones being answered. */
void rvd_peers_counts(rvd_peers *t, uid_t uid, unsigned *ret_total, unsigned *ret_uid,
                      unsigned *ret_refused);

/* Parse gRPC's peer name of an fd connection, "fd:N", strictly. 0 and
 * *ret_fd, or -EINVAL for anything else (NULL, "unix:…", "fd:", "fd:1x"). */
int rvd_peer_name_fd(const char *name, int *ret_fd);

#endif
