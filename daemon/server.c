/* server.c — retriever.v1.Retriever on the gRPC C core.
 *
 * Sections: the method table · encoding · calls (life of one call) ·
 * streams · handlers · the completion-queue thread · lifecycle.
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
#include <unistd.h>

#include "cacheops.h"
#include "log.h"
#include "request.h"
#include "retriever/v1/retriever.pb-c.h"

/* Longest method path quoted back in an UNIMPLEMENTED message. */
#define MAX_QUOTED_METHOD 200
/* rvd_server_free's bounds when shutdown was not called. */
#define DEFAULT_GRACE_MS 1000
#define DEFAULT_BOUND_MS 4000
/* A stream whose reader lags this many messages behind misses progress
 * events (never the others): memory stays bounded by the reader's pace. */
#define STREAM_PROGRESS_BACKLOG 32
/* A batch (JobEvent.batch, for a caller that asked for batch_events)
 * takes at most this many of the waiting events, and this many bytes
 * (gRPC's default receive limit is 4 MiB); a larger single event goes
 * alone. */
#define STREAM_BATCH_EVENTS 1024
#define STREAM_BATCH_BYTES (1024 * 1024)
/* Bytes per ReadChunk (the API's limit). */
#define RVD_READ_CHUNK (1024 * 1024)
/* The first chunk after a notify is read under the job table's lock (the
 * notify comes with it held), where Status and every other call wait: it
 * is kept small; the chunks after it are read on send completions, with
 * no lock but the call's. */
#define RVD_READ_CHUNK_NOTIFIED (64 * 1024)

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

/* ------------------------------------------------------------------------
 * Encoding: views of the job table into messages. Called with the table's
 * lock held (the views are valid only then); everything is packed before
 * returning.
 * ------------------------------------------------------------------------ */

/* A packed message as a byte buffer (gRPC's allocator aborts rather than
 * fail). */
static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

static char *str_or_empty(const char *s) {
    return (char *)(s ? s : "");
}

/* The parts an object's status needs; filled by object_msg. */
struct object_parts {
    Retriever__V1__ObjectStatus os;
    Retriever__V1__Progress progress;
    Retriever__V1__Error error;
};

static void progress_msg(Retriever__V1__Progress *m, const rv_progress *p) {
    *m = (Retriever__V1__Progress)RETRIEVER__V1__PROGRESS__INIT;
    m->bytes_done = p->bytes_done;
    m->bytes_total = p->bytes_total;
    m->total_known = p->total_known;
    m->rate_bps = p->rate_bps;
}

static void error_msg(Retriever__V1__Error *m, const rvd_object_view *v) {
    *m = (Retriever__V1__Error)RETRIEVER__V1__ERROR__INIT;
    m->code = (char *)rv_error_name(v->error);
    m->message = (char *)rv_strerror(v->error);
    m->detail = str_or_empty(v->error_detail);
    m->retryable = rv_error_retryable(v->error);
}

static void object_msg(struct object_parts *p, const rvd_object_view *v) {
    p->os = (Retriever__V1__ObjectStatus)RETRIEVER__V1__OBJECT_STATUS__INIT;
    p->os.url = str_or_empty(v->url);
    p->os.destination = str_or_empty(v->destination);
    p->os.state = (Retriever__V1__ObjectState)(v->state + 1); /* the proto's numbering */
    progress_msg(&p->progress, &v->progress);
    p->os.progress = &p->progress;
    p->os.sha256 = str_or_empty(v->sha256);
    p->os.crc32c = str_or_empty(v->crc32c);
    p->os.retries = v->retries;
    if (v->error != RV_OK) {
        error_msg(&p->error, v);
        p->os.error = &p->error;
    }
}

/* A Job message and the parts it points at; filled by job_msg (which
 * borrows the view's strings), released by job_parts_clear. */
struct job_parts {
    Retriever__V1__Job job;
    struct object_parts *objs;
    Retriever__V1__ObjectStatus **ptrs;
};

static void job_parts_clear(struct job_parts *p) {
    free(p->objs);
    free(p->ptrs);
    p->objs = NULL;
    p->ptrs = NULL;
}

