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

/* Weak comparison of two ETags (RFC 9110 section 8.8.3.2): their
 * opaque-tags match, W/ or not. Either NULL: false. */
bool rv_http_etag_weak_equal(const char *a, const char *b);

/* What a Last-Modified value is worth as a validator, judged against the
 * Date of the same response (RFC 9110 sections 8.8.2.2 and 13.1.5). */
typedef enum {
    /* At least one second before Date: a strong validator, fit for
     * If-Range (HTTP-dates have whole seconds, so "earlier" is enough). */
    RV_HTTP_LM_STRONG,
    /* No Date, or a Date or Last-Modified that does not parse: weak.
     * Responses may be compared by it; never sent in If-Range. */
    RV_HTTP_LM_WEAK,
    /* Not before Date: the object changed within the second or has an
     * mtime in the future, which an origin replaces by its clock (section
     * 8.8.2.1: Apache does), so the value may change every second while
     * the object does not. It says nothing about the version. */
    RV_HTTP_LM_NONE,
} rv_http_lm_kind;

/* lm and date are NUL-terminated header values (date may be NULL: WEAK;
 * lm NULL: NONE); now
 * resolves the two-digit years of RFC 850 dates. */
rv_http_lm_kind rv_http_last_modified_kind(const char *lm, const char *date, time_t now);

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
