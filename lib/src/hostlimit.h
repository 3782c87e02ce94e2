/* hostlimit.h — per-host connection limits with throttle backoff (internal).
 *
 * Each origin host (scheme://host:port) has a ceiling (the configured
 * per-host maximum) and a current limit. A throttling answer (429/503)
 * halves the current limit (at most once per backoff window, never below 1);
 * every completed range without throttling raises it additively by
 * 1/current, so it climbs back by about one connection per "round" of
 * requests — AIMD, like TCP. Times are milliseconds on a monotonic clock,
 * passed in so the module stays pure and testable.
 */
#ifndef RV_HOSTLIMIT_H
#define RV_HOSTLIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct rv_hostlimit rv_hostlimit;

/* Window within which repeated throttles count as one backoff. */
#define RV_HOSTLIMIT_WINDOW_MS 1000

/* key is copied. RV_E_NOMEM on failure; RV_E_INVALID_ARGUMENT for a NULL
 * key or a ceiling of 0. *ret is written only on success. */
int rv_hostlimit_new(const char *key, unsigned ceiling, rv_hostlimit **ret);
rv_hostlimit *rv_hostlimit_free(rv_hostlimit *h);

const char *rv_hostlimit_key(const rv_hostlimit *h);
/* Whether one more connection may start now (active < floor(current)). */
bool rv_hostlimit_can_start(const rv_hostlimit *h);
void rv_hostlimit_started(rv_hostlimit *h);
void rv_hostlimit_finished(rv_hostlimit *h);
unsigned rv_hostlimit_active(const rv_hostlimit *h);
/* floor of the current limit, in [1, ceiling]. */
unsigned rv_hostlimit_current(const rv_hostlimit *h);
void rv_hostlimit_on_throttle(rv_hostlimit *h, uint64_t now_ms);
void rv_hostlimit_on_success(rv_hostlimit *h, uint64_t now_ms);

#endif
