/* jobs.c — the job table (see jobs.h for the model and the threads).
 *
 * Sections: jobs and their views · events to subscribers · the RPC side ·
 * the engine hooks · the pump.
 *
 * Ownership: the table owns its jobs (a list, newest first); a job owns its
 * request (rvd_download_req), its objects' views and strings, and its
 * subscriber records (not the sinks they point at). An object in the engine
 * is owned by the engine; the job's record points at it until the pump
 * releases it, and the engine's user_data points back at the record. Only
 * the worker thread frees jobs (in the pump, or in rvd_jobs_free after the
 * engine is gone).
 */
#include "jobs.h"
#include "cacheops.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "asuser.h"
#include "jobstore.h"
#include "log.h"

/* A job's state before it enters the table and after it leaves (job_set_state). */
#define JOB_ABSENT ((rvd_job_state)0)

struct sub {
    rvd_sink sink;
    uid_t uid;
    struct sub *next;
    bool dirty;             /* in rvd_jobs.dirty: events wait for a flush */
    struct sub *dirty_next;
};

struct job;

struct reader {
    rvd_reader sink;
    struct reader *next;
};

/* One source of a job. The view is what callers see; the rest is the
 * engine side's. */
struct jobject {
    struct job *job;
    uint32_t index;
    const rvd_source *src; /* the job's request owns it */
    rv_object *obj;        /* in the engine; NULL before start and after release */
    int dirfd;             /* the destination's directory, opened as the caller at
                              start (the job's dirs own it, or the daemon's reads
                              directory); -1 before and after */
    int srcfd;             /* file:// sources, opened as the caller; -1 when closed */
    char *dest_name;       /* final component of the destination */
    char *engine_dest;     /* "/proc/self/fd/N/name": the pinned directory */
    char *engine_url;      /* file:// sources: "file:///proc/self/fd/N" */
    dev_t dir_dev;         /* the destination directory's identity, */
    ino_t dir_ino;         /* valid while dirfd is open */
    struct jobject *dest_next; /* chain in rvd_jobs.dests while in it */
    bool in_dests;
    char *sha256, *crc32c, *error_detail; /* the view's strings */
    bool started;          /* STARTED was sent */
    int data_fd;           /* the engine's file of its bytes, for readers; -1 */
    atomic_bool wants_data; /* a reader came: open data_fd at the next progress */
    uint64_t ready;        /* [0, ready) written in order */
    unsigned restarts;     /* as the engine counted when reading began */
    struct reader *readers;
    struct jobject *release_next;
};

struct job {
    char id[RVD_JOB_ID_LEN + 1];
    rvd_job_view view;
    rvd_object_view *views; /* [view.n_objects] */
    struct jobject *objs;   /* [view.n_objects] */
    rvd_peer owner;
    char *key; /* dedupe key: uid and every source's identity */
    rvd_download_req *req;
    bool link;         /* deliver by hard link: req->link, or the daemon's
                          link-deliveries when the job was submitted and
                          req->copy is not set (wants_link) */
    int32_t priority;
    uint64_t seq;      /* submission order */
    uint64_t req_bytes; /* the request as received (stored), for the owner's count */
    size_t n_live;     /* objects not yet terminal */
    bool want_cancel;  /* RUNNING: the pump cancels it */
    rvd_asuser_dirs *dirs; /* the destinations' directories, opened as the owner
                              while objects use them (dirs_users) */
    char *ca_pem;      /* req->ca_file's text, read as the owner when the job
                          starts (read_ca); NULL before, or without ca_file */
    size_t dirs_users;
    struct sub *subs;  /* newest first */
    struct job *prev, *next;
    struct job *work_next; /* the pump's private lists */
};

struct rvd_jobs {
    rvd_cacheops *cache; /* the cache RPCs' work (cacheops.h); its own lock */
    pthread_mutex_t lock;
    rvd_jobs_limits limits;
    rvd_jobstore *store; /* NULL: jobs end with the daemon */
    int reads_dirfd;     /* where Read-only objects are delivered; -1: none */
    void (*wake)(void *);
    void *wake_ud;
    struct job *head; /* newest first */
    /* Jobs in the table by state ([0] unused): written by job_set_state
     * alone, with the per-uid counts (struct uidacct). */
    unsigned n_state[RVD_JOB_CANCELLED + 1];
    unsigned n_subs;        /* the jobs' subscribers: sub_add and sub_unlink only */
    unsigned n_want_cancel; /* jobs with want_cancel set: set_want_cancel only */
    unsigned transfers;     /* the engine's, as of the last pump */
    uint64_t cache_bytes;   /* likewise */
    uint64_t cache_quota;   /* as the worker last applied it */
    uint64_t bytes_origin, bytes_cache; /* of objects delivered since start */
    uint64_t seq;
    bool stopping;
    /* Per uid: its queued, running and ended jobs (see "Per uid"). One
     * entry per uid that has a job in the table; unordered. */
    struct uidacct *accts;
    size_t n_accts, cap_accts;
    struct jobject *release; /* ended objects the pump releases */
    struct sub *dirty;       /* subscribers with events not yet flushed */
    /* Started objects by destination (directory identity and name), so a
     * start finds one writing the same file without a scan. Worker thread
     * only: objects start and close there. */
    struct jobject **dests;
    size_t n_dest_slots, n_dests;
};

/* ------------------------------------------------------------------------
 * Jobs and their views
 * ------------------------------------------------------------------------ */

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool is_ended(const struct job *jb) {
    return jb->view.state >= RVD_JOB_DONE;
}

/* Mark jb for the pump to cancel (its objects in the engine), or unmark
 * it; keeps n_want_cancel. Under the lock. */
static void set_want_cancel(rvd_jobs *j, struct job *jb, bool want) {
    if (jb->want_cancel == want)
        return;
    jb->want_cancel = want;
    if (want)
        j->n_want_cancel++;
    else
        j->n_want_cancel--;
}

static bool may_see(const rvd_peer *caller, const struct job *jb) {
    return caller->uid == 0 || caller->uid == geteuid() || caller->uid == jb->owner.uid;
}

/* ------------------------------------------------------------------------
 * Per uid
 *
 * So that one user cannot deny service to the others, each uid's jobs are
 * counted by state: a uid starts at most per_uid_running jobs at once (its
 * other jobs wait while other uids' jobs start), has at most
 * per_uid_queued waiting, and keeps at most per_uid_history ended jobs.
 * When the history as a whole is over job_history, the uid that holds the
 * most ended jobs loses its oldest: a uid that floods the history trims
 * its own jobs, never another's (nor, with them, another's Read-only
 * copies in the reads directory). Its objects are one group of the
 * engine's (rv_request.group), which gives a uid at most
 * per-uid-origin-connections of the connections to origins. Root and the
 * daemon's own uid are held
 * only to the global limits: they administer the daemon (they can stop
 * it), and in a per-user daemon the owner must keep the whole daemon.
 * Counts change only under the lock, with the job's state.
 * ------------------------------------------------------------------------ */

struct uidacct {
    uid_t uid;
    unsigned queued, running, ended;
    /* Bytes of the requests its jobs hold (as received; decoded, they
     * are about as large): of queued and running jobs, of ended ones. */
    uint64_t live_bytes, ended_bytes;
    unsigned trim; /* the pump's: ended jobs of this uid to trim now */
};

static bool uid_exempt(uid_t uid) {
    return uid == 0 || uid == geteuid();
}

static struct uidacct *acct_find(const rvd_jobs *j, uid_t uid) {
    for (size_t i = 0; i < j->n_accts; i++)
        if (j->accts[i].uid == uid)
            return &j->accts[i];
    return NULL;
}

/* uid's entry, made when missing; NULL on ENOMEM. */
static struct uidacct *acct_get(rvd_jobs *j, uid_t uid) {
    struct uidacct *a = acct_find(j, uid);
    if (a)
        return a;
    if (j->n_accts == j->cap_accts) {
        size_t cap = j->cap_accts ? 2 * j->cap_accts : 8;
        struct uidacct *v = realloc(j->accts, cap * sizeof(*v));
        if (!v)
            return NULL;
        j->accts = v;
        j->cap_accts = cap;
    }
    a = &j->accts[j->n_accts++];
    *a = (struct uidacct){.uid = uid};
    return a;
}

/* The counter of state in a. */
static unsigned *acct_counter(struct uidacct *a, rvd_job_state state) {
    switch (state) {
    case RVD_JOB_QUEUED: return &a->queued;
    case RVD_JOB_RUNNING: return &a->running;
    default: return &a->ended;
    }
}

static uint64_t *acct_bytes(struct uidacct *a, rvd_job_state state) {
    return state >= RVD_JOB_DONE ? &a->ended_bytes : &a->live_bytes;
}

/* A job of uid whose request is bytes long (counted as from; 0: not
 * counted yet) is now counted as to (0: no longer). An entry whose counts
 * are all zero goes. Every job in the table is counted, so the entry
 * exists whenever from is set; adding (from 0) needs acct_get to have
 * succeeded for the uid. */
static void acct_move(rvd_jobs *j, uid_t uid, uint64_t bytes, rvd_job_state from,
                      rvd_job_state to) {
    struct uidacct *a = acct_find(j, uid);
    if (!a)
        return;
    if (from) {
        (*acct_counter(a, from))--;
        *acct_bytes(a, from) -= bytes;
    }
    if (to) {
        (*acct_counter(a, to))++;
        *acct_bytes(a, to) += bytes;
    }
    if (!a->queued && !a->running && !a->ended)
        *a = j->accts[--j->n_accts];
}

