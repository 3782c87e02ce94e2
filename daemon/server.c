/* server.c — retriever.v1.Retriever on the gRPC C core.
 *
 * Sections: the method table · calls (life of one call) · handlers ·
 * the completion-queue thread · lifecycle.
 *
 * A call's life (struct call, one per request slot):
 *
 *   state      | outstanding on the queue        | next
 *   -----------+---------------------------------+-------------------------
 *   REQUESTED  | the request slot (new-call tag) | ok: re-arm the method's
 *              |                                 | slot, answer → ANSWERING;
 *              |                                 | !ok (shutdown): free
 *   ANSWERING  | one batch: initial metadata,    | free (whether the batch
 *              | message?, status, close-wait    | succeeded or not)
 *
 * Exactly one operation per call is outstanding at any time, so "the
 * event for this call arrived and nothing else is outstanding" is the one
 * place a call is freed: cq_thread() after on_event() says so.
 */
#include "server.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "retriever/v1/retriever.pb-c.h"

/* Longest method path quoted back in an UNIMPLEMENTED message. */
#define MAX_QUOTED_METHOD 200
/* rvd_server_free's bounds when shutdown was not called. */
#define DEFAULT_GRACE_MS 1000
#define DEFAULT_BOUND_MS 4000

struct call;

/* What a handler produces: a status, its message, and for OK a response. */
struct reply {
    grpc_status_code code;
    char *detail;               /* malloc'd, or NULL */
    grpc_byte_buffer *response; /* OK only */
};

typedef void (*unary_fn)(const struct call *c, const ProtobufCMessage *req, struct reply *r);

struct method {
    const ProtobufCMethodDescriptor *desc;
    char *path;       /* "/retriever.v1.Retriever/Ping" */
    void *registered; /* grpc_server_register_method's handle */
    unary_fn unary;   /* NULL: not implemented yet */
};

struct rvd_server {
    char *version;
    rvd_peers *peers;
    grpc_server *server;
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

enum call_state { CALL_REQUESTED, CALL_ANSWERING };

struct call {
    rvd_server *server;
    const struct method *method; /* NULL: the generic slot */
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
};

/* ------------------------------------------------------------------------
 * Handlers: one small function per method — convert, call the owner,
 * nothing more.
 * ------------------------------------------------------------------------ */

/* Pack msg into r->response and answer OK (gRPC's allocator aborts rather
 * than fail). */
static void reply_message(struct reply *r, const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    r->response = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    r->code = GRPC_STATUS_OK;
}

static void handle_ping(const struct call *c, const ProtobufCMessage *req, struct reply *r) {
    Retriever__V1__PingResponse resp = RETRIEVER__V1__PING_RESPONSE__INIT;
    resp.version = c->server->version;
    resp.api_version = RVD_API_VERSION;
    reply_message(r, &resp.base);
}

/* Methods implemented so far, by the name in the .proto. */
static const struct {
    const char *name;
    unary_fn unary;
} implemented[] = {
    {"Ping", handle_ping},
};

/* ------------------------------------------------------------------------
 * Calls
 * ------------------------------------------------------------------------ */

static struct call *call_new(rvd_server *s, const struct method *m) {
    struct call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->server = s;
    c->method = m;
    c->state = CALL_REQUESTED;
    grpc_metadata_array_init(&c->request_md);
    grpc_call_details_init(&c->details);
    c->status_slice = grpc_empty_slice();
    return c;
}

static void call_free(struct call *c) {
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->request_md);
    grpc_call_details_destroy(&c->details);
    if (c->request)
        grpc_byte_buffer_destroy(c->request);
    if (c->reply.response)
        grpc_byte_buffer_destroy(c->reply.response);
    free(c->reply.detail);
    grpc_slice_unref(c->status_slice);
    free(c);
}

/* Post a request slot for m (NULL: the generic slot). 0, -ENOMEM, -EIO. */
static int request_slot(rvd_server *s, const struct method *m) {
    struct call *c = call_new(s, m);
    if (!c)
        return -ENOMEM;
    grpc_call_error e;
    if (m)
        e = grpc_server_request_registered_call(s->server, m->registered, &c->call, &c->deadline,
                                                &c->request_md, &c->request, s->cq, s->cq, c);
    else
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->request_md, s->cq,
                                     s->cq, c);
    if (e != GRPC_CALL_OK) {
        call_free(c);
        return -EIO;
    }
    return 0;
}