/* false: out of memory (nothing is held then). */
static bool job_msg(struct job_parts *p, const rvd_job_view *v) {
    p->objs = calloc(v->n_objects ? v->n_objects : 1, sizeof(*p->objs));
    p->ptrs = calloc(v->n_objects ? v->n_objects : 1, sizeof(*p->ptrs));
    if (!p->objs || !p->ptrs) {
        job_parts_clear(p);
        return false;
    }
    p->job = (Retriever__V1__Job)RETRIEVER__V1__JOB__INIT;
    p->job.id = (char *)v->id;
    p->job.state = (Retriever__V1__JobState)v->state;
    p->job.detached = v->detached;
    p->job.subscribers = v->subscribers;
    p->job.created_unix_ms = v->created_ms;
    p->job.ended_unix_ms = v->ended_ms;
    for (size_t i = 0; i < v->n_objects; i++) {
        object_msg(&p->objs[i], &v->objects[i]);
        p->ptrs[i] = &p->objs[i].os;
    }
    p->job.n_objects = v->n_objects;
    p->job.objects = p->ptrs;
    return true;
}

/* Pack a Job (or, with wrap, a JobEvent's Snapshot of it). */
static grpc_byte_buffer *pack_job(const rvd_job_view *v, const Retriever__V1__JobEvent *wrap) {
    struct job_parts p;
    grpc_byte_buffer *bb = NULL;
    if (!job_msg(&p, v))
        return NULL;
    if (wrap) {
        Retriever__V1__JobEvent ev = *wrap;
        Retriever__V1__Snapshot snap = RETRIEVER__V1__SNAPSHOT__INIT;
        snap.job = &p.job;
        ev.snapshot = &snap;
        bb = pack(&ev.base);
    } else {
        bb = pack(&p.job.base);
    }
    job_parts_clear(&p);
    return bb;
}

/* Pack a ListResponse of views. NULL: out of memory. */
static grpc_byte_buffer *pack_list(const rvd_job_view *const *views, size_t n) {
    struct job_parts *parts = calloc(n ? n : 1, sizeof(*parts));
    Retriever__V1__Job **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    grpc_byte_buffer *bb = NULL;
    size_t done = 0;
    if (!parts || !ptrs)
        goto out;
    for (; done < n; done++) {
        if (!job_msg(&parts[done], views[done]))
            goto out;
        ptrs[done] = &parts[done].job;
    }
    Retriever__V1__ListResponse resp = RETRIEVER__V1__LIST_RESPONSE__INIT;
    resp.n_jobs = n;
    resp.jobs = ptrs;
    bb = pack(&resp.base);
out:
    for (size_t i = 0; parts && i < done; i++)
        job_parts_clear(&parts[i]);
    free(parts);
    free(ptrs);
    return bb;
}

