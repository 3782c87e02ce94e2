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

#include <stdbool.h>
#include <stdio.h>

#include "cli.h"

/* The destination of url under o's -o/-d. With cwd NULL the path is as the
 * user wrote it (possibly relative); with cwd (absolute) a relative result
 * is made absolute by prefixing cwd + "/". On success *ret is malloc'd
 * (caller frees). Errors: rv_default_filename's (RV_E_BAD_URL: no usable
 * file name in the URL), RV_E_NOMEM; *ret is untouched then. */
int rvc_destination(const rvc_download_opts *o, const char *url, const char *cwd, char **ret);

/* As rvc_destination for URL i of o->urls, with its -i out= and dir=
 * (input.h) when it has them. */
int rvc_destination_of(const rvc_download_opts *o, size_t i, const char *cwd, char **ret);

/* Whether URL i of o is named by the server when it can be: its name is
 * not given (no -o, no -i out=), so the engine takes the answer's
 * Content-Disposition file name (rv_request.name_from_disposition) in the
 * destination's directory. The existing-destination policy then applies
 * twice: to the URL's name before anything is fetched, as to any other
 * destination, and to the final name at delivery (rv_request.no_replace),
 * where only the engine knows it. */
bool rvc_named_by_server(const rvc_download_opts *o, size_t i);

/* Whether path can be a destination for this user: not a directory (nor
 * ending in '/'), in an existing directory this user can write and search.
 * RV_OK; RV_E_DEST_IS_DIR or RV_E_DEST_UNWRITABLE with *ret_detail a
 * malloc'd sentence naming the path or its directory (worded as the
 * engine words it); RV_E_INVALID_ARGUMENT for "" (detail set too);
 * RV_E_NOMEM (no detail). */
int rvc_check_destination(const char *path, char **ret_detail);

/* Whether something that is not a directory is at path (lstat: a symbolic
 * link counts, dangling or not). A directory is left to
 * rvc_check_destination / the engine, which name it as such. */
bool rvc_dest_exists(const char *path);

/* Sets *ret_detail to the sentence for an existing destination path (what
 * the user can do about it) and returns RV_E_DEST_EXISTS, or RV_E_NOMEM. */
int rvc_dest_exists_detail(const char *path, char **ret_detail);

/* --no-clobber: drop from o->urls (order kept) every URL whose destination
 * exists (for a URL rvc_named_by_server, the URL's name: a final name the
 * server gives is known only at delivery, where the engine keeps an
 * existing file and the run reports the URL skipped), printing one notice line per URL dropped to notices (NULL: none,
 * as with -q) and, when json is not NULL (--json), its JSON line there
 * ("state": "skipped"). Done before anything else reads the URLs (the netrc's
 * per-URL lines are looked up after it). RV_OK or RV_E_NOMEM (o->urls
 * then partly filtered, but consistent; the command ends). */
int rvc_skip_existing(rvc_download_opts *o, FILE *notices, FILE *json);

/* The destinations of one command, each to the first URL that named it:
 * a second URL with the same path is found without comparing every pair
 * (a command may carry thousands of URLs). Used by both modes: the daemon
 * mode rejects a shared destination with it before asking retrieverd;
 * --local names the other URL when the engine refuses one. (The engine
 * (lib/src/engine.c) and retrieverd (daemon/jobrun.c) keep sets of their
 * own, of what is being written, across commands.) */
typedef struct rvc_dest_set rvc_dest_set;

/* A set for at most n paths. RV_OK or RV_E_NOMEM. */
int rvc_dest_set_new(size_t n, rvc_dest_set **ret);

/* Adds path (borrowed: it must outlive the set) for URL i unless it is in
 * the set already; *ret_first: the URL that named it first (i when new).
 * RV_OK, or RV_E_NOMEM (more than n paths, or no memory). */
int rvc_dest_set_add(rvc_dest_set *s, const char *path, size_t i, size_t *ret_first);

/* Frees s (NULL: nothing); returns NULL. */
rvc_dest_set *rvc_dest_set_free(rvc_dest_set *s);

#endif
