/* log.c — one line per event on stderr. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void log_line(const char *level, const char *fmt, va_list ap) {
    char line[RVD_LOG_MAX_LINE];
    int saved_errno = errno;
    int n = snprintf(line, sizeof(line), "retrieverd: %s", level);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    if (m < 0)
        return;
    len += (size_t)m;
    if (len >= sizeof(line) - 1) /* vsnprintf stopped at the buffer's end */
        len = sizeof(line) - 1;
    /* One event, one line: a control character in a quoted path or URL
     * must not start a forged line of its own. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    if (len >= sizeof(line) - 1) { /* cut: keep room for "...\n" */
        len = sizeof(line) - 5;
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';
    /* One write per line; a short write to a terminal or pipe is not worth
     * retrying with the rest (the log is best effort). */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved_errno;
}

static int log_level = RVD_LOG_INFO; /* read and written with __atomic, relaxed */

void rvd_log_set_level(rvd_log_level level) {
    __atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

rvd_log_level rvd_log_get_level(void) {
    return (rvd_log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static bool enabled(rvd_log_level level) {
    return __atomic_load_n(&log_level, __ATOMIC_RELAXED) >= (int)level;
}

void rvd_log_debug(const char *fmt, ...) {
    if (!enabled(RVD_LOG_DEBUG))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("debug: ", fmt, ap);
    va_end(ap);
}

void rvd_log_always(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
}

void rvd_log_info(const char *fmt, ...) {
    if (!enabled(RVD_LOG_INFO))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
}

void rvd_log_warning(const char *fmt, ...) {
    if (!enabled(RVD_LOG_WARNING))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("warning: ", fmt, ap);
    va_end(ap);
}

void rvd_log_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("error: ", fmt, ap);
    va_end(ap);
}

char *rvd_strdupf(const char *fmt, ...) {
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}
