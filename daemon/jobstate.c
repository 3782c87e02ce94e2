/* jobstate.c — the job state machine and the counts kept by it (see
 * jobs_int.h for how the table's files divide the work).
 */
#include "jobs_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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

struct uidacct *rvd_acct_find(const rvd_jobs *j, uid_t uid) {
    for (size_t i = 0; i < j->n_accts; i++)
        if (j->accts[i].uid == uid)
            return &j->accts[i];
    return NULL;
}

/* uid's entry, made when missing; NULL on ENOMEM. */
struct uidacct *rvd_acct_get(rvd_jobs *j, uid_t uid) {
    struct uidacct *a = rvd_acct_find(j, uid);
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
 * exists whenever from is set; adding (from 0) needs rvd_acct_get to have
 * succeeded for the uid. */
void rvd_acct_move(rvd_jobs *j, uid_t uid, uint64_t bytes, rvd_job_state from,
                      rvd_job_state to) {
    struct uidacct *a = rvd_acct_find(j, uid);
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
 * table, goes through rvd_job_set_state, which checks it against this table
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
 * it has been trimmed, just before rvd_job_free.
 * ------------------------------------------------------------------------ */

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
 * entering the table (from JOB_ABSENT) needs rvd_acct_get to have succeeded
 * for its owner. Under the lock. */
rvd_code rvd_job_set_state(rvd_jobs *j, struct job *jb, rvd_job_state to) {
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
    rvd_acct_move(j, jb->owner.uid, jb->req_bytes, from, to);
    jb->view.state = to;
    return RVD_OK;
}

/* Ended jobs in the table (the history), whatever their outcome. */
static unsigned n_ended(const rvd_jobs *j) {
    return j->n_state[RVD_JOB_DONE] + j->n_state[RVD_JOB_FAILED] +
           j->n_state[RVD_JOB_CANCELLED];
}

/* Mark jb for the pump to cancel (its objects in the engine), or unmark
 * it; keeps n_want_cancel. Under the lock. */
void rvd_job_set_want_cancel(rvd_jobs *j, struct job *jb, bool want) {
    if (jb->want_cancel == want)
        return;
    jb->want_cancel = want;
    if (want)
        j->n_want_cancel++;
    else
        j->n_want_cancel--;
}

/* Whether a's requests in all are over per_uid_request_bytes. */
bool rvd_acct_over_bytes(const rvd_jobs *j, const struct uidacct *a) {
    return j->limits.per_uid_request_bytes && !uid_exempt(a->uid) &&
           a->live_bytes + a->ended_bytes > j->limits.per_uid_request_bytes;
}

/* Whether jb's owner may start another job now. */
bool rvd_acct_may_start(const rvd_jobs *j, const struct job *jb) {
    if (uid_exempt(jb->owner.uid))
        return true;
    const struct uidacct *a = rvd_acct_find(j, jb->owner.uid);
    return !a || a->running < j->limits.per_uid_running;
}

/* How many ended jobs each uid loses now (uidacct.trim): what it holds
 * beyond per_uid_history (root and the daemon's uid: no such limit), then,
 * while the history is still over job_history, one more at a time from
 * whichever uid would keep the most. Besides, a uid over
 * per_uid_request_bytes loses its oldest ended jobs until it is not (or
 * has none): the pump's walk checks that as it goes. Whether anything is
 * to go. Under the lock. */
bool rvd_acct_plan_trim(rvd_jobs *j) {
    unsigned keep = n_ended(j);
    bool bytes = false;
    for (size_t i = 0; i < j->n_accts; i++)
        bytes |= j->accts[i].ended && rvd_acct_over_bytes(j, &j->accts[i]);
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
