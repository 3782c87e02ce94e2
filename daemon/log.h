/* log.h — the daemon's log: one line per event on stderr.
 *
 * Every line is "retrieverd: " + the message + "\n", written with a single
 * write(2), so lines from different threads never interleave. Control
 * characters (from a caller's path, say) become '?': one event, one line. Messages
 * quote user-supplied strings (paths, method names) in '…' and never carry
 * secrets. Under systemd, stderr goes to the journal, which adds the time
 * and the pid; without it, the lines are what a person reads in a terminal.
 *
 * The daemon logs each failure once, where it is handled: modules return
 * an error and a sentence (ret_error), and the caller decides to log it.
 * Only the threads that handle events themselves (the accept thread, the
 * gRPC library's own messages) log directly.
 */
#ifndef RVD_LOG_H
#define RVD_LOG_H

/* Lines longer than this are cut (and end with "..."). */
#define RVD_LOG_MAX_LINE 2048

/* The least important lines still written: the config key log-level.
 * Errors are always written. */
typedef enum rvd_log_level {
    RVD_LOG_ERROR = 0,
    RVD_LOG_WARNING,
    RVD_LOG_INFO,
    RVD_LOG_DEBUG,
} rvd_log_level;

/* Default RVD_LOG_INFO. Any thread may log while another sets the level
 * (it is one atomic int). */
void rvd_log_set_level(rvd_log_level level);
rvd_log_level rvd_log_get_level(void);

void rvd_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rvd_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whatever the level, like info: the "ready" line that scripts wait for. */
void rvd_log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rvd_log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rvd_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A malloc'd, formatted sentence for a ret_error out-parameter; NULL when
 * memory runs out (callers then log a generic message). */
char *rvd_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
