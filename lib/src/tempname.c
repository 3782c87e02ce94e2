/* tempname.c — hidden temporary names next to a destination. */
#include "tempname.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest part of the destination's name kept in the temporary name, so
 * the temporary name stays under NAME_MAX (255). */
#define TMP_BASE_MAX 200

int rv_new_file_create_mode(int mode) { return mode == RV_MODE_UMASK ? 0666 : 0600; }

int rv_new_file_set_mode(int fd, int mode) {
    if (mode == RV_MODE_UMASK || fchmod(fd, (mode_t)mode) == 0)
        return 0;
    return errno;
}

int rv_tempname_make(const char *dest, const char *from, int mode, rv_rng *rng,
                     char **ret_path, int *ret_fd) {
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
            made = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                        rv_new_file_create_mode(mode));
        if (made >= 0 || errno != EEXIST)
            break;
    }
    err = made >= 0 ? 0 : errno;
    if (err == 0 && !from && (err = rv_new_file_set_mode(made, mode)) != 0) {
        close(made);
        unlink(path);
    }
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
