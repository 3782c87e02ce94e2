/* hexdigit.h — one hexadecimal digit's value (internal): percent-encoding
 * in URLs, RFC 8187 values in headers, S3 keys. */
#ifndef RV_HEXDIGIT_H
#define RV_HEXDIGIT_H

/* 0-15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for any other char. */
static inline int rv_hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
