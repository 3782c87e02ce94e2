/* local.c — run downloads with the engine in this process. */
#include "local.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "dest.h"
#include "s3conf.h"
#include "input.h"
#include "exitcode.h"
#include "fmt.h"
#include "json.h"
#include "progress.h"
#include "report.h"
#include "retriever/retriever.h"
#include "run.h"
#include "sigwatch.h"

#define PROG "retrieverctl"
#define MSG_MAX RVC_REPORT_MSG_MAX /* longest message line we build */
#define MAX_PENDING_RETRIES 256 /* retry events queued between two performs */
#define IDLE_TIMEOUT_MS 1000    /* perform timeout when no progress is drawn */

/* What the engine keeps of a URL of the command line, beside the core's
 * rvc_run_obj of the same index (run.h). */
struct item {
    rv_object *obj;      /* owned by the engine; NULL when not added */
    bool resume_pending; /* resumed from durable state; its line is not out yet */
};

/* A retry seen by the hook, printed after perform returns. */
struct retry_event {
    size_t item;
    unsigned attempt;
    uint64_t offset;
    uint64_t wait_ms;
    char *reason; /* owned */
};

struct run {
    rvc_run c; /* objects, views, output: the core shared with the daemon mode */

    rv_engine *engine;      /* owned */
    rvc_sigwatch *sigwatch; /* owned */
    struct item *items;     /* owned, c.n entries; never moves (hooks hold pointers) */

    struct retry_event *retries; /* owned, up to MAX_PENDING_RETRIES */
    size_t n_retries;
    size_t retries_dropped;

    char *ca_pem;          /* owned: --cacert / --cacert-only FILE's text, or NULL */
    rvc_s3 s3;             /* owned: where and as whom s3:// URLs are fetched */
    bool has_s3;           /* s3 is loaded (some URL is s3://) */
    int run_error;         /* rv_error that ended the run early (perform failed) */
    bool finished_pending; /* an object became terminal since the last scan */
};

/* ------------------------------------------------------------------------
 * Hooks: record only (they run inside rv_engine_perform and must not block)
 * ------------------------------------------------------------------------ */

static size_t item_index(struct run *r, rv_object *obj) {
    return (size_t)((struct item *)rv_object_user_data(obj) - r->items);
}

static void hook_state(void *ud, rv_object *obj, rv_state state) {
    struct run *r = ud;
    size_t i = item_index(r, obj);
    rvc_progress_item *v = &r->c.views[i];
    if (state == RV_STATE_RESOLVING && v->state == RV_STATE_QUEUED) {
        /* Starting: what is durable now came from an earlier run. */
        rv_object_progress(obj, &v->p);
        if (rvc_run_started(&r->c, i, rv_object_durable(obj)))
            r->items[i].resume_pending = true;
    }
    v->state = state;
    if (rv_state_is_terminal(state))
        r->finished_pending = true;
}

static void hook_progress(void *ud, rv_object *obj, const rv_progress *p) {
    struct run *r = ud;
    r->c.views[item_index(r, obj)].p = *p;
}

/* Recovery notes (a corrupt state database moved aside, orphan cache files
 * removed): they come while the engine opens, before any progress output. */
static void hook_notice(void *ud, const char *msg) {
    struct run *r = ud;
    if (!r->c.o->quiet)
        fprintf(r->c.err, PROG ": note: %s\n", msg);
}

static void hook_retry(void *ud, rv_object *obj, const rv_retry_info *info) {
    struct run *r = ud;
    size_t i = item_index(r, obj);
    const char *reason = info->reason ? info->reason : rv_strerror(info->error);

    /* Queue a line for the plain renderer (and --no-progress). */
    if (!rvc_run_retry(&r->c, i, info->attempt, info->wait_ms, reason))
        return;
    char *ev_reason = strdup(reason);
    if (!ev_reason || r->n_retries == MAX_PENDING_RETRIES) {
        free(ev_reason);
        r->retries_dropped++;
        return;
    }
    r->retries[r->n_retries++] = (struct retry_event){
        .item = i,
        .attempt = info->attempt,
        .offset = info->offset,
        .wait_ms = info->wait_ms,
        .reason = ev_reason,
    };
}

