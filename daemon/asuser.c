/* asuser.c — opening files as the caller: the calling thread's file-system
 * credentials switched to the caller's and back (see asuser.h).
 *
 * Why raw system calls: glibc's setgroups (like setuid and friends)
 * changes the credentials of EVERY thread of the process (it signals each
 * one), which would switch the engine and gRPC threads too. The kernel's
 * own calls change only the calling thread. setfsuid/setfsgid never fail
 * loudly: they return the previous value whatever happens, so each switch
 * is checked by asking again with an invalid id (-1), which changes
 * nothing and returns the current value.
 *
 * Why faccessat2 raw: glibc's faccessat, on a kernel without faccessat2
 * (before Linux 5.8), emulates AT_EACCESS in user space from geteuid(),
 * which is still 0 while only the fs credentials are switched: it would
 * say yes to everything. The raw call fails closed there (-ENOSYS).
 *
 * Capabilities: when the fsuid goes from 0 to another uid, the kernel
 * drops the file-system capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, …)
 * from the thread's effective set, and gives them back when it returns to
 * 0. So between become() and restore() the thread really has no more file
 * access than the caller; CAP_SETUID and CAP_SETGID, which the switch back
 * needs, are not among them.
 */
#include "asuser.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* 32-bit ids where the architecture has both (i386, arm); elsewhere the
 * plain calls take 32-bit ids already. */
#ifdef SYS_setfsuid32
#define RVD_SYS_SETFSUID SYS_setfsuid32
#define RVD_SYS_SETFSGID SYS_setfsgid32
#define RVD_SYS_SETGROUPS SYS_setgroups32
#else
#define RVD_SYS_SETFSUID SYS_setfsuid
#define RVD_SYS_SETFSGID SYS_setfsgid
#define RVD_SYS_SETGROUPS SYS_setgroups
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439 /* the same number on every architecture */
#endif
#ifndef SYS_openat2
#define SYS_openat2 437 /* likewise */
#endif
#ifndef SYS_close_range
#define SYS_close_range 436 /* likewise */
#endif

static uid_t fsuid_now(void) { return (uid_t)syscall(RVD_SYS_SETFSUID, (uid_t)-1); }
static gid_t fsgid_now(void) { return (gid_t)syscall(RVD_SYS_SETFSGID, (gid_t)-1); }

static int access_as_fs(int dirfd, const char *name, int mode, int flags) {
    if (syscall(SYS_faccessat2, dirfd, name, mode, flags | AT_EACCESS) == 0)
        return 0;
    return -errno;
}

/* ------------------------------------------------------------------------
 * Whose credentials, and switching to them
 * ------------------------------------------------------------------------ */

typedef enum how {
    HOW_SELF,   /* the caller is root or the daemon's uid: no switch */
    HOW_SWITCH, /* the daemon is root: act as the caller */
    HOW_REFUSE, /* the daemon cannot act for this caller */
} how;

static how how_for(const rvd_peer *caller) {
    uid_t me = geteuid();
    if (caller->uid == 0 || caller->uid == me)
        return HOW_SELF;
    return me == 0 ? HOW_SWITCH : HOW_REFUSE;
}

/* A thread's file-system identity. */
typedef struct creds {
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* malloc'd (at least one slot) */
    int n_groups;
} creds;

static void creds_clear(creds *c) {
    free(c->groups);
    c->groups = NULL;
    c->n_groups = 0;
}

/* The caller's groups as known from its connection (rvd_peer). */
static int caller_creds_known(const rvd_peer *caller, creds *ret) {
    gid_t *groups = malloc((caller->n_groups ? caller->n_groups : 1) * sizeof(gid_t));
    if (!groups)
        return -ENOMEM;
    if (caller->n_groups)
        memcpy(groups, caller->groups, caller->n_groups * sizeof(gid_t));
    *ret = (creds){.uid = caller->uid,
                   .gid = caller->gid,
                   .groups = groups,
                   .n_groups = (int)caller->n_groups};
    return 0;
}

