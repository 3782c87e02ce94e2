/* rpc.c — a small gRPC client on the gRPC C core.
 *
 * Sections: statuses · messages ↔ byte buffers · connecting (and saying
 * why it failed) · unary calls · streams.
 *
 * Every call gets its own completion queue (for_next), drained and
 * destroyed with the call; the connection owns only the channel. A
 * stream's life:
 *
 *   open      one batch "start" (send metadata + request + half-close,
 *             receive the server's metadata) and one "status" batch
 *             (receive status) are posted; `outstanding` counts them
 *   next      posts at most one "message" batch at a time and waits on
 *             the queue; a message batch that brings no message means the
 *             server is done sending: wait for the status, then END
 *   cancel    grpc_call_cancel (thread-safe): every outstanding batch
 *             completes soon, the status one with CANCELLED
 *   free      cancel if anything is outstanding, wait until nothing is,
 *             then release the call and its queue — gRPC never holds a
 *             pointer into freed memory
 */
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "retriever/rv_error.h"

_Static_assert(RVC_RPC_MAX_PATH + 1 == sizeof(((struct sockaddr_un *)0)->sun_path),
               "RVC_RPC_MAX_PATH is sun_path without its NUL");
_Static_assert((int)RVC_RPC_UNAVAILABLE == (int)GRPC_STATUS_UNAVAILABLE &&
                   (int)RVC_RPC_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED,
               "rvc_rpc_code mirrors grpc_status_code");

struct rvc_rpc {
    char *path;            /* the socket, for messages */
    grpc_channel *channel; /* owned */
};

/* ------------------------------------------------------------------------
 * Statuses
 * ------------------------------------------------------------------------ */

