/* url.c — parsing and normalising source URLs.
 *
 * libcurl's URL API does the RFC 3986 parsing (IPv6 literals, ports,
 * userinfo, dot-segment removal, IPv4 forms); this file adds what libcurl
 * is lenient about and we are not:
 *
 *   check                                  libcurl alone would
 *   length <= RV_URL_MAX                   accept up to 8 MB
 *   bytes in 0x21..0x7e only               accept raw UTF-8, some controls
 *   scheme = ALPHA *(ALPHA DIGIT + - .)    accept "1http"
 *   literally "scheme://"                  turn "http:/x", "http:///x" into
 *                                          host "x"
 *   non-empty authority except file://     (same)
 *   explicit port 0 refused                accept it
 *   no DOS drive ("/C:/") in a file://     refuse it as written, accept it
 *   path after dot segments go             when made by "/a/../C:/"
 *   '%' always followed by two hex digits  pass "%zz" through
 *   in path and query
 *   decoded host: unreserved/sub-delims,   decode "%C3%A9" or "%25" into
 *   IPv6 hex; zone id unreserved           the host
 *
 * Normalisation: scheme and host lower case (an IPv6 zone id keeps its
 * case: interface names are case-sensitive), the scheme's default port
 * dropped, dot segments removed (as libcurl does when it sends the request),
 * fragment and userinfo dropped, percent-encoding left exactly as given.
 * That is what the engine requests.
 *
 * Two more forms for callers that keep URLs (the daemon), both public:
 *   rv_url_normalize  the dedupe key: as normalised, plus userinfo kept
 *                     and the path's escapes canonical (RFC 3986 6.2.2)
 *   rv_url_redact     what may leave the engine: userinfo and every query
 *                     value but a few harmless ones hidden; any string
 *   rv_url_scrub      the same rule applied to free text about a URL
 */
#include "url.h"
#include "hexdigit.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "retriever.h"
#include "rv_error.h"

/* Longest file name rv_url_filename hands out (NAME_MAX on Linux). */
#define URL_FILENAME_MAX 255

/* ---- character classes (ASCII only, independent of the locale) ---- */

static bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static void lower_ascii(char *s, size_t n) {
    for (size_t i = 0; i < n && s[i]; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/* Every '%' in s starts a two-hex-digit escape. */
static bool escapes_valid(const char *s) {
    for (; *s; s++) {
        if (*s != '%')
            continue;
        if (rv_hex_value(s[1]) < 0 || rv_hex_value(s[2]) < 0)
            return false;
        s += 2;
    }
    return true;
}

/* Checks libcurl does not make, on the raw input (see the table above).
 * Sets *is_file for the "file" scheme. */
static int precheck(const char *in, bool *is_file) {
    size_t len = strnlen(in, RV_URL_MAX + 1);
    if (len == 0 || len > RV_URL_MAX)
        return RV_E_BAD_URL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f) /* controls, space, DEL, non-ASCII */
            return RV_E_BAD_URL;
    }

    if (!is_alpha(in[0]))
        return RV_E_BAD_URL;
    size_t n = 1;
    while (is_alpha(in[n]) || is_digit(in[n]) || in[n] == '+' || in[n] == '-' || in[n] == '.')
        n++;
    if (strncmp(in + n, "://", 3) != 0)
        return RV_E_BAD_URL;

    bool file = n == 4 && strncasecmp(in, "file", 4) == 0;
    char first = in[n + 3];
    if (!file && (first == '\0' || first == '/' || first == '?' || first == '#'))
        return RV_E_BAD_URL; /* empty authority */
    *is_file = file;
    return RV_OK;
}

/* A copy (malloc'd, caller frees) of one part of h in *ret; *ret = NULL
 * when libcurl answers `absent`. */
static int part_dup(CURLU *h, CURLUPart what, unsigned flags, CURLUcode absent, char **ret) {
    char *s = NULL;
    CURLUcode rc = curl_url_get(h, what, &s, flags);
    if (rc == absent && absent != CURLUE_OK) {
        *ret = NULL;
        return RV_OK;
    }
    if (rc == CURLUE_OUT_OF_MEMORY)
        return RV_E_NOMEM;
    if (rc != CURLUE_OK)
        return RV_E_BAD_URL;
    char *copy = strdup(s);
    curl_free(s);
    if (!copy)
        return RV_E_NOMEM;
    *ret = copy;
    return RV_OK;
}