/* The caller's supplementary groups from the user database: its name's
 * groups plus gid; just gid when the uid has no passwd entry (all that is
 * known of it). Only for callers whose own groups are unknown (a job
 * stored by an older daemon). A lookup that fails fails the call: fewer
 * groups than the user has are not safe either, since a group can be what
 * denies (mode 0604 shuts the file's group out). */
static int caller_creds_looked_up(const rvd_peer *caller, creds *ret) {
    struct passwd pw, *found = NULL;
    char *buf = NULL;
    size_t buf_len = 1024;
    gid_t *groups = NULL;
    int n = 1, r = -ENOMEM, e = 0;

    for (;;) {
        char *b = realloc(buf, buf_len);
        if (!b)
            goto out;
        buf = b;
        e = getpwuid_r(caller->uid, &pw, buf, buf_len, &found);
        if (e != ERANGE || buf_len >= (1u << 20))
            break;
        buf_len *= 2;
    }
    if (e == ENOENT || e == ESRCH) { /* some NSS modules say "no entry" so */
        found = NULL;
    } else if (e != 0) {
        r = e == ERANGE ? -E2BIG : -e;
        goto out;
    }
    if (found) {
        /* Too small a buffer: getgrouplist returns -1 and says in n how
         * many it needs (the list may grow meanwhile: a few rounds). */
        for (int attempt = 0, cap = 32;; attempt++) {
            gid_t *g = realloc(groups, (size_t)cap * sizeof(*g));
            if (!g)
                goto out;
            groups = g;
            n = cap;
            if (getgrouplist(pw.pw_name, caller->gid, groups, &n) >= 0)
                break;
            if (attempt == 3 || n <= cap || n > RVD_PEER_MAX_GROUPS) {
                r = -E2BIG;
                goto out;
            }
            cap = n;
        }
    } else {
        groups = malloc(sizeof(*groups));
        if (!groups)
            goto out;
        groups[0] = caller->gid;
    }
    *ret = (creds){.uid = caller->uid, .gid = caller->gid, .groups = groups, .n_groups = n};
    groups = NULL;
    r = 0;
out:
    free(groups);
    free(buf);
    return r;
}

static int caller_creds(const rvd_peer *caller, creds *ret) {
    return caller->groups_known ? caller_creds_known(caller, ret)
                                : caller_creds_looked_up(caller, ret);
}

/* Put back what become() saved. Failing here would leave the thread (the
 * gRPC thread, serving everyone) with the caller's file access, or worse
 * with a mix: there is no safe way on, so the process stops. */
static void restore(const creds *saved) {
    syscall(RVD_SYS_SETFSUID, saved->uid);
    syscall(RVD_SYS_SETFSGID, saved->gid);
    long g = syscall(RVD_SYS_SETGROUPS, (size_t)saved->n_groups, saved->groups);
    if (g != 0 || fsuid_now() != saved->uid || fsgid_now() != saved->gid) {
        rvd_log_error("cannot restore the thread's credentials (fsuid %u, fsgid %u): aborting",
                      (unsigned)saved->uid, (unsigned)saved->gid);
        abort();
    }
}

/* Switch this thread's fs credentials to c, saving the current ones in
 * *saved (which the caller must restore() and clear). On failure nothing
 * is switched (and *saved is empty). -EPERM: the daemon lacks CAP_SETUID
 * or CAP_SETGID (a root daemon whose capabilities were cut). */
