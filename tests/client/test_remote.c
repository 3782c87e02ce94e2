/* test_remote.c — the pure pieces of the daemon mode: which socket, how a
 * --header line is split for the request, engine error names back to
 * rv_error, and absolute destinations (dest.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "dest.h"
#include "remote.h"
#include "retriever/rv_error.h"

static void test_socket_path(void) {
    char *p = NULL, *e = NULL;

    /* --socket wins over everything, and is taken as given. */
    CHECK_INT_EQ(rvc_socket_path("/opt.sock", "/env.sock", "/run/user/1", &p, &e), RV_OK);
    CHECK_STR_EQ(p, "/opt.sock");
    free(p);
    CHECK_INT_EQ(rvc_socket_path("rel.sock", NULL, NULL, &p, &e), RV_OK);
    CHECK_STR_EQ(p, "rel.sock");
    free(p);

    /* Then $RETRIEVER_SOCKET (when not empty). */
    CHECK_INT_EQ(rvc_socket_path(NULL, "/env.sock", "/run/user/1", &p, &e), RV_OK);
    CHECK_STR_EQ(p, "/env.sock");
    free(p);
    CHECK_INT_EQ(rvc_socket_path(NULL, "", "/run/user/1", &p, &e), RV_OK);
    CHECK_STR_EQ(p, "/run/user/1/retriever/retrieverd.sock");
    free(p);

    /* Then the per-user default, as retrieverd computes it. */
    CHECK_INT_EQ(rvc_socket_path(NULL, NULL, "/run/user/1000", &p, &e), RV_OK);
    CHECK_STR_EQ(p, "/run/user/1000/retriever/retrieverd.sock");
    free(p);
    CHECK_INT_EQ(rvc_socket_path(NULL, NULL, "/run/user/1000//", &p, &e), RV_OK);
    CHECK_STR_EQ(p, "/run/user/1000/retriever/retrieverd.sock");
    free(p);
    CHECK_INT_EQ(rvc_socket_path(NULL, NULL, "/", &p, &e), RV_OK);
    CHECK_STR_EQ(p, "//retriever/retrieverd.sock");
    free(p);

    /* None: say what to pass; *ret untouched. */
    const char *bad[] = {NULL, "", "run/user/1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = (char *)"untouched";
        e = NULL;
        CHECK_INT_EQ(rvc_socket_path(NULL, NULL, bad[i], &p, &e), RV_E_INVALID_ARGUMENT);
        CHECK_STR_EQ(p, "untouched");
        CHECK_STR_HAS(e, "XDG_RUNTIME_DIR");
        CHECK_STR_HAS(e, "pass --socket PATH or set RETRIEVER_SOCKET");
        free(e);
    }
}

