/* source.c — the scheme registry: the built-in sources, and those the
 * program registers (rv_source_register). It refers to the built-in
 * tables and nothing of the engine's, so the sources, which never call the
 * registry, stay below it in the call graph (tools/callgraph.py). */
#include "source.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retriever.h"
#include "rv_error.h"
#include "url.h"

static const rv_source_ops *const builtin[] = {&rv_source_http, &rv_source_file, &rv_source_s3};

/* Registered sources, newest last; process-wide (rv_source_register says
 * when it may change). */
static const rv_source_ops **registered;
static size_t n_registered;

static bool names(const rv_source_ops *ops, const char *scheme) {
    for (const char *const *s = ops->schemes; *s; s++)
        if (strcmp(*s, scheme) == 0)
            return true;
    return false;
}

const rv_source_ops *rv_source_lookup(const char *scheme) {
    if (!scheme)
        return NULL;
    for (size_t i = n_registered; i-- > 0;)
        if (names(registered[i], scheme))
            return registered[i];
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (names(builtin[i], scheme))
            return builtin[i];
    return NULL;
}

void rv_source_schemes(char *buf, size_t size) {
    const char *names[32];
    size_t n = 0, len = 0;
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        for (const char *const *s = builtin[i]->schemes; *s && n < 32; s++)
            names[n++] = *s;
    for (size_t i = 0; i < n_registered; i++)
        for (const char *const *s = registered[i]->schemes; *s && n < 32; s++)
            names[n++] = *s;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + len, size - len, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

void rv_source_engine_free(rv_engine *e) {
    for (size_t i = 0; i < n_registered; i++)
        if (registered[i]->engine_free)
            registered[i]->engine_free(e);
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (builtin[i]->engine_free)
            builtin[i]->engine_free(e);
}

int rv_source_register(const rv_source_ops *ops) {
    if (!ops || !ops->name || !ops->schemes || !ops->schemes[0] ||
        !ops->start_range == !ops->step || (ops->start_range && !ops->stop))
        return RV_E_INVALID_ARGUMENT;
    const rv_source_ops **r = realloc(registered, (n_registered + 1) * sizeof(*r));
    if (!r)
        return RV_E_NOMEM;
    registered = r;
    registered[n_registered++] = ops;
    return RV_OK;
}

int rv_url_normalize(const char *url, char **ret) {
    rv_url *u = NULL;
    int r;

    if (!url || !ret)
        return RV_E_INVALID_ARGUMENT;
    r = rv_url_parse(url, &u);
    if (r != RV_OK)
        goto out;
    /* The engine's own rule (rv_engine_add): a scheme the registry knows,
     * and a URL its source accepts (for file://, a path that decodes to
     * an absolute one). */
    const rv_source_ops *src = rv_source_lookup(u->scheme);
    if (!src) {
        r = RV_E_UNSUPPORTED_SCHEME;
        goto out;
    }
    if (src->check_url && (r = src->check_url(url)) != RV_OK)
        goto out;
    r = rv_url_key(u, url, ret);
out:
    rv_url_free(u);
    return r;
}
