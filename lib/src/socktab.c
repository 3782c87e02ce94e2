/* socktab.c — the TCP sockets libcurl opened for one engine. */
#include "socktab.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct sock_entry {
    int fd;
    int local_port, remote_port; /* 0 until the socket is seen connected */
    char remote_ip[INET6_ADDRSTRLEN];
};

struct rv_socktab {
    struct sock_entry *v;
    size_t n, cap;
};

rv_socktab *rv_socktab_new(void) { return calloc(1, sizeof(rv_socktab)); }

void rv_socktab_free(rv_socktab *tab) {
    if (!tab)
        return;
    free(tab->v);
    free(tab);
}

/* A table without room still lets the socket be used: finding it is an
 * optimisation, never a condition of the transfer. */
static int on_open(void *ud, curl_socket_t fd, curlsocktype purpose) {
    rv_socktab *tab = ud;

    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKOPT_OK;
    if (tab->n == tab->cap) {
        size_t cap = tab->cap ? tab->cap * 2 : 16;
        struct sock_entry *v = realloc(tab->v, cap * sizeof(*v));
        if (!v)
            return CURL_SOCKOPT_OK;
        tab->v = v;
        tab->cap = cap;
    }
    tab->v[tab->n++] = (struct sock_entry){.fd = fd};
    return CURL_SOCKOPT_OK;
}

static int on_close(void *ud, curl_socket_t fd) {
    rv_socktab *tab = ud;

    for (size_t i = 0; i < tab->n; i++) {
        if (tab->v[i].fd == fd) {
            tab->v[i] = tab->v[--tab->n];
            break;
        }
    }
    return close(fd);
}

void rv_socktab_attach(rv_socktab *tab, CURL *easy) {
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_open);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, tab);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, tab);
}

/* The port (0 when not IP) and, if ip is given, the address as text. */
static int addr_of(const struct sockaddr_storage *ss, char *ip) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (ip && !inet_ntop(AF_INET, &a->sin_addr, ip, INET6_ADDRSTRLEN))
            return 0;
        return ntohs(a->sin_port);
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (ip && !inet_ntop(AF_INET6, &a->sin6_addr, ip, INET6_ADDRSTRLEN))
            return 0;
        return ntohs(a->sin6_port);
    }
    return 0;
}

/* Learn an entry's addresses once it is connected; a socket still
 * connecting has no peer yet and is asked again next time. */
static void learn_addresses(struct sock_entry *s) {
    struct sockaddr_storage local, remote;
    socklen_t llen = sizeof(local), rlen = sizeof(remote);

    if (getsockname(s->fd, (struct sockaddr *)&local, &llen) != 0 ||
        getpeername(s->fd, (struct sockaddr *)&remote, &rlen) != 0)
        return;
    int remote_port = addr_of(&remote, s->remote_ip);
    s->local_port = remote_port ? addr_of(&local, NULL) : 0;
    s->remote_port = remote_port;
}

int rv_socktab_find(rv_socktab *tab, const char *remote_ip, int remote_port, int local_port) {
    for (size_t i = 0; i < tab->n; i++) {
        struct sock_entry *s = &tab->v[i];
        if (s->local_port == 0)
            learn_addresses(s);
        if (s->local_port == local_port && s->remote_port == remote_port &&
            strcmp(s->remote_ip, remote_ip) == 0)
            return s->fd;
    }
    return -1;
}