static int become(const creds *c, creds *saved) {
    int n = getgroups(0, NULL);
    if (n < 0)
        return -errno;
    saved->groups = malloc((size_t)(n ? n : 1) * sizeof(gid_t));
    if (!saved->groups)
        return -ENOMEM;
    n = getgroups(n, saved->groups);
    if (n < 0) {
        int r = -errno;
        creds_clear(saved);
        return r;
    }
    saved->n_groups = n;
    saved->uid = fsuid_now();
    saved->gid = fsgid_now();

    /* Groups, then gid, then uid: each step needs only CAP_SETGID or
     * CAP_SETUID, which setting the fsuid does not take away. */
    if (syscall(RVD_SYS_SETGROUPS, (size_t)c->n_groups, c->groups) != 0) {
        int r = -errno; /* nothing changed: nothing to restore */
        creds_clear(saved);
        return r;
    }
    syscall(RVD_SYS_SETFSGID, c->gid);
    syscall(RVD_SYS_SETFSUID, c->uid);
    if (fsgid_now() != c->gid || fsuid_now() != c->uid) {
        restore(saved); /* setgroups worked: so will putting them back */
        creds_clear(saved);
        return -EPERM;
    }
    return 0;
}

/* One "as the caller" section: enter() decides how, looks the caller up
 * and switches when needed; leave() undoes it. Between the two, every
 * open and access check is the caller's. */
typedef struct section {
    how how;
    creds caller; /* valid with HOW_SWITCH, unless borrowed (then empty) */
    creds saved;  /* valid with HOW_SWITCH */
} section;

/* known: the caller's credentials when already looked up (borrowed), or
 * NULL to look them up here. */
static int enter(section *s, const rvd_peer *caller, const creds *known, const char *path,
                 char **ret_error) {
    int r;
    *s = (section){.how = how_for(caller)};
    if (s->how == HOW_SELF)
        return 0;
    if (s->how == HOW_REFUSE) {
        r = -EPERM;
        if (ret_error)
            *ret_error = rvd_strdupf("retrieverd runs as uid %u and cannot act for uid %u: "
                                     "refusing '%s'",
                                     (unsigned)geteuid(), (unsigned)caller->uid, path);
        return r;
    }
    r = known ? 0 : caller_creds(caller, &s->caller);
    if (r == 0) {
        r = become(known ? known : &s->caller, &s->saved);
        if (r < 0)
            creds_clear(&s->caller);
    }
    if (r < 0 && ret_error)
        *ret_error = rvd_strdupf("cannot act as uid %u for '%s': %s", (unsigned)caller->uid, path,
                                 strerror(-r));
    return r;
}

static void leave(section *s) {
    if (s->how != HOW_SWITCH)
        return;
    restore(&s->saved);
    creds_clear(&s->saved);
    creds_clear(&s->caller);
}

/* ------------------------------------------------------------------------
 * Resolving the caller's path: in a helper process, without magic links
 * ------------------------------------------------------------------------
 *
 * Why not open() here: the switch above changes whose permissions count,
 * not which process opens. Procfs decides its magic links (/proc/self/fd/N,
 * /proc/<pid>/fd/N, /proc/<pid>/root, /proc/<pid>/cwd, map_files/…) by
 * "is this the same process?", not by the caller's uid: the daemon's own
 * descriptors (another user's in-flight cache blob, the databases) would
 * be the caller's for the naming, and /proc/self/fdinfo, environ, mem and
 * the like describe the daemon, not the caller. So every path a caller
 * names is resolved:
 *
 *  - in a short-lived helper process (clone with CLONE_VM|CLONE_VFORK:
 *    no copy of the address space, this thread waits for it), whose
 *    descriptor table holds one socket and nothing of the daemon's before
 *    it looks at the path. Its /proc/self is itself; it inherits this
 *    thread's file-system identity (the caller's, inside a section), and
 *    its real and effective uids stay the daemon's, so a caller of
 *    another uid can neither signal nor trace it while it shares the
 *    daemon's memory;
 *  - with openat2(RESOLVE_NO_MAGICLINKS): no magic link is followed for
 *    anyone, root included, so /proc/<the daemon's pid>/fd/N, which the
 *    helper may name, leads nowhere either;
 *  - and a path whose resolution enters procfs at all (the result, or any
 *    directory on the way) is refused with one answer. The helper knows
 *    nothing worth hiding, but the answer must not depend on what exists
 *    in /proc: "/proc/self/fd/3" and "/proc/self/fd/999" get the same.
 *
 * The result comes back over the socket (SCM_RIGHTS). Only procfs is
 * refused by file system: a device node is not a regular file (sources
 * refuse it by type), and sysfs or devtmpfs contents are the same for
 * every process and checked as the caller by the kernel. */

