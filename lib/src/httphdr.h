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

/* The file name a Content-Disposition value (RFC 6266) offers, as sent:
 * filename*= (RFC 8187: charset UTF-8, case-insensitive, an optional
 * language, then %-encoded bytes) is preferred over filename= (a token or
 * a quoted-string, whose backslash escapes are undone). A filename* in
 * another charset, or malformed, is ignored (filename= is used then). The
 * disposition type (attachment, inline, ...) is not looked at. Returns a
 * malloc'd NUL-terminated string (possibly "", possibly with '/', control
 * characters, invalid UTF-8: rv_filename_sanitize makes it safe), or NULL
 * when there is no usable parameter, an encoded NUL, a malformed value
 * before it, or no memory. */
char *rv_http_disposition_filename(const char *v, size_t len);

/* A name from an untrusted source made safe to create in a directory: the
 * part after the last '/' or '\\' (the server's idea of a path is not
 * ours), control characters (C0, DEL, C1) replaced by '_', leading dots
 * and blanks and trailing blanks dropped (no hidden files, never "." or
 * ".."), and at most max bytes: a longer name is cut at a UTF-8 character
 * boundary, keeping its extension (the last '.' and what follows, when
 * that is at most 32 bytes and leaves room for a stem). Returns a malloc'd
 * string, or NULL when nothing usable is left (empty, not valid UTF-8,
 * max 0) or no memory. */
char *rv_filename_sanitize(const char *name, size_t max);

#endif
