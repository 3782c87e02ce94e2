#!/usr/bin/python3
"""bench.py -- retriever against curl and aria2c, same data, same run.

Runs each scenario's tools in interleaved order (curl, aria2c, retriever,
curl, aria2c, ...) for --repeat repetitions against local origins, and
prints one table with the median of every metric, then each target as MET
or MISSED with its ratio. Not a pass/fail test: it exits 0 whenever the
benchmark itself ran (a failed download is reported loudly, and counted).

Usage:
    bench.py --retrieverctl PATH [--scenario 1,2,...,9] [--repeat N]
             [--repeat-small N] [--workdir DIR] [--markdown] [--peers-only]

Scenarios (see docs/benchmarks.md for the method and the targets):
    1  1 GiB from nginx on loopback, unlimited
    2  1 GiB from fault_origin.py at 25 MiB/s per TCP connection, 20 ms
       before each response
    3  1000 files of 64 KiB from nginx
    4  retriever's peak RSS for 1 GiB and 4 GiB from nginx
    5  cost of durable state: 1 GiB from the origins of 1 and 2, retriever
       with a fresh state against retriever --no-state
    6  1000 files of 64 KiB from nginx, retriever with a fresh state
       against curl --parallel
    7  cache hit: 1 GiB with a fresh state, then again with the same state
       to another file (nginx, and the origin of 2 to count body bytes);
       every hit reads its blob back and checks its CRC-32C before it is
       delivered (docs/state.md). The first hit reads the blob from the
       disk (the download wrote it with O_DIRECT) and copies it; the
       second finds it in the page cache and links it (--link), so its
       time is the check's; a third asks --digest (SHA-256 of the bytes)
    8  cost of a digest: 1 GiB from nginx, retriever --digest against
       --no-digest, with a fresh state and with --no-state (four rows,
       interleaved in one run)
    9  a body of unknown size: 256 MiB from fault_origin.py with
       chunked=1 (Transfer-Encoding: chunked, no Content-Length, no
       ranges): retriever --no-state against curl, and retriever with a
       fresh state against curl + sync -d (the durable peer)

In scenarios 1-4 retriever runs with --no-state (the engine without
durability, as before state existed), so that no run is a cache hit of an
earlier one. The state rows of 5-7 get an empty --state-dir and --cache-dir
in the workdir (same file system as the outputs, as a user's cache would
be; the default delivery makes each output a file of its own, docs/state.md),
deleted before every run except the cache hit's.

Fairness: before every run the previous outputs (and the state
directories of that run's row) are removed -- deleted, or if small moved
aside until the end (see Runner._discard) -- and os.sync() is called, and the source files are checked to be in the page cache (and
read again if they are not). Every output's sha256 is verified after the
run, outside the timed section. CPU seconds and peak RSS come from
os.wait4() of the tool's own process. Last, right before the tool starts,
as much as the run will write (plus a margin) is written to a scratch file
and deleted (Runner.warm_free_memory): on this VM, memory that has been
free for a few seconds is handed back to the host, and a run whose page
cache lands on such memory writes up to 7x slower.

Python 3 standard library only; needs nginx, curl, aria2c and fincore
(util-linux).
"""

import argparse
import ctypes
import datetime
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "fixtures"))
import origins  # noqa: E402  (path set up above)

MIB = 1 << 20
GIB = 1 << 30
BIG_SIZE = 1 * GIB
HUGE_SIZE = 4 * GIB
SMALL_SIZE = 64 * 1024
SMALL_COUNT = 1000
S2_RATE = 25 * MIB              # scenario 2: bytes/s per TCP connection
S2_LATENCY_MS = 20              # scenario 2: delay before each response
CONNECTIONS = 16                # -c / -x / -s / -j / --parallel-max
SCENARIOS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
CHUNKED_SIZE = 256 * MIB        # scenario 9: the body of unknown size
RUN_TIMEOUT_S = 600             # a run taking longer is killed and failed
CLK_TCK = os.sysconf("SC_CLK_TCK")
BUSY_FLOOR_S = 0.1              # "other CPU" below this is not reported
QUIET_WINDOW_S = 0.5            # the machine counts as quiet when, over
QUIET_BUSY = 0.10               # this window, it was busy < this many cores
SETTLE_MAX_S = 30               # default bound on waiting for quiet
TRASH_MAX = 256 * MIB           # outputs up to this size are set aside
WARM_MARGIN = 64 * MIB          # warm_free_memory: beyond the run's bytes

CURL = shutil.which("curl") or "curl"
ARIA2C = shutil.which("aria2c") or "aria2c"
FINCORE = shutil.which("fincore") or "fincore"
SYNC = shutil.which("sync") or "sync"
DD = shutil.which("dd") or "dd"
SH = "/bin/sh"
PR_SET_CHILD_SUBREAPER = 36


def say(*args, end="\n"):
    """Progress and warnings go to stderr; stdout carries only the report."""
    print(*args, file=sys.stderr, end=end, flush=True)


# ---------------------------------------------------------------------------
# Machine facts
# ---------------------------------------------------------------------------

