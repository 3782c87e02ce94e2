/* http.h — the http source's operations, for the sources that fetch over
 * HTTP with its machinery (s3.c: an s3:// object is an https one, signed).
 * They are rv_source_http's table entries (rv_source.h says what each
 * does); http.c calls none of its users. */
#ifndef RV_HTTP_H
#define RV_HTTP_H

#include <stdbool.h>

#include "rv_source.h"

struct CURLMsg;

int rv_http_start_range(rv_object *o, rv_chunk *c, bool probe);
int rv_http_revalidate(rv_object *o);
void rv_http_stop_range(rv_object *o, rv_chunk *c);
void rv_http_finish(rv_engine *e, struct CURLMsg *msg);

#endif
