/* daemonfind.c — the socket to use, and autostarting a per-user retrieverd
 * (daemonfind.h).
 *
 * Readiness: the started daemon reports READY=1 with sd_notify once it
 * serves (daemon/daemon.h, step 6). We give it a NOTIFY_SOCKET of our own,
 * an abstract datagram socket, and wait for that message, or for the child
 * to exit, within RVC_AUTOSTART_TIMEOUT_MS: an event, not a poll of the
 * socket path.
 */
#include "daemonfind.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "exitcode.h"
#include "remote.h"
#include "retriever/rv_error.h"

#define PROG "retrieverctl"

bool rvc_autostart_wanted(bool no_autostart) {
    if (no_autostart)
        return false;
    const char *v = getenv(RVC_NO_AUTOSTART_ENV);
    return !(v && (strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 ||
                   strcasecmp(v, "true") == 0));
}

bool rvc_socket_answers(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return false;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* The system daemon's socket is a candidate when it exists and this user
 * may connect to it (write permission on a socket is what connect needs). */
static bool system_socket_usable(void) {
    struct stat st;
    return stat(RVC_SYSTEM_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode) &&
           access(RVC_SYSTEM_SOCKET, W_OK) == 0 && rvc_socket_answers(RVC_SYSTEM_SOCKET);
}

/* mkdir -p path (mode 0700 for what is made). 0 or -1 with errno. */
static int mkdirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0700);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* The user's state directory for retriever, as --local and the per-user
 * daemon use it; malloc'd, NULL when there is none (no $HOME). */
static char *state_dir(void) {
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char *p = NULL;
    if (xdg && xdg[0] == '/') {
        if (asprintf(&p, "%s/retriever", xdg) < 0)
            p = NULL;
    } else if (home && home[0] == '/') {
        if (asprintf(&p, "%s/.local/state/retriever", home) < 0)
            p = NULL;
    }
    return p;
}

/* The directory of the running executable (malloc'd), or NULL. */
static char *exe_dir(void) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return strdup(buf);
}

/* In the child: become a daemon of its own session, logging to log_fd, and
 * exec retrieverd from beside this program (installed: the same bindir;
 * the build tree: ../daemon), else from $PATH. Never returns. */
static void exec_daemon(const char *dir, int log_fd, const char *socket_path,
                        const char *idle_exit) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid(); /* its own session and process group: Ctrl-C here is not its */
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0)
        dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    /* Nothing else of ours stays open in it (gRPC's, the caller's). */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != log_fd)
            close(fd);
    char *argv[] = {"retrieverd", "--socket", (char *)socket_path, "--idle-exit",
                    (char *)idle_exit, NULL};
    char path[PATH_MAX];
    if (dir) {
        static const char *const rel[] = {"retrieverd", "../daemon/retrieverd",
                                          "../sbin/retrieverd"};
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
            if (snprintf(path, sizeof(path), "%s/%s", dir, rel[i]) < (int)sizeof(path) &&
                access(path, X_OK) == 0)
                execv(path, argv);
        }
    }
    execvp("retrieverd", argv);
    dprintf(log_fd, PROG ": cannot run retrieverd: %s\n", strerror(errno));
    _exit(127);
}

/* Start a per-user retrieverd on socket_path and wait until it is ready.
 * RVC_EXIT_OK, or an exit code after one line on err. */