static void test_header_split(void) {
    static const struct {
        const char *line, *name, *value;
    } ok[] = {
        {"Authorization: Bearer x", "Authorization", "Bearer x"},
        {"X-A:1", "X-A", "1"},
        {"X-Empty:", "X-Empty", ""},
        {"X-Blank:   \t ", "X-Blank", ""},
        {"  X-B \t:  v  w \t", "X-B", "v  w"},
        {"X-Colons: a:b: c", "X-Colons", "a:b: c"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *n = NULL, *v = NULL;
        CHECK_INT_EQ(rvc_header_split(ok[i].line, &n, &v), RV_OK);
        CHECK_STR_EQ(n, ok[i].name);
        CHECK_STR_EQ(v, ok[i].value);
        free(n);
        free(v);
    }
    const char *bad[] = {"NoColon", ": value", "  :v", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *n = (char *)"untouched", *v = (char *)"untouched";
        CHECK_INT_EQ(rvc_header_split(bad[i], &n, &v), RV_E_INVALID_ARGUMENT);
        CHECK_STR_EQ(n, "untouched");
        CHECK_STR_EQ(v, "untouched");
    }
}

static void test_error_from_name(void) {
    /* Every code of this build's table round-trips through its name. */
#define CHECK_NAME_(sym, num, retryable, msg) \
    CHECK_INT_EQ(rvc_error_from_name(rv_error_name(num)), num);
    RV_ERRORS(CHECK_NAME_)
#undef CHECK_NAME_
    CHECK_INT_EQ(rvc_error_from_name("RV_E_NOT_FOUND"), RV_E_NOT_FOUND);
    CHECK_INT_EQ(rvc_error_from_name("RV_E_CHECKSUM_MISMATCH"), RV_E_CHECKSUM_MISMATCH);
    CHECK_INT_EQ(rvc_error_from_name("RV_E_FROM_THE_FUTURE"), -1);
    CHECK_INT_EQ(rvc_error_from_name("rv_e_not_found"), -1); /* exact names only */
    CHECK_INT_EQ(rvc_error_from_name(""), -1);
    CHECK_INT_EQ(rvc_error_from_name(NULL), -1);
}

static void test_destination(void) {
    rvc_download_opts o;
    char *p = NULL;

    /* -o: relative to cwd when asked for an absolute path. */
    memset(&o, 0, sizeof(o));
    o.output = "out/f.bin";
    CHECK_INT_EQ(rvc_destination(&o, "http://h/x.bin", "/home/u", &p), RV_OK);
    CHECK_STR_EQ(p, "/home/u/out/f.bin");
    free(p);
    CHECK_INT_EQ(rvc_destination(&o, "http://h/x.bin", NULL, &p), RV_OK);
    CHECK_STR_EQ(p, "out/f.bin");
    free(p);
    o.output = "/abs/f.bin";
    CHECK_INT_EQ(rvc_destination(&o, "http://h/", "/home/u", &p), RV_OK); /* no name needed */
    CHECK_STR_EQ(p, "/abs/f.bin");
    free(p);

    /* -d DIR + the URL's file name. */
    memset(&o, 0, sizeof(o));
    o.dir = "dl/";
    CHECK_INT_EQ(rvc_destination(&o, "http://h/a/b%20c.iso?x=1", "/home/u/", &p), RV_OK);
    CHECK_STR_EQ(p, "/home/u/dl/b c.iso");
    free(p);
    o.dir = "/srv";
    CHECK_INT_EQ(rvc_destination(&o, "http://h/a.bin", "/home/u", &p), RV_OK);
    CHECK_STR_EQ(p, "/srv/a.bin");
    free(p);

    /* Neither: the current directory. */
    memset(&o, 0, sizeof(o));
    CHECK_INT_EQ(rvc_destination(&o, "http://h/a.bin", "/w", &p), RV_OK);
    CHECK_STR_EQ(p, "/w/a.bin");
    free(p);
    CHECK_INT_EQ(rvc_destination(&o, "http://h/a.bin", NULL, &p), RV_OK);
    CHECK_STR_EQ(p, "a.bin");
    free(p);

    /* No file name in the URL: rejected, *ret untouched. */
    p = (char *)"untouched";
    CHECK_INT_EQ(rvc_destination(&o, "http://h/", "/w", &p), RV_E_BAD_URL);
    CHECK_INT_EQ(rvc_destination(&o, "http://h/..", "/w", &p), RV_E_BAD_URL);
    CHECK_STR_EQ(p, "untouched");
}

/* The engine's destination rule, applied by the client before asking
 * retrieverd: the same codes and words as --local. */
static void test_check_destination(void) {
    char tmpl[] = "/tmp/rvc-test-dest-XXXXXX";
    char *d = mkdtemp(tmpl);
    CHECK(d != NULL);
    if (!d)
        return;
    char path[512], want[600];
    char *detail = NULL;

    snprintf(path, sizeof(path), "%s/new.bin", d);
    CHECK_INT_EQ(rvc_check_destination(path, &detail), RV_OK);
    CHECK(detail == NULL);
    FILE *f = fopen(path, "w"); /* an existing file is replaced: fine */
    CHECK(f != NULL);
    if (f)
        fclose(f);
    CHECK_INT_EQ(rvc_check_destination(path, &detail), RV_OK);

    CHECK_INT_EQ(rvc_check_destination(d, &detail), RV_E_DEST_IS_DIR);
    snprintf(want, sizeof(want), "destination '%s' is a directory", d);
    CHECK_STR_EQ(detail, want);
    free(detail);
    snprintf(path, sizeof(path), "%s/sub/", d);
    CHECK_INT_EQ(rvc_check_destination(path, &detail), RV_E_DEST_IS_DIR);
    free(detail);

    snprintf(path, sizeof(path), "%s/missing/x.bin", d);
    CHECK_INT_EQ(rvc_check_destination(path, &detail), RV_E_DEST_UNWRITABLE);
    snprintf(want, sizeof(want), "cannot use directory '%s/missing': No such file or directory",
             d);
    CHECK_STR_EQ(detail, want);
    free(detail);

    snprintf(path, sizeof(path), "%s/new.bin/x.bin", d); /* a file where a directory goes */
    CHECK_INT_EQ(rvc_check_destination(path, &detail), RV_E_DEST_UNWRITABLE);
    free(detail);

    if (geteuid() != 0) { /* root may write anywhere */
        snprintf(path, sizeof(path), "%s/ro", d);
        CHECK(mkdir(path, 0555) == 0);
        snprintf(path, sizeof(path), "%s/ro/x.bin", d);
        CHECK_INT_EQ(rvc_check_destination(path, &detail), RV_E_DEST_UNWRITABLE);
        CHECK_STR_HAS(detail, "cannot write in directory");
        free(detail);
        snprintf(path, sizeof(path), "%s/ro", d);
        rmdir(path);
    }
    CHECK_INT_EQ(rvc_check_destination("", &detail), RV_E_INVALID_ARGUMENT);
    free(detail);

    snprintf(path, sizeof(path), "%s/new.bin", d);
    unlink(path);
    rmdir(d);
}

int main(void) {
    test_socket_path();
    test_header_split();
    test_error_from_name();
    test_destination();
    test_check_destination();
    return CHECK_RESULT();
}
