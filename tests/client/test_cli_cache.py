#!/usr/bin/python3
"""retrieverctl cache (ls, rm, clear, verify) and cat (and download -o -),
end to end: the real binary, the real retrieverd, the fault origin.

  CacheDaemonTest  through retrieverd (its CacheList/CacheRemove/
                   CacheVerify and Read RPCs); a second real uid is refused
  CacheLocalTest   --local, on a state directory of the test's own

cat is checked piped into sha256sum (the right digest, from a
rate-limited origin so the bytes are streamed while the object
downloads: the first bytes are out before the origin has sent the last)
and into `head -c 1` (a broken pipe: exit 0, nothing on stderr, the
daemon fine afterwards).

Environment: as test_cli_daemon.py (RV_CTL, RV_DAEMON, RV_PROTOC,
RV_PROTO_DIR, RV_VERSION, PYTHONPATH reaching tests/fixtures).
"""
import hashlib
import json
import os
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402
from test_cli_daemon import CTL, Base, ctl  # noqa: E402

SMALL = 300000
LARGE = 24 * 1024 * 1024
RATE = 2 * 1024 * 1024       # bytes/s per connection: LARGE takes seconds
ENTRY_KEYS = {"url", "size", "bytes", "complete", "in_use", "keyed", "used_unix", "result"}
EXIT_VERIFY = 6
EXIT_DAEMON_REFUSED = 9


def shell(cmd, timeout=120):
    """bash -o pipefail: the pipeline's status is retrieverctl's."""
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def damage(path, offset):
    """Flip one byte in place (the blob is read-only; its owner writes it anyway)."""
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
    os.chmod(path, 0o400)


