/* stage.c — big objects, written by the writer threads (writer.h) from
 * staging buffers: with durable state through O_DIRECT, otherwise through
 * the page cache; with a digest, hashed from the same buffers.
 *
 * Why: written from libcurl's buffer, each byte costs the engine thread a
 * copy into a new page-cache page, while the same thread receives every
 * connection's bytes. Copied into a stage instead (a plain memcpy, a
 * fraction of that), the page-cache write runs on a writer thread, on
 * another core (the measurements: docs/benchmarks.md, "What each default was chosen from").
 * With state, every byte must reach the disk before the download is
 * delivered anyway, and through the page cache it would cost a writeback
 * by the flusher's fdatasync later too: written
 * with O_DIRECT from the stage, the disk takes the bytes from that buffer
 * (libcurl's is not aligned, which O_DIRECT needs) and nothing is written
 * back (on a file system that refuses O_DIRECT, through the page cache).
 *
 * Digested objects: the digest takes bytes in file order (digester.h).
 * A stage that lands is held (o->held) instead of going back to the pool,
 * and the digester hashes it from its buffer once the digest frontier
 * reaches it; it returns to the pool when hashed. Nothing is read back,
 * and with state the bytes still bypass the page cache. To keep the
 * frontier close behind the download, such an object's ranges are small
 * (rv_stage_digest_range: DIGEST_LEAD stages over its connections, started
 * in order), a range that starts DIGEST_LEAD stages or more past what the
 * digester has been given waits to start (rv_stage_range_waits), and a
 * transfer that would run that far mid-range is paused
 * (rv_stage_hold_back, rv_stage_resume).
 * Held stages over all objects stay under HOLD_MAX: beyond, the farthest
 * is let go and its bytes are read back, like every byte that never was
 * in a held stage (resumed ranges, unstaged objects, cache hits). A
 * restart, failure or cancel gives the object's held stages back
 * (rv_stage_release_held, stagepool.c, from rv_outfile_reset and
 * rv_outfile_close);
 * those in a digest request come back with it (outfile.c).
 *
 * The tee: with state and delivered as a copy (no link), each stage is
 * written twice by its lane: into the blob as above, then,
 * through the page cache, at the same offset into the object's tee, an
 * unnamed file (O_TMPFILE, or a hidden name) next to the destination,
 * made when the blob's first byte arrives (not for a resumed blob).
 * Delivery renames the tee into place instead of copying the blob, which
 * on a file system without reflinks read every byte back from the disk
 * (O_DIRECT left none in the page cache). The tee serves only when the
 * stages of the current gen that landed in it add up to the object's
 * size; otherwise the copy (durable.c, delivery_of). A stage goes back to
 * the pool only after both writes (the writer returns it then); a failed
 * tee write fails the object. A restart truncates the tee as the blob
 * (rv_outfile_reset), a new blob drops it (rv_outfile_close), and so do
 * failure, cancel and close. (Where the file system has reflinks, the
 * copy would have cost nothing, and the tee costs a page-cache write and
 * its writeback: the two are not told apart yet.)
 *
 * How: a transfer copies what it receives into its stage, a buffer of
 * STAGE_SIZE aligned to STAGE_ALIGN that covers the next bytes of its
 * range, and hands it to the writer when it is full or the transfer ends.
 * A stage whose offset and length are multiples of STAGE_ALIGN is written
 * through the O_DIRECT descriptor; any other (the first bytes of a range
 * that starts mid-block, the object's last bytes) through the ordinary one.
 * Both kinds only ever cover whole STAGE_ALIGN blocks or parts of blocks
 * no direct write touches, so the page cache and direct writes never
 * disagree about a block.
 *
 * Invariants: a chunk's bytes [start, landed) are in the file; [landed,
 * pos) are in stages (a transfer's, or the writer's). A range's stages all
 * go to one lane of the writer, which writes them in submission order, and
 * they are submitted in file order, so they land in order and landed only
 * grows by whole stages. Syncs and digests look at landed, never pos.
 * o->writes counts the object's stages in the writer; an object is
 * verified and delivered only with none.
 *
 * Memory: one stage per running transfer plus STAGE_SPARE (STAGE_SIZE
 * each), plus the held ones; a transfer that needs a stage when all are
 * out waits for the writer to return one (the disk is the bottleneck
 * then). Free stages are released when no transfer runs. A digested
 * object's stages (filling, in the writer, held, in a digest request) all
 * lie within 2 * DIGEST_LEAD stages of what is hashed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "engine_int.h"

/* Large enough for a direct write to reach the disk's speed; each running
 * transfer holds one (smaller stages were slower with state: docs/benchmarks.md, "What each default was chosen from"). */
