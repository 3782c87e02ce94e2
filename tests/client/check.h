/* check.h — the client unit tests' minimal assertion macros.
 *
 * A failed CHECK prints file:line and the expression and counts a failure;
 * the test keeps going so one run shows every broken case. Each test program
 * ends with `return CHECK_RESULT();` (exit status 1 if anything failed).
 */
#ifndef RVC_TEST_CHECK_H
#define RVC_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures_;
static int check_count_;

#define CHECK(expr)                                                                 \
    do {                                                                            \
        check_count_++;                                                             \
        if (!(expr)) {                                                              \
            check_failures_++;                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
        }                                                                           \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                \
    do {                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                               \
        check_count_++;                                                                   \
        if (a_ != b_) {                                                                   \
            check_failures_++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__,   \
                    __LINE__, #a, #b, a_, b_);                                            \
        }                                                                                 \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                \
    do {                                                                                  \
        const char *a_ = (a), *b_ = (b);                                                  \
        check_count_++;                                                                   \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                          \
            check_failures_++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s\n  got:  \"%s\"\n  want: \"%s\"\n", \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
        }                                                                                 \
    } while (0)

/* a contains b */
#define CHECK_STR_HAS(a, b)                                                               \
    do {                                                                                  \
        const char *a_ = (a), *b_ = (b);                                                  \
        check_count_++;                                                                   \
        if (!a_ || !strstr(a_, b_)) {                                                     \
            check_failures_++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s contains %s\n  got:  \"%s\"\n  want: \"%s\"\n", \
                    __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_);                  \
        }                                                                                 \
    } while (0)

#define CHECK_RESULT()                                                                    \
    (fprintf(stderr, "%d checks, %d failed\n", check_count_, check_failures_),             \
     check_failures_ ? 1 : 0)

#endif
