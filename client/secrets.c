/* secrets.c — --header @FILE / @-, $RETRIEVER_HEADERS, --netrc: reading
 * secrets that must not travel in argv. See secrets.h for the formats. */
#include "secrets.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "retriever/retriever.h"

#define PROG "retrieverctl"
#define HINT "\nTry '" PROG " download --help' for more information."

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static void wipe_free(char *s) {
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void rvc_strv_done(rvc_strv *s) {
    for (size_t i = 0; i < s->n; i++)
        wipe_free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Append an owned string (taken even on failure: freed then). */
static int strv_take(rvc_strv *s, char *str) {
    char **v = str ? realloc(s->v, (s->n + 1) * sizeof(*v)) : NULL;
    if (!v) {
        wipe_free(str);
        return RV_E_NOMEM;
    }
    v[s->n++] = str;
    s->v = v;
    return RV_OK;
}

/* A malloc'd message from fmt (with the --help hint when hint), into
 * *ret_error; returns RV_E_INVALID_ARGUMENT, or RV_E_NOMEM. */
static int errorf(char **ret_error, bool hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errorf(char **ret_error, bool hint, const char *fmt, ...) {
    rvc_buf b;
    rvc_buf_init(&b, 16 * 1024);
    va_list ap;
    va_start(ap, fmt);
    rvc_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (hint)
        rvc_buf_puts(&b, HINT);
    int r = rvc_buf_error(&b);
    char *s = NULL;
    if (r == RV_OK)
        r = rvc_buf_steal(&b, &s);
    rvc_buf_done(&b);
    if (r != RV_OK)
        return RV_E_NOMEM;
    *ret_error = s;
    return RV_E_INVALID_ARGUMENT;
}

/* ------------------------------------------------------------------------
 * Header lines
 * ------------------------------------------------------------------------ */

int rvc_header_lines_parse(const char *text, size_t len, const char *source, rvc_strv *out,
                           char **ret_error) {
    rvc_strv got = {NULL, 0};
    size_t lineno = 0;
    int r = RV_OK;

    for (size_t at = 0; r == RV_OK && at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - at;
        lineno++;
        if (n && text[at + n - 1] == '\r')
            n--;
        if (n == 0) {
            at = end + 1;
            continue;
        }
        if (n > RVC_MAX_HEADER_LEN) {
            r = errorf(ret_error, true, "%s, line %zu: header longer than %d bytes", source,
                       lineno, RVC_MAX_HEADER_LEN);
            break;
        }
        char *line = strndup(text + at, n);
        if (!line) {
            r = RV_E_NOMEM;
            break;
        }
        /* A NUL inside the line shortens the copy: that is malformed too. */
        if (strlen(line) != n || !rv_header_allowed(line)) {
            wipe_free(line);
            r = errorf(ret_error, true,
                       "%s, line %zu: not a header line 'Name: value', or a header the engine "
                       "sets itself (Range, If-Range, If-Match, Host, Content-Length, ...); the "
                       "line is not shown, it may hold a secret",
                       source, lineno);
            break;
        }
        r = strv_take(&got, line);
        at = end + 1;
    }
    for (size_t i = 0; r == RV_OK && i < got.n; i++) {
        r = strv_take(out, got.v[i]);
        got.v[i] = NULL;
    }
    rvc_strv_done(&got);
    return r;
}

/* ------------------------------------------------------------------------
 * netrc
 * ------------------------------------------------------------------------ */

struct netrc_entry {
    char *machine; /* NULL: the default entry */
    char *login;
    char *password;
};

struct rvc_netrc {
    struct netrc_entry *e;
    size_t n;
};

void rvc_netrc_free(rvc_netrc *n) {
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        free(n->e[i].machine);
        wipe_free(n->e[i].login);
        wipe_free(n->e[i].password);
    }
    free(n->e);
    free(n);
}

/* A tokenizer over the netrc's text. */
struct lexer {
    const char *s;
    size_t len, at;
    size_t line; /* of the last word returned */
};

/* The next word into *ret (malloc'd), or NULL at the end. Quoted words
 * unescape \" \\ \n \r \t; another escaped character stands for itself. */
static int next_word(struct lexer *lx, char **ret, const char *source, char **ret_error) {
    *ret = NULL;
    size_t line = lx->line;
    while (lx->at < lx->len && isspace((unsigned char)lx->s[lx->at])) {
        if (lx->s[lx->at] == '\n')
            line++;
        lx->at++;
    }
    lx->line = line;
    if (lx->at >= lx->len)
        return RV_OK;
    char *w = malloc(lx->len - lx->at + 1);
    size_t n = 0;
    if (!w)
        return RV_E_NOMEM;
    if (lx->s[lx->at] == '"') {
        lx->at++;
        for (;;) {
            if (lx->at >= lx->len || lx->s[lx->at] == '\n') {
                wipe_free((w[n] = '\0', w));
                return errorf(ret_error, true, "%s, line %zu: a quoted word has no closing '\"'",
                              source, line);
            }
            char c = lx->s[lx->at++];
            if (c == '"')
                break;
            if (c == '\\' && lx->at < lx->len && lx->s[lx->at] != '\n') {
                c = lx->s[lx->at++];
                c = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
            }
            w[n++] = c;
        }
    } else {
        while (lx->at < lx->len && !isspace((unsigned char)lx->s[lx->at]))
            w[n++] = lx->s[lx->at++];
    }
    w[n] = '\0';
    *ret = w;
    return RV_OK;
}

/* Skip a macdef's body: everything up to an empty line (or the end). */
static void skip_macro(struct lexer *lx) {
    /* The macro starts on the line after "macdef NAME". */
    while (lx->at < lx->len && lx->s[lx->at] != '\n')
        lx->at++;
    while (lx->at < lx->len) {
        lx->at++; /* the '\n' ending the previous line */
        lx->line++;
        if (lx->at >= lx->len || lx->s[lx->at] == '\n')
            break;
        while (lx->at < lx->len && lx->s[lx->at] != '\n')
            lx->at++;
    }
}

int rvc_netrc_parse(const char *text, size_t len, const char *source, rvc_netrc **ret,
                    char **ret_error) {
    struct lexer lx = {text, len, 0, 1};
    rvc_netrc *n = calloc(1, sizeof(*n));
    char *w = NULL, *v = NULL;
    int r = n ? RV_OK : RV_E_NOMEM;

    while (r == RV_OK) {
        r = next_word(&lx, &w, source, ret_error);
        if (r != RV_OK || !w)
            break;
        size_t line = lx.line;
        bool is_machine = strcmp(w, "machine") == 0, is_default = strcmp(w, "default") == 0;
        bool is_login = strcmp(w, "login") == 0, is_password = strcmp(w, "password") == 0;
        bool is_account = strcmp(w, "account") == 0, is_macdef = strcmp(w, "macdef") == 0;
        if (!is_machine && !is_default && !is_login && !is_password && !is_account &&
            !is_macdef) {
            r = errorf(ret_error, true,
                       "%s, line %zu: a word where a keyword (machine, default, login, password, "
                       "account, macdef) was expected; the word is not shown, it may be a "
                       "secret",
                       source, line);
            break;
        }
        if (is_default) {
            struct netrc_entry *e = realloc(n->e, (n->n + 1) * sizeof(*e));
            if (!e) {
                r = RV_E_NOMEM;
                break;
            }
            n->e = e;
            n->e[n->n++] = (struct netrc_entry){NULL, NULL, NULL};
            wipe_free(w);
            w = NULL;
            continue;
        }
        r = next_word(&lx, &v, source, ret_error);
        if (r == RV_OK && !v)
            r = errorf(ret_error, true, "%s, line %zu: '%s' needs a value", source, line, w);
        if (r != RV_OK)
            break;
        if (is_machine) {
            struct netrc_entry *e = realloc(n->e, (n->n + 1) * sizeof(*e));
            if (!e) {
                r = RV_E_NOMEM;
                break;
            }
            n->e = e;
            n->e[n->n++] = (struct netrc_entry){v, NULL, NULL};
            v = NULL;
        } else if (is_macdef) {
            skip_macro(&lx);
        } else if (is_login || is_password) {
            if (n->n == 0) {
                r = errorf(ret_error, true, "%s, line %zu: '%s' before any 'machine' or 'default'",
                           source, line, w);
                break;
            }
            char **slot = is_login ? &n->e[n->n - 1].login : &n->e[n->n - 1].password;
            wipe_free(*slot);
            *slot = v;
            v = NULL;
        }
        /* account: its value is read and dropped (HTTP has no use for it). */
        wipe_free(w);
        wipe_free(v);
        w = v = NULL;
    }
    wipe_free(w);
    wipe_free(v);
    if (r == RV_OK) {
        *ret = n;
        return RV_OK;
    }
    rvc_netrc_free(n);
    return r;
}

bool rvc_netrc_lookup(const rvc_netrc *n, const char *host, const char **ret_login,
                      const char **ret_password) {
    const struct netrc_entry *hit = NULL, *def = NULL;
    for (size_t i = 0; i < n->n && !hit; i++) {
        if (!n->e[i].machine) {
            if (!def)
                def = &n->e[i];
        } else if (strcasecmp(n->e[i].machine, host) == 0) {
            hit = &n->e[i];
        }
    }
    if (!hit)
        hit = def;
    if (!hit || !hit->password)
        return false;
    *ret_login = hit->login ? hit->login : "";
    *ret_password = hit->password;
    return true;
}

/* ------------------------------------------------------------------------
 * URLs and basic auth
 * ------------------------------------------------------------------------ */

int rvc_url_host(const char *url, char **ret_host, bool *ret_userinfo) {
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return RV_E_INVALID_ARGUMENT;
    size_t auth_len = strcspn(p, "/?#");
    const char *at = memrchr(p, '@', auth_len);
    const char *h = at ? at + 1 : p;
    size_t hl = auth_len - (size_t)(h - p);
    const char *end;
    if (hl && h[0] == '[') {
        end = memchr(h, ']', hl);
        if (!end)
            return RV_E_INVALID_ARGUMENT;
        h++;
    } else {
        end = memchr(h, ':', hl);
        if (!end)
            end = h + hl;
    }
    if (end == h)
        return RV_E_INVALID_ARGUMENT;
    char *host = strndup(h, (size_t)(end - h));
    if (!host)
        return RV_E_NOMEM;
    for (char *c = host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *ret_host = host;
    *ret_userinfo = at != NULL;
    return RV_OK;
}

int rvc_basic_auth_line(const char *login, const char *password, char **ret) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char prefix[] = "Authorization: Basic ";
    size_t ll = strlen(login), pl = strlen(password), n = ll + 1 + pl;
    char *plain = malloc(n + 1);
    char *out = malloc(sizeof(prefix) + (n + 2) / 3 * 4);
    int r = plain && out ? RV_OK : RV_E_NOMEM;
    if (r == RV_OK) {
        memcpy(plain, login, ll);
        plain[ll] = ':';
        memcpy(plain + ll + 1, password, pl);
        memcpy(out, prefix, sizeof(prefix) - 1);
        char *o = out + sizeof(prefix) - 1;
        const unsigned char *u = (const unsigned char *)plain;
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned)u[i] << 16 | (i + 1 < n ? (unsigned)u[i + 1] << 8 : 0) |
                         (i + 2 < n ? u[i + 2] : 0);
            *o++ = b64[v >> 18 & 63];
            *o++ = b64[v >> 12 & 63];
            *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
            *o++ = i + 2 < n ? b64[v & 63] : '=';
        }
        *o = '\0';
        *ret = out;
        out = NULL;
    }
    if (plain) {
        explicit_bzero(plain, n);
        free(plain);
    }
    free(out);
    return r;
}

