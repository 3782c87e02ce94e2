"""Calls into a daemon as other local users, for the security tests.

A mix-in for a unittest.TestCase that has `self.sock` (the daemon's
socket), `self.tmp` (the test's directory) and `self.daemon(*args)`
(starts a daemon on that socket): runs gRPC snippets as another uid with
exactly the groups given, and makes folders owned by whom a test says."""

import os
import subprocess

import test_daemon as td  # the generated pb2's directory

S = "/retriever.v1.Retriever/"
NOBODY = 65534


class CallersMixin:
    def as_caller(self, code, uid=NOBODY, gid=NOBODY, groups=()):
        """Run a Python snippet as uid/gid with exactly these supplementary
        groups, the generated pb2 and this socket; returns its stdout (it
        prints one result line)."""
        prog = ("import sys, grpc; sys.path.insert(0, %r)\n"
                "from retriever.v1 import retriever_pb2 as pb\n"
                "ch = grpc.insecure_channel('unix://%s')\n"
                "S = %r\nser = lambda m: m.SerializeToString()\n" % (td.PB_DIR, self.sock, S)
                + code)
        grp = ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
        r = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid] + grp
                           + ["/usr/bin/python3", "-c", prog],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def as_nobody(self, code):
        return self.as_caller(code)

    def owned_dir(self, name, uid, gid, mode=0o755):
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return path

    def daemon_for_everyone(self):
        d = self.daemon("--socket-mode", "0666")
        os.chmod(os.path.dirname(self.sock), 0o755)
        return d

    # A Download as the caller: the last event's kind, or the RPC's error.
    DL = ("def dl(url, dest, detach=False):\n"
          "    try:\n"
          "        evs = list(ch.unary_stream(S+'Download', request_serializer=ser,"
          " response_deserializer=pb.JobEvent.FromString)(pb.DownloadRequest(sources=["
          "pb.Source(url=url, destination=dest)], detach=detach), timeout=30))\n"
          "        return evs[-1].job_id if detach else evs[-1].WhichOneof('event')\n"
          "    except grpc.RpcError as e:\n"
          "        return e.code().name\n")
