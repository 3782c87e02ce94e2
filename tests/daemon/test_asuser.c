/* test_asuser.c — opening destinations and file:// sources as the caller,
 * with two unprivileged uids against a tree root owns, and the real engine
 * delivering through /proc/self/fd paths.
 *
 * Runs as root (ctest does, here and in CI); not root, it fails in CI
 * (CI=true) and exits 77 (skipped, saying why) elsewhere. Makes a user and
 * a group with useradd/groupadd for the supplementary group case.
 * Callers: nobody (65534, with a passwd entry: groups from getgrouplist),
 * and uid 4242 with gid 4243, which has no passwd entry (its gid alone).
 * After every call the thread's Uid:, Gid: and Groups: lines in
 * /proc/thread-self/status must be what they were before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <pwd.h>
#include <retriever/retriever.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asuser.h"
#include "rv_test.h"

#define NOBODY 65534
#define OTHER_UID 4242
#define OTHER_GID 4243

static char root_dir[64]; /* the test tree */
static char baseline[512]; /* this thread's credential lines at start */

static const rvd_peer nobody = {.pid = 1, .uid = NOBODY, .gid = NOBODY};
static const rvd_peer other = {.pid = 1, .uid = OTHER_UID, .gid = OTHER_GID};
static const rvd_peer root = {.pid = 1, .uid = 0, .gid = 0};

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* The Uid:, Gid: and Groups: lines of a task's status, concatenated. */
static void cred_lines(const char *status_path, char *out, size_t len) {
    char line[256];
    FILE *f = fopen(status_path, "r");
    out[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Uid:", 4) == 0 || strncmp(line, "Gid:", 4) == 0 ||
            strncmp(line, "Groups:", 7) == 0)
            strncat(out, line, len - strlen(out) - 1);
    fclose(f);
}

static bool creds_unchanged(void) {
    char now[512];
    cred_lines("/proc/thread-self/status", now, sizeof(now));
    return strcmp(now, baseline) == 0;
}

static char *p(const char *rel) {
    static char bufs[8][512];
    static unsigned i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", root_dir, rel);
    return b;
}

static void mkdir_as(const char *rel, mode_t mode, uid_t uid, gid_t gid) {
    CHECK(mkdir(p(rel), 0700) == 0);
    CHECK(chown(p(rel), uid, gid) == 0);
    CHECK(chmod(p(rel), mode) == 0); /* after chown, which clears set-id bits */
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
                       gid_t gid) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, data, len) == (ssize_t)len);
    CHECK(fchown(fd, uid, gid) == 0);
    CHECK(fchmod(fd, mode) == 0);
    close(fd);
}

/* The whole file, malloc'd; *ret_len its size. NULL when unreadable. */
static char *slurp(const char *path, size_t *ret_len) {
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) &&
        read(fd, buf, (size_t)st.st_size) == st.st_size) {
        *ret_len = (size_t)st.st_size;
    } else {
        free(buf);
        buf = NULL;
    }
    close(fd);
    return buf;
}

static bool same_bytes(const char *path, const void *data, size_t len) {
    size_t n = 0;
    char *got = slurp(path, &n);
    bool same = got && n == len && memcmp(got, data, len) == 0;
    free(got);
    return same;
}

static void check_owner(const char *path, uid_t uid, gid_t gid, nlink_t nlink) {
    struct stat st;
    CHECK(lstat(path, &st) == 0);
    CHECK_EQ_U64(st.st_uid, uid);
    CHECK_EQ_U64(st.st_gid, gid);
    CHECK_EQ_U64(st.st_nlink, nlink);
    CHECK(S_ISREG(st.st_mode));
}

static bool has(const char *s, const char *part) { return s && strstr(s, part); }

/* Names in a directory other than the expected ones (hidden temporaries
 * left behind would show here). */
static unsigned extra_entries(const char *dir, const char *const *expected, size_t n) {
    unsigned extra = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 1000;
    for (struct dirent *de; (de = readdir(d));) {
        bool known = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(de->d_name, expected[i]) == 0;
        if (!known) {
            fprintf(stderr, "    unexpected entry '%s/%s'\n", dir, de->d_name);
            extra++;
        }
    }
    closedir(d);
    return extra;
}

/* open_dest as who; expect err (0: success). Returns the message (freed
 * by the caller) and, on success, the dirfd/name (closed/freed here
 * unless ret_dirfd/ret_name are given). */
static char *dest_case(const rvd_peer *who, const char *path, int err, int *ret_dirfd,
                       char **ret_name, int line) {
    int dirfd = -1;
    char *name = NULL, *msg = NULL;
    int r = rvd_asuser_open_dest(who, path, &dirfd, &name, &msg);
    rv_test_checks_++;
    if (r != err) {
        fprintf(stderr, "%s:%d: FAILED open_dest(uid %u, '%s') = %d, expected %d (%s)\n", __FILE__,
                line, (unsigned)who->uid, path, r, err, msg ? msg : "no message");
        rv_test_failures_++;
    }
    CHECK(creds_unchanged());
    if (r == 0) {
        CHECK(msg == NULL);
        CHECK(dirfd >= 0 && name && !strchr(name, '/'));
        if (ret_dirfd) {
            *ret_dirfd = dirfd;
            dirfd = -1;
        }
        if (ret_name) {
            *ret_name = name;
            name = NULL;
        }
    } else {
        CHECK(dirfd == -1 && name == NULL); /* untouched on failure */
        CHECK(msg != NULL);
    }
    if (dirfd >= 0)
        close(dirfd);
    free(name);
    return msg;
}
#define DEST(who, rel, err) free(dest_case(&(who), p(rel), (err), NULL, NULL, __LINE__))

