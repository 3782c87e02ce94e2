/* daemon.c — start, serve, stop. */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "peer.h"
#include "server.h"
#include "socket.h"

#ifndef RETRIEVERD_VERSION
#define RETRIEVERD_VERSION "unknown"
#endif

static void on_connection(int fd, const rvd_peer *peer, void *ud) {
    rvd_server_add_fd(ud, fd);
}

/* The systemd-passed socket, or one bound at the configured path. */
static int open_socket(const rvd_options *o, rvd_socket **ret) {
    char *err = NULL;
    char *path = NULL;
    int r;

    int n = sd_listen_fds(1);
    if (n < 0) {
        rvd_log_error("cannot read the sockets passed by systemd: %s", strerror(-n));
        return n;
    }
    if (n > 1) {
        rvd_log_error("systemd passed %d sockets; retrieverd takes exactly one", n);
        return -EINVAL;
    }
    if (n == 1) {
        r = rvd_socket_adopt(SD_LISTEN_FDS_START, ret, &err);
        if (r < 0)
            goto out;
        if (o->socket_path)
            rvd_log_warning("using the socket passed by systemd; --socket '%s' is ignored",
                            o->socket_path);
        rvd_log_info("using the socket passed by systemd '%s' (mode %04o)",
                     rvd_socket_path(*ret), (unsigned)rvd_socket_access(*ret)->mode);
        goto out;
    }

    const char *p = o->socket_path;
    if (!p) {
        r = rvd_default_socket_path(getenv("XDG_RUNTIME_DIR"), &path, &err);
        if (r < 0)
            goto out;
        p = path;
    }
    r = rvd_socket_bind(p, o->socket_mode, ret, &err);
    if (r == 0)
        rvd_log_info("listening on '%s' (mode %04o)", p, (unsigned)o->socket_mode);
out:
    if (r < 0)
        rvd_log_error("%s", err ? err : strerror(-r));
    free(err);
    free(path);
    return r;
}

/* Block until SIGTERM or SIGINT; returns the signal. */
static int wait_for_stop(const sigset_t *set) {
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0)
            continue; /* EINTR: another signal's handler ran (none expected) */
        rvd_log_info("received SIG%s from pid %d, shutting down", sigabbrev_np(sig),
                     (int)si.si_pid);
        return sig;
    }
}

int rvd_daemon_run(const rvd_options *o) {
    int code = RVD_EXIT_FAILURE;
    rvd_peers *peers = NULL;
    rvd_socket *sock = NULL;
    rvd_server *srv = NULL;
    char *err = NULL;
    int r;

    /* 1. Signals, before any thread. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if ((r = pthread_sigmask(SIG_BLOCK, &stop, NULL)) != 0) {
        rvd_log_error("cannot block SIGTERM and SIGINT: %s", strerror(r));
        return RVD_EXIT_FAILURE;
    }
    signal(SIGPIPE, SIG_IGN);

    if (rvd_peers_new(&peers) < 0) {
        rvd_log_error("out of memory");
        goto out;
    }
    /* 2. The socket. */
    if (open_socket(o, &sock) < 0)
        goto out;
    /* 3. The server, then connections. */
    rvd_server_opts so = {.version = RETRIEVERD_VERSION, .peers = peers};
    if ((r = rvd_server_new(&so, &srv, &err)) < 0) {
        rvd_log_error("%s", err ? err : strerror(-r));
        goto out;
    }
    if ((r = rvd_socket_start(sock, peers, on_connection, srv, &err)) < 0) {
        rvd_log_error("%s", err ? err : strerror(-r));
        goto out;
    }

    /* 4. Ready. */
    const char *path = rvd_socket_path(sock);
    sd_notifyf(0, "READY=1\nSTATUS=Serving retriever.v1 on %s", path);
    rvd_log_info("ready '%s' (version %s, pid %d)", path, RETRIEVERD_VERSION, (int)getpid());

    /* 5. Stop. */
    wait_for_stop(&stop);
    sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
    rvd_socket_stop(sock);
    r = rvd_server_shutdown(srv, RVD_SHUTDOWN_GRACE_MS, RVD_SHUTDOWN_BOUND_MS);
    if (r < 0) {
        rvd_log_error("calls were still running %u ms after the shutdown began; exiting anyway",
                      (unsigned)RVD_SHUTDOWN_BOUND_MS);
        /* gRPC's threads may still look peers up: leave both to the exit. */
        rvd_socket_free(sock);
        free(err);
        return RVD_EXIT_FAILURE;
    }
    code = RVD_EXIT_OK;
out:
    /* Reverse order of creation; the accept thread stops before the
     * server it feeds goes away. */
    sock = rvd_socket_free(sock);
    srv = rvd_server_free(srv);
    peers = rvd_peers_free(peers);
    free(err);
    if (code == RVD_EXIT_OK)
        rvd_log_info("stopped");
    return code;
}
