/* netdeny.c — the CIDR list of rv_config.deny_networks. */
#include "netdeny.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "retriever/rv_error.h"

struct net {
    int family;           /* AF_INET or AF_INET6 */
    unsigned char a[16];  /* the network, host bits cleared (4 bytes for IPv4) */
    unsigned bits;        /* prefix length */
};

struct rv_netdeny {
    struct net *v;
    size_t n;
};

void rv_netdeny_free(rv_netdeny *n) {
    if (n) {
        free(n->v);
        free(n);
    }
}

/* addr's first bits equal net's. */
static bool in_net(const struct net *net, const unsigned char *addr) {
    unsigned full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->a, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->a[full] & mask) == (addr[full] & mask);
}

/* One entry "ADDR[/LEN]" (NUL-terminated) into *ret. */
static bool parse_entry(char *s, struct net *ret) {
    char *slash = strchr(s, '/');
    unsigned long bits = 0;
    if (slash) {
        char *end;
        *slash = '\0';
        if (slash[1] < '0' || slash[1] > '9')
            return false;
        bits = strtoul(slash + 1, &end, 10);
        if (*end || end - (slash + 1) > 3)
            return false;
    }
    memset(ret, 0, sizeof(*ret));
    if (inet_pton(AF_INET, s, ret->a) == 1) {
        ret->family = AF_INET;
        if (!slash)
            bits = 32;
        if (bits > 32)
            return false;
    } else if (inet_pton(AF_INET6, s, ret->a) == 1) {
        ret->family = AF_INET6;
        if (!slash)
            bits = 128;
        if (bits > 128)
            return false;
    } else {
        return false;
    }
    ret->bits = (unsigned)bits;
    /* Clear the host bits, so matching compares the prefix only. */
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = ret->bits > i * 8 ? ret->bits - i * 8 : 0;
        if (keep < 8)
            ret->a[i] &= (unsigned char)(0xff00 >> keep);
    }
    return true;
}

int rv_netdeny_parse(const char *list, rv_netdeny **ret, char **ret_detail) {
    rv_netdeny *n = NULL;
    char *copy = strdup(list ? list : "");
    int r = copy ? RV_OK : RV_E_NOMEM;

    for (char *save = NULL, *tok = copy ? strtok_r(copy, ", \t", &save) : NULL;
         r == RV_OK && tok; tok = strtok_r(NULL, ", \t", &save)) {
        char entry[64];
        struct net net;
        snprintf(entry, sizeof(entry), "%s", tok);
        if (strlen(tok) >= sizeof(entry) || !parse_entry(tok, &net)) {
            r = RV_E_INVALID_ARGUMENT;
            if (ret_detail && asprintf(ret_detail,
                                       "'%.64s' is not a network: expected ADDRESS/PREFIX-LENGTH "
                                       "(or a bare address), IPv4 or IPv6, e.g. 10.0.0.0/8, "
                                       "fe80::/10",
                                       entry) < 0)
                *ret_detail = NULL;
            break;
        }
        if (!n && !(n = calloc(1, sizeof(*n)))) {
            r = RV_E_NOMEM;
            break;
        }
        struct net *v = realloc(n->v, (n->n + 1) * sizeof(*v));
        if (!v) {
            r = RV_E_NOMEM;
            break;
        }
        n->v = v;
        n->v[n->n++] = net;
    }
    free(copy);
    if (r != RV_OK) {
        rv_netdeny_free(n);
        return r;
    }
    *ret = n;
    return RV_OK;
}

bool rv_netdeny_match(const rv_netdeny *n, const struct sockaddr *sa) {
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const unsigned char *a4 = NULL, *a6 = NULL;
    if (!n)
        return false;
    if (sa->sa_family == AF_INET) {
        a4 = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        a6 = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0)
            a4 = a6 + 12;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct net *net = &n->v[i];
        if ((net->family == AF_INET && a4 && in_net(net, a4)) ||
            (net->family == AF_INET6 && a6 && in_net(net, a6)))
            return true;
    }
    return false;
}
