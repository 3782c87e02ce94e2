#!/usr/bin/python3
"""More of retrieverctl (issue 21), both modes, against nginx (http and
https), the fault origin, a CONNECT proxy and the real retrieverd:

  CatOptionsTest   cat takes download's options: --header (@FILE), --user,
                   --netrc-file reach the origin (its request log);
                   --retries 0 makes one request; --limit-rate slows it
                   (a lower bound only); --sha256 streams the bytes and says
                   at the end whether they matched (exit 0, or 6 with the
                   bytes already written); --cacert for an https origin;
                   what cat does not take is refused in one line; the same
                   through download -o -.
  JsonTest         download --json's cached_bytes (a cache hit's size) and
                   resumed_bytes (what was durable from an interrupted run),
                   each line checked against docs/cli-json.schema.json.
  RateTest         a cache hit's done line carries no rate ("0 B/s"), on a
                   pipe and in a pseudo-terminal; a slower download keeps
                   its rate.
  ConnectProxyTest https through an HTTP proxy (CONNECT, the proxy of
                   tests/fixtures/connect_proxy.py, started and stopped by
                   PID) to a loopback nginx with a certificate made for the
                   test: --proxy URL and https_proxy=, download and cat,
                   both modes; no_proxy bypasses it; retrieverd never uses
                   the proxy of its own environment.

Environment (set by ctest): RV_CTL, RV_DAEMON, PYTHONPATH reaching
tests/fixtures.
"""
import base64
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "fixtures"))
sys.path.insert(0, HERE)
import daemons  # noqa: E402
import origins  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402
from test_cli_ui import check_schema  # noqa: E402  (the schema checker; not its tests)

CTL = os.environ["RV_CTL"]
SCHEMA = os.path.join(HERE, os.pardir, os.pardir, "docs", "cli-json.schema.json")
PROXY = os.path.join(HERE, os.pardir, "fixtures", "connect_proxy.py")
RUN_TIMEOUT = 120  # a bound on any one retrieverctl run
SMALL = 300000
BIG = 16 << 20
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY", "no_proxy", "NO_PROXY")
MODES = ("local", "daemon")


def clean_env(**extra):
    """os.environ without any proxy variable, with no autostart, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if k not in PROXY_VARS and k != "RETRIEVER_HEADERS"}
    env["RETRIEVER_NO_AUTOSTART"] = "1"
    env.update(extra)
    return env


def sha(data):
    return hashlib.sha256(data).hexdigest()


class ConnectProxy:
    """tests/fixtures/connect_proxy.py as a child process, stopped by PID;
    connects() is the list of CONNECT targets it has logged."""

    def __init__(self, tmp):
        self.log_path = os.path.join(tmp, "connect-proxy.log")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, PROXY, "--log", self.log_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL,
                                     preexec_fn=origins._die_with_parent)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.stop()
            raise origins.OriginError("connect_proxy.py did not start: %r" % line)
        self.url = "http://127.0.0.1:%d" % int(line.split()[1])
        return self

    def stop(self):
        if self.proc:
            origins._stop_process(self.proc)
            self.proc.stdout.close()
            self.exit_status = self.proc.returncode
            self.proc = None

    def connects(self):
        with open(self.log_path) as f:
            return [json.loads(ln) for ln in f if ln.strip()]


class Base(unittest.TestCase):
    """A fault origin and nginx on one root, a retrieverd with private
    state; ctl() runs retrieverctl in a mode."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ctl-more-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        with open(make_file(os.path.join(cls.root, "f.bin"), SMALL, 5), "rb") as f:
            cls.data = f.read()
        cls.sha_big = sha256_file(make_file(os.path.join(cls.root, "big.bin"), BIG, 6))
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)
        cls.web = NginxOrigin(cls.root).start()
        cls.addClassCleanup(cls.web.stop)
        cls.tmp = tempfile.mkdtemp(prefix="rv-ctl-more-")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sock = os.path.join(cls.tmp, "run", "retrieverd.sock")
        cls.d = daemons.Daemon(["--socket", cls.sock], env=clean_env())
        cls.addClassCleanup(cls.d.kill)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        status = cls.d.stop()[0]
        log = cls.d.log()
        assert status == 0, log
        assert "Sanitizer" not in log, log

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="rv-ctl-more-w-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.n = 0

    def mode_args(self, mode, state=False):
        if mode == "daemon":
            return ["--socket", self.sock]
        if state:
            return ["--local", "--state-dir", os.path.join(self.work, "state"),
                    "--cache-dir", os.path.join(self.work, "cache")]
        return ["--local", "--no-state"]

    def ctl(self, *args, env=None, text=True, stdin=subprocess.DEVNULL):
        return subprocess.run([CTL, *args], capture_output=True, text=text,
                              timeout=RUN_TIMEOUT, stdin=stdin, env=env or clean_env(),
                              cwd=self.work)

    def assert_rc(self, p, rc):
        err = p.stderr if isinstance(p.stderr, str) else p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, rc, "stderr: %s" % err)

    def case(self, name, mode):
        self.n += 1
        return "%s-%s-%d-%d" % (name, mode, os.getpid(), self.n)

    def requests(self, case):
        key = "/f.bin?case=" + case
        return [e for e in self.fo.log() if e["event"] == "request" and e["key"] == key]

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path


