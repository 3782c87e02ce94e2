/* rpc.h — a small gRPC client on the gRPC C core: one channel to a Unix
 * socket, unary calls, and server-streaming calls that another thread can
 * cancel. Messages are protobuf-c messages; this module knows no method of
 * retriever.v1 (remote.c, the verbs, does).
 *
 *   rvc_rpc *c;  rvc_rpc_status st = {0};
 *   if (rvc_rpc_connect("/run/x.sock", 5000, NULL, NULL, &c, &st) != RVC_RPC_OK) ... st.message
 *   rvc_rpc_unary(c, "/pkg.Svc/Ping", &req.base, &resp_desc, 5000, &resp, &st);
 *   rvc_rpc_stream *s;  rvc_rpc_stream_open(c, "/pkg.Svc/Download", &req.base, &s);
 *   while (rvc_rpc_stream_next(s, &ev_desc, timeout, &msg, &st) != RVC_RPC_END) ...
 *   rvc_rpc_stream_free(s);  rvc_rpc_free(c);
 *
 * Connecting: the channel targets "unix:PATH" with insecure (local)
 * credentials and is driven to READY before rvc_rpc_connect returns, within
 * a bound; calls are made without wait-for-ready, so a daemon that goes
 * away makes them fail at once rather than hang. When connecting fails the
 * socket path is examined (exists? a socket? connect(2)'s errno) to say
 * precisely why, naming the path.
 *
 * Threads: everything runs on the calling thread, except
 * rvc_rpc_stream_cancel, which any thread may call while the stream lives.
 * Signals: gRPC starts threads in rvc_rpc_connect (grpc_init); block the
 * signals a watcher thread handles (rvc_sigwatch) before connecting, or
 * they may be delivered to one of gRPC's threads.
 *
 * Errors are gRPC status codes (the numbers are gRPC's, fixed by its
 * protocol) with a malloc'd message for people; this header does not
 * include gRPC's.
 */
#ifndef RVC_RPC_H
#define RVC_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* gRPC status codes (grpc/status.h has the same numbers). */
typedef enum rvc_rpc_code {
    RVC_RPC_OK = 0,
    RVC_RPC_CANCELLED = 1,
    RVC_RPC_UNKNOWN = 2,
    RVC_RPC_INVALID_ARGUMENT = 3,
    RVC_RPC_DEADLINE_EXCEEDED = 4,
    RVC_RPC_NOT_FOUND = 5,
    RVC_RPC_ALREADY_EXISTS = 6,
    RVC_RPC_PERMISSION_DENIED = 7,
    RVC_RPC_RESOURCE_EXHAUSTED = 8,
    RVC_RPC_FAILED_PRECONDITION = 9,
    RVC_RPC_ABORTED = 10,
    RVC_RPC_OUT_OF_RANGE = 11,
    RVC_RPC_UNIMPLEMENTED = 12,
    RVC_RPC_INTERNAL = 13,
    RVC_RPC_UNAVAILABLE = 14,
    RVC_RPC_DATA_LOSS = 15,
    RVC_RPC_UNAUTHENTICATED = 16,
} rvc_rpc_code;

/* "UNAVAILABLE"; "UNKNOWN_STATUS" for numbers outside the table. Static. */
const char *rvc_rpc_code_name(int code);

/* The outcome of a call or of connecting. */
typedef struct rvc_rpc_status {
    int code;      /* rvc_rpc_code */
    char *message; /* malloc'd, or NULL only when out of memory; for people */
} rvc_rpc_status;

/* Free st->message and zero st; st may be zeroed already. Functions
 * that fill an rvc_rpc_status free what it held first. */
void rvc_rpc_status_done(rvc_rpc_status *st);

typedef struct rvc_rpc rvc_rpc;
typedef struct rvc_rpc_stream rvc_rpc_stream;

/* Longest socket path (struct sockaddr_un's sun_path, without its NUL). */
#define RVC_RPC_MAX_PATH 107
/* How often a connect asks whether it was cancelled. */
#define RVC_RPC_CANCEL_POLL_MS 50

