/* s3expand.h — s3://bucket/prefix/ and patterns (a last segment with
 * a "*", "?" or "["): one URL per key, listed (rv_s3_list) as the caller,
 * each saved under -d DIR at the path its key has below the prefix. */
#ifndef RVC_S3EXPAND_H
#define RVC_S3EXPAND_H

#include <stdio.h>

#include "cli.h"

/* Whether url names many objects (ends with '/', or its last segment has
 * a '*', '?' or '['). */
bool rvc_s3_is_listing(const char *url);

/* Replace each listing URL of o by the URLs of its keys, in S3's order,
 * with input items (dir=, out=) that mirror the keys under o->dir; the
 * subdirectories are made. A key that would land outside the directory
 * ('..', '.', an empty segment) is refused with a line on err, the rest go
 * on. RV_OK; else an RV_E_* code and *why (malloc'd) says what failed. */
int rvc_s3_expand(rvc_download_opts *o, FILE *err, char **why);

#endif