class Common:
    """What both modes share: a data directory with files and an origin."""

    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)
        self.sha = {}
        for seed, (name, size) in enumerate((("a.bin", SMALL), ("b.bin", SMALL + 1))):
            self.sha[name] = sha256_file(make_file(os.path.join(self.data, name), size, seed + 1))
        self.fo = FaultOrigin(self.data).start()
        self.addCleanup(self.fo.stop)

    def blobs(self, cache):
        d = os.path.join(cache, "blobs")
        return [os.path.join(d, b) for b in os.listdir(d)
                if os.path.getsize(os.path.join(d, b)) > 0]

    def entries(self, p):
        self.assert_rc(p, 0)
        out = [json.loads(line) for line in p.stdout.splitlines()]
        for e in out:
            self.assertEqual(set(e), ENTRY_KEYS, e)
        return out

    def check_cache_commands(self, mode, cache_dir):
        """ls, ls --json, rm, verify (a damaged byte), clear; mode: the
        options naming the daemon or the local state."""
        ua, ub = self.fo.url("a.bin"), self.fo.url("b.bin", token="s3cr3t")
        for url, name in ((ua, "a"), (ub, "b")):
            self.assert_rc(ctl("download", *mode, "-q", "-o", os.path.join(self.out, name), url), 0)
        p = ctl("cache", "ls", *mode)
        self.assert_rc(p, 0)
        self.assertEqual(len(p.stdout.splitlines()), 2, p.stdout)
        self.assertIn(ua, p.stdout)
        self.assertIn("complete", p.stdout)
        self.assertNotIn("s3cr3t", p.stdout)  # the URL is shown redacted
        listed = {e["size"]: e for e in self.entries(ctl("cache", "ls", "--json", *mode))}
        self.assertEqual(sorted(listed), [SMALL, SMALL + 1])
        self.assertEqual(listed[SMALL]["url"], ua)
        self.assertEqual(listed[SMALL]["bytes"], SMALL)
        self.assertTrue(listed[SMALL]["complete"])
        self.assertFalse(listed[SMALL]["keyed"])
        self.assertTrue(listed[SMALL + 1]["keyed"])
        self.assertEqual({e["result"] for e in listed.values()}, {"listed"})

        # verify: all intact; then one damaged byte is found and removed.
        p = ctl("cache", "verify", *mode)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout.count("intact"), 2, p.stdout)
        blob = [b for b in self.blobs(cache_dir) if sha256_file(b) == self.sha["a.bin"]]
        self.assertEqual(len(blob), 1)
        damage(blob[0], SMALL // 2)
        p = ctl("cache", "verify", *mode)
        self.assert_rc(p, EXIT_VERIFY)
        self.assertRegex(p.stdout, r"corrupt-removed +%s\n" % ua.replace("?", r"\?"))
        self.assertIn("1 bad", p.stderr)
        self.assertFalse(os.path.exists(blob[0]))
        self.assertEqual(len(self.entries(ctl("cache", "ls", "--json", *mode))), 1)
        # The next download fetches the right bytes from the origin.
        self.assert_rc(ctl("download", *mode, "-q", "-o", os.path.join(self.out, "a2"), ua), 0)
        self.assertEqual(sha256_file(os.path.join(self.out, "a2")), self.sha["a.bin"])

        # rm by URL (another spelling of it: the query is not the name).
        p = ctl("cache", "rm", *mode, ua + "?x=1")
        self.assert_rc(p, 0)
        self.assertRegex(p.stdout, r"^removed +%s\n$" % ua)
        p = ctl("cache", "rm", *mode, "http://127.0.0.1:1/never")
        self.assert_rc(p, 0)
        self.assertIn("nothing cached", p.stderr)
        # clear: the rest.
        p = ctl("cache", "clear", *mode)
        self.assert_rc(p, 0)
        self.assertEqual(p.stdout.count("removed"), 1, p.stdout)
        self.assertEqual(self.entries(ctl("cache", "ls", "--json", *mode)), [])
        self.assertEqual(self.blobs(cache_dir), [])

    def check_cat(self, mode):
        big = make_file(os.path.join(self.data, "big.bin"), LARGE, 7)
        want = sha256_file(big)
        with FaultOrigin(self.data, rate=RATE) as slow:
            url = slow.url("big.bin")
            key = url.split(str(slow.port), 1)[1]
            # 4 connections: the download takes seconds however loaded the machine.
            proc = subprocess.Popen([CTL, "cat", "-c", "4", *mode, url], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            try:
                first = proc.stdout.read(65536)
                # Streamed: the first bytes are here before the origin sent the last.
                sent = slow.stats()["per_key"].get(key, {}).get("body_bytes", 0)
                self.assertLess(sent, LARGE)
                h = hashlib.sha256(first)
                for block in iter(lambda: proc.stdout.read(1 << 20), b""):
                    h.update(block)
                err = proc.stderr.read()
                self.assertEqual(proc.wait(timeout=120), 0, err)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                proc.stderr.close()
            self.assertEqual(h.hexdigest(), want)
            self.assertEqual(err, b"")
        # Piped into sha256sum, and as download -o -.
        url = self.fo.url("big.bin")
        for verb in (["cat"], ["download", "-o", "-"]):
            p = shell("%s %s %s %s | sha256sum" % (CTL, " ".join(verb), " ".join(mode), url))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.split()[0].decode(), want)
            self.assertEqual(p.stderr, b"")

    def check_cat_fails(self, mode):
        """An object that cannot be had: nothing on stdout, one line naming
        the URL on stderr, download's exit code (5: the origin has no
        such object)."""
        url = self.fo.url("missing.bin")
        p = subprocess.run([CTL, "cat", *mode, url], capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertEqual(p.stdout, b"")
        self.assertIn(url.encode(), p.stderr)
        self.assertIn(b"no such object", p.stderr)

    def check_cat_damaged_hit(self, mode, cache_dir):
        """A cache hit whose blob no longer has its bytes: cat must not
        stream them; it waits for the hit's check, which fetches the
        object again, and writes the right bytes."""
        url = self.fo.url("a.bin")
        self.assert_rc(ctl("download", *mode, "-q", "-o", os.path.join(self.out, "a"), url), 0)
        blob = [b for b in self.blobs(cache_dir) if sha256_file(b) == self.sha["a.bin"]]
        self.assertEqual(len(blob), 1)
        damage(blob[0], SMALL // 3)
        p = shell("%s cat %s %s | sha256sum" % (CTL, " ".join(mode), url))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split()[0].decode(), self.sha["a.bin"])

    def check_broken_pipe(self, mode):
        make_file(os.path.join(self.data, "big.bin"), LARGE, 8)
        with FaultOrigin(self.data, rate=RATE) as slow:
            url = slow.url("big.bin")
            p = shell("%s cat %s %s | head -c 1 | wc -c" % (CTL, " ".join(mode), url))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.strip(), b"1")
            self.assertEqual(p.stderr, b"")  # no error spew


class CacheDaemonTest(Common, Base):
    def setUp(self):
        super().setUp()
        self.d = self.daemon("--socket-mode", "0666")
        self.mode = ["--socket", self.sock]

    def tearDown(self):
        self.assertEqual(self.d.stop()[0], 0, self.d.log())
        self.assertNotIn("Sanitizer", self.d.log())

    def test_ls_rm_verify_clear(self):
        self.check_cache_commands(self.mode, os.path.join(self.tmp, "cache"))

    def test_cat_streams_in_order(self):
        self.check_cat(self.mode)

    def test_cat_failure(self):
        self.check_cat_fails(self.mode)

    def test_cat_damaged_hit(self):
        self.check_cat_damaged_hit(self.mode, os.path.join(self.tmp, "cache"))

    def test_cat_broken_pipe(self):
        self.check_broken_pipe(self.mode)
        # The daemon is fine, and the download was cancelled (no other
        # subscriber): nothing runs; a later cat gets the right bytes.
        self.assert_rc(ctl("ping", "--socket", self.sock), 0)
        for _ in range(500):  # bounded: the cancellation reaches the engine
            entries = self.entries(ctl("cache", "ls", "--json", *self.mode))
            if entries and not entries[0]["in_use"]:
                break
            time.sleep(0.02)
        self.assertEqual(len(entries), 1)
        self.assertFalse(entries[0]["in_use"])   # nobody else waited: cancelled
        self.assertFalse(entries[0]["complete"])  # its durable ranges are kept
        p = shell("%s cat --socket %s %s | sha256sum" % (CTL, self.sock, self.fo.url("a.bin")))
        self.assertEqual(p.stdout.split()[0].decode(), self.sha["a.bin"])

    def test_cat_broken_pipe_others_go_on(self):
        # Two readers of one object; the one that stops early leaves, the
        # download goes on for the other, which gets every byte.
        big = make_file(os.path.join(self.data, "big.bin"), LARGE, 9)
        with FaultOrigin(self.data, rate=RATE) as slow:
            url = slow.url("big.bin")
            whole = subprocess.Popen("%s cat --socket %s %s | sha256sum" % (CTL, self.sock, url),
                                     shell=True, stdout=subprocess.PIPE)
            try:
                p = shell("%s cat --socket %s %s | head -c 1 | wc -c" % (CTL, self.sock, url))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, b"")
                out, _ = whole.communicate(timeout=120)
            finally:
                if whole.poll() is None:
                    whole.kill()
                    whole.wait()
            self.assertEqual(whole.returncode, 0)
            self.assertEqual(out.split()[0].decode(), sha256_file(big))

    def test_local_on_the_daemons_state(self):
        # --local on the state directory the daemon owns: one line that
        # says so and how to ask the daemon instead; exit 3.
        p = ctl("cache", "ls", "--local", "--state-dir", os.path.join(self.tmp, "state"),
                "--cache-dir", os.path.join(self.tmp, "cache"))
        self.assert_rc(p, 3)
        self.assertIn("in use by another process", p.stderr)
        self.assertIn("leave out --local to ask it", p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1)

    def test_other_uid_is_refused(self):
        user = daemons.make_user(self)
        os.chmod(os.path.dirname(self.sock), 0o755)
        self.assert_rc(ctl("download", "--socket", self.sock, "-q", "-o",
                           os.path.join(self.out, "a"), self.fo.url("a.bin")), 0)

        def as_user():
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
        for args in (["ls"], ["clear"], ["verify"], ["rm", self.fo.url("a.bin")]):
            p = ctl("cache", *args, "--socket", self.sock, preexec_fn=as_user, cwd="/")
            self.assert_rc(p, EXIT_DAEMON_REFUSED)
            self.assertIn("retrieverd refused", p.stderr)
            self.assertIn("only root and uid %d" % os.geteuid(), p.stderr)
        self.assertEqual(len(self.entries(ctl("cache", "ls", "--json", *self.mode))), 1)


class CacheLocalTest(Common, Base):
    def setUp(self):
        super().setUp()
        self.cache = os.path.join(self.tmp, "lcache")
        self.mode = ["--local", "--state-dir", os.path.join(self.tmp, "lstate"),
                     "--cache-dir", self.cache]

    def test_ls_rm_verify_clear(self):
        self.check_cache_commands(self.mode, self.cache)

    def test_cat_streams_in_order(self):
        def temps():
            return {n for n in os.listdir("/tmp") if n.startswith("retrieverctl-cat-")}
        before = temps()
        self.check_cat(self.mode)
        self.assertEqual(temps() - before, set())  # cat keeps no file

    def test_cat_failure(self):
        self.check_cat_fails(self.mode)

    def test_cat_damaged_hit(self):
        self.check_cat_damaged_hit(self.mode, self.cache)

    def test_cat_broken_pipe(self):
        self.check_broken_pipe(self.mode)
        # The state keeps the durable ranges: the entry is there, partial.
        entries = self.entries(ctl("cache", "ls", "--json", *self.mode))
        self.assertEqual(len(entries), 1)
        self.assertFalse(entries[0]["in_use"])
        self.assertFalse(entries[0]["complete"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
