/* test_secrets.c — the parsers of secrets.c: header lines (curl's -H @FILE
 * format), netrc, a URL's host, the basic-auth line; and the resolution
 * into rvc_download_opts (env, @FILE, netrc per URL, precedence). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "retriever/rv_error.h"
#include "secrets.h"

static void test_header_lines(void) {
    rvc_strv v = {NULL, 0};
    char *err = NULL;
    const char text[] = "A: 1\r\n\r\n\nB:two words \n  \nC: 3";
    /* "  " is not empty: a line of blanks is not a header. */
    CHECK_INT_EQ(rvc_header_lines_parse(text, sizeof(text) - 1, "src", &v, &err),
                 RV_E_INVALID_ARGUMENT);
    CHECK_STR_HAS(err, "src, line 5: not a header line");
    CHECK_INT_EQ(v.n, 0); /* all or nothing */
    free(err);
    err = NULL;

    const char ok[] = "A: 1\r\n\r\n\nB:two words \nC: 3";
    CHECK_INT_EQ(rvc_header_lines_parse(ok, sizeof(ok) - 1, "src", &v, &err), RV_OK);
    CHECK_INT_EQ(v.n, 3);
    if (v.n == 3) {
        CHECK_STR_EQ(v.v[0], "A: 1");
        CHECK_STR_EQ(v.v[1], "B:two words ");
        CHECK_STR_EQ(v.v[2], "C: 3");
    }
    /* Empty input: nothing, fine. */
    CHECK_INT_EQ(rvc_header_lines_parse("", 0, "src", &v, &err), RV_OK);
    CHECK_INT_EQ(v.n, 3);
    rvc_strv_done(&v);

    static const char *const bad[] = {"# comment: x\n", "no colon\n", "Host: h\n",
                                      ": empty name\n", "Sp ace: x\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT_EQ(rvc_header_lines_parse(bad[i], strlen(bad[i]), "f", &v, &err),
                     RV_E_INVALID_ARGUMENT);
        CHECK_STR_HAS(err, "f, line 1: not a header line");
        CHECK(err && !strstr(err, bad[i] + 2)); /* the line is not quoted */
        free(err);
        err = NULL;
    }
    /* A NUL inside a line. */
    const char nul[] = "X-A: a\0b\n";
    CHECK_INT_EQ(rvc_header_lines_parse(nul, sizeof(nul) - 1, "f", &v, &err),
                 RV_E_INVALID_ARGUMENT);
    free(err);
    err = NULL;
    /* Too long. */
    char *big = malloc(RVC_MAX_HEADER_LEN + 10);
    memset(big, 'a', RVC_MAX_HEADER_LEN + 9);
    memcpy(big, "X-Big: ", 7);
    big[RVC_MAX_HEADER_LEN + 9] = '\0';
    CHECK_INT_EQ(rvc_header_lines_parse(big, strlen(big), "f", &v, &err), RV_E_INVALID_ARGUMENT);
    CHECK_STR_HAS(err, "f, line 1: header longer than 8192 bytes");
    free(err);
    free(big);
    CHECK_INT_EQ(v.n, 0);
}

static rvc_netrc *netrc(const char *text, char **err) {
    rvc_netrc *n = NULL;
    *err = NULL;
    if (rvc_netrc_parse(text, strlen(text), "N", &n, err) != RV_OK)
        return NULL;
    return n;
}

static void test_netrc(void) {
    char *err;
    const char *l, *p;
    rvc_netrc *n = netrc("machine a.example login al password \"p w\\\"\\\\\\t\"\n"
                         "default login d password dp\n"
                         "machine B.example\nlogin bl\npassword bp account acc\n"
                         "macdef init\ncd /\nmachine a.example login x password y\n\n"
                         "machine nopw login only\n",
                         &err);
    CHECK(n != NULL);
    CHECK(err == NULL);
    if (n) {
        CHECK(rvc_netrc_lookup(n, "a.example", &l, &p));
        CHECK_STR_EQ(l, "al");
        CHECK_STR_EQ(p, "p w\"\\\t");
        CHECK(rvc_netrc_lookup(n, "b.EXAMPLE", &l, &p)); /* ignoring case */
        CHECK_STR_EQ(l, "bl");
        CHECK_STR_EQ(p, "bp");
        CHECK(rvc_netrc_lookup(n, "other", &l, &p)); /* default, though before */
        CHECK_STR_EQ(l, "d");
        CHECK(!rvc_netrc_lookup(n, "nopw", &l, &p)); /* no password: none */
        rvc_netrc_free(n);
    }
    n = netrc("machine a login u password p\n", &err);
    CHECK(n && !rvc_netrc_lookup(n, "b", &l, &p)); /* no default: none */
    rvc_netrc_free(n);
    n = netrc("", &err);
    CHECK(n && !rvc_netrc_lookup(n, "b", &l, &p));
    rvc_netrc_free(n);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"machine a login \"sek", "N, line 1: a quoted word has no closing"},
        {"machine a\n login \"sek\nret\"", "N, line 2: a quoted word has no closing"},
        {"machine a\n\n  sekrit", "N, line 3: a word where a keyword"},
        {"login u", "N, line 1: 'login' before any 'machine'"},
        {"machine a password", "N, line 1: 'password' needs a value"},
        {"machine", "N, line 1: 'machine' needs a value"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = netrc(bad[i].text, &err);
        CHECK(n == NULL);
        CHECK_STR_HAS(err, bad[i].want);
        CHECK(err && !strstr(err, "sek"));
        free(err);
    }
}

