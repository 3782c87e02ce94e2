/* asuser.h — open files as the caller would, so that no caller can use
 * the daemon to read or write a file it could not read or write itself.
 *
 * The daemon may run as root and serve other uids. Checking a path's
 * permissions and then handing the same path to the engine would be racy:
 * between the check and the use, the caller can swap a directory for a
 * symbolic link to /etc. So the daemon opens what the caller names AS THE
 * CALLER, once, and hands the engine paths that resolve through the open
 * descriptors, never through the caller's names again:
 *
 *   destination  rvd_asuser_open_dest   → dirfd, name
 *                engine dest_path       = "/proc/self/fd/<dirfd>/<name>"
 *   file:// src  rvd_asuser_open_source → fd
 *                engine URL             = "file:///proc/self/fd/<fd>"
 *
 * (rvd_asuser_dest_path and rvd_asuser_source_url build those strings.)
 * /proc/self/fd/N is the open file itself: whatever happens to the names
 * afterwards, the engine writes into the directory that was opened and
 * reads the file that was opened. The descriptors must stay open until
 * the engine object is released (rv_engine_release): closing one early
 * lets the number be reused for another file.
 *
 * How a path is opened "as the caller" (see docs/security.md):
 *
 *   caller uid == 0, or == the daemon's euid
 *        the daemon opens it itself; the kernel checks.
 *   daemon euid == 0, caller someone else
 *        the CALLING THREAD's file-system credentials (fsuid, fsgid,
 *        supplementary groups) become the caller's for the opens and
 *        access checks, with raw system calls that affect this thread
 *        only, and are restored before returning — on every path. A failed
 *        restore aborts the process: going on as the caller would be a
 *        security bug. Supplementary groups are the caller's own, as
 *        its connection reported them (rvd_peer.groups): the kernel would
 *        check the caller's opens against the same list. Only when they
 *        are unknown (a job stored by a daemon that did not record them)
 *        do they come from the user database (getgrouplist for the uid's
 *        name), or are just the peer's gid when the uid has no passwd
 *        entry.
 *   daemon not root, caller another uid
 *        refused (-EPERM): such a daemon cannot act as anyone else, and
 *        judging by mode bits alone would ignore ACLs and the path leading
 *        to the file.
 *
 * Every path a caller names is resolved in a short-lived helper process
 * whose descriptor table holds nothing of the daemon's (so /proc/self is
 * not the daemon), with openat2(RESOLVE_NO_MAGICLINKS), and a path whose
 * resolution enters procfs is refused (-EPERM), with one message whatever
 * exists there: the daemon's own descriptors (/proc/self/fd/N,
 * /proc/<its pid>/fd/N, /dev/fd/N) are no caller's, root's included.
 *
 * Calls are synchronous and quick (a few system calls and one helper
 * process per path opened; a user database lookup only for a caller whose
 * groups are unknown); the gRPC completion-queue thread may make them. They are thread-safe: each switches only the
 * thread it runs on.
 *
 * Errors are negative errno values. On failure, when ret_error is not
 * NULL, *ret_error is set to a malloc'd sentence naming the path and the
 * uid (or NULL when even that allocation failed); the caller frees it.
 * Out parameters other than ret_error are written only on success.
 *   -EACCES, -EPERM   the caller may not (→ PERMISSION_DENIED):
 *                     "uid 1000 may not write '/root/x': permission denied";
 *                     -EPERM also for any path through /proc:
 *                     "source '/proc/self/fd/22' is refused: retrieverd
 *                     opens no path through /proc (…)"
 *   -ENOENT           "directory '/a/b' does not exist" / "'/a/f' does not exist"
 *   -ENOTDIR          a component of the path is not a directory
 *   -EISDIR           the destination (or source) is a directory
 *   -EEXIST           the destination exists and is not a regular file
 *                     (a symbolic link, a socket, …): it is not replaced
 *   -EINVAL           not an absolute path, or a name that cannot be a file
 *                     ("", ".", ".."), or a source that is not a regular file
 *   -ENOSYS           the kernel lacks openat2 or close_range (before
 *                     Linux 5.9): nothing is opened for callers
 *   -EROFS, -ELOOP, -ENAMETOOLONG, …  as the kernel says
 *   -ENOMEM
 */
