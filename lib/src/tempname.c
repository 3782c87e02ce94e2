/* tempname.c — hidden temporary names next to a destination. */
#include "tempname.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest part of the destination's name kept in the temporary name, so
 * the temporary name stays under NAME_MAX (255). */
#define TMP_BASE_MAX 200

int rv_tempname_make(const char *dest, const char *from, rv_rng *rng, char **ret_path,
                     int *ret_fd) {
    char *dcopy = strdup(dest), *bcopy = strdup(dest), *path = NULL;
    int err = ENOMEM, made = -1;

    if (!dcopy || !bcopy)
        goto out;
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    size_t len = strlen(dir) + strlen(base) + 32;
    if (!(path = malloc(len)))
        goto out;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(path, len, "%s/.%.*s.rvpart-%06llx", dir, TMP_BASE_MAX, base,
                 (unsigned long long)(rv_rng_next(rng) & 0xffffff));
        if (from)
            made = linkat(AT_FDCWD, from, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
        else
            made = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (made >= 0 || errno != EEXIST)
            break;
    }
    err = made >= 0 ? 0 : errno;
    if (err == 0) {
        *ret_path = path;
        path = NULL;
        if (ret_fd)
            *ret_fd = made;
    }
out:
    free(dcopy);
    free(bcopy);
    free(path);
    return err;
}
