/* progress.h — rendering download progress to stderr.
 *
 * Two renderers behind one interface:
 *
 *   TTY    a live area at the bottom of the terminal, redrawn in place at
 *          most every RVC_PROGRESS_TTY_MS (so at most 10 frames a second,
 *          permanent lines included): one line per unfinished download
 *          (name, percent, bar, bytes, rate, ETA, connections, retries; or
 *          "waiting", "resuming at SIZE", "cached", or the pending retry
 *          with its reason) and, with several downloads, a total line.
 *          Widths are display columns (rvc_utf8_cols: wcwidth), so names
 *          with wide or accented characters align; names too wide are cut
 *          at the front with an ellipsis. Permanent lines (completions,
 *          errors) go above it.
 *   PLAIN  for logs and pipes: every RVC_PROGRESS_PLAIN_MS, one
 *          "progress: ..." line per active download and a total line with
 *          several downloads; nothing is ever redrawn.
 *   NONE   (-q, --no-progress) no progress; permanent lines still print.
 *
 * The renderer owns no download state: each render gets a snapshot of all
 * items. Times are monotonic milliseconds passed in by the caller, and the
 * terminal size too, so rendering is deterministic and testable (render into
 * an open_memstream FILE).
 */
#ifndef RVC_PROGRESS_H
#define RVC_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "retriever/retriever.h"

#define RVC_PROGRESS_TTY_MS 100
#define RVC_PROGRESS_PLAIN_MS 2000
#define RVC_PROGRESS_MAX_LINES 10 /* object lines in one TTY frame or plain tick */

typedef enum rvc_progress_mode {
    RVC_PROGRESS_NONE = 0,
    RVC_PROGRESS_PLAIN,
    RVC_PROGRESS_TTY,
} rvc_progress_mode;

/* One download as the renderer sees it. */
typedef struct rvc_progress_item {
    const char *name; /* borrowed: what to call it (its destination) */
    rv_state state;
    rv_progress p;
    unsigned retries;         /* retries so far */
    uint64_t retry_until_ms;  /* a retry waits until then; 0: none pending */
    unsigned retry_attempt;   /* of the pending retry */
    const char *retry_reason; /* borrowed; set when a retry is pending */
    /* Added after the first version; zero means "not known / none", so a
     * caller that leaves them zeroed gets the earlier display. */
    uint64_t resumed_from; /* bytes that were durable when it started (a resume) */
    bool cached;           /* served from the cache (a hit), no origin transfer */
    unsigned connections;  /* origin connections in use now; 0: not shown */
} rvc_progress_item;

typedef struct rvc_progress rvc_progress;

/* out is borrowed and must outlive the renderer. The first PLAIN render is
 * due RVC_PROGRESS_PLAIN_MS after now_ms, the first TTY render at once. On
 * success *ret owns the renderer. RV_E_NOMEM. */
int rvc_progress_new(rvc_progress_mode mode, FILE *out, uint64_t now_ms, rvc_progress **ret);

/* Erases the live area (rvc_progress_end) and frees. NULL is fine. Returns
 * NULL. */
rvc_progress *rvc_progress_free(rvc_progress *pr);

rvc_progress_mode rvc_progress_get_mode(const rvc_progress *pr);

/* Milliseconds until the next render is due (0 when overdue); -1 when
 * nothing is ever due (NONE). */
int rvc_progress_timeout_ms(const rvc_progress *pr, uint64_t now_ms);

/* Render items if a render is due at now_ms, or always when force. cols
 * and rows are the terminal's size (TTY only; 0 when unknown). */
void rvc_progress_render(rvc_progress *pr, const rvc_progress_item *items, size_t n,
                         uint64_t now_ms, unsigned cols, unsigned rows, bool force);

/* Print one permanent line (without its newline), in every mode. On a TTY
 * it erases the live area first; the next render (when it is due, at most
 * RVC_PROGRESS_TTY_MS after the last) draws it again below the line. The caller makes the text safe
 * for a terminal (rvc_sanitize on whatever it did not write itself). */
void rvc_progress_print(rvc_progress *pr, const char *line);

/* Erase the live area (TTY) so that someone else can write to the terminal
 * (stdout shares it); the next render is due at once. */
void rvc_progress_clear(rvc_progress *pr);

/* Erase the live area (TTY) for good; later output starts on a clean line. */
void rvc_progress_end(rvc_progress *pr);

#endif
