#!/usr/bin/python3
"""32 concurrent clients, one object, one origin read.

32 clients, each on its own gRPC channel (its own connection to the
daemon), ask retrieverd at the same moment for the same 256 MiB object
from a real origin (tests/fixtures/fault_origin.py, unlimited rate, whose
/_stats counts the body bytes it wrote to its sockets):

- 16 of them with the SAME destination: identical requests, so they attach
  to one job (one job id);
- 16 with 16 DIFFERENT destinations: 16 jobs, but one object in the
  engine, so the origin is still read once.

Asserted: the origin sent the body once (body_bytes <= size + SLACK, the
slack covering the probe's overlap with the first ranges); every client's
stream is accepted, queued, started, completed for its object, with the
path it asked for and the right sha256; every destination file has the
right sha256 and an inode of its own (not the cache's: deliveries are a
reflink or a copy unless a link is asked for); the daemon stops cleanly (exit 0, no sanitizer output).

The object is 256 MiB in the sanitizer build too: the whole test takes
about 7 s there on 2 cores (the engine's buffers and the origin's sendfile
do the heavy lifting, not instrumented code), so nothing is scaled down.

Environment: as test_jobs.py (RV_DAEMON, RV_PROTOC, RV_PROTO_DIR,
RV_VERSION, RV_FIXTURES).
"""
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402  (Daemon, the generated pb2)
from test_jobs import Client, essential, per_object  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402

MiB = 1 << 20
SIZE = 256 * MiB
SLACK = 8 * MiB       # probe overlap: bytes sent before the engine cut a read
CLIENTS_SAME = 16     # same destination: one job
CLIENTS_OWN = 16      # own destination each: one job each, one origin read
CALL_TIMEOUT = 240    # per Download stream (bounded; ctest's TIMEOUT is the net)


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


class FanoutTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-fanout-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.data = os.path.join(self.tmp, "data")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(self.data)
        os.makedirs(self.out)

    def daemon(self):
        config = os.path.join(self.tmp, "retrieverd.conf")
        with open(config, "w") as f:
            f.write("# empty: defaults and flags only\n")
        d = td.Daemon(["--socket", self.sock,
                       "--state-dir", os.path.join(self.tmp, "state"),
                       "--cache-dir", os.path.join(self.tmp, "cache"),
                       "--config", config])
        self.addCleanup(d.kill)
        return d.start()

    def test_32_clients_same_object_one_origin_read(self):
        src = make_file(os.path.join(self.data, "big.bin"), SIZE, seed=32)
        want = sha256_file(src)
        n = CLIENTS_SAME + CLIENTS_OWN
        dests = [os.path.join(self.out, "same.bin")] * CLIENTS_SAME + \
                [os.path.join(self.out, "own-%02d.bin" % i) for i in range(CLIENTS_OWN)]
        with FaultOrigin(self.data, rate=0) as fo:
            d = self.daemon()
            url = fo.url("/big.bin")
            results = [None] * n
            errors = []
            # Every client connects first, then all ask at once.
            ready = threading.Barrier(n, timeout=60)

            def one(i):
                c = Client(self.sock)
                try:
                    grpc.channel_ready_future(c.ch).result(timeout=60)
                    ready.wait()
                    # digest: Completed carries the sha256 checked below.
                    results[i] = list(c.download([{"url": url, "destination": dests[i]}],
                                                 timeout=CALL_TIMEOUT, digest=True))
                except Exception as e:  # noqa: BLE001 — asserted below
                    errors.append((i, repr(e)))
                finally:
                    c.close()

            t0 = time.monotonic()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(CALL_TIMEOUT + 30)
            took = time.monotonic() - t0
            self.assertFalse(any(t.is_alive() for t in threads), "a client never finished")
            self.assertEqual(errors, [], d.log())

            stats = fo.stats()
            body = stats["body_bytes"]
            from_cache = sum(1 for r in results if r and r[-1].WhichOneof("event") == "completed"
                             and r[-1].completed.from_cache)
            print("\nfanout: %d clients, %d MiB, %.1f s; origin: body_bytes %d (size + %d), "
                  "%d GETs on %d connections; %d completed from_cache; "
                  "%d distinct destination inodes"
                  % (n, SIZE // MiB, took, body, body - SIZE, stats["get_requests"],
                     stats["connections_opened"], from_cache,
                     len({os.stat(p).st_ino for p in set(dests) if os.path.exists(p)})),
                  file=sys.stderr)

            for i, events in enumerate(results):
                with self.subTest(client=i):
                    self.assertEqual(events[0].WhichOneof("event"), "accepted")
                    job_id = events[0].job_id
                    self.assertRegex(job_id, "^[0-9a-f]{32}$")
                    self.assertTrue(all(e.job_id == job_id for e in events))
                    self.assertEqual(essential(per_object(events, 0)),
                                     ["queued", "started", "completed"])
                    done = events[-1].completed
                    self.assertEqual(done.path, dests[i])
                    self.assertEqual(done.size, SIZE)
                    self.assertEqual(done.sha256, want)

            same_ids = {results[i][0].job_id for i in range(CLIENTS_SAME)}
            own_ids = {results[i][0].job_id for i in range(CLIENTS_SAME, n)}
            self.assertEqual(len(same_ids), 1, "identical requests made several jobs")
            self.assertEqual(len(own_ids), CLIENTS_OWN,
                             "different destinations must be different jobs")
            self.assertFalse(same_ids & own_ids)

            # The origin sent the body once, for all 17 jobs.
            self.assertGreaterEqual(body, SIZE)
            self.assertLessEqual(body, SIZE + SLACK,
                                 "the origin sent %d body bytes for a %d-byte object"
                                 % (body, SIZE))

            # Every destination holds the object, in a file of its own: a
            # reflink or a copy (the default delivery), never the cache's
            # inode nor another destination's.
            cached = set()
            for dirpath, _, files in os.walk(os.path.join(self.tmp, "cache")):
                for f in files:
                    st = os.stat(os.path.join(dirpath, f))
                    cached.add((st.st_dev, st.st_ino))
            inodes = set()
            for dest in sorted(set(dests)):
                st = os.stat(dest)
                self.assertEqual(st.st_size, SIZE, dest)
                key = (st.st_dev, st.st_ino)
                self.assertNotIn(key, cached, dest + " is the cache's file")
                self.assertNotIn(key, inodes, dest + " shares another destination's inode")
                self.assertEqual(st.st_nlink, 1, dest)
                inodes.add(key)
                self.assertEqual(sha256_file(dest), want, dest)

            c = Client(self.sock)
            self.addCleanup(c.close)
            for job_id in same_ids | own_ids:
                self.assertEqual(c.status(job_id).state, td.pb.JOB_STATE_DONE)
            rc, _ = d.stop()
            self.assertEqual(rc, 0, d.log())
            d.assert_clean(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