/* "0".."65535" (libcurl has range-checked it) to a number. */
static unsigned port_value(const char *s) {
    unsigned v = 0;
    for (; is_digit(*s); s++)
        v = v * 10 + (unsigned)(*s - '0');
    return v;
}

/* libcurl percent-decodes the host, so check what it decoded to: an IPv6
 * literal is "[" hex digits, ':' and '.' "]" (libcurl has checked the
 * address itself); a name is RFC 3986 unreserved and sub-delims only — no
 * '%', no non-ASCII bytes (IDN must arrive as punycode). */
static bool host_valid(const char *host) {
    size_t n = strlen(host);
    if (host[0] == '[') {
        if (n < 3 || host[n - 1] != ']')
            return false;
        for (size_t i = 1; i < n - 1; i++)
            if (!is_digit(host[i]) && !(host[i] >= 'a' && host[i] <= 'f') && host[i] != ':' &&
                host[i] != '.')
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(host[i]) && !is_digit(host[i]) && !strchr("-._~!$&'()*+,;=", host[i]))
            return false;
    return n > 0;
}

/* RFC 6874 allows escapes in a zone id; we take unreserved characters only,
 * which covers real interface names and keeps the zone id printable as is. */
static bool zone_valid(const char *zone) {
    if (!*zone)
        return false;
    for (; *zone; zone++)
        if (!is_alpha(*zone) && !is_digit(*zone) && !strchr("-._~", *zone))
            return false;
    return true;
}

/* "a.b.c.d", each part 0-255 in decimal without leading zeros: an IPv4
 * address already written the way libcurl would normalise it. */
static bool dotted_quad(const char *s) {
    for (int part = 0; part < 4; part++) {
        unsigned v = 0, digits = 0;
        for (; is_digit(*s); s++, digits++)
            v = v * 10 + (unsigned)(*s - '0');
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[-(int)digits] == '0'))
            return false;
        if (*s != (part < 3 ? '.' : '\0'))
            return false;
        s++;
    }
    return true;
}

/* libcurl rewrites an IPv4 address written in any of inet_aton's forms
 * ("0x7f.1", "2130706433") as a dotted quad, but only as written: a host
 * that becomes numeric by %-decoding ("0x7f%2e1") is left as decoded,
 * and would turn into the dotted quad only when parsed again. Ask libcurl
 * once more with the decoded host, so both spellings give one host (and
 * normalising is idempotent). *host is replaced on success. */
static int host_numeric(char **host) {
    CURLU *h = NULL;
    char *url = NULL, *out = NULL;
    int r = RV_OK;

    if (strspn(*host, "0123456789abcdefx.") != strlen(*host) || dotted_quad(*host))
        return RV_OK; /* not something inet_aton could read, or already canonical */
    h = curl_url();
    if (!h || asprintf(&url, "http://%s/", *host) < 0) {
        url = NULL;
        r = RV_E_NOMEM;
        goto out;
    }
    CURLUcode rc = curl_url_set(h, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OUT_OF_MEMORY) {
        r = RV_E_NOMEM;
        goto out;
    }
    if (rc != CURLUE_OK)
        goto out; /* keep the host as it is: it parsed once already */
    r = part_dup(h, CURLUPART_HOST, 0, CURLUE_OK, &out);
    if (r != RV_OK)
        goto out;
    free(*host);
    *host = out;
out:
    free(url);
    curl_url_cleanup(h);
    return r;
}

/* The host as it goes into normalised and host_key: lower case, IPv4 as a
 * dotted quad, an IPv6 zone id re-attached as "%25zone" inside the
 * brackets. */
