/* progress.c — TTY and plain progress renderers. */
#include "progress.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fmt.h"
#include "utf8.h"

#define LINE_MAX_BYTES (64 * 1024)
#define FRAME_MAX_BYTES (1024 * 1024)
#define NAME_MAX_COLS 40 /* widest name column on a terminal */
#define BAR_MAX 30
#define BAR_MIN 5
#define STATUS_COLS 56 /* room for "123.4 MiB/567.8 MiB  12.3 MiB/s  ETA 1m05s  4 conn  2 retries" */

struct rvc_progress {
    rvc_progress_mode mode;
    FILE *out;            /* borrowed */
    uint64_t next_due_ms; /* next render time */
    rvc_buf frame;        /* TTY: the live area last drawn, lines joined by '\n' */
    unsigned drawn;       /* TTY: lines of `frame` on the screen now */
    rvc_buf out_buf;      /* what one write puts out */
};

int rvc_progress_new(rvc_progress_mode mode, FILE *out, uint64_t now_ms, rvc_progress **ret) {
    rvc_progress *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return RV_E_NOMEM;
    pr->mode = mode;
    pr->out = out;
    pr->next_due_ms = mode == RVC_PROGRESS_PLAIN ? now_ms + RVC_PROGRESS_PLAIN_MS : now_ms;
    rvc_buf_init(&pr->frame, FRAME_MAX_BYTES);
    rvc_buf_init(&pr->out_buf, FRAME_MAX_BYTES + LINE_MAX_BYTES + 64);
    *ret = pr;
    return RV_OK;
}

rvc_progress *rvc_progress_free(rvc_progress *pr) {
    if (!pr)
        return NULL;
    rvc_progress_end(pr);
    rvc_buf_done(&pr->frame);
    rvc_buf_done(&pr->out_buf);
    free(pr);
    return NULL;
}

rvc_progress_mode rvc_progress_get_mode(const rvc_progress *pr) {
    return pr->mode;
}

int rvc_progress_timeout_ms(const rvc_progress *pr, uint64_t now_ms) {
    if (pr->mode == RVC_PROGRESS_NONE)
        return -1;
    if (pr->next_due_ms <= now_ms)
        return 0;
    uint64_t d = pr->next_due_ms - now_ms;
    return d > RVC_PROGRESS_PLAIN_MS ? RVC_PROGRESS_PLAIN_MS : (int)d;
}

/* ------------------------------------------------------------------------
 * Pieces shared by both renderers
 * ------------------------------------------------------------------------ */

struct totals {
    size_t done, failed, active, queued;
    uint64_t bytes, total; /* of the items not failed */
    bool total_known;      /* every item not failed knows its size */
    double rate;
    unsigned connections;
};

static struct totals sum_items(const rvc_progress_item *items, size_t n) {
    struct totals t = {.total_known = true};
    for (size_t i = 0; i < n; i++) {
        const rvc_progress_item *it = &items[i];
        if (it->state == RV_STATE_FAILED || it->state == RV_STATE_CANCELLED) {
            t.failed++;
            continue;
        }
        if (it->state == RV_STATE_DONE)
            t.done++;
        else if (it->state == RV_STATE_QUEUED)
            t.queued++;
        else
            t.active++;
        if (!rv_state_is_terminal(it->state) && it->p.rate_bps > 0)
            t.rate += it->p.rate_bps;
        if (!rv_state_is_terminal(it->state))
            t.connections += it->connections;
        t.bytes += it->p.bytes_done;
        if (it->p.total_known)
            t.total += it->p.bytes_total;
        else
            t.total_known = false;
    }
    return t;
}

static bool retry_pending(const rvc_progress_item *it, uint64_t now_ms) {
    return it->retry_until_ms > now_ms && !rv_state_is_terminal(it->state);
}

/* "12.3 MiB/27.0 MiB  4.5 MiB/s  ETA 3s" or "12.3 MiB  4.5 MiB/s" with the
 * given separators. */