#define STAGE_SIZE (512u << 10)

/* Stages beyond one per running transfer: the writer's queue, enough to
 * keep every lane of a direct object writing. */
#define STAGE_SPARE 8u

/* Writer lanes, each one write in flight, for an object's direct writes
 * and for its page-cache ones. A direct write waits for the disk, and a
 * virtual disk completes more of them at once than one after another. A
 * page-cache write is a copy on a core, and writes into one file take its
 * lock in turn, so more lanes only cost CPU there (the measurements:
 * docs/benchmarks.md, "What each default was chosen from"). */
#define DIRECT_LANES RV_WRITER_LANES
#define BUFFERED_LANES 2u

/* The alignment O_DIRECT needs of offsets, lengths and memory: the page
 * size, a multiple of every common logical block size. A device that needs
 * more fails the write with EINVAL; the stage is then written again
 * through the page cache, and the object stops using O_DIRECT. */
#define STAGE_ALIGN 4096u

/* Smaller objects are written by the engine thread itself: a stage's copy
 * and hand-off gained nothing for many small files, and
 * with state they are synced together with one syncfs (flusher.h), where
 * a direct write of each would wait for the disk one by one. */
#define STAGE_MIN_OBJECT (16u << 20)

/* How far (in stages) a digested object's transfers may run ahead of its
 * digest: a transfer whose next bytes lie DIGEST_LEAD stages or more past
 * what the digester has been given waits (rv_stage_hold_back) until it
 * is given more, unless it fills the range at the digest frontier. The
 * reference is what was given, not what is hashed: a request the digester
 * is working through covers up to DIGEST_LEAD stages, and measured from
 * what is hashed the transfers would wait for the whole of it, so the
 * download and the hash took turns instead of overlapping (a digested
 * 1 GiB without state took about their sum). So the stages held for the
 * digest stay under twice that, beyond the frontier and in its request.
 * 8 stages were as fast as 16 with less memory (docs/benchmarks.md, "What each default was chosen from");
 * HOLD_MAX bounds them all together, beyond which the farthest is let go
 * (its bytes are read back from the file instead). */
#define DIGEST_LEAD 8u
#define HOLD_MAX (2u * DIGEST_LEAD + 4u)

/* Pacing costs requests: DIGEST_LEAD stages over 16 connections (one
 * stage at least) are 512 KiB ranges, and each request waits for its
 * answer. From a near origin that is nothing; from one that takes tens of
 * ms to answer, paced ranges made a digested download much slower
 * (docs/benchmarks.md, "What each default was chosen from"). So only an origin
 * whose probe was answered within NEAR_ORIGIN_US is paced; a far one's
 * ranges keep their size, its stages beyond the held window are let go,
 * and their bytes are read back (the download is slower than the hash
 * there, so the digester has the time): no stage is held for it. */
#define NEAR_ORIGIN_US 10000u

/* Open o's blob for direct writes, once: with state only; refused
 * (EINVAL: the file system has no O_DIRECT), through the page cache. */
