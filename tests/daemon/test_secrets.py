#!/usr/bin/python3
"""No secret of a request leaves the engine (issue 20, items 2 and 6).

Downloads carry secrets in the URL's userinfo (user and password), in its
query (token=, sessionid=, jwt=, api-key=, X-Amz-Signature=, sig=: names no
short list holds) and in Authorization and Cookie headers; they succeed,
or fail with 404, 401, a redirect to a 404 (the secrets then also in the
Location the origin sends), TLS to a plain-HTTP port, TLS to a self-signed
certificate, a name under .invalid and a refused connection. Then every
place a secret could leak to is read and must not hold one:

  - every RPC answer: Download's events (Failed details, Retrying reasons),
    Status, List and Watch of each job;
  - the daemon's log (at debug level);
  - every file under the daemon's state and cache directories
    (retriever.db, jobs.sqlite and their -wal and -shm files, blobs);
  - retrieverctl's stdout and stderr, through the daemon and with --local
    (and --json), and the --local state directory.

The messages must still say what failed, with the URL redacted (the test
checks they name it, so an empty message cannot pass).

Environment (set by ctest): as test_jobs.py, plus RV_CTL (retrieverctl).
"""
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402  (Daemon, the generated pb2)
from origins import FaultOrigin, NginxOrigin, make_file  # noqa: E402
from test_jobs import Client, kinds  # noqa: E402

CTL = os.environ["RV_CTL"]
RUN_TIMEOUT = 120

# Every secret contains this (case-insensitive); nothing else in the test does.
MARK = "sekrit"
USER = "joeSEKRITuser"
PASSWORD = "SEKRIT1pass"
QUERY = ("token=SEKRIT2tok&sessionid=SEKRIT3sid&jwt=SEKRIT4jwt&api-key=SEKRIT5key"
         "&X-Amz-Signature=SEKRIT6sig&sig=SEKRIT7sig")
HEADERS = [("Authorization", "Bearer SEKRIT8bearer"), ("Cookie", "session=SEKRIT9cookie")]


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


def with_secrets(url):
    """url with the userinfo and the secret query parameters added."""
    scheme, rest = url.split("://", 1)
    sep = "&" if "?" in rest else "?"
    return "%s://%s:%s@%s%s%s" % (scheme, USER, PASSWORD, rest, sep, QUERY)


