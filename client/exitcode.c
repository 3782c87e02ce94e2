/* exitcode.c — the one mapping from rv_error to the command line's exit code. */
#include "exitcode.h"

#include <signal.h>
#include <stddef.h>
#include <string.h>

#include "retriever/rv_error.h"
#include "rpc.h"

rvc_exit rvc_exit_code(int rv_err) {
    /* No default: -Wswitch flags any rv_error added to the table but not
     * mapped here. */
    switch ((rv_error)rv_err) {
    case RV_OK:
        return RVC_EXIT_OK;

    case RV_E_NOMEM:
    case RV_E_INTERNAL:
        return RVC_EXIT_INTERNAL;

    case RV_E_INVALID_ARGUMENT:
        /* Everything the command line hands the engine comes from the user. */
        return RVC_EXIT_USAGE;

    case RV_E_DEST_IS_DIR:
    case RV_E_DEST_UNWRITABLE:
    case RV_E_DEST_CONFLICT:
    case RV_E_NO_SPACE:
    case RV_E_TOO_LARGE:
    case RV_E_IO:
    case RV_E_STATE_BUSY:
    case RV_E_STATE:
        return RVC_EXIT_LOCAL;

    case RV_E_CONNECT:
    case RV_E_RESOLVE_HOST:
    case RV_E_TIMEOUT:
    case RV_E_TRUNCATED:
    case RV_E_SERVER_ERROR:
    case RV_E_THROTTLED:
    case RV_E_RETRY_AFTER_TOO_LONG:
        return RVC_EXIT_TEMPORARY;

    case RV_E_NOT_FOUND:
    case RV_E_ACCESS_DENIED:
    case RV_E_HTTP_STATUS:
    case RV_E_BAD_URL:
    case RV_E_UNSUPPORTED_SCHEME:
    case RV_E_TLS:
    case RV_E_TOO_MANY_REDIRECTS:
        return RVC_EXIT_REFUSED;

    case RV_E_SIZE_MISMATCH:
    case RV_E_CHECKSUM_MISMATCH:
        return RVC_EXIT_VERIFY;

    case RV_E_PROTOCOL:
    case RV_E_CHANGED:
        return RVC_EXIT_PROTOCOL;

    case RV_E_DEST_EXISTS:
        return RVC_EXIT_DEST_EXISTS;

    case RV_E_CANCELLED:
        return RVC_EXIT_SIGINT;
    }
    return RVC_EXIT_INTERNAL;
}

rvc_exit rvc_exit_for_rpc(int rpc_code) {
    switch ((rvc_rpc_code)rpc_code) {
    case RVC_RPC_OK:
        return RVC_EXIT_OK;
    case RVC_RPC_INVALID_ARGUMENT:
    case RVC_RPC_OUT_OF_RANGE:
        return RVC_EXIT_USAGE;
    case RVC_RPC_RESOURCE_EXHAUSTED:
        return RVC_EXIT_TEMPORARY;
    case RVC_RPC_UNAVAILABLE:
    case RVC_RPC_DEADLINE_EXCEEDED:
        return RVC_EXIT_DAEMON_UNAVAILABLE;
    case RVC_RPC_PERMISSION_DENIED:
    case RVC_RPC_UNAUTHENTICATED:
    case RVC_RPC_UNIMPLEMENTED:
        return RVC_EXIT_DAEMON_REFUSED;
    case RVC_RPC_ALREADY_EXISTS:
        /* retrieverd's only ALREADY_EXISTS: a destination it was asked
         * not to replace (DownloadRequest.no_replace) exists. */
        return RVC_EXIT_DEST_EXISTS;
    case RVC_RPC_CANCELLED:
    case RVC_RPC_UNKNOWN:
    case RVC_RPC_NOT_FOUND:
    case RVC_RPC_FAILED_PRECONDITION:
    case RVC_RPC_ABORTED:
    case RVC_RPC_INTERNAL:
    case RVC_RPC_DATA_LOSS:
        return RVC_EXIT_INTERNAL;
    }
    return RVC_EXIT_INTERNAL;
}

rvc_exit rvc_exit_for_signal(int signo) {
    switch (signo) {
    case SIGINT:
        return RVC_EXIT_SIGINT;
    case SIGTERM:
        return RVC_EXIT_SIGTERM;
    default:
        return RVC_EXIT_INTERNAL;
    }
}

struct exit_entry {
    int code;
    const char *desc;
};

static const struct exit_entry exit_table[] = {
#define RVC_EXIT_ENTRY_(name, num, desc) {num, desc},
    RVC_EXITS(RVC_EXIT_ENTRY_)
#undef RVC_EXIT_ENTRY_
};

const char *rvc_exit_describe(int code) {
    for (size_t i = 0; i < sizeof(exit_table) / sizeof(exit_table[0]); i++)
        if (exit_table[i].code == code)
            return exit_table[i].desc;
    return NULL;
}

/* Print desc word-wrapped to fit `width` columns, continuation lines
 * indented by `indent` spaces (the first line's indent is already out). */
static void print_wrapped(FILE *f, const char *desc, size_t indent, size_t width) {
    size_t col = indent;
    const char *p = desc;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + word > width) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, word, f);
        col += word;
        p += word;
        p += strspn(p, " ");
    }
    fputc('\n', f);
}

void rvc_exit_print_table(FILE *f) {
    for (size_t i = 0; i < sizeof(exit_table) / sizeof(exit_table[0]); i++) {
        fprintf(f, "  %3d  ", exit_table[i].code);
        print_wrapped(f, exit_table[i].desc, 7, 79);
    }
}
