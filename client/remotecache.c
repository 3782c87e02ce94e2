/* remotecache.c — `cache ACTION` and `cat URL` through retrieverd (part of
 * retrieverctl-remote.so; remote.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cachecmd.h"
#include "exitcode.h"
#include "remote.h"
#include "daemonfind.h"
#include "remoteconn.h"
#include "report.h"
#include "retriever/retriever.h"
#include "retriever/v1/retriever.pb-c.h"
#include "rpc.h"

#define PROG "retrieverctl"
/* After a Read that did not end OK, how long the job's Failed event may
 * take to follow (it is sent before the Read ends; this bounds a daemon
 * that never sends it). */
#define FAILURE_WAIT_MS 5000


static const char *result_name(Retriever__V1__CacheResult r) {
    switch (r) {
    case RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_LISTED: return "listed";
    case RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_REMOVED: return "removed";
    case RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_IN_USE: return "in-use";
    case RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_INTACT: return "intact";
    case RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_CORRUPT_REMOVED: return "corrupt-removed";
    case RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_CORRUPT_IN_USE: return "corrupt-in-use";
    default: return "unknown";
    }
}

int rvc_remote_cache(const rvc_cmd *cmd, const char *socket_opt, FILE *out, FILE *err) {
    rvc_buf msg;
    rvc_buf_init(&msg, RVC_REPORT_MSG_MAX);
    rvc_report rep = {.out = out, .err = err, .msg = &msg};
    const char *a = cmd->cache_action;
    int code = RVC_EXIT_OK;
    rvc_rpc_stream *s = NULL;
    rvc_rpc_status st = {0};
    unsigned n = 0, bad = 0, busy = 0;
    char method[128];
    const char *name;

    rvc_rpc *c = rvc_remote_connect(socket_opt, false, &rep, &code);
    if (!c)
        goto out;
    Retriever__V1__CacheListRequest lr = RETRIEVER__V1__CACHE_LIST_REQUEST__INIT;
    Retriever__V1__CacheVerifyRequest vr = RETRIEVER__V1__CACHE_VERIFY_REQUEST__INIT;
    Retriever__V1__CacheRemoveRequest rr = RETRIEVER__V1__CACHE_REMOVE_REQUEST__INIT;
    const ProtobufCMessage *req;
    if (strcmp(a, "ls") == 0) {
        name = "CacheList";
        req = &lr.base;
    } else if (strcmp(a, "verify") == 0) {
        name = "CacheVerify";
        req = &vr.base;
    } else {
        name = "CacheRemove";
        rr.all = strcmp(a, "clear") == 0;
        if (!rr.all) {
            rr.n_urls = cmd->dl.n_urls - 1;
            rr.urls = (char **)cmd->dl.urls + 1;
        }
        req = &rr.base;
    }
    rvc_remote_method(name, method, sizeof(method));
    if (rvc_rpc_stream_open(c, method, req, &s) != RV_OK) {
        fprintf(err, PROG ": %s\n", rv_strerror(RV_E_NOMEM));
        code = RVC_EXIT_INTERNAL;
        goto out;
    }
    for (;;) {
        ProtobufCMessage *m = NULL;
        rvc_rpc_next nx = rvc_rpc_stream_next(s, &retriever__v1__cache_entry__descriptor, -1, &m,
                                              &st);
        if (nx == RVC_RPC_END)
            break;
        if (nx != RVC_RPC_MESSAGE)
            continue;
        const Retriever__V1__CacheEntry *e = (const Retriever__V1__CacheEntry *)m;
        rvc_cache_line l = {.url = e->url, .size_known = e->size_known, .size = e->size,
                            .bytes = e->bytes, .complete = e->complete, .in_use = e->in_use,
                            .keyed = e->keyed, .used_unix = e->used_unix_ms / 1000,
                            .result = result_name(e->result)};
        n++;
        bad += e->result == RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_CORRUPT_REMOVED ||
               e->result == RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_CORRUPT_IN_USE;
        busy += e->result == RETRIEVER__V1__CACHE_RESULT__CACHE_RESULT_IN_USE;
        rvc_cache_print(out, cmd->dl.json, &l);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (st.code != RVC_RPC_OK) {
        rvc_remote_print_status(&rep, name, &st);
        code = rvc_exit_for_rpc(st.code);
    } else {
        if (strcmp(a, "rm") == 0 && n == 0)
            fprintf(err, PROG ": cache rm: nothing cached for the URL%s given\n",
                    cmd->dl.n_urls > 2 ? "s" : "");
        code = rvc_cache_finish(a, n, bad, busy, err);
    }
out:
    rvc_rpc_stream_free(s);
    rvc_rpc_status_done(&st);
    rvc_rpc_free(c);
    rvc_buf_done(&msg);
    return code;
}

/* Write all of [p, p+n) to fd: 0 or an errno (EPIPE: the reader left). */
static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The job's failure, from its Download stream's events (read until the
 * stream ends, which it does with the job, each wait bounded): the
 * object's Failed error, printed, as an exit code; 0 when none came. */
static int job_failure(rvc_rpc_stream *dl, const char *url, FILE *err) {
    rvc_rpc_status st = {0};
    int code = 0;
    for (int i = 0; i < 10000 && !code; i++) {
        ProtobufCMessage *m = NULL;
        if (rvc_rpc_stream_next(dl, &retriever__v1__job_event__descriptor, FAILURE_WAIT_MS, &m,
                                &st) != RVC_RPC_MESSAGE)
            break;
        const Retriever__V1__JobEvent *ev = (const Retriever__V1__JobEvent *)m;
        const Retriever__V1__JobEvent *one = ev->n_batch ? NULL : ev;
        for (size_t k = 0; k < ev->n_batch || one; k++) {
            const Retriever__V1__JobEvent *x = one ? one : ev->batch[k];
            if (x->event_case == RETRIEVER__V1__JOB_EVENT__EVENT_FAILED && x->failed->error) {
                const Retriever__V1__Error *e = x->failed->error;
                fprintf(err, PROG ": %s: %s%s%s\n", url, e->message, *e->detail ? ": " : "",
                        e->detail);
                code = rvc_exit_code(rvc_error_from_name(e->code));
            }
            if (one)
                break;
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    rvc_rpc_status_done(&st);
    return code;
}

int rvc_remote_cat(const rvc_download_opts *o, const char *socket_opt, FILE *out, FILE *err) {
    rvc_buf msg;
    rvc_buf_init(&msg, RVC_REPORT_MSG_MAX);
    rvc_report rep = {.out = out, .err = err, .msg = &msg};
    int code = RVC_EXIT_OK;
    rvc_rpc_stream *dl = NULL, *rd = NULL;
    rvc_rpc_status st = {0};
    char method[128];
    char *job_id = NULL;
    rvc_request q = {0};
    uint64_t written = 0; /* bytes on standard output */

    rvc_rpc *c = rvc_remote_connect(socket_opt, rvc_autostart_wanted(o->no_autostart), &rep, &code);
    if (!c)
        goto out;
    /* A Download with no destination (the daemon keeps the object for
     * Read), subscribed: when this process goes, the daemon sees its
     * subscriber leave, and the job stops unless others wait for it. The
     * request is download's, options and all (remote.c). */
    int e = rvc_remote_request(o, 1, NULL, NULL, &q);
    if (e != RV_OK) {
        fprintf(err, PROG ": %s\n", rv_strerror(e));
        code = rvc_exit_code(e);
        goto out;
    }
    q.msg.no_replace = false;    /* there is no destination to replace */
    q.msg.batch_events = false;  /* the first event names the job, alone */
    rvc_remote_method("Download", method, sizeof(method));
    if (rvc_rpc_stream_open(c, method, &q.msg.base, &dl) != RV_OK) {
        code = RVC_EXIT_INTERNAL;
        goto out;
    }
    ProtobufCMessage *m = NULL;
    if (rvc_rpc_stream_next(dl, &retriever__v1__job_event__descriptor, -1, &m, &st) !=
        RVC_RPC_MESSAGE) {
        rvc_remote_print_status(&rep, "Download", &st);
        code = rvc_exit_for_rpc(st.code);
        goto out;
    }
    job_id = strdup(((const Retriever__V1__JobEvent *)m)->job_id);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!job_id) {
        code = RVC_EXIT_INTERNAL;
        goto out;
    }
    Retriever__V1__ReadRequest rr = RETRIEVER__V1__READ_REQUEST__INIT;
    rr.job_id = job_id;
    rvc_remote_method("Read", method, sizeof(method));
    if (rvc_rpc_stream_open(c, method, &rr.base, &rd) != RV_OK) {
        code = RVC_EXIT_INTERNAL;
        goto out;
    }
    fflush(out);
    for (;;) {
        m = NULL;
        rvc_rpc_next nx = rvc_rpc_stream_next(rd, &retriever__v1__read_chunk__descriptor, -1, &m,
                                              &st);
        if (nx == RVC_RPC_END)
            break;
        if (nx != RVC_RPC_MESSAGE)
            continue;
        const Retriever__V1__ReadChunk *ch = (const Retriever__V1__ReadChunk *)m;
        int w = write_all(fileno(out), ch->data.data, ch->data.len);
        written += w ? 0 : ch->data.len;
        protobuf_c_message_free_unpacked(m, NULL);
        if (w == EPIPE) {
            /* The reader has what it wanted: a quiet end, exit 0. Leaving
             * (the streams are cancelled below) detaches this subscriber. */
            code = RVC_EXIT_OK;
            goto out;
        }
        if (w) {
            fprintf(err, PROG ": cannot write to standard output: %s\n", strerror(w));
            code = RVC_EXIT_LOCAL;
            goto out;
        }
    }
    if (st.code != RVC_RPC_OK) {
        /* The job's own failure says more than the Read's end. */
        code = job_failure(dl, o->urls[0], err);
        if (!code) {
            rvc_remote_print_status(&rep, "Read", &st);
            code = rvc_exit_for_rpc(st.code);
        }
    }
    /* The Read ends OK only once the object is delivered, that is
     * verified (daemon/server.c). */
    rvc_cat_verdict(o, code, written, err);
out:
    if (rd)
        rvc_rpc_stream_cancel(rd);
    if (dl)
        rvc_rpc_stream_cancel(dl);
    rvc_rpc_stream_free(rd);
    rvc_rpc_stream_free(dl);
    rvc_rpc_status_done(&st);
    rvc_rpc_free(c);
    rvc_remote_request_done(&q);
    free(job_id);
    rvc_buf_done(&msg);
    return code;
}
