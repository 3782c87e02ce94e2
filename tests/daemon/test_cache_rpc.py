#!/usr/bin/python3
"""The cache RPCs (CacheList, CacheRemove, CacheVerify) against a real
retrieverd: what they list, remove and verify; an entry a running job uses
is kept; a damaged blob is reported and removed by CacheVerify and the
next download fetches the right bytes; and a second real uid may do none
of it (PERMISSION_DENIED, nothing changed).

Reuses test_jobs.py's client and daemon helpers, without its tests.
Environment: as test_jobs.py.
"""
import os
import sys
import threading
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_jobs as tj  # noqa: E402
import test_daemon as td  # noqa: E402
from callers import CallersMixin  # noqa: E402
from daemons import make_user  # noqa: E402
from origins import FaultOrigin, sha256_file  # noqa: E402

S = "/retriever.v1.Retriever/"
SIZE = 200000


def setUpModule():
    tj.setUpModule()


def tearDownModule():
    tj.tearDownModule()


def ser(m):
    return m.SerializeToString()


class CacheClient(tj.Client):
    def __init__(self, sock):
        super().__init__(sock)
        pb = td.pb
        self._cl = self.ch.unary_stream(S + "CacheList", request_serializer=ser,
                                        response_deserializer=pb.CacheEntry.FromString)
        self._cr = self.ch.unary_stream(S + "CacheRemove", request_serializer=ser,
                                        response_deserializer=pb.CacheEntry.FromString)
        self._cv = self.ch.unary_stream(S + "CacheVerify", request_serializer=ser,
                                        response_deserializer=pb.CacheEntry.FromString)

    def cache_list(self):
        return list(self._cl(td.pb.CacheListRequest(), timeout=30))

    def cache_remove(self, urls=(), all=False):
        return list(self._cr(td.pb.CacheRemoveRequest(urls=list(urls), all=all), timeout=30))

    def cache_verify(self):
        return list(self._cv(td.pb.CacheVerifyRequest(), timeout=60))


def result(e):
    return td.pb.CacheResult.Name(e.result)


