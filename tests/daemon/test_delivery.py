#!/usr/bin/python3
"""How a finished download reaches its destination, and when it is digested,
in `retrieverctl download --local` and through retrieverd (issue 19).

- The default delivery never shares an inode with the cache: a reflink or
  a copy, a file the caller may change. Editing it in place (the issue's
  repro: `printf XXXX | dd of=a.bin conv=notrunc`) leaves the cache
  intact, so the next download of the URL delivers the right bytes.
- --link (DownloadRequest.link) delivers the cache's own inode, read-only;
  retrieverd's link-deliveries makes that its default, and --copy
  (DownloadRequest.copy) still refuses it.
- A digest is per request: Completed.sha256 and ObjectStatus.sha256 are set
  exactly when digest (or a sha256 to verify) was asked for, and then they
  are the right digest, for downloads and cache hits alike.
- An identical request shares a running job only when that job gives it
  what it asked for: a digest if it wants one, no link if it wants none.
- A job's digest and link survive a restart of the daemon.

Real parts throughout: the real retrieverd and retrieverctl, nginx, and the
fault origin (rate-limited, for jobs that must still be running). Every
daemon and origin is started here and stopped by PID.

Environment (set by ctest): as test_jobs.py, plus RV_CTL (retrieverctl).
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402  (Daemon, the generated pb2)
from test_jobs import Client, kinds  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402

CTL = os.environ["RV_CTL"]
MiB = 1 << 20
RUN_TIMEOUT = 120   # a bound on any one retrieverctl run


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


def edit_in_place(path, data=b"XXXX"):
    """`printf XXXX | dd of=path conv=notrunc`: same size, same inode.
    chmod first: a hard-linked delivery is read-only, and a root caller
    (or the file's owner after chmod) can write it all the same."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-delivery-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "data")
        self.out = os.path.join(self.tmp, "out")
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        os.makedirs(self.root)
        os.makedirs(self.out)
        self.want = sha256_file(make_file(os.path.join(self.root, "a.bin"), 3 * MiB + 5, 19))

    def cache_inodes(self):
        """(dev, ino) of every regular file under the cache directory."""
        found = set()
        for dirpath, _, files in os.walk(self.cache):
            for f in files:
                st = os.lstat(os.path.join(dirpath, f))
                if stat.S_ISREG(st.st_mode):
                    found.add((st.st_dev, st.st_ino))
        self.assertTrue(found, "nothing in the cache: the test would prove nothing")
        return found

    def assert_private(self, path):
        """Not the cache's inode, one link, writable by its owner."""
        st = os.stat(path)
        self.assertNotIn((st.st_dev, st.st_ino), self.cache_inodes(), path)
        self.assertEqual(st.st_nlink, 1, path)
        self.assertTrue(st.st_mode & stat.S_IWUSR, oct(st.st_mode))
        self.assertEqual(sha256_file(path), self.want)

    def assert_linked(self, path):
        """The cache's inode, read-only, its owner's only (RV_BLOB_MODE)."""
        st = os.stat(path)
        self.assertIn((st.st_dev, st.st_ino), self.cache_inodes(), path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o400)
        self.assertEqual(sha256_file(path), self.want)

    def ctl(self, *args):
        p = subprocess.run([CTL, "download", *self.mode(), *args], capture_output=True,
                           text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, "retrieverctl %s: %s" % (args, p.stderr))
        return p

    def out_path(self, name):
        return os.path.join(self.out, name)

    # -- shared by both modes ------------------------------------------------

    def check_default_is_private(self, url):
        self.ctl("-o", self.out_path("a.bin"), url)
        self.assert_private(self.out_path("a.bin"))
        # A cache hit too.
        self.ctl("-o", self.out_path("b.bin"), url)
        self.assert_private(self.out_path("b.bin"))

    def check_link(self, url):
        self.ctl("--link", "-o", self.out_path("l.bin"), url)
        self.assert_linked(self.out_path("l.bin"))
        # A cache hit, linked again: the same inode.
        self.ctl("--link", "-o", self.out_path("m.bin"), url)
        self.assert_linked(self.out_path("m.bin"))
        self.assertEqual(os.stat(self.out_path("l.bin")).st_ino,
                         os.stat(self.out_path("m.bin")).st_ino)
        # --copy next to it: the caller's own file.
        self.ctl("--copy", "-o", self.out_path("c.bin"), url)
        self.assert_private(self.out_path("c.bin"))

    def check_edit_does_not_reach_the_cache(self, url):
        """The issue's repro, exactly."""
        a, b = self.out_path("a.bin"), self.out_path("b.bin")
        self.ctl("-o", a, url)
        edit_in_place(a)
        self.assertNotEqual(sha256_file(a), self.want)
        self.ctl("-o", b, url)
        self.assertEqual(sha256_file(b), self.want, "the edit of a.bin reached b.bin")
        # ... and with --sha256 the hit passes too.
        c = self.out_path("c.bin")
        p = self.ctl("--sha256", self.want, "-o", c, url)
        self.assertIn("sha256 verified", p.stderr)
        self.assertEqual(sha256_file(c), self.want)


# ---------------------------------------------------------------------------
# --local
# ---------------------------------------------------------------------------

class LocalTest(Base):
    def mode(self):
        return ["--local", "--no-progress", "--state-dir", self.state, "--cache-dir", self.cache]

    def test_default_delivery_is_not_the_caches_inode(self):
        with NginxOrigin(self.root) as ng:
            self.check_default_is_private(ng.url("/a.bin"))

    def test_link_gives_the_caches_inode_read_only(self):
        with NginxOrigin(self.root) as ng:
            self.check_link(ng.url("/a.bin"))

    def test_same_size_edit_of_a_delivery_leaves_the_cache_intact(self):
        with NginxOrigin(self.root) as ng:
            self.check_edit_does_not_reach_the_cache(ng.url("/a.bin"))


# ---------------------------------------------------------------------------
# retrieverd
# ---------------------------------------------------------------------------

class DaemonTest(Base):
    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.conf = os.path.join(self.tmp, "retrieverd.conf")
        with open(self.conf, "w") as f:
            f.write("# empty: defaults and flags only\n")

    def mode(self):
        return ["--no-progress", "--socket", self.sock]

    def daemon(self, *args):
        d = td.Daemon(["--socket", self.sock, "--state-dir", self.state,
                       "--cache-dir", self.cache, "--config", self.conf,
                       "--max-connections-per-object", "2", *args])
        self.addCleanup(d.kill)
        return d.start()

    def client(self):
        c = Client(self.sock)
        self.addCleanup(c.close)
        return c

    def stop_ok(self, d):
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())
        d.assert_clean(self)

    def test_default_delivery_is_not_the_caches_inode(self):
        with NginxOrigin(self.root) as ng:
            d = self.daemon()
            self.check_default_is_private(ng.url("/a.bin"))
            self.stop_ok(d)

    def test_link_gives_the_caches_inode_read_only(self):
        with NginxOrigin(self.root) as ng:
            d = self.daemon()
            self.check_link(ng.url("/a.bin"))
            self.stop_ok(d)

    def test_same_size_edit_of_a_delivery_leaves_the_cache_intact(self):
        with NginxOrigin(self.root) as ng:
            d = self.daemon()
            self.check_edit_does_not_reach_the_cache(ng.url("/a.bin"))
            self.stop_ok(d)

    def test_link_deliveries_setting_and_copy(self):
        """link-deliveries = true: links by default; --copy still a copy."""
        with NginxOrigin(self.root) as ng:
            d = self.daemon("--link-deliveries", "true")
            url = ng.url("/a.bin")
            self.ctl("-o", self.out_path("l.bin"), url)
            self.assert_linked(self.out_path("l.bin"))
            self.ctl("--copy", "-o", self.out_path("c.bin"), url)
            self.assert_private(self.out_path("c.bin"))
            self.stop_ok(d)

    def test_digest_only_when_asked(self):
        """digest=false: no sha256 in Completed or Status, for a download and
        for a cache hit; digest=true: the right one, both places."""
        with NginxOrigin(self.root) as ng:
            d = self.daemon()
            c = self.client()
            url = ng.url("/a.bin")
            cases = [("plain", False, False), ("hit-plain", False, True),
                     ("digested", True, True), ("new-digested", True, False)]
            for name, digest, cached in cases:
                with self.subTest(name=name):
                    if not cached:  # a URL the cache has not seen
                        url = ng.url("/a.bin?n=" + name)
                    events = list(c.download([{"url": url,
                                               "destination": self.out_path(name)}],
                                             digest=digest))
                    self.assertEqual(kinds(events)[-1], "completed", events[-1])
                    done = events[-1].completed
                    self.assertEqual(done.from_cache, cached)
                    job = c.status(events[0].job_id)
                    self.assertEqual(done.sha256, self.want if digest else "")
                    self.assertEqual(job.objects[0].sha256, self.want if digest else "")
                    self.assertRegex(done.crc32c, "^[0-9a-f]{8}$")
                    self.assertEqual(sha256_file(self.out_path(name)), self.want)
            self.stop_ok(d)

    def test_sharing_a_job_only_when_it_gives_what_was_asked(self):
        """Identical sources, same destination, while the first job runs:
        a request wanting a digest does not attach to a job without one
        (its Completed could not carry a sha256), nor one wanting no link to
        a linking job; the other way round, they attach."""
        want = sha256_file(make_file(os.path.join(self.root, "s.bin"), 2 * MiB, 7))
        # 2 connections at 512 KiB/s: the first job runs for about 2 s,
        # while the second request is submitted at once.
        with FaultOrigin(self.root, rate=512 * 1024) as fo:
            d = self.daemon()
            c = self.client()

            def submit(name, **kw):
                it = c.download([{"url": fo.url("/s.bin", case=name),
                                  "destination": self.out_path(name)}], timeout=120, **kw)
                first = next(it)
                self.assertEqual(first.WhichOneof("event"), "accepted")
                return it, first.job_id

            def finish(it):
                return [e for e in it]

            for name, first, second, shared in [
                    ("digest-wanted", {}, {"digest": True}, False),
                    ("digest-given", {"digest": True}, {}, True),
                    ("link-unwanted", {"link": True}, {}, False),
                    ("link-unwanted-copy", {"link": True}, {"copy": True}, False),
                    ("link-wanted", {}, {"link": True}, True)]:
                with self.subTest(name=name):
                    it1, id1 = submit(name, **first)
                    it2, id2 = submit(name, **second)
                    self.assertEqual(id1 == id2, shared, (id1, id2))
                    ev2 = finish(it2)
                    ev1 = finish(it1)
                    self.assertEqual(kinds(ev1)[-1], "completed", ev1[-1])
                    end2 = ev2[-1]
                    if end2.WhichOneof("event") == "completed":
                        # Whatever the second got, it got what it asked for.
                        if second.get("digest"):
                            self.assertEqual(end2.completed.sha256, want)
                    else:  # a job of its own, refused while the first writes the file
                        self.assertFalse(shared)
                        self.assertEqual(end2.failed.error.code, "RV_E_DEST_CONFLICT", end2)
                    self.assertEqual(sha256_file(self.out_path(name)), want)
                    st = os.stat(self.out_path(name))
                    self.assertEqual(st.st_nlink > 1, bool(first.get("link")))
            self.stop_ok(d)

    def test_digest_and_link_survive_a_restart(self):
        """A detached job asking for a digest and a link, stopped mid-way by
        SIGTERM, finishes after the restart with both."""
        want = sha256_file(make_file(os.path.join(self.root, "r.bin"), 24 * MiB, 23))
        dest = self.out_path("r.bin")
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            d = self.daemon()
            c = self.client()
            events = list(c.download([{"url": fo.url("/r.bin", case="restart"),
                                       "destination": dest}],
                                     detach=True, digest=True, link=True))
            job_id = events[0].job_id
            deadline = time.monotonic() + 30
            while c.status(job_id).objects[0].progress.bytes_done < 4 * MiB:
                self.assertLess(time.monotonic(), deadline, "no progress")
                time.sleep(0.05)
            c.close()
            self.stop_ok(d)
            self.assertFalse(os.path.exists(dest))

            d = self.daemon()
            c = self.client()
            w = list(c.watch(job_id, timeout=120))
            self.assertEqual(kinds(w)[-1], "completed", w[-1])
            self.assertEqual(w[-1].completed.sha256, want)
            self.assertEqual(c.status(job_id).objects[0].sha256, want)
            self.want = want
            self.assert_linked(dest)
            self.stop_ok(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
