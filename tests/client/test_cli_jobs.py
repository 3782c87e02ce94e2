#!/usr/bin/python3
"""retrieverctl's job commands and finding the daemon, end to end: the real
binary against the real retrieverd and real origins (nginx, the fault
origin).

  JobsTest       status, list, watch, cancel, stats, version (text and
                 --json, each field checked), a --detach id through all of
                 them, unknown ids and another user's job, each --help.
  AutostartTest  from a clean per-user environment (HOME, XDG_RUNTIME_DIR,
                 XDG_STATE_HOME, ... in a temporary directory): download and
                 status start a per-user retrieverd, which the test finds by
                 the pid it logged and stops by that pid; idle exit;
                 --no-autostart and RETRIEVER_NO_AUTOSTART=1.
  LocalTest      download --local while a retrieverd owns the default state
                 directory: one line, then through the daemon; --state-dir
                 gives --local a directory of its own.

Environment (set by ctest): RV_CTL, RV_DAEMON, RV_VERSION, PYTHONPATH
reaching tests/fixtures. By hand:

  RV_CTL=build/client/retrieverctl RV_DAEMON=build/daemon/retrieverd \\
  RV_VERSION=0.1.0 PYTHONPATH=tests/fixtures \\
  /usr/bin/python3 tests/client/test_cli_jobs.py -v

Every daemon and origin is started here and stopped by PID.
"""
import json
import os
import re
import select
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
from shown import shown  # noqa: E402

CTL = os.environ["RV_CTL"]
VERSION = os.environ["RV_VERSION"]
RUN_TIMEOUT = 120
NOBODY = 65534
JOB_KEYS = {"id", "state", "detached", "subscribers", "created_unix_ms", "ended_unix_ms",
            "age_seconds", "objects_done", "objects_total", "bytes", "bytes_total",
            "rate_bps", "eta_seconds", "retries", "objects"}
OBJECT_KEYS = {"url", "destination", "state", "bytes", "bytes_total", "rate_bps",
               "eta_seconds", "retries", "sha256", "crc32c", "error"}
STATS_KEYS = {"running_jobs", "queued_jobs", "subscribers", "connections", "rate_bps",
              "bytes_from_origin", "bytes_from_cache", "done_jobs", "failed_jobs",
              "cancelled_jobs", "cache_hit_ratio", "cache_bytes", "cache_quota"}
SLOW = 4 << 20      # bytes; at SLOW_RATE on one connection it runs for many seconds
SLOW_RATE = 100000  # bytes/s
WALK = 1 << 20      # a job that ends by itself soon: WALK bytes at WALK_RATE
WALK_RATE = 700000


def ctl(*args, env=None, cwd=None, preexec_fn=None):
    return subprocess.run([CTL, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL,
                          preexec_fn=preexec_fn)


_PB = None


def retriever_pb2():
    """The Python messages of proto/, generated once (protoc --python_out)."""
    global _PB
    if _PB is None:
        out = tempfile.mkdtemp(prefix="rv-ctl-jobs-pb2-")
        subprocess.run([os.environ["RV_PROTOC"], "--python_out", out, "-I",
                        os.environ["RV_PROTO_DIR"], "retriever/v1/retriever.proto"], check=True)
        sys.path.insert(0, out)
        from retriever.v1 import retriever_pb2 as pb
        _PB = pb
    return _PB


def wait_pid_exit(pid, timeout):
    """Wait (no polling: a pidfd becomes readable at the exit) until pid is
    gone; True if it went within timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def kill_pid(pid):
    """Stop a daemon we did not spawn (an autostarted one) by its pid."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_pid_exit(pid, 15):
        os.kill(pid, signal.SIGKILL)
        wait_pid_exit(pid, 15)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ctl-jobs-root-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = {}
        for seed, (name, size) in enumerate([("slow.bin", SLOW), ("walk.bin", WALK),
                                             ("small.bin", 100000)]):
            cls.sha[name] = sha256_file(make_file(os.path.join(cls.root, name), size,
                                                  seed + 7))
        cls.ng = NginxOrigin(cls.root).start()
        cls.addClassCleanup(cls.ng.stop)
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-ctl-jobs-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.out)
        os.chmod(self.out, 0o777)

    def assert_rc(self, p, rc):
        self.assertEqual(p.returncode, rc, "exit %d, expected %d\nstdout: %s\nstderr: %s"
                         % (p.returncode, rc, p.stdout, p.stderr))

    def slow_url(self, case):
        return self.fo.url("/slow.bin", rate=SLOW_RATE, case=case)