static const char *const code_names[] = {
    [RVC_RPC_OK] = "OK",
    [RVC_RPC_CANCELLED] = "CANCELLED",
    [RVC_RPC_UNKNOWN] = "UNKNOWN",
    [RVC_RPC_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
    [RVC_RPC_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [RVC_RPC_NOT_FOUND] = "NOT_FOUND",
    [RVC_RPC_ALREADY_EXISTS] = "ALREADY_EXISTS",
    [RVC_RPC_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [RVC_RPC_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
    [RVC_RPC_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
    [RVC_RPC_ABORTED] = "ABORTED",
    [RVC_RPC_OUT_OF_RANGE] = "OUT_OF_RANGE",
    [RVC_RPC_UNIMPLEMENTED] = "UNIMPLEMENTED",
    [RVC_RPC_INTERNAL] = "INTERNAL",
    [RVC_RPC_UNAVAILABLE] = "UNAVAILABLE",
    [RVC_RPC_DATA_LOSS] = "DATA_LOSS",
    [RVC_RPC_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *rvc_rpc_code_name(int code) {
    if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
        return "UNKNOWN_STATUS";
    return code_names[code];
}

void rvc_rpc_status_done(rvc_rpc_status *st) {
    free(st->message);
    st->message = NULL;
    st->code = RVC_RPC_OK;
}

/* Replace *st with code and a formatted message; returns code. */
static int set_status(rvc_rpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_status(rvc_rpc_status *st, int code, const char *fmt, ...) {
    rvc_rpc_status_done(st);
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&st->message, fmt, ap) < 0)
        st->message = NULL;
    va_end(ap);
    st->code = code;
    return code;
}

/* A status from the wire: the server's details, or the code's name when it
 * sent none. */
static int set_status_slice(rvc_rpc_status *st, grpc_status_code code, grpc_slice details) {
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n == 0)
        return set_status(st, (int)code, "%s",
                          code == GRPC_STATUS_OK ? "" : rvc_rpc_code_name(code));
    return set_status(st, (int)code, "%.*s", (int)(n > 4096 ? 4096 : n),
                      (const char *)GRPC_SLICE_START_PTR(details));
}

/* gRPC's own log lines would interleave with our output; failures reach
 * the user as statuses instead. Setting GRPC_VERBOSITY or GRPC_TRACE keeps
 * gRPC's logger, for debugging. */
static void quiet_log(gpr_log_func_args *args) {
    (void)args;
}

static void rpc_init(void) {
    if (!getenv("GRPC_VERBOSITY") && !getenv("GRPC_TRACE"))
        gpr_set_log_function(quiet_log);
    grpc_init();
}

/* ------------------------------------------------------------------------
 * Messages <-> byte buffers
 * ------------------------------------------------------------------------ */

static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len); /* gRPC's allocator aborts rather than fail */
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* NULL when bb does not decode as a desc message. */
static ProtobufCMessage *unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    grpc_slice flat = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(flat), GRPC_SLICE_START_PTR(flat));
    grpc_slice_unref(flat);
    return m;
}

static gpr_timespec deadline_after(int timeout_ms) {
    if (timeout_ms < 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* Shut down, drain and destroy a queue with nothing outstanding. */
static void queue_destroy(grpc_completion_queue *cq) {
    if (!cq)
        return;
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

/* Why the channel to path did not become ready: look at the path and try
 * connect(2) once, to name the cause. Fills st; returns its code. */
static int diagnose(const char *path, bool timed_out, unsigned timeout_ms, rvc_rpc_status *st) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return set_status(st, RVC_RPC_UNAVAILABLE,
                              "no retrieverd is listening at '%s': start it with `retrieverd`, "
                              "or pass --socket",
                              path);
        if (e == EACCES)
            return set_status(st, RVC_RPC_PERMISSION_DENIED,
                              "cannot reach the socket '%s': permission denied (a directory "
                              "above it is closed to this user)",
                              path);
        return set_status(st, RVC_RPC_UNAVAILABLE, "cannot reach the socket '%s': %s", path,
                          strerror(e));
    }
    if (!S_ISSOCK(sb.st_mode))
        return set_status(st, RVC_RPC_UNAVAILABLE,
                          "'%s' is not a socket, so no retrieverd listens there: pass the "
                          "socket of a running retrieverd with --socket",
                          path);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return set_status(st, RVC_RPC_INTERNAL, "cannot create a socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1); /* the length was checked */
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    if (r != 0 && e == ECONNREFUSED)
        return set_status(st, RVC_RPC_UNAVAILABLE,
                          "no retrieverd is listening at '%s': start it with `retrieverd`, "
                          "or pass --socket",
                          path);
    if (r != 0 && (e == EACCES || e == EPERM))
        return set_status(st, RVC_RPC_PERMISSION_DENIED,
                          "the socket '%s' does not admit this user: permission denied (its "
                          "mode and group decide who may use retrieverd)",
                          path);
    if (r != 0 && e != EAGAIN && e != EINPROGRESS)
        return set_status(st, RVC_RPC_UNAVAILABLE, "cannot connect to '%s': %s", path,
                          strerror(e));
    if (timed_out)
        return set_status(st, RVC_RPC_UNAVAILABLE,
                          "'%s' accepts connections but did not answer within %u ms: is "
                          "retrieverd stuck, or is this not its socket?",
                          path, timeout_ms);
    /* What retrieverd does to a caller its admission rule refuses. */
    return set_status(st, RVC_RPC_PERMISSION_DENIED,
                      "'%s' accepts connections but closes them unanswered: retrieverd does "
                      "not admit this user (its log says why), or this is not its socket",
                      path);
}

/* Drive the channel to READY within timeout_ms. 1: ready; 0: failed; -1:
 * the deadline passed; -2: cancelled. The wait is cut into slices so that
 * cancelled is asked between them. */
static int wait_ready(grpc_channel *ch, unsigned timeout_ms, rvc_rpc_cancelled_fn cancelled,
                      void *ud) {
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    gpr_timespec deadline = deadline_after((int)timeout_ms);
    grpc_connectivity_state s = grpc_channel_check_connectivity_state(ch, 1);
    int result = 0;
    for (;;) {
        if (cancelled && cancelled(ud)) {
            result = -2;
            break;
        }
        if (s == GRPC_CHANNEL_READY) {
            result = 1;
            break;
        }
        if (s == GRPC_CHANNEL_TRANSIENT_FAILURE || s == GRPC_CHANNEL_SHUTDOWN) {
            result = 0;
            break;
        }
        /* IDLE or CONNECTING: wait for a change, or the end of this slice;
         * success 0 means the slice's deadline passed first. */
        int tag;
        gpr_timespec slice = deadline_after(RVC_RPC_CANCEL_POLL_MS);
        bool last = gpr_time_cmp(slice, deadline) >= 0;
        grpc_channel_watch_connectivity_state(ch, s, last ? deadline : slice, cq, &tag);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            result = -1;
            break;
        }
        if (!ev.success && last) {
            result = -1;
            break;
        }
        s = grpc_channel_check_connectivity_state(ch, 0);
    }
    queue_destroy(cq);
    return result;
}

int rvc_rpc_connect(const char *socket_path, unsigned timeout_ms, rvc_rpc_cancelled_fn cancelled,
                    void *ud, rvc_rpc **ret, rvc_rpc_status *ret_status) {
    size_t len = socket_path ? strlen(socket_path) : 0;
    if (len == 0)
        return set_status(ret_status, RVC_RPC_INVALID_ARGUMENT, "the socket path is empty");
    if (len > RVC_RPC_MAX_PATH)
        return set_status(ret_status, RVC_RPC_INVALID_ARGUMENT,
                          "the socket path '%s' is longer than a socket address allows (%d "
                          "bytes)",
                          socket_path, RVC_RPC_MAX_PATH);

    rvc_rpc *c = calloc(1, sizeof(*c));
    char *target = NULL;
    if (!c || !(c->path = strdup(socket_path)) || asprintf(&target, "unix:%s", socket_path) < 0) {
        if (c)
            free(c->path);
        free(c);
        return set_status(ret_status, RVC_RPC_INTERNAL, "out of memory");
    }

    rpc_init();
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = RVC_RPC_MAX_MESSAGE},
        /* A failed connection is reported, not retried behind our back. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
    };
    grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    c->channel = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    free(target);

    int code = RVC_RPC_OK;
    int ready = wait_ready(c->channel, timeout_ms, cancelled, ud);
    if (ready == -2)
        code = set_status(ret_status, RVC_RPC_CANCELLED,
                          "interrupted while connecting to '%s'; nothing was submitted",
                          socket_path);
    else if (ready != 1)
        code = diagnose(socket_path, ready < 0, timeout_ms, ret_status);
    if (code == RVC_RPC_OK) {
        *ret = c;
        return RVC_RPC_OK;
    }
    rvc_rpc_free(c);
    return code;
}

rvc_rpc *rvc_rpc_free(rvc_rpc *c) {
    if (!c)
        return NULL;
    if (c->channel)
        grpc_channel_destroy(c->channel);
    free(c->path);
    free(c);
    grpc_shutdown();
    return NULL;
}

/* ------------------------------------------------------------------------
 * Unary calls
 * ------------------------------------------------------------------------ */

int rvc_rpc_unary(rvc_rpc *c, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *resp_desc, unsigned timeout_ms,
                  ProtobufCMessage **ret_response, rvc_rpc_status *ret_status) {
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice method_slice = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               method_slice, NULL,
                                               deadline_after((int)timeout_ms), NULL);
    grpc_byte_buffer *request = pack(req), *response = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;
    int code;

    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &response;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;

    int tag;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        code = set_status(ret_status, RVC_RPC_INTERNAL, "cannot start the call %s", method);
        goto out;
    }
    /* The call's deadline bounds this wait. */
    grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

    code = set_status_slice(ret_status, status, details);
    if (code == RVC_RPC_OK) {
        ProtobufCMessage *m = response ? unpack(response, resp_desc) : NULL;
        if (!m)
            code = set_status(ret_status, RVC_RPC_INTERNAL, "the answer to %s is not a valid %s",
                              method, resp_desc->name);
        else
            *ret_response = m;
    }

out:
    grpc_call_unref(call);
    queue_destroy(cq);
    grpc_slice_unref(method_slice);
    grpc_slice_unref(details);
    gpr_free((void *)error_string);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_byte_buffer_destroy(request);
    if (response)
        grpc_byte_buffer_destroy(response);
    return code;
}

/* ------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

struct rvc_rpc_stream {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_slice method;
    grpc_byte_buffer *request;  /* until the start batch completes */
    grpc_byte_buffer *received; /* the message batch's result */
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string; /* gpr_malloc'd by gRPC */

    /* The tags: their addresses tell the batches apart. */
    char tag_start, tag_status, tag_message;
    unsigned outstanding;  /* batches posted and not completed */
    bool message_posted;   /* a message batch is outstanding */
    bool messages_ended;   /* a message batch brought nothing: no more */
    bool status_received;  /* the status batch completed */
    bool malformed;        /* a message did not unpack; the call was cancelled */
    const char *desc_name; /* of the malformed message */
    bool ended;            /* END was returned; `final` holds the status */
    rvc_rpc_status final;
};

