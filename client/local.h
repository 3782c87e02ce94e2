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

/* Run the download described by o (o->local is not checked here). out and
 * err are borrowed. Returns the process exit code (see exitcode.h). */
int rvc_local_download(const rvc_download_opts *o, FILE *out, FILE *err);

/* What rvc_local_download returns, after one line on err, when the default
 * state directory is locked (a per-user retrieverd owns it) and no
 * --state-dir, --cache-dir or engine option asks for this process's own
 * engine: the caller downloads through retrieverd instead (main.c). Never
 * an exit code. */
#define RVC_LOCAL_HANDOVER (-1)

#endif
