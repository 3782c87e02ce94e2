/* retry.h — the retry policy (internal to lib/): which failures are worth
 * another attempt, and how long to wait before it. Pure functions.
 *
 * Classification (seed 003, issue 21): transient failures — timeouts,
 * resets, truncated bodies, 408/425/500/502/504 — retry with exponential
 * backoff and full jitter. Throttling — 429/503 — retries too, honours
 * Retry-After, and also tells the host limiter to back off. A refused
 * connection (nobody listens: a server restarting) retries on a short
 * schedule bounded in time (rv_config.connect_retry_ms). Everything else
 * (a host name that does not resolve, other 4xx, bad URL, TLS failures) is
 * permanent and fails at once: asking again would get the same answer.
 */
#ifndef RV_RETRY_H
#define RV_RETRY_H

#include <stdint.h>

typedef enum rv_fault {
    RV_FAULT_NONE = 0,  /* success */
    RV_FAULT_TRANSIENT, /* retry with backoff */
    RV_FAULT_THROTTLE,  /* retry with backoff or Retry-After; host backs off */
    RV_FAULT_PERMANENT, /* fail the object now */
    RV_FAULT_REFUSED,   /* retry with backoff while within connect_retry_ms of
                           the first refusal in a row; then fail */
} rv_fault;

/* Classify a final HTTP status. *ret_err (ret_err may be NULL) gets the
 * rv_error the object fails with if retries run out (or at once, for
 * permanent ones); RV_OK for NONE. 2xx is NONE. The table is in retry.c. */
rv_fault rv_retry_classify_http(long status, int *ret_err);

/* Classify a libcurl result code (CURLcode as int, so this header does not
 * need curl.h). CURLE_OK is NONE. */
rv_fault rv_retry_classify_curl(int curl_code, int *ret_err);

/* A small deterministic PRNG (splitmix64) so jitter is testable. */
typedef struct rv_rng {
    uint64_t state;
} rv_rng;
void rv_rng_seed(rv_rng *r, uint64_t seed);
uint64_t rv_rng_next(rv_rng *r);
/* Uniform in [0, bound] inclusive; bound 0 gives 0. */
uint64_t rv_rng_uniform(rv_rng *r, uint64_t bound);

/* Full jitter: uniform in [0, min(max_ms, base_ms * 2^(attempt-1))],
 * attempt >= 1 (0 counts as 1), no overflow for any attempt. */
uint64_t rv_retry_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, rv_rng *rng);

/* The wait before the next attempt after a failure that carried a
 * Retry-After of retry_after_ms (UINT64_MAX when absent): the server's value
 * when present, else full-jitter backoff. Returns the wait; sets *ret_too_long
 * to 1 when the server's value exceeds cap_ms (the caller then fails the
 * object with RV_E_RETRY_AFTER_TOO_LONG instead of waiting), else to 0;
 * ret_too_long may be NULL. The rng is used only when there is no
 * Retry-After. */
uint64_t rv_retry_wait_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms,
                          uint64_t retry_after_ms, uint64_t cap_ms, rv_rng *rng, int *ret_too_long);

#endif