#define E_PROC 4095          /* internal: the path enters procfs (refused as -EPERM) */
#define HELPER_STACK 65536   /* the helper runs a few system calls and a PATH_MAX copy */
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

struct helper {
    const char *path;
    int flags; /* open flags (O_CLOEXEC is added) */
    int sock;  /* the helper's end */
};

/* The helper runs on this thread's memory with its own stack: only raw
 * system calls, no allocation, no locks (another thread may hold them),
 * no sanitizer bookkeeping (its shadow state belongs to the waiting
 * thread). */
#define HELPER_CODE __attribute__((no_sanitize("address", "undefined"), noinline))

HELPER_CODE static long helper_open(const char *path, int flags) {
    struct open_how oh = {.flags = (uint64_t)(flags | O_CLOEXEC),
                           .resolve = RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, AT_FDCWD, path, &oh, sizeof(oh));
    return fd < 0 ? -errno : fd;
}

HELPER_CODE static bool helper_on_proc(int fd) {
    struct statfs sf;
    return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

/* Whether resolving path enters procfs: path itself when fd >= 0 (it
 * opened), and each directory leading to it that resolves. Prefixes are
 * what the kernel resolved on the way to the whole path (symbolic links
 * followed: "/dev/fd/3" is "/proc/self/fd/3"). */
HELPER_CODE static bool helper_enters_proc(const char *path, long fd) {
    char buf[PATH_MAX];
    size_t len = 0;
    if (fd >= 0 && helper_on_proc((int)fd))
        return true;
    while (len < sizeof(buf) - 1 && path[len])
        len++;
    memcpy(buf, path, len);
    buf[len] = '\0';
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        long d = helper_open(buf, O_PATH);
        buf[i] = c;
        if (d < 0)
            return false; /* nothing further resolves either */
        bool proc = helper_on_proc((int)d);
        close((int)d);
        if (proc)
            return true;
    }
    return false;
}

HELPER_CODE static int helper_main(void *arg) {
    struct helper *h = arg;
    int sock = h->sock;
    long fd = -1, r;

    /* Nothing of the daemon's before looking at the path: the socket
     * alone, as descriptor 0. */
    if (sock != 0 && syscall(SYS_dup3, sock, 0, 0) != 0)
        r = -errno;
    else if (syscall(SYS_close_range, 1u, ~0u, 0) != 0)
        r = -errno;
    else if ((r = fd = helper_open(h->path, h->flags)) != -ENOSYS &&
             helper_enters_proc(h->path, fd))
        r = -E_PROC;
    if (r < 0 && fd >= 0) {
        close((int)fd);
        fd = -1;
    }

    int result = r < 0 ? (int)r : 0;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = &result, .iov_len = sizeof(result)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&u, 0, sizeof(u));
        m.msg_control = u.buf;
        m.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        int f = (int)fd;
        memcpy(CMSG_DATA(c), &f, sizeof(f));
    }
    return sendmsg(0, &m, MSG_NOSIGNAL) == (ssize_t)sizeof(result) ? 0 : 1;
}

/* Open path with flags as this thread's file-system identity would, in
 * the helper. 0 and *ret_fd (O_CLOEXEC), or -errno; -E_PROC when the path
 * enters procfs; -ENOSYS on a kernel without openat2 or close_range
 * (before Linux 5.9): refused, there is no safe way to open it. */
