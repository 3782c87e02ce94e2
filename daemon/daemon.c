/* daemon.c — start, serve, reload, stop. */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "log.h"
#include "peer.h"
#include "server.h"
#include "socket.h"
#include "worker.h"

#ifndef RETRIEVERD_VERSION
#define RETRIEVERD_VERSION "unknown"
#endif

/* How often STATUS= is refreshed while nothing else wakes the main thread. */
#define STATUS_INTERVAL_MS 2000

static void on_connection(int fd, const rvd_peer *peer, void *ud) {
    rvd_server_add_fd(ud, fd);
}

/* The systemd-passed socket, or one bound at the configured path. */
static int open_socket(const rvd_settings *st, rvd_socket **ret) {
    char *err = NULL;
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
        if (r == 0)
            rvd_log_info("using the socket passed by systemd '%s' (mode %04o)",
                         rvd_socket_path(*ret), (unsigned)rvd_socket_access(*ret)->mode);
        goto out;
    }
    if (!st->socket) {
        rvd_log_error("no socket path: pass --socket PATH or set XDG_RUNTIME_DIR");
        return -EINVAL;
    }
    r = rvd_socket_bind(st->socket, st->socket_mode, ret, &err);
    if (r == 0)
        rvd_log_info("listening on '%s' (mode %04o)", st->socket, (unsigned)st->socket_mode);
out:
    if (r < 0)
        rvd_log_error("%s", err ? err : strerror(-r));
    free(err);
    return r;
}

static unsigned per_uid(unsigned set, unsigned global);

static void engine_config(const rvd_settings *st, rv_config *cfg) {
    rv_config_init(cfg);
    cfg->state_dir = st->state_dir;
    cfg->cache_dir = st->cache_dir;
    cfg->cache_quota = st->cache_quota;
    cfg->ca_file = st->ca_file;
    cfg->deny_networks = st->deny_networks;
    cfg->max_connections = st->max_connections;
    cfg->max_connections_per_host = st->max_connections_per_host;
    cfg->max_connections_per_object = st->max_connections_per_object;
    /* Each caller's uid is a group (rvd_jobs: rv_request.group). */
    cfg->max_connections_per_group = per_uid(st->per_uid_origin_connections,
                                             st->max_connections);
    cfg->chunk_size = st->chunk_size;
    cfg->http2 = (rv_http2_mode)st->http2;
    cfg->connect_retry_ms = st->connect_retry_ms;
    if (cfg->min_chunk_size > cfg->chunk_size)
        cfg->min_chunk_size = cfg->chunk_size;
    /* compute_sha256 stays false: a digest is per request
     * (DownloadRequest.digest, or a source's sha256), as in --local. Forced
     * on, every object lost the engine's staged write path
     * (rv_stage_wanted) and was read back to be hashed. link_deliveries
     * stays false too: the daemon decides per job (rvd_jobs_limits), so
     * the setting can change on SIGHUP. */
}

/* A per-uid limit's value: as set, or by default (0) half the global
 * one, rounded up: one uid can take half of what there is, and the other
 * half stays for everyone else (docs/security.md, "Fairness"). */
static unsigned per_uid(unsigned set, unsigned global) {
    return set ? set : global / 2 + global % 2;
}

static void jobs_limits(const rvd_settings *st, rvd_jobs_limits *l) {
    l->max_running = st->max_running_jobs;
    l->max_queued = st->max_queued_jobs;
    l->max_subscribers = st->max_subscribers;
    l->history = st->job_history;
    l->per_uid_running = per_uid(st->per_uid_running_jobs, st->max_running_jobs);
    l->per_uid_queued = per_uid(st->per_uid_queued_jobs, st->max_queued_jobs);
    l->per_uid_history = per_uid(st->per_uid_job_history, st->job_history);
    l->per_uid_request_bytes = st->per_uid_request_bytes;
    l->link_deliveries = st->link_deliveries;
}

/* The callers' connections (peer.h): max-client-connections, by default a
 * quarter of the open-file limit, so that most descriptors stay for the
 * jobs (destinations, sources, transfers, cache files) and the daemon
 * itself; a uid gets half of them; refused connections answered at once
 * take at most an eighth more (the rest are closed at once). */
static void conn_limits(const rvd_settings *st, rvd_conn_limits *l) {
    struct rlimit rl;
    unsigned total = st->max_client_connections;
    if (!total) {
        rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        if (n == RLIM_INFINITY || n > 4000000)
            n = 4000000;
        total = (unsigned)(n / 4);
        if (total < 2)
            total = 2;
    }
    l->max_total = total;
    l->max_per_uid = per_uid(st->per_uid_connections, total);
    l->max_refused = total / 8 > 64 ? 64 : total / 8 ? total / 8 : 1;
}

static void on_refused(int fd, const rvd_peer *peer, void *ud) {
    rvd_server_add_refused_fd(ud, fd);
}

