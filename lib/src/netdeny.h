/* netdeny.h — destination networks the engine must not connect to
 * (rv_config.deny_networks): a CIDR list, checked against the address of
 * every socket libcurl opens — after DNS, for every address it tries, and
 * for every connection after a redirect — so neither a host name that
 * resolves to a denied address (DNS rebinding included) nor a redirect
 * reaches one. */
#ifndef RV_NETDENY_H
#define RV_NETDENY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct rv_netdeny rv_netdeny;

/* Parse "10.0.0.0/8, ::1/128 169.254.0.0/16": entries separated by commas
 * and/or blanks, each ADDR/LEN or a bare ADDR (a single host), IPv4 or
 * IPv6; host bits beyond LEN are ignored. RV_OK: *ret owned by the caller
 * (NULL for an empty list). RV_E_INVALID_ARGUMENT: *ret_detail (when not
 * NULL) a malloc'd sentence quoting the bad entry. RV_E_NOMEM. */
int rv_netdeny_parse(const char *list, rv_netdeny **ret, char **ret_detail);

/* Whether sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * its IPv4 address) lies in a denied network. n may be NULL (nothing
 * denied). */
bool rv_netdeny_match(const rv_netdeny *n, const struct sockaddr *sa);

void rv_netdeny_free(rv_netdeny *n);

#endif
