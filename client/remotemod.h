/* remotemod.h — the daemon mode as a loadable module, retrieverctl-remote.so.
 *
 * Why a module: the daemon mode (remote.c, rpc.c, the code generated from
 * proto/) needs the gRPC C core, which brings some 50 shared libraries
 * (absl, re2, c-ares, protobuf-c, …). Linked into retrieverctl, loading and
 * resolving them was more than half of every start — --version and --local
 * included, which never use them: `retrieverctl --version` took about
 * 11 ms with them, 5-6 ms without (perf stat, RelWithDebInfo). So retrieverctl
 * links none of them; `ping` and `download` without --local dlopen() the
 * module, which brings gRPC along, and call through its one exported
 * symbol: the table below.
 *
 * Where the module is, relative to the directory DIR of the running
 * executable (/proc/self/exe, symlinks resolved), tried in this order:
 *   DIR/retrieverctl-remote.so                   the build tree (client/)
 *   DIR/../lib/retriever/retrieverctl-remote.so  installed: PREFIX/bin and
 *                                                PREFIX/lib/retriever
 *
 * The module and retrieverctl come from one build; RVC_REMOTE_ABI catches a
 * stale module left behind by another one. Bump it whenever this table or
 * what its functions take (rvc_download_opts, cli.h) changes.
 */
#ifndef RVC_REMOTEMOD_H
#define RVC_REMOTEMOD_H

#include <stdio.h>

#include "cli.h"

#define RVC_REMOTE_ABI 4
#define RVC_REMOTE_FILE "retrieverctl-remote.so"
#define RVC_REMOTE_INSTALL_SUBDIR "../lib/retriever" /* from the executable's directory */
/* The module's only exported symbol (client/remote.map says so to the linker). */
#define RVC_REMOTE_SYMBOL "rvc_remote_entry"

typedef struct rvc_remote_module {
    unsigned abi; /* RVC_REMOTE_ABI; checked before anything else is read */
    /* rvc_remote_ping and rvc_remote_download (remote.h). */
    int (*ping)(const char *socket_opt, FILE *out, FILE *err);
    int (*download)(const rvc_download_opts *o, const char *socket_opt, FILE *out, FILE *err);
    /* rvc_jobs_run (cmd_jobs.h): status, list, watch, cancel, stats, version. */
    int (*jobs)(const rvc_cmd *cmd, FILE *out, FILE *err);
    /* rvc_remote_cache and rvc_remote_cat (remote.h). */
    int (*cache)(const rvc_cmd *cmd, const char *socket_opt, FILE *out, FILE *err);
    int (*cat)(const rvc_download_opts *o, const char *socket_opt, FILE *out, FILE *err);
} rvc_remote_module;

/* Defined by remote.c, in the module. */
extern const rvc_remote_module rvc_remote_entry;

/* Find and load the module (RTLD_LOCAL; remotemod.c says how binding is done). RVC_EXIT_OK with *ret
 * pointing at its table, valid until the process exits: the module is never
 * unloaded. Otherwise RVC_EXIT_INTERNAL, after one line on err naming the
 * path(s) tried and why (missing, dlerror(), another build's module);
 * *ret is untouched. */
int rvc_remotemod_load(FILE *err, const rvc_remote_module **ret);

#endif
