/* cmd_jobs.h — the job commands through retrieverd: status, list, watch,
 * cancel, stats, version (in the daemon mode's module; docs/cli.md is
 * their reference, including the --json fields).
 *
 * Each connects to the daemon rvc_daemon_find picks (status may start a
 * per-user one), makes its unary calls (watch: the Watch stream, rendered
 * by remote.c with download's progress display) and prints text, or JSON
 * with --json, on out; errors are one line each on err.
 *
 * An unknown job id and another user's job look the same (retrieverd
 * answers NOT_FOUND for both; a malformed id INVALID_ARGUMENT): "no job
 * 'ID' of yours", exit RVC_EXIT_USAGE.
 */
#ifndef RVC_CMD_JOBS_H
#define RVC_CMD_JOBS_H

#include <stdio.h>

#include "cli.h"

/* Run cmd (verb RVC_VERB_STATUS .. RVC_VERB_DVERSION). Returns the exit
 * code (exitcode.h). */
int rvc_jobs_run(const rvc_cmd *cmd, FILE *out, FILE *err);

#endif
