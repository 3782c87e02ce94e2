/* monoclock.h — the library's one clock for intervals (internal). */
#ifndef RV_MONOCLOCK_H
#define RV_MONOCLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds: never steps, so deadlines and measured
 * costs survive changes of the wall clock. */
static inline uint64_t rv_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
