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
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* Open dir and check that the caller may create names in it. Runs as the
 * caller. */
static int check_dir(const char *dir, int *ret_dirfd, struct stat *ret_st) {
    int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -errno;
    int r = access_as_fs(dirfd, "", W_OK | X_OK, AT_EMPTY_PATH);
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
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    r = fd < 0 ? -errno : 0;
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
        if (!ret_error)
            return r;
        switch (r) {
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