class CacheRpcTest(CallersMixin, unittest.TestCase):
    setUp = tj.JobsTest.setUp
    config = tj.JobsTest.config

    def daemon(self, *args):
        self.d = tj.JobsTest.daemon(self, *args)
        return self.d

    def tearDown(self):
        # A clean exit, and nothing in the log from the sanitizers.
        if getattr(self, "d", None):
            self.stop_ok(self.d)

    stop_ok = tj.JobsTest.stop_ok
    file = tj.JobsTest.file
    wait_for = tj.JobsTest.wait_for

    def client(self):
        c = CacheClient(self.sock)
        self.addCleanup(c.close)
        return c

    def fetch(self, c, url, name):
        dest = os.path.join(self.out, name)
        events = list(c.download([{"url": url, "destination": dest}]))
        self.assertEqual(tj.kinds(events)[-1], "completed", events[-1])
        return dest

    def blobs(self):
        d = os.path.join(self.tmp, "cache", "blobs")
        return sorted(os.path.join(d, b) for b in os.listdir(d)
                      if os.path.getsize(os.path.join(d, b)) > 0)

    def test_list_remove_clear(self):
        a = self.file("a.bin", SIZE, seed=1)
        b = self.file("b.bin", SIZE + 1, seed=2)
        self.daemon()
        c = self.client()
        with FaultOrigin(self.data) as fo:
            ua, ub = fo.url("a.bin"), fo.url("b.bin", token="s3cr3t")
            self.fetch(c, ua, "a")
            self.fetch(c, ub, "b")
            entries = c.cache_list()
            self.assertEqual(len(entries), 2, entries)
            by_size = {e.size: e for e in entries}
            self.assertTrue(all(e.complete and e.size_known and not e.in_use for e in entries))
            self.assertEqual(by_size[SIZE].url, ua)
            self.assertEqual(by_size[SIZE].bytes, SIZE)
            self.assertFalse(by_size[SIZE].keyed)
            self.assertTrue(by_size[SIZE + 1].keyed)
            self.assertNotIn("s3cr3t", by_size[SIZE + 1].url)  # redacted
            self.assertTrue(all(result(e) == "CACHE_RESULT_LISTED" for e in entries))
            # rm by URL: the other form of the same URL matches too (query ignored).
            gone = c.cache_remove([ua + "?x=1"])
            self.assertEqual([result(e) for e in gone], ["CACHE_RESULT_REMOVED"])
            self.assertEqual([e.size for e in c.cache_list()], [SIZE + 1])
            self.assertEqual(len(self.blobs()), 1)
            self.assertEqual(c.cache_remove(["http://127.0.0.1:1/not-cached"]), [])
            # clear: everything.
            gone = c.cache_remove(all=True)
            self.assertEqual([result(e) for e in gone], ["CACHE_RESULT_REMOVED"])
            self.assertEqual(c.cache_list(), [])
            self.assertEqual(self.blobs(), [])
            self.assertEqual(c.stats().cache_bytes, 0)
            # Fetched again from the origin afterwards, right bytes.
            self.assertEqual(sha256_file(self.fetch(c, ua, "a2")), sha256_file(a))
        self.assertEqual(sha256_file(os.path.join(self.out, "b")), sha256_file(b))
        with self.assertRaises(grpc.RpcError) as cm:
            c.cache_remove()  # neither URLs nor all
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_entry_in_use_is_kept(self):
        self.file("slow.bin", 4 * 1024 * 1024, seed=3)
        self.daemon()
        c = self.client()
        with FaultOrigin(self.data, rate=256 * 1024) as fo:
            url = fo.url("slow.bin")
            dest = os.path.join(self.out, "slow")
            stream = c.download([{"url": url, "destination": dest}])
            it = iter(stream)
            self.wait_for(lambda: any(k == "started" for k in [next(it).WhichOneof("event")]),
                          what="the slow download to start")
            self.wait_for(lambda: c.cache_list(), what="its entry")
            gone = c.cache_remove(all=True)
            self.assertEqual([result(e) for e in gone], ["CACHE_RESULT_IN_USE"])
            self.assertTrue(c.cache_list()[0].in_use)
            stream.cancel()

    def test_verify_removes_damaged_entry(self):
        src = self.file("v.bin", SIZE, seed=4)
        self.file("w.bin", SIZE, seed=5)
        self.daemon()
        c = self.client()
        with FaultOrigin(self.data) as fo:
            uv, uw = fo.url("v.bin"), fo.url("w.bin")
            self.fetch(c, uv, "v")
            self.fetch(c, uw, "w")
            ok = c.cache_verify()
            self.assertEqual(sorted(result(e) for e in ok), ["CACHE_RESULT_INTACT"] * 2)
            # Damage one byte of v's blob (the daemon's cache dir is ours).
            blob = [p for p in self.blobs() if sha256_file(p) == sha256_file(src)]
            self.assertEqual(len(blob), 1)
            os.chmod(blob[0], 0o600)
            with open(blob[0], "r+b") as f:
                f.seek(SIZE // 3)
                byte = f.read(1)
                f.seek(SIZE // 3)
                f.write(bytes([byte[0] ^ 0xFF]))
            res = {e.url: result(e) for e in c.cache_verify()}
            self.assertEqual(res, {uv: "CACHE_RESULT_CORRUPT_REMOVED",
                                   uw: "CACHE_RESULT_INTACT"})
            self.assertFalse(os.path.exists(blob[0]))
            self.assertEqual([e.url for e in c.cache_list()], [uw])
            # The next download fetches the right bytes from the origin.
            self.assertEqual(sha256_file(self.fetch(c, uv, "v2")), sha256_file(src))

    def test_verify_many_entries_in_batches(self):
        # More entries than one engine turn verifies (64): every one is
        # reported once, the one damaged among them found.
        n = 150
        srcs = [self.file("m%d.bin" % i, 5000 + i, seed=100 + i) for i in range(n)]
        self.daemon()
        c = self.client()
        events = list(c.download([{"url": "file://" + p,
                                   "destination": os.path.join(self.out, "m%d" % i)}
                                  for i, p in enumerate(srcs)]))
        self.assertEqual(tj.kinds(events).count("completed"), n)
        victim = [b for b in self.blobs() if os.path.getsize(b) == 5000 + 77]
        self.assertEqual(len(victim), 1)
        os.chmod(victim[0], 0o600)
        with open(victim[0], "r+b") as f:
            f.write(b"\0\1\2")
        res = c.cache_verify()
        self.assertEqual(len(res), n)
        self.assertEqual(len({e.url for e in res}), n)  # each once
        bad = [e for e in res if result(e) != "CACHE_RESULT_INTACT"]
        self.assertEqual([(result(e), e.size) for e in bad],
                         [("CACHE_RESULT_CORRUPT_REMOVED", 5000 + 77)])
        self.assertEqual(len(c.cache_list()), n - 1)

    def test_verify_cancelled_by_its_caller(self):
        # A caller that leaves mid-verify: the daemon lets go of the call
        # (no write to a freed stream: the sanitizer build's clean exit),
        # and serves the next cache call.
        n = 150
        srcs = [self.file("c%d.bin" % i, 4000 + i, seed=300 + i) for i in range(n)]
        self.daemon()
        c = self.client()
        list(c.download([{"url": "file://" + p, "destination": os.path.join(self.out, "c%d" % i)}
                         for i, p in enumerate(srcs)]))
        for _ in range(5):
            stream = c._cv(td.pb.CacheVerifyRequest(), timeout=60)
            next(stream)
            stream.cancel()
        self.assertEqual(len(c.cache_list()), n)
        self.assertEqual(len(c.cache_verify()), n)

    def test_other_uid_may_not(self):
        user = make_user(self)
        self.daemon_for_everyone()
        c = self.client()
        src = self.file("u.bin", SIZE, seed=6)
        os.chmod(self.data, 0o755)
        os.chmod(src, 0o644)
        self.fetch(c, "file://" + src, "u")
        before = c.cache_list()
        self.assertEqual(len(before), 1)
        code = ("def call(m, req):\n"
                "    try:\n"
                "        list(ch.unary_stream(S+m, request_serializer=ser,"
                " response_deserializer=pb.CacheEntry.FromString)(req, timeout=30))\n"
                "        return 'OK'\n"
                "    except grpc.RpcError as e:\n"
                "        return e.code().name\n"
                "print(call('CacheList', pb.CacheListRequest()),"
                " call('CacheRemove', pb.CacheRemoveRequest(all=True)),"
                " call('CacheRemove', pb.CacheRemoveRequest(urls=['file://%s'])),"
                " call('CacheVerify', pb.CacheVerifyRequest()))\n" % src)
        out = self.as_caller(code, uid=user.uid, gid=user.gid)
        self.assertEqual(out.split(), ["PERMISSION_DENIED"] * 4)
        self.assertEqual(len(c.cache_list()), 1)  # nothing removed
        self.assertEqual(len(self.blobs()), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
