/* object.c — the object core: what every module of the engine may call
 * about an object and the engine's object list, and that calls no module
 * of the engine back: the clock, lookups, failure and attention, stopping
 * an object's transfers (through its source's table), a few getters; and
 * the object and range state machines (their tables, drawn below, and
 * rv_chunk_set_state).
 *
 * It is the bottom of the engine's layers (docs/architecture.md): engine.c
 * above everything; the sources (http.c, filesrc.c) above the sink
 * (sink.c); durable.c, stage.c and outfile.c below them; this file below
 * all of them. A module reaches a higher one only through a table of
 * function pointers (a source's rv_source_ops, the engine's rv_lifecycle),
 * which keeps lib/src's call graph acyclic (tools/callgraph.py checks it). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine_int.h"
#include "monoclock.h"

bool rv_state_is_terminal(rv_state s) {
    return s == RV_STATE_DONE || s == RV_STATE_FAILED || s == RV_STATE_CANCELLED;
}

const char *rv_state_name(rv_state s) {
    static const char *const names[] = {"queued", "resolving", "downloading", "verifying",
                                        "done", "failed", "cancelled"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* ------------------------------------------------------------------------
 * The object state machine (rv_state; docs/engine.md, "Object states")
 *
 * Every change of o->state goes through engine.c's object_set_state (lower
 * modules reach it as rv_object_set_state, through rv_engine.life), which
 * checks it against this table, counts it (rv_engine.n_entered) and calls
 * the on_state hook. The table lives here, below every module, so the unit
 * test and any module can ask it.
 *
 *   rv_engine_add --> QUEUED
 *                       |  ^
 *       object_start    |  |  a follower whose leader was cancelled
 *                       v  |  (from RESOLVING or DOWNLOADING)
 *                    RESOLVING <-----------------------------+
 *                       |   \                                |
 *   size known: the     |    \ every range is already DONE   | start over: the
 *   probe's answer, a   |     \ (a follower given its        | object changed on
 *   resolve, a plan     v      \ leader's blob)              | the origin, or a
 *                   DOWNLOADING --\--------------------------+ corrupt cache entry
 *                       |   ^      \                         | (refetch)
 *   every range DONE    |   |       \                        |
 *                       v   |        v                       |
 *                    VERIFYING ------------------------------+
 *                       |
 *   digest, size,       |   VERIFYING -> DOWNLOADING: a corrupt cache entry
 *   final sync,         |   fetched again by following another request for
 *   delivery            v   the same object (rv_durable_refetch)
 *                     DONE
 *
 *   QUEUED, RESOLVING, DOWNLOADING, VERIFYING --> FAILED | CANCELLED
 *
 * DONE, FAILED and CANCELLED are terminal: nothing leaves them. A change to
 * the state the object is in is no change (allowed, and nothing happens).
 * ------------------------------------------------------------------------ */

bool rv_object_transition_legal(rv_state from, rv_state to) {
    if (from == to)
        return true;
    switch (to) {
    case RV_STATE_QUEUED:
        return from == RV_STATE_RESOLVING || from == RV_STATE_DOWNLOADING;
    case RV_STATE_RESOLVING:
        return from == RV_STATE_QUEUED || from == RV_STATE_DOWNLOADING ||
               from == RV_STATE_VERIFYING;
    case RV_STATE_DOWNLOADING:
        return from == RV_STATE_RESOLVING || from == RV_STATE_VERIFYING;
    case RV_STATE_VERIFYING:
        return from == RV_STATE_RESOLVING || from == RV_STATE_DOWNLOADING;
    case RV_STATE_DONE:
        return from == RV_STATE_VERIFYING;
    case RV_STATE_FAILED:
    case RV_STATE_CANCELLED:
        return !rv_state_is_terminal(from);
    }
    return false;
}

/* ------------------------------------------------------------------------
 * The range state machine (rv_chunk_state; docs/engine.md, "Object states")
 *
 * Every change of a range's state goes through rv_chunk_set_state, which
 * checks it against this table.
 *
 *      a new plan (calloc)
 *            |
 *            v      a transfer starts on it (start_range)
 *          TODO ----------------------------------------> ACTIVE
 *            |  <----------------------------------------   |
 *            |    the transfer stopped: retry, stall,        |
 *            |    pause, start over, object ended            |
 *            |                                               |
 *            | without a transfer: its last        its last  |
 *            | byte copied by a step source        byte is   |
 *            | (file://), or known complete: a     written   |
 *            | cache hit's blob, a resumed range,            |
 *            | an empty body                                 |
 *            +-------------------> DONE <--------------------+
 *
 * DONE is final: a range's bytes, once all there, stay (a revalidation
 * borrows a DONE range for its request without changing its state). A new
 * plan replaces the ranges (object_plan_unresolved, rv_sink_plan); that is
 * no transition. A change to the state the range is in is no change.
 * ------------------------------------------------------------------------ */

