/* run.h — the client core of `download` (and `watch`), shared by --local
 * (local.c: the engine in this process) and the daemon mode (remote.c:
 * retrieverd's events over gRPC). The two differ only in where the events
 * come from; what a run keeps per URL, what it prints for each event, the
 * progress display and the exit code are here, once.
 *
 * A run: rvc_run_init, rvc_run_open (one object per URL), then for each
 * object rvc_run_reject before anything starts, or rvc_run_started /
 * rvc_run_retry / rvc_run_final as its events come, rvc_run_draw between
 * events, rvc_run_summary and rvc_run_exit at the end, rvc_run_done always.
 *
 * Single-threaded: everything is called on the thread that runs the
 * command. rvc_run_started and rvc_run_retry only record (local.c calls
 * them from the engine's hooks, which must not print); the lines they
 * make due are printed by rvc_run_resuming and rvc_run_retry_line.
 */
#ifndef RVC_RUN_H
#define RVC_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "cli.h"
#include "progress.h"
#include "report.h"

/* One URL of the command line (or one object of a watched job). */
typedef struct rvc_run_obj {
    const char *url;     /* borrowed (argv, or the watched job's snapshot) */
    char *shown;         /* owned: rv_url_redact(url), the only form ever printed */
    char *display;       /* owned: the destination as the user named it, the final
                          * name once the server gave one; NULL when none */
    char *dest;          /* owned: the absolute destination sent to retrieverd;
                          * NULL in --local (display is what the engine got) */
    int reject;          /* rv_error when rejected before any download, else RV_OK */
    char *reject_detail; /* owned; NULL when none */
    bool reported;       /* its final line (and JSON line) is out */
    int error;           /* once reported: RV_OK (done, skipped), else its rv_error */
    char *retry_reason;  /* owned: of the last retry (the view points here) */
    bool by_server;      /* rvc_named_by_server: the final name comes at delivery */
    bool skipped;        /* --no-clobber kept the file at its final name */
} rvc_run_obj;

typedef struct rvc_run {
    const rvc_download_opts *o; /* borrowed */
    FILE *out, *err;            /* borrowed */
    bool err_tty;
    bool daemon; /* the daemon mode: JSON names dest, and its own skip line */

    rvc_run_obj *objs;        /* owned, n entries; never moves (hooks hold pointers) */
    rvc_progress_item *views; /* owned, n entries: views[i] shows objs[i] */
    size_t n;
    size_t n_reported; /* objects whose final line is out */

    rvc_buf msg;            /* scratch for one message line */
    rvc_report rep;         /* writes msg, errors, JSON lines */
    rvc_progress *progress; /* owned */
    uint64_t start_ms;      /* rvc_now_ms at rvc_run_init */
    int signo;              /* the signal that interrupted the run, 0 if none */

    /* Called by rvc_run_draw just before a frame is drawn (NULL: none):
     * local.c sets the views' connection counts there. */
    void (*before_draw)(void *ud);
    void *before_draw_ud;
} rvc_run;

/* The fields above from o, out and err; nothing allocated yet. */
void rvc_run_init(rvc_run *r, const rvc_download_opts *o, FILE *out, FILE *err, bool daemon);

/* n objects and their views, and the progress display in mode. With urls,
 * object i is o->urls[i] (redacted for showing); else the caller fills
 * url and shown. RV_OK or RV_E_NOMEM (rvc_run_done still frees). */
int rvc_run_open(rvc_run *r, size_t n, rvc_progress_mode mode, bool urls);

/* Object i is rejected before anything starts: e, the line's message
 * (NULL: rv_strerror(e)) and detail (owned by the object from now on, may
 * be NULL), reported by rvc_report_rejected. */
void rvc_run_reject(rvc_run *r, size_t i, int e, const char *message, char *detail);

/* rvc_run_reject for a URL that names no output file (e from
 * rvc_destination_of): the words both modes use. */
void rvc_run_reject_unnamed(rvc_run *r, size_t i, int e);

/* After rejections (rvc_report_rejected_end done): the "nothing
 * downloaded" line, one JSON line per URL in command-line order, and the
 * exit code of the first rejected URL. */
int rvc_run_rejected(rvc_run *r, size_t rejected);

/* Object i started with `durable` bytes already there from an earlier run
 * (views[i].p as known at the start): all of it is a cache hit, part of
 * it a resume. True when a "resuming at" line is due (rvc_run_resuming). */
bool rvc_run_started(rvc_run *r, size_t i, uint64_t durable);
void rvc_run_resuming(rvc_run *r, size_t i);

/* Object i retries (attempt, in wait_ms, because of reason): its view
 * says so. True when a line is due too (plain progress and
 * --no-progress; the TTY area shows it): rvc_run_retry_line. */
bool rvc_run_retry(rvc_run *r, size_t i, unsigned attempt, uint64_t wait_ms,
                   const char *reason);
void rvc_run_retry_line(rvc_run *r, size_t i, unsigned attempt, uint64_t wait_ms,
                        uint64_t offset, const char *reason);

/* How an object ended, for rvc_run_final. */
typedef struct rvc_run_end {
    rv_state state;      /* DONE, FAILED or CANCELLED */
    int error;           /* not DONE: the rv_error (not RV_OK) */
    const char *message; /* not DONE: the error line's message */
    const char *detail;  /* may be NULL */
    bool no_error_line;  /* not DONE: no error line (this run stopped it) */
    char *display;       /* owned by the run from here: the final name to show
                          * (the server named it); NULL: unchanged */
    const char *path;    /* the JSON line's path; NULL: dest (daemon) or display */
    uint64_t bytes;
    double seconds;
    const char *sha256; /* NULL or "": none */
    bool has_crc32c;
    uint32_t crc32c;
} rvc_run_end;

/* Object i ended: its final line (done, error, or skipped for
 * --no-clobber) and JSON line. The caller has put its bytes, retries and
 * cached flag in views[i]. */
void rvc_run_final(rvc_run *r, size_t i, rvc_run_end *e);

/* Draw a frame when one is due. */
void rvc_run_draw(rvc_run *r);

/* The interrupted line when signo (kept[i]: the bytes object i keeps, may
 * be NULL; no_state and job_id as rvc_report_interrupted takes them) and,
 * for several URLs without -q (nor the daemon mode's --detach), the total
 * line. */
void rvc_run_summary(rvc_run *r, const uint64_t *kept, bool no_state, const char *job_id);

/* The exit code of a run that went to its end: the first rejected URL's,
 * else the first failed object's, else RVC_EXIT_LOCAL when writing the
 * output failed, else RVC_EXIT_OK. */
int rvc_run_exit(const rvc_run *r);

/* Frees what the run owns (objects, views, display, message buffer). */
void rvc_run_done(rvc_run *r);

#endif
