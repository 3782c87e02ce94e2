/* server_int.h — what the gRPC server's files share (server.h is the
 * interface).
 *
 * The server is four files along its seams:
 *   server.c    transport: the method table, calls (life of one call,
 *               unary answers, calls per uid), the completion-queue thread,
 *               lifecycle
 *   stream.c    streams: the send queue (one send in flight, bounded
 *               backlog, batches), the job table's sinks, Read's chunks
 *   handlers.c  one thin function per method: decode, call the table,
 *               encode
 *   encode.c    the job table's views into messages (generated packers)
 */
#ifndef RVD_SERVER_INT_H
#define RVD_SERVER_INT_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cacheops.h"
#include "retriever/v1/retriever.pb-c.h"
#include "server.h"

struct call;

/* What a handler produces: a status, its message, and for OK a response. */
struct reply {
    grpc_status_code code;
    char *detail;               /* malloc'd, or NULL */
    grpc_byte_buffer *response; /* OK only */
};

/* A handler answers (r) or, for a stream, starts streaming and leaves r's
 * code OK without a response. */
typedef void (*handler_fn)(struct call *c, const uint8_t *req, size_t len, struct reply *r);

struct method {
    const ProtobufCMethodDescriptor *desc;
    char *path;        /* "/retriever.v1.Retriever/Ping" */
    void *registered;  /* grpc_server_register_method's handle */
    handler_fn handle; /* NULL: not implemented yet */
};

/* Calls open per uid (per-uid-calls); the CQ thread's only. */
struct uidcalls {
    uid_t uid;
    unsigned n;
};

struct rvd_server {
    char *version;
    rvd_peers *peers;
    rvd_jobs *jobs;
    unsigned per_uid_calls; /* 0: no limit */
    struct uidcalls *calls; /* entries with n > 0 */
    size_t n_calls, cap_calls;
    atomic_uint open_calls; /* the sum of calls[].n: read by any thread (idle-exit) */
    grpc_server *server;
    /* Connections refused for fairness (socket.h) are served here: every
     * call on them is answered RESOURCE_EXHAUSTED with the refusal, and
     * gRPC closes each a short while after it arrived
     * (GRPC_ARG_MAX_CONNECTION_AGE_MS), so they cannot pile up. */
    grpc_server *refuser;
    int refuser_shutdown_tag;
    bool refuser_done; /* under lock */
    grpc_completion_queue *cq;
    grpc_server_credentials *creds;
    struct method *methods; /* [n_methods], in the descriptor's order */
    size_t n_methods;

    bool started; /* grpc_server_start was called */
    pthread_t cq_thread;
    bool cq_running;
    atomic_bool stopping; /* set before shutdown: no more re-arming */

    /* Shutdown notification: the tag's address is the tag. */
    int shutdown_tag;
    bool shutdown_called;
    bool shutdown_done;   /* under lock; written by the CQ thread */
    bool shutdown_failed; /* timed out: destroy is not safe */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
};

enum call_state { CALL_REQUESTED, CALL_ANSWERING, CALL_STREAMING };

/* Completion-queue tags: a call, or a call's close-wait. Both start with
 * their kind so the dispatcher can tell them apart. */
enum tag_kind { TAG_CALL = 1, TAG_CLOSE };

struct close_tag {
    enum tag_kind kind; /* TAG_CLOSE; first */
    struct call *call;
};

struct outmsg {
    grpc_byte_buffer *bb;
    struct outmsg *next;
};

struct call {
    enum tag_kind kind; /* TAG_CALL; first */
    rvd_server *server;
    const struct method *method; /* NULL: the generic slot */
    bool refusal;                /* the refuser's generic slot */
    bool counted;                /* in server->calls (per-uid-calls) */
    enum call_state state;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array request_md;
    grpc_call_details details; /* generic slot only */
    grpc_byte_buffer *request; /* registered only; NULL if no message */
    rvd_peer peer;             /* registered only, once answering */
    struct reply reply;
    grpc_slice status_slice;
    int cancelled;

    /* Streams only (state STREAMING). Under lock, except close_tag. */
    struct close_tag close_tag;
    pthread_mutex_t lock;
    bool lock_init;
    struct outmsg *q_head, *q_tail;
    unsigned q_len;
    grpc_byte_buffer *inflight; /* the message being sent */
    bool sending;    /* a send batch is outstanding */
    bool md_sent;    /* initial metadata went out */
    bool ending;     /* no more messages: send the status when drained */
    bool status_sent;
    bool closed;     /* the close-wait completed */
    bool subscribed; /* the job table holds the sink */
    bool batch_events; /* the caller takes JobEvent.batch */
    grpc_status_code end_code;
    char job_id[RVD_JOB_ID_LEN + 1];
    rvd_sink sink;

    /* Cache streams only (caching set): the cacheops sink. */
    bool caching;
    rvd_cache_sink cache_sink;

    /* Read streams only (reading set). Under lock. */
    bool reading;
    rvd_reader reader;
    uint32_t read_index;
    int read_fd;         /* our dup of the object's file; -1 until it exists */
    uint64_t read_off;   /* next byte to send */
    uint64_t read_ready; /* [0, read_ready) may be read */
    bool read_done;      /* read_ready is the object's size */
};

/* --- encode.c: views of the job table into messages ------------------- */

grpc_byte_buffer *rvd_pack(const ProtobufCMessage *msg);
grpc_byte_buffer *rvd_pack_job(const rvd_job_view *v, const Retriever__V1__JobEvent *wrap);
grpc_byte_buffer *rvd_pack_list(const rvd_job_view *const *views, size_t n);
grpc_byte_buffer *rvd_pack_event(const rvd_event *e);

/* --- server.c: calls ----------------------------------------------------- */

void rvd_reply_error(struct reply *r, grpc_status_code code, char *detail);

/* --- stream.c: streams ---------------------------------------------------- */

bool rvd_stream_begin(struct call *c, struct reply *r);
void rvd_stream_push(struct call *c, grpc_byte_buffer *bb);
void rvd_stream_finish(struct call *c, grpc_status_code code, const char *message);
bool rvd_stream_done(const struct call *c);
bool rvd_stream_on_sent(struct call *c, bool ok);
bool rvd_stream_on_closed(struct call *c);
void rvd_stream_queue_clear(struct call *c);
void rvd_stream_read_notify(void *ctx, const rvd_read_state *st);

/* --- handlers.c: one function per method --------------------------------- */

struct rvd_handler {
    const char *name; /* the method's name in the .proto */
    handler_fn handle;
};
/* The methods implemented so far. */
extern const struct rvd_handler rvd_handlers[];
extern const size_t rvd_n_handlers;

#endif
