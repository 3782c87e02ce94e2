/* server.h — the gRPC server: retriever.v1.Retriever over the gRPC C core.
 *
 * This module is the RPC glue, the only code that sees the generated
 * protobuf-c types and the gRPC API. It serves connections handed to it as
 * fds (rvd_server_add_fd), never a listener of its own: the socket is
 * bound and its connections are accepted by socket.c.
 *
 * Threads: one completion-queue thread does all the call handling. The
 * accept thread calls rvd_server_add_fd; the main thread creates, shuts
 * down and frees.
 *
 * Methods: every method of the service descriptor is registered under
 * "/retriever.v1.Retriever/<Method>". Implemented: Ping, Download, Status,
 * List, Cancel, Watch, Stats, Read (the job table, jobs.h, does the work),
 * CacheList, CacheRemove, CacheVerify (cacheops.h, on the engine thread).
 * A method without a handler answers UNIMPLEMENTED "… is not implemented
 * yet". One generic
 * slot answers any other path UNIMPLEMENTED at once (without it, gRPC would
 * leave such calls waiting for the client's deadline). Every registered
 * call is mapped to its connection's credentials ("fd:N" → rvd_peers); a
 * call whose credentials are unknown is answered PERMISSION_DENIED.
 *
 * Lifecycle:
 *   rvd_server_new      grpc_init, create, register, start, CQ thread
 *   rvd_server_add_fd   … any number of times, until shutdown
 *   rvd_server_shutdown no new calls; wait for running calls up to
 *                       grace_ms, then cancel them; wait up to bound_ms
 *   rvd_server_free     destroy the server, drain and destroy the queue,
 *                       grpc_shutdown
 *
 * Limits: a request message is at most RVD_MAX_REQUEST_BYTES (larger ones
 * get RESOURCE_EXHAUSTED from gRPC); at most RVD_MAX_STREAMS_PER_CONNECTION
 * calls run at once on one connection; at most per_uid_calls calls of one
 * uid (counted from the lookup of the caller until the call is freed).
 */
#ifndef RVD_SERVER_H
#define RVD_SERVER_H

#include "jobs.h"
#include "peer.h"

#define RVD_API_VERSION 1
#define RVD_MAX_REQUEST_BYTES (4 * 1024 * 1024)
#define RVD_MAX_STREAMS_PER_CONNECTION 100

typedef struct rvd_server rvd_server;

typedef struct rvd_server_opts {
    const char *version; /* Ping's version; copied */
    rvd_peers *peers;    /* borrowed; must outlive the server */
    rvd_jobs *jobs;      /* borrowed; must outlive the server */
    /* Calls (unary and streams) one uid may have open at once; beyond,
     * RESOURCE_EXHAUSTED naming per-uid-calls. Root and the daemon's own
     * uid are not limited. 0: no limit. */
    unsigned per_uid_calls;
} rvd_server_opts;

/* How long a refused connection (rvd_server_add_refused_fd) stays open
 * before gRPC sends it GOAWAY, and then at most as long again before it is
 * closed. */
#define RVD_REFUSED_AGE_MS 1000

/* Start serving (no connections yet). 0, or -errno with *ret_error (when
 * not NULL) set to a malloc'd sentence. *ret is written only on success. */
int rvd_server_new(const rvd_server_opts *o, rvd_server **ret, char **ret_error);

/* Serve one connected stream socket; the server owns fd from here on (gRPC
 * closes it with the connection). Thread-safe. Must not be called once
 * rvd_server_shutdown has begun. */
void rvd_server_add_fd(rvd_server *s, int fd);

/* Serve fd only to refuse: every call on it is answered
 * RESOURCE_EXHAUSTED with the connection's refusal (rvd_peers_refusal),
 * and the connection is closed after RVD_REFUSED_AGE_MS (plus as much
 * grace). Takes fd. Thread-safe, as rvd_server_add_fd. */
void rvd_server_add_refused_fd(rvd_server *s, int fd);

/* Stop: no new calls; calls still running after grace_ms are cancelled; 0
 * when everything finished within bound_ms (>= grace_ms), else -ETIMEDOUT
 * (the server is then left as it is: rvd_server_free releases only what is
 * safe, and the process should exit). Idempotent. */
int rvd_server_shutdown(rvd_server *s, unsigned grace_ms, unsigned bound_ms);

/* Shut down (with default bounds) if not done yet, release everything and
 * call grpc_shutdown. NULL is fine. Returns NULL. */
rvd_server *rvd_server_free(rvd_server *s);

/* Calls open now (unary calls and Download, Watch and Read streams), of
 * every caller. Any thread. */
unsigned rvd_server_open_calls(rvd_server *s);

#endif