static grpc_byte_buffer *pack_event(const rvd_event *e) {
    Retriever__V1__JobEvent ev = RETRIEVER__V1__JOB_EVENT__INIT;
    ev.job_id = (char *)e->job_id;
    ev.object_index = e->object_index;
    ev.time_unix_ms = e->time_ms;

    Retriever__V1__Accepted accepted = RETRIEVER__V1__ACCEPTED__INIT;
    Retriever__V1__Queued queued = RETRIEVER__V1__QUEUED__INIT;
    Retriever__V1__Started started = RETRIEVER__V1__STARTED__INIT;
    Retriever__V1__ProgressEvent progress = RETRIEVER__V1__PROGRESS_EVENT__INIT;
    Retriever__V1__Retrying retrying = RETRIEVER__V1__RETRYING__INIT;
    Retriever__V1__Completed completed = RETRIEVER__V1__COMPLETED__INIT;
    Retriever__V1__Failed failed = RETRIEVER__V1__FAILED__INIT;
    Retriever__V1__Cancelled cancelled = RETRIEVER__V1__CANCELLED__INIT;
    Retriever__V1__Progress pg;
    Retriever__V1__Error err;
    const rvd_object_view *o = e->object;
    if (o) {
        progress_msg(&pg, &o->progress);
        error_msg(&err, o);
    }

    switch (e->kind) {
    case RVD_EV_ACCEPTED:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_ACCEPTED;
        ev.accepted = &accepted;
        break;
    case RVD_EV_SNAPSHOT:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_SNAPSHOT;
        return pack_job(e->job, &ev);
    case RVD_EV_QUEUED:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_QUEUED;
        ev.queued = &queued;
        break;
    case RVD_EV_STARTED:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_STARTED;
        started.progress = &pg;
        started.resumed_bytes = o ? o->resumed_bytes : 0;
        ev.started = &started;
        break;
    case RVD_EV_PROGRESS:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_PROGRESS;
        progress.progress = &pg;
        ev.progress = &progress;
        break;
    case RVD_EV_RETRYING:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_RETRYING;
        retrying.offset = e->retry.offset;
        retrying.attempt = e->retry.attempt;
        retrying.wait_ms = e->retry.wait_ms;
        retrying.http_status = e->retry.http_status > 0 ? (uint32_t)e->retry.http_status : 0;
        retrying.reason = str_or_empty(e->retry.reason);
        ev.retrying = &retrying;
        break;
    case RVD_EV_COMPLETED:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_COMPLETED;
        completed.path = str_or_empty(o->destination);
        completed.size = o->progress.bytes_done;
        completed.sha256 = str_or_empty(o->sha256);
        completed.crc32c = str_or_empty(o->crc32c);
        completed.from_cache = o->from_cache;
        ev.completed = &completed;
        break;
    case RVD_EV_FAILED:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_FAILED;
        failed.error = &err;
        ev.failed = &failed;
        break;
    case RVD_EV_CANCELLED:
        ev.event_case = RETRIEVER__V1__JOB_EVENT__EVENT_CANCELLED;
        ev.cancelled = &cancelled;
        break;
    }
    return pack(&ev.base);
}

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

static void queue_clear(struct call *c) {
    while (c->q_head) {
        struct outmsg *m = c->q_head;
        c->q_head = m->next;
        grpc_byte_buffer_destroy(m->bb);
        free(m);
    }
    c->q_tail = NULL;
    c->q_len = 0;
}

static void set_reply_error(struct reply *r, grpc_status_code code, char *detail) {
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
        set_reply_error(r, GRPC_STATUS_RESOURCE_EXHAUSTED,
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
                set_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("out of memory"));
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
    queue_clear(c);
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
        set_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("out of memory"));
        return;
    }
    if (e < 0) {
        set_reply_error(r, GRPC_STATUS_PERMISSION_DENIED,
                        rvd_strdupf("the caller's credentials are unknown"));
        return;
    }
    if (!calls_admit(c, r))
        return;
    if (!m->handle) {
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

/* ------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

static void read_fill(struct call *c, size_t max);

/* Take the next message off c's queue: the first one, or for a caller that
 * takes batches and with more waiting, a JobEvent whose batch holds as
 * many of them as the limits allow. Each queued message is a packed
 * JobEvent (packed while the table's views were valid): the batch's are
 * unpacked again and the batch packed by the generated packer. That costs
 * more CPU than copying the packed bytes behind a hand-written key and
 * length, as this once did, but not measurably in bench_daemon.py's D1.3
 * (1000 objects, batched events). Under c->lock; the queue is not empty. */
static grpc_byte_buffer *queue_take(struct call *c) {
    size_t n = 0, bytes = 0;
    for (struct outmsg *m = c->batch_events ? c->q_head : NULL; m && n < STREAM_BATCH_EVENTS;
         m = m->next) {
        /* In the batch, each event also takes its key (2 bytes) and
         * length (at most 5). */
        size_t add = grpc_byte_buffer_length(m->bb) + 7;
        if (n > 0 && bytes + add > STREAM_BATCH_BYTES)
            break;
        bytes += add;
        n++;
    }
    Retriever__V1__JobEvent **evs = n >= 2 ? calloc(n, sizeof(*evs)) : NULL;
    grpc_byte_buffer *out = NULL;
    if (evs) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            struct outmsg *m = c->q_head;
            grpc_byte_buffer_reader rd;
            if (grpc_byte_buffer_reader_init(&rd, m->bb)) {
                grpc_slice flat = grpc_byte_buffer_reader_readall(&rd);
                grpc_byte_buffer_reader_destroy(&rd);
                /* NULL only when out of memory: that event is lost */
                if ((evs[k] = retriever__v1__job_event__unpack(
                         NULL, GRPC_SLICE_LENGTH(flat), GRPC_SLICE_START_PTR(flat))))
                    k++;
                grpc_slice_unref(flat);
            }
            c->q_head = m->next;
            grpc_byte_buffer_destroy(m->bb);
            free(m);
        }
        c->q_len -= (unsigned)n;
        Retriever__V1__JobEvent batch = RETRIEVER__V1__JOB_EVENT__INIT;
        batch.n_batch = k;
        batch.batch = evs;
        out = pack(&batch.base);
        for (size_t i = 0; i < k; i++)
            retriever__v1__job_event__free_unpacked(evs[i], NULL);
        free(evs);
    } else {
        struct outmsg *m = c->q_head;
        c->q_head = m->next;
        c->q_len--;
        out = m->bb;
        free(m);
    }
    if (!c->q_head)
        c->q_tail = NULL;
    return out;
}

