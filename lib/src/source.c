/* source.c — the scheme registry. */
#include "source.h"

#include <stddef.h>
#include <string.h>

static const rv_source sources[] = {
    {"http", RV_SOURCE_CURL},
    {"https", RV_SOURCE_CURL},
    {"file", RV_SOURCE_FILE},
};

const rv_source *rv_source_lookup(const char *scheme) {
    for (size_t i = 0; scheme && i < sizeof(sources) / sizeof(sources[0]); i++)
        if (strcmp(sources[i].scheme, scheme) == 0)
            return &sources[i];
    return NULL;
}
