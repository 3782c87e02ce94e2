/* report.c — the lines `download` writes, in both modes. */
#include "report.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "retriever/rv_error.h"

#define PROG "retrieverctl"

void rvc_report_line(rvc_report *rp) {
    rvc_buf *m = rp->msg;
    if (rvc_buf_error(m) != RV_OK) {
        rvc_buf_reset(m);
        rvc_buf_puts(m, PROG ": (message too long to show)");
    }
    if (rp->progress)
        rvc_progress_print(rp->progress, rvc_buf_str(m));
    else
        fprintf(rp->err, "%s\n", rvc_buf_str(m));
    rvc_buf_reset(m);
}

void rvc_report_error(rvc_report *rp, const char *url, const char *message, const char *detail) {
    rvc_buf *m = rp->msg;
    rvc_buf_puts(m, PROG ": '");
    rvc_sanitize(m, url, RVC_REPORT_MSG_MAX / 4);
    rvc_buf_puts(m, "': ");
    rvc_sanitize(m, message, RVC_REPORT_MSG_MAX / 4);
    if (detail && *detail) {
        rvc_buf_puts(m, " (");
        rvc_sanitize(m, detail, RVC_REPORT_MSG_MAX / 4);
        rvc_buf_putc(m, ')');
    }
    rvc_report_line(rp);
}

void rvc_report_rejected(rvc_report *rp, const char *url, int code, const char *message,
                         const char *detail) {
    if (code == RV_E_DEST_UNWRITABLE && rp->shown_reject == code && detail &&
        rp->shown_reject_detail && strcmp(rp->shown_reject_detail, detail) == 0) {
        rp->same_rejects++;
        return;
    }
    rvc_report_rejected_end(rp);
    rvc_report_error(rp, url, message, detail);
    rp->shown_reject = code;
    rp->shown_reject_detail = detail;
}

void rvc_report_rejected_end(rvc_report *rp) {
    if (rp->same_rejects) {
        rvc_buf_printf(rp->msg, PROG ": (%zu more URL%s rejected for the same reason)",
                       rp->same_rejects, rp->same_rejects == 1 ? "" : "s");
        rvc_report_line(rp);
    }
    rp->same_rejects = 0;
}

void rvc_report_json(rvc_report *rp, const rvc_json_result *res) {
    rvc_buf line;
    rvc_buf_init(&line, RVC_REPORT_MSG_MAX * 4);
    int e = rvc_json_result_line(&line, res);
    if (e != RV_OK) {
        /* Only an absurdly long URL gets here: keep the schema, drop it. */
        rvc_json_result shorter = *res;
        shorter.url = "(too long to show)";
        shorter.path = NULL;
        shorter.detail = NULL;
        rvc_buf_reset(&line);
        e = rvc_json_result_line(&line, &shorter);
    }
    if (rp->out_tty && rp->progress)
        rvc_progress_clear(rp->progress); /* stdout shares the terminal */
    if (e == RV_OK && !rp->out_failed &&
        (fwrite(line.data, 1, line.len, rp->out) != line.len || fflush(rp->out) != 0)) {
        rp->out_failed = true;
        rvc_buf_printf(rp->msg, PROG ": cannot write to standard output: %s", strerror(errno));
        rvc_report_line(rp);
    }
    rvc_buf_done(&line);
}

/* " (RATE)" for bytes in seconds, or nothing when the time is too short
 * for the rate to mean anything: a cache hit or a small file can end
 * within a millisecond, where bytes/seconds is "0 B/s" (no time measured)
 * or a figure no network gave. */
static void put_rate(rvc_buf *m, uint64_t bytes, double seconds) {
    char rate[RVC_FMT_MAX];
    if (!(seconds >= RVC_RATE_MIN_SECONDS) || bytes == 0)
        return;
    rvc_fmt_rate((double)bytes / seconds, rate);
    rvc_buf_printf(m, " (%s)", rate);
}

void rvc_report_done(rvc_report *rp, const char *name, uint64_t bytes, double seconds,
                     unsigned retries, bool verified, const char *sha256_hex, const char *note) {
    rvc_buf *m = rp->msg;
    char size[RVC_FMT_MAX], el[RVC_FMT_MAX];
    rvc_fmt_size(bytes, size);
    rvc_fmt_elapsed(seconds, el);
    rvc_buf_puts(m, "done: '");
    rvc_sanitize(m, name, RVC_REPORT_MSG_MAX / 4);
    rvc_buf_printf(m, "' %s in %s", size, el);
    put_rate(m, bytes, seconds);
    if (retries)
        rvc_buf_printf(m, ", %u %s", retries, retries == 1 ? "retry" : "retries");
    if (verified) {
        rvc_buf_puts(m, ", sha256 verified");
    } else if (sha256_hex && *sha256_hex) {
        rvc_buf_puts(m, ", sha256 ");
        rvc_sanitize(m, sha256_hex, 128);
    }
    if (note) {
        rvc_buf_puts(m, ", ");
        rvc_buf_puts(m, note);
    }
    rvc_report_line(rp);
}

