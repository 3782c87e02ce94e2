#!/usr/bin/python3
"""Engine integration tests: the real library (through engine_cases, a C
program linking it) against a real nginx and the fault-injecting origin,
both started and stopped by these tests.

Every case asserts the delivered file's sha256 or the exact error code, and
where it matters the origin's own byte counts (a retried range continues
where it stopped: the origin never sends a byte twice). Every "ok" case also
checks, in C, that progress never went back and that the completed ranges
tile the file exactly, unless the test says the download may start over.

Connection limits are checked from the origin's log: a GET is in flight
from its "request" event to its response's "last_send_t", an interval that
lies inside the engine's own view of the transfer, so the origin can never
count more requests in flight than the engine had.
"""
import hashlib
import http.client
import math
import os
import shutil
import subprocess
import tempfile
import unittest

from origins import FaultOrigin, NginxOrigin, make_file, sha256_file

CASES = os.environ["RV_ENGINE_CASES"]
MiB = 1 << 20


def run_case(*args, env=None, user=None, timeout=120):
    cmd = [CASES] + [str(a) for a in args]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
               "--clear-groups", "--"] + cmd
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=full_env)
    return p


def values(stdout, name):
    return [line.split(" ", 1)[1] for line in stdout.splitlines()
            if line.startswith(name + " ")]


# -- requests in flight, from the origin's log ------------------------------

def request_spans(events, keys):
    """[start, end) of every GET for the case keys `keys`: from its request
    event to its response's last_send_t (or to its connection's close, or
    forever, when no response was logged). A connection serves one request
    at a time, so the next response or close on it ends the open one."""
    open_by_conn, spans = {}, []
    for ev in events:
        conn = ev.get("conn")
        if ev["event"] == "request":
            if ev["key"] in keys and ev["method"] == "GET":
                open_by_conn[conn] = ev["t"]
        elif conn in open_by_conn:
            end = ev["last_send_t"] if ev["event"] == "response" else ev["t"]
            spans.append((open_by_conn.pop(conn), end))
    return spans + [(t, math.inf) for t in open_by_conn.values()]


def in_flight_at(spans, t):
    return sum(1 for start, end in spans if start <= t < end)


def peak_in_flight(spans, since=-math.inf, until=math.inf):
    """The most requests in flight at any moment of [since, until). The
    count only rises when a request starts, so the peak is at `since` or
    at a start inside the interval."""
    points = [since] + [start for start, _ in spans if since < start < until]
    return max(in_flight_at(spans, t) for t in points)


class EngineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-engine-www-")
        os.chmod(cls.root, 0o755)
        sizes = {"empty.bin": 0, "one.bin": 1, "small.bin": 65536,
                 "mid.bin": 5 * MiB + 12345, "big.bin": 40 * MiB + 7}
        cls.sha = {}
        for i, (name, size) in enumerate(sizes.items()):
            path = os.path.join(cls.root, name)
            make_file(path, size, seed=i + 1)
            os.chmod(path, 0o644)
            cls.sha[name] = sha256_file(path)
        # The "changed" version fault_origin serves: every byte XOR 0xFF.
        with open(os.path.join(cls.root, "mid.bin"), "rb") as f:
            data = f.read()
        import hashlib
        cls.sha_mid_changed = hashlib.sha256(
            bytes(b ^ 0xFF for b in data)).hexdigest()
        cls.nginx = NginxOrigin(cls.root).start()
        cls.fault = FaultOrigin(cls.root).start()

    @classmethod
    def tearDownClass(cls):
        cls.fault.stop()
        cls.nginx.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-engine-out-")
        self.dest = os.path.join(self.out, "file")

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def ok(self, url, name, may_restart=False, env=None):
        """Download url, expect the file `name`. may_restart: the download
        may start over (object changed, ranges dropped, a rangeless stream
        retried), so the "progress only grows" and "completed ranges tile
        the file" checks of the ok case are off."""
        env = dict(env or {})
        if may_restart:
            env["RV_TEST_MAY_RESTART"] = "1"
        p = run_case("ok", url, self.dest, self.sha[name], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha[name])
        return p

    def error(self, url, code, sha=None, **kw):
        args = ["error", url, self.dest, code] + ([sha] if sha else [])
        p = run_case(*args, **kw)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertFalse(os.path.exists(self.dest))
        return values(p.stdout, "DETAIL")[0]

    def ended_responses(self, url):
        """Response events for url's case key once every request the origin
        saw for it has ended (waits on the origin; no sleeping)."""
        key = url.split(str(self.fault.port), 1)[1]
        requests = [ev for ev in self.fault.log()
                    if ev.get("key") == key and ev["event"] == "request"]
        self.assertTrue(self.fault.wait(key, len(requests)))
        return [ev for ev in self.fault.log()
                if ev.get("key") == key and ev["event"] == "response"]

    def key_stats(self, url):
        key = url.split(str(self.fault.port), 1)[1]
        return self.fault.stats()["per_key"].get(key, {})

    def key(self, url):
        """The fault origin's case key of url: path?query as requested."""
        return url.split(str(self.fault.port), 1)[1]

    def settled_log(self, *urls):
        """The origin's log once every request it saw for these URLs has
        its response logged (waits on the origin; no sleeping)."""
        events = self.fault.log()
        for url in urls:
            key = self.key(url)
            n = sum(1 for ev in events
                    if ev.get("key") == key and ev["event"] == "request")
            self.assertTrue(self.fault.wait(key, n))
        return self.fault.log()

    def served_etag(self, name):
        """The ETag the fault origin serves for `name` (a HEAD under its own
        case key, so no test's counters move)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.fault.port,
                                          timeout=10)
        try:
            conn.request("HEAD", self.key(self.fault.url(name, case="etag")))
            resp = conn.getresponse()
            resp.read()
            return resp.getheader("ETag")
        finally:
            conn.close()

    def spans_of(self, run_args, urls, env):
        """Run an engine case that must succeed; return the in-flight spans
        of its GETs to `urls` (see request_spans)."""
        p = run_case(*run_args, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        events = self.settled_log(*urls)
        return request_spans(events, {self.key(u) for u in urls})

    # -- a real nginx ---------------------------------------------------

    def test_nginx_sizes(self):
        for name in ("empty.bin", "one.bin", "small.bin", "mid.bin",
                     "big.bin"):
            with self.subTest(name=name):
                self.ok(self.nginx.url(name), name)

    def test_nginx_many_concurrent(self):
        names = ["small.bin", "mid.bin", "one.bin", "empty.bin",
                 "big.bin"] * 6
        args = ["many", self.out]
        for n in names:
            args += [self.nginx.url(n), self.sha[n]]
        p = run_case(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        for i, n in enumerate(names):
            self.assertEqual(
                sha256_file(os.path.join(self.out, "f%04d" % i)), self.sha[n])

    def test_same_object_shared_in_one_run(self):
        """Three requests for one object in one engine (with durable state):
        the origin sends its body once, every destination gets it."""
        url = self.fault.url("big.bin", case="shared")
        args = ["many", self.out]
        for _ in range(3):
            args += [url, self.sha["big.bin"]]
        state = os.path.join(self.out, "state")
        p = run_case(*args, env={"RV_TEST_STATE_DIR": state})
        self.assertEqual(p.returncode, 0, p.stderr)
        for i in range(3):
            self.assertEqual(sha256_file(os.path.join(self.out, "f%04d" % i)),
                             self.sha["big.bin"])
        self.assertEqual(self.key_stats(url)["body_bytes"],
                         os.path.getsize(os.path.join(self.root, "big.bin")))

    def test_https(self):
        """https against nginx with a certificate from a CA the engine is
        told to trust; without that CA the download fails with RV_E_TLS
        (verification is never off) and creates nothing."""
        with NginxOrigin(self.root, tls=True) as tls:
            url = tls.url("mid.bin")
            self.assertTrue(url.startswith("https://"))
            self.ok(url, "mid.bin", env={"RV_TEST_CA_FILE": tls.ca_file})
            os.unlink(self.dest)
            detail = self.error(url, "RV_E_TLS")
            self.assertIn(url, detail)

    def test_nginx_missing(self):
        detail = self.error(self.nginx.url("nope.bin"), "RV_E_NOT_FOUND")
        self.assertIn("404", detail)

    def test_sha256_mismatch_delivers_nothing(self):
        detail = self.error(self.nginx.url("mid.bin"),
                            "RV_E_CHECKSUM_MISMATCH", sha="0" * 64)
        self.assertIn(self.sha["mid.bin"], detail)

    def test_idle_wait_wakes_for_the_commit(self):
        """With durable state, a failed object's row is removed in the open
        transaction. Nothing is live afterwards, yet the engine's next wait
        ends when that transaction is due (200 ms), not at the caller's
        20 s timeout: a daemon's long idle waits delay no commit."""
        env = {"RV_TEST_STATE_DIR": os.path.join(self.out, "state"),
               "RV_TEST_IDLE_WAIT_MS": "20000"}
        p = run_case("error", self.nginx.url("mid.bin"), self.dest, "RV_E_CHECKSUM_MISMATCH",
                     "0" * 64, env=env)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.assertFalse(os.path.exists(self.dest))
        self.assertLess(float(values(p.stdout, "IDLE_WAIT")[0]), 5.0)

    def test_existing_destination_replaced_atomically(self):
        with open(self.dest, "wb") as f:
            f.write(b"old contents")
        self.ok(self.nginx.url("mid.bin"), "mid.bin")

    def test_failed_download_keeps_existing_destination(self):
        with open(self.dest, "wb") as f:
            f.write(b"old contents")
        p = run_case("error", self.nginx.url("nope.bin"), self.dest,
                     "RV_E_NOT_FOUND")
        # The case checks the final name is absent; here it must survive.
        self.assertNotEqual(p.returncode, 0)
        with open(self.dest, "rb") as f:
            self.assertEqual(f.read(), b"old contents")

    # -- transient failures: retried, continued, right file --------------

    def test_503_retried(self):
        p = run_case("retries", self.fault.url("mid.bin", status=503, times=3,
                                               case="t503"),
                     self.dest, self.sha["mid.bin"], 3, 503)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha["mid.bin"])
        # No Retry-After: full jitter within [0, min(200, 20 * 2^(n-1))] ms
        # (the engine's defaults).
        waits = [int(w) for w in values(p.stdout, "RETRY_WAIT")]
        self.assertEqual(len(waits), 3)
        for i, wait in enumerate(waits):
            self.assertLessEqual(wait, min(200, 20 << i), waits)

    def retry_gaps(self, url):
        """For each answer of url that was not a 206/200: seconds from the
        moment the origin sent its last byte to the next request. The
        client received the answer after that moment and sent the next
        request before the origin logged it, so each gap is at least the
        client's own wait (load only makes it longer)."""
        key = self.key(url)
        events = [ev for ev in self.settled_log(url) if ev.get("key") == key]
        gaps = []
        for i, ev in enumerate(events):
            if ev["event"] == "response" and ev["status"] not in (200, 206):
                nxt = [e for e in events[i + 1:] if e["event"] == "request"]
                gaps.append(nxt[0]["t"] - ev["last_send_t"])
        return gaps

    def test_429_retry_after_honoured(self):
        """Retry-After: 1 is reported as a 1 s wait, and waited: the next
        request reaches the origin at least ~1 s after the 429."""
        url = self.fault.url("small.bin", status=429, times=2, retry_after=1,
                             case="t429")
        p = run_case("retries", url, self.dest, self.sha["small.bin"], 2, 429)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(values(p.stdout, "RETRY_WAIT"), ["1000", "1000"])
        gaps = self.retry_gaps(url)
        self.assertEqual(len(gaps), 2)
        for gap in gaps:
            self.assertGreaterEqual(gap, 0.9, gaps)

    def test_retry_after_date_honoured(self):
        """Retry-After as an HTTP-date about 2 s ahead (whole seconds, so
        1 to 2 s from when the engine reads it): the wait is the time to
        that date, and it is waited."""
        url = self.fault.url("small.bin", status=503, times=1, retry_after="date",
                             case="t503date")
        p = run_case("retries", url, self.dest, self.sha["small.bin"], 1, 503)
        self.assertEqual(p.returncode, 0, p.stderr)
        waits = [int(w) for w in values(p.stdout, "RETRY_WAIT")]
        self.assertEqual(len(waits), 1)
        # Not 0: that would take a stall of over a second between the
        # origin's send and the engine's read, on loopback.
        self.assertIn(waits[0], (1000, 2000))
        gaps = self.retry_gaps(url)
        self.assertEqual(len(gaps), 1)
        self.assertGreaterEqual(gaps[0], waits[0] / 1000 - 0.1, (gaps, waits))

    def test_retry_after_beyond_cap_fails_resumably(self):
        url = self.fault.url("small.bin", status=503, retry_after=100000,
                             case="tcap")
        detail = self.error(url, "RV_E_RETRY_AFTER_TOO_LONG")
        self.assertIn("100000 s", detail)
        self.assertIn("again later", detail)

    def test_500_exhausts_attempts(self):
        url = self.fault.url("small.bin", status=500, case="t500")
        detail = self.error(url, "RV_E_SERVER_ERROR")
        self.assertIn("gave up after 8 attempts", detail)
        self.assertEqual(self.key_stats(url)["requests"], 8)

    def _continued(self, name, **faults):
        url = self.fault.url(name, **faults)
        self.ok(url, name)
        # Every byte crossed the wire once: ranges resume where they broke.
        self.assertEqual(self.key_stats(url)["body_bytes"],
                         os.path.getsize(os.path.join(self.root, name)))

    def test_reset_mid_body_continues(self):
        self._continued("big.bin", reset_after=300000, times=4, case="rst")

    def test_reset_after_first_range_continues(self):
        self._continued("big.bin", reset_after=100000, after=1, times=3,
                        case="rst2")

    def test_truncated_body_continues(self):
        self._continued("mid.bin", truncate_after=200000, times=3,
                        case="trunc")

    def test_stall_retried(self):
        url = self.fault.url("mid.bin", stall_after=100000, stall_ms=4000,
                             times=1, case="stall")
        self.ok(url, "mid.bin", env={"RV_TEST_STALL_MS": "1000"})
        self.assertEqual(self.key_stats(url)["body_bytes"],
                         os.path.getsize(os.path.join(self.root, "mid.bin")))

    def test_answer_acknowledged_at_once(self):
        """A request sent right after the last answer puts the socket in
        Linux's ping-pong mode, where ACKs wait up to 40 ms for data to
        ride on. An origin that holds an answer's last bytes until the first
        are acknowledged (Nagle) then stalls for 40 ms on every answer of a
        kept-alive connection. The engine acknowledges an answer's first
        bytes at once: the origin waits for no ACK longer than a moment."""
        # The first answer, whole, shows the engine's kernel full-sized
        # segments; the later ones send a smaller first segment, which a
        # socket in ping-pong mode does not acknowledge at once.
        urls = [self.fault.url("small.bin", case="ack0")]
        urls += [self.fault.url("small.bin", ack_wait_after=30000,
                                case="ack%d" % i) for i in range(1, 8)]
        args = ["many", self.out]
        for url in urls:
            args += [url, self.sha["small.bin"]]
        p = run_case(*args, env={"RV_TEST_MAX_CONNECTIONS": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        keys = {self.key(u) for u in urls}
        waits = [ev["ack_wait_ms"] for ev in self.settled_log(*urls)
                 if ev.get("key") in keys and ev["event"] == "response"
                 and "ack_wait_ms" in ev]
        self.assertEqual(len(waits), 7)
        # Delayed, each waits 40 ms or more (the kernel's least delayed-ACK
        # timeout). Acknowledged at once, they wait about nothing; on a
        # loaded machine the engine's thread may come late to some, so the
        # check is that some did not wait for a delayed ACK.
        self.assertLess(min(waits), 30.0, waits)

    def test_connect_refused(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        self.error("http://127.0.0.1:%d/x.bin" % port, "RV_E_CONNECT")

    # -- errors that end quickly (issue 21) --------------------------------

    def error_run(self, url, code, env=None):
        """error() that also returns the retries made and the seconds from
        the request to its failure."""
        args = ["error", url, self.dest, code]
        p = run_case(*args, env=env)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        return (values(p.stdout, "DETAIL")[0], int(values(p.stdout, "RETRIES")[0]),
                float(values(p.stdout, "ELAPSED")[0]))

    def test_unresolvable_host_fails_at_once(self):
        """A name that does not resolve (.invalid never does, RFC 6761) is
        permanent: no retry, whatever max_attempts allows."""
        detail, retries, _ = self.error_run("http://no-such-host.invalid/x.bin",
                                            "RV_E_RESOLVE_HOST",
                                            env={"RV_TEST_MAX_ATTEMPTS": "50"})
        self.assertEqual(retries, 0, detail)
        self.assertIn("no-such-host.invalid", detail)

    def test_client_errors_fail_at_once(self):
        """404, 403, 401 and other 4xx are the origin's final word: one
        request each, no retry."""
        for status, code in ((404, "RV_E_NOT_FOUND"), (403, "RV_E_ACCESS_DENIED"),
                             (401, "RV_E_ACCESS_DENIED"), (400, "RV_E_HTTP_STATUS")):
            with self.subTest(status=status):
                url = self.fault.url("small.bin", status=status, case="perm%d" % status)
                detail, retries, _ = self.error_run(url, code,
                                                    env={"RV_TEST_MAX_ATTEMPTS": "50"})
                self.assertEqual(retries, 0, detail)
                self.assertIn(str(status), detail)
                self.assertEqual(len(self.ended_responses(url)), 1)

    def test_425_retried(self):
        """425 Too Early asks for the same request later: retried like 408."""
        url = self.fault.url("small.bin", status=425, times=2, case="too-early")
        p = run_case("retries", url, self.dest, self.sha["small.bin"], 2, 425)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)

    def test_connect_refused_bounded_in_time(self):
        """A refused connection is retried, but for connect_retry_ms from
        the first refusal, not for max_attempts (here so many that the
        attempts alone would take minutes); the detail names the address."""
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        detail, retries, elapsed = self.error_run(
            "http://127.0.0.1:%d/x.bin" % port, "RV_E_CONNECT",
            env={"RV_TEST_MAX_ATTEMPTS": "1000", "RV_TEST_CONNECT_RETRY_MS": "500"})
        self.assertGreater(retries, 0, detail)
        self.assertLess(retries, 999, detail)
        self.assertIn("127.0.0.1", detail)
        self.assertIn(str(port), detail)
        self.assertIn("still refused", detail)
        # Generous: the schedule is 0.5 s; 1000 attempts would take minutes.
        self.assertLess(elapsed, 20.0, detail)

    def test_request_ca_adds_or_replaces(self):
        """A request's CA certificates add to the engine's store (here
        RV_TEST_CA_FILE stands in for the system's): origins signed by
        either verify. With ca_only they replace it: the store's origin
        fails with RV_E_TLS, the request's own still verifies."""
        with NginxOrigin(self.root, tls=True) as a, NginxOrigin(self.root, tls=True) as b:
            base = {"RV_TEST_CA_FILE": a.ca_file, "RV_TEST_CA_PEM": b.ca_file}
            self.ok(a.url("small.bin"), "small.bin", env=base)
            os.unlink(self.dest)
            self.ok(b.url("small.bin"), "small.bin", env=base)
            os.unlink(self.dest)
            only = dict(base, RV_TEST_CA_ONLY="1")
            self.ok(b.url("small.bin"), "small.bin", env=only)
            os.unlink(self.dest)
            detail, retries, _ = self.error_run(a.url("small.bin"), "RV_E_TLS", env=only)
            self.assertEqual(retries, 0, detail)
            # Without the request's CA, b's certificate is not trusted.
            self.error(b.url("small.bin"), "RV_E_TLS", env={"RV_TEST_CA_FILE": a.ca_file})

    def test_request_ca_keeps_cache_apart(self):
        """With durable state, bytes fetched under a request's own CA are
        not a cache hit for a request without it, even with revalidation
        off (where a hit would be delivered without asking the origin):
        that request must verify the origin itself, and here cannot."""
        state = os.path.join(self.out, "state")
        env = {"RV_TEST_STATE_DIR": state, "RV_TEST_NO_REVALIDATE": "1"}
        with NginxOrigin(self.root, tls=True) as b:
            url = b.url("small.bin")
            self.ok(url, "small.bin", env=dict(env, RV_TEST_CA_PEM=b.ca_file))
            os.unlink(self.dest)
            self.error(url, "RV_E_TLS", env=env)

    def test_insecure_skips_verification_and_keeps_cache_apart(self):
        """insecure: an origin no store trusts still downloads; its bytes
        are not a cache hit for a verifying request (revalidation off)."""
        state = os.path.join(self.out, "state")
        env = {"RV_TEST_STATE_DIR": state, "RV_TEST_NO_REVALIDATE": "1"}
        with NginxOrigin(self.root, tls=True) as b:
            url = b.url("small.bin")
            self.ok(url, "small.bin", env=dict(env, RV_TEST_INSECURE="1"))
            os.unlink(self.dest)
            self.error(url, "RV_E_TLS", env=env)

    # -- connection limits and host backoff -------------------------------

    def test_throttle_halves_host_limit(self):
        """AIMD: a burst of 503s halves the host's limit (16 -> 8), and it
        stays there until a range completes again.

        Every request waits 600 ms before its answer (latency_ms), so the
        probe and the first 15 ranges are all in flight when the 503s go
        out; bodies are paced (rate) so the ranges that were not throttled
        are still running, and the throttled ranges' retries start (after
        at most 20 ms of backoff) well before any range completes."""
        throttled = 12           # of the 15 ranges started with the probe
        url = self.fault.url("big.bin", status=503, after=1, times=throttled,
                             latency_ms=600, rate=512 * 1024, case="aimd")
        self.ok(url, "big.bin")
        key = self.key(url)
        events = self.settled_log(url)
        spans = request_spans(events, {key})
        responses = [ev for ev in events
                     if ev["event"] == "response" and ev["key"] == key]
        burst = [ev["last_send_t"] for ev in responses if ev["status"] == 503]
        self.assertEqual(len(burst), throttled)
        after_burst = max(burst)
        next_done = min(ev["last_send_t"] for ev in responses
                        if ev["status"] == 206 and ev["outcome"] == "complete"
                        and ev["last_send_t"] > after_burst)
        # Before the burst the engine ran (about) 16 at once.
        self.assertGreaterEqual(peak_in_flight(spans, until=min(burst)), 12)
        # After it, never more than half, until a range completes...
        self.assertLessEqual(peak_in_flight(spans, after_burst, next_done), 8)
        # ...though the throttled ranges' retries (requests begun after the
        # first 503) were running in that window: the engine was choosing
        # how many to start, and without the halving it would have started
        # all 12 and been back at 16.
        retries_in_window = [
            (start, end) for start, end in spans
            if min(burst) < start < next_done and end > after_burst]
        self.assertGreaterEqual(len(retries_in_window), 1)

    def test_per_object_limit(self):
        """max_connections_per_object = 4: four at once, never five."""
        url = self.fault.url("big.bin", rate=4 * MiB, case="perobj")
        spans = self.spans_of(
            ["ok", url, self.dest, self.sha["big.bin"]], [url],
            {"RV_TEST_MAX_CONNECTIONS_PER_OBJECT": "4"})
        self.assertEqual(peak_in_flight(spans), 4)

    def _two_objects_limited(self, case, env, limit):
        """Two objects on one host, each wanting 16 connections: together
        they reach `limit` and never exceed it."""
        urls = [self.fault.url("mid.bin", rate=MiB, case="%s%d" % (case, i))
                for i in range(2)]
        args = ["many", self.out]
        for url in urls:
            args += [url, self.sha["mid.bin"]]
        spans = self.spans_of(args, urls, env)
        self.assertEqual(peak_in_flight(spans), limit)

    def test_global_limit(self):
        self._two_objects_limited("glob", {"RV_TEST_MAX_CONNECTIONS": "6"}, 6)

    def test_per_host_limit(self):
        self._two_objects_limited(
            "host", {"RV_TEST_MAX_CONNECTIONS_PER_HOST": "5"}, 5)

    def test_per_group_limit(self):
        """max_connections_per_group = 4 of 8: groups 1 and 3 (three objects
        each, on one host) fill the engine, four connections each, never
        five; then group 2 comes, and the connections its elders' transfers
        free go to it first: it starts while both still start ranges of
        their own (served in submission order, they would win back every
        connection they free until they had no range left to start)."""
        cases = {1: [], 3: [], 2: []}
        args = ["groups", self.out, 4, 8, 6]
        for group in (1, 1, 1, 3, 3, 3, 2):
            url = self.fault.url("mid.bin", rate=2 * MiB,
                                 case="grp%d-%d" % (group, len(cases[group])))
            cases[group].append(url)
            args += [group, url, self.sha["mid.bin"]]
        env = {"RV_TEST_MAX_CONNECTIONS": "8",
               "RV_TEST_MAX_CONNECTIONS_PER_HOST": "8"}
        p = run_case(*args, env=env)
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        later = float(values(p.stdout, "LATER_ADDED")[0])
        events = self.settled_log(*(u for urls in cases.values() for u in urls))
        spans = {g: request_spans(events, {self.key(u) for u in urls})
                 for g, urls in cases.items()}
        every = [s for g in spans for s in spans[g]]
        self.assertLessEqual(peak_in_flight(every), 8)
        self.assertEqual(peak_in_flight(spans[1]), 4)
        self.assertEqual(peak_in_flight(spans[3]), 4)
        self.assertGreaterEqual(peak_in_flight(spans[2]), 2)
        self.assertLessEqual(peak_in_flight(spans[2]), 4)
        first2 = min(start for start, _ in spans[2])
        self.assertGreater(first2, later)
        for g in (1, 3):
            self.assertLess(first2, max(start for start, _ in spans[g]),
                            "group 2 waited until group %d had no range "
                            "left to start" % g)

    # -- what the origin is asked ----------------------------------------

    def test_request_headers_and_if_range(self):
        """The request's own header goes out on every request, the probe
        and every range; every range after the probe carries If-Range with
        the ETag the probe got (never mix versions), the probe none."""
        url = self.fault.url("big.bin", case="hdr")
        p = self.ok(url, "big.bin", env={"RV_TEST_HEADER": "X-Trace: abc"})
        key = self.key(url)
        requests = [ev for ev in self.fault.log()
                    if ev["event"] == "request" and ev["key"] == key]
        # A clean run: one request per completed range, several ranges.
        self.assertEqual(len(requests), int(values(p.stdout, "CHUNKS")[0]))
        self.assertGreater(len(requests), 2)
        for ev in requests:
            self.assertEqual(ev["method"], "GET")
            self.assertEqual(ev["headers"].get("x-trace"), "abc")
        probe, ranges = requests[0], requests[1:]
        self.assertEqual(probe["range"], "bytes=0-%d" % (MiB - 1))
        self.assertNotIn("if-range", probe["headers"])
        etag = self.served_etag("big.bin")
        self.assertTrue(etag.startswith('"'))
        for ev in ranges:
            self.assertEqual(ev["headers"].get("if-range"), etag)

    def test_long_etag_sent_whole(self):
        """S3 and CDNs send long ETags: a 4 KiB one goes out in If-Range
        exactly as the origin sent it (a cut value would be one the origin
        never sent: it answers 200 and every range is refetched whole), on
        every range of a first run and of one resumed from durable state;
        and in If-None-Match when the cached copy is revalidated."""
        state = os.path.join(self.out, "state")
        url = self.fault.url("big.bin", etag_len=4096, status=503, retry_after=100000,
                             after=3, times=1, rate=16 * MiB, case="longetag")
        key = self.key(url)
        size = os.path.getsize(os.path.join(self.root, "big.bin"))
        conn = http.client.HTTPConnection("127.0.0.1", self.fault.port, timeout=10)
        try:
            conn.request("HEAD", self.key(self.fault.url("big.bin", etag_len=4096,
                                                         case="etag")))
            resp = conn.getresponse()
            resp.read()
            etag = resp.getheader("ETag")
        finally:
            conn.close()
        self.assertEqual(len(etag), 4096)
        digest = hashlib.sha256(etag.encode()).hexdigest()
        # A first run with state, one range at a time, that the origin
        # stops at its fourth GET (a 503 asking for a wait beyond the cap:
        # a failure that keeps the durable state), paced so that its 33 MiB
        # take about 2 s and syncs (every second) have made some of them
        # durable; then the same download resumed from its durable marks;
        # then a cache hit, revalidated.
        env = {"RV_TEST_STATE_DIR": state, "RV_TEST_MAX_CONNECTIONS_PER_OBJECT": "1"}
        self.error(url, "RV_E_RETRY_AFTER_TOO_LONG", env=env)
        first_run = self.key_stats(url)["body_bytes"]
        self.ok(url, "big.bin", env=dict(env, RV_TEST_RESUMED="1"))
        resumed = self.key_stats(url)["body_bytes"] - first_run
        self.assertLess(resumed, size)  # it resumed: the durable bytes stayed
        os.unlink(self.dest)
        self.ok(url, "big.bin", env=dict(env, RV_TEST_RESUMED="1"))
        events = self.settled_log(url)
        requests = [ev for ev in events
                    if ev["event"] == "request" and ev["key"] == key]
        ranged = [ev for ev in requests if "if_range_len" in ev]
        # Every GET but the first run's probe and the cache hit's
        # revalidation is a range carrying If-Range, the ETag whole.
        self.assertGreater(len(ranged), 4)
        self.assertEqual(len(ranged), len(requests) - 2)
        for ev in ranged:
            self.assertEqual((ev["if_range_len"], ev["if_range_sha256"]),
                             (4096, digest))
        # The cache hit's revalidation sent the whole ETag in If-None-Match.
        revalidations = [ev for ev in requests if "if_none_match_len" in ev]
        self.assertEqual(len(revalidations), 1)
        self.assertEqual((revalidations[0]["if_none_match_len"],
                          revalidations[0]["if_none_match_sha256"]), (4096, digest))
        # Every range was answered 206 (none refetched whole), but the one
        # the origin refused; the revalidation found the copy current.
        statuses = [ev["status"] for ev in events
                    if ev["event"] == "response" and ev["key"] == key]
        self.assertEqual(sorted(set(statuses)), [206, 503])
        self.assertEqual(statuses.count(503), 1)
        self.assertLess(self.key_stats(url)["body_bytes"], 2 * size)

    # -- hooks -------------------------------------------------------------

    def test_completed_ranges_tile_with_retries(self):
        """Ranges cut mid-body and continued are each reported done once,
        with their whole extent, and progress never drops back when they
        continue: the ok case checks both. Here, in addition, every GET
        either completed a range or was retried, and every byte crossed
        the wire once. Paced (4 MiB/s) so the progress hook has reported
        the first 256 KiB of a range before its connection is reset (the
        case digests, so its ranges are small: stage.c)."""
        url = self.fault.url("big.bin", reset_after=256 * 1024, after=1, times=5,
                             rate=4 * MiB, case="tile")
        p = self.ok(url, "big.bin")
        chunks = int(values(p.stdout, "CHUNKS")[0])
        retries = int(values(p.stdout, "RETRIES")[0])
        self.assertGreater(chunks, 2)
        self.assertEqual(retries, 5)
        stats = self.key_stats(url)
        self.assertEqual(stats["get_requests"], chunks + retries)
        self.assertEqual(stats["body_bytes"],
                         os.path.getsize(os.path.join(self.root, "big.bin")))

    # -- origins that do not do ranges, or lie ---------------------------

    def test_no_ranges_single_stream(self):
        self.ok(self.fault.url("mid.bin", noranges=1, case="nr"), "mid.bin")

    def test_ranges_ignored_mid_download(self):
        # The switch to one stream re-fetches from byte 0.
        self.ok(self.fault.url("big.bin", noranges=1, after=1, case="nr2"),
                "big.bin", may_restart=True)

    def test_no_ranges_with_reset_restarts_stream(self):
        self.ok(self.fault.url("mid.bin", noranges=1, reset_after=1000000,
                               times=2, case="nr3"), "mid.bin",
                may_restart=True)

    def test_wrong_content_range_first(self):
        detail = self.error(self.fault.url("mid.bin", bad_range=1, case="br"),
                            "RV_E_PROTOCOL")
        self.assertIn("Content-Range 'bytes 1-", detail)

    def test_wrong_content_range_later(self):
        detail = self.error(self.fault.url("big.bin", bad_range=1, after=1,
                                           case="br2"), "RV_E_PROTOCOL")
        self.assertIn("origin answered with Content-Range", detail)

    def test_lying_total(self):
        self.error(self.fault.url("mid.bin", lie_total=7, case="lt"),
                   "RV_E_PROTOCOL")

    def test_lying_content_length(self):
        """No ranges, and a Content-Length larger than the body: every
        attempt ends short, the stream restarts from byte 0, and after
        max_attempts (8) the object fails with RV_E_TRUNCATED; nothing is
        left behind (the error case checks the destination and temp
        files)."""
        size = os.path.getsize(os.path.join(self.root, "small.bin"))
        url = self.fault.url("small.bin", noranges=1,
                             claim_length=size + 100000, case="claimlen")
        try:   # 8 attempts, <= 200 ms apart: a few seconds at most
            detail = self.error(url, "RV_E_TRUNCATED", timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("still retrying after 30 s, %d GETs so far"
                      % self.key_stats(url)["get_requests"])
        self.assertIn("gave up after 8 attempts", detail)
        self.assertEqual(self.key_stats(url)["get_requests"], 8)
        self.assertEqual(os.listdir(self.out), [])

    def test_huge_object(self):
        detail = self.error(self.fault.url("x.bin", huge=1, case="huge"),
                            "RV_E_TOO_LARGE")
        self.assertIn("4611686018427387904", detail)

    def test_head_refused_does_not_matter(self):
        self.ok(self.fault.url("mid.bin", head=405, case="head"), "mid.bin")

    def test_redirects(self):
        self.ok(self.fault.url("mid.bin", redirect=3, case="redir"),
                "mid.bin")
        os.unlink(self.dest)
        self.error(self.fault.url("mid.bin", redirect=30, case="redir2"),
                   "RV_E_TOO_MANY_REDIRECTS")

    def test_status_permanent(self):
        self.error(self.fault.url("mid.bin", status=403, case="s403"),
                   "RV_E_ACCESS_DENIED")
        self.error(self.fault.url("mid.bin", status=404, after=1,
                                  case="s404"), "RV_E_NOT_FOUND")

    # -- never mix versions ----------------------------------------------

    def test_change_mid_download_restarts_with_new_version(self):
        url = self.fault.url("mid.bin", change_after=2, case="chg")
        p = run_case("ok", url, self.dest, self.sha_mid_changed,
                     env={"RV_TEST_MAY_RESTART": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha_mid_changed)

    def test_change_seen_only_through_if_range(self):
        """An origin whose 206 answers to ranges after the probe carry no
        validators (some CDNs): a range of the changed object would look
        like any other, and only
        If-Range makes the origin answer 200 with the new version instead.
        The download starts over and delivers the new version whole,
        never old bytes mixed with new ones."""
        url = self.fault.url("mid.bin", change_after=2, plain_206=1, after=1,
                             case="chg206")
        p = run_case("ok", url, self.dest, self.sha_mid_changed,
                     env={"RV_TEST_MAY_RESTART": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha_mid_changed)
        # The origin saw the change through If-Range: a ranged GET answered
        # 200 with the new version.
        key = self.key(url)
        events = self.settled_log(url)
        self.assertIn(200, [ev["status"] for ev in events
                            if ev["event"] == "response" and ev["key"] == key])

    def test_change_mid_download_fail_policy_stops_fast(self):
        # Rate-limited so the other ranges are mid-body when one range sees
        # the new version; all of them must stop at once.
        url = self.fault.url("big.bin", change_after=4, rate=2 * MiB,
                             case="chgfail")
        p = run_case("fail_fast", url, self.dest)
        self.assertEqual(p.returncode, 0, p.stderr)
        failed_at = float(values(p.stdout, "FAILED_AT")[0])
        responses = self.ended_responses(url)
        self.assertGreaterEqual(len(responses), 4)
        # The origin logs a response when it stops sending. The ranges in
        # flight (16 MiB at 2 MiB/s: 8 s each) were cut, none ran to its
        # end, and they ended within 2 s of the failure: far less than
        # they would have run, with room for a loaded machine's delays.
        late = [ev for ev in responses if ev["t"] > failed_at]
        self.assertTrue(late)
        for ev in late:
            self.assertNotEqual(ev["outcome"], "complete", ev)
            self.assertLessEqual(ev["t"], failed_at + 2.0)
        self.assertFalse(os.path.exists(self.dest))

    def test_cancel_stops_all_transfers(self):
        url = self.fault.url("big.bin", rate=2 * MiB, case="cancel")
        p = run_case("cancel", url, self.dest)
        self.assertEqual(p.returncode, 0, p.stderr)
        cancel_at = float(values(p.stdout, "CANCEL_AT")[0])
        ends = self.ended_responses(url)
        self.assertGreaterEqual(len(ends), 2)
        # Cut (none ran to its end: 16 MiB at 2 MiB/s takes 8 s), and
        # within 2 s of the cancel: far less than they would have run,
        # with room for a loaded machine's delays.
        for ev in ends:
            self.assertNotEqual(ev.get("outcome"), "complete")
            self.assertLessEqual(ev["t"], cancel_at + 2.0)

    # -- file:// ---------------------------------------------------------

    def test_file_source(self):
        for name in ("empty.bin", "mid.bin", "big.bin"):
            with self.subTest(name=name):
                self.ok("file://" + os.path.join(self.root, name), name)

    def test_file_source_errors(self):
        self.error("file://" + os.path.join(self.root, "nope"),
                   "RV_E_NOT_FOUND")
        self.error("file://" + self.root, "RV_E_INVALID_ARGUMENT")

    # -- the local side --------------------------------------------------

    def test_bad_input_creates_nothing(self):
        p = run_case("bad_input", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_descriptor_table_grown_at_start(self):
        # engine_cases checks FDSize before (64 in a new process) and after
        # the engine starts (1024, or the open-files limit).
        p = run_case("fd_table")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("FDSIZE_AFTER", p.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop to nobody")
    def test_unwritable_destination(self):
        ro = os.path.join(self.out, "ro")
        os.mkdir(ro, 0o555)
        os.chmod(self.out, 0o755)
        p = run_case("error", self.nginx.url("mid.bin"),
                     os.path.join(ro, "f"), "RV_E_DEST_UNWRITABLE",
                     user=65534)
        # add() refuses it up front, before any transfer.
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(values(p.stdout, "ADD_ERROR"), ["RV_E_DEST_UNWRITABLE"])
        self.assertEqual(os.listdir(ro), [])

    @unittest.skipUnless(os.geteuid() == 0, "needs root to mount a tmpfs")
    def test_disk_full(self):
        mnt = os.path.join(self.out, "small")
        os.mkdir(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                        mnt], check=True)
        try:
            p = run_case("error", self.nginx.url("mid.bin"),
                         os.path.join(mnt, "f"), "RV_E_NO_SPACE")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("No space", values(p.stdout, "DETAIL")[0])
            self.assertEqual(os.listdir(mnt), [])
        finally:
            subprocess.run(["umount", mnt], check=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
