#!/usr/bin/python3
"""Secrets without argv (issue 20, item 5): `--header @FILE`, `--header @-`,
$RETRIEVER_HEADERS and `--netrc` / `--netrc-file`, with the real
retrieverctl against the fault origin (whose request log shows the x-* and
Authorization headers that arrived), with --local and through a real
retrieverd.

  - each source's header reaches the origin (both modes);
  - the secret is not in /proc/PID/cmdline of the running retrieverctl
    (a rate-limited download, read while it runs);
  - bad input (missing or unreadable file, malformed line, netrc syntax
    error, @- twice) exits 2 with a message naming the file and line but
    never the secret, and nothing is downloaded (the origin saw nothing).

Environment (ctest): RV_CTL, RV_DAEMON, PYTHONPATH reaching tests/fixtures.
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
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402

CTL = os.environ["RV_CTL"]
RUN_TIMEOUT = 120
MiB = 1 << 20


def basic(login, password):
    return "Basic " + base64.b64encode(("%s:%s" % (login, password)).encode()).decode()


class SecretsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-secrets-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = sha256_file(make_file(os.path.join(cls.root, "f.bin"), 100000, 7))
        make_file(os.path.join(cls.root, "slow.bin"), 4 * MiB, 8)
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-secrets-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.out)
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.d = None

    # -- helpers ---------------------------------------------------------------

    def daemon(self):
        if not self.d:
            conf = os.path.join(self.tmp, "retrieverd.conf")
            with open(conf, "w") as f:
                f.write("# defaults\n")
            self.d = daemons.Daemon(["--socket", self.sock, "--config", conf])
            self.addCleanup(self.d.kill)
            self.d.start()
        return self.d

    def mode_args(self, mode):
        if mode == "local":
            return ["--local", "--state-dir", os.path.join(self.tmp, "state"),
                    "--cache-dir", os.path.join(self.tmp, "cache")]
        self.daemon()
        return ["--socket", self.sock]

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k != "RETRIEVER_HEADERS"}
        env["HOME"] = self.home
        env.update(extra)
        return env

    def ctl(self, args, env=None, stdin_text=None):
        return subprocess.run([CTL, "download"] + args, env=env or self.env(), cwd=self.out,
                              input=stdin_text if stdin_text is not None else "",
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def requests(self, case):
        key = "/f.bin?case=" + case
        return [e for e in self.fo.log() if e["event"] == "request" and e["key"] == key]

    def url(self, case):
        return self.fo.url("/f.bin", case=case)

    def assert_rc(self, p, rc):
        self.assertEqual(p.returncode, rc, "stdout: %s\nstderr: %s" % (p.stdout, p.stderr))

    def assert_arrived(self, case, name, value):
        reqs = self.requests(case)
        self.assertTrue(reqs, "the origin saw no request")
        for e in reqs:
            self.assertEqual(e["headers"].get(name), value, e)

    def download_ok(self, mode, case, args, **kw):
        # --force: a test may fetch several cases into the same f.bin.
        p = self.ctl(self.mode_args(mode) + args + ["--force", "-o", "f.bin", self.url(case)],
                     **kw)
        self.assert_rc(p, 0)
        self.assertEqual(sha256_file(os.path.join(self.out, "f.bin")), self.sha)
        return p

    def tearDown(self):
        if self.d:
            rc, _ = self.d.stop()
            self.assertEqual(rc, 0, self.d.log())
            self.assertNotIn("Sanitizer", self.d.log())
            self.assertNotIn("sekrit", self.d.log())

    # -- the sources reach the origin -------------------------------------------

    def check_header_file(self, mode):
        case = "file-" + mode + self.id()
        # curl's format: one header per line, CRLF or LF, empty lines skipped.
        path = self.write("h.txt", "X-Token: tok-sekrit-1\r\n\r\n"
                          "Authorization: Bearer bearer-sekrit-2\n\nX-Other: two words\n")
        self.download_ok(mode, case, ["--header", "@" + path])
        self.assert_arrived(case, "x-token", "tok-sekrit-1")
        self.assert_arrived(case, "authorization", "Bearer bearer-sekrit-2")
        self.assert_arrived(case, "x-other", "two words")

    def test_header_file_local(self):
        self.check_header_file("local")

    def test_header_file_daemon(self):
        self.check_header_file("daemon")

    def check_stdin(self, mode):
        case = "stdin-" + mode + self.id()
        self.download_ok(mode, case, ["--header", "@-", "--header", "X-Plain: p"],
                         stdin_text="X-Token: stdin-sekrit\n")
        self.assert_arrived(case, "x-token", "stdin-sekrit")
        self.assert_arrived(case, "x-plain", "p")

    def test_stdin_local(self):
        self.check_stdin("local")

    def test_stdin_daemon(self):
        self.check_stdin("daemon")

    def check_env(self, mode):
        case = "env-" + mode + self.id()
        self.download_ok(mode, case, [], env=self.env(
            RETRIEVER_HEADERS="X-Token: env-sekrit\nX-Second: 2"))
        self.assert_arrived(case, "x-token", "env-sekrit")
        self.assert_arrived(case, "x-second", "2")

    def test_env_local(self):
        self.check_env("local")

    def test_env_daemon(self):
        self.check_env("daemon")

    def check_netrc(self, mode):
        case = "netrc-" + mode + self.id()
        # The machine matching the URL's host wins over default (even
        # after it); quoted words with escapes, macdef bodies skipped.
        netrc = self.write("netrc", (
            "default login anon password anon-pw\n"
            "machine other.example login x password y\n"
            "macdef init\nthis is not parsed machine 127.0.0.1 login z\n\n"
            'machine 127.0.0.1\n  login "al ice"\n  password "pw-\\"sekrit\\""\n'
            "  account ignored\n"))
        self.download_ok(mode, case, ["--netrc-file", netrc])
        self.assert_arrived(case, "authorization", basic("al ice", 'pw-"sekrit"'))

    def test_netrc_file_local(self):
        self.check_netrc("local")

    def test_netrc_file_daemon(self):
        self.check_netrc("daemon")

    def test_netrc_in_home_default_entry_and_precedence(self):
        case = "home" + self.id()
        path = os.path.join(self.home, ".netrc")
        with open(path, "w") as f:
            f.write("machine other.example login x password y\n"
                    "default login dflt password dflt-sekrit\n")
        os.chmod(path, 0o644)
        p = self.download_ok("local", case, ["--netrc"])
        self.assert_arrived(case, "authorization", basic("dflt", "dflt-sekrit"))
        # Readable by others: said, not refused.
        self.assertIn("can be read or written by other users (mode 0644)", p.stderr)
        self.assertNotIn("sekrit", p.stderr)
        # An explicit Authorization header wins over the netrc.
        case2 = "explicit" + self.id()
        hdr = self.write("auth.txt", "Authorization: Bearer explicit-sekrit\n")
        os.chmod(path, 0o600)
        p = self.download_ok("local", case2, ["--netrc", "--header", "@" + hdr])
        self.assertNotIn("warning", p.stderr)
        self.assert_arrived(case2, "authorization", "Bearer explicit-sekrit")

    # -- not in argv ---------------------------------------------------------------

    def check_cmdline(self, mode):
        """A download slow enough to be watched: the running retrieverctl's
        /proc/PID/cmdline holds no secret, though its requests carry them."""
        case = "cmdline-" + mode + self.id()
        hdr = self.write("h.txt", "X-Token: argv-sekrit-1\n")
        netrc = self.write("netrc", "machine 127.0.0.1 login u password argv-sekrit-2\n")
        url = self.fo.url("/slow.bin", case=case, rate=MiB)
        key = "/slow.bin?case=%s&rate=%d" % (case, MiB)
        args = [CTL, "download"] + self.mode_args(mode) + [
            "--header", "@" + hdr, "--header", "@-", "--netrc-file", netrc,
            "-c", "1", "-o", "slow.bin", url]
        p = subprocess.Popen(args, env=self.env(RETRIEVER_HEADERS="X-Env: argv-sekrit-4"),
                             cwd=self.out, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.kill)
        p.stdin.write("X-Stdin: argv-sekrit-3\n")
        p.stdin.close()
        p.stdin = None  # communicate() below must not flush it
        # While the body flows (the origin saw the request, and no response
        # has ended yet), look at the process's command line.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ev = [e for e in self.fo.log() if e.get("key") == key]
            if any(e["event"] == "request" for e in ev):
                break
            time.sleep(0.05)
        else:
            self.fail("the origin saw no request")
        with open("/proc/%d/cmdline" % p.pid, "rb") as f:
            cmdline = f.read()
        self.assertIsNone(p.poll(), "the download ended before the check")
        self.assertIn(b"--netrc-file", cmdline)  # it is the right process
        self.assertNotIn(b"sekrit", cmdline)
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        got = [e["headers"] for e in self.fo.log()
               if e["event"] == "request" and e.get("key") == key]
        for h in got:
            self.assertEqual(h.get("x-token"), "argv-sekrit-1")
            self.assertEqual(h.get("authorization"), basic("u", "argv-sekrit-2"))
            self.assertEqual(h.get("x-stdin"), "argv-sekrit-3")
            self.assertEqual(h.get("x-env"), "argv-sekrit-4")

    def test_cmdline_local(self):
        self.check_cmdline("local")

    def test_cmdline_daemon(self):
        self.check_cmdline("daemon")

    # -- bad input -----------------------------------------------------------------

    def check_refused(self, args, want, env=None, stdin_text=None, mode="local"):
        case = "bad%d" % time.monotonic_ns()
        p = self.ctl(self.mode_args(mode) + args + ["-o", "f.bin", self.url(case)], env=env,
                     stdin_text=stdin_text)
        self.assert_rc(p, 2)
        self.assertIn(want, p.stderr)
        self.assertIn("Try 'retrieverctl download --help'", p.stderr)
        self.assertNotIn("sekrit", p.stderr)
        self.assertEqual(os.listdir(self.out), [])
        self.assertEqual(self.requests(case), [], "something was downloaded")

    def test_bad_inputs(self):
        missing = os.path.join(self.tmp, "nope.txt")
        self.check_refused(["--header", "@" + missing],
                           "cannot open the header file '%s': No such file or directory"
                           % missing)
        self.check_refused(["--header", "@" + self.tmp],
                           "cannot read the header file '%s': it is a directory" % self.tmp)
        bad = self.write("bad.txt", "X-Ok: 1\nno colon sekrit\n")
        self.check_refused(["--header", "@" + bad],
                           "header file '%s', line 2: not a header line" % bad)
        comment = self.write("comment.txt", "# a comment sekrit\nX-Ok: 1\n")
        self.check_refused(["--header", "@" + comment],
                           "header file '%s', line 1: not a header line" % comment)
        reserved = self.write("reserved.txt", "Range: bytes=0-1\n")
        self.check_refused(["--header", "@" + reserved], "line 1: not a header line")
        self.check_refused(["--header", "@-", "--header", "@-"],
                           "standard input can be read only once", stdin_text="X-A: 1\n")
        self.check_refused(["--header", "@"], "needs '@FILE'")
        self.check_refused([], "$RETRIEVER_HEADERS, line 1: not a header line",
                           env=self.env(RETRIEVER_HEADERS="sekrit"))
        for text, want in (
                ('machine h login "sekrit\n', "line 1: a quoted word has no closing"),
                ("machine h\nlogin u\nbogus sekrit\n", "line 3: a word where a keyword"),
                ("login u password sekrit\n", "line 1: 'login' before any 'machine'"),
                ("machine h login u password", "line 1: 'password' needs a value")):
            netrc = self.write("netrc", text)
            self.check_refused(["--netrc-file", netrc], "netrc '%s', %s" % (netrc, want))
        self.check_refused(["--netrc"], "cannot open the netrc '%s/.netrc'" % self.home)
        unreadable = self.write("locked.txt", "X-A: 1\n", mode=0o000)
        if os.geteuid() != 0:  # root reads it all the same
            self.check_refused(["--header", "@" + unreadable], "Permission denied")
        # Through the daemon: refused before it is asked.
        self.check_refused(["--header", "@" + missing], "cannot open the header file",
                           mode="daemon")


if __name__ == "__main__":
    unittest.main()