/* Largest message accepted from the server. */
#define RVC_RPC_MAX_MESSAGE (4 * 1024 * 1024)

/* Whether the caller gave up (a signal came): polled while connecting. */
typedef bool (*rvc_rpc_cancelled_fn)(void *ud);

/* Connect to the gRPC server on the Unix socket socket_path (copied) and
 * wait until the connection is ready, at most timeout_ms; cancelled (may
 * be NULL) is asked every RVC_RPC_CANCEL_POLL_MS meanwhile. Returns
 * RVC_RPC_OK with *ret owning the connection, or a code with *ret_status
 * filled (and *ret untouched):
 *   UNAVAILABLE        nothing listens there (ENOENT, ECONNREFUSED), it is
 *                      not a socket, or no gRPC answer within timeout_ms
 *   PERMISSION_DENIED  the socket (or a directory above it) denies access,
 *                      or the server closes the connection unanswered (what
 *                      retrieverd does to a caller it does not admit)
 *   CANCELLED          cancelled(ud) said so before the connection was ready
 *   INVALID_ARGUMENT   the path is empty or longer than RVC_RPC_MAX_PATH
 *   INTERNAL           out of memory, gRPC failures
 * Messages name the path and say what to do. */
int rvc_rpc_connect(const char *socket_path, unsigned timeout_ms, rvc_rpc_cancelled_fn cancelled,
                    void *ud, rvc_rpc **ret, rvc_rpc_status *ret_status);

/* Close the connection; streams must be freed before. NULL is fine.
 * Returns NULL. */
rvc_rpc *rvc_rpc_free(rvc_rpc *c);

/* One unary call of method ("/package.Service/Method") with request req,
 * at most timeout_ms. Returns the call's status code with *ret_status
 * filled (also for OK: message ""). On RVC_RPC_OK, *ret_response is the
 * unpacked response (a resp_desc message), owned by the caller:
 * protobuf_c_message_free_unpacked(resp, NULL). A response that does not
 * unpack is RVC_RPC_INTERNAL. */
int rvc_rpc_unary(rvc_rpc *c, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, unsigned timeout_ms,
                  ProtobufCMessage **ret_response, rvc_rpc_status *ret_status);

/* Start a server-streaming call of method with request req, with no
 * deadline (rvc_rpc_stream_cancel ends it). RV_OK with *ret owning the
 * stream, or RV_E_NOMEM / RV_E_INTERNAL. A call the server refuses still
 * opens: the refusal is its end status, from rvc_rpc_stream_next. */
int rvc_rpc_stream_open(rvc_rpc *c, const char *method, const ProtobufCMessage *req,
                        rvc_rpc_stream **ret);

typedef enum rvc_rpc_next {
    RVC_RPC_MESSAGE = 1, /* *ret_message is the next message */
    RVC_RPC_TIMEOUT,     /* nothing within timeout_ms; call again */
    RVC_RPC_END,         /* the stream ended; *ret_status says how */
} rvc_rpc_next;

/* Wait up to timeout_ms (-1: no limit) for the next message of the stream,
 * unpacked as a desc message into *ret_message (owned by the caller:
 * protobuf_c_message_free_unpacked(msg, NULL)). At RVC_RPC_END the
 * server's status (or the cancellation's) is in *ret_status; a message
 * that does not unpack cancels the call and ends it with RVC_RPC_INTERNAL.
 * After RVC_RPC_END, further calls return RVC_RPC_END with the same status
 * again. */
rvc_rpc_next rvc_rpc_stream_next(rvc_rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                                 int timeout_ms, ProtobufCMessage **ret_message,
                                 rvc_rpc_status *ret_status);

/* Cancel the call: the server sees the client leave; a waiting
 * rvc_rpc_stream_next returns soon with RVC_RPC_END (status CANCELLED,
 * unless the server's status had already arrived). Thread-safe; any number
 * of times while s lives. */
void rvc_rpc_stream_cancel(rvc_rpc_stream *s);

/* Cancel if still running, wait for gRPC to let go of the call, free.
 * NULL is fine. Returns NULL. */
rvc_rpc_stream *rvc_rpc_stream_free(rvc_rpc_stream *s);

#endif
