/* test_progress.c — the renderers, driven with a fake clock into a memory
 * stream. */
#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "check.h"
#include "progress.h"

struct capture {
    char *text;
    size_t len;
    FILE *f;
};

static void cap_open(struct capture *c) {
    c->text = NULL;
    c->len = 0;
    c->f = open_memstream(&c->text, &c->len);
}

/* Everything written since the last call (the stream keeps growing). */
static char *cap_take(struct capture *c, size_t *from) {
    fflush(c->f);
    char *s = strndup(c->text + *from, c->len - *from);
    *from = c->len;
    return s;
}

static rvc_progress_item item(const char *name, rv_state st, uint64_t done, uint64_t total,
                              double rate) {
    return (rvc_progress_item){
        .name = name,
        .state = st,
        .p = {.bytes_done = done, .bytes_total = total, .total_known = total > 0, .rate_bps = rate},
    };
}

static void test_plain(void) {
    struct capture c;
    size_t from = 0;
    rvc_progress *pr;
    cap_open(&c);
    CHECK_INT_EQ(rvc_progress_new(RVC_PROGRESS_PLAIN, c.f, 1000, &pr), RV_OK);

    rvc_progress_item items[3] = {
        item("a.bin", RV_STATE_DOWNLOADING, 1 << 20, 4 << 20, 1 << 20),
        item("b.bin", RV_STATE_DOWNLOADING, 512, 0, 0),
        item("c.bin", RV_STATE_QUEUED, 0, 0, 0),
    };

    /* Not due before 2 s; due at 2 s. */
    CHECK_INT_EQ(rvc_progress_timeout_ms(pr, 1000), 2000);
    rvc_progress_render(pr, items, 3, 2999, 0, 0, false);
    char *s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "");
    free(s);
    rvc_progress_render(pr, items, 3, 3000, 0, 0, false);
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "progress: 'a.bin' 25% 1.0 MiB of 4.0 MiB, 1.0 MiB/s, ETA 3s\n"
                    "progress: 'b.bin' 512 B, 0 B/s\n"
                    "progress: total 0/3 done, 1 queued, 1.0 MiB, 1.0 MiB/s\n");
    free(s);
    CHECK_INT_EQ(rvc_progress_timeout_ms(pr, 3000), 2000);

    /* A pending retry, a finished item, a name needing sanitizing. */
    items[0].retries = 1;
    items[0].retry_attempt = 1;
    items[0].retry_until_ms = 6500;
    items[0].retry_reason = "HTTP 503";
    items[1] = item("b\x1b.bin", RV_STATE_DONE, 512, 512, 0);
    rvc_progress_render(pr, items, 3, 5000, 0, 0, false);
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "progress: 'a.bin' waiting 1.5s before retry 1 (1 retry so far)\n"
                    "progress: total 1/3 done, 1 queued, 1.0 MiB, 1.0 MiB/s\n");
    free(s);

    /* Permanent lines print as they are. */
    rvc_progress_print(pr, "done: 'b.bin'");
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "done: 'b.bin'\n");
    free(s);

    /* A single item prints no total line. */
    rvc_progress_render(pr, items, 1, 9000, 0, 0, true);
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "progress: 'a.bin' 25% 1.0 MiB of 4.0 MiB, 1.0 MiB/s, ETA 3s (1 retry so far)\n");
    free(s);

    rvc_progress_free(pr);
    fclose(c.f);
    free(c.text);
}