static void open_direct(rv_object *o) {
    o->direct_tried = true;
    if (o->store_id && o->blob_path)
        o->dfd = open(o->blob_path, O_WRONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
}

bool rv_stage_wanted(rv_object *o) {
    if (o->stage_decided)
        return o->staged;
    o->stage_decided = true;
    if (o->size != RV_UNKNOWN && o->size < STAGE_MIN_OBJECT)
        return false;
    /* A body of unknown size (no Content-Length) may be big: staged from
     * its first byte, so its writes leave the engine thread as a big
     * object's do, but direct only once it has passed STAGE_MIN_OBJECT
     * (stage_submit): a small one is synced with others by one syncfs,
     * where direct writes would each wait for the disk. */
    if (o->size != RV_UNKNOWN)
        open_direct(o);
    o->write_lanes = o->dfd >= 0 ? DIRECT_LANES : BUFFERED_LANES;
    o->staged = true;
    /* The tee: only for a blob that starts empty here (decided at the
     * first byte; resumed bytes would be missing from it). */
    if (o->store_id && o->tee_fd < 0 && o->bytes_done == 0 && !rv_object_links(o))
        rv_outfile_tee_open(o);
    return true;
}

uint64_t rv_stage_digest_range(rv_object *o) {
    o->digest_paced = o->probe_wait_us < NEAR_ORIGIN_US;
    if (!o->digest_paced)
        return 0;
    uint64_t per = (uint64_t)DIGEST_LEAD / (o->max_conns ? o->max_conns : 1);
    return (per ? per : 1) * STAGE_SIZE;
}

/* Whether t's next bytes, at pos, are too far ahead of what o's digester
 * has been given. */
static bool too_far(const rv_object *o, uint64_t pos) {
    uint64_t given = o->digest_job ? o->digest_job->to : o->hashed;
    return o->digest_paced && pos > given && pos - given >= (uint64_t)DIGEST_LEAD * STAGE_SIZE;
}

bool rv_stage_range_waits(rv_object *o, rv_chunk *c) {
    /* No exception for the range at the frontier: one too far means
     * DIGEST_LEAD stages have landed since what was given, and the
     * digester takes them without it. */
    return o->staged && o->hash && !o->digest_known && too_far(o, c->start);
}

bool rv_stage_hold_back(rv_transfer *t, size_t n) {
    rv_object *o = t->obj;
    if (!o->hash || o->digest_known)
        return false;
    if (t->stage && t->stage->cap - t->stage->req.len >= n)
        return false; /* its stage takes them */
    if (!too_far(o, t->chunk->pos))
        return false;
    /* The frontier's own range never waits, and nothing waits for a
     * frontier no transfer is filling (a range waiting to be retried):
     * the waiting transfers would hold the connections it needs. */
    rv_chunk *f = rv_outfile_digest_frontier(o);
    if (!f || f == t->chunk || f->state == RV_CHUNK_TODO || (f->xfer && f->xfer->paused))
        return false;
    o->engine->paused_xfers = true;
    return true;
}

void rv_stage_resume(rv_engine *e) {
    if (!e->paused_xfers)
        return;
    e->paused_xfers = false;
    for (rv_object *o = rv_live_head(e); o; o = o->next) {
        if (o->active == 0 || !o->staged)
            continue;
        rv_chunk *f = rv_outfile_digest_frontier(o);
        bool all = !f || f->state == RV_CHUNK_TODO; /* the frontier waits for a retry */
        for (size_t i = 0; i < o->n_chunks; i++) {
            rv_chunk *c = &o->chunks[i];
            rv_transfer *t = c->xfer;
            if (!t || !t->paused)
                continue;
            if (all || c == f || !too_far(o, c->pos)) {
                t->paused = false;
                /* (may call on_body at once, which may pause it again) */
                curl_easy_pause(t->easy, CURLPAUSE_CONT);
            } else {
                e->paused_xfers = true;
            }
        }
    }
}

static rv_stage *stage_new(void) {
    rv_stage *s = calloc(1, sizeof(*s));
    if (s && posix_memalign((void **)&s->req.buf, STAGE_ALIGN, STAGE_SIZE) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* Keep a stage that just landed for o's digest (in o->held, by offset),
 * or say no: then it goes back to the pool, and the digester reads its
 * bytes back from the file. With the window full, the nearest stages win:
 * o's farthest one goes back instead of this one when this is nearer. */
static bool stage_hold(rv_engine *e, rv_object *o, rv_stage *s) {
    /* (Not paced, the frontier follows a range at a time: most stages
     * would wait long, and be let go anyway.) */
    if (!o->hash || o->digest_known || !o->digest_paced || s->req.len == 0 ||
        s->req.off < o->hashed)
        return false;
    if (e->held_stages >= HOLD_MAX) {
        rv_stage **last = &o->held;
        while (*last && (*last)->next_free)
            last = &(*last)->next_free;
        if (!*last || (*last)->req.off < s->req.off)
            return false;
        rv_stage *far = *last;
        *last = NULL;
        far->next_free = NULL;
        rv_stage_release(e, far);
    }
    rv_stage **p = &o->held;
    while (*p && (*p)->req.off < s->req.off)
        p = &(*p)->next_free;
    s->next_free = *p;
    *p = s;
    e->held_stages++;
    return true;
}

/* A stage landed (or failed): account for it on its object. Returns true
 * when the object's digest keeps it (stage_hold). */
static bool stage_landed(rv_engine *e, rv_stage *s) {
    rv_object *o = rv_object_by_id(e, s->object_id);
    if (!o)
        return false; /* the object is gone */
    o->writes--;
    if (o->writes == 0)
        rv_object_attention(o); /* it may be waiting to verify */
    if (o->gen != s->gen || o->err != RV_OK || rv_state_is_terminal(o->state))
        return false; /* restarted, failed or over: what landed is moot */
    if (s->teed && s->req.tee_err) {
        int errnum = s->req.tee_err;
        rv_object_fail(o, rv_errno_to_error(errnum), "cannot write the copy for '%s': %s",
                       o->dest_path, strerror(errnum));
        return false;
    }
    int err = s->req.err;
    if (err == EINVAL && s->direct) {
        /* The device wants more alignment than STAGE_ALIGN: write these
         * bytes through the page cache, and the rest too from now on. */
        if (o->dfd >= 0)
            close(o->dfd);
        o->dfd = -1;
        if (rv_outfile_write(o, s->req.buf, s->req.len, s->req.off) != RV_OK)
            return false;
        err = 0;
    }
    if (err) {
        rv_outfile_write_failed(o, err);
        return false;
    }
    rv_chunk *c = rv_chunk_starting(o, s->chunk_start);
    /* (pos may not include these bytes yet: a transfer waiting for a
     * stage in rv_stage_body lands the ones it submitted before.) */
    if (!c || c->landed != s->req.off) {
        rv_object_fail(o, RV_E_INTERNAL, "written ranges out of step at offset %llu",
                       (unsigned long long)s->req.off);
        return false;
    }
    c->landed += s->req.len;
    if (s->teed && o->tee_fd >= 0)
        o->tee_bytes += s->req.len; /* the tee has only ever been truncated with a gen change */
    c->written_crc = rv_crc32c_combine(c->written_crc, s->req.crc, s->req.len);
    return stage_hold(e, o, s);
}

unsigned rv_stage_collect(rv_engine *e) {
    unsigned n = 0;
    if (!e->writer)
        return 0;
    for (rv_write_req *r = rv_writer_take_done(e->writer); r; n++) {
        rv_stage *s = (rv_stage *)r;
        r = (rv_write_req *)r->bg.next;
        if (!stage_landed(e, s))
            rv_stage_put(e, s);
    }
    return n;
}

/* A free stage: from the pool, new while under the limit, else the next
 * one the writer returns. Stages held for digests take the place of the
 * spare ones, and beyond STAGE_SPARE raise the limit: they come back as
 * the digest advances, not from the writer. */
static int stage_get(rv_engine *e, rv_stage **ret) {
    unsigned limit = e->active + (e->held_stages > STAGE_SPARE ? e->held_stages : STAGE_SPARE);
    while (!e->free_stages) {
        if (!e->writer) {
            int r = rv_writer_new(rv_engine_wake_cb, e, &e->writer);
            if (r != RV_OK)
                return r;
        }
        if (e->n_stages < limit)
            break;
        rv_writer_wait(e->writer);
        rv_stage_collect(e);
        if (!e->free_stages)
            break; /* the writer held none: every stage is a transfer's */
    }
    rv_stage *s = e->free_stages;
    if (s) {
        e->free_stages = s->next_free;
    } else {
        if (!(s = stage_new()))
            return RV_E_NOMEM;
        e->n_stages++;
    }
    s->next_free = NULL;
    *ret = s;
    return RV_OK;
}

/* Hand a stage to the writer: through O_DIRECT when it is aligned, and
 * into the tee too when o has one. */
static int stage_submit(rv_object *o, rv_stage *s) {
    rv_engine *e = o->engine;
    if (!o->direct_tried && s->req.off >= STAGE_MIN_OBJECT)
        open_direct(o); /* of unknown size, and big after all */
    bool direct = o->dfd >= 0 && s->req.off % STAGE_ALIGN == 0 && s->req.len % STAGE_ALIGN == 0;
    s->direct = direct;
    s->req.want_crc = o->store_id != 0; /* only state keeps CRCs */
    s->req.fd = fcntl(direct ? o->dfd : o->fd, F_DUPFD_CLOEXEC, 0);
    s->req.tee_fd = -1;
    s->teed = o->tee_fd >= 0;
    if (s->req.fd >= 0 && s->teed && (s->req.tee_fd = fcntl(o->tee_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        int errnum = errno;
        close(s->req.fd);
        s->req.fd = -1;
        errno = errnum;
    }
    if (s->req.fd < 0) {
        int errnum = errno;
        rv_stage_put(e, s);
        rv_object_fail(o, rv_errno_to_error(errnum), "cannot write '%s': %s", o->blob_path,
                       strerror(errnum));
        return RV_E_IO;
    }
    /* One lane per range keeps its stages in order. */
    int r = rv_writer_submit(e->writer, s->lane, &s->req);
    if (r != RV_OK) {
        close(s->req.fd);
        if (s->req.tee_fd >= 0)
            close(s->req.tee_fd);
        rv_stage_put(e, s);
        rv_object_fail(o, r, "cannot start a write thread");
        return r;
    }
    o->writes++;
    return RV_OK;
}

int rv_stage_body(rv_transfer *t, const unsigned char *p, size_t n) {
    rv_object *o = t->obj;
    rv_chunk *c = t->chunk;
    uint64_t at = c->pos;

    while (n > 0) {
        rv_stage *s = t->stage;
        if (!s) {
            int r = stage_get(o->engine, &s);
            if (r != RV_OK) {
                rv_object_fail(o, r, "cannot allocate a write buffer");
                return r;
            }
            /* A range starting mid-block fills its first stage only up
             * to the block's end; every later one starts aligned. */
            uint64_t cap = at % STAGE_ALIGN ? STAGE_ALIGN - at % STAGE_ALIGN : STAGE_SIZE;
            if (c->end != RV_UNKNOWN && c->end - at <= cap) {
                /* The range's last stage: its whole blocks go direct, the
                 * bytes of a last partial block in a stage of their own. */
                cap = c->end - at;
                if (cap > STAGE_ALIGN && cap % STAGE_ALIGN && at % STAGE_ALIGN == 0)
                    cap -= cap % STAGE_ALIGN;
            }
            s->cap = (size_t)cap;
            s->req.off = at;
            s->req.len = 0;
            s->object_id = o->id;
            s->gen = o->gen;
            s->chunk_start = c->start;
            s->lane = (unsigned)(c - o->chunks) % o->write_lanes;
            t->stage = s;
        }
        size_t take = s->cap - s->req.len < n ? s->cap - s->req.len : n;
        memcpy(s->req.buf + s->req.len, p, take);
        s->req.len += take;
        p += take;
        n -= take;
        at += take;
        if (s->req.len == s->cap) {
            t->stage = NULL;
            int r = stage_submit(o, s);
            if (r != RV_OK)
                return r;
        }
    }
    return RV_OK;
}

void rv_stage_flush(rv_transfer *t) {
    rv_stage *s = t->stage;
    rv_object *o = t->obj;
    if (!s)
        return;
    t->stage = NULL;
    if (s->req.len == 0 || o->err != RV_OK || rv_state_is_terminal(o->state))
        rv_stage_put(o->engine, s);
    else
        (void)stage_submit(o, s); /* a failure fails o */
}

void rv_stage_flush_object(rv_object *o) {
    for (size_t i = 0; i < o->n_chunks; i++)
        if (o->chunks[i].xfer)
            rv_stage_flush(o->chunks[i].xfer);
}

int rv_stage_reset(rv_object *o) {
    o->gen++; /* syncs and stages in flight describe bytes that are going */
    /* Stages in the writer must land before the truncation, not after it
     * with the old version's bytes; their gen makes them moot. */
    rv_stage_drain(o);
    return rv_outfile_reset(o);
}

void rv_stage_drain(rv_object *o) {
    rv_engine *e = o->engine;
    while (o->writes > 0 && e->writer) {
        rv_writer_wait(e->writer);
        if (rv_stage_collect(e) == 0)
            break; /* the writer is idle: nothing of o's is out */
    }
}

void rv_stage_trim(rv_engine *e) {
    while (e->free_stages) {
        rv_stage *s = e->free_stages;
        e->free_stages = s->next_free;
        free(s->req.buf);
        free(s);
        e->n_stages--;
    }
}

void rv_stage_end(rv_engine *e) {
    for (rv_object *o = e->head; o; o = o->next)
        rv_stage_release_held(o);
    if (e->writer) {
        rv_writer_stop(e->writer);
        rv_stage_collect(e);
        e->writer = rv_writer_free(e->writer);
    }
    rv_stage_trim(e);
}
