/* stream.c — server streams: Download, Watch, Read and the cache RPCs
 * (see server_int.h for how the server's files divide the work, server.c
 * for the life of a call).
 */
#include "server_int.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* A stream whose reader lags this many messages behind misses progress
 * events (never the others): memory stays bounded by the reader's pace. */
#define STREAM_PROGRESS_BACKLOG 32

/* A batch (JobEvent.batch, for a caller that asked for batch_events)
 * takes at most this many of the waiting events, and this many bytes
 * (gRPC's default receive limit is 4 MiB); a larger single event goes
 * alone. */
#define STREAM_BATCH_EVENTS 1024
#define STREAM_BATCH_BYTES (1024 * 1024)

/* Bytes per ReadChunk (the API's limit). */
#define RVD_READ_CHUNK (1024 * 1024)

/* The first chunk after a notify is read under the job table's lock (the
 * notify comes with it held), where Status and every other call wait: it
 * is kept small; the chunks after it are read on send completions, with
 * no lock but the call's. */
#define RVD_READ_CHUNK_NOTIFIED (64 * 1024)

/* ------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

static void read_fill(struct call *c, size_t max);

void rvd_stream_queue_clear(struct call *c) {
    while (c->q_head) {
        struct outmsg *m = c->q_head;
        c->q_head = m->next;
        grpc_byte_buffer_destroy(m->bb);
        free(m);
    }
    c->q_tail = NULL;
    c->q_len = 0;
}

/* Take the next message off c's queue: the first one, or for a caller that
 * takes batches and with more waiting, a JobEvent whose batch holds as
 * many of them as the limits allow. Each queued message is a packed
 * JobEvent (packed while the table's views were valid): the batch's are
 * unpacked again and the batch packed by the generated packer. That costs
 * more CPU than copying the packed bytes behind a hand-written key and
 * length, as this once did, but not measurably in bench_daemon.py's D1.3
 * (1000 objects, batched events). Under c->lock; the queue is not empty. */
static grpc_byte_buffer *queue_take(struct call *c) {
    size_t n = 0, bytes = 0;
    for (struct outmsg *m = c->batch_events ? c->q_head : NULL; m && n < STREAM_BATCH_EVENTS;
         m = m->next) {
        /* In the batch, each event also takes its key (2 bytes) and
         * length (at most 5). */
        size_t add = grpc_byte_buffer_length(m->bb) + 7;
        if (n > 0 && bytes + add > STREAM_BATCH_BYTES)
            break;
        bytes += add;
        n++;
    }
    Retriever__V1__JobEvent **evs = n >= 2 ? calloc(n, sizeof(*evs)) : NULL;
    grpc_byte_buffer *out = NULL;
    if (evs) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            struct outmsg *m = c->q_head;
            grpc_byte_buffer_reader rd;
            if (grpc_byte_buffer_reader_init(&rd, m->bb)) {
                grpc_slice flat = grpc_byte_buffer_reader_readall(&rd);
                grpc_byte_buffer_reader_destroy(&rd);
                /* NULL only when out of memory: that event is lost */
                if ((evs[k] = retriever__v1__job_event__unpack(
                         NULL, GRPC_SLICE_LENGTH(flat), GRPC_SLICE_START_PTR(flat))))
                    k++;
                grpc_slice_unref(flat);
            }
            c->q_head = m->next;
            grpc_byte_buffer_destroy(m->bb);
            free(m);
        }
        c->q_len -= (unsigned)n;
        Retriever__V1__JobEvent batch = RETRIEVER__V1__JOB_EVENT__INIT;
        batch.n_batch = k;
        batch.batch = evs;
        out = rvd_pack(&batch.base);
        for (size_t i = 0; i < k; i++)
            retriever__v1__job_event__free_unpacked(evs[i], NULL);
        free(evs);
    } else {
        struct outmsg *m = c->q_head;
        c->q_head = m->next;
        c->q_len--;
        out = m->bb;
        free(m);
    }
    if (!c->q_head)
        c->q_tail = NULL;
    return out;
}

/* Start the next send, if any is due and none is outstanding. Under
 * c->lock. */
