/* remotemod.c — finding and loading retrieverctl-remote.so (remotemod.h).
 *
 * Why the paths are built from /proc/self/exe rather than left to ld.so
 * through a DT_RUNPATH of $ORIGIN on retrieverctl:
 *   - a RUNPATH is searched for every library retrieverctl needs, at every
 *     start, before the system directories: failed opens in DIR and
 *     DIR/../lib/retriever for libc, libcurl, … — start-up time is what
 *     this module exists to save;
 *   - dlopen() by bare name reports "cannot open shared object file" without
 *     saying where it looked; here every message names the exact files;
 *   - LD_LIBRARY_PATH cannot put another file in its place.
 * The cost: /proc must be mounted.
 *
 * RTLD_LAZY, not RTLD_NOW: RTLD_NOW binds every function reference of every
 * library loaded with the module — some 4000 in gRPC's ~50 — before the
 * first call, which made `ping` about 2 ms slower than lazy binding. The
 * module itself is linked with -z now, so its own references to gRPC,
 * protobuf-c and libc are still bound by dlopen(): a mismatched library
 * fails here, with dlerror(), not in the middle of a call. Inside gRPC,
 * binding stays lazy, as it was when retrieverctl linked gRPC directly.
 * RTLD_LOCAL: nothing the module brings joins the global scope.
 *
 * The module is never dlclose()d: nothing would be gained (the process
 * exits right after the call), unloading gRPC while a thread of its own
 * still runs would crash, and the sanitizer build's leak checker cannot
 * symbolize the frames of an unloaded module.
 */
#include "remotemod.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"

#define PROG "retrieverctl"
#define ADVICE "reinstall retrieverctl (download --local works without it)"

int rvc_remotemod_load(FILE *err, const rvc_remote_module **ret) {
    static const char *const subdirs[] = {"", RVC_REMOTE_INSTALL_SUBDIR "/"};
    char dir[PATH_MAX];
    char paths[2][PATH_MAX + sizeof(RVC_REMOTE_INSTALL_SUBDIR "/" RVC_REMOTE_FILE)];

    ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
    char *slash = n > 0 ? memrchr(dir, '/', (size_t)n) : NULL;
    if (!slash) {
        fprintf(err, PROG ": cannot find " RVC_REMOTE_FILE ", the daemon mode: "
                     "/proc/self/exe does not name this program (%s); " ADVICE "\n",
                strerror(n < 0 ? errno : ENOENT));
        return RVC_EXIT_INTERNAL;
    }
    slash[1] = '\0';

    for (size_t i = 0; i < 2; i++) {
        const char *p = paths[i];
        snprintf(paths[i], sizeof(paths[i]), "%s%s" RVC_REMOTE_FILE, dir, subdirs[i]);
        if (access(p, F_OK) != 0)
            continue; /* not here: the next place */
        void *h = dlopen(p, RTLD_LAZY | RTLD_LOCAL);
        if (!h) {
            fprintf(err, PROG ": cannot load the daemon mode from '%s': %s; " ADVICE "\n", p,
                    dlerror());
            return RVC_EXIT_INTERNAL;
        }
        const rvc_remote_module *m = dlsym(h, RVC_REMOTE_SYMBOL);
        if (!m || m->abi != RVC_REMOTE_ABI) {
            if (m)
                fprintf(err, PROG ": '%s' is another build's daemon mode (ABI %u, this "
                             "retrieverctl needs %u); " ADVICE "\n",
                        p, m->abi, (unsigned)RVC_REMOTE_ABI);
            else
                fprintf(err, PROG ": '%s' is not retrieverctl's daemon mode: %s; " ADVICE "\n",
                        p, dlerror());
            return RVC_EXIT_INTERNAL;
        }
        *ret = m;
        return RVC_EXIT_OK;
    }
    fprintf(err, PROG ": the daemon mode is not installed: neither '%s' nor '%s' exists; "
                 ADVICE "\n",
            paths[0], paths[1]);
    return RVC_EXIT_INTERNAL;
}