/* The "resuming at" lines of objects that started since the last call. */
static void flush_resumes(struct run *r) {
    for (size_t i = 0; i < r->c.n; i++) {
        struct item *it = &r->items[i];
        if (!it->resume_pending)
            continue;
        it->resume_pending = false;
        rvc_run_resuming(&r->c, i);
    }
}

static void flush_retry_events(struct run *r) {
    for (size_t k = 0; k < r->n_retries; k++) {
        struct retry_event *ev = &r->retries[k];
        rvc_run_retry_line(&r->c, ev->item, ev->attempt, ev->wait_ms, ev->offset, ev->reason);
        free(ev->reason);
    }
    r->n_retries = 0;
    if (r->retries_dropped) {
        rvc_buf_printf(&r->c.msg, "retry: (%zu more retries not shown)", r->retries_dropped);
        rvc_report_line(&r->c.rep);
        r->retries_dropped = 0;
    }
}

/* ------------------------------------------------------------------------
 * Phase 1: destinations and validation
 * ------------------------------------------------------------------------ */

/* Why rv_engine_add refused item i: the engine's detail, or for a
 * conflict the other URL on the command line (first: the first URL with
 * the same destination, i when none; the engine may also refuse a path
 * spelled differently). malloc'd or NULL. */
static char *reject_detail(const struct run *r, size_t i, size_t first, int e) {
    const rvc_run_obj *ob = &r->c.objs[i];
    rvc_buf b;
    char *s = NULL;
    rvc_buf_init(&b, MSG_MAX);
    switch (e) {
    case RV_E_DEST_CONFLICT:
        rvc_buf_printf(&b, "destination '%s'", ob->display);
        if (first != i)
            rvc_buf_printf(&b, " is also the destination of '%s'", r->c.objs[first].shown);
        break;
    default:
        rvc_buf_puts(&b, rv_engine_error_detail(r->engine));
        break;
    }
    if (b.len && rvc_buf_error(&b) == RV_OK)
        rvc_buf_steal(&b, &s);
    rvc_buf_done(&b);
    return s;
}

int rvc_local_request(const rvc_download_opts *o, size_t i, const char *ca_pem, rv_request *req,
                      const char ***ret_hdrs) {
    /* The common header lines, then -i's header= lines for URL i, then the
     * netrc's Authorization line when its host has one (the engine copies
     * them all in rv_engine_add). */
    const char **hdrs = NULL;
    size_t n_hdrs = o->n_headers;
    const rvc_input_item *in = rvc_input_item_of(o, i);
    size_t n_own = in ? in->n_headers : 0;
    *ret_hdrs = NULL;
    if ((o->auth && o->auth[i]) || n_own) {
        hdrs = malloc((n_hdrs + n_own + 1) * sizeof(*hdrs));
        if (!hdrs)
            return RV_E_NOMEM;
        if (n_hdrs)
            memcpy(hdrs, o->headers, n_hdrs * sizeof(*hdrs));
        for (size_t k = 0; k < n_own; k++)
            hdrs[n_hdrs++] = in->headers[k];
        if (o->auth && o->auth[i])
            hdrs[n_hdrs++] = o->auth[i];
    }
    *req = (rv_request){
        .url = o->urls[i],
        .sha256_hex = rvc_input_sha256(o, i),
        .headers = hdrs ? hdrs : o->headers,
        .n_headers = n_hdrs,
        .link = o->link,
        .copy = o->copy,
        .ca_pem = ca_pem,
        .ca_only = o->ca_only,
        .insecure = o->insecure,
        .max_bytes_per_sec = o->limit_rate,
        /* NULL: libcurl reads http_proxy, https_proxy, no_proxy... */
        .proxy = o->proxy,
    };
    *ret_hdrs = hdrs;
    return RV_OK;
}

