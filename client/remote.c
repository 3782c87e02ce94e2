/* remote.c — `ping` and `download` through retrieverd.
 *
 * Sections: pure helpers · ping · download (objects and output, events,
 * the request, the run) · the module's entry.
 *
 * Threads: everything runs on the calling thread except on_signal, which
 * the sigwatch thread calls; it only cancels the published stream, under
 * `lock`. The signals are blocked (rvc_sigwatch) before gRPC starts its
 * threads (rvc_rpc_connect), so none of them can take a Ctrl-C.
 */
#include "remote.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "cmd_jobs.h"
#include "daemonfind.h"
#include "dest.h"
#include "input.h"
#include "exitcode.h"
#include "fmt.h"
#include "json.h"
#include "progress.h"
#include "remotemod.h"
#include "remoteconn.h"
#include "report.h"
#include "retriever/retriever.h"
#include "retriever/v1/retriever.pb-c.h"
#include "rpc.h"
#include "run.h"
#include "sigwatch.h"

#define PROG "retrieverctl"
#define MSG_MAX RVC_REPORT_MSG_MAX

/* ------------------------------------------------------------------------
 * Pure helpers
 * ------------------------------------------------------------------------ */

int rvc_socket_path(const char *opt, const char *env_socket, const char *xdg_runtime_dir,
                    char **ret, char **ret_error) {
    char *p = NULL;
    if (opt || (env_socket && *env_socket)) {
        p = strdup(opt ? opt : env_socket);
        if (!p)
            return RV_E_NOMEM;
        *ret = p;
        return RV_OK;
    }
    const char *why = NULL;
    if (!xdg_runtime_dir || !*xdg_runtime_dir)
        why = "XDG_RUNTIME_DIR is not set, so there is no per-user retrieverd socket";
    else if (xdg_runtime_dir[0] != '/')
        why = "XDG_RUNTIME_DIR is not an absolute path, so there is no per-user retrieverd "
              "socket";
    if (why) {
        if (asprintf(ret_error, "%s: pass --socket PATH or set " RVC_SOCKET_ENV, why) < 0)
            return RV_E_NOMEM;
        return RV_E_INVALID_ARGUMENT;
    }
    size_t n = strlen(xdg_runtime_dir);
    while (n > 1 && xdg_runtime_dir[n - 1] == '/')
        n--;
    if (n > INT_MAX || asprintf(&p, "%.*s/" RVC_SOCKET_SUBPATH, (int)n, xdg_runtime_dir) < 0)
        return RV_E_NOMEM;
    *ret = p;
    return RV_OK;
}

static bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* A copy of s[0..len) without the blanks at both ends; NULL: no memory. */
static char *trimmed(const char *s, size_t len) {
    while (len && is_blank(*s))
        s++, len--;
    while (len && is_blank(s[len - 1]))
        len--;
    return strndup(s, len);
}

int rvc_header_split(const char *line, char **ret_name, char **ret_value) {
    const char *colon = strchr(line, ':');
    if (!colon)
        return RV_E_INVALID_ARGUMENT;
    char *name = trimmed(line, (size_t)(colon - line));
    char *value = trimmed(colon + 1, strlen(colon + 1));
    int e = name && value ? (name[0] ? RV_OK : RV_E_INVALID_ARGUMENT) : RV_E_NOMEM;
    if (e != RV_OK) {
        free(name);
        free(value);
        return e;
    }
    *ret_name = name;
    *ret_value = value;
    return RV_OK;
}

