#!/usr/bin/python3
"""A full disk through retrieverd: a small tmpfs mounted by the test (root
only: CI runs as root; see daemons.require_root) holds either the daemon's
cache or a destination folder.

What must hold: the job that does not fit fails with a clear "no space"
error (a Failed event, code RV_E_NO_SPACE; the RPC itself ends OK), leaves
nothing behind on the full file system, and spoils nothing: files delivered
before stay as they were, cache entries stay hits, the durable ranges of an
unfinished download stay resumable; and the daemon serves on.

Environment: as test_jobs.py (RV_DAEMON, RV_PROTOC, RV_PROTO_DIR,
RV_VERSION, RV_FIXTURES).
"""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402
from daemons import require_root  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402
from test_jobs import Client, case_key, essential, kinds, per_object  # noqa: E402

MiB = 1 << 20
TMPFS_SIZE = 8 * MiB


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        require_root(self, "mounts a tmpfs")
        self.tmp = tempfile.mkdtemp(prefix="rv-diskfull-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.data = os.path.join(self.tmp, "data")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.data)
        os.makedirs(self.out)
        self.small = self.mount_tmpfs("small")

    def mount_tmpfs(self, name):
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % TMPFS_SIZE,
                            "rv-diskfull", path], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.fail("cannot mount a tmpfs on %s (%d): %s" % (path, r.returncode, r.stderr))
        # Cleanups run last-first: this one after the daemon's kill.
        self.addCleanup(subprocess.run, ["umount", "-l", path], capture_output=True, timeout=60)
        return path

    def daemon(self, cache_dir):
        d = td.Daemon(["--socket", self.sock,
                       "--state-dir", os.path.join(self.tmp, "state"),
                       "--cache-dir", cache_dir,
                       "--config", self.config(),
                       "--max-connections-per-object", "2"])
        self.addCleanup(d.kill)
        d.start()
        c = Client(self.sock)
        self.addCleanup(c.close)
        return d, c

    def config(self):
        path = os.path.join(self.tmp, "retrieverd.conf")
        with open(path, "w") as f:
            f.write("# empty: defaults and flags only\n")
        return path

    def stop_ok(self, d):
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())
        d.assert_clean(self)

    def file(self, name, size, seed=0):
        return make_file(os.path.join(self.data, name), size, seed)

    def used(self, path):
        st = os.statvfs(path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def assert_no_space(self, events, i=0):
        self.assertEqual(essential(per_object(events, i))[-1], "failed", events[-1])
        err = [e for e in events if e.object_index == i][-1].failed.error
        self.assertEqual(err.code, "RV_E_NO_SPACE", err)
        self.assertIn("No space left on device", err.message + " " + err.detail)
        return err

    def test_cache_on_a_full_file_system(self):
        a = self.file("a.bin", 2 * MiB, seed=1)
        p = self.file("p.bin", 4 * MiB, seed=2)
        self.file("big.bin", 12 * MiB, seed=3)
        with FaultOrigin(self.data) as fo:
            d, c = self.daemon(self.small)
            # Delivered before the disk fills.
            ev = list(c.download([{"url": fo.url("/a.bin"), "destination": self.out + "/a"}]))
            self.assertEqual(kinds(ev)[-1], "completed", ev[-1])
            # Unfinished: slow (8 s at least), cancelled once some of it is
            # durable (the engine records that about once a second).
            url_p = fo.url("/p.bin", rate=256 * 1024, case="partial")
            it = c.download([{"url": url_p, "destination": self.out + "/p"}])
            job_p = next(it).job_id
            durable = self.wait_durable("/p.bin", 256 * 1024)
            c.cancel(job_p)
            self.assertEqual(kinds(list(it))[-1], "cancelled")
            sent_p = fo.stats()["per_key"][case_key(url_p)]["body_bytes"]
            self.assertLess(sent_p, 4 * MiB)
            before = self.used(self.small)

            # Does not fit: fails clearly, at once, leaves nothing.
            ev = list(c.download([{"url": fo.url("/big.bin"), "destination": self.out + "/big"}]))
            self.assert_no_space(ev)
            self.assertFalse(os.path.exists(self.out + "/big"))
            self.assertEqual(self.used(self.small), before)

            # Nothing spoilt, and the daemon serves on: the delivered file,
            # the cache entry (a hit), the durable ranges (a resume).
            self.assertEqual(td.ping(self.sock).api_version, 1)
            self.assertEqual(sha256_file(self.out + "/a"), sha256_file(a))
            fo.reset()
            ev = list(c.download([{"url": fo.url("/a.bin"), "destination": self.out + "/a2"}]))
            self.assertEqual(kinds(ev)[-1], "completed", ev[-1])
            self.assertTrue(ev[-1].completed.from_cache)
            self.assertEqual(sha256_file(self.out + "/a2"), sha256_file(a))
            durable_after = self.durable("/p.bin")
            self.assertGreaterEqual(durable_after, durable, "durable ranges were lost")
            ev = list(c.download([{"url": url_p, "destination": self.out + "/p"}]))
            self.assertEqual(kinds(ev)[-1], "completed", ev[-1])
            self.assertEqual(sha256_file(self.out + "/p"), sha256_file(p))
            resent = fo.stats()["per_key"][case_key(url_p)]["body_bytes"]
            self.assertLessEqual(resent, 4 * MiB - durable_after,
                                 "the durable ranges were fetched again")
            # The hit was checked with the origin (cache-revalidate), one
            # byte, not fetched again.
            self.assertLessEqual(fo.stats()["per_key"][case_key(fo.url("/a.bin"))]["body_bytes"], 1)
            self.stop_ok(d)

    def durable(self, path):
        """Bytes the state database records durable for the object whose
        URL path is `path` (docs/state.md: ranges.durable)."""
        db = os.path.join(self.tmp, "state", "retriever.db")
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        try:
            row = con.execute("SELECT coalesce(sum(r.durable - r.start), 0) FROM ranges r"
                              " JOIN objects o ON o.id = r.object_id"
                              " WHERE o.key LIKE ?", ("%" + path + "%",)).fetchone()
            return row[0]
        finally:
            con.close()

    def wait_durable(self, path, want):
        """Until the database records `want` bytes durable (the engine
        syncs and records about once a second; bounded, polled: no event
        says so from outside)."""
        end = time.monotonic() + 30
        while time.monotonic() < end:
            got = self.durable(path)
            if got >= want:
                return got
            time.sleep(0.1)
        self.fail("no %d bytes of %s became durable" % (want, path))

    def test_destination_on_a_full_file_system(self):
        a = self.file("a.bin", 2 * MiB, seed=4)
        big = self.file("big.bin", 7 * MiB, seed=5)
        cache = os.path.join(self.tmp, "cache")
        with FaultOrigin(self.data) as fo:
            d, c = self.daemon(cache)
            ev = list(c.download([{"url": fo.url("/a.bin"), "destination": self.small + "/a"}]))
            self.assertEqual(kinds(ev)[-1], "completed", ev[-1])
            before = self.used(self.small)

            # Downloaded into the cache, but the copy does not fit: a
            # clear failure, no half-written (hidden) file left.
            url = fo.url("/big.bin")
            ev = list(c.download([{"url": url, "destination": self.small + "/big"}]))
            self.assert_no_space(ev)
            self.assertEqual(sorted(os.listdir(self.small)), ["a"])
            self.assertEqual(self.used(self.small), before)
            self.assertEqual(sha256_file(self.small + "/a"), sha256_file(a))
            self.assertEqual(td.ping(self.sock).api_version, 1)

            # With room made, the same request is a cache hit.
            os.unlink(self.small + "/a")
            sent = fo.stats()["body_bytes"]
            ev = list(c.download([{"url": url, "destination": self.small + "/big"}]))
            self.assertEqual(kinds(ev)[-1], "completed", ev[-1])
            self.assertTrue(ev[-1].completed.from_cache)
            self.assertLessEqual(fo.stats()["body_bytes"], sent + 1)  # a revalidation
            self.assertEqual(sha256_file(self.small + "/big"), sha256_file(big))
            self.stop_ok(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