def free_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SecretsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-secrets-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.data = os.path.join(self.tmp, "data")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.data)
        os.makedirs(self.out)
        # Larger than the engine's smallest range (1 MiB): its state row
        # is written while it downloads, not only at the end.
        make_file(os.path.join(self.data, "a.bin"), 3 << 20)
        make_file(os.path.join(self.data, "small.bin"), 1000, seed=1)
        self.texts = []  # (where, text) of everything that left the engine

    def keep(self, where, text):
        self.texts.append((where, text if isinstance(text, str) else str(text)))

    def daemon(self):
        d = td.Daemon(["--socket", self.sock,
                       "--state-dir", os.path.join(self.tmp, "state"),
                       "--cache-dir", os.path.join(self.tmp, "cache"),
                       "--log-level", "debug",
                       "--max-connections-per-object", "2"])
        self.addCleanup(d.kill)
        return d.start()

    def ctl(self, what, *args):
        p = subprocess.run([CTL, *args], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertNotIn("Sanitizer", p.stderr)  # the RV_SANITIZE build
        self.keep("retrieverctl (%s): stdout" % what, p.stdout)
        self.keep("retrieverctl (%s): stderr" % what, p.stderr)
        return p

    def scan_tree(self, root):
        """Every file under root, as (path, bytes)."""
        for dirpath, _, files in os.walk(root):
            for f in files:
                path = os.path.join(dirpath, f)
                with open(path, "rb") as fh:
                    yield path, fh.read()

    def assert_no_secret(self):
        for where, text in self.texts:
            m = re.search(MARK, text, re.IGNORECASE)
            self.assertIsNone(m, "a secret in %s: ...%s..." % (
                where, text[max(0, m.start() - 120):m.end() + 40] if m else ""))
        for root in ("state", "cache", "local-state", "local-cache"):
            for path, data in self.scan_tree(os.path.join(self.tmp, root)):
                self.assertFalse(MARK.encode() in data.lower(), "a secret in clear in " + path)

    def stored_requests(self):
        """Every job's DownloadRequest as the job database keeps it,
        decrypted with jobs.key (AES-256-GCM: nonce, ciphertext, tag), as
        (state, ended_ms, bytes): what anyone who can read the state
        directory can read."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        state = os.path.join(self.tmp, "state")
        with open(os.path.join(state, "jobs.key"), "rb") as f:
            aes = AESGCM(f.read())
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "jobs.sqlite"), uri=True)
        try:
            rows = db.execute("SELECT state, ended_ms, request FROM jobs").fetchall()
        finally:
            db.close()
        return [(st, ended, aes.decrypt(blob[:12], blob[12:], None))
                for st, ended, blob in rows]

    def pb_headers(self):
        return [td.pb.Header(name=n, value=v) for n, v in HEADERS]

    def ctl_headers(self):
        return [a for n, v in HEADERS for a in ("--header", "%s: %s" % (n, v))]

    def urls(self, fo, ng, plain):
        """(name, url with secrets, expected error code or None) of every
        case that ends by itself; the transient ones are apart. TLS to a
        plain-HTTP port goes to nginx, which answers a ClientHello at once
        (the fault origin would wait for a request line)."""
        plain_tls = "https://127.0.0.1:%d/small.bin" % plain.port
        return [
            ("ok", with_secrets(fo.url("/a.bin")), None),
            ("404", with_secrets(fo.url("/missing.bin")), "RV_E_NOT_FOUND"),
            ("401", with_secrets(fo.url("/small.bin", status=401, case="t401")),
             "RV_E_ACCESS_DENIED"),
            ("redirect to 404", with_secrets(fo.url("/missing.bin", redirect=1)),
             "RV_E_NOT_FOUND"),
            ("tls to plain http", with_secrets(plain_tls), "RV_E_TLS"),
            ("tls self-signed", with_secrets(ng.url("/small.bin")), "RV_E_TLS"),
            # A name that does not resolve is permanent: it fails at once.
            ("dns", with_secrets("http://no-such-host.invalid/small.bin"),
             "RV_E_RESOLVE_HOST"),
        ]

    def transient_urls(self):
        return [
            ("refused", with_secrets("http://127.0.0.1:%d/small.bin" % free_port())),
        ]

    def test_no_secret_in_answers_logs_databases_or_output(self):
        with FaultOrigin(self.data) as fo, NginxOrigin(self.data, tls=True) as ng, \
                NginxOrigin(self.data) as plain:
            d = self.daemon()
            c = Client(self.sock)
            self.addCleanup(c.close)
            job_ids = []
            for name, url, code in self.urls(fo, ng, plain):
                dest = os.path.join(self.out, "d-" + name.replace(" ", "-"))
                events = list(c.download([{"url": url, "destination": dest,
                                           "headers": self.pb_headers()}]))
                job_ids.append(events[0].job_id)
                for e in events:
                    self.keep("Download event (%s)" % name, e)
                last = events[-1]
                if code is None:
                    self.assertEqual(kinds(events)[-1], "completed", last)
                    continue
                self.assertEqual(kinds(events)[-1], "failed", last)
                self.assertEqual(last.failed.error.code, code, last)
                # Still says what failed, about which URL: redacted, not empty.
                err = last.failed.error
                self.assertIn("***@", err.message + err.detail, last)
                self.assertIn("REDACTED", err.message + err.detail, last)

            # Refused connections are retried (for a few seconds): their
            # Retrying events carry libcurl's words; the job is then
            # cancelled.
            for name, url in self.transient_urls():
                dest = os.path.join(self.out, "t-" + name)
                acc = list(c.download([{"url": url, "destination": dest,
                                        "headers": self.pb_headers()}], detach=True))
                job_id = acc[-1].job_id
                job_ids.append(job_id)
                stream = c.watch(job_id)
                retrying = None
                for e in stream:
                    self.keep("Watch event (%s)" % name, e)
                    if e.WhichOneof("event") == "retrying":
                        retrying = e
                        break
                    self.assertNotIn(e.WhichOneof("event"), ("completed", "failed"), e)
                stream.cancel()
                self.assertIsNotNone(retrying, name)
                self.assertIn("***@", retrying.retrying.reason, retrying)
                c.cancel(job_id)

            # Every job's Status and Watch (finished: its outcome) and List.
            for job_id in job_ids:
                self.keep("Status", c.status(job_id))
                try:
                    for e in c.watch(job_id, timeout=30):
                        self.keep("Watch of an ended job", e)
                except Exception as e:  # an ended job may answer with a status
                    self.keep("Watch of an ended job (error)", e)
            jobs = c.list()
            self.assertGreaterEqual(len(jobs), len(job_ids))
            self.keep("List", jobs)
            self.assertIn("REDACTED", str(jobs))

            # retrieverctl through the daemon, for the cases that end.
            for name, url, code in self.urls(fo, ng, plain):
                dest = os.path.join(self.out, "c-" + name.replace(" ", "-"))
                p = self.ctl("daemon, " + name, "--socket", self.sock, "download", "--json", "-o", dest,
                             *self.ctl_headers(), url)
                self.assertEqual(p.returncode == 0, code is None, p.stderr)
            c.close()
            rc, _ = d.stop()
            self.assertEqual(rc, 0, d.log())
            d.assert_clean(self)
            self.keep("the daemon's log", d.log())
            # An ended job keeps no credential, not even sealed: its stored
            # request has no headers and its URL redacted (a job still to
            # run keeps them, to resume after a restart).
            stored = self.stored_requests()
            ended = [req for _, ended_ms, req in stored if ended_ms]
            self.assertGreaterEqual(len(ended), len(job_ids))
            for req in ended:
                self.assertNotIn(MARK.encode(), req.lower(), req)
                self.assertIn(b"REDACTED", req)

            # --local: the same cases, failing at once (no retries).
            local = ["download", "--local", "--retries", "0", "--connect-timeout", "5",
                     "--state-dir", os.path.join(self.tmp, "local-state"),
                     "--cache-dir", os.path.join(self.tmp, "local-cache")]
            cases = [(n, u) for n, u, _ in self.urls(fo, ng, plain)] + self.transient_urls()
            for name, url in cases:
                dest = os.path.join(self.out, "l-" + name.replace(" ", "-"))
                p = self.ctl("--local, " + name, *local, "--json", "-o", dest, *self.ctl_headers(), url)
                self.assertEqual(p.returncode == 0, name == "ok", p.stderr)
                if name != "ok":
                    self.assertIn("***@", p.stderr)
        self.assert_no_secret()

    def test_details_stored_by_an_older_daemon_are_redacted(self):
        """A job database of schema 1 may hold a failure detail that quotes
        the URL in clear (the daemon before issue 20): a newer daemon
        rewrites it, shows it redacted, and leaves it in no file."""
        import sqlite3
        with FaultOrigin(self.data) as fo:
            d = self.daemon()
            c = Client(self.sock)
            url = with_secrets(fo.url("/missing.bin"))
            events = list(c.download([{"url": url, "destination": self.out + "/m"}]))
            self.assertEqual(kinds(events)[-1], "failed")
            job_id = events[0].job_id
            c.close()
            rc, _ = d.stop()
            self.assertEqual(rc, 0, d.log())
        db = os.path.join(self.tmp, "state", "jobs.sqlite")
        old = "HTTP 404 from '%s'" % url
        con = sqlite3.connect(db)
        con.execute("UPDATE objects SET error_detail = ?", (old,))
        con.execute("PRAGMA user_version=1")
        con.commit()
        con.close()
        stored = b"".join(data for path, data in self.scan_tree(os.path.join(self.tmp, "state"))
                          if "jobs.sqlite" in path)
        self.assertIn(MARK.encode(), stored.lower())  # the test's premise

        d = self.daemon()
        c = Client(self.sock)
        job = c.status(job_id)
        c.close()
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())
        detail = job.objects[0].error.detail
        self.assertIn("***@", detail)
        self.assertIn("token=REDACTED", detail)
        self.keep("Status after the upgrade", job)
        self.keep("the daemon's log", d.log())
        con = sqlite3.connect(db)
        self.assertEqual(con.execute("PRAGMA user_version").fetchall(), [(2,)])
        con.close()
        self.assert_no_secret()

    def test_credential_fingerprint_is_keyed(self):
        """The state key's credential fingerprint cannot be recomputed
        from a guess: the unkeyed SHA-256 of the userinfo (what the key
        held before) is nowhere in retriever.db, whose key file is the
        daemon's alone; and two passwords still never share an entry."""
        import hashlib
        import sqlite3
        with FaultOrigin(self.data) as fo:
            d = self.daemon()
            c = Client(self.sock)
            for i, pw in enumerate(("guessme1", "guessme2")):
                url = fo.url("/a.bin").replace("://", "://joe:%s@" % pw)
                events = list(c.download([{"url": url, "destination": self.out + "/k%d" % i}]))
                self.assertEqual(kinds(events)[-1], "completed", events[-1])
                self.assertFalse(events[-1].completed.from_cache)  # never the other's
            c.close()
            rc, _ = d.stop()
            self.assertEqual(rc, 0, d.log())
        state = os.path.join(self.tmp, "state")
        key = os.path.join(state, "retriever.key")
        st = os.stat(key)
        self.assertEqual((st.st_mode & 0o777, st.st_size, st.st_uid), (0o600, 32, os.geteuid()))
        con = sqlite3.connect(os.path.join(state, "retriever.db"))
        keys = [k for (k,) in con.execute("SELECT key FROM objects")]
        con.close()
        self.assertEqual(len(keys), 2, keys)  # one entry per password
        self.assertTrue(all("\ncredentials-mac:" in k for k in keys), keys)
        stored = b"".join(data for path, data in self.scan_tree(state) if "retriever.db" in path)
        for pw in ("guessme1", "guessme2"):
            guess = hashlib.sha256(("joe:%s" % pw).encode() + b"\0").hexdigest()[:32]
            self.assertFalse(guess.encode() in stored, "the unkeyed digest of " + pw)
            self.assertFalse(pw.encode() in stored, pw + " in clear")


if __name__ == "__main__":
    unittest.main(verbosity=2)
