#!/usr/bin/env python3
"""Bodies of unknown size (Transfer-Encoding: chunked, no Content-Length,
no ranges) on the staged path (lib/src/stage.c).

Such a body is staged from its first byte and goes to the blob with
O_DIRECT once it has passed STAGE_MIN_OBJECT (16 MiB): the bytes are
right with state and without, with and without a digest, small or big, and
a big one's blob bytes mostly bypass the page cache (disk_shim.c counts
direct and buffered writes to blobs).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from origins import FaultOrigin, make_file, sha256_file

CTL = os.environ["RV_CTL"]
SHIM = os.environ["RV_DISK_SHIM"]
MiB = 1 << 20
# lib/src/stage.c's STAGE_MIN_OBJECT: direct writes start past it.
STAGE_MIN_OBJECT = 16 * MiB


def direct_io_works(directory):
    probe = os.path.join(directory, ".direct-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(probe):
            os.unlink(probe)


class UnknownSizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-unknown-www-")
        os.chmod(cls.root, 0o755)
        cls.sha = {}
        for name, size, seed in (("small.bin", 300001, 31),
                                 ("big.bin", 40 * MiB + 5, 32)):
            path = make_file(os.path.join(cls.root, name), size, seed)
            os.chmod(path, 0o644)
            cls.sha[name] = sha256_file(path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-unknown-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)

    def fetch(self, url, dest, *args, log=None):
        env = dict(os.environ, LD_PRELOAD=SHIM)
        env["ASAN_OPTIONS"] = ":".join(
            o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        if log:
            env["RV_SHIM_LOG"] = log
        p = subprocess.run([CTL, "download", "--local", "-q", *args, "-o", dest, url],
                           capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)

    @staticmethod
    def blob_writes(log):
        with open(log) as f:
            last = [line.split() for line in f if line.startswith("writes ")][-1]
        return int(last[2]), int(last[4])

    def test_right_bytes_in_every_mode(self):
        with FaultOrigin(self.root) as fo:
            for name in ("small.bin", "big.bin"):
                for mode in ("state", "no-state", "state-digest", "no-state-digest"):
                    with self.subTest(name=name, mode=mode):
                        args = []
                        if mode.startswith("state"):
                            base = os.path.join(self.tmp, "st-" + mode + name)
                            args += ["--state-dir", base + "/state", "--cache-dir",
                                     base + "/cache"]
                        else:
                            args.append("--no-state")
                        if mode.endswith("digest"):
                            args += ["--sha256", self.sha[name]]
                        dest = os.path.join(self.out, mode + "-" + name)
                        self.fetch(fo.url("/" + name, chunked=1, case=mode + name), dest,
                                   *args)
                        self.assertEqual(sha256_file(dest), self.sha[name])
            # No ranges were asked of an origin that offers none, and every
            # response was the chunked 200.
            log = fo.log()
            gets = [e for e in log if e.get("event") == "response" and e.get("method") == "GET"]
            self.assertTrue(gets)
            self.assertTrue(all(e.get("status") == 200 for e in gets), gets[:3])

    def test_big_body_goes_direct_past_the_threshold(self):
        cache = os.path.join(self.tmp, "cache")
        if not direct_io_works(self.tmp):
            self.skipTest("this file system refuses O_DIRECT")  # (tmpfs); CI's /tmp is ext4
        log = os.path.join(self.tmp, "writes")
        with FaultOrigin(self.root) as fo:
            dest = os.path.join(self.out, "big.bin")
            self.fetch(fo.url("/big.bin", chunked=1, case="direct"), dest, "--state-dir",
                       os.path.join(self.tmp, "state"), "--cache-dir", cache, log=log)
        self.assertEqual(sha256_file(dest), self.sha["big.bin"])
        direct, buffered = self.blob_writes(log)
        size = os.path.getsize(dest)
        # Up to the threshold through the page cache (with the stages in
        # flight when it is passed, and the last partial block); the rest
        # with O_DIRECT.
        self.assertGreaterEqual(direct, size - STAGE_MIN_OBJECT - 2 * MiB, (direct, buffered))
        self.assertLessEqual(buffered, STAGE_MIN_OBJECT + 2 * MiB, (direct, buffered))
        self.assertEqual(direct + buffered, size)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
