#!/usr/bin/python3
"""If-Range only with a strong validator (RFC 9110 section 13.1.5): the real
library (engine_cases) against the fault origin, whose lm=, weak_etag= and
date= switches play the origins that taught it (docs/engine.md,
"Validators").

An origin must treat an If-Range it cannot trust as not matching and answer
200 with the whole object. Apache does so for a Last-Modified under a second
before the request, and replaces an mtime in the future by the time of the
request, so its Last-Modified then changes every second. A weak ETag, a
Last-Modified not before its Date, or one without a Date must therefore
never go into If-Range: the ranges go plain and their answers are checked
by size and validators. A strong ETag, or a Last-Modified at least a second
before its Date, still goes into every range's If-Range.

Every case asserts the delivered sha256 and, from the origin's log, what
each request carried and how it was answered.
"""
import os
import shutil
import tempfile
import unittest

from origins import FaultOrigin, make_file, sha256_file
from test_engine import run_case, values

MiB = 1 << 20
SIZE = 12 * MiB + 7
# Per connection: 12 MiB over at most 16 connections takes more than a
# second, so ranges of one download straddle a second of the origin's clock.
RATE = 512 * 1024
OLD = 1_000_000_000  # a file's mtime long before any Date (2001)


class IfRangeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="rv-ifrange-www-")
        os.chmod(cls.root, 0o755)
        path = os.path.join(cls.root, "f.bin")
        make_file(path, SIZE, seed=23)
        os.chmod(path, 0o644)
        os.utime(path, (OLD, OLD))
        cls.sha = sha256_file(path)
        cls.fault = FaultOrigin(cls.root).start()

    @classmethod
    def tearDownClass(cls):
        cls.fault.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="rv-ifrange-out-")
        self.dest = os.path.join(self.out, "file")

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def key(self, url):
        return url.split(str(self.fault.port), 1)[1]

    def download(self, env=None, **query):
        """Download f.bin with these switches; return (stdout, requests,
        responses) of its case key, once every request has its response
        logged."""
        url = self.fault.url("f.bin", rate=RATE, **query)
        p = run_case("ok", url, self.dest, self.sha, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sha256_file(self.dest), self.sha)
        key = self.key(url)
        requests = [ev for ev in self.fault.log()
                    if ev.get("key") == key and ev["event"] == "request"]
        self.assertTrue(self.fault.wait(key, len(requests)))
        events = [ev for ev in self.fault.log() if ev.get("key") == key]
        return (p.stdout, [ev for ev in events if ev["event"] == "request"],
                [ev for ev in events if ev["event"] == "response"])

    def assert_ranged(self, stdout, requests, responses):
        """A clean ranged download: one probe, one request per range, on
        several connections, every answer a 206 (none refetched whole)."""
        self.assertEqual(len(requests), int(values(stdout, "CHUNKS")[0]))
        self.assertGreater(len(requests), 4)
        self.assertEqual([ev["range"].startswith("bytes=0-") for ev in requests].count(True), 1)
        self.assertGreater(len({ev["conn"] for ev in requests}), 2)
        self.assertEqual({ev["status"] for ev in responses}, {206})
        self.assertEqual(int(values(stdout, "RETRIES")[0]), 0)

    def assert_if_range(self, requests, want):
        """The probe has no If-Range; every later range has `want` (None:
        none at all)."""
        self.assertNotIn("if-range", requests[0]["headers"])
        for ev in requests[1:]:
            self.assertEqual(ev["headers"].get("if-range"), want, ev)

    def test_weak_etag_fresh_last_modified(self):
        """(a) A file written in the second it is first asked for, with a
        weak ETag (Apache's case): neither validator is strong, so no
        If-Range; plain ranges on many connections. Sending the date made
        the origin answer 200 and the engine fall back to one stream."""
        out, req, resp = self.download(weak_etag=1, lm="fresh", case="fresh")
        self.assert_if_range(req, None)
        self.assert_ranged(out, req, resp)

    def test_weak_etag_last_modified_every_second(self):
        """(b) A file with an mtime in the future on Apache: Last-Modified
        is the time of each request, so it changes every second, and the
        ETag is weak. Ranges straddling a second must neither carry the
        date in If-Range nor be taken for a new version: one probe, no
        restart (the ok case also checks progress never went back), every
        answer a 206."""
        out, req, resp = self.download(weak_etag=1, lm="now", case="now")
        self.assert_if_range(req, None)
        self.assert_ranged(out, req, resp)
        # The download did straddle a second of the origin's clock.
        self.assertGreater(max(ev["last_send_t"] for ev in resp) - req[0]["t"], 1.0)

    def test_last_modified_in_the_future(self):
        """An origin that sends an mtime in the future as it is: a
        Last-Modified after its Date is no validator."""
        out, req, resp = self.download(weak_etag=1, lm="future", case="future")
        self.assert_if_range(req, None)
        self.assert_ranged(out, req, resp)

    def test_strong_etag(self):
        """(c) A strong ETag goes into every range's If-Range, whatever the
        Last-Modified is worth."""
        out, req, resp = self.download(lm="now", case="strong")
        etag = '"%x-%x"' % (SIZE, OLD * 10 ** 9)
        self.assert_if_range(req, etag)
        self.assert_ranged(out, req, resp)

    def test_strong_last_modified(self):
        """(d) A weak ETag and a Last-Modified long before the Date: the
        date is strong and goes into every range's If-Range."""
        out, req, resp = self.download(weak_etag=1, case="olddate")
        self.assert_if_range(req, "Sun, 09 Sep 2001 01:46:40 GMT")
        self.assert_ranged(out, req, resp)

    def test_last_modified_without_date(self):
        """Without a Date nothing shows a Last-Modified is strong: no
        If-Range, plain ranges."""
        out, req, resp = self.download(weak_etag=1, date=0, case="nodate")
        self.assert_if_range(req, None)
        self.assert_ranged(out, req, resp)

    def test_resume_keeps_the_rule(self):
        """A download resumed from durable state builds its ranges from
        the stored validators: a strong date is stored and goes into
        If-Range again; a weak ETag and a fresh date are not stored, so the
        object is not resumed but fetched again, and never with If-Range."""
        for case, query, want in (("resume-old", {"weak_etag": 1}, "Sun, 09 Sep 2001 01:46:40 GMT"),
                                  ("resume-fresh", {"weak_etag": 1, "lm": "fresh"}, None)):
            with self.subTest(case=case):
                state = os.path.join(self.out, case)
                self.dest = os.path.join(self.out, case + ".bin")
                env = {"RV_TEST_STATE_DIR": state,
                       "RV_TEST_MAX_CONNECTIONS_PER_OBJECT": "1"}
                # The second GET asks for a wait beyond the cap: the run
                # fails keeping its durable state; the next one resumes.
                url = self.fault.url("f.bin", status=503, retry_after=100000, after=1,
                                     times=1, rate=8 * MiB, case=case, **query)
                p = run_case("error", url, self.dest, "RV_E_RETRY_AFTER_TOO_LONG", env=env)
                self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
                key = self.key(url)
                first = len([ev for ev in self.fault.log()
                             if ev.get("key") == key and ev["event"] == "request"])
                p = run_case("ok", url, self.dest, self.sha,
                             env=dict(env, RV_TEST_RESUMED="1"))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(sha256_file(self.dest), self.sha)
                second = [ev for ev in self.fault.log()
                          if ev.get("key") == key and ev["event"] == "request"][first:]
                self.assertGreater(len(second), 1)
                if want is None:
                    # Fetched again from its first byte (nothing weak was
                    # stored to resume by), the probe without If-Range. Its
                    # later ranges may carry the date once it is a second
                    # older than their answers' Date (a slow machine): then
                    # as a strong validator, one value, never a weak ETag.
                    self.assertTrue(second[0]["range"].startswith("bytes=0-"))
                    self.assertIsNone(second[0]["headers"].get("if-range"), second[0])
                    sent = {ev["headers"].get("if-range") for ev in second[1:]} - {None}
                    self.assertLessEqual(len(sent), 1, second)
                    self.assertFalse(any(v.startswith("W/") or v.startswith('"') for v in sent),
                                     second)
                else:
                    # Resumed (a new probe would carry no If-Range): every
                    # request carries the stored date.
                    for ev in second:
                        self.assertEqual(ev["headers"].get("if-range"), want)

if __name__ == "__main__":
    unittest.main(verbosity=2)
