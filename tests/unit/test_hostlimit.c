/* test_hostlimit.c — AIMD per-host limits. */
#include "hostlimit.h"

#include <limits.h>
#include <stdlib.h>

#include "rv_error.h"
#include "rv_test.h"

#define W RV_HOSTLIMIT_WINDOW_MS

static rv_hostlimit *make(unsigned ceiling) {
    rv_hostlimit *h = NULL;
    CHECK_EQ_U64(rv_hostlimit_new("https://h:443", ceiling, &h), RV_OK);
    CHECK(h != NULL);
    if (!h) { /* nothing below can run */
        rv_test_result();
        exit(1);
    }
    return h;
}

static void test_new(void) {
    char key[] = "http://example.com:80";
    rv_hostlimit *h = NULL;
    CHECK_EQ_U64(rv_hostlimit_new(key, 6, &h), RV_OK);
    if (!h)
        return;
    key[0] = 'X'; /* the key was copied */
    CHECK_STREQ(rv_hostlimit_key(h), "http://example.com:80");
    CHECK_EQ_U64(rv_hostlimit_current(h), 6);
    CHECK_EQ_U64(rv_hostlimit_active(h), 0);
    CHECK(rv_hostlimit_can_start(h));
    CHECK(rv_hostlimit_free(h) == NULL);
    CHECK(rv_hostlimit_free(NULL) == NULL);

    rv_hostlimit *untouched = (rv_hostlimit *)&h;
    CHECK_EQ_U64(rv_hostlimit_new("k", 0, &untouched), RV_E_INVALID_ARGUMENT);
    CHECK(untouched == (rv_hostlimit *)&h);
    CHECK_EQ_U64(rv_hostlimit_new(NULL, 4, &untouched), RV_E_INVALID_ARGUMENT);
    CHECK(untouched == (rv_hostlimit *)&h);
}

static void test_active(void) {
    rv_hostlimit *h = make(3);
    for (unsigned i = 0; i < 3; i++) {
        CHECK(rv_hostlimit_can_start(h));
        rv_hostlimit_started(h);
        CHECK_EQ_U64(rv_hostlimit_active(h), i + 1);
    }
    CHECK(!rv_hostlimit_can_start(h));
    rv_hostlimit_finished(h);
    CHECK(rv_hostlimit_can_start(h));
    CHECK_EQ_U64(rv_hostlimit_active(h), 2);
    rv_hostlimit_finished(h);
    rv_hostlimit_finished(h);
    CHECK_EQ_U64(rv_hostlimit_active(h), 0);
    rv_hostlimit_finished(h); /* unbalanced: stays at 0, does not wrap */
    CHECK_EQ_U64(rv_hostlimit_active(h), 0);
    CHECK(rv_hostlimit_can_start(h));
    rv_hostlimit_free(h);
}

