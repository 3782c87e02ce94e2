/* test_exitcode.c — every rv_error and every gRPC status maps to a
 * documented exit code, the classes are the documented ones, and
 * docs/cli.md lists every code. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "exitcode.h"
#include "retriever/rv_error.h"
#include "rpc.h"

static void test_every_error_is_documented(void) {
#define CHECK_ONE_(name, num, retryable, msg)                                       \
    do {                                                                            \
        int code_ = rvc_exit_code(name);                                            \
        if (!rvc_exit_describe(code_))                                              \
            fprintf(stderr, "  %s maps to undocumented exit code %d\n", #name, code_); \
        CHECK(rvc_exit_describe(code_) != NULL);                                    \
        if (name != RV_OK)                                                          \
            CHECK(code_ != RVC_EXIT_OK);                                            \
    } while (0);
    RV_ERRORS(CHECK_ONE_)
#undef CHECK_ONE_
}

static void test_classes(void) {
    CHECK_INT_EQ(rvc_exit_code(RV_OK), 0);
    CHECK_INT_EQ(rvc_exit_code(RV_E_NOMEM), 1);
    CHECK_INT_EQ(rvc_exit_code(RV_E_INTERNAL), 1);
    CHECK_INT_EQ(rvc_exit_code(-1), 1);
    CHECK_INT_EQ(rvc_exit_code(9999), 1);
    CHECK_INT_EQ(rvc_exit_code(RV_E_INVALID_ARGUMENT), 2);

    const int local[] = {RV_E_DEST_IS_DIR, RV_E_DEST_UNWRITABLE, RV_E_DEST_CONFLICT,
                         RV_E_NO_SPACE,    RV_E_TOO_LARGE,       RV_E_IO};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        CHECK_INT_EQ(rvc_exit_code(local[i]), 3);

    const int temporary[] = {RV_E_CONNECT,      RV_E_RESOLVE_HOST, RV_E_TIMEOUT,
                             RV_E_TRUNCATED,    RV_E_SERVER_ERROR, RV_E_THROTTLED,
                             RV_E_RETRY_AFTER_TOO_LONG};
    for (size_t i = 0; i < sizeof(temporary) / sizeof(temporary[0]); i++)
        CHECK_INT_EQ(rvc_exit_code(temporary[i]), 4);

    const int refused[] = {RV_E_NOT_FOUND, RV_E_ACCESS_DENIED,     RV_E_HTTP_STATUS, RV_E_BAD_URL,
                           RV_E_UNSUPPORTED_SCHEME, RV_E_TLS, RV_E_TOO_MANY_REDIRECTS};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        CHECK_INT_EQ(rvc_exit_code(refused[i]), 5);

    CHECK_INT_EQ(rvc_exit_code(RV_E_SIZE_MISMATCH), 6);
    CHECK_INT_EQ(rvc_exit_code(RV_E_CHECKSUM_MISMATCH), 6);
    CHECK_INT_EQ(rvc_exit_code(RV_E_PROTOCOL), 7);
    CHECK_INT_EQ(rvc_exit_code(RV_E_CHANGED), 7);
    CHECK_INT_EQ(rvc_exit_code(RV_E_DEST_EXISTS), 10);
    CHECK_INT_EQ(rvc_exit_code(RV_E_CANCELLED), 130);

    CHECK_INT_EQ(rvc_exit_for_signal(SIGINT), 130);
    CHECK_INT_EQ(rvc_exit_for_signal(SIGTERM), 143);
    CHECK_INT_EQ(rvc_exit_for_signal(SIGHUP), 1);
}

/* The gRPC status of a call to retrieverd: every code maps to a documented
 * exit code, and the classes are the documented ones. */
static void test_rpc(void) {
    for (int code = 0; code <= 16; code++) {
        int e = rvc_exit_for_rpc(code);
        CHECK(rvc_exit_describe(e) != NULL);
        if (code != RVC_RPC_OK)
            CHECK(e != RVC_EXIT_OK);
    }
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_OK), 0);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_INVALID_ARGUMENT), 2);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_RESOURCE_EXHAUSTED), 4);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_UNAVAILABLE), 8);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_DEADLINE_EXCEEDED), 8);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_PERMISSION_DENIED), 9);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_UNIMPLEMENTED), 9);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_ALREADY_EXISTS), 10);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_INTERNAL), 1);
    CHECK_INT_EQ(rvc_exit_for_rpc(RVC_RPC_CANCELLED), 1);
    CHECK_INT_EQ(rvc_exit_for_rpc(-1), 1);
    CHECK_INT_EQ(rvc_exit_for_rpc(99), 1);
    CHECK_STR_EQ(rvc_rpc_code_name(RVC_RPC_UNAVAILABLE), "UNAVAILABLE");
    CHECK_STR_EQ(rvc_rpc_code_name(16), "UNAUTHENTICATED");
    CHECK_STR_EQ(rvc_rpc_code_name(17), "UNKNOWN_STATUS");
}

/* Every code of the table appears in docs/cli.md's exit-code table as a row
 * starting "| N |". */
static void test_docs(const char *docs_path) {
    FILE *f = fopen(docs_path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    CHECK(n > 0);
    if (n <= 0) {
        free(text);
        return;
    }
#define CHECK_DOC_(name, num, desc)                                     \
    do {                                                                \
        char row_[32];                                                  \
        snprintf(row_, sizeof(row_), "\n| %d |", num);                  \
        if (!strstr(text, row_))                                        \
            fprintf(stderr, "  docs/cli.md lacks a row for exit code %d\n", num); \
        CHECK(strstr(text, row_) != NULL);                              \
    } while (0);
    RVC_EXITS(CHECK_DOC_)
#undef CHECK_DOC_
    free(text);
}

static void test_table_printed(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    rvc_exit_print_table(f);
    fclose(f);
    CHECK_STR_HAS(text, "    0  every download finished");
    CHECK_STR_HAS(text, "  130  interrupted by SIGINT");
    CHECK_STR_HAS(text, "  143  terminated by SIGTERM");
    free(text);
}

int main(int argc, char **argv) {
    test_every_error_is_documented();
    test_classes();
    test_rpc();
    test_table_printed();
    if (argc > 1)
        test_docs(argv[1]);
    return CHECK_RESULT();
}
