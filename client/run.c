/* run.c — the client core of `download` and `watch` (run.h): per-object
 * bookkeeping, the lines and JSON lines of each event, the progress feed
 * and the exit code, for --local and the daemon mode alike. */
#include "run.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "clock.h"
#include "exitcode.h"
#include "fmt.h"
#include "input.h"
#include "json.h"
#include "retriever/retriever.h"

#define PROG "retrieverctl"
#define MSG_MAX RVC_REPORT_MSG_MAX

void rvc_run_init(rvc_run *r, const rvc_download_opts *o, FILE *out, FILE *err, bool daemon) {
    *r = (rvc_run){
        .o = o,
        .out = out,
        .err = err,
        .err_tty = isatty(fileno(err)) == 1,
        .daemon = daemon,
        .start_ms = rvc_now_ms(),
    };
    rvc_buf_init(&r->msg, MSG_MAX);
    r->rep = (rvc_report){
        .out = out, .err = err, .out_tty = isatty(fileno(out)) == 1, .msg = &r->msg};
}

int rvc_run_open(rvc_run *r, size_t n, rvc_progress_mode mode, bool urls) {
    r->n = n;
    r->objs = calloc(n ? n : 1, sizeof(*r->objs));
    r->views = calloc(n ? n : 1, sizeof(*r->views));
    int e = r->objs && r->views ? rvc_progress_new(mode, r->err, r->start_ms, &r->progress)
                                : RV_E_NOMEM;
    r->rep.progress = r->progress;
    for (size_t i = 0; urls && i < n && e == RV_OK; i++) {
        r->objs[i].url = r->o->urls[i];
        e = rv_url_redact(r->o->urls[i], &r->objs[i].shown);
    }
    return e;
}

void rvc_run_reject(rvc_run *r, size_t i, int e, const char *message, char *detail) {
    rvc_run_obj *ob = &r->objs[i];
    ob->reject = e;
    ob->reject_detail = detail;
    rvc_report_rejected(&r->rep, ob->shown, e, message ? message : rv_strerror(e), detail);
}

void rvc_run_reject_unnamed(rvc_run *r, size_t i, int e) {
    /* rv_default_filename cannot tell a malformed URL from one whose path
     * has no file name: say both. */
    rvc_run_reject(r, i, e, "cannot name the output file after this URL",
                   strdup("malformed URL, or no file name at the end of its path; "
                          "use -o FILE to name the output"));
}

int rvc_run_rejected(rvc_run *r, size_t rejected) {
    if (r->n > 1) {
        rvc_buf_printf(&r->msg, PROG ": nothing downloaded: %zu of %zu URLs rejected", rejected,
                       r->n);
        rvc_report_line(&r->rep);
    }
    for (size_t i = 0; r->o->json && i < r->n; i++) {
        const rvc_run_obj *ob = &r->objs[i];
        rvc_json_result res = {
            .url = ob->shown,
            .path = ob->display,
            .state = ob->reject != RV_OK ? "rejected" : "cancelled",
            .error = ob->reject != RV_OK ? ob->reject : RV_E_CANCELLED,
            .detail =
                ob->reject != RV_OK ? ob->reject_detail : "not started: another URL was rejected",
        };
        rvc_report_json(&r->rep, &res);
    }
    return rvc_run_exit(r);
}

bool rvc_run_started(rvc_run *r, size_t i, uint64_t durable) {
    rvc_progress_item *v = &r->views[i];
    if (durable && v->p.total_known && durable >= v->p.bytes_total) {
        v->cached = true;
        return false;
    }
    v->resumed_from = durable;
    return durable != 0;
}

void rvc_run_resuming(rvc_run *r, size_t i) {
    const rvc_progress_item *v = &r->views[i];
    if (!r->o->quiet)
        rvc_report_resuming(&r->rep, v->name, v->resumed_from, v->p.bytes_total,
                            v->p.total_known);
}

bool rvc_run_retry(rvc_run *r, size_t i, unsigned attempt, uint64_t wait_ms,
                   const char *reason) {
    rvc_run_obj *ob = &r->objs[i];
    rvc_progress_item *v = &r->views[i];
    v->retries++;
    v->retry_attempt = attempt;
    v->retry_until_ms = rvc_now_ms() + wait_ms;
    char *copy = strdup(reason);
    if (copy) { /* out of memory: the last reason stands */
        free(ob->retry_reason);
        ob->retry_reason = copy;
    }
    v->retry_reason = ob->retry_reason;
    return !r->o->quiet && rvc_progress_get_mode(r->progress) != RVC_PROGRESS_TTY;
}

void rvc_run_retry_line(rvc_run *r, size_t i, unsigned attempt, uint64_t wait_ms,
                        uint64_t offset, const char *reason) {
    char w[RVC_FMT_MAX];
    rvc_fmt_elapsed((double)wait_ms / 1000.0, w);
    rvc_buf_puts(&r->msg, "retry: '");
    rvc_sanitize(&r->msg, r->views[i].name, MSG_MAX / 4);
    rvc_buf_printf(&r->msg, "' retry %u in %s, from byte %llu: ", attempt, w,
                   (unsigned long long)offset);
    rvc_sanitize(&r->msg, reason, MSG_MAX / 4);
    rvc_report_line(&r->rep);
}

