/* test_bgthread.c — the batch thread: a first request after a quiet spell
 * starts at once; with spacing, requests arriving during it join one batch
 * and that batch waits out the spacing, unless hurried (once: the batch
 * after that is spaced again); a list submitted at once is one batch;
 * stop cuts the wait short and still
 * works through what was queued; without spacing nothing waits; with
 * RV_BG_WAKE_WHEN_IDLE only a batch that leaves nothing queued wakes; with
 * RV_BG_ONE_AT_A_TIME a batch is one request; waiting for a done request
 * returns when one is done, or at once with nothing out. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bgthread.h"
#include "rv_error.h"
#include "rv_test.h"
#include "wake_count.h"

#define SPACING_US 300000u /* long beside a few submits, short for a test */

typedef struct req {
    rv_bg_req bg;
    unsigned batch; /* out: the number of the batch it ran in (1, 2, ...) */
} req;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned batches;
static double batch_start[8];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void work(void *ctx, rv_bg_req *list) {
    (void)ctx;
    pthread_mutex_lock(&lock);
    unsigned n = ++batches;
    if (n <= 8)
        batch_start[n - 1] = now_s();
    pthread_mutex_unlock(&lock);
    for (rv_bg_req *r = list; r; r = r->next)
        ((req *)r)->batch = n;
}

/* work() behind a gate: the test holds a batch in work while it queues
 * more. */
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed, gate_reached;

static void gated_work(void *ctx, rv_bg_req *list) {
    pthread_mutex_lock(&lock);
    gate_reached = true;
    pthread_cond_broadcast(&gate_cond);
    while (gate_closed)
        pthread_cond_wait(&gate_cond, &lock);
    pthread_mutex_unlock(&lock);
    work(ctx, list);
}


static void reset(void) {
    pthread_mutex_lock(&lock);
    batches = 0;
    pthread_mutex_unlock(&lock);
    reset_wakes();
}

/* Take back everything done; returns how many. */
static unsigned take_all(rv_bgthread *t) {
    unsigned n = 0;
    for (rv_bg_req *r = rv_bgthread_take_done(t); r; r = r->next)
        n++;
    return n;
}

static void spaced_batches(void) {
    rv_bgthread *t = NULL;
    req r[4] = {0};
    reset();
    CHECK_EQ_U64(rv_bgthread_new("rv-test", work, NULL, wake, NULL, SPACING_US, 0, &t), RV_OK);

    double t0 = now_s();
    rv_bgthread_submit(t, &r[0].bg);
    wait_wakes(1);
    CHECK(batch_start[0] - t0 < SPACING_US / 2e6); /* the first starts at once */
    CHECK_EQ_U64(take_all(t), 1);

    /* Three requests right after: they wait for the spacing, together. */
    for (int i = 1; i < 4; i++) {
        rv_bgthread_submit(t, &r[i].bg);
        usleep(1000);
    }
    wait_wakes(2);
    CHECK_EQ_U64(take_all(t), 3);
    CHECK_EQ_U64(r[0].batch, 1);
    CHECK_EQ_U64(r[1].batch, 2);
    CHECK_EQ_U64(r[2].batch, 2);
    CHECK_EQ_U64(r[3].batch, 2);
    CHECK(batch_start[1] - batch_start[0] >= SPACING_US / 1e6 * 0.99);
    CHECK(rv_bgthread_take_done(t) == NULL); /* nothing else came back */
    rv_bgthread_free(t);
}

static void hurried_and_listed(void) {
    rv_bgthread *t = NULL;
    req r[5] = {0};
    reset();
    CHECK_EQ_U64(rv_bgthread_new("rv-test", work, NULL, wake, NULL, SPACING_US, 0, &t), RV_OK);
    rv_bgthread_submit(t, &r[0].bg);
    wait_wakes(1);
    /* Two requests in one list, hurried: no wait for the spacing. */
    r[1].bg.next = &r[2].bg;
    rv_bgthread_submit_list(t, &r[1].bg);
    rv_bgthread_hurry(t);
    wait_wakes(2);
    CHECK(batch_start[1] - batch_start[0] < SPACING_US / 2e6);
    CHECK_EQ_U64(r[1].batch, 2);
    CHECK_EQ_U64(r[2].batch, 2);
    /* A hurry speeds up one batch: the next is spaced again. */
    rv_bgthread_submit(t, &r[3].bg);
    wait_wakes(3);
    CHECK(batch_start[2] - batch_start[1] >= SPACING_US / 1e6 * 0.99);
    /* A hurry while idle speeds up the next batch. */
    rv_bgthread_hurry(t);
    rv_bgthread_submit(t, &r[4].bg);
    wait_wakes(4);
    CHECK(batch_start[3] - batch_start[2] < SPACING_US / 2e6);
    CHECK_EQ_U64(take_all(t), 5);
    rv_bgthread_free(t);
}

