/* jobsubs.c — a job's subscribers and readers: the fan-out of its events
 * to Download and Watch streams, and of its bytes' progress to Read
 * streams (see jobs_int.h for how the table's files divide the work).
 */
#include "jobs_int.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* Events are delivered to a sink at once and flushed (sent) after a run of
 * them: when the engine is about to wait (on_wait), at the pump after each
 * turn of its loop, or before a call from the RPC side that emitted
 * returns. So a sink that batches gets what one turn produced as one
 * batch. Under the lock. */
void rvd_subs_emit_to(rvd_jobs *j, struct sub *s, const rvd_event *ev) {
    s->sink.event(s->sink.ctx, ev);
    if (s->sink.flush && !s->dirty) {
        s->dirty = true;
        s->dirty_next = j->dirty;
        j->dirty = s;
    }
}

void rvd_subs_flush(rvd_jobs *j) {
    while (j->dirty) {
        struct sub *s = j->dirty;
        j->dirty = s->dirty_next;
        s->dirty = false;
        s->sink.flush(s->sink.ctx);
    }
}

void rvd_subs_emit(rvd_jobs *j, struct job *jb, rvd_event_kind kind, const struct jobject *o,
                 const rv_retry_info *retry) {
    rvd_event ev = {.kind = kind, .job_id = jb->id, .time_ms = now_ms()};
    if (o) {
        ev.object_index = o->index;
        ev.object = &jb->views[o->index];
    }
    if (retry)
        ev.retry = *retry;
    for (struct sub *s = jb->subs; s; s = s->next)
        rvd_subs_emit_to(j, s, &ev);
}

/* The events a new subscriber missed, one state per object: QUEUED, then
 * STARTED once it began, then its end if it ended. */
void rvd_subs_replay(rvd_jobs *j, const struct job *jb, struct sub *s) {
    rvd_event ev = {.kind = RVD_EV_ACCEPTED, .job_id = jb->id, .time_ms = now_ms()};
    rvd_subs_emit_to(j, s, &ev);
    for (size_t i = 0; i < jb->view.n_objects; i++) {
        const struct jobject *o = &jb->objs[i];
        ev.object_index = o->index;
        ev.object = &jb->views[i];
        ev.kind = RVD_EV_QUEUED;
        rvd_subs_emit_to(j, s, &ev);
        if (o->started) {
            ev.kind = RVD_EV_STARTED;
            rvd_subs_emit_to(j, s, &ev);
        }
        switch (jb->views[i].state) {
        case RV_STATE_DONE:
            ev.kind = RVD_EV_COMPLETED;
            break;
        case RV_STATE_FAILED:
            ev.kind = RVD_EV_FAILED;
            break;
        case RV_STATE_CANCELLED:
            ev.kind = RVD_EV_CANCELLED;
            break;
        default:
            continue;
        }
        rvd_subs_emit_to(j, s, &ev);
    }
}

struct sub *rvd_subs_add(rvd_jobs *j, struct job *jb, const rvd_sink *sink, uid_t uid) {
    struct sub *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->sink = *sink;
    s->uid = uid;
    s->next = jb->subs;
    jb->subs = s;
    jb->view.subscribers++;
    j->n_subs++;
    return s;
}

/* Take s out of its job (and out of the flush list: whoever unlinks it
 * ends the stream, which sends what is queued, or the stream is gone). */
void rvd_subs_unlink(rvd_jobs *j, struct job *jb, struct sub *s) {
    for (struct sub **p = s->dirty ? &j->dirty : NULL; p && *p; p = &(*p)->dirty_next)
        if (*p == s) {
            *p = s->dirty_next;
            s->dirty = false;
            break;
        }
    for (struct sub **p = &jb->subs; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            jb->view.subscribers--;
            j->n_subs--;
            return;
        }
}

/* End every subscriber of jb: end(code, message), and the table lets go
 * of them. Under the lock. */
void rvd_subs_end_all(rvd_jobs *j, struct job *jb, rvd_code code, const char *message) {
    while (jb->subs) {
        struct sub *s = jb->subs;
        rvd_subs_unlink(j, jb, s);
        s->sink.end(s->sink.ctx, code, message);
        free(s);
    }
}

/* Tell o's readers where it stands; under the lock. */
void rvd_readers_notify(struct jobject *o) {
    rvd_read_state st = {.ready = o->ready, .data_fd = o->data_fd};
    for (struct reader *r = o->readers; r; r = r->next)
        r->sink.notify(r->sink.ctx, &st);
}

/* The readers' last word: done (every byte ready) or failed (why); the
 * table lets go of them. Under the lock. */
void rvd_readers_end(struct jobject *o, bool done, rvd_code code, const char *why) {
    rvd_read_state st = {.ready = o->ready, .done = done, .failed = !done, .code = code,
                         .why = why, .data_fd = o->data_fd};
    while (o->readers) {
        struct reader *r = o->readers;
        o->readers = r->next;
        r->sink.notify(r->sink.ctx, &st);
        free(r);
    }
}
