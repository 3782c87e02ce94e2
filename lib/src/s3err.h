/* s3err.h — S3's error answers: the <Code> of the XML body, and what a
 * user is told about it. A leaf: http.c reads the body of an s3 object's
 * error answer and asks here. */
#ifndef RV_S3ERR_H
#define RV_S3ERR_H

#include <stdbool.h>
#include <stddef.h>

/* Copy the first <Code>...</Code> of body (n bytes, not NUL-terminated)
 * into code (NUL-terminated, cut to size). false: none. */
bool rv_s3_error_code(const char *body, size_t n, char *code, size_t size);

/* For a code S3 sends: a one-line explanation and whether the failure is
 * permanent (no retry helps) and its RV_E_* code. NULL: not one this
 * module knows (the HTTP status decides, as for https). */
const char *rv_s3_error_text(const char *code, bool *permanent, int *err);

#endif
