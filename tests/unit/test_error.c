/* test_error.c — the error table: rv_strerror, rv_error_name,
 * rv_error_retryable agree with RV_ERRORS for every code, and numbers
 * outside the table are handled. */
#include <stdbool.h>

#include "rv_error.h"
#include "rv_test.h"

struct row {
    int num;
    const char *name;
    bool retryable;
    const char *msg;
};

static const struct row table[] = {
#define ROW_(name, num, retryable, msg) {num, #name, retryable, msg},
    RV_ERRORS(ROW_)
#undef ROW_
};

#define N_ROWS (sizeof(table) / sizeof(table[0]))

int main(void) {
    int max = -1;
    for (size_t i = 0; i < N_ROWS; i++) {
        CHECK_STREQ(rv_strerror(table[i].num), table[i].msg);
        CHECK_STREQ(rv_error_name(table[i].num), table[i].name);
        CHECK(rv_error_retryable(table[i].num) == table[i].retryable);
        CHECK(rv_strerror(table[i].num)[0] != '\0');
        if (table[i].num > max)
            max = table[i].num;
        /* numbers are unique */
        for (size_t j = i + 1; j < N_ROWS; j++)
            CHECK(table[i].num != table[j].num);
    }
    /* numbers are dense from 0, so none is silently missing */
    CHECK_EQ_U64((uint64_t)max + 1, N_ROWS);

    /* Numbers are ABI: spot-check a few against their documented values. */
    CHECK_EQ_U64(RV_OK, 0);
    CHECK_EQ_U64(RV_E_NOMEM, 1);
    CHECK_EQ_U64(RV_E_BAD_URL, 3);
    CHECK_EQ_U64(RV_E_NOT_FOUND, 11);
    CHECK_EQ_U64(RV_E_THROTTLED, 20);
    CHECK_EQ_U64(RV_E_INTERNAL, 28);

    CHECK_STREQ(rv_strerror(RV_OK), "success");
    CHECK_STREQ(rv_error_name(RV_E_NOT_FOUND), "RV_E_NOT_FOUND");
    CHECK(rv_error_retryable(RV_E_TIMEOUT));
    CHECK(rv_error_retryable(RV_E_THROTTLED));
    CHECK(!rv_error_retryable(RV_E_NOT_FOUND));
    CHECK(!rv_error_retryable(RV_E_BAD_URL));
    CHECK(!rv_error_retryable(RV_OK));

    const int outside[] = {-1, -1000, max + 1, max + 1000, 1 << 30, (int)0x80000000u};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        CHECK_STREQ(rv_strerror(outside[i]), "unknown error");
        CHECK_STREQ(rv_error_name(outside[i]), "RV_E_UNKNOWN");
        CHECK(!rv_error_retryable(outside[i]));
    }
    return rv_test_result();
}
