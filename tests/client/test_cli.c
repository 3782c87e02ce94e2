/* test_cli.c — argument parsing: every usage error, values, defaults. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "retriever/rv_error.h"

#define MAX_ARGS 64

/* Parse "retrieverctl" + the NULL-terminated arguments. On a usage error
 * *err gets the message (caller frees). */
static int parse(rvc_cmd *cmd, char **err, ...) {
    static char *argv[MAX_ARGS];
    int argc = 0;
    va_list ap;
    argv[argc++] = "retrieverctl";
    va_start(ap, err);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    *err = NULL;
    return rvc_cli_parse(argc, argv, cmd, err);
}

/* Expect a usage error whose message contains `want`, and the --help hint. */
#define EXPECT_USAGE(want, ...)                                          \
    do {                                                                 \
        rvc_cmd c_;                                                      \
        memset(&c_, 0x5a, sizeof(c_));                                   \
        char *e_;                                                        \
        CHECK_INT_EQ(parse(&c_, &e_, __VA_ARGS__, NULL), RV_E_INVALID_ARGUMENT); \
        CHECK_STR_HAS(e_, want);                                         \
        CHECK_STR_HAS(e_, "\nTry 'retrieverctl");                        \
        CHECK(((unsigned char *)&c_)[0] == 0x5a); /* *ret untouched */   \
        free(e_);                                                        \
    } while (0)

/* Expect success; the result is left in `c` (release with rvc_cmd_done). */
#define EXPECT_OK(c, ...)                                                \
    do {                                                                 \
        char *e_;                                                        \
        int r_ = parse(&(c), &e_, __VA_ARGS__, NULL);                    \
        CHECK_INT_EQ(r_, RV_OK);                                         \
        if (r_ != RV_OK) {                                               \
            fprintf(stderr, "  error: %s\n", e_ ? e_ : "(none)");        \
            free(e_);                                                    \
            memset(&(c), 0, sizeof(c));                                  \
        }                                                                \
    } while (0)

static void test_top_level(void) {
    rvc_cmd c;
    char *e;

    CHECK_INT_EQ(parse(&c, &e, NULL), RV_E_INVALID_ARGUMENT);
    CHECK_STR_HAS(e, "no command given");
    CHECK_STR_HAS(e, "Try 'retrieverctl --help'");
    free(e);

    EXPECT_OK(c, "--help");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    CHECK(c.help_topic == NULL);
    rvc_cmd_done(&c);

    EXPECT_OK(c, "-h");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    rvc_cmd_done(&c);

    EXPECT_OK(c, "--version");
    CHECK_INT_EQ(c.verb, RVC_VERB_VERSION);
    rvc_cmd_done(&c);

    EXPECT_OK(c, "-V");
    CHECK_INT_EQ(c.verb, RVC_VERB_VERSION);
    rvc_cmd_done(&c);

    EXPECT_OK(c, "help");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    CHECK(c.help_topic == NULL);
    rvc_cmd_done(&c);

    EXPECT_OK(c, "help", "download");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    CHECK_STR_EQ(c.help_topic, "download");
    rvc_cmd_done(&c);

    EXPECT_USAGE("no help for 'nope'", "help", "nope");
    EXPECT_USAGE("unknown command 'fetch'", "fetch", "http://x/y");
    EXPECT_USAGE("unknown command 'downlaod'; did you mean 'download'?", "downlaod", "u");
    EXPECT_USAGE("unknown command 'pnig'; did you mean 'ping'?", "pnig");
    EXPECT_USAGE("no help for 'donwload': there is no such command; did you mean 'download'?",
                 "help", "donwload");
    EXPECT_USAGE("unknown option '--bogus'", "--bogus", "download");
}

