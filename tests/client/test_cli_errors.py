#!/usr/bin/python3
"""retrieverctl: errors that end quickly, and the TLS and retry options, in
both modes (issue 21), against real origins and the real retrieverd.

  - permanent failures (a host under .invalid, a certificate that does not
    verify, 404/403/401) fail at once: no retry, the origin sees one
    request, and the run ends within PERMANENT_BOUND seconds (measured
    around the whole retrieverctl run);
  - 429/503 are still retried; a refused connection is retried on a short
    schedule (--retry-refused) and then fails naming the address;
  - --cacert adds to the CA store, --cacert-only replaces it; in the daemon
    mode the daemon reads the file as the caller. The daemon here runs
    with `ca-file` set to CA "A", standing in for the system's store (a
    test cannot sign with a system CA), so "adds" is checked as: A's origin
    and the request's own B's origin both verify, and with --cacert-only
    A's no longer does;
  - --retries and --stall-timeout reach the daemon; -k and a daemon-mode
    --insecure are refused in one line.

Environment (set by ctest): RV_CTL, RV_DAEMON, PYTHONPATH reaching
tests/fixtures.
"""
import json
import os
import shutil
import socket
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
from shown import shown  # noqa: E402

CTL = os.environ["RV_CTL"]
RUN_TIMEOUT = 120      # a bound on any one retrieverctl run
PERMANENT_BOUND = 2.0  # issue 21: permanent errors end within 2 s
REFUSED_BOUND = 10.0   # a 1 s (or the default 3 s) refused schedule, generously
NOBODY = 65534