static void stop_cuts_the_wait(void) {
    rv_bgthread *t = NULL;
    req r[2] = {0};
    reset();
    CHECK_EQ_U64(rv_bgthread_new("rv-test", work, NULL, wake, NULL, 60u * 1000000u, 0, &t), RV_OK);
    rv_bgthread_submit(t, &r[0].bg);
    wait_wakes(1);
    rv_bgthread_submit(t, &r[1].bg); /* would wait a minute */
    double t0 = now_s();
    rv_bgthread_stop(t);
    CHECK(now_s() - t0 < 30.0);
    CHECK_EQ_U64(r[1].batch, 2);
    CHECK_EQ_U64(take_all(t), 2);
    rv_bgthread_free(t);
}

static void unspaced(void) {
    rv_bgthread *t = NULL;
    req r[2] = {0};
    reset();
    CHECK_EQ_U64(rv_bgthread_new("rv-test", work, NULL, wake, NULL, 0, 0, &t), RV_OK);
    double t0 = now_s();
    rv_bgthread_submit(t, &r[0].bg);
    wait_wakes(1);
    rv_bgthread_submit(t, &r[1].bg);
    wait_wakes(2);
    CHECK(now_s() - t0 < SPACING_US / 1e6); /* nothing waited for spacing */
    CHECK_EQ_U64(r[1].batch, 2);
    CHECK_EQ_U64(take_all(t), 2);
    rv_bgthread_free(t);
}

/* Three requests, the last two queued while the first is in work: in two
 * batches, or with RV_BG_ONE_AT_A_TIME in three; a wake only when nothing
 * is left queued. */
static void queued_during_work(unsigned flags) {
    bool one = flags & RV_BG_ONE_AT_A_TIME;
    rv_bgthread *t = NULL;
    req r[3] = {0};
    reset();
    gate_closed = true;
    gate_reached = false;
    CHECK_EQ_U64(rv_bgthread_new("rv-test", gated_work, NULL, wake, NULL, 0, flags, &t), RV_OK);
    rv_bgthread_wait_done(t); /* nothing out: returns at once */
    CHECK(rv_bgthread_take_done(t) == NULL);

    rv_bgthread_submit(t, &r[0].bg);
    pthread_mutex_lock(&lock);
    while (!gate_reached) /* batch 1 is in work */
        pthread_cond_wait(&gate_cond, &lock);
    pthread_mutex_unlock(&lock);
    rv_bgthread_submit(t, &r[1].bg);
    rv_bgthread_submit(t, &r[2].bg);
    pthread_mutex_lock(&lock);
    gate_closed = false;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&lock);

    rv_bgthread_wait_done(t); /* batch 1 is done, at least */
    unsigned taken = take_all(t);
    CHECK(taken >= 1);
    wait_wakes(1);
    usleep(100000);
    taken += take_all(t);
    CHECK_EQ_U64(taken, 3);
    CHECK_EQ_U64(batches, one ? 3 : 2);
    CHECK_EQ_U64(r[0].batch, 1);
    CHECK_EQ_U64(r[1].batch, 2);
    CHECK_EQ_U64(r[2].batch, one ? 3 : 2);
    CHECK_EQ_U64(wakes_so_far(), 1); /* earlier batches left work queued: no wake for them */
    rv_bgthread_free(t);
}

int main(void) {
    spaced_batches();
    hurried_and_listed();
    stop_cuts_the_wait();
    unspaced();
    queued_during_work(RV_BG_WAKE_WHEN_IDLE);
    queued_during_work(RV_BG_WAKE_WHEN_IDLE | RV_BG_ONE_AT_A_TIME);
    return rv_test_result();
}
