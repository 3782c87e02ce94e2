/* test_states.c — the engine's two state machines (drawn in lib/src/
 * object.c): an object's (rv_state, changed only by engine.c's
 * object_set_state, reached through rv_engine.life) and a range's
 * (rv_chunk_state, changed only by rv_chunk_set_state). Every legal change
 * is made (and, for objects, counted by the state entered and reported to
 * on_state, but for a return to QUEUED); every other change is refused
 * with nothing changed: an assertion (abort) in a debug build; in a
 * release build the object fails with RV_E_INTERNAL and a detail naming
 * the change. Each case runs in a child process, so either
 * outcome can be checked in whichever build runs the test. The tables here
 * are written from the drawings, not from the library's table. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_int.h"
#include "rv_test.h"

#define N_STATES (RV_STATE_CANCELLED + 1)
#define N_CHUNK_STATES (RV_CHUNK_DONE + 1)

enum { Q = RV_STATE_QUEUED, R = RV_STATE_RESOLVING, D = RV_STATE_DOWNLOADING,
       V = RV_STATE_VERIFYING, OK = RV_STATE_DONE, F = RV_STATE_FAILED,
       C = RV_STATE_CANCELLED };

/* The drawing in object.c, row by row: from -> the states it may enter. */
static bool obj_legal(int from, int to) {
    static const bool t[N_STATES][N_STATES] = {
        /*        Q  R  D  V  OK F  C */
        [Q] = {1, 1, 0, 0, 0, 1, 1},
        [R] = {1, 1, 1, 1, 0, 1, 1},
        [D] = {1, 1, 1, 1, 0, 1, 1},
        [V] = {0, 1, 1, 1, 1, 1, 1},
        [OK] = {0, 0, 0, 0, 1, 0, 0},
        [F] = {0, 0, 0, 0, 0, 1, 0},
        [C] = {0, 0, 0, 0, 0, 0, 1},
    };
    return t[from][to];
}

static bool chunk_legal(int from, int to) {
    static const bool t[N_CHUNK_STATES][N_CHUNK_STATES] = {
        /*                 TODO ACTIVE DONE */
        [RV_CHUNK_TODO] = {1, 1, 1},
        [RV_CHUNK_ACTIVE] = {1, 1, 1},
        [RV_CHUNK_DONE] = {0, 0, 1},
    };
    return t[from][to];
}

static char dir[] = "/tmp/rv_test_states_XXXXXX";

/* The on_state hook's reports: how many, and the last state reported. */
static unsigned n_reported;
static int last_reported = -1;

static void on_state(void *ud, rv_object *obj, rv_state state) {
    (void)ud;
    (void)obj;
    n_reported++;
    last_reported = (int)state;
}

static const rv_hooks hooks = {.on_state = on_state};

/* A queued object of a new engine (file://: no network). */
static rv_object *object(rv_engine **ret) {
    char src[300], dest[300];
    rv_config cfg;
    rv_engine *e = NULL;
    rv_object *o = NULL;
    snprintf(src, sizeof(src), "file://%s/src", dir);
    snprintf(dest, sizeof(dest), "%s/dest", dir);
    rv_config_init(&cfg);
    cfg.hooks = &hooks;
    if (rv_engine_new(&cfg, &e) != RV_OK)
        _exit(2);
    rv_request req = {.url = src, .dest_path = dest};
    if (rv_engine_add(e, &req, &o) != RV_OK || o->state != RV_STATE_QUEUED)
        _exit(3);
    *ret = e;
    return o;
}

/* Bring a queued object to state s by legal steps. */
static void reach(rv_object *o, int s) {
    static const int path[] = {R, D, V, OK};
    const rv_lifecycle *life = o->engine->life;
    if (s == Q)
        return;
    if (s == F || s == C) {
        life->set_state(o, (rv_state)s);
        return;
    }
    for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++) {
        life->set_state(o, (rv_state)path[i]);
        if (path[i] == s)
            return;
    }
}