/* seen: the destinations named so far (dest.h). */
static size_t add_each(struct run *r, rvc_dest_set *seen) {
    const rvc_download_opts *o = r->c.o;
    size_t rejected = 0;
    for (size_t i = 0; i < r->c.n; i++) {
        struct item *it = &r->items[i];
        rvc_run_obj *ob = &r->c.objs[i];
        size_t first = i;
        int e = rvc_destination_of(o, i, NULL, &ob->display);
        if (e == RV_OK)
            e = rvc_dest_set_add(seen, ob->display, i, &first);
        r->c.views[i].name = ob->display ? ob->display : ob->shown;
        if (e == RV_E_NOMEM) {
            r->run_error = e;
            return rejected;
        }
        if (e != RV_OK) {
            rvc_run_reject_unnamed(&r->c, i, e);
            rejected++;
            continue;
        }
        /* The engine would replace it (by rename) once the new file is
         * complete: refuse now, before anything is fetched, unless --force.
         * A name the server gives instead is checked when the engine
         * chooses it, at delivery (no_replace). */
        ob->by_server = rvc_named_by_server(o, i);
        if (!o->force && rvc_dest_exists(ob->display)) {
            char *detail = NULL;
            e = rvc_dest_exists_detail(ob->display, &detail);
            if (e == RV_E_NOMEM) {
                r->run_error = RV_E_NOMEM;
                return rejected;
            }
            rvc_run_reject(&r->c, i, e, NULL, detail);
            rejected++;
            continue;
        }
        const char **hdrs = NULL;
        rv_request req;
        int lr = rvc_local_request(o, i, r->ca_pem, &req, &hdrs);
        if (r->has_s3 && strncmp(o->urls[i], "s3://", 5) == 0)
            req.s3 = &r->s3.p;
        if (lr != RV_OK) {
            r->run_error = RV_E_NOMEM;
            return rejected;
        }
        req.dest_path = ob->display;
        req.user_data = it;
        req.name_from_disposition = ob->by_server;
        req.no_replace = ob->by_server && !o->force;
        e = rv_engine_add(r->engine, &req, &it->obj);
        free(hdrs);
        if (e == RV_E_NOMEM || e == RV_E_INTERNAL) {
            r->run_error = e;
            return rejected;
        }
        if (e != RV_OK) {
            it->obj = NULL;
            rvc_run_reject(&r->c, i, e, NULL, reject_detail(r, i, first, e));
            rejected++;
            continue;
        }
        r->c.views[i].state = rv_object_state(it->obj);
    }
    return rejected;
}

/* Give every URL a destination and add it to the engine. Returns the number
 * of URLs rejected (reported by rvc_report_rejected), or sets r->run_error
 * on failures that are not any one URL's. */
static size_t add_all(struct run *r) {
    rvc_dest_set *seen = NULL;
    size_t n = 0;
    if (rvc_dest_set_new(r->c.n, &seen) == RV_OK)
        n = add_each(r, seen);
    else
        r->run_error = RV_E_NOMEM;
    rvc_dest_set_free(seen); /* before any display changes: it borrows them */
    rvc_report_rejected_end(&r->c.rep);
    return n;
}

/* ------------------------------------------------------------------------
 * Phase 2: the run loop
 * ------------------------------------------------------------------------ */