static int open_resolved(const char *path, int flags, int *ret_fd) {
    int sv[2], r = 0, fd = -1;
    char *stack = NULL;
    sigset_t all, old;

    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    stack = malloc(HELPER_STACK);
    if (!stack) {
        r = -ENOMEM;
        goto out;
    }
    struct helper h = {.path = path, .flags = flags, .sock = sv[1]};
    /* No signal handler may run in the helper, on the daemon's memory:
     * it inherits this mask and never unblocks. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(helper_main, stack + HELPER_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &h);
    if (pid < 0)
        r = -errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        goto out;
    /* CLONE_VFORK: the helper has exited (or is exiting) by now. */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;

    int result = -EIO; /* no answer: the helper died */
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = &result, .iov_len = sizeof(result)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof(u.buf)};
    ssize_t n = recvmsg(sv[0], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
            memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    if (n != (ssize_t)sizeof(result))
        result = -EIO;
    r = result;
    if (r == 0 && fd < 0)
        r = -EIO;
    if (r == 0) {
        *ret_fd = fd;
        fd = -1;
    }
out:
    if (fd >= 0)
        close(fd);
    close(sv[0]);
    close(sv[1]);
    free(stack);
    return r;
}

/* ------------------------------------------------------------------------
 * Destinations
 * ------------------------------------------------------------------------ */

/* Split an absolute dest into its directory (malloc'd) and final
 * component (pointing into dest). */
static int split_dest(const char *dest, char **ret_dir, const char **ret_name) {
    if (!dest || dest[0] != '/')
        return -EINVAL;
    size_t len = strlen(dest);
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    const char *slash = strrchr(dest, '/');
    const char *name = slash + 1;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EISDIR; /* "/a/", "/a/.", "/a/..": directories */
    if (strlen(name) > NAME_MAX)
        return -ENAMETOOLONG;
    char *dir = slash == dest ? strdup("/") : strndup(dest, (size_t)(slash - dest));
    if (!dir)
        return -ENOMEM;
    *ret_dir = dir;
    *ret_name = name;
    return 0;
}

/* The one answer for every path through /proc, whatever exists there. */
#define PROC_REFUSED "retrieverd opens no path through /proc (there, names such as " \
                     "/proc/self/fd/N are retrieverd's own files, not the caller's); " \
                     "name the file by its real path"
#define NO_OPENAT2 "this kernel lacks openat2 or close_range (Linux 5.9 or later is " \
                   "needed to open it safely)"

/* Open dir (through open_resolved) and check that the caller may create
 * names in it. Runs as the caller. */
static int check_dir(const char *dir, int *ret_dirfd, struct stat *ret_st) {
    int dirfd = -1;
    int r = open_resolved(dir, O_PATH | O_DIRECTORY, &dirfd);
    if (r < 0)
        return r;
    r = access_as_fs(dirfd, "", W_OK | X_OK, AT_EMPTY_PATH);
    if (r == 0 && fstat(dirfd, ret_st) != 0)
        r = -errno;
    if (r < 0)
        close(dirfd);
    else
        *ret_dirfd = dirfd;
    return r;
}

/* Check what the caller may do about name in a directory check_dir
 * accepted (dirfd, its stat dst). Runs as the caller. *ret_sticky: the
 * refusal is the sticky directory's rule; *ret_entry: what is under name,
 * when something is. */
static int check_name(const rvd_peer *caller, int dirfd, const struct stat *dst, const char *name,
                      bool *ret_sticky, struct stat *ret_entry) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -errno; /* nothing there: it will be created */
    *ret_entry = st;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EEXIST;
    /* It is replaced by a rename, never written in place, but the caller
     * asked to overwrite it: require what overwriting needs. */
    int r = access_as_fs(dirfd, name, W_OK, AT_SYMLINK_NOFOLLOW);
    /* The kernel's rule for replacing a name in a sticky directory: the
     * caller owns the file or the directory. */
    if (r == 0 && (dst->st_mode & S_ISVTX) && caller->uid != 0 && st.st_uid != caller->uid &&
        dst->st_uid != caller->uid) {
        *ret_sticky = true;
        r = -EPERM;
    }
    return r;
}

