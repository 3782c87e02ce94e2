/* clock.h — the one clock helper of retrieverctl: milliseconds of a clock.
 *
 * CLOCK_MONOTONIC for intervals and deadlines (progress, retries, waits);
 * CLOCK_REALTIME only where a time is compared with the daemon's
 * (time_unix_ms of its answers). Inline: the remote module and
 * retrieverctl_core each get their copy without an exported symbol.
 */
#ifndef RVC_CLOCK_H
#define RVC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t rvc_clock_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds: for intervals, never for dates. */
static inline uint64_t rvc_now_ms(void) {
    return rvc_clock_ms(CLOCK_MONOTONIC);
}

#endif