static void test_tty(void) {
    struct capture c;
    size_t from = 0;
    rvc_progress *pr;
    cap_open(&c);
    CHECK_INT_EQ(rvc_progress_new(RVC_PROGRESS_TTY, c.f, 0, &pr), RV_OK);
    CHECK_INT_EQ(rvc_progress_timeout_ms(pr, 0), 0); /* first frame at once */

    rvc_progress_item items[2] = {
        item("a.bin", RV_STATE_DOWNLOADING, 1 << 20, 2 << 20, 1 << 20),
        item("b.bin", RV_STATE_RESOLVING, 0, 0, 0),
    };
    rvc_progress_render(pr, items, 2, 0, 80, 24, false);
    char *s = cap_take(&c, &from);
    /* Two item lines and a total; no escape before the first frame. */
    CHECK(strncmp(s, "a.bin  ", 7) == 0);
    CHECK_STR_HAS(s, " 50% [");
    CHECK_STR_HAS(s, "]  1.0 MiB/2.0 MiB  1.0 MiB/s  ETA 1s\nb.bin  starting\ntotal  0/2 done  ");
    for (char *line = s, *nl; line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t w = nl ? (size_t)(nl - line) : strlen(line);
        CHECK(w <= 79); /* never the last column */
    }
    CHECK(s[strlen(s) - 1] != '\n'); /* the cursor stays on the last line */
    free(s);

    /* Throttled to RVC_PROGRESS_TTY_MS. */
    rvc_progress_render(pr, items, 2, 50, 80, 24, false);
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "");
    free(s);

    /* The next frame first moves up 2 lines and clears. */
    rvc_progress_render(pr, items, 2, 100, 80, 24, false);
    s = cap_take(&c, &from);
    CHECK(strncmp(s, "\r\x1b[2A\x1b[J", 8) == 0);
    free(s);

    /* A permanent line: erase, the line; the next render stays due when
     * it was (at most 10 frames a second, lines or not) and draws the
     * area below it. */
    rvc_progress_print(pr, "done: 'x'");
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "\r\x1b[2A\x1b[Jdone: 'x'\n");
    free(s);
    CHECK_INT_EQ(rvc_progress_timeout_ms(pr, 150), 50);
    rvc_progress_render(pr, items, 2, 150, 80, 24, false);
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "");
    free(s);
    rvc_progress_render(pr, items, 2, 200, 80, 24, false);
    s = cap_take(&c, &from);
    CHECK(strncmp(s, "a.bin  ", 7) == 0); /* nothing to erase first */
    free(s);

    /* A retry shows in the item's line, with its reason, sanitized. */
    items[0].retry_until_ms = 2100;
    items[0].retry_attempt = 2;
    items[0].retry_reason = "HTTP 503\x1b[2J";
    rvc_progress_render(pr, items, 1, 200, 80, 24, true);
    s = cap_take(&c, &from);
    CHECK_STR_HAS(s, "a.bin  retry 2 in 1.9s: HTTP 503?[2J");
    free(s);

    /* A narrow terminal: the bar goes, the name shrinks, nothing wraps. */
    items[0] = item("a-rather-long-file-name-for-a-narrow-terminal.iso", RV_STATE_DOWNLOADING,
                    1 << 20, 2 << 20, 1 << 20);
    rvc_progress_render(pr, items, 1, 300, 40, 24, true);
    s = cap_take(&c, &from);
    char *frame = strstr(s, "\x1b[J");
    CHECK(frame != NULL);
    if (frame) {
        frame += 3;
        CHECK(strlen(frame) <= 39);
        CHECK(strchr(frame, '[') == NULL); /* no bar */
        CHECK_STR_HAS(frame, "...");
    }
    free(s);

    /* Many downloads: at most RVC_PROGRESS_MAX_LINES lines, then a count. */
    rvc_progress_item many[15];
    for (int i = 0; i < 15; i++)
        many[i] = item("f", RV_STATE_DOWNLOADING, 1, 2, 1);
    rvc_progress_render(pr, many, 15, 400, 80, 50, true);
    s = cap_take(&c, &from);
    CHECK_STR_HAS(s, "\n  ... and 5 more\ntotal  0/15 done");
    free(s);

    /* A short terminal shows fewer lines. */
    rvc_progress_render(pr, many, 15, 500, 80, 5, true);
    s = cap_take(&c, &from);
    CHECK_STR_HAS(s, "  ... and 12 more\n");
    free(s);

    /* The end erases the live area. */
    rvc_progress_end(pr);
    s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "\r\x1b[4A\x1b[J");
    free(s);

    rvc_progress_free(pr);
    fclose(c.f);
    free(c.text);
}

static void test_none(void) {
    struct capture c;
    size_t from = 0;
    rvc_progress *pr;
    cap_open(&c);
    CHECK_INT_EQ(rvc_progress_new(RVC_PROGRESS_NONE, c.f, 0, &pr), RV_OK);
    CHECK_INT_EQ(rvc_progress_timeout_ms(pr, 0), -1);
    rvc_progress_item it = item("a", RV_STATE_DOWNLOADING, 1, 2, 1);
    rvc_progress_render(pr, &it, 1, 5000, 80, 24, true);
    rvc_progress_print(pr, "error line");
    char *s = cap_take(&c, &from);
    CHECK_STR_EQ(s, "error line\n");
    free(s);
    rvc_progress_free(pr);
    fclose(c.f);
    free(c.text);
}

/* The display columns (wcwidth) of the first len bytes of s; -1 on an
 * invalid sequence. */
static long cols_of(const char *s, size_t len) {
    mbstate_t ms;
    long cols = 0;
    memset(&ms, 0, sizeof(ms));
    for (size_t i = 0; i < len;) {
        wchar_t wc;
        size_t l = mbrtowc(&wc, s + i, len - i, &ms);
        if (l == (size_t)-1 || l == (size_t)-2 || l == 0)
            return -1;
        cols += wcwidth(wc);
        i += l;
    }
    return cols;
}

/* The lines of the last frame in s (after its last erase) into lines[],
 * each checked to take at most max display columns; returns how many. */