class JobsTest(Base):
    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.d = daemons.Daemon(["--socket", self.sock, "--socket-mode", "0666"])
        self.addCleanup(self.d.kill)
        self.d.start()
        os.chmod(os.path.dirname(self.sock), 0o755)

    def tearDown(self):
        self.assertEqual(self.d.stop()[0], 0, self.d.log())
        self.d.assert_clean(self)

    def c(self, *args, **kw):
        return ctl(*args, "--socket", self.sock, **kw)

    def detach(self, url, name, *extra):
        p = self.c("download", "--detach", "-c", "1", "-o", os.path.join(self.out, name),
                   *extra, url)
        self.assert_rc(p, 0)
        job = p.stdout.strip()
        self.assertRegex(job, r"^[0-9a-f]{32}$")
        return job

    def check_job_json(self, j, job, url, dest, size):
        self.assertEqual(set(j), JOB_KEYS)
        self.assertEqual(j["id"], job)
        self.assertTrue(j["detached"])
        self.assertEqual(j["objects_total"], 1)
        self.assertGreaterEqual(j["age_seconds"], 0)
        self.assertGreater(j["created_unix_ms"], 0)
        self.assertEqual(len(j["objects"]), 1)
        o = j["objects"][0]
        self.assertEqual(set(o), OBJECT_KEYS)
        self.assertEqual(o["url"], shown(url))
        self.assertEqual(o["destination"], dest)
        if o["bytes_total"] is not None:
            self.assertEqual(o["bytes_total"], size)
        return o

    def test_detached_job_through_status_list_cancel(self):
        url = self.slow_url("detach")
        dest = os.path.join(self.out, "s.bin")
        job = self.detach(url, "s.bin")

        p = self.c("status", job)
        self.assert_rc(p, 0)
        self.assertRegex(p.stdout, r"^job %s: (queued|running) \(detached\), 0 of 1 object"
                         % job)
        self.assertIn("  %s -> %s\n" % (shown(url), dest), p.stdout)

        p = self.c("status", "--json", job)
        self.assert_rc(p, 0)
        j = json.loads(p.stdout)
        self.check_job_json(j, job, url, dest, SLOW)
        self.assertIn(j["state"], ("queued", "running"))
        self.assertIsNone(j["ended_unix_ms"])

        p = self.c("list")
        self.assert_rc(p, 0)
        self.assertTrue(p.stdout.startswith("ID "), p.stdout)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith(job)]
        self.assertEqual(len(line), 1, p.stdout)
        self.assertRegex(line[0], r"^%s  (queued|running) +0/1 " % job)
        self.assertTrue(line[0].endswith(shown(url)), line[0])

        p = self.c("list", "--json")
        self.assert_rc(p, 0)
        jobs = [json.loads(ln) for ln in p.stdout.splitlines()]
        self.assertEqual([x["id"] for x in jobs], [job])
        self.check_job_json(jobs[0], job, url, dest, SLOW)

        p = self.c("status")
        self.assert_rc(p, 0)
        self.assertRegex(p.stdout, r"^retrieverd %s \(API 1\) at %s: 1 of your jobs running, "
                         r"0 queued\n" % (re.escape(VERSION), re.escape(self.sock)))
        self.assertIn("\n" + job + "  ", p.stdout)
        p = self.c("status", "--json")
        self.assert_rc(p, 0)
        s = json.loads(p.stdout)
        self.assertEqual(set(s), {"socket", "version", "api_version", "running", "queued",
                                  "jobs"})
        self.assertEqual((s["socket"], s["version"], s["api_version"]), (self.sock, VERSION, 1))
        self.assertEqual(s["running"] + s["queued"], 1)
        self.assertEqual([x["id"] for x in s["jobs"]], [job])

        p = self.c("stats", "--json")
        self.assert_rc(p, 0)
        st = json.loads(p.stdout)
        self.assertEqual(set(st), STATS_KEYS)
        self.assertEqual(st["running_jobs"] + st["queued_jobs"], 1)
        self.assertEqual(st["cancelled_jobs"], 0)
        self.assertEqual(st["cache_quota"], 10 << 30)  # the daemon's default
        p = self.c("stats")
        self.assert_rc(p, 0)
        self.assertRegex(p.stdout, r"^jobs: +[01] running, [01] queued, 0 subscribers\n"
                         r"ended: +0 done, 0 failed, 0 cancelled \(in the history\)\n")
        self.assertIn("\ncache: ", p.stdout)
        self.assertIn(" of 10.0 GiB\n", p.stdout)
        self.assertIn("\nserved: ", p.stdout)

        p = self.c("cancel", job)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "job %s: cancelled\n" % job)
        p = self.c("status", "--json", job)
        self.assert_rc(p, 0)
        j = json.loads(p.stdout)
        self.assertEqual(j["state"], "cancelled")
        self.assertIsNotNone(j["ended_unix_ms"])
        self.assertEqual(j["objects"][0]["state"], "cancelled")
        self.assertFalse(os.path.exists(dest))

        # Ended: not in the default list; in --all and --state cancelled.
        p = self.c("list")
        self.assert_rc(p, 0)
        self.assertNotIn(job, p.stdout)
        self.assertEqual(p.stderr, "retrieverctl: no queued or running jobs\n")
        for args in (["--all"], ["--state", "cancelled"], ["--state", "done,cancelled"]):
            p = self.c("list", "--json", *args)
            self.assert_rc(p, 0)
            self.assertEqual([json.loads(ln)["id"] for ln in p.stdout.splitlines()], [job],
                             args)
        p = self.c("list", "--json", "--state", "done")
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "")
        p = self.c("stats", "--json")
        self.assertEqual(json.loads(p.stdout)["cancelled_jobs"], 1)
        p = self.c("cancel", "--json", job)  # again: changes nothing, says so
        self.assert_rc(p, 0)
        self.assertEqual(json.loads(p.stdout), {"id": job, "state": "cancelled",
                                                "subscribers": 0, "error": None})

    def test_watch_follows_a_detached_job_to_its_end(self):
        url = self.fo.url("/walk.bin", rate=WALK_RATE, case="watch")
        dest = os.path.join(self.out, "w.bin")
        job = self.detach(url, "w.bin")
        p = self.c("watch", job)
        self.assert_rc(p, 0)
        self.assertRegex(p.stderr, r"done: '%s' 1.0 MiB in " % re.escape(dest))
        self.assertEqual(sha256_file(dest), self.sha["walk.bin"])
        # Watching an ended job: its result at once, in text and in JSON.
        p = self.c("watch", "--json", job)
        self.assert_rc(p, 0)
        j = json.loads(p.stdout)
        self.assertEqual((j["url"], j["path"], j["state"], j["bytes"], j["error"]),
                         (shown(url), dest, "done", WALK, None))
        self.assertEqual(p.stderr.count("done: "), 1, p.stderr)

    def test_watch_live_then_cancel_from_elsewhere(self):
        url = self.slow_url("live")
        job = self.detach(url, "live.bin")
        w = subprocess.Popen([CTL, "--socket", self.sock, "watch", job], text=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: w.poll() is None and w.kill())
        # Live: the plain progress renderer's first line (download's) names
        # the destination; read as it comes, bounded.
        seen = []
        while len(seen) < 50:
            r, _, _ = select.select([w.stderr], [], [], 30)
            self.assertTrue(r, "no progress line from watch: %s" % seen)
            line = w.stderr.readline()
            self.assertTrue(line, "watch ended early: %s" % seen)
            seen.append(line)
            if line.startswith("progress: "):
                break
        self.assertIn(os.path.join(self.out, "live.bin"), seen[-1])
        # cancel stops the job although this user's watch is subscribed to it.
        p = self.c("cancel", job)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "job %s: cancelled\n" % job)
        out, err = w.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(w.returncode, 130, err)
        self.assertIn("'%s': download was cancelled" % shown(url), err)
        p = self.c("status", "--json", job)
        self.assertEqual(json.loads(p.stdout)["state"], "cancelled")

    def test_watch_exit_code_is_the_jobs(self):
        url = self.ng.url("/missing.bin")
        job = self.detach(url, "m.bin")
        p = self.c("watch", job)
        self.assert_rc(p, 5)  # the origin refused: download's code for it
        self.assertIn("'%s'" % url, p.stderr)
        p = self.c("watch", "--json", job)
        self.assert_rc(p, 5)
        j = json.loads(p.stdout)
        self.assertEqual(j["state"], "failed")
        self.assertEqual(j["error"]["code"], "RV_E_NOT_FOUND")

    def test_unknown_ids(self):
        for job in ("0123456789abcdef0123456789abcdef", "nope"):
            msg = ("retrieverctl: no job '%s' of yours ('retrieverctl list --all' shows your "
                   "jobs)\n" % job)
            for cmd in (["status"], ["status", "--json"], ["watch"], ["cancel"]):
                p = self.c(*cmd, job)
                self.assert_rc(p, 2)
                self.assertEqual(p.stderr, msg, cmd)
                self.assertEqual(p.stdout, "", cmd)
        # One bad id among good ones: the good one is still cancelled.
        job = self.detach(self.slow_url("mixed"), "x.bin")
        p = self.c("cancel", "--json", "ffffffffffffffffffffffffffffffff", job)
        self.assert_rc(p, 2)
        lines = [json.loads(ln) for ln in p.stdout.splitlines()]
        self.assertEqual(lines[0]["error"], "no such job")
        self.assertEqual((lines[1]["id"], lines[1]["state"]), (job, "cancelled"))

    def test_another_users_job_is_no_job(self):
        daemons.require_root(self, "a second uid calls the daemon")
        job = self.detach(self.slow_url("other"), "o.bin")

        def nobody():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        msg = ("retrieverctl: no job '%s' of yours ('retrieverctl list --all' shows your "
               "jobs)\n" % job)
        for cmd in ("status", "watch", "cancel"):
            p = self.c(cmd, job, preexec_fn=nobody, cwd="/")
            self.assert_rc(p, 2)
            self.assertEqual(p.stderr, msg)
        p = self.c("list", "--all", "--json", preexec_fn=nobody, cwd="/")
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "")
        # Still running for its owner.
        p = self.c("status", "--json", job)
        self.assertIn(json.loads(p.stdout)["state"], ("queued", "running"))
        self.assert_rc(self.c("cancel", job), 0)

    def test_version(self):
        p = self.c("version")
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "retrieverctl %s\nretrieverd %s (API 1) at %s\n"
                         % (VERSION, VERSION, self.sock))
        p = self.c("version", "--json")
        self.assert_rc(p, 0)
        self.assertEqual(json.loads(p.stdout), {"client": VERSION, "daemon": VERSION,
                                                "api_version": 1, "socket": self.sock})
        gone = os.path.join(self.tmp, "none.sock")
        p = ctl("version", "--json", "--socket", gone)
        self.assert_rc(p, 0)
        self.assertEqual(json.loads(p.stdout), {"client": VERSION, "daemon": None,
                                                "api_version": None, "socket": gone})
        p = ctl("version", "--socket", gone)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout, "retrieverctl %s\nretrieverd: not running at %s\n"
                         % (VERSION, gone))

    def test_help_of_each_command(self):
        for cmd in ("status", "list", "watch", "cancel", "stats", "version"):
            for args in ([cmd, "--help"], ["help", cmd]):
                p = ctl(*args)
                self.assert_rc(p, 0)
                self.assertTrue(p.stdout.startswith("Usage: retrieverctl %s " % cmd), p.stdout)
                self.assertIn("--json", p.stdout)
        p = ctl("list", "--state", "bogus")
        self.assert_rc(p, 2)
        self.assertIn("queued, running, done, failed or cancelled", p.stderr)
        p = ctl("watch")
        self.assert_rc(p, 2)
        self.assertIn("no JOB given", p.stderr)
        p = ctl("watch", "a", "b")
        self.assert_rc(p, 2)