static char *source_case(const rvd_peer *who, const char *path, int err, int *ret_fd, int line) {
    int fd = -1;
    char *msg = NULL;
    int r = rvd_asuser_open_source(who, path, &fd, &msg);
    rv_test_checks_++;
    if (r != err) {
        fprintf(stderr, "%s:%d: FAILED open_source(uid %u, '%s') = %d, expected %d (%s)\n",
                __FILE__, line, (unsigned)who->uid, path, r, err, msg ? msg : "no message");
        rv_test_failures_++;
    }
    CHECK(creds_unchanged());
    CHECK((r == 0) == (msg == NULL));
    CHECK((r == 0) == (fd >= 0));
    if (ret_fd && fd >= 0) {
        *ret_fd = fd;
        fd = -1;
    }
    if (fd >= 0)
        close(fd);
    return msg;
}
#define SOURCE(who, rel, err) free(source_case(&(who), p(rel), (err), NULL, __LINE__))

/* ------------------------------------------------------------------------
 * The tree
 *
 *   <root>              0755 root
 *     rootonly/         0700 root        secret (0644)
 *     rodir/            0755 root
 *     nobodydir/        0755 nobody      mine.txt (nobody 0644), ro.txt (root 0644),
 *                                        subdir/, sym -> ../pub.txt, fifo
 *     grpdir/           0770 root:4243   grp.txt (root:4243 0640)
 *     sticky/           1777 root        rootfile (root 0666), nobodyfile (nobody 0644)
 *     sgid/             2775 nobody:4243
 *     pub.txt           0644 root
 *     priv.txt          0600 root
 *     big.bin           0644 root        3 MiB + 17 bytes of pseudo-random data
 *     link -> rootonly  (a symbolic link into the root-only directory)
 *     link2 -> rootonly/secret
 * ------------------------------------------------------------------------ */

static unsigned char *big;
#define BIG_LEN ((size_t)3 * 1024 * 1024 + 17)