/* ------------------------------------------------------------------------
 * The job state machine
 *
 * Every change of a job's state, including its entering and leaving the
 * table, goes through job_set_state, which checks it against this table
 * and keeps the counts by state (rvd_jobs.n_state, struct uidacct): no
 * other code writes jb->view.state or those counts.
 *
 *                     submit; restore (unfinished)
 *         (absent) --------------------------------> QUEUED
 *          |   ^                                     |    |
 *          |   |                           pump:     |    | its last subscriber
 *          |   | the pump trims it         a slot    |    | left (maybe_stop):
 *          |   | from the history          is free   v    | every object cancelled
 *          |   |                                  RUNNING |
 *          |   |                                     |    |
 *          |   |                   every object      |    |
 *          |   |                   ended (job_end)   v    v
 *          +---|------------------------------> DONE | FAILED | CANCELLED
 *   restore    +-------------------------------------------+
 *   (ended)
 *
 * An ended job never runs again (a new submission is a new job). A job is
 * absent (state 0) from job_new until it enters the table, and again once
 * it has been trimmed, just before job_free.
 * ------------------------------------------------------------------------ */

static bool state_ended(rvd_job_state s) {
    return s >= RVD_JOB_DONE;
}

/* Whether a job may go from one state to another (JOB_ABSENT: not in the
 * table). */
static bool job_transition_legal(rvd_job_state from, rvd_job_state to) {
    switch ((int)from) {
    case JOB_ABSENT:
        return to != JOB_ABSENT && to != RVD_JOB_RUNNING;
    case RVD_JOB_QUEUED:
        return to == RVD_JOB_RUNNING || state_ended(to);
    case RVD_JOB_RUNNING:
        return state_ended(to);
    case RVD_JOB_DONE:
    case RVD_JOB_FAILED:
    case RVD_JOB_CANCELLED:
        return to == JOB_ABSENT;
    }
    return false;
}

static const char *job_state_name(rvd_job_state s) {
    static const char *const names[] = {"absent", "queued", "running", "done", "failed",
                                        "cancelled"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}

/* Move jb to state to, counting it (table and owner) there: RVD_OK, or
 * (an illegal transition: a bug) an assertion in debug builds and
 * RVD_INTERNAL, logged and with nothing changed, in release builds. A job
 * entering the table (from JOB_ABSENT) needs acct_get to have succeeded
 * for its owner. Under the lock. */
static rvd_code job_set_state(rvd_jobs *j, struct job *jb, rvd_job_state to) {
    rvd_job_state from = jb->view.state;
    if (!job_transition_legal(from, to)) {
        rvd_log_error("job %s: illegal state change %s -> %s (a bug in retrieverd)", jb->id,
                      job_state_name(from), job_state_name(to));
        assert(!"illegal job state change");
        return RVD_INTERNAL;
    }
    if (from != JOB_ABSENT)
        j->n_state[from]--;
    if (to != JOB_ABSENT)
        j->n_state[to]++;
    acct_move(j, jb->owner.uid, jb->req_bytes, from, to);
    jb->view.state = to;
    return RVD_OK;
}

/* Ended jobs in the table (the history), whatever their outcome. */
static unsigned n_ended(const rvd_jobs *j) {
    return j->n_state[RVD_JOB_DONE] + j->n_state[RVD_JOB_FAILED] +
           j->n_state[RVD_JOB_CANCELLED];
}

/* Whether a's requests in all are over per_uid_request_bytes. */
static bool over_bytes(const rvd_jobs *j, const struct uidacct *a) {
    return j->limits.per_uid_request_bytes && !uid_exempt(a->uid) &&
           a->live_bytes + a->ended_bytes > j->limits.per_uid_request_bytes;
}

/* Whether jb's owner may start another job now. */
static bool may_start(const rvd_jobs *j, const struct job *jb) {
    if (uid_exempt(jb->owner.uid))
        return true;
    const struct uidacct *a = acct_find(j, jb->owner.uid);
    return !a || a->running < j->limits.per_uid_running;
}

/* The job with this id, or NULL; under the lock. */
static struct job *lookup(rvd_jobs *j, const char *id) {
    for (struct job *jb = j->head; jb; jb = jb->next)
        if (strcmp(jb->id, id) == 0)
            return jb;
    return NULL;
}

/* As lookup, for a caller: another uid's job is not there. */
static struct job *find(rvd_jobs *j, const rvd_peer *caller, const char *id) {
    struct job *jb = lookup(j, id);
    return jb && may_see(caller, jb) ? jb : NULL;
}

static int new_id(char *out) {
    unsigned char b[RVD_JOB_ID_LEN / 2];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -errno;
    for (size_t i = 0; i < sizeof(b); i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return 0;
}

/* uid, the transfer settings, then per source: url key, destination,
 * sha256, header digest. A request with another CA file (or none) trusts
 * other origins, and one with other attempts or timeouts asked for other
 * behaviour: neither attaches to the other's job. */
static char *make_key(uid_t uid, const rvd_download_req *req) {
    char *key = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&key, &len);
    if (!f)
        return NULL;
    fprintf(f, "%u\nca:%d:%s\n%u:%u:%u:%u:%llu\nproxy:%s", (unsigned)uid, req->ca_only,
            req->ca_file ? req->ca_file : "", req->max_attempts, req->connect_timeout_ms,
            req->stall_timeout_ms, req->connect_retry_ms,
            (unsigned long long)req->max_bytes_per_sec, req->proxy_digest);
    for (size_t i = 0; i < req->n_sources; i++) {
        const rvd_source *s = &req->sources[i];
        fprintf(f, "\n%s\n%s\n%s\n%s", s->url_key, s->destination ? s->destination : "",
                s->sha256 ? s->sha256 : "", s->headers_digest);
    }
    if (fclose(f) != 0) {
        free(key);
        return NULL;
    }
    return key;
}

/* Whether a job for req delivers by hard link: asked for, or the daemon's
 * default (link-deliveries) and not refused with copy. Lock held. */
static bool wants_link(const rvd_jobs *j, const rvd_download_req *req) {
    return req->link || (j->limits.link_deliveries && !req->copy);
}

/* Whether the live job jb, whose key equals req's, gives req's caller what
 * they asked for, so they may attach to it instead of starting another:
 * a digest (Completed.sha256) if req wants one, a hard link only if req
 * accepts one (a caller who did not ask for a link must not get a file
 * that shares the cache's inode), and files with the mode req's umask
 * asks for (a file meant to be private must not come out as another
 * request's 0644). A job that digests serves one that does not care; a
 * job that copies serves one that asked for a link (a link is "where
 * possible"). The key already holds every per-source field; these are
 * the request-wide ones. Lock held. */
static bool job_satisfies(const rvd_jobs *j, const struct job *jb, const rvd_download_req *req) {
    return (!req->digest || jb->req->digest) && (!jb->link || wants_link(j, req)) &&
           jb->req->mode == req->mode;
}

/* The file of a Read-only object in the daemon's directory; malloc'd. */
static char *read_only_name(const struct jobject *o) {
    return rvd_strdupf("%s-%u", o->job->id, (unsigned)o->index);
}

/* ------------------------------------------------------------------------
 * Started objects by destination
 * ------------------------------------------------------------------------ */

static size_t dest_slot(const rvd_jobs *j, const struct jobject *o) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    uint64_t ids[2] = {(uint64_t)o->dir_dev, (uint64_t)o->dir_ino};
    for (size_t i = 0; i < sizeof(ids); i++)
        h = (h ^ ((const unsigned char *)ids)[i]) * 1099511628211ull;
    for (const char *p = o->dest_name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)(h % j->n_dest_slots);
}

static bool same_dest(const struct jobject *a, const struct jobject *b) {
    return a->dir_dev == b->dir_dev && a->dir_ino == b->dir_ino &&
           strcmp(a->dest_name, b->dest_name) == 0;
}

/* Another started object writing o's destination, or NULL. */
static struct jobject *dests_find(const rvd_jobs *j, const struct jobject *o) {
    for (struct jobject *p = j->n_dest_slots ? j->dests[dest_slot(j, o)] : NULL; p;
         p = p->dest_next)
        if (p != o && same_dest(p, o))
            return p;
    return NULL;
}

static int dests_add(rvd_jobs *j, struct jobject *o) {
    if (j->n_dests >= j->n_dest_slots) { /* grow: at most one per slot on average */
        size_t n = j->n_dest_slots ? 2 * j->n_dest_slots : 64;
        struct jobject **v = calloc(n, sizeof(*v));
        if (!v)
            return -ENOMEM;
        struct jobject **old = j->dests;
        size_t n_old = j->n_dest_slots;
        j->dests = v;
        j->n_dest_slots = n;
        for (size_t i = 0; i < n_old; i++)
            for (struct jobject *p = old[i], *next; p; p = next) {
                next = p->dest_next;
                size_t k = dest_slot(j, p);
                p->dest_next = v[k];
                v[k] = p;
            }
        free(old);
    }
    size_t k = dest_slot(j, o);
    o->dest_next = j->dests[k];
    j->dests[k] = o;
    o->in_dests = true;
    j->n_dests++;
    return 0;
}

static void dests_remove(rvd_jobs *j, struct jobject *o) {
    if (!o->in_dests)
        return;
    for (struct jobject **pp = &j->dests[dest_slot(j, o)]; *pp; pp = &(*pp)->dest_next)
        if (*pp == o) {
            *pp = o->dest_next;
            break;
        }
    o->in_dests = false;
    j->n_dests--;
}