class UserEnv(Base):
    """A clean per-user environment in the test's directory."""

    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.tmp, "home")
        self.run_dir = os.path.join(self.tmp, "xdg-run")
        os.makedirs(self.home)
        os.makedirs(self.run_dir, 0o700)
        self.state = os.path.join(self.tmp, "xdg-state")
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("RETRIEVER_SOCKET", "RETRIEVER_NO_AUTOSTART",
                                 "RETRIEVER_IDLE_EXIT")}
        self.env.update(HOME=self.home, XDG_RUNTIME_DIR=self.run_dir,
                        XDG_STATE_HOME=self.state,
                        XDG_CACHE_HOME=os.path.join(self.tmp, "xdg-cache"),
                        XDG_CONFIG_HOME=os.path.join(self.tmp, "xdg-config"))
        self.sock = os.path.join(self.run_dir, "retriever", "retrieverd.sock")
        self.log = os.path.join(self.state, "retriever", "retrieverd.log")

    def started_pid(self, p):
        """The autostarted daemon's pid, from retrieverctl's line and the
        daemon's own ready line; the test stops it by that pid."""
        m = re.search(r"^retrieverctl: starting retrieverd \(pid (\d+), log '(.*)'\)$",
                      p.stderr, re.M)
        self.assertIsNotNone(m, p.stderr)
        pid = int(m.group(1))
        self.addCleanup(self.assert_log_clean)  # runs after the kill below
        self.addCleanup(kill_pid, pid)
        self.assertEqual(m.group(2), self.log)
        with open(self.log) as f:
            self.assertIn("ready '%s' (version %s, pid %d)" % (self.sock, VERSION, pid),
                          f.read())
        # Its own session: Ctrl-C in the caller's terminal is not its.
        self.assertEqual(os.getsid(pid), pid)
        return pid


    def assert_log_clean(self):
        with open(self.log) as f:
            log = f.read()
        self.assertNotIn("Sanitizer", log)
        self.assertNotIn("runtime error", log)