void rvc_report_resuming(rvc_report *rp, const char *name, uint64_t from, uint64_t total,
                         bool total_known) {
    char f[RVC_FMT_MAX], t[RVC_FMT_MAX];
    rvc_fmt_size(from, f);
    rvc_buf_putc(rp->msg, '\'');
    rvc_sanitize(rp->msg, name, RVC_REPORT_MSG_MAX / 4);
    rvc_buf_printf(rp->msg, "': resuming at %s", f);
    if (total_known) {
        rvc_fmt_size(total, t);
        rvc_buf_printf(rp->msg, " of %s", t);
    }
    rvc_report_line(rp);
}

#define KEPT_NAMED 3 /* items named in the interruption line */

void rvc_report_interrupted(rvc_report *rp, int signo, const rvc_progress_item *items,
                            const uint64_t *kept, size_t n, bool no_state, bool daemon,
                            const char *job_id) {
    rvc_buf *m = rp->msg;
    size_t named = 0, more = 0, unfinished = 0;
    rvc_buf_printf(m, PROG ": interrupted (%s)", signo == SIGINT ? "SIGINT" : "SIGTERM");
    if (daemon) {
        rvc_buf_puts(m, ": left job ");
        rvc_sanitize(m, job_id ? job_id : "?", 128);
        rvc_buf_puts(m, ", which goes on if another client follows it, else is cancelled");
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].state == RV_STATE_DONE)
            continue;
        unfinished++;
        if (!kept || !kept[i])
            continue;
        if (named == KEPT_NAMED) {
            more++;
            continue;
        }
        char sz[RVC_FMT_MAX];
        rvc_fmt_size(kept[i], sz);
        rvc_buf_printf(m, "%s%s%s of ", named ? ", " : ": kept ", daemon ? "up to " : "", sz);
        rvc_sanitize(m, items[i].name, RVC_REPORT_MSG_MAX / 8);
        named++;
    }
    if (more)
        rvc_buf_printf(m, " and parts of %zu more", more);
    if (named)
        rvc_buf_puts(m, "; run the same command to resume");
    else if (unfinished && no_state)
        rvc_buf_printf(m, ": cancelled %zu download%s, temporary files removed", unfinished,
                       unfinished == 1 ? "" : "s");
    else if (unfinished)
        rvc_buf_printf(m, ": %zu unfinished download%s, nothing durable yet to keep", unfinished,
                       unfinished == 1 ? "" : "s");
    else if (!daemon)
        rvc_buf_puts(m, ": every download had finished, nothing was cancelled");
    rvc_report_line(rp);
}

void rvc_report_tally(const rvc_progress_item *items, size_t n, rvc_tally *ret) {
    *ret = (rvc_tally){0};
    for (size_t i = 0; i < n; i++) {
        switch (items[i].state) {
        case RV_STATE_DONE:
            ret->done++;
            ret->bytes += items[i].p.bytes_done;
            break;
        case RV_STATE_CANCELLED:
            ret->cancelled++;
            break;
        default:
            ret->failed++;
            break;
        }
    }
}

void rvc_report_total(rvc_report *rp, const rvc_tally *t, double seconds) {
    char size[RVC_FMT_MAX], el[RVC_FMT_MAX];
    rvc_fmt_size(t->bytes, size);
    rvc_fmt_elapsed(seconds, el);
    rvc_buf_printf(rp->msg, "total: %zu done, %zu failed, %zu cancelled; %s in %s", t->done,
                   t->failed, t->cancelled, size, el);
    put_rate(rp->msg, t->bytes, seconds);
    rvc_report_line(rp);
}

rvc_progress_mode rvc_report_progress_mode(const rvc_download_opts *o, bool err_tty) {
    if (o->quiet || o->no_progress)
        return RVC_PROGRESS_NONE;
    const char *term = getenv("TERM");
    if (err_tty && !(term && strcmp(term, "dumb") == 0))
        return RVC_PROGRESS_TTY;
    return RVC_PROGRESS_PLAIN;
}
