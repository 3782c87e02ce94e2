/* object.c — the object core: what every module of the engine may call
 * about an object and the engine's object list, and that calls no module
 * of the engine back: the clock, lookups, failure and attention, stopping
 * an object's transfers (through its source's table), a few getters.
 *
 * It is the bottom of the engine's layers (docs/architecture.md): engine.c
 * above everything; the sources (http.c, filesrc.c) above the sink
 * (sink.c); durable.c, stage.c and outfile.c below them; this file below
 * all of them. A module reaches a higher one only through a table of
 * function pointers (a source's rv_source_ops, the engine's rv_lifecycle),
 * which keeps lib/src's call graph acyclic (tools/callgraph.py checks it). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine_int.h"
#include "monoclock.h"

bool rv_state_is_terminal(rv_state s) {
    return s == RV_STATE_DONE || s == RV_STATE_FAILED || s == RV_STATE_CANCELLED;
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