static void test_download_defaults(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "http://h/a");
    CHECK_INT_EQ(c.verb, RVC_VERB_DOWNLOAD);
    CHECK(c.dl.local);
    CHECK_INT_EQ(c.dl.n_urls, 1);
    CHECK_STR_EQ(c.dl.urls[0], "http://h/a");
    CHECK_INT_EQ(c.dl.connections, 0);
    CHECK_INT_EQ(c.dl.chunk_size, 0);
    CHECK_INT_EQ(c.dl.retries, -1);
    CHECK_INT_EQ(c.dl.connect_timeout_ms, 0);
    CHECK_INT_EQ(c.dl.stall_timeout_ms, 0);
    CHECK(c.dl.output == NULL && c.dl.dir == NULL);
    CHECK_STR_EQ(c.dl.sha256, "");
    CHECK(!c.dl.json && !c.dl.quiet && !c.dl.no_progress);
    CHECK_INT_EQ(c.dl.n_headers, 0);
    rvc_cmd_done(&c);

    /* Without --local: the daemon mode. */
    EXPECT_OK(c, "download", "http://h/a");
    CHECK_INT_EQ(c.verb, RVC_VERB_DOWNLOAD);
    CHECK(!c.dl.local);
    CHECK(!c.dl.detach);
    CHECK(c.socket == NULL);
    rvc_cmd_done(&c);

    /* Options after URLs, several URLs in order. */
    EXPECT_OK(c, "download", "http://h/a", "http://h/b", "--local", "-d", "out", "http://h/c");
    CHECK(c.dl.local);
    CHECK_STR_EQ(c.dl.dir, "out");
    CHECK_INT_EQ(c.dl.n_urls, 3);
    CHECK_STR_EQ(c.dl.urls[0], "http://h/a");
    CHECK_STR_EQ(c.dl.urls[1], "http://h/b");
    CHECK_STR_EQ(c.dl.urls[2], "http://h/c");
    rvc_cmd_done(&c);

    /* "--" ends the options. */
    EXPECT_OK(c, "download", "--local", "--", "-odd", "--json");
    CHECK_INT_EQ(c.dl.n_urls, 2);
    CHECK_STR_EQ(c.dl.urls[0], "-odd");
    CHECK_STR_EQ(c.dl.urls[1], "--json");
    CHECK(!c.dl.json);
    rvc_cmd_done(&c);
}

static void test_connections(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "-c", "4", "u");
    CHECK_INT_EQ(c.dl.connections, 4);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "-c16", "u");
    CHECK_INT_EQ(c.dl.connections, 16);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--connections=1", "u");
    CHECK_INT_EQ(c.dl.connections, 1);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--connections", "64", "u");
    CHECK_INT_EQ(c.dl.connections, 64);
    rvc_cmd_done(&c);

    EXPECT_USAGE("option '-c' needs a whole number from 1 to 64, not '0'", "download", "-c", "0",
                 "u");
    EXPECT_USAGE("from 1 to 64, not '65'", "download", "-c", "65", "u");
    EXPECT_USAGE("from 1 to 64, not '-1'", "download", "--connections", "-1", "u");
    EXPECT_USAGE("from 1 to 64, not '4x'", "download", "--connections=4x", "u");
    EXPECT_USAGE("from 1 to 64, not ''", "download", "--connections=", "u");
    EXPECT_USAGE("from 1 to 64, not '99999999999999999999'", "download", "-c",
                 "99999999999999999999", "u");
    EXPECT_USAGE("option '-c' needs a value (N)", "download", "u", "-c");
}

static void test_sizes(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "--chunk-size", "4M", "u");
    CHECK_INT_EQ(c.dl.chunk_size, 4ull << 20);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--chunk-size=512K", "u");
    CHECK_INT_EQ(c.dl.chunk_size, 512ull << 10);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--chunk-size", "1G", "u");
    CHECK_INT_EQ(c.dl.chunk_size, 1ull << 30);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--chunk-size", "65536", "u"); /* the minimum */
    CHECK_INT_EQ(c.dl.chunk_size, 65536);
    rvc_cmd_done(&c);

    EXPECT_USAGE("option '--chunk-size' needs a size of at least 64K", "download", "--chunk-size",
                 "0", "u");
    EXPECT_USAGE("not '65535'", "download", "--chunk-size", "65535", "u");
    EXPECT_USAGE("not '1K'", "download", "--chunk-size", "1K", "u");
    EXPECT_USAGE("not 'abc'", "download", "--chunk-size", "abc", "u");
    EXPECT_USAGE("not '4X'", "download", "--chunk-size", "4X", "u");
    EXPECT_USAGE("not ''", "download", "--chunk-size=", "u");
    EXPECT_USAGE("not '-4M'", "download", "--chunk-size", "-4M", "u");
}

