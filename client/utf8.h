/* utf8.h — decoding one UTF-8 sequence, strictly (RFC 3629).
 *
 * Used wherever the client passes strings it does not control (file names
 * decoded from URLs, engine messages) to a terminal or into JSON: both must
 * see valid UTF-8, so invalid bytes are replaced, never passed through. */
#ifndef RVC_UTF8_H
#define RVC_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the sequence at s (n bytes available, n >= 1). Returns its length
 * (1..4) and sets *ret_cp, or returns 0 when the bytes at s do not start a
 * valid sequence: a stray continuation byte, a truncated sequence, an
 * overlong encoding, a surrogate (U+D800..U+DFFF) or a value above
 * U+10FFFF. *ret_cp is written only on success. */
size_t rvc_utf8_next(const unsigned char *s, size_t n, uint32_t *ret_cp);

#endif
