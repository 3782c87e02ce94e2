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
    Authorization header as well is refused (no password prompt);
  - --proxy URL and the http_proxy / no_proxy variables: the download goes
    through a forward proxy written here (plain http, absolute-form request
    lines; its log says what went through it) in both modes; no_proxy
    bypasses it; retrieverd never uses the proxy of its own environment;
    a proxy's password does not show in retrieverd's log or the job list.

Environment (set by ctest): RV_CTL, RV_DAEMON, PYTHONPATH reaching
tests/fixtures.
"""
import base64
import http.client
import http.server
import json
import os
import threading
import urllib.parse
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


PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY", "no_proxy", "NO_PROXY")


def clean_env(**extra):
    """os.environ without any proxy variable, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(extra)
    return env


class ForwardProxy:
    """A plain-http forward proxy on loopback: GET with an absolute-form
    request line, relayed to the origin with the request's headers (Range,
    If-Range, Authorization...) but not Proxy-Authorization, streamed back.
    log: one (url, proxy-authorization or None) per request."""

    HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te",
           "trailer", "transfer-encoding", "upgrade"}

    def __init__(self):
        self.log = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with proxy.lock:
                    proxy.log.append((self.path, self.headers.get("Proxy-Authorization")))
                u = urllib.parse.urlsplit(self.path)
                if u.scheme != "http" or not u.hostname:
                    self.send_error(400, "absolute-form http URL expected")
                    return
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
                try:
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() not in proxy.HOP}
                    conn.request("GET", u.path + ("?" + u.query if u.query else ""),
                                 headers=hdrs)
                    resp = conn.getresponse()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in proxy.HOP:
                            self.send_header(k, v)
                    self.end_headers()
                    while True:
                        b = resp.read(65536)
                        if not b:
                            break
                        self.wfile.write(b)
                finally:
                    conn.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def seen(self, needle):
        with self.lock:
            return [e for e in self.log if needle in e[0]]


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
        cls.proxy = ForwardProxy().start()
        cls.addClassCleanup(cls.proxy.stop)
        cls.tmp = tempfile.mkdtemp(prefix="rv-ctl-net-")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sock = os.path.join(cls.tmp, "run", "retrieverd.sock")
        # The daemon's own environment names the proxy: no request may use
        # it unless the caller sends it.
        cls.d = daemons.Daemon(["--socket", cls.sock,
                                "--state-dir", os.path.join(cls.tmp, "state"),
                                "--cache-dir", os.path.join(cls.tmp, "cache")],
                               env=clean_env(http_proxy=cls.proxy.url,
                                             all_proxy=cls.proxy.url))
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
                           stdin=subprocess.DEVNULL, env=env or clean_env())
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
                                     env=clean_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
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

    # -- proxies -----------------------------------------------------------------

    def through(self, mode, case, *args, env=None, size=100000):
        """Download f.bin?case=case; the proxy's log entries for it."""
        p, _, dest = self.run_ctl(mode, self.fo.url("/f.bin", case=case), *args, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(dest), self.sha_small)
        return self.proxy.seen("case=" + case)

    def test_proxy_option(self):
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                seen = self.through(mode, "opt-" + mode, "--proxy", self.proxy.url)
                self.assertTrue(seen, "nothing went through the proxy")
                self.assertTrue(all(u.startswith("http://127.0.0.1:") for u, _ in seen), seen)

    def test_proxy_environment(self):
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                self.assertTrue(self.through(mode, "env-" + mode,
                                             env=clean_env(http_proxy=self.proxy.url)),
                                "http_proxy was not used")
                # no_proxy names the origin's host: straight to it.
                self.assertEqual(self.through(mode, "noproxy-" + mode, env=clean_env(
                    http_proxy=self.proxy.url, no_proxy="localhost,127.0.0.1")), [])
                # With neither, no proxy: not even the daemon's own.
                self.assertEqual(self.through(mode, "none-" + mode), [])

    def test_proxy_credentials_not_kept(self):
        case = "cred-daemon"
        purl = self.proxy.url.replace("http://", "http://pu:proxy-sekrit@")
        seen = self.through("daemon", case, "--proxy", purl)
        self.assertEqual({a for _, a in seen}, {basic("pu", "proxy-sekrit")})
        # Another proxy (no credentials) is another job and another cache
        # entry: it goes through the proxy again, not served from the
        # first one's bytes.
        seen = self.through("daemon", case, "--proxy", self.proxy.url)
        self.assertTrue(seen and all(a is None for _, a in seen[-1:]), seen)
        p = subprocess.run([CTL, "list", "--all", "--json", "--socket", self.sock],
                           capture_output=True, text=True, timeout=RUN_TIMEOUT, env=clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("f.bin", p.stdout)
        self.assertNotIn("proxy-sekrit", p.stdout)
        self.assertNotIn("proxy-sekrit", self.d.log())

    def test_proxy_password_not_in_cmdline(self):
        """A proxy's password given with --proxy is wiped from the running
        retrieverctl's /proc/PID/cmdline, as --user's is."""
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                case = "pcmd-" + mode
                url = self.fo.url("/big.bin", case=case, rate=MiB)
                purl = self.proxy.url.replace("http://", "http://pu:argv-psekrit@")
                dest = os.path.join(self.out, "pslow-" + mode)
                p = subprocess.Popen([CTL, "download", *self.mode_args(mode), "--no-progress",
                                      "-c", "1", "--proxy", purl, "-o", dest, url],
                                     env=clean_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                self.addCleanup(p.kill)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not self.proxy.seen("case=" + case):
                    time.sleep(0.05)
                with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                    cmdline = f.read()
                out, err = p.communicate(timeout=RUN_TIMEOUT)
                self.assertEqual(p.returncode, 0, err)
                self.assertIn(b"--proxy", cmdline)
                self.assertNotIn(b"argv-psekrit", cmdline)
                self.assertEqual({a for _, a in self.proxy.seen("case=" + case)},
                                 {basic("pu", "argv-psekrit")})

    def test_proxy_refused(self):
        for mode in ("local", "daemon"):
            with self.subTest(mode=mode):
                p, _, _ = self.run_ctl(mode, self.fo.url("/f.bin", case="x"), "--proxy",
                                       "http://a\tb")
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("'--proxy' needs the proxy's URL", p.stderr.splitlines()[0])


if __name__ == "__main__":
    unittest.main()