static char *dest_message(int r, bool sticky, uid_t uid, const char *dest, const char *dir,
                          const struct stat *entry) {
    unsigned u = (unsigned)uid;
    switch (r) {
    case -E_PROC:
        return rvd_strdupf("destination '%s' is refused: " PROC_REFUSED, dest);
    case -ENOSYS:
        return rvd_strdupf("cannot check destination '%s': " NO_OPENAT2, dest);
    case -EINVAL:
        return rvd_strdupf("destination '%s' is not an absolute path to a file", dest ? dest : "");
    case -ENAMETOOLONG:
        return rvd_strdupf("destination '%s' is too long", dest);
    case -EISDIR:
        return rvd_strdupf("destination '%s' is a directory", dest);
    case -EEXIST:
        return rvd_strdupf("destination '%s' exists and is not a regular file (%s); it is not "
                           "replaced",
                           dest, S_ISLNK(entry->st_mode) ? "a symbolic link" : "a special file");
    case -EACCES:
    case -EPERM:
        if (sticky)
            return rvd_strdupf("uid %u may not write '%s': it belongs to uid %u in a sticky "
                               "directory",
                               u, dest, (unsigned)entry->st_uid);
        return rvd_strdupf("uid %u may not write '%s': permission denied", u, dest);
    case -ENOENT:
        return rvd_strdupf("directory '%s' does not exist", dir);
    case -ENOTDIR:
        return rvd_strdupf("'%s' is not a directory", dir);
    default:
        return rvd_strdupf("uid %u cannot write '%s': %s", u, dest, strerror(-r));
    }
}

/* ------------------------------------------------------------------------
 * Many destinations of one caller
 * ------------------------------------------------------------------------ */

struct dir {
    char *path; /* as the caller wrote it */
    int fd;
    struct stat st;
};

struct rvd_asuser_dirs {
    rvd_peer caller;
    bool have_creds;
    creds creds; /* looked up at the first switch */
    struct dir *v;
    size_t n, cap, last;
};

rvd_asuser_dirs *rvd_asuser_dirs_new(const rvd_peer *caller) {
    rvd_asuser_dirs *d = calloc(1, sizeof(*d));
    if (d && rvd_peer_copy(&d->caller, caller) < 0) {
        free(d);
        d = NULL;
    }
    return d;
}

rvd_asuser_dirs *rvd_asuser_dirs_free(rvd_asuser_dirs *d) {
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n; i++) {
        if (d->v[i].fd >= 0)
            close(d->v[i].fd);
        free(d->v[i].path);
    }
    free(d->v);
    creds_clear(&d->creds);
    rvd_peer_clear(&d->caller);
    free(d);
    return NULL;
}

/* The directory path as checked earlier in d, or NULL. */
static struct dir *dirs_find(rvd_asuser_dirs *d, const char *path) {
    if (d->n && strcmp(d->v[d->last].path, path) == 0)
        return &d->v[d->last];
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].path, path) == 0)
            return &d->v[d->last = i];
    return NULL;
}

static int dirs_add(rvd_asuser_dirs *d, char *path, int fd, const struct stat *st) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 4;
        struct dir *v = realloc(d->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n] = (struct dir){.path = path, .fd = fd, .st = *st};
    d->last = d->n++;
    return 0;
}

