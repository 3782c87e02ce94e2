/* fmt.h — human-readable formatting for progress and messages. Pure
 * functions: no I/O, no clock, no global state.
 *
 * Units are IEC (1 KiB = 1024 bytes), matching what --chunk-size accepts.
 * Every fixed-size output has a known maximum length: pass a buffer of at
 * least RVC_FMT_MAX bytes. */
#ifndef RVC_FMT_H
#define RVC_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define RVC_FMT_MAX 32

/* "0 B", "1023 B", "1.0 KiB", "12.3 MiB", "1023.9 MiB", "1.0 GiB" ... EiB.
 * One decimal above bytes; a value that would round to 1024.0 of a unit is
 * shown in the next unit. */
void rvc_fmt_size(uint64_t bytes, char *buf);

/* rvc_fmt_size of the rate followed by "/s"; negative, NaN or infinite
 * rates print as "0 B/s" and absurd ones saturate at the largest size. */
void rvc_fmt_rate(double bytes_per_second, char *buf);

/* A duration in whole seconds, compact: "0s", "59s", "1m05s", "59m59s",
 * "1h00m", "23h59m", "1d00h", "999d23h", then ">999d". */
void rvc_fmt_duration(uint64_t seconds, char *buf);

/* Elapsed time with tenths below a minute ("0.0s", "12.3s"), otherwise
 * rvc_fmt_duration of the rounded seconds. Negative or NaN gives "0.0s". */
void rvc_fmt_elapsed(double seconds, char *buf);

/* Seconds until total is reached at rate; rounded up. false (and *ret
 * untouched) when that cannot be known: rate not positive, or done > total.
 * done == total gives 0 whatever the rate. */
bool rvc_eta_seconds(uint64_t done, uint64_t total, double rate, uint64_t *ret);

/* floor(100 * done / total) without overflow, capped at 100; 100 only
 * when done >= total. total 0 gives 0. */
unsigned rvc_percent(uint64_t done, uint64_t total);

/* A bar of exactly `width` characters plus NUL into buf (width + 1 bytes):
 * '=' for the done part, '>' at its head, ' ' for the rest. */
void rvc_fmt_bar(uint64_t done, uint64_t total, size_t width, char *buf);

/* Append s to out made safe for a terminal: C0 controls, DEL and C1
 * controls become '?', invalid UTF-8 bytes become '?'. When s needs more than
 * max_cols columns it is shortened at the front to an ellipsis plus its tail
 * (the end of a file name is the part that tells files apart): "…" in a
 * UTF-8 locale, else "...". Columns are display columns, rvc_utf8_cols:
 * wcwidth() in a UTF-8 locale, else 2 per non-ASCII code point.
 * Returns RV_OK, or the rvc_buf error (out keeps what fit before it). */
int rvc_sanitize(rvc_buf *out, const char *s, size_t max_cols);

/* Columns rvc_sanitize would use for s with no limit. */
size_t rvc_sanitized_cols(const char *s);

#endif
