/* test_jobstate.c — the job state machine (jobstate.c, rvd_job_set_state):
 * every legal change is made and counted (by state, and for the owner's
 * uid), and every other change is refused with nothing changed: an
 * assertion (abort) in a debug build, RVD_INTERNAL in a release build. Each
 * illegal change is tried in a child process, so either outcome can be
 * checked in whichever build runs the test. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs_int.h"
#include "rv_test.h"

#define UID 1001
#define BYTES 10
#define N_STATES (RVD_JOB_CANCELLED + 1) /* with JOB_ABSENT (0) */

static rvd_jobs *table(void) {
    rvd_jobs_limits lim = {.max_running = 1, .max_queued = 1, .max_subscribers = 1,
                           .history = 1, .per_uid_running = 1, .per_uid_queued = 1,
                           .per_uid_history = 1};
    rvd_jobs *j = NULL;
    CHECK(rvd_jobs_new(&lim, NULL, NULL, &j) == 0);
    return j;
}

/* A job outside the table's list (only its state and counts matter). */
static struct job *job(void) {
    struct job *jb = calloc(1, sizeof(*jb));
    CHECK(jb != NULL);
    strcpy(jb->id, "0123456789abcdef0123456789abcdef");
    jb->owner.uid = UID;
    jb->req_bytes = BYTES;
    jb->view.state = JOB_ABSENT;
    return jb;
}

static bool legal(rvd_job_state from, rvd_job_state to) {
    switch ((int)from) {
    case JOB_ABSENT:
        return to == RVD_JOB_QUEUED || state_ended(to);
    case RVD_JOB_QUEUED:
        return to == RVD_JOB_RUNNING || state_ended(to);
    case RVD_JOB_RUNNING:
        return state_ended(to);
    default:
        return to == JOB_ABSENT;
    }
}

/* Bring a new job to state s by legal steps. */
static void reach(rvd_jobs *j, struct job *jb, rvd_job_state s) {
    CHECK(rvd_acct_get(j, UID) != NULL);
    if (s == JOB_ABSENT)
        return;
    if (s == RVD_JOB_RUNNING) {
        CHECK(rvd_job_set_state(j, jb, RVD_JOB_QUEUED) == RVD_OK);
    }
    CHECK(rvd_job_set_state(j, jb, s) == RVD_OK);
}

static void test_legal_path(void) {
    rvd_jobs *j = table();
    struct job *jb = job();
    rvd_jobs_stats st;

    CHECK(rvd_acct_get(j, UID) != NULL);
    CHECK(rvd_job_set_state(j, jb, RVD_JOB_QUEUED) == RVD_OK);
    CHECK_EQ_U64(j->n_state[RVD_JOB_QUEUED], 1);
    struct uidacct *a = rvd_acct_find(j, UID);
    CHECK(a && a->queued == 1 && a->live_bytes == BYTES);

    CHECK(rvd_job_set_state(j, jb, RVD_JOB_RUNNING) == RVD_OK);
    CHECK_EQ_U64(j->n_state[RVD_JOB_QUEUED], 0);
    CHECK_EQ_U64(j->n_state[RVD_JOB_RUNNING], 1);
    a = rvd_acct_find(j, UID);
    CHECK(a && a->queued == 0 && a->running == 1 && a->live_bytes == BYTES);
    rvd_jobs_stats_get(j, &st);
    CHECK_EQ_U64(st.running, 1);
    CHECK_EQ_U64(st.queued, 0);

    CHECK(rvd_job_set_state(j, jb, RVD_JOB_FAILED) == RVD_OK);
    a = rvd_acct_find(j, UID);
    CHECK(a && a->running == 0 && a->ended == 1 && a->live_bytes == 0 &&
          a->ended_bytes == BYTES);
    rvd_jobs_stats_get(j, &st);
    CHECK_EQ_U64(st.running, 0);
    CHECK_EQ_U64(st.failed, 1);
    CHECK_EQ_U64(st.done + st.cancelled, 0);

    /* Trimmed: nothing is counted, and the uid's entry is gone. */
    CHECK(rvd_job_set_state(j, jb, JOB_ABSENT) == RVD_OK);
    for (int s = 1; s < N_STATES; s++)
        CHECK_EQ_U64(j->n_state[s], 0);
    CHECK(rvd_acct_find(j, UID) == NULL);
    free(jb);
    rvd_jobs_free(j);
}

/* In a child: from -> to must be refused with nothing changed. Exits 0
 * when it was (release build); a debug build aborts in the assertion. */
static void illegal_child(rvd_job_state from, rvd_job_state to) {
    rvd_jobs *j = table();
    struct job *jb = job();
    reach(j, jb, from);
    unsigned before[N_STATES];
    memcpy(before, j->n_state, sizeof(before));
    rvd_code r = rvd_job_set_state(j, jb, to);
    bool same = jb->view.state == from && memcmp(before, j->n_state, sizeof(before)) == 0;
    _exit(r == RVD_INTERNAL && same ? 0 : 1);
}

static void test_illegal_refused(void) {
    unsigned tried = 0;
    for (int from = 0; from < N_STATES; from++)
        for (int to = 0; to < N_STATES; to++) {
            if (legal((rvd_job_state)from, (rvd_job_state)to))
                continue;
            pid_t pid = fork();
            CHECK(pid >= 0);
            if (pid == 0)
                illegal_child((rvd_job_state)from, (rvd_job_state)to);
            int status = 0;
            CHECK(waitpid(pid, &status, 0) == pid);
            bool refused = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                           (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
            if (!refused)
                fprintf(stderr, "not refused: %d -> %d (status %#x)\n", from, to, status);
            CHECK(refused);
            tried++;
        }
    CHECK_EQ_U64(tried, 22); /* 36 pairs, 14 legal */
}

/* Every legal change from every state is accepted. */
static void test_legal_all(void) {
    for (int from = 0; from < N_STATES; from++)
        for (int to = 0; to < N_STATES; to++) {
            if (!legal((rvd_job_state)from, (rvd_job_state)to))
                continue;
            rvd_jobs *j = table();
            struct job *jb = job();
            reach(j, jb, (rvd_job_state)from);
            CHECK(rvd_job_set_state(j, jb, (rvd_job_state)to) == RVD_OK);
            CHECK(jb->view.state == (rvd_job_state)to);
            if (to != JOB_ABSENT)
                CHECK_EQ_U64(j->n_state[to], 1);
            free(jb);
            rvd_jobs_free(j);
        }
}

int main(void) {
    test_legal_path();
    test_legal_all();
    test_illegal_refused();
    return rv_test_result();
}