static void set_reply_error(struct reply *r, grpc_status_code code, char *detail) {
    r->code = code;
    free(r->detail);
    r->detail = detail;
}

/* A method path, bounded and printable, for quoting back to the caller. */
static char *quote_method(grpc_slice method) {
    size_t len = GRPC_SLICE_LENGTH(method);
    size_t n = len < MAX_QUOTED_METHOD ? len : MAX_QUOTED_METHOD;
    char *q = malloc(n + 4);
    if (!q)
        return NULL;
    const unsigned char *p = GRPC_SLICE_START_PTR(method);
    for (size_t i = 0; i < n; i++)
        q[i] = (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'') ? (char)p[i] : '?';
    strcpy(q + n, n < len ? "..." : "");
    return q;
}

/* Decide the answer of a registered call: look up the caller, decode the
 * request, run the handler. */
static void run_registered(struct call *c) {
    const struct method *m = c->method;
    struct reply *r = &c->reply;

    char *peer_name = grpc_call_get_peer(c->call);
    int fd = -1;
    bool known = rvd_peer_name_fd(peer_name, &fd) == 0 &&
                 rvd_peers_get(c->server->peers, fd, &c->peer) == 0;
    gpr_free(peer_name);
    if (!known) {
        set_reply_error(r, GRPC_STATUS_PERMISSION_DENIED,
                        rvd_strdupf("the caller's credentials are unknown"));
        return;
    }
    if (!m->unary) {
        set_reply_error(r, GRPC_STATUS_UNIMPLEMENTED,
                        rvd_strdupf("%s is not implemented yet", m->desc->name));
        return;
    }
    if (!c->request) {
        set_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT,
                        rvd_strdupf("%s needs a request message", m->desc->name));
        return;
    }
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, c->request)) {
        set_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT,
                        rvd_strdupf("cannot read the %s request", m->desc->name));
        return;
    }
    grpc_slice flat = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *req = protobuf_c_message_unpack(
        m->desc->input, NULL, GRPC_SLICE_LENGTH(flat), GRPC_SLICE_START_PTR(flat));
    grpc_slice_unref(flat);
    if (!req) {
        set_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT,
                        rvd_strdupf("malformed %s", m->desc->input->name));
        return;
    }
    m->unary(c, req, r);
    protobuf_c_message_free_unpacked(req, NULL);
}

/* Post the one answering batch. false: nothing was posted (free the call). */
static bool answer(struct call *c) {
    struct reply *r = &c->reply;
    r->code = GRPC_STATUS_INTERNAL; /* until a handler says otherwise */

    if (c->method) {
        run_registered(c);
    } else {
        char *q = quote_method(c->details.method);
        set_reply_error(r, GRPC_STATUS_UNIMPLEMENTED,
                        q ? rvd_strdupf("unknown method '%s'", q) : NULL);
        free(q);
    }
    if (r->code != GRPC_STATUS_OK && r->response) {
        grpc_byte_buffer_destroy(r->response);
        r->response = NULL;
    }
    if (r->code == GRPC_STATUS_OK && !r->response)
        set_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("out of memory"));
    if (r->detail) {
        grpc_slice_unref(c->status_slice);
        c->status_slice = grpc_slice_from_copied_string(r->detail);
    }

    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n++].data.send_initial_metadata.count = 0;
    if (r->response) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = r->response;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.trailing_metadata_count = 0;
    ops[n].data.send_status_from_server.status = r->code;
    ops[n++].data.send_status_from_server.status_details = r->detail ? &c->status_slice : NULL;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;

    c->state = CALL_ANSWERING;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        rvd_log_error("cannot answer a call: grpc_call_start_batch failed (%d)", (int)e);
        return false;
    }
    return true;
}

/* One event for c. true: c has an operation outstanding again; false: it
 * has none, and the caller frees it. */
