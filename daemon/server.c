/* server.c — retriever.v1.Retriever on the gRPC C core.
 *
 * The transport (see server_int.h for how the server's files divide the
 * work). Sections: calls (life of one call) · the completion-queue
 * thread · lifecycle.
 *
 * A call's life (struct call, one per request slot):
 *
 *   state      | outstanding on the queue        | next
 *   -----------+---------------------------------+-------------------------
 *   REQUESTED  | the request slot (new-call tag) | ok: re-arm the method's
 *              |                                 | slot, answer → ANSWERING
 *              |                                 | or STREAMING; !ok
 *              |                                 | (shutdown): free
 *   ANSWERING  | one batch: initial metadata,    | free (whether the batch
 *              | message?, status, close-wait    | succeeded or not)
 *   STREAMING  | the close-wait (its own tag)    | each send completion
 *              | until the call closes, and at   | starts the next send;
 *              | most one send batch (a message, | free once closed, no
 *              | or at the end the status)       | send outstanding and
 *              |                                 | the job table let go
 *
 * A stream's producers are the job table's sinks, called on the worker
 * thread (and on this thread while subscribing); its consumer is this
 * thread's send completions. The call's lock guards the queue and flags
 * between them. Lock order: the job table's lock, then a call's lock;
 * this thread never holds a call's lock while calling into the table.
 *
 * The one place a call is freed is cq_thread() after on_event() says that
 * nothing is outstanding and nobody else holds it.
 */
#include "server_int.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Longest method path quoted back in an UNIMPLEMENTED message. */
#define MAX_QUOTED_METHOD 200

/* rvd_server_free's bounds when shutdown was not called. */
#define DEFAULT_GRACE_MS 1000
#define DEFAULT_BOUND_MS 4000

/* ------------------------------------------------------------------------
 * Calls
 * ------------------------------------------------------------------------ */

static struct call *call_new(rvd_server *s, const struct method *m) {
    struct call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->kind = TAG_CALL;
    c->server = s;
    c->method = m;
    c->state = CALL_REQUESTED;
    grpc_metadata_array_init(&c->request_md);
    grpc_call_details_init(&c->details);
    c->status_slice = grpc_empty_slice();
    return c;
}

void rvd_reply_error(struct reply *r, grpc_status_code code, char *detail) {
    r->code = code;
    free(r->detail);
    r->detail = detail;
}

static struct uidcalls *calls_find(rvd_server *s, uid_t uid) {
    for (size_t i = 0; i < s->n_calls; i++)
        if (s->calls[i].uid == uid)
            return &s->calls[i];
    return NULL;
}

/* Count c as a call of its caller's uid; false (and r set) when the uid is
 * at per-uid-calls. Root and the daemon's own uid are not limited. */
static bool calls_admit(struct call *c, struct reply *r) {
    rvd_server *s = c->server;
    uid_t uid = c->peer.uid;
    struct uidcalls *u = calls_find(s, uid);
    if (s->per_uid_calls && uid != 0 && uid != geteuid() && u && u->n >= s->per_uid_calls) {
        rvd_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        rvd_strdupf("uid %u has %u of %u calls open (per-uid-calls); end some "
                                    "of your streams before starting more",
                                    (unsigned)uid, u->n, s->per_uid_calls));
        return false;
    }
    if (!u) {
        if (s->n_calls == s->cap_calls) {
            size_t cap = s->cap_calls ? 2 * s->cap_calls : 8;
            struct uidcalls *v = realloc(s->calls, cap * sizeof(*v));
            if (!v) {
                rvd_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("out of memory"));
                return false;
            }
            s->calls = v;
            s->cap_calls = cap;
        }
        u = &s->calls[s->n_calls++];
        *u = (struct uidcalls){.uid = uid};
    }
    u->n++;
    atomic_fetch_add(&s->open_calls, 1);
    c->counted = true;
    return true;
}

static void calls_release(struct call *c) {
    if (!c->counted)
        return;
    c->counted = false;
    rvd_server *s = c->server;
    struct uidcalls *u = calls_find(s, c->peer.uid);
    atomic_fetch_sub(&s->open_calls, 1);
    if (u && --u->n == 0)
        *u = s->calls[--s->n_calls];
}

unsigned rvd_server_open_calls(rvd_server *s) {
    return atomic_load(&s->open_calls);
}