static void test_destinations(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "-o", "file.bin", "u");
    CHECK_STR_EQ(c.dl.output, "file.bin");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--output=f", "u");
    CHECK_STR_EQ(c.dl.output, "f");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "-ofile", "u");
    CHECK_STR_EQ(c.dl.output, "file");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--dir", "/tmp", "u", "v");
    CHECK_STR_EQ(c.dl.dir, "/tmp");
    rvc_cmd_done(&c);

    EXPECT_USAGE("'-o/--output' names one file, but 2 URLs were given", "download", "--local",
                 "-o", "f", "u", "v");
    EXPECT_USAGE("'-o/--output' and '-d/--dir' cannot be used together", "download", "-o", "f",
                 "-d", "d", "u");
    EXPECT_USAGE("option '-o' given more than once", "download", "-o", "f", "-o", "g", "u");
    EXPECT_USAGE("option '--output' needs a file name", "download", "--output=", "u");
    EXPECT_USAGE("option '-d' needs a directory", "download", "-d", "", "u");
    EXPECT_USAGE("option '-o' needs a value (FILE)", "download", "u", "-o");
    /* -o - is cat: one URL, bytes to stdout. */
    EXPECT_USAGE("'download -o -' does not take '--detach'", "download", "-o", "-", "--detach",
                 "u");
    EXPECT_USAGE("'download -o -' does not take '--json'", "download", "-o", "-", "--json", "u");
    /* ...but what cat takes, -o - takes too: download's options, shared. */
    EXPECT_OK(c, "download", "-o", "-", "--sha256",
              "00000000000000000000000000000000000000000000000000000000000000AB", "--header",
              "X-A: 1", "--limit-rate", "2K", "--proxy", "http://p:3128", "--retries", "2",
              "u");
    CHECK_INT_EQ(c.verb, RVC_VERB_CAT);
    CHECK_STR_EQ(c.dl.sha256, "00000000000000000000000000000000000000000000000000000000000000ab");
    CHECK_INT_EQ(c.dl.n_headers, 1);
    CHECK_INT_EQ(c.dl.limit_rate, 2048);
    CHECK_STR_EQ(c.dl.proxy, "http://p:3128");
    CHECK_INT_EQ(c.dl.retries, 2);
    rvc_cmd_done(&c);
    EXPECT_USAGE("'-o/--output' names one file, but 2 URLs were given", "download", "-o", "-",
                 "u", "v");
    EXPECT_OK(c, "download", "-o", "-", "u");
    CHECK_INT_EQ(c.verb, RVC_VERB_CAT);
    CHECK_STR_EQ(c.dl.urls[0], "u");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "cat", "--local", "u");
    CHECK_INT_EQ(c.verb, RVC_VERB_CAT);
    CHECK(c.dl.local);
    rvc_cmd_done(&c);
    EXPECT_USAGE("'cat' takes one URL", "cat", "u", "v");
    /* cat takes download's options (the same table and checks)... */
    EXPECT_OK(c, "cat", "--header", "X-A: 1", "--netrc-file", "n", "-u", "a:b", "-x",
              "http://p:1", "--limit-rate", "1M", "--sha256",
              "0000000000000000000000000000000000000000000000000000000000000001", "--cacert",
              "ca.pem", "--retries", "0", "--connect-timeout", "3", "-q", "u");
    CHECK_INT_EQ(c.verb, RVC_VERB_CAT);
    CHECK_INT_EQ(c.dl.n_headers, 1);
    CHECK_STR_EQ(c.dl.netrc_file, "n");
    CHECK(c.dl.netrc);
    CHECK_STR_EQ(c.dl.user, "a:b");
    CHECK_STR_EQ(c.dl.proxy, "http://p:1");
    CHECK_INT_EQ(c.dl.limit_rate, 1 << 20);
    CHECK_STR_EQ(c.dl.ca_file, "ca.pem");
    CHECK_INT_EQ(c.dl.retries, 0);
    CHECK_INT_EQ(c.dl.connect_timeout_ms, 3000);
    CHECK(c.dl.quiet);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "cat", "--local", "--insecure", "--chunk-size", "1M", "--no-state", "u");
    CHECK(c.dl.insecure);
    CHECK_INT_EQ(c.dl.chunk_size, 1 << 20);
    rvc_cmd_done(&c);
    /* ...and download's mode rules... */
    EXPECT_USAGE("'--chunk-size' applies only with --local", "cat", "--chunk-size", "1M", "u");
    EXPECT_USAGE("'--insecure' cannot apply through retrieverd", "cat", "--insecure", "u");
    EXPECT_USAGE("'--socket' talks to retrieverd", "cat", "--local", "--socket", "s", "u");
    /* ...but not those about files, progress and JSON: one line each. */
    EXPECT_USAGE("'cat' does not take '-o'", "cat", "-o", "f", "u");
    EXPECT_USAGE("'cat' does not take '-d'", "cat", "-d", "/tmp", "u");
    EXPECT_USAGE("'cat' does not take '-i'", "cat", "-i", "list", "u");
    EXPECT_USAGE("'cat' does not take '--detach'", "cat", "--detach", "u");
    EXPECT_USAGE("'cat' does not take '--json'", "cat", "--json", "u");
    EXPECT_USAGE("'cat' does not take '--force'", "cat", "--force", "u");
    EXPECT_USAGE("'cat' does not take '--link'", "cat", "--local", "--link", "u");
    EXPECT_USAGE("'cat' does not take '--no-progress'", "cat", "--no-progress", "u");
    EXPECT_OK(c, "cache", "rm", "u", "v", "--json");
    CHECK_INT_EQ(c.verb, RVC_VERB_CACHE);
    CHECK_STR_EQ(c.cache_action, "rm");
    CHECK_INT_EQ(c.dl.n_urls, 3);
    CHECK(c.dl.json);
    rvc_cmd_done(&c);
    EXPECT_USAGE("'cache rm' needs at least one URL", "cache", "rm");
    EXPECT_USAGE("'cache ls' takes no arguments", "cache", "ls", "x");
    EXPECT_USAGE("'cache' needs one of ls", "cache", "list");
    EXPECT_USAGE("'cache' needs one of ls", "cache");
    EXPECT_OK(c, "download", "--local", "-o", "./-", "u");
    CHECK_STR_EQ(c.dl.output, "./-");
    rvc_cmd_done(&c);
}