static bool on_event(rvd_server *s, struct call *c, bool ok) {
    switch (c->state) {
    case CALL_REQUESTED:
        if (!ok)
            return false; /* the server is shutting down: the slot is gone */
        /* Re-arm first, so the method keeps a waiting slot while this call
         * is answered. */
        if (!atomic_load(&s->stopping)) {
            int r = request_slot(s, c->method);
            if (r < 0)
                rvd_log_error("cannot wait for further calls of '%s': %s",
                              c->method ? c->method->path : "unknown methods", strerror(-r));
        }
        return answer(c);
    case CALL_ANSWERING:
        return false; /* done, whether the client stayed or not */
    }
    return false;
}

/* ------------------------------------------------------------------------
 * The completion-queue thread
 * ------------------------------------------------------------------------ */

/* Wait for the next event and handle it; false once the queue is shut
 * down and drained. */
static bool dispatch_next(rvd_server *s) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
        return false;
    if (ev.type != GRPC_OP_COMPLETE)
        return true;
    if (ev.tag == &s->shutdown_tag) {
        pthread_mutex_lock(&s->lock);
        s->shutdown_done = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return true;
    }
    struct call *c = ev.tag;
    if (!on_event(s, c, ev.success != 0))
        call_free(c); /* the one place a call is freed */
    return true;
}

static void *cq_thread(void *arg) {
    rvd_server *s = arg;
    while (dispatch_next(s))
        ;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

/* gRPC's own messages, as our log lines. */
static void grpc_log_line(gpr_log_func_args *a) {
    const char *msg = a->message ? a->message : "";
    switch (a->severity) {
    case GPR_LOG_SEVERITY_ERROR:
        rvd_log_error("grpc: %s", msg);
        break;
    case GPR_LOG_SEVERITY_INFO:
        rvd_log_info("grpc: %s", msg);
        break;
    default:
        rvd_log_info("grpc: debug: %s", msg);
        break;
    }
}

static unary_fn implementation_of(const char *name) {
    for (size_t i = 0; i < sizeof(implemented) / sizeof(implemented[0]); i++)
        if (strcmp(implemented[i].name, name) == 0)
            return implemented[i].unary;
    return NULL;
}

int rvd_server_new(const rvd_server_opts *o, rvd_server **ret, char **ret_error) {
    const ProtobufCServiceDescriptor *svc = &retriever__v1__retriever__descriptor;
    int r = 0;

    rvd_server *s = calloc(1, sizeof(*s));
    if (!s) {
        if (ret_error)
            *ret_error = rvd_strdupf("out of memory");
        return -ENOMEM;
    }
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->peers = o->peers;

    gpr_set_log_function(grpc_log_line);
    grpc_init();
    /* From here on, rvd_server_free undoes what was done (it sees grpc
     * initialised because s exists). */

    s->version = strdup(o->version ? o->version : "unknown");
    s->methods = calloc(svc->n_methods, sizeof(*s->methods));
    if (!s->version || !s->methods) {
        r = -ENOMEM;
        goto fail_msg;
    }
    s->n_methods = svc->n_methods;

    grpc_arg args[2] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = RVD_MAX_REQUEST_BYTES},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = RVD_MAX_STREAMS_PER_CONNECTION},
    };
    grpc_channel_args cargs = {.num_args = 2, .args = args};
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->server = grpc_server_create(&cargs, NULL);
    s->creds = grpc_insecure_server_credentials_create();
    if (!s->cq || !s->server || !s->creds) {
        r = -ENOMEM;
        goto fail_msg;
    }
    grpc_server_register_completion_queue(s->server, s->cq, NULL);

    for (size_t i = 0; i < s->n_methods; i++) {
        struct method *m = &s->methods[i];
        m->desc = &svc->methods[i];
        m->unary = implementation_of(m->desc->name);
        m->path = rvd_strdupf("/%s/%s", svc->name, m->desc->name);
        if (!m->path) {
            r = -ENOMEM;
            goto fail_msg;
        }
        /* Every method of v1 takes one request message (unary or server
         * streaming), so the first message can always arrive with the call. */
        m->registered = grpc_server_register_method(s->server, m->path, NULL,
                                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!m->registered) {
            r = -EINVAL;
            if (ret_error)
                *ret_error = rvd_strdupf("cannot register the method '%s'", m->path);
            goto fail;
        }
    }
    /* A handler whose name the service lacks is a typo: refuse to start. */
    for (size_t i = 0; i < sizeof(implemented) / sizeof(implemented[0]); i++)
        if (!protobuf_c_service_descriptor_get_method_by_name(svc, implemented[i].name)) {
            r = -EINVAL;
            if (ret_error)
                *ret_error = rvd_strdupf("no method '%s' in %s", implemented[i].name, svc->name);
            goto fail;
        }
    grpc_server_start(s->server);
    s->started = true;

    for (size_t i = 0; i <= s->n_methods && r == 0; i++)
        r = request_slot(s, i < s->n_methods ? &s->methods[i] : NULL);
    if (r < 0) {
        if (ret_error)
            *ret_error = rvd_strdupf("cannot wait for calls: %s", strerror(-r));
        goto fail;
    }
    int e = pthread_create(&s->cq_thread, NULL, cq_thread, s);
    if (e != 0) {
        r = -e;
        if (ret_error)
            *ret_error = rvd_strdupf("cannot start the gRPC thread: %s", strerror(e));
        goto fail;
    }
    s->cq_running = true;
    *ret = s;
    return 0;

