/* rv_source.h — sources: how the engine fetches the URLs of a scheme.
 *
 * A source is a table of operations (curl's protocol handler table is the
 * model): the engine plans, schedules, stores and delivers every object
 * alike and calls its source only through this table, so a new scheme is
 * one more table, registered once, and no branch in the engine. http(s)
 * and file are the built-in ones (lib/src/http.c, lib/src/filesrc.c); a
 * program can register its own (a daemon's grpc://) without the library
 * linking what that source needs.
 *
 * A source reports what it learns and receives through the sink
 * (lib/src/sink.h: bytes landed, a range done, the object's size and
 * validators, a change, a failure), never by calling the engine.
 *
 * Threads: every operation runs on the engine's thread, inside
 * rv_engine_perform or rv_engine_add/cancel. */
#ifndef RV_SOURCE_PUBLIC_H
#define RV_SOURCE_PUBLIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "retriever.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A range of an object: what one transfer fills (opaque). */
typedef struct rv_chunk rv_chunk;
struct CURLMsg;

/* Capabilities (rv_source_ops.caps). */
enum {
    /* Its connections count against the per-host and per-group limits,
     * keyed by the URL's host (rv_config.max_connections_per_host ...). */
    RV_SOURCE_CAP_HOSTS = 1u << 0,
    /* Can fetch ranges of one object in parallel (an origin may still
     * refuse them for one object: then it streams it whole). */
    RV_SOURCE_CAP_RANGES = 1u << 1,
    /* Reports validators (an ETag, a modification time): what lets a
     * stopped download resume and a cached one be revalidated. */
    RV_SOURCE_CAP_VALIDATORS = 1u << 2,
    /* Learns the object's size when it resolves it (resolve), without
     * a first transfer (a probe) that brings it. */
    RV_SOURCE_CAP_SIZE_KNOWN = 1u << 3,
};

typedef struct rv_source_ops {
    const char *name;             /* for messages: "http", "file" */
    const char *const *schemes;   /* lower case, NULL-terminated */
    unsigned caps;                /* RV_SOURCE_CAP_* */
    /* How a URL of its schemes must look, for the message that refuses
     * one check_url refused: "a local file URL (file:///absolute/path)". */
    const char *url_form;
    /* Whether the engine can fetch url (of one of its schemes): RV_OK, or
     * the RV_E_* code rv_engine_add fails with. NULL: every such URL. */
    int (*check_url)(const char *url);

    /* Resolve o: learn its size and plan its ranges (through the sink),
     * at once. NULL: a source whose first transfer learns them (the probe:
     * start_range with probe set, on the placeholder range). */
    int (*resolve)(rv_object *o);
    /* Transfer-driven sources (connections, scheduled by the engine under
     * its limits). Start filling range c from its current position; with
     * probe, the object's first request, which also resolves it. */
    int (*start_range)(rv_object *o, rv_chunk *c, bool probe);
    /* Ask the origin whether o's cached copy is current (NULL: a cached
     * copy is taken as it is). */
    int (*revalidate)(rv_object *o);
    /* Stop the transfer filling c, keeping the bytes that landed. */
    void (*stop)(rv_object *o, rv_chunk *c);
    /* A transfer on the engine's curl multi handle ended: msg is its
     * CURLMSG_DONE message. The handle's CURLOPT_PRIVATE points at a
     * struct whose first member is the rv_object * it fills. NULL for a
     * source that does not use the multi handle. */
    void (*finish)(rv_engine *e, struct CURLMsg *msg);

    /* CPU-driven sources (NULL for transfer-driven ones): do at most
     * budget bytes of o's work; returns the bytes done, or a negative
     * RV_E_* code (o failed). */
    int (*step)(rv_object *o, uint64_t budget);

    /* Release what the source holds for o (its open file, ...); o may be
     * resolved again after it. NULL: nothing to release. */
    void (*close)(rv_object *o);
    /* Release what the source keeps per engine (idle handles), as the
     * engine goes. NULL: nothing. */
    void (*engine_free)(rv_engine *e);
} rv_source_ops;

/* Register ops for its schemes, ahead of the built-in ones: a scheme it
 * shares with one registered earlier is its from now on. ops must stay
 * valid for the life of the process. Call it before the engines that are
 * to use it are made, from one thread: the registry is process-wide and
 * not locked. RV_E_INVALID_ARGUMENT (no name or schemes; not exactly one
 * of start_range and step; start_range without stop), RV_E_NOMEM. */
int rv_source_register(const rv_source_ops *ops);

/* The sink: how a source reports (on the engine's thread, from its
 * operations). The built-in sources use more of it (lib/src/sink.h); these
 * are the calls a source outside lib/ needs. */

/* Where the source keeps its own pointer for o (NULL at first): its close
 * op frees what it points to. */
void **rv_sink_source_data(rv_object *o);
/* The first range of o not yet complete, or NULL (a CPU-driven source's
 * step fills its ranges in order). */
rv_chunk *rv_sink_next_range(rv_object *o);
/* Range c's next byte (*pos) and its end (exclusive; UINT64_MAX: until
 * the source's end of stream). */
void rv_sink_range(const rv_chunk *c, uint64_t *pos, uint64_t *end);
/* n bytes of range c, at its next byte: written into the object's file,
 * and the range moves on. RV_OK, or the RV_E_* code o failed with. */
int rv_sink_write(rv_object *o, rv_chunk *c, const void *p, size_t n);
/* Range c is complete. */
void rv_sink_range_done(rv_object *o, rv_chunk *c);
/* The object's size is known: replace its ranges by the plan for it
 * (first_end: where the first range ends, the bytes a first transfer
 * brings; size when it brings none). RV_E_NOMEM (o failed). */
int rv_sink_plan(rv_object *o, uint64_t size, uint64_t first_end);
/* The plan is o's for good: record it in the durable state, if any. */
void rv_sink_planned(rv_object *o);
/* o is resolved: the engine moves it on to downloading. */
void rv_sink_resolved(rv_object *o);
/* The object changed at its origin: the engine starts it over or fails
 * it, by rv_config.on_change. */
void rv_sink_changed(rv_object *o, const char *reason);
/* o failed for good (err: an RV_E_* code); the first failure is the one
 * reported. */
void rv_sink_failed(rv_object *o, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
