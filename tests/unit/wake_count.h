/* wake_count.h — a wake callback for tests of the library's helper
 * threads: it counts the calls, and the test waits for a count. Include
 * once per test program. */
#ifndef RV_WAKE_COUNT_H
#define RV_WAKE_COUNT_H

#include <pthread.h>

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t woken = PTHREAD_COND_INITIALIZER;
static unsigned wake_calls;

/* The helper thread's wake(ud): called on that thread. */
static inline void wake(void *ud) {
    (void)ud;
    pthread_mutex_lock(&wake_lock);
    wake_calls++;
    pthread_cond_signal(&woken);
    pthread_mutex_unlock(&wake_lock);
}

/* Wait until wake has been called at least n times; returns the count. */
static inline unsigned wait_wakes(unsigned n) {
    pthread_mutex_lock(&wake_lock);
    while (wake_calls < n)
        pthread_cond_wait(&woken, &wake_lock);
    unsigned calls = wake_calls;
    pthread_mutex_unlock(&wake_lock);
    return calls;
}

static inline unsigned wakes_so_far(void) {
    return wait_wakes(0);
}

static inline void reset_wakes(void) {
    pthread_mutex_lock(&wake_lock);
    wake_calls = 0;
    pthread_mutex_unlock(&wake_lock);
}

#endif