/* What the object holds open, and its place in j->dests. */
static void jobject_close(rvd_jobs *j, struct jobject *o) {
    struct job *jb = o->job;
    dests_remove(j, o);
    if (o->data_fd >= 0)
        close(o->data_fd);
    o->data_fd = -1;
    if (o->dirfd >= 0 && o->dirfd != j->reads_dirfd && --jb->dirs_users == 0)
        jb->dirs = rvd_asuser_dirs_free(jb->dirs);
    if (o->srcfd >= 0)
        close(o->srcfd);
    o->dirfd = o->srcfd = -1;
    free(o->dest_name);
    free(o->engine_dest);
    free(o->engine_url);
    o->dest_name = o->engine_dest = o->engine_url = NULL;
}

static void job_free(rvd_jobs *j, struct job *jb) {
    if (!jb)
        return;
    for (size_t i = 0; jb->objs && i < jb->view.n_objects; i++) {
        struct jobject *o = &jb->objs[i];
        jobject_close(j, o);
        free(o->sha256);
        free(o->crc32c);
        free(o->error_detail);
    }
    while (jb->subs) {
        struct sub *s = jb->subs;
        jb->subs = s->next;
        free(s);
    }
    rvd_asuser_dirs_free(jb->dirs);
    free(jb->objs);
    free(jb->views);
    free(jb->key);
    free(jb->ca_pem);
    rvd_download_req_free(jb->req);
    rvd_peer_clear(&jb->owner);
    free(jb);
}

/* A QUEUED job for req (taking it); NULL when memory runs out (req is
 * freed then too). */
