/* encode.c — the job table's views into retriever.v1 messages, packed by
 * protobuf-c's generated packers (see server_int.h for how the server's
 * files divide the work).
 */
#include "server_int.h"

#include <grpc/slice.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------
 * Encoding: views of the job table into messages. Called with the table's
 * lock held (the views are valid only then); everything is packed before
 * returning.
 * ------------------------------------------------------------------------ */

/* A packed message as a byte buffer (gRPC's allocator aborts rather than
 * fail). */
grpc_byte_buffer *rvd_pack(const ProtobufCMessage *msg) {
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
grpc_byte_buffer *rvd_pack_job(const rvd_job_view *v, const Retriever__V1__JobEvent *wrap) {
    struct job_parts p;
    grpc_byte_buffer *bb = NULL;
    if (!job_msg(&p, v))
        return NULL;
    if (wrap) {
        Retriever__V1__JobEvent ev = *wrap;
        Retriever__V1__Snapshot snap = RETRIEVER__V1__SNAPSHOT__INIT;
        snap.job = &p.job;
        ev.snapshot = &snap;
        bb = rvd_pack(&ev.base);
    } else {
        bb = rvd_pack(&p.job.base);
    }
    job_parts_clear(&p);
    return bb;
}

/* Pack a ListResponse of views. NULL: out of memory. */
grpc_byte_buffer *rvd_pack_list(const rvd_job_view *const *views, size_t n) {
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
    bb = rvd_pack(&resp.base);
out:
    for (size_t i = 0; parts && i < done; i++)
        job_parts_clear(&parts[i]);
    free(parts);
    free(ptrs);
    return bb;
}

grpc_byte_buffer *rvd_pack_event(const rvd_event *e) {
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
        return rvd_pack_job(e->job, &ev);
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
    return rvd_pack(&ev.base);
}
