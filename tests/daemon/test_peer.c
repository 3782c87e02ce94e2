/* test_peer.c — the admission rule, the fd → credentials table, and
 * parsing gRPC's "fd:N" peer names. */
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer.h"
#include "rv_test.h"

static void test_admits(void) {
    rvd_access a = {.owner_uid = 1000, .group = 50, .mode = 0600};
    gid_t fifty[] = {20, 50};
    rvd_peer root = {.pid = 1, .uid = 0, .gid = 0};
    rvd_peer owner = {.pid = 2, .uid = 1000, .gid = 1000};
    rvd_peer other = {.pid = 3, .uid = 1001, .gid = 1001, .groups_known = true};
    rvd_peer grouped = {.pid = 4, .uid = 1002, .gid = 50, .groups_known = true};
    rvd_peer member = {.pid = 5, .uid = 1003, .gid = 1003, .groups_known = true,
                       .n_groups = 2, .groups = fifty};

    CHECK(rvd_access_admits(&a, &root));
    CHECK(rvd_access_admits(&a, &owner));
    CHECK(!rvd_access_admits(&a, &other));
    CHECK(!rvd_access_admits(&a, &grouped));
    CHECK(!rvd_access_admits(&a, &member)); /* no g+w: membership is moot */

    a.mode = 0660; /* the group may connect: primary or supplementary */
    CHECK(rvd_access_admits(&a, &grouped));
    CHECK(rvd_access_admits(&a, &member));
    CHECK(!rvd_access_admits(&a, &other));

    a.mode = 0640; /* group read without write cannot connect(2) */
    CHECK(!rvd_access_admits(&a, &grouped));

    a.mode = 0606; /* others may write: anyone */
    CHECK(rvd_access_admits(&a, &other));
    a.mode = 0604;
    CHECK(!rvd_access_admits(&a, &other));

    a.mode = 0; /* an adopted socket whose file could not be examined */
    CHECK(rvd_access_admits(&a, &root));
    CHECK(rvd_access_admits(&a, &owner));
    CHECK(!rvd_access_admits(&a, &member));
}

/* What SO_PEERGROUPS says is what getgroups says of the peer process. */
static void check_groups_are_ours(const rvd_peer *p) {
    int n = getgroups(0, NULL);
    CHECK(n >= 0);
    gid_t mine[n > 0 ? n : 1];
    CHECK(getgroups(n, mine) == n);
    CHECK(p->groups_known);
    CHECK_EQ_U64(p->n_groups, (uint64_t)n);
    for (int i = 0; i < n && (size_t)i < p->n_groups; i++)
        CHECK_EQ_U64(p->groups[i], mine[i]);
}

/* Send *fd over a Unix socket (send), or receive one into *fd: one byte
 * with SCM_RIGHTS. Returns what sendmsg/recvmsg did. */
