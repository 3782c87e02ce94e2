/* test_netdeny.c — the CIDR list of rv_config.deny_networks. */
#include "netdeny.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "rv_error.h"
#include "rv_test.h"

/* Whether the list denies the address text (IPv4 or IPv6). */
static bool denies(const rv_netdeny *n, const char *ip) {
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, ip, &a4.sin_addr) == 1)
        return rv_netdeny_match(n, (struct sockaddr *)&a4);
    if (inet_pton(AF_INET6, ip, &a6.sin6_addr) == 1)
        return rv_netdeny_match(n, (struct sockaddr *)&a6);
    CHECK(!"not an address");
    return false;
}

static void test_match(void) {
    rv_netdeny *n = NULL;
    char *detail = NULL;
    CHECK_EQ_U64(rv_netdeny_parse("127.0.0.0/8,10.1.2.3/12 ::1/128,\tfe80::/10, 192.0.2.7, "
                                  "2001:db8::/33",
                                  &n, &detail),
                 RV_OK);
    CHECK(detail == NULL);
    CHECK(denies(n, "127.0.0.1"));
    CHECK(denies(n, "127.255.255.254"));
    CHECK(!denies(n, "128.0.0.1"));
    CHECK(denies(n, "10.0.0.1"));       /* 10.1.2.3/12 is 10.0.0.0/12: host bits ignored */
    CHECK(denies(n, "10.15.255.255"));
    CHECK(!denies(n, "10.16.0.0"));
    CHECK(denies(n, "192.0.2.7"));      /* a bare address: one host */
    CHECK(!denies(n, "192.0.2.8"));
    CHECK(denies(n, "::1"));
    CHECK(!denies(n, "::2"));
    CHECK(denies(n, "fe80::1"));
    CHECK(denies(n, "febf::1"));
    CHECK(!denies(n, "fec0::1"));
    CHECK(denies(n, "2001:db8:7fff::1")); /* /33: the 33rd bit is 0 */
    CHECK(!denies(n, "2001:db8:8000::1"));
    CHECK(denies(n, "::ffff:127.0.0.1")); /* IPv4-mapped counts as IPv4 */
    CHECK(!denies(n, "::ffff:8.8.8.8"));
    CHECK(!denies(n, "::127.0.0.1"));     /* not mapped (the old compatible form) */
    rv_netdeny_free(n);

    /* /0 denies a whole family; nothing of the other. */
    CHECK_EQ_U64(rv_netdeny_parse("0.0.0.0/0", &n, NULL), RV_OK);
    CHECK(denies(n, "8.8.8.8"));
    CHECK(denies(n, "::ffff:8.8.8.8"));
    CHECK(!denies(n, "2001:db8::1"));
    rv_netdeny_free(n);

    /* Empty lists: nothing denied, no table. */
    CHECK_EQ_U64(rv_netdeny_parse("", &n, NULL), RV_OK);
    CHECK(n == NULL);
    CHECK_EQ_U64(rv_netdeny_parse(" , ", &n, NULL), RV_OK);
    CHECK(n == NULL);
    CHECK_EQ_U64(rv_netdeny_parse(NULL, &n, NULL), RV_OK);
    CHECK(n == NULL);
    CHECK(!denies(NULL, "127.0.0.1"));
}

static void test_bad(void) {
    static const char *const bad[] = {"127.0.0.1/33", "::1/129", "example.org", "10.0.0/8",
                                      "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "1.2.3.4/0008",
                                      "/8", "10.0.0.0/8/8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rv_netdeny *n = (rv_netdeny *)1;
        char *detail = NULL;
        char list[128];
        snprintf(list, sizeof(list), "10.0.0.0/8, %s", bad[i]);
        CHECK_EQ_U64(rv_netdeny_parse(list, &n, &detail), RV_E_INVALID_ARGUMENT);
        CHECK(n == (rv_netdeny *)1); /* untouched */
        char want[64];
        snprintf(want, sizeof(want), "'%s' is not a network", bad[i]);
        CHECK(detail && strstr(detail, want));
        free(detail);
    }
}

int main(void) {
    test_match();
    test_bad();
    return rv_test_result();
}