#ifndef RVD_ASUSER_H
#define RVD_ASUSER_H

#include <stddef.h>

#include "peer.h"

/* Open the directory that is to hold dest (an absolute path) as the
 * caller, and check that the caller may create or replace dest there:
 * write and search permission on the directory; when dest exists, it is a
 * regular file the caller may write (not a directory, not a symbolic
 * link), and a sticky directory's rule allows the caller to replace it.
 * Symbolic links in the directory part are followed as the caller's own
 * open would follow them. On success *ret_dirfd is an
 * O_PATH|O_DIRECTORY|O_CLOEXEC descriptor on the directory and *ret_name
 * the final component (malloc'd); the caller owns and closes/frees both. */
int rvd_asuser_open_dest(const rvd_peer *caller, const char *dest, int *ret_dirfd, char **ret_name,
                         char **ret_error);

/* Many destinations of one caller (a job's): each directory is opened and
 * checked once, the caller's groups are looked up once, and destinations
 * in one directory share its descriptor, which d owns: it stays open
 * until rvd_asuser_dirs_free. A check is as of the call: the batch is for
 * destinations checked together, not a cache kept across requests. */
typedef struct rvd_asuser_dirs rvd_asuser_dirs;
rvd_asuser_dirs *rvd_asuser_dirs_new(const rvd_peer *caller);
rvd_asuser_dirs *rvd_asuser_dirs_free(rvd_asuser_dirs *d);
/* rvd_asuser_open_dest within d: *ret_dirfd is d's (do not close it). */
int rvd_asuser_dest(rvd_asuser_dirs *d, const char *dest, int *ret_dirfd, char **ret_name,
                    char **ret_error);

/* Open path (absolute; a file:// URL's path) for reading as the caller:
 * the kernel checks read permission as the caller at open. It must be a
 * regular file. On success *ret_fd is an O_RDONLY|O_CLOEXEC descriptor the
 * caller owns. */
int rvd_asuser_open_source(const rvd_peer *caller, const char *path, int *ret_fd,
                           char **ret_error);

/* After delivery: when the daemon runs as root and the caller is neither
 * root nor the daemon's uid, make the delivered file dirfd/name the
 * caller's (owner: the caller's uid; group: the caller's gid, or left as
 * the directory's group when the directory is set-group-ID, as the
 * kernel would have chosen had the caller created it). Nothing to do (0)
 * otherwise. The file is opened without following a symbolic link and
 * changed through that descriptor, and only when it is what the daemon
 * delivered: a regular file owned by the daemon with a single link. So a
 * name the caller swapped meanwhile (a hard link to a root-owned file, a
 * symbolic link) is never given away: -EPERM. A delivery hard-linked to
 * the cache (rv_config.link_deliveries) has two links and is left
 * read-only and owned by the daemon: -EMLINK. */
int rvd_asuser_give(const rvd_peer *caller, int dirfd, const char *name, char **ret_error);

/* Whether the caller may replace what is at name in the directory dirfd
 * (one rvd_asuser_dest gave): rvd_asuser_dest's check of an existing
 * destination (a regular file the caller may write, and a sticky
 * directory's rule), made at the moment a name chosen later (the
 * server's, rv_request.name_from_disposition) is to replace a file. 0
 * (also when nothing is there), or -EISDIR, -EEXIST (not a regular file),
 * -EACCES/-EPERM, with *ret_error as rvd_asuser_dest's. */
int rvd_asuser_may_replace(const rvd_peer *caller, int dirfd, const char *name, char **ret_error);

/* "/proc/self/fd/<dirfd>/<name>" and "file:///proc/self/fd/<fd>",
 * malloc'd (NULL when out of memory); the caller frees them. The URL's
 * path has no character that needs percent-encoding. */
char *rvd_asuser_dest_path(int dirfd, const char *name);
char *rvd_asuser_source_url(int fd);

#endif