static void test_halving(void) {
    rv_hostlimit *h = make(16);
    /* the very first throttle counts, even at time 0 */
    rv_hostlimit_on_throttle(h, 0);
    CHECK_EQ_U64(rv_hostlimit_current(h), 8);
    /* a burst inside the window is one signal */
    rv_hostlimit_on_throttle(h, 0);
    rv_hostlimit_on_throttle(h, 1);
    rv_hostlimit_on_throttle(h, W / 2);
    rv_hostlimit_on_throttle(h, W - 1);
    CHECK_EQ_U64(rv_hostlimit_current(h), 8);
    /* the window is measured from the last halving */
    rv_hostlimit_on_throttle(h, W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    rv_hostlimit_on_throttle(h, 2 * W - 1);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    /* a stale time from before the last halving does not count */
    rv_hostlimit_on_throttle(h, 3);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    /* successes do not reopen the window */
    rv_hostlimit_on_success(h, W + 10);
    rv_hostlimit_on_throttle(h, W + 20);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    rv_hostlimit_on_throttle(h, 10 * W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 2);
    rv_hostlimit_on_throttle(h, 20 * W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 1);
    /* floor at 1, however long it goes on */
    for (uint64_t t = 30 * W; t < 100 * W; t += W) {
        rv_hostlimit_on_throttle(h, t);
        CHECK_EQ_U64(rv_hostlimit_current(h), 1);
    }
    rv_hostlimit_free(h);

    /* odd ceilings halve the real value, not the floor: 7 -> 3.5 -> 1.75 */
    h = make(7);
    rv_hostlimit_on_throttle(h, 1000);
    CHECK_EQ_U64(rv_hostlimit_current(h), 3);
    rv_hostlimit_on_throttle(h, 1000 + W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 1);
    /* the fraction shows in recovery: 1.75 -> 2.32 -> 2.75 -> 3.12 (halving
     * the floors instead would give 1 -> 2 -> 2.5 -> 2.9) */
    rv_hostlimit_on_success(h, 1000 + W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 2);
    rv_hostlimit_on_success(h, 1000 + W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 2);
    rv_hostlimit_on_success(h, 1000 + W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 3);
    rv_hostlimit_free(h);

    /* large timestamps: no wrap-around confusion */
    h = make(8);
    rv_hostlimit_on_throttle(h, UINT64_MAX - W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    rv_hostlimit_on_throttle(h, UINT64_MAX - 1);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    rv_hostlimit_on_throttle(h, UINT64_MAX);
    CHECK_EQ_U64(rv_hostlimit_current(h), 2);
    rv_hostlimit_free(h);

    /* ceiling 1 stays 1 */
    h = make(1);
    rv_hostlimit_on_throttle(h, 0);
    CHECK_EQ_U64(rv_hostlimit_current(h), 1);
    rv_hostlimit_on_success(h, 1);
    CHECK_EQ_U64(rv_hostlimit_current(h), 1);
    rv_hostlimit_free(h);
}

/* A halving with more connections running than the new limit: no new
 * start until enough have finished. */
static void test_drain(void) {
    rv_hostlimit *h = make(8);
    for (int i = 0; i < 8; i++)
        rv_hostlimit_started(h);
    rv_hostlimit_on_throttle(h, 5000);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    for (int i = 8; i > 4; i--) {
        CHECK(!rv_hostlimit_can_start(h));
        rv_hostlimit_finished(h);
    }
    CHECK_EQ_U64(rv_hostlimit_active(h), 4);
    CHECK(!rv_hostlimit_can_start(h));
    rv_hostlimit_finished(h);
    CHECK(rv_hostlimit_can_start(h));
    rv_hostlimit_free(h);
}

/* Additive increase: from c, about c successes raise the limit by one;
 * never more than +1 per success; back to the ceiling, never above it. */
static void test_recovery(void) {
    const unsigned ceiling = 16;
    rv_hostlimit *h = make(ceiling);
    uint64_t t = 0;
    for (int i = 0; i < 4; i++, t += W)
        rv_hostlimit_on_throttle(h, t);
    CHECK_EQ_U64(rv_hostlimit_current(h), 1);

    unsigned total = 0;
    for (unsigned c = 1; c < ceiling; c++) {
        unsigned n = 0;
        while (rv_hostlimit_current(h) == c && n < 10 * ceiling) {
            rv_hostlimit_on_success(h, t++);
            n++;
        }
        CHECK_EQ_U64(rv_hostlimit_current(h), c + 1); /* one step at a time */
        CHECK(n >= c && n <= 2 * c);
        if (n < c || n > 2 * c)
            fprintf(stderr, "    from %u took %u successes\n", c, n);
        total += n;
    }
    /* sum c for c in 1..15 is 120: additive, not a jump, not a crawl */
    CHECK(total >= 120 && total <= 240);
    for (int i = 0; i < 1000; i++)
        rv_hostlimit_on_success(h, t++);
    CHECK_EQ_U64(rv_hostlimit_current(h), ceiling);
    rv_hostlimit_free(h);

    /* A halving after partial recovery halves the fractional value:
     * 8 -> 4, then 4 successes (just under 5), then halve -> 2. */
    h = make(8);
    rv_hostlimit_on_throttle(h, 0);
    for (int i = 0; i < 4; i++)
        rv_hostlimit_on_success(h, 1);
    CHECK_EQ_U64(rv_hostlimit_current(h), 4);
    rv_hostlimit_on_success(h, 2);
    CHECK_EQ_U64(rv_hostlimit_current(h), 5);
    rv_hostlimit_on_throttle(h, W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 2);
    rv_hostlimit_free(h);
}

/* The largest ceiling: no overflow in the fixed point. */
static void test_huge(void) {
    rv_hostlimit *h = make(UINT_MAX);
    CHECK_EQ_U64(rv_hostlimit_current(h), UINT_MAX);
    for (int i = 0; i < 100; i++)
        rv_hostlimit_on_success(h, 0);
    CHECK_EQ_U64(rv_hostlimit_current(h), UINT_MAX);
    rv_hostlimit_on_throttle(h, 0);
    CHECK_EQ_U64(rv_hostlimit_current(h), UINT_MAX / 2);
    uint64_t t = 0;
    for (int i = 0; i < 40; i++)
        rv_hostlimit_on_throttle(h, t += W);
    CHECK_EQ_U64(rv_hostlimit_current(h), 1);
    rv_hostlimit_free(h);
}

int main(void) {
    test_new();
    test_active();
    test_halving();
    test_drain();
    test_recovery();
    test_huge();
    return rv_test_result();
}
