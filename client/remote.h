/* remote.h — retrieverctl's daemon mode: `ping` and `download` (without
 * --local) through retrieverd's retriever.v1 API (docs/api.md) on its Unix
 * socket. This module and rpc.c are the client's RPC glue: the only ones
 * that see the code generated from proto/.
 *
 * download, phase by phase:
 *   1. validate  every URL gets an absolute destination (-o made absolute
 *                against the current directory; else -d DIR or the current
 *                directory + rv_default_filename); a URL without a file
 *                name, a destination this user cannot write (a directory,
 *                a missing or closed directory) and two URLs with one
 *                destination are rejected here exactly as --local rejects
 *                them, and nothing is sent. URLs (syntax, scheme) are left
 *                to retrieverd (INVALID_ARGUMENT).
 *   2. submit    one DownloadRequest, one Source per URL (headers split at
 *                the first ':', --sha256, -c as `connections`, --detach;
 *                `digest` as --local digests; --link, --copy).
 *   3. follow    JobEvents until the stream ends: progress, retry lines,
 *                one completion or error line (and --json line) per URL.
 *                SIGINT/SIGTERM cancel the call: retrieverd detaches this
 *                subscriber.
 *   4. report    the exit code: 130/143 when interrupted; the stream's
 *                status when it is not OK (rvc_exit_for_rpc); else the
 *                code of the first URL (command-line order) that did not
 *                finish, from its Failed event's engine error name.
 *
 * Output: as --local (report.h): people's lines on `err`, --json lines
 * (and --detach's job id) on `out`.
 */
#ifndef RVC_REMOTE_H
#define RVC_REMOTE_H

#include <stdbool.h>
#include <stdio.h>

#include "cli.h"

/* The environment variable naming the socket when --socket is absent. */
#define RVC_SOCKET_ENV "RETRIEVER_SOCKET"
/* Below $XDG_RUNTIME_DIR: the per-user retrieverd's socket. The same as
 * retrieverd's default (daemon/cli.h, RVD_SOCKET_SUBDIR/RVD_SOCKET_NAME;
 * tests/client/test_remote.c checks they agree). */
#define RVC_SOCKET_SUBPATH "retriever/retrieverd.sock"
/* Bound on reaching retrieverd (connection ready), and on a Ping. */
#define RVC_CONNECT_TIMEOUT_MS 5000

/* The socket to use: opt (--socket) when not NULL, else env_socket
 * ($RETRIEVER_SOCKET) when set and not empty, else
 * xdg_runtime_dir + "/" RVC_SOCKET_SUBPATH. Pure (the caller passes the
 * environment's values). RV_OK with *ret malloc'd; RV_E_INVALID_ARGUMENT
 * when none can be determined (XDG_RUNTIME_DIR unset, empty or relative),
 * with *ret_error a malloc'd sentence saying what to pass; RV_E_NOMEM.
 * Nothing is written on failure except *ret_error. */
int rvc_socket_path(const char *opt, const char *env_socket, const char *xdg_runtime_dir,
                    char **ret, char **ret_error);

/* Split a --header line "Name: value" at its first ':', trimming spaces
 * and tabs around the name and the value. RV_OK with *ret_name and
 * *ret_value malloc'd (caller frees both); RV_E_INVALID_ARGUMENT when
 * there is no ':' or the name is empty; RV_E_NOMEM. */
int rvc_header_split(const char *line, char **ret_name, char **ret_value);

/* The rv_error whose name (rv_error_name) is name, e.g. "RV_E_NOT_FOUND"
 * -> RV_E_NOT_FOUND; -1 for a name not in this build's table (a newer
 * daemon's code) or NULL. */
int rvc_error_from_name(const char *name);

/* `retrieverctl ping`: connect to the socket (socket_opt, or as
 * rvc_socket_path decides from the environment), call Ping, print
 * "retrieverd VERSION (API N) at PATH" to out. Returns the exit code. */
int rvc_remote_ping(const char *socket_opt, FILE *out, FILE *err);

/* `retrieverctl download` without --local (o->local is not checked).
 * socket_opt as for ping. Returns the exit code (exitcode.h). */
int rvc_remote_download(const rvc_download_opts *o, const char *socket_opt, FILE *out,
                        FILE *err);

/* `retrieverctl watch JOB`: follow job_id on the daemon at path with
 * download's progress display and output (report.h; --json lines as
 * download's), from the Watch stream's Snapshot to the job's end. The
 * exit code is the job's, as download's would be; an unknown id (or
 * another user's) is "no job" and RVC_EXIT_USAGE; Ctrl-C leaves the job
 * (130). */
int rvc_remote_watch(const char *path, const char *job_id, bool json, FILE *out, FILE *err);

/* `cache ACTION` through retrieverd's CacheList/CacheRemove/CacheVerify,
 * and `cat URL` (download -o -): a Download with no destination, then a
 * Read of its object to out. remotecache.c. Return the exit code. */
int rvc_remote_cache(const rvc_cmd *cmd, const char *socket_opt, FILE *out, FILE *err);
int rvc_remote_cat(const rvc_download_opts *o, const char *socket_opt, FILE *out, FILE *err);

#endif
