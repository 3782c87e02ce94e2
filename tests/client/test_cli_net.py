#!/usr/bin/python3
"""retrieverctl's network options in both modes (issue 21), against nginx
and the real retrieverd:

  - --limit-rate RATE caps each URL's download, all its connections
    together: 4 MiB at 1M takes at least RATE_FLOOR seconds (a lower bound
    only: a loaded machine is slower, never faster), with --local and
    through the daemon; bad values are refused in one line;
  - --user USER:PASS sends HTTP basic auth (the fault origin logs the
    Authorization header that arrived) in both modes, wins over --netrc,
    is wiped from /proc/PID/cmdline once read, and without a ':' or with an
    Authorization header as well is refused (no password prompt).

Environment (set by ctest): RV_CTL, RV_DAEMON, PYTHONPATH reaching
tests/fixtures.
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402

CTL = os.environ["RV_CTL"]
RUN_TIMEOUT = 120  # a bound on any one retrieverctl run
SIZE = 4 << 20
# 4 MiB at 1 MiB/s is 4 s; libcurl averages its cap, so the first moments
# may run faster: 3.2 s leaves room for that and still fails without a cap
# (loopback nginx serves 4 MiB in well under a second).
RATE_FLOOR = 3.2
MiB = 1 << 20


def basic(login, password):
    return "Basic " + base64.b64encode(("%s:%s" % (login, password)).encode()).decode()


class NetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ctl-net-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = sha256_file(make_file(os.path.join(cls.root, "big.bin"), SIZE, 11))
        cls.web = NginxOrigin(cls.root).start()
        cls.addClassCleanup(cls.web.stop)
        cls.sha_small = sha256_file(make_file(os.path.join(cls.root, "f.bin"), 100000, 7))
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)
        cls.tmp = tempfile.mkdtemp(prefix="rv-ctl-net-")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sock = os.path.join(cls.tmp, "run", "retrieverd.sock")
        cls.d = daemons.Daemon(["--socket", cls.sock,
                                "--state-dir", os.path.join(cls.tmp, "state"),
                                "--cache-dir", os.path.join(cls.tmp, "cache")])
        cls.addClassCleanup(cls.d.kill)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        status = cls.d.stop()[0]
        log = cls.d.log()
        assert status == 0, log
        assert "Sanitizer" not in log, log

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-ctl-net-out-")
        self.addCleanup(shutil.rmtree, self.out, True)
        self.n = 0

    def mode_args(self, mode):
        return ["--local", "--no-state"] if mode == "local" else ["--socket", self.sock]

    def run_ctl(self, mode, url, *args, env=None):
        """Download url in mode; (CompletedProcess, seconds, destination)."""
        self.n += 1
        dest = os.path.join(self.out, "f%d" % self.n)
        cmd = [CTL, "download", *self.mode_args(mode), "--no-progress", *args, "-o", dest,
               url]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                           stdin=subprocess.DEVNULL, env=env)
        return p, time.monotonic() - t0, dest

    def test_limit_rate(self):
        url = self.web.url("big.bin")
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                # -c 4: several connections, so a per-connection cap that is
                # not shared would let the object run at 4 times RATE.
                p, secs, dest = self.run_ctl(mode, url, "--limit-rate", "1M", "-c", "4")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(sha256_file(dest), self.sha)
                self.assertGreaterEqual(secs, RATE_FLOOR, "4 MiB at --limit-rate 1M")

    def test_limit_rate_refused(self):
        url = self.web.url("big.bin")
        for bad in ("0", "1", "1023", "fast", "-5K", "2Q", "1K5"):
            for mode in ("local", "daemon"):
                with self.subTest(value=bad, mode=mode):
                    p, _, dest = self.run_ctl(mode, url, "--limit-rate", bad)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn("--limit-rate", p.stderr)
                    self.assertIn("at least 1K", p.stderr)
                    self.assertIn("--limit-rate", p.stderr.splitlines()[0])
                    self.assertFalse(os.path.exists(dest))

    # -- --user ------------------------------------------------------------------

    def auth_seen(self, case):
        key = "/f.bin?case=" + case
        reqs = [e for e in self.fo.log() if e["event"] == "request" and e["key"] == key]
        self.assertTrue(reqs, "the origin saw no request")
        return {e["headers"].get("authorization") for e in reqs}

    def test_user(self):
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                case = "user-" + mode
                # Split at the first ':' (curl's): the password may hold more.
                p, _, dest = self.run_ctl(mode, self.fo.url("/f.bin", case=case),
                                          "--user", "al ice:pw:sekrit")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(sha256_file(dest), self.sha_small)
                self.assertEqual(self.auth_seen(case), {basic("al ice", "pw:sekrit")})
                self.assertNotIn("sekrit", p.stderr + p.stdout)
        # --user wins over the netrc, which is then not read at all.
        case = "user-netrc"
        netrc = os.path.join(self.out, "netrc")
        with open(netrc, "w") as f:
            f.write("machine 127.0.0.1 login n password netrc-pw\n")
        os.chmod(netrc, 0o600)
        p, _, _ = self.run_ctl("local", self.fo.url("/f.bin", case=case), "--netrc-file",
                               netrc, "-u", "u:p")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.auth_seen(case), {basic("u", "p")})

    def test_user_refused(self):
        url = self.fo.url("/f.bin", case="user-refused")
        hdr = os.path.join(self.out, "h.txt")
        with open(hdr, "w") as f:
            f.write("Authorization: Bearer x\n")
        for args, msg in ((["--user", "alice"], "needs USER:PASSWORD (no password prompt)"),
                          (["--user", "a:b", "--header", "@" + hdr],
                           "'--user' and an Authorization header")):
            for mode in ("local", "daemon"):
                with self.subTest(args=args, mode=mode):
                    p, _, dest = self.run_ctl(mode, url, *args)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(msg, p.stderr.splitlines()[0])
                    self.assertFalse(os.path.exists(dest))
        self.assertFalse([e for e in self.fo.log()
                          if e["event"] == "request" and "user-refused" in e["key"]])

    def test_user_not_in_cmdline(self):
        """While a slow download runs, the password is not in the running
        retrieverctl's /proc/PID/cmdline, though its requests carry it."""
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                case = "cmdline-" + mode
                url = self.fo.url("/big.bin", case=case, rate=MiB)
                dest = os.path.join(self.out, "slow-" + mode)
                p = subprocess.Popen([CTL, "download", *self.mode_args(mode), "--no-progress",
                                      "-c", "1", "--user", "u:argv-sekrit", "-o", dest, url],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                self.addCleanup(p.kill)
                key = "/big.bin?case=%s&rate=%d" % (case, MiB)
                # Bounded wait for the first request to reach the origin: by
                # then the command line has been parsed and resolved.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not [
                        e for e in self.fo.log()
                        if e["event"] == "request" and e["key"] == key]:
                    time.sleep(0.05)
                with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                    cmdline = f.read()
                out, err = p.communicate(timeout=RUN_TIMEOUT)
                self.assertEqual(p.returncode, 0, err)
                self.assertIn(b"--user", cmdline)
                self.assertNotIn(b"argv-sekrit", cmdline)
                reqs = [e for e in self.fo.log()
                        if e["event"] == "request" and e["key"] == key]
                self.assertEqual({e["headers"].get("authorization") for e in reqs},
                                 {basic("u", "argv-sekrit")})


if __name__ == "__main__":
    unittest.main()