/* Start the next send, if any is due and none is outstanding. Under
 * c->lock. */
static void stream_kick(struct call *c) {
    if (c->sending || c->closed || c->status_sent)
        return;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n++].data.send_initial_metadata.count = 0;
    }
    if (c->q_head) {
        c->inflight = queue_take(c);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        /* More are queued: the transport may hold this one and write them
         * together (one write for a run of events instead of one each);
         * the last of a run goes out at once. Not with the initial
         * metadata: a held first message does not complete until a later
         * write, which waits for its completion. */
        ops[n].flags = c->q_head && c->md_sent ? GRPC_WRITE_BUFFER_HINT : 0;
        ops[n++].data.send_message.send_message = c->inflight;
    } else if (c->ending) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = c->end_code;
        ops[n++].data.send_status_from_server.status_details =
            GRPC_SLICE_LENGTH(c->status_slice) ? &c->status_slice : NULL;
        c->status_sent = true;
    } else {
        return;
    }
    if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK) {
        rvd_log_error("cannot send on a stream: grpc_call_start_batch failed");
        c->status_sent = true; /* give up on this stream; the close-wait ends it */
        queue_clear(c);
        return;
    }
    c->md_sent = true;
    c->sending = true;
}

/* Queue a message (taking bb) to go with the next kick; under c->lock. */
static void stream_queue(struct call *c, grpc_byte_buffer *bb) {
    struct outmsg *m = bb && !c->closed && !c->ending ? malloc(sizeof(*m)) : NULL;
    if (!m) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    m->bb = bb;
    m->next = NULL;
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    c->q_len++;
}

/* Queue a message (taking bb) and send it if the stream is idle; under
 * c->lock. */
static void stream_push(struct call *c, grpc_byte_buffer *bb) {
    stream_queue(c, bb);
    stream_kick(c);
}

/* No more messages: end with code once the queue drained; under c->lock. */
static void stream_finish(struct call *c, grpc_status_code code, const char *message) {
    if (c->ending)
        return;
    c->ending = true;
    c->end_code = code;
    if (message) {
        grpc_slice_unref(c->status_slice);
        c->status_slice = grpc_slice_from_copied_string(message);
    }
    stream_kick(c);
}

/* The job table's sink (its lock is held). Events are queued; the
 * table's flush after a run of them sends (so a caller that takes
 * batches gets the run in one message). */
static void sink_event(void *ctx, const rvd_event *ev) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (!(ev->kind == RVD_EV_PROGRESS && c->q_len >= STREAM_PROGRESS_BACKLOG) && !c->closed)
        stream_queue(c, pack_event(ev));
    pthread_mutex_unlock(&c->lock);
}

static void sink_flush(void *ctx) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    stream_kick(c);
    pthread_mutex_unlock(&c->lock);
}

static void sink_end(void *ctx, rvd_code code, const char *message) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->subscribed = false;
    stream_finish(c, (grpc_status_code)code, message);
    pthread_mutex_unlock(&c->lock);
}

