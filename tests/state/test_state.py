#!/usr/bin/python3
"""Durable state and the cache, through the real retrieverctl --local:
crash-safe resume (kill -9 in a loop), cache hits, recovery from a corrupt
database and missing cache files, a busy or unwritable state, a full disk.

Each test owns its state and cache directories and the origins it starts.
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

from origins import FaultOrigin, NginxOrigin, make_file, sha256_file
from threads import threads_seen

CTL = os.environ["RV_CTL"]
MiB = 1 << 20
CONNECTIONS = 16


def durable_bytes(state_dir):
    """Bytes the state database says are durable, over all objects."""
    db = os.path.join(state_dir, "retriever.db")
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT COALESCE(SUM(durable - start), 0) FROM ranges").fetchone()[0]
    finally:
        con.close()


def durable_spans(state_dir):
    """[(first, end)) of the bytes the state database holds as durable."""
    db = os.path.join(state_dir, "retriever.db")
    if not os.path.exists(db):
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT start, durable FROM ranges WHERE durable > start").fetchall()
    finally:
        con.close()


def requested_ranges(origin, key, since):
    """[(first, end)) of each Range the origin was asked for key since the
    monotonic time `since` (the origin logs on the same clock); a request
    without a Range asks for everything."""
    spans = []
    for ev in origin.log():
        if ev.get("key") == key and ev["event"] == "request" and ev["t"] >= since:
            if not ev["range"]:
                spans.append((0, float("inf")))
                continue
            first, last = ev["range"].split("=", 1)[1].split("-")
            spans.append((int(first), int(last) + 1))
    return spans


def overlap(span, spans):
    """Bytes span shares with any of spans."""
    return sum(max(0, min(span[1], e) - max(span[0], s)) for s, e in spans)


def direct_io_works(directory):
    """Whether files in directory can be opened with O_DIRECT."""
    path = os.path.join(directory, ".direct-probe")
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(path)
    return True


class StateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-state-www-")
        os.chmod(cls.root, 0o755)
        cls.sha = {}
        for name, size, seed in (("big.bin", 1024 * MiB, 7),
                                 ("mid.bin", 40 * MiB + 3, 8),
                                 ("small.bin", 300000, 9)):
            path = make_file(os.path.join(cls.root, name), size, seed)
            os.chmod(path, 0o644)
            cls.sha[name] = sha256_file(path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-state-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)

    def ctl(self, *args, timeout=300, env=None):
        return subprocess.run(
            [CTL, "download", "--local", "--state-dir", self.state,
             "--cache-dir", self.cache, *args],
            capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, env=env)

    def spawn(self, *args, **kw):
        """Start `retrieverctl download --local` with this test's state in
        the background; the caller stops it."""
        return subprocess.Popen(
            [CTL, "download", "--local", "--state-dir", self.state,
             "--cache-dir", self.cache, *args], stdin=subprocess.DEVNULL, **kw)

    def blobs(self):
        d = os.path.join(self.cache, "blobs")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def settle(self, origin, url):
        """After killing a client: wait until the origin has ended every
        response it started for url (it counts bytes it still pushes into
        the dead connections until it notices)."""
        key = url.split(str(origin.port), 1)[1]
        requests = sum(1 for ev in origin.log()
                       if ev.get("key") == key and ev["event"] == "request")
        self.assertTrue(origin.wait(key, requests, event="response"))

    def key_bytes(self, origin, url):
        key = url.split(str(origin.port), 1)[1]
        return origin.stats()["per_key"].get(key, {}).get("body_bytes", 0)

    # -- crash-safe resume -------------------------------------------------

    def test_kill9_loop_resumes(self):
        """Kill -9 at random moments, 20 rounds: every round keeps what was
        durable and asks the origin for none of it again (each request's
        range, from the origin's log, misses every byte the database held
        as durable when the round started), and the last run fetches at
        most what was not durable. The final file is right."""
        rng = random.Random(1234)
        dest = os.path.join(self.out, "big.bin")
        size = 1024 * MiB
        with FaultOrigin(self.root, rate=4 * MiB) as fo:
            url = fo.url("big.bin", case="kill9")
            key = url.split(str(fo.port), 1)[1]
            durable = 0
            for round_ in range(20):
                held = durable_spans(self.state)
                since = time.monotonic()
                proc = self.spawn("-q", "-c", str(CONNECTIONS), "-o", dest, url,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                try:
                    proc.wait(timeout=rng.uniform(0.2, 1.2))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                err = proc.stderr.read().decode()
                proc.stderr.close()
                self.assertIn(proc.returncode, (-signal.SIGKILL, 0), err)
                now = durable_bytes(self.state)
                # Durable progress never goes back: each round resumed.
                self.assertGreaterEqual(now, durable, "round %d" % round_)
                durable = now
                for asked in requested_ranges(fo, key, since):
                    self.assertEqual(overlap(asked, held), 0,
                                     "round %d asked again for durable bytes: %r"
                                     % (round_, asked))
                # Never a partial file under the final name.
                if os.path.exists(dest):
                    self.assertEqual(sha256_file(dest), self.sha["big.bin"])
            self.settle(fo, url)
            before = self.key_bytes(fo, url)
            p = self.ctl("-q", "-c", str(CONNECTIONS), "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["big.bin"])
            self.assertLessEqual(self.key_bytes(fo, url) - before, size - durable)
            sent = self.key_bytes(fo, url)
            print("\nkill -9 x20: origin sent %.2f GiB for 1 GiB" % (sent / 2**30))

    def disk_shim_env(self, mode=None, log=None, first=None):
        """The environment that preloads disk_shim.c (after `first`, another
        shim, when given) with RV_SHIM_SYNC=mode and RV_SHIM_LOG=log."""
        preload = ([first] if first else []) + [os.environ["RV_DISK_SHIM"]]
        env = dict(os.environ, LD_PRELOAD=":".join(preload))
        env.pop("RV_SHIM_SYNC", None)
        if mode:
            env["RV_SHIM_SYNC"] = mode
        if log:
            env["RV_SHIM_LOG"] = log
        # Under ASan the shims come before the sanitizer's runtime.
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        return env

    @staticmethod
    def blob_writes(log):
        """(bytes written to blobs with O_DIRECT, without) by the run that
        logged to log (disk_shim.c's line at exit)."""
        with open(log) as f:
            last = [line.split() for line in f if line.startswith("writes ")][-1]
        return int(last[2]), int(last[4])

    def test_big_blob_is_written_past_the_page_cache(self):
        """A big object with state and no digest is written with O_DIRECT
        (stage.c): the file is right, and almost all of its bytes went to
        the blob with O_DIRECT (a few partial blocks go through the page
        cache), whatever the delivery does afterwards. Ranges that start
        mid-block (an odd chunk size) included. Where O_DIRECT does not
        work, every byte goes through the page cache."""
        size = os.path.getsize(os.path.join(self.root, "mid.bin"))
        direct = direct_io_works(self.cache if os.path.isdir(self.cache) else self.tmp)
        with NginxOrigin(self.root) as ng:
            for case, args in (("aligned", ()), ("odd", ("--chunk-size", "2500001"))):
                dest = os.path.join(self.out, case)
                log = os.path.join(self.tmp, "writes-" + case)
                t0 = time.monotonic()
                p = self.ctl("-q", "-c", "8", "--no-digest", *args, "-o", dest,
                             ng.url("mid.bin", case=case), env=self.disk_shim_env(log=log))
                seconds = time.monotonic() - t0
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(sha256_file(dest), self.sha["mid.bin"])
                direct_bytes, buffered = self.blob_writes(log)
                if direct:
                    # Partial blocks: well under 1 MiB. Each time a sync
                    # falls due by time (every second with new bytes,
                    # durable.c), every transfer's partly filled stage goes
                    # to the writer as it is, unaligned, so through the
                    # page cache: at most 8 stages of 512 KiB per second
                    # the run took (a loaded machine makes runs slower).
                    allowed = 1 * MiB + int(seconds) * 8 * 512 * 1024
                    self.assertLess(buffered, allowed, (case, seconds))
                    self.assertGreaterEqual(direct_bytes + buffered, size, case)
                else:
                    self.assertEqual((direct_bytes, buffered >= size), (0, True), case)
    def writer_threads_of_run(self, argv):
        """Run argv (a retrieverctl download), polling its threads; returns
        its exit status and how many of its threads were named rv-writer
        (they last until the engine ends)."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen = threads_seen(proc, 120)
        proc.communicate(timeout=120)
        return proc.returncode, sum(1 for n in seen.values() if n == "rv-writer")

    def test_big_blob_direct_writes_keep_eight_in_flight(self):
        """Direct writes wait for the disk, which completes several at once
        faster than one after another: an object written with O_DIRECT
        spreads its 8 ranges over 8 writer threads (lanes). Through the
        page cache (without state, or where O_DIRECT does not work) more
        threads only contend: 2. The origin is slow enough (4 MiB/s per
        connection, ~1.3 s) to see them start."""
        direct = direct_io_works(self.tmp)
        with FaultOrigin(self.root, rate=4 * MiB) as fo:
            for case, flags, lanes in (("state", ["--state-dir", self.state,
                                                  "--cache-dir", self.cache],
                                        8 if direct else 2),
                                       ("no-state", ["--no-state"], 2)):
                dest = os.path.join(self.out, case)
                rc, writers = self.writer_threads_of_run(
                    [CTL, "download", "--local", *flags, "-q", "-c", "8",
                     "--no-digest", "-o", dest, fo.url("mid.bin", case=case)])
                self.assertEqual(rc, 0, case)
                self.assertEqual(sha256_file(dest), self.sha["mid.bin"], case)
                self.assertEqual(writers, lanes, case)

    def test_big_blob_on_a_disk_refusing_direct_writes(self):
        """A device that needs more alignment than the engine's 4096 bytes
        refuses O_DIRECT writes with EINVAL (a preloaded shim plays that
        disk). The refused stages, and the rest of the object, go through
        the page cache: the download succeeds with the right bytes, almost
        all of them written without O_DIRECT. From the first write, and
        mid-object with stages of other transfers already queued. (Where
        O_DIRECT does not work at all, nothing is refused and the same
        holds.)"""
        size = os.path.getsize(os.path.join(self.root, "mid.bin"))
        with NginxOrigin(self.root) as ng:
            for allowed in (0, 3):
                dest = os.path.join(self.out, "refused%d" % allowed)
                log = os.path.join(self.tmp, "writes%d" % allowed)
                env = self.disk_shim_env(log=log, first=os.environ["RV_DIRECT_EINVAL_SHIM"])
                env["RV_SHIM_DIRECT_WRITES"] = str(allowed)
                p = self.ctl("-q", "-c", "8", "--no-digest", "-o", dest,
                             ng.url("mid.bin", case="refused%d" % allowed), env=env)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(sha256_file(dest), self.sha["mid.bin"])
                # At most the allowed stages of 512 KiB went direct.
                direct_bytes, buffered = self.blob_writes(log)
                self.assertLessEqual(direct_bytes, allowed * 512 * 1024, allowed)
                self.assertGreaterEqual(direct_bytes + buffered, size, allowed)
    def test_failing_sync_fails_the_download(self):
        """A disk whose syncs fail (EIO, as Linux reports lost writeback):
        the download fails with a clear error, nothing is delivered, and
        the database holds no byte as durable. Both the page cache path
        (small chunks) and the staged one."""
        log = os.path.join(self.tmp, "syncs")
        env = self.disk_shim_env("eio", log)
        with NginxOrigin(self.root) as ng:
            for case in ("mid", "small"):
                name = case + ".bin"
                dest = os.path.join(self.out, name)
                p = self.ctl("-c", "4", "--no-digest", "-o", dest,
                             ng.url(name, case="eio"), env=env)
                self.assertEqual(p.returncode, 3, p.stderr)
                self.assertRegex(p.stderr, r"cannot make '[^']*' durable: "
                                 r"Input/output error")
                self.assertFalse(os.path.exists(dest))
                self.assertEqual(durable_bytes(self.state), 0)
        with open(log) as f:
            self.assertIn("enter", f.read())

    def test_no_range_durable_before_its_sync_returned(self):
        """Syncs of the blob hang from the third on (a shim): while the
        third hangs, the database holds as durable at most the bytes
        written before the second began, whatever else has arrived; and so
        after a kill -9 there."""
        log = os.path.join(self.tmp, "syncs")
        env = self.disk_shim_env("hold:3", log)
        dest = os.path.join(self.out, "mid.bin")

        def lines():
            with open(log) as f:
                return [line.split() for line in f if line.endswith("\n")]

        # 8 MiB/s: about 5 s for the object, a sync every second.
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            url = fo.url("mid.bin", case="hold")
            key = url.split(str(fo.port), 1)[1]
            proc = self.spawn("-q", "-c", "4", "--no-digest", "-o", dest, url, env=env)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not (
                        os.path.exists(log) and ["enter", "3"] in [l[:2] for l in lines()]):
                    self.assertIsNone(proc.poll(), "finished without a third sync")
                    time.sleep(0.05)
                returned = [l for l in lines() if l[0] == "return"]
                self.assertEqual([l[1] for l in returned], ["1", "2"])
                bound = max(int(l[4]) for l in returned)
                # Watch while the sync hangs and the rest arrives: the
                # whole object (a response event per request), then 5
                # commit intervals more. Nothing may become durable.
                requests = sum(1 for ev in fo.log()
                               if ev.get("key") == key and ev["event"] == "request")
                fo.wait(key, requests, timeout=30)
                watch_until = time.monotonic() + 1.0
                while time.monotonic() < watch_until:
                    self.assertLessEqual(durable_bytes(self.state), bound)
                    time.sleep(0.05)
                self.assertGreater(self.key_bytes(fo, url), bound)
            finally:
                proc.kill()
                proc.wait()
            self.assertLessEqual(durable_bytes(self.state), bound)
            print("\nsync held: %d bytes received, %d durable, bound %d"
                  % (self.key_bytes(fo, url), durable_bytes(self.state), bound))

    def test_stalled_transfer_of_big_blob_is_made_durable(self):
        """A big blob's bytes wait in a transfer's 512 KiB stage until it
        fills; when the transfer stalls, a due sync sends the stage to the
        writer anyway: every byte received becomes durable within seconds,
        not only the whole stages."""
        stalled_at = 2 * MiB + 300000  # not a whole number of stages
        with FaultOrigin(self.root) as fo:
            # GET 1 is the probe (the first MiB); GET 2, the first range
            # after it, stalls for 20 s after stalled_at bytes.
            url = fo.url("mid.bin", after=1, times=1, stall_after=stalled_at,
                         stall_ms=20000, case="stall")
            p = self.spawn("-q", "-c", "1", "--no-digest", "-o",
                           os.path.join(self.out, "m"), url,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                want = 1 * MiB + stalled_at
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and durable_bytes(self.state) < want:
                    time.sleep(0.1)
                self.assertEqual(self.key_bytes(fo, url), want)
                self.assertEqual(durable_bytes(self.state), want)
            finally:
                p.kill()
                p.wait()

    def test_big_blob_single_stream_restarts_after_a_reset(self):
        """An origin that ignores ranges sends one stream; cut mid-body, it
        starts over from byte 0. With the blob written through stages, the
        stages still in the writer are dropped before the file is
        truncated, and the file comes out right."""
        size = os.path.getsize(os.path.join(self.root, "mid.bin"))
        with FaultOrigin(self.root) as fo:
            url = fo.url("mid.bin", noranges=1, reset_after=5 * MiB + 1234, times=1,
                         case="restream")
            dest = os.path.join(self.out, "r")
            log = os.path.join(self.tmp, "writes")
            p = self.ctl("-q", "--no-digest", "-o", dest, url,
                         env=self.disk_shim_env(log=log))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["mid.bin"])
            if direct_io_works(self.cache):  # it was staged
                direct_bytes, buffered = self.blob_writes(log)
                self.assertLess(buffered, 1 * MiB)
                self.assertGreaterEqual(direct_bytes, size)

    def test_interrupted_then_resumed_fetches_only_the_rest(self):
        dest = os.path.join(self.out, "mid.bin")
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            url = fo.url("mid.bin", case="resume")
            proc = self.spawn("-q", "-c", "4", "-o", dest, url)
            # Wait (on the origin) until enough has crossed, then kill.
            key = url.split(str(fo.port), 1)[1]
            self.assertTrue(fo.wait(key, 2, event="request"))
            deadline = time.monotonic() + 60
            while durable_bytes(self.state) < 8 * MiB and time.monotonic() < deadline:
                proc.poll() is None or self.fail("finished too early")
                time.sleep(0.1)  # bounded: the download takes ~5 s at 8 MiB/s
            proc.kill()
            proc.wait()
            kept = durable_bytes(self.state)
            self.assertGreaterEqual(kept, 8 * MiB)
            self.settle(fo, url)
            before = self.key_bytes(fo, url)
            p = self.ctl("--json", "-c", "4", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["mid.bin"])
            line = json.loads(p.stdout)
            self.assertEqual(line["sha256"], self.sha["mid.bin"])
            # The second run fetched at most what was not durable.
            size = os.path.getsize(os.path.join(self.root, "mid.bin"))
            self.assertLessEqual(self.key_bytes(fo, url) - before, size - kept)

    def last_batch_ranges(self):
        """(blob path, [(start, end, durable)]) of the ranges the last
        committed batch recorded, with durable bytes, of the one object in
        the state database."""
        con = sqlite3.connect(os.path.join(self.state, "retriever.db"))
        try:
            (blob,), = con.execute("SELECT blob FROM objects").fetchall()
            rows = con.execute(
                "SELECT start, end, durable FROM ranges WHERE durable > start "
                "AND batch = (SELECT MAX(batch) FROM ranges)").fetchall()
        finally:
            con.close()
        return os.path.join(self.cache, "blobs", blob), rows

    def test_damaged_blob_refetched_on_resume(self):
        """Bytes of the last recorded batch damaged between a crash and the
        resume (a disk that lied about a sync looks so): the resume re-checks
        that batch's ranges against their CRC-32C, finds the damage, and
        fetches those ranges again from their start. The file comes out
        right."""
        dest = os.path.join(self.out, "mid.bin")
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            url = fo.url("mid.bin", case="damage")
            proc = self.spawn("-q", "-c", "4", "--no-digest", "-o", dest, url)
            try:
                deadline = time.monotonic() + 60
                while durable_bytes(self.state) < 4 * MiB and time.monotonic() < deadline:
                    self.assertIsNone(proc.poll(), "finished too early")
                    time.sleep(0.05)  # bounded: ~8 MiB/s arrive
            finally:
                proc.kill()
                proc.wait()
            self.settle(fo, url)
            blob, rows = self.last_batch_ranges()
            self.assertTrue(rows)
            start, end, durable = max(rows, key=lambda r: r[2] - r[0])
            self.assertGreater(durable - start, 16384)
            # 4 KiB of garbage in the middle of the range's durable bytes.
            at = start + (durable - start) // 2
            mode = os.stat(blob).st_mode
            os.chmod(blob, 0o644)
            with open(blob, "r+b") as f:
                f.seek(at)
                old = f.read(4096)
                f.seek(at)
                f.write(bytes(b ^ 0x5A for b in old))
            os.chmod(blob, mode)
            since = time.monotonic()
            p = self.ctl("-q", "-c", "4", "--no-digest", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["mid.bin"])
            # The damaged range was asked for again from its start.
            key = url.split(str(fo.port), 1)[1]
            asked = [ev["range"] for ev in fo.log()
                     if ev.get("key") == key and ev["event"] == "request"
                     and ev["t"] >= since]
            self.assertIn("bytes=%d-%d" % (start, end - 1), asked)

    def test_changed_object_restarts_clean(self):
        """Resume against an object that changed: its old bytes are
        discarded, the delivered file is entirely the new version."""
        dest = os.path.join(self.out, "mid.bin")
        with FaultOrigin(self.root, rate=4 * MiB) as fo:
            url = fo.url("mid.bin", change_after=6, case="chg")
            proc = self.spawn("-q", "-c", "4", "-o", dest, url)
            key = url.split(str(fo.port), 1)[1]
            self.assertTrue(fo.wait(key, 5, event="request"))
            proc.kill()
            proc.wait()
            p = self.ctl("-q", "-c", "4", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(self.root, "mid.bin"), "rb") as f:
                new = bytes(b ^ 0xFF for b in f.read())
            with open(dest, "rb") as f:
                self.assertTrue(f.read() == new, "mixed or old version delivered")

    # -- the cache ---------------------------------------------------------

    def test_cache_hit_fetches_no_body(self):
        with NginxOrigin(self.root) as ng, FaultOrigin(self.root) as fo:
            for origin in (ng, fo):
                url = origin.url("small.bin", case="hit")
                a, b = os.path.join(self.out, "a"), os.path.join(self.out, "b")
                for d in (a, b):
                    if os.path.exists(d):
                        os.chmod(d, 0o644)
                        os.unlink(d)
                self.assertEqual(self.ctl("-q", "-o", a, url).returncode, 0)
                before = self.key_bytes(fo, url) if origin is fo else None
                p = self.ctl("--json", "-o", b, url)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(sha256_file(b), self.sha["small.bin"])
                self.assertEqual(json.loads(p.stdout)["sha256"], self.sha["small.bin"])
                if origin is fo:
                    # One revalidation request: its one byte, no body.
                    self.assertLessEqual(self.key_bytes(fo, url) - before, 1)
            self.assertEqual(len(self.blobs()), 2)

    def test_small_object_gets_its_row_when_complete(self):
        """An object no larger than the probe (1 MiB) gets one complete row
        at its end and no ranges: killed mid-body, it leaves only a blob,
        which the next run removes before fetching it again."""
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", stall_after=100000, stall_ms=30000, case="row")
            dest = os.path.join(self.out, "s")
            p = self.spawn("-q", "-o", dest, url, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and self.key_bytes(fo, url) < 100000:
                    time.sleep(0.02)
                self.assertEqual(self.key_bytes(fo, url), 100000)
            finally:
                p.kill()
                p.wait()
            self.assertEqual(len(self.blobs()), 1)
            con = sqlite3.connect(os.path.join(self.state, "retriever.db"))
            try:
                self.assertEqual(con.execute("SELECT COUNT(*) FROM objects").fetchone()[0], 0)
            finally:
                con.close()

            p = self.ctl("-q", "-o", dest, fo.url("small.bin", case="row"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["small.bin"])
            self.assertEqual(len(self.blobs()), 1)
            con = sqlite3.connect(os.path.join(self.state, "retriever.db"))
            try:
                self.assertEqual(con.execute(
                    "SELECT COUNT(*), SUM(complete) FROM objects").fetchone(), (1, 1))
                self.assertEqual(con.execute("SELECT COUNT(*) FROM ranges").fetchone()[0], 0)
            finally:
                con.close()

    def rows_and_blobs(self):
        """(ids of the store's rows, of its complete rows) as blob names,
        and the blobs in the cache directory."""
        con = sqlite3.connect(os.path.join(self.state, "retriever.db"))
        try:
            rows = con.execute("SELECT id, complete FROM objects").fetchall()
        finally:
            con.close()
        return ({str(i) for i, _ in rows}, {str(i) for i, c in rows if c},
                set(self.blobs()))

    def test_blobs_made_ahead_are_used_or_removed(self):
        """While objects wait in the queue, a helper thread makes their
        cache files ahead (docs/state.md). A killed run leaves such files
        without rows, and the next run's recovery removes them; a run that
        ends leaves every blob with its row, none made ahead and unused."""
        www = os.path.join(self.tmp, "www")
        os.mkdir(www)
        names = ["f%02d" % i for i in range(60)]
        sha = {n: sha256_file(make_file(os.path.join(www, n), 20000, 100 + i))
               for i, n in enumerate(names)}
        with FaultOrigin(www) as fo:
            stalled = [fo.url(n, stall_after=1000, stall_ms=30000) for n in names]
            out = [os.path.join(self.out, d) for d in ("killed", "fresh", "mixed")]
            for d in out:
                os.mkdir(d)
            p = self.spawn("-q", "-d", out[0], *stalled, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            try:
                # Every started object's answer stalls: the rest stay queued,
                # and their blobs are made meanwhile.
                deadline = time.monotonic() + 10
                requests = 0
                while time.monotonic() < deadline:
                    requests = sum(1 for ev in fo.log() if ev["event"] == "request")
                    if requests and len(self.blobs()) > requests:
                        break
                    time.sleep(0.05)
                self.assertGreater(len(self.blobs()), requests)
            finally:
                p.kill()
                p.wait()

            urls = [fo.url(n) for n in names]
            p = self.ctl("-d", out[1], *urls)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("that no download owned", p.stderr)
            rows, complete, blobs = self.rows_and_blobs()
            self.assertEqual(len(rows), 60)
            self.assertEqual(complete, rows)
            self.assertEqual(blobs, rows)

            # Cache hits first, then new objects: blobs made ahead for the
            # queued hits serve the new ones, or go when the run ends.
            mixed = urls[:30] + [fo.url(n, case="mixed") for n in names[30:]]
            p = self.ctl("-q", "-d", out[2], *mixed)
            self.assertEqual(p.returncode, 0, p.stderr)
            rows, complete, blobs = self.rows_and_blobs()
            self.assertEqual(len(rows), 90)
            self.assertEqual(complete, rows)
            self.assertEqual(blobs, rows)
            for d in out[1:]:
                for n in names:
                    self.assertEqual(sha256_file(os.path.join(d, n)), sha[n])

    def test_delivery_is_not_the_cache(self):
        """A delivery is a file of its own (a reflink or a copy), never the
        cached blob's inode, which stays read-only: a same-size edit of the
        delivered file in place leaves the cache right, and the next
        delivery of the same URL has the right bytes (a cache hit, no body
        fetched). --copy likewise."""
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", case="own")
            first, copied = os.path.join(self.out, "a"), os.path.join(self.out, "c")
            self.assertEqual(self.ctl("-q", "-o", first, url).returncode, 0)
            self.assertEqual(self.ctl("-q", "--copy", "-o", copied, url).returncode, 0)
            blob = os.path.join(self.cache, "blobs", self.blobs()[0])
            self.assertEqual(os.stat(blob).st_mode & 0o777, 0o400)
            for dest in (first, copied):
                self.assertNotEqual(os.stat(dest).st_ino, os.stat(blob).st_ino)
                self.assertEqual(os.stat(dest).st_nlink, 1)
            # printf XXXX | dd of=a conv=notrunc
            os.chmod(first, 0o644)
            with open(first, "r+b") as f:
                f.write(b"XXXX")
            self.assertEqual(sha256_file(blob), self.sha["small.bin"])
            before = self.key_bytes(fo, url)
            again = os.path.join(self.out, "b")
            p = self.ctl("-q", "-o", again, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(again), self.sha["small.bin"])
            self.assertLessEqual(self.key_bytes(fo, url) - before, 1)
    def test_interrupt_during_delivery_completes_it(self):
        """A finished object being put in place is past cancelling: an
        interrupt during its delivery (here a 1 GiB copy out of the cache)
        lets the delivery finish. The destination is whole, and no
        temporary file is left."""
        with NginxOrigin(self.root) as ng:
            url = ng.url("big.bin")
            first = os.path.join(self.out, "first")
            self.assertEqual(self.ctl("-q", "-o", first, url).returncode, 0)
            dest = os.path.join(self.out, "copy")
            p = self.spawn("-q", "--copy", "-o", dest, url, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 30
                copying = False
                while not copying and p.poll() is None and time.monotonic() < deadline:
                    copying = any(n.startswith(".copy.rvpart-") for n in os.listdir(self.out))
                    time.sleep(0.002)
                self.assertTrue(copying, "the copy was never seen under way")
                p.send_signal(signal.SIGINT)
                _, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertEqual(p.returncode, 130, err)  # interrupted, as a SIGINT says
            self.assertIn("every download had finished, nothing was cancelled", err)
            self.assertEqual(sha256_file(dest), self.sha["big.bin"])
            self.assertEqual([n for n in os.listdir(self.out) if n.startswith(".")], [])

    def test_destination_gone_before_delivery(self):
        """The destination's directory removed while the object downloads:
        the delivery (on the cache-files thread) fails with a clear error,
        the finished object stays in the cache, and the same command, once
        the directory is back, delivers it without fetching the body."""
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", stall_after=1000, stall_ms=1500, case="gone")
            outdir = os.path.join(self.out, "later")
            os.mkdir(outdir)
            dest = os.path.join(outdir, "s")
            p = self.spawn("-o", dest, url, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and self.key_bytes(fo, url) < 1000:
                    time.sleep(0.01)
                self.assertEqual(self.key_bytes(fo, url), 1000)  # stalled mid-body
                os.rmdir(outdir)
                _, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            self.assertEqual(p.returncode, 3, err)  # a local problem
            self.assertIn("cannot deliver the finished download to '%s': "
                          "No such file or directory" % dest, err)
            rows, complete, blobs = self.rows_and_blobs()
            self.assertEqual((len(rows), complete, blobs), (1, rows, rows))
            os.mkdir(outdir)
            before = self.key_bytes(fo, url)
            p = self.ctl("-q", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["small.bin"])
            self.assertLessEqual(self.key_bytes(fo, url) - before, 1)

    def test_cache_hit_of_changed_object_refetches(self):
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", change_after=1, case="stale")
            a, b = os.path.join(self.out, "a"), os.path.join(self.out, "b")
            self.assertEqual(self.ctl("-q", "-o", a, url).returncode, 0)
            self.assertEqual(sha256_file(a), self.sha["small.bin"])
            # The first GET served the old version; from the second (the
            # revalidation) on, the origin has the new one.
            p = self.ctl("-q", "-o", b, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(os.path.join(self.root, "small.bin"), "rb") as f:
                new = bytes(x ^ 0xFF for x in f.read())
            with open(b, "rb") as f:
                self.assertTrue(f.read() == new)
            # The earlier delivery (a file of its own) is intact.
            self.assertEqual(sha256_file(a), self.sha["small.bin"])

    def test_quota_evicts_least_recently_used(self):
        size = os.path.getsize(os.path.join(self.root, "small.bin"))
        with FaultOrigin(self.root) as fo:
            urls = [fo.url("small.bin", case="q%d" % i) for i in range(3)]
            dests = [os.path.join(self.out, "q%d" % i) for i in range(3)]
            for url, dest in zip(urls, dests):
                p = self.ctl("-q", "--cache-quota", str(2 * size + size // 2),
                             "-o", dest, url)
                self.assertEqual(p.returncode, 0, p.stderr)
            # Room for two: the least recently used (the first) went.
            self.assertEqual(len(self.blobs()), 2)
            for dest in dests:  # deliveries are untouched by eviction
                self.assertEqual(sha256_file(dest), self.sha["small.bin"])
            # The evicted one is fetched again; the newest is still a hit.
            before = [self.key_bytes(fo, u) for u in urls]
            for i in (0, 2):
                os.chmod(dests[i], 0o644)
                os.unlink(dests[i])
                p = self.ctl("-q", "--cache-quota", str(2 * size + size // 2),
                             "-o", dests[i], urls[i])
                self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(self.key_bytes(fo, urls[0]) - before[0], size)
            self.assertLessEqual(self.key_bytes(fo, urls[2]) - before[2], 1)

    def test_quota_spares_the_object_downloading(self):
        """A quota smaller than the object: the eviction that runs after
        every commit skips the object being downloaded. While it runs, its
        row and its blob stay, and its durable bytes grow."""
        quota = 8 * MiB
        with FaultOrigin(self.root, rate=MiB) as fo:
            url = fo.url("mid.bin", case="quota")
            proc = self.spawn("-q", "-c", "4", "--cache-quota", str(quota),
                              "-o", os.path.join(self.out, "m"), url,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                seen = []  # durable bytes at each look, while row and blob exist
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not (
                        len(seen) >= 2 and seen[-1] > seen[0] and seen[0] > quota):
                    self.assertIsNone(proc.poll(),
                                      "the download ended early (at 4 MiB/s it takes ~10 s)")
                    now = durable_bytes(self.state)
                    rows = []
                    if now:
                        con = sqlite3.connect(os.path.join(self.state, "retriever.db"))
                        try:
                            rows = con.execute("SELECT blob FROM objects").fetchall()
                        finally:
                            con.close()
                    if now > quota or seen:
                        self.assertEqual(len(rows), 1, "the row went at %d bytes" % now)
                        self.assertTrue(os.path.exists(
                            os.path.join(self.cache, "blobs", rows[0][0])))
                        seen.append(now)
                    time.sleep(0.1)  # bounded: ~4 MiB/s arrive, synced each second
                self.assertGreaterEqual(len(seen), 2)
                self.assertGreater(seen[-1], seen[0])
            finally:
                proc.kill()
                proc.wait()

    # -- recovery and bad local state --------------------------------------

    def test_corrupt_database_recovered(self):
        with NginxOrigin(self.root) as ng:
            dest = os.path.join(self.out, "s")
            self.assertEqual(self.ctl("-q", "-o", dest, ng.url("small.bin")).returncode, 0)
            with open(os.path.join(self.state, "retriever.db"), "r+b") as f:
                f.write(b"garbage!" * 512)
            for suffix in ("-wal", "-shm"):
                path = os.path.join(self.state, "retriever.db" + suffix)
                if os.path.exists(path):
                    os.unlink(path)
            os.chmod(dest, 0o644)
            os.unlink(dest)
            p = self.ctl("-o", dest, ng.url("small.bin"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("was corrupt", p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["small.bin"])
            self.assertTrue(any(n.startswith("retriever.db.corrupt-")
                                for n in os.listdir(self.state)))

    def test_missing_cache_files_recovered(self):
        with NginxOrigin(self.root) as ng:
            dest = os.path.join(self.out, "s")
            self.assertEqual(self.ctl("-q", "-o", dest, ng.url("small.bin")).returncode, 0)
            for name in self.blobs():
                os.unlink(os.path.join(self.cache, "blobs", name))
            with open(os.path.join(self.cache, "blobs", "999"), "w") as f:
                f.write("orphan")
            os.chmod(dest, 0o644)
            os.unlink(dest)
            p = self.ctl("-o", dest, ng.url("small.bin"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("cache files were missing", p.stderr)
            self.assertIn("no download owned", p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["small.bin"])
            self.assertNotIn("999", self.blobs())

    def test_busy_state_directory(self):
        with FaultOrigin(self.root, rate=MiB) as fo:
            url = fo.url("mid.bin", case="busy")
            proc = self.spawn("-q", "-o", os.path.join(self.out, "a"), url)
            try:
                key = url.split(str(fo.port), 1)[1]
                self.assertTrue(fo.wait(key, 1, event="request"))
                p = self.ctl("-o", os.path.join(self.out, "b"), url)
                self.assertEqual(p.returncode, 3, p.stderr)
                self.assertIn("in use by process %d" % proc.pid, p.stderr)
                self.assertFalse(os.path.exists(os.path.join(self.out, "b")))
            finally:
                proc.kill()
                proc.wait()

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop to nobody")
    def test_unwritable_default_state_directory(self):
        """The default state directory ($XDG_STATE_HOME/retriever) cannot
        be made: the message names it and the way out; nothing is written."""
        ro = os.path.join(self.tmp, "ro")
        os.mkdir(ro, 0o555)
        os.chmod(self.tmp, 0o755)
        os.chmod(self.out, 0o777)
        env = dict(os.environ, XDG_STATE_HOME=ro, XDG_CACHE_HOME=ro)
        p = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
             CTL, "download", "--local", "-o", os.path.join(self.out, "f"),
             "http://127.0.0.1:9/x"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("state directory '%s/retriever'" % ro, p.stderr)
        self.assertIn("pass --no-state", p.stderr)
        self.assertEqual(os.listdir(ro), [])
        self.assertFalse(os.path.exists(os.path.join(self.out, "f")))

    def test_unwritable_cache_directory(self):
        os.chmod(self.tmp, 0o755)
        os.chmod(self.out, 0o777)
        os.mkdir(self.cache, 0o555)
        p = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
             CTL, "download", "--local", "--state-dir", os.path.join(self.out, "st"),
             "--cache-dir", self.cache, "-o", os.path.join(self.out, "f"),
             "http://127.0.0.1:9/x"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(self.cache, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out, "f")))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to mount a tmpfs")
    def test_disk_full_then_resumes(self):
        os.mkdir(self.cache)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=60m", "tmpfs",
                        self.cache], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.cache])
        with NginxOrigin(self.root) as ng:
            filler = os.path.join(self.cache, "filler")
            with open(filler, "wb") as f:
                f.write(b"\0" * (40 * MiB))
            dest = os.path.join(self.out, "mid.bin")
            p = self.ctl("-o", dest, ng.url("mid.bin"))
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn("no space", p.stderr.lower())
            self.assertFalse(os.path.exists(dest))
            os.unlink(filler)  # space again
            p = self.ctl("-o", dest, ng.url("mid.bin"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["mid.bin"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
