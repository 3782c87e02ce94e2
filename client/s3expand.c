/* s3expand.c — listing URLs into one URL per key (s3expand.h). */
#include "s3expand.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <retriever/retriever.h>

#include "s3conf.h"

bool rvc_s3_is_listing(const char *url) {
    if (strncmp(url, "s3://", 5) != 0)
        return false;
    const char *path = strchr(url + 5, '/');
    if (!path || !path[1] || url[strlen(url) - 1] == '/')
        return true;
    const char *last = strrchr(path, '/') + 1;
    return strpbrk(last, "*?[") != NULL;
}

struct list {
    rvc_download_opts *o;
    FILE *err;
    const char *bucket;      /* borrowed, not NUL-ended: bucket_len bytes */
    size_t bucket_len;
    const char *dir_prefix;  /* the listed prefix up to its last '/', decoded */
    const char *pattern;     /* the last segment's glob, or NULL */
    const char **urls;       /* the new list (grown here) */
    rvc_input_item *inputs;
    size_t n, cap;
    size_t refused;
};

static char *pct_decode(const char *s, size_t n) {
    char *out = malloc(n + 1), *w = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n &&
            sscanf((char[3]){s[i + 1], s[i + 2], 0}, "%1x%1x", &hi, &lo) == 2) {
            *w++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return out;
}

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
}

/* Whether rel (a key below the prefix) stays inside the directory: no
 * empty, "." or ".." segment, not absolute, not a directory marker. */
static bool safe_rel(const char *rel) {
    if (!rel[0] || rel[0] == '/' || rel[strlen(rel) - 1] == '/')
        return false;
    for (const char *s = rel; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n;
        if (*s == '/')
            s++;
    }
    return true;
}

/* mkdir -p of dir/rel's directories (rel's last segment is the file). */
static int make_dirs(const char *dir, const char *rel, char **ret_dir) {
    char *path = NULL;
    const char *slash = strrchr(rel, '/');
    if (asprintf(&path, "%s/%.*s", dir, slash ? (int)(slash - rel) : 0, rel) < 0)
        return RV_E_NOMEM;
    if (slash)
        for (char *p = path + strlen(dir) + 1;; p++) {
            if (*p == '/' || !*p) {
                char c = *p;
                *p = '\0';
                if (mkdir(path, 0777) != 0 && errno != EEXIST) {
                    free(path);
                    return RV_E_DEST_UNWRITABLE;
                }
                *p = c;
                if (!c)
                    break;
            }
        }
    *ret_dir = path;
    return RV_OK;
}

static int push(struct list *l, const char *url, const rvc_input_item *item) {
    if (l->n >= RVC_MAX_URLS)
        return RV_E_TOO_LARGE;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        const char **u = realloc(l->urls, cap * sizeof(*u));
        if (!u)
            return RV_E_NOMEM;
        l->urls = u;
        rvc_input_item *in = realloc(l->inputs, cap * sizeof(*in));
        if (!in)
            return RV_E_NOMEM;
        memset(in + l->cap, 0, (cap - l->cap) * sizeof(*in));
        l->inputs = in;
        l->cap = cap;
    }
    l->urls[l->n] = url;
    if (item)
        l->inputs[l->n] = *item;
    l->n++;
    return RV_OK;
}

