#!/usr/bin/python3
"""test_http2.py -- which HTTP version retriever speaks to an https origin
that offers h2 (issue 23, docs/engine.md "HTTP version").

nginx serves https with `http2` on and logs every request's
$server_protocol and connection number; the tests read that log, so what
is asserted is what went over the wire:

  auto (the default), --local and retrieverd: many small files all over
      HTTP/2.0, multiplexed on one connection;
  always: HTTP/2.0 too, a big object's ranges included;
  never, --local and retrieverd: HTTP/1.1 only;
  auto, a big object: its ranges over HTTP/1.1 (several connections).

Every file's sha256 is checked. Needs nginx with http_v2 (Debian's
nginx-light); $RV_CTL and $RV_DAEMON name the programs.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fixtures"))
import daemons  # noqa: E402
from origins import NginxOrigin, make_file, sha256_file  # noqa: E402

CTL = os.environ.get("RV_CTL", "retrieverctl")
DAEMON = os.environ.get("RV_DAEMON")
N_SMALL = 60
BIG = 24 << 20          # split into ranges: well above min_chunk_size (1 MiB)
FIRST_RANGE = "bytes=0-"  # the probe's Range starts so; later ranges do not
RUN_TIMEOUT = 120


class Http2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rv-h2-test-")
        src = os.path.join(cls.tmp, "src")
        os.mkdir(src)
        cls.sums = {}
        for i in range(N_SMALL):
            name = "s%03d.bin" % i
            # 1..20 KiB, not all the same size
            path = make_file(os.path.join(src, name), 1024 * (1 + i % 20),
                             seed=i + 1)
            cls.sums[name] = sha256_file(path)
        make_file(os.path.join(src, "big.bin"), BIG, seed=1000)
        cls.sums["big.bin"] = sha256_file(os.path.join(src, "big.bin"))
        cls.ng = NginxOrigin(src, tls=True, h2=True, log=True).start()
        cls.urls = os.path.join(cls.tmp, "urls")
        with open(cls.urls, "w") as f:
            for i in range(N_SMALL):
                f.write(cls.ng.url("/s%03d.bin" % i) + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.ng.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.out = tempfile.mkdtemp(dir=self.tmp, prefix="out-")
        self.seen = len(self.ng.requests())

    def run_ctl(self, *args):
        p = subprocess.run([CTL, *args], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p

    def local(self, *args):
        return self.run_ctl("download", "--local", "--no-state", "--quiet",
                            "--cacert", self.ng.ca_file, "-d", self.out,
                            *args)

    def logged(self, name=None):
        """The requests since setUp (for /name only, if given)."""
        reqs = self.ng.requests()[self.seen:]
        return [r for r in reqs if name is None or r["uri"] == "/" + name]

    def check_small(self):
        """Every small file arrived intact; returns their requests."""
        for i in range(N_SMALL):
            name = "s%03d.bin" % i
            self.assertEqual(sha256_file(os.path.join(self.out, name)),
                             self.sums[name], name)
        reqs = [r for r in self.logged() if r["uri"].startswith("/s")]
        self.assertEqual(sorted(r["uri"] for r in reqs),
                         sorted("/s%03d.bin" % i for i in range(N_SMALL)))
        return reqs

    def assert_small_h2(self):
        reqs = self.check_small()
        self.assertEqual({r["protocol"] for r in reqs}, {"HTTP/2.0"})
        # Multiplexed: one connection, not one per transfer (PIPEWAIT keeps
        # the first transfers from each opening their own).
        conns = {r["connection"] for r in reqs}
        self.assertEqual(len(conns), 1, "connections %s" % sorted(conns))

    def assert_small_h11(self):
        reqs = self.check_small()
        self.assertEqual({r["protocol"] for r in reqs}, {"HTTP/1.1"})

    @staticmethod
    def brief(reqs):
        """The requests in a line each: protocol, Range, connection."""
        return "\n".join("%s %s conn %d" % (r["protocol"], r["range"],
                                            r["connection"]) for r in reqs)

    def big(self, *args):
        self.local(*args, self.ng.url("/big.bin"))
        self.assertEqual(sha256_file(os.path.join(self.out, "big.bin")),
                         self.sums["big.bin"])
        reqs = self.logged("big.bin")
        ranges = [r for r in reqs if not r["range"].startswith(FIRST_RANGE)]
        # Split: the probe and then several ranges, as the rule assumes.
        self.assertGreaterEqual(len(ranges), 2, self.brief(reqs))
        return reqs, ranges

    # --local ---------------------------------------------------------------

    def test_local_default_is_auto_h2_for_small_files(self):
        self.local("-i", self.urls)
        self.assert_small_h2()

    def test_local_auto_h2_for_small_files(self):
        self.local("--http2", "auto", "-i", self.urls)
        self.assert_small_h2()

    def test_local_always_h2_for_small_files(self):
        self.local("--http2", "always", "-i", self.urls)
        self.assert_small_h2()

    def test_local_never_h11_for_small_files(self):
        self.local("--http2", "never", "-i", self.urls)
        self.assert_small_h11()

    def test_local_auto_big_object_ranges_over_h11(self):
        reqs, ranges = self.big("--http2", "auto")
        self.assertEqual({r["protocol"] for r in ranges}, {"HTTP/1.1"},
                         self.brief(reqs))
        # Several TCP connections carried them.
        self.assertGreater(len({r["connection"] for r in ranges}), 1,
                           self.brief(reqs))
        h11 = sum(r["bytes"] for r in reqs if r["protocol"] == "HTTP/1.1")
        self.assertGreaterEqual(h11, BIG - (1 << 20))

    def test_local_always_big_object_over_h2(self):
        reqs, _ = self.big("--http2", "always")
        self.assertEqual({r["protocol"] for r in reqs}, {"HTTP/2.0"},
                         self.brief(reqs))

    def test_local_never_big_object_over_h11(self):
        reqs, _ = self.big("--http2", "never")
        self.assertEqual({r["protocol"] for r in reqs}, {"HTTP/1.1"},
                         self.brief(reqs))

    def test_bad_value_refused(self):
        p = subprocess.run([CTL, "download", "--local", "--http2", "maybe",
                            "-d", self.out, self.ng.url("/s000.bin")],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("auto, never or always", p.stderr)
        self.assertEqual(self.logged(), [])

    # retrieverd ------------------------------------------------------------

    def through_daemon(self, *daemon_args, what=None):
        sock = os.path.join(self.out, "sock")
        d = daemons.Daemon(["--socket", sock, *daemon_args], binary=DAEMON)
        d.start()
        try:
            self.run_ctl("download", "--socket", sock, "--no-autostart",
                         "--quiet", "--cacert", self.ng.ca_file,
                         "-d", self.out, *(what or ["-i", self.urls]))
        finally:
            d.stop()

    def test_daemon_default_is_auto_h2_for_small_files(self):
        self.through_daemon()
        self.assert_small_h2()

    def test_daemon_never_h11_for_small_files(self):
        self.through_daemon("--http2", "never")
        self.assert_small_h11()

    def test_daemon_always_h2_for_small_files(self):
        self.through_daemon("--http2", "always")
        self.assert_small_h2()

    def test_daemon_always_big_object_over_h2(self):
        # With durable state (the daemon's): the staged path, which may
        # pause a transfer (CURL_WRITEFUNC_PAUSE) while its stages are full,
        # here on h2 streams sharing one connection.
        self.through_daemon("--http2", "always",
                            what=[self.ng.url("/big.bin")])
        self.assertEqual(sha256_file(os.path.join(self.out, "big.bin")),
                         self.sums["big.bin"])
        reqs = self.logged("big.bin")
        self.assertEqual({r["protocol"] for r in reqs}, {"HTTP/2.0"},
                         self.brief(reqs))
        self.assertGreaterEqual(len(reqs), 3, self.brief(reqs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
