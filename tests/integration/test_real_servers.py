#!/usr/bin/python3
"""retrieverctl against real web servers nobody here wrote: Debian's
apache2 (mpm_event) and lighttpd, each started by this test on a free
loopback port with its own configuration in a temp dir, in the foreground
as a child, and stopped by PID. nginx is covered by the other integration
tests.

Every download runs in the three modes -- --local, --local --no-state and
through a retrieverd started here -- and asserts the file's sha256 and,
from the server's own access log, that it came in ranges: several 206
answers and not one 200 (a 200 to a range request means the server did
not honour it, and the engine fell back to one stream).

Apache's quirks are the point (docs/engine.md, "Validators"): for a file
modified under a second ago or with an mtime in the future, its ETag is
weak and its Last-Modified is no strong validator (an mtime in the future
is replaced by the time of each request, so it changes every second); an
If-Range carrying either is answered 200. Both files are served here.

As root (CI), apache2 runs its children as nobody (it refuses to serve as
root) and lighttpd as the current user; the document root is world-readable.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import daemons
from origins import (HOST, START_TIMEOUT_S, _children, _die_with_parent, _free_port,
                     _stop_process, make_file, sha256_file)

CTL = os.environ["RV_CTL"]
DAEMON = os.environ.get("RV_DAEMON")
APACHE = shutil.which("apache2", path="/usr/sbin:/usr/bin") or "apache2"
LIGHTTPD = shutil.which("lighttpd", path="/usr/sbin:/usr/bin") or "lighttpd"
APACHE_MODULES = "/usr/lib/apache2/modules"
MiB = 1 << 20
SIZE = 16 * MiB + 5
RUN_TIMEOUT = 120
MODES = ("local", "nostate", "daemon")
# Access log: method, path?query, status, Range, If-Range (tab-separated).
APACHE_CONF = """\
ServerRoot "{dir}"
ServerName {host}
Listen {host}:{port}
PidFile "{dir}/apache2.pid"
Mutex file:{dir} default
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
StartServers 1
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
KeepAlive On
MaxKeepAliveRequests 0
ErrorLog "{dir}/error.log"
LogFormat "%m\\t%U%q\\t%>s\\t%{{Range}}i\\t%{{If-Range}}i" rv
CustomLog "{dir}/access.log" rv
DocumentRoot "{root}"
<Directory "{root}">
    Require all granted