static void amounts(rvc_buf *b, uint64_t done, uint64_t total, bool total_known, double rate,
                    const char *of, const char *sep) {
    char d[RVC_FMT_MAX], t[RVC_FMT_MAX], r[RVC_FMT_MAX], e[RVC_FMT_MAX];
    uint64_t eta;
    rvc_fmt_size(done, d);
    rvc_fmt_rate(rate, r);
    if (!total_known) {
        rvc_buf_printf(b, "%s%s%s", d, sep, r);
        return;
    }
    rvc_fmt_size(total, t);
    rvc_buf_printf(b, "%s%s%s%s%s", d, of, t, sep, r);
    if (done < total && rvc_eta_seconds(done, total, rate, &eta)) {
        rvc_fmt_duration(eta, e);
        rvc_buf_printf(b, "%sETA %s", sep, e);
    }
}

static const char *state_word(rv_state s) {
    switch (s) {
    case RV_STATE_QUEUED:
        return "queued";
    case RV_STATE_RESOLVING:
        return "starting";
    case RV_STATE_DOWNLOADING:
        return "downloading";
    case RV_STATE_VERIFYING:
        return "verifying";
    case RV_STATE_DONE:
        return "done";
    case RV_STATE_FAILED:
        return "failed";
    case RV_STATE_CANCELLED:
        return "cancelled";
    }
    return "?";
}

/* Append s (already safe for a terminal) cut to at most max_cols display
 * columns (rvc_utf8_cols). */
static void append_cut(rvc_buf *b, const char *s, size_t max_cols) {
    size_t n = strlen(s), i = 0, cols = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = rvc_utf8_next((const unsigned char *)s + i, n - i, &cp);
        size_t w = 1;
        if (len == 0)
            len = 1;
        else
            w = rvc_utf8_cols(cp);
        if (cols + w > max_cols)
            break;
        cols += w;
        i += len;
    }
    rvc_buf_append(b, s, i);
}

/* Write out_buf in one go. */
static void flush_out(rvc_progress *pr) {
    if (pr->out_buf.len) {
        fwrite(pr->out_buf.data, 1, pr->out_buf.len, pr->out);
        fflush(pr->out);
    }
    rvc_buf_reset(&pr->out_buf);
}

/* ------------------------------------------------------------------------
 * TTY
 * ------------------------------------------------------------------------ */

/* The fields of an item's status, each optional, in the order they are
 * shown; when the line is too narrow the least useful go first (DROP_ORDER). */
enum field { F_STATE, F_PCT, F_BYTES, F_RATE, F_ETA, F_CONN, F_RETRIES, F_COUNT_ };
static const enum field DROP_ORDER[] = {F_CONN, F_RETRIES, F_ETA, F_RATE, F_BYTES, F_PCT};

/* The status of an item (everything after the name) into st, at most
 * max_cols columns: the fields that fit, separated by two spaces, and a bar
 * of bar_w after the percentage when there is room for it. What it says:
 *   waiting                 queued: no figures (they would be stale or 0)
 *   retry N in T: REASON    a retry is pending
 *   cached                  served from the cache
 *   resuming at SIZE        resumed from durable state, nothing new yet
 *   PCT [BAR] BYTES RATE ETA CONN RETRIES  downloading
 *   starting / verifying    the other states */