/* In a child: from -> to on an object. Exit 0 when a legal change was made
 * and counted, or an illegal one refused (the state and counts unchanged;
 * a live object failed with RV_E_INTERNAL naming the change). A debug
 * build aborts in the assertion instead. */
static void object_child(int from, int to) {
    rv_engine *e = NULL;
    rv_object *o = object(&e);
    reach(o, from);
    if ((int)o->state != from || o->err != RV_OK)
        _exit(4);
    uint64_t before[N_STATES];
    memcpy(before, e->n_entered, sizeof(before));
    unsigned reported = n_reported;
    e->life->set_state(o, (rv_state)to);
    bool ok;
    if (obj_legal(from, to)) {
        /* Reported once, but for a follower's return to QUEUED (and no
         * change at all). */
        bool report = from != to && to != Q;
        ok = (int)o->state == to && o->err == RV_OK &&
             e->n_entered[to] == before[to] + (from != to) &&
             n_reported == reported + report && (!report || last_reported == to);
    } else {
        char names[64];
        snprintf(names, sizeof(names), "%s -> %s", rv_state_name((rv_state)from),
                 rv_state_name((rv_state)to));
        ok = (int)o->state == from && memcmp(before, e->n_entered, sizeof(before)) == 0 &&
             n_reported == reported;
        if (!rv_state_is_terminal((rv_state)from))
            ok = ok && o->err == RV_E_INTERNAL && o->err_detail &&
                 strstr(o->err_detail, names);
    }
    _exit(ok ? 0 : 1);
}

/* In a child: from -> to on a range of an object. As object_child. */
static void chunk_child(int from, int to) {
    rv_engine *e = NULL;
    rv_object *o = object(&e);
    rv_chunk c = {.start = 4096, .end = 8192, .pos = 4096};
    if (from != RV_CHUNK_TODO &&
        rv_chunk_set_state(o, &c, from == RV_CHUNK_DONE ? RV_CHUNK_DONE : RV_CHUNK_ACTIVE) !=
            RV_OK)
        _exit(4);
    int r = rv_chunk_set_state(o, &c, (rv_chunk_state)to);
    bool ok;
    if (chunk_legal(from, to))
        ok = r == RV_OK && (int)c.state == to && o->err == RV_OK;
    else
        ok = r == RV_E_INTERNAL && (int)c.state == from && o->err == RV_E_INTERNAL &&
             o->err_detail && strstr(o->err_detail, "illegal range state change") &&
             strstr(o->err_detail, "byte 4096");
    _exit(ok ? 0 : 1);
}

/* Run child(from, to) in a child process: legal changes must succeed (exit
 * 0); illegal ones must be refused (exit 0) or abort (a debug build). */
static unsigned run(void (*child)(int, int), bool legal, int from, int to) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* A debug build's assertion leaves no core file behind. */
        setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
        child(from, to);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    bool ok = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
              (!legal && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    if (!ok)
        fprintf(stderr, "%s %d -> %d: %s (status %#x)\n",
                child == object_child ? "object" : "range", from, to,
                legal ? "legal change not made" : "illegal change not refused", status);
    CHECK(ok);
    return 1;
}

/* Two requests for one object share its download: the second follows the
 * first. The first cancelled, the second goes back to QUEUED (through
 * object_set_state: DOWNLOADING -> QUEUED, legal, counted, not reported)
 * and fetches the object itself. */
