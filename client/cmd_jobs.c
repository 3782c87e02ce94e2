/* cmd_jobs.c — status, list, cancel, stats and version through retrieverd
 * (cmd_jobs.h); watch is remote.c's (it shares download's event handling
 * and progress display).
 *
 * Output is built in an rvc_buf and written whole, so a failed call never
 * leaves half a line or half a JSON object on stdout.
 */
#include "cmd_jobs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "daemonfind.h"
#include "exitcode.h"
#include "fmt.h"
#include "json.h"
#include "remote.h"
#include "retriever/retriever.h"
#include "retriever/v1/retriever.pb-c.h"
#include "rpc.h"

#ifndef RETRIEVER_VERSION
#define RETRIEVER_VERSION "unknown"
#endif

#define PROG "retrieverctl"
#define OUT_MAX (64u << 20) /* one command's output; a List holds at most 10000 jobs */
#define URL_COLS 60         /* of a URL in list's text */

/* A session: the daemon's socket and a connection to it. */
struct session {
    char *path;
    rvc_rpc *conn;
    FILE *out, *err;
    bool json;
    rvc_buf buf; /* the output being built */
};

static void method_path(const char *method, char *buf, size_t n) {
    snprintf(buf, n, "/%s/%s", retriever__v1__retriever__descriptor.name, method);
}

/* The daemon's times are Unix milliseconds: compared with this clock. */
static int64_t wall_ms(void) {
    return (int64_t)rvc_clock_ms(CLOCK_REALTIME);
}

/* Find the daemon (autostart as asked) and connect. RVC_EXIT_OK, or the
 * exit code after one line on err. */
static int session_open(struct session *s, const char *socket_opt, bool autostart) {
    int code = RVC_EXIT_OK;
    s->path = rvc_daemon_find(socket_opt, autostart, s->err, &code);
    if (!s->path)
        return code;
    rvc_rpc_status st = {0};
    int rc = rvc_rpc_connect(s->path, RVC_CONNECT_TIMEOUT_MS, NULL, NULL, &s->conn, &st);
    if (rc != RVC_RPC_OK) {
        rvc_buf b;
        rvc_buf_init(&b, 4096);
        rvc_sanitize(&b, st.message ? st.message : rv_strerror(RV_E_NOMEM), 1024);
        fprintf(s->err, PROG ": %s\n", rvc_buf_str(&b));
        rvc_buf_done(&b);
        code = rvc_exit_for_rpc(rc);
    }
    rvc_rpc_status_done(&st);
    return code;
}

static void session_close(struct session *s) {
    rvc_rpc_free(s->conn);
    free(s->path);
    rvc_buf_done(&s->buf);
}

/* Write what was built to out; RVC_EXIT_OK or RVC_EXIT_INTERNAL/LOCAL. */
static int flush_out(struct session *s) {
    int e = rvc_buf_error(&s->buf);
    if (e != RV_OK) {
        fprintf(s->err, PROG ": %s\n", rv_strerror(e));
        return rvc_exit_code(e);
    }
    fputs(rvc_buf_str(&s->buf), s->out);
    rvc_buf_reset(&s->buf);
    return RVC_EXIT_OK;
}

/* One unary call; on failure one line on err (job_id, when the call names
 * one, turns NOT_FOUND/INVALID_ARGUMENT into "no job") and the exit code. */
static int call(struct session *s, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, const char *job_id,
                ProtobufCMessage **ret) {
    char m[128];
    rvc_rpc_status st = {0};
    method_path(method, m, sizeof(m));
    int rc = rvc_rpc_unary(s->conn, m, req, desc, RVC_CONNECT_TIMEOUT_MS, ret, &st);
    if (rc == RVC_RPC_OK) {
        rvc_rpc_status_done(&st);
        return RVC_EXIT_OK;
    }
    rvc_buf b;
    rvc_buf_init(&b, 8192);
    int code;
    if (job_id && (rc == RVC_RPC_NOT_FOUND || rc == RVC_RPC_INVALID_ARGUMENT)) {
        rvc_buf_puts(&b, PROG ": no job '");
        rvc_sanitize(&b, job_id, 80);
        rvc_buf_puts(&b, "' of yours ('" PROG " list --all' shows your jobs)");
        code = RVC_EXIT_USAGE;
    } else {
        rvc_buf_printf(&b, PROG ": %s failed: ", method);
        rvc_sanitize(&b, st.message ? st.message : "", 1024);
        rvc_buf_printf(&b, " (%s)", rvc_rpc_code_name(rc));
        code = rvc_exit_for_rpc(rc);
    }
    fprintf(s->err, "%s\n", rvc_buf_str(&b));
    rvc_buf_done(&b);
    rvc_rpc_status_done(&st);
    return code;
}