def closed_port():
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ctl-errors-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = sha256_file(make_file(os.path.join(cls.root, "f.bin"), 100000, 7))
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)
        # Two https origins, each with its own self-signed certificate (its
        # own CA): A is in the daemon's store, B only where a test adds it.
        cls.tls_a = NginxOrigin(cls.root, tls=True).start()
        cls.addClassCleanup(cls.tls_a.stop)
        cls.tls_b = NginxOrigin(cls.root, tls=True).start()
        cls.addClassCleanup(cls.tls_b.stop)
        cls.tmp = tempfile.mkdtemp(prefix="rv-ctl-errors-")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sock = os.path.join(cls.tmp, "run", "retrieverd.sock")
        conf = os.path.join(cls.tmp, "retrieverd.conf")
        with open(conf, "w") as f:
            f.write("ca-file = %s\n" % cls.tls_a.ca_file)
        cls.d = daemons.Daemon(["--socket", cls.sock, "--config", conf,
                                "--state-dir", os.path.join(cls.tmp, "state"),
                                "--cache-dir", os.path.join(cls.tmp, "cache")])
        cls.addClassCleanup(cls.d.kill)
        cls.d.start()
        # The CA files, readable by the caller (the daemon reads them as us).
        cls.ca_b = os.path.join(cls.tmp, "ca-b.pem")
        shutil.copy(cls.tls_b.ca_file, cls.ca_b)

    @classmethod
    def tearDownClass(cls):
        status = cls.d.stop()[0]
        log = cls.d.log()
        assert status == 0, log
        assert "Sanitizer" not in log, log

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-ctl-errors-out-")
        self.addCleanup(shutil.rmtree, self.out, True)
        self.n = 0

    MODES = {"local": ["--local", "--no-state"], "daemon": ["--socket", None]}

    def mode_args(self, mode):
        return [a if a is not None else self.sock for a in self.MODES[mode]]

    def run_ctl(self, mode, url, *args):
        """Download url in mode with --json; (CompletedProcess, seconds,
        the JSON line's object or None)."""
        self.n += 1
        dest = os.path.join(self.out, "f%d" % self.n)
        cmd = [CTL, "download", *self.mode_args(mode), "--json", *args, "-o", dest, url]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        secs = time.monotonic() - t0
        lines = p.stdout.splitlines()
        obj = json.loads(lines[0]) if lines else None
        return p, secs, obj

    def assert_fails(self, mode, url, code, *args, bound=PERMANENT_BOUND, retried=False,
                     permanent=True):
        p, secs, obj = self.run_ctl(mode, url, *args)
        what = "%s: exit %d in %.2f s\nstdout: %s\nstderr: %s" % (
            mode, p.returncode, secs, p.stdout, p.stderr)
        self.assertNotEqual(p.returncode, 0, what)
        self.assertIsNotNone(obj, what)
        self.assertEqual(obj["state"], "failed", what)
        self.assertEqual(obj["error"]["code"], code, what)
        if retried:
            self.assertGreater(obj["retries"], 0, what)
        else:
            self.assertEqual(obj["retries"], 0, what)
        if permanent:
            self.assertFalse(obj["error"]["retryable"], what)
        # The one-line message names the URL and the reason; the JSON line
        # carries the same as fields.
        errors = [l for l in p.stderr.splitlines() if l.startswith("retrieverctl: '")]
        self.assertEqual(len(errors), 1, what)
        self.assertIn("'%s'" % shown(url), errors[0], what)
        self.assertIn(obj["error"]["message"], errors[0], what)
        self.assertIn(obj["error"]["detail"], errors[0], what)
        self.assertLess(secs, bound, what)
        return p, obj

    def assert_ok(self, mode, url, *args):
        p, secs, obj = self.run_ctl(mode, url, *args)
        self.assertEqual(p.returncode, 0, "%s: %s%s" % (mode, p.stdout, p.stderr))
        self.assertEqual(obj["sha256"], self.sha, p.stdout)
        return p, obj

    def requests_for(self, url):
        """The GETs the fault origin answered for url's case key, once
        they have all ended."""
        key = url.split(str(self.fo.port), 1)[1]
        requests = [ev for ev in self.fo.log()
                    if ev.get("key") == key and ev["event"] == "request"]
        self.assertTrue(self.fo.wait(key, len(requests)))
        return len(requests)

    # -- permanent: at once --------------------------------------------------

    def test_unresolvable_host_fails_at_once(self):
        for mode in self.MODES:
            with self.subTest(mode=mode):
                p, obj = self.assert_fails(mode, "http://no-such-host.invalid/f.bin",
                                           "RV_E_RESOLVE_HOST", "--retries", "50")
                self.assertIn("no-such-host.invalid", obj["error"]["detail"])

    def test_tls_verify_failure_fails_at_once(self):
        url = self.tls_b.url("f.bin")  # B's CA is in neither store
        for mode in self.MODES:
            with self.subTest(mode=mode):
                self.assert_fails(mode, url, "RV_E_TLS", "--retries", "50")

    def test_4xx_fail_at_once(self):
        for mode in self.MODES:
            for status, code in ((404, "RV_E_NOT_FOUND"), (403, "RV_E_ACCESS_DENIED"),
                                 (401, "RV_E_ACCESS_DENIED")):
                with self.subTest(mode=mode, status=status):
                    url = self.fo.url("f.bin", status=status, case="%s-%d" % (mode, status))
                    p, obj = self.assert_fails(mode, url, code, "--retries", "50")
                    self.assertIn(str(status), obj["error"]["detail"])
                    self.assertEqual(self.requests_for(url), 1)

    # -- transient: still retried ----------------------------------------------

    def test_429_and_503_still_retried(self):
        for mode in self.MODES:
            for status in (429, 503):
                with self.subTest(mode=mode, status=status):
                    url = self.fo.url("f.bin", status=status, times=2, retry_after=0,
                                      case="%s-%d" % (mode, status))
                    p, obj = self.assert_ok(mode, url)
                    self.assertEqual(obj["retries"], 2, p.stdout)

    def test_connection_refused_bounded_and_named(self):
        for mode in self.MODES:
            for extra in (["--retry-refused", "1"], []):
                with self.subTest(mode=mode, extra=extra):
                    port = closed_port()
                    url = "http://127.0.0.1:%d/f.bin" % port
                    # --retries 100: the attempts alone would not end it soon.
                    p, obj = self.assert_fails(mode, url, "RV_E_CONNECT", "--retries", "100",
                                               *extra, bound=REFUSED_BOUND, retried=True,
                                               permanent=False)
                    self.assertIn("127.0.0.1 port %d" % port, obj["error"]["detail"])
                    self.assertIn("still refused", obj["error"]["detail"])

    # -- options that reach the daemon -------------------------------------------

    def test_retries_option_applies(self):
        """--retries 0: one 503 fails the download (the default retries it)."""
        for mode in self.MODES:
            with self.subTest(mode=mode):
                url = self.fo.url("f.bin", status=503, times=1, retry_after=0,
                                  case="r0-%s" % mode)
                p, obj = self.assert_fails(mode, url, "RV_E_THROTTLED", "--retries", "0",
                                           permanent=False)
                self.assertEqual(self.requests_for(url), 1)

    def test_stall_timeout_applies(self):
        """--stall-timeout 1 with --retries 0: an origin that stops sending
        fails the download with RV_E_TIMEOUT (the default waits 30 s, and
        the origin resumes after 8 s)."""
        for mode in self.MODES:
            with self.subTest(mode=mode):
                url = self.fo.url("f.bin", stall_after=1000, stall_ms=8000,
                                  case="stall-%s" % mode)
                self.assert_fails(mode, url, "RV_E_TIMEOUT", "--retries", "0",
                                  "--stall-timeout", "1", bound=REFUSED_BOUND, permanent=False)

    # -- CA certificates -----------------------------------------------------------

    def test_cacert_adds(self):
        # Local: the system's store plus B. Daemon: its store (A) plus B.
        for mode in self.MODES:
            with self.subTest(mode=mode):
                self.assert_ok(mode, self.tls_b.url("f.bin"), "--cacert", self.ca_b)
        # The daemon's own store is still there beside the request's.
        self.assert_ok("daemon", self.tls_a.url("f.bin"), "--cacert", self.ca_b)
        self.assert_ok("daemon", self.tls_a.url("f.bin"))

    def test_cacert_only_replaces(self):
        for mode in self.MODES:
            with self.subTest(mode=mode):
                self.assert_ok(mode, self.tls_b.url("f.bin"), "--cacert-only", self.ca_b)
        # A (the daemon's store) is no longer trusted.
        self.assert_fails("daemon", self.tls_a.url("f.bin"), "RV_E_TLS",
                          "--cacert-only", self.ca_b)

    def test_cacert_relative_path_in_daemon_mode(self):
        """The daemon gets an absolute path: a relative --cacert works."""
        self.n += 1
        dest = os.path.join(self.out, "rel")
        p = subprocess.run([CTL, "download", "--socket", self.sock, "--cacert",
                            os.path.basename(self.ca_b), "-o", dest, self.tls_b.url("f.bin")],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT,
                           cwd=os.path.dirname(self.ca_b), stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(dest), self.sha)

    def test_bad_cacert_one_line(self):
        notpem = os.path.join(self.out, "not.pem")
        with open(notpem, "w") as f:
            f.write("hello\n")
        missing = os.path.join(self.out, "missing.pem")
        for mode in self.MODES:
            for path, words in ((notpem, "no PEM certificate"), (missing, "missing.pem")):
                with self.subTest(mode=mode, path=path):
                    p, _, _ = self.run_ctl(mode, self.tls_b.url("f.bin"), "--cacert", path)
                    self.assertNotEqual(p.returncode, 0, p.stderr)
                    lines = p.stderr.strip().splitlines()
                    self.assertEqual(len(lines), 1, p.stderr)
                    self.assertIn(words, lines[0])
        # The daemon says what is wrong with the field, as INVALID_ARGUMENT.
        p, _, _ = self.run_ctl("daemon", self.tls_b.url("f.bin"), "--cacert", notpem)
        self.assertIn("ca_file", p.stderr)

    def test_cacert_read_as_the_caller(self):
        """retrieverd opens --cacert's file as the caller: a file only root
        may read is refused for another user (PERMISSION_DENIED, one line
        naming the field), though the daemon itself (root) could read it;
        the same request works for root."""
        daemons.require_root(self, "runs retrieverctl as another uid")
        tmp = tempfile.mkdtemp(prefix="rv-ctl-errors-uid-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        sock = os.path.join(tmp, "run", "retrieverd.sock")
        d = daemons.Daemon(["--socket", sock, "--socket-mode", "0666",
                            "--state-dir", os.path.join(tmp, "state"),
                            "--cache-dir", os.path.join(tmp, "cache")])
        self.addCleanup(d.kill)
        d.start()
        os.chmod(os.path.dirname(sock), 0o755)
        secret_ca = os.path.join(tmp, "root-only.pem")
        shutil.copy(self.ca_b, secret_ca)
        os.chmod(secret_ca, 0o600)
        out = os.path.join(tmp, "out")
        os.makedirs(out)
        os.chown(out, NOBODY, NOBODY)
        url = self.tls_b.url("f.bin")
        cmd = [CTL, "download", "--socket", sock, "--cacert", secret_ca, "-o",
               os.path.join(out, "f"), url]
        p = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                            "--clear-groups", "--"] + cmd, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, cwd="/")
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("ca_file", p.stderr)
        self.assertIn("permission", p.stderr.lower())
        self.assertFalse(os.path.exists(os.path.join(out, "f")))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(d.stop()[0], 0, d.log())

    # -- verification off: spelled out only ---------------------------------------

    def test_insecure_spelled_out_only(self):
        url = self.tls_b.url("f.bin")
        p = subprocess.run([CTL, "download", "--local", "-k", "-o",
                            os.path.join(self.out, "k"), url],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("'-k' is not accepted", p.stderr)
        self.assertIn("--insecure", p.stderr)
        p, _, _ = self.run_ctl("daemon", url, "--insecure")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("'--insecure' cannot apply through retrieverd", p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 2, p.stderr)  # + the --help pointer
        p, obj = self.assert_ok("local", url, "--insecure", "-q")
        self.assertIn("warning: --insecure", p.stderr)


if __name__ == "__main__":
    unittest.main()