static int on_key(void *ud, const char *key, uint64_t size) {
    struct list *l = ud;
    size_t plen = strlen(l->dir_prefix);
    (void)size;
    if (strncmp(key, l->dir_prefix, plen) != 0)
        return RV_OK; /* S3 lists only keys with the prefix; be sure */
    const char *rel = key + plen;
    if (l->pattern && (strchr(rel, '/') || fnmatch(l->pattern, rel, FNM_PATHNAME) != 0))
        return RV_OK; /* a pattern matches in the prefix's own "directory" */
    if (key[strlen(key) - 1] == '/')
        return RV_OK; /* a "directory" marker object: nothing to save */
    if (!safe_rel(rel)) {
        fprintf(l->err, "retrieverctl: refused key '%s': it would land outside '%s'\n", key,
                l->o->dir);
        l->refused++;
        return RV_OK;
    }
    /* s3://bucket/KEY with the key percent-encoded but for '/'. */
    size_t klen = strlen(key);
    char *url = malloc(5 + l->bucket_len + 1 + 3 * klen + 1), *w = url;
    if (!url)
        return RV_E_NOMEM;
    w += sprintf(w, "s3://%.*s/", (int)l->bucket_len, l->bucket);
    for (const unsigned char *k = (const unsigned char *)key; *k; k++)
        if (unreserved(*k))
            *w++ = (char)*k;
        else
            w += sprintf(w, "%%%02X", *k);
    *w = '\0';
    char *dir = NULL, *out = NULL;
    int r = rvc_download_own(l->o, url);
    if (r == RV_OK)
        r = make_dirs(l->o->dir, rel, &dir);
    if (r == RV_OK)
        r = rvc_download_own(l->o, dir);
    if (r == RV_OK) {
        const char *slash = strrchr(rel, '/');
        out = strdup(slash ? slash + 1 : rel);
        r = rvc_download_own(l->o, out);
    }
    if (r != RV_OK) {
        if (r == RV_E_DEST_UNWRITABLE)
            fprintf(l->err, "retrieverctl: cannot make the directories for key '%s' in '%s'\n",
                    key, l->o->dir);
        return r;
    }
    rvc_input_item item = {.dir = dir, .out = out};
    return push(l, url, &item);
}

int rvc_s3_expand(rvc_download_opts *o, FILE *err, char **why) {
    struct list l = {.o = o, .err = err};
    rvc_s3 s3;
    bool loaded = false;
    char *prefix_url = NULL, *dir_prefix = NULL, *pattern = NULL, *detail = NULL;
    int r = RV_OK;

    *why = NULL;
    for (size_t i = 0; i < o->n_urls && r == RV_OK; i++) {
        const char *url = o->urls[i];
        if (!rvc_s3_is_listing(url)) {
            r = push(&l, url, o->inputs ? &o->inputs[i] : NULL);
            continue;
        }
        if (!o->dir) {
            r = RV_E_INVALID_ARGUMENT;
            if (asprintf(why, "'%s' names many objects: give -d DIR to save them in", url) < 0)
                *why = NULL;
            break;
        }
        if (!loaded) {
            const char *w = NULL;
            r = rvc_s3_load(o, &s3, &w);
            if (r != RV_OK) {
                *why = w ? strdup(w) : NULL;
                break;
            }
            loaded = true;
        }
        const char *b = url + 5, *slash = strchr(b, '/');
        l.bucket = b;
        l.bucket_len = slash ? (size_t)(slash - b) : strlen(b);
        const char *path = slash ? slash + 1 : "";
        const char *last = strrchr(path, '/');
        size_t dlen = last ? (size_t)(last - path) + 1 : 0;
        free(dir_prefix);
        free(pattern);
        free(prefix_url);
        dir_prefix = pct_decode(path, dlen);
        pattern = path[dlen] ? pct_decode(path + dlen, strlen(path + dlen)) : NULL;
        if (!dir_prefix || (path[dlen] && !pattern) ||
            asprintf(&prefix_url, "s3://%.*s/%.*s", (int)l.bucket_len, b, (int)dlen, path) < 0) {
            prefix_url = NULL;
            r = RV_E_NOMEM;
            break;
        }
        l.dir_prefix = dir_prefix;
        l.pattern = pattern;
        size_t before = l.n;
        r = rv_s3_list(prefix_url, &s3.p, on_key, &l, &detail);
        if (r != RV_OK) {
            *why = detail;
            detail = NULL;
            break;
        }
        if (l.n == before)
            fprintf(err, "retrieverctl: no keys match '%s'\n", url);
    }
    if (r == RV_OK && l.n == 0) {
        r = l.refused ? RV_E_ACCESS_DENIED : RV_E_NOT_FOUND;
        *why = strdup("nothing to download");
    }
    if (r == RV_OK) {
        /* Hand the new lists over (the old inputs' header arrays move
         * with their items). */
        free(o->urls);
        free(o->inputs);
        o->urls = l.urls;
        o->inputs = l.inputs;
        o->n_urls = l.n;
        l.urls = NULL;
        l.inputs = NULL;
    }
    free(l.urls);
    free(l.inputs);
    free(prefix_url);
    free(dir_prefix);
    free(pattern);
    free(detail);
    if (loaded)
        rvc_s3_free(&s3);
    return r;
}