class CatOptionsTest(Base):
    def cat(self, mode, case, *args, **kw):
        return self.ctl("cat", *self.mode_args(mode), *args, self.fo.url("/f.bin", case=case),
                        text=False, **kw)

    def test_headers_and_credentials_reach_the_origin(self):
        hdr = self.write("hdr.txt", "X-Token: tok-sekrit\nX-Other: two words\n")
        netrc = self.write("netrc", "machine 127.0.0.1 login nl password np\n")
        for mode in MODES:
            for how in ("cat", "download -o -"):
                with self.subTest(mode=mode, how=how):
                    verb = ["cat"] if how == "cat" else ["download", "-o", "-"]
                    case = self.case("hdr", mode)
                    p = self.ctl(*verb, *self.mode_args(mode), "--header", "@" + hdr,
                                 "--header", "X-Inline: 1",
                                 self.fo.url("/f.bin", case=case), text=False)
                    self.assert_rc(p, 0)
                    self.assertEqual(p.stdout, self.data)
                    reqs = self.requests(case)
                    self.assertTrue(reqs)
                    for e in reqs:
                        # (the origin logs header names lower-cased)
                        self.assertEqual(e["headers"].get("x-token"), "tok-sekrit", e)
                        self.assertEqual(e["headers"].get("x-other"), "two words", e)
                        self.assertEqual(e["headers"].get("x-inline"), "1", e)
            with self.subTest(mode=mode, auth="user"):
                case = self.case("user", mode)
                p = self.cat(mode, case, "--user", "u1:p1")
                self.assert_rc(p, 0)
                self.assertEqual(p.stdout, self.data)
                want = "Basic " + base64.b64encode(b"u1:p1").decode()
                self.assertEqual({e["headers"].get("authorization")
                                  for e in self.requests(case)}, {want})
            with self.subTest(mode=mode, auth="netrc"):
                case = self.case("netrc", mode)
                p = self.cat(mode, case, "--netrc-file", netrc)
                self.assert_rc(p, 0)
                want = "Basic " + base64.b64encode(b"nl:np").decode()
                self.assertEqual({e["headers"].get("authorization")
                                  for e in self.requests(case)}, {want})

    def test_retries(self):
        # A 503 every time: --retries 0 makes exactly one request (the
        # default retries several times).
        for mode in MODES:
            with self.subTest(mode=mode):
                case = self.case("retries", mode)
                p = self.ctl("cat", *self.mode_args(mode), "--retries", "0",
                             self.fo.url("/f.bin", status=503, case=case), text=False)
                self.assert_rc(p, 4)
                self.assertEqual(p.stdout, b"")
                key = "/f.bin?status=503&case=" + case
                got = [e for e in self.fo.log() if e["event"] == "request" and e["key"] == key]
                self.assertEqual(len(got), 1, got)

    def test_limit_rate(self):
        # 300000 bytes at 64K a second take more than 3 s (a lower bound
        # only: a loaded machine is slower, never faster); nginx on loopback
        # serves them in milliseconds.
        for mode in MODES:
            with self.subTest(mode=mode):
                t0 = time.monotonic()
                p = self.ctl("cat", *self.mode_args(mode), "--limit-rate", "64K",
                             self.web.url("f.bin", case=self.case("rate", mode)), text=False)
                secs = time.monotonic() - t0
                self.assert_rc(p, 0)
                self.assertEqual(p.stdout, self.data)
                self.assertGreaterEqual(secs, 3.0)

    def test_sha256(self):
        good = sha(self.data)
        bad = "0" * 64
        for mode in MODES:
            for how in ("cat", "download -o -"):
                verb = ["cat"] if how == "cat" else ["download", "-o", "-"]
                with self.subTest(mode=mode, how=how, digest="good"):
                    p = self.ctl(*verb, *self.mode_args(mode), "--sha256", good.upper(),
                                 self.fo.url("/f.bin", case=self.case("sha", mode)), text=False)
                    self.assert_rc(p, 0)
                    self.assertEqual(p.stdout, self.data)
                    self.assertIn(b"retrieverctl: sha256 matched (%s)" % good.encode(),
                                  p.stderr)
                with self.subTest(mode=mode, how=how, digest="good, -q"):
                    p = self.ctl(*verb, *self.mode_args(mode), "-q", "--sha256", good,
                                 self.fo.url("/f.bin", case=self.case("shaq", mode)), text=False)
                    self.assert_rc(p, 0)
                    self.assertEqual((p.stdout, p.stderr), (self.data, b""))
                with self.subTest(mode=mode, how=how, digest="bad"):
                    p = self.ctl(*verb, *self.mode_args(mode), "--sha256", bad,
                                 self.fo.url("/f.bin", case=self.case("shab", mode)), text=False)
                    self.assert_rc(p, 6)
                    err = p.stderr.decode()
                    self.assertIn("sha256 of the download does not match", err)
                    # The bytes went out as they arrived: with --local all
                    # of them (the engine's file is read as it is written);
                    # retrieverd ends the Read when the job fails, so a
                    # small object may have sent nothing before.
                    if mode == "local":
                        self.assertEqual(p.stdout, self.data)
                    self.assertEqual(p.stdout, self.data[:len(p.stdout)])
                    if p.stdout:
                        self.assertIn("sha256 did NOT match; the bytes were already written to "
                                      "standard output (%d): do not use them" % len(p.stdout),
                                      err)
                    else:
                        self.assertNotIn("already written", err)

    def test_cacert(self):
        tls = NginxOrigin(self.root, tls=True).start()
        self.addCleanup(tls.stop)
        for mode in MODES:
            with self.subTest(mode=mode):
                url = tls.url("f.bin", case=self.case("tls", mode))
                p = self.ctl("cat", *self.mode_args(mode), url, text=False)
                self.assert_rc(p, 5)  # the test's own CA is not trusted
                p = self.ctl("cat", *self.mode_args(mode), "--cacert", tls.ca_file, url,
                             text=False)
                self.assert_rc(p, 0)
                self.assertEqual(p.stdout, self.data)

    def test_refused_options(self):
        url = self.fo.url("/f.bin", case="refused")
        for args, spelled in ((["-o", "x"], "-o"), (["--json"], "--json"),
                              (["--detach"], "--detach"), (["-d", "."], "-d"),
                              (["--force"], "--force"), (["--no-progress"], "--no-progress")):
            with self.subTest(args=args):
                p = self.ctl("cat", *args, url)
                self.assert_rc(p, 2)
                self.assertIn("'cat' does not take '%s'" % spelled, p.stderr.splitlines()[0])
                self.assertEqual(p.stdout, "")
        p = self.ctl("download", "-o", "-", "--json", url)
        self.assert_rc(p, 2)
        self.assertIn("'download -o -' does not take '--json'", p.stderr)
        # And a mode rule of download's holds for cat.
        p = self.ctl("cat", "--chunk-size", "1M", url)
        self.assert_rc(p, 2)
        self.assertIn("'--chunk-size' applies only with --local", p.stderr)
        self.assertEqual(self.requests("refused"), [])