/* Turn c into a stream: post its close-wait. false: the call cannot
 * stream (r says why). */
static bool stream_begin(struct call *c, struct reply *r) {
    pthread_mutex_init(&c->lock, NULL);
    c->lock_init = true;
    c->close_tag.kind = TAG_CLOSE;
    c->close_tag.call = c;
    c->sink = (rvd_sink){.event = sink_event, .flush = sink_flush, .end = sink_end, .ctx = c};
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK) {
        set_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("cannot start the stream"));
        return false;
    }
    c->state = CALL_STREAMING;
    return true;
}

/* Whether a stream call can be freed; under c->lock. */
static bool stream_done(const struct call *c) {
    return c->closed && !c->sending && !c->subscribed;
}

/* A send batch of stream c completed. */
static bool stream_on_sent(struct call *c, bool ok) {
    pthread_mutex_lock(&c->lock);
    c->sending = false;
    if (c->inflight) {
        grpc_byte_buffer_destroy(c->inflight);
        c->inflight = NULL;
    }
    if (!ok) { /* the client is gone: the close-wait will say so */
        queue_clear(c);
        c->status_sent = true;
    }
    if (c->reading)
        read_fill(c, RVD_READ_CHUNK);
    stream_kick(c);
    bool done = stream_done(c);
    pthread_mutex_unlock(&c->lock);
    return !done;
}

/* The close-wait of stream c completed: the call is over, by our status
 * or by the client's cancel or disconnect. */
static bool stream_on_closed(struct call *c) {
    pthread_mutex_lock(&c->lock);
    c->closed = true;
    queue_clear(c);
    bool unsubscribe = c->subscribed;
    pthread_mutex_unlock(&c->lock);
    /* Outside our lock (lock order: the table's first). */
    if (unsubscribe &&
        (c->caching   ? rvd_cacheops_cancel(rvd_jobs_cacheops(c->server->jobs), &c->cache_sink)
         : c->reading ? rvd_jobs_read_stop(c->server->jobs, c->job_id, c->read_index, &c->reader)
                      : rvd_jobs_unsubscribe(c->server->jobs, c->job_id, &c->sink))) {
        pthread_mutex_lock(&c->lock);
        c->subscribed = false;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->lock);
    bool done = stream_done(c);
    pthread_mutex_unlock(&c->lock);
    return !done;
}

/* The next ReadChunk (at most max bytes), when the stream is idle and
 * bytes are ready; the end of the stream once the last byte went. Under
 * c->lock. */
static void read_fill(struct call *c, size_t max) {
    if (c->sending || c->q_head || c->ending || c->closed)
        return;
    if (c->read_off >= c->read_ready && !c->read_done)
        return; /* wait for the next notify */
    if (c->read_off > c->read_ready) {
        stream_finish(c, GRPC_STATUS_OUT_OF_RANGE, "offset is beyond the end of the object");
        return;
    }
    uint64_t want = c->read_ready - c->read_off;
    size_t n = want < max ? (size_t)want : max;
    grpc_slice data = grpc_slice_malloc(n ? n : 1);
    ssize_t got = 0;
    while ((size_t)got < n) {
        ssize_t k = pread(c->read_fd, GRPC_SLICE_START_PTR(data) + got, n - (size_t)got,
                          (off_t)(c->read_off + (uint64_t)got));
        if (k <= 0) {
            grpc_slice_unref(data);
            stream_finish(c, GRPC_STATUS_INTERNAL, "cannot read the object's bytes");
            return;
        }
        got += k;
    }
    Retriever__V1__ReadChunk chunk = RETRIEVER__V1__READ_CHUNK__INIT;
    chunk.offset = c->read_off;
    chunk.data.data = GRPC_SLICE_START_PTR(data);
    chunk.data.len = n;
    chunk.last = c->read_done && c->read_off + n == c->read_ready;
    c->read_off += n;
    stream_push(c, pack(&chunk.base));
    grpc_slice_unref(data);
    if (chunk.last)
        stream_finish(c, GRPC_STATUS_OK, NULL);
}

