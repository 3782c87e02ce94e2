#!/usr/bin/python3
"""File modes (issue 20, items 3 and 7; docs/security.md, "File modes").

- A delivery through retrieverd gets 0666 & ~the caller's umask
  (DownloadRequest.umask.bits, which retrieverctl sends), 0600 when the request
  has none; a umask with bits outside 0777 is INVALID_ARGUMENT. Checked as
  a second real uid and as root (the daemon's own uid), for each delivery
  path: a small file (a copy of the cache's blob), a file of 16 MiB or more
  (written beside the destination as it arrives: the tee), a cache hit (a
  copy), and a hard link (--link: the blob's own 0400).
- retrieverctl --local: the process's umask, for the same paths and
  --no-state.
- Every file retrieverd and the engine make for themselves is private:
  the databases and their -wal/-shm files 0600 (while the daemon runs and
  after), directories 0700, cache blobs 0400 (readable by the cache's owner
  only); a database an older version left 0644 is narrowed at start.

The daemon is started with umask 022 (the usual one), so nothing here is
private by accident. Needs root for the second uid (CI runs as root).
Environment: as test_delivery.py.
"""
import json
import os
import shutil
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
from daemons import make_user, require_root  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402
from callers import CallersMixin  # noqa: E402
from test_jobs import Client  # noqa: E402

CTL = os.environ["RV_CTL"]
MiB = 1 << 20
SMALL = 300 * 1024 + 7
BIG = 17 * MiB + 5      # over the 16 MiB from which a download with state is teed
UMASKS = (0o077, 0o022, 0o027, None)   # None: the request carries no umask
RUN_TIMEOUT = 120


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def want_mode(umask):
    return 0o600 if umask is None else 0o666 & ~umask


# A snippet run as the caller (CallersMixin.as_caller): downloads each
# (url, dest, umask or None, link) of JOBS in turn and prints the last
# event of each as JSON.
DOWNLOADS = (
    "import json\n"
    "out = []\n"
    "for url, dest, um, link in JOBS:\n"
    "    kw = {} if um is None else {'umask': pb.Umask(bits=um)}\n"
    "    req = pb.DownloadRequest(sources=[pb.Source(url=url, destination=dest)], link=link,"
    " **kw)\n"
    "    try:\n"
    "        evs = list(ch.unary_stream(S+'Download', request_serializer=ser,"
    " response_deserializer=pb.JobEvent.FromString)(req, timeout=60))\n"
    "        e = evs[-1]\n"
    "        k = e.WhichOneof('event')\n"
    "        out.append(k if k == 'completed' else str(e))\n"
    "    except grpc.RpcError as e:\n"
    "        out.append(e.code().name + ': ' + e.details())\n"
    "print(json.dumps(out))\n")


class Base(CallersMixin, unittest.TestCase):
    def setUp(self):
        # The umask retrieverd and retrieverctl inherit: the usual one, so
        # a private file is private by the fix, not by the test's umask.
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        self.tmp = tempfile.mkdtemp(prefix="rv-modes-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data = os.path.join(self.tmp, "data")
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        os.makedirs(self.data)
        os.chmod(self.data, 0o755)
        self.small = make_file(os.path.join(self.data, "small.bin"), SMALL, 3)
        self.big = make_file(os.path.join(self.data, "big.bin"), BIG, 4)
        for f in (self.small, self.big):
            os.chmod(f, 0o644)
        self.want = {"small": sha256_file(self.small), "big": sha256_file(self.big)}

    def assert_delivered(self, path, mode, uid, what, content):
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode), path)
        self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(mode), "%s: %s" % (what, path))
        self.assertEqual(st.st_uid, uid, "%s: %s" % (what, path))
        self.assertEqual(sha256_file(path), self.want[content], path)

    def assert_private_tree(self, *roots, blobs_in=None, expect=()):
        """Every directory under roots is 0700, every file 0600, but the
        regular files directly in the cache's blob folders (blobs_in), which
        are 0400. expect: names that must be there (the check must not pass
        on an empty tree). Returns the files seen."""
        seen = {}
        for root in roots:
            self.assertEqual(oct(mode_of(root)), oct(0o700), root)
            for dirpath, dirs, files in os.walk(root):
                for d in dirs:
                    p = os.path.join(dirpath, d)
                    self.assertEqual(oct(mode_of(p)), oct(0o700), p)
                for f in files:
                    p = os.path.join(dirpath, f)
                    st = os.lstat(p)
                    if not stat.S_ISREG(st.st_mode):
                        continue  # a socket or lock the test did not make
                    blob = blobs_in is not None and dirpath.startswith(blobs_in) \
                        and f.isdigit()
                    want = 0o400 if blob else 0o600
                    self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(want), p)
                    seen[os.path.relpath(p, root)] = stat.S_IMODE(st.st_mode)
        for name in expect:
            self.assertIn(name, seen, "expected %s among %s" % (name, sorted(seen)))
        self.assertTrue(any(m == 0o400 for m in seen.values()) or blobs_in is None,
                        "no blob seen: %s" % sorted(seen))
        return seen