/* ------------------------------------------------------------------------
 * Resolution
 * ------------------------------------------------------------------------ */

/* Read at most RVC_SECRETS_MAX_FILE bytes of fd into a malloc'd buffer
 * (NUL-terminated; *ret_len without it). errno-style failures return the
 * errno; RV_E_TOO_LARGE when there is more. */
static int read_all(int fd, char **ret, size_t *ret_len) {
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap >= RVC_SECRETS_MAX_FILE) {
                /* One more byte tells "exactly the limit" from "more". */
                char extra;
                ssize_t k = read(fd, &extra, 1);
                if (k == 0)
                    break;
                explicit_bzero(b, n);
                free(b);
                return k < 0 ? -errno : RV_E_TOO_LARGE;
            }
            cap *= 2;
            char *nb = malloc(cap + 1);
            if (!nb) {
                explicit_bzero(b, n);
                free(b);
                return -ENOMEM;
            }
            memcpy(nb, b, n);
            explicit_bzero(b, n);
            free(b);
            b = nb;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            explicit_bzero(b, n);
            free(b);
            return -e;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    b[n] = '\0';
    *ret = b;
    *ret_len = n;
    return RV_OK;
}

/* Read the file `path` ("-": in) for `what` ("header file", "netrc"); on
 * success *ret is malloc'd, and *ret_mode (when not NULL) the file's mode. */
