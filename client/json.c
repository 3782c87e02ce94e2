/* json.c — JSON string escaping and the --json result line. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "retriever/rv_error.h"
#include "utf8.h"

int rvc_json_string(rvc_buf *b, const char *s) {
    if (!s)
        return rvc_buf_puts(b, "null");

    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    int r = rvc_buf_putc(b, '"');
    for (size_t i = 0; r == RV_OK && i < n;) {
        uint32_t cp;
        size_t len = rvc_utf8_next(u + i, n - i, &cp);
        if (len == 0) {
            r = rvc_buf_puts(b, "\\ufffd");
            i++;
            continue;
        }
        switch (cp) {
        case '"':
            r = rvc_buf_puts(b, "\\\"");
            break;
        case '\\':
            r = rvc_buf_puts(b, "\\\\");
            break;
        case '\b':
            r = rvc_buf_puts(b, "\\b");
            break;
        case '\f':
            r = rvc_buf_puts(b, "\\f");
            break;
        case '\n':
            r = rvc_buf_puts(b, "\\n");
            break;
        case '\r':
            r = rvc_buf_puts(b, "\\r");
            break;
        case '\t':
            r = rvc_buf_puts(b, "\\t");
            break;
        default:
            /* Other controls, DEL, and the two JavaScript line separators
             * are escaped; everything else passes through as is. */
            if (cp < 0x20 || cp == 0x7F || cp == 0x2028 || cp == 0x2029)
                r = rvc_buf_printf(b, "\\u%04x", (unsigned)cp);
            else
                r = rvc_buf_append(b, s + i, len);
            break;
        }
        i += len;
    }
    rvc_buf_putc(b, '"');
    return rvc_buf_error(b);
}

int rvc_json_result_line(rvc_buf *b, const rvc_json_result *res) {
    double secs = isfinite(res->seconds) && res->seconds > 0 ? res->seconds : 0.0;

    /* rvc_buf errors are sticky: build the whole line, check once. */
    rvc_buf_puts(b, "{\"url\":");
    rvc_json_string(b, res->url);
    rvc_buf_puts(b, ",\"path\":");
    rvc_json_string(b, res->path);
    rvc_buf_puts(b, ",\"state\":");
    rvc_json_string(b, res->state);
    rvc_buf_printf(b, ",\"bytes\":%llu,\"sha256\":", (unsigned long long)res->bytes);
    rvc_json_string(b, res->sha256);
    if (res->has_crc32c)
        rvc_buf_printf(b, ",\"crc32c\":\"%08x\"", res->crc32c);
    else
        rvc_buf_puts(b, ",\"crc32c\":null");
    rvc_buf_printf(b,
                   ",\"seconds\":%.3f,\"retries\":%u,\"cached_bytes\":%llu,"
                   "\"resumed_bytes\":%llu,\"error\":",
                   secs, res->retries, (unsigned long long)res->cached_bytes,
                   (unsigned long long)res->resumed_bytes);
    if (res->error == RV_OK) {
        rvc_buf_puts(b, "null");
    } else {
        rvc_buf_puts(b, "{\"code\":");
        rvc_json_string(b, rv_error_name(res->error));
        rvc_buf_printf(b, ",\"number\":%d,\"message\":", res->error);
        rvc_json_string(b, rv_strerror(res->error));
        rvc_buf_puts(b, ",\"detail\":");
        rvc_json_string(b, res->detail ? res->detail : "");
        rvc_buf_printf(b, ",\"retryable\":%s}", rv_error_retryable(res->error) ? "true" : "false");
    }
    rvc_buf_puts(b, "}\n");
    return rvc_buf_error(b);
}
