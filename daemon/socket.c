/* socket.c — binding or adopting the listening socket; the accept thread. */
#include "socket.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"

/* After accept fails for lack of fds or memory, wait this long before
 * trying again (a busy loop would not free anything). */
#define ACCEPT_BACKOFF_MS 100

struct rvd_socket {
    int fd;       /* listening; -1 once stopped */
    char *path;   /* "" when unknown (adopted unnamed/abstract socket) */
    bool owned;   /* we bound the file: unlink it at stop */
    dev_t dev;    /* the file we bound, so stop unlinks only ours */
    ino_t ino;
    rvd_access access;

    /* accept thread; valid while running */
    bool running;
    pthread_t thread;
    int wake_fd; /* eventfd; -1 when not started */
    rvd_peers *peers;
    rvd_socket_conn_fn fn;
    void *ud;
    /* Fairness (rvd_socket_set_limits); no limits until set. */
    rvd_conn_limits limits;
    rvd_socket_conn_fn refused_fn;
    uid_t refusing_uid; /* the uid of the last refusal logged; -1: none */
    unsigned refusals;  /* since the last one logged */
};

static rvd_socket *socket_alloc(void) {
    rvd_socket *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fd = -1;
    s->wake_fd = -1;
    s->refusing_uid = (uid_t)-1;
    return s;
}

static void set_error(char **ret_error, char *msg) {
    if (ret_error)
        *ret_error = msg;
    else
        free(msg);
}

/* The directory part of path, malloc'd; NULL on ENOMEM. */
static char *parent_of(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    char *d = strdup(dirname(copy));
    free(copy);
    return d;
}

/* Create path's parent when it is missing (one level), mode derived from the
 * socket's mode (see socket.h). */
static int ensure_parent(const char *path, mode_t mode, char **ret_error) {
    char *dir = parent_of(path);
    if (!dir)
        return -ENOMEM;
    int r = 0;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            r = -ENOTDIR;
            set_error(ret_error, rvd_strdupf("cannot create the socket '%s': '%s' is not a directory",
                                             path, dir));
        }
        goto out;
    }
    if (errno != ENOENT) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot create the socket '%s': cannot examine '%s': %s",
                                         path, dir, strerror(errno)));
        goto out;
    }
    mode_t dmode = 0700;
    if (mode & S_IWGRP)
        dmode |= S_IXGRP;
    if (mode & S_IWOTH)
        dmode |= S_IXOTH;
    if (mkdir(dir, dmode) < 0 && errno != EEXIST) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot create the directory '%s' for the socket: %s", dir,
                                         strerror(errno)));
        goto out;
    }
    /* mkdir's mode went through the umask: set it exactly. */
    if (chmod(dir, dmode) < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot set the mode of '%s': %s", dir, strerror(errno)));
    }
out:
    free(dir);
    return r;
}

static int fill_addr(const char *path, struct sockaddr_un *addr) {
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(addr->sun_path))
        return -ENAMETOOLONG;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, len + 1);
    return 0;
}

/* The path is bound by someone: live (-EADDRINUSE), stale (0), not a socket
 * (-EEXIST) or unknown (-errno of the probe). */
static int probe_existing(const char *path, const struct sockaddr_un *addr, char **ret_error) {
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) /* gone meanwhile: bind again */
            return 0;
        int e = errno;
        set_error(ret_error, rvd_strdupf("cannot examine '%s': %s", path, strerror(e)));
        return -e;
    }
    if (!S_ISSOCK(st.st_mode)) {
        set_error(ret_error, rvd_strdupf("'%s' exists and is not a socket; remove it or choose "
                                         "another --socket",
                                         path));
        return -EEXIST;
    }
    int p = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p < 0) {
        int e = errno;
        set_error(ret_error, rvd_strdupf("cannot create a socket: %s", strerror(e)));
        return -e;
    }
    int r = connect(p, (const struct sockaddr *)addr, sizeof(*addr));
    int e = errno;
    close(p);
    if (r == 0) {
        set_error(ret_error, rvd_strdupf("another retrieverd is serving '%s'", path));
        return -EADDRINUSE;
    }
    if (e == ECONNREFUSED)
        return 0;
    set_error(ret_error, rvd_strdupf("'%s' is in use and cannot be probed: %s", path, strerror(e)));
    return -e;
}

