#!/usr/bin/env python3
"""The flusher's choice between one syncfs and a fdatasync per file, in a
long-lived daemon (lib/src/flusher.c).

The choice follows measured costs. syncfs's depends on what else the file
system has dirty at the moment it runs, so one measured while the disk was
busy must not decide for the rest of the daemon's life: after a slow
syncfs, a later job still gets syncfs for its batches once the estimate is
old. The disk is made slow for exactly one syncfs by disk_shim.c
(RV_SHIM_SYNC=slowfs:MS), which also logs every syncfs with its time.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from daemons import Daemon
from origins import NginxOrigin, make_file, sha256_file

CTL = os.environ["RV_CTL"]
SHIM = os.environ["RV_DISK_SHIM"]
FILES = 200
SLOW_MS = 4000
JOBS = 3
# lib/src/flusher.c's SYNCFS_STALE_NS, with a margin.
STALE_S = 1.2


class SyncChoiceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-syncchoice-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "www")
        os.makedirs(self.root)
        os.chmod(self.tmp, 0o755)
        os.chmod(self.root, 0o755)
        self.sha = []
        for i in range(FILES):
            path = make_file(os.path.join(self.root, "f%d" % i), 4096, 100 + i)
            os.chmod(path, 0o644)
            self.sha.append(sha256_file(path))
        self.log = os.path.join(self.tmp, "syncs.log")
        env = dict(os.environ, LD_PRELOAD=SHIM, RV_SHIM_SYNC="slowfs:%d" % SLOW_MS,
                   RV_SHIM_LOG=self.log)
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        self.sock = os.path.join(self.tmp, "d.sock")
        self.daemon = Daemon(["--socket", self.sock], env=env).start()
        self.addCleanup(self.daemon.kill)

    def syncfs_times(self):
        """CLOCK_MONOTONIC seconds of every syncfs the daemon began."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [int(line.split()[2]) / 1e9 for line in f if line.startswith("syncfs ")]

    def job(self, origin, tag):
        out = os.path.join(self.tmp, "out-" + tag)
        os.mkdir(out)
        urls = [origin.url("/f%d" % i, job=tag) for i in range(FILES)]
        p = subprocess.run([CTL, "--socket", self.sock, "download", "--no-autostart", "-q",
                            "-d", out] + urls, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr + self.daemon.log())
        for i in range(FILES):
            self.assertEqual(sha256_file(os.path.join(out, "f%d" % i)), self.sha[i])

    def test_a_slow_syncfs_does_not_decide_for_later_jobs(self):
        with NginxOrigin(self.root) as ng:
            # The first jobs' batches take a syncfs (the slow one) once one
            # is large enough; its estimate is SLOW_MS then. (A loaded
            # machine may finish files too far apart for a large batch:
            # a few jobs, bounded.)
            for n in range(JOBS):
                self.job(ng, "first%d" % n)
                if self.syncfs_times():
                    break
            self.assertGreaterEqual(len(self.syncfs_times()), 1, "no job chose syncfs")
            time.sleep(STALE_S)  # the estimate grows old: that is the condition
            t_later = time.monotonic()
            for n in range(JOBS):
                self.job(ng, "later%d" % n)
                later = [t for t in self.syncfs_times() if t >= t_later]
                if later:
                    break
        # With the old estimate trusted, a batch would need more files than
        # a job has (SLOW_MS against a fraction of a ms per fdatasync).
        self.assertGreaterEqual(len(later), 1,
                                "after one slow syncfs the daemon never chose syncfs again")
        self.daemon.assert_clean(self)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