/* The job table's reader callback (its lock is held). */
static void read_notify(void *ctx, const rvd_read_state *st) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (st->done || st->failed)
        c->subscribed = false; /* the table lets go after this call */
    if (c->read_fd < 0 && st->data_fd >= 0)
        c->read_fd = dup(st->data_fd);
    if (st->failed) {
        stream_finish(c, (grpc_status_code)st->code, st->why);
    } else if (c->read_fd < 0 && st->done) {
        stream_finish(c, GRPC_STATUS_INTERNAL, "cannot open the object's bytes");
    } else if (c->read_fd < 0) {
        /* Bytes may be ready, but the table opens the file only at the
         * next progress (or at the end) after a reader came: wait. */
    } else {
        c->read_ready = st->ready;
        c->read_done = st->done;
        read_fill(c, RVD_READ_CHUNK_NOTIFIED);
    }
    pthread_mutex_unlock(&c->lock);
}

/* A subscription (Download, Watch, Read, a cache RPC) the table or the
 * cache queue refused: it does not hold the call, whose stream ends with
 * code and msg (NULL: out of memory). Takes msg. */
static void subscribe_refused(struct call *c, rvd_code code, char *msg) {
    pthread_mutex_lock(&c->lock);
    c->subscribed = false;
    stream_finish(c, (grpc_status_code)code, msg ? msg : "out of memory");
    pthread_mutex_unlock(&c->lock);
    free(msg);
}

/* ------------------------------------------------------------------------
 * Handlers: one small function per method — decode, call the table,
 * encode, nothing more.
 * ------------------------------------------------------------------------ */

/* Pack msg into r->response and answer OK. */
static void reply_message(struct reply *r, const ProtobufCMessage *msg) {
    r->response = pack(msg);
    r->code = GRPC_STATUS_OK;
}

/* A refused request: code and its sentence (NULL: out of memory). */
static void reply_refused(struct reply *r, rvd_code code, char *msg) {
    set_reply_error(r, (grpc_status_code)code, msg ? msg : rvd_strdupf("out of memory"));
}

static void reply_decode_error(struct reply *r, int err, char *msg) {
    reply_refused(r, err == -ENOMEM ? RVD_INTERNAL : RVD_INVALID_ARGUMENT, msg);
}

static void handle_ping(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_PING, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    Retriever__V1__PingResponse resp = RETRIEVER__V1__PING_RESPONSE__INIT;
    resp.version = c->server->version;
    resp.api_version = RVD_API_VERSION;
    reply_message(r, &resp.base);
}

static void status_fn(void *ud, const rvd_job_view *v) {
    struct reply *r = ud;
    r->response = pack_job(v, NULL);
}

