/* httphdr.h — parsing the HTTP response headers the engine relies on
 * (internal to lib/). Pure functions: no I/O, no allocation unless stated. */
#ifndef RV_HTTPHDR_H
#define RV_HTTPHDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define RV_HTTP_UNKNOWN_TOTAL UINT64_MAX

/* Split one raw header line ("Name: value\r\n") into name and value with
 * surrounding whitespace and the line ending trimmed. Returns false for a
 * line that is not a header (status line, blank line, no colon). Pointers
 * point into line. */
bool rv_http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                          const char **value, size_t *value_len);

/* Case-insensitive comparison of a header name with a NUL-terminated one. */
bool rv_http_name_is(const char *name, size_t name_len, const char *want);

/* Parse a status line "HTTP/1.1 206 Partial Content" or "HTTP/2 200".
 * Returns false when line is not a status line. */
bool rv_http_parse_status(const char *line, size_t len, long *ret_status);

/* Content-Range of a 206: "bytes FIRST-LAST/TOTAL", or with a '*' in place
 * of TOTAL (TOTAL = RV_HTTP_UNKNOWN_TOTAL); of a 416: "bytes * /TOTAL"
 * (without the space; first = last = RV_HTTP_UNKNOWN_TOTAL). Returns false
 * for anything malformed, FIRST > LAST, or LAST >= TOTAL. Overflow is
 * malformed, and so is any number equal to UINT64_MAX (the sentinel). The
 * outputs are written only on success. */
bool rv_http_parse_content_range(const char *v, size_t len, uint64_t *first, uint64_t *last,
                                 uint64_t *total);

/* Retry-After: delta-seconds or an HTTP-date. *ret_ms is the wait from now
 * (0 for a date in the past), saturating at UINT64_MAX / 2 for huge values.
 * Returns false when unparseable. */
bool rv_http_parse_retry_after(const char *v, size_t len, time_t now, uint64_t *ret_ms);

/* Content-Length: decimal digits only, no sign, overflow rejected. */
bool rv_http_parse_u64(const char *v, size_t len, uint64_t *ret);

/* An ETag is weak when it starts with W/ (If-Range must not use it). */
bool rv_http_etag_is_weak(const char *etag);

#endif