/* Report item i, which just reached a terminal state. */
static void report_final(struct run *r, size_t i) {
    struct item *it = &r->items[i];
    rvc_run_obj *ob = &r->c.objs[i];
    rvc_progress_item *v = &r->c.views[i];
    rv_state st = rv_object_state(it->obj);
    int err = rv_object_error(it->obj);
    bool done = st == RV_STATE_DONE;
    uint32_t crc = 0;

    rv_object_progress(it->obj, &v->p);
    v->retries = rv_object_retries(it->obj);
    v->cached = done && rv_object_from_cache(it->obj);
    rvc_run_end end = {
        .state = st,
        .error = err != RV_OK ? err : RV_E_INTERNAL,
        .message = rv_strerror(err != RV_OK ? err : RV_E_INTERNAL),
        .detail = rv_object_error_detail(it->obj),
        /* A cancel of this run's own (a signal, a failed perform) is told
         * by the summary, not once per URL. */
        .no_error_line = st == RV_STATE_CANCELLED && (r->c.signo || r->run_error),
        .seconds = rv_object_seconds(it->obj),
        .sha256 = done ? rv_object_sha256_hex(it->obj) : NULL,
        .has_crc32c = done && rv_object_crc32c(it->obj, &crc),
    };
    end.crc32c = crc;
    /* The final name (the server's, when it gave one). Out of memory, the
     * name asked for stands. */
    if (ob->by_server && strcmp(rv_object_path(it->obj), ob->display) != 0)
        end.display = strdup(rv_object_path(it->obj));
    rvc_run_final(&r->c, i, &end);
}

/* Report every item newly terminal, in command-line order. */
static void collect_finished(struct run *r) {
    r->finished_pending = false;
    for (size_t i = 0; i < r->c.n; i++) {
        if (!r->c.objs[i].reported && rv_state_is_terminal(rv_object_state(r->items[i].obj)))
            report_final(r, i);
    }
}

static void cancel_all(struct run *r) {
    for (size_t i = 0; i < r->c.n; i++) {
        struct item *it = &r->items[i];
        if (!r->c.objs[i].reported && !rv_state_is_terminal(rv_object_state(it->obj)))
            rv_engine_cancel(r->engine, it->obj);
    }
}

/* The engine counts its transfers, not each object's: they are shown for
 * the one object downloading when there is one, else not at all. Called
 * by rvc_run_draw before each frame. */
static void set_connections(void *ud) {
    struct run *r = ud;
    size_t active = 0, last = 0;
    for (size_t i = 0; i < r->c.n; i++) {
        r->c.views[i].connections = 0;
        if (r->c.views[i].state == RV_STATE_DOWNLOADING) {
            active++;
            last = i;
        }
    }
    if (active == 1)
        r->c.views[last].connections = rv_engine_transfers(r->engine);
}

static void run_loop(struct run *r) {
    bool cancelled = false;
    for (;;) {
        int timeout = rvc_progress_timeout_ms(r->c.progress, rvc_now_ms());
        unsigned active = 0;
        int e = rv_engine_perform(r->engine, timeout < 0 ? IDLE_TIMEOUT_MS : timeout, &active);
        if (e != RV_OK) {
            rvc_buf_printf(&r->c.msg, PROG ": the download engine failed: %s", rv_strerror(e));
            rvc_report_line(&r->c.rep);
            r->run_error = e;
        }
        if (!cancelled && !r->run_error)
            r->c.signo = rvc_sigwatch_received(r->sigwatch);
        if (!cancelled && (r->run_error || r->c.signo)) {
            /* Every object is terminal when this returns, but those being
             * put in place, which end in a later perform (the contract does
             * not promise on_state for it, so scan). */
            cancel_all(r);
            cancelled = true;
            r->finished_pending = true;
        }

        flush_resumes(r);
        flush_retry_events(r);
        if (r->finished_pending)
            collect_finished(r);
        rvc_run_draw(&r->c);

        if (r->c.n_reported == r->c.n || r->run_error)
            break; /* after a failed perform, rv_engine_free cleans up the rest */
        if (active == 0) {
            /* The engine says nothing is left: trust the getters, not the
             * hooks, then fail loudly rather than spin. */
            collect_finished(r);
            if (r->c.n_reported == r->c.n)
                break;
            rvc_buf_puts(&r->c.msg, PROG ": the engine stopped with downloads unfinished");
            rvc_report_line(&r->c.rep);
            r->run_error = RV_E_INTERNAL;
            break;
        }
    }
}