# ---------------------------------------------------------------------------
# retrieverd
# ---------------------------------------------------------------------------

class DaemonModesTest(Base):
    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")

    def daemon(self, *args):
        conf = os.path.join(self.tmp, "retrieverd.conf")
        with open(conf, "w") as f:
            f.write("# empty: defaults and flags only\n")
        d = td.Daemon(["--socket", self.sock, "--state-dir", self.state,
                       "--cache-dir", self.cache, "--config", conf,
                       "--max-connections-per-object", "2", *args])
        self.addCleanup(d.kill)
        return d.start()

    def stop_ok(self, d):
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())
        d.assert_clean(self)

    def downloads(self, uid, gid, jobs):
        out = self.as_caller("JOBS = %r\n" % (jobs,) + DOWNLOADS, uid=uid, gid=gid)
        results = json.loads(out.splitlines()[-1])
        self.assertEqual(results, ["completed"] * len(jobs), out)

    def test_deliveries_get_the_callers_umask(self):
        require_root(self, "a second real uid")
        user = make_user(self)
        with NginxOrigin(self.data) as ng:
            self.daemon_for_everyone()
            for who, uid, gid in (("user", user.uid, user.gid), ("root", 0, 0)):
                out = self.owned_dir("out-" + who, uid, gid, 0o755)
                jobs, checks = [], []
                for um in UMASKS:
                    tag = "none" if um is None else "%03o" % um
                    for content in ("small", "big"):
                        # A URL of its own per caller and umask: the first
                        # download is fetched (the small one copied from its
                        # blob, the big one teed), the second is a cache hit.
                        url = ng.url("/%s.bin" % content, who=who, u=tag)
                        for n in ("fetched", "hit"):
                            dest = os.path.join(out, "%s-%s-%s" % (content, tag, n))
                            jobs.append((url, dest, um, False))
                            checks.append((dest, want_mode(um), "%s %s %s umask %s"
                                           % (who, content, n, tag), content))
                # A hard link to the cache: the blob's own mode whatever the
                # umask (for root only: another uid always gets a copy).
                if who == "root":
                    url = ng.url("/small.bin", who=who, u="022")
                    dest = os.path.join(out, "linked")
                    jobs.append((url, dest, 0o022, True))
                    checks.append((dest, 0o400, "root --link", "small"))
                self.downloads(uid, gid, jobs)
                for dest, mode, what, content in checks:
                    self.assert_delivered(dest, mode, uid, what, content)
                if who == "root":
                    self.assertEqual(os.stat(os.path.join(out, "linked")).st_nlink, 2,
                                     "--link did not link: the check would prove nothing")

    def test_retrieverctl_sends_its_umask(self):
        require_root(self, "a second real uid")
        user = make_user(self)
        with NginxOrigin(self.data) as ng:
            self.daemon_for_everyone()
            out = self.owned_dir("out", user.uid, user.gid, 0o755)
            for um in (0o027, 0o077, 0o002):
                dest = os.path.join(out, "small-%03o" % um)
                r = subprocess.run(
                    ["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid,
                     "--clear-groups", "/bin/sh", "-c",
                     'umask %03o && exec "$0" "$@"' % um, CTL, "download", "--no-progress",
                     "--socket", self.sock, "-o", dest, ng.url("/small.bin", u="%03o" % um)],
                    capture_output=True, text=True, timeout=RUN_TIMEOUT,
                    stdin=subprocess.DEVNULL)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assert_delivered(dest, 0o666 & ~um, user.uid, "retrieverctl umask %03o"
                                      % um, "small")

    def test_a_resumed_job_keeps_its_umask(self):
        """A detached job stopped mid-way by SIGTERM and resumed after the
        restart (its request as stored) delivers with its umask's mode."""
        want = sha256_file(make_file(os.path.join(self.data, "r.bin"), 12 * MiB, 23))
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        dest = os.path.join(out, "r.bin")
        with FaultOrigin(self.data, rate=4 * MiB) as fo:
            d = self.daemon()
            c = Client(self.sock)
            events = list(c.download([{"url": fo.url("/r.bin", case="resume"),
                                       "destination": dest}],
                                     detach=True, umask=td.pb.Umask(bits=0o027)))
            job_id = events[0].job_id
            deadline = time.monotonic() + 30
            while c.status(job_id).objects[0].progress.bytes_done < 2 * MiB:
                self.assertLess(time.monotonic(), deadline, "no progress")
                time.sleep(0.05)
            c.close()
            self.stop_ok(d)
            self.assertFalse(os.path.exists(dest))
            d = self.daemon()
            c = Client(self.sock)
            self.addCleanup(c.close)
            w = list(c.watch(job_id, timeout=120))
            self.assertEqual(w[-1].WhichOneof("event"), "completed", w[-1])
            self.assertEqual(sha256_file(dest), want)
            self.assertEqual(oct(mode_of(dest)), oct(0o640), dest)
            self.stop_ok(d)

    def test_a_umask_beyond_0777_is_refused(self):
        self.daemon()
        c = Client(self.sock)
        self.addCleanup(c.close)
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        for bad in (0o1000, 0o4022, 0xffffffff):
            dest = os.path.join(out, "x")
            with self.assertRaises(grpc.RpcError) as cm:
                list(c.download([{"url": "file://" + self.small, "destination": dest}],
                                umask=td.pb.Umask(bits=bad)))
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("umask.bits", cm.exception.details())
            self.assertIn("0777", cm.exception.details())
            self.assertFalse(os.path.exists(dest))
        # The largest allowed umask is taken: a file nobody but root reads.
        dest = os.path.join(out, "y")
        events = list(c.download([{"url": "file://" + self.small, "destination": dest}],
                                 umask=td.pb.Umask(bits=0o777)))
        self.assertEqual(events[-1].WhichOneof("event"), "completed", events[-1])
        self.assertEqual(oct(mode_of(dest)), oct(0o000))

    def test_daemon_files_are_private(self):
        with NginxOrigin(self.data) as ng:
            d = self.daemon()
            c = Client(self.sock)
            self.addCleanup(c.close)
            out = os.path.join(self.tmp, "out")
            os.makedirs(out)
            for content in ("small", "big"):
                events = list(c.download([{"url": ng.url("/%s.bin" % content),
                                           "destination": os.path.join(out, content)}],
                                         umask=td.pb.Umask(bits=0o022)))
                self.assertEqual(events[-1].WhichOneof("event"), "completed", events[-1])
            # While it runs: the databases are open, their -wal and -shm
            # files are there.
            expect = ("jobs.sqlite", "jobs.sqlite-wal", "jobs.sqlite-shm", "jobs.key",
                      "retriever.db", "retriever.db-wal", "retriever.db-shm")
            seen = self.assert_private_tree(self.state, self.cache, blobs_in=self.cache)
            for name in expect:
                self.assertTrue(any(os.path.basename(k) == name for k in seen),
                                "%s not found among %s" % (name, sorted(seen)))
            self.stop_ok(d)
        self.assert_private_tree(self.state, self.cache, blobs_in=self.cache)

    def test_older_wider_database_files_are_narrowed(self):
        """A state directory an older version left with 0644 databases and
        side files and 0444 blobs: narrowed before they are used again."""
        d = self.daemon()
        c = Client(self.sock)
        self.addCleanup(c.close)
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        events = list(c.download([{"url": "file://" + self.small,
                                   "destination": os.path.join(out, "a")}],
                                 umask=td.pb.Umask(bits=0o022)))
        self.assertEqual(events[-1].WhichOneof("event"), "completed", events[-1])
        c.close()
        self.stop_ok(d)
        widened = []
        for dirpath, _, files in os.walk(self.state):
            for f in files:
                if f.startswith(("jobs.sqlite", "retriever.db")):
                    os.chmod(os.path.join(dirpath, f), 0o644)
                    widened.append(f)
        blobs = [os.path.join(dp, f) for dp, _, fs in os.walk(self.cache) for f in fs
                 if f.isdigit()]
        self.assertTrue(blobs, "no blob: the check would prove nothing")
        for b in blobs:
            os.chmod(b, 0o444)  # as an older version made them
        self.assertIn("jobs.sqlite", widened)
        self.assertIn("retriever.db", widened)
        self.assertTrue(any(f.endswith("-shm") for f in widened), widened)
        d = self.daemon()
        c = Client(self.sock)
        self.addCleanup(c.close)
        events = list(c.download([{"url": "file://" + self.big,
                                   "destination": os.path.join(out, "b")}],
                                 umask=td.pb.Umask(bits=0o022)))
        self.assertEqual(events[-1].WhichOneof("event"), "completed", events[-1])
        self.assert_private_tree(self.state, self.cache, blobs_in=self.cache,
                                 expect=[os.path.relpath(os.path.join(dp, f), self.state)
                                         for dp, _, fs in os.walk(self.state) for f in fs
                                         if f in widened])
        for b in blobs:
            self.assertEqual(oct(mode_of(b)), oct(0o400), b)


