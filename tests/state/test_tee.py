#!/usr/bin/python3
"""The tee (lib/src/stage.c): a big object downloaded with durable state
and delivered as a copy (the default) is written by the writer threads both
into its cache blob and into a file of its own next to the destination,
which delivery renames into place: nothing is read back out of the cache.
Through the real retrieverctl --local.

A preloaded shim (pread_count.c) counts what the process reads back: the
bytes of large preads (RV_SHIM_PREAD_LOG) and the bytes copy_file_range
copies in the kernel (RV_SHIM_COPY_LOG), which is how a delivery's copy out
of the cache reads the blob on a file system without reflinks.

Checked: the delivered file has the right bytes and is a private inode,
writable by its owner, with the mode a copy has; --link still delivers the
cache's inode; after kill -9 and a resume (bytes the tee never saw) the
delivery falls back to the copy and is right; a cancel and a failure leave
no hidden file next to the destination; an object that changes mid-way is
delivered as its new version; --digest stays right.
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

from daemons import require_root
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file
from test_state import durable_bytes

CTL = os.environ["RV_CTL"]
SHIM = os.environ["RV_PREAD_COUNT_SHIM"]
MiB = 1 << 20
RUN_TIMEOUT = 120


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class TeeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-tee-www-")
        os.chmod(cls.root, 0o755)
        # Above the 16 MiB from which objects are staged; not a whole
        # number of blocks.
        path = make_file(os.path.join(cls.root, "mid.bin"), 40 * MiB + 3, 31)
        os.chmod(path, 0o644)
        cls.sha = sha256_file(path)
        with open(path, "rb") as f:
            cls.changed_sha = hashlib.sha256(bytes(b ^ 0xFF for b in f.read())).hexdigest()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-tee-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state = os.path.join(self.tmp, "state")
        self.cache = os.path.join(self.tmp, "cache")
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)
        self.runs = 0

    def argv(self, *args):
        return [CTL, "download", "--local", "--state-dir", self.state,
                "--cache-dir", self.cache, *args]

    def env(self, no_proc=False):
        """The environment with the counter preloaded (hiding /proc/self/fd
        with no_proc); returns (env, its pread report, its copy report)."""
        self.runs += 1
        pread_log = os.path.join(self.tmp, "pread%d" % self.runs)
        copy_log = os.path.join(self.tmp, "copy%d" % self.runs)
        env = dict(os.environ, LD_PRELOAD=SHIM, RV_SHIM_PREAD_LOG=pread_log,
                   RV_SHIM_COPY_LOG=copy_log)
        if no_proc:
            env["RV_SHIM_NO_PROC_FD"] = "1"
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        return env, pread_log, copy_log

    @staticmethod
    def counted(log):
        with open(log) as f:
            return int(f.read())

    def run_ctl(self, *args, no_proc=False):
        """One download: (completed process, bytes read back by pread,
        bytes copied by copy_file_range)."""
        env, pread_log, copy_log = self.env(no_proc)
        p = subprocess.run(self.argv(*args), capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, env=env)
        return p, self.counted(pread_log), self.counted(copy_log)

    def spawn(self, *args, no_proc=False):
        env, _, _ = self.env(no_proc)
        return subprocess.Popen(self.argv(*args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=env)

    def blob(self):
        d = os.path.join(self.cache, "blobs")
        names = sorted(os.listdir(d))
        self.assertEqual(len(names), 1, names)
        return os.path.join(d, names[0])

    def hidden(self, directory=None):
        return sorted(n for n in os.listdir(directory or self.out) if n.startswith("."))

    def wait_durable(self, proc, at_least):
        deadline = time.monotonic() + 60
        while durable_bytes(self.state) < at_least and time.monotonic() < deadline:
            proc.poll() is None or self.fail("finished too early")
            time.sleep(0.05)  # bounded: the download takes seconds at its rate
        self.assertGreaterEqual(durable_bytes(self.state), at_least)

    def assert_private(self, dest):
        st, blob = os.stat(dest), os.stat(self.blob())
        self.assertNotEqual(st.st_ino, blob.st_ino)
        self.assertEqual(st.st_nlink, 1)
        # What the copy's file has: made by this user, 0666 less the umask.
        self.assertEqual(st.st_uid, os.geteuid())
        self.assertEqual(st.st_mode & 0o777, 0o666 & ~current_umask())
        self.assertTrue(st.st_mode & 0o200, "not writable by its owner")
        self.assertEqual(blob.st_mode & 0o777, 0o400)

    # -- the tee ---------------------------------------------------------

    def test_copy_delivery_reads_nothing_back(self):
        """Default delivery (a copy): the delivered file is the tee, renamed
        into place; the blob is not read back, neither by pread nor by
        copy_file_range (before the tee, the copy read all 40 MiB back).
        Twice: to a free name, and over an existing file."""
        with NginxOrigin(self.root) as ng:
            dest = os.path.join(self.out, "mid.bin")
            for case in ("free", "over"):
                shutil.rmtree(self.cache, ignore_errors=True)
                shutil.rmtree(self.state, ignore_errors=True)
                # --force: the second case replaces the first's file.
                p, read_back, copied = self.run_ctl(
                    "--json", "--force", "-c", "8", "-o", dest, ng.url("mid.bin", case=case))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout.splitlines()[0])["state"], "done")
                self.assertEqual(sha256_file(dest), self.sha, case)
                self.assertEqual(copied, 0, "%s: the blob was copied out" % case)
                self.assertEqual(read_back, 0, case)
                self.assert_private(dest)
                self.assertEqual(self.hidden(), [])
                # The cache entry is whole too: a hit delivers it.
                self.assertEqual(sha256_file(self.blob()), self.sha)
            # A hit is a copy (nothing was downloaded to tee).
            hit = os.path.join(self.out, "hit")
            p, _, copied = self.run_ctl("-q", "-o", hit, ng.url("mid.bin", case="over"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(hit), self.sha)
            self.assertGreater(copied, 0)

    def test_link_delivery_is_the_cache(self):
        """--link: the blob itself is delivered (a hard link); no tee is
        made, nothing left next to the destination."""
        with NginxOrigin(self.root) as ng:
            dest = os.path.join(self.out, "linked")
            p, _, copied = self.run_ctl("-q", "--link", "-c", "8", "-o", dest,
                                        ng.url("mid.bin", case="link"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha)
            self.assertEqual(os.stat(dest).st_ino, os.stat(self.blob()).st_ino)
            self.assertEqual(copied, 0)
            self.assertEqual(self.hidden(), [])

    def test_digest_with_tee(self):
        """--digest: hashed from the stages, delivered from the tee; the
        sha256 reported and the file's agree with the origin's."""
        with NginxOrigin(self.root) as ng:
            dest = os.path.join(self.out, "digested")
            p, read_back, copied = self.run_ctl("--json", "--digest", "-c", "8", "-o", dest,
                                                ng.url("mid.bin", case="digest"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout.splitlines()[0])["sha256"], self.sha)
            self.assertEqual(sha256_file(dest), self.sha)
            self.assertEqual((read_back, copied), (0, 0))
            self.assert_private(dest)

    # -- when the tee cannot serve ---------------------------------------

    def test_resume_after_kill9_falls_back_to_copy(self):
        """Killed with -9 mid-way: nothing is left next to the destination
        (the tee is unnamed). The resumed run's blob has bytes its tee never
        saw, so the delivery copies the blob, and the file is right."""
        dest = os.path.join(self.out, "resumed")
        with FaultOrigin(self.root, rate=4 * MiB) as fo:
            url = fo.url("mid.bin", case="kill")
            proc = self.spawn("-q", "-c", "4", "-o", dest, url)
            try:
                self.wait_durable(proc, 8 * MiB)
            finally:
                proc.kill()
                proc.communicate()
            self.assertEqual(self.hidden(), [])
            self.assertFalse(os.path.exists(dest))
            p, _, copied = self.run_ctl("--json", "-c", "4", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha)
            self.assertEqual(copied, os.path.getsize(dest), "not delivered by a copy")
            self.assert_private(dest)
            self.assertEqual(self.hidden(), [])

    def test_cancel_leaves_no_temporary_file(self):
        """Interrupted (SIGINT) mid-way: cancelled, nothing next to the
        destination, no destination."""
        dest = os.path.join(self.out, "cancelled")
        with FaultOrigin(self.root, rate=4 * MiB) as fo:
            proc = self.spawn("-q", "-c", "4", "-o", dest, fo.url("mid.bin", case="cancel"))
            try:
                self.wait_durable(proc, 4 * MiB)
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            self.assertEqual(proc.returncode, 130, err)
            self.assertEqual(self.hidden(), [])
            self.assertFalse(os.path.exists(dest))

    def test_failure_leaves_no_temporary_file(self):
        """A permanent failure mid-way (ranges answered 404 after the
        first GETs): failed, nothing next to the destination."""
        dest = os.path.join(self.out, "failed")
        with FaultOrigin(self.root) as fo:
            url = fo.url("mid.bin", status=404, after=3, case="fail")
            p, _, _ = self.run_ctl("-q", "-c", "4", "-o", dest, url)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(self.hidden(), [])
            self.assertFalse(os.path.exists(dest))

    def test_named_tee_where_no_unnamed_file(self):
        """Where unnamed files cannot be linked (no /proc/self/fd: the
        shim hides it), the tee has a hidden name: delivered from it (over
        an existing file the second time), no hidden name stays; and a
        cancel removes it."""
        with NginxOrigin(self.root) as ng:
            dest = os.path.join(self.out, "named")
            for case in ("one", "two"):
                shutil.rmtree(self.cache, ignore_errors=True)
                shutil.rmtree(self.state, ignore_errors=True)
                p, _, copied = self.run_ctl("-q", "--force", "-c", "8", "-o", dest,
                                            ng.url("mid.bin", case=case), no_proc=True)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(copied, 0, case)
                self.assertEqual(sha256_file(dest), self.sha)
                self.assert_private(dest)
                self.assertEqual(self.hidden(), [])
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)  # wait_durable counts every row
        with FaultOrigin(self.root, rate=4 * MiB) as fo:
            dest = os.path.join(self.out, "named-cancelled")
            proc = self.spawn("-q", "-c", "4", "-o", dest, fo.url("mid.bin", case="nc"),
                              no_proc=True)
            try:
                self.wait_durable(proc, 4 * MiB)
                shown = self.hidden()
                self.assertEqual(len([n for n in shown
                                      if n.startswith(".named-cancelled.rvpart-")]), 1, shown)
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            self.assertEqual(proc.returncode, 130, err)
            self.assertEqual(self.hidden(), [])

    def test_failed_tee_write_fails_the_download(self):
        """The destination's file system fills up (an 8 MiB tmpfs mounted
        by the test; the cache has room): the tee's write fails, and so
        does the download, saying which destination; nothing is left
        next to it."""
        require_root(self, "mounts a tmpfs")
        small = os.path.join(self.tmp, "small")
        os.mkdir(small)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % (8 * MiB),
                            "rv-tee", small], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.fail("cannot mount a tmpfs on %s: %s" % (small, r.stderr))
        self.addCleanup(subprocess.run, ["umount", "-l", small], capture_output=True,
                        timeout=60)
        dest = os.path.join(small, "full")
        with NginxOrigin(self.root) as ng:
            p, _, _ = self.run_ctl("-c", "8", "-o", dest, ng.url("mid.bin", case="full"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot write the copy for '%s': No space left on device" % dest,
                      p.stderr)
        self.assertEqual(os.listdir(small), [])

    def test_object_changed_mid_way_delivers_new_version(self):
        """The object changes on the origin while it downloads: the
        download restarts, the tee starts over with the blob, and the
        delivered file is entirely the new version (from the tee: nothing
        copied)."""
        dest = os.path.join(self.out, "changed")
        with FaultOrigin(self.root, rate=16 * MiB) as fo:
            url = fo.url("mid.bin", change_after=4, case="chg")
            p, _, copied = self.run_ctl("--json", "-c", "4", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.changed_sha, "mixed or old version")
            self.assertEqual(copied, 0)
            self.assertEqual(self.hidden(), [])
            self.assert_private(dest)


if __name__ == "__main__":
    unittest.main(verbosity=2)