def _first_line(argv):
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _source_tree():
    """The commit this script's tree is at, and the files of lib/ and
    client/ changed on top of it: what the measured build was built from,
    when it was built from this tree."""
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    try:
        head = subprocess.run(["git", "-C", repo, "log", "-1",
                               "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain",
                                "--", "lib", "client"], capture_output=True,
                               text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    dirty = [line[3:] for line in dirty if line.strip()]
    return "%s%s" % (head[:60] or "unknown",
                     "; uncommitted changes in %s" % ", ".join(dirty)
                     if dirty else "")


def machine_facts(retrieverctl, workdir):
    """[(name, value)] describing this machine and the tools' versions."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T",
                         workdir], capture_output=True, text=True)
    fs = " ".join(fs.stdout.split())
    dirty = []
    for knob in ("dirty_background_ratio", "dirty_ratio"):
        with open("/proc/sys/vm/" + knob) as f:
            dirty.append("%s=%s" % (knob, f.read().strip()))
    facts = [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc)
         .strftime("%Y-%m-%d %H:%M")),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("cpu", _cpu_model()),
        ("memory", "%.1f GiB" % (mem / GIB)),
        ("kernel", platform.release()),
        ("workdir", "%s on %s" % (workdir, fs or "unknown fs")),
        ("vm", " ".join(dirty)),
        ("python", platform.python_version()),
        ("curl", " ".join(_first_line([CURL, "--version"]).split()[:5])),
        ("aria2c", _first_line([ARIA2C, "--version"])),
        ("nginx", _first_line([origins.NGINX, "-v"])),
    ]
    if retrieverctl:
        built = datetime.datetime.fromtimestamp(
            os.stat(retrieverctl).st_mtime, datetime.timezone.utc)
        facts.append(("retrieverctl", "%s (%s, built %s UTC, sha256 %s...)"
                      % (_first_line([retrieverctl, "--version"]),
                         retrieverctl, built.strftime("%Y-%m-%d %H:%M"),
                         origins.sha256_file(retrieverctl)[:12])))
        facts.append(("source tree", _source_tree()))
    else:
        facts.append(("retrieverctl", "not run (peers only)"))
    return facts


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------

def _proc_cpu_s(pids):
    """user+sys seconds consumed so far by `pids` (all threads of each)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime
    return total / CLK_TCK


def _system_task_cpu_s():
    """user+nice+system seconds of the whole machine so far (all CPUs; irq,
    softirq and steal time excluded, as they are from task times)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) / CLK_TCK


def _system_busy_s():
    """Non-idle seconds of the whole machine so far (all CPUs)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def _proc_wchar(pids):
    """Bytes written so far by `pids` (/proc/PID/io wchar: write(2) and
    sendfile(2) alike, so for nginx with its access log off: the response
    heads and bodies it sent). None when not readable."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/io" % pid) as f:
                for line in f:
                    if line.startswith("wchar:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            return None
    return total


def origin_pids(origin):
    """The origin's PID and its children's (nginx workers)."""
    pid = origin.pid
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [pid] + [int(p) for p in f.read().split()]
    except OSError:
        return [pid]


class Run:
    """One measured run of one tool."""

    def __init__(self, wall, cpu, rss_kib, origin_cpu, other_cpu, ok,
                 problem=""):
        self.wall = wall
        self.cpu = cpu
        self.rss_kib = rss_kib
        self.origin_cpu = origin_cpu
        self.other_cpu = other_cpu      # every other process, same interval
        self.ok = ok
        self.problem = problem
        self.origin_wrote = None        # bytes the origin wrote (/proc io)
        self.origin_body = None         # body bytes (fault origin's /_stats)
        self.nlink = None               # least st_nlink of the outputs


class Row:
    """One tool in one scenario: what to run, what it must produce, and the
    runs measured so far.

    `outputs` is [(path, sha256 hex)]; every path must exist after a run
    with that content. `outdir` is where the tool writes; the whole output
    area is emptied before each run. `nbytes`/`nfiles` are the payload.
    """

    def __init__(self, scenario, key, label, argv, outdir, outputs, nbytes,
                 nfiles=1, info=False, fresh=(), stateful=False, link=False):
        self.scenario = scenario
        self.key = key
        self.label = label
        self.argv = argv
        self.outdir = outdir
        self.outputs = outputs
        self.nbytes = nbytes
        self.nfiles = nfiles
        self.info = info            # a row "for information", not a target
        self.fresh = list(fresh)    # state directories deleted before a run
        self.stateful = stateful    # a state row: delivered from its cache
        self.link = link            # asked for --link: hard links expected
        self.runs = []

    def ok_runs(self):
        return [r for r in self.runs if r.ok]

    def _median(self, values):
        return statistics.median(values) if values else None

    def wall(self):
        return self._median([r.wall for r in self.ok_runs()])

    def cpu(self):
        return self._median([r.cpu for r in self.ok_runs()])

    def rss_mib(self):
        return self._median([r.rss_kib / 1024 for r in self.ok_runs()])

    def rss_max_mib(self):
        runs = self.ok_runs()
        return max(r.rss_kib / 1024 for r in runs) if runs else None

    def origin_cpu(self):
        return self._median([r.origin_cpu for r in self.ok_runs()])

    def other_cpu(self):
        return self._median([r.other_cpu for r in self.ok_runs()])

    def mib_s(self):
        return self._median([self.nbytes / MIB / r.wall
                             for r in self.ok_runs()])

    def files_s(self):
        return self._median([self.nfiles / r.wall for r in self.ok_runs()])

    def cpu_per_gib(self):
        return self._median([r.cpu / (self.nbytes / GIB)
                             for r in self.ok_runs()])

    def origin_wrote(self):
        values = [r.origin_wrote for r in self.ok_runs()
                  if r.origin_wrote is not None]
        return self._median(values)

    def origin_body_max(self):
        values = [r.origin_body for r in self.ok_runs()
                  if r.origin_body is not None]
        return max(values) if values else None

    def linked_runs(self):
        """Runs of a state row whose outputs were hard links to the cache
        (st_nlink 2), not the files of their own delivered by default."""
        return [r for r in self.ok_runs()
                if self.stateful and not self.link and r.nlink is not None
                and r.nlink >= 2]

    def rate_range(self):
        """(min, max) of the rate the scenario is judged by."""
        rates = [(self.nfiles if self.nfiles > 1 else self.nbytes / MIB)
                 / r.wall for r in self.ok_runs()]
        return (min(rates), max(rates)) if rates else None


class Runner:
    """Runs a Row once under the fairness rules and records a Run."""

    def __init__(self, workdir, timeout=RUN_TIMEOUT_S, settle_max=0,
                 warm=True):
        self.out_root = os.path.join(workdir, "out")
        self.scratch = os.path.join(workdir, "warm.scratch")
        self.warm = warm
        self.trash_root = os.path.join(workdir, "trash")
        self.trashed = 0            # output trees set aside (see _discard)
        self.log_path = os.path.join(workdir, "run.stderr")
        self.timeout = timeout
        self.env = {k: v for k, v in os.environ.items()
                    if "proxy" not in k.lower()}
        self.env["LC_ALL"] = "C"
        # A retrieverctl run without --no-state or --state-dir would use
        # these; keep it off the user's own state and cache.
        self.env["XDG_STATE_HOME"] = os.path.join(workdir, "xdg-state")
        self.env["XDG_CACHE_HOME"] = os.path.join(workdir, "xdg-cache")
        self.recached = 0           # bytes of sources that left the cache
        self.settle_max = settle_max
        self.settled_s = 0.0        # time spent waiting for a quiet machine
        self.never_quiet = 0        # runs started after settle_max anyway
        self.failures = []          # (row label, problem) of failed runs

    # -- fairness ----------------------------------------------------------

    def _clear_outputs(self, row):
        """Remove every previous output (of any tool) and the row's own
        state directories (row.fresh), recreate row.outdir; the trees
        moved aside (see _discard)."""
        moved = [self._discard(path) for path in [self.out_root] + row.fresh]
        os.makedirs(row.outdir)
        return [path for path in moved if path]

    @staticmethod
    def _drop_cached(trees):
        """Evict the (clean, after os.sync) page cache of trees moved
        aside, as deleting them would have."""
        for tree in trees:
            for top, _, files in os.walk(tree):
                for name in files:
                    try:
                        fd = os.open(os.path.join(top, name), os.O_RDONLY)
                    except OSError:
                        continue
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    finally:
                        os.close(fd)

    def _discard(self, path):
        """Remove the tree `path`: delete it, or when it is small (the
        small-file scenarios), move it aside into trash/, deleted with the
        workdir. On ext4 without a journal (this VM's root), an inode freed
        less than 60 s ago is skipped by the inode allocator, one check per
        candidate each time a file is created (fs/ext4/ialloc.c,
        recently_deleted()): deleting 1000 outputs before every run made
        the next runs' file creation ever slower (0.05 -> 0.25 s of system
        time for the same 1000 files), and unevenly so between tools. A
        handful of freed inodes (the large-file scenarios) does not
        matter. Returns the new path of a tree moved aside, else None."""
        if not os.path.lexists(path):
            return None
        size = 0
        for top, _, files in os.walk(path):
            for name in files:
                try:
                    size += os.lstat(os.path.join(top, name)).st_size
                except OSError:
                    pass
        if size > TRASH_MAX:
            shutil.rmtree(path, ignore_errors=True)
            return None
        os.makedirs(self.trash_root, exist_ok=True)
        self.trashed += 1
        moved = os.path.join(self.trash_root, str(self.trashed))
        os.rename(path, moved)
        return moved

    def ensure_cached(self, sources):
        """Make sure every file in `sources` is fully in the page cache."""
        if not sources:
            return
        out = subprocess.run([FINCORE, "--bytes", "--noheadings", "--raw",
                              "--output", "RES,SIZE"] + list(sources),
                             capture_output=True, text=True, check=True)
        for path, line in zip(sources, out.stdout.splitlines()):
            res, size = (int(w) for w in line.split())
            if res >= size:
                continue
            self.recached += size - res
            with open(path, "rb") as f:
                while f.read(8 * MIB):
                    pass

    def wait_quiet(self):
        """Wait (at most settle_max s) until the machine has been nearly
        idle for QUIET_WINDOW_S: other users of this VM (builds, test
        suites) otherwise take CPU from whichever tool runs at the time.
        There is no event for "idle", so this samples /proc/stat."""
        if self.settle_max <= 0:
            return
        start = time.monotonic()
        while True:
            before = _system_busy_s()
            time.sleep(QUIET_WINDOW_S)
            busy = (_system_busy_s() - before) / QUIET_WINDOW_S
            waited = time.monotonic() - start
            if busy < QUIET_BUSY or waited >= self.settle_max:
                break
        self.settled_s += waited - QUIET_WINDOW_S
        if busy >= QUIET_BUSY:
            self.never_quiet += 1

    def warm_free_memory(self, nbytes):
        """Write nbytes (plus WARM_MARGIN) of page cache to a scratch file
        and delete it, so that the run that starts next gets memory the VM
        has just used. This VM reports free memory to its host (virtio
        free page reporting: /sys/module/page_reporting), which takes it
        back a few seconds after it was freed; the guest's next first write
        to such a page waits for the host to supply it again. Measured here
        (1 GiB written to the page cache after 1 GiB was freed, 3 times
        each): 0.21-0.25 s at once, 0.57-0.60 s after 1 s, 0.9-1.3 s after
        4 s, 1.5-1.75 s after 8 s; with this step after 8 s, 0.22-0.37 s.
        Without it, how long a row waited between the previous run's
        deletions and its own start (a daemon restart, a settle wait)
        decided how fast it could write. Dirty pages that are deleted are
        never written to the disk. An anonymous mapping does not work
        here: its freed pages go back to the host at once."""
        if not self.warm or nbytes <= 0:
            return
        chunk = bytes(8 * MIB)
        left = nbytes + WARM_MARGIN
        fd = os.open(self.scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        try:
            while left > 0:
                left -= os.write(fd, chunk[:min(left, len(chunk))])
        finally:
            os.close(fd)
            os.unlink(self.scratch)

    # -- one run -----------------------------------------------------------

    def prepare(self, row, sources):
        """The fairness rules, applied before every run of `row`: outputs
        and the row's fresh state gone, dirty pages written, `sources` in
        the page cache, the machine quiet (bounded), and as much memory as
        the run will write freshly used. bench_daemon.py calls this too."""
        moved = self._clear_outputs(row)
        os.sync()
        self._drop_cached(moved)
        self.ensure_cached(sources)
        self.wait_quiet()
        self.warm_free_memory(row.nbytes)

    def run_tool(self, row):
        """Run row's command, reaped with wait4, killed after self.timeout.
        Returns (wall seconds, its rusage, problem: "" or why it failed).
        bench_daemon.py runs its commands with this too."""
        with open(self.log_path, "wb") as log:
            t0 = time.monotonic()
            pid = self._spawn(row, log)
            try:
                timed_out = not self._wait_exit(pid)
            except BaseException:           # Ctrl-C: leave nothing behind
                os.kill(pid, signal.SIGKILL)
                os.wait4(pid, 0)
                raise
            if timed_out:
                os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            wall = time.monotonic() - t0
        returncode = os.waitstatus_to_exitcode(status)
        if timed_out:
            return wall, usage, "killed after %d s" % self.timeout
        return wall, usage, "exit status %d" % returncode if returncode else ""

    def measure(self, row, origin, origin_pids_, sources):
        self.prepare(row, sources)
        stats = getattr(origin, "stats", None)      # fault origin only
        body_before = stats()["body_bytes"] if stats else None
        wrote_before = _proc_wchar(origin_pids_)
        origin_before = _proc_cpu_s(origin_pids_)
        system_before = _system_task_cpu_s()

        wall, usage, problem = self.run_tool(row)
        origin_cpu = _proc_cpu_s(origin_pids_) - origin_before
        wrote_after = _proc_wchar(origin_pids_)
        cpu = usage.ru_utime + usage.ru_stime
        other_cpu = max(_system_task_cpu_s() - system_before - cpu
                        - origin_cpu, 0.0)

        if not problem:
            problem = self._verify(row)
        run = Run(wall, cpu, usage.ru_maxrss, origin_cpu, other_cpu,
                  not problem, problem)
        if wrote_before is not None and wrote_after is not None:
            run.origin_wrote = wrote_after - wrote_before
        if stats:
            run.origin_body = stats()["body_bytes"] - body_before
        if not problem:
            run.nlink = min(os.stat(path).st_nlink for path, _ in row.outputs)
        row.runs.append(run)
        if problem:
            self._report_failure(row, problem)
        return run

    def _spawn(self, row, log):
        """Start row.argv as a grandchild that becomes our child; its PID.

        ru_maxrss counts the memory of the process before its exec too, and
        a child spawned by Python starts with Python's (tens of MiB, more
        than curl's own peak). So /bin/sh (about 1 MiB) forks the tool in
        the background, prints its PID and exits; the orphan is reparented
        to us (a child subreaper) and wait4() gives its own usage only.
        """
        launcher = subprocess.Popen(
            [SH, "-c", '"$@" >&2 & echo $!', "sh"] + row.argv,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            env=self.env, cwd=row.outdir)
        with launcher.stdout:
            line = launcher.stdout.read()
        if launcher.wait() != 0 or not line.strip().isdigit():
            raise RuntimeError("launcher failed: %r" % line)
        return int(line)

    def _wait_exit(self, pid):
        """Wait (bounded) for `pid` to exit without reaping it."""
        fd = os.pidfd_open(pid)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(self.timeout * 1000))
        finally:
            os.close(fd)

    def _verify(self, row):
        """'' if every output is there with the right content, else why."""
        for path, want in row.outputs:
            if not os.path.isfile(path):
                return "missing output %s" % path
            got = origins.sha256_file(path)
            if got != want:
                return "WRONG CONTENT in %s: sha256 %s, expected %s" % (
                    path, got, want)
        return ""

    def _report_failure(self, row, problem):
        try:
            with open(self.log_path, "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
        except OSError:
            tail = ""
        self.failures.append((row.label, problem))
        say("\n" + "!" * 72)
        say("!!! FAILED RUN: scenario %d, %s: %s" % (row.scenario, row.label,
                                                     problem))
        say("!!! command: %s" % _shell_line(row.argv))
        if tail.strip():
            say("!!! its stderr (tail):\n" + tail.rstrip())
        say("!" * 72)


def _shell_line(argv, max_urls=3):
    """argv as a readable shell line; a long list of URLs is elided."""
    words = [a if a and all(c.isalnum() or c in "-_./:=,@%+" for c in a)
             else "'%s'" % a.replace("'", "'\\''") for a in argv]
    urls = [i for i, w in enumerate(words)
            if w.lstrip("'").startswith("http://")]
    if len(urls) > max_urls:
        first, last = urls[0], urls[-1]
        words = words[:first + 1] + [
            "... (%d more URLs)" % (last - first - 1)] + words[last:]
    return " ".join(words)


def rotated(rows, rep):
    """rows, starting at a different one in each repetition: no tool always
    runs right after the same other tool (which may leave the file system
    or the page cache in a state that favours or hinders the next run)."""
    k = rep % len(rows)
    return rows[k:] + rows[:k]


def interleave(runner, rows, repeat, origin, sources, once=(), rotate=True):
    """Run `rows` `repeat` times, in an order rotated per repetition unless
    `rotate` is false (rows that depend on the run before them); rows in
    `once` run only in the first repetition."""
    pids = origin_pids(origin)
    width = max(len(row.label) for row in rows)
    for rep in range(repeat):
        for row in (rotated(rows, rep) if rotate else rows):
            if rep > 0 and row.key in once:
                continue
            say("  rep %d/%d  %-*s" % (rep + 1, repeat, width, row.label),
                end="")
            run = runner.measure(row, origin, pids, sources)
            say("  %7.3f s  cpu %6.2f s  other %5.2f s  %s"
                % (run.wall, run.cpu, run.other_cpu,
                   "ok" if run.ok else "FAILED"))


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

def curl_single(url, out):
    # --disable (first): ignore ~/.curlrc.
    return [CURL, "--disable", "-s", "-o", out, url]


def aria2_single(url, out):
    return [ARIA2C, "--no-conf", "-x%d" % CONNECTIONS, "-s%d" % CONNECTIONS,
            "--allow-overwrite=true", "--file-allocation=none", "-q",
            "-d", os.path.dirname(out), "-o", os.path.basename(out), url]


# Parallel writers of disk_floor(): as many as retriever's direct writes
# in flight (its writer's lanes, lib/src/stage.c).
DISK_FLOOR_WRITERS = 8


def disk_floor(src, out, size):
    """argv that makes a copy of `src` (in the page cache) durable at
    `out` as fast as this disk allows, with no network: DISK_FLOOR_WRITERS
    coreutils dd writing one slice each with O_DIRECT in 1 MiB blocks,
    then sync -d. What retriever with state must do besides downloading:
    its floor."""
    per = size // MIB // DISK_FLOOR_WRITERS
    dds = " & ".join(
        "%s if=%s of=%s bs=1M skip=%d seek=%d %soflag=direct conv=notrunc "
        "status=none" % (DD, shlex.quote(src), shlex.quote(out), i * per,
                         i * per, "count=%d " % per
                         if i < DISK_FLOOR_WRITERS - 1 else "")
        for i in range(DISK_FLOOR_WRITERS))  # (the last one to the end)
    return [SH, "-c", "%s & wait && exec %s -d %s" % (dds, SYNC,
                                                      shlex.quote(out))]


def then_sync(argv, flag, path):
    """argv, then (if it succeeded) coreutils sync: `-d FILE` is
    fdatasync(FILE), `-f PATH` is syncfs() of PATH's file system. A peer
    made durable the simple way, to compare with retriever's state rows;
    wait4() of the shell counts both processes' CPU."""
    return [SH, "-c", '"$@" && exec %s %s %s' % (SYNC, flag,
                                                 shlex.quote(path)),
            "sh"] + argv


# How to ask retrieverctl for a sha256 of every file (True) or none
# (False). Builds without --digest computed it by default; parse_args()
# drops the flags this build does not know.
DIGEST_FLAGS = {True: "--digest", False: "--no-digest"}


# Whether this build has durable state (--no-state, --state-dir,
# --cache-dir); parse_args() sets it from the build's --help. Builds
# without it keep no state, so their rows need no flag.
HAS_STATE = [True]


def retriever(ctl, urls, out=None, outdir=None, connections=CONNECTIONS,
              digest=True, state=None, extra=()):
    """argv of one retrieverctl run; `state` None is --no-state, else
    (state_dir, cache_dir); `extra`: more options."""
    argv = [ctl, "download", "--local", "-q"] + list(extra)
    if connections:
        argv += ["-c", str(connections)]
    if DIGEST_FLAGS.get(digest):
        argv.append(DIGEST_FLAGS[digest])
    if state:
        argv += ["--state-dir", state[0], "--cache-dir", state[1]]
    elif HAS_STATE[0]:
        argv.append("--no-state")
    argv += ["-o", out] if out else ["-d", outdir]
    return argv + list(urls)


def retriever_label(connections, digest, state=None):
    """`state`: None (--no-state), or how the state row is described."""
    label = "retriever"
    if connections:
        label += " -c %d" % connections
    label += " " + DIGEST_FLAGS.get(digest, "(sha256 by default)")
    if state:
        return label + ", " + state
    return label + (" --no-state" if HAS_STATE[0] else "")


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

class Bench:
    """Data files, origins' root, the runner, and the results."""

    def __init__(self, args):
        self.args = args
        self.ctl = None if args.peers_only else args.retrieverctl
        self.workdir = args.workdir
        self.srv = os.path.join(self.workdir, "srv")
        self.out = os.path.join(self.workdir, "out")
        self.state_root = os.path.join(self.workdir, "state")
        self.runner = Runner(self.workdir, settle_max=args.settle_max,
                             warm=not args.no_warm)
        self.rows = []
        self.verdicts = []          # (scenario, text, met or None)
        self.notes = []
        self.big = self.huge = self.chunked = None
        self.small = []             # [(name, sha256)]

    # -- data --------------------------------------------------------------

    def make_data(self, scenarios):
        # Small outputs are set aside, not deleted (Runner._discard): up to
        # 4 rows per small-file scenario, --repeat-small runs each.
        small_runs = 4 * self.args.repeat_small * len(scenarios & {3, 6})
        need = (BIG_SIZE * 2 + CHUNKED_SIZE * 2 + SMALL_COUNT * SMALL_SIZE * (1 + small_runs)
                + (HUGE_SIZE * 2 if 4 in scenarios and self.ctl else 0))
        st = os.statvfs(self.workdir)
        if st.f_bavail * st.f_frsize < need + GIB:
            raise SystemExit("bench.py: %s needs %.0f GiB free (sources, "
                             "one large output at a time, every small "
                             "output)" % (self.workdir, need / GIB + 1))
        os.makedirs(self.srv)
        if scenarios & {1, 2, 4, 5, 7, 8}:
            self.big = self._data("big1g.bin", BIG_SIZE, seed=1)
        if 4 in scenarios and self.ctl:
            self.huge = self._data("big4g.bin", HUGE_SIZE, seed=4)
        if 9 in scenarios:
            self.chunked = self._data("chunked256m.bin", CHUNKED_SIZE, seed=9)
        if scenarios & {3, 6}:
            os.makedirs(os.path.join(self.srv, "small"))
            say("generating %d files of %d KiB" % (SMALL_COUNT,
                                                   SMALL_SIZE // 1024))
            for i in range(SMALL_COUNT):
                name = "f%04d.bin" % i
                path = os.path.join(self.srv, "small", name)
                origins.make_file(path, SMALL_SIZE, seed=1000 + i)
                self.small.append((name, origins.sha256_file(path)))
        # Everything is written; make it durable and warm once.
        os.sync()
        self.runner.ensure_cached(self.all_sources())

    def _data(self, name, size, seed):
        path = os.path.join(self.srv, name)
        say("generating %s (%d MiB)" % (name, size // MIB))
        origins.make_file(path, size, seed=seed)
        return (path, origins.sha256_file(path))

    def all_sources(self):
        files = [f[0] for f in (self.big, self.huge, self.chunked) if f]
        files += [os.path.join(self.srv, "small", n) for n, _ in self.small]
        return files

    def _outdir(self, key):
        return os.path.join(self.out, key)

    def _state(self, key):
        """(state_dir, cache_dir) of a state row: in the workdir, on the
        outputs' file system (where a user's cache would be), not created --
        retrieverctl creates them, as on a first use."""
        base = os.path.join(self.state_root, key)
        return (os.path.join(base, "state"), os.path.join(base, "cache"))

    def _add(self, *args, **kw):
        row = Row(*args, **kw)
        self.rows.append(row)
        return row

    def _single_file_rows(self, scenario, url, peers, retriever_rows,
                          size, src):
        """Rows that download one file `src` (path, sha256) from `url`."""
        rows = []
        name = os.path.basename(src[0])
        for key, label, make in peers:
            out = os.path.join(self._outdir(key), name)
            rows.append(self._add(scenario, key, label, make(url, out),
                                  self._outdir(key), [(out, src[1])], size))
        for key, digest, info in retriever_rows:
            out = os.path.join(self._outdir(key), name)
            rows.append(self._add(
                scenario, key, retriever_label(CONNECTIONS, digest),
                retriever(self.ctl, [url], out=out, digest=digest),
                self._outdir(key), [(out, src[1])], size, info=info))
        return rows

    def _retriever_rows(self):
        """(key, digest, info) of the retriever rows of scenarios 1-3: the
        --no-digest row is the one judged (curl and aria2c compute no
        digest); the --digest row (sha256 of every file) is for
        information."""
        if not self.ctl:
            return []
        if not self.args.no_digest:
            return [("rv", True, False)]
        return [("rv-nd", False, False), ("rv", True, True)]

    def _judged(self, rows):
        """(row, name) of the retriever row the targets are judged on."""
        ns = " --no-state" if HAS_STATE[0] else ""
        if self.args.no_digest:
            return self._pick(rows, "rv-nd"), "retriever --no-digest" + ns
        return (self._pick(rows, "rv"),
                "retriever%s (sha256; no --no-digest)" % ns)

    def verdict(self, scenario, text, met):
        self.verdicts.append((scenario, text, met))

    def _pick(self, rows, key):
        for row in rows:
            if row.key == key and row.ok_runs():
                return row
        return None

    def _digest_modes(self):
        return (False, True) if self.args.no_digest else (True,)

    # -- 1 -----------------------------------------------------------------

    def scenario1(self):
        say("scenario 1: 1 GiB from nginx, unlimited")
        with origins.NginxOrigin(self.srv) as ng:
            url = ng.url("/" + os.path.basename(self.big[0]))
            rows = self._single_file_rows(
                1, url,
                [("curl", "curl (1 stream)", curl_single),
                 ("aria2", "aria2c -x16 -s16", aria2_single)],
                self._retriever_rows(), BIG_SIZE, self.big)
            interleave(self.runner, rows, self.args.repeat, ng,
                       [self.big[0]])
        curl, (rv, name) = self._pick(rows, "curl"), self._judged(rows)
        if not (curl and rv):
            self.verdict(1, "targets not evaluated (no successful curl "
                         "and %s runs)" % name, None)
            return
        ratio = rv.mib_s() / curl.mib_s()
        self.verdict(1, "%s MiB/s >= 1.0x curl's: %.0f / %.0f = %.2fx"
                     % (name, rv.mib_s(), curl.mib_s(), ratio), ratio >= 1.0)
        ratio = rv.cpu_per_gib() / curl.cpu_per_gib()
        self.verdict(1, "%s CPU s/GiB <= 1.2x curl's: %.2f / %.2f = %.2fx"
                     % (name, rv.cpu_per_gib(), curl.cpu_per_gib(), ratio),
                     ratio <= 1.2)

    # -- 2 -----------------------------------------------------------------

    def scenario2(self):
        say("scenario 2: 1 GiB from fault_origin.py, %d MiB/s per "
            "connection, %d ms latency" % (S2_RATE // MIB, S2_LATENCY_MS))
        with origins.FaultOrigin(self.srv, rate=S2_RATE,
                                 latency_ms=S2_LATENCY_MS) as fo:
            url = fo.url("/" + os.path.basename(self.big[0]))
            rows = self._single_file_rows(
                2, url,
                [("curl", "curl (1 stream, once)", curl_single),
                 ("aria2", "aria2c -x16 -s16", aria2_single)],
                self._retriever_rows(), BIG_SIZE, self.big)
            rows[0].info = True
            interleave(self.runner, rows, self.args.repeat, fo,
                       [self.big[0]], once={"curl"})
        ideal = CONNECTIONS * S2_RATE / MIB
        aria, (rv, name) = self._pick(rows, "aria2"), self._judged(rows)
        if not rv:
            self.verdict(2, "targets not evaluated (no successful %s run)"
                         % name, None)
            return
        ratio = rv.mib_s() / ideal
        self.verdict(2, "%s -c 16 >= 90%% of 16 x 25 MiB/s: %.0f / %.0f = "
                     "%.0f%%" % (name, rv.mib_s(), ideal, 100 * ratio),
                     ratio >= 0.9)
        if aria:
            ratio = rv.mib_s() / aria.mib_s()
            self.verdict(2, "%s -c 16 >= 1.2x aria2c's MiB/s: %.0f / %.0f = "
                         "%.2fx" % (name, rv.mib_s(), aria.mib_s(), ratio),
                         ratio >= 1.2)
        dg = self._pick(rows, "rv") if self.args.no_digest else None
        if dg:
            self.notes.append(
                "scenario 2, for information: retriever --digest got "
                "%.0f MiB/s = %.0f%% of ideal%s" % (
                    dg.mib_s(), 100 * dg.mib_s() / ideal,
                    ", %.2fx aria2c" % (dg.mib_s() / aria.mib_s())
                    if aria else ""))

    # -- 3 -----------------------------------------------------------------

    def _small_expected(self, key):
        """[(output path, sha256)] of the small files in key's outdir."""
        return [(os.path.join(self._outdir(key), n), sha)
                for n, sha in self.small]

    def _small_sources(self):
        return [os.path.join(self.srv, "small", n) for n, _ in self.small]

    def _curl_parallel_row(self, scenario, urls):
        """curl --parallel over the small files: one config file of
        url/output pairs (-K), not argv."""
        key = "curl"
        cfg = os.path.join(self.workdir, "cfg")
        os.makedirs(cfg, exist_ok=True)
        curl_cfg = os.path.join(cfg, "curl%d.cfg" % scenario)
        with open(curl_cfg, "w") as f:
            for (path, _), url in zip(self._small_expected(key), urls):
                f.write('url = "%s"\noutput = "%s"\n' % (url, path))
        return self._add(
            scenario, key, "curl --parallel-max 16",
            [CURL, "--disable", "-s", "--parallel", "--parallel-max",
             str(CONNECTIONS), "-K", curl_cfg],
            self._outdir(key), self._small_expected(key),
            SMALL_COUNT * SMALL_SIZE, SMALL_COUNT)

    def scenario3(self):
        say("scenario 3: %d files of %d KiB from nginx"
            % (SMALL_COUNT, SMALL_SIZE // 1024))
        cfg = os.path.join(self.workdir, "cfg")
        size = SMALL_COUNT * SMALL_SIZE
        sources = self._small_sources()
        expected = self._small_expected
        with origins.NginxOrigin(self.srv) as ng:
            urls = [ng.url("/small/" + n) for n, _ in self.small]
            rows = [self._curl_parallel_row(3, urls)]

            key = "aria2"
            listfile = os.path.join(cfg, "aria2.list")
            with open(listfile, "w") as f:
                f.write("".join(u + "\n" for u in urls))
            rows.append(self._add(
                3, key, "aria2c -j16",
                [ARIA2C, "--no-conf", "-j%d" % CONNECTIONS, "-i", listfile,
                 "-d", self._outdir(key), "-q", "--allow-overwrite=true",
                 "--file-allocation=none"],
                self._outdir(key), expected(key), size, SMALL_COUNT))

            for key, digest, info in self._retriever_rows():
                rows.append(self._add(
                    3, key, retriever_label(None, digest),
                    retriever(self.ctl, urls, outdir=self._outdir(key),
                              connections=None, digest=digest),
                    self._outdir(key), expected(key), size, SMALL_COUNT,
                    info=info))
            interleave(self.runner, rows, self.args.repeat_small, ng, sources)
        curl, (rv, name) = self._pick(rows, "curl"), self._judged(rows)
        if not (curl and rv):
            self.verdict(3, "target not evaluated (no successful curl and "
                         "%s runs)" % name, None)
            return
        ratio = rv.files_s() / curl.files_s()
        self.verdict(3, "%s files/s >= 1.0x curl --parallel's: %.0f / %.0f "
                     "= %.2fx" % (name, rv.files_s(), curl.files_s(), ratio),
                     ratio >= 1.0)

    # -- 4 -----------------------------------------------------------------

    def scenario4(self):
        if not self.ctl:
            self.notes.append("scenario 4 skipped: it measures retriever "
                              "only")
            return
        say("scenario 4: retriever's peak RSS, 1 GiB and 4 GiB from nginx")
        with origins.NginxOrigin(self.srv) as ng:
            rows = []
            for src, size, tag in ((self.big, BIG_SIZE, "1 GiB"),
                                   (self.huge, HUGE_SIZE, "4 GiB")):
                url = ng.url("/" + os.path.basename(src[0]))
                for digest in self._digest_modes():
                    key = "rv-%s-%s" % (tag[0], "sha" if digest else "nd")
                    out = os.path.join(self._outdir(key),
                                       os.path.basename(src[0]))
                    rows.append(self._add(
                        4, key, "%s, %s" % (retriever_label(CONNECTIONS,
                                                            digest), tag),
                        retriever(self.ctl, [url], out=out, digest=digest),
                        self._outdir(key), [(out, src[1])], size))
            interleave(self.runner, rows, self.args.repeat, ng,
                       [self.big[0], self.huge[0]])
        ns = " --no-state" if HAS_STATE[0] else ""
        for mode, name in (("nd", "--no-digest" + ns),
                           ("sha", "--digest" + ns)):
            if mode == "nd" and not self.args.no_digest:
                continue
            one = self._pick(rows, "rv-1-" + mode)
            four = self._pick(rows, "rv-4-" + mode)
            if one:
                self.verdict(4, "retriever %s peak RSS, 1 GiB <= 32 MiB: "
                             "%.1f MiB (max of runs %.1f) = %.2fx the limit"
                             % (name, one.rss_mib(), one.rss_max_mib(),
                                one.rss_mib() / 32), one.rss_mib() <= 32)
            if one and four:
                grow = four.rss_mib() - one.rss_mib()
                self.verdict(4, "retriever %s peak RSS, 4 GiB within 4 MiB "
                             "of 1 GiB: %.1f - %.1f = %+.1f MiB"
                             % (name, four.rss_mib(), one.rss_mib(), grow),
                             grow <= 4)
            if not (one and four):
                self.verdict(4, "retriever %s: RSS targets not fully "
                             "evaluated (failed runs)" % name, None)


    # -- 5, 6, 7: durable state ---------------------------------------------

    def _state_skipped(self, scenario):
        """True (and a note) when this run cannot measure state."""
        if not self.ctl:
            self.notes.append("scenario %d skipped: it measures retriever's "
                              "durable state" % scenario)
            return True
        if not HAS_STATE[0]:
            self.notes.append("scenario %d skipped: %s has no --state-dir "
                              "(no durable state)" % (scenario, self.ctl))
            return True
        return False

    def _origins_5_7(self):
        """(tag, name, origin) of scenarios 5 and 7: scenario 1's nginx and
        scenario 2's per-connection-limited fault origin."""
        return (("ng", "nginx", lambda: origins.NginxOrigin(self.srv)),
                ("lim", "limited origin",
                 lambda: origins.FaultOrigin(self.srv, rate=S2_RATE,
                                             latency_ms=S2_LATENCY_MS)))

    def _big_state_row(self, scenario, key, label, url, state, fresh,
                       digest=None, link=False, info=False):
        """A retriever -c 16 row downloading the 1 GiB file from `url`;
        `state` None is --no-state; `fresh`: delete its state first;
        `digest` None: --digest unless the build has --no-digest; `link`:
        --link (the hit's bytes are checked, then hard-linked)."""
        out = os.path.join(self._outdir(key), os.path.basename(self.big[0]))
        if digest is None:
            digest = not self.args.no_digest
        return self._add(
            scenario, key, label,
            retriever(self.ctl, [url], out=out, digest=digest, state=state,
                      extra=["--link"] if link else ()),
            self._outdir(key), [(out, self.big[1])], BIG_SIZE, info=info,
            fresh=[os.path.dirname(state[0])] if state and fresh else (),
            stateful=bool(state), link=link)

    def scenario5(self):
        if self._state_skipped(5):
            return
        say("scenario 5: cost of durable state, 1 GiB from nginx and from "
            "the limited origin")
        digest = not self.args.no_digest
        for tag, oname, make in self._origins_5_7():
            with make() as origin:
                url = origin.url("/" + os.path.basename(self.big[0]))
                rows = []
                for key, state in (("rv-ns-" + tag, None),
                                   ("rv-st-" + tag, self._state("5" + tag))):
                    label = retriever_label(
                        CONNECTIONS, digest,
                        "fresh state" if state else None) + ", " + oname
                    rows.append(self._big_state_row(5, key, label, url,
                                                    state, fresh=True))
                if tag == "ng":     # (one curl stream takes 41 s on the other)
                    key = "curl-sync-" + tag
                    out = os.path.join(self._outdir(key),
                                       os.path.basename(self.big[0]))
                    rows.append(self._add(
                        5, key, "curl (1 stream) + sync -d, " + oname,
                        then_sync(curl_single(url, out), "-d", out),
                        self._outdir(key), [(out, self.big[1])], BIG_SIZE,
                        info=True))
                    key = "disk-floor"
                    out = os.path.join(self._outdir(key),
                                       os.path.basename(self.big[0]))
                    rows.append(self._add(
                        5, key, "%d x dd oflag=direct + sync -d, no network "
                        "(the disk's floor)" % DISK_FLOOR_WRITERS,
                        disk_floor(self.big[0], out, BIG_SIZE),
                        self._outdir(key), [(out, self.big[1])], BIG_SIZE,
                        info=True))
                interleave(self.runner, rows, self.args.repeat, origin,
                           [self.big[0]])
            none, st = self._pick(rows, rows[0].key), self._pick(rows,
                                                                rows[1].key)
            if not (none and st):
                self.verdict(5, "%s: target not evaluated (failed runs)"
                             % oname, None)
                continue
            ratio = st.mib_s() / none.mib_s()
            self.verdict(5, "%s: retriever with state MiB/s >= 0.95x "
                         "--no-state's: %.0f / %.0f = %.2fx"
                         % (oname, st.mib_s(), none.mib_s(), ratio),
                         ratio >= 0.95)
            floor = self._pick(rows, "disk-floor")
            if floor:
                self.notes.append(
                    "scenario 5, %s: the disk made the GiB durable in %.3f s "
                    "without any network (%s); retriever with state took "
                    "%.3f s (%.2fx that floor), --no-state %.3f s: on this "
                    "disk state can reach about %.2fx --no-state's MiB/s"
                    % (oname, floor.wall(), floor.label, st.wall(),
                       st.wall() / floor.wall(), none.wall(),
                       none.wall() / floor.wall()))

    def scenario6(self):
        if self._state_skipped(6):
            return
        say("scenario 6: %d files of %d KiB from nginx, retriever with "
            "state" % (SMALL_COUNT, SMALL_SIZE // 1024))
        digest = not self.args.no_digest
        with origins.NginxOrigin(self.srv) as ng:
            urls = [ng.url("/small/" + n) for n, _ in self.small]
            rows = [self._curl_parallel_row(6, urls)]
            curl = rows[0]
            rows.append(self._add(
                6, "curl-sync", curl.label + " + sync -f",
                then_sync(curl.argv, "-f", curl.outdir), curl.outdir,
                curl.outputs, curl.nbytes, curl.nfiles, info=True))
            for key, state in (("rv-st", self._state("6")), ("rv-ns", None)):
                rows.append(self._add(
                    6, key,
                    retriever_label(None, digest,
                                    "fresh state" if state else None),
                    retriever(self.ctl, urls, outdir=self._outdir(key),
                              connections=None, digest=digest, state=state),
                    self._outdir(key), self._small_expected(key),
                    SMALL_COUNT * SMALL_SIZE, SMALL_COUNT,
                    info=not state,
                    fresh=[os.path.dirname(state[0])] if state else (),
                    stateful=bool(state)))
            interleave(self.runner, rows, self.args.repeat_small, ng,
                       self._small_sources())
        curl, st = self._pick(rows, "curl"), self._pick(rows, "rv-st")
        none = self._pick(rows, "rv-ns")
        if not (curl and st):
            self.verdict(6, "target not evaluated (no successful curl and "
                         "retriever-with-state runs)", None)
            return
        ratio = st.files_s() / curl.files_s()
        self.verdict(6, "retriever with state files/s >= 1.0x curl "
                     "--parallel's: %.0f / %.0f = %.2fx"
                     % (st.files_s(), curl.files_s(), ratio), ratio >= 1.0)
        if none:
            self.notes.append(
                "scenario 6, for information: retriever with state got "
                "%.2fx the files/s of retriever --no-state (%.0f / %.0f)"
                % (st.files_s() / none.files_s(), st.files_s(),
                   none.files_s()))

    def scenario7(self):
        if self._state_skipped(7):
            return
        say("scenario 7: cache hit, 1 GiB with a fresh state, then again "
            "with the same state")
        plain = False if self.args.no_digest else None
        for tag, oname, make in self._origins_5_7():
            state = self._state("7" + tag)
            with make() as origin:
                url = origin.url("/" + os.path.basename(self.big[0]))
                lbl = retriever_label(CONNECTIONS, plain, "%s, " + oname)
                # In this order in every round: the download writes its
                # blob with O_DIRECT, so the first hit reads it from the
                # disk (cold) and leaves it in the page cache for the
                # second (warm), which links instead of copying: what is
                # left of that one is the CRC-32C check itself.
                rows = [
                    self._big_state_row(7, "rv-dl-" + tag,
                                        lbl % "fresh state: download", url,
                                        state, fresh=True, digest=plain),
                    self._big_state_row(7, "rv-hit-" + tag,
                                        lbl % "cache hit, cold blob, copy",
                                        url, state, fresh=False,
                                        digest=plain),
                    self._big_state_row(7, "rv-hitw-" + tag,
                                        lbl % "cache hit, warm blob, --link",
                                        url, state, fresh=False,
                                        digest=plain, link=True),
                    self._big_state_row(7, "rv-hitdg-" + tag,
                                        retriever_label(
                                            CONNECTIONS, True,
                                            "cache hit, copy, " + oname),
                                        url, state, fresh=False, digest=True,
                                        info=True)]
                # The hits need the download just before them: no rotation.
                interleave(self.runner, rows, self.args.repeat, origin,
                           [self.big[0]], rotate=False)
            shutil.rmtree(os.path.dirname(state[0]), ignore_errors=True)
            dl, hit, warm, hitdg = (self._pick(rows, r.key) for r in rows)
            if not (dl and hit and warm):
                self.verdict(7, "%s: targets not evaluated (failed runs)"
                             % oname, None)
                continue
            ratio = warm.wall() / dl.wall()
            self.verdict(7, "%s: the hit's check (warm blob, --link: the "
                         "whole run) <= 0.1x the download's wall: %.3f s / "
                         "%.3f s = %.3fx" % (oname, warm.wall(), dl.wall(),
                                             ratio),
                         ratio <= 0.1)
            self.notes.append(
                "scenario 7, %s, for information: a hit whose blob is read "
                "from the disk and copied took %.2fx the download (%.3f s / "
                "%.3f s)%s" % (
                    oname, hit.wall() / dl.wall(), hit.wall(), dl.wall(),
                    "; a hit with --digest (SHA-256 of the bytes "
                    "delivered) %.3f s" % hitdg.wall() if hitdg else ""))
            body = max(r.origin_body_max() or 0 for r in (hit, warm))
            if hit.origin_body_max() is not None:
                self.verdict(7, "%s: origin sent <= 1 body byte for a "
                             "hit: %d (max of runs; the download: %d)"
                             % (oname, body, dl.origin_body_max()),
                             body <= 1)
            wrote = [r.origin_wrote for r in hit.ok_runs()
                     if r.origin_wrote is not None]
            if wrote and hit.origin_body_max() is None:
                self.notes.append(
                    "scenario 7, %s: the origin wrote %d bytes for each "
                    "cache hit at most (response head and body, from its "
                    "/proc/PID/io wchar), %.0f MiB for each download"
                    % (oname, max(wrote), dl.origin_wrote() / MIB))

    # -- 8: cost of a digest --------------------------------------------------

    def scenario8(self):
        if self._state_skipped(8):
            return
        if not self.args.no_digest:
            self.notes.append("scenario 8 skipped: %s has no --no-digest "
                              "to compare with" % self.ctl)
            return
        say("scenario 8: cost of a digest, 1 GiB from nginx, with a fresh "
            "state and with --no-state")
        with origins.NginxOrigin(self.srv) as ng:
            url = ng.url("/" + os.path.basename(self.big[0]))
            rows = []
            for mode, state in (("st", self._state("8")), ("ns", None)):
                for digest in (False, True):
                    key = "rv-%s-%s" % (mode, "sha" if digest else "nd")
                    label = retriever_label(
                        CONNECTIONS, digest, "fresh state" if state else None)
                    rows.append(self._big_state_row(8, key, label, url, state,
                                                    fresh=True, digest=digest))
            interleave(self.runner, rows, self.args.repeat, ng,
                       [self.big[0]])
        for mode, name in (("st", "with state"), ("ns", "--no-state")):
            nd = self._pick(rows, "rv-%s-nd" % mode)
            dg = self._pick(rows, "rv-%s-sha" % mode)
            if not (nd and dg):
                self.verdict(8, "%s: targets not evaluated (failed runs)"
                             % name, None)
                continue
            ratio = dg.wall() / nd.wall()
            self.verdict(8, "%s: --digest wall <= 1.3x --no-digest's: "
                         "%.3f s / %.3f s = %.2fx (CPU s %.2f / %.2f)"
                         % (name, dg.wall(), nd.wall(), ratio,
                            dg.cpu_per_gib(), nd.cpu_per_gib()),
                         ratio <= 1.3)
            self.verdict(8, "%s: --digest peak RSS <= 32 MiB: %.1f MiB "
                         "(max of runs %.1f; --no-digest %.1f)"
                         % (name, dg.rss_mib(), dg.rss_max_mib(),
                            nd.rss_mib()), dg.rss_mib() <= 32)

    # -- 9: a body of unknown size -------------------------------------------

    def scenario9(self):
        say("scenario 9: %d MiB of unknown size (chunked, no ranges) from "
            "the fault origin" % (CHUNKED_SIZE // MIB))
        name = os.path.basename(self.chunked[0])
        with origins.FaultOrigin(self.srv) as fo:
            url = fo.url("/" + name, chunked=1)
            rows = []

            def add(key, label, argv_for, **kw):
                out = os.path.join(self._outdir(key), name)
                rows.append(self._add(9, key, label, argv_for(out),
                                      self._outdir(key),
                                      [(out, self.chunked[1])], CHUNKED_SIZE,
                                      **kw))
            add("curl", "curl (1 stream)", lambda out: curl_single(url, out))
            add("curl-sync", "curl (1 stream) + sync -d",
                lambda out: then_sync(curl_single(url, out), "-d", out))
            if self.ctl:
                state = self._state("9")
                add("rv-st", retriever_label(None, False, "fresh state"),
                    lambda out: retriever(self.ctl, [url], out=out,
                                          connections=None, digest=False,
                                          state=state),
                    fresh=[os.path.dirname(state[0])], stateful=True)
                add("rv-ns", retriever_label(None, False),
                    lambda out: retriever(self.ctl, [url], out=out,
                                          connections=None, digest=False))
            interleave(self.runner, rows, self.args.repeat, fo,
                       [self.chunked[0]])
        if not self.ctl:
            return
        # Like for like: the engine without durability against curl (as in
        # scenarios 1-4), and with a fresh state (its file durable when
        # delivered) against curl followed by sync -d.
        for key, peer, what in (("rv-ns", "curl", "--no-state"),
                                ("rv-st", "curl-sync", "with a fresh state")):
            rv, pr = self._pick(rows, key), self._pick(rows, peer)
            if not (rv and pr):
                self.verdict(9, "retriever %s: target not evaluated (failed "
                             "runs)" % what, None)
                continue
            ratio = rv.wall() / pr.wall()
            self.verdict(9, "retriever %s wall <= 1.0x %s's: %.3f s / %.3f s "
                         "= %.2fx" % (what, pr.label, rv.wall(), pr.wall(),
                                      ratio), ratio <= 1.0)
        st, curl = self._pick(rows, "rv-st"), self._pick(rows, "curl")
        if st and curl:
            self.notes.append("scenario 9, for information: retriever with a "
                              "fresh state took %.2fx curl's wall time (curl "
                              "writes nothing durably)" % (st.wall() / curl.wall()))


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

COLUMNS = ["#", "tool", "ok", "wall s", "MiB/s", "files/s", "CPU s",
           "CPU s/GiB", "peak RSS MiB", "origin CPU s", "other CPU s",
           "rate min-max"]


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table_rows(rows):
    out = []
    for row in rows:
        rng = row.rate_range()
        out.append([
            str(row.scenario),
            row.label + (" [info]" if row.info else ""),
            "%d/%d" % (len(row.ok_runs()), len(row.runs)),
            _fmt(row.wall(), ".3f"),
            _fmt(row.mib_s(), ".0f"),
            _fmt(row.files_s(), ".0f") if row.nfiles > 1 else "-",
            _fmt(row.cpu(), ".2f"),
            _fmt(row.cpu_per_gib(), ".2f"),
            _fmt(row.rss_mib(), ".1f"),
            _fmt(row.origin_cpu(), ".2f"),
            _fmt(row.other_cpu(), ".2f"),
            "%.0f-%.0f" % rng if rng else "-",
        ])
    return out


def print_text(facts, bench):
    print("retriever benchmark (tests/bench/bench.py), repeat=%d%s, medians"
          % (bench.args.repeat, " (scenarios 3 and 6: %d)"
             % bench.args.repeat_small if bench.args.repeat_small
             != bench.args.repeat else ""))
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        print("  %-*s  %s" % (width, k, v))
    print()
    body = table_rows(bench.rows)
    widths = [max([len(c)] + [len(r[i]) for r in body])
              for i, c in enumerate(COLUMNS)]
    left = {1}

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(COLUMNS))
    print(line(["-" * w for w in widths]))
    last = None
    for cells, row in zip(body, bench.rows):
        if last is not None and row.scenario != last:
            print()
        last = row.scenario
        print(line(cells))
    print()
    print_verdicts(bench, bullet="")


def print_markdown(facts, bench):
    print("Machine:\n")
    for k, v in facts:
        print("- %s: `%s`" % (k, v))
    print("\nMedians of %d repetitions%s (scenario 2's curl: one run).\n"
          % (bench.args.repeat, "; scenarios 3 and 6: %d"
             % bench.args.repeat_small if bench.args.repeat_small
             != bench.args.repeat else ""))
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "|".join("---" if i in (1,) else "--:"
                         for i in range(len(COLUMNS))) + "|")
    for cells in table_rows(bench.rows):
        print("| " + " | ".join(cells) + " |")
    print("\nTargets:\n")
    print_verdicts(bench, bullet="- ")
    print("\nCommands (URLs and paths as run):\n")
    for row in bench.rows:
        print("- %d, %s: `%s`" % (row.scenario, row.label,
                                  _shell_line(row.argv)))


def print_verdicts(bench, bullet):
    for scenario, text, met in bench.verdicts:
        word = {True: "MET", False: "MISSED", None: "NOT EVALUATED"}[met]
        print("%s%s scenario %d: %s" % (bullet, word.ljust(6) if not bullet
                                        else "**%s**" % word, scenario, text))
    notes = list(bench.notes)
    if bench.runner.failures:
        notes.append("FAILED RUNS: %d (%s)" % (
            len(bench.runner.failures),
            "; ".join("%s: %s" % f for f in bench.runner.failures)))
    else:
        notes.append("every run exited 0 and every output's sha256 matched")
    linked = ["%d %s: %d of %d runs" % (row.scenario, row.label,
                                        len(row.linked_runs()),
                                        len(row.ok_runs()))
              for row in bench.rows if row.linked_runs()]
    if linked:
        notes.append("DELIVERED BY HARD LINK (output st_nlink 2: the cache's "
                     "own file, as before issue 19): %s" % "; ".join(linked))
    elif any(row.stateful and row.ok_runs() for row in bench.rows):
        notes.append("every output of a state row was a file of its own "
                     "(st_nlink 1: a tee, reflink or copy, the default "
                     "delivery; docs/state.md)")
    busy = ["%d %s" % (row.scenario, row.label) for row in bench.rows
            if row.ok_runs() and row.other_cpu() > max(0.25 * row.wall(),
                                                       BUSY_FLOOR_S)]
    if busy:
        notes.append("other processes (other users of the machine, or "
                     "kernel workers such as writeback) used more than a "
                     "quarter of a core during: %s -- see their min-max"
                     % "; ".join(busy))
    r = bench.runner
    if r.settle_max > 0:
        notes.append("waited %.0f s in all for an idle machine before runs"
                     "%s" % (r.settled_s, "; %d runs started busy after "
                             "%.0f s" % (r.never_quiet, r.settle_max)
                             if r.never_quiet else ""))
    notes.append("source bytes found evicted from the page cache before "
                 "a run and read back: %.0f MiB" % (bench.runner.recached
                                                    / MIB))
    for note in notes:
        print("%snote: %s" % (bullet, note))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmark retriever against curl and aria2c on local "
                    "origins; prints a table of medians and the targets.")
    p.add_argument("--retrieverctl", metavar="PATH",
                   help="the retrieverctl binary to benchmark")
    p.add_argument("--peers-only", action="store_true",
                   help="run curl and aria2c only (no retriever rows)")
    p.add_argument("--scenario", default=",".join(map(str, SCENARIOS)),
                   help="comma-separated scenarios to run (default all: "
                        "%s)" % ",".join(map(str, SCENARIOS)))
    p.add_argument("--repeat", type=int, default=3,
                   help="repetitions per tool; the median is reported "
                        "(default 3)")
    p.add_argument("--repeat-small", type=int, metavar="N",
                   help="repetitions in the small-file scenarios 3 and 6, "
                        "whose times vary most (default: --repeat)")
    p.add_argument("--workdir", metavar="DIR",
                   help="scratch directory, created and deleted "
                        "(default /tmp/rv-bench-<pid>)")
    p.add_argument("--settle-max", type=float, default=SETTLE_MAX_S,
                   metavar="S",
                   help="before each run wait up to S s for the machine to "
                        "be idle (0: do not wait; default %d)"
                        % SETTLE_MAX_S)
    p.add_argument("--no-warm", action="store_true",
                   help="skip the memory warm-up before each run "
                        "(Runner.warm_free_memory), to see its effect")
    p.add_argument("--markdown", action="store_true",
                   help="print the report as Markdown")
    args = p.parse_args(argv)
    args.no_digest = False
    try:
        args.scenarios = {int(s) for s in args.scenario.split(",") if s}
    except ValueError:
        p.error("--scenario: comma-separated numbers 1-%d" % SCENARIOS[-1])
    if not args.scenarios or not args.scenarios <= set(SCENARIOS):
        p.error("--scenario: comma-separated numbers 1-%d" % SCENARIOS[-1])
    if args.repeat_small is None:
        args.repeat_small = args.repeat
    if args.repeat < 1 or args.repeat_small < 1:
        p.error("--repeat and --repeat-small must be >= 1")
    if not args.peers_only:
        if not args.retrieverctl:
            p.error("--retrieverctl PATH is required (or --peers-only)")
        if not os.access(args.retrieverctl, os.X_OK):
            p.error("--retrieverctl %r is not executable" % args.retrieverctl)
        args.retrieverctl = os.path.abspath(args.retrieverctl)
        help_text = subprocess.run(
            [args.retrieverctl, "download", "--help"], capture_output=True,
            text=True).stdout
        for digest, flag in list(DIGEST_FLAGS.items()):
            if not re.search(r"^ +%s\b" % flag, help_text, re.M):
                del DIGEST_FLAGS[digest]
        args.no_digest = False in DIGEST_FLAGS
        HAS_STATE[0] = all(re.search(r"^ +%s\b" % flag, help_text, re.M)
                           for flag in ("--no-state", "--state-dir",
                                        "--cache-dir"))
        if not HAS_STATE[0]:
            say("warning: %s has no durable state (--no-state, --state-dir, "
                "--cache-dir); scenarios 5-7 are skipped" % args.retrieverctl)
        if not args.no_digest:
            say("warning: %s has no --no-digest option; the targets are "
                "judged on its sha256 rows instead" % args.retrieverctl)
    args.workdir = os.path.abspath(args.workdir or
                                   "/tmp/rv-bench-%d" % os.getpid())
    if os.path.exists(args.workdir) and os.listdir(args.workdir):
        p.error("--workdir %s exists and is not empty" % args.workdir)
    for tool in (CURL, ARIA2C, FINCORE, origins.NGINX):
        if not shutil.which(tool):
            p.error("%s not found" % tool)
    return args


def become_subreaper():
    """Orphaned descendants (the tools, see Runner._spawn) become ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _terminate(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv=None):
    args = parse_args(argv)
    become_subreaper()
    signal.signal(signal.SIGTERM, _terminate)   # clean up as for Ctrl-C
    os.makedirs(args.workdir, exist_ok=True)
    bench = Bench(args)
    try:
        facts = machine_facts(bench.ctl, args.workdir)
        bench.make_data(args.scenarios)
        for n in sorted(args.scenarios):
            getattr(bench, "scenario%d" % n)()
    except KeyboardInterrupt:
        say("\nbench.py: interrupted; nothing reported")
        return 130
    finally:
        say("removing %s" % args.workdir)
        shutil.rmtree(args.workdir, ignore_errors=True)
    (print_markdown if args.markdown else print_text)(facts, bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
