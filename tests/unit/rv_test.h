/* rv_test.h — the unit tests' whole harness.
 *
 * Each test program is one .c file including this header once. CHECK*
 * macros print file:line and the values on failure and count failures;
 * they never abort, so one run shows every failing check. main() ends with
 * `return rv_test_result();`, which is non-zero when any check failed.
 */
#ifndef RV_TEST_H
#define RV_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned rv_test_failures_;
static unsigned rv_test_checks_;

static inline void rv_test_fail_(const char *file, int line, const char *what) {
    fprintf(stderr, "%s:%d: FAILED %s\n", file, line, what);
    rv_test_failures_++;
}

#define CHECK(cond)                                      \
    do {                                                 \
        rv_test_checks_++;                               \
        if (!(cond))                                     \
            rv_test_fail_(__FILE__, __LINE__, "CHECK(" #cond ")"); \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                            \
    do {                                                                              \
        uint64_t rv_a_ = (uint64_t)(a), rv_b_ = (uint64_t)(b);                        \
        rv_test_checks_++;                                                            \
        if (rv_a_ != rv_b_) {                                                         \
            rv_test_fail_(__FILE__, __LINE__, "CHECK_EQ_U64(" #a ", " #b ")");        \
            fprintf(stderr, "    %" PRIu64 " != %" PRIu64 "\n", rv_a_, rv_b_);        \
        }                                                                             \
    } while (0)

/* NULL equals only NULL. */
#define CHECK_STREQ(a, b)                                                               \
    do {                                                                                \
        const char *rv_a_ = (a), *rv_b_ = (b);                                          \
        rv_test_checks_++;                                                              \
        if (!(rv_a_ == rv_b_ || (rv_a_ && rv_b_ && strcmp(rv_a_, rv_b_) == 0))) {       \
            rv_test_fail_(__FILE__, __LINE__, "CHECK_STREQ(" #a ", " #b ")");           \
            fprintf(stderr, "    '%s' != '%s'\n", rv_a_ ? rv_a_ : "(null)",             \
                    rv_b_ ? rv_b_ : "(null)");                                          \
        }                                                                               \
    } while (0)

static inline int rv_test_result(void) {
    fprintf(stderr, "%u checks, %u failed\n", rv_test_checks_, rv_test_failures_);
    return rv_test_failures_ ? 1 : 0;
}

#endif
