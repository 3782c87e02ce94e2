#!/usr/bin/python3
"""Cache hits through retrieverd are verified against their bytes: an
entry edited in place (same size) is found before it is delivered,
evicted, logged as corruption (URL redacted), and fetched again from the
origin; the job completes with the right bytes and digest. The digest the
completed event reports is of the delivered bytes.

Reuses test_jobs.py's client and daemon helpers, without its tests.
Environment: as test_jobs.py.
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_jobs as tj  # noqa: E402  (Client, JobsTest's helpers)
from origins import FaultOrigin, sha256_file  # noqa: E402

SECRET = "s3cr3t-token"
SIZE = 300000


def setUpModule():
    tj.setUpModule()


def tearDownModule():
    tj.tearDownModule()


def edit_in_place(path, offset, data=b"XXXX"):
    """A same-size edit, as `dd conv=notrunc` does it (the blob is
    read-only; its owner writes it anyway)."""
    os.chmod(path, 0o644)
    subprocess.run(["dd", "of=" + path, "bs=1", "seek=%d" % offset,
                    "conv=notrunc", "status=none"], input=data, check=True)
    os.chmod(path, 0o400)


class CacheVerifyDaemonTest(unittest.TestCase):
    setUp = tj.JobsTest.setUp
    daemon = tj.JobsTest.daemon
    config = tj.JobsTest.config
    client = tj.JobsTest.client
    stop_ok = tj.JobsTest.stop_ok
    file = tj.JobsTest.file

    def blob(self):
        d = os.path.join(self.tmp, "cache", "blobs")
        full = [b for b in os.listdir(d) if os.path.getsize(os.path.join(d, b)) > 0]
        self.assertEqual(len(full), 1, full)
        return os.path.join(d, full[0])

    def completed(self, c, url, dest, sha=""):
        # digest: Completed carries the sha256 of the bytes delivered.
        events = list(c.download([{"url": url, "destination": dest, "sha256": sha}],
                                 digest=True))
        kinds = tj.kinds(events)
        self.assertEqual(kinds[-1], "completed", events[-1])
        return events[-1].completed

    def test_edited_entry_is_fetched_again(self):
        src = self.file("s.bin", SIZE, seed=5)
        sha = sha256_file(src)
        d = self.daemon()
        c = self.client()
        with FaultOrigin(self.data) as fo:
            url = fo.url("s.bin", token=SECRET)
            key = url.split(str(fo.port), 1)[1]

            def body():
                return fo.stats()["per_key"].get(key, {}).get("body_bytes", 0)

            dests = [os.path.join(self.out, n) for n in "abc"]
            self.completed(c, url, dests[0])
            for i, want in ((1, ""), (2, sha)):  # then with the expected digest
                edit_in_place(self.blob(), SIZE // 2 + i)
                before = body()
                done = self.completed(c, url, dests[i], sha=want)
                self.assertEqual(sha256_file(dests[i]), sha)
                self.assertEqual(done.sha256, sha)
                self.assertGreaterEqual(body() - before, SIZE)
        log = d.log()
        self.assertEqual(log.count("corrupt cache entry"), 2, log)
        self.assertNotIn(SECRET, log)
        self.stop_ok(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
