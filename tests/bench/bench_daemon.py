#!/usr/bin/python3
"""bench_daemon.py -- retrieverd measured end to end (issues 4 and 19).

Four scenarios, each printed with its targets as MET or MISSED (or as
information where issue 4 sets no number). Not a pass/fail test: it exits
0 whenever the benchmark itself ran; failed runs are reported loudly.

  D1  A download through the daemon against `retrieverctl download
      --local`, same run, interleaved, both with durable state, on the
      data and origins of bench.py's scenarios 1 (1 GiB from nginx),
      2 (1 GiB from the limited origin: 25 MiB/s per connection, 20 ms
      before each response) and 3 (1000 x 64 KiB from nginx). Rows:
        local  retrieverctl download --local as a user runs it (no
               digest, default delivery), fresh --state-dir and
               --cache-dir per run: the baseline;
        localdg  the same with --digest (what a digest costs; the
               daemon once digested every object, and this was its
               baseline, which hid that cost: issue 19); judged against
               local (<= 1.3x) in D1.1 and D1.2;
        rpc    retrieverd via gRPC from this script, reading batched
               events (batch_events, as retrieverctl does), no digest:
               wall time from the submit to the last Completed event
               (judged);
        rpcdg  the same asking for a digest (DownloadRequest.digest), in
               D1.1 and D1.2; judged against rpc (<= 1.3x);
        ctl    retrieverctl --socket S download (daemon mode), the process
               run, for information;
        curl   curl (one connection; --parallel-max 16 over the small
               files), no state, for information.
      The daemon is restarted with an empty state and cache before each of
      its runs (not timed), as --local gets a fresh state; every daemon run
      asks for a URL of its own (a "bench=N" query, ignored by the
      origins), so no run is a cache hit of an earlier one (checked:
      Completed.from_cache). One untimed warm-up run per row, then the
      rounds, interleaved. Target (issue 19): rpc's median wall time
      <= 1.10x local's; each row's min-max is printed as its spread.
  D2  Status latency: --callers concurrent callers (default 64), each on
      its own channel and connection, --calls calls each, spread over
      --status-procs client processes (threads in each); back to back and
      paced (one call per --pace-ms), on an idle daemon and while it
      downloads 1 GiB from the fault origin at --d2-rate per connection.
      p50/p90/p99/max per condition; no target in issue 4.
  D3  RSS after start (VmRSS) and with --queued-jobs detached jobs waiting
      (max-running-jobs 1, one job trickling from a slow origin): VmRSS and
      VmHWM from /proc/PID/status; idle CPU (utime+stime from
      /proc/PID/stat, and context switches of all threads) over
      --idle-seconds after start and after a download. Target: idle CPU
      <= 0.1% of one core.
  D4  Peak RSS while serving 16 clients: 16 callers, each on its own
      connection, submit at once one download each of a --d4-size object
      of its own (nginx, -c 16, no digest); the daemon's VmHWM from just
      before the submits to the last Completed. Target (issue 19): <= 64
      MiB.

Usage:
    bench_daemon.py --retrieverctl PATH [--retrieverd PATH]
                    [--scenario D1,D2,D3,D4] [--d1 1,2,3] [--repeat N]
                    [--repeat-small N] [--callers N] [--calls N]
                    [--status-procs N] [--pace-ms MS] [--d2-rate BPS]
                    [--idle-seconds S] [--queued-jobs N] [--workdir DIR]
                    [--settle-max S] [--markdown]

Uses bench.py's fairness rules (Runner.prepare: outputs removed, sync,
sources in the page cache, wait for a quiet machine) and its data. Needs
/usr/bin/python3 with python3-grpcio and python3-protobuf, protoc, nginx,
fincore. docs/benchmarks.md describes the method.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (also puts tests/fixtures on sys.path)
from bench import GIB, MIB, say  # noqa: E402
import origins  # noqa: E402

try:
    import grpc
except ImportError:                     # pragma: no cover
    sys.exit("bench_daemon.py: needs grpc (Debian python3-grpcio); run it "
             "with /usr/bin/python3")

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SERVICE = "/retriever.v1.Retriever/"
SCENARIOS = ("D1", "D2", "D3", "D4")
D1_SUBS = (1, 2, 3)
D1_TARGET = 1.10             # daemon wall time <= this x --local's
DIGEST_TARGET = 1.30         # a digested 1 GiB <= this x an undigested one
D4_CLIENTS = 16              # D4: callers at once
D4_RSS_MAX_MIB = 64          # D4: the daemon's peak RSS target
IDLE_CPU_MAX = 0.001         # idle CPU <= this fraction of one core
D2_MIN_S = 30                # D2's download lasts at least this long
D3_RATE = 32 * 1024          # D3's running job: bytes/s per connection
D3_FILE_SIZE = 64 * MIB      # D3's "a download" and its queued sources
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
SOCK_MAX = 107               # sun_path


def ser(m):
    return m.SerializeToString()


def size_text(n):
    return "%d GiB" % (n // GIB) if n % GIB == 0 else "%d MiB" % (n // MIB)


def generate_pb(protoc, outdir):
    """retriever_pb2 from proto/, generated into outdir; the module."""
    os.makedirs(outdir, exist_ok=True)
    subprocess.run([protoc, "--python_out", outdir, "-I",
                    os.path.join(REPO, "proto"),
                    "retriever/v1/retriever.proto"], check=True)
    sys.path.insert(0, outdir)
    from retriever.v1 import retriever_pb2
    return retriever_pb2


# ---------------------------------------------------------------------------
# The daemon, and what /proc says about it
# ---------------------------------------------------------------------------

def proc_status(pid):
    """{field: value} of /proc/PID/status (VmRSS, VmHWM in kB as ints)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            value = value.strip()
            if value.endswith(" kB"):
                value = int(value[:-3])
            out[key] = value
    return out


