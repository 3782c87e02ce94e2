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

/* Make a fresh hidden name next to dest: with from, as a hard link to from
 * (a /proc/self/fd/N link is followed to its open file); else as a new
 * empty file, opened into *ret_fd. Returns 0 with *ret_path (the caller's
 * to free), or an errno. */
int rv_tempname_make(const char *dest, const char *from, rv_rng *rng, char **ret_path,
                     int *ret_fd);

#endif
