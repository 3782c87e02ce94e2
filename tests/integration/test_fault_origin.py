#!/usr/bin/python3
"""Self-tests of the test fixtures: fault_origin.py (every switch) and
origins.py (FaultOrigin, NginxOrigin, make_file, sha256_file).

Run directly (/usr/bin/python3 tests/integration/test_fault_origin.py) or
through ctest (it_fault_origin). Timing assertions are lower bounds with
slack (>= 60% of the ideal) so that a loaded machine cannot make them fail.
"""

import email.utils
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "fixtures"))
from origins import (FaultOrigin, NginxOrigin, make_file,  # noqa: E402
                     sha256_file)

TIMEOUT = 10          # seconds, for every socket operation of these tests
HUGE = 2 ** 62
SMALL = 100_000       # size of small.bin


def invert(data):
    return bytes(b ^ 0xFF for b in data)


class Response:
    """A response read by raw_exchange: status, headers, body, error."""

    def __init__(self, data, error):
        head, sep, self.body = data.partition(b"\r\n\r\n")
        self.complete_head = bool(sep)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1]) if sep else None
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.error = error


class FixtureCase(unittest.TestCase):
    """One FaultOrigin over a temp dir of deterministic files, per class."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="rv-it-fo-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.files = {}
        for name, size, seed in (("small.bin", SMALL, 1),
                                 ("rate.bin", 400 * 1024, 2),
                                 ("chunk.bin", 16 * 1024, 3),
                                 ("one.bin", 1, 4),
                                 ("empty.bin", 0, 5)):
            path = make_file(os.path.join(cls.dir, name), size, seed)
            with open(path, "rb") as f:
                cls.files[name] = f.read()
        cls.data = cls.files["small.bin"]
        cls.fo = FaultOrigin(cls.dir)
        cls.fo.start()
        cls.addClassCleanup(cls.fo.stop)

    def setUp(self):
        self.fo.reset()

    # -- helpers -----------------------------------------------------------

    def target(self, path, **query):
        """Origin-form request target, which is also the case key."""
        parts = urllib.parse.urlsplit(self.fo.url(path, **query))
        return parts.path + ("?" + parts.query if parts.query else "")

    def conn(self):
        c = http.client.HTTPConnection("127.0.0.1", self.fo.port,
                                       timeout=TIMEOUT)
        self.addCleanup(c.close)
        return c

    def request(self, path, method="GET", headers=None, conn=None, **query):
        """One request; returns (status, lowercase headers, body)."""
        c = conn or self.conn()
        c.request(method, self.target(path, **query), headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def raw_exchange(self, request, until=None):
        """Send raw request bytes; read until EOF, an error, or `until`
        bytes. Returns a Response (its .error is the OSError, if any)."""
        s = socket.create_connection(("127.0.0.1", self.fo.port),
                                     timeout=TIMEOUT)
        data = bytearray()
        error = None
        try:
            s.sendall(request)
            while until is None or len(data) < until:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            error = e
        finally:
            s.close()
        return Response(bytes(data), error)

    def raw_get(self, path, extra=b"", **query):
        req = ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
               % self.target(path, **query)).encode() + extra + b"\r\n"
        return self.raw_exchange(req)


class BasicServing(FixtureCase):

    def test_get_and_head(self):
        status, h, body = self.request("/small.bin")
        self.assertEqual(status, 200)
        self.assertEqual(body, self.data)
        self.assertEqual(h["content-length"], str(SMALL))
        self.assertEqual(h["accept-ranges"], "bytes")
        st = os.stat(os.path.join(self.dir, "small.bin"))
        self.assertEqual(h["etag"], '"%x-%x"' % (st.st_size, st.st_mtime_ns))
        self.assertEqual(email.utils.parsedate_to_datetime(
            h["last-modified"]).timestamp(), int(st.st_mtime))
        status, h2, body = self.request("/small.bin", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(h2["content-length"], str(SMALL))
        self.assertEqual(h2["etag"], h["etag"])

    def test_ranges(self):
        d = self.data
        cases = [("bytes=10-99", 10, 99), ("bytes=99990-", 99990, SMALL - 1),
                 ("bytes=-50", SMALL - 50, SMALL - 1),
                 ("bytes=0-%d" % (SMALL + 100), 0, SMALL - 1),
                 ("bytes=-%d" % (SMALL * 2), 0, SMALL - 1)]
        for value, first, last in cases:
            with self.subTest(range=value):
                status, h, body = self.request("/small.bin",
                                               headers={"Range": value})
                self.assertEqual(status, 206)
                self.assertEqual(h["content-range"],
                                 "bytes %d-%d/%d" % (first, last, SMALL))
                self.assertEqual(body, d[first:last + 1])

    def test_unsatisfiable_and_ignored_ranges(self):
        for path, value, total in (("/small.bin", "bytes=%d-" % SMALL, SMALL),
                                   ("/small.bin", "bytes=-0", SMALL),
                                   ("/empty.bin", "bytes=0-", 0),
                                   ("/empty.bin", "bytes=-5", 0)):
            with self.subTest(path=path, range=value):
                status, h, _ = self.request(path, headers={"Range": value})
                self.assertEqual(status, 416)
                self.assertEqual(h["content-range"], "bytes */%d" % total)
        for value in ("bytes=0-1,5-6", "bytes=abc", "bytes=9-3", "items=0-1"):
            with self.subTest(ignored=value):
                status, _, body = self.request("/small.bin",
                                               headers={"Range": value})
                self.assertEqual((status, body), (200, self.data))

    def test_if_range(self):
        _, h, _ = self.request("/small.bin", method="HEAD")
        lm = email.utils.parsedate_to_datetime(h["last-modified"]).timestamp()
        older = email.utils.formatdate(lm - 10, usegmt=True)
        for if_range, expect in ((h["etag"], 206), ('"nope"', 200),
                                 ("W/" + h["etag"], 200),
                                 (h["last-modified"], 206), (older, 200)):
            with self.subTest(if_range=if_range):
                status, _, body = self.request(
                    "/small.bin",
                    headers={"Range": "bytes=5-9", "If-Range": if_range})
                self.assertEqual(status, expect)
                self.assertEqual(body, self.data[5:10] if expect == 206
                                 else self.data)

    def test_if_match(self):
        _, h, _ = self.request("/small.bin", method="HEAD")
        for if_match, expect in ((h["etag"], 200), ("*", 200),
                                 ('"x", ' + h["etag"], 200), ('"x"', 412),
                                 ("W/" + h["etag"], 412)):
            with self.subTest(if_match=if_match):
                status, _, _ = self.request("/small.bin",
                                            headers={"If-Match": if_match})
                self.assertEqual(status, expect)

    def test_errors(self):
        self.assertEqual(self.request("/missing.bin")[0], 404)
        self.assertEqual(self.request("/")[0], 404)           # a directory
        self.assertEqual(self.request("/small.bin", method="POST")[0], 405)
        for target in ("/../small.bin", "/a/%2e%2e/small.bin",
                       "/x/../small.bin"):
            with self.subTest(target=target):
                r = self.raw_exchange(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                                       % target).encode())
                self.assertEqual(r.status, 400)
        self.assertEqual(self.request("/small.bin", status="abc")[0], 400)

    def test_keep_alive_and_close(self):
        c = self.conn()
        for _ in range(3):
            status, _, body = self.request("/small.bin", conn=c)
            self.assertEqual((status, body), (200, self.data))
        s = self.fo.stats()
        self.assertEqual((s["connections_opened"], s["connections_open"]),
                         (1, 1))
        r = self.raw_get("/small.bin")            # sends Connection: close
        self.assertIsNone(r.error)
        self.assertEqual(r.headers.get("connection"), "close")
        self.assertEqual(r.body, self.data)       # then EOF

    def test_http10_keep_alive(self):
        req = ("GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
               % self.target("/one.bin")).encode()
        r = self.raw_exchange(req + req.replace(b"keep-alive", b"close"))
        self.assertEqual(r.headers.get("connection"), "keep-alive")
        self.assertEqual(r.body.count(b"HTTP/1.1 200 OK"), 1)  # the second
        r = self.raw_exchange(("GET %s HTTP/1.0\r\n\r\n"
                               % self.target("/one.bin")).encode())
        self.assertEqual((r.status, r.headers.get("connection")),
                         (200, "close"))

    def test_pipelining(self):
        one = ("GET %s HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n"
               % self.target("/small.bin")).encode()
        two = ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
               "Range: bytes=10-19\r\n\r\n"
               % self.target("/small.bin")).encode()
        r = self.raw_exchange(one + two)
        self.assertIsNone(r.error)
        self.assertEqual(r.status, 206)
        self.assertTrue(r.body.startswith(self.data[0:10] + b"HTTP/1.1 206"))
        self.assertTrue(r.body.endswith(b"\r\n\r\n" + self.data[10:20]))

    def test_stats_exact(self):
        c = self.conn()
        self.request("/small.bin", conn=c)
        self.request("/small.bin", conn=c, headers={"Range": "bytes=0-99"},
                     case="r")
        self.request("/small.bin", conn=c, method="HEAD")
        self.raw_get("/small.bin", reset_after=5000)
        s = self.fo.stats()
        self.assertEqual(s["requests"], 4)
        self.assertEqual(s["get_requests"], 3)
        self.assertEqual(s["head_requests"], 1)
        self.assertEqual(s["body_bytes"], SMALL + 100 + 5000)
        self.assertEqual(s["connections_opened"], 2)
        self.assertEqual(s["per_key"], {
            "/small.bin": {"requests": 2, "get_requests": 1,
                           "body_bytes": SMALL},
            "/small.bin?case=r": {"requests": 1, "get_requests": 1,
                                  "body_bytes": 100},
            "/small.bin?reset_after=5000": {"requests": 1, "get_requests": 1,
                                            "body_bytes": 5000}})
        self.fo.reset()
        s = self.fo.stats()
        self.assertEqual((s["requests"], s["body_bytes"], s["per_key"]),
                         (0, 0, {}))

    def test_log(self):
        t0 = time.monotonic()
        self.request("/small.bin", headers={"Range": "bytes=0-9"}, case="log")
        self.request("/small.bin", status=503, case="log")
        # Connections of earlier tests may close meanwhile: skip "close".
        # The origin logs a response once its bytes are sent, by which time
        # the client may already have sent its next request (or read the
        # log): wait for both, and check the order per key, each key's
        # request first.
        k1, k2 = "/small.bin?case=log", "/small.bin?status=503&case=log"
        self.assertTrue(self.fo.wait(k1, 1) and self.fo.wait(k2, 1))
        events = [e for e in self.fo.log() if e["event"] != "close"]
        events.sort(key=lambda e: (e["key"] != k1, e["t"]))
        self.assertEqual([(e["event"], e["key"], e.get("status"))
                          for e in events],
                         [("request", k1, None),
                          ("response", k1, 206),
                          ("request", k2, None),
                          ("response", k2, 503)])
        self.assertEqual(events[0]["range"], "bytes=0-9")
        self.assertEqual(events[1]["range"], "bytes 0-9/%d" % SMALL)
        self.assertEqual(events[1]["body_bytes"], 10)
        self.assertEqual(events[1]["outcome"], "complete")
        times = [e["t"] for e in events]
        self.assertLessEqual(times[0], times[1])  # k1: request, then response
        self.assertLessEqual(times[2], times[3])  # k2: likewise
        self.assertLessEqual(times[0], times[2])  # k1 was asked first
        self.assertGreaterEqual(times[0], t0)

    def test_reset_forgets_responses_in_flight(self):
        # A response that ends after a /_reset answers a request from before
        # it, of the previous test: the log the reset emptied stays clean.
        rate = 100_000  # small.bin takes about a second
        key = "/small.bin?rate=%d&case=inflight" % rate
        got = {}
        slow = threading.Thread(target=lambda: got.update(
            r=self.request("/small.bin", rate=rate, case="inflight")))
        slow.start()
        self.assertTrue(self.fo.wait(key, 1, event="request"))
        self.fo.reset()
        slow.join(TIMEOUT)
        self.assertEqual(got["r"][0], 200)
        self.assertFalse(self.fo.wait(key, 1, event="response", timeout=1))
        self.assertEqual([e for e in self.fo.log() if e.get("key") == key], [])

    def _request_events(self):
        return [e for e in self.fo.log() if e["event"] == "request"]

    def test_log_headers(self):
        # Kept: x-*, user-agent, range, if-range (names lowercased); not
        # kept: anything else (Host, Accept, Accept-Encoding, ...).
        _, h, _ = self.request("/small.bin", case="etag")
        self.request("/small.bin", case="hdr", headers={
            "X-Trace": "abc", "x-other": "1", "User-Agent": "ua/1",
            "Range": "bytes=0-9", "If-Range": h["etag"], "Accept": "x/y"})
        events = self._request_events()
        # http.client sends only Host and Accept-Encoding: nothing kept.
        self.assertEqual(events[0]["headers"], {})
        self.assertEqual(events[1]["headers"], {
            "x-trace": "abc", "x-other": "1", "user-agent": "ua/1",
            "range": "bytes=0-9", "if-range": h["etag"]})

    def test_log_headers_bounded(self):
        headers = {"X-H%02d" % i: "v" for i in range(20)}
        headers["X-H00"] = "a" * 1000
        c = self.conn()
        self.request("/small.bin", conn=c, headers=headers, case="bound")
        kept = self._request_events()[0]["headers"]
        self.assertEqual(len(kept), 16)
        self.assertEqual(kept["x-h00"], "a" * 256)

    def test_log_last_send_t(self):
        # 100000 bytes at 200000 B/s: the last body send starts >= ~0.5 s
        # after the request (>= 60% asked, see the module docstring); the
        # client has the whole body only after it; "t" comes after it.
        rate = 200_000
        status, _, body = self.request("/small.bin", rate=rate, case="lst")
        done = time.monotonic()
        self.assertEqual((status, body), (200, self.data))
        key = "/small.bin?rate=%d&case=lst" % rate
        # The client can have the body before the origin logs the response.
        self.assertTrue(self.fo.wait(key, 1, event="response"))
        request, response = [e for e in self.fo.log() if e.get("key") == key]
        self.assertEqual(response["event"], "response")
        self.assertGreaterEqual(response["last_send_t"] - request["t"],
                                0.6 * SMALL / rate)
        self.assertLessEqual(response["last_send_t"], response["t"])
        self.assertLessEqual(response["last_send_t"], done)
        # A short canned answer (a fault status) records it too.
        self.request("/small.bin", status=503, case="lst2")
        self.assertTrue(self.fo.wait("/small.bin?status=503&case=lst2", 1))
        response = [e for e in self.fo.log() if e["event"] == "response"][-1]
        self.assertLessEqual(response["last_send_t"], response["t"])


class StatusFaults(FixtureCase):

    def test_status_times_per_key(self):
        seen = [self.request("/small.bin", status=503, times=2, case="a")[0]
                for _ in range(3)]
        self.assertEqual(seen, [503, 503, 200])
        # Another key has its own counter; HEAD counts as a request too.
        self.assertEqual(self.request("/small.bin", method="HEAD", status=503,
                                      times=2, case="b")[0], 503)
        self.assertEqual(self.request("/small.bin", status=503, times=2,
                                      case="b")[0], 503)
        self.assertEqual(self.request("/small.bin", status=503, times=2,
                                      case="b")[0], 200)

    def test_status_codes_and_forever(self):
        for code in (429, 500, 404, 403):
            with self.subTest(code=code):
                for _ in range(3):            # no times: every request
                    status, _, body = self.request("/small.bin", status=code)
                    self.assertEqual(status, code)
                    self.assertIn(b"fault", body)

    def test_retry_after(self):
        status, h, _ = self.request("/small.bin", status=503, retry_after=7)
        self.assertEqual((status, h["retry-after"]), (503, "7"))
        status, h, _ = self.request("/small.bin", status=429,
                                    retry_after="date")
        self.assertEqual(status, 429)
        ahead = (email.utils.parsedate_to_datetime(h["retry-after"]) -
                 email.utils.parsedate_to_datetime(h["date"])).total_seconds()
        self.assertTrue(1 <= ahead <= 3, ahead)

    def test_head_code(self):
        self.assertEqual(self.request("/small.bin", method="HEAD",
                                      head=405)[0], 405)
        status, _, body = self.request("/small.bin", head=405)
        self.assertEqual((status, body), (200, self.data))

    def test_redirect_chain(self):
        target = self.target("/small.bin", redirect=3, case="r")
        hops = []
        while True:
            c = self.conn()
            c.request("GET", target)
            r = c.getresponse()
            body = r.read()
            if r.status != 302:
                break
            location = urllib.parse.urlsplit(r.getheader("location"))
            self.assertEqual(location.port, self.fo.port)
            target = location.path + "?" + location.query
            hops.append(target)
        self.assertEqual(hops, ["/small.bin?redirect=2&case=r",
                                "/small.bin?redirect=1&case=r",
                                "/small.bin?redirect=0&case=r"])
        self.assertEqual((r.status, body), (200, self.data))

    def test_latency(self):
        t0 = time.monotonic()
        status, _, _ = self.request("/one.bin", latency_ms=300)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3 * 0.95)


class BodyFaults(FixtureCase):

    def test_reset_after(self):
        r = self.raw_get("/small.bin", reset_after=5000, times=1)
        self.assertIsInstance(r.error, ConnectionResetError)
        self.assertEqual((r.status, r.headers["content-length"]),
                         (200, str(SMALL)))
        self.assertEqual(r.body, self.data[:5000])
        r = self.raw_get("/small.bin", reset_after=5000, times=1)
        self.assertIsNone(r.error)                 # times exhausted
        self.assertEqual(r.body, self.data)
        key = self.target("/small.bin", reset_after=5000, times=1)
        self.assertEqual(self.fo.stats()["per_key"][key]["body_bytes"],
                         5000 + SMALL)

    def test_reset_with_http_client(self):
        c = self.conn()
        c.request("GET", self.target("/small.bin", reset_after=0))
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        with self.assertRaises(ConnectionResetError):
            r.read()

    def test_truncate_after(self):
        r = self.raw_get("/small.bin", truncate_after=5000)
        self.assertIsNone(r.error)                 # a clean FIN
        self.assertEqual(r.headers["content-length"], str(SMALL))
        self.assertEqual(r.body, self.data[:5000])
        c = self.conn()
        c.request("GET", self.target("/small.bin", truncate_after=7000))
        resp = c.getresponse()
        with self.assertRaises(http.client.IncompleteRead) as cm:
            resp.read()
        self.assertEqual(cm.exception.partial, self.data[:7000])

    def test_truncate_on_range(self):
        r = self.raw_get("/small.bin", b"Range: bytes=100-\r\n",
                         truncate_after=10)
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, self.data[100:110])

    def test_stall_after(self):
        req = ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
               % self.target("/small.bin", stall_after=1000, stall_ms=400,
                             times=1)).encode()
        s = socket.create_connection(("127.0.0.1", self.fo.port),
                                     timeout=TIMEOUT)
        self.addCleanup(s.close)
        s.sendall(req)
        data = bytearray()
        while b"\r\n\r\n" not in data or \
                len(data) - data.index(b"\r\n\r\n") - 4 < 1000:
            data += s.recv(65536)
        t_stall = time.monotonic()
        head_len = data.index(b"\r\n\r\n") + 4
        self.assertEqual(len(data) - head_len, 1000)   # nothing past it
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertGreaterEqual(time.monotonic() - t_stall, 0.4 * 0.9)
        self.assertEqual(bytes(data[head_len:]), self.data)

    def test_claim_length(self):
        status, h, _ = self.request("/small.bin", method="HEAD",
                                    claim_length=12345)
        self.assertEqual((status, h["content-length"]), (200, "12345"))
        r = self.raw_exchange(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % (
            self.target("/small.bin", claim_length=SMALL + 1000))).encode())
        self.assertIsNone(r.error)
        self.assertEqual(r.headers["content-length"], str(SMALL + 1000))
        self.assertEqual(r.headers["connection"], "close")
        self.assertEqual(r.body, self.data)       # then the server closed
        status, h, body = self.request("/small.bin", claim_length=1,
                                       headers={"Range": "bytes=0-9"})
        self.assertEqual((status, body), (206, self.data[:10]))

    def test_huge(self):
        status, h, _ = self.request("/nonexistent", method="HEAD", huge=1)
        self.assertEqual((status, h["content-length"]), (200, str(HUGE)))
        status, h, body = self.request("/nonexistent", huge=1,
                                       headers={"Range": "bytes=0-1023"})
        self.assertEqual(status, 206)
        self.assertEqual(h["content-range"], "bytes 0-1023/%d" % HUGE)
        self.assertEqual(body, bytes(1024))
        r = self.raw_exchange(
            ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" %
             self.target("/nonexistent", huge=1)).encode(), until=1 << 20)
        self.assertEqual(r.headers["content-length"], str(HUGE))
        self.assertEqual(r.body.strip(b"\0"), b"")
        self.assertGreater(len(r.body), 0)


class RangeFaults(FixtureCase):

    def test_noranges(self):
        status, h, body = self.request(
            "/small.bin", headers={"Range": "bytes=0-9"}, noranges=1)
        self.assertEqual((status, body), (200, self.data))
        self.assertNotIn("accept-ranges", h)
        self.assertNotIn("content-range", h)

    def test_bad_range(self):
        status, h, body = self.request(
            "/small.bin", headers={"Range": "bytes=10-99"}, bad_range=1)
        self.assertEqual(status, 206)
        self.assertEqual(h["content-range"], "bytes 11-100/%d" % SMALL)
        self.assertEqual(body, self.data[11:101])
        status, h, body = self.request(
            "/small.bin", headers={"Range": "bytes=-1"}, bad_range=1)
        self.assertEqual(h["content-range"], "bytes %d-%d/%d"
                         % (SMALL - 2, SMALL - 2, SMALL))
        self.assertEqual(body, self.data[-2:-1])
        status, _, body = self.request("/small.bin", bad_range=1)
        self.assertEqual((status, body), (200, self.data))

    def test_lie_total(self):
        status, h, body = self.request(
            "/small.bin", headers={"Range": "bytes=10-99"}, lie_total=5)
        self.assertEqual(status, 206)
        self.assertEqual(h["content-range"], "bytes 10-99/5")
        self.assertEqual(body, self.data[10:100])

    def test_change_after(self):
        q = {"change_after": 1, "case": "ch"}
        status, h1, body = self.request("/small.bin", **q)
        self.assertEqual((status, body), (200, self.data))
        status, h2, body = self.request("/small.bin", **q)
        self.assertEqual((status, body), (200, invert(self.data)))
        self.assertNotEqual(h2["etag"], h1["etag"])
        lm1, lm2 = (email.utils.parsedate_to_datetime(h["last-modified"])
                    for h in (h1, h2))
        self.assertGreater(lm2, lm1)
        # Validators of the old object no longer match ...
        status, _, body = self.request(
            "/small.bin", headers={"Range": "bytes=0-9",
                                   "If-Range": h1["etag"]}, **q)
        self.assertEqual((status, body), (200, invert(self.data)))
        self.assertEqual(self.request("/small.bin", headers={
            "If-Match": h1["etag"]}, **q)[0], 412)
        # ... those of the new one do, and its bytes are served.
        for if_range in (h2["etag"], h2["last-modified"]):
            status, h, body = self.request(
                "/small.bin", headers={"Range": "bytes=10-19",
                                       "If-Range": if_range}, **q)
            self.assertEqual((status, body), (206, invert(self.data[10:20])))
        _, h, _ = self.request("/small.bin", method="HEAD", **q)
        self.assertEqual((h["etag"], h["last-modified"]),
                         (h2["etag"], h2["last-modified"]))

    def test_etag_len(self):
        q = {"etag_len": 4096, "case": "long"}
        _, h, _ = self.request("/small.bin", method="HEAD", case="short")
        _, hl, _ = self.request("/small.bin", method="HEAD", **q)
        etag = hl["etag"]
        self.assertEqual(len(etag), 4096)
        self.assertTrue(etag.startswith(h["etag"][:-1]) and etag.endswith('"'))
        # If-Range compares the whole value: the long one matches, a cut
        # one does not (the full body comes back).
        status, _, body = self.request(
            "/small.bin", headers={"Range": "bytes=0-9", "If-Range": etag}, **q)
        self.assertEqual((status, body), (206, self.data[:10]))
        status, _, _ = self.request(
            "/small.bin", headers={"Range": "bytes=0-9",
                                   "If-Range": etag[:1023] + '"'}, **q)
        self.assertEqual(status, 200)
        # The log keeps 256 characters of the value, and its whole
        # length and digest.
        ev = [e for e in self.fo.log()
              if e["event"] == "request" and e.get("if_range_len")]
        self.assertEqual([e["if_range_len"] for e in ev], [4096, 1024])
        self.assertEqual(ev[0]["if_range_sha256"],
                         hashlib.sha256(etag.encode()).hexdigest())
        self.assertEqual(ev[0]["headers"]["if-range"], etag[:256])
        self.request("/small.bin", headers={"If-None-Match": etag}, **q)
        ev = [e for e in self.fo.log()
              if e["event"] == "request" and e.get("if_none_match_len")]
        self.assertEqual([(e["if_none_match_len"], e["if_none_match_sha256"]) for e in ev],
                         [(4096, hashlib.sha256(etag.encode()).hexdigest())])

    def test_disposition(self):
        value = 'attachment; filename="../\x01a b/\u00e9.bin"'
        for method in ("GET", "HEAD"):
            status, h, _ = self.request("/small.bin", method=method, disposition=value,
                                        case="cd")
            self.assertEqual(status, 200)
            # http.client decodes header bytes as latin-1: the UTF-8 came as is.
            self.assertEqual(h["content-disposition"].encode("latin-1").decode("utf-8"),
                             value)
        status, h, _ = self.request("/small.bin", headers={"Range": "bytes=0-9"},
                                    disposition="inline", case="cd")
        self.assertEqual((status, h["content-disposition"]), (206, "inline"))
        status, h, _ = self.request("/small.bin", case="cd")
        self.assertNotIn("content-disposition", h)
        status, _, _ = self.request("/small.bin", disposition="a\r\nX-Evil: 1", case="cd")
        self.assertEqual(status, 400)

    def test_validator_switches(self):
        """weak_etag=1, lm=fresh|now|future and date=0 (docs: Apache's
        validators): what they send and how If-Range is judged."""
        rng = {"Range": "bytes=5-9"}
        status, h, _ = self.request("/small.bin", headers=rng, weak_etag=1, case="w")
        self.assertEqual(status, 206)
        self.assertTrue(h["etag"].startswith('W/"'))
        # A weak ETag in If-Range never matches, not even its own.
        status, _, body = self.request("/small.bin", weak_etag=1, case="w",
                                       headers=dict(rng, **{"If-Range": h["etag"]}))
        self.assertEqual((status, body), (200, self.data))
        # lm=now: Last-Modified is the Date; as an If-Range it is not a
        # second old, so it does not match.
        _, h, _ = self.request("/small.bin", lm="now", case="now")
        self.assertEqual(h["last-modified"], h["date"])
        status, _, _ = self.request("/small.bin", lm="now", case="now",
                                    headers=dict(rng, **{"If-Range": h["last-modified"]}))
        self.assertEqual(status, 200)
        # lm=fresh: fixed at the key's first request, the Date then.
        _, h1, _ = self.request("/small.bin", lm="fresh", case="fresh")
        self.assertEqual(h1["last-modified"], h1["date"])
        _, h2, _ = self.request("/small.bin", lm="fresh", case="fresh")
        self.assertEqual(h2["last-modified"], h1["last-modified"])
        # lm=future: a day after the key's first request.
        _, h, _ = self.request("/small.bin", lm="future", case="future")
        later = email.utils.parsedate_to_datetime(h["last-modified"]).timestamp()
        now = email.utils.parsedate_to_datetime(h["date"]).timestamp()
        self.assertEqual(later - now, 86400)
        # date=0: no Date on an object's answer, nor on an error.
        _, h, _ = self.request("/small.bin", date=0, case="nodate")
        self.assertNotIn("date", h)
        self.assertIn("last-modified", h)
        status, h, _ = self.request("/missing.bin", date=0, case="nodate")
        self.assertEqual(status, 404)
        self.assertNotIn("date", h)
        status, _, _ = self.request("/small.bin", lm="bogus", case="bad")
        self.assertEqual(status, 400)

    def test_plain_206(self):
        q = {"plain_206": 1, "after": 1, "case": "plain"}
        rng = {"Range": "bytes=0-9"}
        status, h, _ = self.request("/small.bin", headers=rng, **q)
        self.assertEqual(status, 206)                 # the first: as usual
        self.assertIn("etag", h)
        status, h, body = self.request("/small.bin", headers=rng, **q)
        self.assertEqual((status, body), (206, self.data[:10]))
        self.assertNotIn("etag", h)
        self.assertNotIn("last-modified", h)
        status, h, _ = self.request("/small.bin", **q)
        self.assertEqual(status, 200)                 # a 200 keeps them
        self.assertIn("etag", h)


class RateLimit(FixtureCase):

    def test_rate_per_connection_across_requests(self):
        size, rate = len(self.files["rate.bin"]), 1 << 20
        c = self.conn()
        t0 = time.monotonic()
        for _ in range(2):
            status, _, body = self.request("/rate.bin", conn=c, rate=rate)
            self.assertEqual((status, body), (200, self.files["rate.bin"]))
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.6 * 2 * size / rate)
        self.assertEqual(self.fo.stats()["connections_opened"], 1)

    def test_bucket_persists_across_small_requests(self):
        # 20 x 16 KiB at 256 KiB/s on one connection: 1.25 s ideal. A
        # bucket that restarted with each request would allow ~0 s.
        rate = 256 * 1024
        c = self.conn()
        t0 = time.monotonic()
        for _ in range(20):
            status, _, _ = self.request("/chunk.bin", conn=c, rate=rate)
            self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - t0,
                                0.6 * 20 * 16 * 1024 / rate)

    def test_rate_option(self):
        rate = 512 * 1024
        with FaultOrigin(self.dir, rate=rate) as fo:
            c = http.client.HTTPConnection("127.0.0.1", fo.port,
                                           timeout=TIMEOUT)
            self.addCleanup(c.close)
            t0 = time.monotonic()
            c.request("GET", "/rate.bin")
            body = c.getresponse().read()
            elapsed = time.monotonic() - t0
        self.assertEqual(body, self.files["rate.bin"])
        self.assertGreaterEqual(elapsed, 0.6 * len(body) / rate)


def _kill_survivors(pids):
    """SIGKILL (by PID) servers a failed test left running; its nginx
    master's workers go with it."""
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
            # Only ours: the pid may belong to something else by now.
            if b"rv-nginx-" in cmd or b"rv-it-die-" in cmd:
                os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