static int read_source(const char *path, FILE *in, const char *what, char **ret, size_t *ret_len,
                       mode_t *ret_mode, char **ret_error) {
    bool use_in = strcmp(path, "-") == 0;
    int fd = use_in ? fileno(in) : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    int r;
    if (fd < 0)
        return errorf(ret_error, true, "cannot open the %s '%s': %s", what, path,
                      strerror(errno));
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        r = errorf(ret_error, true, "cannot read the %s '%s': %s", what, use_in ? "-" : path,
                   S_ISDIR(st.st_mode) ? "it is a directory" : strerror(errno));
        goto out;
    }
    if (ret_mode)
        *ret_mode = st.st_mode;
    r = read_all(fd, ret, ret_len);
    if (r == RV_E_TOO_LARGE)
        r = errorf(ret_error, true, "the %s '%s' is larger than %u bytes", what,
                   use_in ? "-" : path, RVC_SECRETS_MAX_FILE);
    else if (r == -ENOMEM)
        r = RV_E_NOMEM;
    else if (r < 0)
        r = errorf(ret_error, true, "cannot read the %s '%s': %s", what, use_in ? "-" : path,
                   strerror(-r));
out:
    if (!use_in)
        close(fd);
    return r;
}

static bool has_authorization(const rvc_download_opts *d) {
    for (size_t i = 0; i < d->n_headers; i++)
        if (strncasecmp(d->headers[i], "authorization", 13) == 0 &&
            (d->headers[i][13] == ':' || d->headers[i][13] == ' ' || d->headers[i][13] == '\t'))
            return true;
    return false;
}