/* SIGHUP: re-read the configuration; apply what can change live. */
static void reload(rvd_options *o, rvd_worker *w) {
    rvd_settings next = {0};
    rvd_settings_changes ch = {0};
    char *err = NULL;
    int r = rvd_settings_reload(&o->settings, &o->env, &o->args, &next, &ch, &err);
    if (r < 0) {
        rvd_log_error("reload failed, the running configuration stays: %s",
                      err ? err : strerror(-r));
        free(err);
        return;
    }
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        if (ch.text[k] && (ch.kept & RVD_KEY_BIT(k)))
            rvd_log_warning("reload: %s", ch.text[k]);
        else if (ch.text[k])
            rvd_log_info("reload: %s", ch.text[k]);
    }
    if (!ch.applied && !ch.kept)
        rvd_log_info("reload: nothing changed");
    rvd_log_set_level(next.log_level);
    rvd_jobs_limits l;
    jobs_limits(&next, &l);
    rvd_jobs_set_limits(rvd_worker_jobs(w), &l);
    rvd_worker_set_cache_quota(w, next.cache_quota);
    rvd_settings_free(&o->settings);
    o->settings = next;
    o->socket_path = o->settings.socket;
    rvd_settings_changes_clear(&ch);
}

static void notify_status(rvd_worker *w, const char *path) {
    rvd_jobs_stats st;
    rvd_jobs_stats_get(rvd_worker_jobs(w), &st);
    sd_notifyf(0, "STATUS=Serving on %s: %u running, %u queued, %u subscribers, %.1f MB/s",
               path, st.running, st.queued, st.subscribers, st.rate_bps / 1e6);
}

static int64_t mono_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Whether the daemon has been idle (no job running or queued, no
 * subscriber, no call open: a Read of a finished object is one) for
 * idle-exit seconds; *idle_since_ms tracks since when. */
static bool idle_exit_due(const rvd_options *o, rvd_worker *w, rvd_server *srv,
                          int64_t *idle_since_ms) {
    if (!o->settings.idle_exit) {
        *idle_since_ms = 0;
        return false;
    }
    rvd_jobs_stats st;
    rvd_jobs_stats_get(rvd_worker_jobs(w), &st);
    int64_t now = mono_ms();
    if (st.running || st.queued || st.subscribers || rvd_server_open_calls(srv)) {
        *idle_since_ms = 0;
        return false;
    }
    if (!*idle_since_ms)
        *idle_since_ms = now;
    if (now - *idle_since_ms < (int64_t)o->settings.idle_exit * 1000)
        return false;
    rvd_log_info("idle for %u s (idle-exit), shutting down", o->settings.idle_exit);
    return true;
}

/* Serve until SIGTERM or SIGINT, handling SIGHUP, refreshing STATUS= and
 * keeping systemd's watchdog fed while the engine loop is alive. */
static void serve(rvd_options *o, const sigset_t *set, rvd_worker *w, rvd_server *srv,
                  const char *path) {
    uint64_t wd_usec = 0;
    bool watchdog = sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0;
    unsigned tick_ms = STATUS_INTERVAL_MS;
    if (watchdog && wd_usec / 2000 < tick_ms)
        tick_ms = (unsigned)(wd_usec / 2000);
    if (tick_ms == 0)
        tick_ms = 1;
    int64_t poked_ms = 0;
    /* idle-exit: since when nothing runs, waits or is watched (monotonic
     * ms); 0 while something is. Read each tick, so a reload applies. */
    int64_t idle_since_ms = 0;

    for (;;) {
        unsigned wait_ms = tick_ms;
        /* A short idle-exit is honoured within a quarter of it. */
        if (o->settings.idle_exit && o->settings.idle_exit * 250u < wait_ms)
            wait_ms = o->settings.idle_exit * 250u;
        struct timespec timeout = {.tv_sec = wait_ms / 1000,
                                   .tv_nsec = (long)(wait_ms % 1000) * 1000000L};
        siginfo_t si;
        int sig = sigtimedwait(set, &si, &timeout);
        if (sig == SIGHUP) {
            rvd_log_info("received SIGHUP from pid %d, reloading the configuration",
                         (int)si.si_pid);
            sd_notify(0, "RELOADING=1");
            reload(o, w);
            sd_notify(0, "READY=1");
        } else if (sig > 0) {
            rvd_log_info("received SIG%s from pid %d, shutting down", sigabbrev_np(sig),
                         (int)si.si_pid);
            return;
        }
        notify_status(w, path);
        if (idle_exit_due(o, w, srv, &idle_since_ms))
            return;
        if (watchdog) {
            /* Keep-alive only if the engine loop went round since the last
             * tick's poke: a wedged loop stops the pings, and systemd
             * restarts us. */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (rvd_worker_heartbeat_ms(w) >= poked_ms)
                sd_notify(0, "WATCHDOG=1");
            poked_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
            rvd_worker_poke(w);
        }
    }
}

/* A running job holds a descriptor per destination directory and per
 * file:// source (1000 sources a request), the engine one per transfer and
 * blob, gRPC one per connection: the usual soft limit of 1024 is too low
 * when started by hand (the systemd unit sets LimitNOFILE). Raise it to
 * the hard limit; the daemon uses epoll, never select(). Then grow the
 * descriptor table for a few such jobs now, before any thread: grown later
 * it waits for an RCU grace period, while a job is being set up
 * (rv_reserve_descriptors). 8192 entries are 64 KiB. */
