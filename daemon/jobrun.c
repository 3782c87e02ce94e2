/* jobrun.c — the job table's engine side, on the worker thread: the
 * engine hooks, the pump, and started objects by destination (see
 * jobs_int.h for how the table's files divide the work).
 */
#include "jobs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "asuser.h"
#include "log.h"

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
void rvd_jobject_close(rvd_jobs *j, struct jobject *o) {
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
    free(o->final_name);
    o->dest_name = o->engine_dest = o->engine_url = o->final_name = NULL;
}

/* ------------------------------------------------------------------------
 * Engine hooks (worker thread, inside rv_engine_perform or the pump's
 * engine calls; the lock is not held by the caller)
 * ------------------------------------------------------------------------ */

static char *hex32(uint32_t v) {
    return rvd_strdupf("%08x", (unsigned)v);
}

/* The engine delivered o to path ("/proc/self/fd/N/NAME", its directory
 * the one opened as the caller): when NAME is not dest_name, note it
 * (o->final_name) and make the caller's path of it, destination's
 * directory + "/" + NAME (*ret_dest, malloc'd). 0 (*ret_dest NULL: the
 * name asked for), or -ENOMEM. */
static int final_name(struct jobject *o, const char *path, char **ret_dest) {
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    *ret_dest = NULL;
    if (strcmp(name, o->dest_name) == 0)
        return 0;
    const char *dest = o->src->destination, *slash = strrchr(dest, '/');
    free(o->final_name);
    o->final_name = strdup(name);
    *ret_dest = rvd_strdupf("%.*s/%s", (int)(slash - dest), dest, name);
    return o->final_name && *ret_dest ? 0 : -ENOMEM;
}

/* detail (an engine message) with the pinned directory's path
 * "/proc/self/fd/N/" (the engine's name for the caller's directory, which
 * means nothing to the caller) written as destination's directory, when
 * it is there; malloc'd, or NULL (none there, or no memory: detail as it
 * is). */
static char *caller_detail(const struct jobject *o, const char *detail) {
    const char *dest = o->src->destination, *slash = dest ? strrchr(dest, '/') : NULL;
    if (!slash || !o->engine_dest || !o->dest_name)
        return NULL;
    size_t pin_len = strlen(o->engine_dest) - strlen(o->dest_name); /* ends in '/' */
    char *pin = strndup(o->engine_dest, pin_len);
    const char *at = pin ? strstr(detail, pin) : NULL;
    char *out = NULL;
    if (at)
        out = rvd_strdupf("%.*s%.*s/%s", (int)(at - detail), detail, (int)(slash - dest), dest,
                          at + pin_len);
    free(pin);
    return out;
}

/* An object named by the server is about to replace a file at path: only
 * when its caller may replace that file (asuser.h: a regular file the
 * caller may write, the sticky directory's rule), so the daemon's rights
 * never replace what its caller could not. */
static bool on_may_replace(void *ud, rv_object *obj, const char *path) {
    (void)ud;
    struct jobject *o = rv_object_user_data(obj);
    const char *name = strrchr(path, '/');
    char *err = NULL;
    int r = rvd_asuser_may_replace(&o->job->owner, o->dirfd, name ? name + 1 : path, &err);
    if (r < 0)
        rvd_log_info("job %s: not replacing a file: %s", o->job->id,
                     err ? err : strerror(-r));
    free(err);
    return r == 0;
}

