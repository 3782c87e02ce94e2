/* rv_error.h — the one error-code table of libretriever.
 *
 * Every failure the library reports is one of these codes. The numbers are
 * part of the ABI and never change: add new codes at the end, never reuse a
 * retired number. The daemon maps them to gRPC status codes in exactly one
 * place; the command line maps them to exit codes in exactly one place.
 *
 * Columns: enum name, number, retryable, message.
 *   retryable — a later attempt of the same request may succeed without the
 *               caller changing anything (the origin was down, the disk was
 *               full, the wait the origin asked for was too long).
 *   message   — a short sentence a person can act on; the object's detail
 *               string (rv_object_error_detail) adds the specifics.
 */
#ifndef RV_ERROR_H
#define RV_ERROR_H

#include <stdbool.h>

#define RV_ERRORS(X)                                                                   \
    X(RV_OK, 0, false, "success")                                                      \
    X(RV_E_NOMEM, 1, true, "out of memory")                                            \
    X(RV_E_INVALID_ARGUMENT, 2, false, "invalid argument")                             \
    X(RV_E_BAD_URL, 3, false, "malformed URL")                                         \
    X(RV_E_UNSUPPORTED_SCHEME, 4, false, "unsupported URL scheme")                     \
    X(RV_E_DEST_IS_DIR, 5, false, "destination is a directory")                        \
    X(RV_E_DEST_UNWRITABLE, 6, false, "destination is not writable")                   \
    X(RV_E_DEST_CONFLICT, 7, false, "two downloads share one destination")             \
    X(RV_E_NO_SPACE, 8, true, "no space left on the destination's file system")        \
    X(RV_E_TOO_LARGE, 9, false, "object is larger than the destination allows")        \
    X(RV_E_IO, 10, true, "local I/O error")                                            \
    X(RV_E_NOT_FOUND, 11, false, "origin has no such object")                          \
    X(RV_E_ACCESS_DENIED, 12, false, "origin refused access")                          \
    X(RV_E_HTTP_STATUS, 13, false, "origin answered with an error status")            \
    X(RV_E_CONNECT, 14, true, "could not connect to the origin")                       \
    X(RV_E_RESOLVE_HOST, 15, false, "could not resolve the origin's host name")        \
    X(RV_E_TLS, 16, false, "TLS handshake or certificate verification failed")         \
    X(RV_E_TIMEOUT, 17, true, "transfer stalled or timed out")                         \
    X(RV_E_TRUNCATED, 18, true, "connection closed before the body was complete")      \
    X(RV_E_SERVER_ERROR, 19, true, "origin kept failing with server errors")           \
    X(RV_E_THROTTLED, 20, true, "origin kept throttling the download")                 \
    X(RV_E_RETRY_AFTER_TOO_LONG, 21, true, "origin asked to wait longer than allowed") \
    X(RV_E_PROTOCOL, 22, false, "origin sent an invalid response")                     \
    X(RV_E_CHANGED, 23, true, "object changed on the origin during the download")      \
    X(RV_E_SIZE_MISMATCH, 24, false, "downloaded size differs from the expected size") \
    X(RV_E_CHECKSUM_MISMATCH, 25, false, "sha256 of the download does not match")      \
    X(RV_E_CANCELLED, 26, false, "download was cancelled")                             \
    X(RV_E_TOO_MANY_REDIRECTS, 27, false, "too many redirects")                        \
    X(RV_E_INTERNAL, 28, false, "internal error")                                     \
    X(RV_E_STATE_BUSY, 29, true, "state directory is in use by another process")      \
    X(RV_E_STATE, 30, true, "state database error")                                   \
    X(RV_E_DEST_EXISTS, 31, false, "destination exists")

typedef enum rv_error {
#define RV_ERROR_ENUM_(name, num, retryable, msg) name = num,
    RV_ERRORS(RV_ERROR_ENUM_)
#undef RV_ERROR_ENUM_
} rv_error;

/* The table's message for code; never NULL ("unknown error" for numbers
 * outside the table). The string is static. */
const char *rv_strerror(int code);

/* The enum's name as a string ("RV_E_NOT_FOUND"); static, never NULL. */
const char *rv_error_name(int code);

/* Whether a later attempt of the same request may succeed unchanged. */
bool rv_error_retryable(int code);

#endif