static size_t frame_lines(const char *s, long max, char *lines[], size_t n_max) {
    const char *f = s;
    for (const char *e; (e = strstr(f, "\x1b[J"));)
        f = e + 3;
    size_t k = 0;
    for (const char *line = f; *line && k < n_max; k++) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        lines[k] = strndup(line, len);
        long c = cols_of(line, len);
        CHECK(c >= 0 && c <= max);
        line = nl ? nl + 1 : line + len;
    }
    return k;
}

/* The display column where needle starts in line; -1 when absent. */
static long col_at(const char *line, const char *needle) {
    const char *p = strstr(line, needle);
    return p ? cols_of(line, (size_t)(p - line)) : -1;
}

static void free_lines(char *lines[], size_t n) {
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
}

/* Display columns (wcwidth) in a UTF-8 locale: a name with accented and
 * wide characters aligns with an ASCII one at 120 and 40 columns, names
 * too wide end in "…"; waiting, resuming, cached, connections. */
static void test_tty_columns(void) {
    if (!setlocale(LC_CTYPE, "C.UTF-8")) {
        fprintf(stderr, "no C.UTF-8 locale\n");
        CHECK(false);
        return;
    }
    struct capture c;
    size_t from = 0;
    rvc_progress *pr;
    cap_open(&c);
    CHECK_INT_EQ(rvc_progress_new(RVC_PROGRESS_TTY, c.f, 0, &pr), RV_OK);
    rvc_progress_item items[4] = {
        item("donn\xc3\xa9" "es-\xe6\x97\xa5\xe6\x9c\xac.bin", RV_STATE_DOWNLOADING, 1 << 20, 4 << 20,
             1 << 20),
        item("plain.bin", RV_STATE_DOWNLOADING, 3 << 20, 4 << 20, 1 << 20),
        item("later.bin", RV_STATE_QUEUED, 5 << 20, 9 << 20, 1 << 20), /* stale figures */
        item("hit.bin", RV_STATE_DOWNLOADING, 4 << 20, 4 << 20, 0),
    };
    items[1].resumed_from = 3 << 20;
    items[1].connections = 4;
    items[0].connections = 2;
    items[3].cached = true;
    char *lines[8];
    const unsigned widths[] = {120, 40};
    for (int wi = 0; wi < 2; wi++) {
        unsigned cols = widths[wi];
        rvc_progress_render(pr, items, 4, cols, cols, 24, true);
        char *s = cap_take(&c, &from);
        size_t n = frame_lines(s, cols - 1, lines, 8);
        CHECK_INT_EQ(n, 5);
        if (n == 5) { /* the names align: every status starts in one column */
            long st = col_at(lines[2], "waiting");
            CHECK(st > 9);
            CHECK_INT_EQ(col_at(lines[0], "%"), st + 3);
            CHECK_INT_EQ(col_at(lines[1], "resuming"), st);
            CHECK_INT_EQ(col_at(lines[3], "cached"), st);
        }
        free_lines(lines, n);
        CHECK_STR_HAS(s, "later.bin");
        CHECK_STR_HAS(s, "waiting");
        CHECK(strstr(s, "5.0 MiB") == NULL); /* no stale figures */
        CHECK_STR_HAS(s, "resuming at 3.0 MiB");
        CHECK_STR_HAS(s, "cached");
        if (cols == 120) {
            CHECK_STR_HAS(s, "donn\xc3\xa9" "es-\xe6\x97\xa5\xe6\x9c\xac.bin  ");
            CHECK_STR_HAS(s, "2 conn");
            CHECK_STR_HAS(s, ", 1 waiting");
            CHECK_STR_HAS(s, "6 conn"); /* the total */
        }
        free(s);
    }
    /* At 40 columns a long name is cut by columns, with an ellipsis. */
    items[0].name = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e-a-rather-long-name-\xe6\x97\xa5.bin";
    rvc_progress_render(pr, items, 4, 200, 40, 24, true);
    char *s = cap_take(&c, &from);
    size_t n = frame_lines(s, 39, lines, 8);
    CHECK_INT_EQ(n, 5);
    CHECK_STR_HAS(s, "\xe2\x80\xa6");
    if (n == 5) {
        long st = col_at(lines[2], "waiting");
        CHECK(st > 9);
        CHECK_INT_EQ(col_at(lines[0], "%"), st + 3);
        CHECK_INT_EQ(col_at(lines[3], "cached"), st);
        /* Narrow: "done/total" is cut to "done" before the bytes go. */
        CHECK_STR_HAS(lines[0], "%  1.0 MiB");
        CHECK(strstr(lines[0], "/4.0 MiB") == NULL);
    }
    free_lines(lines, n);
    free(s);
    rvc_progress_free(pr);
    fclose(c.f);
    free(c.text);
    setlocale(LC_CTYPE, "C");
}

int main(void) {
    test_plain();
    test_tty_columns();
    test_tty();
    test_none();
    return CHECK_RESULT();
}