/* ------------------------------------------------------------------------
 * Phase 3: the exit code and the summary
 * ------------------------------------------------------------------------ */

static int exit_code(const struct run *r) {
    if (r->c.signo)
        return rvc_exit_for_signal(r->c.signo);
    if (r->run_error)
        return rvc_exit_code(r->run_error);
    return rvc_run_exit(&r->c);
}

static void summary(struct run *r) {
    uint64_t *kept = NULL;
    if (r->c.signo) {
        /* What a rerun resumes from: the durable part of each cancelled
         * download (the engine keeps it: rv_durable_end). */
        kept = calloc(r->c.n, sizeof(*kept));
        for (size_t i = 0; kept && i < r->c.n; i++)
            if (r->items[i].obj && r->c.views[i].state != RV_STATE_DONE)
                kept[i] = rv_object_durable(r->items[i].obj);
    }
    rvc_run_summary(&r->c, kept, r->c.o->no_state, NULL);
    free(kept);
}

/* ------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------ */

/* The directory from the option, else $XDG_x_HOME/retriever, else
 * ~/<fallback>/retriever. malloc'd, or NULL with a message in *why. The
 * engine creates it (mkdir -p, mode 0700) and says so when it cannot. */
static char *state_path(const char *opt, const char *xdg_var, const char *fallback,
                        const char **why) {
    const char *xdg = getenv(xdg_var), *home = getenv("HOME");
    char *path = NULL;
    int n;

    if (opt)
        n = asprintf(&path, "%s", opt);
    else if (xdg && xdg[0] == '/')
        n = asprintf(&path, "%s/retriever", xdg);
    else if (home && home[0] == '/')
        n = asprintf(&path, "%s/%s/retriever", home, fallback);
    else {
        *why = "neither $XDG_STATE_HOME/$XDG_CACHE_HOME nor $HOME is set";
        return NULL;
    }
    if (n < 0) {
        *why = "out of memory";
        return NULL;
    }
    return path;
}

/* FILE of --cacert / --cacert-only, read as this user: its text (malloc'd)
 * in *ret, or a sentence in *ret_why. At most RV_CA_PEM_MAX bytes. */
int rvc_local_read_ca(const char *path, char **ret, const char **ret_why) {
    FILE *f = fopen(path, "rbe");
    char *buf = NULL;
    size_t n = 0;
    int e = RV_E_INVALID_ARGUMENT;

    if (!f) {
        *ret_why = strerror(errno);
        return e;
    }
    buf = malloc(RV_CA_PEM_MAX + 2);
    if (!buf) {
        e = RV_E_NOMEM;
        *ret_why = "out of memory";
        goto out;
    }
    n = fread(buf, 1, RV_CA_PEM_MAX + 1, f);
    if (ferror(f)) {
        *ret_why = "cannot read it";
    } else if (n > RV_CA_PEM_MAX) {
        *ret_why = "larger than 1 MiB: not a CA file";
    } else {
        buf[n] = '\0';
        if (!strstr(buf, "-----BEGIN CERTIFICATE-----")) {
            *ret_why = "no PEM certificate in it (-----BEGIN CERTIFICATE-----)";
        } else {
            *ret = buf;
            buf = NULL;
            e = RV_OK;
        }
    }
out:
    free(buf);
    fclose(f);
    return e;
}