class AutostartTest(UserEnv):
    """No daemon and no socket named: the per-user one is started."""

    def test_download_and_status_start_one_daemon(self):
        dest = os.path.join(self.out, "a.bin")
        p = ctl("download", "-o", dest, self.ng.url("/small.bin"), env=self.env)
        self.assert_rc(p, 0)
        pid = self.started_pid(p)
        self.assertEqual(sha256_file(dest), self.sha["small.bin"])
        # The next commands find it: no second daemon.
        p = ctl("status", env=self.env)
        self.assert_rc(p, 0)
        self.assertNotIn("starting", p.stderr)
        self.assertTrue(p.stdout.startswith("retrieverd %s (API 1) at %s:" % (VERSION,
                                                                                self.sock)))
        p = ctl("list", "--all", "--json", env=self.env)
        self.assert_rc(p, 0)
        self.assertEqual(json.loads(p.stdout)["state"], "done")
        kill_pid(pid)
        self.assertTrue(wait_pid_exit(pid, 0))

    def test_status_starts_it_and_it_exits_when_idle(self):
        env = dict(self.env, RETRIEVER_IDLE_EXIT="1")
        p = ctl("status", env=env)
        self.assert_rc(p, 0)
        pid = self.started_pid(p)
        self.assertTrue(wait_pid_exit(pid, 60), "the autostarted daemon did not exit idle")
        with open(self.log) as f:
            self.assertIn("idle for 1 s (idle-exit), shutting down", f.read())
        self.assertFalse(os.path.exists(self.sock))

    def test_an_open_read_keeps_it_from_idle_exit(self):
        import grpc
        pb = retriever_pb2()
        env = dict(self.env, RETRIEVER_IDLE_EXIT="1")
        # Bigger than what gRPC buffers for a stream nobody reads (it would
        # take a small object whole, and the call would end at once).
        make_file(os.path.join(self.root, "read.bin"), 64 << 20, 99)
        dest = os.path.join(self.out, "r.bin")
        p = ctl("download", "-o", dest, self.ng.url("/read.bin"), env=env)
        self.assert_rc(p, 0)
        pid = self.started_pid(p)
        p = ctl("list", "--all", "--json", env=env)
        self.assert_rc(p, 0)
        job = json.loads(p.stdout)["id"]
        ch = grpc.insecure_channel("unix://" + self.sock)
        self.addCleanup(ch.close)
        read = ch.unary_stream("/retriever.v1.Retriever/Read",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=pb.ReadChunk.FromString)
        it = read(pb.ReadRequest(job_id=job, object_index=0), timeout=60)
        self.assertEqual(next(it).offset, 0)
        # The finished job leaves nothing running or watched, but the Read
        # is open (and not drained): the daemon stays past its idle-exit.
        self.assertFalse(wait_pid_exit(pid, 3), "exited with a Read open")
        it.cancel()
        self.assertTrue(wait_pid_exit(pid, 60), "did not exit idle after the Read")

    def test_no_autostart(self):
        for args, env in ((["status", "--no-autostart"], self.env),
                          (["status"], dict(self.env, RETRIEVER_NO_AUTOSTART="1")),
                          (["download", "--no-autostart", "-o", os.path.join(self.out, "x"),
                            self.ng.url("/small.bin")], self.env),
                          (["list"], self.env), (["stats"], self.env)):
            p = ctl(*args, env=env)
            self.assert_rc(p, 8)
            self.assertIn("no retrieverd is listening at '%s'" % self.sock, p.stderr)
            self.assertNotIn("starting", p.stderr)
        self.assertFalse(os.path.exists(self.log))
        self.assertFalse(os.path.exists(self.sock))
        self.assertFalse(os.path.exists(os.path.join(self.out, "x")))