static int host_build(CURLU *h, char **ret) {
    char *host = NULL, *zone = NULL, *out = NULL;
    int r = part_dup(h, CURLUPART_HOST, 0, CURLUE_NO_HOST, &host);
    if (r != RV_OK)
        goto out;
    if (!host) { /* http(s) and every other non-file scheme need one */
        r = RV_E_BAD_URL;
        goto out;
    }
    lower_ascii(host, strlen(host));
    if (!host_valid(host)) {
        r = RV_E_BAD_URL;
        goto out;
    }
    if (host[0] != '[' && (r = host_numeric(&host)) != RV_OK)
        goto out;
    r = part_dup(h, CURLUPART_ZONEID, 0, CURLUE_NO_ZONEID, &zone);
    if (r != RV_OK)
        goto out;
    if (zone && !zone_valid(zone)) {
        r = RV_E_BAD_URL;
        goto out;
    }
    if (!zone) {
        out = host;
        host = NULL;
    } else {
        size_t n = strlen(host);
        if (n < 2 || host[0] != '[' || host[n - 1] != ']') {
            r = RV_E_BAD_URL;
            goto out;
        }
        if (asprintf(&out, "%.*s%%25%s]", (int)(n - 1), host, zone) < 0) {
            out = NULL;
            r = RV_E_NOMEM;
            goto out;
        }
    }
    *ret = out;
    r = RV_OK;
out:
    free(host);
    free(zone);
    return r;
}

/* libcurl refuses a file:// path that starts with a DOS drive ("/C:/",
 * "/c|"), but only as written: dot-segment removal can make one
 * ("file:///a/../C:/x"). Refuse those too, so that a URL is refused or
 * accepted whatever its spelling and normalised is always a URL. */
static bool drive_prefix(const char *path) {
    return is_alpha(path[1]) && (path[2] == ':' || path[2] == '|') &&
           (path[3] == '/' || path[3] == '\\' || path[3] == '\0');
}

/* "user[:password]" as given (percent-encoding untouched), or NULL when
 * the URL has no '@'. An empty user stays "" ("http://@h/"). */
static int userinfo_build(CURLU *h, char **ret) {
    char *user = NULL, *password = NULL, *out = NULL;
    int r = part_dup(h, CURLUPART_USER, 0, CURLUE_NO_USER, &user);
    if (r == RV_OK)
        r = part_dup(h, CURLUPART_PASSWORD, 0, CURLUE_NO_PASSWORD, &password);
    if (r != RV_OK)
        goto out;
    if (user || password) {
        if (asprintf(&out, "%s%s%s", user ? user : "", password ? ":" : "",
                     password ? password : "") < 0) {
            out = NULL;
            r = RV_E_NOMEM;
            goto out;
        }
    }
    *ret = out;
out:
    free(user);
    free(password);
    return r;
}