class Lifecycle(unittest.TestCase):

    def test_make_file_is_deterministic(self):
        with tempfile.TemporaryDirectory(prefix="rv-it-mf-") as d:
            a, b, c = (os.path.join(d, n) for n in "abc")
            make_file(a, 3 * (1 << 20) + 17, seed=9)
            make_file(b, 3 * (1 << 20) + 17, seed=9)
            make_file(c, 3 * (1 << 20) + 17, seed=10)
            self.assertEqual(os.path.getsize(a), 3 * (1 << 20) + 17)
            self.assertEqual(sha256_file(a), sha256_file(b))
            self.assertNotEqual(sha256_file(a), sha256_file(c))
            with open(a, "rb") as f:
                self.assertNotEqual(f.read(1 << 20), f.read(1 << 20))

    def test_sigterm_exits_cleanly(self):
        with tempfile.TemporaryDirectory(prefix="rv-it-sig-") as d:
            make_file(os.path.join(d, "f"), 1 << 20, 1)
            fo = FaultOrigin(d, rate=10_000)
            with fo:
                self.assertEqual(fo.url("f", a=1, b="x y"),
                                 "http://127.0.0.1:%d/f?a=1&b=x+y" % fo.port)
                idle = socket.create_connection(("127.0.0.1", fo.port))
                busy = socket.create_connection(("127.0.0.1", fo.port))
                self.addCleanup(idle.close)
                self.addCleanup(busy.close)
                busy.sendall(b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n")
                busy.settimeout(TIMEOUT)
                self.assertTrue(busy.recv(100).startswith(b"HTTP/1.1 200"))
                pid = fo.pid
                t0 = time.monotonic()
            self.assertEqual(fo.exit_status, 0)
            self.assertLess(time.monotonic() - t0, 4.0)
            self.assertFalse(os.path.exists("/proc/%d" % pid))

    def test_nginx_origin(self):
        with tempfile.TemporaryDirectory(prefix="rv-it-ng-") as d:
            os.chmod(d, 0o700)
            path = make_file(os.path.join(d, "f.bin"), 300_000, 3)
            with open(path, "rb") as f:
                data = f.read()
            with NginxOrigin(d, workers=2) as ng:
                pids = [ng.pid]
                self.assertTrue(ng.url("/f.bin").startswith(
                    "http://127.0.0.1:%d/" % ng.port))
                c = http.client.HTTPConnection("127.0.0.1", ng.port,
                                               timeout=TIMEOUT)
                c.request("GET", "/f.bin")
                r = c.getresponse()
                self.assertEqual((r.status, r.read()), (200, data))
                c.request("GET", "/f.bin", headers={"Range": "bytes=10-19"})
                r = c.getresponse()
                self.assertEqual(r.status, 206)
                self.assertEqual(r.getheader("Content-Range"),
                                 "bytes 10-19/300000")
                self.assertEqual(r.read(), data[10:20])
                c.close()
                with open("/proc/%d/task/%d/children" % (ng.pid, ng.pid)) as f:
                    pids += [int(p) for p in f.read().split()]
            self.assertEqual(len(pids), 3)           # master + 2 workers
            for pid in pids:
                self.assertFalse(os.path.exists("/proc/%d" % pid), pid)


    def test_origins_die_with_a_killed_starter(self):
        """A process that started origins and is SIGKILLed (no stop())
        takes them with it: the kernel sends them SIGTERM."""
        with tempfile.TemporaryDirectory(prefix="rv-it-die-") as d:
            os.chmod(d, 0o755)
            script = ("import sys, time\n"
                      "sys.path.insert(0, %r)\n"
                      "from origins import FaultOrigin, NginxOrigin\n"
                      "ng = NginxOrigin(%r).start()\n"
                      "fo = FaultOrigin(%r).start()\n"
                      "print(ng.pid, fo.pid, ng._dir, flush=True)\n"
                      "time.sleep(60)\n"
                      % (os.path.dirname(sys.modules["origins"].__file__), d, d))
            starter = subprocess.Popen([sys.executable, "-c", script],
                                       stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
            try:
                words = starter.stdout.readline().split()
                self.assertEqual(len(words), 3)
                pids = [int(p) for p in words[:2]]
                self.addCleanup(shutil.rmtree, words[2], True)  # stop() never ran
                self.addCleanup(_kill_survivors, pids)
                for pid in pids:
                    self.assertTrue(os.path.exists("/proc/%d" % pid), pid)
            finally:
                starter.kill()
                starter.wait()
                starter.stdout.close()
            deadline = time.monotonic() + TIMEOUT
            while (time.monotonic() < deadline and
                   any(os.path.exists("/proc/%d" % p) for p in pids)):
                time.sleep(0.05)
            for pid in pids:
                self.assertFalse(os.path.exists("/proc/%d" % pid), pid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