static void make_tree(void) {
    snprintf(root_dir, sizeof(root_dir), "/tmp/rv-asuser-XXXXXX");
    CHECK(mkdtemp(root_dir) != NULL);
    CHECK(chmod(root_dir, 0755) == 0);
    mkdir_as("rootonly", 0700, 0, 0);
    mkdir_as("rodir", 0755, 0, 0);
    mkdir_as("nobodydir", 0755, NOBODY, NOBODY);
    mkdir_as("nobodydir/subdir", 0755, NOBODY, NOBODY);
    mkdir_as("grpdir", 0770, 0, OTHER_GID);
    mkdir_as("sticky", 01777, 0, 0);
    mkdir_as("sgid", 02775, NOBODY, OTHER_GID);
    write_file(p("rootonly/secret"), "secret\n", 7, 0644, 0, 0);
    write_file(p("nobodydir/mine.txt"), "mine\n", 5, 0644, NOBODY, NOBODY);
    write_file(p("nobodydir/ro.txt"), "ro\n", 3, 0644, 0, 0);
    write_file(p("grpdir/grp.txt"), "grp\n", 4, 0640, 0, OTHER_GID);
    write_file(p("sticky/rootfile"), "rootfile\n", 9, 0666, 0, 0);
    write_file(p("sticky/nobodyfile"), "nobodyfile\n", 11, 0644, NOBODY, NOBODY);
    write_file(p("pub.txt"), "public\n", 7, 0644, 0, 0);
    write_file(p("priv.txt"), "private\n", 8, 0600, 0, 0);
    CHECK(symlink("../pub.txt", p("nobodydir/sym")) == 0);
    CHECK(mkfifo(p("nobodydir/fifo"), 0666) == 0);
    CHECK(symlink(p("rootonly"), p("link")) == 0);
    CHECK(symlink(p("rootonly/secret"), p("link2")) == 0);

    big = malloc(BIG_LEN);
    CHECK(big != NULL);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; big && i < BIG_LEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        big[i] = (unsigned char)x;
    }
    if (big)
        write_file(p("big.bin"), big, BIG_LEN, 0644, 0, 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* ------------------------------------------------------------------------
 * Permission cases
 * ------------------------------------------------------------------------ */

static void test_dest_nobody(void) {
    char *msg;
    int dirfd = -1;
    char *name = NULL;

    /* Allowed: a new name in its own directory; its own file there. */
    free(dest_case(&nobody, p("nobodydir/new"), 0, &dirfd, &name, __LINE__));
    if (dirfd >= 0) {
        struct stat a, b;
        CHECK(fstat(dirfd, &a) == 0 && stat(p("nobodydir"), &b) == 0);
        CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        CHECK((fcntl(dirfd, F_GETFD) & FD_CLOEXEC) != 0);
        CHECK_STREQ(name, "new");
        close(dirfd);
    }
    free(name);
    DEST(nobody, "nobodydir/mine.txt", 0);
    DEST(nobody, "sticky/new", 0);
    DEST(nobody, "sticky/nobodyfile", 0);

    /* Denied: the root-only directory, directly or through a symlink; a
     * directory it may read but not write; another's file, even in its
     * own directory; root's world-writable file in a sticky directory. */
    msg = dest_case(&nobody, p("rootonly/x"), -EACCES, NULL, NULL, __LINE__);
    CHECK(has(msg, "uid 65534 may not write '") && has(msg, "/rootonly/x': permission denied"));
    free(msg);
    DEST(nobody, "rootonly/secret", -EACCES);
    DEST(nobody, "link/x", -EACCES);
    DEST(nobody, "rodir/x", -EACCES);
    DEST(nobody, "x-in-root", -EACCES); /* the tree's top is root's 0755 */
    DEST(nobody, "grpdir/x", -EACCES);
    DEST(nobody, "nobodydir/ro.txt", -EACCES);
    msg = dest_case(&nobody, p("sticky/rootfile"), -EPERM, NULL, NULL, __LINE__);
    CHECK(has(msg, "sticky directory"));
    free(msg);

    /* What is there, or is not. */
    msg = dest_case(&nobody, p("missing/x"), -ENOENT, NULL, NULL, __LINE__);
    CHECK(has(msg, "directory '") && has(msg, "/missing' does not exist"));
    free(msg);
    DEST(nobody, "pub.txt/x", -ENOTDIR);
    DEST(nobody, "nobodydir/subdir", -EISDIR);
    DEST(nobody, "nobodydir/", -EISDIR);
    DEST(nobody, "nobodydir/..", -EISDIR);
    msg = dest_case(&nobody, p("nobodydir/sym"), -EEXIST, NULL, NULL, __LINE__);
    CHECK(has(msg, "symbolic link"));
    free(msg);
    DEST(nobody, "nobodydir/fifo", -EEXIST);
    free(dest_case(&nobody, "relative/x", -EINVAL, NULL, NULL, __LINE__));
    free(dest_case(&nobody, "", -EINVAL, NULL, NULL, __LINE__));
}

static void test_dest_other_and_root(void) {
    /* uid 4242 has no passwd entry: its gid 4243 is its only group, and the
     * group-writable directory is open to it, not to nobody (above). */
    CHECK(getpwuid(OTHER_UID) == NULL);
    DEST(other, "grpdir/x", 0);
    DEST(other, "nobodydir/x", -EACCES);
    DEST(other, "rootonly/x", -EACCES);

    /* Root gets everything the kernel gives root. */
    DEST(root, "rootonly/x", 0);
    DEST(root, "rodir/x", 0);
    DEST(root, "link/x", 0);
    DEST(root, "sticky/rootfile", 0);
    DEST(root, "nobodydir/ro.txt", 0);
    DEST(root, "nobodydir/subdir", -EISDIR);
}

/* Many destinations of one caller: one descriptor per directory, shared
 * by its names; each name still checked on its own; a refused directory
 * or name leaves the batch usable. */
static void test_dest_batch(void) {
    rvd_asuser_dirs *d = rvd_asuser_dirs_new(&nobody);
    int fd1 = -1, fd2 = -1, fd3 = -1, fd4 = -1;
    char *n1 = NULL, *n2 = NULL, *n3 = NULL, *n4 = NULL, *msg = NULL;
    CHECK(d != NULL);
    if (!d)
        return;
    CHECK(rvd_asuser_dest(d, p("nobodydir/a"), &fd1, &n1, NULL) == 0);
    CHECK(rvd_asuser_dest(d, p("nobodydir/mine.txt"), &fd2, &n2, NULL) == 0);
    CHECK(fd1 >= 0 && fd1 == fd2);
    CHECK_STREQ(n1, "a");
    CHECK_STREQ(n2, "mine.txt");
    /* Same directory, a name nobody may not replace; then another dir. */
    CHECK(rvd_asuser_dest(d, p("nobodydir/ro.txt"), &fd3, &n3, &msg) == -EACCES);
    CHECK(has(msg, "/nobodydir/ro.txt': permission denied"));
    free(msg);
    msg = NULL;
    CHECK(rvd_asuser_dest(d, p("rootonly/x"), &fd3, &n3, &msg) == -EACCES);
    CHECK(has(msg, "/rootonly/x': permission denied"));
    free(msg);
    CHECK(rvd_asuser_dest(d, p("sticky/new"), &fd3, &n3, NULL) == 0);
    CHECK(fd3 >= 0 && fd3 != fd1);
    CHECK(rvd_asuser_dest(d, p("nobodydir/b"), &fd4, &n4, NULL) == 0);
    CHECK(fd4 == fd1);
    CHECK(creds_unchanged());
    rvd_asuser_dirs_free(d);
    /* The batch owned the descriptors. */
    CHECK(fcntl(fd1, F_GETFD) == -1 && errno == EBADF);
    CHECK(fcntl(fd3, F_GETFD) == -1 && errno == EBADF);
    free(n1);
    free(n2);
    free(n3);
    free(n4);
}

static void test_source(void) {
    char *msg;
    int fd = -1;

    free(source_case(&nobody, p("pub.txt"), 0, &fd, __LINE__));
    if (fd >= 0) {
        char buf[16] = {0};
        CHECK(read(fd, buf, sizeof(buf)) == 7 && memcmp(buf, "public\n", 7) == 0);
        CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        close(fd);
    }
    msg = source_case(&nobody, p("priv.txt"), -EACCES, NULL, __LINE__);
    CHECK(has(msg, "uid 65534 may not read '") && has(msg, "/priv.txt': permission denied"));
    free(msg);
    SOURCE(nobody, "rootonly/secret", -EACCES);
    SOURCE(nobody, "link2", -EACCES); /* a symlink it may read to a file it may not */
    SOURCE(nobody, "grpdir/grp.txt", -EACCES);
    SOURCE(nobody, "nobodydir", -EISDIR);
    SOURCE(nobody, "nobodydir/fifo", -EINVAL); /* and it did not hang */
    msg = source_case(&nobody, p("missing"), -ENOENT, NULL, __LINE__);
    CHECK(has(msg, "/missing' does not exist"));
    free(msg);
    free(source_case(&nobody, "/dev/null", -EINVAL, NULL, __LINE__));
    free(source_case(&nobody, "rel/path", -EINVAL, NULL, __LINE__));

    SOURCE(other, "grpdir/grp.txt", 0);
    SOURCE(other, "priv.txt", -EACCES);

    SOURCE(root, "priv.txt", 0);
    SOURCE(root, "link2", 0);
}

/* ------------------------------------------------------------------------
 * Paths through /proc (issue 20, item 1)
 * ------------------------------------------------------------------------ */

/* The message with every digit removed: the answers for two descriptor
 * numbers must not differ in anything but the number. */
static char *without_digits(const char *s) {
    char *r = strdup(s ? s : "");
    size_t j = 0;
    for (size_t i = 0; r && r[i]; i++)
        if (r[i] < '0' || r[i] > '9')
            r[j++] = r[i];
    if (r)
        r[j] = '\0';
    return r;
}

/* A source path (printf format with one %d) refused for who, for an open
 * descriptor and for one that does not exist, with the same answer. */
static void proc_source_case(const rvd_peer *who, const char *fmt, int open_fd, int line) {
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof(a), fmt, open_fd);
    snprintf(b, sizeof(b), fmt, 999);
    char *ma = source_case(who, a, -EPERM, NULL, line);
    char *mb = source_case(who, b, -EPERM, NULL, line);
    char *da = without_digits(ma), *db = without_digits(mb);
    if (!has(ma, "opens no path through /proc") || !da || !db || strcmp(da, db) != 0) {
        fprintf(stderr, "%s:%d: FAILED '%s' vs '%s': '%s' / '%s'\n", __FILE__, line, a, b,
                ma ? ma : "", mb ? mb : "");
        rv_test_failures_++;
    }
    rv_test_checks_++;
    free(da);
    free(db);
    free(ma);
    free(mb);
}

