/* url.h — parsing and normalising source URLs (internal to lib/).
 *
 * A parsed URL is what the engine keys everything on: the registry picks a
 * source by its scheme, per-host limits key on host_key, and the normalised
 * string is what two requests for "the same object" compare equal on.
 */
#ifndef RV_URL_H
#define RV_URL_H

#include <stdbool.h>
#include <stdint.h>

/* Longest URL accepted, in bytes; longer input is RV_E_BAD_URL. */
#define RV_URL_MAX 8192

typedef struct rv_url {
    char *scheme;     /* lower case: "http", "https", "file" */
    char *host;       /* lower case; "" for file://; IPv6 in brackets, a zone
                         id kept as "%25zone" */
    unsigned port;    /* explicit or the scheme's default; 0 for file:// and
                         for a scheme without a known default */
    char *path;       /* percent-encoded as given, dot segments removed,
                         starts with '/'; never NULL */
    char *query;      /* without '?'; NULL when absent */
    char *normalised; /* scheme://host[:port]/path[?query], default port and
                         fragment dropped; what the engine requests */
    char *host_key;   /* "scheme://host:port": the per-host limit's key */
    char *userinfo;   /* "user[:password]" exactly as given (still
                         percent-encoded); NULL when absent. Only
                         rv_url_normalize uses it: never in normalised */
    bool port_given;  /* the port was explicit and not the scheme's default,
                         so it appears in normalised */
} rv_url;

/* Parse in. Errors: RV_E_BAD_URL (syntax, control characters or spaces,
 * non-ASCII bytes, longer than RV_URL_MAX, no "scheme://", no host for any
 * scheme but file, explicit port 0, '%' not followed by two hex digits;
 * user:password in the URL is accepted but never appears in normalised),
 * RV_E_NOMEM, RV_E_INVALID_ARGUMENT (NULL in or ret). *ret is written only
 * on success; free with rv_url_free. */
int rv_url_parse(const char *in, rv_url **ret);

/* NULL is fine. Returns NULL. */
rv_url *rv_url_free(rv_url *u);

/* The local file name a download of u should get: the last path segment,
 * percent-decoded. Refuses (RV_E_BAD_URL) a name that is empty, ".", "..",
 * contains '/', NUL or another control character (< 0x20, 0x7f) after
 * decoding, or is longer than 255 bytes. On success *ret is malloc'd and
 * owned by the caller. */
int rv_url_filename(const rv_url *u, char **ret);

/* For file:// URLs: the percent-decoded local path (must be absolute). On
 * success *ret is malloc'd, owned by the caller. RV_E_BAD_URL otherwise. */
int rv_url_file_path(const rv_url *u, char **ret);

/* The dedupe key of u, parsed from url, once the source registry has
 * accepted it: rv_url_normalize (source.c) without the registry's check,
 * which url.c leaves to the registry so that it depends on no source. */
int rv_url_key(const rv_url *u, const char *url, char **ret);

#endif