int rv_url_parse(const char *in, rv_url **ret) {
    CURLU *h = NULL;
    rv_url *u = NULL;
    char *port_s = NULL, *explicit_port = NULL;
    char portbuf[16] = "";
    bool is_file = false;
    CURLUcode rc;
    int r;

    if (!in || !ret)
        return RV_E_INVALID_ARGUMENT;
    r = precheck(in, &is_file);
    if (r != RV_OK)
        goto out;

    h = curl_url();
    u = calloc(1, sizeof(*u));
    if (!h || !u) {
        r = RV_E_NOMEM;
        goto out;
    }
    rc = curl_url_set(h, CURLUPART_URL, in, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
        r = rc == CURLUE_OUT_OF_MEMORY ? RV_E_NOMEM : RV_E_BAD_URL;
        goto out;
    }

    r = part_dup(h, CURLUPART_SCHEME, 0, CURLUE_OK, &u->scheme);
    if (r != RV_OK)
        goto out;
    lower_ascii(u->scheme, strlen(u->scheme));

    if (is_file) {
        /* libcurl refuses file:// hosts other than "localhost" and strips
         * that one; anything still there is not a local file. */
        char *host = NULL;
        r = part_dup(h, CURLUPART_HOST, 0, CURLUE_NO_HOST, &host);
        bool has_host = host && *host;
        free(host);
        if (r != RV_OK || has_host) {
            r = r != RV_OK ? r : RV_E_BAD_URL;
            goto out;
        }
        u->host = strdup("");
        if (!u->host) {
            r = RV_E_NOMEM;
            goto out;
        }
        u->port = 0;
    } else {
        r = host_build(h, &u->host);
        if (r != RV_OK)
            goto out;
        r = part_dup(h, CURLUPART_PORT, CURLU_DEFAULT_PORT, CURLUE_NO_PORT, &port_s);
        if (r != RV_OK)
            goto out;
        /* Present only when given and not the scheme's default. */
        r = part_dup(h, CURLUPART_PORT, CURLU_NO_DEFAULT_PORT, CURLUE_NO_PORT, &explicit_port);
        if (r != RV_OK)
            goto out;
        u->port = port_s ? port_value(port_s) : 0;
        if (explicit_port && port_value(explicit_port) == 0) {
            r = RV_E_BAD_URL;
            goto out;
        }
        u->port_given = explicit_port != NULL;
        r = userinfo_build(h, &u->userinfo);
        if (r != RV_OK)
            goto out;
    }

    r = part_dup(h, CURLUPART_PATH, 0, CURLUE_OK, &u->path);
    if (r != RV_OK)
        goto out;
    r = part_dup(h, CURLUPART_QUERY, 0, CURLUE_NO_QUERY, &u->query);
    if (r != RV_OK)
        goto out;
    if (u->path[0] != '/' || !escapes_valid(u->path) || (u->query && !escapes_valid(u->query)) ||
        (is_file && drive_prefix(u->path))) {
        r = RV_E_BAD_URL;
        goto out;
    }

    if (explicit_port)
        snprintf(portbuf, sizeof(portbuf), ":%u", u->port);
    if (asprintf(&u->normalised, "%s://%s%s%s%s%s", u->scheme, u->host, portbuf, u->path,
                 u->query ? "?" : "", u->query ? u->query : "") < 0) {
        u->normalised = NULL;
        r = RV_E_NOMEM;
        goto out;
    }
    if (asprintf(&u->host_key, "%s://%s:%u", u->scheme, u->host, u->port) < 0) {
        u->host_key = NULL;
        r = RV_E_NOMEM;
        goto out;
    }

    *ret = u;
    u = NULL;
    r = RV_OK;
out:
    free(port_s);
    free(explicit_port);
    curl_url_cleanup(h);
    rv_url_free(u);
    return r;
}

rv_url *rv_url_free(rv_url *u) {
    if (!u)
        return NULL;
    free(u->scheme);
    free(u->host);
    free(u->path);
    free(u->query);
    free(u->normalised);
    free(u->host_key);
    free(u->userinfo);
    free(u);
    return NULL;
}

/* Percent-decode s[0..n) into a malloc'd, NUL-terminated *ret; *ret_len is
 * the decoded length (a decoded NUL makes it differ from strlen). */
static int pct_decode(const char *s, size_t n, char **ret, size_t *ret_len) {
    char *out = malloc(n + 1);
    size_t o = 0;
    int r = RV_E_NOMEM;
    if (!out)
        goto out;
    r = RV_E_BAD_URL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int a = i + 2 < n ? rv_hex_value(s[i + 1]) : -1;
        int b = i + 2 < n ? rv_hex_value(s[i + 2]) : -1;
        if (a < 0 || b < 0)
            goto out;
        out[o++] = (char)(a << 4 | b);
        i += 2;
    }
    out[o] = '\0';
    *ret = out;
    *ret_len = o;
    out = NULL;
    r = RV_OK;
out:
    free(out);
    return r;
}

int rv_url_filename(const rv_url *u, char **ret) {
    char *name = NULL;
    size_t len = 0;
    int r;

    if (!u || !u->path || !ret)
        return RV_E_INVALID_ARGUMENT;
    const char *seg = strrchr(u->path, '/');
    seg = seg ? seg + 1 : u->path;
    r = pct_decode(seg, strlen(seg), &name, &len);
    if (r != RV_OK)
        goto out;

    r = RV_E_BAD_URL;
    if (len == 0 || len > URL_FILENAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        goto out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c < 0x20 || c == 0x7f) /* '/', NUL and other controls */
            goto out;
    }
    *ret = name;
    name = NULL;
    r = RV_OK;
out:
    free(name);
    return r;
}

