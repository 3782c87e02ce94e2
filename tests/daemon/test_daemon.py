#!/usr/bin/python3
"""retrieverd end to end, with Python's gRPC as the independent client.

Each test starts its own retrieverd on a socket in its own temporary
directory, waits for the daemon's "ready '<path>'" line on stderr (no
polling), talks to it over unix:///path, and stops it by PID. The client
code is generated at test time with `protoc --python_out` (grpc_tools is
not packaged in Debian), and methods are called by path with
channel.unary_unary / unary_stream.

Environment (set by ctest): RV_DAEMON (the retrieverd binary), RV_PROTOC,
RV_PROTO_DIR (proto/), RV_VERSION (the project's version).
"""
import ctypes
import os
import resource
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
from daemons import READY_TIMEOUT, STOP_BOUND, Daemon, require_root  # noqa: E402,F401  (test_jobs.py uses them)
from threads import thread_names  # noqa: E402

DAEMON = os.environ["RV_DAEMON"]
PROTOC = os.environ["RV_PROTOC"]
PROTO_DIR = os.environ["RV_PROTO_DIR"]
VERSION = os.environ["RV_VERSION"]
SERVICE = "retriever.v1.Retriever"
NOBODY = 65534

pb = None       # retriever_pb2, generated in setUpModule
PB_DIR = None


def setUpModule():
    global pb, PB_DIR
    PB_DIR = tempfile.mkdtemp(prefix="rv-daemon-pb2-")
    os.chmod(PB_DIR, 0o755)  # the unprivileged client imports it too
    subprocess.run([PROTOC, "--python_out", PB_DIR, "-I", PROTO_DIR,
                    "retriever/v1/retriever.proto"], check=True)
    sys.path.insert(0, PB_DIR)
    from retriever.v1 import retriever_pb2
    pb = retriever_pb2


def tearDownModule():
    shutil.rmtree(PB_DIR, ignore_errors=True)


def target(path):
    return "unix://" + path  # path is absolute: unix:///…


def unary(path, method, request, response_cls, timeout=10):
    """One unary call on a fresh channel; returns the response or raises
    grpc.RpcError. request may be a message or raw bytes."""
    ser = (lambda b: b) if isinstance(request, bytes) else (
        lambda m: m.SerializeToString())
    with grpc.insecure_channel(target(path)) as ch:
        fn = ch.unary_unary(method, request_serializer=ser,
                            response_deserializer=response_cls.FromString
                            if response_cls else None)
        return fn(request, timeout=timeout)


def ping(path, timeout=10):
    return unary(path, "/%s/Ping" % SERVICE, pb.PingRequest(),
                 pb.PingResponse, timeout)


class StoppedThread:
    """One thread of a child process stopped and resumed with ptrace (the
    rest of the process runs on). All calls from one thread of this
    process: ptrace ties a tracee to the thread that attached."""

    SEIZE, INTERRUPT, DETACH = 0x4206, 0x4207, 17
    WALL = 0x40000000

    def __init__(self, tid):
        self.tid = tid
        self.attached = False
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                     ctypes.c_void_p]
        self.libc.ptrace.restype = ctypes.c_long

    def _ptrace(self, req):
        if self.libc.ptrace(req, self.tid, None, None) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "ptrace(%#x, %d): %s" % (req, self.tid, os.strerror(e)))

    def stop(self):
        self._ptrace(self.SEIZE)
        self.attached = True
        self._ptrace(self.INTERRUPT)
        pid, status = os.waitpid(self.tid, self.WALL)  # until it has stopped
        assert pid == self.tid and os.WIFSTOPPED(status), status

    def resume(self):
        if self.attached:
            self.attached = False
            self._ptrace(self.DETACH)


class DaemonTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-daemon-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")

    def daemon(self, *args, sock=None, **kw):
        d = Daemon(["--socket", sock or self.sock] + list(args), **kw)
        self.addCleanup(d.kill)
        return d

    def stop_ok(self, d, sig=signal.SIGTERM):
        rc, took = d.stop(sig)
        self.assertEqual(rc, 0, d.log())
        self.assertLess(took, STOP_BOUND, d.log())
        d.assert_clean(self)
        return took

    # -- Ping and the methods ----------------------------------------------

    def test_ping(self):
        d = self.daemon().start()
        self.assertEqual(d.ready_path, self.sock)
        r = ping(self.sock)
        self.assertEqual(r.version, VERSION)
        self.assertEqual(r.api_version, 1)
        self.stop_ok(d)

    def test_open_file_limit_is_raised_to_the_hard_limit(self):
        """Started by hand with a low soft limit (1000-source jobs need
        more descriptors), the daemon raises it to the hard limit, and
        grows its descriptor table to that (at most 8192) before it starts
        threads."""
        low_hard = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
        d = self.daemon(nofile=(256, low_hard)).start()
        with open("/proc/%d/limits" % d.proc.pid) as f:
            line = [ln for ln in f if ln.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], [str(low_hard), str(low_hard)], line)
        with open("/proc/%d/status" % d.proc.pid) as f:
            fdsize = [int(ln.split()[1]) for ln in f if ln.startswith("FDSize:")][0]
        self.assertGreaterEqual(fdsize, min(low_hard, 8192))
        self.assertIsNotNone(ping(self.sock))
        self.stop_ok(d)

    def test_many_pings_many_connections(self):
        """Concurrent callers, each on its own connection, plus one channel
        shared by threads: every call answered."""
        d = self.daemon().start()
        errors = []

        def own_channel():
            try:
                for _ in range(20):
                    self.assertEqual(ping(self.sock).api_version, 1)
            except Exception as e:  # noqa: BLE001 — reported below
                errors.append(e)

        with grpc.insecure_channel(target(self.sock)) as ch:
            fn = ch.unary_unary("/%s/Ping" % SERVICE,
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.PingResponse.FromString)

            def shared():
                try:
                    for _ in range(100):
                        self.assertEqual(fn(pb.PingRequest(), timeout=10).version,
                                         VERSION)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=own_channel) for _ in range(8)]
            threads += [threading.Thread(target=shared) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])
        self.stop_ok(d)

    def test_unknown_method_is_unimplemented_at_once(self):
        d = self.daemon().start()
        for method in ("/%s/NoSuchMethod" % SERVICE, "/other.v9.Service/Ping",
                       "/" + "x" * 1000):
            t0 = time.monotonic()
            with self.assertRaises(grpc.RpcError) as cm:
                unary(self.sock, method, b"", None, timeout=60)
            took = time.monotonic() - t0
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            self.assertIn("unknown method", cm.exception.details())
            # "At once": not at the call's 60 s deadline. The bound is
            # loose on purpose (a loaded machine, the sanitizer build).
            self.assertLess(took, 20, "%s answered after %.2f s" % (method, took))
        # The generic slot is re-armed: the daemon still answers.
        self.assertEqual(ping(self.sock).api_version, 1)
        self.stop_ok(d)

    def test_malformed_request_is_invalid_argument(self):
        d = self.daemon().start()
        with self.assertRaises(grpc.RpcError) as cm:
            # field 1, wire type 2 (length-delimited), length 100, no bytes
            unary(self.sock, "/%s/Ping" % SERVICE, b"\x0a\x64", pb.PingResponse)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("not a valid retriever.v1.PingRequest", cm.exception.details())
        self.assertEqual(ping(self.sock).api_version, 1)
        self.stop_ok(d)

    # -- The socket ----------------------------------------------------------

    def test_second_daemon_fails_and_first_keeps_serving(self):
        d1 = self.daemon().start()
        ino = os.stat(self.sock).st_ino
        d2 = self.daemon().spawn()
        rc = d2.wait_exit(READY_TIMEOUT)
        self.assertEqual(rc, 1, d2.log())
        self.assertIn("another retrieverd is serving '%s'" % self.sock, d2.log())
        self.assertNotIn("ready", d2.log())
        d2.assert_clean(self)
        # The first one's socket is untouched and still answers.
        self.assertEqual(os.stat(self.sock).st_ino, ino)
        self.assertEqual(ping(self.sock).version, VERSION)
        self.stop_ok(d1)
        self.assertFalse(os.path.exists(self.sock))

    def test_stale_socket_is_replaced(self):
        os.makedirs(os.path.dirname(self.sock))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.sock)
        s.close()  # the file stays, nobody listens: stale
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.sock).st_mode))
        d = self.daemon().start()
        self.assertIn("stale", d.log())
        self.assertEqual(ping(self.sock).api_version, 1)
        self.stop_ok(d)
        self.assertFalse(os.path.exists(self.sock))

    def test_path_that_is_not_a_socket_is_left_alone(self):
        os.makedirs(os.path.dirname(self.sock))
        with open(self.sock, "w") as f:
            f.write("precious\n")
        d = self.daemon().spawn()
        self.assertEqual(d.wait_exit(READY_TIMEOUT), 1, d.log())
        self.assertIn("'%s' exists and is not a socket" % self.sock, d.log())
        with open(self.sock) as f:
            self.assertEqual(f.read(), "precious\n")

    def test_socket_mode_default_and_configured(self):
        # umask 0 would give 0777 if the daemon relied on it.
        old = os.umask(0)
        self.addCleanup(os.umask, old)
        d = self.daemon().start()
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o600)
        parent = os.path.dirname(self.sock)
        self.assertEqual(stat.S_IMODE(os.stat(parent).st_mode), 0o700)
        self.stop_ok(d)

        sock2 = os.path.join(self.tmp, "group", "g.sock")
        d = self.daemon("--socket-mode", "0660", sock=sock2).start()
        self.assertEqual(stat.S_IMODE(os.stat(sock2).st_mode), 0o660)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(sock2)).st_mode),
                         0o710)
        self.stop_ok(d)

    def test_default_socket_under_xdg_runtime_dir(self):
        env = dict(os.environ, XDG_RUNTIME_DIR=self.tmp)
        d = Daemon([], env=env)
        self.addCleanup(d.kill)
        d.start()
        want = os.path.join(self.tmp, "retriever", "retrieverd.sock")
        self.assertEqual(d.ready_path, want)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(want)).st_mode), 0o700)
        self.assertEqual(ping(want).api_version, 1)
        self.stop_ok(d)

    def test_no_default_socket_without_xdg_runtime_dir(self):
        # A per-user daemon (not root) without XDG_RUNTIME_DIR has no
        # default socket: it says so and what to do. (Root without it is
        # the system daemon, at /run/retriever: docs/daemon.md.) Root
        # runs it as nobody; anyone else as themselves.
        env = dict(os.environ)
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("XDG_CONFIG_HOME", None)
        state = os.path.join(self.tmp, "user-state")
        env["HOME"] = state
        os.makedirs(state)
        as_user = []
        if os.geteuid() == 0:
            os.chown(state, NOBODY, NOBODY)
            os.chmod(self.tmp, 0o755)
            as_user = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                       "--clear-groups"]
        r = subprocess.run(as_user + [DAEMON, "--state-dir", state + "/s",
                                      "--cache-dir", state + "/c"],
                           env=env, capture_output=True, text=True, timeout=READY_TIMEOUT)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("XDG_RUNTIME_DIR", r.stderr)
        self.assertIn("--socket", r.stderr)

    def test_usage_errors(self):
        for args, text in ((["--socket-mode", "0400"], "invalid socket mode '0400'"),
                           (["--socket-mode", "9"], "invalid socket mode"),
                           (["--socket"], "needs a path"),
                           (["--bogus"], "unknown option '--bogus'"),
                           (["extra"], "unexpected argument 'extra'"),
                           (["--socket", "/" + "a" * 200], "too long")):
            with self.subTest(args=args):
                p = subprocess.run([DAEMON] + args, capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL, timeout=READY_TIMEOUT)
                self.assertIn(p.returncode, (1, 2), p.stderr)
                self.assertIn(text, p.stderr)
        p = subprocess.run([DAEMON, "--version"], capture_output=True, text=True,
                           timeout=READY_TIMEOUT)
        self.assertEqual(p.returncode, 0)
        self.assertIn(VERSION, p.stdout)
        p = subprocess.run([DAEMON, "--help"], capture_output=True, text=True,
                           timeout=READY_TIMEOUT)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--socket-mode", p.stdout)

    # -- Who may call --------------------------------------------------------

    CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[2])