int rvd_asuser_dest(rvd_asuser_dirs *d, const char *dest, int *ret_dirfd, char **ret_name,
                    char **ret_error) {
    const rvd_peer *caller = &d->caller;
    char *dir = NULL, *name_copy = NULL;
    const char *name = NULL;
    struct stat entry = {0};
    bool sticky = false;
    int fd = -1;
    section s;

    int r = split_dest(dest, &dir, &name);
    if (r < 0) {
        if (ret_error)
            *ret_error = r == -ENOMEM ? NULL : dest_message(r, sticky, caller->uid, dest, "", &entry);
        return r;
    }
    /* A failed lookup is tried again by enter(), which words the error. */
    if (how_for(caller) == HOW_SWITCH && !d->have_creds)
        d->have_creds = caller_creds(caller, &d->creds) == 0;
    r = enter(&s, caller, d->have_creds ? &d->creds : NULL, dest, ret_error);
    if (r < 0)
        goto out;
    struct dir *known = dirs_find(d, dir);
    struct stat dst;
    if (!known) {
        r = check_dir(dir, &fd, &dst);
        if (r == 0 && (r = dirs_add(d, dir, fd, &dst)) == 0) {
            known = &d->v[d->last];
            dir = NULL; /* d's now */
            fd = -1;
        }
    }
    if (r == 0)
        r = check_name(caller, known->fd, &known->st, name, &sticky, &entry);
    leave(&s);
    if (r == 0) {
        name_copy = strdup(name);
        r = name_copy ? 0 : -ENOMEM;
    }
    if (r < 0) {
        if (ret_error)
            *ret_error = r == -ENOMEM ? NULL
                                      : dest_message(r, sticky, caller->uid, dest,
                                                     known ? known->path : dir, &entry);
        if (r == -E_PROC)
            r = -EPERM;
        goto out;
    }
    *ret_dirfd = known->fd;
    *ret_name = name_copy;
    name_copy = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(name_copy);
    free(dir);
    return r;
}

int rvd_asuser_may_replace(const rvd_peer *caller, int dirfd, const char *name,
                           char **ret_error) {
    struct stat dst, entry = {0};
    bool sticky = false;
    section s;
    int r = enter(&s, caller, NULL, name, ret_error);
    if (r < 0)
        return r;
    r = fstat(dirfd, &dst) == 0 ? 0 : -errno;
    if (r == 0)
        r = check_name(caller, dirfd, &dst, name, &sticky, &entry);
    leave(&s);
    if (r < 0 && ret_error)
        *ret_error = dest_message(r, sticky, caller->uid, name, "", &entry);
    return r;
}

int rvd_asuser_open_dest(const rvd_peer *caller, const char *dest, int *ret_dirfd, char **ret_name,
                         char **ret_error) {
    rvd_asuser_dirs *d = rvd_asuser_dirs_new(caller);
    if (!d)
        return -ENOMEM;
    int r = rvd_asuser_dest(d, dest, ret_dirfd, ret_name, ret_error);
    if (r == 0)
        d->v[d->last].fd = -1; /* the caller's now */
    rvd_asuser_dirs_free(d);
    return r;
}

/* ------------------------------------------------------------------------
 * Sources
 * ------------------------------------------------------------------------ */

int rvd_asuser_open_source(const rvd_peer *caller, const char *path, int *ret_fd,
                           char **ret_error) {
    unsigned u = (unsigned)caller->uid;
    struct stat st;
    section s;
    int fd = -1, r;

    if (!path || path[0] != '/') {
        if (ret_error)
            *ret_error = rvd_strdupf("source '%s' is not an absolute path", path ? path : "");
        return -EINVAL;
    }
    r = enter(&s, caller, NULL, path, ret_error);
    if (r < 0)
        return r;
    /* O_NONBLOCK: a FIFO must not hang the thread (it is refused below);
     * O_NOCTTY: a terminal never becomes ours. */
    r = open_resolved(path, O_RDONLY | O_NOCTTY | O_NONBLOCK, &fd);
    leave(&s);

    if (r == 0 && fstat(fd, &st) != 0)
        r = -errno;
    if (r == 0 && S_ISDIR(st.st_mode))
        r = -EISDIR;
    else if (r == 0 && !S_ISREG(st.st_mode))
        r = -EINVAL;
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        if (r == -E_PROC) {
            if (ret_error)
                *ret_error = rvd_strdupf("source '%s' is refused: " PROC_REFUSED, path);
            return -EPERM;
        }
        if (!ret_error)
            return r;
        switch (r) {
        case -ENOSYS:
            *ret_error = rvd_strdupf("cannot open source '%s': " NO_OPENAT2, path);
            break;
        case -EACCES:
        case -EPERM:
            *ret_error = rvd_strdupf("uid %u may not read '%s': permission denied", u, path);
            break;
        case -ENOENT:
            *ret_error = rvd_strdupf("'%s' does not exist", path);
            break;
        case -ENOTDIR:
            *ret_error = rvd_strdupf("a component of '%s' is not a directory", path);
            break;
        case -EISDIR:
            *ret_error = rvd_strdupf("source '%s' is a directory", path);
            break;
        case -EINVAL:
            *ret_error = rvd_strdupf("source '%s' is not a regular file", path);
            break;
        case -ENOMEM:
            *ret_error = NULL;
            break;
        default:
            *ret_error = rvd_strdupf("uid %u cannot read '%s': %s", u, path, strerror(-r));
        }
        return r;
    }
    *ret_fd = fd;
    return 0;
}