int rvc_error_from_name(const char *name) {
    if (!name)
        return -1;
#define RVC_ERROR_BY_NAME_(sym, num, retryable, msg) \
    if (strcmp(name, #sym) == 0)                     \
        return num;
    RV_ERRORS(RVC_ERROR_BY_NAME_)
#undef RVC_ERROR_BY_NAME_
    return -1;
}

/* "/retriever.v1.Retriever/<method>" into buf. */
static void method_path(const char *method, char *buf, size_t n) {
    snprintf(buf, n, "/%s/%s", retriever__v1__retriever__descriptor.name, method);
}

/* The socket from --socket or the environment; prints why not and returns
 * NULL when there is none. */
static char *socket_for(const char *socket_opt, FILE *err, int *ret_code) {
    char *path = NULL, *why = NULL;
    int e = rvc_socket_path(socket_opt, getenv(RVC_SOCKET_ENV), getenv("XDG_RUNTIME_DIR"), &path,
                            &why);
    if (e == RV_OK)
        return path;
    fprintf(err, PROG ": %s\n", e == RV_E_INVALID_ARGUMENT ? why : rv_strerror(e));
    free(why);
    *ret_code = e == RV_E_INVALID_ARGUMENT ? RVC_EXIT_USAGE : rvc_exit_code(e);
    return NULL;
}

/* One line for people about a failed call: "retrieverctl: WHAT: message
 * (CODE)", WHAT saying what the status means for this command. */
static void print_status(rvc_report *rp, const char *method, const rvc_rpc_status *st) {
    const char *what;
    switch (st->code) {
    case RVC_RPC_INVALID_ARGUMENT:
        what = "retrieverd rejected the request";
        break;
    case RVC_RPC_PERMISSION_DENIED:
        what = "retrieverd refused";
        break;
    case RVC_RPC_ALREADY_EXISTS:
        what = "retrieverd refused to replace a file (use --force)";
        break;
    case RVC_RPC_RESOURCE_EXHAUSTED:
        what = "retrieverd is too busy; try again later";
        break;
    case RVC_RPC_UNAVAILABLE:
        what = "retrieverd stopped or went away";
        break;
    case RVC_RPC_UNIMPLEMENTED:
        what = NULL; /* below */
        break;
    default:
        what = "retrieverd failed";
        break;
    }
    rvc_buf *m = rp->msg;
    if (what)
        rvc_buf_printf(m, PROG ": %s: ", what);
    else
        rvc_buf_printf(m, PROG ": this retrieverd does not support %s yet: ", method);
    rvc_sanitize(m, st->message ? st->message : "", MSG_MAX / 4);
    rvc_buf_printf(m, " (%s)", rvc_rpc_code_name(st->code));
    rvc_report_line(rp);
}

static bool signalled(void *sigwatch) {
    return rvc_sigwatch_received(sigwatch) != 0;
}

/* Connect; on failure print why (the message names the socket) and return
 * NULL with the exit code in *ret_code. A signal that sigwatch (may be
 * NULL) received meanwhile ends the wait: its exit code then. */
static rvc_rpc *connect_to(const char *path, rvc_sigwatch *sigwatch, rvc_report *rp,
                           int *ret_code) {
    rvc_rpc *c = NULL;
    rvc_rpc_status st = {0};
    int code = rvc_rpc_connect(path, RVC_CONNECT_TIMEOUT_MS, sigwatch ? signalled : NULL,
                               sigwatch, &c, &st);
    if (code != RVC_RPC_OK) {
        rvc_buf_puts(rp->msg, PROG ": ");
        rvc_sanitize(rp->msg, st.message ? st.message : rv_strerror(RV_E_NOMEM), MSG_MAX / 2);
        rvc_report_line(rp);
        *ret_code = code == RVC_RPC_CANCELLED && sigwatch
                        ? rvc_exit_for_signal(rvc_sigwatch_received(sigwatch))
                        : rvc_exit_for_rpc(code);
    }
    rvc_rpc_status_done(&st);
    return c;
}

/* ------------------------------------------------------------------------
 * ping
 * ------------------------------------------------------------------------ */

int rvc_remote_ping(const char *socket_opt, FILE *out, FILE *err) {
    int code = RVC_EXIT_OK;
    rvc_buf msg;
    rvc_buf_init(&msg, MSG_MAX);
    rvc_report rep = {.out = out, .err = err, .msg = &msg};
    rvc_rpc *c = NULL;
    rvc_rpc_status st = {0};
    ProtobufCMessage *resp = NULL;
    char method[128];

    char *path = socket_for(socket_opt, err, &code);
    if (!path)
        goto out;
    c = connect_to(path, NULL, &rep, &code);
    if (!c)
        goto out;
    Retriever__V1__PingRequest req = RETRIEVER__V1__PING_REQUEST__INIT;
    method_path("Ping", method, sizeof(method));
    int rc = rvc_rpc_unary(c, method, &req.base, &retriever__v1__ping_response__descriptor,
                           RVC_CONNECT_TIMEOUT_MS, &resp, &st);
    if (rc != RVC_RPC_OK) {
        print_status(&rep, "Ping", &st);
        code = rvc_exit_for_rpc(rc);
        goto out;
    }
    const Retriever__V1__PingResponse *pong = (const Retriever__V1__PingResponse *)resp;
    rvc_buf_puts(&msg, "retrieverd ");
    rvc_sanitize(&msg, pong->version, 64);
    rvc_buf_printf(&msg, " (API %u) at ", (unsigned)pong->api_version);
    rvc_sanitize(&msg, path, MSG_MAX / 2);
    if (rvc_buf_error(&msg) == RV_OK)
        fprintf(out, "%s\n", rvc_buf_str(&msg));

out:
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    rvc_rpc_status_done(&st);
    rvc_rpc_free(c);
    free(path);
    rvc_buf_done(&msg);
    return code;
}

/* ------------------------------------------------------------------------
 * download: objects and their output
 * ------------------------------------------------------------------------ */

struct run {
    rvc_run c; /* objects (one Source of the job each, same index), views, output */
    int64_t *t0;  /* owned, c.n entries: daemon time of object i's first event; 0 until then */
    char *job_id; /* owned: from the first event that names it */
    rvc_sigwatch *sigwatch;

    pthread_mutex_t lock;   /* guards `stream` between this and the signal thread */
    rvc_rpc_stream *stream; /* published while a call runs; NULL otherwise */
};

/* Called on the sigwatch thread when SIGINT/SIGTERM arrives. */
static void on_signal(void *ud) {
    struct run *r = ud;
    pthread_mutex_lock(&r->lock);
    if (r->stream)
        rvc_rpc_stream_cancel(r->stream);
    pthread_mutex_unlock(&r->lock);
}

static void publish_stream(struct run *r, rvc_rpc_stream *s) {
    pthread_mutex_lock(&r->lock);
    r->stream = s;
    pthread_mutex_unlock(&r->lock);
}

/* Watch for signals, then connect to the daemon at path (signals are
 * blocked before gRPC starts its threads): *ret_conn, or NULL after one
 * line on err. The exit code so far. */
static int start_call(struct run *r, const char *path, rvc_rpc **ret_conn) {
    int code = RVC_EXIT_OK;
    int e = rvc_sigwatch_start_fn(on_signal, r, &r->sigwatch);
    if (e != RV_OK) {
        fprintf(r->c.err, PROG ": cannot watch for signals: %s\n", rv_strerror(e));
        return rvc_exit_code(e);
    }
    *ret_conn = connect_to(path, r->sigwatch, &r->c.rep, &code);
    return code;
}

/* Open the server stream of method with req and publish it (a signal
 * that came before is honoured: the stream is cancelled at once). RV_OK,
 * or an rv_error after one line on err. */
static int open_stream(struct run *r, rvc_rpc *conn, const char *method,
                       const ProtobufCMessage *req, rvc_rpc_stream **ret) {
    char path[128];
    method_path(method, path, sizeof(path));
    int e = rvc_rpc_stream_open(conn, path, req, ret);
    if (e != RV_OK) {
        fprintf(r->c.err, PROG ": cannot call retrieverd: %s\n", rv_strerror(e));
        return e;
    }
    publish_stream(r, *ret);
    if (rvc_sigwatch_received(r->sigwatch))
        rvc_rpc_stream_cancel(*ret); /* the signal came before the stream was published */
    return RV_OK;
}

/* n objects (rvc_run_open) and their first-event times. */
static int open_objects(struct run *r, size_t n, rvc_progress_mode mode, bool urls) {
    r->t0 = calloc(n ? n : 1, sizeof(*r->t0));
    return r->t0 ? rvc_run_open(&r->c, n, mode, urls) : RV_E_NOMEM;
}

/* Ends the call (stream s on conn, status st; each may be empty) and
 * frees the run: what download and watch have in common at their end. */
static void run_done(struct run *r, rvc_rpc_stream *s, rvc_rpc *conn, rvc_rpc_status *st) {
    /* The watch goes first: its thread may use the stream until joined. */
    r->sigwatch = rvc_sigwatch_stop(r->sigwatch);
    rvc_rpc_stream_free(s);
    rvc_rpc_free(conn);
    rvc_rpc_status_done(st);
    free(r->job_id);
    free(r->t0);
    rvc_run_done(&r->c);
    pthread_mutex_destroy(&r->lock);
}

static const char *nonempty(const char *s) {
    return s && *s ? s : NULL;
}

/* "8 hex digits" -> the value; false for anything else. */
static bool parse_crc32c(const char *s, uint32_t *ret) {
    if (!s || strlen(s) != 8)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *ret = v;
    return true;
}

/* Seconds from object i's first event to t (daemon times). */
static double seconds_to(const struct run *r, size_t i, int64_t t) {
    int64_t t0 = r->t0[i];
    if (!t0 || t <= t0)
        return 0;
    return (double)(t - t0) / 1000.0;
}

/* The final line (and JSON line) of object i: done when c is set, else
 * failed or cancelled with err/message/detail. */
static void report_final(struct run *r, size_t i, rv_state st, const Retriever__V1__Completed *c,
                         int err, const char *message, const char *detail, int64_t t) {
    rvc_run_obj *ob = &r->c.objs[i];
    rvc_progress_item *v = &r->c.views[i];
    uint32_t crc = 0;
    rvc_run_end end = {
        .state = st,
        .error = err,
        .message = message,
        .detail = detail,
        .path = c && nonempty(c->path) ? c->path : NULL,
        .seconds = seconds_to(r, i, t),
        .sha256 = c ? nonempty(c->sha256) : NULL,
        .has_crc32c = c && parse_crc32c(c->crc32c, &crc),
    };
    end.crc32c = crc;
    if (c) {
        v->cached = c->from_cache;
        v->p.bytes_done = c->size;
        v->p.bytes_total = c->size;
        v->p.total_known = true;
    }
    /* The server named it: the user's path with the final name (out of
     * memory: the name asked for). */
    if (c && ob->by_server && nonempty(c->path) && ob->dest && strcmp(c->path, ob->dest) != 0) {
        const char *name = strrchr(c->path, '/'), *slash = strrchr(ob->display, '/');
        char *shown = NULL;
        name = name ? name + 1 : c->path;
        if (slash ? asprintf(&shown, "%.*s/%s", (int)(slash - ob->display), ob->display, name) >= 0
                  : (shown = strdup(name)) != NULL)
            end.display = shown;
    }
    rvc_run_final(&r->c, i, &end);
}

/* A Failed event's error as an rv_error, the message and the detail to
 * show. An unknown code name (a newer daemon) is RV_E_INTERNAL with the
 * name kept in *ret_detail (malloc'd, or NULL when the daemon's detail is
 * used as is). */
static int failed_error(const Retriever__V1__Error *e, const char **ret_message,
                        const char **ret_detail, char **ret_owned) {
    *ret_owned = NULL;
    if (!e) {
        *ret_message = rv_strerror(RV_E_INTERNAL);
        *ret_detail = "retrieverd reported a failure without an error";
        return RV_E_INTERNAL;
    }
    int num = rvc_error_from_name(e->code);
    if (num > RV_OK) {
        *ret_message = rv_strerror(num); /* the same words as --local */
        *ret_detail = e->detail;
        return num;
    }
    *ret_message = nonempty(e->message) ? e->message : rv_strerror(RV_E_INTERNAL);
    if (asprintf(ret_owned, "retrieverd reported '%s'%s%s", e->code ? e->code : "",
                 nonempty(e->detail) ? ": " : "", nonempty(e->detail) ? e->detail : "") < 0)
        *ret_owned = NULL;
    *ret_detail = *ret_owned ? *ret_owned : e->detail;
    return RV_E_INTERNAL;
}

/* Object i failed with e (a Failed event's, or a Snapshot's) at daemon time t. */
static void report_failed(struct run *r, size_t i, const Retriever__V1__Error *e, int64_t t) {
    const char *message, *detail;
    char *owned = NULL;
    int err = failed_error(e, &message, &detail, &owned);
    report_final(r, i, RV_STATE_FAILED, NULL, err, message, detail, t);
    free(owned);
}

/* Object i was cancelled by retrieverd at daemon time t. */
static void report_cancelled(struct run *r, size_t i, int64_t t) {
    report_final(r, i, RV_STATE_CANCELLED, NULL, RV_E_CANCELLED, rv_strerror(RV_E_CANCELLED),
                 "retrieverd cancelled the job", t);
}

static void take_progress(rvc_progress_item *v, const Retriever__V1__Progress *p) {
    if (!p)
        return;
    v->p.bytes_done = p->bytes_done;
    v->p.bytes_total = p->total_known ? p->bytes_total : 0;
    v->p.total_known = p->total_known;
    v->p.rate_bps = p->rate_bps;
}

static void on_retry(struct run *r, size_t i, const Retriever__V1__Retrying *ry) {
    const char *reason = nonempty(ry->reason) ? ry->reason : "retrying";
    /* Plain progress and --no-progress get a line; the TTY area shows it. */
    if (rvc_run_retry(&r->c, i, ry->attempt, ry->wait_ms, reason))
        rvc_run_retry_line(&r->c, i, ry->attempt, ry->wait_ms, ry->offset, reason);
}

/* ------------------------------------------------------------------------
 * download: events
 * ------------------------------------------------------------------------ */

static void on_event(struct run *r, const Retriever__V1__JobEvent *ev) {
    if (!r->job_id && nonempty(ev->job_id))
        r->job_id = strdup(ev->job_id);

    switch (ev->event_case) {
    case RETRIEVER__V1__JOB_EVENT__EVENT_ACCEPTED:
    case RETRIEVER__V1__JOB_EVENT__EVENT_SNAPSHOT: /* Watch's, not Download's */
    case RETRIEVER__V1__JOB_EVENT__EVENT__NOT_SET:
        return;
    default:
        break;
    }
    /* An index beyond our sources is not ours to show (or a newer daemon's
     * job-wide event): ignore it rather than trust it. */
    if (ev->object_index >= r->c.n)
        return;
    size_t i = ev->object_index;
    rvc_run_obj *ob = &r->c.objs[i];
    rvc_progress_item *v = &r->c.views[i];
    if (ob->reported)
        return; /* final already */
    if (!r->t0[i])
        r->t0[i] = ev->time_unix_ms;

    switch (ev->event_case) {
    case RETRIEVER__V1__JOB_EVENT__EVENT_QUEUED:
        v->state = RV_STATE_QUEUED;
        break;
    case RETRIEVER__V1__JOB_EVENT__EVENT_STARTED:
        v->state = RV_STATE_DOWNLOADING;
        take_progress(v, ev->started->progress);
        /* What was durable when it started (retrieverd's state). */
        if (rvc_run_started(&r->c, i, ev->started->resumed_bytes))
            rvc_run_resuming(&r->c, i);
        break;
    case RETRIEVER__V1__JOB_EVENT__EVENT_PROGRESS:
        v->state = RV_STATE_DOWNLOADING;
        take_progress(v, ev->progress->progress);
        break;
    case RETRIEVER__V1__JOB_EVENT__EVENT_RETRYING:
        on_retry(r, i, ev->retrying);
        break;
    case RETRIEVER__V1__JOB_EVENT__EVENT_COMPLETED:
        report_final(r, i, RV_STATE_DONE, ev->completed, RV_OK, NULL, NULL, ev->time_unix_ms);
        break;
    case RETRIEVER__V1__JOB_EVENT__EVENT_FAILED:
        report_failed(r, i, ev->failed->error, ev->time_unix_ms);
        break;
    case RETRIEVER__V1__JOB_EVENT__EVENT_CANCELLED:
        report_cancelled(r, i, ev->time_unix_ms);
        break;
    default:
        break;
    }
}

/* After the stream ended without a final event for some objects: they
 * become `st`, and get one JSON line each (state `state`, err, detail), no
 * line for people. */
static void json_for_unreported(struct run *r, rv_state st, const char *state, int err,
                                const char *detail) {
    for (size_t i = 0; i < r->c.n; i++) {
        rvc_run_obj *ob = &r->c.objs[i];
        if (ob->reported)
            continue;
        ob->reported = true;
        ob->error = err;
        r->c.views[i].state = st;
        if (!r->c.o->json)
            continue;
        rvc_json_result res = {
            .url = ob->shown,
            .path = ob->dest ? ob->dest : ob->display,
            .state = state,
            .bytes = r->c.views[i].p.bytes_done,
            .retries = r->c.views[i].retries,
            .resumed_bytes = r->c.views[i].resumed_from,
            .error = err,
            .detail = detail,
        };
        rvc_report_json(&r->c.rep, &res);
    }
}

/* ------------------------------------------------------------------------
 * download: validation and the request
 * ------------------------------------------------------------------------ */

/* Give every URL its destination; reject as --local does what has none,
 * cannot be written by this user, or shares one. Returns the number
 * rejected (reported by rvc_report_rejected), or -1 after an error that is
 * no URL's (reported, *ret_code set). */
static long destinations(struct run *r, int *ret_code) {
    /* NULL (a removed current directory) matters only for relative paths. */
    char *cwd = getcwd(NULL, 0);
    int cwd_errno = errno;
    long rejected = 0;
    rvc_dest_set *seen = NULL; /* the absolute destinations named so far */
    if (rvc_dest_set_new(r->c.n, &seen) != RV_OK)
        goto nomem;
    for (size_t i = 0; i < r->c.n; i++) {
        rvc_run_obj *ob = &r->c.objs[i];
        int e = rvc_destination_of(r->c.o, i, NULL, &ob->display);
        if (e == RV_OK)
            e = rvc_destination_of(r->c.o, i, cwd, &ob->dest);
        size_t k = i; /* the first object with this destination */
        if (e == RV_OK)
            e = rvc_dest_set_add(seen, ob->dest, i, &k);
        r->c.views[i].name = ob->display ? ob->display : ob->shown;
        if (e == RV_OK && ob->dest[0] != '/') {
            rvc_buf_printf(&r->c.msg, PROG ": cannot tell the current directory, needed to give "
                                    "retrieverd an absolute destination: %s",
                           strerror(cwd_errno));
            rvc_report_line(&r->c.rep);
            *ret_code = RVC_EXIT_LOCAL;
            rejected = -1;
            break;
        }
        if (e == RV_E_NOMEM)
            goto nomem;
        if (e != RV_OK) {
            rvc_run_reject_unnamed(&r->c, i, e);
            rejected++;
            continue;
        }
        char *detail = NULL;
        e = rvc_check_destination(ob->display, &detail);
        if (e == RV_E_NOMEM)
            goto nomem;
        if (e != RV_OK) {
            rvc_run_reject(&r->c, i, e, NULL, detail);
            rejected++;
            continue;
        }
        /* retrieverd would refuse it too (no_replace), but only after the
         * job's other checks: the same words as --local, before asking. A
         * name the server gives instead is checked at delivery. */
        ob->by_server = rvc_named_by_server(r->c.o, i);
        if (!r->c.o->force && rvc_dest_exists(ob->display)) {
            detail = NULL;
            e = rvc_dest_exists_detail(ob->display, &detail);
            if (e == RV_E_NOMEM)
                goto nomem;
            rvc_run_reject(&r->c, i, e, NULL, detail);
            rejected++;
            continue;
        }
        if (k != i) {
            detail = NULL;
            if (asprintf(&detail, "destination '%s' is also the destination of '%s'",
                         ob->display, r->c.objs[k].shown) < 0)
                detail = NULL;
            rvc_run_reject(&r->c, i, RV_E_DEST_CONFLICT, NULL, detail);
            rejected++;
        }
    }
    rvc_report_rejected_end(&r->c.rep);
    rvc_dest_set_free(seen);
    free(cwd);
    return rejected;
nomem:
    rvc_dest_set_free(seen);
    rvc_buf_printf(&r->c.msg, PROG ": %s", rv_strerror(RV_E_NOMEM));
    rvc_report_line(&r->c.rep);
    *ret_code = rvc_exit_code(RV_E_NOMEM);
    free(cwd);
    return -1;
}

void rvc_remote_request_done(rvc_request *q) {
    for (size_t k = 0; q->headers && k < q->n_headers; k++) {
        free(q->headers[k].name);
        free(q->headers[k].value);
    }
    free(q->headers);
    free(q->header_ptrs);
    for (size_t i = 0; q->own && i < q->n_sources; i++) {
        for (size_t k = 0; q->own[i] && k < q->n_own[i]; k++) {
            free(q->own[i][k].name);
            free(q->own[i][k].value); /* a secret: the protobuf-c copy is packed from it */
        }
        free(q->own[i]);
        free(q->auth_ptrs[i]);
    }
    free(q->own);
    free(q->n_own);
    free(q->auth_ptrs);
    free(q->sources);
    free(q->source_ptrs);
    free(q->ca_file);
    if (q->has_s3)
        rvc_s3_free(&q->s3);
}

/* The first of the two variables that is set and not empty, else "". */
static const char *env_nonempty(const char *a, const char *b) {
    const char *v = getenv(a);
    if (!v || !*v)
        v = getenv(b);
    return v && *v ? v : "";
}

/* The proxy the environment names for URLs of scheme ("http" or "https"),
 * by libcurl's rules, which --local follows: <scheme>_proxy, for https
 * also HTTPS_PROXY, but never HTTP_PROXY (a CGI program gets the client's
 * "Proxy:" header as HTTP_PROXY: httpoxy), then all_proxy / ALL_PROXY.
 * "" for none. */
static const char *env_proxy(const char *scheme) {
    const char *v = strcmp(scheme, "https") == 0 ? env_nonempty("https_proxy", "HTTPS_PROXY")
                                                 : env_nonempty("http_proxy", "http_proxy");
    return *v ? v : env_nonempty("all_proxy", "ALL_PROXY");
}

int rvc_remote_request(const rvc_download_opts *o, size_t n,
                       const char *(*dest_of)(const void *ud, size_t i), const void *ud,
                       rvc_request *q) {
    q->msg = (Retriever__V1__DownloadRequest)RETRIEVER__V1__DOWNLOAD_REQUEST__INIT;
    q->sources = calloc(n, sizeof(*q->sources));
    q->source_ptrs = calloc(n, sizeof(*q->source_ptrs));
    q->headers = calloc(o->n_headers ? o->n_headers : 1, sizeof(*q->headers));
    q->header_ptrs = calloc(o->n_headers ? o->n_headers : 1, sizeof(*q->header_ptrs));
    q->n_sources = n;
    q->own = calloc(n ? n : 1, sizeof(*q->own));
    q->n_own = calloc(n ? n : 1, sizeof(*q->n_own));
    q->auth_ptrs = calloc(n ? n : 1, sizeof(*q->auth_ptrs));
    if (!q->sources || !q->source_ptrs || !q->headers || !q->header_ptrs || !q->own ||
        !q->n_own || !q->auth_ptrs)
        return RV_E_NOMEM;
    for (size_t k = 0; k < o->n_headers; k++) {
        Retriever__V1__Header *h = &q->headers[k];
        *h = (Retriever__V1__Header)RETRIEVER__V1__HEADER__INIT;
        int e = rvc_header_split(o->headers[k], &h->name, &h->value);
        if (e != RV_OK) {
            /* The parser let only valid lines through: keep what it vouched for. */
            h->name = h->value = NULL;
            return e == RV_E_NOMEM ? e : RV_E_INTERNAL;
        }
        q->n_headers = k + 1;
        q->header_ptrs[k] = h;
    }
    for (size_t i = 0; i < n; i++) {
        Retriever__V1__Source *s = &q->sources[i];
        *s = (Retriever__V1__Source)RETRIEVER__V1__SOURCE__INIT;
        /* protobuf-c wants char *; packing only reads them. */
        s->url = (char *)o->urls[i];
        s->destination = (char *)(dest_of ? dest_of(ud, i) : ""); /* "": none (cat) */
        const char *sha = rvc_input_sha256(o, i);
        s->sha256 = (char *)(sha ? sha : ""); /* "": not set */
        s->n_headers = o->n_headers;
        s->headers = o->n_headers ? q->header_ptrs : NULL;
        q->source_ptrs[i] = s;
        /* URL i of the command line (then of -i's file). */
        const rvc_input_item *in = rvc_input_item_of(o, i);
        const char *auth = o->auth ? o->auth[i] : NULL;
        size_t n_own = (in ? in->n_headers : 0) + (auth ? 1 : 0);
        if (n_own) {
            Retriever__V1__Header *h = calloc(n_own, sizeof(*h));
            Retriever__V1__Header **p = calloc(o->n_headers + n_own, sizeof(*p));
            q->own[i] = h;
            q->auth_ptrs[i] = p;
            if (!h || !p)
                return RV_E_NOMEM;
            if (o->n_headers)
                memcpy(p, q->header_ptrs, o->n_headers * sizeof(*p));
            for (size_t k = 0; k < n_own; k++) {
                const char *line = in && k < in->n_headers ? in->headers[k] : auth;
                h[k] = (Retriever__V1__Header)RETRIEVER__V1__HEADER__INIT;
                int e = rvc_header_split(line, &h[k].name, &h[k].value);
                if (e != RV_OK) {
                    h[k].name = h[k].value = NULL;
                    return e == RV_E_NOMEM ? e : RV_E_INTERNAL;
                }
                q->n_own[i] = k + 1;
                p[o->n_headers + k] = &h[k];
            }
            s->n_headers = o->n_headers + n_own;
            s->headers = p;
        }
    }
    q->msg.n_sources = n;
    q->msg.sources = q->source_ptrs;
    q->msg.detach = o->detach;
    q->msg.connections = o->connections;
    q->msg.batch_events = true; /* fewer messages for jobs of many objects */
    /* The digest as --local decides it (local.c): asked for, by default
     * with --json, and always with --sha256 (the daemon would digest such
     * a source anyway; saying so keeps the request self-explanatory). */
    q->msg.digest = o->digest == 1 || (o->digest < 0 && o->json) || o->sha256[0] != '\0';
    q->msg.link = o->link;
    q->msg.copy = o->copy;
    /* Always sent: without it the daemon makes every delivery 0600. */
    q->umask = (Retriever__V1__Umask)RETRIEVER__V1__UMASK__INIT;
    q->umask.bits = o->umask & 0777u;
    q->msg.umask = &q->umask;
    /* Transfer settings; unset (0) leaves the daemon's own. */
    if (o->retries >= 0)
        q->msg.max_attempts = (uint32_t)o->retries + 1;
    q->msg.connect_timeout_ms = o->connect_timeout_ms;
    q->msg.stall_timeout_ms = o->stall_timeout_ms;
    q->msg.connect_retry_ms = o->connect_retry_ms;
    /* Checked here already (destinations); the daemon checks again as the
     * caller, which also covers a file made since. */
    q->msg.no_replace = !o->force;
    q->msg.max_bytes_per_sec = o->limit_rate;
    /* The daemon uses no proxy of its own environment: ours goes with the
     * request, chosen as libcurl would choose it here (--local). */
    q->msg.http_proxy = (char *)(o->proxy ? o->proxy : env_proxy("http"));
    q->msg.https_proxy = (char *)(o->proxy ? o->proxy : env_proxy("https"));
    q->msg.no_proxy = (char *)env_nonempty("no_proxy", "NO_PROXY");
    for (size_t i = 0; i < n && !q->has_s3; i++) {
        if (strncmp(o->urls[i], "s3://", 5) != 0)
            continue;
        int e = rvc_s3_load(o, &q->s3, &q->why);
        if (e != RV_OK)
            return e;
        q->has_s3 = true;
        q->s3msg = (Retriever__V1__S3Options)RETRIEVER__V1__S3_OPTIONS__INIT;
        q->s3msg.endpoint_url = (char *)(q->s3.p.endpoint_url ? q->s3.p.endpoint_url : "");
        q->s3msg.region = (char *)(q->s3.p.region ? q->s3.p.region : "");
        q->s3msg.path_style = q->s3.p.path_style;
        q->s3msg.access_key_id = (char *)(q->s3.p.access_key_id ? q->s3.p.access_key_id : "");
        q->s3msg.secret_access_key =
            (char *)(q->s3.p.secret_access_key ? q->s3.p.secret_access_key : "");
        q->s3msg.session_token = (char *)(q->s3.p.session_token ? q->s3.p.session_token : "");
        q->msg.s3 = &q->s3msg;
    }
    if (o->ca_file) {
        /* Absolute, as the daemon wants it; the daemon opens it as us. A
         * name that does not resolve goes as cwd/name: the daemon's
         * answer then says what is wrong with it. */
        q->ca_file = realpath(o->ca_file, NULL);
        if (!q->ca_file) {
            char cwd[PATH_MAX];
            bool rel = o->ca_file[0] != '/' && getcwd(cwd, sizeof(cwd));
            if (asprintf(&q->ca_file, "%s%s%s", rel ? cwd : "", rel ? "/" : "", o->ca_file) < 0) {
                q->ca_file = NULL;
                return RV_E_NOMEM;
            }
        }
        q->msg.ca_file = q->ca_file;
        q->msg.ca_only = o->ca_only;
    }
    return RV_OK;
}

/* ------------------------------------------------------------------------
 * download: the run
 * ------------------------------------------------------------------------ */

/* Show the stream's events until it ends; the end status into *st. */
static void follow_events(struct run *r, rvc_rpc_stream *s, rvc_rpc_status *st) {
    for (;;) {
        int timeout = rvc_progress_timeout_ms(r->c.progress, rvc_now_ms());
        ProtobufCMessage *m = NULL;
        rvc_rpc_next n = rvc_rpc_stream_next(s, &retriever__v1__job_event__descriptor, timeout, &m,
                                             st);
        if (n == RVC_RPC_END)
            break;
        if (n == RVC_RPC_MESSAGE) {
            const Retriever__V1__JobEvent *ev = (const Retriever__V1__JobEvent *)m;
            for (size_t i = 0; i < ev->n_batch; i++)
                on_event(r, ev->batch[i]);
            if (!ev->n_batch)
                on_event(r, ev);
            protobuf_c_message_free_unpacked(m, NULL);
        }
        rvc_run_draw(&r->c);
    }
}

static void summary(struct run *r) {
    uint64_t *kept = NULL;
    if (r->c.signo) {
        /* What had arrived when this client left: retrieverd keeps the
         * durable part of it, so "up to". */
        kept = calloc(r->c.n, sizeof(*kept));
        for (size_t i = 0; kept && i < r->c.n; i++)
            kept[i] = r->c.views[i].p.bytes_done;
    }
    rvc_run_summary(&r->c, kept, false, r->job_id);
    free(kept);
}

/* The exit code once the stream ended with status st. */
static int finish(struct run *r, const rvc_rpc_status *st) {
    if (r->c.signo) {
        json_for_unreported(r, RV_STATE_CANCELLED, "cancelled", RV_E_CANCELLED,
                            "interrupted: this client left the job");
        summary(r);
        return rvc_exit_for_signal(r->c.signo);
    }
    if (st->code != RVC_RPC_OK) {
        print_status(&r->c.rep, "Download", st);
        /* Refused as a whole before anything happened: like a rejection. */
        if (st->code == RVC_RPC_INVALID_ARGUMENT && r->c.n_reported == 0)
            json_for_unreported(r, RV_STATE_FAILED, "rejected", RV_E_INVALID_ARGUMENT,
                                st->message);
        return rvc_exit_for_rpc(st->code);
    }
    if (r->c.o->detach) {
        if (!r->job_id) {
            rvc_buf_puts(&r->c.msg, PROG ": retrieverd accepted the request but named no job");
            rvc_report_line(&r->c.rep);
            return RVC_EXIT_INTERNAL;
        }
        rvc_buf_reset(&r->c.msg);
        rvc_sanitize(&r->c.msg, r->job_id, 256);
        fprintf(r->c.out, "%s\n", rvc_buf_str(&r->c.msg));
        rvc_buf_reset(&r->c.msg);
        return RVC_EXIT_OK;
    }
    size_t missing = r->c.n - r->c.n_reported;
    if (missing) {
        rvc_buf_printf(&r->c.msg, PROG ": retrieverd ended the job's stream with %zu download%s "
                                "unfinished",
                       missing, missing == 1 ? "" : "s");
        rvc_report_line(&r->c.rep);
        json_for_unreported(r, RV_STATE_FAILED, "failed", RV_E_INTERNAL,
                                "the job's stream ended early");
    }
    summary(r);
    return rvc_run_exit(&r->c);
}

/* Follow the published stream s to its end (the status into *st), then
 * unpublish it and report: the exit code. */
static int follow(struct run *r, rvc_rpc_stream *s, rvc_rpc_status *st) {
    follow_events(r, s, st);
    r->c.signo = rvc_sigwatch_received(r->sigwatch);
    publish_stream(r, NULL);
    rvc_progress_end(r->c.progress);
    return finish(r, st);
}

/* Object i's destination, as the request sends it. */
static const char *run_dest(const void *ud, size_t i) {
    const struct run *r = ud;
    return r->c.objs[i].dest;
}

int rvc_remote_download(const rvc_download_opts *o, const char *socket_opt, FILE *out,
                        FILE *err) {
    struct run r = {0};
    rvc_request q = {0};
    rvc_rpc *conn = NULL;
    rvc_rpc_stream *stream = NULL;
    rvc_rpc_status st = {0};
    char *path = NULL;
    int code = RVC_EXIT_OK;

    pthread_mutex_init(&r.lock, NULL);
    rvc_run_init(&r.c, o, out, err, true);
    rvc_progress_mode mode =
        o->detach ? RVC_PROGRESS_NONE : rvc_report_progress_mode(o, r.c.err_tty);
    int e = open_objects(&r, o->n_urls, mode, true);
    if (e != RV_OK) {
        fprintf(err, PROG ": %s\n", rv_strerror(e));
        code = rvc_exit_code(e);
        goto out;
    }

    /* 1. Validate. */
    long rejected = destinations(&r, &code);
    if (rejected < 0)
        goto out;
    if (rejected > 0) {
        code = rvc_run_rejected(&r.c, (size_t)rejected);
        goto out;
    }
    path = rvc_daemon_find(socket_opt, rvc_autostart_wanted(o->no_autostart), err, &code);
    if (!path)
        goto out;
    e = rvc_remote_request(o, r.c.n, run_dest, &r, &q);
    if (e != RV_OK) {
        fprintf(err, PROG ": %s\n", q.why ? q.why : rv_strerror(e));
        code = rvc_exit_code(e);
        goto out;
    }
    for (size_t i = 0; i < r.c.n; i++)
        q.sources[i].name_from_disposition = r.c.objs[i].by_server;

    /* 2. Submit: signals are blocked before gRPC starts its threads. */
    code = start_call(&r, path, &conn);
    if (!conn)
        goto out;
    e = open_stream(&r, conn, "Download", &q.msg.base, &stream);
    if (e != RV_OK) {
        code = rvc_exit_code(e);
        goto out;
    }

    /* 3. Follow, 4. report. */
    code = follow(&r, stream, &st);

out:
    run_done(&r, stream, conn, &st);
    rvc_remote_request_done(&q);
    free(path);
    return code;
}

/* ------------------------------------------------------------------------
 * watch: a job's events, rendered as download renders its own
 * ------------------------------------------------------------------------ */

/* Objects from the Watch stream's first event, the Snapshot: each named by
 * its destination (else its URL), its progress as the daemon has it, and
 * the ones already ended reported at once (their final line). The URL
 * strings stay borrowed from snap, which outlives the run. */
static int watch_objects(struct run *r, const Retriever__V1__JobEvent *snap) {
    const Retriever__V1__Job *j = snap->snapshot->job;
    if (j && nonempty(j->id))
        r->job_id = strdup(j->id);
    for (size_t i = 0; i < r->c.n; i++) {
        const Retriever__V1__ObjectStatus *os = j->objects[i];
        rvc_run_obj *ob = &r->c.objs[i];
        rvc_progress_item *v = &r->c.views[i];
        ob->url = os->url ? os->url : "";
        /* The daemon's answers carry URLs redacted already; redacting again
         * changes nothing there and keeps "shown" the only form printed. */
        if (rv_url_redact(ob->url, &ob->shown) != RV_OK)
            ob->shown = strdup(ob->url);
        ob->display = strdup(nonempty(os->destination) ? os->destination : ob->url);
        ob->dest = nonempty(os->destination) ? strdup(os->destination) : NULL;
        if (!ob->display || !ob->shown)
            return RV_E_NOMEM;
        v->name = ob->display;
        v->retries = os->retries;
        take_progress(v, os->progress);
        v->state = RV_STATE_QUEUED;
        switch (os->state) {
        case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_DONE: {
            Retriever__V1__Completed c = RETRIEVER__V1__COMPLETED__INIT;
            c.path = os->destination;
            c.size = os->progress ? os->progress->bytes_done : 0;
            c.sha256 = os->sha256;
            c.crc32c = os->crc32c;
            report_final(r, i, RV_STATE_DONE, &c, RV_OK, NULL, NULL, snap->time_unix_ms);
            break;
        }
        case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_FAILED:
            report_failed(r, i, os->error, snap->time_unix_ms);
            break;
        case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_CANCELLED:
            report_cancelled(r, i, snap->time_unix_ms);
            break;
        case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_QUEUED:
        case RETRIEVER__V1__OBJECT_STATE__OBJECT_STATE_UNSPECIFIED:
            break;
        default:
            v->state = RV_STATE_DOWNLOADING;
            break;
        }
    }
    return RV_OK;
}

int rvc_remote_watch(const char *path, const char *job_id, bool json, FILE *out, FILE *err) {
    /* What download's output code reads of the options: the output kind. */
    rvc_download_opts o = {.json = json, .retries = -1, .digest = -1, .http2 = -1};
    struct run r = {0};
    rvc_rpc *conn = NULL;
    rvc_rpc_stream *stream = NULL;
    rvc_rpc_status st = {0};
    ProtobufCMessage *first = NULL;
    int code = RVC_EXIT_OK;

    pthread_mutex_init(&r.lock, NULL);
    rvc_run_init(&r.c, &o, out, err, true);
    code = start_call(&r, path, &conn);
    if (!conn)
        goto out;
    int e;
    Retriever__V1__WatchRequest req = RETRIEVER__V1__WATCH_REQUEST__INIT;
    req.job_id = (char *)job_id;
    req.batch_events = false; /* the Snapshot comes alone, first */
    e = open_stream(&r, conn, "Watch", &req.base, &stream);
    if (e != RV_OK) {
        code = rvc_exit_code(e);
        goto out;
    }

    /* The first event is the Snapshot, or the refusal. */
    rvc_rpc_next n;
    do
        n = rvc_rpc_stream_next(stream, &retriever__v1__job_event__descriptor, -1, &first, &st);
    while (n == RVC_RPC_TIMEOUT);
    const Retriever__V1__JobEvent *ev = (const Retriever__V1__JobEvent *)first;
    if (n == RVC_RPC_END || ev->event_case != RETRIEVER__V1__JOB_EVENT__EVENT_SNAPSHOT ||
        !ev->snapshot->job) {
        r.c.signo = rvc_sigwatch_received(r.sigwatch);
        if (r.c.signo) {
            code = rvc_exit_for_signal(r.c.signo);
        } else if (n == RVC_RPC_END && (st.code == RVC_RPC_NOT_FOUND ||
                                        st.code == RVC_RPC_INVALID_ARGUMENT)) {
            rvc_buf_puts(&r.c.msg, PROG ": no job '");
            rvc_sanitize(&r.c.msg, job_id, 80);
            rvc_buf_puts(&r.c.msg, "' of yours ('" PROG " list --all' shows your jobs)");
            rvc_report_line(&r.c.rep);
            code = RVC_EXIT_USAGE;
        } else if (n == RVC_RPC_END) {
            print_status(&r.c.rep, "Watch", &st);
            code = rvc_exit_for_rpc(st.code);
        } else {
            rvc_buf_puts(&r.c.msg, PROG ": retrieverd's Watch did not start with a snapshot");
            rvc_report_line(&r.c.rep);
            code = RVC_EXIT_INTERNAL;
        }
        goto out;
    }
    rvc_progress_mode mode = rvc_report_progress_mode(&o, r.c.err_tty);
    e = open_objects(&r, ev->snapshot->job->n_objects, mode, false);
    if (e == RV_OK)
        e = watch_objects(&r, ev);
    if (e != RV_OK) {
        fprintf(err, PROG ": %s\n", rv_strerror(e));
        code = rvc_exit_code(e);
        goto out;
    }
    /* A job that had ended already has no more events: its stream ends. */
    code = follow(&r, stream, &st);

out:
    run_done(&r, stream, conn, &st);
    if (first) /* after the objects: they borrowed its URLs */
        protobuf_c_message_free_unpacked(first, NULL);
    return code;
}

/* ------------------------------------------------------------------------
 * The module's entry: the one symbol retrieverctl-remote.so exports
 * (remotemod.h; remote.map hides the rest).
 * ------------------------------------------------------------------------ */

/* For remotecache.c: the daemon download finds (rvc_daemon_find; started
 * when autostart says so and none answers), connected. */
rvc_rpc *rvc_remote_connect(const char *socket_opt, bool autostart, rvc_report *rp,
                            int *ret_code) {
    char *path = rvc_daemon_find(socket_opt, autostart, rp->err, ret_code);
    rvc_rpc *c = path ? connect_to(path, NULL, rp, ret_code) : NULL;
    free(path);
    return c;
}

void rvc_remote_print_status(rvc_report *rp, const char *method, const rvc_rpc_status *st) {
    print_status(rp, method, st);
}

void rvc_remote_method(const char *method, char *buf, size_t n) {
    method_path(method, buf, n);
}

const rvc_remote_module rvc_remote_entry = {
    .abi = RVC_REMOTE_ABI,
    .ping = rvc_remote_ping,
    .download = rvc_remote_download,
    .jobs = rvc_jobs_run,
    .cache = rvc_remote_cache,
    .cat = rvc_remote_cat,
};
