#!/usr/bin/python3
"""Issue 20, item 1: the daemon's own descriptors are no caller's.

A root daemon serving every user, two users made for the test (alice and
mallory), the generated gRPC client. While alice's download (made with her
bearer token) is in flight, the daemon holds descriptors on its cache blob,
its databases and alice's destination folder. Mallory names them through
magic links -- /proc/self/fd/N, /proc/thread-self/fd/N, /dev/fd/N,
/proc/<daemon pid>/fd/N -- as a file:// source (with and without a
destination) and as a destination folder (/proc/self/fd/N/name). Every such
request is refused with PERMISSION_DENIED and the same words whether N is
open in the daemon or not, and nothing is read or written. Files the
caller may read still download: her own, a public one, one in /dev/shm.

Each test starts its own daemon and origin and stops them by PID.
Environment: as test_jobs.py (RV_DAEMON, RV_PROTOC, RV_PROTO_DIR,
RV_FIXTURES). Needs root (CI runs as root; there, not root fails).
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402  (Daemon, the generated pb2)
from callers import CallersMixin  # noqa: E402
from daemons import make_user, require_root  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402
from test_jobs import Client  # noqa: E402

MiB = 1 << 20
TOKEN = "Bearer alice-s3cret-token"

# As the caller: one Download per (url, destination) pair, read from the
# JSON on the snippet's argv; prints a JSON list of [outcome, details],
# outcome the status code's name or the last event's kind.
PROBE = (
    "import json\n"
    "def probe(pairs):\n"
    "    out = []\n"
    "    for url, dest in pairs:\n"
    "        try:\n"
    "            evs = list(ch.unary_stream(S+'Download', request_serializer=ser,"
    " response_deserializer=pb.JobEvent.FromString)(pb.DownloadRequest(sources=["
    "pb.Source(url=url, destination=dest)]), timeout=30))\n"
    "            out.append([evs[-1].WhichOneof('event'), ''])\n"
    "        except grpc.RpcError as e:\n"
    "            out.append([e.code().name, e.details()])\n"
    "    return out\n")


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


def no_digits(s):
    return re.sub(r"[0-9]+", "N", s)


class SecurityPathsTest(CallersMixin, unittest.TestCase):
    def setUp(self):
        require_root(self, "a root daemon serving two users made for the test")
        self.tmp = tempfile.mkdtemp(prefix="rv-secpaths-")
        os.chmod(self.tmp, 0o755)  # the callers reach their folders
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)
        self.alice = make_user(self)
        self.mallory = make_user(self)

    def daemon(self, *args):
        d = td.Daemon(["--socket", self.sock, "--state-dir", self.state,
                       "--cache-dir", self.cache,
                       "--max-connections-per-object", "2"] + list(args))
        self.addCleanup(d.kill)
        return d.start()

    def stop_ok(self, d):
        """A clean exit, and nothing from the sanitizers (under
        RV_SANITIZE) in the daemon's log."""
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())
        d.assert_clean(self)

    def client(self):
        c = Client(self.sock)
        self.addCleanup(c.close)
        return c

    def probe(self, who, pairs):
        out = self.as_caller(PROBE + "print(json.dumps(probe(%r)))" % (pairs,), who.uid, who.gid)
        return json.loads(out.splitlines()[-1])

    def daemon_fds(self, d):
        """The daemon's descriptors: {number: what it names}."""
        fds = {}
        base = "/proc/%d/fd" % d.proc.pid
        for n in os.listdir(base):
            try:
                fds[int(n)] = os.readlink(os.path.join(base, n))
            except OSError:
                pass  # closed meanwhile
        return fds

    def wait_for(self, pred, timeout=30, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            time.sleep(0.02)
        self.fail("timed out waiting for " + what)

    def alice_in_flight(self, d, fo):
        """Alice's slow download with her token, detached, into a folder
        anyone may write (0777) inside her own 0700 one, so mallory cannot
        reach it by its path. Returns the job id, that folder and the
        daemon's descriptors once the cache blob and the folder are open."""
        make_file(os.path.join(self.data, "secret.bin"), 16 * MiB, seed=7)
        home = self.owned_dir("alice", self.alice.uid, self.alice.gid, 0o700)
        wide = os.path.join(home, "wide")
        os.makedirs(wide)
        os.chown(wide, self.alice.uid, self.alice.gid)
        os.chmod(wide, 0o777)
        url = fo.url("/secret.bin", case="alice")
        out = self.as_caller(
            "r = ch.unary_stream(S+'Download', request_serializer=ser,"
            " response_deserializer=pb.JobEvent.FromString)(pb.DownloadRequest(sources=["
            "pb.Source(url=%r, destination=%r, headers=[pb.Header(name='Authorization',"
            " value=%r)])], detach=True), timeout=30)\n"
            "print(list(r)[0].job_id)\n" % (url, wide + "/secret.bin", TOKEN),
            self.alice.uid, self.alice.gid)
        job_id = out.splitlines()[-1]
        fds = self.wait_for(
            lambda: (lambda f: f if any(t.startswith(self.cache) for t in f.values()) and
                     wide in f.values() else None)(self.daemon_fds(d)),
            what="alice's cache blob and folder open in the daemon")
        return job_id, wide, fds

    def assert_all_refused_alike(self, answers, forms, n_open, n_closed):
        """answers: for each form, the answers for n_open then n_closed
        descriptors, in that order."""
        i = 0
        for form in forms:
            texts = set()
            for k in range(n_open + n_closed):
                code, details = answers[i]
                i += 1
                self.assertEqual(code, "PERMISSION_DENIED", (form, k, answers[i - 1]))
                self.assertIn("opens no path through /proc", details)
                texts.add(no_digits(details))
            # An open descriptor and a closed one: the same words.
            self.assertEqual(len(texts), 1, (form, texts))

    def test_in_flight_blob_and_databases_are_not_sources(self):
        with FaultOrigin(self.data, rate=256 * 1024) as fo:
            d = self.daemon_for_everyone()
            job_id, wide, fds = self.alice_in_flight(d, fo)
            blob = [n for n, t in fds.items() if t.startswith(self.cache)]
            dbs = [n for n, t in fds.items() if t.startswith(self.state)]
            self.assertTrue(blob and dbs, fds)  # real descriptors are probed
            closed = [max(fds) + 100, 999]
            self.assertFalse(set(closed) & set(fds))
            numbers = blob + dbs + closed
            forms = ["/proc/self/fd/%d", "/proc/thread-self/fd/%d", "/dev/fd/%d",
                     "/proc/%d/fd/%%d" % d.proc.pid]
            mine = self.owned_dir("mallory", self.mallory.uid, self.mallory.gid)
            # With a destination of mallory's own; then the blob as a
            # Read-only object (no destination).
            pairs = []
            for form in forms:
                for n in numbers:
                    pairs.append(["file://" + form % n, "%s/got-%d" % (mine, len(pairs))])
            for n in blob:
                pairs.append(["file:///proc/self/fd/%d" % n, ""])
                pairs.append(["file:///proc/self/fd/%d" % closed[0], ""])
            # What else /proc/self says of the daemon: its environment, its
            # descriptors' positions, its memory, its root and folder.
            for path in ["/proc/self/environ", "/proc/self/fdinfo/%d" % blob[0],
                         "/proc/self/mem", "/proc/self/root" + self.cache,
                         "/proc/self/cwd/x", "/proc/%d/environ" % d.proc.pid]:
                pairs.append(["file://" + path, "%s/got-%d" % (mine, len(pairs))])
            answers = self.probe(self.mallory, pairs)
            self.assertEqual(len(answers), len(pairs))
            self.assert_all_refused_alike(answers[:len(forms) * len(numbers)], forms,
                                          len(blob) + len(dbs), len(closed))
            for code, details in answers[len(forms) * len(numbers):]:
                self.assertEqual(code, "PERMISSION_DENIED", details)
            # Nothing was delivered, and no job of mallory's exists: as
            # root, List shows alice's job alone.
            self.assertEqual(os.listdir(mine), [])
            c = self.client()
            self.assertEqual([j.id for j in c.list()], [job_id])
            # Alice's download was not disturbed.
            self.assertEqual(c.status(job_id).id, job_id)
            c.cancel(job_id)
            self.stop_ok(d)

    def test_folder_through_the_daemons_descriptor_is_not_a_destination(self):
        with FaultOrigin(self.data, rate=256 * 1024) as fo:
            d = self.daemon_for_everyone()
            public = make_file(os.path.join(self.data, "public.bin"), 5000, seed=1)
            os.chmod(public, 0o644)
            os.chmod(self.data, 0o755)
            job_id, wide, fds = self.alice_in_flight(d, fo)
            before = sorted(os.listdir(wide))
            dirfd = [n for n, t in fds.items() if t == wide]
            self.assertEqual(len(dirfd), 1, fds)
            closed = max(fds) + 100
            forms = ["/proc/self/fd/%d/planted", "/proc/thread-self/fd/%d/planted",
                     "/dev/fd/%d/planted", "/proc/%d/fd/%%d/planted" % d.proc.pid]
            pairs = [["file://" + public, form % n] for form in forms
                     for n in (dirfd[0], closed)]
            answers = self.probe(self.mallory, pairs)
            self.assert_all_refused_alike(answers, forms, 1, 1)
            self.assertEqual(sorted(os.listdir(wide)), before)  # nothing planted
            self.client().cancel(job_id)
            self.stop_ok(d)

    def test_files_the_caller_may_read_still_download(self):
        d = self.daemon_for_everyone()
        os.chmod(self.data, 0o755)
        public = make_file(os.path.join(self.data, "public.bin"), 3 * MiB + 5, seed=2)
        os.chmod(public, 0o644)
        mine = self.owned_dir("mallory", self.mallory.uid, self.mallory.gid, 0o700)
        own = make_file(os.path.join(mine, "own.bin"), 70000, seed=3)
        os.chown(own, self.mallory.uid, self.mallory.gid)
        os.chmod(own, 0o600)
        shm = tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="rv-secpaths-", delete=False)
        self.addCleanup(os.unlink, shm.name)
        shm.write(b"in shared memory\n" * 100)
        shm.close()
        os.chown(shm.name, self.mallory.uid, self.mallory.gid)
        os.chmod(shm.name, 0o600)
        # A private file of alice's stays hers.
        private = make_file(os.path.join(self.data, "alice.bin"), 1000, seed=4)
        os.chown(private, self.alice.uid, self.alice.gid)
        os.chmod(private, 0o600)
        answers = self.probe(self.mallory, [
            ["file://" + public, mine + "/public.bin"],
            ["file://" + own, mine + "/own-copy.bin"],
            ["file://" + shm.name, mine + "/shm.bin"],
            ["file://" + private, mine + "/alice.bin"],
        ])
        self.assertEqual([a[0] for a in answers],
                         ["completed", "completed", "completed", "PERMISSION_DENIED"], answers)
        self.assertIn("may not read", answers[3][1])
        self.assertEqual(sha256_file(mine + "/public.bin"), sha256_file(public))
        self.assertEqual(sha256_file(mine + "/own-copy.bin"), sha256_file(own))
        self.assertEqual(sha256_file(mine + "/shm.bin"), sha256_file(shm.name))
        self.assertFalse(os.path.exists(mine + "/alice.bin"))
        self.stop_ok(d)

    def test_root_is_refused_the_daemons_descriptors_too(self):
        """Root could open /proc/<pid>/fd/N itself; through the daemon it
        still names nothing, so a root tool that passes on a path it was
        given cannot be steered to another user's in-flight download."""
        with FaultOrigin(self.data, rate=256 * 1024) as fo:
            d = self.daemon_for_everyone()
            job_id, wide, fds = self.alice_in_flight(d, fo)
            blob = [n for n, t in fds.items() if t.startswith(self.cache)][0]
            dirfd = [n for n, t in fds.items() if t == wide][0]
            out = os.path.join(self.tmp, "root-out")
            os.makedirs(out)
            c = self.client()
            for url, dest in [("file:///proc/self/fd/%d" % blob, out + "/a"),
                              ("file:///dev/fd/%d" % blob, out + "/b"),
                              ("file:///proc/%d/fd/%d" % (d.proc.pid, blob), out + "/c"),
                              ("file:///proc/self/environ", out + "/d"),
                              ("file://" + os.path.join(self.data, "secret.bin"),
                               "/proc/self/fd/%d/e" % dirfd)]:
                with self.assertRaises(grpc.RpcError) as cm:
                    list(c.download([{"url": url, "destination": dest}]))
                self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED,
                                 (url, cm.exception.details()))
                self.assertIn("opens no path through /proc", cm.exception.details())
            self.assertEqual(os.listdir(out), [])
            self.assertEqual(os.listdir(wide), [])
            c.cancel(job_id)
            self.stop_ok(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
