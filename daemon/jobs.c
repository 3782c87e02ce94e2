/* jobs.c — the job table: lookup, the dedupe key, a job's life from
 * submission to trim, and the RPC side (see jobs.h for the model and the
 * threads, jobs_int.h for how the table's files divide the work).
 *
 * Sections: jobs and their views · the RPC side · restoring from the store.
 */
#include "jobs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "asuser.h"
#include "jobstore.h"
#include "log.h"

/* ------------------------------------------------------------------------
 * Jobs and their views
 * ------------------------------------------------------------------------ */

static bool may_see(const rvd_peer *caller, const struct job *jb) {
    return caller->uid == 0 || caller->uid == geteuid() || caller->uid == jb->owner.uid;
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
    fprintf(f, "%u\nca:%d:%s\n%u:%u:%u:%u:%llu\nproxy:%s\ns3:%s", (unsigned)uid, req->ca_only,
            req->ca_file ? req->ca_file : "", req->max_attempts, req->connect_timeout_ms,
            req->stall_timeout_ms, req->connect_retry_ms,
            (unsigned long long)req->max_bytes_per_sec, req->proxy_digest,
            req->has_s3 ? req->s3_digest : "");
    for (size_t i = 0; i < req->n_sources; i++) {
        const rvd_source *s = &req->sources[i];
        fprintf(f, "\n%s\n%s\n%s\n%s\n%d", s->url_key, s->destination ? s->destination : "",
                s->sha256 ? s->sha256 : "", s->headers_digest, s->name_from_disposition);
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
char *rvd_read_only_name(const struct jobject *o) {
    return rvd_strdupf("%s-%u", o->job->id, (unsigned)o->index);
}

void rvd_job_free(rvd_jobs *j, struct job *jb) {
    if (!jb)
        return;
    for (size_t i = 0; jb->objs && i < jb->view.n_objects; i++) {
        struct jobject *o = &jb->objs[i];
        rvd_jobject_close(j, o);
        free(o->sha256);
        free(o->crc32c);
        free(o->error_detail);
        free(o->final_dest);
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
        rvd_job_free(NULL, jb); /* no object was set up yet */
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
    jb->view.state = JOB_ABSENT; /* until it enters the table (rvd_job_set_state) */
    jb->view.objects = jb->views;
    jb->view.n_objects = n;
    jb->view.created_ms = now_ms();
    return jb;
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
    rvd_job_set_state(j, jb, failed      ? RVD_JOB_FAILED
                         : cancelled ? RVD_JOB_CANCELLED
                                     : RVD_JOB_DONE);
    jb->view.ended_ms = now_ms();
    /* Send what the subscribers were given (the last object's Completed
     * among it) before the store write, which takes milliseconds for a
     * job of many objects; the streams' end still waits for the write, so
     * a caller that sees its stream end finds the outcome on disk. */
    rvd_subs_flush(j);
    persist_end(j, jb);
    rvd_job_set_want_cancel(j, jb, false);
    rvd_subs_end_all(j, jb, RVD_OK, NULL);
}

/* Record an object's end (under the lock) and tell the subscribers. */
void rvd_object_ended(rvd_jobs *j, struct jobject *o, rv_state state, int err,
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
    rvd_subs_emit(j, jb, state == RV_STATE_DONE        ? RVD_EV_COMPLETED
             : state == RV_STATE_CANCELLED ? RVD_EV_CANCELLED
                                           : RVD_EV_FAILED,
         o, NULL);
    if (state == RV_STATE_DONE)
        o->ready = v->progress.bytes_done;
    rvd_readers_end(o, state == RV_STATE_DONE, RVD_FAILED_PRECONDITION,
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
int rvd_jobs_read_ca(const rvd_peer *caller, const char *path, char **ret_pem, char **ret_error) {
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
            /* A name the server gives instead is checked when the engine
             * chooses it, at delivery (rv_request.no_replace). */
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
        int r = rvd_jobs_read_ca(caller, req->ca_file, &pem, &err);
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
            struct sub *s = rvd_subs_add(j, jb, sink, caller->uid);
            if (!s)
                goto nomem;
            rvd_subs_replay(j, jb, s);
            rvd_subs_flush(j);
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
    struct uidacct *acct = rvd_acct_get(j, caller->uid);
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
    /* On disk before its id is given out: the id works across restarts.
     * Without S3 credentials: those never leave memory. */
    uint8_t *kept = NULL;
    size_t kept_len = 0;
    int kr = j->store && jb->req->has_s3 ? rvd_request_unsecret(raw, raw_len, &kept, &kept_len)
                                         : 0;
    rvd_stored_job row = {.id = jb->id, .seq = jb->seq, .owner = *caller,
                          .detached = !sink, .state = RVD_JOB_QUEUED,
                          .created_ms = jb->view.created_ms, .request = kept ? kept : raw,
                          .request_len = kept ? kept_len : raw_len};
    kr = kr < 0 || (j->store && rvd_jobstore_add(j->store, &row) < 0) ? -1 : 0;
    free(kept);
    if (kr < 0) {
        rvd_job_free(j, jb);
        code = RVD_UNAVAILABLE;
        *ret_msg = rvd_strdupf("cannot record the job in the state directory; try again");
        goto fail_acct;
    }
    struct sub *s = NULL;
    if (sink && !(s = rvd_subs_add(j, jb, sink, caller->uid))) {
        if (j->store)
            rvd_jobstore_remove(j->store, jb->id);
        rvd_job_free(j, jb);
        goto nomem_acct;
    }
    jb->next = j->head;
    if (j->head)
        j->head->prev = jb;
    j->head = jb;
    rvd_job_set_state(j, jb, RVD_JOB_QUEUED);
    if (s) {
        rvd_subs_replay(j, jb, s);
        rvd_subs_flush(j);
    }
    memcpy(ret_id, jb->id, sizeof(jb->id));
    pthread_mutex_unlock(&j->lock);
    wake(j);
    return RVD_OK;

nomem_acct:
    code = RVD_INTERNAL;
    *ret_msg = rvd_strdupf("out of memory");
fail_acct:
    rvd_acct_move(j, caller->uid, 0, 0, 0); /* drop the entry made for nothing */
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
        } else if (!rvd_subs_add(j, jb, sink, caller->uid)) {
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
            rvd_object_ended(j, &jb->objs[i], RV_STATE_CANCELLED, RV_E_CANCELLED,
                         "cancelled: its last subscriber left");
    } else {
        rvd_job_set_want_cancel(j, jb, true);
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
            rvd_subs_unlink(j, jb, s);
            free(s);
            found = true;
            stops = maybe_stop(j, jb);
            break;
        }
    rvd_subs_flush(j);
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
            rvd_subs_emit_to(j, mine, &ev);
        }
        rvd_subs_unlink(j, jb, mine);
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
    rvd_subs_flush(j);
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
    if (v->state == RV_STATE_DONE && (v->destination || o->data_fd < 0)) {
        /* Delivered: its bytes are the destination's, read as the caller,
         * whether or not the engine has released its own file yet (that
         * happens a moment after the job ends; a Read must not answer
         * differently in that moment). A read-only object's copy is the
         * daemon's, through data_fd while it is open. */
        int fd = -1;
        char *err = NULL, *name = NULL;
        if (!v->destination) { /* Read-only: the daemon's own copy */
            name = rvd_read_only_name(o);
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

static bool listed(const rvd_peer *caller, unsigned states_mask, const struct job *jb) {
    return may_see(caller, jb) && (!states_mask || (states_mask & (1u << jb->view.state)));
}

rvd_code rvd_jobs_list(rvd_jobs *j, const rvd_peer *caller, unsigned states_mask,
                       unsigned limit,
                       void (*fn)(void *ud, const rvd_job_view *const *views, size_t n),
                       void *ud) {
    size_t n = 0;
    pthread_mutex_lock(&j->lock);
    for (struct job *jb = j->head; jb && n < limit; jb = jb->next)
        n += listed(caller, states_mask, jb);
    const rvd_job_view **views = malloc((n ? n : 1) * sizeof(*views));
    if (!views) {
        pthread_mutex_unlock(&j->lock);
        return RVD_INTERNAL;
    }
    size_t k = 0;
    for (struct job *jb = j->head; jb && k < n; jb = jb->next)
        if (listed(caller, states_mask, jb))
            views[k++] = &jb->view;
    fn(ud, views, n);
    pthread_mutex_unlock(&j->lock);
    free(views);
    return RVD_OK;
}

void rvd_jobs_set_cache_quota(rvd_jobs *j, uint64_t quota) {
    pthread_mutex_lock(&j->lock);
    j->cache_quota = quota;
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
    if (!rvd_acct_get(j, sj->owner.uid)) {
        rvd_download_req_free(req);
        rs->bad++;
        return;
    }
    struct job *jb = job_new(&sj->owner, req, make_key(sj->owner.uid, req));
    if (!jb) {
        rvd_acct_move(j, sj->owner.uid, 0, 0, 0);
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
        rvd_job_free(j, jb); /* ended, but in no ended state: not a row this daemon wrote */
        rvd_acct_move(j, sj->owner.uid, 0, 0, 0);
        rs->bad++;
        return;
    }
    if (sj->ended_ms) {
        restore_outcome(jb, sj);
        jb->view.ended_ms = sj->ended_ms;
        jb->view.detached = sj->detached;
        rvd_job_set_state(j, jb, (rvd_job_state)sj->state);
        rs->ended++;
    } else {
        /* Its callers are gone; it carries on by itself. */
        jb->view.detached = true;
        rvd_job_set_state(j, jb, RVD_JOB_QUEUED);
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

rvd_jobs *rvd_jobs_free(rvd_jobs *j) {
    if (!j)
        return NULL;
    rvd_jobs_stop(j);
    while (j->head) {
        struct job *jb = j->head;
        j->head = jb->next;
        rvd_job_free(j, jb);
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
