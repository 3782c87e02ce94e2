#!/usr/bin/python3
"""retrieverctl download: what happens to an existing destination
(--force, --no-clobber, and the default refusal, exit 10), in both modes,
against the fault origin (its request log shows that nothing was fetched)
and the real retrieverd; and retrieverd's own check (DownloadRequest
.no_replace) through the API.

Environment (set by ctest): RV_CTL, RV_DAEMON, RV_PROTOC, RV_PROTO_DIR,
PYTHONPATH reaching tests/fixtures.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402

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
                self.assertIn("retrieverctl: skipped %s: '%s' exists (--no-clobber)\n"
                              % (self.url("a.bin", mode), a), p.stderr)
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
                os.unlink(a)
                os.unlink(b)

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


if __name__ == "__main__":
    unittest.main()