static void test_sha256(void) {
    rvc_cmd c;
    const char *hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    EXPECT_OK(c, "download", "--local", "--sha256", hex, "u");
    CHECK_STR_EQ(c.dl.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    rvc_cmd_done(&c);

    EXPECT_USAGE("'--sha256' checks one file, but 2 URLs were given", "download", "--sha256", hex,
                 "u", "v");
    EXPECT_USAGE("option '--sha256' needs 64 hexadecimal digits, not 'abc'", "download",
                 "--sha256", "abc", "u");
    /* 63 and 65 digits, and a non-hex digit. */
    EXPECT_USAGE("64 hexadecimal digits", "download", "--sha256",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", "u");
    EXPECT_USAGE("64 hexadecimal digits", "download", "--sha256",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", "u");
    EXPECT_USAGE("64 hexadecimal digits", "download", "--sha256",
                 "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "u");
}

static void test_headers(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "--header", "Authorization: Bearer x", "u",
              "--header=X-A: 1", "--header", "X-Empty:");
    CHECK_INT_EQ(c.dl.n_headers, 3);
    if (c.dl.n_headers == 3) {
        CHECK_STR_EQ(c.dl.headers[0], "Authorization: Bearer x");
        CHECK_STR_EQ(c.dl.headers[1], "X-A: 1");
        CHECK_STR_EQ(c.dl.headers[2], "X-Empty:");
    }
    CHECK_INT_EQ(c.dl.n_urls, 1);
    rvc_cmd_done(&c);

    EXPECT_USAGE("option '--header' needs 'Name: value'", "download", "--header", "NoColon", "u");
    EXPECT_USAGE("not 'NoColon'", "download", "--header", "NoColon", "u");
    EXPECT_USAGE("not a header the engine sets itself", "download", "--header", "Range: bytes=0-1",
                 "u");
    EXPECT_USAGE("not 'if-range: x'", "download", "--header", "if-range: x", "u");
    EXPECT_USAGE("needs 'Name: value'", "download", "--header", ": value", "u");
    EXPECT_USAGE("needs 'Name: value'", "download", "--header", "Bad Name: v", "u");
    EXPECT_USAGE("needs 'Name: value'", "download", "--header", "X-A: 1\r\nX-B: 2", "u");
    EXPECT_USAGE("needs 'Name: value'", "download", "--header", "X-A: 1\n", "u");

    /* The count limit. */
    static char *argv[RVC_MAX_HEADERS + 8];
    int argc = 0;
    argv[argc++] = "retrieverctl";
    argv[argc++] = "download";
    for (int i = 0; i <= RVC_MAX_HEADERS; i++)
        argv[argc++] = "--header=X-A: 1";
    argv[argc++] = "u";
    char *e = NULL;
    CHECK_INT_EQ(rvc_cli_parse(argc, argv, &c, &e), RV_E_INVALID_ARGUMENT);
    CHECK_STR_HAS(e, "more than 64 --header options");
    free(e);

    /* The length limit. */
    char *big = malloc(RVC_MAX_HEADER_LEN + 16);
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'a', RVC_MAX_HEADER_LEN);
    big[RVC_MAX_HEADER_LEN + 7] = '\0';
    EXPECT_USAGE("header longer than 8192 bytes", "download", "--header", big, "u");
    free(big);

    /* @FILE and @-: kept as given, read later (secrets.c); --netrc. */
    EXPECT_OK(c, "download", "--header", "@/no/such/file", "--header=@-", "--netrc", "u");
    CHECK_INT_EQ(c.dl.n_headers, 2);
    if (c.dl.n_headers == 2) {
        CHECK_STR_EQ(c.dl.headers[0], "@/no/such/file");
        CHECK_STR_EQ(c.dl.headers[1], "@-");
    }
    CHECK(c.dl.netrc);
    CHECK(c.dl.netrc_file == NULL);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--netrc-file", "/n", "u");
    CHECK(c.dl.netrc);
    CHECK_STR_EQ(c.dl.netrc_file, "/n");
    rvc_cmd_done(&c);
    EXPECT_USAGE("needs '@FILE'", "download", "--header", "@", "u");
    EXPECT_USAGE("option '--netrc-file' needs a file", "download", "--netrc-file=", "u");
    EXPECT_USAGE("option '--netrc-file' given more than once", "download", "--netrc-file", "/a",
                 "--netrc-file", "/b", "u");
}

static void test_numbers(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "--retries", "0", "--connect-timeout", "2.5",
              "--stall-timeout=30", "u");
    CHECK_INT_EQ(c.dl.retries, 0);
    CHECK_INT_EQ(c.dl.connect_timeout_ms, 2500);
    CHECK_INT_EQ(c.dl.stall_timeout_ms, 30000);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--local", "--retries=100", "--connect-timeout", "0.0001", "u");
    CHECK_INT_EQ(c.dl.retries, 100);
    CHECK_INT_EQ(c.dl.connect_timeout_ms, 1); /* rounded up, never 0 */
    rvc_cmd_done(&c);

    EXPECT_USAGE("option '--retries' needs a whole number from 0 to 100, not '101'", "download",
                 "--retries", "101", "u");
    EXPECT_USAGE("not 'x'", "download", "--retries", "x", "u");
    EXPECT_USAGE("option '--connect-timeout' needs a number of seconds above 0", "download",
                 "--connect-timeout", "0", "u");
    EXPECT_USAGE("not '-1'", "download", "--connect-timeout", "-1", "u");
    EXPECT_USAGE("not 'nan'", "download", "--stall-timeout", "nan", "u");
    EXPECT_USAGE("not '86401'", "download", "--stall-timeout", "86401", "u");
    EXPECT_USAGE("not '5s'", "download", "--stall-timeout", "5s", "u");
}

static void test_flags(void) {
    rvc_cmd c;
    EXPECT_OK(c, "download", "--local", "--json", "-q", "--no-progress", "u");
    CHECK(c.dl.json && c.dl.quiet && c.dl.no_progress);
    rvc_cmd_done(&c);

    /* Bundled short options, the last one taking the rest as its value. */
    EXPECT_OK(c, "download", "--local", "-qc4", "u");
    CHECK(c.dl.quiet);
    CHECK_INT_EQ(c.dl.connections, 4);
    rvc_cmd_done(&c);

    /* Network options (issue 21): curl's spellings, both modes. */
    EXPECT_OK(c, "download", "--limit-rate", "2M", "-u", "al:p:w", "-x", "http://p:3128", "u");
    CHECK(c.dl.limit_rate == 2u << 20);
    CHECK_STR_EQ(c.dl.user, "al:p:w");
    CHECK_STR_EQ(c.dl.proxy, "http://p:3128");
    rvc_cmd_done(&c);
    EXPECT_USAGE("option '--limit-rate' needs bytes a second, at least 1K", "download",
                 "--limit-rate=1000", "u");
    EXPECT_USAGE("option '-u' needs USER:PASSWORD (no password prompt)", "download", "-u",
                 "al", "u");
    EXPECT_USAGE("option '--proxy' needs the proxy's URL", "download", "--proxy=", "u");

    /* Flags may repeat. */
    EXPECT_OK(c, "download", "--local", "--local", "--json", "--json", "u");
    CHECK(c.dl.json);
    rvc_cmd_done(&c);

    EXPECT_USAGE("option '--json' takes no value", "download", "--json=yes", "u");
    EXPECT_USAGE("unknown option '--bogus'", "download", "--local", "--bogus", "u");
    EXPECT_USAGE("unknown option '--bogus'", "download", "--bogus=1", "u");
    EXPECT_USAGE("unknown option '-Y'", "download", "-Y", "u"); /* -x is --proxy */
    EXPECT_USAGE("unknown option '-z'", "download", "-qz", "u");
    EXPECT_USAGE("unknown option '--conn'", "download", "--conn=4", "u"); /* no abbreviations */
    /* ... but a suggestion: an abbreviation, a typo, a swap of two letters. */
    EXPECT_USAGE("unknown option '--conn'; did you mean '--connections'?", "download", "--conn=4",
                 "u");
    EXPECT_USAGE("unknown option '--outptu'; did you mean '--output'?", "download", "--outptu",
                 "x", "u");
    EXPECT_USAGE("unknown option '--jsno'; did you mean '--json'?", "download", "--jsno", "u");
    EXPECT_USAGE("unknown option '--verison'; did you mean '--version'?", "--verison");
    {
        /* Nothing near: no suggestion. */
        rvc_cmd c_;
        char *e_ = NULL;
        CHECK_INT_EQ(parse(&c_, &e_, "download", "--bogus", "u", NULL), RV_E_INVALID_ARGUMENT);
        CHECK(e_ && strstr(e_, "did you mean") == NULL);
        free(e_);
    }
    EXPECT_USAGE("no URL given", "download", "--local");
    EXPECT_USAGE("no URL given", "download");
    EXPECT_USAGE("Try 'retrieverctl download --help'", "download");

    /* Help wins wherever it appears before an error. */
    EXPECT_OK(c, "download", "--local", "--help");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    CHECK_STR_EQ(c.help_topic, "download");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "-h", "-o", "f", "u", "v");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    rvc_cmd_done(&c);
}

