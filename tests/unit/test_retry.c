/* test_retry.c — classification tables, the PRNG, backoff and wait. */
#include "retry.h"

#include <curl/curl.h>
#include <limits.h>

#include "rv_error.h"
#include "rv_test.h"

struct class_case {
    long code;
    rv_fault fault;
    int err;
};

static const struct class_case http_cases[] = {
    {200, RV_FAULT_NONE, RV_OK},
    {204, RV_FAULT_NONE, RV_OK},
    {206, RV_FAULT_NONE, RV_OK},
    {299, RV_FAULT_NONE, RV_OK},
    {408, RV_FAULT_TRANSIENT, RV_E_TIMEOUT},
    {425, RV_FAULT_TRANSIENT, RV_E_TIMEOUT},
    {500, RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR},
    {502, RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR},
    {504, RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR},
    {501, RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR},
    {505, RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR},
    {599, RV_FAULT_TRANSIENT, RV_E_SERVER_ERROR},
    {429, RV_FAULT_THROTTLE, RV_E_THROTTLED},
    {503, RV_FAULT_THROTTLE, RV_E_THROTTLED},
    {404, RV_FAULT_PERMANENT, RV_E_NOT_FOUND},
    {410, RV_FAULT_PERMANENT, RV_E_NOT_FOUND},
    {401, RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED},
    {403, RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED},
    {407, RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED},
    {400, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {405, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {409, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {416, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {451, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {499, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {100, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {101, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {199, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {301, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {302, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {304, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {399, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {0, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {-1, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {99, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {600, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {999, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {LONG_MAX, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {LONG_MIN, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
};

static const struct class_case curl_cases[] = {
    {CURLE_OK, RV_FAULT_NONE, RV_OK},
    {CURLE_COULDNT_CONNECT, RV_FAULT_REFUSED, RV_E_CONNECT},
    {CURLE_QUIC_CONNECT_ERROR, RV_FAULT_REFUSED, RV_E_CONNECT},
    {CURLE_PROXY, RV_FAULT_TRANSIENT, RV_E_CONNECT},
    {CURLE_COULDNT_RESOLVE_HOST, RV_FAULT_PERMANENT, RV_E_RESOLVE_HOST},
    {CURLE_COULDNT_RESOLVE_PROXY, RV_FAULT_PERMANENT, RV_E_RESOLVE_HOST},
    {CURLE_OPERATION_TIMEDOUT, RV_FAULT_TRANSIENT, RV_E_TIMEOUT},
    {CURLE_PARTIAL_FILE, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_RECV_ERROR, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_SEND_ERROR, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_GOT_NOTHING, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_HTTP2, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_HTTP2_STREAM, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_HTTP3, RV_FAULT_TRANSIENT, RV_E_TRUNCATED},
    {CURLE_WEIRD_SERVER_REPLY, RV_FAULT_TRANSIENT, RV_E_PROTOCOL},
    {CURLE_SSL_CONNECT_ERROR, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_PEER_FAILED_VERIFICATION, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_CERTPROBLEM, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_CACERT_BADFILE, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_CIPHER, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_PINNEDPUBKEYNOTMATCH, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_INVALIDCERTSTATUS, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_CLIENTCERT, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_ISSUER_ERROR, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_SSL_CRL_BADFILE, RV_FAULT_PERMANENT, RV_E_TLS},
    {CURLE_TOO_MANY_REDIRECTS, RV_FAULT_PERMANENT, RV_E_TOO_MANY_REDIRECTS},
    {CURLE_URL_MALFORMAT, RV_FAULT_PERMANENT, RV_E_BAD_URL},
    {CURLE_UNSUPPORTED_PROTOCOL, RV_FAULT_PERMANENT, RV_E_UNSUPPORTED_SCHEME},
    {CURLE_OUT_OF_MEMORY, RV_FAULT_PERMANENT, RV_E_NOMEM},
    {CURLE_WRITE_ERROR, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_ABORTED_BY_CALLBACK, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_BAD_FUNCTION_ARGUMENT, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_UNKNOWN_OPTION, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_FAILED_INIT, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_READ_ERROR, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_REMOTE_FILE_NOT_FOUND, RV_FAULT_PERMANENT, RV_E_NOT_FOUND},
    {CURLE_FILE_COULDNT_READ_FILE, RV_FAULT_PERMANENT, RV_E_NOT_FOUND},
    {CURLE_REMOTE_ACCESS_DENIED, RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED},
    {CURLE_LOGIN_DENIED, RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED},
    {CURLE_AUTH_ERROR, RV_FAULT_PERMANENT, RV_E_ACCESS_DENIED},
    {CURLE_RANGE_ERROR, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {CURLE_BAD_DOWNLOAD_RESUME, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {CURLE_BAD_CONTENT_ENCODING, RV_FAULT_PERMANENT, RV_E_PROTOCOL},
    {CURLE_HTTP_RETURNED_ERROR, RV_FAULT_PERMANENT, RV_E_HTTP_STATUS},
    {CURLE_FILESIZE_EXCEEDED, RV_FAULT_PERMANENT, RV_E_TOO_LARGE},
    {CURLE_OBSOLETE20, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURLE_OBSOLETE57, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {CURL_LAST, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {-1, RV_FAULT_PERMANENT, RV_E_INTERNAL},
    {100000, RV_FAULT_PERMANENT, RV_E_INTERNAL},
};

static void test_classify(void) {
    for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
        int err = -99;
        rv_fault f = rv_retry_classify_http(http_cases[i].code, &err);
        CHECK_EQ_U64(f, http_cases[i].fault);
        CHECK_EQ_U64(err, http_cases[i].err);
        if (f != http_cases[i].fault || err != http_cases[i].err)
            fprintf(stderr, "    for HTTP %ld\n", http_cases[i].code);
    }
    for (size_t i = 0; i < sizeof(curl_cases) / sizeof(curl_cases[0]); i++) {
        int err = -99;
        rv_fault f = rv_retry_classify_curl((int)curl_cases[i].code, &err);
        CHECK_EQ_U64(f, curl_cases[i].fault);
        CHECK_EQ_U64(err, curl_cases[i].err);
        if (f != curl_cases[i].fault || err != curl_cases[i].err)
            fprintf(stderr, "    for CURLcode %ld\n", curl_cases[i].code);
    }

    /* Whole ranges: every answer is a real table entry, NONE exactly for
     * success, and what we retry is retryable per the error table (the one
     * documented exception: a garbled reply is retried as PROTOCOL). */
    for (int c = -5; c <= CURL_LAST + 5; c++) {
        int err = -99;
        rv_fault f = rv_retry_classify_curl(c, &err);
        CHECK(strcmp(rv_error_name(err), "RV_E_UNKNOWN") != 0);
        CHECK((f == RV_FAULT_NONE) == (c == CURLE_OK));
        CHECK((err == RV_OK) == (c == CURLE_OK));
        CHECK(f != RV_FAULT_THROTTLE); /* throttling is an HTTP answer */
        if (f == RV_FAULT_TRANSIENT)
            CHECK(rv_error_retryable(err) || err == RV_E_PROTOCOL);
    }
    for (long s = -2; s <= 1000; s++) {
        int err = -99;
        rv_fault f = rv_retry_classify_http(s, &err);
        CHECK(strcmp(rv_error_name(err), "RV_E_UNKNOWN") != 0);
        CHECK((f == RV_FAULT_NONE) == (s >= 200 && s < 300));
        CHECK((err == RV_OK) == (f == RV_FAULT_NONE));
        if (f == RV_FAULT_TRANSIENT || f == RV_FAULT_THROTTLE)
            CHECK(rv_error_retryable(err));
        if (f == RV_FAULT_PERMANENT)
            CHECK(!rv_error_retryable(err));
    }
    /* ret_err may be NULL */
    CHECK_EQ_U64(rv_retry_classify_http(503, NULL), RV_FAULT_THROTTLE);
    CHECK_EQ_U64(rv_retry_classify_curl(CURLE_RECV_ERROR, NULL), RV_FAULT_TRANSIENT);
}

static void test_rng(void) {
    rv_rng a, b;
    /* splitmix64 reference values for seed 0 */
    rv_rng_seed(&a, 0);
    CHECK_EQ_U64(rv_rng_next(&a), UINT64_C(0xe220a8397b1dcdaf));
    CHECK_EQ_U64(rv_rng_next(&a), UINT64_C(0x6e789e6aa1b965f4));
    CHECK_EQ_U64(rv_rng_next(&a), UINT64_C(0x06c45d188009454f));

    rv_rng_seed(&a, 42);
    rv_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_U64(rv_rng_next(&a), rv_rng_next(&b));
    rv_rng_seed(&b, 43);
    CHECK(rv_rng_next(&a) != rv_rng_next(&b));

    rv_rng_seed(&a, 7);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_U64(rv_rng_uniform(&a, 0), 0);
    bool seen0 = false, seen1 = false;
    for (int i = 0; i < 200; i++) {
        uint64_t v = rv_rng_uniform(&a, 1);
        CHECK(v <= 1);
        seen0 |= v == 0;
        seen1 |= v == 1;
    }
    CHECK(seen0 && seen1);
    uint64_t hi = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t v = rv_rng_uniform(&a, UINT64_MAX);
        hi = v > hi ? v : hi;
    }
    CHECK(hi > UINT64_MAX / 2);

    /* A bound just above 2^63 is where modulo bias would be worst: almost
     * half the draws need rejecting; results must stay in range. */
    const uint64_t big = (UINT64_C(1) << 63) + 12345;
    for (int i = 0; i < 1000; i++)
        CHECK(rv_rng_uniform(&a, big) <= big);

    /* Uniformity over 10 buckets: each within 5% of the mean. */
    unsigned bucket[10] = {0};
    rv_rng_seed(&a, 12345);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = rv_rng_uniform(&a, 9);
        CHECK(v <= 9);
        if (v <= 9)
            bucket[v]++;
    }
    for (int i = 0; i < 10; i++)
        CHECK(bucket[i] > 9500 && bucket[i] < 10500);
}

/* min(max, base * 2^(n-1)) in 128 bits, independent of the implementation. */
static uint64_t ref_bound(unsigned attempt, uint64_t base, uint64_t max) {
    unsigned shift = attempt ? attempt - 1 : 0;
    if (base == 0)
        return 0;
    if (shift >= 64)
        return max;
    unsigned __int128 b = (unsigned __int128)base << shift;
    return b < max ? (uint64_t)b : max;
}

static void test_backoff(void) {
    static const uint64_t bases[] = {0, 1, 3, 100, 1000, UINT64_MAX / 3, UINT64_MAX};
    static const uint64_t maxes[] = {0, 1, 500, 30000, UINT64_MAX / 2, UINT64_MAX};
    static const unsigned attempts[] = {
        0, 1, 2, 3, 5, 10, 20, 31, 32, 33, 62, 63, 64, 65, 100,
        UINT_MAX / 2, UINT_MAX - 1, UINT_MAX,
    };
    rv_rng rng;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        rv_rng_seed(&rng, seed * UINT64_C(0x9E3779B97F4A7C15));
        for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++)
            for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++)
                for (size_t a = 0; a < sizeof(attempts) / sizeof(attempts[0]); a++) {
                    uint64_t bound = ref_bound(attempts[a], bases[b], maxes[m]);
                    uint64_t w = rv_retry_backoff_ms(attempts[a], bases[b], maxes[m], &rng);
                    CHECK(w <= bound);
                    if (w > bound)
                        fprintf(stderr, "    attempt %u base %" PRIu64 " max %" PRIu64 "\n",
                                attempts[a], bases[b], maxes[m]);
                }
    }

    /* The bound doubles exactly until it reaches max: 100, 200, 400 ... */
    for (unsigned n = 1; n <= 12; n++) {
        uint64_t bound = ref_bound(n, 100, 100000);
        CHECK_EQ_U64(bound, n <= 10 ? UINT64_C(100) << (n - 1) : 100000);
    }

    /* The wait spreads over the whole interval: 1000 samples reach above 80%
     * and below 20% of the bound, for small, capped and absurd attempts. */
    static const struct {
        unsigned attempt;
        uint64_t base, max;
    } spreads[] = {
        {1, 100, 30000},   {3, 100, 30000},         {5, 250, 30000},
        {9, 100, 30000},   {20, 100, 30000},        {UINT_MAX, 100, 30000},
        {64, 1, UINT64_MAX}, {UINT_MAX, UINT64_MAX, UINT64_MAX},
        /* shifts of 64 and more must saturate, not wrap to small shifts */
        {65, 100, 30000},  {66, 100, 30000},        {129, 100, 30000},
    };
    for (size_t i = 0; i < sizeof(spreads) / sizeof(spreads[0]); i++) {
        uint64_t bound = ref_bound(spreads[i].attempt, spreads[i].base, spreads[i].max);
        uint64_t lo = UINT64_MAX, hi = 0;
        rv_rng_seed(&rng, 1000 + i);
        for (int s = 0; s < 1000; s++) {
            uint64_t w = rv_retry_backoff_ms(spreads[i].attempt, spreads[i].base, spreads[i].max,
                                             &rng);
            CHECK(w <= bound);
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        CHECK(hi > bound / 10 * 8);
        CHECK(lo < bound / 10 * 2);
        if (hi <= bound / 10 * 8 || lo >= bound / 10 * 2)
            fprintf(stderr, "    spread %zu: lo %" PRIu64 " hi %" PRIu64 " bound %" PRIu64 "\n",
                    i, lo, hi, bound);
    }

    /* Same seed, same waits: jitter is reproducible. */
    rv_rng r1, r2;
    rv_rng_seed(&r1, 99);
    rv_rng_seed(&r2, 99);
    for (unsigned n = 1; n < 50; n++)
        CHECK_EQ_U64(rv_retry_backoff_ms(n, 100, 60000, &r1),
                     rv_retry_backoff_ms(n, 100, 60000, &r2));
}

static void test_wait(void) {
    rv_rng r1, r2;
    int too_long = -1;

    /* No Retry-After: exactly the backoff. */
    rv_rng_seed(&r1, 5);
    rv_rng_seed(&r2, 5);
    for (unsigned n = 1; n < 20; n++) {
        too_long = -1;
        uint64_t w = rv_retry_wait_ms(n, 100, 30000, UINT64_MAX, 60000, &r1, &too_long);
        CHECK_EQ_U64(w, rv_retry_backoff_ms(n, 100, 30000, &r2));
        CHECK_EQ_U64(too_long, 0);
    }

    /* Retry-After present: the server's value, even above max_ms, and the
     * rng is not consumed. */
    rv_rng_seed(&r1, 5);
    rv_rng_seed(&r2, 5);
    static const struct {
        uint64_t ra, cap;
        int too_long;
    } ras[] = {
        {0, 60000, 0},
        {1, 60000, 0},
        {45000, 60000, 0},         /* above max_ms (30000), under the cap */
        {60000, 60000, 0},         /* at the cap */
        {60001, 60000, 1},         /* over it */
        {UINT64_MAX / 2, 60000, 1}, /* parser's saturation value */
        {UINT64_MAX - 1, UINT64_MAX - 1, 0},
        {5, 0, 1},
        {0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(ras) / sizeof(ras[0]); i++) {
        too_long = -1;
        uint64_t w = rv_retry_wait_ms(3, 100, 30000, ras[i].ra, ras[i].cap, &r1, &too_long);
        CHECK_EQ_U64(w, ras[i].ra);
        CHECK_EQ_U64(too_long, ras[i].too_long);
    }
    CHECK_EQ_U64(rv_rng_next(&r1), rv_rng_next(&r2));

    /* ret_too_long may be NULL */
    CHECK_EQ_U64(rv_retry_wait_ms(1, 100, 30000, 70000, 60000, &r1, NULL), 70000);
}

int main(void) {
    test_classify();
    test_rng();
    test_backoff();
    test_wait();
    return rv_test_result();
}
