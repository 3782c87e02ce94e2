#!/usr/bin/python3
"""bench_h2.py -- HTTP/1.1 against HTTP/2 over TLS, same origin, same run.

nginx serves https with `http2` on (ALPN offers h2 and http/1.1). Rows, per
scenario, run interleaved round by round (row A, B, C, ..., A, B, C, ...):

    rv h1.1 cN     retrieverctl download --local --no-state --http2 never -c N
    rv h2 cN       the same with --http2 always (streams on one connection)
    rv auto        the same with --http2 auto (the default)
    curl h2        curl --parallel --http2 (--parallel-max 50, its default)
    curl h1.1      curl --parallel --http1.1

Scenarios: S1 1,000 x 64 KiB, S2 10,000 x 4 KiB, S3 1 GiB (retriever rows
only: h1.1 with 16 connections, h2 with 16 streams, auto). With --rtt-ms R
(default 10; 0 skips them) S1 and S2 run a second time as S1r and S2r
through a relay that holds every byte R/2 ms in each direction: loopback has
no round trip, so a request's latency, which is what h2's streams and
HTTP/1.1's connections hide differently, only shows with one.

Every row reports the median and the spread (min-max) of wall seconds and
of the tool's own CPU seconds (os.wait4 of its process), the median CPU
seconds of nginx's processes (and the relay's) during the run, and the
median CPU seconds every other process on the machine used meanwhile (from
/proc/stat; large values mean a disturbed row). Every output's sha256 is
checked after each run, outside the timed section; a wrong or missing file
fails the run (reported, left out of the medians).

Both tools trust only nginx's certificate (retrieverctl --cacert-only,
curl --cacert), as each would trust the system's store: retrieverctl
--cacert adds the certificate to the system's bundle, which libcurl then
parses once per new TLS connection (a cost of --cacert, not of a protocol).

Sources and outputs live in --workdir, by default on /dev/shm: this
compares protocols, not file systems. Python 3 standard library only;
needs nginx (with http_v2) and curl.

    bench_h2.py --retrieverctl build/client/retrieverctl [--rounds 5]
                [--scenario S1,S2,S3] [--conns 16,64]
"""

import argparse
import asyncio
import ctypes
import os
import signal
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fixtures"))
from origins import NginxOrigin, make_file, sha256_file  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn of the relay: SIGTERM it when the benchmark dies."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
RUN_TIMEOUT_S = 600