static void test_daemon_mode(void) {
    rvc_cmd c;
    const char *hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /* --socket before the command, among download's options, as --socket=. */
    EXPECT_OK(c, "--socket", "/run/x.sock", "download", "u");
    CHECK_INT_EQ(c.verb, RVC_VERB_DOWNLOAD);
    CHECK_STR_EQ(c.socket, "/run/x.sock");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "u", "--socket", "/s");
    CHECK_STR_EQ(c.socket, "/s");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "--socket=/s", "download", "--detach", "u", "v");
    CHECK_STR_EQ(c.socket, "/s");
    CHECK(c.dl.detach);
    CHECK_INT_EQ(c.dl.n_urls, 2);
    rvc_cmd_done(&c);

    /* What both modes share passes without --local. */
    EXPECT_OK(c, "download", "-c", "4", "--header", "X-A: 1", "--sha256", hex, "-o", "f",
              "--json", "-q", "--no-progress", "u");
    CHECK(!c.dl.local);
    CHECK_INT_EQ(c.dl.connections, 4);
    CHECK_INT_EQ(c.dl.n_headers, 1);
    CHECK_STR_EQ(c.dl.sha256, hex);
    CHECK(c.dl.json && c.dl.quiet && c.dl.no_progress);
    rvc_cmd_done(&c);

    /* ping */
    EXPECT_OK(c, "ping");
    CHECK_INT_EQ(c.verb, RVC_VERB_PING);
    CHECK(c.socket == NULL);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "ping", "--socket", "/s");
    CHECK_INT_EQ(c.verb, RVC_VERB_PING);
    CHECK_STR_EQ(c.socket, "/s");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "--socket", "/s", "ping");
    CHECK_INT_EQ(c.verb, RVC_VERB_PING);
    CHECK_STR_EQ(c.socket, "/s");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "ping", "-h");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    CHECK_STR_EQ(c.help_topic, "ping");
    rvc_cmd_done(&c);
    EXPECT_OK(c, "help", "ping");
    CHECK_INT_EQ(c.verb, RVC_VERB_HELP);
    CHECK_STR_EQ(c.help_topic, "ping");
    rvc_cmd_done(&c);

    EXPECT_USAGE("'ping' takes no arguments, not 'x'", "ping", "x");
    EXPECT_USAGE("Try 'retrieverctl ping --help'", "ping", "x");
    EXPECT_USAGE("unknown option '--json'", "ping", "--json");
    EXPECT_USAGE("unknown option '-q'", "ping", "-q");
    EXPECT_USAGE("option '--socket' needs a value (PATH)", "ping", "--socket");
    EXPECT_USAGE("option '--socket' needs a value (PATH)", "--socket");
    EXPECT_USAGE("option '--socket' needs the path of retrieverd's socket", "--socket=", "ping");
    EXPECT_USAGE("option '--socket' needs the path of retrieverd's socket", "ping", "--socket",
                 "");
    EXPECT_USAGE("option '--socket' given more than once", "--socket", "/a", "ping", "--socket",
                 "/b");
    EXPECT_USAGE("option '--socket' given more than once", "--socket", "/a", "--socket", "/b",
                 "ping");
    EXPECT_USAGE("option '--socket' given more than once", "download", "--socket", "/a",
                 "--socket=/b", "u");

    /* The other mode's options are refused, not ignored. */
    EXPECT_USAGE("'--socket' talks to retrieverd; it cannot be used with --local", "download",
                 "--local", "--socket", "/s", "u");
    EXPECT_USAGE("'--socket' talks to retrieverd; it cannot be used with --local", "--socket",
                 "/s", "download", "u", "--local");
    EXPECT_USAGE("'--detach' talks to retrieverd; it cannot be used with --local", "download",
                 "--detach", "--local", "u");
    static const char *const local_only[][2] = {
        {"--chunk-size=4M", "'--chunk-size' applies only with --local"},
        {"--state-dir=/s", "'--state-dir' applies only with --local"},
        {"--cache-dir=/c", "'--cache-dir' applies only with --local"},
        {"--cache-quota=1G", "'--cache-quota' applies only with --local"},
        {"--no-state", "'--no-state' applies only with --local"},
    };
    for (size_t i = 0; i < sizeof(local_only) / sizeof(local_only[0]); i++) {
        EXPECT_USAGE(local_only[i][1], "download", local_only[i][0], "u");
        /* ... and with --local they parse. */
        EXPECT_OK(c, "download", "--local", local_only[i][0], "u");
        rvc_cmd_done(&c);
    }
    /* Retries, timeouts and CA files apply in both modes (issue 21). */
    static const char *const both_modes[] = {"--retries=3", "--connect-timeout=2",
                                             "--stall-timeout=2", "--retry-refused=0.5",
                                             "--cacert=/ca.pem", "--cacert-only=/ca.pem"};
    for (size_t i = 0; i < sizeof(both_modes) / sizeof(both_modes[0]); i++) {
        EXPECT_OK(c, "download", both_modes[i], "u");
        rvc_cmd_done(&c);
        EXPECT_OK(c, "download", "--local", both_modes[i], "u");
        rvc_cmd_done(&c);
    }
    EXPECT_OK(c, "download", "--cacert-only", "/ca.pem", "--retry-refused", "1.5", "u");
    CHECK_STR_EQ(c.dl.ca_file, "/ca.pem");
    CHECK(c.dl.ca_only);
    CHECK(c.dl.connect_retry_ms == 1500);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--cacert", "/ca.pem", "u");
    CHECK(!c.dl.ca_only);
    rvc_cmd_done(&c);
    EXPECT_USAGE("'--cacert' and '--cacert-only' cannot be used together", "download",
                 "--cacert", "/a", "--cacert-only", "/b", "u");
    EXPECT_USAGE("'-k' is not accepted", "download", "--local", "-k", "u");
    EXPECT_USAGE("'-k' is not accepted", "download", "--local", "-qk", "u");
    EXPECT_USAGE("'--insecure' cannot apply through retrieverd", "download", "--insecure", "u");
    EXPECT_USAGE("'--insecure' checks no certificate", "download", "--local", "--insecure",
                 "--cacert", "/a", "u");
    EXPECT_OK(c, "download", "--local", "--insecure", "u");
    CHECK(c.dl.insecure);
    rvc_cmd_done(&c);
    /* Delivery and digest options work in both modes. */
    static const char *const both[] = {"--copy", "--link", "--digest", "--no-digest"};
    for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++) {
        EXPECT_OK(c, "download", both[i], "u");
        rvc_cmd_done(&c);
        EXPECT_OK(c, "download", "--local", both[i], "u");
        rvc_cmd_done(&c);
    }
    EXPECT_OK(c, "download", "--link", "u");
    CHECK(c.dl.link && !c.dl.copy);
    rvc_cmd_done(&c);
    EXPECT_OK(c, "download", "--copy", "u");
    CHECK(c.dl.copy && !c.dl.link);
    rvc_cmd_done(&c);
    EXPECT_USAGE("options '--copy' and '--link' cannot be used together", "download", "--copy",
                 "--link", "u");
    EXPECT_USAGE("option '--no-state' cannot be combined with '--link'", "download", "--local",
                 "--no-state", "--link", "u");
    EXPECT_USAGE("'--detach' and '--json' cannot be used together", "download", "--detach",
                 "--json", "u");
    /* Value errors come first, in either mode. */
    EXPECT_USAGE("option '--retries' needs a whole number", "download", "--retries", "x", "u");
}

