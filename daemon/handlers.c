/* handlers.c — retriever.v1.Retriever's methods, one thin function each
 * (see server_int.h for how the server's files divide the work).
 */
#include "server_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "request.h"

/* ------------------------------------------------------------------------
 * Handlers: one small function per method — decode, call the table,
 * encode, nothing more.
 * ------------------------------------------------------------------------ */

/* A subscription (Download, Watch, Read, a cache RPC) the table or the
 * cache queue refused: it does not hold the call, whose stream ends with
 * code and msg (NULL: out of memory). Takes msg. */
static void subscribe_refused(struct call *c, rvd_code code, char *msg) {
    pthread_mutex_lock(&c->lock);
    c->subscribed = false;
    rvd_stream_finish(c, (grpc_status_code)code, msg ? msg : "out of memory");
    pthread_mutex_unlock(&c->lock);
    free(msg);
}

/* Pack msg into r->response and answer OK. */
static void reply_message(struct reply *r, const ProtobufCMessage *msg) {
    r->response = rvd_pack(msg);
    r->code = GRPC_STATUS_OK;
}

/* A refused request: code and its sentence (NULL: out of memory). */
static void reply_refused(struct reply *r, rvd_code code, char *msg) {
    rvd_reply_error(r, (grpc_status_code)code, msg ? msg : rvd_strdupf("out of memory"));
}

static void reply_decode_error(struct reply *r, int err, char *msg) {
    reply_refused(r, err == -ENOMEM ? RVD_INTERNAL : RVD_INVALID_ARGUMENT, msg);
}

static void handle_ping(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_PING, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    Retriever__V1__PingResponse resp = RETRIEVER__V1__PING_RESPONSE__INIT;
    resp.version = c->server->version;
    resp.api_version = RVD_API_VERSION;
    reply_message(r, &resp.base);
}

static void status_fn(void *ud, const rvd_job_view *v) {
    struct reply *r = ud;
    r->response = rvd_pack_job(v, NULL);
}