def ctx_switches(pid):
    """Voluntary + involuntary context switches of every thread of pid: a
    thread that wakes up counts one each time it sleeps again."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:",
                                        "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            pass            # a thread that ended meanwhile
    return total


class Daemon:
    """One retrieverd with its own socket, state, cache and (empty) config
    under `base`. Its stderr goes to base/retrieverd.log through a thread
    that also notices the ready line."""

    def __init__(self, binary, base, extra=(), env=None):
        self.binary = binary
        self.base = base
        self.sock = os.path.join(base, "run", "retrieverd.sock")
        if len(self.sock) > SOCK_MAX:
            raise SystemExit("bench_daemon.py: socket path %s is longer "
                             "than %d bytes; use a shorter --workdir"
                             % (self.sock, SOCK_MAX))
        self.state = os.path.join(base, "state")
        self.cache = os.path.join(base, "cache")
        self.conf = os.path.join(base, "retrieverd.conf")
        self.log_path = os.path.join(base, "retrieverd.log")
        # No cache eviction inside a timed run: runs of one scenario fill
        # the cache with distinct objects (see the module docstring).
        self.argv = [binary, "--socket", self.sock, "--state-dir",
                     self.state, "--cache-dir", self.cache, "--config",
                     self.conf, "--cache-quota", "0"] + list(extra)
        self.env = env
        self.proc = None
        self.ready = threading.Event()
        self.reader = None

    @property
    def pid(self):
        return self.proc.pid

    def _read(self, log):
        for raw in self.proc.stderr:
            log.write(raw)
            log.flush()
            if raw.startswith(b"retrieverd: ready '"):
                self.ready.set()
        log.close()

    def start(self):
        os.makedirs(self.base, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("# empty: defaults and the flags of bench_daemon.py\n")
        os.chmod(self.conf, 0o600)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)
        self.reader = threading.Thread(
            target=self._read, args=(open(self.log_path, "ab"),), daemon=True)
        self.reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("retrieverd did not become ready:\n"
                                   + self.log_tail())
        return self

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def cpu_s(self):
        return bench._proc_cpu_s([self.pid])

    def vm(self):
        """(VmRSS, VmHWM) in KiB; (0, 0) once it has exited."""
        try:
            st = proc_status(self.pid)
        except OSError:
            return 0, 0
        return st.get("VmRSS", 0), st.get("VmHWM", 0)

    def died(self):
        """'' while it runs, else a sentence with its exit status."""
        rc = self.proc.poll()
        return "" if rc is None else "retrieverd exited (status %s)" % rc

    def reset_peak(self):
        """Reset VmHWM to the current RSS (clear_refs 5, Linux >= 4.0), so
        the next VmHWM is the peak of what happens in between."""
        with open("/proc/%d/clear_refs" % self.pid, "w") as f:
            f.write("5")

    def stop(self):
        """SIGTERM, wait (bounded), SIGKILL if needed; (status, seconds)."""
        if not self.proc or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        took = time.monotonic() - t0
        self.reader.join(5)
        self.proc.stderr.close()
        return rc, took

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.reader:
            self.reader.join(5)
            self.proc.stderr.close()
            self.reader = None


class Client:
    """A channel to a daemon and the calls this script makes."""

    def __init__(self, pb, sock, own_connection=False):
        self.pb = pb
        opts = [("grpc.use_local_subchannel_pool", 1)] if own_connection \
            else []
        self.ch = grpc.insecure_channel("unix://" + sock, options=opts)
        self._download = self.ch.unary_stream(
            SERVICE + "Download", request_serializer=ser,
            response_deserializer=pb.JobEvent.FromString)
        self._status = self.ch.unary_unary(
            SERVICE + "Status", request_serializer=ser,
            response_deserializer=pb.Job.FromString)
        self._stats = self.ch.unary_unary(
            SERVICE + "Stats", request_serializer=ser,
            response_deserializer=pb.StatsResponse.FromString)

    def close(self):
        self.ch.close()

    def download(self, pairs, connections=0, detach=False, timeout=None,
                 batch=False, digest=False):
        """The event stream of one job of (url, destination) pairs; with
        batch, messages may carry several events (read them with
        events()). A digest (SHA-256) only when asked: a daemon from
        before issue 19 digests every object regardless."""
        pb = self.pb
        req = pb.DownloadRequest(
            sources=[pb.Source(url=u, destination=d) for u, d in pairs],
            connections=connections, detach=detach, batch_events=batch,
            digest=digest)
        return self._download(req, timeout=timeout)

    def status(self, job_id, timeout=10):
        return self._status(self.pb.StatusRequest(job_id=job_id),
                            timeout=timeout)

    def stats(self):
        return self._stats(self.pb.StatsRequest(), timeout=10)


def events(stream):
    """The events of a stream, with batches (JobEvent.batch) opened."""
    for msg in stream:
        if len(msg.batch):
            yield from msg.batch
        else:
            yield msg


def follow(stream, n_objects):
    """Read a job's events to the end. Returns (t_last_completed or None,
    problem or "", cache hits): the time the last of n_objects Completed
    events arrived, and why the job did not simply succeed."""
    done = hits = 0
    t_end = None
    problem = ""
    try:
        for ev in events(stream):
            kind = ev.WhichOneof("event")
            if kind == "completed":
                done += 1
                hits += ev.completed.from_cache
                if done == n_objects:
                    t_end = time.monotonic()
            elif kind in ("failed", "cancelled") and not problem:
                err = ev.failed.error if kind == "failed" else None
                problem = "object %d %s%s" % (
                    ev.object_index, kind,
                    ": %s %s (%s)" % (err.code, err.message, err.detail)
                    if err else "")
    except grpc.RpcError as e:
        problem = problem or "RPC ended with %s: %s" % (e.code(), e.details())
    if not problem and done != n_objects:
        problem = "%d of %d objects completed" % (done, n_objects)
    if not problem and hits:
        problem = "%d cache hits (a run must not reuse an earlier one)" % hits
    return t_end, problem, hits


# ---------------------------------------------------------------------------
# D1: one runner for the three kinds of rows
# ---------------------------------------------------------------------------

class DRow(bench.Row):
    """A D1 row: kind "local" (argv fixed, run by bench's rules), "rpc"
    (pairs(n) gives the (url, destination) pairs of run n) or "ctl" (argv
    from argv_for(n))."""

    def __init__(self, *args, kind, pairs=None, argv_for=None,
                 connections=0, digest=False, **kw):
        super().__init__(*args, **kw)
        self.kind = kind
        self.pairs = pairs
        self.argv_for = argv_for
        self.connections = connections
        self.digest = digest      # rpc: DownloadRequest.digest

    def client_cpu(self):
        values = [r.client_cpu for r in self.ok_runs()
                  if r.client_cpu is not None]
        return statistics.median(values) if values else None


class DaemonRunner(bench.Runner):
    """bench.Runner plus runs through a daemon. Every run, of any kind,
    records the CPU time of the process that ran the engine (the --local
    process, or the daemon), the client's (this script, or retrieverctl in
    daemon mode), the origin's, and everybody else's."""

    def measure_d1(self, row, origin, origin_pids_, sources, daemon, client,
                   n):
        self.prepare(row, sources)
        if row.kind != "local":
            daemon.reset_peak()
        stats = getattr(origin, "stats", None)
        body_before = stats()["body_bytes"] if stats else None
        origin_before = bench._proc_cpu_s(origin_pids_)
        system_before = bench._system_task_cpu_s()
        daemon_before = daemon.cpu_s()
        self_before = resource.getrusage(resource.RUSAGE_SELF)

        problem = ""
        tool_cpu = 0.0
        rss_kib = 0
        if row.kind == "rpc":
            pairs = row.pairs(n)
            t0 = time.monotonic()
            stream = client.download(pairs, connections=row.connections,
                                     timeout=self.timeout, batch=True,
                                     digest=row.digest)
            t_end, problem, _ = follow(stream, len(pairs))
            wall = (t_end or time.monotonic()) - t0
        else:
            if row.kind == "ctl":
                row.argv = row.argv_for(n)
            wall, usage, problem = self.run_tool(row)
            tool_cpu = usage.ru_utime + usage.ru_stime
            rss_kib = usage.ru_maxrss
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        daemon_cpu = daemon.cpu_s() - daemon_before
        origin_cpu = bench._proc_cpu_s(origin_pids_) - origin_before
        system_cpu = bench._system_task_cpu_s() - system_before
        self_cpu = (self_after.ru_utime + self_after.ru_stime
                    - self_before.ru_utime - self_before.ru_stime)

        if row.kind == "local":
            engine_cpu, client_cpu = tool_cpu, None
            others = system_cpu - tool_cpu - daemon_cpu - origin_cpu
        else:
            rss_kib = daemon.vm()[1]
            engine_cpu = daemon_cpu
            client_cpu = self_cpu if row.kind == "rpc" else tool_cpu
            others = system_cpu - daemon_cpu - client_cpu - origin_cpu
        problem = daemon.died() or problem
        if not problem:
            problem = self._verify(row)
        run = bench.Run(wall, engine_cpu, rss_kib, origin_cpu,
                        max(others, 0.0), not problem, problem)
        run.client_cpu = client_cpu
        # The daemon is meant to sit idle while --local runs.
        run.idle_daemon_cpu = daemon_cpu if row.kind == "local" else None
        if stats:
            run.origin_body = stats()["body_bytes"] - body_before
        if not problem:
            run.nlink = min(os.stat(p).st_nlink for p, _ in row.outputs)
        row.runs.append(run)
        if problem:
            if row.kind != "local":
                with open(self.log_path, "ab") as log:
                    log.write(("\n-- retrieverd log --\n"
                               + daemon.log_tail()).encode())
            self._report_failure(row, problem)
        return run


def fresh_daemon(runner, daemon, client):
    """Restart daemon with empty state and cache (untimed); a new client.

    --local runs with fresh state each run, and its files go when the run
    is over; the daemon gets the same, or the cache and page cache it keeps
    from earlier runs would weigh on its later runs only. The old state and
    cache are set aside as bench.py sets small outputs aside
    (Runner._discard): deleting the 1000 blobs of a small-file run just
    before the next run slowed that run's file creation (ext4 skips inodes
    freed in the last minute), and so the daemon's rows only."""
    client.close()
    daemon.stop()
    for path in (daemon.state, daemon.cache):
        runner._discard(path)
    subprocess.run(["sync"], check=False)
    daemon.ready.clear()
    daemon.start()
    return Client(client.pb, daemon.sock)