static void call_free(struct call *c) {
    calls_release(c);
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->request_md);
    grpc_call_details_destroy(&c->details);
    rvd_peer_clear(&c->peer);
    if (c->request)
        grpc_byte_buffer_destroy(c->request);
    if (c->reply.response)
        grpc_byte_buffer_destroy(c->reply.response);
    free(c->reply.detail);
    grpc_slice_unref(c->status_slice);
    rvd_stream_queue_clear(c);
    if (c->inflight)
        grpc_byte_buffer_destroy(c->inflight);
    if (c->lock_init)
        pthread_mutex_destroy(&c->lock);
    if (c->reading && c->read_fd >= 0)
        close(c->read_fd);
    free(c);
}

/* Post a request slot for m (NULL: the generic slot; refusal: the
 * refuser's). 0, -ENOMEM, -EIO. */
static int request_slot(rvd_server *s, const struct method *m, bool refusal) {
    struct call *c = call_new(s, m);
    if (!c)
        return -ENOMEM;
    c->refusal = refusal;
    grpc_call_error e;
    if (refusal)
        e = grpc_server_request_call(s->refuser, &c->call, &c->details, &c->request_md, s->cq,
                                     s->cq, c);
    else if (m)
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

/* Decide the answer of a registered call: look up the caller, read the
 * request's bytes, run the handler (which decodes them). */
static void run_registered(struct call *c) {
    const struct method *m = c->method;
    struct reply *r = &c->reply;

    char *peer_name = grpc_call_get_peer(c->call);
    int fd = -1;
    int e = rvd_peer_name_fd(peer_name, &fd);
    if (e == 0)
        e = rvd_peers_get(c->server->peers, fd, &c->peer);
    gpr_free(peer_name);
    if (e == -ENOMEM) {
        rvd_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("out of memory"));
        return;
    }
    if (e < 0) {
        rvd_reply_error(r, GRPC_STATUS_PERMISSION_DENIED,
                        rvd_strdupf("the caller's credentials are unknown"));
        return;
    }
    if (!calls_admit(c, r))
        return;
    if (!m->handle) {
        rvd_reply_error(r, GRPC_STATUS_UNIMPLEMENTED,
                        rvd_strdupf("%s is not implemented yet", m->desc->name));
        return;
    }
    if (!c->request) {
        rvd_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT,
                        rvd_strdupf("%s needs a request message", m->desc->name));
        return;
    }
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, c->request)) {
        rvd_reply_error(r, GRPC_STATUS_INVALID_ARGUMENT,
                        rvd_strdupf("cannot read the %s request", m->desc->name));
        return;
    }
    grpc_slice flat = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    r->code = GRPC_STATUS_OK;
    m->handle(c, GRPC_SLICE_START_PTR(flat), GRPC_SLICE_LENGTH(flat), r);
    grpc_slice_unref(flat);
}

/* Post the one answering batch of a unary call (or of a stream refused
 * before it began). false: nothing was posted (free the call). */
static bool answer(struct call *c) {
    struct reply *r = &c->reply;
    if (r->code != GRPC_STATUS_OK && r->response) {
        grpc_byte_buffer_destroy(r->response);
        r->response = NULL;
    }
    if (r->code == GRPC_STATUS_OK && !r->response)
        rvd_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("out of memory"));
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

/* A new call: answer it, or start its stream. false: nothing is
 * outstanding (free it). */
static bool start_call(struct call *c) {
    c->reply.code = GRPC_STATUS_INTERNAL; /* until a handler says otherwise */
    if (c->refusal) {
        char *peer_name = grpc_call_get_peer(c->call);
        int fd = -1;
        char *why = rvd_peer_name_fd(peer_name, &fd) == 0
                        ? rvd_peers_refusal(c->server->peers, fd)
                        : NULL;
        gpr_free(peer_name);
        rvd_reply_error(&c->reply, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        why ? why : rvd_strdupf("too many connections; try again later"));
    } else if (c->method) {
        run_registered(c);
    } else {
        char *q = quote_method(c->details.method);
        rvd_reply_error(&c->reply, GRPC_STATUS_UNIMPLEMENTED,
                        q ? rvd_strdupf("unknown method '%s'", q) : NULL);
        free(q);
    }
    if (c->state == CALL_STREAMING) {
        pthread_mutex_lock(&c->lock);
        bool done = rvd_stream_done(c);
        pthread_mutex_unlock(&c->lock);
        return !done;
    }
    return answer(c);
}

/* One event for c. true: c has an operation outstanding again, or is
 * still held by the job table; false: neither, and the caller frees it. */
