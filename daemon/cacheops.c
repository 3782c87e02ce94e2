/* cacheops.c — see cacheops.h. */
#include "cacheops.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs.h"
#include "log.h"

struct op {
    rv_cache_op kind;
    rvd_cache_remove_req rm;
    rvd_cache_sink sink;
    bool cancelled;  /* the stream went away: never call the sink */
    /* verify: the ids to check (and their sizes), listed on the first
     * pump, and the next to check */
    int64_t *ids;
    uint64_t *sizes;
    size_t n_ids, next;
    bool listed;
    struct op *next_op;
};

struct rvd_cacheops {
    pthread_mutex_t lock;
    struct op *head, *tail; /* head: the one running, if any */
    bool stopping;
    void (*wake)(void *);
    void *wake_ud;
};

int rvd_cacheops_new(void (*wake)(void *), void *wake_ud, rvd_cacheops **ret) {
    rvd_cacheops *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    pthread_mutex_init(&o->lock, NULL);
    o->wake = wake;
    o->wake_ud = wake_ud;
    *ret = o;
    return 0;
}

static void op_free(struct op *p) {
    rvd_cache_remove_req_clear(&p->rm);
    free(p->ids);
    free(p->sizes);
    free(p);
}

/* Under the lock: take p off the queue (it is the head) and free it. */
static void op_pop(rvd_cacheops *o) {
    struct op *p = o->head;
    o->head = p->next_op;
    if (!o->head)
        o->tail = NULL;
    op_free(p);
}

/* Every sink gets its end now; the ops themselves stay (the engine thread
 * may be scanning for the head one) until rvd_cacheops_free. */
void rvd_cacheops_stop(rvd_cacheops *o) {
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    for (struct op *p = o->head; p; p = p->next_op)
        if (!p->cancelled) {
            p->cancelled = true;
            p->sink.end(p->sink.ctx, RVD_UNAVAILABLE,
                        "retrieverd is shutting down; ask again once it is back");
        }
    pthread_mutex_unlock(&o->lock);
}

rvd_cacheops *rvd_cacheops_free(rvd_cacheops *o) {
    if (!o)
        return NULL;
    rvd_cacheops_stop(o);
    while (o->head) /* the engine thread is gone */
        op_pop(o);
    pthread_mutex_destroy(&o->lock);
    free(o);
    return NULL;
}

int rvd_cacheops_submit(rvd_cacheops *o, const rvd_peer *caller, rv_cache_op op,
                        rvd_cache_remove_req *rm, const rvd_cache_sink *sink, char **ret_msg) {
    int code = RVD_OK;
    struct op *p = NULL;
    if (caller->uid != 0 && caller->uid != geteuid()) {
        code = RVD_PERMISSION_DENIED;
        *ret_msg = rvd_strdupf("the cache is shared by every user of this daemon: only root and "
                               "uid %u (the daemon's) may list, remove or verify its entries",
                               (unsigned)geteuid());
        goto out;
    }
    if (!(p = calloc(1, sizeof(*p)))) {
        code = RVD_INTERNAL;
        *ret_msg = rvd_strdupf("out of memory");
        goto out;
    }
    p->kind = op;
    p->sink = *sink;
    if (rm) {
        p->rm = *rm;
        *rm = (rvd_cache_remove_req){0};
    }
    pthread_mutex_lock(&o->lock);
    if (o->stopping) {
        code = RVD_UNAVAILABLE;
        *ret_msg = rvd_strdupf("retrieverd is shutting down");
    } else {
        if (o->tail)
            o->tail->next_op = p;
        else
            o->head = p;
        o->tail = p;
        p = NULL;
    }
    pthread_mutex_unlock(&o->lock);
    if (code == RVD_OK)
        o->wake(o->wake_ud);
out:
    if (p)
        op_free(p);
    rvd_cache_remove_req_clear(rm);
    return code;
}

bool rvd_cacheops_cancel(rvd_cacheops *o, const rvd_cache_sink *sink) {
    pthread_mutex_lock(&o->lock);
    for (struct op *p = o->head; p; p = p->next_op)
        if (p->sink.ctx == sink->ctx)
            p->cancelled = true; /* the pump drops it without a word */
    pthread_mutex_unlock(&o->lock);
    return true;
}

/* --- Engine thread ------------------------------------------------------ */

/* A verify turn checks entries [from, to) of the list: at most this many,
 * and past the first, no more than this many bytes, so the engine thread
 * goes back to its transfers after a bounded read (an entry larger than
 * that is read in one turn alone). */
#define VERIFY_TURN_ENTRIES 64
#define VERIFY_TURN_BYTES (32u << 20)

/* An entry reported by a scan, kept until the scan is over (it runs
 * without the lock) and then handed to the sink. */
struct found {
    rv_cache_entry en; /* url and name point into the copies below */
    char *url, *name;
    rv_cache_result res;
};