class LocalTest(UserEnv):
    """download --local while the per-user daemon owns the default state
    directory."""

    def test_local_goes_through_the_daemon_that_owns_the_directory(self):
        d = daemons.Daemon(["--socket", self.sock,
                            "--state-dir", os.path.join(self.state, "retriever"),
                            "--cache-dir", os.path.join(self.tmp, "xdg-cache", "retriever")],
                           env=self.env)
        self.addCleanup(d.kill)
        d.start()
        dest = os.path.join(self.out, "l.bin")
        p = ctl("download", "--local", "-o", dest, self.ng.url("/small.bin"), env=self.env)
        self.assert_rc(p, 0)
        self.assertEqual(sha256_file(dest), self.sha["small.bin"])
        lines = p.stderr.splitlines()
        self.assertEqual(lines[0], "retrieverctl: --local: the state directory '%s' is in use "
                         "(by retrieverd, or another --local download); downloading through "
                         "retrieverd instead (--state-dir DIR: --local with a directory of "
                         "its own)" % os.path.join(self.state, "retriever"))
        self.assertNotIn("starting", p.stderr)
        # The daemon did it: its history has the job.
        p2 = ctl("list", "--all", "--json", env=self.env)
        self.assertEqual(json.loads(p2.stdout)["objects"][0]["destination"], dest)

        # --state-dir: --local with a directory of its own, no daemon.
        own = os.path.join(self.tmp, "own")
        dest2 = os.path.join(self.out, "l2.bin")
        p = ctl("download", "--local", "--state-dir", own, "-o", dest2,
                self.ng.url("/small.bin"), env=self.env)
        self.assert_rc(p, 0)
        self.assertNotIn("in use", p.stderr)
        self.assertTrue(os.path.isdir(own))
        p2 = ctl("list", "--all", "--json", env=self.env)
        self.assertEqual(len(p2.stdout.splitlines()), 1)

        # An engine option only --local applies: no silent hand-over.
        p = ctl("download", "--local", "--retries", "1", "-o", os.path.join(self.out, "l3"),
                self.ng.url("/small.bin"), env=self.env)
        self.assert_rc(p, 3)
        self.assertIn("state directory is in use", p.stderr)
        self.assertIn("--state-dir", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out, "l3")))
        self.assertEqual(d.stop()[0], 0, d.log())


if __name__ == "__main__":
    unittest.main()
