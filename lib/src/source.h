/* source.h — the registry of sources by URL scheme (seed 002's
 * DownloaderRegistry). The engine asks the registry how to fetch a URL; a
 * new scheme (s3:// comes later) is one more table entry and, for an
 * HTTP-based one, a function that maps its URL to the HTTP request. */
#ifndef RV_SOURCE_H
#define RV_SOURCE_H

#include <stdbool.h>

typedef enum rv_source_kind {
    RV_SOURCE_CURL, /* fetched with ranged requests on the curl multi loop */
    RV_SOURCE_FILE, /* a local file copied in bounded slices on the loop */
} rv_source_kind;

typedef struct rv_source {
    const char *scheme; /* lower case */
    rv_source_kind kind;
} rv_source;

/* The source for scheme (lower case), or NULL when unsupported. The pointer
 * is static. */
const rv_source *rv_source_lookup(const char *scheme);

#endif
