/* peer.c — peer credentials, the admission rule, the fd → credentials
 * table. */
#include "peer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------
 * Admission
 * ------------------------------------------------------------------------ */

bool rvd_access_admits(const rvd_access *a, const rvd_peer *p, bool in_group) {
    if (p->uid == 0 || p->uid == a->owner_uid)
        return true;
    if (a->mode & S_IWOTH)
        return true;
    if ((a->mode & S_IWGRP) && (p->gid == a->group || in_group))
        return true;
    return false;
}

/* Supplementary groups of fd's peer (SO_PEERGROUPS, Linux 4.13) contain
 * gid? The list is at most NGROUPS_MAX (65536) entries; start small and
 * grow once to the size the kernel asks for. */
static int peer_in_group(int fd, gid_t gid, bool *ret) {
    gid_t small[64];
    gid_t *groups = small;
    socklen_t len = sizeof(small);
    int r = 0;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
        if (errno != ERANGE)
            return -errno;
        if (len > 65536 * sizeof(gid_t))
            return -E2BIG;
        groups = malloc(len);
        if (!groups)
            return -ENOMEM;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
            r = -errno;
            goto out;
        }
    }
    *ret = false;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == gid) {
            *ret = true;
            break;
        }
out:
    if (groups != small)
        free(groups);
    return r;
}

int rvd_access_check(const rvd_access *a, int fd, rvd_peer *ret_peer, bool *ret_admitted) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    rvd_peer p = {.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};

    bool admitted = rvd_access_admits(a, &p, false);
    if (!admitted && (a->mode & S_IWGRP)) {
        bool in_group = false;
        int r = peer_in_group(fd, a->group, &in_group);
        if (r < 0)
            return r;
        admitted = rvd_access_admits(a, &p, in_group);
    }
    *ret_peer = p;
    *ret_admitted = admitted;
    return 0;
}

/* ------------------------------------------------------------------------
 * The table: an array indexed by fd, grown on demand. fds are small,
 * dense numbers, so this is both the simplest and the fastest map.
 * ------------------------------------------------------------------------ */

struct peer_slot {
    bool used;
    rvd_peer peer;
};

struct rvd_peers {
    pthread_mutex_t lock;
    struct peer_slot *slots; /* [cap] */
    size_t cap;
};

int rvd_peers_new(rvd_peers **ret) {
    rvd_peers *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    *ret = t;
    return 0;
}

rvd_peers *rvd_peers_free(rvd_peers *t) {
    if (!t)
        return NULL;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
    return NULL;
}

int rvd_peers_set(rvd_peers *t, int fd, const rvd_peer *p) {
    if (fd < 0)
        return -EINVAL;
    if (fd >= RVD_PEERS_MAX_FD)
        return -EMFILE;
    int r = 0;
    pthread_mutex_lock(&t->lock);
    if ((size_t)fd >= t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct peer_slot *s = realloc(t->slots, cap * sizeof(*s));
        if (!s) {
            r = -ENOMEM;
            goto out;
        }
        memset(s + t->cap, 0, (cap - t->cap) * sizeof(*s));
        t->slots = s;
        t->cap = cap;
    }
    t->slots[fd].used = true;
    t->slots[fd].peer = *p;
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

void rvd_peers_forget(rvd_peers *t, int fd) {
    pthread_mutex_lock(&t->lock);
    if (fd >= 0 && (size_t)fd < t->cap)
        t->slots[fd].used = false;
    pthread_mutex_unlock(&t->lock);
}

int rvd_peers_get(rvd_peers *t, int fd, rvd_peer *ret) {
    int r = -ENOENT;
    pthread_mutex_lock(&t->lock);
    if (fd >= 0 && (size_t)fd < t->cap && t->slots[fd].used) {
        *ret = t->slots[fd].peer;
        r = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

int rvd_peer_name_fd(const char *name, int *ret_fd) {
    if (!name || strncmp(name, "fd:", 3) != 0)
        return -EINVAL;
    const char *s = name + 3;
    if (*s == '\0')
        return -EINVAL;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (*s - '0');
        if (v >= RVD_PEERS_MAX_FD)
            return -EINVAL;
    }
    *ret_fd = (int)v;
    return 0;
}
