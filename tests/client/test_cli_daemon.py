#!/usr/bin/python3
"""retrieverctl's daemon mode end to end: the real binary against the real
retrieverd (and, for answers retrieverd does not give on demand, a gRPC
server written here with Python's grpcio, speaking the same proto).

Test classes, run by two ctest entries:
  client_daemon           PingTest, SocketTest, ModuleTest, ScriptedTest —
                          ping, the socket (found, missing, stale, not a
                          socket, not gRPC, refused), usage errors, the
                          daemon mode's module (found, missing, broken; the
                          only one linking gRPC), the DownloadRequest the
                          client sends and how it renders the events and
                          statuses it gets back (scripted server), Ctrl-C
                          cancelling the call.
  client_daemon_download  DownloadTest — downloads through the real
                          retrieverd from a real nginx / fault origin.

Environment (set by ctest): RV_CTL (retrieverctl), RV_DAEMON (retrieverd),
RV_PROTOC, RV_PROTO_DIR (proto/), RV_VERSION, PYTHONPATH reaching
tests/fixtures. By hand:

  RV_CTL=build/client/retrieverctl RV_DAEMON=build/daemon/retrieverd \\
  RV_PROTOC=protoc RV_PROTO_DIR=proto RV_VERSION=0.1.0 \\
  PYTHONPATH=tests/fixtures /usr/bin/python3 tests/client/test_cli_daemon.py -v

Every daemon and origin is started here, on sockets and ports of its own,
and stopped by PID. Python's stub code is generated at test time with
`protoc --python_out` (grpc_tools is not packaged in Debian).
"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import FaultOrigin, NginxOrigin, make_file, sha256_file  # noqa: E402

CTL = os.environ["RV_CTL"]
DAEMON = os.environ["RV_DAEMON"]
PROTOC = os.environ["RV_PROTOC"]
PROTO_DIR = os.environ["RV_PROTO_DIR"]
VERSION = os.environ["RV_VERSION"]
SERVICE = "retriever.v1.Retriever"
RUN_TIMEOUT = 120    # a bound on any one retrieverctl run
CONNECT_BOUND = 5    # retrieverctl's documented connect bound, seconds
NOBODY = 65534
JSON_KEYS = {"url", "path", "state", "bytes", "sha256", "crc32c", "seconds",
             "retries", "cached_bytes", "resumed_bytes", "error"}
ERROR_KEYS = {"code", "number", "message", "detail", "retryable"}
NO_DAEMON = ("retrieverctl: no retrieverd is listening at '%s': start it "
             "with `retrieverd`, or pass --socket\n")

pb = None        # retriever_pb2, generated in setUpModule
PB_DIR = None


def setUpModule():
    global pb, PB_DIR
    PB_DIR = tempfile.mkdtemp(prefix="rv-ctl-pb2-")
    subprocess.run([PROTOC, "--python_out", PB_DIR, "-I", PROTO_DIR,
                    "retriever/v1/retriever.proto"], check=True)
    sys.path.insert(0, PB_DIR)
    from retriever.v1 import retriever_pb2
    pb = retriever_pb2


def tearDownModule():
    shutil.rmtree(PB_DIR, ignore_errors=True)


def ctl(*args, env=None, cwd=None, timeout=RUN_TIMEOUT, preexec_fn=None):
    """Run retrieverctl to completion; the CompletedProcess (text)."""
    return subprocess.run([CTL, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          preexec_fn=preexec_fn)


def env_without(*names, **extra):
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def Daemon(tmp, args=(), env=None):
    """A retrieverd (tests/fixtures/daemons.py) with private state, cache
    and an empty config file under tmp."""
    conf = os.path.join(tmp, "retrieverd.conf")
    with open(conf, "w") as f:
        f.write("# empty: defaults and flags only\n")
    return daemons.Daemon(["--state-dir", os.path.join(tmp, "state"),
                           "--cache-dir", os.path.join(tmp, "cache"),
                           "--config", conf, *args], env=env)


class Scripted:
    """A gRPC server of retriever.v1 on a Unix socket, written here: each
    method in `handlers` (name -> function(request_bytes, context)) is
    served, every other one answers UNIMPLEMENTED (as any gRPC server does
    for a method it lacks). It records the requests it got, and sets
    `terminated` when a call ends (a handler still running then was
    cancelled by the client)."""

    def __init__(self, path, handlers):
        self.path = path
        self.requests = []
        self.terminated = threading.Event()
        methods = {}
        for name, fn in handlers.items():
            def wrap(req, context, fn=fn):
                self.requests.append(req)
                context.add_callback(self.terminated.set)
                return fn(req, context)
            kind = (grpc.unary_stream_rpc_method_handler if name in ("Download", "Watch", "Read")
                    else grpc.unary_unary_rpc_method_handler)
            # Requests stay bytes (the tests decode them); responses are messages.
            methods[name] = kind(wrap, response_serializer=lambda m: m.SerializeToString())
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        if methods:
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(SERVICE, methods),))
        self.server.add_insecure_port("unix:" + path)

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(0).wait(10)


def event(**kw):
    return pb.JobEvent(job_id="job1", time_unix_ms=1_700_000_000_000, **kw)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-ctl-daemon-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.out)

    def daemon(self, *args, env=None):
        d = Daemon(self.tmp, ["--socket", self.sock, *args], env=env)
        self.addCleanup(d.kill)
        return d.start()

    def stop_ok(self, d):
        self.assertEqual(d.stop()[0], 0, d.log())

    def assert_rc(self, proc, rc):
        self.assertEqual(proc.returncode, rc,
                         "exit %d, expected %d\nstdout: %s\nstderr: %s"
                         % (proc.returncode, rc, proc.stdout, proc.stderr))

    def json_lines(self, text):
        result = {}
        for line in text.splitlines():
            obj = json.loads(line)
            self.assertEqual(set(obj), JSON_KEYS, line)
            if obj["error"] is not None:
                self.assertEqual(set(obj["error"]), ERROR_KEYS, line)
            self.assertNotIn(obj["url"], result, "two lines for one URL")
            result[obj["url"]] = obj
        return result


# ---------------------------------------------------------------------------
# ping, and finding the daemon
# ---------------------------------------------------------------------------

class PingTest(Base):
    def test_ping(self):
        d = self.daemon()
        p = ctl("ping", "--socket", self.sock)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "retrieverd %s (API 1) at %s\n" % (VERSION, self.sock))
        self.assertEqual(p.stderr, "")
        self.stop_ok(d)

    def test_socket_before_the_command_and_from_the_environment(self):
        d = self.daemon()
        want = "retrieverd %s (API 1) at %s\n" % (VERSION, self.sock)
        p = ctl("--socket", self.sock, "ping")
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, want)
        p = ctl("ping", env=env_without("XDG_RUNTIME_DIR", RETRIEVER_SOCKET=self.sock))
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, want)
        # --socket wins over the environment.
        p = ctl("--socket", self.sock, "ping",
                env=env_without(RETRIEVER_SOCKET=os.path.join(self.tmp, "nope")))
        self.assert_rc(p, 0)
        self.stop_ok(d)

    def test_default_socket_is_the_daemons(self):
        """Neither side is told the socket: both derive it from
        XDG_RUNTIME_DIR, and they agree."""
        xdg = os.path.join(self.tmp, "xdg")
        os.makedirs(xdg, mode=0o700)
        env = env_without("RETRIEVER_SOCKET", XDG_RUNTIME_DIR=xdg)
        d = Daemon(self.tmp, env=env)
        self.addCleanup(d.kill)
        d.start()
        want = os.path.join(xdg, "retriever", "retrieverd.sock")
        self.assertEqual(d.ready_path, want)
        p = ctl("ping", env=env)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "retrieverd %s (API 1) at %s\n" % (VERSION, want))
        self.stop_ok(d)

    def test_help(self):
        p = ctl("help", "ping")
        self.assert_rc(p, 0)
        self.assertIn("Usage: retrieverctl ping [--socket PATH]", p.stdout)
        p = ctl("--help")
        self.assertRegex(p.stdout, r"\n  ping +check that retrieverd answers")
        self.assertIn("--socket PATH", p.stdout)
        p = ctl("download", "--help")
        for text in ("--socket PATH", "--detach", "(daemon mode only)",
                     "Engine (--local only):", "help exit-codes"):
            self.assertIn(text, p.stdout)
        p = ctl("help", "exit-codes")
        for text in ("\n    8  retrieverd cannot be reached", "\n    9  retrieverd refused"):
            self.assertIn(text, p.stdout)


class SocketTest(Base):
    """Each way of not reaching a daemon: one line naming the socket, a
    documented exit code, and fast."""

    def ping_fails(self, path, rc, message, bound=CONNECT_BOUND):
        t0 = time.monotonic()
        p = ctl("ping", "--socket", path)
        took = time.monotonic() - t0
        self.assert_rc(p, rc)
        self.assertEqual(p.stdout, "")
        if message.endswith("\n"):
            self.assertEqual(p.stderr, message)
        else:
            self.assertIn(message, p.stderr)
            self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
        self.assertLess(took, bound + 3)
        return p

    def test_no_daemon(self):
        path = os.path.join(self.tmp, "none.sock")
        self.ping_fails(path, 8, NO_DAEMON % path, bound=1)
        # The same for a download, before anything is sent.
        p = ctl("download", "--socket", path, "-d", self.out, "http://127.0.0.1:9/a.bin")
        self.assert_rc(p, 8)
        self.assertEqual(p.stderr, NO_DAEMON % path)
        self.assertEqual(os.listdir(self.out), [])

    def test_missing_directory(self):
        path = os.path.join(self.tmp, "nodir", "x.sock")
        self.ping_fails(path, 8, NO_DAEMON % path, bound=1)

    def test_stale_socket(self):
        """A socket file nobody listens on (a daemon killed with -9)."""
        path = os.path.join(self.tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        self.ping_fails(path, 8, NO_DAEMON % path, bound=1)

    def test_daemon_stopped(self):
        d = self.daemon()
        self.stop_ok(d)
        self.ping_fails(self.sock, 8, NO_DAEMON % self.sock, bound=1)

    def test_not_a_socket(self):
        path = os.path.join(self.tmp, "file")
        with open(path, "w") as f:
            f.write("x")
        self.ping_fails(path, 8, "retrieverctl: '%s' is not a socket, so no retrieverd "
                        "listens there: pass the socket of a running retrieverd with "
                        "--socket\n" % path, bound=1)
        self.ping_fails(self.tmp, 8, "'%s' is not a socket" % self.tmp, bound=1)

    def listener(self, accept_and_close):
        path = os.path.join(self.tmp, "other.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(16)
        self.addCleanup(srv.close)
        if accept_and_close:
            def loop():
                while True:
                    try:
                        c, _ = srv.accept()
                    except OSError:
                        return
                    c.close()
            threading.Thread(target=loop, daemon=True).start()
        return path

    def test_not_grpc_closes(self):
        """A listener that hangs up at once (what retrieverd does to a user
        it does not admit)."""
        path = self.listener(accept_and_close=True)
        self.ping_fails(path, 9, "'%s' accepts connections but closes them unanswered"
                        % path)

    def test_not_grpc_silent(self):
        """A listener that never answers: the connect bound."""
        path = self.listener(accept_and_close=False)
        p = self.ping_fails(path, 8, "'%s' accepts connections but did not answer within "
                            "5000 ms" % path)
        self.assertIn("is retrieverd stuck", p.stderr)

    def test_ctrl_c_while_connecting(self):
        """SIGINT during the connect wait (a listener that never answers)
        ends the wait at once: nothing submitted, 130, one line."""
        path = self.listener(accept_and_close=False)
        proc = subprocess.Popen([CTL, "download", "--socket", path, "-d", self.tmp,
                                 "http://127.0.0.1:9/x.bin"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertLess(time.monotonic() - t0, 1.0, err)
        self.assertEqual(proc.returncode, 130, err)
        self.assertEqual(out, "")
        self.assertEqual(err, "retrieverctl: interrupted while connecting to '%s'; nothing "
                              "was submitted\n" % path)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run the client as another uid")
    def test_permission_denied(self):
        def as_nobody():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        d = self.daemon()   # socket mode 0600, owned by root
        os.chmod(os.path.dirname(self.sock), 0o755)
        p = ctl("ping", "--socket", self.sock, preexec_fn=as_nobody)
        self.assert_rc(p, 9)
        self.assertEqual(p.stderr, "retrieverctl: the socket '%s' does not admit this user: "
                         "permission denied (its mode and group decide who may use "
                         "retrieverd)\n" % self.sock)
        # Opened up behind the daemon's back: the kernel lets nobody in, the
        # daemon hangs up on it.
        os.chmod(self.sock, 0o666)
        p = ctl("ping", "--socket", self.sock, preexec_fn=as_nobody)
        self.assert_rc(p, 9)
        self.assertIn("retrieverd does not admit this user", p.stderr)
        self.assertEqual(ctl("ping", "--socket", self.sock).returncode, 0)
        self.stop_ok(d)

    def test_usage(self):
        long_path = "/" + "x" * 120
        cases = [
            (["ping", "--socket"], "option '--socket' needs a value (PATH)"),
            (["--socket"], "option '--socket' needs a value (PATH)"),
            (["--socket=", "ping"], "needs the path of retrieverd's socket"),
            (["--socket", "/a", "ping", "--socket", "/b"], "given more than once"),
            (["ping", "extra"], "'ping' takes no arguments, not 'extra'"),
            (["download", "--local", "--socket", "/a", "http://h/a"],
             "cannot be used with --local"),
            (["download", "--detach", "--local", "http://h/a"], "cannot be used with --local"),
            (["download", "--state-dir", self.tmp, "http://h/a"],
             "option '--state-dir' applies only with --local"),
            (["download", "--detach", "--json", "http://h/a"], "cannot be used together"),
            (["ping", "--socket", long_path], "is longer than a socket address allows"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = ctl(*args)
                self.assert_rc(p, 2)
                self.assertIn(message, p.stderr)
                self.assertTrue(p.stderr.startswith("retrieverctl: "))
                self.assertEqual(p.stdout, "")

    def test_no_socket_can_be_determined(self):
        env = env_without("XDG_RUNTIME_DIR", "RETRIEVER_SOCKET")
        for args in (["ping"], ["download", "-d", self.out, "http://h/a.bin"]):
            with self.subTest(args=args):
                p = ctl(*args, env=env)
                self.assert_rc(p, 2)
                self.assertEqual(p.stderr, "retrieverctl: XDG_RUNTIME_DIR is not set, so "
                                 "there is no per-user retrieverd socket: pass --socket "
                                 "PATH or set RETRIEVER_SOCKET\n")
        p = ctl("ping", env=env_without("RETRIEVER_SOCKET", XDG_RUNTIME_DIR="rel/dir"))
        self.assert_rc(p, 2)
        self.assertIn("XDG_RUNTIME_DIR is not an absolute path", p.stderr)


# ---------------------------------------------------------------------------
# The daemon mode as a module: retrieverctl links no gRPC (client/remotemod.h)
# ---------------------------------------------------------------------------

MODULE = os.path.join(os.path.dirname(CTL), "retrieverctl-remote.so")


def needed(path):
    """The DT_NEEDED names of an ELF file."""
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)


class ModuleTest(Base):
    def test_only_the_module_links_grpc(self):
        rpc = re.compile(r"^lib(grpc|gpr|protobuf-c|absl_|re2|cares)")
        self.assertEqual([n for n in needed(CTL) if rpc.match(n)], [])
        self.assertIn("libgrpc.so.29", needed(MODULE))

    def test_module_exports_only_its_entry(self):
        out = subprocess.run(["nm", "-D", "--defined-only", MODULE], capture_output=True,
                             text=True, check=True).stdout
        self.assertEqual([line.split()[-1] for line in out.splitlines()],
                         ["rvc_remote_entry"])

    def test_found_missing_or_broken(self):
        """A copy of retrieverctl looks beside itself, then in
        ../lib/retriever; without a usable module the daemon mode fails
        with one line naming the files (exit 1), and the rest still works."""
        bindir = os.path.realpath(os.path.join(self.tmp, "bin"))  # as /proc/self/exe
        libdir = os.path.join(bindir, "..", "lib", "retriever")
        os.makedirs(bindir)
        os.makedirs(libdir)
        copy = shutil.copy(CTL, bindir)
        beside = os.path.join(bindir, "retrieverctl-remote.so")
        installed = os.path.join(libdir, "retrieverctl-remote.so")
        advice = "; reinstall retrieverctl (download --local works without it)\n"
        sock = os.path.join(self.tmp, "none.sock")

        def run(*args):
            return subprocess.run([copy, *args], capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)

        for args in (["ping", "--socket", sock],
                     ["download", "--socket", sock, "-d", self.out, "http://h/a.bin"]):
            p = run(*args)
            self.assert_rc(p, 1)
            self.assertEqual(p.stderr, "retrieverctl: the daemon mode is not installed: "
                             "neither '%s' nor '%s' exists%s" % (beside, installed, advice))
        p = run("--version")
        self.assert_rc(p, 0)

        with open(beside, "w") as f:
            f.write("not a shared object\n")
        p = run("ping", "--socket", sock)
        self.assert_rc(p, 1)
        self.assertTrue(p.stderr.startswith(
            "retrieverctl: cannot load the daemon mode from '%s': " % beside), p.stderr)
        self.assertTrue(p.stderr.endswith(advice), p.stderr)
        os.unlink(beside)

        shutil.copy(MODULE, libdir)
        p = run("ping", "--socket", sock)
        self.assert_rc(p, 8)
        self.assertEqual(p.stderr, NO_DAEMON % sock)


# ---------------------------------------------------------------------------
# A scripted server: the request as sent, and every kind of answer
# ---------------------------------------------------------------------------

class ScriptedTest(Base):
    def setUp(self):
        super().setUp()
        os.makedirs(os.path.dirname(self.sock))
        self.server = None
        self.addCleanup(self.stop_server)

    def stop_server(self):
        if self.server:
            self.server.__exit__()
            self.server = None
        if os.path.exists(self.sock):
            os.unlink(self.sock)

    def serve(self, **handlers):
        """Serve handlers on the socket, replacing any earlier server."""
        self.stop_server()
        self.server = Scripted(self.sock, handlers).__enter__()
        return self.server

    def download(self, *args, cwd=None):
        return ctl("download", "--socket", self.sock, *args, cwd=cwd or self.out)

    def test_unimplemented(self):
        """A retrieverd without Download (or Ping): said plainly, exit 9."""
        self.serve()
        p = self.download("-o", "x.bin", "http://h/x.bin")
        self.assert_rc(p, 9)
        self.assertRegex(p.stderr, r"^retrieverctl: this retrieverd does not support "
                         r"Download yet: .*\(UNIMPLEMENTED\)\n$")
        p = ctl("ping", "--socket", self.sock)
        self.assert_rc(p, 9)
        self.assertRegex(p.stderr, r"^retrieverctl: this retrieverd does not support "
                         r"Ping yet: .*\(UNIMPLEMENTED\)\n$")
        self.assertEqual(os.listdir(self.out), [])

    def test_request_as_sent(self):
        def download(req, context):
            yield event(accepted=pb.Accepted())
            for i in range(2):
                yield event(object_index=i, completed=pb.Completed(path="/p%d" % i, size=1))
        s = self.serve(Download=download)
        sub = os.path.join(self.out, "sub")
        os.makedirs(sub)
        p = self.download("-d", "sub", "-c", "3", "--header", "X-Token:  a: b \t",
                          "--header", "X-Empty:", "http://h/a%20b.bin?q=1", "file:///etc/c.txt")
        self.assert_rc(p, 0)
        self.assertEqual(len(s.requests), 1)
        req = pb.DownloadRequest.FromString(s.requests[0])
        self.assertEqual([x.url for x in req.sources],
                         ["http://h/a%20b.bin?q=1", "file:///etc/c.txt"])
        self.assertEqual([x.destination for x in req.sources],
                         [os.path.join(sub, "a b.bin"), os.path.join(sub, "c.txt")])
        for src in req.sources:
            self.assertEqual([(h.name, h.value) for h in src.headers],
                             [("X-Token", "a: b"), ("X-Empty", "")])
            self.assertEqual(src.sha256, "")
        self.assertEqual(req.connections, 3)
        self.assertFalse(req.detach)
        self.assertEqual(req.priority, 0)
        # No digest, no link, no copy unless asked: the daemon's defaults.
        self.assertEqual((req.digest, req.link, req.copy), (False, False, False))

        # -o relative to the current directory, --sha256 lower-cased, detach.
        def detached(req, context):
            yield event(accepted=pb.Accepted())
        s2 = self.serve(Download=detached)
        hexd = "AB" * 32
        p = self.download("-o", "f.bin", "--sha256", hexd, "--detach", "http://h/x")
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "job1\n")
        self.assertEqual(p.stderr, "")
        req = pb.DownloadRequest.FromString(s2.requests[0])
        self.assertEqual(req.sources[0].destination, os.path.join(self.out, "f.bin"))
        self.assertEqual(req.sources[0].sha256, "ab" * 32)
        self.assertTrue(req.detach)
        self.assertEqual(req.connections, 0)
        self.assertTrue(req.digest)  # --sha256 needs the digest

    def test_digest_link_copy_as_sent(self):
        """digest exactly when --local would digest (--digest, --json unless
        --no-digest, --sha256); link for --link, copy for --copy."""
        def detached(req, context):
            yield event(accepted=pb.Accepted())
        s = self.serve(Download=detached)
        cases = [
            ([], (False, False, False)),
            (["--digest"], (True, False, False)),
            (["--no-digest"], (False, False, False)),
            (["--json"], (True, False, False)),
            (["--json", "--no-digest"], (False, False, False)),
            (["--no-digest", "--sha256", "cd" * 32], (True, False, False)),
            (["--link"], (False, True, False)),
            (["--copy", "--digest"], (True, False, True)),
        ]
        for i, (args, want) in enumerate(cases):
            with self.subTest(args=args):
                detach = [] if "--json" in args else ["--detach"]
                p = self.download("-o", "f%d.bin" % i, *detach, *args, "http://h/x")
                if detach:
                    self.assert_rc(p, 0)
                req = pb.DownloadRequest.FromString(s.requests[-1])
                self.assertEqual((req.digest, req.link, req.copy), want)
        self.assertEqual(len(s.requests), len(cases))
        p = self.download("-o", "g.bin", "--copy", "--link", "http://h/x")
        self.assert_rc(p, 2)
        self.assertIn("'--copy' and '--link' cannot be used together", p.stderr)
        self.assertEqual(len(s.requests), len(cases))  # nothing sent

    def test_events_rendered(self):
        """Per object one final line and one JSON line with local mode's
        keys; the exit code is the first URL's (command-line order) that
        failed; an error name this build does not know is an internal
        error that keeps the name."""
        def download(req, context):
            yield event(accepted=pb.Accepted())
            for i in range(3):
                yield event(object_index=i, queued=pb.Queued())
            yield event(object_index=0, started=pb.Started(
                progress=pb.Progress(bytes_done=0, bytes_total=10, total_known=True)))
            yield event(object_index=0, retrying=pb.Retrying(
                offset=4, attempt=1, wait_ms=100, http_status=503,
                reason="HTTP 503 from 'http://h/a.bin'"))
            ev = event(object_index=2, failed=pb.Failed(error=pb.Error(
                code="RV_E_FROM_THE_FUTURE", message="a new kind of failure",
                detail="details", retryable=True)))
            ev.time_unix_ms += 10
            yield ev
            ev = event(object_index=1, failed=pb.Failed(error=pb.Error(
                code="RV_E_NOT_FOUND", message="origin has no such object",
                detail="HTTP 404 from 'http://h/b.bin'")))
            ev.time_unix_ms += 20
            yield ev
            ev = event(object_index=0, completed=pb.Completed(
                path=os.path.join(self.out, "a.bin"), size=10, sha256="ab" * 32,
                crc32c="0A0B0C0D", from_cache=True))
            ev.time_unix_ms += 1500
            yield ev
        self.serve(Download=download)
        urls = ["http://h/a.bin", "http://h/b.bin", "http://h/c.bin"]
        p = self.download("--json", "--no-progress", *urls)
        self.assert_rc(p, 5)   # b.bin's RV_E_NOT_FOUND; c.bin (internal) comes later
        lines = self.json_lines(p.stdout)
        self.assertEqual(list(lines), [urls[2], urls[1], urls[0]])  # completion order
        a, b, c = (lines[u] for u in urls)
        self.assertEqual(a["state"], "done")
        self.assertEqual(a["path"], os.path.join(self.out, "a.bin"))
        self.assertEqual((a["bytes"], a["sha256"], a["crc32c"], a["retries"]),
                         (10, "ab" * 32, "0a0b0c0d", 1))
        self.assertAlmostEqual(a["seconds"], 1.5, places=3)
        self.assertIsNone(a["error"])
        self.assertEqual(b["state"], "failed")
        self.assertEqual(b["path"], os.path.join(self.out, "b.bin"))
        self.assertEqual(b["error"], {"code": "RV_E_NOT_FOUND", "number": 11,
                                      "message": "origin has no such object",
                                      "detail": "HTTP 404 from 'http://h/b.bin'",
                                      "retryable": False})
        self.assertEqual(c["error"]["code"], "RV_E_INTERNAL")
        self.assertEqual(c["error"]["detail"], "retrieverd reported 'RV_E_FROM_THE_FUTURE': "
                         "details")
        err = p.stderr.splitlines()
        self.assertIn("retry: 'a.bin' retry 1 in 0.1s, from byte 4: HTTP 503 from "
                      "'http://h/a.bin'", err)
        self.assertIn("retrieverctl: 'http://h/b.bin': origin has no such object "
                      "(HTTP 404 from 'http://h/b.bin')", err)
        self.assertIn("retrieverctl: 'http://h/c.bin': a new kind of failure "
                      "(retrieverd reported 'RV_E_FROM_THE_FUTURE': details)", err)
        self.assertTrue(any(l.startswith("done: 'a.bin' 10 B in 1.5s (") and
                            l.endswith(", 1 retry, sha256 " + "ab" * 32 + ", cached")
                            for l in err), err)
        self.assertTrue(err[-1].startswith("total: 1 done, 2 failed, 0 cancelled; "), err)

    def test_quiet(self):
        def download(req, context):
            yield event(object_index=0, completed=pb.Completed(size=3))
        self.serve(Download=download)
        p = self.download("-q", "http://h/a.bin")
        self.assert_rc(p, 0)
        self.assertEqual((p.stdout, p.stderr), ("", ""))

    def abort_with(self, code, message, events=()):
        def download(req, context):
            for e in events:
                yield e
            context.abort(code, message)
        return download

    def test_statuses(self):
        cases = [
            (grpc.StatusCode.INVALID_ARGUMENT, "source 0: destination's directory does not "
             "exist", 2, "retrieverctl: retrieverd rejected the request: source 0: "
             "destination's directory does not exist (INVALID_ARGUMENT)\n"),
            (grpc.StatusCode.PERMISSION_DENIED, "uid 1000 may not write '/x'", 9,
             "retrieverctl: retrieverd refused: uid 1000 may not write '/x' "
             "(PERMISSION_DENIED)\n"),
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "too many queued jobs (10000)", 4,
             "retrieverctl: retrieverd is too busy; try again later: too many queued jobs "
             "(10000) (RESOURCE_EXHAUSTED)\n"),
            (grpc.StatusCode.UNAVAILABLE, "retrieverd is shutting down", 8,
             "retrieverctl: retrieverd stopped or went away: retrieverd is shutting down "
             "(UNAVAILABLE)\n"),
            (grpc.StatusCode.INTERNAL, "boom", 1,
             "retrieverctl: retrieverd failed: boom (INTERNAL)\n"),
        ]
        for code, message, rc, stderr in cases:
            with self.subTest(code=code):
                self.serve(Download=self.abort_with(code, message))
                p = self.download("--json", "http://h/a.bin")
                self.assert_rc(p, rc)
                self.assertEqual(p.stderr, stderr)
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    line = json.loads(p.stdout)
                    self.assertEqual(line["state"], "rejected")
                    self.assertEqual(line["error"]["code"], "RV_E_INVALID_ARGUMENT")
                    self.assertEqual(line["error"]["detail"], message)
                else:
                    self.assertEqual(p.stdout, "")

    def test_stream_ends_early(self):
        """OK, but an object never got its final event: a protocol slip of
        the daemon, reported and exit 1."""
        def download(req, context):
            yield event(accepted=pb.Accepted())
            yield event(object_index=0, completed=pb.Completed(size=1))
        self.serve(Download=download)
        p = self.download("--json", "-d", self.out, "http://h/a.bin", "http://h/b.bin")
        self.assert_rc(p, 1)
        self.assertIn("retrieverctl: retrieverd ended the job's stream with 1 download "
                      "unfinished", p.stderr)
        lines = self.json_lines(p.stdout)
        self.assertEqual(lines["http://h/b.bin"]["state"], "failed")

    def test_local_validation_sends_nothing(self):
        """What --local rejects before downloading is rejected here before
        connecting: no socket is needed, with the same messages and codes."""
        missing = os.path.join(self.tmp, "none.sock")
        p = ctl("download", "--socket", missing, "--json", "http://h/", "http://h/ok.bin",
                cwd=self.out)
        self.assert_rc(p, 5)
        self.assertIn("retrieverctl: 'http://h/': cannot name the output file after this "
                      "URL (malformed URL, or no file name at the end of its path; use -o "
                      "FILE to name the output)", p.stderr)
        self.assertIn("retrieverctl: nothing downloaded: 1 of 2 URLs rejected", p.stderr)
        lines = self.json_lines(p.stdout)
        self.assertEqual(lines["http://h/"]["state"], "rejected")
        self.assertEqual(lines["http://h/ok.bin"]["state"], "cancelled")
        p = ctl("download", "--socket", missing, "-d", self.out, "http://h/a.bin",
                "http://g/a.bin")
        self.assert_rc(p, 3)
        self.assertIn("retrieverctl: 'http://g/a.bin': two downloads share one destination "
                      "(destination '%s/a.bin' is also the destination of 'http://h/a.bin')"
                      % self.out, p.stderr)
        # Each later one names the first; an unrelated one in between is fine.
        p = ctl("download", "--socket", missing, "-d", self.out, "http://h/a.bin",
                "http://x/b.bin", "http://g/a.bin", "http://k/a.bin")
        self.assert_rc(p, 3)
        for url in ("http://g/a.bin", "http://k/a.bin"):
            self.assertIn("retrieverctl: '%s': two downloads share one destination "
                          "(destination '%s/a.bin' is also the destination of "
                          "'http://h/a.bin')" % (url, self.out), p.stderr)
        self.assertNotIn("'http://x/b.bin': two", p.stderr)
        self.assertIn("nothing downloaded: 2 of 4 URLs rejected", p.stderr)

    def test_destinations_rejected_as_local_mode_does(self):
        """A destination this user cannot write: the same line and exit
        code as --local, and nothing is sent."""
        missing = os.path.join(self.tmp, "none.sock")
        os.makedirs(os.path.join(self.out, "adir"))
        one = ["http://h/a.bin"]
        three = ["http://h/a.bin", "http://h/b.bin", "http://g/c.bin"]
        cases = [(["-o", "adir"], one), (["-o", "nodir/x.bin"], one), (["-d", "nodir"], one),
                 (["-o", "adir/"], one), (["-d", "nodir"], three)]
        for args, urls in cases:
            with self.subTest(args=args, urls=len(urls)):
                remote = ctl("download", "--socket", missing, *args, *urls, cwd=self.out)
                local = ctl("download", "--local", "--no-state", *args, *urls, cwd=self.out)
                self.assert_rc(local, 3)
                self.assert_rc(remote, 3)
                self.assertEqual(remote.stderr, local.stderr)
        # The three into a missing directory: reported once, then counted.
        self.assertEqual(remote.stderr.count("destination is not writable"), 1)
        self.assertIn("(2 more URLs rejected for the same reason)", remote.stderr)
        self.assertEqual(sorted(os.listdir(self.out)), ["adir"])

    def test_ctrl_c_cancels_the_call(self):
        """SIGINT: the call is cancelled (the server sees it), 130, and the
        unfinished URL gets a "cancelled" JSON line."""
        def download(req, context):
            yield event(accepted=pb.Accepted())
            yield event(object_index=0, started=pb.Started(progress=pb.Progress(
                bytes_done=5, bytes_total=100, total_known=True)))
            # A retry line tells the test the client has the events.
            yield event(object_index=0, retrying=pb.Retrying(
                offset=5, attempt=1, wait_ms=60000, reason="waiting"))
            # Stream nothing more until the client leaves.
            s.terminated.wait(RUN_TIMEOUT)
        s = self.serve(Download=download)
        for sig, rc, name in ((signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")):
            with self.subTest(sig=name):
                s.terminated.clear()
                proc = subprocess.Popen([CTL, "download", "--socket", self.sock, "--json",
                                         "--no-progress", "-o", "x.bin", "http://h/x.bin"],
                                        cwd=self.out, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                self.addCleanup(lambda: proc.poll() is None and proc.kill())
                first = proc.stderr.readline()
                self.assertEqual(first, "retry: 'x.bin' retry 1 in 1m00s, from byte 5: "
                                 "waiting\n")
                proc.send_signal(sig)
                out, err = proc.communicate(timeout=RUN_TIMEOUT)
                self.assertEqual(proc.returncode, rc, err)
                self.assertTrue(s.terminated.wait(10), "the server never saw the cancel")
                self.assertEqual(err, "retrieverctl: interrupted (%s): left job job1, which "
                                 "goes on if another client follows it, else is cancelled: "
                                 "kept up to 5 B of x.bin; run the same command to resume\n"
                                 % name)
                line = json.loads(out)
                self.assertEqual((line["state"], line["error"]["code"], line["bytes"]),
                                 ("cancelled", "RV_E_CANCELLED", 5))


# ---------------------------------------------------------------------------
# Downloads through the real retrieverd (ctest: client_daemon_download)
# ---------------------------------------------------------------------------

SIZES = {"a.bin": 3 * 1024 * 1024 + 17, "b.bin": 1024 * 1024, "big.bin": 8 * 1024 * 1024}


class DownloadTest(Base):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ctl-daemon-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = {}
        for seed, (name, size) in enumerate(sorted(SIZES.items())):
            cls.sha[name] = sha256_file(make_file(os.path.join(cls.root, name), size, seed + 1))
        cls.ng = NginxOrigin(cls.root).start()
        cls.addClassCleanup(cls.ng.stop)
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)

    def setUp(self):
        super().setUp()
        self.d = self.daemon()

    def tearDown(self):
        self.assertEqual(self.d.stop()[0], 0, self.d.log())
        self.assertNotIn("Sanitizer", self.d.log())

    def download(self, *args, cwd=None):
        return ctl("download", "--socket", self.sock, *args, cwd=cwd or self.out)

    def assert_file(self, path, name):
        self.assertEqual(sha256_file(path), self.sha[name])

    def listing(self):
        return sorted(os.listdir(self.out))

    def test_file_arrives(self):
        p = self.download("-o", "x.bin", self.ng.url("/a.bin"))
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "")
        self.assertIn("done: 'x.bin' 3.0 MiB in ", p.stderr)
        self.assertEqual(self.listing(), ["x.bin"])
        self.assert_file(os.path.join(self.out, "x.bin"), "a.bin")

    def test_several_into_a_directory(self):
        os.makedirs(os.path.join(self.out, "d"))
        p = self.download("-d", "d", self.ng.url("/a.bin"), self.ng.url("/b.bin"))
        self.assert_rc(p, 0)
        self.assertEqual(sorted(os.listdir(os.path.join(self.out, "d"))), ["a.bin", "b.bin"])
        for name in ("a.bin", "b.bin"):
            self.assert_file(os.path.join(self.out, "d", name), name)
        self.assertIn("total: 2 done, 0 failed, 0 cancelled", p.stderr)

    def test_json(self):
        urls = [self.ng.url("/a.bin"), self.ng.url("/b.bin")]
        p = self.download("--json", "-q", "-d", self.out, *urls)
        self.assert_rc(p, 0)
        self.assertEqual(p.stderr, "")
        lines = self.json_lines(p.stdout)
        self.assertEqual(set(lines), set(urls))
        for url, name in zip(urls, ("a.bin", "b.bin")):
            line = lines[url]
            self.assertEqual(line["state"], "done")
            self.assertEqual(line["path"], os.path.join(self.out, name))
            self.assertEqual(line["bytes"], SIZES[name])
            self.assertEqual(line["sha256"], self.sha[name])
            self.assertRegex(line["crc32c"], r"^[0-9a-f]{8}$")
            self.assertIsNone(line["error"])

    def test_sha256(self):
        p = self.download("-o", "a.bin", "--sha256", self.sha["a.bin"].upper(),
                          self.ng.url("/a.bin"))
        self.assert_rc(p, 0)
        self.assertIn(", sha256 verified", p.stderr)
        p = self.download("--json", "-o", "bad.bin", "--sha256", "0" * 64, self.ng.url("/b.bin"))
        self.assert_rc(p, 6)
        self.assertEqual(json.loads(p.stdout)["error"]["code"], "RV_E_CHECKSUM_MISMATCH")
        self.assertNotIn("bad.bin", self.listing())

    def test_done_line_as_local_mode(self):
        """The done line names the sha256 only when it was asked for, as
        --local does: the daemon digests per request, not always."""
        url = self.ng.url("/a.bin")
        p = self.download("-o", "plain.bin", url)
        self.assert_rc(p, 0)
        self.assertNotIn("sha256", p.stderr)
        p = self.download("-o", "digested.bin", "--digest", url)
        self.assert_rc(p, 0)
        self.assertIn(", sha256 " + self.sha["a.bin"], p.stderr)
        p = self.download("-o", "checked.bin", "--sha256", self.sha["a.bin"], url)
        self.assert_rc(p, 0)
        self.assertIn(", sha256 verified", p.stderr)
        p = self.download("--json", "--no-digest", "-o", "nodigest.bin", url)
        self.assert_rc(p, 0)
        self.assertIsNone(json.loads(p.stdout)["sha256"])
        for name in ("plain.bin", "digested.bin", "checked.bin", "nodigest.bin"):
            self.assert_file(os.path.join(self.out, name), "a.bin")

    def test_not_found(self):
        url = self.ng.url("/missing.bin")
        p = self.download("--json", url)
        self.assert_rc(p, 5)   # as --local
        line = json.loads(p.stdout)
        self.assertEqual(line["error"]["code"], "RV_E_NOT_FOUND")
        self.assertEqual(p.stderr, "retrieverctl: '%s': origin has no such object (HTTP 404 "
                         "from '%s')\n" % (url, url))
        self.assertEqual(self.listing(), [])

    def test_retries_are_shown(self):
        url = self.fo.url("/b.bin", status=503, times=2, case=self.id())
        p = self.download("-o", "b.bin", url)
        self.assert_rc(p, 0)
        self.assertRegex(p.stderr, r"retry: 'b\.bin' retry 1 in [0-9.]+s, from byte 0: ")
        self.assert_file(os.path.join(self.out, "b.bin"), "b.bin")

    def test_detach(self):
        dest = os.path.join(self.out, "a.bin")
        p = self.download("--detach", "-o", dest, self.ng.url("/a.bin"))
        self.assert_rc(p, 0)
        self.assertRegex(p.stdout, r"^[0-9A-Za-z_-]+\n$")
        self.assertEqual(p.stderr, "")
        job = p.stdout.strip()
        # The job runs on without us: follow it with Watch (Python's gRPC).
        with grpc.insecure_channel("unix://" + self.sock) as ch:
            watch = ch.unary_stream("/%s/Watch" % SERVICE,
                                    request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=pb.JobEvent.FromString)
            events = list(watch(pb.WatchRequest(job_id=job), timeout=RUN_TIMEOUT))
        self.assertEqual(events[0].WhichOneof("event"), "snapshot")
        self.assertEqual(events[0].job_id, job)
        done = (events[0].snapshot.job.state == pb.JOB_STATE_DONE or
                "completed" in [e.WhichOneof("event") for e in events[1:]])
        self.assertTrue(done, events)
        self.assert_file(dest, "a.bin")

    def start_slow(self, *extra):
        url = self.fo.url("/big.bin", rate=128 * 1024, case=self.id())
        proc = subprocess.Popen([CTL, "download", "--socket", self.sock, "-c", "1",
                                 "-d", self.out, *extra, url],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def wait_for_progress(self, proc):
        lines = []
        while True:
            line = proc.stderr.readline()
            self.assertNotEqual(line, "", "exited before any progress: %s" % "".join(lines))
            lines.append(line)
            if line.startswith("progress: '"):
                return lines

    def status(self, job):
        with grpc.insecure_channel("unix://" + self.sock) as ch:
            fn = ch.unary_unary("/%s/Status" % SERVICE,
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.Job.FromString)
            return fn(pb.StatusRequest(job_id=job), timeout=10)

    def test_ctrl_c(self):
        proc = self.start_slow("--json")
        lines = self.wait_for_progress(proc)
        self.assertRegex(lines[-1], r"^progress: '.*big\.bin' \d+% .* of 8\.0 MiB")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, 130, err)
        m = re.search(r"interrupted \(SIGINT\): left job (\S+), which goes on if another "
                      r"client follows it, else is cancelled: kept up to .* of .*big\.bin; "
                      r"run the same command to resume", err)
        self.assertTrue(m, err)
        line = json.loads(out)
        self.assertEqual((line["state"], line["error"]["code"]), ("cancelled", "RV_E_CANCELLED"))
        # Its only subscriber left: retrieverd stops the job. It has no
        # event for a caller that left, so ask, within a bound.
        deadline = time.monotonic() + 20
        while True:
            state = self.status(m.group(1)).state
            if state == pb.JOB_STATE_CANCELLED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(state, pb.JOB_STATE_CANCELLED)
        self.assertEqual(self.listing(), [])

    def test_daemon_stops_during_the_download(self):
        proc = self.start_slow()
        self.wait_for_progress(proc)
        self.assertEqual(self.d.stop()[0], 0, self.d.log())
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, 8, err)
        self.assertIn("retrieverctl: retrieverd stopped or went away: ", err)
        self.assertIn("(UNAVAILABLE)", err)


if __name__ == "__main__":
    unittest.main()
