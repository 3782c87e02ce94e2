/* peer.c — peer credentials, the admission rule, the fd → credentials
 * table. */
#include "peer.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

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
    /* Recorded by rvd_peers_admit: a connection in the counts (admitted,
     * or refused and being answered), known by its socket's identity,
     * which the sweep compares with what the fd is now. */
    bool counted;
    bool refused;
    dev_t dev;
    ino_t ino;
    char *refusal; /* refused: the sentence its calls get */
    rvd_peer peer;
};

/* Admitted connections of one uid (entries with n > 0 only). */
struct uidconns {
    uid_t uid;
    unsigned n;
};

struct rvd_peers {
    pthread_mutex_t lock;
    struct peer_slot *slots; /* [cap] */
    size_t cap;
    /* Counts of the connections rvd_peers_admit recorded and that were
     * alive at the last look: admitted in all, refused being answered,
     * admitted per uid. gRPC closes a connection's fd without telling us,
     * so they may count connections that have gone since; the sweep
     * corrects them. */
    unsigned n_conns, n_refused;
    struct uidconns *uids;
    size_t n_uids, cap_uids;
    int64_t swept_ms; /* CLOCK_MONOTONIC of the last sweep; 0: never */
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
    for (size_t i = 0; i < t->cap; i++) {
        rvd_peer_clear(&t->slots[i].peer);
        free(t->slots[i].refusal);
    }
    free(t->slots);
    free(t->uids);
    free(t);
    return NULL;
}

static struct uidconns *uid_find(rvd_peers *t, uid_t uid) {
    for (size_t i = 0; i < t->n_uids; i++)
        if (t->uids[i].uid == uid)
            return &t->uids[i];
    return NULL;
}

static unsigned uid_count(rvd_peers *t, uid_t uid) {
    const struct uidconns *u = uid_find(t, uid);
    return u ? u->n : 0;
}

