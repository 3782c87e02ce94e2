#!/usr/bin/python3
"""Digested objects on the staged write path (lib/src/stage.c), through the
real retrieverctl --local: a big object downloaded with --digest is written
by the writer threads from stages, and the digester hashes each stage from
its buffer as the digest frontier reaches it instead of reading the file
back. The sha256 reported must be that of the delivered bytes however the
ranges arrive: in order from nginx, out of order from the fault origin,
with a stalled first range, cut and continued, restarted, resumed after
kill -9, with O_DIRECT refused, without state, and with few connections
(ranges of several stages, whose transfers wait mid-range for the digest),
and from a far origin (slow to answer: not paced, read back).

Two preloaded shims watch from outside: pread_count.c counts the bytes read
back from files in large reads (the digester's 1 MiB reads), and
direct_einval.c plays a disk that refuses O_DIRECT. Thread names
(threads.py) show whether the writer threads ran.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from origins import FaultOrigin, NginxOrigin, make_file, sha256_file
from test_state import durable_bytes
from threads import threads_seen

CTL = os.environ["RV_CTL"]
PREAD_SHIM = os.environ["RV_PREAD_COUNT_SHIM"]
EINVAL_SHIM = os.environ["RV_DIRECT_EINVAL_SHIM"]
MiB = 1 << 20
RUN_TIMEOUT = 120


class DigestStagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-dstage-www-")
        os.chmod(cls.root, 0o755)
        cls.sha = {}
        # Both above the 16 MiB from which objects are staged.
        for name, size, seed in (("mid.bin", 40 * MiB + 3, 21),
                                 ("odd.bin", 24 * MiB + 4097, 22),
                                 ("other.bin", 32 * MiB + 5, 23)):
            path = make_file(os.path.join(cls.root, name), size, seed)
            os.chmod(path, 0o644)
            cls.sha[name] = sha256_file(path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-dstage-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)
        self.runs = 0

    def argv(self, *args, state=True):
        where = (["--state-dir", self.state, "--cache-dir", self.cache]
                 if state else ["--no-state"])
        return [CTL, "download", "--local", *where, *args]

    def env(self, refuse_direct=None):
        """Environment with the pread counter preloaded (and the shim that
        refuses O_DIRECT writes after `refuse_direct` of them, if given);
        returns (env, path of the counter's report)."""
        self.runs += 1
        log = os.path.join(self.tmp, "pread%d" % self.runs)
        libs = [PREAD_SHIM] + ([EINVAL_SHIM] if refuse_direct is not None else [])
        env = dict(os.environ, LD_PRELOAD=" ".join(libs), RV_SHIM_PREAD_LOG=log)
        if refuse_direct is not None:
            env["RV_SHIM_DIRECT_WRITES"] = str(refuse_direct)
        # Under ASan the shims come before the sanitizer's runtime.
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"),
                        "verify_asan_link_order=0") if o)
        return env, log

    def run_json(self, *args, state=True, refuse_direct=None):
        """One download with --json, watched: returns (exit status, the
        JSON line or None, rv-writer threads seen, bytes read back)."""
        env, log = self.env(refuse_direct)
        proc = subprocess.Popen(self.argv("--json", *args, state=state),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        seen = threads_seen(proc, RUN_TIMEOUT)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        writers = sum(1 for n in seen.values() if n == "rv-writer")
        with open(log) as f:
            read_back = int(f.read())
        line = json.loads(out.splitlines()[0]) if out.strip() else None
        return proc.returncode, line, writers, read_back, err

    def check_ok(self, name, dest, *args, state=True, refuse_direct=None,
                 want=None, max_read_back=None):
        rc, line, writers, read_back, err = self.run_json(
            "-o", dest, *args, state=state, refuse_direct=refuse_direct)
        want = want or self.sha[name]
        self.assertEqual(rc, 0, err)
        self.assertEqual(line["state"], "done")
        self.assertEqual(sha256_file(dest), want)
        self.assertEqual(line["sha256"], want)
        # The staged path: the writer threads wrote the object (before,
        # a digested object was written by the engine thread itself).
        self.assertGreater(writers, 0, "not staged")
        if max_read_back is not None:
            self.assertLessEqual(read_back, max_read_back, "read back")
        return read_back

    # -- from nginx: in order ----------------------------------------------

    def test_nginx_hashed_from_stages_not_read_back(self):
        """With state (O_DIRECT) and without (page cache): the object is
        staged, its sha256 is right, and the digester read none of it back
        (every stage was hashed from its buffer; before, it read all of it
        back). Loopback nginx answers within a millisecond: a near origin,
        whose digested ranges are paced (stage.c, NEAR_ORIGIN_US)."""
        with NginxOrigin(self.root) as ng:
            for case, state in (("state", True), ("nostate", False)):
                dest = os.path.join(self.out, case)
                self.check_ok("mid.bin", dest, "-c", "8", "--digest",
                              ng.url("mid.bin", case=case), state=state,
                              max_read_back=0)

    def test_ranges_of_several_stages_wait_mid_range(self):
        """Few connections make ranges of several stages: a transfer that
        would run too far past the digest waits mid-range (libcurl pauses
        it) and goes on once the digest catches up. An object whose size
        is not a whole number of blocks, a --sha256 check, both modes."""
        with NginxOrigin(self.root) as ng:
            for case, state in (("state", True), ("nostate", False)):
                dest = os.path.join(self.out, case)
                self.check_ok("odd.bin", dest, "-c", "2", "--sha256",
                              self.sha["odd.bin"], ng.url("odd.bin", case=case),
                              state=state, max_read_back=0)

    def test_objects_share_the_held_window(self):
        """Three digested objects at once share the engine's held stages
        (at most 24 over all objects; one object alone holds about 16):
        when they are all out, a stage nearer its object's frontier takes
        the place of that object's farthest, which is read back later.
        Every object's sha256 is right, with state and without."""
        names = ("mid.bin", "odd.bin", "other.bin")
        with NginxOrigin(self.root) as ng:
            for case, state in (("state", True), ("nostate", False)):
                outdir = os.path.join(self.out, case)
                os.mkdir(outdir)
                env, _ = self.env()
                p = subprocess.run(
                    self.argv("--json", "-c", "16", "--digest", "-d", outdir,
                              *[ng.url(n, case=case) for n in names], state=state),
                    stdin=subprocess.DEVNULL, capture_output=True, text=True,
                    timeout=RUN_TIMEOUT, env=env)
                self.assertEqual(p.returncode, 0, p.stderr)
                lines = [json.loads(l) for l in p.stdout.splitlines()]
                self.assertEqual(len(lines), len(names))
                for line in lines:
                    name = os.path.basename(line["path"])
                    self.assertEqual(line["sha256"], self.sha[name], name)
                    self.assertEqual(sha256_file(os.path.join(outdir, name)),
                                     self.sha[name], name)

    # -- from the fault origin: out of order, stalled, cut -------------------

    def test_stalled_first_range(self):
        """The first range after the probe (the digest frontier) stalls
        for 1.5 s after 300 KB while the other ranges finish: they wait
        for it, held or not started, and the digest comes out right."""
        with FaultOrigin(self.root, rate=8 * MiB) as fo:
            url = fo.url("mid.bin", after=1, times=1, stall_after=300000,
                         stall_ms=1500, case="stall")
            for case, state in (("state", True), ("nostate", False)):
                self.check_ok("mid.bin", os.path.join(self.out, case), "-c", "8",
                              "--digest", url + "&mode=" + case, state=state)

    def test_ranges_cut_and_continued_out_of_order(self):
        """Ranges cut mid-body (connection reset after 300 KB) are
        continued from where they stopped, after ranges beyond them have
        landed: the digest still takes every byte once, in order."""
        with FaultOrigin(self.root, rate=16 * MiB) as fo:
            for case, state in (("state", True), ("nostate", False)):
                url = fo.url("mid.bin", after=2, times=6, reset_after=300000,
                             case="cut-" + case)
                self.check_ok("mid.bin", os.path.join(self.out, case), "-c", "8",
                              "--digest", url, state=state)

    def test_restart_mid_way(self):
        """The object changes after a few ranges: the download restarts
        (stages held for the old version are dropped, the hash starts
        over) and the sha256 is that of the new version."""
        with open(os.path.join(self.root, "mid.bin"), "rb") as f:
            new = bytes(b ^ 0xFF for b in f.read())
        want = hashlib.sha256(new).hexdigest()
        with FaultOrigin(self.root, rate=16 * MiB) as fo:
            for case, state in (("state", True), ("nostate", False)):
                url = fo.url("mid.bin", change_after=6, case="chg-" + case)
                self.check_ok("mid.bin", os.path.join(self.out, case), "-c", "8",
                              "--digest", url, state=state, want=want)

    def test_failure_while_stages_are_held(self):
        """A range fails for good (HTTP 500, no retries) while the ranges
        around it run and stages are held for the digest: the download
        fails cleanly, leaves no file, and a second run (same state) gets
        the right bytes. Under the sanitizers: nothing held leaks."""
        with FaultOrigin(self.root, rate=8 * MiB) as fo:
            for case, state in (("state", True), ("nostate", False)):
                dest = os.path.join(self.out, case)
                url = fo.url("mid.bin", status=500, after=6, times=1,
                             case="fail-" + case)
                rc, line, _, _, err = self.run_json(
                    "-o", dest, "-c", "8", "--retries", "0", "--digest", url,
                    state=state)
                self.assertNotEqual(rc, 0, err)
                self.assertEqual(line["state"], "failed", line)
                self.assertFalse(os.path.exists(dest))
                self.check_ok("mid.bin", dest, "-c", "8", "--digest", url,
                              state=state)

    def test_far_origin_keeps_its_ranges(self):
        """An origin that takes 30 ms to answer each request is far: its
        ranges keep their size (pacing would cost a round trip per
        512 KiB), no stage is held, and the digester reads the whole
        object back; the sha256 is right."""
        size = os.path.getsize(os.path.join(self.root, "mid.bin"))
        with FaultOrigin(self.root, latency_ms=30) as fo:
            for case, state in (("state", True), ("nostate", False)):
                read_back = self.check_ok(
                    "mid.bin", os.path.join(self.out, case), "-c", "8", "--digest",
                    fo.url("mid.bin", case="far-" + case), state=state)
                # (the shim counts reads of 64 KiB or more: not the last
                # few bytes, read alone)
                self.assertGreater(read_back, size - 64 * 1024, case)

    # -- resume, refused O_DIRECT --------------------------------------------

    def test_resume_after_kill9(self):
        """Killed -9 mid-download, then run again: the durable ranges are
        not fetched again, so the digester reads them back from the blob
        (at least what was durable), while the rest is hashed from stages;
        the sha256 is right."""
        dest = os.path.join(self.out, "r")
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            url = fo.url("mid.bin", case="resume")
            proc = subprocess.Popen(self.argv("-q", "-c", "4", "--digest", "-o", dest, url),
                                    stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while durable_bytes(self.state) < 8 * MiB and time.monotonic() < deadline:
                if proc.poll() is not None:
                    self.fail("finished too early")
                time.sleep(0.1)  # bounded: 8 MiB take ~1 s at 8 MiB/s
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kept = durable_bytes(self.state)
            self.assertGreaterEqual(kept, 8 * MiB)
            read_back = self.check_ok("mid.bin", dest, "-c", "4", "--digest", url)
            self.assertGreaterEqual(read_back, kept)

    def test_direct_writes_refused(self):
        """A disk that refuses O_DIRECT (EINVAL), from the first write and
        after 3: the refused stages are written through the page cache and
        still hashed from their buffers."""
        with NginxOrigin(self.root) as ng:
            for allowed in (0, 3):
                dest = os.path.join(self.out, "refused%d" % allowed)
                self.check_ok("mid.bin", dest, "-c", "8", "--digest",
                              ng.url("mid.bin", case="refused%d" % allowed),
                              refuse_direct=allowed, max_read_back=0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
