/* tempname.h — hidden temporary names next to a destination (internal).
 *
 * A file that must appear whole under its final name is made under a
 * hidden name in the same directory, then renamed (rename is atomic only
 * within one file system):
 *   <dir>/.<name>.rvpart-XXXXXX
 */
#ifndef RV_TEMPNAME_H
#define RV_TEMPNAME_H

#include "retry.h"

/* A delivered file's mode (rv_request.mode): its permission bits, or this
 * for 0666 less the process's umask. */
#define RV_MODE_UMASK (-1)

/* The mode to create a delivered file with, and its fix-up once it is open:
 * with RV_MODE_UMASK, 0666 through the umask and nothing to do; with an
 * explicit mode, 0600 through the umask (never wider than the owner's
 * until the fix-up) and then fchmod to exactly mode, before the file has
 * its final name (deliveries are made unnamed or under a hidden name). */
int rv_new_file_create_mode(int mode);
/* 0 or an errno. */
int rv_new_file_set_mode(int fd, int mode);

/* Make a fresh hidden name next to dest: with from, as a hard link to from
 * (a /proc/self/fd/N link is followed to its open file; mode is unused);
 * else as a new empty file with mode (RV_MODE_UMASK or permission bits, as
 * above), opened into *ret_fd. Returns 0 with *ret_path (the caller's to
 * free), or an errno. */
int rv_tempname_make(const char *dest, const char *from, int mode, rv_rng *rng,
                     char **ret_path, int *ret_fd);

#endif
