/* test_cli.c — retrieverd's argument parser and default socket path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rv_test.h"

/* Parse a NULL-terminated list (argv[0] added). Returns the result code;
 * *err gets the message (caller frees). */
static int parse(rvd_options *o, char **err, char **args) {
    char *argv[16] = {"retrieverd"};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = args[argc - 1];
    *err = NULL;
    return rvd_cli_parse(argc, argv, o, err);
}

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})

static void test_defaults_and_values(void) {
    rvd_options o;
    char *err;
    CHECK(parse(&o, &err, (char *[]){NULL}) == 0);
    CHECK(o.verb == RVD_VERB_RUN);
    CHECK(o.socket_path == NULL);
    CHECK_EQ_U64(o.socket_mode, 0600);
    CHECK(!o.foreground);

    CHECK(parse(&o, &err, ARGS("--socket", "/run/x.sock", "--socket-mode", "0660",
                               "--foreground")) == 0);
    CHECK_STREQ(o.socket_path, "/run/x.sock");
    CHECK_EQ_U64(o.socket_mode, 0660);
    CHECK(o.foreground);

    CHECK(parse(&o, &err, ARGS("--socket=/a b.sock", "--socket-mode=666")) == 0);
    CHECK_STREQ(o.socket_path, "/a b.sock");
    CHECK_EQ_U64(o.socket_mode, 0666);

    CHECK(parse(&o, &err, ARGS("--socket-mode", "600")) == 0);
    CHECK_EQ_U64(o.socket_mode, 0600);

    CHECK(parse(&o, &err, ARGS("--socket", "/x", "-h", "--bogus")) == 0);
    CHECK(o.verb == RVD_VERB_HELP);
    CHECK(parse(&o, &err, ARGS("--help")) == 0 && o.verb == RVD_VERB_HELP);
    CHECK(parse(&o, &err, ARGS("--version")) == 0 && o.verb == RVD_VERB_VERSION);
    CHECK(parse(&o, &err, ARGS("-V")) == 0 && o.verb == RVD_VERB_VERSION);
}

static void expect_usage(char **args, const char *text) {
    rvd_options o;
    char *err;
    CHECK(parse(&o, &err, args) == -EINVAL);
    CHECK(err && strstr(err, text));
    CHECK(err && strstr(err, "Try 'retrieverd --help'"));
    if (err && !strstr(err, text))
        fprintf(stderr, "    got: %s\n", err);
    free(err);
}

static void test_usage_errors(void) {
    expect_usage(ARGS("--socket"), "'--socket' needs a path");
    expect_usage(ARGS("--socket="), "non-empty path");
    expect_usage(ARGS("--socket-mode"), "needs an octal mode");
    expect_usage(ARGS("--socket-mode", "0400"), "invalid socket mode '0400'");
    expect_usage(ARGS("--socket-mode", "1777"), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", "0800"), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", "06600"), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", ""), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", "rw"), "invalid socket mode");
    expect_usage(ARGS("--sock", "/x"), "unknown option '--sock'");
    expect_usage(ARGS("--socketx=/x"), "unknown option '--socketx=/x'");
    expect_usage(ARGS("-x"), "unknown option '-x'");
    expect_usage(ARGS("serve"), "unexpected argument 'serve'");
}

static void test_default_path(void) {
    char *p = NULL, *err = NULL;
    CHECK(rvd_default_socket_path("/run/user/1000", &p, &err) == 0);
    CHECK_STREQ(p, "/run/user/1000/retriever/retrieverd.sock");
    free(p);
    p = NULL;
    CHECK(rvd_default_socket_path("/run/user/1000//", &p, &err) == 0);
    CHECK_STREQ(p, "/run/user/1000/retriever/retrieverd.sock");
    free(p);
    p = NULL;

    CHECK(rvd_default_socket_path(NULL, &p, &err) == -EINVAL);
    CHECK(p == NULL);
    CHECK(err && strstr(err, "XDG_RUNTIME_DIR is not set") && strstr(err, "--socket"));
    free(err);
    err = NULL;
    CHECK(rvd_default_socket_path("", &p, &err) == -EINVAL);
    free(err);
    err = NULL;
    CHECK(rvd_default_socket_path("run/user", &p, &err) == -EINVAL);
    CHECK(err && strstr(err, "'run/user' is not an absolute path"));
    free(err);
}

int main(void) {
    test_defaults_and_values();
    test_usage_errors();
    test_default_path();
    return rv_test_result();
}
