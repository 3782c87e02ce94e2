/* local.h — `retrieverctl download --local`: run the engine in this process
 * for one parsed command.
 *
 * Phases:
 *   1. validate  every URL gets a destination and is added to the engine;
 *                if any is rejected, all are reported, nothing is
 *                downloaded, and the engine is freed (it created nothing).
 *   2. run       rv_engine_perform until every object is in a terminal
 *                state; hooks record state, progress and retries; output is
 *                written between perform calls, never from inside a hook.
 *                SIGINT/SIGTERM (rvc_sigwatch) cancel every object; the
 *                engine removes their temporary files.
 *   3. report    the exit code: 130/143 when interrupted, else the code of
 *                the first URL (command-line order) that did not finish.
 *
 * Output: progress, completion lines and errors to `err`; only --json lines
 * to `out`.
 */
#ifndef RVC_LOCAL_H
#define RVC_LOCAL_H

#include <stdio.h>

#include "cli.h"
#include "progress.h"
#include "retriever/retriever.h"

/* Run the download described by o (o->local is not checked here). out and
 * err are borrowed. Returns the process exit code (see exitcode.h). */
int rvc_local_download(const rvc_download_opts *o, FILE *out, FILE *err);

/* What rvc_local_download returns, after one line on err, when the default
 * state directory is locked (a per-user retrieverd owns it) and no
 * --state-dir, --cache-dir or engine option asks for this process's own
 * engine: the caller downloads through retrieverd instead (main.c). Never
 * an exit code. */
#define RVC_LOCAL_HANDOVER (-1)

/* What download --local and cat --local share, so that an option means the
 * same to both. */

/* The engine settings of o's options (connections, chunk size, retries,
 * timeouts, the digest); the state and cache directories are the
 * caller's. */
void rvc_local_config(rv_config *cfg, const rvc_download_opts *o, rvc_progress_mode mode);

/* The text of --cacert's FILE, read as this user (malloc'd, into *ret), or
 * an error with a sentence in *ret_why. */
int rvc_local_read_ca(const char *path, char **ret, const char **ret_why);

/* The engine request for o's URL i: its headers (the common ones, -i's,
 * the netrc's or --user's Authorization), expected sha256, CA, proxy, rate
 * limit, link/copy. dest_path and user_data are left to the caller. The
 * header array, when one had to be made, is *ret_hdrs (free it after
 * rv_engine_add; NULL otherwise); req borrows o and ca_pem. */
int rvc_local_request(const rvc_download_opts *o, size_t i, const char *ca_pem, rv_request *req,
                      const char ***ret_hdrs);

#endif
