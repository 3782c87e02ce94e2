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

int rvd_peer_copy(rvd_peer *dst, const rvd_peer *src) {
    *dst = *src;
    dst->groups = NULL;
    if (src->n_groups > 0) {
        dst->groups = malloc(src->n_groups * sizeof(gid_t));
        if (!dst->groups) {
            dst->n_groups = 0;
            dst->groups_known = false;
            return -ENOMEM;
        }
        memcpy(dst->groups, src->groups, src->n_groups * sizeof(gid_t));
    }
    return 0;
}

void rvd_peer_clear(rvd_peer *p) {
    if (!p)
        return;
    free(p->groups);
    p->groups = NULL;
    p->n_groups = 0;
    p->groups_known = false;
}

/* ------------------------------------------------------------------------
 * Admission
 * ------------------------------------------------------------------------ */

static bool in_groups(const rvd_peer *p, gid_t gid) {
    for (size_t i = 0; i < p->n_groups; i++)
        if (p->groups[i] == gid)
            return true;
    return false;
}

bool rvd_access_admits(const rvd_access *a, const rvd_peer *p) {
    if (p->uid == 0 || p->uid == a->owner_uid)
        return true;
    if (a->mode & S_IWOTH)
        return true;
    if ((a->mode & S_IWGRP) && (p->gid == a->group || in_groups(p, a->group)))
        return true;
    return false;
}

/* fd's peer's supplementary groups (SO_PEERGROUPS, Linux 4.13) into p.
 * The list is at most NGROUPS_MAX entries; ask with room for a typical
 * list, and once more with the size the kernel says it needs. */
static int read_groups(int fd, rvd_peer *p) {
    socklen_t len = 64 * sizeof(gid_t);
    gid_t *groups = malloc(len);
    int r = 0;
    if (!groups)
        return -ENOMEM;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
        if (errno != ERANGE) {
            r = -errno;
            goto out;
        }
        if (len > RVD_PEER_MAX_GROUPS * sizeof(gid_t)) {
            r = -E2BIG;
            goto out;
        }
        gid_t *g = realloc(groups, len);
        if (!g) {
            r = -ENOMEM;
            goto out;
        }
        groups = g;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
            r = -errno; /* ERANGE again: it changed meanwhile; refuse */
            goto out;
        }
    }
    p->n_groups = len / sizeof(gid_t);
    p->groups_known = true;
    if (p->n_groups > 0) {
        p->groups = groups;
        groups = NULL;
    }
out:
    free(groups);
    return r;
}

int rvd_access_check(const rvd_access *a, int fd, rvd_peer *ret_peer, bool *ret_admitted) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    rvd_peer p = {.pid = cred.pid, .uid = cred.uid, .gid = cred.gid};
    int r = read_groups(fd, &p);
    if (r < 0)
        return r;
    *ret_peer = p;
    *ret_admitted = rvd_access_admits(a, &p);
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
    for (size_t i = 0; i < t->cap; i++)
        rvd_peer_clear(&t->slots[i].peer);
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
    rvd_peer copy;
    r = rvd_peer_copy(&copy, p);
    if (r < 0)
        goto out;
    rvd_peer_clear(&t->slots[fd].peer);
    t->slots[fd].used = true;
    t->slots[fd].peer = copy;
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

void rvd_peers_forget(rvd_peers *t, int fd) {
    pthread_mutex_lock(&t->lock);
    if (fd >= 0 && (size_t)fd < t->cap) {
        t->slots[fd].used = false;
        rvd_peer_clear(&t->slots[fd].peer);
    }
    pthread_mutex_unlock(&t->lock);
}

int rvd_peers_get(rvd_peers *t, int fd, rvd_peer *ret) {
    int r = -ENOENT;
    pthread_mutex_lock(&t->lock);
    if (fd >= 0 && (size_t)fd < t->cap && t->slots[fd].used)
        r = rvd_peer_copy(ret, &t->slots[fd].peer);
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