static void test_url_host_and_basic(void) {
    static const struct {
        const char *url, *host;
        int userinfo;
    } ok[] = {
        {"http://Example.ORG/a", "example.org", 0},
        {"https://u:p@h.example:8443/x?y", "h.example", 1},
        {"http://[::1]:80/", "::1", 0},
        {"HTTP://h", "h", 0},
        {"http://a@b@h/p@q", "h", 1},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *h = NULL;
        bool ui = false;
        CHECK_INT_EQ(rvc_url_host(ok[i].url, &h, &ui), RV_OK);
        CHECK_STR_EQ(h, ok[i].host);
        CHECK_INT_EQ(ui, ok[i].userinfo);
        free(h);
    }
    char *h = NULL;
    bool ui;
    CHECK_INT_EQ(rvc_url_host("file:///etc/passwd", &h, &ui), RV_E_INVALID_ARGUMENT);
    CHECK_INT_EQ(rvc_url_host("http:///x", &h, &ui), RV_E_INVALID_ARGUMENT);

    char *line = NULL;
    CHECK_INT_EQ(rvc_basic_auth_line("Aladdin", "open sesame", &line), RV_OK);
    CHECK_STR_EQ(line, "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    free(line);
    CHECK_INT_EQ(rvc_basic_auth_line("", "", &line), RV_OK);
    CHECK_STR_EQ(line, "Authorization: Basic Og==");
    free(line);
    CHECK_INT_EQ(rvc_basic_auth_line("ab", "c", &line), RV_OK);
    CHECK_STR_EQ(line, "Authorization: Basic YWI6Yw==");
    free(line);
}

/* rvc_secrets_resolve on a parsed command line. */
static void test_resolve(void) {
    char dir[] = "/tmp/rvc-secrets-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char hfile[256], nfile[256];
    snprintf(hfile, sizeof(hfile), "%s/h", dir);
    snprintf(nfile, sizeof(nfile), "%s/n", dir);
    FILE *f = fopen(hfile, "w");
    fputs("X-File: f\n", f);
    fclose(f);
    f = fopen(nfile, "w");
    fputs("machine h1 login u1 password p1\n", f);
    fclose(f);
    chmod(nfile, 0600);

    char at_h[300];
    snprintf(at_h, sizeof(at_h), "@%s", hfile);
    char *argv[] = {"retrieverctl", "download", "--local", "--header", "X-Arg: a",
                    "--header", at_h, "--netrc-file", nfile, "-d", dir,
                    "http://h1/a", "http://h2/b", "http://x:y@h1/c", "file:///d/e", NULL};
    rvc_cmd cmd;
    char *err = NULL;
    CHECK_INT_EQ(rvc_cli_parse(15, argv, &cmd, &err), RV_OK);
    CHECK_INT_EQ(rvc_secrets_resolve(&cmd.dl, "X-Env: e", NULL, stdin, NULL, &err), RV_OK);
    CHECK_INT_EQ(cmd.dl.n_headers, 3);
    if (cmd.dl.n_headers == 3) {
        CHECK_STR_EQ(cmd.dl.headers[0], "X-Env: e");
        CHECK_STR_EQ(cmd.dl.headers[1], "X-Arg: a");
        CHECK_STR_EQ(cmd.dl.headers[2], "X-File: f");
    }
    CHECK_INT_EQ(cmd.dl.n_urls, 4);
    CHECK(cmd.dl.auth != NULL);
    if (cmd.dl.auth && cmd.dl.n_urls == 4) {
        CHECK_STR_EQ(cmd.dl.auth[0], "Authorization: Basic dTE6cDE=");
        CHECK(cmd.dl.auth[1] == NULL); /* no entry for h2, no default */
        CHECK(cmd.dl.auth[2] == NULL); /* the URL's own userinfo wins */
        CHECK(cmd.dl.auth[3] == NULL); /* not http */
    }
    rvc_cmd_done(&cmd);

    /* An Authorization header given otherwise: no netrc line at all. */
    char *argv2[] = {"retrieverctl", "download", "--local", "--netrc-file", nfile,
                     "http://h1/a", NULL};
    CHECK_INT_EQ(rvc_cli_parse(6, argv2, &cmd, &err), RV_OK);
    CHECK_INT_EQ(rvc_secrets_resolve(&cmd.dl, "authorization: Bearer t", NULL, stdin, NULL, &err),
                 RV_OK);
    CHECK(cmd.dl.auth == NULL);
    rvc_cmd_done(&cmd);

    /* --netrc without a home. */
    char *argv3[] = {"retrieverctl", "download", "--local", "--netrc", "http://h1/a", NULL};
    CHECK_INT_EQ(rvc_cli_parse(5, argv3, &cmd, &err), RV_OK);
    CHECK_INT_EQ(rvc_secrets_resolve(&cmd.dl, NULL, NULL, stdin, NULL, &err),
                 RV_E_INVALID_ARGUMENT);
    CHECK_STR_HAS(err, "HOME is not set");
    free(err);
    rvc_cmd_done(&cmd);

    unlink(hfile);
    unlink(nfile);
    rmdir(dir);
}

int main(void) {
    test_header_lines();
    test_netrc();
    test_url_host_and_basic();
    test_resolve();
    return CHECK_RESULT();
}