static bool on_event(rvd_server *s, struct call *c, enum tag_kind kind, bool ok) {
    if (kind == TAG_CLOSE)
        return rvd_stream_on_closed(c);
    switch (c->state) {
    case CALL_REQUESTED:
        if (!ok)
            return false; /* the server is shutting down: the slot is gone */
        /* Re-arm first, so the method keeps a waiting slot while this call
         * is answered. */
        if (!atomic_load(&s->stopping)) {
            int r = request_slot(s, c->method, c->refusal);
            if (r < 0)
                rvd_log_error("cannot wait for further calls of '%s': %s",
                              c->refusal ? "refused connections"
                              : c->method ? c->method->path
                                          : "unknown methods",
                              strerror(-r));
        }
        return start_call(c);
    case CALL_ANSWERING:
        return false; /* done, whether the client stayed or not */
    case CALL_STREAMING:
        return rvd_stream_on_sent(c, ok);
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
    if (ev.tag == &s->shutdown_tag || ev.tag == &s->refuser_shutdown_tag) {
        pthread_mutex_lock(&s->lock);
        if (ev.tag == &s->shutdown_tag)
            s->shutdown_done = true;
        else
            s->refuser_done = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return true;
    }
    enum tag_kind kind = *(const enum tag_kind *)ev.tag;
    struct call *c = kind == TAG_CLOSE ? ((struct close_tag *)ev.tag)->call : ev.tag;
    if (!on_event(s, c, kind, ev.success != 0))
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

static handler_fn implementation_of(const char *name) {
    for (size_t i = 0; i < rvd_n_handlers; i++)
        if (strcmp(rvd_handlers[i].name, name) == 0)
            return rvd_handlers[i].handle;
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
    atomic_init(&s->open_calls, 0);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->peers = o->peers;
    s->jobs = o->jobs;
    s->per_uid_calls = o->per_uid_calls;

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
    grpc_arg rargs[3] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONNECTION_AGE_MS,
         .value.integer = RVD_REFUSED_AGE_MS},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
         .value.integer = RVD_REFUSED_AGE_MS},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = 1},
    };
    grpc_channel_args rcargs = {.num_args = 3, .args = rargs};
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->server = grpc_server_create(&cargs, NULL);
    s->refuser = grpc_server_create(&rcargs, NULL);
    s->creds = grpc_insecure_server_credentials_create();
    if (!s->cq || !s->server || !s->refuser || !s->creds) {
        r = -ENOMEM;
        goto fail_msg;
    }
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    grpc_server_register_completion_queue(s->refuser, s->cq, NULL);

    for (size_t i = 0; i < s->n_methods; i++) {
        struct method *m = &s->methods[i];
        m->desc = &svc->methods[i];
        m->handle = implementation_of(m->desc->name);
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
    for (size_t i = 0; i < rvd_n_handlers; i++)
        if (!protobuf_c_service_descriptor_get_method_by_name(svc, rvd_handlers[i].name)) {
            r = -EINVAL;
            if (ret_error)
                *ret_error = rvd_strdupf("no method '%s' in %s", rvd_handlers[i].name, svc->name);
            goto fail;
        }
    grpc_server_start(s->server);
    grpc_server_start(s->refuser);
    s->started = true;

    for (size_t i = 0; i <= s->n_methods && r == 0; i++)
        r = request_slot(s, i < s->n_methods ? &s->methods[i] : NULL, false);
    if (r == 0)
        r = request_slot(s, NULL, true);
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

void rvd_server_add_refused_fd(rvd_server *s, int fd) {
    grpc_server_add_channel_from_fd(s->refuser, fd, s->creds);
}

/* Wait until the shutdown tag arrived or deadline (CLOCK_MONOTONIC) passed. */
static bool wait_shutdown_until(rvd_server *s, const struct timespec *deadline) {
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done || !s->refuser_done)
        if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT)
            break;
    bool done = s->shutdown_done && s->refuser_done;
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
    /* Refused connections' calls are answered at once; nothing to wait for. */
    grpc_server_shutdown_and_notify(s->refuser, s->cq, &s->refuser_shutdown_tag);
    grpc_server_cancel_all_calls(s->refuser);

    /* Unary calls finish at once. Streams got UNAVAILABLE from the job
     * table before this (rvd_jobs_stop); what still runs after the grace
     * is cancelled. */
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
        grpc_server_shutdown_and_notify(s->refuser, s->cq, &s->refuser_shutdown_tag);
        grpc_server_cancel_all_calls(s->refuser);
        while ((!s->shutdown_done || !s->refuser_done) && dispatch_next(s))
            ;
    }
    if (s->server)
        grpc_server_destroy(s->server);
    if (s->refuser)
        grpc_server_destroy(s->refuser);
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
    free(s->calls);
    free(s->version);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
    grpc_shutdown();
    return NULL;
}
