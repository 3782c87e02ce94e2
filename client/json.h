/* json.h — the --json output: string escaping and the one line written per
 * URL. Pure: builds text in an rvc_buf, does no I/O.
 *
 * The line schema (docs/cli.md, "JSON output") — every key always present,
 * in this order, one object per line:
 *
 *   {"url":      string       the URL as given on the command line
 *    "path":     string|null  the destination file; null when none could be
 *                             derived from the URL
 *    "state":    string       "done" | "failed" | "cancelled" | "rejected"
 *    "bytes":    integer      bytes downloaded (the file's size when done)
 *    "sha256":   string|null  lower-case hex digest when done, else null
 *    "crc32c":   string|null  8 lower-case hex digits of the file's CRC-32C
 *                             when done with state (else null)
 *    "seconds":  number       from start to the final state, 3 decimals
 *    "retries":  integer      retries made for this object
 *    "cached_bytes":  integer bytes served from the cache, no origin
 *                             transfer: the size for a cache hit, else 0
 *    "resumed_bytes": integer bytes already durable from an earlier run
 *                             when it started (a resume), else 0
 *    "error":    null when done, else
 *                {"code":      string   rv_error name, "RV_E_NOT_FOUND"
 *                 "number":    integer  its stable number
 *                 "message":   string   rv_strerror of it
 *                 "detail":    string   specifics, "" when none
 *                 "retryable": boolean  rv_error_retryable of it}}
 *
 * Strings are valid UTF-8: '"', '\\' and control characters are escaped,
 * valid UTF-8 passes through unchanged, invalid bytes become U+FFFD.
 */
#ifndef RVC_JSON_H
#define RVC_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* Append s as a JSON string literal, quotes included; NULL appends null.
 * Returns RV_OK or the rvc_buf error (b may hold a partial literal then). */
int rvc_json_string(rvc_buf *b, const char *s);

typedef struct rvc_json_result {
    const char *url;   /* required */
    const char *path;  /* NULL: null */
    const char *state; /* required: "done", "failed", "cancelled", "rejected",
                          "skipped" */
    uint64_t bytes;
    const char *sha256; /* NULL: null */
    bool has_crc32c;    /* false: null */
    uint32_t crc32c;
    double seconds;
    unsigned retries;
    uint64_t cached_bytes;  /* a cache hit's size, else 0 */
    uint64_t resumed_bytes; /* durable when it started (a resume), else 0 */
    int error;          /* rv_error; RV_OK gives "error":null */
    const char *detail; /* NULL: "" */
} rvc_json_result;

/* Append the line for r, '\n' included. Returns RV_OK or the rvc_buf
 * error. */
int rvc_json_result_line(rvc_buf *b, const rvc_json_result *r);

#endif