def interleave_d1(runner, rows, repeat, origin, sources, daemon, client):
    """One untimed warm-up run per row (run number `repeat`: URLs of its
    own), then `repeat` rounds of one run per row. The first runs after the
    data was generated took up to twice the CPU time, whichever row they
    fell on."""
    pids = bench.origin_pids(origin)
    width = max(len(row.label) for row in rows)
    for rep in [repeat] + list(range(repeat)):
        for row in bench.rotated(rows, rep):
            if row.kind != "local":
                client = fresh_daemon(runner, daemon, client)
            say("  %-9s  %-*s" % ("warm-up" if rep == repeat else "rep %d/%d"
                                  % (rep + 1, repeat), width, row.label),
                end="")
            run = runner.measure_d1(row, origin, pids, sources, daemon,
                                    client, rep)
            if rep == repeat and run.ok:
                row.runs.pop()
            say("  %7.3f s  cpu %6.2f s  client %s  other %5.2f s  %s"
                % (run.wall, run.cpu, "%5.2f s" % run.client_cpu
                   if run.client_cpu is not None else "   -   ",
                   run.other_cpu, "ok" if run.ok else "FAILED"))


def busted(url, n, tag):
    """url with a query of its own for daemon run n of row `tag`: a new
    cache key, the same bytes (the origins ignore unknown parameters)."""
    return url + ("&" if "?" in url else "?") + "bench=%s%d" % (tag, n)


# ---------------------------------------------------------------------------
# D2: Status load, in client processes of their own
# ---------------------------------------------------------------------------

def status_worker():
    """--status-worker: read a JSON config line on stdin, open one channel
    (own connection) per thread, warm each with one call (about the job
    cfg["job_id"]), print "ready", wait for "go JOB_ID", make the calls
    about JOB_ID, print one JSON line of results."""
    cfg = json.loads(sys.stdin.readline())
    sys.path.insert(0, cfg["pb_dir"])
    from retriever.v1 import retriever_pb2 as pb
    req = pb.StatusRequest(job_id=cfg["job_id"]).SerializeToString()
    calls, pace = cfg["calls"], cfg["pace_ms"] / 1000.0
    fns, chans = [], []
    for _ in range(cfg["threads"]):
        ch = grpc.insecure_channel("unix://" + cfg["sock"], options=[
            ("grpc.use_local_subchannel_pool", 1)])
        fn = ch.unary_unary(SERVICE + "Status",
                            request_serializer=lambda b: b,
                            response_deserializer=pb.Job.FromString)
        fn(req, timeout=30)
        chans.append(ch)
        fns.append(fn)
    go = threading.Event()
    the_req = [req]
    lat = [[] for _ in fns]
    errors = [0] * len(fns)
    states = [None] * len(fns)
    start = [0.0]

    def caller(i):
        go.wait()
        req = the_req[0]
        phase = pace * (cfg["first"] + i) / cfg["callers"]
        for k in range(calls):
            if pace:
                delay = start[0] + phase + k * pace - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            t = time.perf_counter_ns()
            try:
                job = fns[i](req, timeout=30)
                states[i] = job.state
            except grpc.RpcError:
                errors[i] += 1
                continue
            lat[i].append(time.perf_counter_ns() - t)

    threads = [threading.Thread(target=caller, args=(i,))
               for i in range(len(fns))]
    for t in threads:
        t.start()
    print("ready", flush=True)
    word, _, job_id = sys.stdin.readline().strip().partition(" ")
    if word != "go":
        calls = 0
        go.set()
        for t in threads:
            t.join()
        return 1
    the_req[0] = pb.StatusRequest(job_id=job_id).SerializeToString()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start[0] = time.monotonic()
    go.set()
    for t in threads:
        t.join()
    wall = time.monotonic() - start[0]
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "lat_ns": [x for each in lat for x in each],
        "errors": sum(errors), "wall": wall,
        "cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
        "states": sorted(set(s for s in states if s is not None))}),
        flush=True)
    for ch in chans:
        ch.close()
    return 0


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1,
                   int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


class StatusLoad:
    """Status callers in client processes of their own (so that Python's
    GIL does not serialise them): start() spawns them and waits until every
    caller has its connection; run(job_id) makes the calls and returns a
    dict of results; close() reaps the processes."""

    def __init__(self, args, pb_dir, daemon, warm_job_id, pace_ms):
        self.args = args
        self.daemon = daemon
        procs = min(args.status_procs, args.callers)
        self.share = [args.callers // procs + (i < args.callers % procs)
                      for i in range(procs)]
        self.cfg = {"sock": daemon.sock, "pb_dir": pb_dir,
                    "job_id": warm_job_id, "calls": args.calls,
                    "pace_ms": pace_ms, "callers": args.callers}
        self.workers = []

    def start(self):
        first = 0
        for n in self.share:
            p = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__),
                 "--status-worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)
            self.workers.append(p)
            p.stdin.write(json.dumps(dict(self.cfg, threads=n,
                                          first=first)) + "\n")
            p.stdin.flush()
            first += n
        for p in self.workers:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a Status worker failed to start")
        return self

    def run(self, job_id):
        d0 = self.daemon.cpu_s()
        s0 = bench._system_task_cpu_s()
        t0 = time.monotonic()
        for p in self.workers:
            p.stdin.write("go %s\n" % job_id)
            p.stdin.flush()
        results = [json.loads(p.stdout.readline()) for p in self.workers]
        wall = time.monotonic() - t0
        d1 = self.daemon.cpu_s()
        s1 = bench._system_task_cpu_s()
        lat = sorted(x for r in results for x in r["lat_ns"])
        ms = [x / 1e6 for x in lat]
        client_cpu = sum(r["cpu"] for r in results)
        return {
            "n": len(lat), "errors": sum(r["errors"] for r in results),
            "wall": wall, "calls_s": len(lat) / wall if wall else 0,
            "p50": percentile(ms, 50), "p90": percentile(ms, 90),
            "p99": percentile(ms, 99), "max": ms[-1] if ms else None,
            "daemon_cpu": d1 - d0, "client_cpu": client_cpu,
            "other_cpu": max(s1 - s0 - (d1 - d0) - client_cpu, 0.0),
        }

    def close(self):
        for p in self.workers:
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
        self.workers = []


class Background:
    """A Download stream read by a thread: the job id, when bytes first
    moved, and how it ended."""

    def __init__(self, client, pairs):
        self.stream = client.download(pairs)
        self.job_id = None
        self.moving = threading.Event()
        self.problem = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for ev in self.stream:
                self.job_id = self.job_id or ev.job_id
                if ev.WhichOneof("event") == "progress" and \
                        ev.progress.progress.bytes_done > 0:
                    self.moving.set()
                if ev.WhichOneof("event") in ("completed", "failed"):
                    self.problem = "the download ended (%s)" % \
                        ev.WhichOneof("event")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.problem = "stream ended with %s" % e.code()
        self.moving.set()

    def cancel(self):
        self.stream.cancel()
        self.thread.join(30)


# ---------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------