static int autostart(const char *socket_path, FILE *err) {
    int code = RVC_EXIT_DAEMON_UNAVAILABLE;
    int log_fd = -1, nfd = -1;
    char *dir = NULL, *sdir = NULL, *log = NULL;
    pid_t pid = -1;

    /* The idle timeout: RVC_IDLE_EXIT_ENV when it is a number. */
    char idle[16];
    snprintf(idle, sizeof(idle), "%u", (unsigned)RVC_AUTOSTART_IDLE_EXIT_S);
    const char *ie = getenv(RVC_IDLE_EXIT_ENV);
    if (ie && *ie && strlen(ie) < sizeof(idle) && strspn(ie, "0123456789") == strlen(ie))
        snprintf(idle, sizeof(idle), "%s", ie);

    sdir = state_dir();
    if (!sdir || mkdirs(sdir) != 0 || asprintf(&log, "%s/" RVC_AUTOSTART_LOG, sdir) < 0) {
        fprintf(err, PROG ": no retrieverd answers, and none can be started: no state "
                     "directory for its log (%s)\n",
                sdir ? strerror(errno) : "set HOME or XDG_STATE_HOME");
        log = NULL;
        goto out;
    }
    /* The socket's directory, $XDG_RUNTIME_DIR/retriever: the daemon makes
     * it too, but its parent must exist. */
    log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        fprintf(err, PROG ": no retrieverd answers, and none can be started: cannot open "
                     "'%s': %s\n",
                log, strerror(errno));
        goto out;
    }

    /* The readiness channel: an abstract datagram socket, unique by pid
     * and time. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int nlen = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "retrieverctl-%d-%llu",
                        (int)getpid(), (unsigned long long)rvc_now_ms());
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (nfd < 0 || bind(nfd, (struct sockaddr *)&sa,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen)) != 0) {
        fprintf(err, PROG ": cannot start retrieverd: %s\n", strerror(errno));
        goto out;
    }
    char notify[sizeof(sa.sun_path) + 1];
    snprintf(notify, sizeof(notify), "@%s", sa.sun_path + 1);

    dir = exe_dir();
    pid = fork();
    if (pid < 0) {
        fprintf(err, PROG ": cannot start retrieverd: %s\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        setenv("NOTIFY_SOCKET", notify, 1);
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("WATCHDOG_USEC");
        exec_daemon(dir, log_fd, socket_path, idle);
    }
    fprintf(err, PROG ": starting retrieverd (pid %d, log '%s')\n", (int)pid, log);

    uint64_t deadline = rvc_now_ms() + RVC_AUTOSTART_TIMEOUT_MS;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            /* Another client may have started one at the same moment: ours
             * then exits (the socket is taken) and theirs answers. */
            if (rvc_socket_answers(socket_path)) {
                code = RVC_EXIT_OK;
                break;
            }
            fprintf(err, PROG ": retrieverd (pid %d) exited while starting (%s %d); see '%s'\n",
                    (int)pid, WIFEXITED(status) ? "status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log);
            break;
        }
        uint64_t now = rvc_now_ms();
        if (now >= deadline) {
            fprintf(err, PROG ": retrieverd (pid %d) did not become ready within %d s; see '%s'\n",
                    (int)pid, RVC_AUTOSTART_TIMEOUT_MS / 1000, log);
            break;
        }
        /* Wake at least every 100 ms to see whether the child exited. */
        struct pollfd pfd = {.fd = nfd, .events = POLLIN};
        uint64_t left = deadline - now;
        if (poll(&pfd, 1, left < 100 ? (int)left : 100) > 0) {
            char msg[4096];
            ssize_t n = recv(nfd, msg, sizeof(msg) - 1, 0);
            if (n > 0) {
                msg[n] = '\0';
                if (strncmp(msg, "READY=1", 7) == 0 || strstr(msg, "\nREADY=1")) {
                    code = RVC_EXIT_OK;
                    break;
                }
            }
        }
    }

out:
    if (nfd >= 0)
        close(nfd);
    if (log_fd >= 0)
        close(log_fd);
    free(dir);
    free(sdir);
    free(log);
    return code;
}

char *rvc_daemon_find(const char *socket_opt, bool autostart_on, FILE *err, int *ret_code) {
    const char *env = getenv(RVC_SOCKET_ENV);
    char *path = NULL, *why = NULL;

    if (!socket_opt && !(env && *env) && system_socket_usable()) {
        path = strdup(RVC_SYSTEM_SOCKET);
        if (!path)
            goto nomem;
        return path;
    }
    int e = rvc_socket_path(socket_opt, env, getenv("XDG_RUNTIME_DIR"), &path, &why);
    if (e != RV_OK) {
        fprintf(err, PROG ": %s\n", e == RV_E_INVALID_ARGUMENT ? why : rv_strerror(e));
        free(why);
        *ret_code = e == RV_E_INVALID_ARGUMENT ? RVC_EXIT_USAGE : rvc_exit_code(e);
        return NULL;
    }
    /* A socket named by the user is theirs to run; only the per-user
     * default is ours to start. */
    if (socket_opt || (env && *env) || !autostart_on || rvc_socket_answers(path))
        return path;
    int code = autostart(path, err);
    if (code != RVC_EXIT_OK) {
        free(path);
        *ret_code = code;
        return NULL;
    }
    return path;
nomem:
    fprintf(err, PROG ": %s\n", rv_strerror(RV_E_NOMEM));
    *ret_code = rvc_exit_code(RV_E_NOMEM);
    return NULL;
}