# ---------------------------------------------------------------------------
# retrieverctl --local
# ---------------------------------------------------------------------------

class LocalModesTest(Base):
    def ctl(self, um, *args):
        r = subprocess.run(["/bin/sh", "-c", 'umask %03o && exec "$0" "$@"' % um, CTL,
                            "download", "--local", "--no-progress", *args],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_local_deliveries_get_the_umask(self):
        state = ["--state-dir", self.state, "--cache-dir", self.cache]
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        uid = os.geteuid()
        with NginxOrigin(self.data) as ng:
            # 022 first: the state database is made then (under 077 it
            # would be private by the umask alone).
            for um in (0o022, 0o077, 0o027):
                tag = "%03o" % um
                for content in ("small", "big"):
                    url = ng.url("/%s.bin" % content, u=tag)
                    for n in ("fetched", "hit"):
                        dest = os.path.join(out, "%s-%s-%s" % (content, tag, n))
                        self.ctl(um, *state, "-o", dest, url)
                        self.assert_delivered(dest, 0o666 & ~um, uid,
                                              "--local %s %s umask %s" % (content, n, tag),
                                              content)
                    dest = os.path.join(out, "%s-%s-nostate" % (content, tag))
                    self.ctl(um, "--no-state", "-o", dest, url)
                    self.assert_delivered(dest, 0o666 & ~um, uid,
                                          "--local --no-state %s umask %s" % (content, tag),
                                          content)
                dest = os.path.join(out, "linked-" + tag)
                self.ctl(um, *state, "--link", "-o", dest, ng.url("/small.bin", u=tag))
                self.assert_delivered(dest, 0o400, uid, "--local --link umask " + tag, "small")
                self.assertGreaterEqual(os.stat(dest).st_nlink, 2, "not a link")
        # The engine's own files, made under umask 022 and 027 too: private.
        self.assert_private_tree(self.state, self.cache, blobs_in=self.cache,
                                 expect=["retriever.db"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