static void on_state(void *ud, rv_object *obj, rv_state state) {
    rvd_jobs *j = ud;
    struct jobject *o = rv_object_user_data(obj);
    struct job *jb = o->job;

    /* Work outside the lock first: the name the engine delivered to (the
     * server's, when it chose one), and the delivered file to its owner. */
    char *give_error = NULL, *final_dest = NULL;
    if (state == RV_STATE_DONE && o->src->name_from_disposition &&
        final_name(o, rv_object_path(obj), &final_dest) < 0)
        give_error = rvd_strdupf("out of memory");
    if (state == RV_STATE_DONE && o->src->destination && !give_error &&
        rvd_asuser_give(&jb->owner, o->dirfd, o->final_name ? o->final_name : o->dest_name,
                        &give_error) < 0)
        state = RV_STATE_FAILED;
    if (give_error)
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
    if (final_dest) { /* the view's from now on, and the job's to free */
        free(o->final_dest);
        o->final_dest = final_dest;
        jb->views[o->index].destination = final_dest;
        final_dest = NULL;
    }
    if (j->stopping) /* the shutdown's cancellations: the job resumes later */
        goto out;
    rvd_object_view *v = &jb->views[o->index];
    rv_object_progress(obj, &v->progress);
    if (!rv_state_is_terminal(state)) {
        v->state = state;
        if (state != RV_STATE_QUEUED && !o->started) {
            o->started = true;
            v->resumed_bytes = rv_object_durable(obj); /* kept for a late Watch */
            rvd_subs_emit(j, jb, RVD_EV_STARTED, o, NULL);
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
        rvd_subs_emit(j, jb, RVD_EV_STARTED, o, NULL);
    }
    o->release_next = j->release;
    j->release = o;
    if (give_error) {
        rvd_object_ended(j, o, RV_STATE_FAILED, RV_E_DEST_UNWRITABLE, give_error);
    } else {
        char *shown = caller_detail(o, rv_object_error_detail(obj));
        rvd_object_ended(j, o, state, rv_object_error(obj),
                         shown ? shown : rv_object_error_detail(obj));
        free(shown);
    }
out:
    pthread_mutex_unlock(&j->lock);
    free(give_error);
    free(final_dest);
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
        rvd_subs_emit(j, o->job, RVD_EV_PROGRESS, o, NULL);
        o->ready = ready;
        if (restarts != o->restarts)
            rvd_readers_end(o, false, RVD_ABORTED, "the object changed on the origin while it "
                                               "was read; read it again");
        else if (o->readers)
            rvd_readers_notify(o);
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
        rvd_subs_emit(j, o->job, RVD_EV_RETRYING, o, r);
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
    rvd_subs_flush(j);
    pthread_mutex_unlock(&j->lock);
}

static const rv_hooks hooks = {
    .on_state = on_state,
    .on_progress = on_progress,
    .on_retry = on_retry,
    .on_notice = on_notice,
    .on_wait = on_wait,
    .may_replace = on_may_replace,
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
        o->dest_name = rvd_read_only_name(o);
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
        /* The server's name, in the directory opened as the caller; an
         * existing file there is kept (no_replace), or replaced only when
         * the caller may (on_may_replace). */
        .name_from_disposition = src->name_from_disposition,
        .no_replace = src->name_from_disposition && o->job->req->no_replace,
        /* Never the daemon's own environment: the caller's proxy or none
         * (""), and the caller's exceptions or none. */
        .proxy = strncmp(src->url_key, "https:", 6) == 0
                     ? (o->job->req->https_proxy ? o->job->req->https_proxy : "")
                     : (o->job->req->http_proxy ? o->job->req->http_proxy : ""),
        .noproxy = o->job->req->no_proxy ? o->job->req->no_proxy : "",
    };
    /* The caller's S3 endpoint and credentials, from the request only:
     * the daemon has none of its own to lend. */
    const rvd_download_req *dr = o->job->req;
    rv_s3_params s3 = {.endpoint_url = dr->s3_endpoint, .region = dr->s3_region,
                       .path_style = dr->s3_path_style, .access_key_id = dr->s3_key_id,
                       .secret_access_key = dr->s3_secret, .session_token = dr->s3_token};
    if (strncmp(src->url_key, "s3:", 3) == 0)
        req.s3 = &s3;
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
        ca_r = rvd_jobs_read_ca(&jb->owner, jb->req->ca_file, &jb->ca_pem, &ca_err);
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
        rvd_jobject_close(j, o);
        pthread_mutex_lock(&j->lock);
        if (!j->stopping)
            rvd_object_ended(j, o, RV_STATE_FAILED, err, detail);
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
        if (jb->view.state == RVD_JOB_QUEUED && rvd_acct_may_start(j, jb) &&
            (!best || jb->priority > best->priority ||
             (jb->priority == best->priority && jb->seq < best->seq)))
            best = jb;
    return best;
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
            rvd_job_set_want_cancel(j, jb, false);
            jb->work_next = cancels;
            cancels = jb;
        }
    while (j->n_state[RVD_JOB_QUEUED] && j->n_state[RVD_JOB_RUNNING] < j->limits.max_running) {
        struct job *jb = next_queued(j);
        if (!jb || rvd_job_set_state(j, jb, RVD_JOB_RUNNING) != RVD_OK)
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
        rvd_jobject_close(j, o);
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
    rvd_subs_flush(j); /* the last perform's events, and the starts' */
    if (rvd_acct_plan_trim(j)) {
        struct job *tail = j->head;
        while (tail && tail->next)
            tail = tail->next;
        for (struct job *jb = tail; jb;) {
            struct job *prev = jb->prev;
            struct uidacct *a = is_ended(jb) ? rvd_acct_find(j, jb->owner.uid) : NULL;
            if (a && (a->trim || rvd_acct_over_bytes(j, a)) && !in_engine(jb)) {
                if (a->trim)
                    a->trim--;
                if (jb->prev)
                    jb->prev->next = jb->next;
                else
                    j->head = jb->next;
                if (jb->next)
                    jb->next->prev = jb->prev;
                rvd_job_set_state(j, jb, JOB_ABSENT); /* a may go */
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
            char *name = jb->objs[i].src->destination ? NULL : rvd_read_only_name(&jb->objs[i]);
            if (name)
                unlinkat(j->reads_dirfd, name, 0);
            free(name);
        }
        rvd_job_free(j, jb);
    }
}

void rvd_jobs_stop(rvd_jobs *j) {
    rvd_cacheops_stop(j->cache);
    pthread_mutex_lock(&j->lock);
    j->stopping = true;
    for (struct job *jb = j->head; jb; jb = jb->next)
        rvd_subs_end_all(j, jb, RVD_UNAVAILABLE,
                         "retrieverd is shutting down; the job continues when it restarts");
    for (struct job *jb = j->head; jb; jb = jb->next)
        for (size_t i = 0; i < jb->view.n_objects; i++)
            rvd_readers_end(&jb->objs[i], false, RVD_UNAVAILABLE,
                        "retrieverd is shutting down; read again once it is back");
    pthread_mutex_unlock(&j->lock);
}