static void test_follower_requeued(void) {
    char src_path[300], src[320], d1[300], d2[300], state[300];
    rv_config cfg;
    rv_engine *e = NULL;
    rv_object *l = NULL, *f = NULL;
    unsigned active = 0;

    snprintf(src_path, sizeof(src_path), "%s/big", dir);
    snprintf(src, sizeof(src), "file://%s", src_path);
    snprintf(d1, sizeof(d1), "%s/d1", dir);
    snprintf(d2, sizeof(d2), "%s/d2", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    FILE *fp = fopen(src_path, "w");
    CHECK(fp != NULL);
    if (!fp)
        return;
    /* Larger than one perform call copies (WORK_BUDGET): the leader is
     * still copying when it is cancelled. */
    CHECK(ftruncate(fileno(fp), 64 << 20) == 0);
    fclose(fp);
    rv_config_init(&cfg);
    cfg.hooks = &hooks;
    cfg.state_dir = state;
    CHECK_EQ_U64(rv_engine_new(&cfg, &e), RV_OK);
    if (!e)
        return;
    rv_request r1 = {.url = src, .dest_path = d1}, r2 = {.url = src, .dest_path = d2};
    CHECK_EQ_U64(rv_engine_add(e, &r1, &l), RV_OK);
    CHECK_EQ_U64(rv_engine_add(e, &r2, &f), RV_OK);
    for (int i = 0; i < 1000 && !f->leader && !rv_state_is_terminal(l->state); i++)
        CHECK_EQ_U64(rv_engine_perform(e, 100, &active), RV_OK);
    CHECK(f->leader == l);
    CHECK(l->state == RV_STATE_DOWNLOADING);
    CHECK(f->state == RV_STATE_DOWNLOADING);
    CHECK_EQ_U64(e->n_entered[RV_STATE_QUEUED], 2);
    unsigned reported = n_reported;

    CHECK_EQ_U64(rv_engine_cancel(e, l), RV_OK);
    CHECK(l->state == RV_STATE_CANCELLED);
    CHECK(f->state == RV_STATE_QUEUED && f->leader == NULL && f->err == RV_OK);
    CHECK_EQ_U64(e->n_entered[RV_STATE_QUEUED], 3);
    CHECK_EQ_U64(n_reported, reported + 1); /* the leader's CANCELLED only */
    CHECK_EQ_U64(last_reported, RV_STATE_CANCELLED);

    active = 1;
    for (int i = 0; i < 100000 && !rv_state_is_terminal(f->state); i++)
        CHECK_EQ_U64(rv_engine_perform(e, 100, &active), RV_OK);
    CHECK_EQ_U64(f->state, RV_STATE_DONE);
    CHECK_EQ_U64(f->err, RV_OK);
    CHECK_EQ_U64(e->n_entered[RV_STATE_DONE], 1);
    CHECK_EQ_U64(e->n_entered[RV_STATE_CANCELLED], 1);
    rv_engine_free(e);
    unlink(src_path);
    unlink(d2);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
    CHECK(system(cmd) == 0);
}

int main(void) {
    unsigned legal = 0, illegal = 0;
    CHECK(mkdtemp(dir) != NULL);

    /* The library's tables agree with the drawings. */
    for (int f = 0; f < N_STATES; f++)
        for (int t = 0; t < N_STATES; t++)
            CHECK(rv_object_transition_legal((rv_state)f, (rv_state)t) == obj_legal(f, t));
    for (int f = 0; f < N_CHUNK_STATES; f++)
        for (int t = 0; t < N_CHUNK_STATES; t++)
            CHECK(rv_chunk_transition_legal((rv_chunk_state)f, (rv_chunk_state)t) ==
                  chunk_legal(f, t));

    for (int f = 0; f < N_STATES; f++)
        for (int t = 0; t < N_STATES; t++) {
            bool l = obj_legal(f, t);
            *(l ? &legal : &illegal) += run(object_child, l, f, t);
        }
    CHECK_EQ_U64(legal, 25); /* 7 to the same state, 18 changes */
    CHECK_EQ_U64(illegal, 24);

    legal = illegal = 0;
    for (int f = 0; f < N_CHUNK_STATES; f++)
        for (int t = 0; t < N_CHUNK_STATES; t++) {
            bool l = chunk_legal(f, t);
            *(l ? &legal : &illegal) += run(chunk_child, l, f, t);
        }
    CHECK_EQ_U64(legal, 7);
    CHECK_EQ_U64(illegal, 2);

    test_follower_requeued();

    CHECK(rmdir(dir) == 0);
    return rv_test_result();
}
