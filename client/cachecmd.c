/* cachecmd.c — see cachecmd.h. */
#include "cachecmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "exitcode.h"
#include "fmt.h"
#include "json.h"
#include "local.h"
#include "retriever/retriever.h"
#include "sigwatch.h"

#define PROG "retrieverctl"
#define LINE_MAX_BYTES 16384
#define CAT_BUF (256 * 1024)

void rvc_cache_print(FILE *out, bool json, const rvc_cache_line *l) {
    rvc_buf b;
    rvc_buf_init(&b, LINE_MAX_BYTES);
    if (json) {
        rvc_buf_puts(&b, "{\"url\": ");
        rvc_json_string(&b, l->url);
        if (l->size_known)
            rvc_buf_printf(&b, ", \"size\": %llu", (unsigned long long)l->size);
        else
            rvc_buf_puts(&b, ", \"size\": null");
        rvc_buf_printf(&b,
                       ", \"bytes\": %llu, \"complete\": %s, \"in_use\": %s, \"keyed\": %s, "
                       "\"used_unix\": %lld, \"result\": ",
                       (unsigned long long)l->bytes, l->complete ? "true" : "false",
                       l->in_use ? "true" : "false", l->keyed ? "true" : "false",
                       (long long)l->used_unix);
        rvc_json_string(&b, l->result);
        rvc_buf_puts(&b, "}");
    } else {
        char size[RVC_FMT_MAX], bytes[RVC_FMT_MAX];
        rvc_fmt_size(l->size, size);
        rvc_fmt_size(l->bytes, bytes);
        if (strcmp(l->result, "listed") == 0)
            rvc_buf_printf(&b, "%10s  %-22s  ", l->size_known ? size : "?",
                           l->complete ? (l->in_use ? "complete, in use" : "complete")
                                       : l->in_use ? "partial, in use" : "partial");
        else
            rvc_buf_printf(&b, "%-16s  ", l->result);
        if (!l->complete && strcmp(l->result, "listed") == 0)
            rvc_buf_printf(&b, "(%s durable) ", bytes);
        rvc_sanitize(&b, l->url, 4096);
    }
    if (rvc_buf_error(&b) == 0)
        fprintf(out, "%s\n", rvc_buf_str(&b));
    rvc_buf_done(&b);
}

int rvc_cache_finish(const char *action, unsigned n, unsigned bad, unsigned busy, FILE *err) {
    if (strcmp(action, "ls") == 0)
        return RVC_EXIT_OK;
    if (strcmp(action, "verify") == 0) {
        fprintf(err, PROG ": cache verify: %u entr%s checked, %u bad%s\n", n, n == 1 ? "y" : "ies",
                bad, bad ? " (removed unless in use)" : "");
        return bad ? RVC_EXIT_VERIFY : RVC_EXIT_OK;
    }
    fprintf(err, PROG ": cache %s: %u entr%s removed%s\n", action, n - busy, n - busy == 1 ? "y" : "ies",
            busy ? ", some kept: in use by a running download" : "");
    return RVC_EXIT_OK;
}

/* The directory from the option, else $XDG_x_HOME/retriever, else
 * ~/<fallback>/retriever (as download --local). */
static char *dir_path(const char *opt, const char *xdg_var, const char *fallback) {
    const char *xdg = getenv(xdg_var), *home = getenv("HOME");
    char *path = NULL;
    int n = -1;
    if (opt)
        n = asprintf(&path, "%s", opt);
    else if (xdg && xdg[0] == '/')
        n = asprintf(&path, "%s/retriever", xdg);
    else if (home && home[0] == '/')
        n = asprintf(&path, "%s/%s/retriever", home, fallback);
    return n < 0 ? NULL : path;
}

/* Open an engine on o's state (or none with no_state). for_cat: with
 * download --local's settings of o's options (cat takes them), quota
 * included; else (cache ACTION) the engine's defaults, which evict
 * nothing on open. Exit code. */
static int open_engine(const rvc_download_opts *o, bool for_cat, rv_engine **ret, FILE *err) {
    rv_config cfg;
    char *state = NULL, *cache = NULL, *detail = NULL;
    int code = RVC_EXIT_OK;
    if (for_cat)
        rvc_local_config(&cfg, o, RVC_PROGRESS_NONE);
    else
        rv_config_init(&cfg);
    if (!o->no_state) {
        state = dir_path(o->state_dir, "XDG_STATE_HOME", ".local/state");
        cache = dir_path(o->cache_dir, "XDG_CACHE_HOME", ".cache");
        if (!state || !cache) {
            fprintf(err, PROG ": cannot find the state directory: neither $XDG_STATE_HOME nor "
                         "$HOME is set (pass --state-dir)\n");
            code = RVC_EXIT_LOCAL;
            goto out;
        }
        cfg.state_dir = state;
        cfg.cache_dir = cache;
        if (for_cat)
            cfg.cache_quota = o->cache_quota;
    }
    int e = rv_engine_open(&cfg, ret, &detail);
    if (e != RV_OK) {
        fprintf(err, PROG ": cannot open the local state: %s%s%s%s%s\n", rv_strerror(e),
                detail ? " (" : "", detail ? detail : "", detail ? ")" : "",
                e == RV_E_STATE_BUSY ? "; if retrieverd owns it, leave out --local to ask it" : "");
        code = rvc_exit_code(e);
    }
out:
    free(state);
    free(cache);
    free(detail);
    return code;
}