void rvc_local_config(rv_config *cfg, const rvc_download_opts *o, rvc_progress_mode mode) {
    rv_config_init(cfg);
    if (o->connections) {
        cfg->max_connections_per_object = o->connections;
        if (cfg->max_connections < o->connections)
            cfg->max_connections = o->connections;
        if (cfg->max_connections_per_host < o->connections)
            cfg->max_connections_per_host = o->connections;
    }
    if (o->http2 >= 0)
        cfg->http2 = (rv_http2_mode)o->http2;
    if (o->chunk_size) {
        cfg->chunk_size = o->chunk_size;
        if (cfg->min_chunk_size > o->chunk_size)
            cfg->min_chunk_size = o->chunk_size;
    }
    if (o->retries >= 0)
        cfg->max_attempts = (unsigned)o->retries + 1;
    if (o->connect_timeout_ms)
        cfg->connect_timeout_ms = o->connect_timeout_ms;
    if (o->stall_timeout_ms)
        cfg->stall_timeout_ms = o->stall_timeout_ms;
    if (o->connect_retry_ms)
        cfg->connect_retry_ms = o->connect_retry_ms;
    /* --cacert goes with each request (ca_pem), which adds to the system's
     * store; cfg->ca_file would replace it. */
    /* The digest costs CPU (docs/engine.md): computed when asked for, and
     * by default when the JSON line will carry it. --sha256 always gets it. */
    cfg->compute_sha256 = o->digest == 1 || (o->digest < 0 && o->json);
    if (mode == RVC_PROGRESS_TTY)
        cfg->progress_interval_ms = RVC_PROGRESS_TTY_MS;
}

/* Whether o sets any engine setting that only --local applies. */
static bool engine_options(const rvc_download_opts *o) {
    return o->chunk_size || o->http2 >= 0 || o->retries >= 0 || o->connect_timeout_ms || o->stall_timeout_ms ||
           o->ca_file || o->cache_quota != RVC_DEFAULT_CACHE_QUOTA;
}

