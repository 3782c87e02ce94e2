/* secrets.h — header lines and credentials that never appear on the
 * command line, where every local user could read them in
 * /proc/PID/cmdline for as long as the download runs:
 *
 *   --header @FILE, --header @-   header lines read from FILE or stdin
 *                                 (curl's syntax: one header per line)
 *   $RETRIEVER_HEADERS            header lines from the environment
 *                                 (/proc/PID/environ is readable only by
 *                                 the process's owner)
 *   --netrc, --netrc-file FILE    HTTP basic auth per host from a netrc
 *
 * cli.c stays pure (no I/O): it records "@FILE" values and the netrc
 * options as given; rvc_secrets_resolve does the reading once the command
 * line is known to be valid, before anything is downloaded. The parsers
 * are exposed for the unit tests.
 *
 * No message ever quotes a line or a word read from these sources: any of
 * them may be a secret. Messages name the source and the line number. */
#ifndef RVC_SECRETS_H
#define RVC_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

/* The environment variable holding header lines (the @FILE format). */
#define RVC_HEADERS_ENV "RETRIEVER_HEADERS"
/* The most read from one @FILE, @- or netrc: far above any sane use,
 * a bound on memory for a mistaken @/dev/zero. */
#define RVC_SECRETS_MAX_FILE (1u << 20)

/* A growing list of owned strings. */
typedef struct rvc_strv {
    char **v;
    size_t n;
} rvc_strv;

/* Free every string (wiped first: they may be secrets) and the array. */
void rvc_strv_done(rvc_strv *s);

/* Parse header lines: text[0..len) (may hold NULs, which make a line
 * malformed). Lines end at LF; a CR before the LF is dropped; lines that are
 * empty (or only a CR) are skipped; every other line must be one header
 * that rv_header_allowed accepts and at most RVC_MAX_HEADER_LEN bytes.
 * This is what curl does with -H @FILE, except that curl sends a malformed
 * line as it is and we refuse it (there is no comment syntax in curl's
 * format: a line starting with '#' is refused as malformed too).
 * `source` names the text in messages ("header file 'h.txt'").
 * RV_OK: the lines are appended to *out (owned copies). RV_E_INVALID_ARGUMENT:
 * *ret_error is a malloc'd message naming source and line; *out is as it
 * was. RV_E_NOMEM. */
int rvc_header_lines_parse(const char *text, size_t len, const char *source, rvc_strv *out,
                           char **ret_error);

/* A parsed netrc. */
typedef struct rvc_netrc rvc_netrc;

/* Parse a netrc (the format of ftp(1) and curl): words separated by
 * blanks and newlines; "machine NAME", "default", "login NAME",
 * "password PASS", "account WORD" (ignored), "macdef NAME" (the macro's body,
 * up to an empty line, is skipped); a word may be quoted "like this" with
 * \" \\ \n \r \t escapes inside (as curl reads them). "login", "password"
 * and "account" belong to the closest machine or default before them.
 * Errors (RV_E_INVALID_ARGUMENT, *ret_error a malloc'd message with the line
 * number, never the word): an unknown keyword, a keyword without its value,
 * "login"/"password" before any machine or default, an unterminated quote.
 * *ret is owned by the caller (rvc_netrc_free). */
int rvc_netrc_parse(const char *text, size_t len, const char *source, rvc_netrc **ret,
                    char **ret_error);

/* The login and password for host: the first "machine" entry whose name
 * equals host ignoring case, else the "default" entry; false when neither
 * exists or the entry has no password. Pointers into n. */
bool rvc_netrc_lookup(const rvc_netrc *n, const char *host, const char **ret_login,
                      const char **ret_password);

/* Wipe the passwords and free. NULL is fine. */
void rvc_netrc_free(rvc_netrc *n);

/* The host of an http or https URL (lower-cased, IPv6 literals without
 * brackets) into *ret_host (malloc'd), and whether the URL carries userinfo.
 * RV_E_INVALID_ARGUMENT for other schemes or URLs without a host. */
int rvc_url_host(const char *url, char **ret_host, bool *ret_userinfo);

/* "Authorization: Basic " + base64(login ":" password), malloc'd. */
int rvc_basic_auth_line(const char *login, const char *password, char **ret);

/* Resolve d's secrets, in place, after rvc_cli_parse succeeded:
 *   - d->headers becomes: the lines of env_headers (the value of
 *     $RETRIEVER_HEADERS; NULL or "" for none), then every --header in
 *     command-line order, an @FILE or @- one replaced by its lines (stdin is
 *     `in`, read once: a second @- is an error);
 *   - with d->netrc, d->auth gets, for each http(s) URL without userinfo
 *     and without an Authorization header among d->headers, the basic-auth
 *     line of its host's netrc entry (NULL where there is none). The netrc
 *     is d->netrc_file, else home + "/.netrc" (home NULL or "": an error);
 *     missing or unreadable is an error. One readable or writable by others
 *     gets a warning on `warn` (unless NULL): its passwords are not secret.
 * Everything read is owned by d (d->owned), freed by rvc_cmd_done.
 * RV_E_INVALID_ARGUMENT: *ret_error is a malloc'd message in cli.c's format
 * (what is wrong, then the --help hint); nothing may be downloaded. */
int rvc_secrets_resolve(rvc_download_opts *d, const char *env_headers, const char *home, FILE *in,
                        FILE *warn, char **ret_error);

#endif