static ssize_t pass_fd(int sock, int *fd, bool send) {
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (send) {
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), fd, sizeof(int));
        return sendmsg(sock, &m, 0);
    }
    ssize_t n = recvmsg(sock, &m, 0);
    cm = CMSG_FIRSTHDR(&m);
    if (n == 1 && cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(cm), sizeof(int));
    return n;
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
    check_groups_are_ours(&p);
    rvd_peer_clear(&p);
    close(sv[0]);
    close(sv[1]);

    /* A peer (uid 4242, no passwd entry) with many supplementary groups
     * (more than the first ask has room for), with a few, and with none:
     * its own lists, not the user database's, and the group rule admits
     * it by them. The credentials a socketpair reports are its creator's
     * at creation, so a child with other ids makes one and passes it. */
    if (geteuid() == 0) {
        static const size_t counts[] = {0, 3, 200};
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
            int ch[2];
            CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, ch) == 0);
            pid_t pid = fork();
            if (pid == 0) {
                gid_t g[200];
                for (size_t i = 0; i < counts[c]; i++)
                    g[i] = (gid_t)(70000 + i);
                int pair[2];
                if (setgroups(counts[c], g) != 0 || setresgid(4243, 4243, 4243) != 0 ||
                    setresuid(4242, 4242, 4242) != 0 ||
                    socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
                    _exit(1);
                _exit(pass_fd(ch[1], &pair[0], 1) == 1 ? 0 : 1);
            }
            CHECK(pid > 0);
            int fd = -1;
            CHECK(pass_fd(ch[0], &fd, 0) == 1);
            int status = -1;
            CHECK(waitpid(pid, &status, 0) == pid && status == 0);
            /* fd is one end of the child's pair: its peer is the child. */
            a = (rvd_access){.owner_uid = 0, .group = 70002, .mode = 0660};
            CHECK(rvd_access_check(&a, fd, &p, &admitted) == 0);
            CHECK_EQ_U64(p.uid, 4242);
            CHECK_EQ_U64(p.gid, 4243);
            CHECK(p.groups_known);
            CHECK_EQ_U64(p.n_groups, counts[c]);
            for (size_t i = 0; i < counts[c] && i < p.n_groups; i++)
                CHECK_EQ_U64(p.groups[i], 70000 + i);
            CHECK(admitted == (counts[c] > 2)); /* 70002 is its third */
            rvd_peer_clear(&p);
            CHECK(p.groups == NULL && p.n_groups == 0);
            close(fd);
            close(ch[0]);
            close(ch[1]);
        }
    }
    CHECK(rvd_access_check(&a, -1, &p, &admitted) == -EBADF);
}

static void test_table(void) {
    rvd_peers *t = NULL;
    CHECK(rvd_peers_new(&t) == 0);
    gid_t groups[] = {5, 6, 7};
    rvd_peer p = {.pid = 42, .uid = 7, .gid = 8, .groups_known = true, .n_groups = 3,
                  .groups = groups},
             q;

    CHECK(rvd_peers_get(t, 5, &q) == -ENOENT);
    CHECK(rvd_peers_set(t, 5, &p) == 0);
    groups[0] = 99; /* the table has its own copy */
    CHECK(rvd_peers_get(t, 5, &q) == 0);
    CHECK_EQ_U64(q.pid, 42);
    CHECK_EQ_U64(q.uid, 7);
    CHECK_EQ_U64(q.gid, 8);
    CHECK(q.groups_known && q.n_groups == 3 && q.groups != groups);
    CHECK(q.groups && q.groups[0] == 5 && q.groups[2] == 7);
    rvd_peer_clear(&q);
    CHECK(rvd_peers_get(t, 4, &q) == -ENOENT);

    /* growth keeps what was there; reuse of an fd overwrites */
    p.pid = 43;
    p.n_groups = 0;
    CHECK(rvd_peers_set(t, 1000, &p) == 0);
    CHECK(rvd_peers_get(t, 5, &q) == 0 && q.pid == 42 && q.n_groups == 3);
    rvd_peer_clear(&q);
    CHECK(rvd_peers_get(t, 1000, &q) == 0 && q.pid == 43);
    CHECK(q.groups_known && q.n_groups == 0 && q.groups == NULL);
    p.pid = 44;
    CHECK(rvd_peers_set(t, 5, &p) == 0);
    CHECK(rvd_peers_get(t, 5, &q) == 0 && q.pid == 44 && q.n_groups == 0);

    rvd_peers_forget(t, 5);
    CHECK(rvd_peers_get(t, 5, &q) == -ENOENT);
    rvd_peers_forget(t, 123456); /* unknown: no-op */
    rvd_peers_forget(t, -1);

    CHECK(rvd_peers_set(t, -1, &p) == -EINVAL);
    CHECK(rvd_peers_set(t, RVD_PEERS_MAX_FD, &p) == -EMFILE);
    CHECK(rvd_peers_get(t, -1, &q) == -ENOENT);
    CHECK(rvd_peers_free(t) == NULL); /* frees the groups it holds (ASan) */
    CHECK(rvd_peers_free(NULL) == NULL);
    rvd_peer_clear(NULL);
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