/* ------------------------------------------------------------------------
 * A job's figures
 * ------------------------------------------------------------------------ */

static const char *job_state_name(Retriever__V1__JobState st) {
    switch (st) {
    case RETRIEVER__V1__JOB_STATE__JOB_STATE_QUEUED: return "queued";
    case RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING: return "running";
    case RETRIEVER__V1__JOB_STATE__JOB_STATE_DONE: return "done";
    case RETRIEVER__V1__JOB_STATE__JOB_STATE_FAILED: return "failed";
    case RETRIEVER__V1__JOB_STATE__JOB_STATE_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

static const char *object_state_name(Retriever__V1__ObjectState st) {
    switch (st) {
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_QUEUED: return "queued";
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_RESOLVING: return "resolving";
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_DOWNLOADING: return "downloading";
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_VERIFYING: return "verifying";
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_DONE: return "done";
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_FAILED: return "failed";
    case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

/* Sums over a job's objects. total_known: every object's size is known. */
struct figures {
    uint64_t done, total;
    bool total_known;
    double rate;
    unsigned retries;
    size_t n_done; /* objects done */
    bool has_eta;
    uint64_t eta;
    double age_s;
};

static void obj_figures(const Retriever__V1__ObjectStatus *o, uint64_t *done, uint64_t *total,
                        bool *known, double *rate) {
    const Retriever__V1__Progress *p = o->progress;
    *done = p ? p->bytes_done : 0;
    *known = p && p->total_known;
    *total = *known ? p->bytes_total : 0;
    *rate = p ? p->rate_bps : 0;
}

static void job_figures(const Retriever__V1__Job *j, int64_t now_ms, struct figures *f) {
    memset(f, 0, sizeof(*f));
    f->total_known = true;
    for (size_t i = 0; i < j->n_objects; i++) {
        uint64_t d, t;
        bool k;
        double r;
        obj_figures(j->objects[i], &d, &t, &k, &r);
        f->done += d;
        f->total += t;
        f->total_known = f->total_known && k;
        f->rate += r;
        f->retries += j->objects[i]->retries;
        f->n_done += j->objects[i]->state == RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_DONE;
    }
    bool running = j->state == RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING;
    f->has_eta = running && f->total_known &&
                 rvc_eta_seconds(f->done, f->total, f->rate, &f->eta);
    f->age_s = j->created_unix_ms && now_ms > j->created_unix_ms
                   ? (double)(now_ms - j->created_unix_ms) / 1000.0
                   : 0;
}

/* ------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------ */

static void json_str_or_null(rvc_buf *b, const char *s) {
    if (s && *s)
        rvc_json_string(b, s);
    else
        rvc_buf_puts(b, "null");
}

static void json_error(rvc_buf *b, const Retriever__V1__Error *e) {
    if (!e) {
        rvc_buf_puts(b, "null");
        return;
    }
    rvc_buf_puts(b, "{\"code\":");
    json_str_or_null(b, e->code);
    rvc_buf_puts(b, ",\"message\":");
    json_str_or_null(b, e->message);
    rvc_buf_puts(b, ",\"detail\":");
    json_str_or_null(b, e->detail);
    rvc_buf_printf(b, ",\"retryable\":%s}", e->retryable ? "true" : "false");
}

static void json_object_status(rvc_buf *b, const Retriever__V1__ObjectStatus *o, bool running) {
    uint64_t d, t, eta;
    bool k;
    double r;
    obj_figures(o, &d, &t, &k, &r);
    rvc_buf_puts(b, "{\"url\":");
    rvc_json_string(b, o->url ? o->url : "");
    rvc_buf_puts(b, ",\"destination\":");
    json_str_or_null(b, o->destination);
    rvc_buf_printf(b, ",\"state\":\"%s\",\"bytes\":%llu,\"bytes_total\":",
                   object_state_name(o->state), (unsigned long long)d);
    if (k)
        rvc_buf_printf(b, "%llu", (unsigned long long)t);
    else
        rvc_buf_puts(b, "null");
    rvc_buf_printf(b, ",\"rate_bps\":%.0f,\"eta_seconds\":", r);
    if (running && k && rvc_eta_seconds(d, t, r, &eta))
        rvc_buf_printf(b, "%llu", (unsigned long long)eta);
    else
        rvc_buf_puts(b, "null");
    rvc_buf_printf(b, ",\"retries\":%u,\"sha256\":", (unsigned)o->retries);
    json_str_or_null(b, o->sha256);
    rvc_buf_puts(b, ",\"crc32c\":");
    json_str_or_null(b, o->crc32c);
    rvc_buf_puts(b, ",\"error\":");
    json_error(b, o->error);
    rvc_buf_putc(b, '}');
}

/* One job as a JSON object (no newline). */
static void json_job(rvc_buf *b, const Retriever__V1__Job *j, int64_t now_ms) {
    struct figures f;
    job_figures(j, now_ms, &f);
    rvc_buf_puts(b, "{\"id\":");
    rvc_json_string(b, j->id ? j->id : "");
    rvc_buf_printf(b,
                   ",\"state\":\"%s\",\"detached\":%s,\"subscribers\":%u,"
                   "\"created_unix_ms\":%lld,\"ended_unix_ms\":",
                   job_state_name(j->state), j->detached ? "true" : "false",
                   (unsigned)j->subscribers, (long long)j->created_unix_ms);
    if (j->ended_unix_ms)
        rvc_buf_printf(b, "%lld", (long long)j->ended_unix_ms);
    else
        rvc_buf_puts(b, "null");
    rvc_buf_printf(b, ",\"age_seconds\":%.1f,\"objects_done\":%zu,\"objects_total\":%zu,"
                      "\"bytes\":%llu,\"bytes_total\":",
                   f.age_s, f.n_done, j->n_objects, (unsigned long long)f.done);
    if (f.total_known)
        rvc_buf_printf(b, "%llu", (unsigned long long)f.total);
    else
        rvc_buf_puts(b, "null");
    rvc_buf_printf(b, ",\"rate_bps\":%.0f,\"eta_seconds\":", f.rate);
    if (f.has_eta)
        rvc_buf_printf(b, "%llu", (unsigned long long)f.eta);
    else
        rvc_buf_puts(b, "null");
    rvc_buf_printf(b, ",\"retries\":%u,\"objects\":[", f.retries);
    bool running = j->state == RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING;
    for (size_t i = 0; i < j->n_objects; i++) {
        if (i)
            rvc_buf_putc(b, ',');
        json_object_status(b, j->objects[i], running);
    }
    rvc_buf_puts(b, "]}");
}

/* ------------------------------------------------------------------------
 * Text
 * ------------------------------------------------------------------------ */

static const char *list_header =
    "ID                                STATE      OBJECTS  BYTES                 RATE        "
    "ETA     SUBS RETRIES AGE     URL\n";

/* One line of `list`. */
static void text_job_line(rvc_buf *b, const Retriever__V1__Job *j, int64_t now_ms) {
    struct figures f;
    char done[RVC_FMT_MAX], total[RVC_FMT_MAX], rate[RVC_FMT_MAX], eta[RVC_FMT_MAX],
        age[RVC_FMT_MAX], bytes[2 * RVC_FMT_MAX + 4], objs[48];
    job_figures(j, now_ms, &f);
    rvc_fmt_size(f.done, done);
    if (f.total_known) {
        rvc_fmt_size(f.total, total);
        snprintf(bytes, sizeof(bytes), "%s/%s", done, total);
    } else {
        snprintf(bytes, sizeof(bytes), "%s/?", done);
    }
    rvc_fmt_rate(f.rate, rate);
    if (f.has_eta)
        rvc_fmt_duration(f.eta, eta);
    else
        strcpy(eta, "-");
    rvc_fmt_duration((uint64_t)f.age_s, age);
    snprintf(objs, sizeof(objs), "%zu/%zu", f.n_done, j->n_objects);
    rvc_sanitize(b, j->id ? j->id : "", 32);
    rvc_buf_printf(b, "  %-10s %-8s %-21s %-11s %-7s %-4u %-7u %-7s ", job_state_name(j->state),
                   objs, bytes, rate, eta, (unsigned)j->subscribers, f.retries, age);
    if (j->n_objects)
        rvc_sanitize(b, j->objects[0]->url ? j->objects[0]->url : "", URL_COLS);
    if (j->n_objects > 1)
        rvc_buf_printf(b, " (+%zu)", j->n_objects - 1);
    rvc_buf_putc(b, '\n');
}

/* `status JOB`'s text: the job, then each object. */
static void text_job_detail(rvc_buf *b, const Retriever__V1__Job *j, int64_t now_ms) {
    struct figures f;
    char s1[RVC_FMT_MAX], s2[RVC_FMT_MAX];
    job_figures(j, now_ms, &f);
    rvc_buf_puts(b, "job ");
    rvc_sanitize(b, j->id ? j->id : "", 64);
    rvc_fmt_duration((uint64_t)f.age_s, s1);
    rvc_buf_printf(b, ": %s%s, %zu of %zu object%s done, %u subscriber%s, %u retr%s, age %s\n",
                   job_state_name(j->state), j->detached ? " (detached)" : "", f.n_done,
                   j->n_objects, j->n_objects == 1 ? "" : "s", (unsigned)j->subscribers,
                   j->subscribers == 1 ? "" : "s", f.retries, f.retries == 1 ? "y" : "ies", s1);
    bool running = j->state == RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING;
    for (size_t i = 0; i < j->n_objects; i++) {
        const Retriever__V1__ObjectStatus *o = j->objects[i];
        uint64_t d, t, eta;
        bool k;
        double r;
        obj_figures(o, &d, &t, &k, &r);
        rvc_buf_puts(b, "  ");
        rvc_sanitize(b, o->url ? o->url : "", 200);
        if (o->destination && *o->destination) {
            rvc_buf_puts(b, " -> ");
            rvc_sanitize(b, o->destination, 200);
        }
        rvc_fmt_size(d, s1);
        rvc_buf_printf(b, "\n    %-11s %s", object_state_name(o->state), s1);
        if (k) {
            rvc_fmt_size(t, s2);
            rvc_buf_printf(b, " of %s (%u%%)", s2, rvc_percent(d, t));
        }
        if (running && r > 0) {
            rvc_fmt_rate(r, s1);
            rvc_buf_printf(b, ", %s", s1);
            if (k && rvc_eta_seconds(d, t, r, &eta)) {
                rvc_fmt_duration(eta, s2);
                rvc_buf_printf(b, ", ETA %s", s2);
            }
        }
        if (o->retries)
            rvc_buf_printf(b, ", %u retr%s", (unsigned)o->retries, o->retries == 1 ? "y" : "ies");
        if (o->sha256 && *o->sha256) {
            rvc_buf_puts(b, ", sha256 ");
            rvc_sanitize(b, o->sha256, 64);
        }
        if (o->error) {
            rvc_buf_puts(b, "\n    error: ");
            rvc_sanitize(b, o->error->message ? o->error->message : "", 200);
            if (o->error->detail && *o->error->detail) {
                rvc_buf_puts(b, " (");
                rvc_sanitize(b, o->error->detail, 200);
                rvc_buf_putc(b, ')');
            }
            if (o->error->code && *o->error->code) {
                rvc_buf_puts(b, " [");
                rvc_sanitize(b, o->error->code, 40);
                rvc_buf_putc(b, ']');
            }
        }
        rvc_buf_putc(b, '\n');
    }
}

/* ------------------------------------------------------------------------
 * The commands
 * ------------------------------------------------------------------------ */

/* List with the given states (bits of JobState numbers; 0: all). */
static int list_jobs(struct session *s, unsigned states, Retriever__V1__ListResponse **ret) {
    Retriever__V1__ListRequest req = RETRIEVER__V1__LIST_REQUEST__INIT;
    Retriever__V1__JobState st[8];
    size_t n = 0;
    for (unsigned k = 1; k < 8; k++)
        if (states & (1u << k))
            st[n++] = (Retriever__V1__JobState)k;
    req.n_states = n;
    req.states = n ? st : NULL;
    req.limit = 10000;
    return call(s, "List", &req.base, &retriever__v1__list_response__descriptor, NULL,
                (ProtobufCMessage **)ret);
}

#define ACTIVE_STATES                                                                           \
    ((1u << RETRIEVER__V1__JOB_STATE__JOB_STATE_QUEUED) |                                      \
     (1u << RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING))

static int cmd_list(struct session *s, const rvc_jobs_opts *o) {
    Retriever__V1__ListResponse *resp = NULL;
    unsigned states = o->all ? 0 : o->states ? o->states : ACTIVE_STATES;
    int code = list_jobs(s, states, &resp);
    if (code != RVC_EXIT_OK)
        return code;
    int64_t now = wall_ms();
    if (!o->json && resp->n_jobs)
        rvc_buf_puts(&s->buf, list_header);
    for (size_t i = 0; i < resp->n_jobs; i++) {
        if (o->json) {
            json_job(&s->buf, resp->jobs[i], now);
            rvc_buf_putc(&s->buf, '\n');
        } else {
            text_job_line(&s->buf, resp->jobs[i], now);
        }
    }
    if (!o->json && !resp->n_jobs)
        fprintf(s->err, PROG ": no %sjobs\n", o->all ? "" : o->states ? "such " : "queued or running ");
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return flush_out(s);
}

static int cmd_status_job(struct session *s, const rvc_jobs_opts *o, const char *id) {
    Retriever__V1__StatusRequest req = RETRIEVER__V1__STATUS_REQUEST__INIT;
    Retriever__V1__Job *job = NULL;
    req.job_id = (char *)id;
    int code = call(s, "Status", &req.base, &retriever__v1__job__descriptor, id,
                    (ProtobufCMessage **)&job);
    if (code != RVC_EXIT_OK)
        return code;
    if (o->json) {
        json_job(&s->buf, job, wall_ms());
        rvc_buf_putc(&s->buf, '\n');
    } else {
        text_job_detail(&s->buf, job, wall_ms());
    }
    protobuf_c_message_free_unpacked(&job->base, NULL);
    return flush_out(s);
}

static int ping(struct session *s, Retriever__V1__PingResponse **ret) {
    Retriever__V1__PingRequest req = RETRIEVER__V1__PING_REQUEST__INIT;
    return call(s, "Ping", &req.base, &retriever__v1__ping_response__descriptor, NULL,
                (ProtobufCMessage **)ret);
}

/* `status` without JOB: which daemon, and the caller's active jobs. */
static int cmd_status_all(struct session *s, const rvc_jobs_opts *o) {
    Retriever__V1__PingResponse *pong = NULL;
    Retriever__V1__ListResponse *resp = NULL;
    int code = ping(s, &pong);
    if (code == RVC_EXIT_OK)
        code = list_jobs(s, ACTIVE_STATES, &resp);
    if (code != RVC_EXIT_OK)
        goto out;
    int64_t now = wall_ms();
    size_t running = 0;
    for (size_t i = 0; i < resp->n_jobs; i++)
        running += resp->jobs[i]->state == RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING;
    if (o->json) {
        rvc_buf_puts(&s->buf, "{\"socket\":");
        rvc_json_string(&s->buf, s->path);
        rvc_buf_puts(&s->buf, ",\"version\":");
        rvc_json_string(&s->buf, pong->version ? pong->version : "");
        rvc_buf_printf(&s->buf, ",\"api_version\":%u,\"running\":%zu,\"queued\":%zu,\"jobs\":[",
                       (unsigned)pong->api_version, running, resp->n_jobs - running);
        for (size_t i = 0; i < resp->n_jobs; i++) {
            if (i)
                rvc_buf_putc(&s->buf, ',');
            json_job(&s->buf, resp->jobs[i], now);
        }
        rvc_buf_puts(&s->buf, "]}\n");
    } else {
        rvc_buf_puts(&s->buf, "retrieverd ");
        rvc_sanitize(&s->buf, pong->version ? pong->version : "", 64);
        rvc_buf_printf(&s->buf, " (API %u) at ", (unsigned)pong->api_version);
        rvc_sanitize(&s->buf, s->path, 200);
        rvc_buf_printf(&s->buf, ": %zu of your jobs running, %zu queued\n", running,
                       resp->n_jobs - running);
        if (resp->n_jobs)
            rvc_buf_puts(&s->buf, list_header);
        for (size_t i = 0; i < resp->n_jobs; i++)
            text_job_line(&s->buf, resp->jobs[i], now);
    }
    code = flush_out(s);
out:
    if (pong)
        protobuf_c_message_free_unpacked(&pong->base, NULL);
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    return code;
}

static bool job_active(Retriever__V1__JobState st) {
    return st == RETRIEVER__V1__JOB_STATE__JOB_STATE_RUNNING ||
           st == RETRIEVER__V1__JOB_STATE__JOB_STATE_QUEUED;
}

/* Cancel job id for good, as far as this caller can. One Cancel detaches
 * the caller's newest subscription (a `watch` or a `download` of the same
 * user in another terminal); once the caller holds none, Cancel of its
 * detached job stops it (api.md, "Cancel"). So Cancel is repeated while
 * the job still runs, at most RVC_CANCEL_ROUNDS times; a refusal after the
 * first round (FAILED_PRECONDITION: the job is not detached and someone
 * else's subscriptions keep it) ends the rounds with the last answer.
 * RVC_EXIT_OK with *ret the last answer, or the first round's failure
 * (reported). */
#define RVC_CANCEL_ROUNDS 1000
static int cancel_one(struct session *s, const char *id, Retriever__V1__CancelResponse **ret) {
    Retriever__V1__CancelRequest req = RETRIEVER__V1__CANCEL_REQUEST__INIT;
    Retriever__V1__CancelResponse *resp = NULL;
    char m[128];
    req.job_id = (char *)id;
    int code = call(s, "Cancel", &req.base, &retriever__v1__cancel_response__descriptor, id,
                    (ProtobufCMessage **)&resp);
    if (code != RVC_EXIT_OK)
        return code;
    method_path("Cancel", m, sizeof(m));
    for (unsigned round = 1; round < RVC_CANCEL_ROUNDS && job_active(resp->state); round++) {
        ProtobufCMessage *next = NULL;
        rvc_rpc_status st = {0};
        int rc = rvc_rpc_unary(s->conn, m, &req.base, &retriever__v1__cancel_response__descriptor,
                               RVC_CONNECT_TIMEOUT_MS, &next, &st);
        rvc_rpc_status_done(&st);
        if (rc != RVC_RPC_OK)
            break;
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        resp = (Retriever__V1__CancelResponse *)next;
    }
    *ret = resp;
    return RVC_EXIT_OK;
}

/* Cancel each id; the exit code is the first failure's. */
static int cmd_cancel(struct session *s, const rvc_jobs_opts *o) {
    int first = RVC_EXIT_OK;
    for (size_t i = 0; i < o->n_ids; i++) {
        Retriever__V1__CancelResponse *resp = NULL;
        int code = cancel_one(s, o->ids[i], &resp);
        if (code != RVC_EXIT_OK) {
            if (o->json) {
                rvc_buf_puts(&s->buf, "{\"id\":");
                rvc_json_string(&s->buf, o->ids[i]);
                rvc_buf_printf(&s->buf, ",\"state\":null,\"subscribers\":null,\"error\":\"%s\"}\n",
                               code == RVC_EXIT_USAGE ? "no such job" : "cancel failed");
            }
            if (first == RVC_EXIT_OK)
                first = code;
        } else {
            const char *st = job_state_name(resp->state);
            if (o->json) {
                rvc_buf_puts(&s->buf, "{\"id\":");
                rvc_json_string(&s->buf, o->ids[i]);
                rvc_buf_printf(&s->buf, ",\"state\":\"%s\",\"subscribers\":%u,\"error\":null}\n",
                               st, (unsigned)resp->subscribers);
            } else {
                rvc_buf_puts(&s->buf, "job ");
                rvc_sanitize(&s->buf, o->ids[i], 64);
                if (job_active(resp->state))
                    rvc_buf_printf(&s->buf, ": left; it goes on %s for %u other subscriber%s\n",
                                   st, (unsigned)resp->subscribers,
                                   resp->subscribers == 1 ? "" : "s");
                else
                    rvc_buf_printf(&s->buf, ": %s\n", st);
            }
            protobuf_c_message_free_unpacked(&resp->base, NULL);
        }
        int fc = flush_out(s);
        if (first == RVC_EXIT_OK)
            first = fc;
    }
    return first;
}

static int cmd_stats(struct session *s, const rvc_jobs_opts *o) {
    Retriever__V1__StatsRequest req = RETRIEVER__V1__STATS_REQUEST__INIT;
    Retriever__V1__StatsResponse *st = NULL;
    int code = call(s, "Stats", &req.base, &retriever__v1__stats_response__descriptor, NULL,
                    (ProtobufCMessage **)&st);
    if (code != RVC_EXIT_OK)
        return code;
    uint64_t served = st->bytes_from_origin + st->bytes_from_cache;
    double hit = served ? (double)st->bytes_from_cache / (double)served : 0;
    if (o->json) {
        rvc_buf_printf(&s->buf,
                       "{\"running_jobs\":%u,\"queued_jobs\":%u,\"subscribers\":%u,"
                       "\"connections\":%u,\"rate_bps\":%.0f,\"bytes_from_origin\":%llu,"
                       "\"bytes_from_cache\":%llu,\"done_jobs\":%u,\"failed_jobs\":%u,"
                       "\"cancelled_jobs\":%u,\"cache_hit_ratio\":",
                       (unsigned)st->active_jobs, (unsigned)st->queued_jobs,
                       (unsigned)st->subscribers, (unsigned)st->connections, st->rate_bps,
                       (unsigned long long)st->bytes_from_origin,
                       (unsigned long long)st->bytes_from_cache, (unsigned)st->done_jobs,
                       (unsigned)st->failed_jobs, (unsigned)st->cancelled_jobs);
        if (served)
            rvc_buf_printf(&s->buf, "%.4f", hit);
        else
            rvc_buf_puts(&s->buf, "null");
        rvc_buf_printf(&s->buf, ",\"cache_bytes\":%llu,\"cache_quota\":",
                       (unsigned long long)st->cache_bytes);
        if (st->cache_quota)
            rvc_buf_printf(&s->buf, "%llu}\n", (unsigned long long)st->cache_quota);
        else
            rvc_buf_puts(&s->buf, "null}\n");
    } else {
        char a[RVC_FMT_MAX], b[RVC_FMT_MAX], c[RVC_FMT_MAX], r[RVC_FMT_MAX], q[RVC_FMT_MAX];
        rvc_fmt_size(st->bytes_from_origin, a);
        rvc_fmt_size(st->bytes_from_cache, b);
        rvc_fmt_size(st->cache_bytes, c);
        rvc_fmt_rate(st->rate_bps, r);
        rvc_buf_printf(&s->buf,
                       "jobs:         %u running, %u queued, %u subscribers\n"
                       "ended:        %u done, %u failed, %u cancelled (in the history)\n"
                       "connections:  %u to origins, %s\n"
                       "served:       %s from origins, %s from the cache",
                       (unsigned)st->active_jobs, (unsigned)st->queued_jobs,
                       (unsigned)st->subscribers, (unsigned)st->done_jobs,
                       (unsigned)st->failed_jobs, (unsigned)st->cancelled_jobs,
                       (unsigned)st->connections, r, a, b);
        if (served)
            rvc_buf_printf(&s->buf, " (%.1f%% hits)", hit * 100);
        if (st->cache_quota) {
            rvc_fmt_size(st->cache_quota, q);
            rvc_buf_printf(&s->buf, "\ncache:        %s of %s\n", c, q);
        } else {
            rvc_buf_printf(&s->buf, "\ncache:        %s (no quota)\n", c);
        }
    }
    protobuf_c_message_free_unpacked(&st->base, NULL);
    return flush_out(s);
}

/* `version`: ours always; the daemon's when one answers (not started for
 * this). Exit 0 either way: the client's version is the answer asked for. */
static int cmd_version(struct session *s, const char *socket_opt, const rvc_jobs_opts *o) {
    Retriever__V1__PingResponse *pong = NULL;
    FILE *real_err = s->err;
    /* A missing daemon is part of the answer, not an error line. */
    FILE *quiet = fopen("/dev/null", "w");
    s->err = quiet ? quiet : real_err;
    bool up = session_open(s, socket_opt, false) == RVC_EXIT_OK && ping(s, &pong) == RVC_EXIT_OK;
    s->err = real_err;
    if (quiet)
        fclose(quiet);
    if (o->json) {
        rvc_buf_puts(&s->buf, "{\"client\":\"" RETRIEVER_VERSION "\",\"daemon\":");
        json_str_or_null(&s->buf, up ? pong->version : NULL);
        rvc_buf_puts(&s->buf, ",\"api_version\":");
        if (up)
            rvc_buf_printf(&s->buf, "%u", (unsigned)pong->api_version);
        else
            rvc_buf_puts(&s->buf, "null");
        rvc_buf_puts(&s->buf, ",\"socket\":");
        json_str_or_null(&s->buf, s->path);
        rvc_buf_puts(&s->buf, "}\n");
    } else {
        rvc_buf_puts(&s->buf, PROG " " RETRIEVER_VERSION "\n");
        if (up) {
            rvc_buf_puts(&s->buf, "retrieverd ");
            rvc_sanitize(&s->buf, pong->version ? pong->version : "", 64);
            rvc_buf_printf(&s->buf, " (API %u) at ", (unsigned)pong->api_version);
            rvc_sanitize(&s->buf, s->path, 200);
            rvc_buf_putc(&s->buf, '\n');
        } else {
            rvc_buf_puts(&s->buf, "retrieverd: not running");
            if (s->path) {
                rvc_buf_puts(&s->buf, " at ");
                rvc_sanitize(&s->buf, s->path, 200);
            }
            rvc_buf_putc(&s->buf, '\n');
        }
    }
    if (pong)
        protobuf_c_message_free_unpacked(&pong->base, NULL);
    return flush_out(s);
}

int rvc_jobs_run(const rvc_cmd *cmd, FILE *out, FILE *err) {
    struct session s = {.out = out, .err = err, .json = cmd->jobs.json};
    const rvc_jobs_opts *o = &cmd->jobs;
    int code;
    rvc_buf_init(&s.buf, OUT_MAX);

    if (cmd->verb == RVC_VERB_DVERSION) {
        code = cmd_version(&s, cmd->socket, o);
        goto out;
    }
    if (cmd->verb == RVC_VERB_WATCH) {
        s.path = rvc_daemon_find(cmd->socket, false, err, &code);
        if (s.path)
            code = rvc_remote_watch(s.path, o->ids[0], o->json, out, err);
        goto out;
    }
    /* Only status starts a daemon: the others would find nothing in a new one. */
    code = session_open(&s, cmd->socket,
                        cmd->verb == RVC_VERB_STATUS && rvc_autostart_wanted(cmd->no_autostart));
    if (code != RVC_EXIT_OK)
        goto out;
    switch (cmd->verb) {
    case RVC_VERB_STATUS:
        code = o->n_ids ? cmd_status_job(&s, o, o->ids[0]) : cmd_status_all(&s, o);
        break;
    case RVC_VERB_LIST:
        code = cmd_list(&s, o);
        break;
    case RVC_VERB_CANCEL:
        code = cmd_cancel(&s, o);
        break;
    case RVC_VERB_STATS:
        code = cmd_stats(&s, o);
        break;
    default:
        code = RVC_EXIT_INTERNAL;
        break;
    }
out:
    session_close(&s);
    return code;
}
