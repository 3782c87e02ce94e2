/* report.h — the lines `download` writes, shared by the local and the
 * daemon mode so both look the same: one line for people on stderr (above
 * any live progress area), the one error format, the --json lines on
 * stdout, the "done:" line, and the choice of progress renderer.
 *
 * An rvc_report borrows everything it points to; the caller builds a
 * message in *msg and hands it over with rvc_report_line.
 */
#ifndef RVC_REPORT_H
#define RVC_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "cli.h"
#include "json.h"
#include "progress.h"

#define RVC_REPORT_MSG_MAX (64 * 1024) /* longest message line built */

typedef struct rvc_report {
    FILE *out, *err;        /* borrowed: --json lines, and everything for people */
    bool out_tty;           /* stdout shares the terminal with the progress area */
    rvc_progress *progress; /* borrowed; NULL: no renderer (yet) */
    rvc_buf *msg;           /* borrowed scratch: the line being built */
    bool out_failed;        /* writing to out failed (reported once) */
    /* The last rejection reported in full (rvc_report_rejected); its
     * detail is borrowed from the caller's item, which outlives the run. */
    int shown_reject;
    const char *shown_reject_detail;
    size_t same_rejects;    /* rejected since, for the same reason */
} rvc_report;

/* Print *rp->msg as one line of err (above the progress area, if any) and
 * empty it; a message that overflowed prints as "(message too long to
 * show)". */
void rvc_report_line(rvc_report *rp);

/* "retrieverctl: 'URL': message (detail)" — the one error format. detail
 * may be NULL or "". Everything is made safe for a terminal. */
void rvc_report_error(rvc_report *rp, const char *url, const char *message, const char *detail);

/* A URL rejected before any download, in the one error format. Destinations
 * refused in a row for one reason (every URL of a -d DIR that does not
 * exist) are reported once, for the first URL, then counted; other
 * rejections are each reported, as which URL is at fault matters there.
 * detail must stay valid until rvc_report_rejected_end. */
void rvc_report_rejected(rvc_report *rp, const char *url, int code, const char *message,
                         const char *detail);
/* After the last rvc_report_rejected: "(N more URLs rejected for the same
 * reason)", when there were. */
void rvc_report_rejected_end(rvc_report *rp);

/* One --json line to out; an absurdly long URL is replaced, keeping the
 * schema. A write failure is reported once and sets out_failed. */
void rvc_report_json(rvc_report *rp, const rvc_json_result *res);

/* Below this many seconds the done and total lines show no rate: the time
 * is shown as 0.0s, and bytes over it (a cache hit ends within a
 * millisecond) give "0 B/s" or a figure no network gave. */
#define RVC_RATE_MIN_SECONDS 0.05

/* "done: 'NAME' SIZE in TIME[ (RATE)][, N retries][, sha256 verified |
 * , sha256 HEX][, note]": verified when --sha256 was checked, else
 * sha256_hex when known (NULL or "": none); note may be NULL ("cached"
 * for a cache hit). No rate below RVC_RATE_MIN_SECONDS. */
void rvc_report_done(rvc_report *rp, const char *name, uint64_t bytes, double seconds,
                     unsigned retries, bool verified, const char *sha256_hex, const char *note);

/* "'NAME': resuming at SIZE of TOTAL" (", of TOTAL" when known): the
 * download resumes from durable state kept by an earlier run. */
void rvc_report_resuming(rvc_report *rp, const char *name, uint64_t from, uint64_t total,
                         bool total_known);

/* After SIGINT/SIGTERM, what was kept: for each item not done, in order,
 * kept[i] bytes (kept may be NULL: nothing known). One line,
 *   "retrieverctl: interrupted (SIGINT): kept 412.0 MiB of big.iso; run the
 *    same command to resume"
 * naming at most a few items ("and N more"), or "nothing was kept" when no
 * bytes were. daemon: the bytes are retrieverd's (what had arrived when this
 * client left; "up to"), and the job went on if another client follows it. */
void rvc_report_interrupted(rvc_report *rp, int signo, const rvc_progress_item *items,
                            const uint64_t *kept, size_t n, bool no_state, bool daemon,
                            const char *job_id);

/* How the items of a run ended: DONE (and their bytes), CANCELLED, and
 * anything else counted as failed. */
typedef struct rvc_tally {
    size_t done, failed, cancelled;
    uint64_t bytes;
} rvc_tally;

void rvc_report_tally(const rvc_progress_item *items, size_t n, rvc_tally *ret);

/* "total: D done, F failed, C cancelled; SIZE in TIME[ (RATE)]", the
 * summary of a run of several URLs (no rate below RVC_RATE_MIN_SECONDS). */
void rvc_report_total(rvc_report *rp, const rvc_tally *t, double seconds);

/* The renderer for o on err: none with -q/--no-progress, TTY on a terminal
 * (unless TERM=dumb), plain lines otherwise. */
rvc_progress_mode rvc_report_progress_mode(const rvc_download_opts *o, bool err_tty);

#endif
