#!/usr/bin/python3
"""retrieverd's job table end to end: Download, Status, List, Cancel,
Watch and Stats, called with Python's gRPC against the real daemon and real
origins (nginx, and the fault-injecting origin of tests/fixtures).

Each test starts its own daemon with private state, cache and config
directories and stops it by PID; origins stop themselves on exit.
Environment: as test_daemon.py, plus RV_FIXTURES (tests/fixtures).
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402  (Daemon, the generated pb2)
from daemons import make_user, require_root  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402
from threads import thread_names  # noqa: E402
from callers import CallersMixin  # noqa: E402

S = "/retriever.v1.Retriever/"
NOBODY = 65534
MiB = 1 << 20


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


def ser(m):
    return m.SerializeToString()


class Client:
    """A channel to the daemon and its methods, by path."""

    def __init__(self, sock):
        self.ch = grpc.insecure_channel(td.target(sock))
        pb = td.pb
        self._download = self.ch.unary_stream(S + "Download", request_serializer=ser,
                                              response_deserializer=pb.JobEvent.FromString)
        self._watch = self.ch.unary_stream(S + "Watch", request_serializer=ser,
                                           response_deserializer=pb.JobEvent.FromString)
        self._status = self.ch.unary_unary(S + "Status", request_serializer=ser,
                                           response_deserializer=pb.Job.FromString)
        self._list = self.ch.unary_unary(S + "List", request_serializer=ser,
                                         response_deserializer=pb.ListResponse.FromString)
        self._cancel = self.ch.unary_unary(S + "Cancel", request_serializer=ser,
                                           response_deserializer=pb.CancelResponse.FromString)
        self._stats = self.ch.unary_unary(S + "Stats", request_serializer=ser,
                                          response_deserializer=pb.StatsResponse.FromString)
        self._read = self.ch.unary_stream(S + "Read", request_serializer=ser,
                                          response_deserializer=pb.ReadChunk.FromString)

    def close(self):
        self.ch.close()

    def download(self, sources, timeout=60, **kw):
        srcs = [td.pb.Source(**s) for s in sources]
        return self._download(td.pb.DownloadRequest(sources=srcs, **kw), timeout=timeout)

    def watch(self, job_id, timeout=60, **kw):
        return self._watch(td.pb.WatchRequest(job_id=job_id, **kw), timeout=timeout)

    def status(self, job_id):
        return self._status(td.pb.StatusRequest(job_id=job_id), timeout=10)

    def list(self, **kw):
        return self._list(td.pb.ListRequest(**kw), timeout=10).jobs

    def cancel(self, job_id):
        return self._cancel(td.pb.CancelRequest(job_id=job_id), timeout=10)

    def stats(self):
        return self._stats(td.pb.StatsRequest(), timeout=10)

    def read(self, job_id, index=0, offset=0, timeout=60):
        return self._read(td.pb.ReadRequest(job_id=job_id, object_index=index, offset=offset),
                          timeout=timeout)


def kinds(events):
    return [e.WhichOneof("event") for e in events]


def per_object(events, i):
    return [e.WhichOneof("event") for e in events
            if e.object_index == i and e.WhichOneof("event") != "accepted"]


def opened(messages):
    """The events of a stream read with batch_events: each message is one
    event, or a batch of them and nothing else."""
    events = []
    for m in messages:
        if len(m.batch):
            bare = td.pb.JobEvent()
            bare.batch.extend(m.batch)
            assert m == bare, "a batch message carries other fields"
            events.extend(m.batch)
        else:
            events.append(m)
    return events


def case_key(url):
    """The fault origin's case key of a URL: its path and query as sent."""
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def essential(seq):
    """The event kinds without the repeatable ones (progress, retrying)."""
    return [k for k in seq if k not in ("progress", "retrying")]


