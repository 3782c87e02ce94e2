/* sink.h — how a source reports to the engine: bytes landed, a range
 * done, the object's plan (its size) and validators settled, a change on
 * the origin, a retry, a failure.
 *
 * Sources (http.c, filesrc.c, and any registered with rv_source_register)
 * call these and the object core (object.c), never engine.c: the engine
 * calls a source through its table (rv_source.h), a source answers
 * through the sink, and so the call graph of lib/src has no loop
 * (tools/callgraph.py). sink.c lies below the sources and above durable.c,
 * stage.c and outfile.c.
 *
 * All on the engine's thread; inside a curl callback too (a failure there
 * is recorded and acted on after curl returns, rv_object_fail). */
#ifndef RV_SINK_H
#define RV_SINK_H

#include <stdarg.h>
#include <stdint.h>

#include "engine_int.h"
#include "rv_source.h"

/* n bytes of range c arrived at c->pos and were handed to the file (or,
 * for a staged object, to a stage: they land when the writer is done).
 * Inline: it runs once per write callback, on the hot path. */
static inline void rv_sink_landed(rv_object *o, rv_chunk *c, uint64_t n) {
    c->pos += n;
    o->bytes_done += n;
    if (!o->staged)
        c->landed = c->pos; /* written already */
}

/* The rest of the sink, public for sources outside lib/ (rv_source.h):
 * rv_sink_range, rv_sink_write (an unstaged write, as filesrc.c's
 * fallback and a program's own source use), rv_sink_range_done,
 * rv_sink_plan (replace the ranges by the plan for size, plan.h; an
 * unknown size is one range until the end of the stream), rv_sink_planned
 * (record the plan and validators just set in the durable state),
 * rv_sink_resolved, rv_sink_changed, rv_sink_failed. */

/* Replace the ranges by one stream from byte 0 (the origin ignores
 * ranges). */
int rv_sink_single_stream(rv_object *o);
/* Range c failed (err, the origin's status or 0, how): retry it after a
 * backoff, or fail o when its attempts are spent. */
void rv_sink_retry(rv_object *o, rv_chunk *c, int err, long status, rv_fault fault,
                   uint64_t retry_after_ms, const char *reason);

#endif