struct local_cache {
    const rvc_cmd *cmd;
    FILE *out;
    unsigned n, bad, busy;
    bool *matched; /* rm: per URL (urls[1..]) */
};

/* Every entry, except for rm: those a URL names (each URL that does is
 * marked, to say which named nothing). */
static bool select_entry(void *ud, const rv_cache_entry *en) {
    struct local_cache *lc = ud;
    const rvc_download_opts *d = &lc->cmd->dl;
    if (strcmp(lc->cmd->cache_action, "rm") != 0)
        return true;
    bool any = false;
    for (size_t i = 1; i < d->n_urls; i++) /* urls[0] is the action */
        if (rv_cache_matches(en, d->urls[i]))
            any = lc->matched[i] = true;
    return any;
}

static void report_entry(void *ud, const rv_cache_entry *en, rv_cache_result res) {
    struct local_cache *lc = ud;
    rvc_cache_line l = {.url = en->url, .size_known = en->size_known, .size = en->size,
                        .bytes = en->bytes, .complete = en->complete, .in_use = en->in_use,
                        .keyed = en->keyed, .used_unix = en->used_unix,
                        .result = rv_cache_result_name(res)};
    lc->n++;
    lc->bad += res == RV_CACHE_CORRUPT_REMOVED || res == RV_CACHE_CORRUPT_IN_USE;
    lc->busy += res == RV_CACHE_IN_USE;
    rvc_cache_print(lc->out, lc->cmd->dl.json, &l);
}

int rvc_local_cache(const rvc_cmd *cmd, FILE *out, FILE *err) {
    rv_engine *e = NULL;
    const char *a = cmd->cache_action;
    struct local_cache lc = {.cmd = cmd, .out = out};
    int code = open_engine(&cmd->dl, false, &e, err);
    if (code != RVC_EXIT_OK)
        return code;
    lc.matched = calloc(cmd->dl.n_urls, sizeof(*lc.matched));
    rv_cache_op op = strcmp(a, "ls") == 0       ? RV_CACHE_LIST
                     : strcmp(a, "verify") == 0 ? RV_CACHE_VERIFY
                                                : RV_CACHE_REMOVE;
    int r = lc.matched ? rv_engine_cache_scan(e, op, select_entry, report_entry, &lc) : RV_E_NOMEM;
    if (r != RV_OK) {
        fprintf(err, PROG ": cache %s failed: %s\n", a, rv_strerror(r));
        code = rvc_exit_code(r);
    } else {
        for (size_t i = 1; strcmp(a, "rm") == 0 && i < cmd->dl.n_urls; i++)
            if (!lc.matched[i])
                fprintf(err, PROG ": cache rm: nothing cached for %s\n", cmd->dl.urls[i]);
        code = rvc_cache_finish(a, lc.n, lc.bad, lc.busy, err);
    }
    free(lc.matched);
    rv_engine_free(e);
    return code;
}

/* ------------------------------------------------------------------------
 * cat --local
 * ------------------------------------------------------------------------ */

/* Write all of [p, p+n) to fd. 0, or an errno (EPIPE: the reader left). */
static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

void rvc_cat_verdict(const rvc_download_opts *o, int code, uint64_t written, FILE *err) {
    if (!o->sha256[0])
        return;
    if (code == RVC_EXIT_OK && !o->quiet)
        fprintf(err, PROG ": sha256 matched (%s)\n", o->sha256);
    else if (code == RVC_EXIT_VERIFY && written)
        fprintf(err, PROG ": sha256 did NOT match; the bytes were already written to standard "
                     "output (%llu): do not use them\n", (unsigned long long)written);
}

