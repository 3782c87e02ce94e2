/* input.c — download -i FILE (aria2's input-file format; input.h). */
#include "input.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "retriever/retriever.h"

/* The longest line read: a URL or a header line with room to spare; a
 * longer one is an error (a binary file given by mistake). */
#define INPUT_MAX_LINE (RVC_MAX_HEADER_LEN + 64)

struct reader {
    rvc_download_opts *o;
    const char *name; /* the file's name in messages ("standard input" for -) */
    size_t line;      /* the current line's number, from 1 */
    size_t cap;       /* entries allocated in o->urls / o->inputs */
    size_t given;     /* URLs from the command line: the file's come after them */
    char *error;
};

static int failf(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failf(struct reader *rd, const char *fmt, ...) {
    char *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&what, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RV_E_NOMEM;
    n = asprintf(&rd->error, "%s:%zu: %s", rd->name, rd->line, what);
    free(what);
    if (n < 0) {
        rd->error = NULL;
        return RV_E_NOMEM;
    }
    return RV_E_INVALID_ARGUMENT;
}

/* Room for one more URL in o->urls and o->inputs (kept the same length). */
static int grow(struct reader *rd) {
    rvc_download_opts *o = rd->o;
    if (o->n_urls >= RVC_MAX_URLS)
        return failf(rd, "more than %d URLs in all", RVC_MAX_URLS);
    if (o->n_urls < rd->cap)
        return RV_OK;
    size_t cap = rd->cap ? rd->cap * 2 : 64;
    const char **u = realloc(o->urls, cap * sizeof(*u));
    if (!u)
        return RV_E_NOMEM;
    o->urls = u;
    rvc_input_item *in = realloc(o->inputs, cap * sizeof(*in));
    if (!in)
        return RV_E_NOMEM;
    memset(in + rd->cap, 0, (cap - rd->cap) * sizeof(*in));
    o->inputs = in;
    rd->cap = cap;
    return RV_OK;
}

/* An indented "name=value" line for the last URL. */
static int option_line(struct reader *rd, char *s) {
    rvc_download_opts *o = rd->o;
    if (o->n_urls <= rd->given)
        return failf(rd, "an option line (it starts with a blank) before any URL");
    rvc_input_item *it = &o->inputs[o->n_urls - 1];
    char *eq = strchr(s, '=');
    if (!eq)
        return failf(rd, "expected NAME=VALUE (out=, dir=, checksum=, header=)");
    *eq = '\0';
    char *v = eq + 1;
    if (strcmp(s, "out") == 0 || strcmp(s, "dir") == 0) {
        bool out = s[0] == 'o';
        if ((out ? it->out : it->dir) != NULL)
            return failf(rd, "%s= given twice for one URL", s);
        if (!*v)
            return failf(rd, "%s= needs a %s", s, out ? "file name" : "directory");
        char *copy = strdup(v);
        int r = rvc_download_own(o, copy);
        if (r != RV_OK)
            return r;
        if (out)
            it->out = copy;
        else
            it->dir = copy;
        return RV_OK;
    }
    if (strcmp(s, "checksum") == 0) {
        static const char algo[] = "sha-256=";
        if (it->sha256[0])
            return failf(rd, "checksum= given twice for one URL");
        if (strncasecmp(v, algo, sizeof(algo) - 1) != 0)
            return failf(rd, "checksum= needs sha-256=HEX (the only algorithm checked), not '%s'",
                         v);
        const char *hex = v + sizeof(algo) - 1;
        size_t n = strlen(hex);
        for (size_t k = 0; k < n && n == 64; k++)
            if (!isxdigit((unsigned char)hex[k]))
                n = 0;
        if (n != 64)
            return failf(rd, "checksum=sha-256= needs 64 hex digits, not '%s'", hex);
        for (size_t k = 0; k < 64; k++)
            it->sha256[k] = (char)tolower((unsigned char)hex[k]);
        it->sha256[64] = '\0';
        return RV_OK;
    }
    if (strcmp(s, "header") == 0) {
        if (o->n_headers + it->n_headers >= RVC_MAX_HEADERS)
            return failf(rd, "more than %d headers for one URL", RVC_MAX_HEADERS);
        if (!rv_header_allowed(v))
            return failf(rd,
                         "header= needs 'Name: value', and not a header the engine sets itself "
                         "(Range, Host, Content-Length, ...)");
        const char **h = realloc(it->headers, (it->n_headers + 1) * sizeof(*h));
        if (!h)
            return RV_E_NOMEM;
        it->headers = h;
        char *copy = strdup(v);
        int r = rvc_download_own(o, copy);
        if (r != RV_OK)
            return r;
        h[it->n_headers++] = copy;
        return RV_OK;
    }
    return failf(rd, "unknown option '%s' (known: out, dir, checksum, header)", s);
}

static int url_line(struct reader *rd, char *s) {
    rvc_download_opts *o = rd->o;
    if (strpbrk(s, " \t"))
        /* The line is not quoted: a URL may carry a token. */
        return failf(rd, "a URL line holds one URL (aria2's mirrors, several URLs separated by "
                         "tabs, are not supported)");
    int r = grow(rd);
    if (r != RV_OK)
        return r;
    char *copy = strdup(s);
    if ((r = rvc_download_own(o, copy)) != RV_OK)
        return r;
    o->inputs[o->n_urls] = (rvc_input_item){0};
    o->urls[o->n_urls++] = copy;
    return RV_OK;
}

/* One line, without its end of line. */
static int one_line(struct reader *rd, char *s, size_t len) {
    if (memchr(s, '\0', len))
        return failf(rd, "a NUL byte: not a text file");
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    size_t lead = strspn(s, " \t");
    if (!s[lead] || s[lead] == '#')
        return RV_OK; /* blank or a comment */
    for (size_t k = lead; k < len; k++)
        if (iscntrl((unsigned char)s[k]) && s[k] != '\t')
            return failf(rd, "a control character in the line");
    return lead ? option_line(rd, s + lead) : url_line(rd, s);
}

int rvc_input_read(rvc_download_opts *o, FILE *in, char **ret_error) {
    bool std_in = strcmp(o->input_file, "-") == 0;
    FILE *f = std_in ? in : fopen(o->input_file, "re");
    struct reader rd = {.o = o, .name = std_in ? "standard input" : o->input_file};
    char *line = NULL;
    size_t n = 0;
    int r = RV_OK;
    if (!f) {
        if (asprintf(ret_error, "cannot read -i file '%s': %s", o->input_file,
                     strerror(errno)) < 0)
            return RV_E_NOMEM;
        return RV_E_INVALID_ARGUMENT;
    }
    /* The command line's URLs get empty items; o->urls is the parser's
     * exact-size array, so it is regrown here. */
    size_t given = o->n_urls;
    o->n_urls = 0;
    const char **urls = o->urls;
    o->urls = NULL;
    for (size_t k = 0; k < given && r == RV_OK; k++) {
        r = grow(&rd);
        if (r == RV_OK) {
            o->inputs[o->n_urls] = (rvc_input_item){0};
            o->urls[o->n_urls++] = urls[k];
        }
    }
    free(urls);
    if (r == RV_OK && !o->inputs)
        r = grow(&rd); /* inputs is non-NULL from here on */
    rd.given = o->n_urls;
    for (;;) {
        if (r != RV_OK)
            break;
        errno = 0;
        ssize_t len = getline(&line, &n, f);
        if (len < 0) {
            if (ferror(f))
                r = failf(&rd, "cannot read: %s", strerror(errno ? errno : EIO));
            break;
        }
        rd.line++;
        if ((size_t)len > INPUT_MAX_LINE) {
            r = failf(&rd, "line longer than %d bytes", INPUT_MAX_LINE);
            break;
        }
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        r = one_line(&rd, line, (size_t)len);
    }
    free(line);
    if (!std_in)
        fclose(f);
    if (r == RV_OK && o->n_urls == 0) {
        rd.line = 0;
        if (asprintf(&rd.error, "%s: no URL in it, and none on the command line", rd.name) < 0)
            rd.error = NULL;
        r = rd.error ? RV_E_INVALID_ARGUMENT : RV_E_NOMEM;
    }
    if (r == RV_E_INVALID_ARGUMENT)
        *ret_error = rd.error;
    else
        free(rd.error);
    return r;
}

const rvc_input_item *rvc_input_item_of(const rvc_download_opts *o, size_t i) {
    return o->inputs && i < o->n_urls ? &o->inputs[i] : NULL;
}

const char *rvc_input_sha256(const rvc_download_opts *o, size_t i) {
    const rvc_input_item *it = rvc_input_item_of(o, i);
    if (it && it->sha256[0])
        return it->sha256;
    return o->sha256[0] ? o->sha256 : NULL;
}