int rvc_rpc_stream_open(rvc_rpc *c, const char *method, const ProtobufCMessage *req,
                        rvc_rpc_stream **ret) {
    rvc_rpc_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return RV_E_NOMEM;
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->method = grpc_slice_from_copied_string(method);
    s->details = grpc_empty_slice();
    s->status = GRPC_STATUS_UNKNOWN;
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, s->method,
                                       NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    s->request = pack(req);

    grpc_op start[4];
    memset(start, 0, sizeof(start));
    start[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    start[1].op = GRPC_OP_SEND_MESSAGE;
    start[1].data.send_message.send_message = s->request;
    start[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    start[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    start[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    grpc_op status[1];
    memset(status, 0, sizeof(status));
    status[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    status[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    status[0].data.recv_status_on_client.status = &s->status;
    status[0].data.recv_status_on_client.status_details = &s->details;
    status[0].data.recv_status_on_client.error_string = &s->error_string;

    if (grpc_call_start_batch(s->call, start, 4, &s->tag_start, NULL) != GRPC_CALL_OK) {
        rvc_rpc_stream_free(s);
        return RV_E_INTERNAL;
    }
    s->outstanding++;
    if (grpc_call_start_batch(s->call, status, 1, &s->tag_status, NULL) != GRPC_CALL_OK) {
        rvc_rpc_stream_free(s);
        return RV_E_INTERNAL;
    }
    s->outstanding++;
    *ret = s;
    return RV_OK;
}

/* Account for one completed batch. For the message batch, unpack what came
 * into *ret_message (NULL when nothing did). */
static void on_event(rvc_rpc_stream *s, const grpc_event *ev,
                     const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_message) {
    s->outstanding--;
    if (ev->tag == &s->tag_start) {
        grpc_byte_buffer_destroy(s->request);
        s->request = NULL;
    } else if (ev->tag == &s->tag_status) {
        s->status_received = true;
    } else if (ev->tag == &s->tag_message) {
        s->message_posted = false;
        grpc_byte_buffer *bb = s->received;
        s->received = NULL;
        if (!ev->success || !bb) {
            s->messages_ended = true;
        } else if (desc && !s->malformed) {
            ProtobufCMessage *m = unpack(bb, desc);
            if (m) {
                *ret_message = m;
            } else {
                s->malformed = true;
                s->desc_name = desc->name;
                s->messages_ended = true;
                grpc_call_cancel(s->call, NULL);
            }
        }
        if (bb)
            grpc_byte_buffer_destroy(bb);
    }
}

static void copy_status(rvc_rpc_status *to, const rvc_rpc_status *from) {
    set_status(to, from->code, "%s", from->message ? from->message : "");
}

rvc_rpc_next rvc_rpc_stream_next(rvc_rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                                 int timeout_ms, ProtobufCMessage **ret_message,
                                 rvc_rpc_status *ret_status) {
    if (s->ended) {
        copy_status(ret_status, &s->final);
        return RVC_RPC_END;
    }
    if (!s->messages_ended && !s->message_posted) {
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &s->received;
        if (grpc_call_start_batch(s->call, &op, 1, &s->tag_message, NULL) == GRPC_CALL_OK) {
            s->outstanding++;
            s->message_posted = true;
        } else {
            /* Only after the call finished: what is left is its status. */
            s->messages_ended = true;
        }
    }

    gpr_timespec deadline = deadline_after(timeout_ms);
    for (;;) {
        if (s->messages_ended && s->status_received)
            break;
        /* Once the messages have ended the status follows at once: wait
         * for it whatever the timeout. */
        grpc_event ev = grpc_completion_queue_next(
            s->cq, s->messages_ended ? gpr_inf_future(GPR_CLOCK_MONOTONIC) : deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            return RVC_RPC_TIMEOUT;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        ProtobufCMessage *m = NULL;
        on_event(s, &ev, desc, &m);
        if (m) {
            *ret_message = m;
            return RVC_RPC_MESSAGE;
        }
    }

    if (s->malformed)
        set_status(&s->final, RVC_RPC_INTERNAL, "the server sent a malformed %s message",
                   s->desc_name);
    else
        set_status_slice(&s->final, s->status, s->details);
    s->ended = true;
    copy_status(ret_status, &s->final);
    return RVC_RPC_END;
}

void rvc_rpc_stream_cancel(rvc_rpc_stream *s) {
    grpc_call_cancel(s->call, NULL);
}

rvc_rpc_stream *rvc_rpc_stream_free(rvc_rpc_stream *s) {
    if (!s)
        return NULL;
    if (s->outstanding) {
        grpc_call_cancel(s->call, NULL);
        while (s->outstanding) {
            grpc_event ev =
                grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type == GRPC_OP_COMPLETE)
                on_event(s, &ev, NULL, NULL);
        }
    }
    if (s->call)
        grpc_call_unref(s->call);
    queue_destroy(s->cq);
    grpc_slice_unref(s->method);
    grpc_slice_unref(s->details);
    gpr_free((void *)s->error_string);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    if (s->request)
        grpc_byte_buffer_destroy(s->request);
    if (s->received)
        grpc_byte_buffer_destroy(s->received);
    rvc_rpc_status_done(&s->final);
    free(s);
    return NULL;
}