</Directory>
"""
LIGHTTPD_CONF = """\
server.document-root = "{root}"
server.bind = "{host}"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.modules = ("mod_accesslog")
accesslog.filename = "{dir}/access.log"
accesslog.format = "%m\\t%U?%q\\t%>s\\t%{{Range}}i\\t%{{If-Range}}i"
mimetype.assign = ("" => "application/octet-stream")
server.max-keep-alive-requests = 1000
"""


class Server:
    """A web server in the foreground, on a free loopback port; its access
    log is read once it has stopped (then every line is written)."""

    name = None

    def __init__(self, root):
        self.root = root
        self.dir = tempfile.mkdtemp(prefix="rv-%s-" % self.name)
        os.chmod(self.dir, 0o755)  # apache's children (nobody) reach its mutex
        self.proc = None
        self.port = None
        self.seen = set()

    def url(self, path, **query):
        q = "&".join("%s=%s" % kv for kv in query.items())
        return "http://%s:%d/%s%s" % (HOST, self.port, path, "?" + q if q else "")

    def command(self, conf):
        raise NotImplementedError

    def config(self, port):
        raise NotImplementedError

    def start(self):
        port = _free_port()
        conf = os.path.join(self.dir, "server.conf")
        with open(conf, "w") as f:
            f.write(self.config(port))
        self.proc = subprocess.Popen(self.command(conf), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        self.port = port
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, port), timeout=0.2):
                    self.seen = set(_children(self.proc.pid))
                    return self
            except OSError:
                pass
            try:
                self.proc.wait(0.02)  # the pause between attempts, and the exit check
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError("%s exited while starting:\n%s" % (self.name, self.error_log()))
        raise AssertionError("%s not accepting after %.0f s:\n%s"
                             % (self.name, START_TIMEOUT_S, self.error_log()))

    def stop(self):
        if self.proc is not None:
            _stop_process(self.proc, self.seen | set(_children(self.proc.pid)))
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def access_log(self):
        """[(method, target, status, range, if_range)] once stopped."""
        self.stop()
        rows = []
        with open(os.path.join(self.dir, "access.log")) as f:
            for line in f:
                # Both servers escape a quote in a logged header as \".
                fields = line.rstrip("\n").replace('\\"', '"').split("\t")
                if len(fields) == 5:
                    rows.append((fields[0], fields[1], int(fields[2]), fields[3], fields[4]))
        return rows


class Apache(Server):
    name = "apache2"

    def command(self, conf):
        return [APACHE, "-f", conf, "-DFOREGROUND"]

    def config(self, port):
        user = "User nobody\nGroup nogroup" if os.geteuid() == 0 else ""
        return APACHE_CONF.format(dir=self.dir, host=HOST, port=port, user=user,
                                  modules=APACHE_MODULES, root=self.root)


class Lighttpd(Server):
    name = "lighttpd"

    def command(self, conf):
        return [LIGHTTPD, "-D", "-f", conf]

    def config(self, port):
        return LIGHTTPD_CONF.format(dir=self.dir, host=HOST, port=port, root=self.root)


class RealServersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-real-www-")
        os.chmod(cls.root, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.old = os.path.join(cls.root, "old.bin")
        cls.sha = sha256_file(make_file(cls.old, SIZE, seed=9))
        os.chmod(cls.old, 0o644)
        os.utime(cls.old, (1_000_000_000, 1_000_000_000))

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-real-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.env = dict(os.environ,
                        XDG_STATE_HOME=os.path.join(self.tmp, "xdg-state"),
                        XDG_CACHE_HOME=os.path.join(self.tmp, "xdg-cache"))
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.daemon = None

    def start_daemon(self):
        if not DAEMON:
            self.fail("RV_DAEMON is not set: the daemon mode cannot be tested")
        self.daemon = daemons.Daemon(["--socket", self.sock])
        self.addCleanup(self.daemon.kill)
        self.daemon.start()

    def write(self, name, mtime=None):
        """name in the document root with old.bin's bytes, its mtime now
        (just written) or `mtime`."""
        path = os.path.join(self.root, name)
        shutil.copyfile(self.old, path)
        os.chmod(path, 0o644)
        if mtime is not None:
            os.utime(path, (mtime, mtime))

    def fetch(self, url, mode):
        dest = os.path.join(self.tmp, "out-%d" % len(os.listdir(self.tmp)))
        args = ["download", "-q", "--force", "-o", dest]
        if mode == "local":
            args += ["--local"]
        elif mode == "nostate":
            args += ["--local", "--no-state"]
        else:
            args += ["--socket", self.sock]
        p = subprocess.run([CTL] + args + [url], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, env=self.env)
        self.assertEqual(p.returncode, 0, "%s %s:\n%s%s" % (mode, url, p.stdout, p.stderr))
        self.assertEqual(sha256_file(dest), self.sha, (mode, url))
        os.unlink(dest)

    def assert_ranged(self, rows, target):
        """The requests for `target` were ranges answered 206, several."""
        mine = [r for r in rows if r[1] == target]
        statuses = [r[2] for r in mine]
        self.assertGreater(statuses.count(206), 3, (target, mine))
        self.assertEqual(statuses.count(200), 0, (target, mine))
        self.assertEqual(set(statuses), {206}, (target, mine))
        for r in mine:
            self.assertTrue(r[3].startswith("bytes="), (target, r))
        return mine

    def downloads(self, server, files):
        """Download each of files (stem -> None: old.bin itself; "now": a
        copy written just before; a time: a copy with that mtime) in every
        mode; return {(stem, mode): target}. Each mode gets its own copy:
        a file rewritten under a server that has it in its stat cache is
        served with the old validators first (lighttpd), a change the
        engine rightly answers by starting over."""
        self.start_daemon()
        server.start()
        targets = {}
        for mode in MODES:
            for stem, mtime in files.items():
                name = "old.bin" if mtime is None else "%s-%s.bin" % (stem, mode)
                if mtime is not None:
                    self.write(name, None if mtime == "now" else mtime)
                url = server.url(name, mode=mode)
                self.fetch(url, mode)
                targets[(stem, mode)] = url.split(str(server.port), 1)[1]
        self.daemon.assert_clean(self)
        return targets

    def test_apache2(self):
        """apache2 with mpm_event: an old file (strong ETag and date), one
        written just before each download (weak ETag, Last-Modified not a
        second before Date) and one with an mtime an hour ahead (weak
        ETag, Last-Modified the time of each request): all in ranges,
        never answered 200, no If-Range but with a strong validator."""
        server = Apache(self.root)
        self.addCleanup(server.cleanup)
        ahead = time.time() + 3600
        targets = self.downloads(server, {"old": None, "fresh": "now", "future": ahead})
        rows = server.access_log()
        for (name, mode), target in targets.items():
            with self.subTest(name=name, mode=mode):
                mine = self.assert_ranged(rows, target)
                # Every request but the probe (the range from byte 0: the
                # log is in the order answers ended, not requests began).
                if_ranges = {r[4] for r in mine if not r[3].startswith("bytes=0-")}
                if name == "old":
                    # A strong ETag: in every range's If-Range.
                    self.assertEqual(len(if_ranges), 1, mine)
                    self.assertTrue(if_ranges.pop().startswith('"'), mine)
                elif name == "future":
                    self.assertEqual(if_ranges, {"-"}, mine)  # "-": none sent
                else:
                    # Written just now: no If-Range, unless the probe came a
                    # second or more after the write (then the date, or the
                    # ETag Apache no longer marks weak, is strong).
                    self.assertFalse(any(v.startswith("W/") for v in if_ranges), mine)

    def test_lighttpd(self):
        """lighttpd: an old file and one written just before each download."""
        server = Lighttpd(self.root)
        self.addCleanup(server.cleanup)
        targets = self.downloads(server, {"old": None, "fresh": "now"})
        rows = server.access_log()
        for (name, mode), target in targets.items():
            with self.subTest(name=name, mode=mode):
                self.assert_ranged(rows, target)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    unittest.main(verbosity=2)
