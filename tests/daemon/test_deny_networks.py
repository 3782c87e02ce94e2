#!/usr/bin/python3
"""retrieverd's deny-networks key (docs/security.md, SSRF): destination
networks the daemon never connects to, checked on the address of every
connection the engine opens, after DNS and after redirects.

  - deny 127.0.0.0/8: a download from a loopback origin fails with
    "connection to 127.0.0.1 refused by deny-networks (config)", and the
    origin saw no request; the same daemon without the key downloads it;
  - deny 127.0.0.2/32: a redirect from 127.0.0.1 (allowed, and asked) to
    127.0.0.2 is refused with that message for 127.0.0.2;
  - a bad CIDR in the config file: the daemon refuses to start and names
    the entry.

Environment: as test_jobs.py.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402
from test_jobs import Client, kinds  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


class DenyNetworksTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-deny-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.data = os.path.join(self.tmp, "data")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.data)
        os.makedirs(self.out)
        self.src = make_file(os.path.join(self.data, "f.bin"), 100000, 3)

    def daemon(self, conf_text):
        conf = os.path.join(self.tmp, "retrieverd.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        d = td.Daemon(["--socket", self.sock, "--config", conf,
                       "--state-dir", os.path.join(self.tmp, "state"),
                       "--cache-dir", os.path.join(self.tmp, "cache")])
        self.addCleanup(d.kill)
        return d

    def stop_ok(self, d):
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())
        self.assertNotIn("Sanitizer", d.log())

    def download(self, url, dest):
        c = Client(self.sock)
        try:
            return list(c.download([{"url": url, "destination": dest}]))
        finally:
            c.close()

    def requests(self, fo, path):
        return [e for e in fo.log() if e["event"] == "request" and e["key"].startswith(path)]

    def test_loopback_denied_then_allowed(self):
        with FaultOrigin(self.data) as fo:
            d = self.daemon("deny-networks = 10.0.0.0/8, 127.0.0.0/8, ::1/128\n").start()
            ev = self.download(fo.url("/f.bin", case="denied"), self.out + "/a")
            self.assertEqual(kinds(ev)[-1], "failed", ev)
            err = ev[-1].failed.error
            self.assertEqual(err.code, "RV_E_CONNECT", err)
            self.assertIn("connection to 127.0.0.1 refused by deny-networks (config)",
                          err.detail, err)
            self.assertEqual(self.requests(fo, "/f.bin"), [], "the origin was reached")
            self.assertFalse(os.path.exists(self.out + "/a"))
            self.stop_ok(d)
            # The same origin, another network denied: it is reached.
            d = self.daemon("deny-networks = 10.0.0.0/8\n").start()
            ev = self.download(fo.url("/f.bin", case="allowed"), self.out + "/b")
            self.assertEqual(kinds(ev)[-1], "completed", ev)
            self.assertEqual(sha256_file(self.out + "/b"), sha256_file(self.src))
            self.stop_ok(d)

    def test_redirect_to_a_denied_address(self):
        with FaultOrigin(self.data) as fo:
            d = self.daemon("deny-networks = 127.0.0.2/32\n").start()
            url = fo.url("/f.bin", case="redir", redirect=1,
                         redirect_host="127.0.0.2:%d" % fo.port)
            ev = self.download(url, self.out + "/r")
            self.assertEqual(kinds(ev)[-1], "failed", ev)
            err = ev[-1].failed.error
            self.assertIn("connection to 127.0.0.2 refused by deny-networks (config)",
                          err.detail, err)
            # The first hop (127.0.0.1, allowed) was asked, and redirected.
            self.assertTrue(self.requests(fo, "/f.bin?case=redir&redirect=1"))
            self.stop_ok(d)

    def test_bad_network_refuses_to_start(self):
        for value, bad in (("10.0.0.0/8, 127.0.0.1/33", "127.0.0.1/33"),
                           ("::1/129", "::1/129"),
                           ("10.0.0.0/8 example.org", "example.org"),
                           ("10.0.0/8", "10.0.0/8")):
            d = self.daemon("deny-networks = %s\n" % value).spawn()
            rc = d.wait_exit(30)
            self.assertNotEqual(rc, 0, d.log())
            self.assertIn("invalid value for deny-networks: '%s' is not a network" % bad,
                          d.log())
        # The flag says the same.
        conf = os.path.join(self.tmp, "retrieverd.conf")
        p = subprocess.run([os.environ["RV_DAEMON"], "--config", conf, "--socket", self.sock,
                            "--deny-networks", "1.2.3.4/40"], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("'1.2.3.4/40' is not a network", p.stderr)


if __name__ == "__main__":
    unittest.main()
