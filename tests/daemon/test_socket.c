/* test_socket.c — binding, stale and live sockets, modes, the accept
 * thread and the credentials it records, and clean-up at stop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "peer.h"
#include "rv_test.h"
#include "socket.h"

static char dir[64];
static char path[128];

/* The accept callback: write the fd number to a pipe, keep the fd open. */
static int notify_pipe[2];

static void on_conn(int fd, const rvd_peer *peer, void *ud) {
    (void)peer;
    (void)ud;
    ssize_t w = write(notify_pipe[1], &fd, sizeof(fd));
    (void)w;
}

/* p must fit (the test's paths are short). */
static struct sockaddr_un addr_of(const char *p) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", p);
    return a;
}

static int connect_to(const char *p) {
    struct sockaddr_un a = addr_of(p);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Wait (bounded) for the accept callback to report a connection. */
static int next_accepted(void) {
    struct pollfd p = {.fd = notify_pipe[0], .events = POLLIN};
    if (poll(&p, 1, 10000) != 1)
        return -1;
    int fd = -1;
    if (read(notify_pipe[0], &fd, sizeof(fd)) != sizeof(fd))
        return -1;
    return fd;
}

static void test_bind_accept_stop(void) {
    rvd_socket *s = NULL;
    char *err = NULL;
    mode_t old = umask(0); /* a mode relying on the umask would be 0777 */
    CHECK(rvd_socket_bind(path, 0600, &s, &err) == 0);
    umask(old);
    CHECK(err == NULL);
    CHECK_STREQ(rvd_socket_path(s), path);
    CHECK(rvd_socket_owned(s));
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
    CHECK_EQ_U64(st.st_mode & 07777, 0600);
    char parent[160];
    snprintf(parent, sizeof(parent), "%s/run", dir);
    CHECK(stat(parent, &st) == 0);
    CHECK_EQ_U64(st.st_mode & 07777, 0700);
    CHECK_EQ_U64(rvd_socket_access(s)->mode, 0600);
    CHECK_EQ_U64(rvd_socket_access(s)->owner_uid, geteuid());

    rvd_peers *peers = NULL;
    CHECK(rvd_peers_new(&peers) == 0);
    CHECK(rvd_socket_start(s, peers, on_conn, NULL, &err) == 0);
    CHECK(rvd_socket_start(s, peers, on_conn, NULL, &err) == -EINVAL);
    free(err);
    err = NULL;

    int c = connect_to(path);
    CHECK(c >= 0);
    int fd = next_accepted();
    CHECK(fd >= 0);
    rvd_peer p;
    CHECK(rvd_peers_get(peers, fd, &p) == 0);
    CHECK_EQ_U64(p.uid, geteuid());
    CHECK_EQ_U64(p.pid, getpid());
    CHECK(p.groups_known);
    rvd_peer_clear(&p);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && (fl & O_NONBLOCK));
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    close(c);

    /* A second bind on a live socket fails and leaves it alone. */
    rvd_socket *s2 = NULL;
    CHECK(rvd_socket_bind(path, 0600, &s2, &err) == -EADDRINUSE);
    CHECK(s2 == NULL);
    CHECK(err && strstr(err, "another retrieverd is serving '") && strstr(err, path));
    free(err);
    err = NULL;
    CHECK(lstat(path, &st) == 0);
    c = connect_to(path);
    CHECK(c >= 0);
    fd = next_accepted();
    CHECK(fd >= 0);
    close(fd);
    close(c);

    rvd_socket_stop(s);
    rvd_socket_stop(s); /* idempotent */
    CHECK(lstat(path, &st) < 0 && errno == ENOENT);
    CHECK(rvd_socket_free(s) == NULL);
    rvd_peers_free(peers);
}

static void test_stale_and_not_a_socket(void) {
    /* stale: bound, never listened, closed */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = addr_of(path);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    close(fd);
    rvd_socket *s = NULL;
    char *err = NULL;
    CHECK(rvd_socket_bind(path, 0660, &s, &err) == 0);
    struct stat st;
    CHECK(lstat(path, &st) == 0 && (st.st_mode & 07777) == 0660);
    s = rvd_socket_free(s); /* never started: still unlinks */
    CHECK(lstat(path, &st) < 0);

    /* a regular file is never removed */
    int f = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    CHECK(f >= 0);
    close(f);
    CHECK(rvd_socket_bind(path, 0600, &s, &err) == -EEXIST);
    CHECK(err && strstr(err, "exists and is not a socket"));
    free(err);
    err = NULL;
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
    unlink(path);

    /* parent is a file */
    char bad[192];
    snprintf(bad, sizeof(bad), "%s/file/x.sock", dir);
    char file[160];
    snprintf(file, sizeof(file), "%s/file", dir);
    f = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
    close(f);
    CHECK(rvd_socket_bind(bad, 0600, &s, &err) == -ENOTDIR);
    CHECK(err && strstr(err, "is not a directory"));
    free(err);
    err = NULL;
    unlink(file);

    /* too long for sun_path */
    char longp[300];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    CHECK(rvd_socket_bind(longp, 0600, &s, &err) == -ENAMETOOLONG);
    CHECK(err && strstr(err, "too long"));
    free(err);
}

static void test_adopt(void) {
    char p[160];
    snprintf(p, sizeof(p), "%s/sd.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = addr_of(p);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(chmod(p, 0666) == 0);

    rvd_socket *s = NULL;
    char *err = NULL;
    /* not listening yet: refused, fd stays ours */
    CHECK(rvd_socket_adopt(fd, &s, &err) == -ENOTSOCK);
    free(err);
    err = NULL;
    CHECK(listen(fd, 4) == 0);
    CHECK(rvd_socket_adopt(fd, &s, &err) == 0);
    CHECK_STREQ(rvd_socket_path(s), p);
    CHECK(!rvd_socket_owned(s));
    CHECK_EQ_U64(rvd_socket_access(s)->mode, 0666);
    s = rvd_socket_free(s); /* closes fd, leaves the file */
    struct stat st;
    CHECK(lstat(p, &st) == 0 && S_ISSOCK(st.st_mode));
    unlink(p);
}

int main(void) {
    strcpy(dir, "/tmp/rvd-test-socket-XXXXXX");
    if (!mkdtemp(dir))
        return 2;
    snprintf(path, sizeof(path), "%s/run/d.sock", dir);
    if (pipe(notify_pipe) < 0)
        return 2;
    test_bind_accept_stop();
    test_stale_and_not_a_socket();
    test_adopt();
    char run[160];
    snprintf(run, sizeof(run), "%s/run", dir);
    rmdir(run);
    rmdir(dir);
    close(notify_pipe[0]);
    close(notify_pipe[1]);
    return rv_test_result();
}