int rv_url_file_path(const rv_url *u, char **ret) {
    char *path = NULL;
    size_t len = 0;
    int r;

    if (!u || !u->path || !u->scheme || !ret)
        return RV_E_INVALID_ARGUMENT;
    if (strcmp(u->scheme, "file") != 0)
        return RV_E_BAD_URL;
    r = pct_decode(u->path, strlen(u->path), &path, &len);
    if (r != RV_OK)
        goto out;
    if (len != strlen(path) || path[0] != '/') {
        r = RV_E_BAD_URL;
        goto out;
    }
    *ret = path;
    path = NULL;
    r = RV_OK;
out:
    free(path);
    return r;
}

/* ---- the dedupe key: rv_url_normalize ---------------------------------- */

static bool is_unreserved(char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static char hex_upper(char c) {
    return c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
}

/* path (valid escapes, starts with '/', no dot segments: what rv_url_parse
 * leaves) with RFC 3986 6.2.2.1-2 applied: an escaped unreserved character
 * is decoded, every other escape gets upper-case hex. A segment that would
 * decode to "." or ".." keeps its escapes instead: decoding must not make a
 * dot segment the origin never saw (and a key that would parse to another
 * key). The result is never longer than path; *ret is malloc'd. */
static int path_canonical(const char *path, char **ret) {
    size_t n = strlen(path);
    char *out = malloc(n + 1);
    if (!out)
        return RV_E_NOMEM;
    size_t o = 0, seg_in = 0, seg_out = 0;
    bool seg_escaped = false;
    for (size_t i = 0;; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            size_t len = o - seg_out;
            if (seg_escaped && (len == 1 || len == 2) && out[seg_out] == '.' &&
                out[o - 1] == '.') {
                /* ".", ".." decoded: write the segment as given, hex upper */
                o = seg_out;
                for (size_t k = seg_in; k < i; k++)
                    out[o++] = hex_upper(path[k]);
            }
            if (path[i] == '\0')
                break;
            out[o++] = '/';
            seg_in = i + 1;
            seg_out = o;
            seg_escaped = false;
            continue;
        }
        if (path[i] == '%' && rv_hex_value(path[i + 1]) >= 0 && rv_hex_value(path[i + 2]) >= 0) {
            char c = (char)(rv_hex_value(path[i + 1]) << 4 | rv_hex_value(path[i + 2]));
            seg_escaped = true;
            if (is_unreserved(c)) {
                out[o++] = c;
            } else {
                out[o++] = '%';
                out[o++] = hex_upper(path[i + 1]);
                out[o++] = hex_upper(path[i + 2]);
            }
            i += 2;
            continue;
        }
        out[o++] = path[i];
    }
    out[o] = '\0';
    *ret = out;
    return RV_OK;
}

/* Whether key parses with path unchanged: RV_OK, RV_E_BAD_URL (it does
 * not), RV_E_NOMEM. */
static int key_stable(const char *key, const char *path) {
    rv_url *k = NULL;
    int r = rv_url_parse(key, &k);
    if (r == RV_OK && strcmp(k->path, path) != 0)
        r = RV_E_BAD_URL;
    rv_url_free(k);
    return r == RV_E_NOMEM ? r : r == RV_OK ? RV_OK : RV_E_BAD_URL;
}

/* rv_url_normalize (source.c) once the registry has accepted u, which
 * was parsed from url. */
int rv_url_key(const rv_url *u, const char *url, char **ret) {
    char *path = NULL, *out = NULL;
    char portbuf[16] = "";
    int r;

    r = path_canonical(u->path, &path);
    if (r != RV_OK)
        goto out;
    if (u->port_given)
        snprintf(portbuf, sizeof(portbuf), ":%u", u->port);
    for (int attempt = 0;; attempt++) {
        if (asprintf(&out, "%s://%s%s%s%s%s%s%s", u->scheme, u->userinfo ? u->userinfo : "",
                     u->userinfo ? "@" : "", u->host, portbuf, path, u->query ? "?" : "",
                     u->query ? u->query : "") < 0) {
            out = NULL;
            r = RV_E_NOMEM;
            goto out;
        }
        /* A key must give itself back. Decoding can spell something
         * libcurl reads specially ("file:///%43:/x" becomes a drive letter,
         * "file:///C:/x", which it refuses): then the path stays as
         * libcurl gave it, escapes and all. */
        if (attempt == 1)
            break;
        /* A key spelled exactly as the URL given parses as u did
         * (rv_url_parse depends on the string alone): it is stable iff
         * canonicalising left u's path as it was. The usual case, a URL
         * already in this form, so costs no second parse (a daemon's
         * request of 1000 sources checks 1000 URLs before it starts). */
        if (strcmp(out, url) == 0)
            r = strcmp(u->path, path) == 0 ? RV_OK : RV_E_BAD_URL;
        else
            r = key_stable(out, path);
        if (r == RV_OK)
            break;
        if (r != RV_E_BAD_URL)
            goto out;
        free(out);
        out = NULL;
        free(path);
        if (!(path = strdup(u->path))) {
            r = RV_E_NOMEM;
            goto out;
        }
    }
    *ret = out;
    out = NULL;
    r = RV_OK;
out:
    free(out);
    free(path);
    return r;
}

