/* test_peer.c — the admission rule, the fd → credentials table, and
 * parsing gRPC's "fd:N" peer names. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"
#include "rv_test.h"

static void test_admits(void) {
    rvd_access a = {.owner_uid = 1000, .group = 50, .mode = 0600};
    rvd_peer root = {.pid = 1, .uid = 0, .gid = 0};
    rvd_peer owner = {.pid = 2, .uid = 1000, .gid = 1000};
    rvd_peer other = {.pid = 3, .uid = 1001, .gid = 1001};
    rvd_peer grouped = {.pid = 4, .uid = 1002, .gid = 50};

    CHECK(rvd_access_admits(&a, &root, false));
    CHECK(rvd_access_admits(&a, &owner, false));
    CHECK(!rvd_access_admits(&a, &other, false));
    CHECK(!rvd_access_admits(&a, &grouped, false));
    CHECK(!rvd_access_admits(&a, &other, true)); /* no g+w: membership is moot */

    a.mode = 0660; /* the group may connect: primary or supplementary */
    CHECK(rvd_access_admits(&a, &grouped, false));
    CHECK(rvd_access_admits(&a, &other, true));
    CHECK(!rvd_access_admits(&a, &other, false));

    a.mode = 0640; /* group read without write cannot connect(2) */
    CHECK(!rvd_access_admits(&a, &grouped, false));

    a.mode = 0606; /* others may write: anyone */
    CHECK(rvd_access_admits(&a, &other, false));
    a.mode = 0604;
    CHECK(!rvd_access_admits(&a, &other, false));

    a.mode = 0; /* an adopted socket whose file could not be examined */
    CHECK(rvd_access_admits(&a, &root, false));
    CHECK(rvd_access_admits(&a, &owner, false));
    CHECK(!rvd_access_admits(&a, &grouped, true));
}

static void test_check_on_socketpair(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    rvd_access a = {.owner_uid = geteuid(), .group = getegid(), .mode = 0600};
    rvd_peer p;
    bool admitted = false;
    CHECK(rvd_access_check(&a, sv[0], &p, &admitted) == 0);
    CHECK(admitted);
    CHECK_EQ_U64(p.uid, geteuid());
    CHECK_EQ_U64(p.gid, getegid());
    CHECK_EQ_U64(p.pid, getpid());

    /* Owned by someone else, group-writable, our gid is its group. The
     * root rule would admit us anyway when running as root, so only check
     * the group path as a non-root user. */
    if (geteuid() != 0) {
        a.owner_uid = geteuid() + 1;
        a.mode = 0660;
        CHECK(rvd_access_check(&a, sv[0], &p, &admitted) == 0);
        CHECK(admitted);
        a.mode = 0600;
        CHECK(rvd_access_check(&a, sv[0], &p, &admitted) == 0);
        CHECK(!admitted);
    }
    CHECK(rvd_access_check(&a, -1, &p, &admitted) == -EBADF);
    close(sv[0]);
    close(sv[1]);
}

static void test_table(void) {
    rvd_peers *t = NULL;
    CHECK(rvd_peers_new(&t) == 0);
    rvd_peer p = {.pid = 42, .uid = 7, .gid = 8}, q;

    CHECK(rvd_peers_get(t, 5, &q) == -ENOENT);
    CHECK(rvd_peers_set(t, 5, &p) == 0);
    CHECK(rvd_peers_get(t, 5, &q) == 0);
    CHECK_EQ_U64(q.pid, 42);
    CHECK_EQ_U64(q.uid, 7);
    CHECK_EQ_U64(q.gid, 8);
    CHECK(rvd_peers_get(t, 4, &q) == -ENOENT);

    /* growth keeps what was there; reuse of an fd overwrites */
    p.pid = 43;
    CHECK(rvd_peers_set(t, 1000, &p) == 0);
    CHECK(rvd_peers_get(t, 5, &q) == 0 && q.pid == 42);
    CHECK(rvd_peers_get(t, 1000, &q) == 0 && q.pid == 43);
    p.pid = 44;
    CHECK(rvd_peers_set(t, 5, &p) == 0);
    CHECK(rvd_peers_get(t, 5, &q) == 0 && q.pid == 44);

    rvd_peers_forget(t, 5);
    CHECK(rvd_peers_get(t, 5, &q) == -ENOENT);
    rvd_peers_forget(t, 123456); /* unknown: no-op */
    rvd_peers_forget(t, -1);

    CHECK(rvd_peers_set(t, -1, &p) == -EINVAL);
    CHECK(rvd_peers_set(t, RVD_PEERS_MAX_FD, &p) == -EMFILE);
    CHECK(rvd_peers_get(t, -1, &q) == -ENOENT);
    CHECK(rvd_peers_free(t) == NULL);
    CHECK(rvd_peers_free(NULL) == NULL);
}

static void test_peer_name(void) {
    int fd = -1;
    CHECK(rvd_peer_name_fd("fd:0", &fd) == 0 && fd == 0);
    CHECK(rvd_peer_name_fd("fd:17", &fd) == 0 && fd == 17);
    CHECK(rvd_peer_name_fd("fd:1048575", &fd) == 0 && fd == 1048575);
    fd = -1;
    CHECK(rvd_peer_name_fd(NULL, &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("fd:", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("fd:1x", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("fd:-1", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("fd: 1", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("fd:1048576", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("fd:99999999999999999999", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("unix:/run/x.sock", &fd) == -EINVAL);
    CHECK(rvd_peer_name_fd("FD:3", &fd) == -EINVAL);
    CHECK(fd == -1); /* untouched on failure */
}

int main(void) {
    test_admits();
    test_check_on_socketpair();
    test_table();
    test_peer_name();
    return rv_test_result();
}
