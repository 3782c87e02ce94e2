/* buf.c — growable byte buffer with a maximum size. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retriever/rv_error.h"

void rvc_buf_init(rvc_buf *b, size_t max) {
    *b = (rvc_buf){.max = max};
}

void rvc_buf_done(rvc_buf *b) {
    free(b->data);
    rvc_buf_init(b, b->max);
}

void rvc_buf_reset(rvc_buf *b) {
    b->len = 0;
    b->err = RV_OK;
    if (b->data)
        b->data[0] = '\0';
}

/* Record err as the sticky error (the first one wins) and return it. */
static int buf_fail(rvc_buf *b, int err) {
    if (b->err == RV_OK)
        b->err = err;
    return b->err;
}

/* Make room for `extra` more bytes plus the NUL. */
static int buf_reserve(rvc_buf *b, size_t extra) {
    if (b->err != RV_OK)
        return b->err;
    if (extra > b->max - b->len)
        return buf_fail(b, RV_E_TOO_LARGE);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return RV_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return buf_fail(b, RV_E_NOMEM);
    b->data = p;
    b->cap = cap;
    return RV_OK;
}

int rvc_buf_append(rvc_buf *b, const void *data, size_t len) {
    int r = buf_reserve(b, len);
    if (r != RV_OK)
        return r;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return RV_OK;
}

int rvc_buf_puts(rvc_buf *b, const char *s) {
    return rvc_buf_append(b, s, strlen(s));
}

int rvc_buf_putc(rvc_buf *b, char c) {
    return rvc_buf_append(b, &c, 1);
}

int rvc_buf_vprintf(rvc_buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return buf_fail(b, RV_E_INVALID_ARGUMENT);
    int r = buf_reserve(b, (size_t)n);
    if (r != RV_OK)
        return r;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return RV_OK;
}

int rvc_buf_printf(rvc_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = rvc_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

int rvc_buf_error(const rvc_buf *b) {
    return b->err;
}

const char *rvc_buf_str(const rvc_buf *b) {
    return b->data ? b->data : "";
}

int rvc_buf_steal(rvc_buf *b, char **ret) {
    char *s = b->data ? b->data : strdup("");
    if (!s)
        return RV_E_NOMEM;
    rvc_buf_init(b, b->max);
    *ret = s;
    return RV_OK;
}