/* ---- what leaves the engine: rv_url_redact, rv_url_scrub ---------------- */

/* The one rule for what of a URL may be shown (in messages, logs, events,
 * the state database, the daemon's job store and its answers):
 *   - userinfo is always hidden ("***@");
 *   - in the query and the fragment, every parameter's value is hidden
 *     ("REDACTED"), and so is a parameter without '=' (a bare "?<token>"),
 *     except for the names below;
 *   - scheme, host, port and path are shown as given.
 * A name is allowed only if it is one of these, compared case-insensitively
 * after %-decoding. They are names whose values say how to serve or which
 * version of an object, never who may have it: the S3/GCS presigned URL's
 * non-secret parts, and common "download"/"version" switches. A secret
 * under any other name (sessionid, jwt, api-key, sig, ...) never needs
 * listing. Adding a name here must be justified as harmless in every
 * service that uses it (docs/security.md, "Secrets"). */
static const char *const shown_names[] = {
    "response-content-disposition", "response-content-type", "versionid", "partnumber",
    "x-amz-algorithm", "x-amz-date", "x-amz-expires", "x-amz-signedheaders",
    "alt", "generation", "download", "dl", "format", "v", "version",
};

/* Whether the raw parameter name s[0..n) is one whose value may be shown.
 * scratch has room for n + 1 bytes. */
static bool shown_name(const char *s, size_t n, char *scratch) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && rv_hex_value(s[i + 1]) >= 0 && rv_hex_value(s[i + 2]) >= 0) {
            c = (char)(rv_hex_value(s[i + 1]) << 4 | rv_hex_value(s[i + 2]));
            i += 2;
        }
        if (c == '\0')
            return false; /* "v%00x" is not "v" */
        scratch[o++] = c;
    }
    scratch[o] = '\0';
    for (size_t i = 0; i < sizeof(shown_names) / sizeof(shown_names[0]); i++)
        if (strcasecmp(scratch, shown_names[i]) == 0)
            return true;
    return false;
}

/* Where the authority starts: after "scheme://" when the string begins with
 * anything but ":/?#@" followed by "://" (an empty scheme too), after a
 * leading "//", else at 0 (a string like "user:pw@host/x" is still redacted). */
static size_t authority_start(const char *s) {
    size_t n = strcspn(s, ":/?#@");
    if (strncmp(s + n, "://", 3) == 0) /* an empty scheme too: "://u:p@h" */
        return n + 3;
    if (strncmp(s, "//", 2) == 0)
        return 2;
    return 0;
}

/* The pieces of a URL string as the rule sees them, in order, covering it
 * all: PIECE_SHOWN as given, PIECE_USERINFO (up to and with the '@') and
 * PIECE_VALUE hidden. */
enum piece_kind { PIECE_SHOWN, PIECE_USERINFO, PIECE_VALUE };
typedef void piece_fn(void *ud, enum piece_kind kind, const char *s, size_t n);

