/* cachecmd.h — `cache ACTION` and `cat URL` with --local (the engine in
 * this process, on the local state directory), and the entry lines both
 * modes print.
 *
 * Output of cache: one line per entry to out (ls: "SIZE  STATE  URL";
 * rm/clear/verify: "RESULT  URL"), or with --json one object per line:
 *   {"url": "...", "size": N|null, "bytes": N, "complete": bool,
 *    "in_use": bool, "keyed": bool, "used_unix": N, "result": "listed"}
 * result is one of listed, removed, in-use, intact, corrupt-removed,
 * corrupt-in-use (rv_cache_result_name). URLs are shown redacted.
 */
#ifndef RVC_CACHECMD_H
#define RVC_CACHECMD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

typedef struct rvc_cache_line {
    const char *url;
    bool size_known;
    uint64_t size, bytes;
    bool complete, in_use, keyed;
    int64_t used_unix;
    const char *result; /* rv_cache_result_name */
} rvc_cache_line;

/* One entry's line (see above) to out. */
void rvc_cache_print(FILE *out, bool json, const rvc_cache_line *l);
/* The exit code and summary line (to err, unless quiet) after an action:
 * verify that removed or kept a bad entry is RVC_EXIT_VERIFY. */
int rvc_cache_finish(const char *action, unsigned n, unsigned bad, unsigned busy, FILE *err);

/* cache ACTION --local. Returns the exit code. */
int rvc_local_cache(const rvc_cmd *cmd, FILE *out, FILE *err);
/* cat URL --local (and download -o - --local): the bytes to out (a
 * descriptor is written directly). Returns the exit code. */
int rvc_local_cat(const rvc_download_opts *o, FILE *out, FILE *err);
/* cat --sha256's last word (both modes), once the object has ended with
 * exit code `code` after `written` bytes went to standard output: that the
 * digest matched (not with -q), or that it did not and that those bytes
 * were already written. Nothing without --sha256. */
void rvc_cat_verdict(const rvc_download_opts *o, int code, uint64_t written, FILE *err);

#endif