/* One more admitted connection of uid. 0 or -ENOMEM. Lock held. */
static int uid_add(rvd_peers *t, uid_t uid) {
    struct uidconns *u = uid_find(t, uid);
    if (!u) {
        if (t->n_uids == t->cap_uids) {
            size_t cap = t->cap_uids ? 2 * t->cap_uids : 8;
            struct uidconns *v = realloc(t->uids, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            t->uids = v;
            t->cap_uids = cap;
        }
        u = &t->uids[t->n_uids++];
        *u = (struct uidconns){.uid = uid};
    }
    u->n++;
    return 0;
}

/* Slot s's connection is gone (or its fd is being reused): out of the
 * counts. Lock held. */
static void slot_uncount(rvd_peers *t, struct peer_slot *s) {
    if (!s->counted)
        return;
    s->counted = false;
    if (s->refused) {
        t->n_refused--;
    } else {
        t->n_conns--;
        struct uidconns *u = uid_find(t, s->peer.uid);
        if (u && --u->n == 0)
            *u = t->uids[--t->n_uids];
    }
    s->refused = false;
    free(s->refusal);
    s->refusal = NULL;
}

/* Grow the table to hold fd. Lock held. */
static int slots_reserve(rvd_peers *t, int fd) {
    if ((size_t)fd < t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct peer_slot *s = realloc(t->slots, cap * sizeof(*s));
    if (!s)
        return -ENOMEM;
    memset(s + t->cap, 0, (cap - t->cap) * sizeof(*s));
    t->slots = s;
    t->cap = cap;
    return 0;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether fd is still the socket recorded in s: a closed fd fails fstat,
 * a reused one is another file. */
static bool slot_alive(int fd, const struct peer_slot *s) {
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
}

static void sweep_locked(rvd_peers *t) {
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].counted && !slot_alive((int)i, &t->slots[i]))
            slot_uncount(t, &t->slots[i]);
    t->swept_ms = mono_ms();
}

void rvd_peers_sweep(rvd_peers *t) {
    pthread_mutex_lock(&t->lock);
    sweep_locked(t);
    pthread_mutex_unlock(&t->lock);
}

/* The refusal for p's new connection under lim, or NULL when it may be
 * admitted; *ret_nomem on ENOMEM. Lock held. */
static char *refusal(rvd_peers *t, const rvd_peer *p, const rvd_conn_limits *lim,
                     bool *ret_nomem) {
    char *msg = NULL;
    unsigned mine = uid_count(t, p->uid);
    bool exempt = p->uid == 0 || p->uid == geteuid();
    if (!exempt && lim->max_per_uid && mine >= lim->max_per_uid)
        msg = rvd_strdupf("uid %u has %u of %u connections open (per-uid-connections); close "
                          "some of them (or share one channel) before opening more",
                          (unsigned)p->uid, mine, lim->max_per_uid);
    else if (lim->max_total && t->n_conns >= lim->max_total)
        msg = rvd_strdupf("the daemon has %u of %u connections of all users open "
                          "(max-client-connections); try again later",
                          t->n_conns, lim->max_total);
    else
        return NULL;
    *ret_nomem = !msg;
    return msg;
}

int rvd_peers_admit(rvd_peers *t, int fd, const rvd_peer *p, const rvd_conn_limits *lim,
                    rvd_conn_verdict *ret_verdict, char **ret_why) {
    struct stat st;
    if (fd < 0)
        return -EINVAL;
    if (fd >= RVD_PEERS_MAX_FD)
        return -EMFILE;
    if (fstat(fd, &st) < 0)
        return -errno;
    rvd_peer copy = {0};
    char *why = NULL;
    bool nomem = false;
    int r = 0;
    pthread_mutex_lock(&t->lock);
    if ((r = slots_reserve(t, fd)) < 0)
        goto out;
    struct peer_slot *s = &t->slots[fd];
    slot_uncount(t, s); /* fd is reused: whatever it was is gone */
    why = refusal(t, p, lim, &nomem);
    if (why && mono_ms() - t->swept_ms >= RVD_CONN_SWEEP_MS) {
        /* At a limit: count again what is really open, refused ones
         * included (at most once per RVD_CONN_SWEEP_MS, so that a flood
         * of connections costs little each). */
        sweep_locked(t);
        free(why);
        why = refusal(t, p, lim, &nomem);
    }
    if (nomem) {
        r = -ENOMEM;
        goto out;
    }
    rvd_conn_verdict v = !why                              ? RVD_CONN_ADMITTED
                         : t->n_refused < lim->max_refused ? RVD_CONN_REFUSED
                                                           : RVD_CONN_DROPPED;
    if (v == RVD_CONN_DROPPED)
        goto done;
    if ((r = rvd_peer_copy(&copy, p)) < 0)
        goto out;
    if (v == RVD_CONN_ADMITTED && (r = uid_add(t, p->uid)) < 0)
        goto out;
    rvd_peer_clear(&s->peer);
    s->used = true;
    s->peer = copy;
    copy = (rvd_peer){0};
    s->counted = true;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    if (v == RVD_CONN_REFUSED) {
        s->refused = true;
        s->refusal = why ? strdup(why) : NULL;
        t->n_refused++;
    } else {
        t->n_conns++;
    }
done:
    *ret_verdict = v;
    if (ret_why) {
        *ret_why = why;
        why = NULL;
    }
out:
    pthread_mutex_unlock(&t->lock);
    rvd_peer_clear(&copy);
    free(why);
    return r;
}

char *rvd_peers_refusal(rvd_peers *t, int fd) {
    char *msg = NULL;
    pthread_mutex_lock(&t->lock);
    if (fd >= 0 && (size_t)fd < t->cap && t->slots[fd].used && t->slots[fd].refused)
        msg = strdup(t->slots[fd].refusal ? t->slots[fd].refusal : "too many connections");
    pthread_mutex_unlock(&t->lock);
    return msg;
}

void rvd_peers_counts(rvd_peers *t, uid_t uid, unsigned *ret_total, unsigned *ret_uid,
                      unsigned *ret_refused) {
    pthread_mutex_lock(&t->lock);
    *ret_total = t->n_conns;
    *ret_uid = uid_count(t, uid);
    *ret_refused = t->n_refused;
    pthread_mutex_unlock(&t->lock);
}

int rvd_peers_set(rvd_peers *t, int fd, const rvd_peer *p) {
    if (fd < 0)
        return -EINVAL;
    if (fd >= RVD_PEERS_MAX_FD)
        return -EMFILE;
    int r = 0;
    pthread_mutex_lock(&t->lock);
    if ((r = slots_reserve(t, fd)) < 0)
        goto out;
    rvd_peer copy;
    r = rvd_peer_copy(&copy, p);
    if (r < 0)
        goto out;
    slot_uncount(t, &t->slots[fd]);
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
        slot_uncount(t, &t->slots[fd]);
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