/* d->auth from the netrc. */
static int resolve_netrc(rvc_download_opts *d, const char *home, FILE *warn, rvc_strv *owned,
                         char **ret_error) {
    char *path = NULL, *text = NULL, *label = NULL;
    size_t len = 0;
    mode_t mode = 0;
    rvc_netrc *nr = NULL;
    int r = RV_OK;

    if (d->netrc_file)
        path = strdup(d->netrc_file);
    else if (!home || !*home)
        return errorf(ret_error, true,
                      "option '--netrc': HOME is not set, so there is no ~/.netrc; name the file "
                      "with --netrc-file FILE");
    else if (asprintf(&path, "%s/.netrc", home) < 0)
        path = NULL;
    if (!path)
        return RV_E_NOMEM;
    if (strcmp(path, "-") == 0) {
        r = errorf(ret_error, true, "option '--netrc-file' needs a file, not '-'");
        goto out;
    }
    r = read_source(path, NULL, "netrc", &text, &len, &mode, ret_error);
    if (r != RV_OK)
        goto out;
    if (asprintf(&label, "netrc '%s'", path) < 0) {
        label = NULL;
        r = RV_E_NOMEM;
        goto out;
    }
    r = rvc_netrc_parse(text, len, label, &nr, ret_error);
    if (r != RV_OK)
        goto out;
    if ((mode & 077) && warn)
        fprintf(warn,
                PROG ": warning: the netrc '%s' can be read or written by other users (mode "
                     "%04o): its passwords are not secret; chmod 600 it\n",
                path, (unsigned)(mode & 07777));
    /* An Authorization header given explicitly wins over the netrc, as in
     * curl; so does a URL's own userinfo. */
    if (has_authorization(d))
        goto out;
    d->auth = calloc(d->n_urls ? d->n_urls : 1, sizeof(*d->auth));
    if (!d->auth) {
        r = RV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; r == RV_OK && i < d->n_urls; i++) {
        char *host = NULL;
        bool userinfo = false;
        const char *login, *password;
        int e = rvc_url_host(d->urls[i], &host, &userinfo);
        if (e == RV_E_NOMEM)
            r = e;
        if (e == RV_OK && !userinfo && rvc_netrc_lookup(nr, host, &login, &password)) {
            char *line = NULL;
            r = rvc_basic_auth_line(login, password, &line);
            if (r == RV_OK && (r = strv_take(owned, line)) == RV_OK)
                d->auth[i] = line;
        }
        free(host);
    }
out:
    if (text) {
        explicit_bzero(text, len);
        free(text);
    }
    rvc_netrc_free(nr);
    free(label);
    free(path);
    return r;
}

/* d->auth from --user: the same line for every http(s) URL without its own
 * userinfo (the URL's wins, as with the netrc). An Authorization header
 * given as well is a conflict, said rather than one silently dropped. */