static void stream_kick(struct call *c) {
    if (c->sending || c->closed || c->status_sent)
        return;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!c->md_sent) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[n++].data.send_initial_metadata.count = 0;
    }
    if (c->q_head) {
        c->inflight = queue_take(c);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        /* More are queued: the transport may hold this one and write them
         * together (one write for a run of events instead of one each);
         * the last of a run goes out at once. Not with the initial
         * metadata: a held first message does not complete until a later
         * write, which waits for its completion. */
        ops[n].flags = c->q_head && c->md_sent ? GRPC_WRITE_BUFFER_HINT : 0;
        ops[n++].data.send_message.send_message = c->inflight;
    } else if (c->ending) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = c->end_code;
        ops[n++].data.send_status_from_server.status_details =
            GRPC_SLICE_LENGTH(c->status_slice) ? &c->status_slice : NULL;
        c->status_sent = true;
    } else {
        return;
    }
    if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK) {
        rvd_log_error("cannot send on a stream: grpc_call_start_batch failed");
        c->status_sent = true; /* give up on this stream; the close-wait ends it */
        rvd_stream_queue_clear(c);
        return;
    }
    c->md_sent = true;
    c->sending = true;
}

/* Queue a message (taking bb) to go with the next kick; under c->lock. */
static void stream_queue(struct call *c, grpc_byte_buffer *bb) {
    struct outmsg *m = bb && !c->closed && !c->ending ? malloc(sizeof(*m)) : NULL;
    if (!m) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    m->bb = bb;
    m->next = NULL;
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    c->q_len++;
}

/* Queue a message (taking bb) and send it if the stream is idle; under
 * c->lock. */
void rvd_stream_push(struct call *c, grpc_byte_buffer *bb) {
    stream_queue(c, bb);
    stream_kick(c);
}

/* No more messages: end with code once the queue drained; under c->lock. */
void rvd_stream_finish(struct call *c, grpc_status_code code, const char *message) {
    if (c->ending)
        return;
    c->ending = true;
    c->end_code = code;
    if (message) {
        grpc_slice_unref(c->status_slice);
        c->status_slice = grpc_slice_from_copied_string(message);
    }
    stream_kick(c);
}

/* The job table's sink (its lock is held). Events are queued; the
 * table's flush after a run of them sends (so a caller that takes
 * batches gets the run in one message). */
static void sink_event(void *ctx, const rvd_event *ev) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (!(ev->kind == RVD_EV_PROGRESS && c->q_len >= STREAM_PROGRESS_BACKLOG) && !c->closed)
        stream_queue(c, rvd_pack_event(ev));
    pthread_mutex_unlock(&c->lock);
}

static void sink_flush(void *ctx) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    stream_kick(c);
    pthread_mutex_unlock(&c->lock);
}

static void sink_end(void *ctx, rvd_code code, const char *message) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->subscribed = false;
    rvd_stream_finish(c, (grpc_status_code)code, message);
    pthread_mutex_unlock(&c->lock);
}

/* Turn c into a stream: post its close-wait. false: the call cannot
 * stream (r says why). */
bool rvd_stream_begin(struct call *c, struct reply *r) {
    pthread_mutex_init(&c->lock, NULL);
    c->lock_init = true;
    c->close_tag.kind = TAG_CLOSE;
    c->close_tag.call = c;
    c->sink = (rvd_sink){.event = sink_event, .flush = sink_flush, .end = sink_end, .ctx = c};
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK) {
        rvd_reply_error(r, GRPC_STATUS_INTERNAL, rvd_strdupf("cannot start the stream"));
        return false;
    }
    c->state = CALL_STREAMING;
    return true;
}

/* Whether a stream call can be freed; under c->lock. */
bool rvd_stream_done(const struct call *c) {
    return c->closed && !c->sending && !c->subscribed;
}

