#!/usr/bin/python3
"""Jobs across uids, with two real unprivileged users (made for the test
with useradd, removed after it; root is needed, as in CI) and a root
daemon whose socket everyone may use (docs/security.md: a caller sees only
its own jobs).

User A starts a detached, rate-limited download into her own folder. While
it runs, user B asks Status, Watch, Read and Cancel of A's job id and gets
NOT_FOUND with the very answer an unknown id gets (no oracle: the id
exists or not, B cannot tell), and List shows B none of A's jobs; B's own
job is listed for B and not for A. A's job is unaffected: still running
after B's Cancel, with no subscriber of B's, then it completes and the file
is A's.

Environment: as test_jobs.py.
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ["RV_FIXTURES"])
import test_daemon as td  # noqa: E402
import test_jobs as tj  # noqa: E402  (JobsTest's helpers, not its tests)
from callers import CallersMixin  # noqa: E402
from daemons import make_user, require_root  # noqa: E402
from origins import FaultOrigin, make_file, sha256_file  # noqa: E402

MiB = 1 << 20
UNKNOWN = "0123456789abcdef0123456789abcdef"


def setUpModule():
    td.setUpModule()


def tearDownModule():
    td.tearDownModule()


# As a caller: every way to reach job `jid`, and (for the comparison) the
# same calls for an id that does not exist, with that id written as JID.
PROBE = """
import json
def unary(m, req, resp):
    try:
        ch.unary_unary(S + m, request_serializer=ser, response_deserializer=resp)(req, timeout=10)
        return 'answered'
    except grpc.RpcError as e:
        return e.code().name + '|' + e.details()
def stream(m, req, resp):
    try:
        list(ch.unary_stream(S + m, request_serializer=ser, response_deserializer=resp)(
            req, timeout=10))
        return 'answered'
    except grpc.RpcError as e:
        return e.code().name + '|' + e.details()
def probe(jid):
    return {
        'status': unary('Status', pb.StatusRequest(job_id=jid), pb.Job.FromString),
        'cancel': unary('Cancel', pb.CancelRequest(job_id=jid), pb.CancelResponse.FromString),
        'watch': stream('Watch', pb.WatchRequest(job_id=jid), pb.JobEvent.FromString),
        'read': stream('Read', pb.ReadRequest(job_id=jid), pb.ReadChunk.FromString),
    }
theirs, unknown = probe(%(jid)r), probe(%(unknown)r)
listed = [j.id for j in ch.unary_unary(S + 'List', request_serializer=ser,
          response_deserializer=pb.ListResponse.FromString)(pb.ListRequest(), timeout=10).jobs]
print(json.dumps({'theirs': theirs, 'unknown': unknown, 'listed': listed}))
"""

# As a caller: List's job ids.
LIST = ("print(' '.join(j.id for j in ch.unary_unary(S + 'List', request_serializer=ser,"
        " response_deserializer=pb.ListResponse.FromString)(pb.ListRequest(),"
        " timeout=10).jobs))\n")


class CrossUidTest(CallersMixin, unittest.TestCase):
    # JobsTest's set-up and helpers, borrowed rather than inherited (its
    # tests are not to run again here).
    setUp = tj.JobsTest.setUp
    daemon = tj.JobsTest.daemon
    config = tj.JobsTest.config
    client = tj.JobsTest.client
    stop_ok = tj.JobsTest.stop_ok
    wait_for = tj.JobsTest.wait_for

    def test_another_uid_cannot_see_or_touch_a_running_job(self):
        require_root(self, "two unprivileged users and a root daemon")
        alice, bob = make_user(self), make_user(self)
        self.assertNotEqual(alice.uid, bob.uid)
        src = make_file(os.path.join(self.data, "slow.bin"), 8 * MiB, 5)
        os.chmod(src, 0o644)
        small = make_file(os.path.join(self.data, "small.bin"), 1000, 6)
        os.chmod(small, 0o644)
        os.chmod(self.data, 0o755)
        adir = self.owned_dir("alice", alice.uid, alice.gid, 0o700)
        bdir = self.owned_dir("bob", bob.uid, bob.gid, 0o700)
        d = self.daemon_for_everyone()
        c = self.client()  # root, the daemon's own uid: sees everything
        with FaultOrigin(self.data, rate=1 * MiB) as fo:
            job = self.as_caller(self.DL + "print(dl(%r, %r, True))" % (
                fo.url("/slow.bin", case=self.id()), adir + "/slow.bin"),
                alice.uid, alice.gid)
            self.assertEqual(len(job), 32, job)  # an id, not an error
            self.wait_for(lambda: c.status(job).state == td.pb.JOB_STATE_RUNNING,
                          what="alice's job running")
            mine = self.as_caller(self.DL + "print(dl(%r, %r, True))" % (
                "file://" + small, bdir + "/small.bin"), bob.uid, bob.gid)
            self.assertEqual(len(mine), 32, mine)

            out = json.loads(self.as_caller(PROBE % {"jid": job, "unknown": UNKNOWN},
                                            bob.uid, bob.gid))
            for call, answer in out["theirs"].items():
                self.assertTrue(answer.startswith("NOT_FOUND|"), (call, answer))
                # Word for word what an unknown id gets.
                self.assertEqual(answer.replace(job, "JID"),
                                 out["unknown"][call].replace(UNKNOWN, "JID"), call)
            self.assertNotIn(job, out["listed"])
            self.assertIn(mine, out["listed"])
            # Alice's List has her job and not Bob's.
            alices = self.as_caller(LIST, alice.uid, alice.gid).split()
            self.assertIn(job, alices)
            self.assertNotIn(mine, alices)

            # Unaffected: still running, nobody attached by Bob's Watch or
            # cut by his Cancel; then it completes, and the file is hers.
            st = c.status(job)
            self.assertEqual(st.state, td.pb.JOB_STATE_RUNNING)
            self.assertEqual(st.subscribers, 0)
            events = list(c.watch(job, timeout=120))
            self.assertEqual(tj.kinds(events)[-1], "completed", events[-1])
            self.assertEqual(c.status(job).state, td.pb.JOB_STATE_DONE)
        self.assertEqual(sha256_file(adir + "/slow.bin"), sha256_file(src))
        self.assertEqual(os.stat(adir + "/slow.bin").st_uid, alice.uid)
        self.assertEqual(os.listdir(bdir), ["small.bin"])
        self.stop_ok(d)


if __name__ == "__main__":
    unittest.main()
