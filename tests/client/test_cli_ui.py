#!/usr/bin/python3
"""What `retrieverctl download` shows a person, end to end: the real binary
in a pseudo-terminal (the live display at 120 and 40 columns, with a name
of accented and wide characters), "resuming at" after a download killed
mid-way, "cached" for a hit, Ctrl-C (exit 130, what was kept, and the kept
part resumes), the --json lines against their schema
(docs/cli-json.schema.json), and the help (one screen, "did you mean").

Environment (ctest sets both):
  RV_CTL      path of the retrieverctl binary
  PYTHONPATH  must reach tests/fixtures (origins.py)

Run by hand:
  RV_CTL=build/client/retrieverctl PYTHONPATH=tests/fixtures \\
      /usr/bin/python3 tests/client/test_cli_ui.py -v
"""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unicodedata
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import FaultOrigin, make_file  # noqa: E402

CTL = os.environ.get("RV_CTL")
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                      os.pardir, "docs", "cli-json.schema.json")
RUN_TIMEOUT = 120  # seconds, a bound on any one retrieverctl run
RATE = 256 * 1024  # bytes/s per connection at the slow origin
WIDE = "donn\u00e9es-\u65e5\u672c.bin"  # "données-日本.bin": 16 columns, 22 bytes
SIZES = {WIDE: 1024 * 1024, "plain.bin": 1024 * 1024, "small.bin": 1000,
         "big.bin": 16 * 1024 * 1024}
ESC = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def setUpModule():
    if not CTL:
        raise unittest.SkipTest("RV_CTL is not set")


def cols(s):
    """Display columns of s, as a terminal counts them (wcwidth's rules:
    combining marks 0, East Asian wide and fullwidth 2, else 1)."""
    n = 0
    for ch in s:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


def screen_lines(raw):
    """The pieces of text the terminal output puts on lines: split at
    newlines, carriage returns and escape sequences (cursor moves and
    erases), escape sequences removed."""
    text = ESC.sub("\n", raw.replace("\r", "\n"))
    return [line for line in text.split("\n") if line]


class Pty:
    """retrieverctl in a new pseudo-terminal of cols x rows, as the
    session leader with the terminal as its controlling terminal (so it is
    the terminal's foreground process group, as a shell would make it).
    The output (stdout and stderr: both are the terminal) is read by a
    thread."""

    def __init__(self, args, columns, rows=24, env=None, cwd=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: set the size before anything reads it
            try:
                if cwd:
                    os.chdir(cwd)
                fcntl.ioctl(0, termios.TIOCSWINSZ,
                            struct.pack("HHHH", rows, columns, 0, 0))
                os.execve(CTL, [CTL, *args], env or os.environ)
            finally:
                os._exit(127)
        self.chunks = []
        self.lock = threading.Lock()
        self.rc = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.watchdog = threading.Timer(RUN_TIMEOUT, self.kill)
        self.watchdog.start()

    def _read(self):
        while True:
            try:
                r, _, _ = select.select([self.fd], [], [], 1.0)
                if not r:
                    continue
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child and its terminal are gone
                break
            if not data:
                break
            with self.lock:
                self.chunks.append(data)

    def output(self):
        with self.lock:
            return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=60):
        """Wait until the output matches pattern (a regex); the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no %r in the output:\n%s" % (pattern, self.output()))

    def interrupt(self):
        """Ctrl-C: SIGINT to the terminal's foreground process group."""
        os.killpg(os.tcgetpgrp(self.fd), signal.SIGINT)

    def poll(self):
        if self.rc is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
        return self.rc

    def wait(self):
        """Wait for the exit (bounded by the watchdog); the exit code."""
        if self.rc is None:
            _, status = os.waitpid(self.pid, 0)
            self.rc = os.waitstatus_to_exitcode(status)
        self.watchdog.cancel()
        self.reader.join(10)
        os.close(self.fd)
        return self.rc

    def kill(self):
        if self.rc is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def check_schema(test, value, schema, where="$"):
    """A small JSON Schema checker, enough for docs/cli-json.schema.json:
    type (one or a list), enum, required, properties,
    additionalProperties: false, minimum, pattern."""
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        py = {"object": dict, "string": str, "boolean": bool, "null": type(None),
              "array": list}
        ok = False
        for t in types:
            if t == "integer":
                ok |= isinstance(value, int) and not isinstance(value, bool)
            elif t == "number":
                ok |= isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok |= isinstance(value, py[t])
        test.assertTrue(ok, "%s: %r is not %s" % (where, value, types))
    if "enum" in schema:
        test.assertIn(value, schema["enum"], where)
    if "minimum" in schema and isinstance(value, (int, float)):
        test.assertGreaterEqual(value, schema["minimum"], where)
    if "pattern" in schema and isinstance(value, str):
        test.assertRegex(value, schema["pattern"], where)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            test.assertIn(key, value, "%s: no %r" % (where, key))
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            test.assertEqual(set(value) - set(props), set(), "%s: keys not in the schema"
                             % where)
        for key, sub in props.items():
            if key in value:
                check_schema(test, value[key], sub, "%s.%s" % (where, key))


