/* source.h — the registry of sources by URL scheme (rv_source.h has the
 * table each source is). The engine asks the registry which source
 * fetches a URL, and from then on calls the source only through its
 * table: a new scheme is one more table, built in here or registered by
 * the program (rv_source_register), and no branch in engine.c. */
#ifndef RV_SOURCE_H
#define RV_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "rv_source.h"

/* The built-in sources. */
extern const rv_source_ops rv_source_http; /* http.c: http, https */
extern const rv_source_ops rv_source_file; /* filesrc.c: file */
extern const rv_source_ops rv_source_s3;   /* s3.c: s3 (over http.c) */

/* The source for scheme (lower case), or NULL when unsupported: the one
 * registered last that names it, else the built-in one. The pointer stays
 * valid (rv_source_register). */
const rv_source_ops *rv_source_lookup(const char *scheme);

/* The schemes the registry knows, for a message: "http, https or file"
 * (the built-in ones first, then the registered ones), cut to fit size. */
void rv_source_schemes(char *buf, size_t size);
/* Each source's engine_free op, as engine e goes (rv_engine_free). */
void rv_source_engine_free(rv_engine *e);

#endif
