/* dest.c — naming a URL's destination file. */
#include "dest.h"

#include <errno.h>
#include <search.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "input.h"
#include "json.h"
#include "retriever/retriever.h"

/* a + "/" + b, without doubling a trailing '/' of a. malloc'd or NULL. */
static char *join(const char *a, const char *b) {
    size_t al = strlen(a);
    bool slash = al > 0 && a[al - 1] == '/';
    char *path = NULL;
    if (asprintf(&path, "%s%s%s", a, slash ? "" : "/", b) < 0)
        return NULL;
    return path;
}

/* The path as the user named it: -o FILE, DIR/NAME or NAME, where -i's
 * out= and dir= (input.h) stand in for NAME and -d's DIR. */
static int relative_destination(const rvc_download_opts *o, const char *url,
                                const rvc_input_item *item, char **ret) {
    char *name = NULL;
    if (o->output) {
        *ret = strdup(o->output);
        return *ret ? RV_OK : RV_E_NOMEM;
    }
    const char *dir = item && item->dir ? item->dir : o->dir;
    if (item && item->out) {
        name = strdup(item->out);
        if (!name)
            return RV_E_NOMEM;
        if (name[0] == '/')
            dir = NULL; /* an absolute out= is the whole path */
    } else {
        int e = rv_default_filename(url, &name);
        if (e != RV_OK)
            return e;
    }
    if (!dir) {
        *ret = name;
        return RV_OK;
    }
    char *path = join(dir, name);
    free(name);
    if (!path)
        return RV_E_NOMEM;
    *ret = path;
    return RV_OK;
}

static int destination(const rvc_download_opts *o, const char *url, const rvc_input_item *item,
                       const char *cwd, char **ret) {
    char *path = NULL;
    int e = relative_destination(o, url, item, &path);
    if (e != RV_OK)
        return e;
    if (cwd && path[0] != '/') {
        char *abs = join(cwd, path);
        free(path);
        if (!abs)
            return RV_E_NOMEM;
        path = abs;
    }
    *ret = path;
    return RV_OK;
}

int rvc_destination(const rvc_download_opts *o, const char *url, const char *cwd, char **ret) {
    return destination(o, url, NULL, cwd, ret);
}

int rvc_destination_of(const rvc_download_opts *o, size_t i, const char *cwd, char **ret) {
    return destination(o, o->urls[i], rvc_input_item_of(o, i), cwd, ret);
}

bool rvc_named_by_server(const rvc_download_opts *o, size_t i) {
    const rvc_input_item *item = rvc_input_item_of(o, i);
    return !o->output && !(item && item->out);
}

/* Set *ret_detail to a formatted sentence and return code (RV_E_NOMEM when
 * the sentence cannot be made). */
static int reject(char **ret_detail, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reject(char **ret_detail, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(ret_detail, fmt, ap);
    va_end(ap);
    return n < 0 ? RV_E_NOMEM : code;
}

int rvc_check_destination(const char *path, char **ret_detail) {
    struct stat st;
    if (!*path)
        return reject(ret_detail, RV_E_INVALID_ARGUMENT, "the destination path is empty");
    if (path[strlen(path) - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return reject(ret_detail, RV_E_DEST_IS_DIR, "destination '%s' is a directory", path);

    char *copy = strdup(path);
    if (!copy)
        return RV_E_NOMEM;
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    int r = RV_OK;
    if (stat(dir, &st) != 0)
        r = reject(ret_detail, RV_E_DEST_UNWRITABLE, "cannot use directory '%s': %s", dir,
                   strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        r = reject(ret_detail, RV_E_DEST_UNWRITABLE, "'%s' is not a directory", dir);
    else if (access(dir, W_OK | X_OK) != 0)
        r = reject(ret_detail, RV_E_DEST_UNWRITABLE, "cannot write in directory '%s': %s", dir,
                   strerror(errno));
    free(copy);
    return r;
}

bool rvc_dest_exists(const char *path) {
    struct stat st;
    /* lstat: a symbolic link is something there, even a dangling one. */
    return lstat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int rvc_dest_exists_detail(const char *path, char **ret_detail) {
    return reject(ret_detail, RV_E_DEST_EXISTS,
                  "'%s': --force replaces it, --no-clobber skips it", path);
}

int rvc_skip_existing(rvc_download_opts *o, FILE *notices, FILE *json) {
    size_t kept = 0;
    int r = RV_OK;
    for (size_t i = 0; i < o->n_urls; i++) {
        char *path = NULL;
        int e = rvc_destination_of(o, i, NULL, &path);
        if (e == RV_E_NOMEM)
            r = e; /* kept; the list stays whole, and the command ends */
        /* A URL with no usable name stays: the run rejects it, in order. */
        bool skip = e == RV_OK && rvc_dest_exists(path);
        char *shown = NULL; /* the URL as it may be printed (no secrets) */
        if (skip && (notices || json) && rv_url_redact(o->urls[i], &shown) != RV_OK)
            r = RV_E_NOMEM;
        if (shown && notices)
            fprintf(notices, "retrieverctl: skipped '%s': '%s' exists (--no-clobber)\n", shown,
                    path);
        if (shown && json) {
            rvc_json_result res = {.url = shown, .path = path, .state = "skipped"};
            rvc_buf b;
            rvc_buf_init(&b, 64 * 1024);
            if (rvc_json_result_line(&b, &res) == RV_OK)
                fwrite(b.data, 1, b.len, json);
            rvc_buf_done(&b);
        }
        free(shown);
        free(path);
        if (skip && o->inputs)
            free(o->inputs[i].headers);
        if (!skip && o->inputs)
            o->inputs[kept] = o->inputs[i];
        if (!skip)
            o->urls[kept++] = o->urls[i];
    }
    o->n_urls = kept;
    return r;
}

/* ------------------------------------------------------------------------
 * The destination set: glibc's hsearch_r table, sized at twice the paths
 * it may hold so that it never fills.
 * ------------------------------------------------------------------------ */

struct rvc_dest_set {
    struct hsearch_data table;
    size_t n, max;
};

int rvc_dest_set_new(size_t n, rvc_dest_set **ret) {
    rvc_dest_set *s = calloc(1, sizeof(*s));
    if (!s || !hcreate_r(n * 2 + 1, &s->table)) {
        free(s);
        return RV_E_NOMEM;
    }
    s->max = n;
    *ret = s;
    return RV_OK;
}

int rvc_dest_set_add(rvc_dest_set *s, const char *path, size_t i, size_t *ret_first) {
    ENTRY *first = NULL;
    /* hsearch_r takes a char * key; it never writes through it. */
    if (s->n == s->max ||
        !hsearch_r((ENTRY){.key = (char *)path, .data = (void *)(uintptr_t)i}, ENTER, &first,
                   &s->table))
        return RV_E_NOMEM;
    *ret_first = (size_t)(uintptr_t)first->data;
    if (*ret_first == i)
        s->n++;
    return RV_OK;
}

rvc_dest_set *rvc_dest_set_free(rvc_dest_set *s) {
    if (s)
        hdestroy_r(&s->table);
    free(s);
    return NULL;
}