/* Split url into pieces for fn. scratch has room for strlen(url) + 1. */
static void url_pieces(const char *url, char *scratch, piece_fn *fn, void *ud) {
    size_t len = strlen(url), i = authority_start(url);
    if (i)
        fn(ud, PIECE_SHOWN, url, i);
    /* The authority runs to the first '/', '?' or '#'; userinfo is all of
     * it up to its last '@' (the last: "u:p@ss@h" hides "u:p@ss"). */
    size_t auth_end = i + strcspn(url + i, "/?#");
    const char *at = NULL;
    for (size_t k = i; k < auth_end; k++)
        if (url[k] == '@')
            at = url + k;
    if (at) {
        fn(ud, PIECE_USERINFO, url + i, (size_t)(at - url) + 1 - i);
        i = (size_t)(at - url) + 1;
    }
    /* The path as it is, up to the query or the fragment. */
    size_t path_end = auth_end + strcspn(url + auth_end, "?#");
    if (path_end > i)
        fn(ud, PIECE_SHOWN, url + i, path_end - i);
    i = path_end;

    /* Query and fragment (OAuth puts tokens there too): parameters start
     * after '&', ';', '?' or '#'; a name runs to '=' or the next of these.
     * A hidden value runs to the next '&', ';' or '#', so a '?' inside it
     * cannot end the redaction early. */
    while (i < len) {
        fn(ud, PIECE_SHOWN, url + i, 1); /* the separator */
        i++;
        size_t name_len = strcspn(url + i, "=&;?#");
        bool shown = shown_name(url + i, name_len, scratch);
        if (url[i + name_len] != '=') {
            /* No value: the name alone may be the secret ("?<token>"). */
            if (name_len)
                fn(ud, shown ? PIECE_SHOWN : PIECE_VALUE, url + i, name_len);
            i += name_len;
            continue;
        }
        fn(ud, PIECE_SHOWN, url + i, name_len + 1); /* "name=" */
        i += name_len + 1;
        /* An allowed value also ends at '?': "v=1?token=x" shows "v=1" and
         * hides what some parser might take for a token. */
        size_t value_len = strcspn(url + i, shown ? "&;?#" : "&;#");
        fn(ud, shown ? PIECE_SHOWN : PIECE_VALUE, url + i, value_len);
        i += value_len;
    }
}

static const char redacted[] = "REDACTED";
static const char userinfo_mark[] = "***@";

struct redact_out {
    char *out;
    size_t o;
};

static void redact_piece(void *ud, enum piece_kind kind, const char *s, size_t n) {
    struct redact_out *r = ud;
    if (kind == PIECE_USERINFO) {
        s = userinfo_mark;
        n = sizeof(userinfo_mark) - 1;
    } else if (kind == PIECE_VALUE) {
        s = redacted;
        n = sizeof(redacted) - 1;
    }
    memcpy(r->out + r->o, s, n);
    r->o += n;
}

int rv_url_redact(const char *url, char **ret) {
    struct redact_out r = {0};
    char *scratch = NULL;
    int err = RV_E_NOMEM;

    if (!url || !ret)
        return RV_E_INVALID_ARGUMENT;
    size_t len = strlen(url), n_params = 1;
    for (const char *p = url; (p = strpbrk(p, "&;?#=")); p++)
        n_params++;
    /* Each hidden value (at most one per separator, and one more) may grow
     * to a whole "REDACTED"; the userinfo mark by 3. */
    if (n_params > (SIZE_MAX - len - sizeof(userinfo_mark)) / (sizeof(redacted) - 1))
        goto out;
    r.out = malloc(len + sizeof(userinfo_mark) + n_params * (sizeof(redacted) - 1));
    scratch = malloc(len + 1);
    if (!r.out || !scratch)
        goto out;
    url_pieces(url, scratch, redact_piece, &r);
    r.out[r.o] = '\0';
    *ret = r.out;
    r.out = NULL;
    err = RV_OK;
out:
    free(r.out);
    free(scratch);
    return err;
}

/* Free text (libcurl's error buffer, any message about an object) may hold
 * a URL or a piece of one in a form rv_url_redact never saw. rv_url_scrub
 * hides both: every token that looks like a URL goes through rv_url_redact,
 * and every hidden piece of the object's own URLs (userinfo, its user and
 * password, hidden values; as given and %-decoded) is replaced wherever it
 * appears. Pieces shorter than SCRUB_MIN bytes are left alone: replacing
 * every "1" in a sentence would hide the sentence, and a secret that short
 * is guessed, not leaked. */
#define SCRUB_MIN 4

