/* dest.h — where a URL of `download` is saved: -o FILE, DIR/NAME, or NAME
 * in the current directory (NAME from rv_default_filename), and whether
 * this user may save there.
 *
 * rvc_destination is pure (no I/O): the caller passes the current
 * directory when it needs an absolute path (the daemon mode: retrieverd
 * resolves nothing relative to the caller). rvc_check_destination looks at
 * the file system, as the engine's own check does for --local, so that the
 * daemon mode rejects the same destinations with the same words before
 * asking retrieverd.
 */
#ifndef RVC_DEST_H
#define RVC_DEST_H

#include "cli.h"

/* The destination of url under o's -o/-d. With cwd NULL the path is as the
 * user wrote it (possibly relative); with cwd (absolute) a relative result
 * is made absolute by prefixing cwd + "/". On success *ret is malloc'd
 * (caller frees). Errors: rv_default_filename's (RV_E_BAD_URL: no usable
 * file name in the URL), RV_E_NOMEM; *ret is untouched then. */
int rvc_destination(const rvc_download_opts *o, const char *url, const char *cwd, char **ret);

/* Whether path can be a destination for this user: not a directory (nor
 * ending in '/'), in an existing directory this user can write and search.
 * RV_OK; RV_E_DEST_IS_DIR or RV_E_DEST_UNWRITABLE with *ret_detail a
 * malloc'd sentence naming the path or its directory (worded as the
 * engine words it); RV_E_INVALID_ARGUMENT for "" (detail set too);
 * RV_E_NOMEM (no detail). */
int rvc_check_destination(const char *path, char **ret_detail);

#endif