class JobsTest(CallersMixin, unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-jobs-")
        os.chmod(self.tmp, 0o755)  # the unprivileged caller reaches its files
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.data = os.path.join(self.tmp, "data")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.data)
        os.makedirs(self.out)

    def daemon(self, *args):
        # Two connections per object by default: the rate-limited "slow"
        # downloads below stay slow (seconds), whatever the machine's load.
        d = td.Daemon(["--socket", self.sock,
                       "--state-dir", os.path.join(self.tmp, "state"),
                       "--cache-dir", os.path.join(self.tmp, "cache"),
                       "--config", self.config(),
                       "--max-connections-per-object", "2"] + list(args))
        self.addCleanup(d.kill)
        return d.start()

    def config(self):
        path = os.path.join(self.tmp, "retrieverd.conf")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("# empty: defaults and flags only\n")
        return path

    def client(self):
        c = Client(self.sock)
        self.addCleanup(c.close)
        return c

    def stop_ok(self, d):
        rc, took = d.stop()
        self.assertEqual(rc, 0, d.log())
        d.assert_clean(self)

    def file(self, name, size, seed=0):
        return make_file(os.path.join(self.data, name), size, seed)

    def wait_for(self, pred, timeout=20, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            time.sleep(0.02)
        self.fail("timed out waiting for " + what)

    # -- Download ------------------------------------------------------------

    def test_download_streams_events_and_delivers(self):
        d = self.daemon()
        c = self.client()
        src = self.file("a.bin", 3 * MiB + 17)
        dest = os.path.join(self.out, "a.bin")
        events = list(c.download([{"url": "file://" + src, "destination": dest}], digest=True))
        self.assertEqual(kinds(events)[0], "accepted")
        job_id = events[0].job_id
        self.assertEqual(len(job_id), 32)
        self.assertTrue(all(e.job_id == job_id for e in events))
        self.assertEqual(essential(per_object(events, 0)), ["queued", "started", "completed"])
        done = events[-1].completed
        self.assertEqual(done.path, dest)
        self.assertEqual(done.size, 3 * MiB + 17)
        self.assertEqual(done.sha256, sha256_file(src))
        self.assertRegex(done.crc32c, "^[0-9a-f]{8}$")
        self.assertEqual(sha256_file(dest), sha256_file(src))
        times = [e.time_unix_ms for e in events]
        self.assertEqual(times, sorted(times))

        job = c.status(job_id)
        self.assertEqual(job.state, td.pb.JOB_STATE_DONE)
        self.assertEqual(job.objects[0].state, td.pb.OBJECT_STATE_DONE)
        self.assertEqual(job.objects[0].progress.bytes_done, 3 * MiB + 17)
        self.assertEqual(job.objects[0].sha256, done.sha256)
        self.assertGreater(job.ended_unix_ms, 0)
        self.assertIn(job_id, [j.id for j in c.list()])
        self.stop_ok(d)

    def test_idle_engine_thread_sleeps_after_a_download(self):
        """With nothing to do, the engine thread (named rvd-engine) sleeps
        until there is: it used to go round every second."""
        self.file("i.bin", 2 * MiB)
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = self.client()
            events = list(c.download([{"url": ng.url("/i.bin"), "destination": self.out + "/i"}]))
            self.assertEqual(kinds(events)[-1], "completed")
        tasks = "/proc/%d/task" % d.proc.pid
        names = thread_names(d.proc.pid)
        engine = [t for t, n in names.items() if n == "rvd-engine"]
        self.assertEqual(len(engine), 1, names)
        self.assertIn("rv-flusher", names.values())

        def switches():
            with open(os.path.join(tasks, engine[0], "status")) as f:
                return int([ln for ln in f if ln.startswith("voluntary_ctxt_switches")][0].split()[1])
        # A sleep is the measurement here: the thread's wake-ups over a
        # window of 3.5 s, which a once-a-second loop fills. The tail of
        # the download (its last commit and events) may fall into the first
        # window, so up to three are taken: one quiet window passes, a loop
        # that wakes by itself has none.
        woke = []
        for _ in range(3):
            before = switches()
            time.sleep(3.5)
            woke.append(switches() - before)
            if woke[-1] <= 1:
                break
        self.assertLessEqual(woke[-1], 1, "the idle engine thread woke up: %s" % woke)
        self.assertEqual(len(c.list()), 1)  # and it still serves
        self.stop_ok(d)

    def test_stats_count_origin_and_cache_bytes(self):
        self.file("s.bin", 2 * MiB)
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = self.client()
            self.assertEqual(c.stats().bytes_from_origin, 0)
            first = list(c.download([{"url": ng.url("/s.bin"), "destination": self.out + "/1"}]))
            self.assertFalse(first[-1].completed.from_cache)
            again = list(c.download([{"url": ng.url("/s.bin"), "destination": self.out + "/2"}]))
            self.assertTrue(again[-1].completed.from_cache)
            st = c.stats()
            self.assertEqual((st.bytes_from_origin, st.bytes_from_cache), (2 * MiB, 2 * MiB))
            self.assertEqual((st.active_jobs, st.queued_jobs, st.connections), (0, 0, 0))
            self.assertEqual(st.cache_bytes, 2 * MiB)
            self.stop_ok(d)

    def test_many_sources_from_nginx(self):
        srcs = [self.file("f%d.bin" % i, (i + 1) * 700000, seed=i) for i in range(5)]
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = self.client()
            sources = [{"url": ng.url("/f%d.bin" % i),
                        "destination": os.path.join(self.out, "f%d.bin" % i)} for i in range(5)]
            events = list(c.download(sources))
            for i in range(5):
                self.assertEqual(essential(per_object(events, i)),
                                 ["queued", "started", "completed"], i)
                self.assertEqual(sha256_file(os.path.join(self.out, "f%d.bin" % i)),
                                 sha256_file(srcs[i]))
            self.assertEqual(c.status(events[0].job_id).state, td.pb.JOB_STATE_DONE)
            self.stop_ok(d)

    def test_batched_events_of_a_job_of_many_files(self):
        n = 300
        for i in range(n):
            self.file("m%03d.bin" % i, 1000 + i, seed=i)
        d = self.daemon()
        c = self.client()

        def sources(tag):
            return [{"url": "file://%s/m%03d.bin" % (self.data, i),
                     "destination": os.path.join(self.out, "%s%03d.bin" % (tag, i))}
                    for i in range(n)]

        def check(events, tag):
            self.assertEqual(kinds(events)[0], "accepted")
            self.assertTrue(all(e.job_id == events[0].job_id for e in events))
            for i in range(n):
                self.assertEqual(essential(per_object(events, i)),
                                 ["queued", "started", "completed"], i)
                self.assertEqual(os.path.getsize(
                    os.path.join(self.out, "%s%03d.bin" % (tag, i))), 1000 + i)
            times = [e.time_unix_ms for e in events]
            self.assertEqual(times, sorted(times))

        # Not asked for: one event per message (and every one arrives: a
        # run of 900 queued at once once stalled the stream).
        plain = list(c.download(sources("p")))
        self.assertFalse(any(len(m.batch) for m in plain))
        check(plain, "p")
        # Asked for: the same events, fewer messages.
        messages = list(c.download(sources("b"), batch_events=True))
        events = opened(messages)
        check(events, "b")
        self.assertGreater(max(len(m.batch) for m in messages), 1)
        self.assertLess(len(messages), len(events) / 4)
        # Watch of an ended job: Snapshot alone, batched or not.
        w = opened(c.watch(events[0].job_id, batch_events=True))
        self.assertEqual(kinds(w), ["snapshot"])
        self.assertEqual(len(w[0].snapshot.job.objects), n)
        self.stop_ok(d)

    def test_watch_with_batched_events_follows_a_running_job(self):
        self.file("slow.bin", 4 * MiB)
        with FaultOrigin(self.data, rate=MiB) as fo:
            d = self.daemon()
            c = self.client()
            srcs = [{"url": fo.url("/slow.bin", q=i),
                     "destination": os.path.join(self.out, "w%d.bin" % i)} for i in range(3)]
            first = c.download(srcs)
            job_id = next(iter(first)).job_id
            events = opened(c.watch(job_id, batch_events=True))
            self.assertEqual(kinds(events)[0], "snapshot")
            for i in range(3):
                self.assertEqual(essential(per_object(events[1:], i))[-1], "completed", i)
            list(first)
            self.stop_ok(d)

    def test_connections_per_request(self):
        src = self.file("c.bin", 6 * MiB)
        with FaultOrigin(self.data, rate=8 * MiB) as fo:
            d = self.daemon("--max-connections-per-object", "8")
            c = self.client()
            events = list(c.download([{"url": fo.url("/c.bin", case="one"),
                                       "destination": self.out + "/c.bin"}], connections=1))
            self.assertEqual(kinds(events)[-1], "completed")
            self.assertEqual(sha256_file(self.out + "/c.bin"), sha256_file(src))
            self.assertEqual(fo.stats()["connections_opened"], 1)
            self.stop_ok(d)

    def test_origin_failure_is_a_failed_event_not_an_rpc_error(self):
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = self.client()
            dest = os.path.join(self.out, "missing.bin")
            events = list(c.download([{"url": ng.url("/missing.bin"), "destination": dest}]))
            self.assertEqual(kinds(events)[-1], "failed")
            err = events[-1].failed.error
            self.assertEqual(err.code, "RV_E_NOT_FOUND")
            self.assertIn("no such object", err.message)
            self.assertFalse(err.retryable)
            self.assertFalse(os.path.exists(dest))
            job = c.status(events[0].job_id)
            self.assertEqual(job.state, td.pb.JOB_STATE_FAILED)
            self.assertEqual(job.objects[0].error.code, "RV_E_NOT_FOUND")
            self.stop_ok(d)

    def test_detached_job_answers_at_once_and_runs_on(self):
        src = self.file("slow.bin", 4 * MiB)  # two seconds at least
        with FaultOrigin(self.data, rate=MiB) as fo:
            d = self.daemon()
            c = self.client()
            dest = os.path.join(self.out, "slow.bin")
            url = fo.url("/slow.bin", case="detached")
            events = list(c.download([{"url": url, "destination": dest}], detach=True))
            self.assertEqual(kinds(events), ["accepted"])
            job_id = events[0].job_id
            # "At once" without a clock: the stream had ended while the
            # origin was still sending (not one response of the key ended).
            self.assertFalse([e for e in fo.log() if e["event"] == "response"
                              and e["key"] == case_key(url)])
            job = c.status(job_id)
            self.assertTrue(job.detached)
            self.assertIn(job.state, (td.pb.JOB_STATE_QUEUED, td.pb.JOB_STATE_RUNNING))
            # Watch: a snapshot first, then the same events to the end.
            w = list(c.watch(job_id))
            self.assertEqual(kinds(w)[0], "snapshot")
            self.assertEqual(w[0].snapshot.job.id, job_id)
            self.assertEqual(kinds(w)[-1], "completed")
            self.assertEqual(sha256_file(dest), sha256_file(src))
            self.assertEqual(c.status(job_id).state, td.pb.JOB_STATE_DONE)
            # Watching an ended job: the snapshot, then the stream ends.
            w = list(c.watch(job_id))
            self.assertEqual(kinds(w), ["snapshot"])
            self.assertEqual(w[0].snapshot.job.state, td.pb.JOB_STATE_DONE)
            self.stop_ok(d)

    # -- Read ------------------------------------------------------------------

    def test_read_streams_bytes_in_order_while_downloading(self):
        src = self.file("r.bin", 12 * MiB + 5)
        with FaultOrigin(self.data, rate=2 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            url = fo.url("/r.bin", case="read")
            it = c.download([{"url": url, "destination": self.out + "/r.bin"}])
            job_id = next(it).job_id
            h = hashlib.sha256()
            expect = 0
            chunks = []
            first_at = None
            for ch in c.read(job_id):
                if first_at is None:
                    # CLOCK_MONOTONIC, the clock of the origin's log too.
                    first_at = time.monotonic()
                chunks.append(ch)
            for i, ch in enumerate(chunks):
                self.assertEqual(ch.offset, expect)
                self.assertLessEqual(len(ch.data), MiB)
                self.assertEqual(ch.last, i == len(chunks) - 1)
                h.update(ch.data)
                expect += len(ch.data)
            self.assertEqual(expect, 12 * MiB + 5)
            self.assertEqual(h.hexdigest(), sha256_file(src))
            rest = list(it)
            self.assertEqual(kinds(rest)[-1], "completed")
            # Bytes came while the download ran: the first chunk was in
            # this process before the origin had sent the object's last
            # bytes (last_send_t: just before they went to the kernel), so
            # before the download could have finished. A Read that waited
            # for the end would have its first chunk after every one.
            ends = [e["last_send_t"] for e in fo.log()
                    if e["event"] == "response" and e["key"] == case_key(url)]
            self.assertTrue(ends)
            self.assertLess(first_at, max(ends),
                            "the first Read chunk came after the origin's last byte")
            self.assertGreater(len(chunks), 3)

            # After the job ended: from an offset, served from the file.
            tail = list(c.read(job_id, offset=12 * MiB - 7))
            with open(src, "rb") as f:
                f.seek(12 * MiB - 7)
                self.assertEqual(b"".join(x.data for x in tail), f.read())
            self.assertTrue(tail[-1].last)
            self.stop_ok(d)

    def test_read_error_codes(self):
        """docs/api.md's contract for Read: unknown job and unknown object
        NOT_FOUND, malformed fields INVALID_ARGUMENT, an offset beyond the
        end OUT_OF_RANGE (asked while the object runs, too), at the end an
        empty last chunk, a delivered file gone FAILED_PRECONDITION. (Another
        uid's job: test_read_of_another_uids_job_is_not_found.)"""
        src = self.file("e.bin", 3 * MiB)
        size = 3 * MiB
        NF, IA = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
        OOR, FP = grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION
        with FaultOrigin(self.data, rate=MiB) as fo:
            d = self.daemon()
            c = self.client()
            self.assertCode(NF, c.read, "0123456789abcdef0123456789abcdef", text="no job")
            self.assertCode(IA, c.read, "not-an-id", text="job_id")
            # Asked while it runs: beyond the end is said so (by the end).
            dest = self.out + "/e.bin"
            it = c.download([{"url": fo.url("/e.bin", case="codes"), "destination": dest}])
            job_id = next(it).job_id
            beyond = c.read(job_id, offset=size + 1)
            self.assertCode(NF, c.read, job_id, 1, text="no object_index 1")
            self.assertCode(IA, c.read, job_id, 1000, text="object_index")
            with self.assertRaises(grpc.RpcError) as cm:
                list(beyond)
            self.assertEqual(cm.exception.code(), OOR, cm.exception.details())
            self.assertEqual(kinds(list(it))[-1], "completed")
            self.assertEqual(c.status(job_id).state, td.pb.JOB_STATE_DONE)
            # Ended: beyond the end at once; at the end, one empty last chunk.
            self.assertCode(OOR, c.read, job_id, 0, size + 1, text="beyond the end")
            self.assertCode(OOR, c.read, job_id, 0, 2 ** 63 - 1, text="beyond the end")
            at_end = list(c.read(job_id, offset=size))
            self.assertEqual([(x.offset, x.data, x.last) for x in at_end], [(size, b"", True)])
            with open(src, "rb") as f:
                f.seek(size - 10)
                self.assertEqual(b"".join(x.data for x in c.read(job_id, offset=size - 10)),
                                 f.read())
            # The delivered file is what Read serves: gone, nothing to read.
            os.unlink(dest)
            self.assertCode(FP, c.read, job_id, text="cannot be read now")
            self.stop_ok(d)

    def test_read_of_another_uids_job_is_not_found(self):
        require_root(self, "a second uid")
        user = make_user(self)
        public = self.file("p.bin", 5000)
        os.chmod(public, 0o644)
        os.chmod(self.data, 0o755)
        d = self.daemon_for_everyone()
        c = self.client()
        mine = list(c.download([{"url": "file://" + public}]))  # Read-only object
        self.assertEqual(kinds(mine)[-1], "completed")
        job_id = mine[0].job_id
        out = self.as_caller(
            "try:\n"
            "    list(ch.unary_stream(S+'Read', request_serializer=ser,"
            " response_deserializer=pb.ReadChunk.FromString)(pb.ReadRequest(job_id=%r),"
            " timeout=30))\n"
            "    print('read')\n"
            "except grpc.RpcError as e:\n"
            "    print(e.code().name, '|', e.details())\n" % job_id, user.uid, user.gid)
        self.assertEqual(out.split(" | ")[0], "NOT_FOUND", out)
        self.assertIn(job_id, out)  # the same answer as for no such job
        self.assertEqual(len(b"".join(x.data for x in c.read(job_id))), 5000)  # root may
        self.stop_ok(d)

    def test_read_only_object_has_no_destination(self):
        src = self.file("ro.bin", 3 * MiB + 1)
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = self.client()
            ev = list(c.download([{"url": ng.url("/ro.bin")}]))
            self.assertEqual(kinds(ev)[-1], "completed", ev[-1])
            self.assertEqual(ev[-1].completed.path, "")
            chunks = list(c.read(ev[0].job_id))
            data = b"".join(x.data for x in chunks)
            self.assertEqual(hashlib.sha256(data).hexdigest(), sha256_file(src))
            # The first chunk is read under the job table's lock: 64 KiB at
            # most; the rest on send completions, up to the API's 1 MiB.
            self.assertEqual([len(x.data) for x in chunks[:2]], [64 * 1024, MiB])
            self.assertTrue(all(len(x.data) <= MiB for x in chunks))
            self.assertEqual(os.listdir(self.out), [])
            self.stop_ok(d)

    def test_read_of_a_failed_object(self):
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = self.client()
            ev = list(c.download([{"url": ng.url("/none"), "destination": self.out + "/n"}]))
            self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, c.read, ev[0].job_id,
                            text="nothing to read")
            self.stop_ok(d)

    # -- Dedupe --------------------------------------------------------------

    def test_identical_requests_share_one_job_and_one_origin_read(self):
        src = self.file("shared.bin", 4 * MiB)
        with FaultOrigin(self.data, rate=8 * MiB) as fo:
            d = self.daemon()
            url = fo.url("/shared.bin", case="dedupe")
            dest = os.path.join(self.out, "shared.bin")
            results = [None] * 4
            errors = []

            def one(i):
                try:
                    c = Client(self.sock)
                    results[i] = list(c.download([{"url": url, "destination": dest}]))
                    c.close()
                except Exception as e:  # noqa: BLE001 — asserted below
                    errors.append(e)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            self.assertEqual(errors, [])
            ids = {r[0].job_id for r in results}
            self.assertEqual(len(ids), 1, "identical requests made several jobs")
            for r in results:
                self.assertEqual(kinds(r)[0], "accepted")
                self.assertEqual(essential(per_object(r, 0)), ["queued", "started", "completed"])
            self.assertEqual(sha256_file(dest), sha256_file(src))
            body = fo.stats()["body_bytes"]
            self.assertLessEqual(body, 4 * MiB + MiB, "the origin was read more than once")
            self.stop_ok(d)

    def test_shared_object_delivered_although_the_first_delivery_failed(self):
        """One object to two destinations: one download, the second source
        following the first. The first destination's directory is removed
        while the body stalls, so its delivery fails, clearly; the finished
        blob is kept, and the second destination gets it all the same (it
        used to fail with the first's error)."""
        src = self.file("two.bin", 200 * 1024 + 3)
        with FaultOrigin(self.data) as fo:
            d = self.daemon()
            c = self.client()
            # The stall must outlast the test's reaction on a loaded
            # machine: the directory goes while the body is held.
            url = fo.url("/two.bin", stall_after=1000, stall_ms=5000, case="two")
            gone, kept = os.path.join(self.out, "gone"), os.path.join(self.out, "kept")
            os.mkdir(gone)
            os.mkdir(kept)
            it = c.download([{"url": url, "destination": gone + "/a"},
                             {"url": url, "destination": kept + "/b"}])
            self.assertEqual(kinds([next(it)]), ["accepted"])
            self.wait_for(lambda: fo.stats()["body_bytes"] >= 1000, what="the stall")
            os.rmdir(gone)
            events = list(it)
            first = [e for e in events if e.object_index == 0]
            self.assertEqual(essential(per_object(events, 0))[-1], "failed")
            self.assertIn("cannot deliver the finished download to", first[-1].failed.error.message
                          + " " + first[-1].failed.error.detail)
            self.assertEqual(essential(per_object(events, 1))[-1], "completed")
            self.assertEqual(sha256_file(kept + "/b"), sha256_file(src))
            self.assertLessEqual(fo.stats()["body_bytes"], 200 * 1024 + 3,
                                 "the origin was read more than once")
            self.stop_ok(d)

    def test_different_headers_do_not_share_a_job(self):
        """Requests alike but for their Authorization header, each made
        while the first downloads, do not share:
          - to the same destination (the only case the daemon's dedupe could
            join): the second gets a job of its own, which the running first
            one's destination refuses (DEST_CONFLICT); a dedupe key without
            the headers joins it to the first job instead: this fails then;
          - to another destination: a job of its own that completes, and the
            origin was asked with each credential; serving both from one
            origin read (a cache or engine object shared across
            credentials) would leave one credential unsent."""
        src = self.file("h.bin", 4 * MiB)
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            url = fo.url("/h.bin", case="headers")
            dest = os.path.join(self.out, "h.bin")

            def start(secret, dest):
                it = c.download([{"url": url, "destination": dest,
                                  "headers": [td.pb.Header(name="Authorization",
                                                           value="Bearer " + secret)]}])
                first = next(it)
                self.assertEqual(first.WhichOneof("event"), "accepted")
                return it, first.job_id

            def auths():
                return [e["headers"].get("authorization") for e in fo.log()
                        if e["event"] == "request" and e["key"] == case_key(url)]

            it_a, job_a = start("secret-A", dest)
            self.wait_for(lambda: "Bearer secret-A" in auths(), what="A's request")
            self.assertEqual(c.status(job_a).state, td.pb.JOB_STATE_RUNNING)
            it_b, job_b = start("secret-B", dest)
            self.assertNotEqual(job_a, job_b, "the second request joined the first's job")
            b = list(it_b)
            self.assertEqual({e.job_id for e in b}, {job_b})
            self.assertEqual(kinds(b)[-1], "failed", b[-1])
            self.assertEqual(b[-1].failed.error.code, "RV_E_DEST_CONFLICT", b[-1])
            self.assertEqual(c.status(job_a).state, td.pb.JOB_STATE_RUNNING)
            other = os.path.join(self.out, "other.bin")
            it_c, job_c = start("secret-C", other)
            self.assertNotIn(job_c, (job_a, job_b))
            a, cc = list(it_a), list(it_c)
            self.assertEqual(kinds(a)[-1], "completed", a[-1])
            self.assertEqual(kinds(cc)[-1], "completed", cc[-1])
            self.assertEqual({e.job_id for e in a}, {job_a})
            self.assertEqual({e.job_id for e in cc}, {job_c})
            self.assertEqual(set(auths()), {"Bearer secret-A", "Bearer secret-C"},
                             "the origin was not asked with each credential")
            self.assertEqual(sha256_file(dest), sha256_file(src))
            self.assertEqual(sha256_file(other), sha256_file(src))
            # The credentials never come back, and never reach the log.
            for j in c.list():
                self.assertNotIn("secret", str(j))
            self.assertNotIn("secret", d.log())
            self.stop_ok(d)
            self.assertNotIn("secret", d.log())

    # -- Cancel and disconnects ----------------------------------------------

    def start_slow(self, fo, c, name="slow.bin", size=8 * MiB, **kw):
        self.file(name, size)
        dest = os.path.join(self.out, name)
        it = c.download([{"url": fo.url("/" + name, case=self.id()), "destination": dest}], **kw)
        first = next(it)
        self.assertEqual(first.WhichOneof("event"), "accepted")
        return it, first.job_id, dest

    def assert_transfers_ended_unfinished(self, fo, url, size, since):
        """Every response of url's key ended, promptly, and none that ended
        after `since` (time.monotonic(), the origin log's clock; taken just
        before the Cancel) ended complete: the daemon cut them. "Promptly"
        is the wait's 30 s, half the 60 s after which the origin itself
        aborts a send that makes no progress (a daemon that stopped reading
        without closing), and far less than the rest of the transfers."""
        key = case_key(url)
        asked = len([e for e in fo.log() if e["event"] == "request" and e["key"] == key])
        self.assertGreater(asked, 0)
        self.assertTrue(fo.wait(key, asked, timeout=30),
                        "the origin's responses were still open 30 s after the cancel")
        log = fo.log()
        ended = [e for e in log if e["event"] == "response" and e["key"] == key]
        self.assertEqual(len(ended), asked, "a request after the cancel")
        late = [e for e in ended if e["t"] >= since]
        self.assertTrue(late, "no transfer was running at the cancel")
        for e in late:
            self.assertEqual(e["outcome"], "aborted", e)
        self.assertLess(sum(e["body_bytes"] for e in ended), size)

    def test_cancel_ends_the_stream_and_stops_the_job(self):
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            # 16 MiB: after the 1 MiB probe, two ranges of 7.5 MiB (7 s
            # each): both are in flight when the cancel comes.
            it, job_id, dest = self.start_slow(fo, c, size=16 * MiB)
            url = fo.url("/slow.bin", case=self.id())
            self.assertTrue(fo.wait(case_key(url), 3, event="request", timeout=30))
            since = time.monotonic()
            r = c.cancel(job_id)
            self.assertEqual(r.state, td.pb.JOB_STATE_CANCELLED)
            self.assertEqual(r.subscribers, 0)
            rest = list(it)  # ends with OK
            self.assertEqual(kinds(rest)[-1], "cancelled")
            self.wait_for(lambda: c.status(job_id).state == td.pb.JOB_STATE_CANCELLED,
                          what="cancelled")
            self.assertFalse(os.path.exists(dest))
            # The origin stops sending: each transfer was cut by the daemon.
            self.assert_transfers_ended_unfinished(fo, url, 16 * MiB, since)
            # Cancelling again: the job has ended, nothing to do.
            self.assertEqual(c.cancel(job_id).state, td.pb.JOB_STATE_CANCELLED)
            self.stop_ok(d)

    def test_cancel_stops_every_transfer_of_a_many_object_job(self):
        """Cancel latency through the daemon: a job of four objects, two
        connections each, all running; after Cancel every origin response
        ends unfinished (the fault origin's log), and no new request comes."""
        # After each 1 MiB probe (2 s), two ranges of 3.5 MiB (7 s each).
        n, size = 4, 8 * MiB
        with FaultOrigin(self.data, rate=512 * 1024) as fo:
            d = self.daemon()  # two connections per object
            c = self.client()
            for i in range(n):
                self.file("m%d.bin" % i, size, seed=i)
            urls = [fo.url("/m%d.bin" % i, case="latency") for i in range(n)]
            it = c.download([{"url": u, "destination": os.path.join(self.out, "m%d" % i)}
                             for i, u in enumerate(urls)])
            job_id = next(it).job_id
            for u in urls:  # every object has its probe done, two ranges running
                self.assertTrue(fo.wait(case_key(u), 3, event="request", timeout=30), u)
            since = time.monotonic()
            self.assertEqual(c.cancel(job_id).state, td.pb.JOB_STATE_CANCELLED)
            rest = list(it)
            for i in range(n):
                self.assertEqual(essential(per_object(rest, i))[-1], "cancelled", i)
            for u in urls:
                self.assert_transfers_ended_unfinished(fo, u, size, since)
            self.assertEqual(os.listdir(self.out), [])
            self.stop_ok(d)

    def test_disconnect_of_the_last_subscriber_stops_the_job(self):
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            it, job_id, dest = self.start_slow(fo, c)
            other = self.client()
            self.wait_for(lambda: other.status(job_id).state == td.pb.JOB_STATE_RUNNING,
                          what="running")
            it.cancel()  # the client goes away mid-stream
            self.wait_for(lambda: other.status(job_id).state == td.pb.JOB_STATE_CANCELLED,
                          what="cancelled after the disconnect")
            self.assertFalse(os.path.exists(dest))
            self.stop_ok(d)

    def test_a_job_with_another_subscriber_survives_a_disconnect(self):
        with FaultOrigin(self.data, rate=4 * MiB) as fo:
            d = self.daemon()
            c1, c2 = self.client(), self.client()
            it1, job_id, dest = self.start_slow(fo, c1, size=4 * MiB)
            w = c2.watch(job_id)
            self.assertEqual(next(w).WhichOneof("event"), "snapshot")
            self.wait_for(lambda: c2.status(job_id).subscribers == 2, what="two subscribers")
            it1.cancel()
            rest = list(w)
            self.assertEqual(kinds(rest)[-1], "completed")
            self.assertEqual(c2.status(job_id).state, td.pb.JOB_STATE_DONE)
            self.assertTrue(os.path.exists(dest))
            self.stop_ok(d)

    def test_cancel_of_a_detached_job_by_its_owner(self):
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            it, job_id, dest = self.start_slow(fo, c, detach=True)
            self.assertEqual(list(it), [])
            r = c.cancel(job_id)
            self.assertEqual(r.state, td.pb.JOB_STATE_CANCELLED)
            self.wait_for(lambda: c.status(job_id).state == td.pb.JOB_STATE_CANCELLED,
                          what="cancelled")
            self.stop_ok(d)

    # -- Bad input and unknown ids -------------------------------------------

    def assertCode(self, code, fn, *args, text=None):
        with self.assertRaises(grpc.RpcError) as cm:
            r = fn(*args)
            if hasattr(r, "__iter__") and not isinstance(r, (bytes, str)):
                list(r)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if text:
            self.assertIn(text, cm.exception.details())
        return cm.exception.details()

    def test_unknown_and_malformed_job_ids(self):
        d = self.daemon()
        c = self.client()
        unknown = "0123456789abcdef0123456789abcdef"
        NF, IA = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
        for fn in (c.status, c.cancel, lambda i: c.watch(i)):
            self.assertCode(NF, fn, unknown, text=unknown)
            self.assertCode(IA, fn, "not-an-id", text="job_id")
            self.assertCode(IA, fn, "", text="job_id")
        self.stop_ok(d)

    def test_bad_requests_change_nothing(self):
        src = self.file("x.bin", 1000)
        d = self.daemon()
        c = self.client()
        IA = grpc.StatusCode.INVALID_ARGUMENT
        cases = [
            ([], "source"),
            ([{"url": "file://" + src, "destination": "relative/out"}], "destination"),
            ([{"url": "ftp://example.com/x", "destination": self.out + "/x"}], "url"),
            ([{"url": "not a url", "destination": self.out + "/x"}], "url"),
            ([{"url": "file://" + src, "destination": self.out + "/x", "sha256": "abc"}],
             "sha256"),
            ([{"url": "file://" + src, "destination": self.out + "/x",
               "headers": [td.pb.Header(name="Range", value="bytes=0-1")]}], "header"),
            ([{"url": "file://" + src, "destination": self.out + "/x"},
              {"url": "file://" + src, "destination": self.out + "/x"}], "destination"),
        ]
        for sources, field in cases:
            with self.subTest(field=field):
                self.assertCode(IA, c.download, sources, text=field)
        self.assertEqual(os.listdir(self.out), [])
        self.assertEqual(list(c.list()), [])
        self.stop_ok(d)

    def test_missing_destination_directory(self):
        src = self.file("x.bin", 1000)
        d = self.daemon()
        c = self.client()
        details = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, c.download,
                                  [{"url": "file://" + src,
                                    "destination": self.out + "/no/such/dir/x"}])
        self.assertIn("does not exist", details)
        self.assertEqual(list(c.list()), [])
        self.stop_ok(d)

    # -- Limits ----------------------------------------------------------------

    def test_queue_and_subscriber_limits(self):
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            d = self.daemon("--max-running-jobs", "1", "--max-queued-jobs", "1",
                            "--max-subscribers", "1")
            c = self.client()
            it1, id1, _ = self.start_slow(fo, c, name="a.bin", size=4 * MiB)
            it2, id2, _ = self.start_slow(fo, c, name="b.bin", size=4 * MiB)
            self.assertEqual(c.status(id2).state, td.pb.JOB_STATE_QUEUED)
            RE = grpc.StatusCode.RESOURCE_EXHAUSTED
            self.file("c.bin", 1000)
            self.assertCode(RE, c.download, [{"url": fo.url("/c.bin"),
                                              "destination": self.out + "/c.bin"}],
                            text="max-queued-jobs")
            self.assertCode(RE, c.watch, id1, text="max-subscribers")
            st = c.stats()
            self.assertEqual((st.active_jobs, st.queued_jobs, st.subscribers), (1, 1, 2))
            c.cancel(id1)
            c.cancel(id2)
            list(it1)
            list(it2)
            self.stop_ok(d)

    # -- Shutdown ----------------------------------------------------------------

    def test_sigterm_ends_streams_unavailable(self):
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            it, job_id, dest = self.start_slow(fo, c)
            self.wait_for(lambda: c.status(job_id).state == td.pb.JOB_STATE_RUNNING,
                          what="running")
            t0 = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            with self.assertRaises(grpc.RpcError) as cm:
                list(it)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("shutting down", cm.exception.details())
            self.assertEqual(d.wait_exit(td.STOP_BOUND + 5), 0, d.log())
            self.assertLess(time.monotonic() - t0, td.STOP_BOUND)
            self.assertFalse(os.path.exists(dest))

    # -- Restarts ----------------------------------------------------------------

    def restart_mid_download(self, sig):
        # 2 connections at 2 MiB/s: the engine makes ranges durable about
        # once a second, so a few seconds in, a restart has plenty to keep.
        src = self.file("big.bin", 24 * MiB)
        args = ("--max-connections-per-object", "2")
        with FaultOrigin(self.data, rate=2 * MiB) as fo:
            d = self.daemon(*args)
            c = self.client()
            dest = os.path.join(self.out, "big.bin")
            it = c.download([{"url": fo.url("/big.bin", case="restart"), "destination": dest}])
            job_id = next(it).job_id
            # Half of it received: durable lags by up to a sync interval
            # (4 MiB here) plus the stages being filled (2 x 512 KiB), so
            # more than 4 MiB are kept (a third received kept 3.6 MiB).
            self.wait_for(lambda: c.status(job_id).objects[0].progress.bytes_done > 12 * MiB,
                          timeout=30, what="half downloaded")
            d.proc.send_signal(sig)
            with self.assertRaises(grpc.RpcError):
                list(it)
            self.assertEqual(d.wait_exit(td.STOP_BOUND + 5), 0 if sig == signal.SIGTERM else -9)
            c.close()
            self.assertFalse(os.path.exists(dest))
            before = fo.stats()["body_bytes"]

            d2 = self.daemon(*args)
            c2 = self.client()
            job = c2.status(job_id)  # the id survives the restart
            self.assertEqual(job.id, job_id)
            self.assertTrue(job.detached)
            w = list(c2.watch(job_id))  # ...and so does Watch
            self.assertEqual(kinds(w)[0], "snapshot")
            self.assertEqual(kinds(w)[-1], "completed")
            self.assertEqual(sha256_file(dest), sha256_file(src))
            self.assertEqual(c2.status(job_id).state, td.pb.JOB_STATE_DONE)
            # It resumed: the origin did not send the whole object again.
            after = fo.stats()["body_bytes"] - before
            self.assertLess(after, 24 * MiB - 4 * MiB, "no resume: %d bytes" % after)
            self.stop_ok(d2)

    def test_sigterm_then_restart_continues_the_job(self):
        self.restart_mid_download(signal.SIGTERM)

    def test_sigkill_then_restart_continues_the_job(self):
        self.restart_mid_download(signal.SIGKILL)

    def test_history_survives_a_restart_and_keeps_no_secret_in_clear(self):
        """The secrets of a request (userinfo, a signed query, a header) are
        in no log (of the daemon that handled the request, at debug level,
        and of the one after the restart), no answer, and no file of the
        state or cache directories."""
        src = self.file("h.bin", 100000)
        with NginxOrigin(self.data) as ng:
            d = self.daemon("--log-level", "debug")
            handled = d  # the daemon that handled the secret-bearing request
            c = self.client()
            url = ng.url("/h.bin").replace("http://", "http://user:pw-sekrit-1@")
            url += "?X-Amz-Signature=sig-sekrit-2"
            events = list(c.download([{"url": url, "destination": self.out + "/h.bin",
                                       "headers": [td.pb.Header(name="Authorization",
                                                                value="Bearer hdr-sekrit-3")]}],
                                     digest=True))
            self.assertEqual(kinds(events)[-1], "completed", events[-1])
            job_id = events[0].job_id
            c.close()  # gRPC shares connections between channels: no stale one
            self.stop_ok(d)
            self.assertNotIn("sekrit", handled.log())
            d = self.daemon()
            c = self.client()
            job = c.status(job_id)
            self.assertEqual(job.state, td.pb.JOB_STATE_DONE)
            self.assertEqual(job.objects[0].sha256, sha256_file(src))
            self.assertNotIn("sekrit", str(job))
            self.assertNotIn("sekrit", d.log())
            self.stop_ok(d)
        # Nothing under the state or cache directories holds a secret.
        for root in ("state", "cache"):
            for dirpath, _, files in os.walk(os.path.join(self.tmp, root)):
                for f in files:
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        self.assertFalse(b"sekrit" in fh.read(),
                                         "a secret in clear in " + os.path.join(dirpath, f))

    # -- Security: two uids ----------------------------------------------------

    def test_callers_cannot_reach_files_they_could_not_reach_themselves(self):
        require_root(self, "runs callers as uid %d" % NOBODY)
        secret = self.file("secret.bin", 1000)
        os.chmod(secret, 0o600)
        public = self.file("public.bin", 1000)
        os.chmod(public, 0o644)
        os.chmod(self.data, 0o755)
        rootonly = self.owned_dir("rootonly", 0, 0, 0o700)
        theirs = self.owned_dir("theirs", NOBODY, NOBODY)
        d = self.daemon_for_everyone()
        out = self.as_nobody(self.DL + "print(dl(%r, %r), dl(%r, %r), dl(%r, %r))" % (
            "file://" + secret, theirs + "/a",
            "file://" + public, rootonly + "/b",
            "file://" + public, theirs + "/c"))
        self.assertEqual(out.split(), ["PERMISSION_DENIED", "PERMISSION_DENIED", "completed"])
        self.assertEqual(os.listdir(rootonly), [])
        st = os.stat(theirs + "/c")
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY))
        self.assertEqual(sha256_file(theirs + "/c"), sha256_file(public))
        self.assertFalse(os.path.exists(theirs + "/a"))

        # Root's job is invisible to nobody; nobody's is visible to root.
        c = self.client()
        mine = list(c.download([{"url": "file://" + public, "destination": self.out + "/p"}]))
        out = self.as_nobody(
            "st = ch.unary_unary(S+'Status', request_serializer=ser,"
            " response_deserializer=pb.Job.FromString)\n"
            "try:\n    st(pb.StatusRequest(job_id=%r), timeout=10); print('visible')\n"
            "except grpc.RpcError as e:\n    print(e.code().name)\n"
            "print(len(ch.unary_unary(S+'List', request_serializer=ser,"
            " response_deserializer=pb.ListResponse.FromString)(pb.ListRequest(),"
            " timeout=10).jobs))" % mine[0].job_id)
        self.assertEqual(out.split(), ["NOT_FOUND", "1"])
        self.assertEqual(len(c.list()), 2)
        self.stop_ok(d)

    def test_a_folder_others_may_read_is_not_written_for_them(self):
        """A root-owned 0755 folder: a caller who is not root may look in
        but not write; the daemon (root) could, and must refuse. (A 0700
        folder would not show it: the caller cannot even reach a name in
        it, which the open as the caller refuses anyway.) The caller is a
        user made for the test, with its own folder beside for contrast."""
        require_root(self, "runs a caller as a user made with useradd")
        user = make_user(self)
        public = self.file("public.bin", 4000)
        os.chmod(public, 0o644)
        os.chmod(self.data, 0o755)
        shared = self.owned_dir("shared", 0, 0, 0o755)
        theirs = self.owned_dir("theirs", user.uid, user.gid)
        d = self.daemon_for_everyone()
        url = "file://" + public
        out = self.as_caller(self.DL + "print(dl(%r, %r), dl(%r, %r, True), dl(%r, %r))" % (
            url, shared + "/a", url, shared + "/b", url, theirs + "/c"), user.uid, user.gid)
        self.assertEqual(out.split(), ["PERMISSION_DENIED", "PERMISSION_DENIED", "completed"])
        self.assertEqual(os.listdir(shared), [])
        self.assertEqual(sha256_file(theirs + "/c"), sha256_file(public))
        self.assertEqual(os.stat(theirs + "/c").st_uid, user.uid)
        self.stop_ok(d)

    def test_a_callers_own_groups_decide_and_are_kept_across_a_restart(self):
        require_root(self, "runs a caller with chosen uid, gid and groups")
        # uid 4242 has no passwd entry: the user database gives it no group
        # but its gid. What counts is the groups its process holds.
        uid, gid, group = 4242, 4243, 4250
        public = self.file("public.bin", 1000)
        os.chmod(public, 0o644)
        shut = self.file("shut.bin", 1000)  # others may read, the group may not
        os.chown(shut, 0, group)
        os.chmod(shut, 0o604)
        os.chmod(self.data, 0o755)
        gdir = self.owned_dir("gdir", 0, group, 0o770)
        theirs = self.owned_dir("theirs", uid, gid)
        d = self.daemon_for_everyone()

        out = self.as_caller(self.DL + "print(dl(%r, %r), dl(%r, %r))" % (
            "file://" + public, gdir + "/a", "file://" + shut, theirs + "/a"),
            uid, gid, [group])
        self.assertEqual(out.split(), ["completed", "PERMISSION_DENIED"])
        out = self.as_caller(self.DL + "print(dl(%r, %r), dl(%r, %r))" % (
            "file://" + public, gdir + "/b", "file://" + shut, theirs + "/b"), uid, gid)
        self.assertEqual(out.split(), ["PERMISSION_DENIED", "completed"])
        self.assertEqual(sorted(os.listdir(gdir)), ["a"])
        self.assertEqual(os.stat(gdir + "/a").st_uid, uid)
        self.assertFalse(os.path.exists(theirs + "/a"))

        # A detached job of the group member, unfinished at a restart, is
        # carried on with the member's groups: they are in the job table.
        src = self.file("slow.bin", 8 * MiB)
        os.chmod(src, 0o644)
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            job_id = self.as_caller(self.DL + "print(dl(%r, %r, True))" % (
                fo.url("/slow.bin", case=self.id()), gdir + "/slow.bin"), uid, gid, [group])
            self.assertEqual(len(job_id), 32, job_id)  # an id, not an error
            c = self.client()
            self.wait_for(lambda: c.status(job_id).state == td.pb.JOB_STATE_RUNNING,
                          what="running")
            c.close()
            self.stop_ok(d)
            self.assertFalse(os.path.exists(gdir + "/slow.bin"))
            d = self.daemon_for_everyone()
            c = self.client()
            w = list(c.watch(job_id))
            self.assertEqual(kinds(w)[-1], "completed", w[-1])
        self.assertEqual(sha256_file(gdir + "/slow.bin"), sha256_file(src))
        self.assertEqual(os.stat(gdir + "/slow.bin").st_uid, uid)
        self.stop_ok(d)

    def test_job_database_of_an_older_daemon_is_migrated_and_a_newer_one_refused(self):
        import sqlite3
        src = self.file("m.bin", 5000)
        d = self.daemon()
        c = self.client()
        events = list(c.download([{"url": "file://" + src,
                                   "destination": self.out + "/m.bin"}]))
        job_id = events[0].job_id
        c.close()
        self.stop_ok(d)
        db = os.path.join(self.tmp, "state", "jobs.sqlite")

        def sql(*stmts):
            con = sqlite3.connect(db)
            try:
                rows = [con.execute(s).fetchall() for s in stmts]
                con.commit()
                return rows
            finally:
                con.close()

        self.assertEqual(sql("PRAGMA user_version")[0], [(2,)])
        # Schema 0: no groups column. The job is still there after the
        # upgrade, and the column is back.
        sql("ALTER TABLE jobs DROP COLUMN groups", "PRAGMA user_version=0")
        d = self.daemon()
        c = self.client()
        self.assertEqual(c.status(job_id).state, td.pb.JOB_STATE_DONE)
        c.close()
        self.stop_ok(d)
        self.assertEqual(sql("PRAGMA user_version")[0], [(2,)])
        self.assertEqual(sql("SELECT groups IS NULL FROM jobs")[0], [(1,)])

        # A damaged groups column (not a list of 32-bit gids): that row is
        # unreadable and skipped, said so at start; the daemon serves on.
        sql("UPDATE jobs SET groups = X'010203'")
        d = self.daemon()
        c = self.client()
        with self.assertRaises(grpc.RpcError) as cm:
            c.status(job_id)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        c.close()
        self.stop_ok(d)
        self.assertIn("0 resumed, 0 in the history, 1 unreadable", d.log())

        # A newer daemon's database: refused with what to do, untouched.
        sql("PRAGMA user_version=7")
        def content():
            with open(db, "rb") as f:
                return f.read()

        before = content()
        late = td.Daemon(["--socket", self.sock, "--state-dir", os.path.join(self.tmp, "state"),
                          "--cache-dir", os.path.join(self.tmp, "cache"),
                          "--config", self.config()])
        self.addCleanup(late.kill)
        late.spawn()
        self.assertEqual(late.wait_exit(30), 1, late.log())
        self.assertIn("written by a newer retrieverd (schema 7", late.log())
        self.assertEqual(content(), before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
