/* error.c — the error table's strings. */
#include "rv_error.h"

#include <stddef.h>

struct error_entry {
    const char *name;
    const char *message;
    bool retryable;
};

static const struct error_entry error_table[] = {
#define RV_ERROR_ENTRY_(name, num, retryable, msg) [num] = {#name, msg, retryable},
    RV_ERRORS(RV_ERROR_ENTRY_)
#undef RV_ERROR_ENTRY_
};

static const struct error_entry *error_lookup(int code) {
    if (code < 0 || (size_t)code >= sizeof(error_table) / sizeof(error_table[0]))
        return NULL;
    return error_table[code].name ? &error_table[code] : NULL;
}

const char *rv_strerror(int code) {
    const struct error_entry *e = error_lookup(code);
    return e ? e->message : "unknown error";
}

const char *rv_error_name(int code) {
    const struct error_entry *e = error_lookup(code);
    return e ? e->name : "RV_E_UNKNOWN";
}

bool rv_error_retryable(int code) {
    const struct error_entry *e = error_lookup(code);
    return e ? e->retryable : false;
}
