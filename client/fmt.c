/* fmt.c — human-readable sizes, rates, durations, bars and safe names. */
#include "fmt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "retriever/rv_error.h"
#include "utf8.h"

void rvc_fmt_size(uint64_t bytes, char *buf) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, RVC_FMT_MAX, "%u B", (unsigned)bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    /* Move up while the value would print as 1024.0 or more. */
    while (u + 1 < sizeof(units) / sizeof(units[0]) && v >= 1023.95) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, RVC_FMT_MAX, "%.1f %s", v, units[u]);
}

void rvc_fmt_rate(double bps, char *buf) {
    uint64_t b;
    if (!(bps > 0) || isinf(bps))
        b = 0;
    else if (bps >= 18446744073709549568.0) /* largest double below 2^64 */
        b = UINT64_MAX;
    else
        b = (uint64_t)bps;
    rvc_fmt_size(b, buf);
    strcat(buf, "/s"); /* "1023.9 EiB/s" is 12 bytes: fits */
}

void rvc_fmt_duration(uint64_t s, char *buf) {
    if (s < 60)
        snprintf(buf, RVC_FMT_MAX, "%us", (unsigned)s);
    else if (s < 3600)
        snprintf(buf, RVC_FMT_MAX, "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
    else if (s < 86400)
        snprintf(buf, RVC_FMT_MAX, "%uh%02um", (unsigned)(s / 3600), (unsigned)(s % 3600 / 60));
    else if (s < 1000ull * 86400)
        snprintf(buf, RVC_FMT_MAX, "%ud%02uh", (unsigned)(s / 86400), (unsigned)(s % 86400 / 3600));
    else
        snprintf(buf, RVC_FMT_MAX, ">999d");
}

void rvc_fmt_elapsed(double s, char *buf) {
    if (!(s > 0))
        s = 0;
    if (s < 59.95) {
        snprintf(buf, RVC_FMT_MAX, "%.1fs", s);
        return;
    }
    rvc_fmt_duration(s >= 1e18 ? UINT64_MAX : (uint64_t)llround(s), buf);
}

bool rvc_eta_seconds(uint64_t done, uint64_t total, double rate, uint64_t *ret) {
    if (done > total)
        return false;
    if (done == total) {
        *ret = 0;
        return true;
    }
    if (!(rate > 0) || isinf(rate))
        return false;
    double eta = ceil((double)(total - done) / rate);
    *ret = eta >= 1e18 ? UINT64_MAX : (uint64_t)eta;
    return true;
}

unsigned rvc_percent(uint64_t done, uint64_t total) {
    if (total == 0)
        return 0;
    if (done >= total)
        return 100;
    unsigned p = (unsigned)((unsigned __int128)done * 100 / total);
    return p > 99 ? 99 : p;
}

void rvc_fmt_bar(uint64_t done, uint64_t total, size_t width, char *buf) {
    size_t fill = 0;
    if (total > 0)
        fill = done >= total ? width : (size_t)((unsigned __int128)done * width / total);
    for (size_t i = 0; i < width; i++)
        buf[i] = i < fill ? '=' : ' ';
    if (fill > 0 && fill < width)
        buf[fill - 1] = '>';
    buf[width] = '\0';
}

/* One unit of sanitized output: the bytes to print and their columns. */
struct piece {
    const char *bytes;
    size_t len;     /* bytes consumed from the input */
    size_t out_len; /* bytes to print */
    size_t cols;
};

static struct piece next_piece(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    size_t len = rvc_utf8_next(u, n, &cp);
    if (len == 0)
        return (struct piece){"?", 1, 1, 1};
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0))
        return (struct piece){"?", len, 1, 1};
    return (struct piece){s, len, len, rvc_utf8_cols(cp)};
}

size_t rvc_sanitized_cols(const char *s) {
    size_t n = strlen(s), cols = 0;
    for (size_t i = 0; i < n;) {
        struct piece p = next_piece(s + i, n - i);
        cols += p.cols;
        i += p.len;
    }
    return cols;
}

int rvc_sanitize(rvc_buf *out, const char *s, size_t max_cols) {
    size_t n = strlen(s);
    size_t i = 0;
    size_t cols = rvc_sanitized_cols(s);
    int r;

    if (cols > max_cols) {
        /* Keep an ellipsis plus as much of the tail as fits: "…" (one
         * column) where the terminal shows UTF-8, else "...". */
        bool u = rvc_utf8_locale() && max_cols >= 1;
        size_t ell = u ? 1 : max_cols < 3 ? max_cols : 3;
        r = u ? rvc_buf_puts(out, "\xe2\x80\xa6") : rvc_buf_append(out, "...", ell);
        if (r != RV_OK)
            return r;
        size_t budget = max_cols - ell;
        while (i < n && cols > budget) {
            struct piece p = next_piece(s + i, n - i);
            cols -= p.cols;
            i += p.len;
        }
    }
    while (i < n) {
        struct piece p = next_piece(s + i, n - i);
        r = rvc_buf_append(out, p.bytes, p.out_len);
        if (r != RV_OK)
            return r;
        i += p.len;
    }
    return RV_OK;
}
