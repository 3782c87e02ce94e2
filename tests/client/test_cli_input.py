#!/usr/bin/python3
"""retrieverctl download: what happens to an existing destination
(--force, --no-clobber, and the default refusal, exit 10), in both modes,
against the fault origin (its request log shows that nothing was fetched)
and the real retrieverd; and retrieverd's own check (DownloadRequest
.no_replace) through the API. And -i FILE (aria2's input-file format):
1,000 URLs from nginx with out=, dir=, checksum= lines, every file's
sha256 checked; -i - (stdin); header= reaching the origin; a checksum=
mismatch; bad lines named FILE:LINE.

Environment (set by ctest): RV_CTL, RV_DAEMON, RV_PROTOC, RV_PROTO_DIR,
PYTHONPATH reaching tests/fixtures.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402

import grpc  # noqa: E402

CTL = os.environ["RV_CTL"]
RUN_TIMEOUT = 120  # a bound on any one retrieverctl run
OLD = b"the file that was there before\n"
EXISTS_EXIT = 10

_PB = None


def retriever_pb2():
    """The Python messages of proto/, generated once (protoc --python_out)."""
    global _PB
    if _PB is None:
        out = tempfile.mkdtemp(prefix="rv-ctl-input-pb2-")
        subprocess.run([os.environ["RV_PROTOC"], "--python_out", out, "-I",
                        os.environ["RV_PROTO_DIR"], "retriever/v1/retriever.proto"], check=True)
        sys.path.insert(0, out)
        from retriever.v1 import retriever_pb2 as pb
        _PB = pb
    return _PB


def ctl(*args, stdin=None, cwd=None):
    return subprocess.run([CTL, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          cwd=cwd)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ctl-input-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = {}
        for i, name in enumerate(("a.bin", "b.bin")):
            cls.sha[name] = sha256_file(make_file(os.path.join(cls.root, name), 50000 + i, i))
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)
        cls.tmp = tempfile.mkdtemp(prefix="rv-ctl-input-")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sock = os.path.join(cls.tmp, "run", "retrieverd.sock")
        conf = os.path.join(cls.tmp, "retrieverd.conf")
        with open(conf, "w") as f:
            f.write("# defaults\n")
        cls.d = daemons.Daemon(["--socket", cls.sock, "--config", conf,
                                "--state-dir", os.path.join(cls.tmp, "dstate"),
                                "--cache-dir", os.path.join(cls.tmp, "dcache")])
        cls.addClassCleanup(cls.d.kill)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        status = cls.d.stop()[0]
        log = cls.d.log()
        assert status == 0, log
        assert "Sanitizer" not in log, log

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-ctl-input-out-")
        self.addCleanup(shutil.rmtree, self.out, True)
        self.case = self.id().rsplit(".", 1)[-1]

    def mode_args(self, mode):
        if mode == "local":
            return ["--local", "--state-dir", os.path.join(self.tmp, "lstate"),
                    "--cache-dir", os.path.join(self.tmp, "lcache")]
        return ["--socket", self.sock, "--no-autostart"]

    def url(self, name, mode):
        return self.fo.url("/" + name, case="%s-%s" % (self.case, mode))

    def fetched(self, name, mode):
        key = "/%s?case=%s-%s" % (name, self.case, mode)
        return [e for e in self.fo.log() if e["event"] == "request" and e["key"] == key]

    def assert_rc(self, p, rc):
        self.assertEqual(p.returncode, rc, "stdout: %s\nstderr: %s" % (p.stdout, p.stderr))

    def old_file(self, name):
        path = os.path.join(self.out, name)
        with open(path, "wb") as f:
            f.write(OLD)
        return path

    def assert_old(self, path):
        with open(path, "rb") as f:
            self.assertEqual(f.read(), OLD)


class ClobberTest(Base):
    MODES = ("local", "daemon")

    def test_default_refuses_before_fetching(self):
        for mode in self.MODES:
            with self.subTest(mode=mode):
                a = self.old_file("a.bin")
                b = os.path.join(self.out, "b.bin")
                p = ctl("download", *self.mode_args(mode), "-d", self.out,
                        self.url("b.bin", mode), self.url("a.bin", mode))
                self.assert_rc(p, EXISTS_EXIT)
                self.assertIn(": destination exists ('%s': --force replaces it, "
                              "--no-clobber skips it)\n" % a, p.stderr)
                self.assert_old(a)
                # Nothing downloaded, not even the other URL: the check is
                # made with the other rejections, before any request.
                self.assertFalse(os.path.exists(b))
                self.assertEqual(self.fetched("a.bin", mode), [])
                self.assertEqual(self.fetched("b.bin", mode), [])
                os.unlink(a)

    def test_default_refuses_a_symlink(self):
        for mode in self.MODES:
            with self.subTest(mode=mode):
                dest = os.path.join(self.out, "link")
                os.symlink(os.path.join(self.out, "nowhere"), dest)
                p = ctl("download", *self.mode_args(mode), "-o", dest, self.url("a.bin", mode))
                self.assert_rc(p, EXISTS_EXIT)
                self.assertTrue(os.path.islink(dest))
                self.assertFalse(os.path.exists(os.path.join(self.out, "nowhere")))
                os.unlink(dest)

    def test_force_replaces(self):
        for mode in self.MODES:
            with self.subTest(mode=mode):
                a = self.old_file("a.bin")
                p = ctl("download", *self.mode_args(mode), "--force", "-o", a,
                        self.url("a.bin", mode))
                self.assert_rc(p, 0)
                self.assertEqual(sha256_file(a), self.sha["a.bin"])
                os.unlink(a)

    def test_no_clobber_skips(self):
        for mode in self.MODES:
            with self.subTest(mode=mode):
                a = self.old_file("a.bin")
                b = os.path.join(self.out, "b.bin")
                p = ctl("download", *self.mode_args(mode), "--no-clobber", "-d", self.out,
                        self.url("a.bin", mode), self.url("b.bin", mode))
                self.assert_rc(p, 0)
                # The URL as every message shows it: its query values hidden.
                self.assertIn("retrieverctl: skipped '%s': '%s' exists (--no-clobber)\n"
                              % (self.fo.url("/a.bin", case="REDACTED"), a), p.stderr)
                self.assertNotIn(self.case, p.stderr)
                self.assert_old(a)
                self.assertEqual(self.fetched("a.bin", mode), [])
                self.assertEqual(sha256_file(b), self.sha["b.bin"])
                # Everything there already: nothing to do, success, quietly
                # with -q.
                p = ctl("download", *self.mode_args(mode), "--no-clobber", "-q", "-d",
                        self.out, self.url("a.bin", mode), self.url("b.bin", mode))
                self.assert_rc(p, 0)
                self.assertEqual(p.stderr, "")
                self.assert_old(a)
                # --json: a "skipped" line each, with the fields of any line.
                p = ctl("download", *self.mode_args(mode), "--no-clobber", "--json", "-d",
                        self.out, self.url("a.bin", mode), self.url("b.bin", mode))
                self.assert_rc(p, 0)
                lines = [json.loads(line) for line in p.stdout.splitlines()]
                self.assertEqual([(o["path"], o["state"], o["bytes"], o["error"])
                                  for o in lines],
                                 [(a, "skipped", 0, None), (b, "skipped", 0, None)])
                self.assertEqual(lines[0]["url"], self.fo.url("/a.bin", case="REDACTED"))
                os.unlink(a)
                os.unlink(b)

    def test_resume_is_not_refused(self):
        """An interrupted download leaves nothing at its destination, so
        the same command (no --force) resumes it: the refusal is only
        for a finished file already there."""
        make_file(os.path.join(self.root, "big.bin"), 4 << 20, 5)
        for mode in self.MODES:
            with self.subTest(mode=mode):
                dest = os.path.join(self.out, "big.bin")
                url = self.fo.url("/big.bin", case="%s-%s" % (self.case, mode), rate=1 << 20)
                key = "/big.bin?" + url.split("?", 1)[1]
                argv = [CTL, "download", *self.mode_args(mode), "-q", "-c", "2", "-o", dest,
                        url]
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                try:
                    self.assertTrue(self.fo.wait(key, 2, event="request", timeout=30))
                    p.send_signal(signal.SIGINT)
                    _, err = p.communicate(timeout=RUN_TIMEOUT)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                self.assertEqual(p.returncode, 130, err)
                self.assertFalse(os.path.lexists(dest))
                p = ctl(*argv[1:])  # the same command
                self.assert_rc(p, 0)
                self.assertEqual(sha256_file(dest), sha256_file(os.path.join(self.root,
                                                                             "big.bin")))
                os.unlink(dest)

    def test_usage(self):
        p = ctl("download", "--force", "--no-clobber", "-o", os.path.join(self.out, "x"),
                self.url("a.bin", "local"))
        self.assert_rc(p, 2)
        self.assertIn("'--force' (replace) and '--no-clobber' (skip) cannot be used together",
                      p.stderr)
        p = ctl("download", "--force", "-o", "-", self.url("a.bin", "local"))
        self.assert_rc(p, 2)
        p = ctl("help", "exit-codes")
        self.assert_rc(p, 0)
        self.assertRegex(p.stdout, r"\n\s+10  the destination exists")

    def test_daemon_no_replace(self):
        """retrieverd's own check, as another client would meet it: with
        no_replace an existing destination is ALREADY_EXISTS and untouched;
        without the field (every client from before it) it is replaced."""
        pb = retriever_pb2()
        ch = grpc.insecure_channel("unix://" + self.sock)
        self.addCleanup(ch.close)
        download = ch.unary_stream("/retriever.v1.Retriever/Download",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=pb.JobEvent.FromString)
        a = self.old_file("a.bin")
        req = pb.DownloadRequest(sources=[pb.Source(url=self.url("a.bin", "api"),
                                                    destination=a)],
                                 no_replace=True)
        with self.assertRaises(grpc.RpcError) as cm:
            list(download(req, timeout=60))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        self.assertIn("sources[0]: destination '%s' exists" % a, cm.exception.details())
        self.assert_old(a)
        self.assertEqual(self.fetched("a.bin", "api"), [])
        req.no_replace = False
        events = list(download(req, timeout=60))
        self.assertTrue(events)
        self.assertEqual(sha256_file(a), self.sha["a.bin"])


N_MANY = 1000  # the figure; also retrieverd's sources per request


class InputTest(Base):
    MODES = ("local", "daemon")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        many = os.path.join(cls.root, "many")
        os.mkdir(many)
        cls.many_sha = []
        for k in range(N_MANY):
            cls.many_sha.append(sha256_file(make_file(os.path.join(many, "m%04d.bin" % k),
                                                      1000 + k, 1000 + k)))
        cls.ng = NginxOrigin(cls.root).start()
        cls.addClassCleanup(cls.ng.stop)

    def write(self, text, name="urls.txt"):
        path = os.path.join(self.out, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_thousand_urls(self):
        """1,000 URLs: every third renamed (out=), every fifth into its own
        directory (dir=), every seventh with its checksum, comments and
        blank lines between; every file arrives whole, where it was put."""
        for mode in self.MODES:
            with self.subTest(mode=mode):
                dest = os.path.join(self.out, mode)
                sub = os.path.join(dest, "sub")
                os.makedirs(sub)
                lines, expect = ["# generated", ""], {}
                for k in range(N_MANY):
                    lines.append(self.ng.url("/many/m%04d.bin" % k, case=mode))
                    name = "m%04d.bin" % k
                    if k % 3 == 0:
                        name = "renamed-%d.out" % k
                        lines.append("  out=" + name)
                    where = dest
                    if k % 5 == 0:
                        where = sub
                        lines.append("\tdir=" + sub)
                    if k % 7 == 0:
                        lines.append("  checksum=sha-256=" + self.many_sha[k].upper())
                    if k % 100 == 0:
                        lines += ["", "   # a comment, indented", ""]
                    expect[os.path.join(where, name)] = self.many_sha[k]
                urls = self.write("\n".join(lines) + "\n", "urls-%s.txt" % mode)
                p = ctl("download", *self.mode_args(mode), "-q", "-i", urls, "-d", dest)
                self.assert_rc(p, 0)
                got = {}
                for d in (dest, sub):
                    for n in os.listdir(d):
                        if os.path.isfile(os.path.join(d, n)):
                            got[os.path.join(d, n)] = sha256_file(os.path.join(d, n))
                self.assertEqual(len(got), N_MANY)
                self.assertEqual(got, expect)

    def test_stdin_and_command_line(self):
        """-i -: the URLs on stdin come after the command line's."""
        for mode in self.MODES:
            with self.subTest(mode=mode):
                text = "%s\n  out=from-stdin.bin\n" % self.ng.url("/b.bin")
                p = ctl("download", *self.mode_args(mode), "--json", "-d", self.out, "-i", "-",
                        self.ng.url("/a.bin"), stdin=text)
                self.assert_rc(p, 0)
                # Lines come as URLs finish: compare as a mapping.
                lines = [json.loads(line) for line in p.stdout.splitlines()]
                self.assertEqual({o["url"]: o["path"] for o in lines},
                                 {self.ng.url("/a.bin"): os.path.join(self.out, "a.bin"),
                                  self.ng.url("/b.bin"):
                                  os.path.join(self.out, "from-stdin.bin")})
                self.assertEqual(sha256_file(os.path.join(self.out, "from-stdin.bin")),
                                 self.sha["b.bin"])
                os.unlink(os.path.join(self.out, "a.bin"))
                os.unlink(os.path.join(self.out, "from-stdin.bin"))

    def test_header_and_checksum(self):
        """header= goes with that URL only; a checksum= mismatch fails it
        (exit 6) and leaves no file."""
        for mode in self.MODES:
            with self.subTest(mode=mode):
                self.fo.reset()
                text = ("%s\n header=X-Only-A: yes\n header=X-Two: 2\n%s\n"
                        % (self.url("a.bin", mode), self.url("b.bin", mode)))
                p = ctl("download", *self.mode_args(mode), "--force", "-d", self.out, "-i",
                        self.write(text))
                self.assert_rc(p, 0)
                a = [e["headers"] for e in self.fetched("a.bin", mode)]
                b = [e["headers"] for e in self.fetched("b.bin", mode)]
                self.assertTrue(a and b)
                for h in a:
                    self.assertEqual(h.get("x-only-a"), "yes")
                    self.assertEqual(h.get("x-two"), "2")
                for h in b:
                    self.assertNotIn("x-only-a", h)
                wrong = "0" * 64
                text = "%s\n  out=bad.bin\n  checksum=sha-256=%s\n" % (
                    self.ng.url("/a.bin", case=mode + "-bad"), wrong)
                p = ctl("download", *self.mode_args(mode), "-d", self.out, "-i",
                        self.write(text))
                self.assert_rc(p, 6)
                self.assertFalse(os.path.exists(os.path.join(self.out, "bad.bin")))

    def test_bad_lines(self):
        url = self.ng.url("/a.bin")
        cases = [
            ("  out=x\n", 1, "an option line (it starts with a blank) before any URL"),
            ("# c\n%s\n  size=3\n" % url, 3,
             "unknown option 'size' (known: out, dir, checksum, header)"),
            ("%s\n  checksum=md5=abc\n" % url, 2, "checksum= needs sha-256=HEX"),
            ("%s\n  checksum=sha-256=abc\n" % url, 2, "checksum=sha-256= needs 64 hex digits, not 'abc'"),
            ("%s\n  out=a\n  out=b\n" % url, 3, "out= given twice for one URL"),
            ("%s\n  header=Range: bytes=0-1\n" % url, 2, "header= needs 'Name: value'"),
            ("\n%s\t%s\n" % (url, url), 2, "a URL line holds one URL"),
            ("%s\n  novalue\n" % url, 2, "expected NAME=VALUE"),
        ]
        for text, line, what in cases:
            with self.subTest(text=text):
                path = self.write(text)
                p = ctl("download", "--local", "-d", self.out, "-i", path)
                self.assert_rc(p, 2)
                self.assertIn("retrieverctl: %s:%d: %s" % (path, line, what), p.stderr)
                self.assertEqual(os.listdir(self.out), ["urls.txt"])
        p = ctl("download", "--local", "-d", self.out, "-i", self.write("# nothing\n\n"))
        self.assert_rc(p, 2)
        self.assertIn("no URL in it", p.stderr)
        p = ctl("download", "--local", "-i", os.path.join(self.out, "missing"))
        self.assert_rc(p, 2)
        self.assertIn("cannot read -i file", p.stderr)
        for args, what in ((["-o", "x"], "'-o/--output' names one file"),
                           (["--sha256", "0" * 64], "'--sha256' checks one file"),
                           (["--header", "@-"], "both read standard input")):
            p = ctl("download", "--local", "-i", "-", *args, stdin="")
            self.assert_rc(p, 2)
            self.assertIn(what, p.stderr)


if __name__ == "__main__":
    unittest.main()