static const char *chunk_state_name(rv_chunk_state s) {
    static const char *const names[] = {"todo", "active", "done"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

bool rv_chunk_transition_legal(rv_chunk_state from, rv_chunk_state to) {
    if (from == to)
        return true;
    switch (from) {
    case RV_CHUNK_TODO:
        return to == RV_CHUNK_ACTIVE || to == RV_CHUNK_DONE;
    case RV_CHUNK_ACTIVE:
        return to == RV_CHUNK_TODO || to == RV_CHUNK_DONE;
    case RV_CHUNK_DONE:
        return false;
    }
    return false;
}

int rv_chunk_set_state(rv_object *o, rv_chunk *c, rv_chunk_state to) {
    rv_chunk_state from = c->state;
    if (!rv_chunk_transition_legal(from, to)) {
        assert(!"illegal range state change");
        rv_object_fail(o, RV_E_INTERNAL,
                       "illegal range state change %s -> %s (the range at byte %llu; a bug in "
                       "the engine)",
                       chunk_state_name(from), chunk_state_name(to),
                       (unsigned long long)c->start);
        return RV_E_INTERNAL;
    }
    c->state = to;
    return RV_OK;
}

uint64_t rv_now_ms(void) {
    return rv_mono_ns() / 1000000u;
}

rv_object *rv_live_head(rv_engine *e) {
    if (!e->live_head)
        e->live_head = e->head;
    while (e->live_head && rv_state_is_terminal(e->live_head->state))
        e->live_head = e->live_head->next;
    return e->live_head;
}

rv_object *rv_object_by_id(rv_engine *e, uint64_t id) {
    for (rv_object *o = rv_live_head(e); o; o = o->next)
        if (o->id == id)
            return o;
    return NULL;
}

rv_chunk *rv_chunk_starting(rv_object *o, uint64_t start) {
    for (size_t i = 0; i < o->n_chunks; i++)
        if (o->chunks[i].start == start)
            return &o->chunks[i];
    return NULL;
}

uint64_t rv_str_hash(const char *s) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

int rv_engine_wakeup(rv_engine *e) {
    return curl_multi_wakeup(e->multi) == CURLM_OK ? RV_OK : RV_E_INTERNAL;
}

void rv_engine_wake_cb(void *engine) {
    rv_engine_wakeup(engine);
}

void rv_object_attention(rv_object *o) {
    o->needs_attention = true;
    o->engine->attention = true;
}

/* text as it may leave the engine (a failure detail, a retry's reason).
 * Messages name the object by url_shown, and quote libcurl's words only
 * scrubbed against the object's URLs (http.c); this catches any URL
 * that still got in (a redirect's target, a future message): every word
 * with "://" is redacted. The object's hidden values are not searched for
 * here: a short one ("case=full") would also hide the same letters in a
 * destination path or a number of the message. malloc'd; NULL when out of
 * memory (a message that cannot be scrubbed is not shown). */
char *rv_object_scrub(const char *text) {
    char *out = NULL;
    return rv_url_scrub(text, NULL, 0, &out) == RV_OK ? out : NULL;
}

void rv_object_vfail(rv_object *o, int err, const char *fmt, va_list ap) {
    char *text = NULL;

    if (o->err != RV_OK || rv_state_is_terminal(o->state))
        return; /* the first failure is the one reported */
    o->err = err;
    free(o->err_detail);
    o->err_detail = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    if (text)
        o->err_detail = rv_object_scrub(text);
    free(text);
    rv_object_attention(o);
}

void rv_object_fail(rv_object *o, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rv_object_vfail(o, err, fmt, ap);
    va_end(ap);
}

void rv_object_stop_transfers(rv_object *o) {
    for (size_t i = 0; i < o->n_chunks && o->active > 0; i++)
        if (o->chunks[i].xfer)
            o->source->stop(o, &o->chunks[i]);
}

bool rv_object_links(const rv_object *o) {
    return (o->engine->cfg.link_deliveries || o->link) && !o->copy;
}

const char *rv_object_error_detail(const rv_object *o) {
    return o->err_detail ? o->err_detail : "";
}
