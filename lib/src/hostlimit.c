/* hostlimit.c — per-host connection limit, AIMD on throttling answers.
 *
 * The current limit is kept in fixed point, 16 fractional bits:
 *
 *   invariant   HL_ONE <= cur <= ceiling * HL_ONE          (1 .. ceiling)
 *   current     cur >> 16, i.e. floor of the limit
 *   throttle    cur = max(HL_ONE, cur / 2), at most once per
 *               RV_HOSTLIMIT_WINDOW_MS (a burst of 429s from requests that
 *               were all in flight together is one signal, not many)
 *   success     cur = min(ceiling * HL_ONE, cur + ceil(HL_ONE^2 / cur)),
 *               i.e. + 1/current rounded up to the next 1/65536, so every
 *               success makes progress and about `current` successes
 *               raise the limit by one connection
 *
 * Fixed point rather than double so the arithmetic is exact and identical
 * everywhere: a ceiling up to UINT_MAX needs 48 bits, HL_ONE^2 is 2^32,
 * nothing comes near 2^64.
 *
 * active counts connections the caller reported started and not yet
 * finished; it may exceed current after a halving (the surplus drains as
 * transfers finish; can_start stays false meanwhile).
 */
#include "hostlimit.h"

#include <stdlib.h>
#include <string.h>

#include "rv_error.h"

#define HL_SHIFT 16
#define HL_ONE (UINT64_C(1) << HL_SHIFT)

struct rv_hostlimit {
    char *key;                /* owned */
    uint64_t cur;             /* fixed point, see the invariant above */
    uint64_t ceil_fp;         /* ceiling * HL_ONE */
    unsigned active;
    bool backed_off;          /* last_backoff_ms is meaningful */
    uint64_t last_backoff_ms; /* when the last halving happened */
};

int rv_hostlimit_new(const char *key, unsigned ceiling, rv_hostlimit **ret) {
    rv_hostlimit *h = NULL;
    int r = RV_E_INVALID_ARGUMENT;

    if (!key || ceiling == 0 || !ret)
        goto out;
    r = RV_E_NOMEM;
    h = calloc(1, sizeof(*h));
    if (!h)
        goto out;
    h->key = strdup(key);
    if (!h->key)
        goto out;
    h->ceil_fp = (uint64_t)ceiling << HL_SHIFT;
    h->cur = h->ceil_fp;
    *ret = h;
    h = NULL;
    r = RV_OK;
out:
    rv_hostlimit_free(h);
    return r;
}

rv_hostlimit *rv_hostlimit_free(rv_hostlimit *h) {
    if (!h)
        return NULL;
    free(h->key);
    free(h);
    return NULL;
}

const char *rv_hostlimit_key(const rv_hostlimit *h) {
    return h->key;
}

unsigned rv_hostlimit_current(const rv_hostlimit *h) {
    return (unsigned)(h->cur >> HL_SHIFT);
}

bool rv_hostlimit_can_start(const rv_hostlimit *h) {
    return h->active < rv_hostlimit_current(h);
}

void rv_hostlimit_started(rv_hostlimit *h) {
    if (h->active < UINT32_MAX)
        h->active++;
}

/* A finish without a start is the caller's bug; active stays at 0 rather
 * than wrapping to a huge number that would block the host forever. */
void rv_hostlimit_finished(rv_hostlimit *h) {
    if (h->active > 0)
        h->active--;
}

unsigned rv_hostlimit_active(const rv_hostlimit *h) {
    return h->active;
}

/* A time before the last halving (the caller passed a stale timestamp) is
 * treated as inside the window. */
void rv_hostlimit_on_throttle(rv_hostlimit *h, uint64_t now_ms) {
    if (h->backed_off && now_ms - h->last_backoff_ms < RV_HOSTLIMIT_WINDOW_MS)
        return;
    if (h->backed_off && now_ms < h->last_backoff_ms)
        return;
    h->cur /= 2;
    if (h->cur < HL_ONE)
        h->cur = HL_ONE;
    h->backed_off = true;
    h->last_backoff_ms = now_ms;
}

void rv_hostlimit_on_success(rv_hostlimit *h, uint64_t now_ms) {
    (void)now_ms;
    uint64_t step = (HL_ONE * HL_ONE + h->cur - 1) / h->cur;
    h->cur = h->cur + step >= h->ceil_fp ? h->ceil_fp : h->cur + step;
}
