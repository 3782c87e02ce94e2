#!/usr/bin/python3
"""End-to-end tests of `retrieverctl download --local`: the real binary
against a real nginx and the fault-injecting origin (tests/fixtures).

Environment (ctest sets both):
  RV_CTL      path of the retrieverctl binary
  PYTHONPATH  must reach tests/fixtures (origins.py)

Run by hand:
  RV_CTL=build/client/retrieverctl PYTHONPATH=tests/fixtures \
      /usr/bin/python3 tests/client/test_cli_local.py -v

Every test downloads into its own empty directory and checks what is left
there afterwards: the final files and nothing else (no temporary files).
stdout and stderr are pipes, so progress is in its plain (non-TTY) form.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
try:
    from origins import FaultOrigin, NginxOrigin, make_file, sha256_file
    from threads import threads_seen
except ImportError as e:  # the fixtures are not there: skip, say why
    FaultOrigin = None
    IMPORT_ERROR = e

CTL = os.environ.get("RV_CTL")
RUN_TIMEOUT = 120  # seconds, a bound on any one retrieverctl run
JSON_KEYS = {"url", "path", "state", "bytes", "sha256", "crc32c", "seconds",
             "retries", "cached_bytes", "resumed_bytes", "error"}
ERROR_KEYS = {"code", "number", "message", "detail", "retryable"}
SIZES = {"a.bin": 3 * 1024 * 1024 + 17, "b.bin": 1024 * 1024,
         "small.bin": 1000, "big.bin": 8 * 1024 * 1024,
         "huge.bin": 40 * 1024 * 1024 + 7}


def setUpModule():
    if not CTL:
        raise unittest.SkipTest("RV_CTL is not set")
    if FaultOrigin is None:
        raise unittest.SkipTest("tests/fixtures/origins.py: %s" % IMPORT_ERROR)


class CliCase(unittest.TestCase):
    """One nginx and one FaultOrigin over a directory of deterministic
    files, shared by the class; an empty output directory per test."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-cli-root-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.sha = {}
        for seed, (name, size) in enumerate(sorted(SIZES.items())):
            path = make_file(os.path.join(cls.root, name), size, seed + 1)
            cls.sha[name] = sha256_file(path)
        cls.ng = NginxOrigin(cls.root).start()
        cls.addClassCleanup(cls.ng.stop)
        cls.fo = FaultOrigin(cls.root).start()
        cls.addClassCleanup(cls.fo.stop)

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-cli-out-")
        self.addCleanup(shutil.rmtree, self.out, True)
        # Each test owns its state and cache (the default XDG places would
        # be shared between tests, and between parallel test programs).
        self.xdg = tempfile.mkdtemp(prefix="rv-cli-xdg-")
        self.addCleanup(shutil.rmtree, self.xdg, True)
        for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME"):
            os.environ[var] = os.path.join(self.xdg, var.lower())

    # -- helpers -----------------------------------------------------------

    def run_ctl(self, *args, cwd=None):
        """Run retrieverctl to completion; the CompletedProcess (text)."""
        return subprocess.run([CTL, *args], cwd=cwd, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT,
                              stdin=subprocess.DEVNULL)

    def download(self, *args, cwd=None):
        return self.run_ctl("download", "--local", *args, cwd=cwd)

    def listing(self, path=None):
        return sorted(os.listdir(path or self.out))

    def out_path(self, name):
        return os.path.join(self.out, name)

    def assert_file(self, name, source=None):
        """out/name exists with the content of root/source (default: name)."""
        self.assertEqual(sha256_file(self.out_path(name)),
                         self.sha[source or name])

    def assert_rc(self, proc, rc):
        self.assertEqual(proc.returncode, rc,
                         "exit %d, expected %d\nstdout: %s\nstderr: %s"
                         % (proc.returncode, rc, proc.stdout, proc.stderr))

    def json_lines(self, proc):
        """stdout parsed as one JSON object per line, keyed by URL."""
        result = {}
        for line in proc.stdout.splitlines():
            obj = json.loads(line)
            self.assertEqual(set(obj), JSON_KEYS, line)
            if obj["error"] is not None:
                self.assertEqual(set(obj["error"]), ERROR_KEYS, line)
            self.assertNotIn(obj["url"], result, "two lines for one URL")
            result[obj["url"]] = obj
        return result

    # -- success -----------------------------------------------------------

    def test_one_file(self):
        proc = self.download("-o", self.out_path("x.bin"),
                             self.ng.url("/a.bin"))
        self.assert_rc(proc, 0)
        self.assertEqual(self.listing(), ["x.bin"])
        self.assert_file("x.bin", "a.bin")
        self.assertEqual(proc.stdout, "")  # stdout is for --json only
        self.assertIn("done: '%s'" % self.out_path("x.bin"), proc.stderr)

    def test_big_file_written_by_the_writer_threads(self):
        """A big object without state or digest is copied into stages that
        writer threads put in the page cache, off the engine's thread
        (lib/src/stage.c): they show while it downloads, and the file is
        whole, its odd last bytes included."""
        url = self.fo.url("/huge.bin", rate=16 * 1024 * 1024, case="writer")
        proc = subprocess.Popen(
            [CTL, "download", "--local", "-q", "--no-state", "--no-digest",
             "-c", "4", "-d", self.out, url], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threads = set(threads_seen(proc, RUN_TIMEOUT).values())
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("rv-writer", threads)
        self.assertEqual(self.listing(), ["huge.bin"])
        self.assert_file("huge.bin")

    def test_several_files_named_after_urls(self):
        proc = self.download("-d", self.out, self.ng.url("/a.bin"),
                             self.ng.url("/b.bin"), self.ng.url("/small.bin"))
        self.assert_rc(proc, 0)
        self.assertEqual(self.listing(), ["a.bin", "b.bin", "small.bin"])
        for name in ("a.bin", "b.bin", "small.bin"):
            self.assert_file(name)
        self.assertIn("total: 3 done, 0 failed, 0 cancelled", proc.stderr)

    def test_default_destination_is_cwd(self):
        proc = self.download(self.ng.url("/b.bin"), cwd=self.out)
        self.assert_rc(proc, 0)
        self.assertEqual(self.listing(), ["b.bin"])
        self.assert_file("b.bin")

    def test_dir_with_trailing_slash(self):
        proc = self.download("-d", self.out + "/", self.ng.url("/small.bin"))
        self.assert_rc(proc, 0)
        self.assert_file("small.bin")

    def test_many_ranges_and_no_ranges(self):
        url = self.fo.url("/a.bin", case=self.id())
        proc = self.download("-c", "4", "--chunk-size", "256K", "-d", self.out,
                             url)
        self.assert_rc(proc, 0)
        self.assert_file("a.bin")
        key = url[url.index("/", len("http://")):]
        self.assertGreaterEqual(
            self.fo.stats()["per_key"][key]["get_requests"], 4)

        proc = self.download("-c", "4", "-o", self.out_path("nr.bin"),
                             self.fo.url("/a.bin", noranges=1))
        self.assert_rc(proc, 0)
        self.assert_file("nr.bin", "a.bin")

    def test_sha256_verified(self):
        proc = self.download("--sha256", self.sha["b.bin"].upper(), "-d",
                             self.out, self.ng.url("/b.bin"))
        self.assert_rc(proc, 0)
        self.assert_file("b.bin")
        self.assertIn("sha256 verified", proc.stderr)

    def test_quiet(self):
        proc = self.download("-q", "-d", self.out, self.ng.url("/small.bin"),
                             self.ng.url("/b.bin"))
        self.assert_rc(proc, 0)
        self.assertEqual(proc.stderr, "")
        self.assertEqual(proc.stdout, "")

    # -- --json ------------------------------------------------------------

    def test_json_lines(self):
        good, missing = self.ng.url("/a.bin"), self.ng.url("/missing.bin")
        proc = self.download("--json", "-d", self.out, good, missing)
        self.assert_rc(proc, 5)
        lines = self.json_lines(proc)
        self.assertEqual(set(lines), {good, missing})

        done = lines[good]
        self.assertEqual(done["state"], "done")
        self.assertEqual(done["path"], self.out_path("a.bin"))
        self.assertEqual(done["bytes"], SIZES["a.bin"])
        self.assertEqual(done["sha256"], self.sha["a.bin"])
        self.assertIsInstance(done["seconds"], (int, float))
        self.assertGreaterEqual(done["seconds"], 0)
        self.assertEqual(done["retries"], 0)
        self.assertIsNone(done["error"])

        failed = lines[missing]
        self.assertEqual(failed["state"], "failed")
        self.assertEqual(failed["path"], self.out_path("missing.bin"))
        self.assertIsNone(failed["sha256"])
        self.assertEqual(failed["error"]["code"], "RV_E_NOT_FOUND")
        self.assertEqual(failed["error"]["number"], 11)
        self.assertEqual(failed["error"]["message"], "origin has no such object")
        self.assertIsInstance(failed["error"]["detail"], str)
        self.assertIs(failed["error"]["retryable"], False)

        self.assertEqual(self.listing(), ["a.bin"])

    def test_json_after_rejection(self):
        good, bad = self.ng.url("/a.bin"), "ftp://127.0.0.1/a.bin"
        proc = self.download("--json", "-d", self.out, good, bad)
        self.assert_rc(proc, 5)
        lines = self.json_lines(proc)
        # Every URL gets a line, in command-line order.
        self.assertEqual([json.loads(l)["url"] for l in proc.stdout.splitlines()],
                         [good, bad])
        self.assertEqual(lines[bad]["state"], "rejected")
        self.assertEqual(lines[bad]["error"]["code"], "RV_E_UNSUPPORTED_SCHEME")
        self.assertEqual(lines[good]["state"], "cancelled")
        self.assertEqual(lines[good]["error"]["code"], "RV_E_CANCELLED")
        self.assertEqual(self.listing(), [])

    # -- failures ----------------------------------------------------------

    def test_sha256_mismatch(self):
        proc = self.download("--sha256", "0" * 64, "-o", self.out_path("x.bin"),
                             self.ng.url("/a.bin"))
        self.assert_rc(proc, 6)
        self.assertEqual(self.listing(), [])  # no file, no temporary file
        self.assertIn("'%s': sha256 of the download does not match"
                      % self.ng.url("/a.bin"), proc.stderr)

    def test_not_found(self):
        url = self.ng.url("/missing.bin")
        proc = self.download("-d", self.out, url)
        self.assert_rc(proc, 5)
        self.assertIn("retrieverctl: '%s': origin has no such object" % url,
                      proc.stderr)
        self.assertEqual(self.listing(), [])

    def test_first_failed_url_decides_the_exit_code(self):
        missing = self.ng.url("/missing.bin")
        failing = self.fo.url("/b.bin", status=500, case=self.id())
        good = self.ng.url("/small.bin")
        # 404 (5) before server errors (4) ...
        proc = self.download("--retries", "1", "-d", self.out, missing, good,
                             failing)
        self.assert_rc(proc, 5)
        self.assertEqual(self.listing(), ["small.bin"])  # all were attempted
        os.unlink(self.out_path("small.bin"))
        # ... and the other way round.
        proc = self.download("--retries", "1", "-d", self.out, failing, good,
                             missing)
        self.assert_rc(proc, 4)
        self.assertEqual(self.listing(), ["small.bin"])

    def test_retries_are_shown(self):
        url = self.fo.url("/b.bin", status=503, times=2, case=self.id())
        proc = self.download("-d", self.out, url)
        self.assert_rc(proc, 0)
        self.assert_file("b.bin")
        retries = [l for l in proc.stderr.splitlines()
                   if l.startswith("retry: '%s'" % self.out_path("b.bin"))]
        self.assertEqual(len(retries), 2, proc.stderr)
        self.assertIn("503", retries[0])
        self.assertIn("2 retries", proc.stderr)

    def test_unwritable_directory_missing(self):
        missing = os.path.join(self.out, "no", "such")
        proc = self.download("-d", missing, self.ng.url("/a.bin"))
        self.assert_rc(proc, 3)
        self.assertIn("'%s': destination is not writable" % self.ng.url("/a.bin"),
                      proc.stderr)
        self.assertEqual(self.listing(), [])  # nothing created, not even dirs

    @unittest.skipIf(os.geteuid() == 0, "root can write to a 0555 directory")
    def test_unwritable_directory_read_only(self):
        ro = os.path.join(self.out, "ro")
        os.mkdir(ro, 0o555)
        self.addCleanup(os.chmod, ro, 0o755)
        proc = self.download("-d", ro, self.ng.url("/a.bin"))
        self.assert_rc(proc, 3)
        self.assertEqual(self.listing(ro), [])

    def test_destination_is_a_directory(self):
        os.mkdir(self.out_path("d"))
        proc = self.download("-o", self.out_path("d"), self.ng.url("/a.bin"))
        self.assert_rc(proc, 3)
        self.assertIn("destination is a directory", proc.stderr)
        self.assertEqual(self.listing(self.out_path("d")), [])

    def test_two_urls_one_destination(self):
        url = self.ng.url("/a.bin")
        proc = self.download("-d", self.out, url, self.fo.url("/a.bin"))
        self.assert_rc(proc, 3)
        self.assertIn("two downloads share one destination", proc.stderr)
        self.assertEqual(self.listing(), [])

    def test_bad_url(self):
        bad = "http://exa mple.com/x.bin"
        proc = self.download("-o", self.out_path("x.bin"), bad)
        self.assert_rc(proc, 5)
        self.assertIn("'%s'" % bad, proc.stderr)
        self.assertEqual(self.listing(), [])

    def test_url_without_file_name(self):
        proc = self.download("-d", self.out, self.ng.url("/"))
        self.assert_rc(proc, 5)
        self.assertIn("use -o FILE", proc.stderr)

    def test_rejection_downloads_nothing(self):
        proc = self.download("-d", self.out, self.ng.url("/a.bin"),
                             "gopher://127.0.0.1/x", self.ng.url("/b.bin"))
        self.assert_rc(proc, 5)
        self.assertIn("'gopher://127.0.0.1/x': unsupported URL scheme",
                      proc.stderr)
        self.assertIn("nothing downloaded: 1 of 3 URLs rejected", proc.stderr)
        self.assertEqual(self.listing(), [])

    def test_missing_directory_reported_once(self):
        """Fifty URLs into a -d DIR that does not exist: one line names
        the first URL and the reason, one counts the rest; nothing is
        created. --json still reports every URL."""
        missing = os.path.join(self.out, "no-such-dir")
        urls = [self.ng.url("/f%02d.bin" % i) for i in range(50)]
        proc = self.download("-d", missing, *urls)
        self.assert_rc(proc, 3)
        lines = proc.stderr.splitlines()
        self.assertEqual(sum("cannot use directory" in l for l in lines), 1,
                         proc.stderr)
        self.assertIn("'%s': destination is not writable" % urls[0],
                      proc.stderr)
        self.assertIn("(49 more URLs rejected for the same reason)",
                      proc.stderr)
        self.assertIn("nothing downloaded: 50 of 50 URLs rejected",
                      proc.stderr)
        self.assertFalse(os.path.exists(missing))
        proc = self.download("--json", "-d", missing, *urls)
        self.assert_rc(proc, 3)
        docs = [json.loads(l) for l in proc.stdout.splitlines()]
        self.assertEqual([d["url"] for d in docs], urls)
        self.assertTrue(all(d["state"] == "rejected" for d in docs))

    def test_reserved_header_refused(self):
        proc = self.download("--header", "Range: bytes=0-1", "-d", self.out,
                             self.ng.url("/a.bin"))
        self.assert_rc(proc, 2)
        self.assertIn("--header", proc.stderr)
        self.assertEqual(self.listing(), [])

    # -- usage -------------------------------------------------------------

    def test_https_cacert(self):
        """--cacert names the CA an https origin must chain to; without it
        the self-signed origin is refused: exit 5, RV_E_TLS, no file."""
        with NginxOrigin(self.root, tls=True) as tls:
            dest = os.path.join(self.out, "a.bin")
            proc = self.download("--json", "--cacert", tls.ca_file, "-o", dest,
                                 tls.url("a.bin"))
            self.assert_rc(proc, 0)
            self.assertEqual(json.loads(proc.stdout)["state"], "done")
            self.assertEqual(sha256_file(dest), self.sha["a.bin"])
            dest2 = os.path.join(self.out, "b.bin")
            proc = self.download("--json", "-o", dest2, tls.url("b.bin"))
            self.assert_rc(proc, 5)
            self.assertEqual(json.loads(proc.stdout)["error"]["code"], "RV_E_TLS")
            self.assertFalse(os.path.exists(dest2))

    def test_usage_errors(self):
        a, b = self.ng.url("/a.bin"), self.ng.url("/b.bin")
        cases = [
            (["download", "--local", "--bogus", a], "unknown option '--bogus'"),
            (["download", "--local", "-o", "x", a, b], "names one file"),
            (["download", "--local", "-o", "x", "-d", self.out, a],
             "cannot be used together"),
            (["download", "--local", "--sha256", "0" * 64, a, b],
             "checks one file"),
            (["download", "--local", "--sha256", "abc", a], "64 hexadecimal"),
            (["download", "--local", "-c", "0", a], "from 1 to 64"),
            (["download", "--local", "-c", "65", a], "from 1 to 64"),
            (["download", "--local", "--chunk-size", "4Q", a], "needs a size"),
            (["download", "--local"], "no URL given"),
            (["download", "--no-state", a], "applies only with --local"),
            (["frobnicate"], "unknown command"),
            ([], "no command given"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                proc = self.run_ctl(*args, cwd=self.out)
                self.assert_rc(proc, 2)
                self.assertIn(message, proc.stderr)
                self.assertTrue(proc.stderr.startswith("retrieverctl: "))
                self.assertEqual(proc.stdout, "")
        self.assertEqual(self.listing(), [])

    def test_help_and_version(self):
        for args in (["--help"], ["-h"], ["download", "--help"],
                     ["help", "download"]):
            with self.subTest(args=args):
                proc = self.run_ctl(*args)
                self.assert_rc(proc, 0)
                self.assertIn("Usage: retrieverctl", proc.stdout)
                self.assertIn("help exit-codes", proc.stdout)
        proc = self.run_ctl("download", "--help")
        for option in ("--local", "--output", "--dir", "--connections",
                       "--chunk-size", "--sha256", "--json", "--header",
                       "--retries", "--connect-timeout", "--stall-timeout",
                       "--quiet", "--no-progress"):
            self.assertIn(option, proc.stdout)
        proc = self.run_ctl("--version")
        self.assert_rc(proc, 0)
        self.assertTrue(proc.stdout.startswith("retrieverctl "))

    # -- progress and signals ------------------------------------------------

    def start_slow(self, *extra):
        """Start a rate-limited download of big.bin (about 64 s at one
        connection of 128 KiB/s); returns the Popen. A watchdog kills it if
        the test hangs."""
        url = self.fo.url("/big.bin", rate=128 * 1024, case=self.id())
        proc = subprocess.Popen(
            [CTL, "download", "--local", "-c", "1", "-d", self.out, *extra,
             url],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def wait_for_progress(self, proc):
        """Read stderr lines until the first plain progress line (printed
        after 2 s); return the lines read."""
        lines = []
        while True:
            line = proc.stderr.readline()
            self.assertNotEqual(line, "", "exited before any progress line: %s"
                                % "".join(lines))
            lines.append(line)
            if line.startswith("progress: '"):
                return lines

    def test_plain_progress_on_stderr(self):
        proc = self.start_slow()
        lines = self.wait_for_progress(proc)
        self.assertRegex(lines[-1], r"^progress: '.*big\.bin' \d+% .* of 8\.0 MiB, .*/s")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, 130)

    def blobs(self):
        """Files in this test's cache (partial and finished downloads)."""
        d = os.path.join(os.environ["XDG_CACHE_HOME"], "retriever", "blobs")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def interrupt(self, sig, code, *extra):
        proc = self.start_slow("--json", *extra)
        self.wait_for_progress(proc)
        no_state = "--no-state" in extra
        # Nothing is visible next to the destination while downloading:
        # without state the file is unnamed (O_TMPFILE) until it is whole;
        # with state the partial download lives in the cache.
        self.assertEqual(self.listing(), [])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, code, err)
        # Nothing is left next to the destination; no final file either.
        self.assertEqual(self.listing(), [])
        # With state the partial download stays in the cache to resume.
        self.assertEqual(len(self.blobs()), 0 if no_state else 1)
        self.assertIn("interrupted (", err)
        line = json.loads(out)
        self.assertEqual(line["state"], "cancelled")
        self.assertEqual(line["error"]["code"], "RV_E_CANCELLED")

    def test_sigint_without_state(self):
        self.interrupt(signal.SIGINT, 130, "--no-state")

    def test_sigint(self):
        self.interrupt(signal.SIGINT, 130)

    def test_sigterm(self):
        self.interrupt(signal.SIGTERM, 143)


if __name__ == "__main__":
    unittest.main()