static void tty_status(rvc_buf *st, const rvc_progress_item *it, uint64_t now_ms, size_t max_cols,
                       size_t bar_w) {
    char f[F_COUNT_][96] = {{0}};
    char d[RVC_FMT_MAX], t[RVC_FMT_MAX];
    const rv_progress *p = &it->p;
    bool downloading = it->state == RV_STATE_DOWNLOADING || it->state == RV_STATE_VERIFYING;

    if (retry_pending(it, now_ms)) {
        char w[RVC_FMT_MAX];
        rvc_fmt_elapsed((double)(it->retry_until_ms - now_ms) / 1000.0, w);
        rvc_buf_printf(st, "retry %u in %s: ", it->retry_attempt, w);
        rvc_sanitize(st, it->retry_reason ? it->retry_reason : "", LINE_MAX_BYTES / 8);
        return;
    }
    if (it->state == RV_STATE_QUEUED) {
        rvc_buf_puts(st, "waiting");
        return;
    }
    if (it->cached) {
        snprintf(f[F_STATE], sizeof(f[0]), "cached");
    } else if (it->resumed_from && p->bytes_done <= it->resumed_from &&
               it->state != RV_STATE_VERIFYING) {
        rvc_fmt_size(it->resumed_from, d);
        snprintf(f[F_STATE], sizeof(f[0]), "resuming at %s", d);
    } else if (!downloading) {
        snprintf(f[F_STATE], sizeof(f[0]), "%s", state_word(it->state));
    } else if (it->state == RV_STATE_VERIFYING) {
        snprintf(f[F_STATE], sizeof(f[0]), "verifying");
    }
    if (downloading && p->total_known)
        snprintf(f[F_PCT], sizeof(f[0]), "%3u%%", rvc_percent(p->bytes_done, p->bytes_total));
    if (downloading && !it->cached) {
        rvc_fmt_size(p->bytes_done, d);
        if (p->total_known) {
            rvc_fmt_size(p->bytes_total, t);
            snprintf(f[F_BYTES], sizeof(f[0]), "%s/%s", d, t);
        } else {
            snprintf(f[F_BYTES], sizeof(f[0]), "%s", d);
        }
        if (it->state == RV_STATE_DOWNLOADING && p->rate_bps > 0) {
            uint64_t eta;
            rvc_fmt_rate(p->rate_bps, d);
            snprintf(f[F_RATE], sizeof(f[0]), "%s", d);
            if (p->total_known && p->bytes_done < p->bytes_total &&
                rvc_eta_seconds(p->bytes_done, p->bytes_total, p->rate_bps, &eta)) {
                rvc_fmt_duration(eta, t);
                snprintf(f[F_ETA], sizeof(f[0]), "ETA %s", t);
            }
        }
        if (it->connections)
            snprintf(f[F_CONN], sizeof(f[0]), "%u conn", it->connections);
    }
    if (it->retries)
        snprintf(f[F_RETRIES], sizeof(f[0]), "%u %s", it->retries,
                 it->retries == 1 ? "retry" : "retries");

    /* Drop fields until the rest fits (every field is ASCII, so bytes are
     * columns here); "done/total" is cut to "done" before it goes. */
    size_t need;
    for (size_t k = 0;;) {
        need = 0;
        for (int i = 0; i < F_COUNT_; i++)
            if (f[i][0])
                need += (need ? 2 : 0) + strlen(f[i]);
        if (need <= max_cols || k == sizeof(DROP_ORDER) / sizeof(DROP_ORDER[0]))
            break;
        char *slash = DROP_ORDER[k] == F_BYTES ? strchr(f[F_BYTES], '/') : NULL;
        if (slash)
            *slash = '\0';
        else
            f[DROP_ORDER[k++]][0] = '\0';
    }
    bool bar = bar_w && f[F_PCT][0] && !it->cached && need + bar_w + 3 <= max_cols;
    bool first = true;
    for (int i = 0; i < F_COUNT_; i++) {
        if (!f[i][0])
            continue;
        rvc_buf_puts(st, first ? "" : "  ");
        rvc_buf_puts(st, f[i]);
        first = false;
        if (i == F_PCT && bar) {
            char b[BAR_MAX + 1];
            rvc_fmt_bar(p->bytes_done, p->bytes_total, bar_w, b);
            rvc_buf_printf(st, " [%s]", b);
        }
    }
}

/* One item's line, at most width columns: the name cut and padded to
 * exactly name_w columns, then the status. Every line of a frame uses the
 * same name_w and bar_w, so the columns line up. */
static void tty_item_line(rvc_buf *line, const rvc_progress_item *it, uint64_t now_ms, size_t width,
                          size_t name_w, size_t bar_w) {
    rvc_buf tmp;
    rvc_buf_init(&tmp, LINE_MAX_BYTES);
    rvc_sanitize(&tmp, it->name, name_w);
    for (size_t c = rvc_sanitized_cols(rvc_buf_str(&tmp)); c < name_w; c++)
        rvc_buf_putc(&tmp, ' ');
    rvc_buf_puts(&tmp, "  ");
    tty_status(&tmp, it, now_ms, width > name_w + 2 ? width - name_w - 2 : 0, bar_w);
    append_cut(line, rvc_buf_str(&tmp), width);
    rvc_buf_done(&tmp);
}