int rvd_socket_bind(const char *path, mode_t mode, rvd_socket **ret, char **ret_error) {
    struct sockaddr_un addr;
    rvd_socket *s = NULL;
    int r = fill_addr(path, &addr);
    if (r < 0) {
        set_error(ret_error, rvd_strdupf("socket path '%s' is too long (%zu bytes; at most %zu)",
                                         path, strlen(path), sizeof(addr.sun_path) - 1));
        return r;
    }
    mode &= 0777;
    s = socket_alloc();
    if (!s || !(s->path = strdup(path))) {
        r = -ENOMEM;
        set_error(ret_error, rvd_strdupf("out of memory"));
        goto fail;
    }
    s->access.owner_uid = geteuid();
    s->access.mode = mode;
    s->access.group = getegid();

    r = ensure_parent(path, mode, ret_error);
    if (r < 0)
        goto fail;

    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot create a socket: %s", strerror(errno)));
        goto fail;
    }
    if (bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno != EADDRINUSE) {
            r = -errno;
            set_error(ret_error, rvd_strdupf("cannot bind '%s': %s", path, strerror(errno)));
            goto fail;
        }
        r = probe_existing(path, &addr, ret_error);
        if (r < 0)
            goto fail;
        if (unlink(path) < 0 && errno != ENOENT) {
            r = -errno;
            set_error(ret_error, rvd_strdupf("cannot remove the stale socket '%s': %s", path,
                                             strerror(errno)));
            goto fail;
        }
        rvd_log_info("removed the stale socket '%s' (no process was listening)", path);
        if (bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            r = -errno;
            set_error(ret_error, rvd_strdupf("cannot bind '%s': %s", path, strerror(errno)));
            goto fail;
        }
    }
    /* From here on the file is ours: the fail path unlinks it. */
    s->owned = true;
    struct stat st;
    if (lstat(path, &st) < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot examine '%s': %s", path, strerror(errno)));
        goto fail;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->access.group = st.st_gid;
    if (listen(s->fd, SOMAXCONN) < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot listen on '%s': %s", path, strerror(errno)));
        goto fail;
    }
    if (chmod(path, mode) < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot set the mode of '%s' to %04o: %s", path,
                                         (unsigned)mode, strerror(errno)));
        goto fail;
    }
    *ret = s;
    return 0;
fail:
    rvd_socket_free(s);
    return r;
}

int rvd_socket_adopt(int fd, rvd_socket **ret, char **ret_error) {
    int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
    if (r <= 0) {
        set_error(ret_error, rvd_strdupf("the socket passed by systemd (fd %d) is not a listening "
                                         "Unix stream socket",
                                         fd));
        return r < 0 ? r : -ENOTSOCK;
    }
    struct sockaddr_un addr;
    socklen_t alen = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getsockname(fd, (struct sockaddr *)&addr, &alen) < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot name the socket passed by systemd: %s",
                                         strerror(errno)));
        return r;
    }
    rvd_socket *s = socket_alloc();
    bool named = alen > offsetof(struct sockaddr_un, sun_path) && addr.sun_path[0] != '\0';
    addr.sun_path[sizeof(addr.sun_path) - 1] = '\0';
    if (!s || !(s->path = strdup(named ? addr.sun_path : ""))) {
        free(s);
        set_error(ret_error, rvd_strdupf("out of memory"));
        return -ENOMEM;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        r = -errno;
        set_error(ret_error, rvd_strdupf("cannot configure the socket passed by systemd: %s",
                                         strerror(errno)));
        free(s->path);
        free(s);
        return r;
    }
    s->fd = fd;
    s->owned = false;
    s->access.owner_uid = geteuid();
    s->access.group = getegid();
    s->access.mode = 0; /* the daemon's uid and root only, unless the file says more */
    struct stat st;
    if (named && stat(s->path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        s->access.group = st.st_gid;
        s->access.mode = st.st_mode & 0777;
    }
    *ret = s;
    return 0;
}

const char *rvd_socket_path(const rvd_socket *s) {
    return s->path;
}

const rvd_access *rvd_socket_access(const rvd_socket *s) {
    return &s->access;
}

bool rvd_socket_owned(const rvd_socket *s) {
    return s->owned;
}

/* ------------------------------------------------------------------------
 * The accept thread
 * ------------------------------------------------------------------------ */

/* One accepted connection: check, record, hand on — or refuse. */
static void admit(rvd_socket *s, int cfd) {
    rvd_peer peer = {0};
    bool admitted = false;
    int r = rvd_access_check(&s->access, cfd, &peer, &admitted);
    if (r < 0) {
        rvd_log_warning("refused a connection on '%s': cannot read its credentials: %s", s->path,
                        strerror(-r));
        goto out;
    }
    if (!admitted) {
        char owner[32] = "";
        if (s->access.owner_uid != 0)
            snprintf(owner, sizeof(owner), "uid %u, ", (unsigned)s->access.owner_uid);
        rvd_log_warning("refused a connection from uid %u gid %u pid %d: the socket '%s' (mode "
                        "%04o, group %u) admits only %sroot%s",
                        (unsigned)peer.uid, (unsigned)peer.gid, (int)peer.pid, s->path,
                        (unsigned)s->access.mode, (unsigned)s->access.group, owner,
                        (s->access.mode & S_IWGRP) ? " and the group" : "");
        goto out;
    }
    rvd_conn_verdict verdict = RVD_CONN_DROPPED;
    char *why = NULL;
    r = rvd_peers_admit(s->peers, cfd, &peer, &s->limits, &verdict, &why);
    if (r < 0) {
        rvd_log_warning("refused a connection from uid %u pid %d: %s", (unsigned)peer.uid,
                        (int)peer.pid, strerror(-r));
        goto out;
    }
    if (verdict != RVD_CONN_ADMITTED) {
        /* One line per episode of one uid's refusals, not per connection:
         * a flood must not flood the log too. */
        s->refusals++;
        if (peer.uid != s->refusing_uid || s->refusals % 1000 == 1)
            rvd_log_warning("refusing connections from uid %u (pid %d; %u so far): %s",
                            (unsigned)peer.uid, (int)peer.pid, s->refusals,
                            why ? why : "out of memory");
        s->refusing_uid = peer.uid;
        free(why);
        if (verdict == RVD_CONN_DROPPED || !s->refused_fn)
            goto out;
        s->refused_fn(cfd, &peer, s->ud);
        cfd = -1;
        goto out;
    }
    if (peer.uid == s->refusing_uid) {
        s->refusing_uid = (uid_t)-1;
        s->refusals = 0;
    }
    s->fn(cfd, &peer, s->ud);
    cfd = -1; /* handed on */
out:
    rvd_peer_clear(&peer);
    if (cfd >= 0)
        close(cfd); /* refused */
}