static void test_help_text(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(rvc_cli_help(f, "download"));
    CHECK(!rvc_cli_help(f, "nope"));
    fclose(f);
    const char *opts[] = {"--local",   "--output",  "--dir",     "--connections", "--chunk-size",
                          "--header",  "--retries", "--connect-timeout", "--stall-timeout",
                          "--sha256",  "--json",    "--quiet",   "--no-progress", "--help",
                          "help exit-codes"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        CHECK_STR_HAS(text, opts[i]);
    /* No help line wider than 80 columns. */
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t w = nl ? (size_t)(nl - line) : strlen(line);
        if (w > 80)
            fprintf(stderr, "  too wide: %.*s\n", (int)w, line);
        CHECK(w <= 80);
    }
    free(text);

    f = open_memstream(&text, &len);
    CHECK(rvc_cli_help(f, NULL));
    rvc_cli_version(f);
    fclose(f);
    CHECK_STR_HAS(text, "download");
    CHECK_STR_HAS(text, "  ping ");
    CHECK_STR_HAS(text, "--socket PATH");
    CHECK_STR_HAS(text, "help exit-codes");
    CHECK_STR_HAS(text, "help COMMAND");
    CHECK_STR_HAS(text, "docs/cli.md");
    CHECK_STR_HAS(text, "retrieverctl ");
    /* One screen: at most 40 lines (the version line is not part of it). */
    size_t lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    CHECK(lines - 1 <= 40);
    /* The exit-code table is printed by `help exit-codes` only. */
    CHECK(strstr(text, "  130  ") == NULL);
    free(text);

    f = open_memstream(&text, &len);
    CHECK(rvc_cli_help(f, "exit-codes"));
    fclose(f);
    CHECK_STR_HAS(text, "    0  every download");
    CHECK_STR_HAS(text, "  130  ");
    CHECK_STR_HAS(text, "    9  retrieverd refused");
    free(text);

    /* The daemon mode in download's help: its options, and the marks on
     * the options of one mode. */
    f = open_memstream(&text, &len);
    CHECK(rvc_cli_help(f, "download"));
    fclose(f);
    CHECK_STR_HAS(text, "Usage: retrieverctl download [--local] [OPTIONS] URL...");
    CHECK_STR_HAS(text, "      --socket PATH");
    CHECK_STR_HAS(text, "      --detach");
    CHECK_STR_HAS(text, "(daemon mode only)");
    CHECK_STR_HAS(text, "\nEngine (--local only):\n");
    CHECK_STR_HAS(text, "\nState and cache (--local only):\n");
    CHECK(strstr(text, "    9  retrieverd refused") == NULL); /* once: help exit-codes */
    free(text);

    f = open_memstream(&text, &len);
    CHECK(rvc_cli_help(f, "ping"));
    fclose(f);
    CHECK_STR_HAS(text, "Usage: retrieverctl ping [--socket PATH]");
    CHECK_STR_HAS(text, "      --socket PATH");
    CHECK_STR_HAS(text, "Exit codes: retrieverctl help exit-codes");
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t w = nl ? (size_t)(nl - line) : strlen(line);
        CHECK(w <= 80);
    }
    free(text);
}

int main(void) {
    test_top_level();
    test_download_defaults();
    test_connections();
    test_sizes();
    test_destinations();
    test_sha256();
    test_headers();
    test_numbers();
    test_flags();
    test_daemon_mode();
    test_help_text();
    return CHECK_RESULT();
}