static int resolve_user(rvc_download_opts *d, rvc_strv *owned, char **ret_error) {
    char *login = NULL, *line = NULL;
    const char *colon = strchr(d->user, ':');
    int r = RV_OK;

    if (has_authorization(d))
        return errorf(ret_error, true,
                      "option '--user' and an Authorization header (--header, $%s) cannot be "
                      "used together: give one",
                      RVC_HEADERS_ENV);
    if (!colon)
        return errorf(ret_error, true, "option '--user' needs USER:PASSWORD");
    if (!(login = strndup(d->user, (size_t)(colon - d->user))))
        return RV_E_NOMEM;
    r = rvc_basic_auth_line(login, colon + 1, &line);
    if (r == RV_OK && (r = strv_take(owned, line)) != RV_OK)
        line = NULL; /* strv_take wiped and freed it */
    if (r == RV_OK && !(d->auth = calloc(d->n_urls ? d->n_urls : 1, sizeof(*d->auth))))
        r = RV_E_NOMEM;
    for (size_t i = 0; r == RV_OK && i < d->n_urls; i++) {
        char *host = NULL;
        bool userinfo = false;
        int e = rvc_url_host(d->urls[i], &host, &userinfo);
        if (e == RV_E_NOMEM)
            r = e;
        if (e == RV_OK && !userinfo)
            d->auth[i] = line;
        free(host);
    }
    wipe_free(login);
    return r;
}

int rvc_secrets_resolve(rvc_download_opts *d, const char *env_headers, const char *home, FILE *in,
                        FILE *warn, char **ret_error) {
    /* Everything read is appended to d's own list as it is read (so d owns
     * it on every path, and rvc_cmd_done wipes it); `list` is the new header
     * list, pointing into it or into argv, put in place only when whole. */
    rvc_strv owned = {d->owned, d->n_owned};
    size_t n_lines = 0;
    const char **list = NULL;
    bool stdin_read = false;
    int r = RV_OK;

    for (size_t i = 0; r == RV_OK && i <= d->n_headers; i++) {
        /* i == 0: $RETRIEVER_HEADERS; then --header i - 1. */
        const char *h = i == 0 ? NULL : d->headers[i - 1];
        size_t before = owned.n;
        if (i == 0) {
            if (env_headers && *env_headers)
                r = rvc_header_lines_parse(env_headers, strlen(env_headers),
                                           "$" RVC_HEADERS_ENV, &owned, ret_error);
        } else if (h[0] == '@') {
            const char *path = h + 1;
            char *text = NULL, *label = NULL;
            size_t len = 0;
            if (strcmp(path, "-") == 0) {
                if (stdin_read) {
                    r = errorf(ret_error, true,
                               "option '--header @-' given more than once: standard input can be "
                               "read only once");
                    break;
                }
                stdin_read = true;
            }
            r = read_source(path, in, "header file", &text, &len, NULL, ret_error);
            if (r == RV_OK && asprintf(&label, "header file '%s'", path) < 0) {
                label = NULL;
                r = RV_E_NOMEM;
            }
            if (r == RV_OK)
                r = rvc_header_lines_parse(text, len, label, &owned, ret_error);
            if (text) {
                explicit_bzero(text, len);
                free(text);
            }
            free(label);
        } else {
            const char **nl = realloc(list, (n_lines + 1) * sizeof(*nl));
            if (!nl)
                r = RV_E_NOMEM;
            else
                (list = nl)[n_lines++] = h;
        }
        for (size_t k = before; r == RV_OK && k < owned.n; k++) {
            const char **nl = realloc(list, (n_lines + 1) * sizeof(*nl));
            if (!nl)
                r = RV_E_NOMEM;
            else
                (list = nl)[n_lines++] = owned.v[k];
        }
    }
    /* One slot is kept for the netrc's (or --user's) Authorization line. */
    if (r == RV_OK && n_lines + (d->netrc || d->user ? 1 : 0) > RVC_MAX_HEADERS)
        r = errorf(ret_error, true, "more than %d headers (from --header, @FILE, $%s%s)",
                   RVC_MAX_HEADERS, RVC_HEADERS_ENV, d->netrc ? " and the netrc" : "");
    if (r == RV_OK) {
        free(d->headers);
        d->headers = list;
        d->n_headers = n_lines;
        list = NULL;
    }
    /* --user wins over the netrc, as in curl: the netrc is not read. */
    if (r == RV_OK && d->user)
        r = resolve_user(d, &owned, ret_error);
    else if (r == RV_OK && d->netrc)
        r = resolve_netrc(d, home, warn, &owned, ret_error);
    /* A proxy with credentials: a copy of our own, so that main.c can
     * wipe the password from argv as it does --user's. */
    if (r == RV_OK && d->proxy && strchr(d->proxy, '@')) {
        char *copy = strdup(d->proxy);
        if ((r = strv_take(&owned, copy)) == RV_OK) {
            d->proxy_argv = d->proxy;
            d->proxy = copy;
        }
    }
    free(list);
    d->owned = owned.v;
    d->n_owned = owned.n;
    return r;
}
