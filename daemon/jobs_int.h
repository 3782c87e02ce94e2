/* jobs_int.h — what the job table's files share (jobs.h is the interface).
 *
 * The table is four files along its seams, all under the table's one lock
 * (jobs.h, "Threads"):
 *   jobs.c      the table: lookup, the dedupe key, a job's life from
 *               submission to trim, the RPC side, restoring from the store
 *   jobstate.c  the job state machine (rvd_job_set_state, the only writer
 *               of a job's state) and the counts it keeps: by state, and
 *               per uid for fairness; Stats
 *   jobsubs.c   subscribers and readers: the fan-out of events and of
 *               Read progress
 *   jobrun.c    the engine side (worker thread): the hooks, the pump,
 *               started objects by destination
 *
 * Ownership: the table owns its jobs (a list, newest first); a job owns its
 * request (rvd_download_req), its objects' views and strings, and its
 * subscriber records (not the sinks they point at). An object in the engine
 * is owned by the engine; the job's record points at it until the pump
 * releases it, and the engine's user_data points back at the record. Only
 * the worker thread frees jobs (in the pump, or in rvd_jobs_free after the
 * engine is gone).
 */
#ifndef RVD_JOBS_INT_H
#define RVD_JOBS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "asuser.h"
#include "cacheops.h"
#include "jobs.h"

/* A job's state before it enters the table and after it leaves (rvd_job_set_state). */
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
    char *final_name;      /* name_from_disposition: the name the engine
                              delivered to, when not dest_name; NULL */
    char *final_dest;      /* ... and the caller's path of it (the view's
                              destination from then on); NULL */
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
                          starts (rvd_jobs_read_ca); NULL before, or without ca_file */
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
    /* Jobs in the table by state ([0] unused): written by rvd_job_set_state
     * alone, with the per-uid counts (struct uidacct). */
    unsigned n_state[RVD_JOB_CANCELLED + 1];
    unsigned n_subs;        /* the jobs' subscribers: rvd_subs_add and rvd_subs_unlink only */
    unsigned n_want_cancel; /* jobs with want_cancel set: rvd_job_set_want_cancel only */
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

struct uidacct {
    uid_t uid;
    unsigned queued, running, ended;
    /* Bytes of the requests its jobs hold (as received; decoded, they
     * are about as large): of queued and running jobs, of ended ones. */
    uint64_t live_bytes, ended_bytes;
    unsigned trim; /* the pump's: ended jobs of this uid to trim now */
};

static inline int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline bool state_ended(rvd_job_state s) {
    return s >= RVD_JOB_DONE;
}

static inline bool is_ended(const struct job *jb) {
    return state_ended(jb->view.state);
}

/* Root and the daemon's own uid are held only to the global limits (see
 * "Per uid" in jobstate.c). */
static inline bool uid_exempt(uid_t uid) {
    return uid == 0 || uid == geteuid();
}

/* --- jobstate.c: the job state machine and the counts kept by it ------- */

struct uidacct *rvd_acct_find(const rvd_jobs *j, uid_t uid);
struct uidacct *rvd_acct_get(rvd_jobs *j, uid_t uid);
void rvd_acct_move(rvd_jobs *j, uid_t uid, uint64_t bytes, rvd_job_state from, rvd_job_state to);
bool rvd_acct_over_bytes(const rvd_jobs *j, const struct uidacct *a);
bool rvd_acct_may_start(const rvd_jobs *j, const struct job *jb);
bool rvd_acct_plan_trim(rvd_jobs *j);
rvd_code rvd_job_set_state(rvd_jobs *j, struct job *jb, rvd_job_state to);
void rvd_job_set_want_cancel(rvd_jobs *j, struct job *jb, bool want);

/* --- jobsubs.c: subscribers and readers --------------------------------- */

void rvd_subs_emit_to(rvd_jobs *j, struct sub *s, const rvd_event *ev);
void rvd_subs_flush(rvd_jobs *j);
void rvd_subs_emit(rvd_jobs *j, struct job *jb, rvd_event_kind kind, const struct jobject *o,
                   const rv_retry_info *retry);
void rvd_subs_replay(rvd_jobs *j, const struct job *jb, struct sub *s);
struct sub *rvd_subs_add(rvd_jobs *j, struct job *jb, const rvd_sink *sink, uid_t uid);
void rvd_subs_unlink(rvd_jobs *j, struct job *jb, struct sub *s);
void rvd_subs_end_all(rvd_jobs *j, struct job *jb, rvd_code code, const char *message);
void rvd_readers_notify(struct jobject *o);
void rvd_readers_end(struct jobject *o, bool done, rvd_code code, const char *why);

/* --- jobrun.c: the engine side ------------------------------------------ */

void rvd_jobject_close(rvd_jobs *j, struct jobject *o);

/* --- jobs.c: the table and the RPC side --------------------------------- */

void rvd_job_free(rvd_jobs *j, struct job *jb);
void rvd_object_ended(rvd_jobs *j, struct jobject *o, rv_state state, int err,
                      const char *detail);
int rvd_jobs_read_ca(const rvd_peer *caller, const char *path, char **ret_pem,
                     char **ret_error);
char *rvd_read_only_name(const struct jobject *o);

#endif