int rvc_local_cat(const rvc_download_opts *o, FILE *out, FILE *err) {
    rv_engine *e = NULL;
    rv_object *obj = NULL;
    rvc_sigwatch *sw = NULL;
    unsigned char *buf = malloc(CAT_BUF);
    char dir[] = "/tmp/retrieverctl-cat-XXXXXX";
    char *dest = NULL, *ca_pem = NULL;
    int data_fd = -1, code = RVC_EXIT_OK;
    uint64_t off = 0;
    bool made_dir = false;

    /* The object is delivered into a private directory under /tmp (a hard
     * link to the cache's blob with state, else the file itself) and
     * removed at the end: cat keeps no file. */
    if (!buf || !mkdtemp(dir) || asprintf(&dest, "%s/object", dir) < 0) {
        fprintf(err, PROG ": cannot make a temporary directory: %s\n", strerror(errno));
        code = RVC_EXIT_LOCAL;
        dest = NULL;
        goto out;
    }
    made_dir = true;
    if (o->ca_file) {
        const char *why = NULL;
        int r = rvc_local_read_ca(o->ca_file, &ca_pem, &why);
        if (r != RV_OK) {
            fprintf(err, PROG ": cannot use the CA file '%s': %s\n", o->ca_file, why);
            code = rvc_exit_code(r);
            goto out;
        }
    }
    if (o->insecure) /* as download --local: every time, even with -q */
        fprintf(err, PROG ": warning: --insecure: https certificates are not verified; anyone "
                     "on the network path can change what is downloaded\n");
    if ((code = open_engine(o, true, &e, err)) != RVC_EXIT_OK)
        goto out;
    fflush(out);
    rv_request req;
    const char **hdrs = NULL;
    int r = rvc_local_request(o, 0, ca_pem, &req, &hdrs);
    if (r == RV_OK) {
        /* cat's own delivery (no file is kept): a hard link to the cache's
         * blob when there is a cache, else the file itself. */
        req.dest_path = dest;
        req.link = !o->no_state;
        req.copy = false;
        r = rv_engine_add(e, &req, &obj);
        free(hdrs);
    }
    if (r != RV_OK) {
        fprintf(err, PROG ": %s: %s (%s)\n", o->urls[0], rv_strerror(r),
                rv_engine_error_detail(e));
        code = rvc_exit_code(r);
        goto out;
    }
    r = rvc_sigwatch_start(e, &sw);
    for (;;) {
        if (sw && rvc_sigwatch_received(sw)) {
            rv_engine_cancel(e, obj);
            code = rvc_exit_for_signal(rvc_sigwatch_received(sw));
            break;
        }
        unsigned restarts = 0;
        uint64_t ready = rv_object_ready(obj, &restarts);
        if (restarts) {
            fprintf(err, PROG ": %s changed on the origin while it was read\n", o->urls[0]);
            rv_engine_cancel(e, obj);
            code = RVC_EXIT_PROTOCOL;
            break;
        }
        if (data_fd < 0 && ready > off) {
            data_fd = rv_object_open_data(obj);
            /* With --no-state a small object can be delivered before the
             * first look: the engine has closed its file and renamed it to
             * dest, which is ours alone (the private directory). */
            if (data_fd == -ENOENT && rv_object_state(obj) == RV_STATE_DONE) {
                data_fd = open(dest, O_RDONLY | O_CLOEXEC);
                data_fd = data_fd >= 0 ? data_fd : -errno;
            }
        }
        if (data_fd < 0 && ready > off) {
            fprintf(err, PROG ": cannot open the object's bytes: %s\n", strerror(-data_fd));
            rv_engine_cancel(e, obj);
            code = RVC_EXIT_LOCAL;
            goto drain;
        }
        while (data_fd >= 0 && off < ready) {
            size_t want = ready - off < CAT_BUF ? (size_t)(ready - off) : CAT_BUF;
            ssize_t n = pread(data_fd, buf, want, (off_t)off);
            int w = n > 0 ? write_all(fileno(out), buf, (size_t)n) : EIO;
            if (w == EPIPE) { /* the reader has what it wanted: a quiet end */
                rv_engine_cancel(e, obj);
                code = RVC_EXIT_OK;
                goto drain;
            }
            if (w) {
                fprintf(err, PROG ": cannot write to standard output: %s\n", strerror(w));
                rv_engine_cancel(e, obj);
                code = RVC_EXIT_LOCAL;
                goto drain;
            }
            off += (uint64_t)n;
        }
        rv_state st = rv_object_state(obj);
        if (rv_state_is_terminal(st) && (st != RV_STATE_DONE || off >= ready)) {
            if (st != RV_STATE_DONE) {
                fprintf(err, PROG ": %s: %s%s%s\n", o->urls[0], rv_strerror(rv_object_error(obj)),
                        *rv_object_error_detail(obj) ? ": " : "", rv_object_error_detail(obj));
                code = rvc_exit_code(rv_object_error(obj));
            }
            rvc_cat_verdict(o, code, off, err);
            break;
        }
        if (rv_engine_perform(e, 1000, NULL) != RV_OK)
            break;
    }
drain:
    /* Let a cancelled object end (it keeps its durable ranges). */
    for (int i = 0; i < 1000 && obj && !rv_state_is_terminal(rv_object_state(obj)); i++)
        rv_engine_perform(e, 100, NULL);
out:
    if (data_fd >= 0)
        close(data_fd);
    sw = rvc_sigwatch_stop(sw);
    if (obj && rv_state_is_terminal(rv_object_state(obj)))
        rv_engine_release(e, obj);
    rv_engine_free(e);
    if (dest)
        unlink(dest);
    if (made_dir)
        rmdir(dir);
    free(dest);
    free(ca_pem);
    free(buf);
    return code;
}
