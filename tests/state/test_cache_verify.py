#!/usr/bin/python3
"""Cache hits are verified against their bytes, and eviction under a quota
keeps what is in use or resumable, through the real retrieverctl --local.

A cache entry edited in place (same size: only its bytes say so) is found
before it is delivered, evicted, reported, and fetched again from the
origin: the caller gets the right bytes and exit 0. A digest asked for on a
hit is of the bytes, never the database's.

Helpers (the per-test state, the retrieverctl runs, the origin's byte
counts) are test_state.py's, borrowed without its tests.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

import test_state
from origins import FaultOrigin, make_file, sha256_file
from test_state import MiB, durable_bytes

SECRET = "s3cr3t-token"


def edit_in_place(path, offset, data=b"XXXX"):
    """A same-size edit of path at offset, as `dd conv=notrunc` does it
    (the blob is read-only; its owner writes it anyway)."""
    os.chmod(path, 0o644)
    subprocess.run(["dd", "of=" + path, "bs=1", "seek=%d" % offset,
                    "conv=notrunc", "status=none"],
                   input=data, check=True)
    os.chmod(path, 0o400)


class CacheVerifyTest(unittest.TestCase):
    setUp = test_state.StateTest.setUp
    ctl = test_state.StateTest.ctl
    spawn = test_state.StateTest.spawn
    blobs = test_state.StateTest.blobs
    settle = test_state.StateTest.settle
    key_bytes = test_state.StateTest.key_bytes

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-verify-www-")
        os.chmod(cls.root, 0o755)
        cls.sha = {}
        for name, size, seed in (("mid.bin", 40 * MiB + 3, 8),
                                 ("small.bin", 300000, 9)):
            path = make_file(os.path.join(cls.root, name), size, seed)
            os.chmod(path, 0o644)
            cls.sha[name] = sha256_file(path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def size(self, name):
        return os.path.getsize(os.path.join(self.root, name))

    def only_blob(self):
        blobs = [b for b in self.blobs()
                 if os.path.getsize(os.path.join(self.cache, "blobs", b)) > 0]
        self.assertEqual(len(blobs), 1, blobs)
        return os.path.join(self.cache, "blobs", blobs[0])

    def row_and_blob(self):
        """(row id, blob path) of the one object in the state database, or
        None while there is none."""
        db = os.path.join(self.state, "retriever.db")
        if not os.path.exists(db):
            return None
        con = sqlite3.connect(db)
        try:
            rows = con.execute("SELECT id, blob FROM objects").fetchall()
        finally:
            con.close()
        self.assertLessEqual(len(rows), 1)
        return (rows[0][0], os.path.join(self.cache, "blobs", rows[0][1])) if rows else None

    def assert_refetched(self, p, fo, url, name, dest, before):
        """p (a run after the edit) healed: exit 0, the right bytes, the
        origin sent the whole body again, and the corruption was reported
        without the URL's secret."""
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(dest), self.sha[name])
        self.assertGreaterEqual(self.key_bytes(fo, url) - before, self.size(name))
        self.assertIn("corrupt cache entry", p.stderr)
        self.assertNotIn(SECRET, p.stderr)

    def test_edited_cache_entry_is_fetched_again(self):
        """An entry edited in place, small (one range) and big (staged
        ranges, edited in the middle): the next download notices, evicts,
        fetches the body again and delivers the right bytes; the one after
        is a clean hit again."""
        with FaultOrigin(self.root) as fo:
            for name in ("small.bin", "mid.bin"):
                shutil.rmtree(self.cache, ignore_errors=True)
                url = fo.url(name, case="edit", token=SECRET)
                dests = [os.path.join(self.out, "%s.%d" % (name, i)) for i in range(3)]
                p = self.ctl("-q", "-o", dests[0], url)
                self.assertEqual(p.returncode, 0, p.stderr)
                edit_in_place(self.only_blob(), self.size(name) // 2)
                before = self.key_bytes(fo, url)
                p = self.ctl("-o", dests[1], url)
                self.assert_refetched(p, fo, url, name, dests[1], before)
                # Healed: a plain hit, no body, no notice.
                before = self.key_bytes(fo, url)
                p = self.ctl("--json", "-o", dests[2], url)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertLessEqual(self.key_bytes(fo, url) - before, 1)
                self.assertNotIn("corrupt", p.stderr)
                self.assertEqual(json.loads(p.stdout)["sha256"], self.sha[name])
                self.assertEqual(sha256_file(dests[2]), self.sha[name])

    def test_edited_cache_entry_with_expected_sha256_heals(self):
        """--sha256 with the right digest on an edited entry: the digest of
        the bytes does not match, so the entry is evicted and fetched again
        once; the run succeeds with the right bytes."""
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", case="sha", token=SECRET)
            a, b = os.path.join(self.out, "a"), os.path.join(self.out, "b")
            self.assertEqual(self.ctl("-q", "-o", a, url).returncode, 0)
            edit_in_place(self.only_blob(), 100)
            before = self.key_bytes(fo, url)
            p = self.ctl("--sha256", self.sha["small.bin"], "-o", b, url)
            self.assert_refetched(p, fo, url, "small.bin", b, before)
            self.assertIn("sha256 verified", p.stderr)

    def test_wrong_sha256_on_a_hit_refetches_once_then_fails(self):
        """A wrong expected digest on a good entry: one refetch, then the
        mismatch fails (exit 6), and no file is delivered."""
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", case="wrong")
            a, b = os.path.join(self.out, "a"), os.path.join(self.out, "b")
            self.assertEqual(self.ctl("-q", "-o", a, url).returncode, 0)
            before = self.key_bytes(fo, url)
            p = self.ctl("--sha256", "0" * 64, "-o", b, url)
            self.assertEqual(p.returncode, 6, p.stderr)
            self.assertFalse(os.path.exists(b))
            # Exactly one more body: fetched again once, not in a loop.
            self.assertEqual(self.key_bytes(fo, url) - before,
                             self.size("small.bin") + 1)

    def test_digest_then_edit_then_sha256_heals(self):
        """A first run with --digest records a sha256 in the database; after
        an edit, neither --digest nor --sha256 takes it from there: both
        digest the bytes, the edit is found, and the right bytes come."""
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", case="digest", token=SECRET)
            dests = [os.path.join(self.out, c) for c in "abc"]
            p = self.ctl("-q", "--digest", "-o", dests[0], url)
            self.assertEqual(p.returncode, 0, p.stderr)
            edit_in_place(self.only_blob(), 7)
            before = self.key_bytes(fo, url)
            p = self.ctl("--sha256", self.sha["small.bin"], "-o", dests[1], url)
            self.assert_refetched(p, fo, url, "small.bin", dests[1], before)
            self.assertIn("sha256 verified", p.stderr)
            # --digest on an edited hit reports the digest of what it
            # delivers: the refetched bytes'.
            edit_in_place(self.only_blob(), 9)
            before = self.key_bytes(fo, url)
            p = self.ctl("--json", "--digest", "-o", dests[2], url)
            self.assert_refetched(p, fo, url, "small.bin", dests[2], before)
            self.assertEqual(json.loads(p.stdout)["sha256"], self.sha["small.bin"])

    def test_edited_entry_with_followers(self):
        """Three requests for one URL in one engine (engine_cases: the first
        leads, the others follow it) on an edited entry: the leader's check
        finds the edit and fetches the object again, once; the followers
        wait for it and deliver its bytes, checked in turn."""
        cases = os.environ["RV_ENGINE_CASES"]
        env = dict(os.environ, RV_TEST_STATE_DIR=self.state)
        with FaultOrigin(self.root) as fo:
            url = fo.url("small.bin", case="followers")
            sha = self.sha["small.bin"]
            first, second = (os.path.join(self.out, d) for d in ("first", "second"))
            for d in (first, second):
                os.mkdir(d)
            p = subprocess.run([cases, "many", first, url, sha], env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            blob = [b for b in os.listdir(os.path.join(self.state, "cache", "blobs"))
                    if os.path.getsize(os.path.join(self.state, "cache", "blobs", b))]
            self.assertEqual(len(blob), 1)
            edit_in_place(os.path.join(self.state, "cache", "blobs", blob[0]), 1000)
            before = self.key_bytes(fo, url)
            p = subprocess.run([cases, "many", second] + [url, sha] * 3, env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            for name in sorted(os.listdir(second)):
                self.assertEqual(sha256_file(os.path.join(second, name)), sha)
            self.assertEqual(len(os.listdir(second)), 3)
            # One revalidation byte and one body: fetched again once.
            self.assertEqual(self.key_bytes(fo, url) - before, self.size("small.bin") + 1)

    # -- eviction under a quota --------------------------------------------

    def test_interrupted_download_resumes_under_a_smaller_quota(self):
        """kill -9 a 40 MiB download under a 16 MiB quota once 16 MiB are
        durable: the next run, same quota, resumes (the eviction when the
        state opens keeps unfinished entries) and fetches only the rest."""
        dest = os.path.join(self.out, "mid.bin")
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            url = fo.url("mid.bin", case="quota-resume")
            proc = self.spawn("-q", "-c", "4", "--cache-quota", "16M", "-o", dest, url)
            deadline = time.monotonic() + 60
            while durable_bytes(self.state) < 16 * MiB and time.monotonic() < deadline:
                proc.poll() is None or self.fail("finished too early")
                time.sleep(0.1)  # bounded: the download takes ~5 s at 8 MiB/s
            proc.kill()
            proc.wait()
            kept = durable_bytes(self.state)
            self.assertGreaterEqual(kept, 16 * MiB)
            self.settle(fo, url)
            before = self.key_bytes(fo, url)
            p = self.ctl("-q", "-c", "4", "--cache-quota", "16M", "-o", dest, url)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(dest), self.sha["mid.bin"])
            self.assertLessEqual(self.key_bytes(fo, url) - before,
                                 self.size("mid.bin") - kept)

    def test_unfinished_entry_goes_when_room_is_needed(self):
        """An unfinished entry (kill -9) not in use is evicted by the first
        eviction of a later run that needs its room, after finished
        entries (there are none here to spare: the only one is the run's
        own, in use until delivered)."""
        dest = os.path.join(self.out, "mid.bin")
        with FaultOrigin(self.root, rate=2 * MiB) as fo:
            url = fo.url("mid.bin", case="unfinished")
            proc = self.spawn("-q", "-c", "4", "-o", dest, url)
            deadline = time.monotonic() + 60
            while durable_bytes(self.state) < 4 * MiB and time.monotonic() < deadline:
                proc.poll() is None or self.fail("finished too early")
                time.sleep(0.1)  # bounded: the download takes ~5 s at 8 MiB/s
            proc.kill()
            proc.wait()
            self.settle(fo, url)
            unfinished = self.row_and_blob()
            self.assertTrue(unfinished and os.path.isfile(unfinished[1]))
            small = os.path.join(self.out, "small.bin")
            p = self.ctl("-q", "--cache-quota", "1M", "-o", small, fo.url("small.bin"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(sha256_file(small), self.sha["small.bin"])
            self.assertFalse(os.path.exists(unfinished[1]))
            self.assertEqual(durable_bytes(self.state), 0)
            left = self.row_and_blob()
            self.assertTrue(left and left[0] != unfinished[0] and os.path.isfile(left[1]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
