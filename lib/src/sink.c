/* sink.c — what sources report, applied to the object (sink.h). */
#include <stdarg.h>
#include <stdlib.h>

#include "crc32c.h"
#include "plan.h"
#include "sink.h"

int rv_sink_plan(rv_object *o, uint64_t size, uint64_t first_end) {
    const rv_config *cfg = &o->engine->cfg;
    rv_plan plan = {.first_end = first_end, .size = size, .n_ranges = 1};
    uint64_t min_range = cfg->min_chunk_size, max_range = cfg->chunk_size;

    /* A digest takes the bytes in file order: with smaller ranges, started
     * in order, the frontier keeps up with the download, and the stages
     * that land beyond it fit in the held window (stage.c; not against a
     * far origin). */
    uint64_t digest_range = o->hash && !o->digest_known ? rv_stage_digest_range(o) : 0;
    if (digest_range) {
        if (max_range > digest_range)
            max_range = digest_range;
        if (min_range > max_range)
            min_range = max_range;
    }
    if (size != RV_UNKNOWN)
        rv_plan_make(size, first_end, o->max_conns, min_range, max_range, &plan);
    rv_chunk *chunks = calloc(plan.n_ranges, sizeof(*chunks));
    if (!chunks) {
        rv_object_fail(o, RV_E_NOMEM, "cannot plan %zu ranges", plan.n_ranges);
        return RV_E_NOMEM;
    }
    for (size_t i = 0; i < plan.n_ranges; i++) {
        uint64_t start = 0, end = first_end;
        if (size != RV_UNKNOWN)
            rv_plan_range(&plan, i, &start, &end);
        chunks[i] = (rv_chunk){.start = start, .pos = start, .landed = start,
                               .submitted = start, .durable = start, .end = end};
    }
    free(o->chunks);
    o->chunks = chunks;
    o->n_chunks = plan.n_ranges;
    o->size = size;
    o->bytes_done = 0;
    o->planned = true;
    return RV_OK;
}

int rv_sink_single_stream(rv_object *o) {
    rv_object_stop_transfers(o);
    o->ranges = false;
    if (rv_stage_reset(o) != RV_OK)
        return o->err;
    uint64_t size = o->size;
    int r = rv_sink_plan(o, size, size);
    if (r == RV_OK && size != RV_UNKNOWN)
        r = rv_outfile_preallocate(o, size);
    return r;
}

void rv_sink_changed(rv_object *o, const char *reason) {
    const rv_config *cfg = &o->engine->cfg;

    if (cfg->on_change == RV_CHANGE_FAIL || o->restarts >= cfg->max_restarts) {
        rv_object_fail(o, RV_E_CHANGED, "%s%s", reason,
                       cfg->on_change == RV_CHANGE_FAIL ? "" : "; gave up after restarting");
        return;
    }
    o->restarts++;
    rv_object_start_over(o);
}

void rv_sink_range_done(rv_object *o, rv_chunk *c) {
    rv_engine *e = o->engine;
    if (rv_chunk_set_state(o, c, RV_CHUNK_DONE) != RV_OK)
        return;
    c->failures = 0;
    c->refused_since_ms = 0;
    if (e->hooks.on_chunk_done)
        e->hooks.on_chunk_done(e->cfg.hooks_ud, o, c->start, c->end - c->start);
    rv_object_attention(o); /* perhaps the last range: the engine verifies */
}

void rv_sink_planned(rv_object *o) {
    if (o->store_id)
        rv_durable_planned(o);
}

void rv_sink_resolved(rv_object *o) {
    o->resolved_pending = true;
    rv_object_attention(o);
}

void rv_sink_failed(rv_object *o, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rv_object_vfail(o, err, fmt, ap);
    va_end(ap);
}

void rv_sink_retry(rv_object *o, rv_chunk *c, int err, long status, rv_fault fault,
                   uint64_t retry_after_ms, const char *reason) {
    rv_engine *e = o->engine;
    const rv_config *cfg = &e->cfg;
    int too_long = 0;

    if (fault == RV_FAULT_THROTTLE && o->host)
        rv_hostlimit_on_throttle(o->host, rv_now_ms());
    c->failures++;
    if (c->failures >= o->max_attempts) {
        rv_object_fail(o, err, "%s; gave up after %u attempts", reason, c->failures);
        return;
    }
    uint64_t now = rv_now_ms();
    uint64_t refused_left = UINT64_MAX; /* ms the refused schedule has left */
    if (fault != RV_FAULT_REFUSED) {
        c->refused_since_ms = 0; /* the origin answered something: a new run */
    } else {
        if (!c->refused_since_ms)
            c->refused_since_ms = now;
        uint64_t spent = now - c->refused_since_ms;
        if (spent >= o->connect_retry_ms) {
            rv_object_fail(o, err, "%s; still refused after %u attempts in %.1f s", reason,
                           c->failures, (double)spent / 1000.0);
            return;
        }
        refused_left = o->connect_retry_ms - spent;
    }
    uint64_t wait = rv_retry_wait_ms(c->failures, cfg->backoff_base_ms, cfg->backoff_max_ms,
                                     retry_after_ms, cfg->retry_after_cap_ms, &e->rng, &too_long);
    /* The last try of a refused run comes when its time is up, not after. */
    if (wait > refused_left)
        wait = refused_left;
    if (too_long) {
        rv_object_fail(o, RV_E_RETRY_AFTER_TOO_LONG,
                       "%s; origin asked to retry after %llu s, more than the %u s cap; "
                       "run the download again later",
                       reason, (unsigned long long)(retry_after_ms / 1000),
                       cfg->retry_after_cap_ms / 1000);
        return;
    }
    if (!o->ranges && c->pos > c->start) {
        /* One stream without ranges cannot continue mid-body: start over. */
        o->bytes_done -= c->pos - c->start;
        c->pos = c->landed = c->submitted = c->durable = c->start;
        c->crc = c->written_crc = 0;
        c->written_crc_unknown = false;
        if (rv_stage_reset(o) != RV_OK)
            return;
        if (o->size != RV_UNKNOWN && rv_outfile_preallocate(o, o->size) != RV_OK)
            return;
    }
    if (rv_chunk_set_state(o, c, RV_CHUNK_TODO) != RV_OK)
        return;
    c->due_ms = now + wait;
    o->retries++;
    if (e->hooks.on_retry) {
        char *shown = rv_object_scrub(reason);
        rv_retry_info info = {.offset = c->pos, .attempt = c->failures, .error = err,
                              .http_status = status, .wait_ms = wait,
                              .reason = shown ? shown : "(reason not shown: out of memory)"};
        e->hooks.on_retry(e->cfg.hooks_ud, o, &info);
        free(shown);
    }
}

void **rv_sink_source_data(rv_object *o) {
    return &o->src;
}

rv_chunk *rv_sink_next_range(rv_object *o) {
    for (size_t i = 0; i < o->n_chunks; i++)
        if (o->chunks[i].state != RV_CHUNK_DONE)
            return &o->chunks[i];
    return NULL;
}

void rv_sink_range(const rv_chunk *c, uint64_t *pos, uint64_t *end) {
    *pos = c->pos;
    *end = c->end;
}

int rv_sink_write(rv_object *o, rv_chunk *c, const void *p, size_t n) {
    int r = rv_outfile_write(o, p, n, c->pos);
    if (r != RV_OK)
        return r;
    if (o->store_id) /* what a sync of these bytes will prove (durable.c) */
        c->written_crc = rv_crc32c(c->written_crc, p, n);
    rv_sink_landed(o, c, n);
    return RV_OK;
}