static void handle_status(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char id[RVD_JOB_ID_LEN + 1];
    char *msg = NULL;
    int e = rvd_request_job_id(RVD_REQ_STATUS, req, len, id, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    rvd_code code = rvd_jobs_status(c->server->jobs, &c->peer, id, status_fn, r, &msg);
    if (code != RVD_OK)
        reply_refused(r, code, msg);
}

/* The listed jobs, packed under the table's lock (the views are valid
 * only there). */
static void list_fn(void *ud, const rvd_job_view *const *views, size_t n) {
    struct reply *r = ud;
    r->response = rvd_pack_list(views, n);
}

static void handle_list(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    rvd_list_req lr;
    char *msg = NULL;
    int e = rvd_request_list(req, len, &lr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    if (rvd_jobs_list(c->server->jobs, &c->peer, lr.states, lr.limit, list_fn, r) != RVD_OK ||
        !r->response)
        reply_refused(r, RVD_INTERNAL, NULL);
}

static void handle_cancel(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char id[RVD_JOB_ID_LEN + 1];
    char *msg = NULL;
    int e = rvd_request_job_id(RVD_REQ_CANCEL, req, len, id, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    rvd_job_state state = 0;
    unsigned subs = 0;
    rvd_code code = rvd_jobs_cancel(c->server->jobs, &c->peer, id, &state, &subs, &msg);
    if (code != RVD_OK)
        return reply_refused(r, code, msg);
    Retriever__V1__CancelResponse resp = RETRIEVER__V1__CANCEL_RESPONSE__INIT;
    resp.state = (Retriever__V1__JobState)state;
    resp.subscribers = subs;
    reply_message(r, &resp.base);
}

static void handle_stats(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_STATS, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    rvd_jobs_stats st;
    rvd_jobs_stats_get(c->server->jobs, &st);
    Retriever__V1__StatsResponse resp = RETRIEVER__V1__STATS_RESPONSE__INIT;
    resp.active_jobs = st.running;
    resp.queued_jobs = st.queued;
    resp.rate_bps = st.rate_bps;
    resp.subscribers = st.subscribers;
    resp.connections = st.transfers;
    resp.bytes_from_origin = st.bytes_from_origin;
    resp.bytes_from_cache = st.bytes_from_cache;
    resp.cache_bytes = st.cache_bytes;
    resp.cache_quota = st.cache_quota;
    resp.done_jobs = st.done;
    resp.failed_jobs = st.failed;
    resp.cancelled_jobs = st.cancelled;
    reply_message(r, &resp.base);
}

static void handle_download(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    rvd_download_req *dr = NULL;
    char *msg = NULL;
    int e = rvd_request_download(req, len, &dr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    if (!rvd_stream_begin(c, r)) {
        rvd_download_req_free(dr);
        return;
    }
    bool detach = dr->detach;
    pthread_mutex_lock(&c->lock);
    c->subscribed = !detach;
    c->batch_events = dr->batch_events;
    pthread_mutex_unlock(&c->lock);
    /* Events may arrive (on the worker thread too) as soon as this
     * subscribes; the call's lock is not held across it. */
    rvd_code code = rvd_jobs_submit(c->server->jobs, &c->peer, dr, req, len,
                                    detach ? NULL : &c->sink, c->job_id, &msg);
    if (code != RVD_OK)
        return subscribe_refused(c, code, msg);
    if (detach) {
        rvd_event ev = {.kind = RVD_EV_ACCEPTED, .job_id = c->job_id, .time_ms = 0};
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        ev.time_ms = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
        pthread_mutex_lock(&c->lock);
        rvd_stream_push(c, rvd_pack_event(&ev));
        rvd_stream_finish(c, GRPC_STATUS_OK, NULL);
        pthread_mutex_unlock(&c->lock);
    }
}

static void handle_watch(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    rvd_watch_req wr;
    int e = rvd_request_watch(req, len, &wr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    memcpy(c->job_id, wr.job_id, sizeof(c->job_id));
    if (!rvd_stream_begin(c, r))
        return;
    pthread_mutex_lock(&c->lock);
    c->subscribed = true;
    c->batch_events = wr.batch_events;
    pthread_mutex_unlock(&c->lock);
    rvd_code code = rvd_jobs_watch(c->server->jobs, &c->peer, c->job_id, &c->sink, &msg);
    if (code != RVD_OK)
        subscribe_refused(c, code, msg);
}

static void handle_read(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    rvd_read_req rr;
    char *msg = NULL;
    int e = rvd_request_read(req, len, &rr, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    if (!rvd_stream_begin(c, r))
        return;
    memcpy(c->job_id, rr.job_id, sizeof(c->job_id));
    pthread_mutex_lock(&c->lock);
    c->reading = true;
    c->read_fd = -1;
    c->read_index = rr.object_index;
    c->read_off = rr.offset;
    c->reader = (rvd_reader){.notify = rvd_stream_read_notify, .ctx = c};
    c->subscribed = true;
    pthread_mutex_unlock(&c->lock);
    rvd_code code = rvd_jobs_read(c->server->jobs, &c->peer, c->job_id, rr.object_index,
                                  &c->reader, &msg);
    if (code != RVD_OK)
        subscribe_refused(c, code, msg);
}

/* The cacheops sink (the table's lock is held): one CacheEntry per entry. */
static void cache_entry(void *ctx, const rv_cache_entry *en, rv_cache_result res) {
    struct call *c = ctx;
    Retriever__V1__CacheEntry m = RETRIEVER__V1__CACHE_ENTRY__INIT;
    m.url = (char *)en->url;
    m.size_known = en->size_known;
    m.size = en->size;
    m.bytes = en->bytes;
    m.complete = en->complete;
    m.in_use = en->in_use;
    m.used_unix_ms = en->used_unix * 1000;
    m.keyed = en->keyed;
    m.result = (Retriever__V1__CacheResult)(res + 1); /* the proto's numbering */
    pthread_mutex_lock(&c->lock);
    if (!c->closed)
        rvd_stream_push(c, rvd_pack(&m.base));
    pthread_mutex_unlock(&c->lock);
}

static void cache_end(void *ctx, int code, const char *message) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->subscribed = false;
    rvd_stream_finish(c, (grpc_status_code)code, message);
    pthread_mutex_unlock(&c->lock);
}

/* CacheList, CacheRemove, CacheVerify: a stream the engine thread fills
 * (cacheops.h). rm is taken. */
static void cache_stream(struct call *c, rv_cache_op op, rvd_cache_remove_req *rm,
                         struct reply *r) {
    if (!rvd_stream_begin(c, r)) {
        rvd_cache_remove_req_clear(rm);
        return;
    }
    char *msg = NULL;
    pthread_mutex_lock(&c->lock);
    c->caching = true;
    c->subscribed = true;
    c->cache_sink = (rvd_cache_sink){.entry = cache_entry, .end = cache_end, .ctx = c};
    pthread_mutex_unlock(&c->lock);
    int code = rvd_cacheops_submit(rvd_jobs_cacheops(c->server->jobs), &c->peer, op, rm,
                                   &c->cache_sink, &msg);
    if (code != RVD_OK)
        subscribe_refused(c, (rvd_code)code, msg);
}

static void handle_cache_list(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_CACHE_LIST, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    cache_stream(c, RV_CACHE_LIST, NULL, r);
}

static void handle_cache_remove(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    rvd_cache_remove_req rm;
    int e = rvd_request_cache_remove(req, len, &rm, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    cache_stream(c, RV_CACHE_REMOVE, &rm, r);
}

static void handle_cache_verify(struct call *c, const uint8_t *req, size_t len, struct reply *r) {
    char *msg = NULL;
    int e = rvd_request_empty(RVD_REQ_CACHE_VERIFY, req, len, &msg);
    if (e < 0)
        return reply_decode_error(r, e, msg);
    cache_stream(c, RV_CACHE_VERIFY, NULL, r);
}

/* Methods implemented so far, by the name in the .proto. */
const struct rvd_handler rvd_handlers[] = {
    {"Ping", handle_ping},         {"Status", handle_status},     {"List", handle_list},
    {"Cancel", handle_cancel},     {"Stats", handle_stats},       {"Download", handle_download},
    {"Watch", handle_watch},       {"Read", handle_read},
    {"CacheList", handle_cache_list}, {"CacheRemove", handle_cache_remove},
    {"CacheVerify", handle_cache_verify},
};
const size_t rvd_n_handlers = sizeof(rvd_handlers) / sizeof(rvd_handlers[0]);