def durable_bytes(state_dir):
    """Bytes of durable ranges in the state database under state_dir (read
    only, beside its owner); 0 when there is none yet."""
    db = os.path.join(state_dir, "retriever.db")
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute("SELECT coalesce(sum(durable - start), 0) FROM ranges").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        con.close()


class JsonTest(Base):
    def setUp(self):
        super().setUp()
        with open(SCHEMA) as f:
            self.schema = json.load(f)

    def lines(self, p):
        out = [json.loads(ln) for ln in p.stdout.splitlines()]
        for obj in out:
            check_schema(self, obj, self.schema)
        return out

    def state_of(self, mode):
        if mode == "local":
            return os.path.join(self.work, "state")
        return os.path.join(self.d.state_tmp, "state")

    def wait_durable(self, state, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = durable_bytes(state)
            if n > 0:
                return n
            time.sleep(0.1)
        self.fail("nothing became durable in %d s" % timeout)

    def wait_no_job(self):
        """Until retrieverd runs no job (the interrupted one has ended)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = self.ctl("list", "--socket", self.sock, "--json")
            if p.returncode == 0 and not p.stdout.strip():
                return
            time.sleep(0.1)
        self.fail("retrieverd still runs a job")

    def test_cached_and_resumed_bytes(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                # A URL of its own: nothing cached from another run.
                url = self.web.url("big.bin", case=self.case("json", mode))
                dest = os.path.join(self.work, "big-%s.bin" % mode)
                args = ["download", *self.mode_args(mode, state=True), "--json", "-c", "1",
                        "--force", "-o", dest]
                # 1. Slowly, interrupted once something is durable.
                first = subprocess.Popen([CTL, *args, "--limit-rate", "1M", url],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=clean_env(),
                                         cwd=self.work)
                self.addCleanup(lambda: first.poll() is None and first.kill())
                self.wait_durable(self.state_of(mode))
                first.send_signal(signal.SIGINT)
                out, err = first.communicate(timeout=RUN_TIMEOUT)
                self.assertEqual(first.returncode, 130, err)
                [line] = [json.loads(ln) for ln in out.splitlines()]
                check_schema(self, line, self.schema)
                self.assertEqual((line["state"], line["cached_bytes"], line["resumed_bytes"]),
                                 ("cancelled", 0, 0))
                if mode == "daemon":
                    self.wait_no_job()
                kept = durable_bytes(self.state_of(mode))
                self.assertGreater(kept, 0)
                # 2. Again, at full speed: it resumes from what was kept.
                p = self.ctl(*args, url)
                self.assert_rc(p, 0)
                [line] = self.lines(p)
                self.assertEqual(sha256_file(dest), self.sha_big)
                self.assertEqual((line["state"], line["bytes"], line["cached_bytes"]),
                                 ("done", BIG, 0))
                self.assertGreaterEqual(line["resumed_bytes"], kept)
                self.assertLess(line["resumed_bytes"], BIG)
                # 3. Once more: a cache hit.
                p = self.ctl(*args, url)
                self.assert_rc(p, 0)
                [line] = self.lines(p)
                self.assertEqual((line["state"], line["bytes"], line["cached_bytes"],
                                  line["resumed_bytes"]), ("done", BIG, BIG, 0))
                # A fresh download: neither.
                p = self.ctl("download", *self.mode_args(mode), "--json", "--force", "-o",
                             os.path.join(self.work, "fresh"),
                             self.fo.url("/f.bin", case=self.case("fresh", mode)))
                self.assert_rc(p, 0)
                [line] = self.lines(p)
                self.assertEqual((line["bytes"], line["cached_bytes"], line["resumed_bytes"]),
                                 (SMALL, 0, 0))


class RateTest(Base):
    DONE = re.compile(r"^done: '[^']*' \S+ \S+ in \S+")

    def hit(self, mode, url, dest, *extra):
        """Download url twice into dest; the second run's output."""
        args = ["download", *self.mode_args(mode, state=True), "--force", "-o", dest, *extra,
                url]
        self.assert_rc(self.ctl(*args), 0)
        return args

    def test_cache_hit_has_no_rate(self):
        for mode in MODES:
            with self.subTest(mode=mode, terminal=False):
                url = self.web.url("f.bin", case=self.case("hit", mode))
                args = self.hit(mode, url, os.path.join(self.work, "hit"))
                p = self.ctl(*args)
                self.assert_rc(p, 0)
                [line] = [ln for ln in p.stderr.splitlines() if self.DONE.match(ln)]
                self.assertTrue(line.endswith(", cached"), line)
                self.assert_rate_shown_if_timed(line)
            with self.subTest(mode=mode, terminal=True):
                url = self.web.url("f.bin", case=self.case("hitpty", mode))
                args = self.hit(mode, url, os.path.join(self.work, "hitpty"))
                out = self.in_pty(args)
                m = re.search(r"done: '[^']*hitpty' 293\.0 KiB in [^\r\n]*, cached", out)
                self.assertTrue(m, out)
                self.assert_rate_shown_if_timed(m.group(0))

    def test_several_hits_total_has_no_rate(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                urls = [self.web.url("f.bin", case=self.case("tot%d" % k, mode))
                        for k in range(2)]
                d = os.path.join(self.work, "tot-" + mode)
                os.mkdir(d)
                # Two URLs with the same file name: each its own (out=).
                lst = self.write("list-" + mode,
                                 "".join("%s\n  out=t%d\n" % (u, k) for k, u in enumerate(urls)))
                args = ["download", *self.mode_args(mode, state=True), "--force", "-d", d,
                        "-i", lst]
                self.assert_rc(self.ctl(*args), 0)
                p = self.ctl(*args)
                self.assert_rc(p, 0)
                [total] = [ln for ln in p.stderr.splitlines() if ln.startswith("total: ")]
                self.assertRegex(total, r"^total: 2 done, 0 failed, 0 cancelled; \S+ \S+ in ")
                self.assert_rate_shown_if_timed(total)

    def test_slow_download_keeps_its_rate(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                p = self.ctl("download", *self.mode_args(mode), "--force", "-o",
                             os.path.join(self.work, "slow"), "--limit-rate", "256K",
                             self.web.url("f.bin", case=self.case("slow", mode)))
                self.assert_rc(p, 0)
                [line] = [ln for ln in p.stderr.splitlines() if self.DONE.match(ln)]
                self.assertRegex(line, r" in [0-9.]+s \([0-9.]+ KiB/s\)$")

    def assert_rate_shown_if_timed(self, line):
        """A done or total line shows a rate exactly when its time is not
        shown as 0.0s. A cache hit ends within milliseconds, so it is 0.0s
        but on a very loaded machine; a rate is never "0 B/s"."""
        m = re.search(r" in ([0-9.]+s|\S+)( \(([0-9.]+ [KMGTPE]?i?B)/s\))?", line)
        self.assertTrue(m, line)
        self.assertNotIn("(0 B/s)", line)
        if m.group(1) == "0.0s":
            self.assertIsNone(m.group(2), line)
        else:
            self.assertIsNotNone(m.group(2), line)

    def in_pty(self, args):
        """Run retrieverctl args in a pseudo-terminal (80 columns); all it
        wrote there."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: nothing but exec
            try:
                os.chdir(self.work)
                env = clean_env(TERM="xterm", COLUMNS="80", LINES="24")
                os.execve(CTL, [CTL, *args], env)
            finally:
                os._exit(127)
        out = b""
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 1)
                if not r:
                    continue
                try:
                    b = os.read(fd, 65536)
                except OSError:  # EIO: the child has gone
                    break
                if not b:
                    break
                out += b
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, out)
        return out.decode(errors="replace")


class ConnectProxyTest(Base):
    """A CONNECT proxy is started for each check that expects it to be used:
    retrieverd keeps connections (and tunnels) open between downloads, so
    a proxy that served an earlier download may see no new CONNECT even
    when it is used again. env_proxy is named only in the environment of
    d_env, a second retrieverd, and by no caller: any CONNECT it sees is the
    daemon using its own environment."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tls = NginxOrigin(cls.root, tls=True).start()
        cls.addClassCleanup(cls.tls.stop)
        cls.ptmp = tempfile.mkdtemp(prefix="rv-ctl-more-proxy-")
        cls.addClassCleanup(shutil.rmtree, cls.ptmp, True)
        cls.env_proxy = ConnectProxy(os.path.join(cls.ptmp)).start()
        cls.addClassCleanup(cls.env_proxy.stop)
        cls.sock_env = os.path.join(cls.tmp, "run-env", "retrieverd.sock")
        cls.d_env = daemons.Daemon(["--socket", cls.sock_env],
                                   env=clean_env(https_proxy=cls.env_proxy.url,
                                                 HTTPS_PROXY=cls.env_proxy.url,
                                                 all_proxy=cls.env_proxy.url))
        cls.addClassCleanup(cls.d_env.kill)
        cls.d_env.start()

    @classmethod
    def tearDownClass(cls):
        status = cls.d_env.stop()[0]
        log = cls.d_env.log()
        assert status == 0, log
        assert "Sanitizer" not in log, log
        cls.env_proxy.stop()
        assert cls.env_proxy.exit_status == 0, cls.env_proxy.exit_status
        super().tearDownClass()

    def proxy(self):
        """A CONNECT proxy of this check's own, stopped by PID at its end."""
        d = tempfile.mkdtemp(prefix="p", dir=self.work)
        px = ConnectProxy(d).start()
        self.addCleanup(px.stop)
        return px

    def target(self):
        return "127.0.0.1:%d" % self.tls.port

    def fetch(self, mode, how, *args, env=None, sock=None):
        """download (to a file, read back) or cat through mode; (process,
        bytes)."""
        url = self.tls.url("f.bin", case=self.case("px", mode))
        ma = ["--socket", sock] if sock else self.mode_args(mode)
        if how == "cat":
            p = self.ctl("cat", *ma, "--cacert", self.tls.ca_file, *args, url, env=env,
                         text=False)
            return p, p.stdout
        dest = os.path.join(self.work, "px%d" % self.n)
        p = self.ctl("download", *ma, "--no-progress", "--cacert", self.tls.ca_file, *args,
                     "-o", dest, url, env=env, text=False)
        data = b""
        if os.path.exists(dest):
            with open(dest, "rb") as f:
                data = f.read()
        return p, data

    def assert_tunnelled(self, px):
        got = px.connects()
        self.assertTrue(got, "the proxy saw no CONNECT")
        self.assertEqual({(e["method"], e["target"]) for e in got},
                         {("CONNECT", self.target())})

    def test_proxy_option_and_variable(self):
        for mode in MODES:
            for how in ("download", "cat"):
                with self.subTest(mode=mode, how=how, via="--proxy"):
                    px = self.proxy()
                    p, data = self.fetch(mode, how, "--proxy", px.url)
                    self.assert_rc(p, 0)
                    self.assertEqual(data, self.data)
                    self.assert_tunnelled(px)
                with self.subTest(mode=mode, how=how, via="https_proxy"):
                    px = self.proxy()
                    p, data = self.fetch(mode, how, env=clean_env(https_proxy=px.url))
                    self.assert_rc(p, 0)
                    self.assertEqual(data, self.data)
                    self.assert_tunnelled(px)
                with self.subTest(mode=mode, how=how, via="no_proxy"):
                    px = self.proxy()
                    p, data = self.fetch(mode, how, env=clean_env(https_proxy=px.url,
                                                                  no_proxy="127.0.0.1"))
                    self.assert_rc(p, 0)
                    self.assertEqual(data, self.data)
                    self.assertEqual(px.connects(), [])

    def test_proxy_that_refuses(self):
        # The proxy tunnels to loopback only: its refusal is the download's
        # failure, never a silent direct connection.
        for mode in MODES:
            with self.subTest(mode=mode):
                px = self.proxy()
                p = self.ctl("download", *self.mode_args(mode), "--no-progress", "--retries",
                             "0", "--proxy", px.url, "-o",
                             os.path.join(self.work, "refused-" + mode),
                             "https://192.0.2.1:9/f.bin")
                self.assertNotEqual(p.returncode, 0, p.stderr)
                self.assertEqual([(e["method"], e["target"]) for e in px.connects()],
                                 [("CONNECT", "192.0.2.1:9")])

    def test_daemon_never_uses_its_own_environment(self):
        for how in ("download", "cat"):
            with self.subTest(how=how):
                p, data = self.fetch("daemon", how, sock=self.sock_env)
                self.assert_rc(p, 0)
                self.assertEqual(data, self.data)
                # ...but uses the one its caller sends.
                px = self.proxy()
                p, data = self.fetch("daemon", how, env=clean_env(https_proxy=px.url),
                                     sock=self.sock_env)
                self.assert_rc(p, 0)
                self.assertEqual(data, self.data)
                self.assert_tunnelled(px)
        self.assertEqual(self.env_proxy.connects(), [])


if __name__ == "__main__":
    unittest.main()