/* Out of descriptors: use the spare one to take the waiting connection
 * off the queue and close it, so its caller learns at once (the
 * connection drops) instead of waiting in the backlog for its deadline;
 * then take a spare again. Whether a connection was taken. */
static bool shed_one(rvd_socket *s, int *spare) {
    if (*spare < 0)
        return false;
    close(*spare);
    int cfd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd >= 0)
        close(cfd);
    *spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return cfd >= 0;
}

static void *accept_thread(void *arg) {
    rvd_socket *s = arg;
    /* A descriptor held in reserve for shed_one. */
    int spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct pollfd pfd[2] = {
        {.fd = s->wake_fd, .events = POLLIN},
        {.fd = s->fd, .events = POLLIN},
    };
    bool starved = false; /* out of fds or memory: logged once per episode */

    for (;;) {
        /* While starved, watch only the stop signal, for a short pause. */
        int n = poll(pfd, starved ? 1 : 2, starved ? ACCEPT_BACKOFF_MS : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rvd_log_error("accept loop on '%s': poll failed: %s; no longer accepting", s->path,
                          strerror(errno));
            break;
        }
        if (pfd[0].revents)
            break; /* rvd_socket_stop */
        int cfd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
            switch (errno) {
            case EAGAIN:
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                break;
            case EMFILE:
            case ENFILE:
                if (!starved)
                    rvd_log_warning("cannot accept connections on '%s' for now: %s; closing "
                                    "new ones at once until descriptors are free",
                                    s->path, strerror(errno));
                if (shed_one(s, &spare))
                    break; /* maybe more wait: go on */
                starved = true;
                break;
            case ENOBUFS:
            case ENOMEM:
                if (!starved)
                    rvd_log_warning("cannot accept connections on '%s' for now: %s; retrying",
                                    s->path, strerror(errno));
                starved = true;
                break;
            default:
                rvd_log_error("cannot accept a connection on '%s': %s", s->path,
                              strerror(errno));
                starved = true; /* pause rather than spin on a persistent error */
                break;
            }
            continue;
        }
        starved = false;
        admit(s, cfd);
    }
    if (spare >= 0)
        close(spare);
    return NULL;
}

void rvd_socket_set_limits(rvd_socket *s, const rvd_conn_limits *limits,
                           rvd_socket_conn_fn refused_fn) {
    s->limits = *limits;
    s->refused_fn = refused_fn;
}

int rvd_socket_start(rvd_socket *s, rvd_peers *peers, rvd_socket_conn_fn fn, void *ud,
                     char **ret_error) {
    if (s->running || s->fd < 0) {
        set_error(ret_error, rvd_strdupf("the socket is already accepting or closed"));
        return -EINVAL;
    }
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        int e = errno;
        set_error(ret_error, rvd_strdupf("cannot create an eventfd: %s", strerror(e)));
        return -e;
    }
    s->peers = peers;
    s->fn = fn;
    s->ud = ud;
    int e = pthread_create(&s->thread, NULL, accept_thread, s);
    if (e != 0) {
        set_error(ret_error, rvd_strdupf("cannot start the accept thread: %s", strerror(e)));
        close(s->wake_fd);
        s->wake_fd = -1;
        return -e;
    }
    s->running = true;
    return 0;
}

void rvd_socket_stop(rvd_socket *s) {
    if (s->running) {
        uint64_t one = 1;
        ssize_t w = write(s->wake_fd, &one, sizeof(one));
        (void)w; /* an eventfd write of 1 cannot fail short of overflow */
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    if (s->wake_fd >= 0) {
        close(s->wake_fd);
        s->wake_fd = -1;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->owned) {
        struct stat st;
        /* Only the file we bound: a daemon started after a forced stale
         * takeover may have replaced it. */
        if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
            unlink(s->path);
        s->owned = false;
    }
}

rvd_socket *rvd_socket_free(rvd_socket *s) {
    if (!s)
        return NULL;
    rvd_socket_stop(s);
    free(s->path);
    free(s);
    return NULL;
}