/* ------------------------------------------------------------------------
 * Giving deliveries away
 * ------------------------------------------------------------------------ */

/* The directory's path, for messages only (never used to open). */
static char *fd_path(int fd) {
    char proc[64], buf[PATH_MAX];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, sizeof(buf) - 1);
    if (n <= 0)
        return strdup("(destination directory)");
    buf[n] = '\0';
    return strdup(buf);
}

int rvd_asuser_give(const rvd_peer *caller, int dirfd, const char *name, char **ret_error) {
    struct stat st, dst;
    unsigned u = (unsigned)caller->uid;
    char *dir = NULL;
    int fd = -1, r = 0;

    how h = how_for(caller);
    if (h == HOW_SELF)
        return 0;
    if (h == HOW_REFUSE) {
        if (ret_error)
            *ret_error = rvd_strdupf("retrieverd runs as uid %u and cannot give files to uid %u",
                                     (unsigned)geteuid(), u);
        return -EPERM;
    }
    /* The daemon's own view: it made the file. O_PATH|O_NOFOLLOW opens a
     * symbolic link itself, so nothing the name points to is touched. */
    fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || fstat(dirfd, &dst) != 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
        r = -EPERM;
    else if (st.st_nlink != 1)
        r = -EMLINK;
    if (r < 0)
        goto out;
    /* Through the descriptor: the name may change now, the inode not. Only
     * the owner changes: the engine gave the file its caller's mode (0666
     * less the caller's umask, rv_request.mode) before it had this name,
     * and a chown by root keeps the permission bits (the set-id bits it
     * clears are never set on a delivery). */
    gid_t gid = (dst.st_mode & S_ISGID) ? (gid_t)-1 : caller->gid;
    if (fchownat(fd, "", caller->uid, gid, AT_EMPTY_PATH) != 0)
        r = -errno;
out:
    if (r < 0 && ret_error) {
        dir = fd_path(dirfd);
        const char *d = dir ? dir : "(destination directory)";
        switch (r) {
        case -EPERM:
            *ret_error = rvd_strdupf("'%s/%s' is not the file retrieverd delivered; not given to "
                                     "uid %u",
                                     d, name, u);
            break;
        case -EMLINK:
            *ret_error = rvd_strdupf("'%s/%s' is a hard link shared with the cache; left "
                                     "read-only and owned by uid %u",
                                     d, name, (unsigned)geteuid());
            break;
        default:
            *ret_error = rvd_strdupf("cannot give '%s/%s' to uid %u: %s", d, name, u,
                                     strerror(-r));
        }
    }
    if (fd >= 0)
        close(fd);
    free(dir);
    return r;
}

/* ------------------------------------------------------------------------
 * Paths through descriptors
 * ------------------------------------------------------------------------ */

char *rvd_asuser_dest_path(int dirfd, const char *name) {
    return rvd_strdupf("/proc/self/fd/%d/%s", dirfd, name);
}

char *rvd_asuser_source_url(int fd) { return rvd_strdupf("file:///proc/self/fd/%d", fd); }