class DaemonBench:
    def __init__(self, args):
        self.args = args
        ns = argparse.Namespace(
            repeat=args.repeat, repeat_small=args.repeat_small,
            peers_only=False, retrieverctl=args.retrieverctl,
            workdir=args.workdir, settle_max=args.settle_max,
            no_digest=False, no_warm=args.no_warm)
        self.data = bench.Bench(ns)          # data files and their helpers
        self.runner = DaemonRunner(args.workdir, settle_max=args.settle_max,
                                   warm=not args.no_warm)
        self.data.runner = self.runner
        self.ctl = args.retrieverctl
        self.workdir = args.workdir
        self.daemon_root = os.path.join(args.workdir, "d")
        self.pb_dir = os.path.join(args.workdir, "pb")
        self.pb = generate_pb(args.protoc, self.pb_dir)
        self.rows = []
        self.d2 = []            # (condition, mode, [results per rep])
        self.d3 = []            # (what, value text, target text, met)
        self.d4 = []            # (what, value text, target text, met)
        self.verdicts = []      # (scenario, text, met)
        self.notes = []
        self.daemons = []

    # -- helpers -------------------------------------------------------------

    def verdict(self, scenario, text, met):
        self.verdicts.append((scenario, text, met))

    def daemon(self, name, extra=()):
        d = Daemon(self.args.retrieverd, os.path.join(self.daemon_root,
                                                      name), extra,
                   env=self.runner.env)
        self.daemons.append(d)
        return d.start()

    def stop_daemon(self, d, what):
        rc, took = d.stop()
        if rc != 0:
            self.notes.append("%s: retrieverd exited with status %s after "
                              "SIGTERM (log: %s)" % (what, rc,
                                                     d.log_tail(300)))
        shutil.rmtree(d.base, ignore_errors=True)
        return rc, took

    def cleanup(self):
        for d in self.daemons:
            d.kill()

    def make_data(self):
        a = self.args
        subs = set(a.d1) if "D1" in a.scenarios else set()
        bench_scen = set()
        if subs & {1, 2} or "D2" in a.scenarios:
            bench_scen.add(1)
        if 3 in subs:
            bench_scen.add(3)
        need = 0
        if subs & {1, 2}:
            # the daemon keeps every run's object (rpc and ctl rows) until
            # the sub-scenario ends, plus one --local output at a time
            need = (2 * a.repeat + 1) * bench.BIG_SIZE
        st = os.statvfs(self.workdir)
        if st.f_bavail * st.f_frsize < need + 2 * GIB:
            raise SystemExit("bench_daemon.py: %s needs %.0f GiB free for "
                             "D1 on top of the sources" % (
                                 self.workdir, need / GIB + 2))
        self.data.make_data(bench_scen)
        if "D3" in a.scenarios:
            path = os.path.join(self.data.srv, "d3.bin")
            origins.make_file(path, D3_FILE_SIZE, seed=33)
            self.d3_src = (path, origins.sha256_file(path))
        if "D4" in a.scenarios:
            path = os.path.join(self.data.srv, "d4.bin")
            origins.make_file(path, a.d4_size, seed=44)
            self.d4_src = (path, origins.sha256_file(path))

    # -- D1 ------------------------------------------------------------------

    def _d1_rows(self, sub, d, url_of, expected_of, nbytes, nfiles):
        """local, rpc and ctl rows. url_of(tag, n) gives the URLs (n None:
        the fixed URLs of the local row); expected_of(key) the outputs."""
        big = sub != 3
        conn = bench.CONNECTIONS if big else None
        rows = []
        key = "local%d" % sub
        outdir = self.data._outdir(key)
        outs = expected_of(key)
        state = self.data._state("d1-%d" % sub)
        # digest None: no digest flag at all, --local as a user runs it.
        argv = bench.retriever(self.ctl, url_of("l", None),
                               out=outs[0][0] if big else None,
                               outdir=None if big else outdir,
                               connections=conn, digest=None, state=state)
        rows.append(DRow(
            "D1.%d" % sub, key,
            "retrieverctl --local%s, fresh state" % (
                " -c %d" % conn if conn else ""),
            argv, outdir, outs, nbytes, nfiles,
            fresh=[os.path.dirname(state[0])], kind="local"))

        key = "localdg%d" % sub
        outdir = self.data._outdir(key)
        outs = expected_of(key)
        state = self.data._state("d1dg-%d" % sub)
        argv = bench.retriever(self.ctl, url_of("l", None),
                               out=outs[0][0] if big else None,
                               outdir=None if big else outdir,
                               connections=conn, digest=True, state=state)
        rows.append(DRow(
            "D1.%d" % sub, key,
            "retrieverctl --local%s --digest, fresh state" % (
                " -c %d" % conn if conn else ""),
            argv, outdir, outs, nbytes, nfiles, info=True,
            fresh=[os.path.dirname(state[0])], kind="local"))

        key = "rpc%d" % sub
        outs = expected_of(key)
        rows.append(DRow(
            "D1.%d" % sub, key,
            "retrieverd via gRPC: submit -> last Completed",
            [], self.data._outdir(key), outs, nbytes, nfiles,
            kind="rpc", connections=conn or 0,
            pairs=lambda n, outs=outs: list(zip(url_of("r", n),
                                                [p for p, _ in outs]))))

        if big:
            key = "rpcdg%d" % sub
            outs = expected_of(key)
            rows.append(DRow(
                "D1.%d" % sub, key,
                "retrieverd via gRPC, digest: submit -> last Completed",
                [], self.data._outdir(key), outs, nbytes, nfiles, info=True,
                kind="rpc", connections=conn or 0, digest=True,
                pairs=lambda n, outs=outs: list(zip(url_of("d", n),
                                                    [p for p, _ in outs]))))

        key = "ctl%d" % sub
        outs = expected_of(key)
        outdir = self.data._outdir(key)

        def argv_for(n, outs=outs, outdir=outdir):
            argv = [self.ctl, "--socket", d.sock, "download", "-q"]
            if conn:
                argv += ["-c", str(conn)]
            argv += ["-o", outs[0][0]] if big else ["-d", outdir]
            return argv + url_of("c", n)
        rows.append(DRow(
            "D1.%d" % sub, key,
            "retrieverctl --socket (daemon mode)%s" % (
                " -c %d" % conn if conn else ""),
            argv_for(0), outdir, outs, nbytes, nfiles, info=True,
            kind="ctl", argv_for=argv_for))

        key = "curl%d" % sub
        outs = expected_of(key)
        outdir = self.data._outdir(key)
        urls = url_of("l", None)
        if big:
            argv = bench.curl_single(urls[0], outs[0][0])
            label = "curl, no state"
        else:
            cfg = os.path.join(self.workdir, "cfg")
            os.makedirs(cfg, exist_ok=True)
            curl_cfg = os.path.join(cfg, "d1-curl%d.cfg" % sub)
            with open(curl_cfg, "w") as f:
                for (path, _), url in zip(outs, urls):
                    f.write('url = "%s"\noutput = "%s"\n' % (url, path))
            argv = [bench.CURL, "--disable", "-s", "--parallel",
                    "--parallel-max", str(bench.CONNECTIONS), "-K", curl_cfg]
            label = "curl --parallel-max %d, no state" % bench.CONNECTIONS
        rows.append(DRow("D1.%d" % sub, key, label, argv, outdir, outs,
                         nbytes, nfiles, info=True, kind="local"))
        self.rows.extend(rows)
        return rows

    def scenario_d1(self, sub):
        a = self.args
        say("D1.%d: through retrieverd against --local, %s" % (sub, {
            1: "%s from nginx" % size_text(bench.BIG_SIZE),
            2: "%s from the limited origin (%d MiB/s per connection, "
               "%d ms)" % (size_text(bench.BIG_SIZE), bench.S2_RATE // MIB,
                           bench.S2_LATENCY_MS),
            3: "%d x %d KiB from nginx" % (bench.SMALL_COUNT,
                                           bench.SMALL_SIZE // 1024)}[sub]))
        make = (lambda: origins.FaultOrigin(
            self.data.srv, rate=bench.S2_RATE,
            latency_ms=bench.S2_LATENCY_MS)) if sub == 2 else (
            lambda: origins.NginxOrigin(self.data.srv))
        with make() as origin:
            d = self.daemon("d1-%d" % sub)
            client = Client(self.pb, d.sock)
            try:
                if sub == 3:
                    base = [origin.url("/small/" + n)
                            for n, _ in self.data.small]
                    rows = self._d1_rows(
                        sub, d,
                        lambda tag, n: base if n is None else
                        [busted(u, n, tag) for u in base],
                        self.data._small_expected,
                        bench.SMALL_COUNT * bench.SMALL_SIZE,
                        bench.SMALL_COUNT)
                    sources, repeat = self.data._small_sources(), \
                        a.repeat_small
                else:
                    url = origin.url("/" + os.path.basename(
                        self.data.big[0]))
                    name = os.path.basename(self.data.big[0])
                    rows = self._d1_rows(
                        sub, d,
                        lambda tag, n: [url if n is None
                                        else busted(url, n, tag)],
                        lambda key: [(os.path.join(self.data._outdir(key),
                                                   name), self.data.big[1])],
                        bench.BIG_SIZE, 1)
                    sources, repeat = [self.data.big[0]], a.repeat
                interleave_d1(self.runner, rows, repeat, origin, sources, d,
                              client)
            finally:
                client.close()
                self.stop_daemon(d, "D1.%d" % sub)
        byk = {r.key[:-1]: r if r.ok_runs() else None for r in rows}
        local, localdg, rpc, rpcdg, ctl, curl = (byk.get(k) for k in (
            "local", "localdg", "rpc", "rpcdg", "ctl", "curl"))
        if not (local and rpc):
            self.verdict("D1.%d" % sub, "target not evaluated (failed "
                         "runs)", None)
            return

        def spread(row):
            walls = [r.wall for r in row.ok_runs()]
            return "%.3f-%.3f" % (min(walls), max(walls))
        ratio = rpc.wall() / local.wall()
        self.verdict("D1.%d" % sub, "retrieverd (gRPC) wall <= %.2fx "
                     "--local's: %.3f s (%s) / %.3f s (%s) = %.2fx" % (
                         D1_TARGET, rpc.wall(), spread(rpc), local.wall(),
                         spread(local), ratio),
                     ratio <= D1_TARGET)
        for plain, dg, what in ((local, localdg, "--local"),
                                (rpc, rpcdg, "retrieverd (gRPC)")):
            if plain and dg:
                r = dg.wall() / plain.wall()
                self.verdict("D1.%d" % sub, "%s: digested wall <= %.2fx "
                             "undigested: %.3f s (%s) / %.3f s = %.2fx" % (
                                 what, DIGEST_TARGET, dg.wall(), spread(dg),
                                 plain.wall(), r), r <= DIGEST_TARGET)
        for row, what in ((localdg, "--local --digest"),
                          (ctl, "retrieverctl in daemon mode"),
                          (curl, "curl")):
            if row:
                self.notes.append(
                    "D1.%d, for information: %s took %.2fx --local's wall "
                    "time (%.3f s, %s)" % (sub, what, row.wall() / local.wall(),
                                           row.wall(), spread(row)))

    # -- D2 ------------------------------------------------------------------

    def scenario_d2(self):
        a = self.args
        say("D2: Status latency, %d callers x %d calls, idle and while "
            "downloading %s at %d KiB/s per connection"
            % (a.callers, a.calls, size_text(bench.BIG_SIZE),
               a.d2_rate // 1024))
        conditions = [("idle", 0), ("idle", a.pace_ms),
                      ("downloading", 0), ("downloading", a.pace_ms)]
        results = {c: [] for c in conditions}
        name = os.path.basename(self.data.big[0])
        out = os.path.join(self.workdir, "out-d2")
        os.makedirs(out, exist_ok=True)
        with origins.FaultOrigin(self.data.srv, rate=a.d2_rate,
                                 latency_ms=bench.S2_LATENCY_MS) as fo:
            d = self.daemon("d2")
            client = Client(self.pb, d.sock)
            try:
                # The idle rounds ask about a finished job.
                small = os.path.join(self.data.srv, "d2small.bin")
                origins.make_file(small, 1 << 20, seed=22)
                ev = list(client.download([(
                    fo.url("/d2small.bin", rate=0),
                    os.path.join(out, "small.bin"))], timeout=60))
                done_id = ev[0].job_id
                n = 0
                for rep in range(a.repeat):
                    for cond in conditions:
                        n += 1
                        say("  rep %d/%d  %-11s %-12s" % (
                            rep + 1, a.repeat, cond[0],
                            "paced %d ms" % cond[1] if cond[1]
                            else "back to back"), end="")
                        self.runner.wait_quiet()
                        try:
                            res = self._d2_round(client, d, fo, cond,
                                                 done_id, name, out, n)
                        except (RuntimeError, ValueError, OSError,
                                grpc.RpcError) as e:
                            res = {k: None for k in (
                                "p50", "p90", "p99", "max", "daemon_cpu",
                                "client_cpu", "other_cpu")}
                            res.update(calls_s=0, problem="round failed: "
                                       "%s%s" % (e, "; " + d.died()
                                                 if d.died() else ""))
                        results[cond].append(res)
                        say("  p50 %6.2f ms  p99 %7.2f ms  %6.0f calls/s%s"
                            % (res["p50"] or 0, res["p99"] or 0,
                               res["calls_s"],
                               "  PROBLEM: " + res["problem"]
                               if res["problem"] else ""))
            finally:
                client.close()
                self.stop_daemon(d, "D2")
        for cond in conditions:
            self.d2.append((cond[0], cond[1], results[cond]))
        problems = [r["problem"] for c in conditions for r in results[c]
                    if r["problem"]]
        if problems:
            self.notes.append("D2 PROBLEMS: " + "; ".join(problems))

    def _d2_round(self, client, d, fo, cond, done_id, name, out, n):
        """One round: callers connected first, then (when downloading) the
        download started and moving, then the calls; the download is
        cancelled after them."""
        kind, pace = cond
        bg = None
        problem = ""
        load = StatusLoad(self.args, self.pb_dir, d, done_id, pace)
        try:
            load.start()
            job_id = done_id
            if kind == "downloading":
                bg = Background(client, [(
                    fo.url("/" + name, bench=n), os.path.join(
                        out, "big%d.bin" % n))])
                if not bg.moving.wait(60) or bg.problem or not bg.job_id:
                    raise RuntimeError("D2: the download did not start: %s"
                                       % (bg.problem or "no progress"))
                job_id = bg.job_id
                before = client.status(job_id).objects[0].progress.bytes_done
                t0 = time.monotonic()
            res = load.run(job_id)
            if bg:
                job = client.status(job_id)
                moved = job.objects[0].progress.bytes_done - before
                took = time.monotonic() - t0
                # bytes_done moves in progress steps (200 ms): a shorter
                # window says nothing about the rate.
                res["dl_mib_s"] = moved / MIB / took if took >= 1 else None
                if job.state != self.pb.JOB_STATE_RUNNING or bg.problem:
                    problem = "the download was not running throughout " \
                              "(%s)" % (bg.problem or "state %d" % job.state)
        finally:
            load.close()
            if bg:
                bg.cancel()
        if res["errors"]:
            problem = (problem + "; " if problem else "") + \
                "%d calls failed" % res["errors"]
        res["problem"] = problem
        return res

    # -- D3 ------------------------------------------------------------------

    def _idle_window(self, d, seconds):
        """(CPU s, context switches) of d over `seconds` of doing nothing."""
        c0, w0 = d.cpu_s(), ctx_switches(d.pid)
        time.sleep(seconds)
        return d.cpu_s() - c0, ctx_switches(d.pid) - w0

    def _d3_row(self, what, value, target="", met=None):
        self.d3.append((what, value, target, met))

    def _idle_rows(self, d, when):
        a = self.args
        cpu, wakes = self._idle_window(d, a.idle_seconds)
        limit = IDLE_CPU_MAX * a.idle_seconds
        self._d3_row("idle CPU over %g s, %s" % (a.idle_seconds, when),
                     "%.3f s (%.2f%% of a core); %d context switches "
                     "(%.1f/s)" % (cpu, 100 * cpu / a.idle_seconds, wakes,
                                   wakes / a.idle_seconds),
                     "<= %.3f s" % limit, cpu <= limit)
        self.verdict("D3", "idle CPU %s <= %.1f%% of a core: %.3f s over "
                     "%g s" % (when, 100 * IDLE_CPU_MAX, cpu,
                               a.idle_seconds), cpu <= limit)

    # -- D4 ------------------------------------------------------------------

    def scenario_d4(self):
        """D4_CLIENTS callers at once, one object each; the daemon's peak
        RSS over the lot. --repeat rounds, a fresh daemon each."""
        a = self.args
        name = os.path.basename(self.d4_src[0])
        say("D4: peak RSS serving %d clients, one %s download each"
            % (D4_CLIENTS, size_text(a.d4_size)))
        out = os.path.join(self.workdir, "out-d4")
        peaks, walls, problems = [], [], []
        with origins.NginxOrigin(self.data.srv) as ng:
            url = ng.url("/" + name)
            for rnd in range(a.repeat):
                shutil.rmtree(out, ignore_errors=True)
                os.makedirs(out)
                self.runner.wait_quiet()
                d = self.daemon("d4-%d" % rnd)
                clients = [Client(self.pb, d.sock, own_connection=True)
                           for _ in range(D4_CLIENTS)]
                try:
                    for c in clients:  # connected before the clock starts
                        grpc.channel_ready_future(c.ch).result(timeout=30)
                    ready = threading.Barrier(D4_CLIENTS + 1, timeout=60)
                    results = [None] * D4_CLIENTS

                    def one(i):
                        ready.wait()
                        results[i] = follow(clients[i].download(
                            [(busted(url, rnd * D4_CLIENTS + i, "d4"),
                              os.path.join(out, "%02d.bin" % i))],
                            connections=bench.CONNECTIONS, timeout=600,
                            batch=True), 1)
                    threads = [threading.Thread(target=one, args=(i,))
                               for i in range(D4_CLIENTS)]
                    for t in threads:
                        t.start()
                    d.reset_peak()
                    ready.wait()
                    t0 = time.monotonic()
                    for t in threads:
                        t.join(660)
                    walls.append(time.monotonic() - t0)
                    peaks.append(d.vm()[1] / 1024)
                    bad = [r[1] if r else "no result" for r in results
                           if not r or r[1]]
                    for i in range(D4_CLIENTS):
                        p = os.path.join(out, "%02d.bin" % i)
                        if not bad and (not os.path.exists(p) or
                                        origins.sha256_file(p)
                                        != self.d4_src[1]):
                            bad.append("%s: missing or wrong" % p)
                    problems.extend(bad)
                    say("  round %d/%d  peak RSS %.1f MiB  %.2f s  %s" % (
                        rnd + 1, a.repeat, peaks[-1], walls[-1],
                        "ok" if not bad else "FAILED: " + bad[0]))
                finally:
                    for c in clients:
                        c.close()
                    self.stop_daemon(d, "D4")
        shutil.rmtree(out, ignore_errors=True)
        med = statistics.median(peaks)
        self.d4.append(("daemon VmHWM, %d clients x %s" % (
            D4_CLIENTS, size_text(a.d4_size)),
            "%.1f MiB (%.1f-%.1f)" % (med, min(peaks), max(peaks)),
            "<= %d MiB" % D4_RSS_MAX_MIB, med <= D4_RSS_MAX_MIB))
        self.d4.append(("wall time, all %d done" % D4_CLIENTS,
                        "%.2f s (%.2f-%.2f)" % (statistics.median(walls),
                                                min(walls), max(walls)),
                        "", None))
        if problems:
            self.notes.append("D4 FAILED RUNS: " + "; ".join(problems[:5]))
        self.verdict("D4", "daemon peak RSS serving %d clients <= %d MiB: "
                     "%.1f MiB (median of %d)" % (
                         D4_CLIENTS, D4_RSS_MAX_MIB, med, len(peaks)),
                     med <= D4_RSS_MAX_MIB if not problems else None)

    def scenario_d3(self):
        a = self.args
        say("D3: RSS and idle CPU; %d queued jobs" % a.queued_jobs)
        name = os.path.basename(self.d3_src[0])
        out = os.path.join(self.workdir, "out-d3")
        os.makedirs(out, exist_ok=True)
        with origins.FaultOrigin(self.data.srv, rate=D3_RATE) as fo:
            self.runner.wait_quiet()
            d = self.daemon("d3", ["--max-running-jobs", "1",
                                   "--max-queued-jobs",
                                   str(max(a.queued_jobs, 1000))])
            client = None
            try:
                rss, hwm = d.vm()
                threads = proc_status(d.pid)["Threads"]
                self._d3_row("RSS after start (ready)", "VmRSS %.1f MiB, "
                             "VmHWM %.1f MiB, %s threads" % (
                                 rss / 1024, hwm / 1024, threads))
                self._idle_rows(d, "after start")

                client = Client(self.pb, d.sock)
                t0 = time.monotonic()
                t_end, problem, _ = follow(client.download(
                    [(fo.url("/" + name, rate=0), os.path.join(
                        out, "first.bin"))], timeout=120), 1)
                took = (t_end or time.monotonic()) - t0
                self._d3_row("one download (%d MiB, fault origin "
                             "unlimited)" % (D3_FILE_SIZE // MIB),
                             "%.2f s%s" % (took, ", FAILED: " + problem
                                           if problem else ""))
                time.sleep(1)   # let what the download left behind settle
                rss, hwm = d.vm()
                self._d3_row("RSS after that download", "VmRSS %.1f MiB, "
                             "VmHWM %.1f MiB" % (rss / 1024, hwm / 1024))
                self._idle_rows(d, "after a download")

                refused = [0]

                def submit(i):
                    try:
                        ev = list(client.download(
                            [(fo.url("/" + name, q=i),
                              os.path.join(out, "q%05d.bin" % i))],
                            detach=True, timeout=30))
                        if ev and ev[0].WhichOneof("event") == "accepted":
                            return ev[0].job_id
                        refused[0] += 1
                    except grpc.RpcError as e:
                        refused[0] += 1
                        if refused[0] == 1:
                            self.notes.append("D3: a detached Download was "
                                              "refused: %s %s" % (
                                                  e.code(), e.details()))
                    return None

                # The job that runs first, alone: the baseline of the
                # window with the others queued.
                t0 = time.monotonic()
                first = submit(0)
                while first and time.monotonic() - t0 < 30 and \
                        client.status(first).objects[0].progress \
                        .bytes_done == 0:
                    time.sleep(0.1)
                cpu, wakes = self._idle_window(d, a.idle_seconds)
                self._d3_row("CPU over %g s with one job running at %d "
                             "KiB/s per connection, none queued"
                             % (a.idle_seconds, D3_RATE // 1024),
                             "%.3f s; %d context switches" % (cpu, wakes))
                rss0 = d.vm()[0]
                d.reset_peak()
                t0 = time.monotonic()
                for i in range(1, a.queued_jobs):
                    submit(i)
                refused = refused[0]
                took = time.monotonic() - t0
                st = client.stats()
                rss, hwm = d.vm()
                self._d3_row("submit %d more detached jobs, one by one"
                             % (a.queued_jobs - 1), "%.2f s (%.0f jobs/s), "
                             "%d refused" % (took, (a.queued_jobs - 1)
                                             / max(took, 1e-9), refused))
                self._d3_row("Stats after submitting", "active_jobs %d, "
                             "queued_jobs %d, connections %d" % (
                                 st.active_jobs, st.queued_jobs,
                                 st.connections))
                self._d3_row("RSS with %d queued jobs" % st.queued_jobs,
                             "VmRSS %.1f MiB, VmHWM %.1f MiB (since the "
                             "submissions began); %+.1f KiB per job" % (
                                 rss / 1024, hwm / 1024,
                                 (rss - rss0) / max(a.queued_jobs - 1, 1)))
                cpu, wakes = self._idle_window(d, a.idle_seconds)
                self._d3_row("CPU over %g s with them queued (the same "
                             "job running)" % a.idle_seconds,
                             "%.3f s; %d context switches" % (cpu, wakes))
                client.close()
                client = None
                rc, took = self.stop_daemon(d, "D3")
                self._d3_row("stop (SIGTERM) with them queued",
                             "exit status %s after %.2f s" % (rc, took))
            finally:
                if client:
                    client.close()
                d.kill()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

D1_COLUMNS = ["#", "how", "ok", "wall s", "MiB/s", "files/s", "engine CPU s",
              "client CPU s", "peak RSS MiB", "origin CPU s", "other CPU s",
              "rate min-max"]
D2_COLUMNS = ["condition", "calls", "ok", "p50 ms", "p90 ms", "p99 ms",
              "max ms", "p99 min-max", "calls/s", "daemon CPU s",
              "client CPU s", "other CPU s", "download MiB/s"]


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def d1_cells(rows):
    out = []
    for row in rows:
        rng = row.rate_range()
        out.append([
            row.scenario, row.label + (" [info]" if row.info else ""),
            "%d/%d" % (len(row.ok_runs()), len(row.runs)),
            _fmt(row.wall(), ".3f"), _fmt(row.mib_s(), ".0f"),
            _fmt(row.files_s(), ".0f") if row.nfiles > 1 else "-",
            _fmt(row.cpu(), ".2f"), _fmt(row.client_cpu(), ".2f"),
            _fmt(row.rss_mib(), ".1f"), _fmt(row.origin_cpu(), ".2f"),
            _fmt(row.other_cpu(), ".2f"),
            "%.0f-%.0f" % rng if rng else "-"])
    return out


def d2_cells(bench_):
    out = []
    for kind, pace, runs in bench_.d2:
        ok = [r for r in runs if not r["problem"]]
        use = ok or runs
        p99s = [r["p99"] for r in use if r["p99"] is not None]
        out.append([
            "%s, %s" % (kind, "paced %d ms" % pace if pace else
                        "back to back"),
            "%d x %d" % (bench_.args.callers, bench_.args.calls),
            "%d/%d" % (len(ok), len(runs)),
            _fmt(_med(r["p50"] for r in use), ".2f"),
            _fmt(_med(r["p90"] for r in use), ".2f"),
            _fmt(_med(r["p99"] for r in use), ".2f"),
            _fmt(_med(r["max"] for r in use), ".1f"),
            "%.1f-%.1f" % (min(p99s), max(p99s)) if p99s else "-",
            _fmt(_med(r["calls_s"] for r in use), ".0f"),
            _fmt(_med(r["daemon_cpu"] for r in use), ".2f"),
            _fmt(_med(r["client_cpu"] for r in use), ".2f"),
            _fmt(_med(r["other_cpu"] for r in use), ".2f"),
            _fmt(_med(r.get("dl_mib_s") for r in use), ".0f")])
    return out


def text_table(columns, body, left=(0, 1), group=False):
    widths = [max([len(c)] + [len(r[i]) for r in body])
              for i, c in enumerate(columns)]

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(columns))
    print(line(["-" * w for w in widths]))
    last = None
    for cells in body:
        if group and last is not None and cells[0] != last:
            print()
        last = cells[0]
        print(line(cells))


def md_table(columns, body, left=(0, 1), group=False):
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if i in left else "--:"
                         for i in range(len(columns))) + "|")
    for cells in body:
        print("| " + " | ".join(cells) + " |")


def report(facts, b, markdown):
    a = b.args
    table = md_table if markdown else text_table
    if markdown:
        print("Machine:\n")
        for k, v in facts:
            print("- %s: `%s`" % (k, v))
        print()
    else:
        print("retrieverd benchmark (tests/bench/bench_daemon.py), "
              "repeat=%d%s, medians" % (a.repeat, " (D1.3: %d)"
                                        % a.repeat_small
                                        if a.repeat_small != a.repeat
                                        else ""))
        width = max(len(k) for k, _ in facts)
        for k, v in facts:
            print("  %-*s  %s" % (width, k, v))
        print()
    if b.rows:
        print("%sD1: end to end through retrieverd vs --local (engine CPU "
              "= the --local process or the daemon; client CPU = this "
              "script's gRPC client or retrieverctl in daemon mode)%s\n"
              % ("### " if markdown else "", "" if markdown else ":"))
        table(D1_COLUMNS, d1_cells(b.rows), group=True)
        print()
    if b.d2:
        procs = min(a.status_procs, a.callers)
        print("%sD2: Status latency, %d concurrent callers (own channel "
              "and connection each, in %d client processes), %d calls "
              "each; medians of %d rounds%s\n" % (
                  "### " if markdown else "", a.callers, procs, a.calls,
                  a.repeat, "" if markdown else ":"))
        table(D2_COLUMNS, d2_cells(b), left=(0,))
        print()
    if b.d3:
        print("%sD3: memory and idle CPU (max-running-jobs 1)%s\n"
              % ("### " if markdown else "", "" if markdown else ":"))
        body = [[what, value, target or "-",
                 {True: "MET", False: "MISSED", None: "info"}[met]]
                for what, value, target, met in b.d3]
        table(["what", "measured", "target", "verdict"], body, left=(0, 1))
        print()
    if b.d4:
        print("%sD4: the daemon serving %d clients at once%s\n"
              % ("### " if markdown else "", D4_CLIENTS,
                 "" if markdown else ":"))
        body = [[what, value, target or "-",
                 {True: "MET", False: "MISSED", None: "info"}[met]]
                for what, value, target, met in b.d4]
        table(["what", "measured", "target", "verdict"], body, left=(0, 1))
        print()
    print("%sTargets%s\n" % ("### " if markdown else "",
                             "" if markdown else ":"))
    for scen, text, met in b.verdicts:
        word = {True: "MET", False: "MISSED", None: "NOT EVALUATED"}[met]
        if markdown:
            print("- **%s** %s: %s" % (word, scen, text))
        else:
            print("%s %s: %s" % (word.ljust(6), scen, text))
    notes = list(b.notes)
    r = b.runner
    if r.failures:
        notes.append("FAILED RUNS: %d (%s)" % (len(r.failures), "; ".join(
            "%s: %s" % f for f in r.failures)))
    elif b.rows:
        notes.append("D1: every run succeeded, every output's sha256 "
                     "matched, no daemon run was a cache hit")
    for row in b.rows:
        spent = [x.idle_daemon_cpu for x in row.ok_runs()
                 if x.idle_daemon_cpu is not None]
        if spent and max(spent) > max(0.02 * row.wall(), 0.01):
            notes.append(
                "%s: the idle daemon used up to %.2f s of CPU during a "
                "--local run of %.2f s (it should use none): --local "
                "competed with it for the CPU" % (row.scenario, max(spent),
                                                  row.wall()))
    linked = ["%s %s" % (row.scenario, row.label) for row in b.rows
              if any(r.nlink and r.nlink >= 2 for r in row.ok_runs()
                     if hasattr(r, "nlink"))]
    if linked:
        notes.append("delivered by hard link to the cache (a build from "
                     "before issue 19, or link asked for): " + "; ".join(linked))
    busy = ["%s %s" % (row.scenario, row.label) for row in b.rows
            if row.ok_runs() and row.other_cpu() >
            max(0.25 * row.wall(), bench.BUSY_FLOOR_S)]
    if busy:
        notes.append("other processes used more than a quarter of a core "
                     "during: " + "; ".join(busy))
    if r.settle_max > 0:
        notes.append("waited %.0f s in all for an idle machine%s" % (
            r.settled_s, "; %d runs started busy" % r.never_quiet
            if r.never_quiet else ""))
    notes.append("source bytes read back into the page cache before runs: "
                 "%.0f MiB" % (r.recached / MIB))
    for note in notes:
        print("%snote: %s" % ("- " if markdown else "", note))
    if markdown and b.rows:
        print("\nCommands (first run's URLs):\n")
        for row in b.rows:
            if row.kind != "rpc":
                print("- %s, %s: `%s`" % (row.scenario, row.label,
                                          bench._shell_line(row.argv)))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark retrieverd end to end: against --local (D1), "
                    "Status latency (D2), memory and idle CPU (D3), peak "
                    "RSS serving 16 clients (D4).")
    p.add_argument("--retrieverctl", metavar="PATH", required=True,
                   help="the retrieverctl binary (with daemon mode)")
    p.add_argument("--retrieverd", metavar="PATH",
                   help="default: ../daemon/retrieverd next to "
                        "--retrieverctl's directory")
    p.add_argument("--protoc", metavar="PATH",
                   default=shutil.which("protoc") or "protoc",
                   help="protoc, to generate the Python client from proto/")
    p.add_argument("--scenario", default=",".join(SCENARIOS),
                   metavar="LIST",
                   help="comma-separated, of D1,D2,D3,D4 (default all)")
    p.add_argument("--d1", default="1,2,3",
                   metavar="LIST",
                   help="which of bench.py's scenarios D1 runs (default "
                        "1,2,3)")
    p.add_argument("--repeat", type=int, default=3,
                   metavar="N",
                   help="repetitions per row (D1) and rounds per condition "
                        "(D2); medians reported (default 3)")
    p.add_argument("--repeat-small", type=int, metavar="N",
                   help="repetitions in D1.3 (default: --repeat)")
    p.add_argument("--callers", type=int, default=64,
                   metavar="N",
                   help="D2: concurrent Status callers (default 64)")
    p.add_argument("--calls", type=int, default=200,
                   metavar="N",
                   help="D2: calls per caller per round (default 200)")
    p.add_argument("--status-procs", type=int, default=4,
                   metavar="N",
                   help="D2: client processes the callers are spread over "
                        "(threads in each; default 4)")
    p.add_argument("--pace-ms", type=int, default=50,
                   metavar="MS",
                   help="D2: interval between one caller's calls in the "
                        "paced rounds (default 50)")
    p.add_argument("--d2-rate", type=int, metavar="BPS",
                   help="D2: the download's rate per connection (default: "
                        "such that its 16 connections take %d s, or 3x a "
                        "paced round if longer; it is cancelled once the "
                        "calls are done)" % D2_MIN_S)
    p.add_argument("--idle-seconds", type=float, default=10,
                   metavar="S",
                   help="D3: length of each idle window (default 10)")
    p.add_argument("--queued-jobs", type=int, default=1000,
                   metavar="N",
                   help="D3: detached jobs submitted (default 1000)")
    p.add_argument("--workdir", metavar="DIR",
                   help="scratch directory, created and deleted (default "
                        "/tmp/rvd-bench-<pid>; keep it short: the sockets "
                        "live in it)")
    p.add_argument("--no-warm", action="store_true",
                   help="skip the memory warm-up before each run "
                        "(bench.Runner.warm_free_memory)")
    p.add_argument("--settle-max", type=float, default=bench.SETTLE_MAX_S,
                   metavar="S", help="wait up to S s for an idle machine "
                                     "before each run (0: do not wait)")
    p.add_argument("--big-size", metavar="SIZE", default="1G",
                   help="size of the large file (D1.1, D1.2, D2's "
                        "download); smaller only for trial runs (default 1G)")
    p.add_argument("--small-count", type=int, default=bench.SMALL_COUNT,
                   metavar="N", help="files in D1.3; fewer only for trial "
                                     "runs (default %d)" % bench.SMALL_COUNT)
    p.add_argument("--d4-size", metavar="SIZE", default="64M",
                   help="D4: each client's object (default 64M)")
    p.add_argument("--markdown", action="store_true",
                   help="print the report as Markdown")
    args = p.parse_args(argv)
    m = re.fullmatch(r"(\d+)([KMG]?)", args.big_size)
    if not m or int(m.group(1)) == 0:
        p.error("--big-size: a number with an optional K, M or G suffix")
    args.big_size = int(m.group(1)) << {"": 0, "K": 10, "M": 20,
                                        "G": 30}[m.group(2)]
    m = re.fullmatch(r"(\d+)([KMG]?)", args.d4_size)
    if not m or int(m.group(1)) == 0:
        p.error("--d4-size: a number with an optional K, M or G suffix")
    args.d4_size = int(m.group(1)) << {"": 0, "K": 10, "M": 20,
                                      "G": 30}[m.group(2)]
    if args.d2_rate is None:
        last = max(D2_MIN_S, 3 * args.calls * args.pace_ms / 1000)
        args.d2_rate = max(int(args.big_size / bench.CONNECTIONS / last), 1)
    elif args.d2_rate < 1:
        p.error("--d2-rate must be >= 1")
    if not 1 <= args.small_count <= 1000:
        p.error("--small-count: 1..1000 (one Download request holds at "
                "most 1000 sources)")
    try:
        args.scenarios = {s.strip().upper() for s in args.scenario.split(",")
                          if s.strip()}
        args.d1 = sorted({int(s) for s in args.d1.split(",") if s})
    except ValueError:
        p.error("--d1: comma-separated numbers of 1,2,3")
    if not args.scenarios or not args.scenarios <= set(SCENARIOS):
        p.error("--scenario: comma-separated, of D1,D2,D3,D4")
    if not set(args.d1) <= set(D1_SUBS):
        p.error("--d1: comma-separated numbers of 1,2,3")
    if args.repeat_small is None:
        args.repeat_small = args.repeat
    if min(args.repeat, args.repeat_small, args.callers, args.calls,
           args.status_procs) < 1 or args.idle_seconds <= 0 \
            or args.queued_jobs < 1 or args.pace_ms < 1:
        p.error("counts must be >= 1 and --idle-seconds > 0")
    args.retrieverctl = os.path.abspath(args.retrieverctl)
    if not args.retrieverd:
        args.retrieverd = os.path.join(os.path.dirname(os.path.dirname(
            args.retrieverctl)), "daemon", "retrieverd")
    args.retrieverd = os.path.abspath(args.retrieverd)
    for tool in (args.retrieverctl, args.retrieverd):
        if not os.access(tool, os.X_OK):
            p.error("%s is not executable" % tool)
    helptext = subprocess.run([args.retrieverctl, "download", "--help"],
                              capture_output=True, text=True).stdout
    if not re.search(r"^ +--socket\b", helptext, re.M):
        p.error("%s has no daemon mode (download --socket)"
                % args.retrieverctl)
    args.workdir = os.path.abspath(args.workdir or
                                   "/tmp/rvd-bench-%d" % os.getpid())
    if os.path.exists(args.workdir) and os.listdir(args.workdir):
        p.error("--workdir %s exists and is not empty" % args.workdir)
    for tool in (bench.FINCORE, origins.NGINX, args.protoc):
        if not shutil.which(tool):
            p.error("%s not found" % tool)
    return args


def main(argv=None):
    if argv is None and sys.argv[1:2] == ["--status-worker"]:
        return status_worker()
    args = parse_args(argv)
    # bench.py's data and labels read these at call time.
    bench.BIG_SIZE = args.big_size
    bench.SMALL_COUNT = args.small_count
    bench.become_subreaper()
    signal.signal(signal.SIGTERM, bench._terminate)
    os.makedirs(args.workdir, exist_ok=True)
    b = None
    try:
        b = DaemonBench(args)
        facts = bench.machine_facts(args.retrieverctl, args.workdir)
        facts.append(("retrieverd", "%s (%s, sha256 %s...)" % (
            bench._first_line([args.retrieverd, "--version"]),
            args.retrieverd, origins.sha256_file(args.retrieverd)[:12])))
        facts.append(("grpc (python client)", grpc.__version__))
        b.make_data()
        if "D1" in args.scenarios:
            for sub in args.d1:
                b.scenario_d1(sub)
        if "D2" in args.scenarios:
            b.scenario_d2()
        if "D3" in args.scenarios:
            b.scenario_d3()
        if "D4" in args.scenarios:
            b.scenario_d4()
    except KeyboardInterrupt:
        say("\nbench_daemon.py: interrupted; nothing reported")
        return 130
    finally:
        if b:
            b.cleanup()
        say("removing %s" % args.workdir)
        shutil.rmtree(args.workdir, ignore_errors=True)
    report(facts, b, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