class UiCase(unittest.TestCase):
    """One rate-limited fault origin shared by the class; a state, cache
    and output directory per test."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ui-root-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        for seed, (name, size) in enumerate(sorted(SIZES.items())):
            make_file(os.path.join(cls.root, name), size, seed + 1)
        cls.fo = FaultOrigin(cls.root, rate=RATE).start()
        cls.addClassCleanup(cls.fo.stop)

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-ui-out-")
        self.addCleanup(shutil.rmtree, self.out, True)
        xdg = tempfile.mkdtemp(prefix="rv-ui-xdg-")
        self.addCleanup(shutil.rmtree, xdg, True)
        self.env = dict(os.environ, LC_ALL="C.UTF-8", TERM="xterm",
                        XDG_STATE_HOME=os.path.join(xdg, "state"),
                        XDG_CACHE_HOME=os.path.join(xdg, "cache"))

    def url(self, name, **query):
        from urllib.parse import quote
        return self.fo.url("/" + quote(name), **query)

    def pty(self, args, columns, cwd=None):
        p = Pty(args, columns, env=self.env, cwd=cwd)
        self.addCleanup(p.kill)
        return p

    def run_plain(self, *args):
        return subprocess.run([CTL, *args], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL,
                              env=self.env)

    def blobs(self):
        d = os.path.join(self.env["XDG_CACHE_HOME"], "retriever")
        found = []
        for top, _, files in os.walk(d):
            found += [os.path.join(top, f) for f in files]
        return found

    # -- the live display ----------------------------------------------------

    def test_display_at_120_and_40_columns(self):
        """Two downloads at once, one named with accented and wide
        characters: no line reaches the last column, the names' columns
        line up (the '%' of both lines in one column), and the name is
        shown whole when there is room."""
        for width in (120, 40):
            with self.subTest(columns=width):
                out = tempfile.mkdtemp(dir=self.out)
                p = self.pty(["download", "--local", "--no-state", "-c", "1",
                              self.url(WIDE), self.url("plain.bin")], width, cwd=out)
                # Both downloading: a frame with both lines and a total.
                p.wait_for(r"total  0/2 done")
                self.assertEqual(p.wait(), 0, p.output())
                raw = p.output()
                # The live area's lines (permanent lines may wrap: they are
                # never redrawn).
                lines = [ln for ln in screen_lines(raw)
                         if not ln.startswith(("done: ", "total: ", "retrieverctl: "))]
                for line in lines:
                    self.assertLessEqual(cols(line), width - 1, repr(line))
                # Each frame starts after an erase; in every frame with both
                # downloading, their '%' signs share a column.
                both = 0
                for frame in raw.split("\x1b[J")[1:]:
                    fl = screen_lines(frame)
                    wide = [ln for ln in fl if ln.startswith("donn") and "%" in ln]
                    plain = [ln for ln in fl if ln.startswith("plain.bin") and "%" in ln]
                    if not (wide and plain):
                        continue
                    both += 1
                    self.assertEqual(cols(wide[0][:wide[0].index("%")]),
                                     cols(plain[0][:plain[0].index("%")]),
                                     "misaligned:\n%s\n%s" % (wide[0], plain[0]))
                self.assertGreater(both, 0, raw)
                wide = [ln for ln in lines if ln.startswith("donn") and "%" in ln]
                self.assertTrue(any(ln.startswith(WIDE + "  ") for ln in wide), wide[-1])
                self.assertIn("done: '%s'" % WIDE, raw)

    def test_cached_on_a_second_download(self):
        args = ["download", "--local", "-d", self.out, self.url("small.bin")]
        first = self.run_plain(*args)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertNotIn("cached", first.stderr)
        os.unlink(os.path.join(self.out, "small.bin"))
        p = self.pty(args, 80)
        self.assertEqual(p.wait(), 0, p.output())
        self.assertRegex(p.output(), r"done: '.*small\.bin' 1000 B in .*, cached\r?\n")
        # Not a terminal: the same line, one per finished object.
        os.unlink(os.path.join(self.out, "small.bin"))
        third = self.run_plain(*args)
        self.assertEqual(third.returncode, 0, third.stderr)
        self.assertEqual([ln for ln in third.stderr.splitlines() if ln.startswith("done: ")],
                         [ln for ln in third.stderr.splitlines() if "small.bin" in ln])
        self.assertRegex(third.stderr, r"done: '.*small\.bin' 1000 B in .*, cached\n")

    # -- resume and Ctrl-C -------------------------------------------------------

    def durable_bytes(self, state=None):
        """Bytes of durable ranges recorded in the state database of state
        (default: --local's) (read only, beside the process that owns it);
        0 when there is none yet."""
        db = os.path.join(state or os.path.join(self.env["XDG_STATE_HOME"], "retriever"),
                          "retriever.db")
        if not os.path.exists(db):
            return 0
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return con.execute("SELECT coalesce(sum(durable - start), 0) FROM ranges"
                               ).fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0
        finally:
            con.close()

    def wait_durable(self, more_than=0, timeout=60, state=None):
        """Wait until the state records more than more_than durable bytes
        (a commit of the engine's); returns how many (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.durable_bytes(state)
            if n > more_than:
                return n
            time.sleep(0.1)
        self.fail("never more than %d durable bytes" % more_than)

    def test_resume_after_kill_then_ctrl_c_keeps_it(self):
        """kill -9 mid-way, the rerun says "resuming at"; Ctrl-C of that
        rerun exits 130 saying what was kept, and the next run resumes
        from at least that."""
        args = ["download", "--local", "-c", "1", "-d", self.out, self.url("big.bin")]
        first = subprocess.Popen([CTL, *args], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=self.env)
        self.addCleanup(lambda: first.poll() is None and first.kill())
        self.wait_durable()
        first.kill()
        first.wait(RUN_TIMEOUT)
        first.stderr.close()

        p = self.pty(args, 80)
        m = p.wait_for(r"'[^']*big\.bin': resuming at ([0-9.]+ [KM]iB|[0-9]+ B) of 16\.0 MiB")
        resumed_at = m.group(1)
        p.wait_for(r"big\.bin +(\s*\d+%.*|resuming at .*)")  # the live line
        self.wait_durable(self.durable_bytes())  # this run made some durable too
        p.interrupt()
        rc = p.wait()
        out = p.output()
        self.assertEqual(rc, 130, out)
        m = re.search(r"retrieverctl: interrupted \(SIGINT\): kept ([0-9.]+ [KM]iB) of "
                      r"[^;]*big\.bin; run the same command to resume", out)
        self.assertTrue(m, out)
        kept = m.group(1)
        self.assertNotIn("failed", out)
        self.assertEqual(os.listdir(self.out), [])
        self.assertTrue(self.blobs())

        def mib(s):
            v, unit = s.split()
            return float(v) * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1}[unit]
        self.assertGreaterEqual(mib(kept), mib(resumed_at))
        # The kept part resumes (not a terminal: the same line).
        again = subprocess.Popen([CTL, *args], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, env=self.env)
        self.addCleanup(lambda: again.poll() is None and again.kill())
        line = again.stderr.readline()
        again.kill()
        again.communicate(timeout=RUN_TIMEOUT)
        self.assertRegex(line, r"^'.*big\.bin': resuming at %s of 16\.0 MiB$" % re.escape(kept))

    def test_daemon_mode_ctrl_c_then_resume(self):
        """Through retrieverd: Ctrl-C leaves the job (its only client: it
        is cancelled, its durable part kept), says what was kept, exits
        130; the same command then resumes ("resuming at", from
        Started.resumed_bytes)."""
        tmp = tempfile.mkdtemp(prefix="rv-ui-d-", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        sock = os.path.join(tmp, "d.sock")
        d = daemons.Daemon(["--socket", sock])
        self.addCleanup(d.kill)
        d.start()
        state = os.path.join(d.state_tmp, "state")
        args = ["download", "--socket", sock, "-c", "1", "-d", self.out, self.url("big.bin")]
        p = self.pty(args, 80)
        p.wait_for(r"big\.bin +\s*\d+%")
        self.wait_durable(state=state)
        p.interrupt()
        self.assertEqual(p.wait(), 130, p.output())
        self.assertRegex(p.output(), r"retrieverctl: interrupted \(SIGINT\): left job \S+, which "
                         r"goes on if another client follows it, else is cancelled: kept up to "
                         r"[0-9.]+ [KM]iB of [^;]*big\.bin; run the same command to resume")
        self.assertEqual(os.listdir(self.out), [])

        p = self.pty(args, 80)
        p.wait_for(r"'[^']*big\.bin': resuming at ([0-9.]+ [KM]iB|[0-9]+ B) of 16\.0 MiB")
        p.interrupt()
        self.assertEqual(p.wait(), 130, p.output())
        rc = d.stop()[0]
        self.assertEqual(rc, 0, d.log())

    def test_ctrl_c_without_state(self):
        p = self.pty(["download", "--local", "--no-state", "-c", "1", "-d", self.out,
                      self.url("big.bin")], 80)
        p.wait_for(r"big\.bin +\s*\d+%")
        p.interrupt()
        self.assertEqual(p.wait(), 130, p.output())
        self.assertIn("retrieverctl: interrupted (SIGINT): cancelled 1 download, temporary "
                      "files removed", p.output())
        self.assertEqual(os.listdir(self.out), [])

    # -- --json ------------------------------------------------------------------

    def test_json_lines_match_the_schema(self):
        with open(SCHEMA) as f:
            schema = json.load(f)
        proc = self.run_plain("download", "--local", "--json", "-q", "-d", self.out,
                              self.url("small.bin"), self.url("missing.bin"))
        self.assertEqual(proc.returncode, 5, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 2, proc.stdout)
        states = set()
        for line in lines:
            obj = json.loads(line)
            check_schema(self, obj, schema)
            states.add(obj["state"])
        self.assertEqual(states, {"done", "failed"})
        # The checker can fail: a line missing a key, or with a wrong type.
        bad = json.loads(lines[0])
        del bad["retries"]
        with self.assertRaises(AssertionError):
            check_schema(self, bad, schema)
        bad = json.loads(lines[0])
        bad["bytes"] = "1000"
        with self.assertRaises(AssertionError):
            check_schema(self, bad, schema)

    # -- help --------------------------------------------------------------------

    def test_help_fits_one_screen(self):
        proc = self.run_plain("--help")
        self.assertEqual(proc.returncode, 0)
        self.assertLessEqual(len(proc.stdout.splitlines()), 40, proc.stdout)
        self.assertIn("help COMMAND", proc.stdout)
        self.assertIn("docs/cli.md", proc.stdout)
        self.assertNotIn("  130  ", proc.stdout)
        # help COMMAND is COMMAND --help; the exit codes are listed once.
        a, b = self.run_plain("help", "download"), self.run_plain("download", "--help")
        self.assertEqual(a.stdout, b.stdout)
        self.assertNotIn("  130  ", a.stdout)
        codes = self.run_plain("help", "exit-codes")
        self.assertEqual(codes.returncode, 0)
        self.assertIn("  130  interrupted", codes.stdout)

    def test_did_you_mean(self):
        proc = self.run_plain("downlaod", "http://h/x")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("unknown command 'downlaod'; did you mean 'download'?", proc.stderr)
        proc = self.run_plain("download", "--outptu", "x", "http://h/x")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("unknown option '--outptu'; did you mean '--output'?", proc.stderr)


if __name__ == "__main__":
    unittest.main()