static struct job *job_new(const rvd_peer *owner, rvd_download_req *req, char *key) {
    struct job *jb = calloc(1, sizeof(*jb));
    if (!jb) {
        rvd_download_req_free(req);
        free(key);
        return NULL;
    }
    jb->req = req;
    jb->key = key;
    jb->priority = req->priority;
    size_t n = req->n_sources;
    jb->views = calloc(n, sizeof(*jb->views));
    jb->objs = calloc(n, sizeof(*jb->objs));
    if (!key || !jb->views || !jb->objs || rvd_peer_copy(&jb->owner, owner) < 0 ||
        new_id(jb->id) < 0) {
        job_free(NULL, jb); /* no object was set up yet */
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct jobject *o = &jb->objs[i];
        rvd_object_view *v = &jb->views[i];
        o->job = jb;
        o->index = (uint32_t)i;
        o->src = &req->sources[i];
        o->dirfd = o->srcfd = o->data_fd = -1;
        v->url = o->src->url_display;
        v->destination = o->src->destination;
        v->state = RV_STATE_QUEUED;
        v->error_detail = "";
    }
    jb->n_live = n;
    jb->view.id = jb->id;
    jb->view.state = JOB_ABSENT; /* until it enters the table (job_set_state) */
    jb->view.objects = jb->views;
    jb->view.n_objects = n;
    jb->view.created_ms = now_ms();
    return jb;
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* Events are delivered to a sink at once and flushed (sent) after a run of
 * them: when the engine is about to wait (on_wait), at the pump after each
 * turn of its loop, or before a call from the RPC side that emitted
 * returns. So a sink that batches gets what one turn produced as one
 * batch. Under the lock. */
static void emit_to(rvd_jobs *j, struct sub *s, const rvd_event *ev) {
    s->sink.event(s->sink.ctx, ev);
    if (s->sink.flush && !s->dirty) {
        s->dirty = true;
        s->dirty_next = j->dirty;
        j->dirty = s;
    }
}

static void flush_locked(rvd_jobs *j) {
    while (j->dirty) {
        struct sub *s = j->dirty;
        j->dirty = s->dirty_next;
        s->dirty = false;
        s->sink.flush(s->sink.ctx);
    }
}

static void emit(rvd_jobs *j, struct job *jb, rvd_event_kind kind, const struct jobject *o,
                 const rv_retry_info *retry) {
    rvd_event ev = {.kind = kind, .job_id = jb->id, .time_ms = now_ms()};
    if (o) {
        ev.object_index = o->index;
        ev.object = &jb->views[o->index];
    }
    if (retry)
        ev.retry = *retry;
    for (struct sub *s = jb->subs; s; s = s->next)
        emit_to(j, s, &ev);
}

/* The events a new subscriber missed, one state per object: QUEUED, then
 * STARTED once it began, then its end if it ended. */
static void replay(rvd_jobs *j, const struct job *jb, struct sub *s) {
    rvd_event ev = {.kind = RVD_EV_ACCEPTED, .job_id = jb->id, .time_ms = now_ms()};
    emit_to(j, s, &ev);
    for (size_t i = 0; i < jb->view.n_objects; i++) {
        const struct jobject *o = &jb->objs[i];
        ev.object_index = o->index;
        ev.object = &jb->views[i];
        ev.kind = RVD_EV_QUEUED;
        emit_to(j, s, &ev);
        if (o->started) {
            ev.kind = RVD_EV_STARTED;
            emit_to(j, s, &ev);
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
        emit_to(j, s, &ev);
    }
}

static struct sub *sub_add(rvd_jobs *j, struct job *jb, const rvd_sink *sink, uid_t uid) {
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
static void sub_unlink(rvd_jobs *j, struct job *jb, struct sub *s) {
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

/* Record an ended job's outcome; under the lock. A failure costs the
 * history after a restart, not the job: it is logged, not returned. */
static void persist_end(rvd_jobs *j, const struct job *jb) {
    if (!j->store)
        return;
    size_t n = jb->view.n_objects;
    rvd_stored_object *objs = calloc(n ? n : 1, sizeof(*objs));
    if (objs) {
        for (size_t i = 0; i < n; i++) {
            const rvd_object_view *v = &jb->views[i];
            objs[i] = (rvd_stored_object){
                .state = v->state, .bytes_done = v->progress.bytes_done,
                .bytes_total = v->progress.bytes_total, .total_known = v->progress.total_known,
                .from_cache = v->from_cache, .retries = v->retries, .sha256 = v->sha256,
                .crc32c = v->crc32c, .error = v->error, .error_detail = v->error_detail};
        }
        rvd_stored_job row = {.id = jb->id, .state = jb->view.state,
                              .ended_ms = jb->view.ended_ms, .objects = objs, .n_objects = n};
        if (rvd_jobstore_end(j->store, &row, rvd_request_scrub) == 0) {
            free(objs);
            return;
        }
        free(objs);
    }
    rvd_log_warning("cannot record the end of job %s in the state directory", jb->id);
}

/* Every object ended: settle the job's state and end its streams. */
static void job_end(rvd_jobs *j, struct job *jb) {
    bool failed = false, cancelled = false;
    for (size_t i = 0; i < jb->view.n_objects; i++) {
        failed |= jb->views[i].state == RV_STATE_FAILED;
        cancelled |= jb->views[i].state == RV_STATE_CANCELLED;
    }
    job_set_state(j, jb, failed      ? RVD_JOB_FAILED
                         : cancelled ? RVD_JOB_CANCELLED
                                     : RVD_JOB_DONE);
    jb->view.ended_ms = now_ms();
    /* Send what the subscribers were given (the last object's Completed
     * among it) before the store write, which takes milliseconds for a
     * job of many objects; the streams' end still waits for the write, so
     * a caller that sees its stream end finds the outcome on disk. */
    flush_locked(j);
    persist_end(j, jb);
    set_want_cancel(j, jb, false);
    while (jb->subs) {
        struct sub *s = jb->subs;
        sub_unlink(j, jb, s);
        s->sink.end(s->sink.ctx, RVD_OK, NULL);
        free(s);
    }
}

/* Tell o's readers where it stands; under the lock. */
static void readers_notify(struct jobject *o) {
    rvd_read_state st = {.ready = o->ready, .data_fd = o->data_fd};
    for (struct reader *r = o->readers; r; r = r->next)
        r->sink.notify(r->sink.ctx, &st);
}

/* The readers' last word: done (every byte ready) or failed (why); the
 * table lets go of them. Under the lock. */
static void readers_end(struct jobject *o, bool done, rvd_code code, const char *why) {
    rvd_read_state st = {.ready = o->ready, .done = done, .failed = !done, .code = code,
                         .why = why, .data_fd = o->data_fd};
    while (o->readers) {
        struct reader *r = o->readers;
        o->readers = r->next;
        r->sink.notify(r->sink.ctx, &st);
        free(r);
    }
}

/* Record an object's end (under the lock) and tell the subscribers. */
static void object_ended(rvd_jobs *j, struct jobject *o, rv_state state, int err,
                         const char *detail) {
    struct job *jb = o->job;
    rvd_object_view *v = &jb->views[o->index];
    if (rv_state_is_terminal(v->state))
        return;
    v->state = state;
    v->error = err;
    if (state == RV_STATE_DONE) {
        if (v->from_cache)
            j->bytes_cache += v->progress.bytes_done;
        else
            j->bytes_origin += v->progress.bytes_done;
    }
    if (detail && *detail) {
        free(o->error_detail);
        o->error_detail = strdup(detail);
        v->error_detail = o->error_detail ? o->error_detail : "";
    }
    emit(j, jb, state == RV_STATE_DONE        ? RVD_EV_COMPLETED
             : state == RV_STATE_CANCELLED ? RVD_EV_CANCELLED
                                           : RVD_EV_FAILED,
         o, NULL);
    if (state == RV_STATE_DONE)
        o->ready = v->progress.bytes_done;
    readers_end(o, state == RV_STATE_DONE, RVD_FAILED_PRECONDITION,
                "the download ended without delivering the object");
    if (--jb->n_live == 0)
        job_end(j, jb);
}

/* ------------------------------------------------------------------------
 * The RPC side
 * ------------------------------------------------------------------------ */

int rvd_jobs_new(const rvd_jobs_limits *limits, void (*wake)(void *), void *wake_ud,
                 rvd_jobs **ret) {
    rvd_jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    pthread_mutex_init(&j->lock, NULL);
    j->limits = *limits;
    j->reads_dirfd = -1;
    j->wake = wake;
    j->wake_ud = wake_ud;
    if (rvd_cacheops_new(wake, wake_ud, &j->cache) < 0) {
        pthread_mutex_destroy(&j->lock);
        free(j);
        return -ENOMEM;
    }
    *ret = j;
    return 0;
}

rvd_cacheops *rvd_jobs_cacheops(rvd_jobs *j) {
    return j->cache;
}

void rvd_jobs_set_limits(rvd_jobs *j, const rvd_jobs_limits *limits) {
    pthread_mutex_lock(&j->lock);
    j->limits = *limits;
    pthread_mutex_unlock(&j->lock);
    j->wake(j->wake_ud); /* more may run now */
}

static void wake(rvd_jobs *j) {
    if (j->wake)
        j->wake(j->wake_ud);
}

/* The caller's CA file (DownloadRequest.ca_file), read through a
 * descriptor opened AS the caller (rvd_asuser_open_source: the kernel
 * checks the caller's read permission; a regular file only), so the
 * daemon never reads a file on a caller's behalf that the caller could
 * not. On success *ret_pem is its text, NUL-terminated (malloc'd). At most
 * RV_CA_PEM_MAX bytes and at least one PEM certificate, else -EINVAL
 * with a sentence in *ret_error (as rvd_asuser_open_source's). */
static int read_ca(const rvd_peer *caller, const char *path, char **ret_pem, char **ret_error) {
    int fd = -1, r;
    char *buf = NULL;
    size_t n = 0;
    struct stat st;

    r = rvd_asuser_open_source(caller, path, &fd, ret_error);
    if (r < 0)
        return r;
    r = -EINVAL;
    if (fstat(fd, &st) != 0 || st.st_size > (off_t)RV_CA_PEM_MAX) {
        *ret_error = rvd_strdupf("'%s' is larger than %u bytes: not a CA file", path,
                                 RV_CA_PEM_MAX);
        goto out;
    }
    r = -ENOMEM;
    if (!(buf = malloc((size_t)st.st_size + 1)))
        goto out;
    for (ssize_t got = 1; got > 0 && n < (size_t)st.st_size; n += (size_t)got)
        if ((got = read(fd, buf + n, (size_t)st.st_size - n)) < 0)
            got = 0;
    buf[n] = '\0';
    r = -EINVAL;
    if (!strstr(buf, "-----BEGIN CERTIFICATE-----")) {
        *ret_error = rvd_strdupf("'%s' holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                                 path);
        goto out;
    }
    *ret_pem = buf;
    buf = NULL;
    r = 0;
out:
    free(buf);
    close(fd);
    return r;
}

static rvd_code errno_code(int r) {
    switch (r) {
    case -EACCES:
    case -EPERM:
        return RVD_PERMISSION_DENIED;
    case -ENOMEM:
        return RVD_INTERNAL;
    case -ENOENT:
    case -ENOTDIR:
    case -EISDIR:
    case -EEXIST:
    case -EINVAL:
    case -ELOOP:
    case -ENAMETOOLONG:
        return RVD_INVALID_ARGUMENT;
    default:
        return RVD_FAILED_PRECONDITION; /* e.g. a read-only file system */
    }
}

/* Whether caller may write every destination and read every file://
 * source of req, opened as the caller would (asuser.h). The engine side
 * opens them again when the job starts: this answers the caller now,
 * with nothing created. */
static rvd_code check_access(const rvd_peer *caller, const rvd_download_req *req,
                             char **ret_msg) {
    rvd_asuser_dirs *dirs = rvd_asuser_dirs_new(caller);
    rvd_code code = RVD_OK;
    if (!dirs) {
        *ret_msg = rvd_strdupf("out of memory");
        return RVD_INTERNAL;
    }
    for (size_t i = 0; i < req->n_sources && code == RVD_OK; i++) {
        const rvd_source *src = &req->sources[i];
        char *name = NULL, *path = NULL, *err = NULL;
        int fd = -1, r = 0;
        if (src->destination) {
            r = rvd_asuser_dest(dirs, src->destination, &fd, &name, &err);
            /* The caller may search the directory (checked above), so
             * whether the name exists tells it nothing new. A directory
             * was refused already (EISDIR). */
            struct stat st;
            if (r == 0 && req->no_replace &&
                fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                *ret_msg = rvd_strdupf("sources[%zu]: destination '%s' exists and the request "
                                       "does not replace it (no_replace)",
                                       i, src->destination);
                code = RVD_ALREADY_EXISTS;
            }
            free(name); /* fd is dirs' */
            if (code != RVD_OK)
                break;
        }
        if (r == 0 && strncmp(src->url_key, "file:", 5) == 0) {
            int e = rv_file_url_path(src->url, &path);
            if (e != RV_OK) {
                *ret_msg = rvd_strdupf("sources[%zu].url: not a usable file URL: %s", i,
                                       rv_strerror(e));
                code = RVD_INVALID_ARGUMENT;
                break;
            }
            r = rvd_asuser_open_source(caller, path, &fd, &err);
            if (r == 0)
                close(fd);
            free(path);
        }
        if (r < 0) {
            *ret_msg = rvd_strdupf("sources[%zu]: %s", i, err ? err : strerror(-r));
            code = errno_code(r);
        }
        free(err);
    }
    rvd_asuser_dirs_free(dirs);
    if (code == RVD_OK && req->ca_file) {
        /* Checked now, so a file the caller cannot read or that holds no
         * certificate is the request's error; read again when the job
         * starts (job_start). */
        char *pem = NULL, *err = NULL;
        int r = read_ca(caller, req->ca_file, &pem, &err);
        if (r < 0) {
            *ret_msg = rvd_strdupf("ca_file: %s", err ? err : strerror(-r));
            code = errno_code(r);
        }
        free(pem);
        free(err);
    }
    return code;
}

rvd_code rvd_jobs_submit(rvd_jobs *j, const rvd_peer *caller, rvd_download_req *req,
                         const uint8_t *raw, size_t raw_len, const rvd_sink *sink, char *ret_id,
                         char **ret_msg) {
    rvd_code code = check_access(caller, req, ret_msg);
    if (code != RVD_OK) {
        rvd_download_req_free(req);
        return code;
    }
    char *key = make_key(caller->uid, req);
    if (!key) {
        rvd_download_req_free(req);
        *ret_msg = rvd_strdupf("out of memory");
        return RVD_INTERNAL;
    }

    pthread_mutex_lock(&j->lock);
    if (j->stopping) {
        code = RVD_UNAVAILABLE;
        *ret_msg = rvd_strdupf("retrieverd is shutting down; submit the job again once it is back");
        goto fail;
    }
    /* An identical live request of the same uid: attach to it. */
    for (struct job *jb = j->head; jb; jb = jb->next) {
        if (is_ended(jb) || jb->owner.uid != caller->uid || strcmp(jb->key, key) != 0 ||
            !job_satisfies(j, jb, req))
            continue;
        if (sink) {
            if (jb->view.subscribers >= j->limits.max_subscribers) {
                code = RVD_RESOURCE_EXHAUSTED;
                *ret_msg = rvd_strdupf("job %s already has %u subscribers, the limit "
                                       "(max-subscribers)", jb->id, j->limits.max_subscribers);
                goto fail;
            }
            struct sub *s = sub_add(j, jb, sink, caller->uid);
            if (!s)
                goto nomem;
            replay(j, jb, s);
            flush_locked(j);
        } else if (!jb->view.detached) {
            jb->view.detached = true;
            if (j->store)
                rvd_jobstore_set_detached(j->store, jb->id, true);
        }
        memcpy(ret_id, jb->id, sizeof(jb->id));
        free(key);
        rvd_download_req_free(req);
        pthread_mutex_unlock(&j->lock);
        return RVD_OK;
    }
    struct uidacct *acct = acct_get(j, caller->uid);
    if (!acct)
        goto nomem;
    if (j->limits.per_uid_request_bytes && !uid_exempt(caller->uid) &&
        acct->live_bytes + raw_len > j->limits.per_uid_request_bytes) {
        code = RVD_RESOURCE_EXHAUSTED;
        *ret_msg = rvd_strdupf("uid %u has %llu bytes of requests in waiting and running jobs; "
                               "with this one's %zu that is over its %llu "
                               "(per-uid-request-bytes); try again when some of yours have "
                               "finished",
                               (unsigned)caller->uid, (unsigned long long)acct->live_bytes,
                               raw_len,
                               (unsigned long long)j->limits.per_uid_request_bytes);
        goto fail_acct;
    }
    if (!uid_exempt(caller->uid) && acct->queued >= j->limits.per_uid_queued) {
        code = RVD_RESOURCE_EXHAUSTED;
        *ret_msg = rvd_strdupf("uid %u has %u of %u queued jobs (per-uid-queued-jobs; %u of "
                               "them may run at once, per-uid-running-jobs); try again when some "
                               "of yours have started or finished",
                               (unsigned)caller->uid, acct->queued, j->limits.per_uid_queued,
                               j->limits.per_uid_running);
        goto fail_acct;
    }
    if (j->n_state[RVD_JOB_QUEUED] >= j->limits.max_queued) {
        code = RVD_RESOURCE_EXHAUSTED;
        *ret_msg = rvd_strdupf("%u jobs of all users are already waiting, the daemon's limit "
                               "(max-queued-jobs); try again when some have finished",
                               j->limits.max_queued);
        goto fail_acct;
    }
    bool link = wants_link(j, req);
    struct job *jb = job_new(caller, req, key);
    req = NULL;
    key = NULL;
    if (!jb)
        goto nomem_acct;
    jb->link = link;
    jb->view.detached = !sink;
    jb->seq = ++j->seq;
    jb->req_bytes = raw_len;
    /* On disk before its id is given out: the id works across restarts. */
    rvd_stored_job row = {.id = jb->id, .seq = jb->seq, .owner = *caller,
                          .detached = !sink, .state = RVD_JOB_QUEUED,
                          .created_ms = jb->view.created_ms, .request = raw,
                          .request_len = raw_len};
    if (j->store && rvd_jobstore_add(j->store, &row) < 0) {
        job_free(j, jb);
        code = RVD_UNAVAILABLE;
        *ret_msg = rvd_strdupf("cannot record the job in the state directory; try again");
        goto fail_acct;
    }
    struct sub *s = NULL;
    if (sink && !(s = sub_add(j, jb, sink, caller->uid))) {
        if (j->store)
            rvd_jobstore_remove(j->store, jb->id);
        job_free(j, jb);
        goto nomem_acct;
    }
    jb->next = j->head;
    if (j->head)
        j->head->prev = jb;
    j->head = jb;
    job_set_state(j, jb, RVD_JOB_QUEUED);
    if (s) {
        replay(j, jb, s);
        flush_locked(j);
    }
    memcpy(ret_id, jb->id, sizeof(jb->id));
    pthread_mutex_unlock(&j->lock);
    wake(j);
    return RVD_OK;

nomem_acct:
    code = RVD_INTERNAL;
    *ret_msg = rvd_strdupf("out of memory");
fail_acct:
    acct_move(j, caller->uid, 0, 0, 0); /* drop the entry made for nothing */
    goto fail;
nomem:
    code = RVD_INTERNAL;
    *ret_msg = rvd_strdupf("out of memory");
fail:
    pthread_mutex_unlock(&j->lock);
    free(key);
    rvd_download_req_free(req);
    return code;
}

static char *not_found(const char *id) {
    return rvd_strdupf("no job '%s' (it never existed, belongs to another user, or ended "
                       "long enough ago to leave the history)", id);
}

rvd_code rvd_jobs_watch(rvd_jobs *j, const rvd_peer *caller, const char *id,
                        const rvd_sink *sink, char **ret_msg) {
    rvd_code code = RVD_OK;
    pthread_mutex_lock(&j->lock);
    struct job *jb = find(j, caller, id);
    if (!jb) {
        code = RVD_NOT_FOUND;
        *ret_msg = not_found(id);
    } else if (j->stopping) {
        code = RVD_UNAVAILABLE;
        *ret_msg = rvd_strdupf("retrieverd is shutting down; watch again once it is back");
    } else if (!is_ended(jb) && jb->view.subscribers >= j->limits.max_subscribers) {
        code = RVD_RESOURCE_EXHAUSTED;
        *ret_msg = rvd_strdupf("job %s already has %u subscribers, the limit (max-subscribers)",
                               id, j->limits.max_subscribers);
    } else {
        rvd_event ev = {.kind = RVD_EV_SNAPSHOT, .job_id = jb->id, .time_ms = now_ms(),
                        .job = &jb->view};
        sink->event(sink->ctx, &ev);
        if (is_ended(jb)) {
            sink->end(sink->ctx, RVD_OK, NULL);
        } else if (!sub_add(j, jb, sink, caller->uid)) {
            code = RVD_INTERNAL;
            *ret_msg = rvd_strdupf("out of memory");
        } else if (sink->flush) {
            sink->flush(sink->ctx);
        }
    }
    pthread_mutex_unlock(&j->lock);
    return code;
}

/* A live job lost its last subscriber: stop it, unless detached. Under
 * the lock. Returns whether it stops. */
static bool maybe_stop(rvd_jobs *j, struct job *jb) {
    if (is_ended(jb) || jb->view.subscribers > 0 || jb->view.detached)
        return false;
    if (jb->view.state == RVD_JOB_QUEUED) {
        /* Nothing in the engine yet: end it here. */
        for (size_t i = 0; i < jb->view.n_objects; i++)
            object_ended(j, &jb->objs[i], RV_STATE_CANCELLED, RV_E_CANCELLED,
                         "cancelled: its last subscriber left");
    } else {
        set_want_cancel(j, jb, true);
    }
    return true;
}

bool rvd_jobs_unsubscribe(rvd_jobs *j, const char *id, const rvd_sink *sink) {
    bool found = false;
    bool stops = false;
    pthread_mutex_lock(&j->lock);
    struct job *jb = lookup(j, id);
    for (struct sub *s = jb ? jb->subs : NULL; s; s = s->next)
        if (s->sink.ctx == sink->ctx) {
            sub_unlink(j, jb, s);
            free(s);
            found = true;
            stops = maybe_stop(j, jb);
            break;
        }
    flush_locked(j);
    pthread_mutex_unlock(&j->lock);
    if (stops)
        wake(j);
    return found;
}

rvd_code rvd_jobs_cancel(rvd_jobs *j, const rvd_peer *caller, const char *id,
                         rvd_job_state *ret_state, unsigned *ret_subscribers, char **ret_msg) {
    rvd_code code = RVD_OK;
    bool stops = false;
    pthread_mutex_lock(&j->lock);
    struct job *jb = find(j, caller, id);
    if (!jb) {
        code = RVD_NOT_FOUND;
        *ret_msg = not_found(id);
        goto out;
    }
    if (is_ended(jb))
        goto report;
    struct sub *mine = NULL;
    for (struct sub *s = jb->subs; s && !mine; s = s->next)
        if (s->uid == caller->uid)
            mine = s;
    if (mine) {
        rvd_event ev = {.kind = RVD_EV_CANCELLED, .job_id = jb->id, .time_ms = now_ms()};
        for (size_t i = 0; i < jb->view.n_objects; i++) {
            if (rv_state_is_terminal(jb->views[i].state))
                continue;
            ev.object_index = (uint32_t)i;
            ev.object = &jb->views[i];
            emit_to(j, mine, &ev);
        }
        sub_unlink(j, jb, mine);
        mine->sink.end(mine->sink.ctx, RVD_OK, NULL);
        free(mine);
        stops = maybe_stop(j, jb);
    } else if (jb->view.detached && (caller->uid == jb->owner.uid || caller->uid == 0)) {
        jb->view.detached = false;
        stops = maybe_stop(j, jb);
    } else {
        code = RVD_FAILED_PRECONDITION;
        *ret_msg = rvd_strdupf("you hold no subscription to job %s: only its subscribers, or "
                               "the owner of a detached job, can cancel it", id);
        goto out;
    }
report:
    *ret_state = stops ? RVD_JOB_CANCELLED : jb->view.state;
    *ret_subscribers = jb->view.subscribers;
out:
    flush_locked(j);
    pthread_mutex_unlock(&j->lock);
    if (stops)
        wake(j);
    return code;
}

rvd_code rvd_jobs_read(rvd_jobs *j, const rvd_peer *caller, const char *id, uint32_t index,
                       const rvd_reader *reader, char **ret_msg) {
    rvd_code code = RVD_OK;
    pthread_mutex_lock(&j->lock);
    struct job *jb = find(j, caller, id);
    if (!jb) {
        code = RVD_NOT_FOUND;
        *ret_msg = not_found(id);
        goto out;
    }
    if (index >= jb->view.n_objects) {
        code = RVD_NOT_FOUND;
        *ret_msg = rvd_strdupf("job %s has %zu object(s): no object_index %u", id,
                               jb->view.n_objects, (unsigned)index);
        goto out;
    }
    struct jobject *o = &jb->objs[index];
    const rvd_object_view *v = &jb->views[index];
    if (v->state == RV_STATE_DONE && o->data_fd < 0) {
        /* Delivered and released: its bytes are the destination's. */
        int fd = -1;
        char *err = NULL, *name = NULL;
        if (!v->destination) { /* Read-only: the daemon's own copy */
            name = read_only_name(o);
            fd = name && j->reads_dirfd >= 0
                     ? openat(j->reads_dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                     : -1;
            free(name);
            if (fd < 0)
                err = rvd_strdupf("its copy is gone");
        } else if (rvd_asuser_open_source(caller, v->destination, &fd, &err) < 0) {
            fd = -1;
        }
        if (fd < 0) {
            code = RVD_FAILED_PRECONDITION;
            *ret_msg = rvd_strdupf("the object was delivered, but its file cannot be read "
                                   "now: %s", err ? err : "unknown error");
            free(err);
            goto out;
        }
        rvd_read_state st = {.ready = v->progress.bytes_done, .done = true, .data_fd = fd};
        reader->notify(reader->ctx, &st);
        close(fd);
        goto out;
    }
    if (rv_state_is_terminal(v->state) && v->state != RV_STATE_DONE) {
        code = RVD_FAILED_PRECONDITION;
        *ret_msg = rvd_strdupf("object %u of job %s %s: nothing to read", (unsigned)index, id,
                               rv_state_name(v->state));
        goto out;
    }
    if (j->stopping) {
        code = RVD_UNAVAILABLE;
        *ret_msg = rvd_strdupf("retrieverd is shutting down; read again once it is back");
        goto out;
    }
    rvd_read_state st = {.ready = o->ready, .done = v->state == RV_STATE_DONE,
                         .data_fd = o->data_fd};
    if (st.done) {
        reader->notify(reader->ctx, &st);
        goto out;
    }
    struct reader *r = calloc(1, sizeof(*r));
    if (!r) {
        code = RVD_INTERNAL;
        *ret_msg = rvd_strdupf("out of memory");
        goto out;
    }
    r->sink = *reader;
    r->next = o->readers;
    o->readers = r;
    atomic_store(&o->wants_data, true);
    reader->notify(reader->ctx, &st);
out:
    pthread_mutex_unlock(&j->lock);
    return code;
}

bool rvd_jobs_read_stop(rvd_jobs *j, const char *id, uint32_t index, const rvd_reader *reader) {
    bool found = false;
    pthread_mutex_lock(&j->lock);
    struct job *jb = lookup(j, id);
    struct reader **p = jb && index < jb->view.n_objects ? &jb->objs[index].readers : NULL;
    for (; p && *p; p = &(*p)->next)
        if ((*p)->sink.ctx == reader->ctx) {
            struct reader *r = *p;
            *p = r->next;
            free(r);
            found = true;
            break;
        }
    pthread_mutex_unlock(&j->lock);
    return found;
}

rvd_code rvd_jobs_status(rvd_jobs *j, const rvd_peer *caller, const char *id,
                         void (*fn)(void *ud, const rvd_job_view *v), void *ud, char **ret_msg) {
    rvd_code code = RVD_OK;
    pthread_mutex_lock(&j->lock);
    struct job *jb = find(j, caller, id);
    if (jb) {
        fn(ud, &jb->view);
    } else {
        code = RVD_NOT_FOUND;
        *ret_msg = not_found(id);
    }
    pthread_mutex_unlock(&j->lock);
    return code;
}

void rvd_jobs_list(rvd_jobs *j, const rvd_peer *caller, unsigned states_mask, unsigned limit,
                   void (*fn)(void *ud, const rvd_job_view *v), void *ud) {
    unsigned n = 0;
    pthread_mutex_lock(&j->lock);
    for (struct job *jb = j->head; jb && n < limit; jb = jb->next) {
        if (!may_see(caller, jb))
            continue;
        if (states_mask && !(states_mask & (1u << jb->view.state)))
            continue;
        fn(ud, &jb->view);
        n++;
    }
    pthread_mutex_unlock(&j->lock);
}

void rvd_jobs_set_cache_quota(rvd_jobs *j, uint64_t quota) {
    pthread_mutex_lock(&j->lock);
    j->cache_quota = quota;
    pthread_mutex_unlock(&j->lock);
}

void rvd_jobs_stats_get(rvd_jobs *j, rvd_jobs_stats *ret) {
    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&j->lock);
    ret->cache_quota = j->cache_quota;
    ret->running = j->n_state[RVD_JOB_RUNNING];
    ret->queued = j->n_state[RVD_JOB_QUEUED];
    ret->done = j->n_state[RVD_JOB_DONE];
    ret->failed = j->n_state[RVD_JOB_FAILED];
    ret->cancelled = j->n_state[RVD_JOB_CANCELLED];
    ret->subscribers = j->n_subs;
    ret->transfers = j->transfers;
    ret->cache_bytes = j->cache_bytes;
    ret->bytes_from_origin = j->bytes_origin;
    ret->bytes_from_cache = j->bytes_cache;
    for (struct job *jb = j->head; jb; jb = jb->next) {
        for (size_t i = 0; i < jb->view.n_objects; i++) {
            const rvd_object_view *v = &jb->views[i];
            if (jb->view.state == RVD_JOB_RUNNING && !rv_state_is_terminal(v->state)) {
                ret->rate_bps += v->progress.rate_bps;
                ret->bytes_from_origin += v->progress.bytes_done;
            }
        }
    }
    pthread_mutex_unlock(&j->lock);
}

/* ------------------------------------------------------------------------
 * Restoring the table from the job store (before the worker runs)
 * ------------------------------------------------------------------------ */

struct restore {
    rvd_jobs *j;
    unsigned resumed, ended, bad;
};

/* An ended job's objects as they ended. */
static void restore_outcome(struct job *jb, const rvd_stored_job *sj) {
    for (size_t i = 0; i < jb->view.n_objects && i < sj->n_objects; i++) {
        const rvd_stored_object *so = &sj->objects[i];
        struct jobject *o = &jb->objs[i];
        rvd_object_view *v = &jb->views[i];
        v->state = (rv_state)so->state;
        v->progress.bytes_done = so->bytes_done;
        v->progress.bytes_total = so->bytes_total;
        v->progress.total_known = so->total_known;
        v->from_cache = so->from_cache;
        v->retries = so->retries;
        v->error = so->error;
        if (so->sha256 && (o->sha256 = strdup(so->sha256)))
            v->sha256 = o->sha256;
        if (so->crc32c && (o->crc32c = strdup(so->crc32c)))
            v->crc32c = o->crc32c;
        /* Stored redacted: by the engine, or by the migration to schema 2
         * for a detail an older daemon stored (jobstore.c). */
        if (so->error_detail && (o->error_detail = strdup(so->error_detail)))
            v->error_detail = o->error_detail;
        o->started = true;
    }
    jb->n_live = 0;
}

static void restore_one(void *ud, const rvd_stored_job *sj) {
    struct restore *rs = ud;
    rvd_jobs *j = rs->j;
    rvd_download_req *req = NULL;
    char *msg = NULL;
    if (strlen(sj->id) != RVD_JOB_ID_LEN ||
        rvd_request_download(sj->request, sj->request_len, &req, &msg) < 0) {
        free(msg);
        rs->bad++;
        return;
    }
    if (!acct_get(j, sj->owner.uid)) {
        rvd_download_req_free(req);
        rs->bad++;
        return;
    }
    struct job *jb = job_new(&sj->owner, req, make_key(sj->owner.uid, req));
    if (!jb) {
        acct_move(j, sj->owner.uid, 0, 0, 0);
        rs->bad++;
        return;
    }
    /* The request's link and digest came back with it (the message is
     * stored as received); the daemon's default is today's. */
    jb->link = wants_link(j, jb->req);
    memcpy(jb->id, sj->id, RVD_JOB_ID_LEN + 1);
    jb->seq = sj->seq;
    jb->req_bytes = sj->request_len;
    jb->view.created_ms = sj->created_ms;
    if (sj->ended_ms && !state_ended((rvd_job_state)sj->state)) {
        job_free(j, jb); /* ended, but in no ended state: not a row this daemon wrote */
        acct_move(j, sj->owner.uid, 0, 0, 0);
        rs->bad++;
        return;
    }
    if (sj->ended_ms) {
        restore_outcome(jb, sj);
        jb->view.ended_ms = sj->ended_ms;
        jb->view.detached = sj->detached;
        job_set_state(j, jb, (rvd_job_state)sj->state);
        rs->ended++;
    } else {
        /* Its callers are gone; it carries on by itself. */
        jb->view.detached = true;
        job_set_state(j, jb, RVD_JOB_QUEUED);
        rs->resumed++;
    }
    if (sj->seq > j->seq)
        j->seq = sj->seq;
    jb->next = j->head; /* loaded oldest first: the list stays newest first */
    if (j->head)
        j->head->prev = jb;
    j->head = jb;
}

int rvd_jobs_restore(rvd_jobs *j, rvd_jobstore *store, int reads_dirfd, unsigned *ret_resumed,
                     unsigned *ret_ended, unsigned *ret_skipped) {
    struct restore rs = {.j = j};
    unsigned skipped = 0;
    pthread_mutex_lock(&j->lock);
    j->store = store;
    j->reads_dirfd = reads_dirfd;
    int r = rvd_jobstore_load(store, restore_one, &rs, &skipped);
    pthread_mutex_unlock(&j->lock);
    *ret_resumed = rs.resumed;
    *ret_ended = rs.ended;
    *ret_skipped = skipped + rs.bad;
    if (rs.resumed)
        wake(j);
    return r;
}

/* ------------------------------------------------------------------------
 * Engine hooks (worker thread, inside rv_engine_perform or the pump's
 * engine calls; the lock is not held by the caller)
 * ------------------------------------------------------------------------ */

static char *hex32(uint32_t v) {
    return rvd_strdupf("%08x", (unsigned)v);
}

static void on_state(void *ud, rv_object *obj, rv_state state) {
    rvd_jobs *j = ud;
    struct jobject *o = rv_object_user_data(obj);
    struct job *jb = o->job;

    /* Work outside the lock first: hand the delivered file to its owner. */
    char *give_error = NULL;
    if (state == RV_STATE_DONE && o->src->destination &&
        rvd_asuser_give(&jb->owner, o->dirfd, o->dest_name, &give_error) < 0)
        state = RV_STATE_FAILED;

    /* A reader that came after the last progress hook has no file yet:
     * opened now, or it could not read what was delivered (a cache hit
     * ends before any progress). Only this thread sets data_fd. */
    int data_fd = state == RV_STATE_DONE && o->data_fd < 0 && atomic_load(&o->wants_data)
                      ? rv_object_open_data(obj)
                      : -1;

    pthread_mutex_lock(&j->lock);
    if (data_fd >= 0)
        o->data_fd = data_fd;
    if (j->stopping) /* the shutdown's cancellations: the job resumes later */
        goto out;
    rvd_object_view *v = &jb->views[o->index];
    rv_object_progress(obj, &v->progress);
    if (!rv_state_is_terminal(state)) {
        v->state = state;
        if (state != RV_STATE_QUEUED && !o->started) {
            o->started = true;
            v->resumed_bytes = rv_object_durable(obj); /* kept for a late Watch */
            emit(j, jb, RVD_EV_STARTED, o, NULL);
        }
        goto out;
    }
    v->retries = rv_object_retries(obj);
    if (state == RV_STATE_DONE) {
        uint32_t crc;
        /* Set only where a digest was asked for (digest, or a sha256 to
         * verify): the engine digests per request (daemon.c keeps
         * compute_sha256 off). Not filtered here, so a digest computed
         * unasked shows (tests/daemon/test_delivery.py) instead of
         * silently costing every download its staged write path. */
        const char *sha = rv_object_sha256_hex(obj);
        if (sha && (o->sha256 = strdup(sha)))
            v->sha256 = o->sha256;
        if (rv_object_crc32c(obj, &crc) && (o->crc32c = hex32(crc)))
            v->crc32c = o->crc32c;
        v->from_cache = rv_object_from_cache(obj);
    }
    if (!o->started) { /* ended before it began (a cache hit, a refusal) */
        o->started = true;
        v->resumed_bytes = rv_object_durable(obj);
        emit(j, jb, RVD_EV_STARTED, o, NULL);
    }
    o->release_next = j->release;
    j->release = o;
    if (give_error)
        object_ended(j, o, RV_STATE_FAILED, RV_E_DEST_UNWRITABLE, give_error);
    else
        object_ended(j, o, state, rv_object_error(obj), rv_object_error_detail(obj));
out:
    pthread_mutex_unlock(&j->lock);
    free(give_error);
}

static void on_progress(void *ud, rv_object *obj, const rv_progress *p) {
    rvd_jobs *j = ud;
    struct jobject *o = rv_object_user_data(obj);
    /* Where readers stand: the in-order prefix, and the file once a
     * reader wants it (opened outside the lock; only this thread sets
     * data_fd, so reading it here needs no lock). */
    int fd = o->data_fd < 0 && atomic_load(&o->wants_data) ? rv_object_open_data(obj) : -1;
    unsigned restarts = 0;
    uint64_t ready = rv_object_ready(obj, &restarts);
    pthread_mutex_lock(&j->lock);
    if (fd >= 0) {
        o->data_fd = fd;
        o->restarts = restarts;
    }
    if (!j->stopping) {
        o->job->views[o->index].progress = *p;
        emit(j, o->job, RVD_EV_PROGRESS, o, NULL);
        o->ready = ready;
        if (restarts != o->restarts)
            readers_end(o, false, RVD_ABORTED, "the object changed on the origin while it "
                                               "was read; read it again");
        else if (o->readers)
            readers_notify(o);
        o->restarts = restarts;
    }
    pthread_mutex_unlock(&j->lock);
}

static void on_retry(void *ud, rv_object *obj, const rv_retry_info *r) {
    rvd_jobs *j = ud;
    struct jobject *o = rv_object_user_data(obj);
    pthread_mutex_lock(&j->lock);
    if (!j->stopping) {
        o->job->views[o->index].retries = r->attempt;
        emit(j, o->job, RVD_EV_RETRYING, o, r);
    }
    pthread_mutex_unlock(&j->lock);
}

/* Recovery at start (a corrupt database moved aside, orphans removed). */
static void on_notice(void *ud, const char *msg) {
    rvd_log_warning("%s", msg);
}

/* The engine waits: send what its hooks emitted before it blocks. */
static void on_wait(void *ud) {
    rvd_jobs *j = ud;
    pthread_mutex_lock(&j->lock);
    flush_locked(j);
    pthread_mutex_unlock(&j->lock);
}

static const rv_hooks hooks = {
    .on_state = on_state,
    .on_progress = on_progress,
    .on_retry = on_retry,
    .on_notice = on_notice,
    .on_wait = on_wait,
};

const rv_hooks *rvd_jobs_hooks(void) {
    return &hooks;
}

/* ------------------------------------------------------------------------
 * The pump (worker thread)
 * ------------------------------------------------------------------------ */

/* Open what object o needs as its owner, and put it into the engine. An
 * error is a sentence for the object's failure. */
static int object_start(rvd_jobs *j, rv_engine *e, struct jobject *o, int *ret_err,
                        char **ret_detail) {
    const rvd_source *src = o->src;
    const rvd_peer *owner = &o->job->owner;
    char *path = NULL;
    int r;

    *ret_err = RV_E_DEST_UNWRITABLE;
    if (!src->destination) {
        /* A Read-only object: delivered into the daemon's own directory,
         * where Read finds it until the job leaves the history. */
        if (j->reads_dirfd < 0) {
            *ret_detail = rvd_strdupf("objects without a destination need a state directory");
            *ret_err = RV_E_INVALID_ARGUMENT;
            return -EINVAL;
        }
        o->dirfd = j->reads_dirfd;
        o->dest_name = read_only_name(o);
        if (!o->dest_name)
            goto nomem;
    } else {
        struct job *jb = o->job;
        if (!jb->dirs && !(jb->dirs = rvd_asuser_dirs_new(owner)))
            goto nomem;
        if ((r = rvd_asuser_dest(jb->dirs, src->destination, &o->dirfd, &o->dest_name,
                                 ret_detail)) < 0) {
            if (!jb->dirs_users)
                jb->dirs = rvd_asuser_dirs_free(jb->dirs);
            return r;
        }
        jb->dirs_users++;
    }
    /* The engine refuses two live downloads into one path, but sees
     * /proc/self/fd paths, which differ between jobs: compare the
     * directories' identities here. */
    struct stat st;
    if (fstat(o->dirfd, &st) == 0) {
        o->dir_dev = st.st_dev;
        o->dir_ino = st.st_ino;
    }
    if (dests_find(j, o)) {
        *ret_err = RV_E_DEST_CONFLICT;
        *ret_detail = rvd_strdupf("another running download writes '%s'", src->destination);
        return -EEXIST;
    }
    if (dests_add(j, o) < 0)
        goto nomem;
    if (!(o->engine_dest = rvd_asuser_dest_path(o->dirfd, o->dest_name)))
        goto nomem;
    if (strncmp(src->url_key, "file:", 5) == 0) {
        *ret_err = RV_E_ACCESS_DENIED;
        if ((r = rv_file_url_path(src->url, &path)) != RV_OK) {
            *ret_err = r;
            *ret_detail = rvd_strdupf("'%s' is not a usable file URL", src->url_display);
            return -EINVAL;
        }
        r = rvd_asuser_open_source(owner, path, &o->srcfd, ret_detail);
        free(path);
        if (r < 0)
            return r;
        if (!(o->engine_url = rvd_asuser_source_url(o->srcfd)))
            goto nomem;
    }
    rv_request req = {
        .url = o->engine_url ? o->engine_url : src->url,
        .dest_path = o->engine_dest,
        .sha256_hex = src->sha256,
        .headers = (const char *const *)src->headers,
        .n_headers = src->n_headers,
        .user_data = o,
        .connections = o->job->req->connections,
        /* The engine's connections to origins are shared by uid too
         * (per-uid-origin-connections); root and the daemon's own uid,
         * held only to the global limits here as elsewhere, are no group. */
        .group = uid_exempt(owner->uid) ? 0 : (uint64_t)owner->uid,
        .digest = o->job->req->digest,
        /* A Read-only object's file is the daemon's own, which only Read
         * opens (read-only): a link to the cache is safe and free. */
        .link = o->job->link || !src->destination,
        /* A file that becomes the caller's must not share the cache's
         * inode (asuser.h: rvd_asuser_give): a copy, whatever link says.
         * copy is passed on too, so it holds whatever the engine's own
         * default is. */
        .copy = owner->uid != geteuid() || o->job->req->copy,
        /* Set on the new file before it has its name, not through the
         * daemon's umask (077, daemon.c): the caller's umask, as a file
         * the caller made would have. A Read-only object's file stays
         * the daemon's: 0600 (a link to the cache: the blob's 0400). */
        .has_mode = true,
        .mode = src->destination ? o->job->req->mode : 0600,
        .ca_pem = o->job->ca_pem,
        .ca_only = o->job->req->ca_only,
        .max_attempts = o->job->req->max_attempts,
        .connect_timeout_ms = o->job->req->connect_timeout_ms,
        .stall_timeout_ms = o->job->req->stall_timeout_ms,
        .connect_retry_ms = o->job->req->connect_retry_ms,
        .max_bytes_per_sec = o->job->req->max_bytes_per_sec,
        /* Never the daemon's own environment: the caller's proxy or none
         * (""), and the caller's exceptions or none. */
        .proxy = strncmp(src->url_key, "https:", 6) == 0
                     ? (o->job->req->https_proxy ? o->job->req->https_proxy : "")
                     : (o->job->req->http_proxy ? o->job->req->http_proxy : ""),
        .noproxy = o->job->req->no_proxy ? o->job->req->no_proxy : "",
    };
    r = rv_engine_add(e, &req, &o->obj);
    if (r != RV_OK) {
        *ret_err = r;
        *ret_detail = rvd_strdupf("%s", rv_engine_error_detail(e));
        o->obj = NULL;
        return -EINVAL;
    }
    return 0;
nomem:
    *ret_err = RV_E_NOMEM;
    *ret_detail = rvd_strdupf("out of memory");
    return -ENOMEM;
}

static void job_start(rvd_jobs *j, rv_engine *e, struct job *jb) {
    char *ca_err = NULL;
    int ca_r = 0;
    /* Read at the start, not kept from the submission's check: a job
     * restored after a restart has only the path. */
    if (jb->req->ca_file && !jb->ca_pem)
        ca_r = read_ca(&jb->owner, jb->req->ca_file, &jb->ca_pem, &ca_err);
    for (size_t i = 0; i < jb->view.n_objects; i++) {
        struct jobject *o = &jb->objs[i];
        int err = RV_OK;
        char *detail = NULL;
        if (ca_r < 0) {
            err = ca_r == -ENOMEM ? RV_E_NOMEM : RV_E_INVALID_ARGUMENT;
            detail = rvd_strdupf("ca_file: %s", ca_err ? ca_err : strerror(-ca_r));
        } else if (object_start(j, e, o, &err, &detail) == 0) {
            continue;
        }
        jobject_close(j, o);
        pthread_mutex_lock(&j->lock);
        if (!j->stopping)
            object_ended(j, o, RV_STATE_FAILED, err, detail);
        pthread_mutex_unlock(&j->lock);
        free(detail);
    }
    free(ca_err);
}

/* The queued job to run next: highest priority, then oldest, among those
 * whose owner is below its running limit. */
static struct job *next_queued(rvd_jobs *j) {
    struct job *best = NULL;
    for (struct job *jb = j->head; jb; jb = jb->next)
        if (jb->view.state == RVD_JOB_QUEUED && may_start(j, jb) &&
            (!best || jb->priority > best->priority ||
             (jb->priority == best->priority && jb->seq < best->seq)))
            best = jb;
    return best;
}

/* How many ended jobs each uid loses now (uidacct.trim): what it holds
 * beyond per_uid_history (root and the daemon's uid: no such limit), then,
 * while the history is still over job_history, one more at a time from
 * whichever uid would keep the most. Besides, a uid over
 * per_uid_request_bytes loses its oldest ended jobs until it is not (or
 * has none): the pump's walk checks that as it goes. Whether anything is
 * to go. Under the lock. */
static bool plan_trim(rvd_jobs *j) {
    unsigned keep = n_ended(j);
    bool bytes = false;
    for (size_t i = 0; i < j->n_accts; i++)
        bytes |= j->accts[i].ended && over_bytes(j, &j->accts[i]);
    for (size_t i = 0; i < j->n_accts; i++) {
        struct uidacct *a = &j->accts[i];
        a->trim = 0;
        if (!uid_exempt(a->uid) && a->ended > j->limits.per_uid_history)
            a->trim = a->ended - j->limits.per_uid_history;
        keep -= a->trim;
    }
    while (keep > j->limits.history) {
        struct uidacct *big = NULL;
        for (size_t i = 0; i < j->n_accts; i++) {
            struct uidacct *a = &j->accts[i];
            if (a->ended > a->trim && (!big || a->ended - a->trim > big->ended - big->trim))
                big = a;
        }
        if (!big)
            break;
        /* Take from big down to the next largest in one step. */
        unsigned next = 0;
        for (size_t i = 0; i < j->n_accts; i++) {
            struct uidacct *a = &j->accts[i];
            if (a != big && a->ended - a->trim > next)
                next = a->ended - a->trim;
        }
        unsigned mine = big->ended - big->trim;
        unsigned take = mine - next > 0 ? mine - next : 1;
        if (take > keep - j->limits.history)
            take = keep - j->limits.history;
        big->trim += take;
        keep -= take;
    }
    return keep < n_ended(j) || bytes;
}

static bool in_engine(const struct job *jb) {
    for (size_t i = 0; i < jb->view.n_objects; i++)
        if (jb->objs[i].obj)
            return true;
    return false;
}

void rvd_jobs_pump(rvd_jobs *j, rv_engine *e) {
    struct job *starts = NULL, *cancels = NULL, *trimmed = NULL;
    struct jobject *release;

    rvd_cacheops_pump(j->cache, e); /* before the jobs: a removal never meets a job starting */

    pthread_mutex_lock(&j->lock);
    if (j->stopping) {
        pthread_mutex_unlock(&j->lock);
        return;
    }
    release = j->release;
    j->release = NULL;
    j->transfers = rv_engine_transfers(e);
    j->cache_bytes = rv_engine_cache_bytes(e);
    for (struct job *jb = j->head; j->n_want_cancel && jb; jb = jb->next)
        if (jb->want_cancel) {
            set_want_cancel(j, jb, false);
            jb->work_next = cancels;
            cancels = jb;
        }
    while (j->n_state[RVD_JOB_QUEUED] && j->n_state[RVD_JOB_RUNNING] < j->limits.max_running) {
        struct job *jb = next_queued(j);
        if (!jb || job_set_state(j, jb, RVD_JOB_RUNNING) != RVD_OK)
            break;
        jb->work_next = starts;
        starts = jb;
    }
    pthread_mutex_unlock(&j->lock);

    /* Engine calls, without the lock (the hooks take it). */
    for (struct jobject *o = release; o; o = o->release_next) {
        rv_engine_release(e, o->obj);
        o->obj = NULL;
        pthread_mutex_lock(&j->lock); /* readers look at data_fd */
        int fd = o->data_fd;
        o->data_fd = -1;
        pthread_mutex_unlock(&j->lock);
        if (fd >= 0)
            close(fd);
        jobject_close(j, o);
    }
    for (struct job *jb = cancels; jb; jb = jb->work_next)
        for (size_t i = 0; i < jb->view.n_objects; i++)
            if (jb->objs[i].obj)
                rv_engine_cancel(e, jb->objs[i].obj);
    /* starts is newest-picked first: start in the order they were picked. */
    struct job *ordered = NULL;
    while (starts) {
        struct job *jb = starts;
        starts = jb->work_next;
        jb->work_next = ordered;
        ordered = jb;
    }
    for (struct job *jb = ordered; jb; jb = jb->work_next)
        job_start(j, e, jb);

    /* The history: ended jobs beyond the limits go, oldest first (see
     * "Per uid" for whose). Only this thread frees jobs, and never one the
     * engine still holds. */
    pthread_mutex_lock(&j->lock);
    flush_locked(j); /* the last perform's events, and the starts' */
    if (plan_trim(j)) {
        struct job *tail = j->head;
        while (tail && tail->next)
            tail = tail->next;
        for (struct job *jb = tail; jb;) {
            struct job *prev = jb->prev;
            struct uidacct *a = is_ended(jb) ? acct_find(j, jb->owner.uid) : NULL;
            if (a && (a->trim || over_bytes(j, a)) && !in_engine(jb)) {
                if (a->trim)
                    a->trim--;
                if (jb->prev)
                    jb->prev->next = jb->next;
                else
                    j->head = jb->next;
                if (jb->next)
                    jb->next->prev = jb->prev;
                job_set_state(j, jb, JOB_ABSENT); /* a may go */
                jb->work_next = trimmed;
                trimmed = jb;
            }
            jb = prev;
        }
        for (size_t i = 0; i < j->n_accts; i++)
            j->accts[i].trim = 0; /* those still in the engine: next time */
    }
    pthread_mutex_unlock(&j->lock);
    while (trimmed) {
        struct job *jb = trimmed;
        trimmed = jb->work_next;
        if (j->store)
            rvd_jobstore_remove(j->store, jb->id);
        for (size_t i = 0; j->reads_dirfd >= 0 && i < jb->view.n_objects; i++) {
            char *name = jb->objs[i].src->destination ? NULL : read_only_name(&jb->objs[i]);
            if (name)
                unlinkat(j->reads_dirfd, name, 0);
            free(name);
        }
        job_free(j, jb);
    }
}

void rvd_jobs_stop(rvd_jobs *j) {
    rvd_cacheops_stop(j->cache);
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    for (struct job *jb = j->head; jb; jb = jb->next)
        while (jb->subs) {
            struct sub *s = jb->subs;
            sub_unlink(j, jb, s);
            s->sink.end(s->sink.ctx, RVD_UNAVAILABLE,
                        "retrieverd is shutting down; the job continues when it restarts");
            free(s);
        }
    for (struct job *jb = j->head; jb; jb = jb->next)
        for (size_t i = 0; i < jb->view.n_objects; i++)
            readers_end(&jb->objs[i], false, RVD_UNAVAILABLE,
                        "retrieverd is shutting down; read again once it is back");
    pthread_mutex_unlock(&j->lock);
}

rvd_jobs *rvd_jobs_free(rvd_jobs *j) {
    if (!j)
        return NULL;
    rvd_jobs_stop(j);
    while (j->head) {
        struct job *jb = j->head;
        j->head = jb->next;
        job_free(j, jb);
    }
    if (j->reads_dirfd >= 0)
        close(j->reads_dirfd);
    free(j->dests);
    free(j->accts);
    j->cache = rvd_cacheops_free(j->cache);
    pthread_mutex_destroy(&j->lock);
    free(j);
    return NULL;
}