static void tty_total_line(rvc_buf *line, const struct totals *t, size_t n, size_t width) {
    rvc_buf tmp;
    rvc_buf_init(&tmp, LINE_MAX_BYTES);
    rvc_buf_printf(&tmp, "total  %zu/%zu done", t->done, n);
    if (t->failed)
        rvc_buf_printf(&tmp, ", %zu failed", t->failed);
    if (t->queued)
        rvc_buf_printf(&tmp, ", %zu waiting", t->queued);
    rvc_buf_puts(&tmp, "  ");
    if (t->total_known)
        rvc_buf_printf(&tmp, "%u%%  ", rvc_percent(t->bytes, t->total));
    amounts(&tmp, t->bytes, t->total, t->total_known, t->rate, "/", "  ");
    if (t->connections)
        rvc_buf_printf(&tmp, "  %u conn", t->connections);
    append_cut(line, rvc_buf_str(&tmp), width);
    rvc_buf_done(&tmp);
}

/* Move to the start of the live area and clear it and everything below. */
static void tty_erase(rvc_progress *pr) {
    if (pr->drawn == 0)
        return;
    rvc_buf_putc(&pr->out_buf, '\r');
    if (pr->drawn > 1)
        rvc_buf_printf(&pr->out_buf, "\x1b[%uA", pr->drawn - 1);
    rvc_buf_puts(&pr->out_buf, "\x1b[J");
    pr->drawn = 0;
}

/* Draw `frame` (cursor left at the end of its last line). */
static void tty_draw_frame(rvc_progress *pr) {
    if (pr->frame.len == 0)
        return;
    rvc_buf_puts(&pr->out_buf, rvc_buf_str(&pr->frame));
    unsigned lines = 1;
    for (size_t i = 0; i < pr->frame.len; i++)
        lines += pr->frame.data[i] == '\n';
    pr->drawn = lines;
}

static void tty_render(rvc_progress *pr, const rvc_progress_item *items, size_t n, uint64_t now_ms,
                       unsigned cols, unsigned rows) {
    /* Stay one column short of the edge: writing the last column makes some
     * terminals wrap, and then the cursor-up count would be off. */
    size_t width = (cols ? cols : 80) - 1;
    size_t max_lines = RVC_PROGRESS_MAX_LINES;
    if (rows > 0 && rows < max_lines + 2)
        max_lines = rows > 3 ? rows - 2 : 1;

    struct totals t = sum_items(items, n);
    size_t shown = 0, hidden = 0;

    /* Column widths shared by the frame's lines: the widest name shown
     * (within limits), and a bar that leaves room for the status. */
    size_t name_w = 0;
    for (size_t i = 0, k = 0; i < n && k < max_lines; i++) {
        if (rv_state_is_terminal(items[i].state))
            continue;
        size_t c = rvc_sanitized_cols(items[i].name);
        if (c > name_w)
            name_w = c;
        k++;
    }
    if (name_w > NAME_MAX_COLS)
        name_w = NAME_MAX_COLS;
    if (name_w > width / 2)
        name_w = width / 2;
    size_t fixed = name_w + 2 + 4 + 3 + STATUS_COLS; /* name, pct, " [" "]", status */
    size_t bar_w = width > fixed ? width - fixed : 0;
    if (bar_w > BAR_MAX)
        bar_w = BAR_MAX;
    if (bar_w < BAR_MIN)
        bar_w = 0;

    rvc_buf_reset(&pr->frame);
    for (size_t i = 0; i < n; i++) {
        if (rv_state_is_terminal(items[i].state))
            continue;
        if (shown == max_lines) {
            hidden++;
            continue;
        }
        if (shown)
            rvc_buf_putc(&pr->frame, '\n');
        tty_item_line(&pr->frame, &items[i], now_ms, width, name_w, bar_w);
        shown++;
    }
    if (hidden)
        rvc_buf_printf(&pr->frame, "\n  ... and %zu more", hidden);
    if (n > 1) {
        if (pr->frame.len)
            rvc_buf_putc(&pr->frame, '\n');
        tty_total_line(&pr->frame, &t, n, width);
    }
    if (rvc_buf_error(&pr->frame) != RV_OK)
        rvc_buf_reset(&pr->frame); /* better no frame than a torn one */

    tty_erase(pr);
    tty_draw_frame(pr);
    flush_out(pr);
}

/* ------------------------------------------------------------------------
 * Plain
 * ------------------------------------------------------------------------ */

