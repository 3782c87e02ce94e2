#!/usr/bin/python3
"""Engine integration tests: the real library (through engine_cases, a C
program linking it) against a real nginx and the fault-injecting origin,
both started and stopped by these tests.

Every case asserts the delivered file's sha256 or the exact error code, and
where it matters the origin's own byte counts (a retried range continues
where it stopped: the origin never sends a byte twice).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from origins import FaultOrigin, NginxOrigin, make_file, sha256_file

CASES = os.environ["RV_ENGINE_CASES"]
MiB = 1 << 20


def run_case(*args, env=None, user=None, timeout=120):
    cmd = [CASES] + [str(a) for a in args]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
               "--clear-groups", "--"] + cmd
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=full_env)
    return p


def values(stdout, name):
    return [line.split(" ", 1)[1] for line in stdout.splitlines()
            if line.startswith(name + " ")]


class EngineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-engine-www-")
        os.chmod(cls.root, 0o755)
        sizes = {"empty.bin": 0, "one.bin": 1, "small.bin": 65536,
                 "mid.bin": 5 * MiB + 12345, "big.bin": 40 * MiB + 7}
        cls.sha = {}
        for i, (name, size) in enumerate(sizes.items()):
            path = os.path.join(cls.root, name)
            make_file(path, size, seed=i + 1)
            os.chmod(path, 0o644)
            cls.sha[name] = sha256_file(path)
        # The "changed" version fault_origin serves: every byte XOR 0xFF.
        with open(os.path.join(cls.root, "mid.bin"), "rb") as f:
            data = f.read()
        import hashlib
        cls.sha_mid_changed = hashlib.sha256(
            bytes(b ^ 0xFF for b in data)).hexdigest()
        cls.nginx = NginxOrigin(cls.root).start()
        cls.fault = FaultOrigin(cls.root).start()

    @classmethod
    def tearDownClass(cls):
        cls.fault.stop()
        cls.nginx.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-engine-out-")
        self.dest = os.path.join(self.out, "file")

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def ok(self, url, name, **kw):
        p = run_case("ok", url, self.dest, self.sha[name], **kw)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha[name])
        return p

    def error(self, url, code, sha=None, **kw):
        args = ["error", url, self.dest, code] + ([sha] if sha else [])
        p = run_case(*args, **kw)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertFalse(os.path.exists(self.dest))
        return values(p.stdout, "DETAIL")[0]

    def ended_responses(self, url):
        """Response events for url's case key once every request the origin
        saw for it has ended (waits on the origin; no sleeping)."""
        key = url.split(str(self.fault.port), 1)[1]
        requests = [ev for ev in self.fault.log()
                    if ev.get("key") == key and ev["event"] == "request"]
        self.assertTrue(self.fault.wait(key, len(requests)))
        return [ev for ev in self.fault.log()
                if ev.get("key") == key and ev["event"] == "response"]

    def key_stats(self, url):
        key = url.split(str(self.fault.port), 1)[1]
        return self.fault.stats()["per_key"].get(key, {})

    # -- a real nginx ---------------------------------------------------

    def test_nginx_sizes(self):
        for name in ("empty.bin", "one.bin", "small.bin", "mid.bin",
                     "big.bin"):
            with self.subTest(name=name):
                self.ok(self.nginx.url(name), name)

    def test_nginx_many_concurrent(self):
        names = ["small.bin", "mid.bin", "one.bin", "empty.bin",
                 "big.bin"] * 6
        args = ["many", self.out]
        for n in names:
            args += [self.nginx.url(n), self.sha[n]]
        p = run_case(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        for i, n in enumerate(names):
            self.assertEqual(
                sha256_file(os.path.join(self.out, "f%04d" % i)), self.sha[n])

    def test_nginx_missing(self):
        detail = self.error(self.nginx.url("nope.bin"), "RV_E_NOT_FOUND")
        self.assertIn("404", detail)

    def test_sha256_mismatch_delivers_nothing(self):
        detail = self.error(self.nginx.url("mid.bin"),
                            "RV_E_CHECKSUM_MISMATCH", sha="0" * 64)
        self.assertIn(self.sha["mid.bin"], detail)

    def test_existing_destination_replaced_atomically(self):
        with open(self.dest, "wb") as f:
            f.write(b"old contents")
        self.ok(self.nginx.url("mid.bin"), "mid.bin")

    def test_failed_download_keeps_existing_destination(self):
        with open(self.dest, "wb") as f:
            f.write(b"old contents")
        p = run_case("error", self.nginx.url("nope.bin"), self.dest,
                     "RV_E_NOT_FOUND")
        # The case checks the final name is absent; here it must survive.
        self.assertNotEqual(p.returncode, 0)
        with open(self.dest, "rb") as f:
            self.assertEqual(f.read(), b"old contents")

    # -- transient failures: retried, continued, right file --------------

    def test_503_retried(self):
        p = run_case("retries", self.fault.url("mid.bin", status=503, times=3,
                                               case="t503"),
                     self.dest, self.sha["mid.bin"], 3, 503)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha["mid.bin"])

    def test_429_retry_after_honoured(self):
        url = self.fault.url("small.bin", status=429, times=2, retry_after=1,
                             case="t429")
        p = run_case("retries", url, self.dest, self.sha["small.bin"], 2, 429)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_retry_after_beyond_cap_fails_resumably(self):
        url = self.fault.url("small.bin", status=503, retry_after=100000,
                             case="tcap")
        detail = self.error(url, "RV_E_RETRY_AFTER_TOO_LONG")
        self.assertIn("100000 s", detail)
        self.assertIn("again later", detail)

    def test_500_exhausts_attempts(self):
        url = self.fault.url("small.bin", status=500, case="t500")
        detail = self.error(url, "RV_E_SERVER_ERROR")
        self.assertIn("gave up after 8 attempts", detail)
        self.assertEqual(self.key_stats(url)["requests"], 8)

    def _continued(self, name, **faults):
        url = self.fault.url(name, **faults)
        self.ok(url, name)
        # Every byte crossed the wire once: ranges resume where they broke.
        self.assertEqual(self.key_stats(url)["body_bytes"],
                         os.path.getsize(os.path.join(self.root, name)))

    def test_reset_mid_body_continues(self):
        self._continued("big.bin", reset_after=300000, times=4, case="rst")

    def test_reset_after_first_range_continues(self):
        self._continued("big.bin", reset_after=100000, after=1, times=3,
                        case="rst2")

    def test_truncated_body_continues(self):
        self._continued("mid.bin", truncate_after=200000, times=3,
                        case="trunc")

    def test_stall_retried(self):
        url = self.fault.url("mid.bin", stall_after=100000, stall_ms=4000,
                             times=1, case="stall")
        self.ok(url, "mid.bin", env={"RV_TEST_STALL_MS": "1000"})
        self.assertEqual(self.key_stats(url)["body_bytes"],
                         os.path.getsize(os.path.join(self.root, "mid.bin")))

    def test_connect_refused(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        self.error("http://127.0.0.1:%d/x.bin" % port, "RV_E_CONNECT")

    # -- origins that do not do ranges, or lie ---------------------------

    def test_no_ranges_single_stream(self):
        self.ok(self.fault.url("mid.bin", noranges=1, case="nr"), "mid.bin")

    def test_ranges_ignored_mid_download(self):
        self.ok(self.fault.url("big.bin", noranges=1, after=1, case="nr2"),
                "big.bin")

    def test_no_ranges_with_reset_restarts_stream(self):
        self.ok(self.fault.url("mid.bin", noranges=1, reset_after=1000000,
                               times=2, case="nr3"), "mid.bin")

    def test_wrong_content_range_first(self):
        detail = self.error(self.fault.url("mid.bin", bad_range=1, case="br"),
                            "RV_E_PROTOCOL")
        self.assertIn("Content-Range 'bytes 1-", detail)

    def test_wrong_content_range_later(self):
        detail = self.error(self.fault.url("big.bin", bad_range=1, after=1,
                                           case="br2"), "RV_E_PROTOCOL")
        self.assertIn("origin answered with Content-Range", detail)

    def test_lying_total(self):
        self.error(self.fault.url("mid.bin", lie_total=7, case="lt"),
                   "RV_E_PROTOCOL")

    def test_huge_object(self):
        detail = self.error(self.fault.url("x.bin", huge=1, case="huge"),
                            "RV_E_TOO_LARGE")
        self.assertIn("4611686018427387904", detail)

    def test_head_refused_does_not_matter(self):
        self.ok(self.fault.url("mid.bin", head=405, case="head"), "mid.bin")

    def test_redirects(self):
        self.ok(self.fault.url("mid.bin", redirect=3, case="redir"),
                "mid.bin")
        os.unlink(self.dest)
        self.error(self.fault.url("mid.bin", redirect=30, case="redir2"),
                   "RV_E_TOO_MANY_REDIRECTS")

    def test_status_permanent(self):
        self.error(self.fault.url("mid.bin", status=403, case="s403"),
                   "RV_E_ACCESS_DENIED")
        self.error(self.fault.url("mid.bin", status=404, after=1,
                                  case="s404"), "RV_E_NOT_FOUND")

    # -- never mix versions ----------------------------------------------

    def test_change_mid_download_restarts_with_new_version(self):
        url = self.fault.url("mid.bin", change_after=2, case="chg")
        p = run_case("ok", url, self.dest, self.sha_mid_changed)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha_mid_changed)

    def test_change_mid_download_fail_policy_stops_fast(self):
        # Rate-limited so the other ranges are mid-body when one range sees
        # the new version; all of them must stop at once.
        url = self.fault.url("big.bin", change_after=4, rate=2 * MiB,
                             case="chgfail")
        p = run_case("fail_fast", url, self.dest)
        self.assertEqual(p.returncode, 0, p.stderr)
        failed_at = float(values(p.stdout, "FAILED_AT")[0])
        ends = [ev["t"] for ev in self.ended_responses(url)]
        self.assertGreaterEqual(len(ends), 4)
        # The origin logs a response when it stops sending; an aborted one
        # ends when its next paced send fails (<= 50 ms of pacing credit).
        self.assertLessEqual(max(ends), failed_at + 0.1 + 0.06)
        self.assertFalse(os.path.exists(self.dest))

    def test_cancel_stops_all_transfers(self):
        url = self.fault.url("big.bin", rate=2 * MiB, case="cancel")
        p = run_case("cancel", url, self.dest)
        self.assertEqual(p.returncode, 0, p.stderr)
        cancel_at = float(values(p.stdout, "CANCEL_AT")[0])
        ends = self.ended_responses(url)
        self.assertGreaterEqual(len(ends), 2)
        for ev in ends:
            self.assertNotEqual(ev.get("outcome"), "complete")
            self.assertLessEqual(ev["t"], cancel_at + 0.1 + 0.06)

    # -- file:// ---------------------------------------------------------

    def test_file_source(self):
        for name in ("empty.bin", "mid.bin", "big.bin"):
            with self.subTest(name=name):
                self.ok("file://" + os.path.join(self.root, name), name)

    def test_file_source_errors(self):
        self.error("file://" + os.path.join(self.root, "nope"),
                   "RV_E_NOT_FOUND")
        self.error("file://" + self.root, "RV_E_INVALID_ARGUMENT")

    # -- the local side --------------------------------------------------

    def test_bad_input_creates_nothing(self):
        p = run_case("bad_input", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop to nobody")
    def test_unwritable_destination(self):
        ro = os.path.join(self.out, "ro")
        os.mkdir(ro, 0o555)
        os.chmod(self.out, 0o755)
        p = run_case("error", self.nginx.url("mid.bin"),
                     os.path.join(ro, "f"), "RV_E_DEST_UNWRITABLE",
                     user=65534)
        # add() refuses it up front, before any transfer.
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(values(p.stdout, "ADD_ERROR"), ["RV_E_DEST_UNWRITABLE"])
        self.assertEqual(os.listdir(ro), [])

    @unittest.skipUnless(os.geteuid() == 0, "needs root to mount a tmpfs")
    def test_disk_full(self):
        mnt = os.path.join(self.out, "small")
        os.mkdir(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                        mnt], check=True)
        try:
            p = run_case("error", self.nginx.url("mid.bin"),
                         os.path.join(mnt, "f"), "RV_E_NO_SPACE")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("No space", values(p.stdout, "DETAIL")[0])
            self.assertEqual(os.listdir(mnt), [])
        finally:
            subprocess.run(["umount", mnt], check=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
