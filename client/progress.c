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
#define STATUS_COLS 46 /* room for "123.4 MiB/567.8 MiB  12.3 MiB/s  ETA 1m05s  (2 retries)" */

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

/* Append s (already safe for a terminal) cut to at most max_cols columns,
 * counted as rvc_sanitize counts them. */
static void append_cut(rvc_buf *b, const char *s, size_t max_cols) {
    size_t n = strlen(s), i = 0, cols = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = rvc_utf8_next((const unsigned char *)s + i, n - i, &cp);
        size_t w = 1;
        if (len == 0)
            len = 1;
        else if (cp >= 0x80)
            w = 2;
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

/* The status part of an item's line: everything after the name, except
 * the percentage and the bar. Sets *ret_bar when a bar belongs in front. */
static void tty_status(rvc_buf *st, const rvc_progress_item *it, uint64_t now_ms, bool *ret_bar) {
    *ret_bar = false;
    if (retry_pending(it, now_ms)) {
        char w[RVC_FMT_MAX];
        rvc_fmt_elapsed((double)(it->retry_until_ms - now_ms) / 1000.0, w);
        rvc_buf_printf(st, "retry %u in %s: ", it->retry_attempt, w);
        rvc_sanitize(st, it->retry_reason ? it->retry_reason : "", LINE_MAX_BYTES / 8);
        return;
    }
    if (it->state == RV_STATE_DOWNLOADING) {
        *ret_bar = it->p.total_known;
        amounts(st, it->p.bytes_done, it->p.bytes_total, it->p.total_known, it->p.rate_bps, "/",
                "  ");
    } else {
        rvc_buf_puts(st, state_word(it->state));
    }
    if (it->retries)
        rvc_buf_printf(st, "  (%u %s)", it->retries, it->retries == 1 ? "retry" : "retries");
}

/* One item's line, at most width columns: the name padded to name_w, then
 * percentage and a bar of bar_w (when the size is known and bar_w > 0),
 * then the status. Every line of a frame uses the same name_w and bar_w,
 * so the columns line up. */
static void tty_item_line(rvc_buf *line, const rvc_progress_item *it, uint64_t now_ms, size_t width,
                          size_t name_w, size_t bar_w) {
    rvc_buf st, tmp;
    bool bar;
    rvc_buf_init(&st, LINE_MAX_BYTES);
    rvc_buf_init(&tmp, LINE_MAX_BYTES);
    tty_status(&st, it, now_ms, &bar);

    rvc_sanitize(&tmp, it->name, name_w);
    for (size_t c = rvc_sanitized_cols(rvc_buf_str(&tmp)); c < name_w; c++)
        rvc_buf_putc(&tmp, ' ');
    rvc_buf_puts(&tmp, "  ");
    if (bar) {
        rvc_buf_printf(&tmp, "%3u%% ", rvc_percent(it->p.bytes_done, it->p.bytes_total));
        if (bar_w) {
            char b[BAR_MAX + 1];
            rvc_fmt_bar(it->p.bytes_done, it->p.bytes_total, bar_w, b);
            rvc_buf_printf(&tmp, "[%s] ", b);
        }
    }
    rvc_buf_puts(&tmp, rvc_buf_str(&st));
    append_cut(line, rvc_buf_str(&tmp), width);
    rvc_buf_done(&st);
    rvc_buf_done(&tmp);
}

static void tty_total_line(rvc_buf *line, const struct totals *t, size_t n, size_t width) {
    rvc_buf tmp;
    rvc_buf_init(&tmp, LINE_MAX_BYTES);
    rvc_buf_printf(&tmp, "total  %zu/%zu done", t->done, n);
    if (t->failed)
        rvc_buf_printf(&tmp, ", %zu failed", t->failed);
    rvc_buf_puts(&tmp, "  ");
    if (t->total_known)
        rvc_buf_printf(&tmp, "%u%%  ", rvc_percent(t->bytes, t->total));
    amounts(&tmp, t->bytes, t->total, t->total_known, t->rate, "/", "  ");
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
    size_t fixed = name_w + 2 + 5 + 3 + STATUS_COLS; /* name, pct, "[" "] ", status */
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
    if (pr->drawn) {
        tty_erase(pr);
        pr->next_due_ms = 0;
    }
    flush_out(pr);
}

void rvc_progress_print(rvc_progress *pr, const char *line) {
    /* On a terminal the live area is erased and stays so until the next
     * render, which is due at once: the caller's loop redraws it with fresh
     * numbers instead of us repainting stale ones here. */
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
