/* buf.h — a growable byte buffer with a hard maximum size (rvc_buf).
 *
 * Every string the client builds from data it does not control (URLs, file
 * names, messages from the engine) goes through one of these, so no output
 * line can grow without bound: appending past `max` fails with
 * RV_E_TOO_LARGE and leaves the buffer as it was before the call.
 *
 * The contents are always NUL-terminated (data[len] == '\0') once anything
 * has been appended; an empty buffer's data may be NULL, use rvc_buf_str().
 *
 * Errors are sticky: after a failed append, later appends do nothing and
 * return the same error, so a builder can append a whole line and check
 * once at the end (rvc_buf_error). rvc_buf_reset and rvc_buf_done clear it.
 */
#ifndef RVC_BUF_H
#define RVC_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct rvc_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, not counting the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* largest len allowed */
    int err;    /* first append error since the last reset; RV_OK if none */
} rvc_buf;

/* Start empty with a limit of max bytes (not counting the NUL). */
void rvc_buf_init(rvc_buf *b, size_t max);

/* Free the contents; the buffer is empty (and reusable) afterwards. */
void rvc_buf_done(rvc_buf *b);

/* Drop the contents (and the sticky error) but keep the allocation. */
void rvc_buf_reset(rvc_buf *b);

/* Append; RV_OK, RV_E_NOMEM or RV_E_TOO_LARGE. A failing append leaves the
 * contents as they were and makes the error sticky. */
int rvc_buf_append(rvc_buf *b, const void *data, size_t len);
int rvc_buf_puts(rvc_buf *b, const char *s);
int rvc_buf_putc(rvc_buf *b, char c);
int rvc_buf_printf(rvc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rvc_buf_vprintf(rvc_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* The sticky error: RV_OK when every append since the last reset worked. */
int rvc_buf_error(const rvc_buf *b);

/* The contents as a C string; "" when empty. Valid until the next change. */
const char *rvc_buf_str(const rvc_buf *b);

/* Hand the contents to the caller (malloc'd, NUL-terminated, never NULL on
 * RV_OK: an empty buffer gives ""); the buffer is empty afterwards. */
int rvc_buf_steal(rvc_buf *b, char **ret);

#endif