/* The daemon's own descriptors are never the caller's by name: the root
 * daemon (this process) holds a root-only file and directory open, and
 * no caller, nobody or root, reaches them through a magic link, a path
 * into /proc, or a symbolic link to one. Files the caller may read stay
 * readable, /dev/shm's included. */
static void test_proc_paths(void) {
    int secret = open(p("rootonly/secret"), O_RDONLY | O_CLOEXEC);
    /* A folder anyone may write, that only root can reach by its path. */
    mkdir_as("rootonly/wide", 0777, 0, 0);
    int dir = open(p("rootonly/wide"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(secret >= 0 && dir >= 0);
    char fmt[PATH_MAX];
    const rvd_peer *whos[] = {&nobody, &root};
    CHECK(symlink("/proc/self/fd", p("nobodydir/fds")) == 0);
    CHECK(symlink("/proc/self", p("nobodydir/self")) == 0);

    for (size_t w = 0; w < 2; w++) {
        const rvd_peer *who = whos[w];
        proc_source_case(who, "/proc/self/fd/%d", secret, __LINE__);
        proc_source_case(who, "/proc/thread-self/fd/%d", secret, __LINE__);
        proc_source_case(who, "/dev/fd/%d", secret, __LINE__);
        snprintf(fmt, sizeof(fmt), "/proc/%d/fd/%%d", (int)getpid());
        proc_source_case(who, fmt, secret, __LINE__);
        snprintf(fmt, sizeof(fmt), "/proc/%d/task/%d/fd/%%d", (int)getpid(), (int)gettid());
        proc_source_case(who, fmt, secret, __LINE__);
        proc_source_case(who, "/proc/self/fdinfo/%d", secret, __LINE__);
        snprintf(fmt, sizeof(fmt), "%s/nobodydir/fds/%%d", root_dir);
        proc_source_case(who, fmt, secret, __LINE__);
        CHECK(symlinkat("../secret", dir, "up") == 0 || errno == EEXIST);
        proc_source_case(who, "/proc/self/fd/%d/up", dir, __LINE__);
        /* The process's root, cwd and other files: refused however they
         * resolve, and whatever exists. */
        const char *refused[] = {"/proc/self/environ", "/proc/self/mem", "/proc/self/maps",
                                 "/proc/self/status", "/proc/self/cwd/priv.txt",
                                 "/proc/self/map_files", "/proc/version", "/proc",
                                 "/proc/no-such-file"};
        for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++)
            free(source_case(who, refused[i], -EPERM, NULL, __LINE__));
        /* A file mapped into the daemon, through its map_files link. */
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[512], range[64] = "";
        while (maps && !range[0] && fgets(line, sizeof(line), maps))
            if (strchr(line, '/'))
                sscanf(line, "%63s", range);
        if (maps)
            fclose(maps);
        CHECK(range[0] != '\0');
        snprintf(fmt, sizeof(fmt), "/proc/self/map_files/%s", range);
        free(source_case(who, fmt, -EPERM, NULL, __LINE__));
        snprintf(fmt, sizeof(fmt), "/proc/self/root%s/priv.txt", root_dir);
        free(source_case(who, fmt, -EPERM, NULL, __LINE__));
        snprintf(fmt, sizeof(fmt), "/proc/../%s/pub.txt", root_dir);
        free(source_case(who, fmt, -EPERM, NULL, __LINE__));
        SOURCE(*who, "nobodydir/self/environ", -EPERM);

        /* Destinations: a folder reached through the daemon's descriptor
         * is refused before anything is created in it. */
        char a[PATH_MAX], b[PATH_MAX];
        snprintf(a, sizeof(a), "/proc/self/fd/%d/planted", dir);
        snprintf(b, sizeof(b), "/proc/self/fd/%d/planted", 999);
        char *ma = dest_case(who, a, -EPERM, NULL, NULL, __LINE__);
        char *mb = dest_case(who, b, -EPERM, NULL, NULL, __LINE__);
        char *da = without_digits(ma), *db = without_digits(mb);
        CHECK(has(ma, "opens no path through /proc") && da && db && strcmp(da, db) == 0);
        free(da);
        free(db);
        free(ma);
        free(mb);
        snprintf(a, sizeof(a), "/dev/fd/%d/planted", dir);
        free(dest_case(who, a, -EPERM, NULL, NULL, __LINE__));
        snprintf(a, sizeof(a), "%s/nobodydir/fds/%d/planted", root_dir, dir);
        free(dest_case(who, a, -EPERM, NULL, NULL, __LINE__));
        free(dest_case(who, "/proc/self/planted", -EPERM, NULL, NULL, __LINE__));
        free(dest_case(who, "/proc/self/cwd/planted", -EPERM, NULL, NULL, __LINE__));
    }
    CHECK(access(p("rootonly/wide/planted"), F_OK) != 0);
    CHECK(unlinkat(dir, "up", 0) == 0);

    /* What the caller may read still opens: its own file, a public one,
     * one in /dev/shm (tmpfs); a device is still not a file. */
    SOURCE(nobody, "nobodydir/mine.txt", 0);
    SOURCE(nobody, "pub.txt", 0);
    SOURCE(root, "priv.txt", 0);
    char shm[] = "/dev/shm/rv-asuser-XXXXXX";
    int s = mkstemp(shm);
    CHECK(s >= 0 && fchown(s, NOBODY, NOBODY) == 0 && write(s, "shm\n", 4) == 4);
    free(source_case(&nobody, shm, 0, NULL, __LINE__));
    free(source_case(&other, shm, -EACCES, NULL, __LINE__)); /* 0600, nobody's */
    unlink(shm);
    close(s);
    free(source_case(&nobody, "/dev/zero", -EINVAL, NULL, __LINE__));
    DEST(nobody, "nobodydir/ok", 0);

    unlink(p("nobodydir/fds"));
    unlink(p("nobodydir/self"));
    close(secret);
    close(dir);
}

/* A kernel without openat2 (before 5.6), made with a seccomp filter that
 * answers ENOSYS to it in a child process: the open is refused, never done
 * another way. */
static void test_no_openat2(void) {
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        rv_test_failures_ = 0;
        struct sock_filter code[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof(code) / sizeof(*code), .filter = code};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            _exit(100);
        char *msg = source_case(&nobody, p("pub.txt"), -ENOSYS, NULL, __LINE__);
        CHECK(has(msg, "lacks openat2"));
        free(msg);
        SOURCE(root, "pub.txt", -ENOSYS);
        msg = dest_case(&nobody, p("nobodydir/x"), -ENOSYS, NULL, NULL, __LINE__);
        CHECK(has(msg, "lacks openat2"));
        free(msg);
        _exit(rv_test_failures_ ? 1 : 0);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A daemon that is not root acts only for its own uid (and root, with its
 * own rights); everyone else is refused. A child process drops to uid
 * 4242 to be that daemon; its failures are its exit status. */
static void test_not_root_daemon(void) {
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        rv_test_failures_ = 0;
        gid_t g = OTHER_GID;
        if (setgroups(1, &g) != 0 || setresgid(g, g, g) != 0 ||
            setresuid(OTHER_UID, OTHER_UID, OTHER_UID) != 0)
            _exit(100);
        cred_lines("/proc/thread-self/status", baseline, sizeof(baseline));
        char *msg = dest_case(&nobody, p("nobodydir/x"), -EPERM, NULL, NULL, __LINE__);
        CHECK(has(msg, "runs as uid 4242 and cannot act for uid 65534"));
        free(msg);
        SOURCE(nobody, "pub.txt", -EPERM);
        DEST(other, "grpdir/x", 0); /* itself: the kernel checks */
        DEST(other, "rootonly/x", -EACCES);
        DEST(root, "rootonly/x", -EACCES); /* root, through a daemon that is not */
        SOURCE(other, "grpdir/grp.txt", 0);
        int dirfd = open(p("grpdir"), O_PATH | O_DIRECTORY | O_CLOEXEC);
        CHECK(rvd_asuser_give(&nobody, dirfd, "grp.txt", NULL) == -EPERM);
        CHECK(rvd_asuser_give(&other, dirfd, "grp.txt", NULL) == 0); /* nothing to do */
        close(dirfd);
        _exit(rv_test_failures_ ? 1 : 0);
    }
    int status = -1;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check_owner(p("grpdir/grp.txt"), 0, OTHER_GID, 1);
}

/* A root daemon whose capabilities were cut (systemd's
 * CapabilityBoundingSet without CAP_SETUID or CAP_SETGID) cannot switch:
 * it refuses with -EPERM, and its thread is left as it was. Without
 * CAP_SETGID setgroups fails first; without CAP_SETUID setfsuid fails
 * silently and only the check after it notices. */
static void test_root_without_caps(void) {
    const int caps[] = {CAP_SETGID, CAP_SETUID};
    for (int i = 0; i < 2; i++) {
        fflush(stderr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            rv_test_failures_ = 0;
            struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
            struct __user_cap_data_struct d[2];
            if (syscall(SYS_capget, &h, d) != 0)
                _exit(100);
            d[0].effective &= ~(1u << caps[i]);
            d[0].permitted &= ~(1u << caps[i]);
            if (syscall(SYS_capset, &h, d) != 0)
                _exit(101);
            cred_lines("/proc/thread-self/status", baseline, sizeof(baseline));
            char *msg = dest_case(&nobody, p("nobodydir/x"), -EPERM, NULL, NULL, __LINE__);
            CHECK(has(msg, "cannot act as uid 65534"));
            free(msg);
            SOURCE(nobody, "pub.txt", -EPERM);
            DEST(root, "rootonly/x", 0); /* no switch needed */
            _exit(rv_test_failures_ ? 1 : 0);
        }
        int status = -1;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

/* A caller's groups, when known (from its connection), are exactly what
 * it is checked against, whatever the user database says: uid 4242 has
 * no passwd entry, yet a process of it that holds group 4250 may use a
 * directory of that group; one that holds no group at all may not. And a
 * group can also be what denies: a 0604 file shuts its group out, so
 * holding the group loses access that others have. */
#define KNOWN_GID 4250
static void test_known_groups(void) {
    gid_t held[] = {KNOWN_GID};
    rvd_peer with = {.pid = 1, .uid = OTHER_UID, .gid = OTHER_GID, .groups_known = true,
                     .n_groups = 1, .groups = held};
    rvd_peer without = {.pid = 1, .uid = OTHER_UID, .gid = OTHER_GID, .groups_known = true};

    mkdir_as("knowndir", 0770, 0, KNOWN_GID);
    write_file(p("knowndir/k.txt"), "k\n", 2, 0640, 0, KNOWN_GID);
    write_file(p("shutout.txt"), "s\n", 2, 0604, 0, KNOWN_GID);

    DEST(with, "knowndir/x", 0);
    SOURCE(with, "knowndir/k.txt", 0);
    SOURCE(with, "shutout.txt", -EACCES);
    DEST(without, "knowndir/x", -EACCES);
    SOURCE(without, "knowndir/k.txt", -EACCES);
    SOURCE(without, "shutout.txt", 0);
    /* Its primary gid still counts with no supplementary group. */
    DEST(without, "grpdir/x", 0);
    /* Unknown groups (a job stored before groups were recorded) fall back
     * to the user database: no entry, so the gid alone. */
    DEST(other, "knowndir/x", -EACCES);

    /* A batch of destinations switches with the same groups. */
    rvd_asuser_dirs *d = rvd_asuser_dirs_new(&with);
    CHECK(d != NULL);
    int fd = -1;
    char *name = NULL, *msg = NULL;
    CHECK(rvd_asuser_dest(d, p("knowndir/y"), &fd, &name, &msg) == 0);
    free(name);
    free(msg);
    CHECK(creds_unchanged());
    rvd_asuser_dirs_free(d);
}

/* Runs a tool of the passwd package (useradd, userdel, groupadd,
 * groupdel) with argv and waits for it: its exit status, or -1. Called
 * while this process has one thread. */
static int run_tool(char *const argv[]) {
    char path[64];
    snprintf(path, sizeof(path), "/usr/sbin/%s", argv[0]);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execv(path, argv);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Unknown groups come from the user database. A group and a user listed
 * as its member (not its primary group) are made for the case with
 * groupadd and useradd, and removed after: the case runs wherever the
 * test does, and fails (never skips) when they cannot be made. */
static void test_supplementary_group(void) {
    char gname[32], uname[32];
    snprintf(gname, sizeof(gname), "rvasg%d", (int)getpid());
    snprintf(uname, sizeof(uname), "rvasu%d", (int)getpid());
    char *groupadd[] = {"groupadd", "--system", gname, NULL};
    char *useradd[] = {"useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                       "--shell", "/usr/sbin/nologin", "--user-group", "--groups", gname, uname,
                       NULL};
    char *userdel[] = {"userdel", uname, NULL};
    char *groupdel_u[] = {"groupdel", uname, NULL}; /* if userdel left it */
    char *groupdel[] = {"groupdel", gname, NULL};
    int ga = run_tool(groupadd);
    int ua = ga == 0 ? run_tool(useradd) : -1;
    if (ga != 0 || ua != 0)
        fprintf(stderr, "supplementary group case: groupadd %s: status %d, useradd %s: status %d "
                        "(the passwd package's tools are needed)\n", gname, ga, uname, ua);
    CHECK(ga == 0 && ua == 0);
    struct passwd *pw = ua == 0 ? getpwnam(uname) : NULL;
    struct group *g = ga == 0 ? getgrnam(gname) : NULL;
    CHECK(pw && g);
    if (pw && g) {
        /* Copied: the user database's answers live in static buffers. */
        gid_t gid = g->gr_gid;
        uid_t uid = pw->pw_uid;
        gid_t primary = pw->pw_gid;
        CHECK(primary != gid);
        rvd_peer member = {.pid = 1, .uid = uid, .gid = primary};
        mkdir_as("suppdir", 0770, 0, gid);
        DEST(member, "suppdir/x", 0);
        DEST(nobody, "suppdir/x", -EACCES);
        /* The same user's process that dropped the group does not get it
         * back through the daemon. */
        rvd_peer dropped = {.pid = 1, .uid = uid, .gid = primary, .groups_known = true};
        DEST(dropped, "suppdir/x", -EACCES);
    }
    if (ua == 0) {
        CHECK(run_tool(userdel) == 0);
        if (getgrnam(uname))
            run_tool(groupdel_u);
    }
    if (ga == 0)
        CHECK(run_tool(groupdel) == 0);
}

/* The switch is the calling thread's alone: while another thread opens as
 * nobody over and over, this thread's credentials never change. (glibc's
 * setgroups would change every thread's.) */
static volatile int spin_done;
static void *spin_opens(void *arg) {
    for (int i = 0; i < 300; i++) {
        int dirfd = -1;
        char *name = NULL, *msg = NULL;
        if (rvd_asuser_open_dest(&nobody, arg, &dirfd, &name, &msg) == 0)
            close(dirfd);
        free(name);
        free(msg);
    }
    spin_done = 1;
    return NULL;
}

static void test_other_threads_untouched(void) {
    pthread_t t;
    unsigned changed = 0, looks = 0;
    spin_done = 0;
    CHECK(pthread_create(&t, NULL, spin_opens, p("nobodydir/x")) == 0);
    while (!spin_done && looks < 100000) {
        changed += !creds_unchanged();
        looks++;
    }
    pthread_join(t, NULL);
    CHECK_EQ_U64(changed, 0);
    CHECK(looks > 0);
}

/* ------------------------------------------------------------------------
 * The engine, through /proc/self/fd
 * ------------------------------------------------------------------------ */

typedef struct fetch_result {
    rv_state state;
    int error;
    char detail[256];
    char path[256]; /* rv_object_path */
} fetch_result;

static void fetch(const char *state_dir, bool link, bool revalidate, const char *url,
                  const char *dest, fetch_result *res) {
    rv_config cfg;
    rv_engine *e = NULL;
    rv_object *o = NULL;
    unsigned active = 1;

    memset(res, 0, sizeof(*res));
    res->state = RV_STATE_FAILED;
    rv_config_init(&cfg);
    cfg.state_dir = state_dir;
    cfg.link_deliveries = link;
    cfg.cache_revalidate = revalidate;
    CHECK(rv_engine_new(&cfg, &e) == RV_OK);
    if (!e)
        return;
    rv_request req = {.url = url, .dest_path = dest};
    int r = rv_engine_add(e, &req, &o);
    if (r != RV_OK) {
        fprintf(stderr, "    rv_engine_add: %s\n", rv_engine_error_detail(e));
        res->error = r;
        rv_engine_free(e);
        return;
    }
    for (int i = 0; i < 2000 && active > 0; i++)
        CHECK(rv_engine_perform(e, 100, &active) == RV_OK);
    res->state = rv_object_state(o);
    res->error = rv_object_error(o);
    snprintf(res->detail, sizeof(res->detail), "%s", rv_object_error_detail(o));
    snprintf(res->path, sizeof(res->path), "%s", rv_object_path(o));
    rv_engine_free(e);
    if (res->state != RV_STATE_DONE)
        fprintf(stderr, "    download of '%s' to '%s' ended %s: %s\n", url, dest,
                rv_state_name(res->state), res->detail);
}

/* Download src (opened as who) to dest (opened as who), through the
 * descriptors, the way the daemon does. Returns the dirfd (the caller
 * closes it) and the name, or -1. */
static int deliver_as(const rvd_peer *who, const char *src, const char *dest, const char *state_dir,
                      bool link, fetch_result *res, char **ret_name) {
    int dirfd = -1, fd = -1;
    char *name = NULL, *msg = NULL;
    CHECK(rvd_asuser_open_source(who, src, &fd, &msg) == 0);
    free(msg);
    msg = NULL;
    CHECK(rvd_asuser_open_dest(who, dest, &dirfd, &name, &msg) == 0);
    free(msg);
    if (fd < 0 || dirfd < 0) {
        if (fd >= 0)
            close(fd);
        if (dirfd >= 0)
            close(dirfd);
        free(name);
        return -1;
    }
    char *url = rvd_asuser_source_url(fd);
    char *path = rvd_asuser_dest_path(dirfd, name);
    CHECK(url && path);
    char want[64];
    snprintf(want, sizeof(want), "file:///proc/self/fd/%d", fd);
    CHECK_STREQ(url, want);
    fetch(state_dir, link, true, url, path, res);
    CHECK_EQ_U64(res->state, RV_STATE_DONE);
    CHECK_STREQ(res->path, path); /* the engine reports what it was given */
    free(url);
    free(path);
    close(fd);
    *ret_name = name;
    return dirfd;
}

static void test_engine_without_state(void) {
    fetch_result res;
    char *name = NULL, *msg = NULL;

    /* A fresh name: O_TMPFILE in /proc/self/fd/N, linked in place. */
    int dirfd = deliver_as(&nobody, p("big.bin"), p("nobodydir/out1"), NULL, true, &res, &name);
    CHECK(same_bytes(p("nobodydir/out1"), big, BIG_LEN));
    check_owner(p("nobodydir/out1"), 0, 0, 1);
    CHECK(rvd_asuser_give(&nobody, dirfd, name, &msg) == 0 && msg == NULL);
    CHECK(creds_unchanged());
    check_owner(p("nobodydir/out1"), NOBODY, NOBODY, 1);
    free(name);
    if (dirfd >= 0)
        close(dirfd);

    /* Over an existing file: a hidden name, renamed over it. */
    dirfd = deliver_as(&nobody, p("pub.txt"), p("nobodydir/mine.txt"), NULL, true, &res, &name);
    CHECK(same_bytes(p("nobodydir/mine.txt"), "public\n", 7));
    CHECK(rvd_asuser_give(&nobody, dirfd, name, NULL) == 0);
    check_owner(p("nobodydir/mine.txt"), NOBODY, NOBODY, 1);
    free(name);
    if (dirfd >= 0)
        close(dirfd);

    /* A set-group-ID directory keeps its group, as the caller's own file
     * would have. */
    dirfd = deliver_as(&nobody, p("pub.txt"), p("sgid/g.txt"), NULL, true, &res, &name);
    CHECK(rvd_asuser_give(&nobody, dirfd, name, NULL) == 0);
    check_owner(p("sgid/g.txt"), NOBODY, OTHER_GID, 1);
    free(name);
    if (dirfd >= 0)
        close(dirfd);

    /* Root callers keep root's files: nothing to give. */
    dirfd = deliver_as(&root, p("priv.txt"), p("rootonly/r.txt"), NULL, true, &res, &name);
    CHECK(same_bytes(p("rootonly/r.txt"), "private\n", 8));
    CHECK(rvd_asuser_give(&root, dirfd, name, NULL) == 0);
    check_owner(p("rootonly/r.txt"), 0, 0, 1);
    free(name);
    if (dirfd >= 0)
        close(dirfd);

    const char *expected[] = {"out1", "mine.txt", "ro.txt", "subdir", "sym", "fifo"};
    CHECK_EQ_U64(extra_entries(p("nobodydir"), expected, 6), 0);
}

static void test_engine_with_state(void) {
    fetch_result res;
    char *name = NULL, *msg = NULL;
    mkdir_as("state", 0700, 0, 0);
    mkdir_as("state2", 0700, 0, 0);

    /* Hard link from the cache: it arrives, shared with the blob, and is
     * not given away (the blob would become the caller's). */
    int dirfd =
        deliver_as(&nobody, p("big.bin"), p("nobodydir/linked"), p("state"), true, &res, &name);
    CHECK(same_bytes(p("nobodydir/linked"), big, BIG_LEN));
    check_owner(p("nobodydir/linked"), 0, 0, 2);
    CHECK(rvd_asuser_give(&nobody, dirfd, name, &msg) == -EMLINK);
    CHECK(has(msg, "hard link shared with the cache"));
    free(msg);
    msg = NULL;
    CHECK(creds_unchanged());
    check_owner(p("nobodydir/linked"), 0, 0, 2);
    free(name);
    if (dirfd >= 0)
        close(dirfd);

    /* A copy from the cache (link_deliveries off): a hidden name, renamed. */
    dirfd =
        deliver_as(&nobody, p("big.bin"), p("nobodydir/copied"), p("state2"), false, &res, &name);
    CHECK(same_bytes(p("nobodydir/copied"), big, BIG_LEN));
    CHECK(rvd_asuser_give(&nobody, dirfd, name, NULL) == 0);
    check_owner(p("nobodydir/copied"), NOBODY, NOBODY, 1);
    free(name);
    if (dirfd >= 0)
        close(dirfd);

    /* One descriptor number, two files, one state directory: the store's
     * key is the URL, "file:///proc/self/fd/200" both times, so only
     * cache_revalidate (on, the daemon's setting; see docs/security.md)
     * keeps the second download from being served the first one's bytes.
     * The two files have the same size on purpose. */
    write_file(p("other.txt"), "OTHER!\n", 7, 0644, 0, 0);
    const char *srcs[] = {"pub.txt", "other.txt"}, *dests[] = {"nobodydir/fdA", "nobodydir/fdB"};
    for (int i = 0; i < 2; i++) {
        int fd = -1, dfd = -1;
        CHECK(rvd_asuser_open_source(&nobody, p(srcs[i]), &fd, NULL) == 0);
        CHECK(rvd_asuser_open_dest(&nobody, p(dests[i]), &dfd, &name, NULL) == 0);
        CHECK(fd >= 0 && dup2(fd, 200) == 200);
        char *url = rvd_asuser_source_url(200), *path = rvd_asuser_dest_path(dfd, name);
        fetch(p("state"), true, true, url, path, &res);
        CHECK_EQ_U64(res.state, RV_STATE_DONE);
        close(200);
        if (fd >= 0)
            close(fd);
        if (dfd >= 0)
            close(dfd);
        free(url);
        free(path);
        free(name);
        name = NULL;
    }
    CHECK(same_bytes(p("nobodydir/fdA"), "public\n", 7));
    CHECK(same_bytes(p("nobodydir/fdB"), "OTHER!\n", 7));

    const char *expected[] = {"out1", "mine.txt", "ro.txt", "subdir", "sym",
                              "fifo", "linked", "copied", "fdA", "fdB"};
    CHECK_EQ_U64(extra_entries(p("nobodydir"), expected, 10), 0);
}

/* The descriptors pin what was checked: names swapped afterwards (a
 * directory for a symbolic link to root's directory, a file for a link to
 * root's file) do not redirect the delivery or the read. */
static void test_race(void) {
    fetch_result res;
    int dirfd = -1, fd = -1;
    char *name = NULL, *msg = NULL;

    mkdir_as("nobodydir/sub", 0755, NOBODY, NOBODY);
    write_file(p("nobodydir/src.txt"), "nobody's\n", 9, 0644, NOBODY, NOBODY);
    CHECK(rvd_asuser_open_dest(&nobody, p("nobodydir/sub/raced"), &dirfd, &name, &msg) == 0);
    CHECK(rvd_asuser_open_source(&nobody, p("nobodydir/src.txt"), &fd, &msg) == 0);
    CHECK(msg == NULL);
    if (dirfd < 0 || fd < 0)
        goto out;

    /* What nobody can do to its own directory after the checks. */
    CHECK(rename(p("nobodydir/sub"), p("nobodydir/sub.moved")) == 0);
    CHECK(symlink(p("rootonly"), p("nobodydir/sub")) == 0);
    CHECK(unlink(p("nobodydir/src.txt")) == 0);
    CHECK(symlink(p("priv.txt"), p("nobodydir/src.txt")) == 0);

    char *url = rvd_asuser_source_url(fd);
    char *path = rvd_asuser_dest_path(dirfd, name);
    fetch(NULL, true, true, url, path, &res);
    CHECK_EQ_U64(res.state, RV_STATE_DONE);
    CHECK(same_bytes(p("nobodydir/sub.moved/raced"), "nobody's\n", 9));
    struct stat st;
    CHECK(lstat(p("rootonly/raced"), &st) != 0 && errno == ENOENT);

    /* And giving: the name now holds something else than the delivery. */
    CHECK(rename(p("nobodydir/sub.moved/raced"), p("nobodydir/sub.moved/kept")) == 0);
    CHECK(symlink(p("priv.txt"), p("nobodydir/sub.moved/raced")) == 0);
    CHECK(rvd_asuser_give(&nobody, dirfd, name, &msg) == -EPERM);
    CHECK(has(msg, "is not the file retrieverd delivered"));
    free(msg);
    msg = NULL;
    CHECK(unlink(p("nobodydir/sub.moved/raced")) == 0);
    CHECK(link(p("priv.txt"), p("nobodydir/sub.moved/raced")) == 0); /* root's, two links */
    CHECK(rvd_asuser_give(&nobody, dirfd, name, NULL) == -EMLINK);
    CHECK(unlink(p("nobodydir/sub.moved/raced")) == 0);
    write_file(p("nobodydir/sub.moved/raced"), "x", 1, 0644, NOBODY, NOBODY); /* not ours */
    CHECK(rvd_asuser_give(&nobody, dirfd, name, NULL) == -EPERM);
    check_owner(p("priv.txt"), 0, 0, 1);
    CHECK(creds_unchanged());
    free(url);
    free(path);
out:
    if (dirfd >= 0)
        close(dirfd);
    if (fd >= 0)
        close(fd);
    free(name);
}

int main(void) {
    if (geteuid() != 0) {
        /* CI runs as root: there, not being root is a failure. */
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0) {
            fprintf(stderr, "FAILED: test_asuser switches to other uids and must run as root; "
                            "CI (CI=true) runs the tests as root\n");
            return 1;
        }
        fprintf(stderr, "skipped: test_asuser switches to other uids and must run as root "
                        "(not root and not in CI)\n");
        return 77;
    }
    cred_lines("/proc/thread-self/status", baseline, sizeof(baseline));
    CHECK(strstr(baseline, "Uid:") && strstr(baseline, "Groups:"));
    make_tree();
    test_dest_nobody();
    test_dest_other_and_root();
    test_dest_batch();
    test_source();
    test_proc_paths();
    test_no_openat2();
    test_not_root_daemon();
    test_root_without_caps();
    test_known_groups();
    test_supplementary_group();
    test_other_threads_untouched();
    test_engine_without_state();
    test_engine_with_state();
    test_race();
    CHECK(creds_unchanged());
    nftw(root_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(big);
    return rv_test_result();
}
