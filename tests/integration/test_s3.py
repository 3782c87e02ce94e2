#!/usr/bin/python3
"""s3:// downloads (issue 24) against a real S3-compatible server.

s3rver (npm, tests/integration/s3rver; .ci/install-deps installs it) holds
the objects; in front of it this test runs a SigV4-checking proxy written
from the AWS Signature Version 4 specification (hmac/hashlib), because
s3rver checks signatures only against its own fixed key pair: the front
knows the test's key pairs, refuses a wrong secret or a missing session
token as S3 does, allows anonymous reads of one bucket only, enforces
If-Match itself, and can inject SlowDown answers or replace an object
between two ranges. Everything listens on loopback; s3rver is stopped by
its PID.
"""

import datetime
import glob
import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
S3RVER_DIR = os.path.join(HERE, "s3rver")
RV_CTL = os.environ.get("RV_CTL", os.path.join(HERE, "../../build/client/retrieverctl"))
RV_DAEMON = os.environ.get("RV_DAEMON", os.path.join(HERE, "../../build/daemon/retrieverd"))
sys.path.insert(0, os.path.join(HERE, os.pardir, "fixtures"))
import daemons  # noqa: E402
from origins import _die_with_parent  # noqa: E402

KEY_ID = "AKIDRETRIEVERTEST"
SECRET = "s3cr3t/RetrieverTestKey+never-logged"
TEMP_KEY_ID = "ASIARETRIEVERTEMP"
TEMP_SECRET = "temp-secret-never-logged"
TOKEN = "session-token-never-logged"
REGION = "eu-test-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            '<Message>%s</Message></Error>' % (code, message)).encode()


def sign_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


class Front(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backend_port):
        super().__init__(("127.0.0.1", 0), FrontHandler)
        self.backend_port = backend_port
        self.lock = threading.Lock()
        self.requests = []          # (method, path, auth verdict, status)
        self.slowdowns = {}         # path -> error answers still to give
        self.inject = {}            # path -> (status, code) of those answers
        self.replace = {}           # path -> (after n GETs, new body)
        self.gets = {}              # path -> GETs seen
        self.keys = {KEY_ID: (SECRET, None), TEMP_KEY_ID: (TEMP_SECRET, TOKEN)}
        self.if_match = {}          # path -> [GETs with If-Match, of them refused]
        self.extra_keys = []        # keys (XML-escaped) added to every listing
        self.redirects = {}         # path -> Location of a 307 answer

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def backend(self, method, path, headers=None, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.backend_port, timeout=30)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data


class FrontHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def check_signature(self):
        """None when the request is signed right (or anonymous for the
        public bucket); else (status, code, message)."""
        auth = self.headers.get("Authorization")
        u = urllib.parse.urlsplit(self.path)
        bucket = u.path.split("/")[1] if u.path.count("/") >= 1 else ""
        if not auth:
            if bucket == "public":
                return None
            return (403, "AccessDenied", "Access Denied")
        try:
            algo, rest = auth.split(" ", 1)
            fields = dict(p.strip().split("=", 1) for p in rest.split(","))
            cred = fields["Credential"].split("/")
            key_id, date, region, service = cred[0], cred[1], cred[2], cred[3]
            signed = fields["SignedHeaders"].split(";")
            sig = fields["Signature"]
        except (ValueError, KeyError, IndexError):
            return (400, "AuthorizationHeaderMalformed", "malformed")
        if algo != "AWS4-HMAC-SHA256":
            return (400, "AuthorizationHeaderMalformed", "algorithm")
        payload = self.headers.get("x-amz-content-sha256")
        if not payload:
            return (400, "InvalidRequest", "Missing required header for this request: "
                    "x-amz-content-sha256")
        if key_id not in self.server.keys:
            return (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does "
                    "not exist in our records.")
        if region != REGION:
            # As S3 answers a path-style request signed for another region.
            return (301, "PermanentRedirect", "The bucket you are attempting to access must "
                    "be addressed using the specified endpoint.",
                    [("x-amz-bucket-region", REGION)])
        secret, token = self.server.keys[key_id]
        if token is not None and self.headers.get("x-amz-security-token") != token:
            return (400, "ExpiredToken", "The provided token has expired.")
        if "host" not in signed or "x-amz-date" not in signed or \
                "x-amz-content-sha256" not in signed:
            return (403, "AccessDenied", "required headers not signed")
        q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
        cq = "&".join("%s=%s" % (urllib.parse.quote(k, safe="-_.~"),
                                 urllib.parse.quote(v, safe="-_.~")) for k, v in sorted(q))
        ch = "".join("%s:%s\n" % (h, " ".join(self.headers.get(h, "").split()))
                     for h in signed)
        # The canonical URI is the key URI-encoded once (RFC 3986
        # unreserved characters and '/' as they are): computed from the
        # decoded path, so a client that sends another spelling is refused.
        curi = urllib.parse.quote(urllib.parse.unquote(u.path), safe="/-_.~")
        creq = "\n".join([self.command, curi, cq, ch, ";".join(signed), payload])
        amz_date = self.headers.get("x-amz-date", "")
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date,
                         "/".join([date, region, service, "aws4_request"]),
                         hashlib.sha256(creq.encode()).hexdigest()])
        want = hmac.new(sign_key(secret, date, region, service), sts.encode(),
                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig) or region != REGION or service != "s3":
            return (403, "SignatureDoesNotMatch", "The request signature we calculated "
                    "does not match the signature you provided.")
        return None

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.server
        bad = self.check_signature()
        path = urllib.parse.urlsplit(self.path).path
        with srv.lock:
            srv.requests.append((self.command, path, bool(self.headers.get("Authorization")),
                                 bad[0] if bad else 0))
            n = srv.gets[path] = srv.gets.get(path, 0) + 1
            slow = srv.slowdowns.get(path, 0)
            if slow and not bad:
                srv.slowdowns[path] = slow - 1
            repl = srv.replace.get(path)
        if bad:
            return self.answer(bad[0], s3_error(bad[1], bad[2]),
                               [("Content-Type", "application/xml")] + list(bad[3:4] and bad[3]))
        with srv.lock:
            location = srv.redirects.get(path)
        if location:
            return self.answer(307, b"", [("Location", location)])
        if slow:
            status, code = srv.inject.get(path, (503, "SlowDown"))
            return self.answer(status, s3_error(code, "Please reduce your request rate."),
                               [("Content-Type", "application/xml")])
        if repl and n == repl[0]:
            srv.backend("PUT", path, body=repl[1])
        fwd = {k: self.headers[k] for k in ("Range",) if self.headers.get(k)}
        want = self.headers.get("If-Match")
        if want:
            head, _ = srv.backend("HEAD", path)
            with srv.lock:
                seen = srv.if_match.setdefault(path, [0, 0])
                seen[0] += 1
                seen[1] += head.getheader("ETag") != want
            if head.getheader("ETag") != want:
                return self.answer(412, s3_error("PreconditionFailed", "At least one of the "
                                                 "pre-conditions you specified did not hold"))
        # A listing's query goes on; an object's (a presigned URL's) does not:
        # s3rver would check its signature against its own key pair.
        r, data = srv.backend(self.command, self.path if "list-type=2" in self.path else path,
                              fwd)
        with srv.lock:
            extra = list(srv.extra_keys)
        if extra and "list-type=2" in self.path and r.status == 200:
            # Keys s3rver's file store cannot hold, added to a listing.
            add = "".join("<Contents><Key>%s</Key><Size>1</Size></Contents>" % k
                          for k in extra).encode()
            data = data.replace(b"</ListBucketResult>", add + b"</ListBucketResult>")
        hdrs = [(k, r.getheader(k)) for k in ("Content-Type", "Content-Range", "ETag",
                                              "Last-Modified", "Accept-Ranges")
                if r.getheader(k)]
        self.send_response(r.status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", r.getheader("Content-Length") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class S3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rv-s3-")
        node = shutil.which("node")
        script = os.path.join(S3RVER_DIR, "node_modules", "s3rver", "bin", "s3rver.js")
        if not node or not os.path.exists(script):
            raise RuntimeError("s3rver is not installed: run .ci/install-deps")
        port = free_port()
        os.makedirs(os.path.join(cls.tmp, "s3data"))
        cls.s3rver = subprocess.Popen(
            [node, "--openssl-legacy-provider", script, "-d", os.path.join(cls.tmp, "s3data"),
             "-a", "127.0.0.1", "-p", str(port), "--silent", "--no-vhost-buckets",
             "--configure-bucket", "data", "--configure-bucket", "public"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        try:
            cls.start_front(port)
        except BaseException:
            cls.s3rver.terminate()
            cls.s3rver.wait(timeout=20)
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def start_front(cls, port):
        for _ in range(200):  # bounded: up to 20 s for node to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if cls.s3rver.poll() is not None:
                    raise RuntimeError("s3rver exited")
                time.sleep(0.1)
        cls.front = Front(port)
        cls.front_thread = threading.Thread(target=cls.front.serve_forever, daemon=True)
        cls.front_thread.start()
        cls.endpoint = "http://127.0.0.1:%d" % cls.front.server_address[1]
        cls.big = os.urandom(6 * 1024 * 1024 + 12345)
        cls.put("/data/dir/big.bin", cls.big)
        cls.put("/public/open.bin", b"public bytes\n" * 1000)
        cls.put("/data/slow.bin", b"slow down\n" * 5000)

    @classmethod
    def tearDownClass(cls):
        cls.front.shutdown()
        cls.front.server_close()
        cls.s3rver.terminate()
        cls.s3rver.wait(timeout=20)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def put(cls, path, body):
        r, _ = cls.front.backend("PUT", path, body=body)
        assert r.status == 200, r.status

    def run_ctl(self, url, *args, env_extra=None, creds=True, mode=("--local",), dest=None,
                home=None):
        out_dir = tempfile.mkdtemp(dir=self.tmp)
        home = home or tempfile.mkdtemp(dir=self.tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"HOME": home, "XDG_STATE_HOME": os.path.join(home, "state"),
                    "XDG_CACHE_HOME": os.path.join(home, "cache"), "AWS_REGION": REGION})
        if creds:
            env.update({"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
        env.update(env_extra or {})
        dest = dest or os.path.join(out_dir, "out.bin")
        json_opt = [] if "--detach" in args else ["--json"]
        p = subprocess.run([RV_CTL, "download", *mode, "--no-progress", *json_opt,
                            "--endpoint-url", self.endpoint, "-o", dest, *args, url],
                           env=env, capture_output=True, text=True, timeout=120)
        self.last_home = home
        return p, dest

    def assert_no_secrets(self, p, home):
        for s in (SECRET, TEMP_SECRET, TOKEN):
            self.assertNotIn(s, p.stdout + p.stderr)
            for f in glob.glob(os.path.join(home, "**"), recursive=True):
                if os.path.isfile(f) and not f.endswith("credentials"):
                    with open(f, "rb") as fh:
                        self.assertNotIn(s.encode(), fh.read(), f)

    def requests_for(self, path):
        with self.front.lock:
            return [r for r in self.front.requests if r[1] == path]

    def test_signed_ranged_get(self):
        before = len(self.requests_for("/data/dir/big.bin"))
        with self.front.lock:
            if_match_before = self.front.if_match.get("/data/dir/big.bin", [0, 0])[0]
        p, dest = self.run_ctl("s3://data/dir/big.bin", "-c", "4", "--chunk-size", "1M")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), self.big)
        reqs = self.requests_for("/data/dir/big.bin")[before:]
        self.assertGreaterEqual(len(reqs), 6)  # a probe and ranges of 1 MiB
        self.assertTrue(all(signed and status == 0 for _, _, signed, status in reqs))
        with self.front.lock:  # every range after the probe names the version
            self.assertEqual(self.front.if_match["/data/dir/big.bin"][0] - if_match_before,
                             len(reqs) - 1)
        self.assert_no_secrets(p, self.last_home)

    def test_key_with_space_plus_and_unicode(self):
        body = b"odd key\n" * 100
        self.put("/data/odd/a%20b%2Bc%C3%A9%2C.bin", body)
        # As a user writes it percent-encoded, and with the '+', ',' and
        # unicode bytes spelled differently: the same object either way.
        for url in ("s3://data/odd/a%20b%2Bc%C3%A9%2C.bin", "s3://data/odd/a%20b+c%c3%a9,.bin"):
            p, dest = self.run_ctl(url, "--no-state")
            self.assertEqual(p.returncode, 0, url + p.stderr)
            with open(dest, "rb") as f:
                self.assertEqual(f.read(), body)

    def test_presigned_urls_share_the_cache(self):
        # Two signings of one object (other X-Amz-* values) are one cached
        # object; another non-signing parameter, or no signature, is not.
        home = tempfile.mkdtemp(dir=self.tmp)
        base = self.endpoint + "/public/open.bin"
        size = len(b"public bytes\n" * 1000)

        def cached(query):
            p, _ = self.run_ctl(base + query, creds=False, home=home)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("SIG-", p.stdout + p.stderr)
            return json.loads(p.stdout.splitlines()[-1])["cached_bytes"]

        sig = ("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%%2F20261208%%2F%s"
               "%%2Fs3%%2Faws4_request&X-Amz-Date=20261208T000000Z&X-Amz-Expires=%d"
               "&X-Amz-SignedHeaders=host&X-Amz-Signature=SIG-%s")
        self.assertEqual(cached(sig % (REGION, 600, "a" * 8)), 0)
        self.assertEqual(cached(sig % (REGION, 900, "b" * 8)), size)
        self.assertEqual(cached(sig % (REGION, 600, "c" * 8) + "&versionId=2"), 0)
        self.assertEqual(cached(""), 0)
        for f in glob.glob(os.path.join(home, "**"), recursive=True):
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    self.assertNotIn(b"SIG-", fh.read(), f)

    def test_wrong_region_followed_once(self):
        self.put("/data/region.bin", b"region\n" * 100)
        p, dest = self.run_ctl("s3://data/region.bin", "--no-state",
                               env_extra={"AWS_REGION": "us-west-9"})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"region\n" * 100)
        self.assertEqual([r[3] for r in self.requests_for("/data/region.bin")], [301, 0])
        # A listing too (its object then follows on its own).
        self.put("/data/regdir/r.bin", b"r")
        before = len(self.requests_for("/data"))
        p, out = self.run_dir("s3://data/regdir/", env_extra={"AWS_REGION": "us-west-9"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.tree(out), {"r.bin": b"r"})
        self.assertEqual([r[3] for r in self.requests_for("/data")[before:]], [301, 0])

    def test_signed_request_follows_no_redirect(self):
        # libcurl sends custom headers (the session token) on to a
        # redirect's host: a signed request must not follow one.
        seen = []

        class Capture(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        cap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
        threading.Thread(target=cap.serve_forever, daemon=True).start()
        self.addCleanup(cap.server_close)
        self.addCleanup(cap.shutdown)
        with self.front.lock:
            self.front.redirects["/data/moved.bin"] = \
                "http://127.0.0.1:%d/elsewhere" % cap.server_address[1]
        env = {"AWS_ACCESS_KEY_ID": TEMP_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEMP_SECRET,
               "AWS_SESSION_TOKEN": TOKEN}
        p, dest = self.run_ctl("s3://data/moved.bin", "--no-state", env_extra=env)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("307", p.stderr)
        self.assertEqual(seen, [])

    def test_session_token(self):
        env = {"AWS_ACCESS_KEY_ID": TEMP_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEMP_SECRET,
               "AWS_SESSION_TOKEN": TOKEN}
        p, dest = self.run_ctl("s3://data/slow.bin", "--no-state", env_extra=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_no_secrets(p, self.last_home)
        env.pop("AWS_SESSION_TOKEN")
        before = len(self.requests_for("/data/slow.bin"))
        p, dest = self.run_ctl("s3://data/slow.bin", "--no-state", env_extra=env)
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(dest))
        self.assertIn("S3 ExpiredToken: the session token has expired", p.stderr)
        self.assertEqual(len(self.requests_for("/data/slow.bin")) - before, 1)

    def test_unknown_access_key_id(self):
        p, dest = self.run_ctl("s3://data/slow.bin", "--no-state",
                               env_extra={"AWS_ACCESS_KEY_ID": "AKIDNOBODY"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("S3 InvalidAccessKeyId", p.stderr)

    def test_credentials_file_profile(self):
        home = tempfile.mkdtemp(dir=self.tmp)
        cred = os.path.join(home, "credentials")
        with open(cred, "w") as f:
            f.write("[default]\naws_access_key_id = WRONG\naws_secret_access_key = x\n"
                    "[test]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (KEY_ID, SECRET))
        p, dest = self.run_ctl("s3://data/slow.bin", "--no-state", creds=False,
                               env_extra={"AWS_SHARED_CREDENTIALS_FILE": cred,
                                          "AWS_PROFILE": "test"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_no_secrets(p, self.last_home)

    def test_anonymous(self):
        p, dest = self.run_ctl("s3://public/open.bin", "--no-sign-request", creds=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"public bytes\n" * 1000)
        self.assertFalse(any(r[2] for r in self.requests_for("/public/open.bin")))
        # The same front refuses anonymous reads of another bucket.
        p, dest = self.run_ctl("s3://data/slow.bin", "--no-sign-request", creds=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(dest))
        self.assertIn("S3 AccessDenied: access denied", p.stderr)

    def test_no_credentials_is_clear(self):
        p, _ = self.run_ctl("s3://data/slow.bin", creds=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no S3 credentials", p.stderr)

    def test_wrong_secret_fails_without_retries(self):
        before = len(self.requests_for("/data/dir/big.bin"))
        p, dest = self.run_ctl("s3://data/dir/big.bin",
                               env_extra={"AWS_SECRET_ACCESS_KEY": "wrong" + SECRET})
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(dest))
        self.assertEqual(len(self.requests_for("/data/dir/big.bin")) - before, 1)
        self.assertIn("S3 SignatureDoesNotMatch: the signature does not match: wrong secret "
                      "access key", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assert_no_secrets(p, self.last_home)
        self.assertNotIn("wrong" + SECRET, p.stdout + p.stderr)

    def test_missing_key_and_bucket(self):
        for url, code in (("s3://data/no/such.bin", "S3 NoSuchKey: no such key"),
                          ("s3://nosuchbucket/x.bin", "S3 NoSuchBucket: no such bucket")):
            path = urllib.parse.urlsplit(url.replace("s3://", "http://h/")).path
            before = len(self.requests_for(path))
            p, dest = self.run_ctl(url, "--no-state")
            self.assertNotEqual(p.returncode, 0, url)
            self.assertFalse(os.path.exists(dest))
            self.assertIn(code, p.stderr)
            self.assertEqual(len(self.requests_for(path)) - before, 1)

    def test_slowdown_then_success(self):
        with self.front.lock:
            self.front.slowdowns["/data/slow.bin"] = 2
        p, dest = self.run_ctl("s3://data/slow.bin", "--no-state")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), b"slow down\n" * 5000)
        with self.front.lock:
            self.assertEqual(self.front.slowdowns["/data/slow.bin"], 0)

    def test_internal_error_retried(self):
        self.put("/data/ie.bin", b"internal\n" * 100)
        with self.front.lock:
            self.front.slowdowns["/data/ie.bin"] = 1
            self.front.inject["/data/ie.bin"] = (500, "InternalError")
        p, dest = self.run_ctl("s3://data/ie.bin", "--no-state")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.requests_for("/data/ie.bin")), 2)

    def test_replaced_mid_download_never_mixed(self):
        old = os.urandom(3 * 1024 * 1024)
        new = os.urandom(3 * 1024 * 1024)
        self.put("/data/swap.bin", old)
        with self.front.lock:
            self.front.replace["/data/swap.bin"] = (2, new)  # before the second GET
        p, dest = self.run_ctl("s3://data/swap.bin", "-c", "1", "--chunk-size", "1M",
                               "--no-state")
        if p.returncode == 0:
            with open(dest, "rb") as f:
                self.assertEqual(f.read(), new)
        else:
            self.assertFalse(os.path.exists(dest))
        # the engine asked with If-Match, so the front refused the old ETag
        with self.front.lock:
            self.assertGreaterEqual(self.front.if_match["/data/swap.bin"][1], 1)


    # ------------------------------------------------------------------
    # Daemon mode: the caller's credentials travel in the request.

    def start_daemon(self):
        sock = os.path.join(tempfile.mkdtemp(dir=self.tmp), "d.sock")
        d = daemons.Daemon(["--socket", sock], binary=RV_DAEMON)
        self.addCleanup(d.kill)
        d.start()
        return d, sock

    def daemon_files_lack_secrets(self, d):
        for f in glob.glob(os.path.join(d.state_tmp, "**"), recursive=True):
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    data = fh.read()
                for secret in (SECRET, TOKEN, KEY_ID, TEMP_KEY_ID):
                    self.assertNotIn(secret.encode(), data, f)
        for secret in (SECRET, TOKEN, TEMP_SECRET):
            self.assertNotIn(secret, d.log())

    def test_daemon_signed_get(self):
        d, sock = self.start_daemon()
        env = {"AWS_ACCESS_KEY_ID": TEMP_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEMP_SECRET,
               "AWS_SESSION_TOKEN": TOKEN}
        p, dest = self.run_ctl("s3://data/dir/big.bin", "-c", "4", env_extra=env,
                               mode=("--socket", sock, "--no-autostart"))
        self.assertEqual(p.returncode, 0, p.stderr + d.log())
        with open(dest, "rb") as f:
            self.assertEqual(f.read(), self.big)
        self.assert_no_secrets(p, self.last_home)
        st = subprocess.run([RV_CTL, "list", "--json", "--all", "--socket", sock],
                            capture_output=True, text=True, timeout=60)
        for secret in (TEMP_SECRET, TOKEN):
            self.assertNotIn(secret, st.stdout + st.stderr)
        self.daemon_files_lack_secrets(d)
        # The wrong secret gets the clear message through the daemon too.
        p, dest = self.run_ctl("s3://data/slow.bin", mode=("--socket", sock, "--no-autostart"),
                               env_extra={"AWS_SECRET_ACCESS_KEY": "wrong"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("S3 SignatureDoesNotMatch", p.stderr + p.stdout)

    def test_daemon_callers_with_other_credentials_never_share_a_job(self):
        d, sock = self.start_daemon()
        self.put("/data/shared.bin", os.urandom(2 * 1024 * 1024))
        dest = os.path.join(tempfile.mkdtemp(dir=self.tmp), "shared.bin")
        mode = ("--socket", sock, "--no-autostart")
        a, _ = self.run_ctl("s3://data/shared.bin", "--detach", "--digest", "--limit-rate", "512K",
                            "-c", "1", mode=mode, dest=dest)
        self.assertEqual(a.returncode, 0, a.stderr)
        # Same URL, same file, same uid, another (wrong) secret and key id:
        # attaching to the running job would hand it the first caller's
        # download.
        b, _ = self.run_ctl("s3://data/shared.bin", "--limit-rate", "512K", "-c", "1",
                            mode=mode, dest=dest,
                            env_extra={"AWS_ACCESS_KEY_ID": TEMP_KEY_ID,
                                       "AWS_SECRET_ACCESS_KEY": "wrong"})
        self.assertNotEqual(b.returncode, 0, b.stdout + b.stderr)

    def test_daemon_restart_forgets_credentials(self):
        # The job store keeps a live job's request (to resume it after a
        # restart), but never the S3 credentials: a job restored by a new
        # daemon has none, so its requests go unsigned and are refused.
        state = tempfile.mkdtemp(dir=self.tmp)
        sock = os.path.join(state, "d.sock")
        args = ["--socket", sock, "--state-dir", os.path.join(state, "s"),
                "--cache-dir", os.path.join(state, "c")]
        d = daemons.Daemon(args, binary=RV_DAEMON)
        self.addCleanup(d.kill)
        d.start()
        self.put("/data/restart.bin", os.urandom(2 * 1024 * 1024))
        dest = os.path.join(tempfile.mkdtemp(dir=self.tmp), "restart.bin")
        a, _ = self.run_ctl("s3://data/restart.bin", "--detach", "--limit-rate", "256K",
                            "-c", "1", mode=("--socket", sock, "--no-autostart"), dest=dest)
        self.assertEqual(a.returncode, 0, a.stderr)
        job = a.stdout.strip()
        d.kill()
        for f in glob.glob(os.path.join(state, "**"), recursive=True):
            if os.path.isfile(f):
                with open(f, "rb") as fh:
                    self.assertNotIn(SECRET.encode(), fh.read(), f)
        d2 = daemons.Daemon(args, binary=RV_DAEMON)
        self.addCleanup(d2.kill)
        d2.start()
        w = subprocess.run([RV_CTL, "watch", "--json", "--socket", sock, job],
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(w.returncode, 0, w.stdout + w.stderr)
        self.assertIn("S3 AccessDenied", w.stdout + w.stderr)
        self.assertFalse(os.path.exists(dest))
        self.assertNotIn(SECRET, d.log() + d2.log())

    # ------------------------------------------------------------------
    # Prefixes and patterns: ListObjectsV2, every page.

    def run_dir(self, url, *args, mode=("--local",), env_extra=None):
        out_dir = tempfile.mkdtemp(dir=self.tmp)
        home = tempfile.mkdtemp(dir=self.tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"HOME": home, "XDG_STATE_HOME": os.path.join(home, "state"),
                    "XDG_CACHE_HOME": os.path.join(home, "cache"), "AWS_REGION": REGION,
                    "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
        env.update(env_extra or {})
        p = subprocess.run([RV_CTL, "download", *mode, "--no-progress", "-q",
                            "--endpoint-url", self.endpoint, "-d", out_dir, *args, url],
                           env=env, capture_output=True, text=True, timeout=240)
        self.last_home = home
        return p, out_dir

    @staticmethod
    def tree(d):
        out = {}
        for root, _, files in os.walk(d):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(root, f), d)] = fh.read()
        return out

    def test_prefix_of_1100_keys(self):
        want = {}
        for i in range(1100):
            rel = "sub%d/k%04d.bin" % (i % 3, i) if i % 2 else "k%04d.txt" % i
            body = b"%d\n" % i
            self.put("/data/many/" + rel, body)
            want[rel] = body
        odd = "odd dir/a b+c\u00e9.bin"
        self.put("/data/many/" + urllib.parse.quote(odd), b"odd")
        want[odd] = b"odd"
        p, out = self.run_dir("s3://data/many/", "-c", "2")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual(self.tree(out), want)
        lists = [r for r in self.requests_for("/data") if r[0] == "GET"]
        self.assertGreaterEqual(len(lists), 2)  # more than one page: continuation tokens
        # A pattern: only the prefix's own level, only matching names.
        p, out = self.run_dir("s3://data/many/*.txt")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual(self.tree(out), {k: v for k, v in want.items() if k.endswith(".txt")})

    def test_prefix_needs_dir_and_matches(self):
        p, _ = self.run_ctl("s3://data/many/")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("-d DIR", p.stderr)
        p, out = self.run_dir("s3://data/nothing-here/")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(self.tree(out), {})
        p, out = self.run_dir("s3://data/many/", env_extra={"AWS_SECRET_ACCESS_KEY": "x"})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("S3 SignatureDoesNotMatch", p.stderr)

    def test_prefix_refuses_keys_outside_the_directory(self):
        self.put("/data/ev/good.bin", b"good")
        bad = ["ev/a//b.bin", "ev/x/../../evil.bin", "ev/./c.bin", "ev/dirmarker/"]
        with self.front.lock:
            self.front.extra_keys = bad
        try:
            p, out = self.run_dir("s3://data/ev/")
        finally:
            with self.front.lock:
                self.front.extra_keys = []
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.tree(out), {"good.bin": b"good"}, p.stderr)
        self.assertIn("refused key 'ev/a//b.bin'", p.stderr)
        self.assertIn("refused key 'ev/x/../../evil.bin'", p.stderr)
        self.assertIn("refused key 'ev/./c.bin'", p.stderr)
        self.assertNotIn("dirmarker", p.stderr)  # a directory marker is skipped quietly
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(out), "evil.bin")))

    def test_prefix_through_daemon(self):
        d, sock = self.start_daemon()
        for i in range(5):
            self.put("/data/few/f%d.bin" % i, b"few %d" % i)
        p, out = self.run_dir("s3://data/few/", mode=("--socket", sock, "--no-autostart"))
        self.assertEqual(p.returncode, 0, p.stderr + d.log())
        self.assertEqual(self.tree(out), {"f%d.bin" % i: b"few %d" % i for i in range(5)})


if __name__ == "__main__":
    unittest.main(verbosity=2)