static void plain_item_line(rvc_buf *b, const rvc_progress_item *it, uint64_t now_ms) {
    rvc_buf_puts(b, "progress: '");
    rvc_sanitize(b, it->name, LINE_MAX_BYTES / 8);
    rvc_buf_puts(b, "' ");
    if (retry_pending(it, now_ms)) {
        char w[RVC_FMT_MAX];
        rvc_fmt_elapsed((double)(it->retry_until_ms - now_ms) / 1000.0, w);
        rvc_buf_printf(b, "waiting %s before retry %u", w, it->retry_attempt);
    } else if (it->state == RV_STATE_DOWNLOADING) {
        if (it->p.total_known)
            rvc_buf_printf(b, "%u%% ", rvc_percent(it->p.bytes_done, it->p.bytes_total));
        amounts(b, it->p.bytes_done, it->p.bytes_total, it->p.total_known, it->p.rate_bps, " of ",
                ", ");
    } else {
        rvc_buf_puts(b, state_word(it->state));
    }
    if (it->retries)
        rvc_buf_printf(b, " (%u %s so far)", it->retries, it->retries == 1 ? "retry" : "retries");
    rvc_buf_putc(b, '\n');
}

static void plain_render(rvc_progress *pr, const rvc_progress_item *items, size_t n,
                         uint64_t now_ms) {
    struct totals t = sum_items(items, n);
    size_t shown = 0, hidden = 0;
    for (size_t i = 0; i < n; i++) {
        if (rv_state_is_terminal(items[i].state) || items[i].state == RV_STATE_QUEUED)
            continue;
        if (shown == RVC_PROGRESS_MAX_LINES) {
            hidden++;
            continue;
        }
        plain_item_line(&pr->out_buf, &items[i], now_ms);
        shown++;
    }
    if (hidden)
        rvc_buf_printf(&pr->out_buf, "progress: ... and %zu more downloading\n", hidden);
    if (n > 1) {
        rvc_buf_printf(&pr->out_buf, "progress: total %zu/%zu done", t.done, n);
        if (t.failed)
            rvc_buf_printf(&pr->out_buf, ", %zu failed", t.failed);
        if (t.queued)
            rvc_buf_printf(&pr->out_buf, ", %zu queued", t.queued);
        rvc_buf_puts(&pr->out_buf, ", ");
        if (t.total_known)
            rvc_buf_printf(&pr->out_buf, "%u%% ", rvc_percent(t.bytes, t.total));
        amounts(&pr->out_buf, t.bytes, t.total, t.total_known, t.rate, " of ", ", ");
        rvc_buf_putc(&pr->out_buf, '\n');
    }
    flush_out(pr);
}

/* ------------------------------------------------------------------------
 * Interface
 * ------------------------------------------------------------------------ */

void rvc_progress_render(rvc_progress *pr, const rvc_progress_item *items, size_t n,
                         uint64_t now_ms, unsigned cols, unsigned rows, bool force) {
    if (pr->mode == RVC_PROGRESS_NONE || (!force && now_ms < pr->next_due_ms))
        return;
    if (pr->mode == RVC_PROGRESS_TTY) {
        tty_render(pr, items, n, now_ms, cols, rows);
        pr->next_due_ms = now_ms + RVC_PROGRESS_TTY_MS;
    } else {
        plain_render(pr, items, n, now_ms);
        pr->next_due_ms = now_ms + RVC_PROGRESS_PLAIN_MS;
    }
}

void rvc_progress_clear(rvc_progress *pr) {
    /* The next render stays due when it was: a burst of permanent lines
     * must not turn into a burst of frames (at most one every
     * RVC_PROGRESS_TTY_MS); until then the area is simply not shown. */
    tty_erase(pr);
    flush_out(pr);
}

void rvc_progress_print(rvc_progress *pr, const char *line) {
    /* On a terminal the live area is erased and stays so until the next
     * render: the caller's loop redraws it with fresh numbers instead of us
     * repainting stale ones here. */
    rvc_progress_clear(pr);
    fputs(line, pr->out);
    fputc('\n', pr->out);
    fflush(pr->out);
}

void rvc_progress_end(rvc_progress *pr) {
    tty_erase(pr);
    rvc_buf_reset(&pr->frame);
    flush_out(pr);
}
