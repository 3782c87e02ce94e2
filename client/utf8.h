/* utf8.h — decoding one UTF-8 sequence, strictly (RFC 3629).
 *
 * Used wherever the client passes strings it does not control (file names
 * decoded from URLs, engine messages) to a terminal or into JSON: both must
 * see valid UTF-8, so invalid bytes are replaced, never passed through. */
#ifndef RVC_UTF8_H
#define RVC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode the sequence at s (n bytes available, n >= 1). Returns its length
 * (1..4) and sets *ret_cp, or returns 0 when the bytes at s do not start a
 * valid sequence: a stray continuation byte, a truncated sequence, an
 * overlong encoding, a surrogate (U+D800..U+DFFF) or a value above
 * U+10FFFF. *ret_cp is written only on success. */
size_t rvc_utf8_next(const unsigned char *s, size_t n, uint32_t *ret_cp);

/* Whether the locale's character set (LC_CTYPE, as main() set it from the
 * environment) is UTF-8: then the terminal is taken to show UTF-8, and
 * wcwidth() knows how many columns each character takes. */
bool rvc_utf8_locale(void);

/* Columns the printable code point cp takes on a terminal: 1 for ASCII;
 * otherwise wcwidth() in a UTF-8 locale (0 for combining marks, 2 for
 * wide CJK characters), and 2 when it cannot tell (not a UTF-8 locale, or
 * a code point the locale does not know): too many columns misalign a
 * line, too few would make it wrap. */
size_t rvc_utf8_cols(uint32_t cp);

#endif