fail_msg:
    if (ret_error)
        *ret_error = rvd_strdupf("cannot create the gRPC server: %s", strerror(-r));
fail:
    rvd_server_free(s);
    return r;
}

void rvd_server_add_fd(rvd_server *s, int fd) {
    grpc_server_add_channel_from_fd(s->server, fd, s->creds);
}

/* Wait until the shutdown tag arrived or deadline (CLOCK_MONOTONIC) passed. */
static bool wait_shutdown_until(rvd_server *s, const struct timespec *deadline) {
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done)
        if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT)
            break;
    bool done = s->shutdown_done;
    pthread_mutex_unlock(&s->lock);
    return done;
}

static struct timespec after_ms(const struct timespec *t0, unsigned ms) {
    struct timespec t = *t0;
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int rvd_server_shutdown(rvd_server *s, unsigned grace_ms, unsigned bound_ms) {
    if (s->shutdown_called)
        return s->shutdown_failed ? -ETIMEDOUT : 0;
    s->shutdown_called = true;
    if (bound_ms < grace_ms)
        bound_ms = grace_ms;

    atomic_store(&s->stopping, true);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    /* Unary calls finish at once. Streams (next increment) get UNAVAILABLE
     * from their owners before this; what still runs after the grace is
     * cancelled. */
    struct timespec grace = after_ms(&t0, grace_ms);
    if (!wait_shutdown_until(s, &grace)) {
        grpc_server_cancel_all_calls(s->server);
        struct timespec bound = after_ms(&t0, bound_ms);
        if (!wait_shutdown_until(s, &bound)) {
            s->shutdown_failed = true;
            return -ETIMEDOUT;
        }
    }
    return 0;
}

rvd_server *rvd_server_free(rvd_server *s) {
    if (!s)
        return NULL;
    if (s->server && s->cq_running && !s->shutdown_called)
        rvd_server_shutdown(s, DEFAULT_GRACE_MS, DEFAULT_BOUND_MS);
    if (s->shutdown_failed) {
        /* Calls are still alive inside gRPC: destroying the server or the
         * queue now would crash. Leave them to the exiting process. */
        return NULL;
    }
    if (s->started && !s->cq_running) {
        /* Failed between start and the CQ thread: shut down here, running
         * the queue on this thread (the posted slots fail at once). */
        atomic_store(&s->stopping, true);
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->server);
        while (!s->shutdown_done && dispatch_next(s))
            ;
    }
    if (s->server)
        grpc_server_destroy(s->server);
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        if (s->cq_running)
            pthread_join(s->cq_thread, NULL); /* it drains until GRPC_QUEUE_SHUTDOWN */
        else
            while (dispatch_next(s))
                ;
        grpc_completion_queue_destroy(s->cq);
    }
    if (s->creds)
        grpc_server_credentials_release(s->creds);
    for (size_t i = 0; i < s->n_methods; i++)
        free(s->methods[i].path);
    free(s->methods);
    free(s->version);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    grpc_shutdown();
    return NULL;
}