struct scan_ctx {
    struct op *p;
    size_t from, to; /* verify: the turn's entries, p->ids[from..to) */
    struct found *found;
    size_t n_found;
    bool nomem;
};

static bool select_entry(void *ud, const rv_cache_entry *en) {
    struct scan_ctx *sc = ud;
    struct op *p = sc->p;
    if (p->kind == RV_CACHE_VERIFY) {
        for (size_t i = sc->from; i < sc->to; i++)
            if (p->ids[i] == en->id)
                return true;
        return false;
    }
    if (p->kind != RV_CACHE_REMOVE || p->rm.all)
        return true;
    for (size_t i = 0; i < p->rm.n_urls; i++)
        if (rv_cache_matches(en, p->rm.urls[i]))
            return true;
    return false;
}

static void report_entry(void *ud, const rv_cache_entry *en, rv_cache_result res) {
    struct scan_ctx *sc = ud;
    struct found *f = realloc(sc->found, (sc->n_found + 1) * sizeof(*f));
    if (!f) {
        sc->nomem = true;
        return;
    }
    sc->found = f;
    f = &f[sc->n_found];
    *f = (struct found){.en = *en, .url = strdup(en->url), .name = strdup(en->name), .res = res};
    if (!f->url || !f->name) {
        free(f->url);
        free(f->name);
        sc->nomem = true;
        return;
    }
    f->en.url = f->url;
    f->en.name = f->name;
    sc->n_found++;
}

static void collect_id(void *ud, const rv_cache_entry *en, rv_cache_result res) {
    struct scan_ctx *sc = ud;
    struct op *p = sc->p;
    (void)res;
    int64_t *ids = realloc(p->ids, (p->n_ids + 1) * sizeof(*ids));
    if (ids)
        p->ids = ids;
    uint64_t *sizes = ids ? realloc(p->sizes, (p->n_ids + 1) * sizeof(*sizes)) : NULL;
    if (!sizes) {
        sc->nomem = true;
        return;
    }
    p->sizes = sizes;
    p->ids[p->n_ids] = en->id;
    p->sizes[p->n_ids++] = en->bytes;
}

/* The head op is the engine thread's while it scans: the scan runs
 * without the lock, so the RPC side (cancel, submit) never waits for a
 * verify's reads; only the sink calls are made under it, and not for an
 * op cancelled meanwhile. Nothing but this function pops the head while
 * the engine thread lives. */
void rvd_cacheops_pump(rvd_cacheops *o, rv_engine *e) {
    pthread_mutex_lock(&o->lock);
    struct op *p = o->head;
    bool cancelled = p && p->cancelled;
    if (!p || o->stopping) {
        pthread_mutex_unlock(&o->lock);
        return;
    }
    pthread_mutex_unlock(&o->lock);

    struct scan_ctx sc = {.p = p};
    int r = RV_OK;
    bool finished = true;
    if (cancelled) {
        /* nothing more for it */
    } else if (p->kind != RV_CACHE_VERIFY) {
        r = rv_engine_cache_scan(e, p->kind, select_entry, report_entry, &sc);
    } else if (!p->listed) {
        p->listed = true;
        r = rv_engine_cache_scan(e, RV_CACHE_LIST, NULL, collect_id, &sc);
        finished = r != RV_OK || sc.nomem || p->n_ids == 0;
    } else {
        uint64_t bytes = 0;
        sc.from = sc.to = p->next;
        while (sc.to < p->n_ids && sc.to - sc.from < VERIFY_TURN_ENTRIES &&
               (sc.to == sc.from || bytes + p->sizes[sc.to] <= VERIFY_TURN_BYTES))
            bytes += p->sizes[sc.to++];
        p->next = sc.to;
        r = rv_engine_cache_scan(e, RV_CACHE_VERIFY, select_entry, report_entry, &sc);
        finished = r != RV_OK || p->next == p->n_ids;
    }
    if (sc.nomem && r == RV_OK)
        r = RV_E_NOMEM;
    if (r != RV_OK)
        finished = true;

    pthread_mutex_lock(&o->lock);
    for (size_t i = 0; i < sc.n_found; i++) {
        if (!p->cancelled)
            p->sink.entry(p->sink.ctx, &sc.found[i].en, sc.found[i].res);
        free(sc.found[i].url);
        free(sc.found[i].name);
    }
    free(sc.found);
    if (finished) {
        if (!p->cancelled) {
            if (r == RV_OK)
                p->sink.end(p->sink.ctx, RVD_OK, NULL);
            else
                p->sink.end(p->sink.ctx, RVD_INTERNAL,
                            r == RV_E_INVALID_ARGUMENT ? "this daemon keeps no cache (no state)"
                                                        : rv_strerror(r));
        }
        op_pop(o);
    }
    bool more = o->head != NULL;
    pthread_mutex_unlock(&o->lock);
    if (more)
        rv_engine_wakeup(e); /* the next step at once, after the engine's turn */
}