static void handle_status(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char id[RVD_JOB_ID_LEN + 1];
    char *msg = NULL;
    int e = rvd_request_job_id(RVD_REQ_STATUS, req, len, id, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    rvd_code code = rvd_jobs_status(c->server->jobs, &c->peer, id, status_fn, r, &msg);
    if (code != RVD_OK)
        reply_refused(r, code, msg);
}

/* The listed jobs, packed under the table's lock (the views are valid
 * only there). */
static void list_fn(void *ud, const rvd_job_view *const *views, size_t n) {
    struct reply *r = ud;
    r->response = pack_list(views, n);
}

static void handle_list(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    rvd_list_req lr;
    char *msg = NULL;
    int e = rvd_request_list(req, len, &lr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    if (rvd_jobs_list(c->server->jobs, &c->peer, lr.states, lr.limit, list_fn, r) != RVD_OK ||
        !r->response)
        reply_refused(r, RVD_INTERNAL, NULL);
}

static void handle_cancel(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char id[RVD_JOB_ID_LEN + 1];
    char *msg = NULL;
    int e = rvd_request_job_id(RVD_REQ_CANCEL, req, len, id, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    rvd_job_state state = 0;
    unsigned subs = 0;
    rvd_code code = rvd_jobs_cancel(c->server->jobs, &c->peer, id, &state, &subs, &msg);
    if (code != RVD_OK)
        return reply_refused(r, code, msg);
    Retriever__V1__CancelResponse resp = RETRIEVER__V1__CANCEL_RESPONSE__INIT;
    resp.state = (Retriever__V1__JobState)state;
    resp.subscribers = subs;
    reply_message(r, &resp.base);
}

static void handle_stats(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_STATS, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    rvd_jobs_stats st;
    rvd_jobs_stats_get(c->server->jobs, &st);
    Retriever__V1__StatsResponse resp = RETRIEVER__V1__STATS_RESPONSE__INIT;
    resp.active_jobs = st.running;
    resp.queued_jobs = st.queued;
    resp.rate_bps = st.rate_bps;
    resp.subscribers = st.subscribers;
    resp.connections = st.transfers;
    resp.bytes_from_origin = st.bytes_from_origin;
    resp.bytes_from_cache = st.bytes_from_cache;
    resp.cache_bytes = st.cache_bytes;
    resp.cache_quota = st.cache_quota;
    resp.done_jobs = st.done;
    resp.failed_jobs = st.failed;
    resp.cancelled_jobs = st.cancelled;
    reply_message(r, &resp.base);
}

static void handle_download(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    rvd_download_req *dr = NULL;
    char *msg = NULL;
    int e = rvd_request_download(req, len, &dr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    if (!stream_begin(c, r)) {
        rvd_download_req_free(dr);
        return;
    }
    bool detach = dr->detach;
    pthread_mutex_lock(&c->lock);
    c->subscribed = !detach;
    c->batch_events = dr->batch_events;
    pthread_mutex_unlock(&c->lock);
    /* Events may arrive (on the worker thread too) as soon as this
     * subscribes; the call's lock is not held across it. */
    rvd_code code = rvd_jobs_submit(c->server->jobs, &c->peer, dr, req, len,
                                    detach ? NULL : &c->sink, c->job_id, &msg);
    if (code != RVD_OK)
        return subscribe_refused(c, code, msg);
    if (detach) {
        rvd_event ev = {.kind = RVD_EV_ACCEPTED, .job_id = c->job_id, .time_ms = 0};
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        ev.time_ms = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
        pthread_mutex_lock(&c->lock);
        stream_push(c, pack_event(&ev));
        stream_finish(c, GRPC_STATUS_OK, NULL);
        pthread_mutex_unlock(&c->lock);
    }
}

static void handle_watch(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    rvd_watch_req wr;
    int e = rvd_request_watch(req, len, &wr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    memcpy(c->job_id, wr.job_id, sizeof(c->job_id));
    if (!stream_begin(c, r))
        return;
    pthread_mutex_lock(&c->lock);
    c->subscribed = true;
    c->batch_events = wr.batch_events;
    pthread_mutex_unlock(&c->lock);
    rvd_code code = rvd_jobs_watch(c->server->jobs, &c->peer, c->job_id, &c->sink, &msg);
    if (code != RVD_OK)
        subscribe_refused(c, code, msg);
}

static void handle_read(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    rvd_read_req rr;
    char *msg = NULL;
    int e = rvd_request_read(req, len, &rr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    if (!stream_begin(c, r))
        return;
    memcpy(c->job_id, rr.job_id, sizeof(c->job_id));
    pthread_mutex_lock(&c->lock);
    c->reading = true;
    c->read_fd = -1;
    c->read_index = rr.object_index;
    c->read_off = rr.offset;
    c->reader = (rvd_reader){.notify = read_notify, .ctx = c};
    c->subscribed = true;
    pthread_mutex_unlock(&c->lock);
    rvd_code code = rvd_jobs_read(c->server->jobs, &c->peer, c->job_id, rr.object_index,
                                  &c->reader, &msg);
    if (code != RVD_OK)
        subscribe_refused(c, code, msg);
}

/* The cacheops sink (the table's lock is held): one CacheEntry per entry. */
static void cache_entry(void *ctx, const rv_cache_entry *en, rv_cache_result res) {
    struct call *c = ctx;
    Retriever__V1__CacheEntry m = RETRIEVER__V1__CACHE_ENTRY__INIT;
    m.url = (char *)en->url;
    m.size_known = en->size_known;
    m.size = en->size;
    m.bytes = en->bytes;
    m.complete = en->complete;
    m.in_use = en->in_use;
    m.used_unix_ms = en->used_unix * 1000;
    m.keyed = en->keyed;
    m.result = (Retriever__V1__CacheResult)(res + 1); /* the proto's numbering */
    pthread_mutex_lock(&c->lock);
    if (!c->closed)
        stream_push(c, pack(&m.base));
    pthread_mutex_unlock(&c->lock);
}

static void cache_end(void *ctx, int code, const char *message) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->subscribed = false;
    stream_finish(c, (grpc_status_code)code, message);
    pthread_mutex_unlock(&c->lock);
}

/* CacheList, CacheRemove, CacheVerify: a stream the engine thread fills
 * (cacheops.h). rm is taken. */
static void cache_stream(struct call *c, rv_cache_op op, rvd_cache_remove_req *rm,
                         struct reply *r) {
    if (!stream_begin(c, r)) {
        rvd_cache_remove_req_clear(rm);
        return;
    }
    char *msg = NULL;
    pthread_mutex_lock(&c->lock);
    c->caching = true;
    c->subscribed = true;
    c->cache_sink = (rvd_cache_sink){.entry = cache_entry, .end = cache_end, .ctx = c};
    pthread_mutex_unlock(&c->lock);
    int code = rvd_cacheops_submit(rvd_jobs_cacheops(c->server->jobs), &c->peer, op, rm,
                                   &c->cache_sink, &msg);
    if (code != RVD_OK)
        subscribe_refused(c, (rvd_code)code, msg);
}

static void handle_cache_list(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_CACHE_LIST, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    cache_stream(c, RV_CACHE_LIST, NULL, r);
}

static void handle_cache_remove(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    rvd_cache_remove_req rm;
    int e = rvd_request_cache_remove(req, len, &rm, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    cache_stream(c, RV_CACHE_REMOVE, &rm, r);
}

static void handle_cache_verify(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_CACHE_VERIFY, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    cache_stream(c, RV_CACHE_VERIFY, NULL, r);
}

/* Methods implemented so far, by the name in the .proto. */
static const struct {
    const char *name;
    handler_fn handle;
} implemented[] = {
    {"Ping", handle_ping},         {"Status", handle_status},     {"List", handle_list},
    {"Cancel", handle_cancel},     {"Stats", handle_stats},       {"Download", handle_download},
    {"Watch", handle_watch},       {"Read", handle_read},
    {"CacheList", handle_cache_list}, {"CacheRemove", handle_cache_remove},
    {"CacheVerify", handle_cache_verify},
};

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
        set_reply_error(&c->reply, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        why ? why : rvd_strdupf("too many connections; try again later"));
    } else if (c->method) {
        run_registered(c);
    } else {
        char *q = quote_method(c->details.method);
        set_reply_error(&c->reply, GRPC_STATUS_UNIMPLEMENTED,
                        q ? rvd_strdupf("unknown method '%s'", q) : NULL);
        free(q);
    }
    if (c->state == CALL_STREAMING) {
        pthread_mutex_lock(&c->lock);
        bool done = stream_done(c);
        pthread_mutex_unlock(&c->lock);
        return !done;
    }
    return answer(c);
}

/* One event for c. true: c has an operation outstanding again, or is
 * still held by the job table; false: neither, and the caller frees it. */
static bool on_event(rvd_server *s, struct call *c, enum tag_kind kind, bool ok) {
    if (kind == TAG_CLOSE)
        return stream_on_closed(c);
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
        return stream_on_sent(c, ok);
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
    for (size_t i = 0; i < sizeof(implemented) / sizeof(implemented[0]); i++)
        if (strcmp(implemented[i].name, name) == 0)
            return implemented[i].handle;
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
    for (size_t i = 0; i < sizeof(implemented) / sizeof(implemented[0]); i++)
        if (!protobuf_c_service_descriptor_get_method_by_name(svc, implemented[i].name)) {
            r = -EINVAL;
            if (ret_error)
                *ret_error = rvd_strdupf("no method '%s' in %s", implemented[i].name, svc->name);
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