import grpc
from retriever.v1 import retriever_pb2 as pb
with grpc.insecure_channel(sys.argv[1]) as ch:
    fn = ch.unary_unary("/retriever.v1.Retriever/Ping",
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=pb.PingResponse.FromString)
    try:
        fn(pb.PingRequest(), timeout=5)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name)
"""

    def ping_as_nobody(self, path):
        def drop():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        p = subprocess.run([sys.executable, "-c", self.CLIENT, target(path), PB_DIR],
                           capture_output=True, text=True, preexec_fn=drop,
                           stdin=subprocess.DEVNULL, timeout=60)
        return p.stdout.strip() or p.stderr

    def test_peer_credentials_decide_who_is_served(self):
        require_root(self, "runs a client as uid %d" % NOBODY)
        os.chmod(self.tmp, 0o711)
        # 0666: the socket admits everyone, the daemon serves them.
        open_sock = os.path.join(self.tmp, "open", "o.sock")
        d = self.daemon("--socket-mode", "0666", sock=open_sock).start()
        self.assertEqual(self.ping_as_nobody(open_sock), "OK")
        self.stop_ok(d)
        # 0600, opened up behind the daemon's back: the kernel lets nobody
        # connect, the daemon's own check refuses it.
        d = self.daemon().start()
        os.chmod(os.path.dirname(self.sock), 0o711)
        os.chmod(self.sock, 0o666)
        self.assertEqual(self.ping_as_nobody(self.sock), "UNAVAILABLE")
        self.assertIn("refused a connection from uid %d" % NOBODY, d.log())
        self.assertEqual(ping(self.sock).api_version, 1)  # root still served
        self.stop_ok(d)

    # -- systemd socket activation ---------------------------------------

    def test_systemd_socket_is_adopted_and_left_in_place(self):
        path = os.path.join(self.tmp, "sd.sock")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.bind(path)
        os.chmod(path, 0o660)
        ls.listen(16)
        d = Daemon([], env=dict(os.environ, XDG_RUNTIME_DIR=self.tmp),
                   pass_fd=ls.fileno())
        self.addCleanup(d.kill)
        d.start()
        self.assertIn("passed by systemd", d.log())
        self.assertEqual(d.ready_path, path)
        self.assertEqual(ping(path).version, VERSION)
        self.stop_ok(d)
        # systemd's socket: not unlinked, mode not changed.
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o660)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "retriever")))

    # -- systemd: sd_notify and reload --------------------------------------

    def notify_socket(self):
        """A datagram socket playing systemd's NOTIFY_SOCKET; returns it and
        a function that collects the messages received so far."""
        path = os.path.join(self.tmp, "notify")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(path)
        ns.settimeout(0.1)
        self.addCleanup(ns.close)
        got = []

        def collect(until=None, timeout=10, count=1):
            """Receive until `count` more messages contain `until` (None:
            for the whole timeout); returns every message received so far."""
            end = time.monotonic() + timeout
            seen = 0
            while time.monotonic() < end:
                try:
                    got.append(ns.recv(4096).decode())
                except socket.timeout:
                    continue
                if until is not None and until in got[-1]:
                    seen += 1
                    if seen >= count:
                        break
            return list(got)
        return path, collect

    def test_sd_notify_ready_status_watchdog_stopping(self):
        path, collect = self.notify_socket()
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        d = self.daemon(env=env).start()
        msgs = collect(until="READY=1")
        self.assertTrue(any("READY=1" in m for m in msgs), msgs)
        # The watchdog is fed at each tick (half its period) while the
        # engine loop is alive; STATUS= says what runs. Counted, not timed.
        msgs = collect(until="WATCHDOG=1", count=3, timeout=20)
        self.assertGreaterEqual(sum("WATCHDOG=1" in m for m in msgs), 3, msgs)
        self.assertTrue(any("STATUS=Serving on" in m and "running" in m for m in msgs), msgs)
        d.proc.send_signal(signal.SIGTERM)
        msgs = collect(until="STOPPING=1")
        self.assertTrue(any("STOPPING=1" in m for m in msgs), msgs)
        self.assertEqual(d.wait_exit(STOP_BOUND + 5), 0, d.log())

    def test_watchdog_starves_while_the_engine_thread_is_stalled(self):
        """The keep-alive proves the engine loop alive, not just the main
        thread: with the engine thread (rvd-engine) stopped, STATUS= ticks
        go on and WATCHDOG=1 stops (systemd would restart the daemon);
        once it runs again the pings come back and the daemon serves.

        The thread alone is stopped with ptrace (PTRACE_SEIZE +
        PTRACE_INTERRUPT on its tid; a stop signal would stop the whole
        process). The test is the daemon's parent, which any ptrace policy
        (Yama's scope 1 included) allows."""
        path, collect = self.notify_socket()
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        d = self.daemon(env=env).start()
        collect(until="READY=1")
        self.assertTrue(any("WATCHDOG=1" in m for m in collect(until="WATCHDOG=1")))
        engine = [int(t) for t, n in thread_names(d.proc.pid).items() if n == "rvd-engine"]
        self.assertEqual(len(engine), 1)
        thread = StoppedThread(engine[0])
        self.addCleanup(thread.resume)
        # Stopped while it held the job table's lock, the main thread's
        # STATUS= (which reads the table) would wait too: then try again.
        for attempt in range(5):
            thread.stop()
            before = len(collect(timeout=0))
            msgs = collect(until="STATUS=", count=3, timeout=5)[before:]
            if sum("STATUS=" in m for m in msgs) >= 3:
                break
            thread.resume()
        else:
            self.fail("the main thread's STATUS= ticks stopped with the engine thread")
        # The tick after the stop may still ping (the loop went round after
        # the tick before); messages of earlier ticks may still have been
        # queued. Six ticks later none may.
        n = len(collect(until="STATUS=", count=3, timeout=10))
        after = collect(until="STATUS=", count=6, timeout=20)[n:]
        self.assertGreaterEqual(sum("STATUS=" in m for m in after), 6, after)
        self.assertFalse([m for m in after if "WATCHDOG=1" in m],
                         "the watchdog was fed while the engine thread was stopped")
        thread.resume()
        n = len(collect(timeout=0))
        again = collect(until="WATCHDOG=1", timeout=20)[n:]
        self.assertTrue(any("WATCHDOG=1" in m for m in again), again)
        self.assertEqual(ping(self.sock).api_version, 1)
        self.assertNotIn("loop failed", d.log())
        self.stop_ok(d)

    def test_sighup_reloads_what_is_reloadable(self):
        conf = os.path.join(self.tmp, "retrieverd.conf")
        with open(conf, "w") as f:
            f.write("max-queued-jobs = 100\nchunk-size = 16M\n")
        path, collect = self.notify_socket()
        env = dict(os.environ, NOTIFY_SOCKET=path)
        d = self.daemon("--config", conf, env=env).start()
        collect(until="READY=1")
        with open(conf, "w") as f:
            f.write("max-queued-jobs = 7\nchunk-size = 8M\n")
        d.proc.send_signal(signal.SIGHUP)
        msgs = collect(until="READY=1")
        self.assertTrue(any("RELOADING=1" in m for m in msgs), msgs)
        # The reload logs one line per changed key, in key order: wait for
        # both, not for the first (read between the two, the log had one).
        d.wait_log("chunk-size", "max-queued-jobs")
        self.assertIn("max-queued-jobs changed from 100 to 7", d.log())
        self.assertIn("warning: reload: chunk-size", d.log())  # needs a restart
        # A broken file changes nothing, and says so.
        with open(conf, "w") as f:
            f.write("max-queued-jobz = 1\n")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("reload failed")
        self.assertIn("reload failed, the running configuration stays", d.log())
        self.assertEqual(ping(self.sock).api_version, 1)
        self.stop_ok(d)

    # -- Stopping ------------------------------------------------------------

    def test_sigterm_exits_zero_and_removes_the_socket(self):
        d = self.daemon().start()
        self.assertEqual(ping(self.sock).api_version, 1)
        self.stop_ok(d, signal.SIGTERM)
        self.assertFalse(os.path.exists(self.sock))
        self.assertIn("received SIGTERM", d.log())
        self.assertIn("retrieverd: stopped", d.log())

    def test_sigint_with_an_idle_client_connected(self):
        """An open client connection does not hold the shutdown up."""
        d = self.daemon().start()
        with grpc.insecure_channel(target(self.sock)) as ch:
            fn = ch.unary_unary("/%s/Ping" % SERVICE,
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.PingResponse.FromString)
            self.assertEqual(fn(pb.PingRequest(), timeout=10).api_version, 1)
            self.stop_ok(d, signal.SIGINT)
        self.assertFalse(os.path.exists(self.sock))

    def test_shutdown_is_bounded_with_calls_in_flight(self):
        """Calls whose request never completes (the client keeps the stream
        open and sends nothing) cannot hold the daemon past its bound."""
        d = self.daemon().start()
        release = threading.Event()
        answered = threading.Event()
        results = []

        def never_sends():
            release.wait(30)
            return
            yield  # a generator that yields nothing until released

        def stuck(method):
            with grpc.insecure_channel(target(self.sock)) as ch:
                fn = ch.stream_unary(method,
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=pb.PingResponse.FromString)
                try:
                    fn(never_sends(), timeout=30)
                    results.append("OK")
                except grpc.RpcError as e:
                    results.append(e.code())
                answered.set()

        threads = [threading.Thread(target=stuck, args=(m,)) for m in
                   ("/%s/Ping" % SERVICE, "/%s/Download" % SERVICE,
                    "/%s/Nope" % SERVICE)]
        for t in threads:
            t.start()
        # The generic slot answers at once, whatever the client still sends;
        # the registered methods wait for their request message.
        self.assertTrue(answered.wait(10))
        self.assertEqual(results, [grpc.StatusCode.UNIMPLEMENTED])
        took = self.stop_ok(d)
        release.set()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 3)
        self.assertNotIn("OK", results)
        # The waiting calls were cancelled after the grace (1 s) had passed.
        self.assertLess(took, STOP_BOUND)

    def test_socket_replaced_meanwhile_is_not_removed(self):
        """At exit the daemon removes only the file it created."""
        d = self.daemon().start()
        os.unlink(self.sock)
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(other.close)
        other.bind(self.sock)
        self.stop_ok(d)
        self.assertTrue(os.path.exists(self.sock))


if __name__ == "__main__":
    unittest.main(verbosity=2)
