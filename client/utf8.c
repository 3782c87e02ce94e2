/* utf8.c — strict UTF-8 decoding of one sequence. */
#include "utf8.h"

#include <langinfo.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

size_t rvc_utf8_next(const unsigned char *s, size_t n, uint32_t *ret_cp) {
    uint32_t cp;
    size_t len;
    uint32_t min;

    if (s[0] < 0x80) {
        *ret_cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1F;
        len = 2;
        min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0F;
        len = 3;
        min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07;
        len = 4;
        min = 0x10000;
    } else {
        return 0; /* continuation byte or 0xF8..0xFF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *ret_cp = cp;
    return len;
}

bool rvc_utf8_locale(void) {
    const char *cs = nl_langinfo(CODESET);
    return MB_CUR_MAX > 1 && cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

size_t rvc_utf8_cols(uint32_t cp) {
    if (cp < 0x80)
        return 1;
    /* glibc's wchar_t is UCS-4 in every locale, so cp converts as is. */
    if (rvc_utf8_locale()) {
        int w = wcwidth((wchar_t)cp);
        if (w >= 0)
            return (size_t)w;
    }
    return 2;
}
