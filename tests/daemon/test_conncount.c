/* test_conncount.c — fairness of connections (peer.h, rvd_peers_admit):
 * per-uid and global limits, refused connections kept for an answer or
 * dropped, and connections counted until their fd is found closed or
 * reused. Real sockets (socketpairs): the counts follow what the kernel
 * says is open. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"
#include "rv_test.h"

/* One end of a new socketpair (the other is closed: only the fd's
 * identity matters here). */
static int conn(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    close(sv[1]);
    return sv[0];
}

static rvd_conn_verdict admit(rvd_peers *t, int fd, uid_t uid, char **why) {
    rvd_peer p = {.pid = 1, .uid = uid, .gid = uid};
    rvd_conn_limits lim = {.max_total = 4, .max_per_uid = 2, .max_refused = 1};
    rvd_conn_verdict v = 0;
    *why = NULL;
    CHECK(rvd_peers_admit(t, fd, &p, &lim, &v, why) == 0);
    return v;
}

static void test_limits(void) {
    rvd_peers *t = NULL;
    CHECK(rvd_peers_new(&t) == 0);
    char *why = NULL;
    unsigned total, mine, refused;
    int a = conn(), b = conn(), c = conn(), d = conn();

    CHECK(admit(t, a, 1001, &why) == RVD_CONN_ADMITTED);
    CHECK(why == NULL);
    CHECK(admit(t, b, 1001, &why) == RVD_CONN_ADMITTED);
    /* The third of uid 1001: refused, its own limit named. */
    CHECK(admit(t, c, 1001, &why) == RVD_CONN_REFUSED);
    CHECK(why && strstr(why, "uid 1001 has 2 of 2 connections open (per-uid-connections)"));
    free(why);
    char *r = rvd_peers_refusal(t, c);
    CHECK(r && strstr(r, "per-uid-connections"));
    free(r);
    CHECK(rvd_peers_refusal(t, a) == NULL); /* admitted: no refusal */
    /* One refused connection is being answered: the next is dropped. */
    CHECK(admit(t, d, 1001, &why) == RVD_CONN_DROPPED);
    CHECK(why && strstr(why, "per-uid-connections"));
    free(why);
    rvd_peers_counts(t, 1001, &total, &mine, &refused);
    CHECK_EQ_U64(total, 2);
    CHECK_EQ_U64(mine, 2);
    CHECK_EQ_U64(refused, 1);

    /* Another uid is not held to 1001's limit. */
    int e = conn();
    CHECK(admit(t, e, 1002, &why) == RVD_CONN_ADMITTED);

    /* gRPC closes a connection without telling: the sweep sees it. */
    close(a);
    close(c);
    rvd_peers_sweep(t);
    rvd_peers_counts(t, 1001, &total, &mine, &refused);
    CHECK_EQ_U64(total, 2); /* b and e */
    CHECK_EQ_U64(mine, 1);
    CHECK_EQ_U64(refused, 0);
    int f = conn();
    CHECK(admit(t, f, 1001, &why) == RVD_CONN_ADMITTED);

    /* The limit of all: 4 (b, e, f, g); root is held only to it. */
    int g = conn(), h = conn();
    CHECK(admit(t, g, 0, &why) == RVD_CONN_ADMITTED);
    CHECK(admit(t, h, 0, &why) == RVD_CONN_REFUSED);
    CHECK(why && strstr(why, "4 of 4 connections of all users open (max-client-connections)"));
    free(why);

    /* An fd number reused by a new connection: the old one is gone from
     * the counts at once, without a sweep. */
    close(b); /* uid 1001's; its number is the lowest free now */
    int b2 = conn();
    CHECK(b2 == b);
    CHECK(admit(t, b2, 1002, &why) == RVD_CONN_ADMITTED);
    rvd_peers_counts(t, 1001, &total, &mine, &refused);
    CHECK_EQ_U64(total, 4); /* e, f, g, b2 */
    CHECK_EQ_U64(mine, 1);  /* f */

    int fds[] = {b2, d, e, f, g, h};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close(fds[i]);
    rvd_peers_free(t);
}

/* Over a limit, a sweep happens by itself (at most every
 * RVD_CONN_SWEEP_MS; a new table has never swept): connections closed
 * meanwhile stop counting. */
static void test_sweeps_by_itself(void) {
    rvd_peers *t = NULL;
    CHECK(rvd_peers_new(&t) == 0);
    char *why = NULL;
    int a = conn(), b = conn(), c = conn();
    CHECK(admit(t, a, 1001, &why) == RVD_CONN_ADMITTED);
    CHECK(admit(t, b, 1001, &why) == RVD_CONN_ADMITTED);
    close(a);
    CHECK(admit(t, c, 1001, &why) == RVD_CONN_ADMITTED);
    free(why);
    close(b);
    close(c);
    rvd_peers_free(t);
}

int main(void) {
    test_limits();
    test_sweeps_by_itself();
    return rv_test_result();
}