int rvc_local_download(const rvc_download_opts *o, FILE *out, FILE *err) {
    struct run r = {0};
    rv_hooks hooks = {
        .on_state = hook_state,
        .on_progress = hook_progress,
        .on_retry = hook_retry,
        .on_notice = hook_notice,
    };
    char *state_dir = NULL, *cache_dir = NULL, *detail = NULL;
    rv_config cfg;
    rvc_progress_mode mode;
    int code;
    int e;

    rv_tune_malloc(); /* this process runs the engine */
    rvc_run_init(&r.c, o, out, err, false);
    r.c.before_draw = set_connections;
    r.c.before_draw_ud = &r;
    mode = rvc_report_progress_mode(o, r.c.err_tty);
    rvc_local_config(&cfg, o, mode);
    cfg.hooks = &hooks;
    cfg.hooks_ud = &r;

    r.items = calloc(o->n_urls ? o->n_urls : 1, sizeof(*r.items));
    r.retries = calloc(MAX_PENDING_RETRIES, sizeof(*r.retries));
    e = r.items && r.retries ? rvc_run_open(&r.c, o->n_urls, mode, true) : RV_E_NOMEM;
    if (e != RV_OK) {
        fprintf(err, PROG ": %s\n", rv_strerror(e));
        code = rvc_exit_code(e);
        goto finish;
    }
    if (o->ca_file) {
        const char *why = NULL;
        e = rvc_local_read_ca(o->ca_file, &r.ca_pem, &why);
        if (e != RV_OK) {
            rvc_buf_printf(&r.c.msg, PROG ": cannot use the CA file '%s': %s", o->ca_file, why);
            rvc_report_line(&r.c.rep);
            code = rvc_exit_code(e);
            goto finish;
        }
    }
    for (size_t i = 0; i < o->n_urls && !r.has_s3; i++) {
        if (strncmp(o->urls[i], "s3://", 5) != 0)
            continue;
        const char *why = NULL;
        e = rvc_s3_load(o, &r.s3, &why);
        if (e != RV_OK) {
            rvc_buf_printf(&r.c.msg, PROG ": %s", why ? why : rv_strerror(e));
            rvc_report_line(&r.c.rep);
            code = rvc_exit_code(e);
            goto finish;
        }
        r.has_s3 = true;
    }
    if (o->insecure) {
        /* Every time, and even with -q: the user must not forget it is on. */
        rvc_buf_puts(&r.c.msg, PROG ": warning: --insecure: https certificates are not verified; "
                             "anyone on the network path can change what is downloaded");
        rvc_report_line(&r.c.rep);
    }

    if (!o->no_state) {
        const char *why = NULL;
        state_dir = state_path(o->state_dir, "XDG_STATE_HOME", ".local/state", &why);
        if (state_dir)
            cache_dir = state_path(o->cache_dir, "XDG_CACHE_HOME", ".cache", &why);
        if (!state_dir || !cache_dir) {
            rvc_buf_printf(&r.c.msg, PROG ": cannot use the %s directory: %s (or pass --no-state)",
                           state_dir ? "cache" : "state", why);
            rvc_report_line(&r.c.rep);
            code = rvc_exit_code(RV_E_DEST_UNWRITABLE);
            goto finish;
        }
        cfg.state_dir = state_dir;
        cfg.cache_dir = cache_dir;
        cfg.cache_quota = o->cache_quota;
        /* deliveries: a reflink or a copy (rv_config default) */
    }
    e = rv_engine_open(&cfg, &r.engine, &detail);
    if (e == RV_E_STATE_BUSY && !o->state_dir && !o->cache_dir && !engine_options(o)) {
        /* The default directory is the per-user retrieverd's too: let it
         * download (main.c hands over). */
        rvc_buf_printf(&r.c.msg, PROG ": --local: the state directory '%s' is in use (by "
                               "retrieverd, or another --local download); downloading through "
                               "retrieverd instead (--state-dir DIR: --local with a directory "
                               "of its own)",
                       state_dir);
        rvc_report_line(&r.c.rep);
        code = RVC_LOCAL_HANDOVER;
        goto finish;
    }
    if (e != RV_OK) {
        rvc_buf_printf(&r.c.msg, PROG ": cannot start the download engine: %s", rv_strerror(e));
        if (detail)
            rvc_buf_printf(&r.c.msg, " (%s)", detail);
        else if (e == RV_E_INVALID_ARGUMENT)
            rvc_buf_puts(&r.c.msg, " (check the option values)");
        if (e == RV_E_STATE_BUSY)
            rvc_buf_puts(&r.c.msg, "; wait for it, or pass --no-state or another --state-dir");
        else if (e == RV_E_DEST_UNWRITABLE && cfg.state_dir)
            rvc_buf_puts(&r.c.msg, "; pass --no-state, or --state-dir/--cache-dir elsewhere");
        rvc_report_line(&r.c.rep);
        code = rvc_exit_code(e);
        goto finish;
    }

    /* Phase 1. */
    size_t rejected = add_all(&r);
    if (r.run_error) {
        rvc_buf_printf(&r.c.msg, PROG ": %s", rv_strerror(r.run_error));
        rvc_report_line(&r.c.rep);
        code = rvc_exit_code(r.run_error);
        goto finish;
    }
    if (rejected) {
        code = rvc_run_rejected(&r.c, rejected);
        goto finish;
    }

    /* Phase 2. */
    e = rvc_sigwatch_start(r.engine, &r.sigwatch);
    if (e != RV_OK) {
        rvc_buf_printf(&r.c.msg, PROG ": cannot watch for signals: %s", rv_strerror(e));
        rvc_report_line(&r.c.rep);
        code = rvc_exit_code(e);
        goto finish;
    }
    run_loop(&r);
    r.sigwatch = rvc_sigwatch_stop(r.sigwatch);
    rvc_progress_end(r.c.progress);

    /* Phase 3. */
    summary(&r);
    code = exit_code(&r);

finish:
    /* The engine goes before the items: freeing it cancels whatever is left
     * (removing temporary files) and may still run hooks that touch items. */
    r.sigwatch = rvc_sigwatch_stop(r.sigwatch);
    r.engine = rv_engine_free(r.engine);
    free(state_dir);
    free(cache_dir);
    free(detail);
    for (size_t k = 0; r.retries && k < r.n_retries; k++)
        free(r.retries[k].reason);
    rvc_run_done(&r.c);
    free(r.items);
    free(r.retries);
    free(r.ca_pem);
    rvc_s3_free(&r.s3);
    return code;
}