void rvc_run_final(rvc_run *r, size_t i, rvc_run_end *e) {
    rvc_run_obj *ob = &r->objs[i];
    rvc_progress_item *v = &r->views[i];
    bool done = e->state == RV_STATE_DONE;

    v->state = e->state;
    v->retry_until_ms = 0;
    ob->reported = true;
    r->n_reported++;
    if (e->display) {
        free(ob->display);
        ob->display = e->display;
        e->display = NULL;
        v->name = ob->display;
    }
    ob->error = done ? RV_OK : e->error;
    const char *path = e->path ? e->path : r->daemon ? ob->dest : ob->display;

    /* The engine (or retrieverd) kept an existing file at the name the
     * server gave: not a failure with --no-clobber. */
    ob->skipped = e->state == RV_STATE_FAILED && e->error == RV_E_DEST_EXISTS && ob->by_server &&
                  r->o->no_clobber;
    if (ob->skipped) {
        ob->error = RV_OK;
        if (!r->o->quiet && r->daemon) { /* retrieverd's detail names the final file */
            rvc_report_error(&r->rep, ob->shown, "skipped (--no-clobber)", e->detail);
        } else if (!r->o->quiet) {
            rvc_buf_printf(&r->msg, PROG ": skipped '%s': '%s' exists (--no-clobber)", ob->shown,
                           ob->display);
            rvc_report_line(&r->rep);
        }
        if (r->o->json) {
            rvc_json_result res = {.url = ob->shown, .path = path, .state = "skipped"};
            rvc_report_json(&r->rep, &res);
        }
        return;
    }

    if (done && !r->o->quiet)
        rvc_report_done(&r->rep, ob->display, v->p.bytes_done, e->seconds, v->retries,
                        rvc_input_sha256(r->o, i) != NULL, e->sha256, v->cached ? "cached" : NULL);
    else if (!done && !e->no_error_line)
        rvc_report_error(&r->rep, ob->shown, e->message, e->detail);

    if (r->o->json) {
        rvc_json_result res = {
            .url = ob->shown,
            .path = path,
            .state = rv_state_name(e->state),
            .bytes = v->p.bytes_done,
            .sha256 = e->sha256,
            .has_crc32c = e->has_crc32c,
            .crc32c = e->crc32c,
            .seconds = e->seconds,
            .retries = v->retries,
            /* What the display says: "cached", "resuming at SIZE". */
            .cached_bytes = v->cached ? v->p.bytes_done : 0,
            .resumed_bytes = v->cached ? 0 : v->resumed_from,
            .error = ob->error,
            .detail = e->detail,
        };
        rvc_report_json(&r->rep, &res);
    }
}

void rvc_run_draw(rvc_run *r) {
    uint64_t now = rvc_now_ms();
    if (rvc_progress_timeout_ms(r->progress, now) != 0)
        return;
    struct winsize ws;
    unsigned cols = 0, rows = 0;
    if (r->err_tty && ioctl(fileno(r->err), TIOCGWINSZ, &ws) == 0) {
        cols = ws.ws_col;
        rows = ws.ws_row;
    }
    if (r->before_draw)
        r->before_draw(r->before_draw_ud);
    rvc_progress_render(r->progress, r->views, r->n, now, cols, rows, false);
}

void rvc_run_summary(rvc_run *r, const uint64_t *kept, bool no_state, const char *job_id) {
    if (r->signo)
        rvc_report_interrupted(&r->rep, r->signo, r->views, kept, r->n, no_state, r->daemon,
                               job_id);
    if (r->o->quiet || r->n < 2 || (r->daemon && r->o->detach)) /* --local ignores --detach */
        return;
    rvc_tally t;
    rvc_report_tally(r->views, r->n, &t);
    rvc_report_total(&r->rep, &t, (double)(rvc_now_ms() - r->start_ms) / 1000.0);
}

int rvc_run_exit(const rvc_run *r) {
    /* A rejected URL means nothing ran: the first rejected one decides. */
    for (size_t i = 0; i < r->n; i++)
        if (r->objs[i].reject != RV_OK)
            return rvc_exit_code(r->objs[i].reject);
    for (size_t i = 0; i < r->n; i++)
        if (r->objs[i].error != RV_OK)
            return rvc_exit_code(r->objs[i].error);
    return r->rep.out_failed ? RVC_EXIT_LOCAL : RVC_EXIT_OK;
}

void rvc_run_done(rvc_run *r) {
    r->progress = r->rep.progress = rvc_progress_free(r->progress);
    for (size_t i = 0; r->objs && i < r->n; i++) {
        free(r->objs[i].display);
        free(r->objs[i].shown);
        free(r->objs[i].dest);
        free(r->objs[i].reject_detail);
        free(r->objs[i].retry_reason);
    }
    free(r->objs);
    free(r->views);
    r->objs = NULL;
    r->views = NULL;
    rvc_buf_done(&r->msg);
}