#define RESERVED_DESCRIPTORS 8192

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rvd_log_warning("cannot raise the open-file limit from %llu: %s",
                            (unsigned long long)was, strerror(errno));
    }
    rv_reserve_descriptors(RESERVED_DESCRIPTORS);
}

int rvd_daemon_run(rvd_options *o) {
    int code = RVD_EXIT_FAILURE;
    rvd_peers *peers = NULL;
    rvd_socket *sock = NULL;
    rvd_server *srv = NULL;
    rvd_worker *worker = NULL;
    char *err = NULL;
    int r;

    /* 1. Signals, before any thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if ((r = pthread_sigmask(SIG_BLOCK, &set, NULL)) != 0) {
        rvd_log_error("cannot block SIGTERM, SIGINT and SIGHUP: %s", strerror(r));
        return RVD_EXIT_FAILURE;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Every file and directory the daemon makes for itself is private
     * whatever umask it was started with: the job and state databases and
     * the -wal/-shm files SQLite makes beside them, cache blobs, the
     * socket until it is chmod'ed. umask is process-wide, so it is set once
     * here, before any thread; deliveries do not go through it (each gets
     * its caller's mode explicitly, rv_request.mode). */
    umask(077);
    raise_fd_limit();
    rv_tune_malloc(); /* process-wide, before the engine's threads */

    /* 2. The settings. */
    rvd_settings_env env;
    rvd_settings_env_get(&env);
    if ((r = rvd_cli_load(o, &env, &err)) < 0) {
        rvd_log_error("%s", err ? err : strerror(-r));
        free(err);
        return RVD_EXIT_FAILURE;
    }
    const rvd_settings *st = &o->settings;
    rvd_log_set_level(st->log_level);
    if (st->config_file_read)
        rvd_log_info("configuration from '%s'", st->config_file);

    /* 3. The engine and the job table. */
    rv_config cfg;
    engine_config(st, &cfg);
    rvd_jobs_limits limits;
    jobs_limits(st, &limits);
    if ((r = rvd_worker_start(&cfg, &limits, &worker, &err)) < 0) {
        rvd_log_error("%s", err ? err : strerror(-r));
        goto out;
    }
    rvd_log_info("state in '%s', cache in '%s'", st->state_dir, st->cache_dir);

    if (rvd_peers_new(&peers) < 0) {
        rvd_log_error("out of memory");
        goto out;
    }
    /* 4. The socket. */
    if (open_socket(st, &sock) < 0)
        goto out;
    /* 5. The server, then connections. */
    rvd_server_opts so = {.version = RETRIEVERD_VERSION, .peers = peers,
                          .jobs = rvd_worker_jobs(worker), .per_uid_calls = st->per_uid_calls};
    if ((r = rvd_server_new(&so, &srv, &err)) < 0) {
        rvd_log_error("%s", err ? err : strerror(-r));
        goto out;
    }
    rvd_conn_limits cl;
    conn_limits(st, &cl);
    rvd_socket_set_limits(sock, &cl, on_refused);
    rvd_log_info("connections: %u in all, %u per uid (max-client-connections, "
                 "per-uid-connections)", cl.max_total, cl.max_per_uid);
    if ((r = rvd_socket_start(sock, peers, on_connection, srv, &err)) < 0) {
        rvd_log_error("%s", err ? err : strerror(-r));
        goto out;
    }

    /* 6. Ready. */
    const char *path = rvd_socket_path(sock);
    sd_notifyf(0, "READY=1\nSTATUS=Serving retriever.v1 on %s", path);
    rvd_log_always("ready '%s' (version %s, pid %d)", path, RETRIEVERD_VERSION, (int)getpid());

    /* 7. Serve, then stop: no new connections; streams get UNAVAILABLE and
     * the table takes no new jobs; running calls finish or are cancelled;
     * then the engine stops, keeping what it made durable. */
    serve(o, &set, worker, srv, path);
    sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
    rvd_socket_stop(sock);
    rvd_jobs_stop(rvd_worker_jobs(worker));
    r = rvd_server_shutdown(srv, RVD_SHUTDOWN_GRACE_MS, RVD_SHUTDOWN_BOUND_MS);
    if (r < 0) {
        rvd_log_error("calls were still running %u ms after the shutdown began; exiting anyway",
                      (unsigned)RVD_SHUTDOWN_BOUND_MS);
        /* gRPC's threads may still look peers and jobs up: leave them to
         * the exit. The state database is crash-safe (WAL), so exiting
         * without closing the engine loses at most the last commit's
         * progress, never correctness. */
        rvd_socket_free(sock);
        free(err);
        return RVD_EXIT_FAILURE;
    }
    code = RVD_EXIT_OK;
out:
    /* Reverse order of creation; the accept thread stops before the
     * server it feeds goes away, the server before the table it reads. */
    sock = rvd_socket_free(sock);
    srv = rvd_server_free(srv);
    worker = rvd_worker_stop(worker);
    peers = rvd_peers_free(peers);
    free(err);
    if (code == RVD_EXIT_OK)
        rvd_log_info("stopped");
    return code;
}