/* A send batch of stream c completed. */
bool rvd_stream_on_sent(struct call *c, bool ok) {
    pthread_mutex_lock(&c->lock);
    c->sending = false;
    if (c->inflight) {
        grpc_byte_buffer_destroy(c->inflight);
        c->inflight = NULL;
    }
    if (!ok) { /* the client is gone: the close-wait will say so */
        rvd_stream_queue_clear(c);
        c->status_sent = true;
    }
    if (c->reading)
        read_fill(c, RVD_READ_CHUNK);
    stream_kick(c);
    bool done = rvd_stream_done(c);
    pthread_mutex_unlock(&c->lock);
    return !done;
}

/* The close-wait of stream c completed: the call is over, by our status
 * or by the client's cancel or disconnect. */
bool rvd_stream_on_closed(struct call *c) {
    pthread_mutex_lock(&c->lock);
    c->closed = true;
    rvd_stream_queue_clear(c);
    bool unsubscribe = c->subscribed;
    pthread_mutex_unlock(&c->lock);
    /* Outside our lock (lock order: the table's first). */
    if (unsubscribe &&
        (c->caching   ? rvd_cacheops_cancel(rvd_jobs_cacheops(c->server->jobs), &c->cache_sink)
         : c->reading ? rvd_jobs_read_stop(c->server->jobs, c->job_id, c->read_index, &c->reader)
                      : rvd_jobs_unsubscribe(c->server->jobs, c->job_id, &c->sink))) {
        pthread_mutex_lock(&c->lock);
        c->subscribed = false;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->lock);
    bool done = rvd_stream_done(c);
    pthread_mutex_unlock(&c->lock);
    return !done;
}

/* The next ReadChunk (at most max bytes), when the stream is idle and
 * bytes are ready; the end of the stream once the last byte went. Under
 * c->lock. */
static void read_fill(struct call *c, size_t max) {
    if (c->sending || c->q_head || c->ending || c->closed)
        return;
    if (c->read_off >= c->read_ready && !c->read_done)
        return; /* wait for the next notify */
    if (c->read_off > c->read_ready) {
        rvd_stream_finish(c, GRPC_STATUS_OUT_OF_RANGE, "offset is beyond the end of the object");
        return;
    }
    uint64_t want = c->read_ready - c->read_off;
    size_t n = want < max ? (size_t)want : max;
    grpc_slice data = grpc_slice_malloc(n ? n : 1);
    ssize_t got = 0;
    while ((size_t)got < n) {
        ssize_t k = pread(c->read_fd, GRPC_SLICE_START_PTR(data) + got, n - (size_t)got,
                          (off_t)(c->read_off + (uint64_t)got));
        if (k <= 0) {
            grpc_slice_unref(data);
            rvd_stream_finish(c, GRPC_STATUS_INTERNAL, "cannot read the object's bytes");
            return;
        }
        got += k;
    }
    Retriever__V1__ReadChunk chunk = RETRIEVER__V1__READ_CHUNK__INIT;
    chunk.offset = c->read_off;
    chunk.data.data = GRPC_SLICE_START_PTR(data);
    chunk.data.len = n;
    chunk.last = c->read_done && c->read_off + n == c->read_ready;
    c->read_off += n;
    rvd_stream_push(c, rvd_pack(&chunk.base));
    grpc_slice_unref(data);
    if (chunk.last)
        rvd_stream_finish(c, GRPC_STATUS_OK, NULL);
}

/* The job table's reader callback (its lock is held). */
void rvd_stream_read_notify(void *ctx, const rvd_read_state *st) {
    struct call *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (st->done || st->failed)
        c->subscribed = false; /* the table lets go after this call */
    if (c->read_fd < 0 && st->data_fd >= 0)
        c->read_fd = dup(st->data_fd);
    if (st->failed) {
        rvd_stream_finish(c, (grpc_status_code)st->code, st->why);
    } else if (c->read_fd < 0 && st->done) {
        rvd_stream_finish(c, GRPC_STATUS_INTERNAL, "cannot open the object's bytes");
    } else if (c->read_fd < 0) {
        /* Bytes may be ready, but the table opens the file only at the
         * next progress (or at the end) after a reader came: wait. */
    } else {
        c->read_ready = st->ready;
        c->read_done = st->done;
        read_fill(c, RVD_READ_CHUNK_NOTIFIED);
    }
    pthread_mutex_unlock(&c->lock);
}