struct secrets {
    char **v;
    size_t n, cap;
    bool failed;
};

static void secret_add(struct secrets *s, const char *p, size_t n) {
    if (s->failed || n < SCRUB_MIN)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v) {
            s->failed = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strndup(p, n))) {
        s->failed = true;
        return;
    }
    s->n++;
}

/* Add p[0..n) as given and, if it differs, %-decoded ('+' as well as a
 * space: query values are often form-encoded). */
static void secret_add_forms(struct secrets *s, const char *p, size_t n) {
    secret_add(s, p, n);
    char *d = malloc(n + 1);
    if (!d) {
        s->failed = true;
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n && rv_hex_value(p[i + 1]) >= 0 &&
            rv_hex_value(p[i + 2]) >= 0) {
            d[o++] = (char)(rv_hex_value(p[i + 1]) << 4 | rv_hex_value(p[i + 2]));
            i += 2;
        } else {
            d[o++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    if (o != n || memcmp(d, p, n) != 0)
        secret_add(s, d, strnlen(d, o));
    free(d);
}

static void secret_piece(void *ud, enum piece_kind kind, const char *p, size_t n) {
    struct secrets *s = ud;
    if (kind == PIECE_VALUE) {
        secret_add_forms(s, p, n);
    } else if (kind == PIECE_USERINFO) {
        n--; /* the '@' */
        secret_add_forms(s, p, n);
        const char *colon = memchr(p, ':', n);
        if (colon) {
            secret_add_forms(s, p, (size_t)(colon - p));
            secret_add_forms(s, colon + 1, n - (size_t)(colon - p) - 1);
        }
    }
}

/* Longest first, so a secret that contains another is hidden whole. */
static int by_length_desc(const void *a, const void *b) {
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Characters that end a URL-looking token in a sentence. */
static bool token_end(char c) {
    return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\'' ||
           c == '"' || c == '<' || c == '>' || c == '`';
}

int rv_url_scrub(const char *text, const char *const *urls, size_t n_urls, char **ret) {
    struct secrets sec = {0};
    char *scratch = NULL, *step = NULL, *out = NULL;
    FILE *f = NULL;
    size_t flen = 0;
    int r = RV_E_NOMEM;

    if (!text || !ret || (n_urls && !urls))
        return RV_E_INVALID_ARGUMENT;
    for (size_t k = 0; k < n_urls; k++) {
        if (!urls[k])
            continue;
        free(scratch);
        if (!(scratch = malloc(strlen(urls[k]) + 1)))
            goto out;
        url_pieces(urls[k], scratch, secret_piece, &sec);
    }
    if (sec.failed)
        goto out;
    if (sec.n)
        qsort(sec.v, sec.n, sizeof(*sec.v), by_length_desc);

    /* 1: every token with "://" in it, redacted as a URL */
    if (!(f = open_memstream(&step, &flen)))
        goto out;
    for (const char *p = text; *p;) {
        size_t n = 0;
        while (!token_end(p[n]))
            n++;
        if (n == 0) {
            fputc(*p++, f);
            continue;
        }
        char *tok = strndup(p, n), *red = NULL;
        if (!tok)
            goto out;
        if (strstr(tok, "://") && rv_url_redact(tok, &red) != RV_OK) {
            free(tok);
            goto out;
        }
        fputs(red ? red : tok, f);
        free(red);
        free(tok);
        p += n;
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;

    /* 2: every hidden piece of the object's own URLs, wherever it is */
    if (!(f = open_memstream(&out, &flen)))
        goto out;
    for (const char *p = step; *p;) {
        size_t hit = 0;
        for (size_t k = 0; k < sec.n && !hit; k++)
            if (strncmp(p, sec.v[k], strlen(sec.v[k])) == 0)
                hit = strlen(sec.v[k]);
        if (hit) {
            fputs(redacted, f);
            p += hit;
        } else {
            fputc(*p++, f);
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    *ret = out;
    out = NULL;
    r = RV_OK;
out:
    if (f)
        fclose(f);
    free(out);
    free(step);
    free(scratch);
    for (size_t k = 0; k < sec.n; k++)
        free(sec.v[k]);
    free(sec.v);
    return r;
}