def machine_cpu_s():
    """CPU seconds all processes have used since boot (user+nice+system+
    irq+softirq+steal, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


def pids_cpu_s(pids):
    """CPU seconds the processes `pids` have used (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += int(v[11]) + int(v[12])
        except OSError:
            pass
    return total / CLK_TCK


def run(argv, server_pids):
    """(wall s, own CPU s, server CPU s, other CPU s, exit status, stderr)
    of argv."""
    s0 = pids_cpu_s(server_pids)
    c0, t0 = machine_cpu_s(), time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    # stderr is read only after exit: the tools print little (retrieverctl
    # --quiet, curl -s), far below a pipe's buffer.
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    wall = time.monotonic() - t0
    own = usage.ru_utime + usage.ru_stime
    server = pids_cpu_s(server_pids) - s0
    other = machine_cpu_s() - c0 - own - server
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    return wall, own, server, max(other, 0.0), proc.returncode, err


# ---------------------------------------------------------------------------
# The latency relay (a process of its own: bench_h2.py --relay ...)
# ---------------------------------------------------------------------------

RELAY_CHUNK = 256 << 10


async def _relay_pipe(reader, writer, delay):
    """Copy reader to writer, each chunk delivered `delay` s after it
    arrived, in order; EOF is passed on the same way."""
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await q.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(RELAY_CHUNK)
            q.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        task.cancel()


async def _relay(listen_port, target_port, delay):
    async def serve(cr, cw):
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(_relay_pipe(cr, sw, delay),
                             _relay_pipe(sr, cw, delay),
                             return_exceptions=True)
        cw.close()
        sw.close()

    server = await asyncio.start_server(serve, "127.0.0.1", listen_port,
                                        backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class Relay:
    """This script as a relay process on a free port in front of target,
    adding rtt_ms of round trip; stopped by PID."""

    def __init__(self, target_port, rtt_ms):
        import socket
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            self.port = so.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--relay",
             str(self.port), str(target_port), str(rtt_ms / 2000.0)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        if self.proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError("the relay did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

class Scenario:
    def __init__(self, name, title, files, work):
        self.name, self.title, self.files = name, title, files
        self.out = os.path.join(work, "out-" + name)
        self.sums = {}
        self.rtt_ms = 0

    def clear(self):
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)

    def check(self):
        bad = [n for n, s in self.sums.items()
               if not os.path.exists(os.path.join(self.out, n))
               or sha256_file(os.path.join(self.out, n)) != s]
        return bad


def make_data(work, args):
    src = os.path.join(work, "src")
    os.makedirs(src, exist_ok=True)
    scen = []
    plans = {"S1": ("1,000 x 64 KiB", "s1", 1000, 64 << 10),
             "S2": ("10,000 x 4 KiB", "s2", 10000, 4 << 10),
             "S3": ("1 GiB", "s3", 1, 1 << 30)}
    for key in args.scenario:
        title, sub, n, size = plans[key]
        os.makedirs(os.path.join(src, sub), exist_ok=True)
        s = Scenario(key, title, [], work)
        for i in range(n):
            name = "f%05d.bin" % i
            path = make_file(os.path.join(src, sub, name), size, seed=i + 1)
            s.files.append((sub + "/" + name, name))
            s.sums[name] = sha256_file(path)
        scen.append(s)
    return src, scen


def rows_for(s, args, ng, url, work):
    rv = [args.retrieverctl, "download", "--local", "--no-state", "--quiet",
          "--cacert-only", ng.ca_file]
    lst = os.path.join(work, s.name + ".urls")
    with open(lst, "w") as f:
        for path, name in s.files:
            f.write("%s\n  out=%s\n" % (url("/" + path), name))
    cfg = os.path.join(work, s.name + ".curl")
    with open(cfg, "w") as f:
        for path, name in s.files:
            f.write('url = "%s"\noutput = "%s/%s"\n'
                    % (url("/" + path), s.out, name))
    src = ["-i", lst, "-d", s.out]
    rows = []
    conns = [16] if s.name == "S3" else args.conns
    for n in conns:
        rows.append(("rv h1.1 c%d" % n,
                     rv + ["--http2", "never", "-c", str(n)] + src))
        rows.append(("rv h2 c%d" % n,
                     rv + ["--http2", "always", "-c", str(n)] + src))
    rows.append(("rv auto", rv + src))
    if s.name != "S3":
        curl = ["curl", "-s", "-S", "--fail", "--cacert", ng.ca_file,
                "--parallel", "-K", cfg]
        rows.append(("curl h2 parallel", curl + ["--http2"]))
        rows.append(("curl h1.1 parallel", curl + ["--http1.1"]))
    return rows


def measure(s, args, ng, relay, work):
    if relay:
        def url(path):
            return "https://127.0.0.1:%d%s" % (relay.port, path)
    else:
        url = ng.url
    rows = rows_for(s, args, ng, url, work)
    res = {name: {"wall": [], "cpu": [], "server": [], "other": [], "fail": 0}
           for name, _ in rows}
    for rnd in range(args.rounds):
        for name, argv in rows:
            s.clear()
            pids = [ng.pid] + [int(p) for p in open(
                "/proc/%d/task/%d/children" % (ng.pid, ng.pid)).read().split()]
            if relay:
                pids.append(relay.proc.pid)
            wall, cpu, server, other, rc, err = run(argv, pids)
            bad = s.check()
            r = res[name]
            if rc != 0 or bad:
                r["fail"] += 1
                print("!!! %s %s round %d: exit %d, %d bad: %s"
                      % (s.name, name, rnd, rc, len(bad), err.strip()[:300]),
                      file=sys.stderr)
                continue
            for k, v in (("wall", wall), ("cpu", cpu), ("server", server),
                         ("other", other)):
                r[k].append(v)
            print("%s %-20s round %d: %.3f s wall, %.3f s CPU, %.3f s "
                  "server, %.3f s other" % (s.name, name, rnd, wall, cpu,
                                            server, other), file=sys.stderr)
    s.clear()
    print("\n%s: %s over TLS, nginx http2 on, %s, %d rounds"
          % (s.name, s.title, "%d ms round trip" % s.rtt_ms if s.rtt_ms
             else "loopback", args.rounds))
    print("| row | wall s median (min-max) | CPU s median (min-max) | "
          "server CPU s | other CPU s | failed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, _ in rows:
        r = res[name]
        med = ["%.2f" % statistics.median(r[k]) if r[k] else "-"
               for k in ("server", "other")]
        print("| %s | %s | %s | %s | %s | %d |"
              % (name, fmt(r["wall"]), fmt(r["cpu"]), med[0], med[1],
                 r["fail"]))
    sys.stdout.flush()


def fmt(vals):
    if not vals:
        return "-"
    return "%.3f (%.3f-%.3f)" % (statistics.median(vals), min(vals), max(vals))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--relay":
        try:
            asyncio.run(_relay(int(sys.argv[2]), int(sys.argv[3]),
                               float(sys.argv[4])))
        except KeyboardInterrupt:
            pass
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retrieverctl", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scenario", default="S1,S2,S3")
    ap.add_argument("--conns", default="16,64")
    ap.add_argument("--rtt-ms", type=int, default=10)
    ap.add_argument("--workdir", default="/dev/shm/rv-bench-h2-%d" % os.getpid())
    args = ap.parse_args()
    args.scenario = args.scenario.split(",")
    args.conns = [int(c) for c in args.conns.split(",")]
    args.retrieverctl = os.path.abspath(args.retrieverctl)
    # SIGTERM unwinds like ^C: origins stopped, the workdir removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = args.workdir
    os.makedirs(work)
    try:
        src, scen = make_data(work, args)
        if args.rtt_ms:
            for s in list(scen):
                if s.name != "S3":
                    r = Scenario(s.name + "r", s.title, s.files, work)
                    r.sums, r.rtt_ms = s.sums, args.rtt_ms
                    scen.append(r)
        with NginxOrigin(src, tls=True, h2=True) as ng:
            for s in scen:
                relay = Relay(ng.port, s.rtt_ms) if s.rtt_ms else None
                try:
                    measure(s, args, ng, relay, work)
                finally:
                    if relay:
                        relay.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
