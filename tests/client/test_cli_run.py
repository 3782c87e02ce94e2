#!/usr/bin/python3
"""The download core both modes share (client/run.c, issue 22): what
--local says of a shared destination, through the one destination set
(client/dest.c) that the daemon mode uses too (test_cli_daemon.py's
test_local_validation_sends_nothing checks the daemon mode's words).

  SharedDestinationTest  --local --no-state: each later URL with the
                         destination of an earlier one is rejected naming
                         the first; an unrelated one in between is fine;
                         nothing is downloaded (the URLs' hosts are never
                         asked: the rejection comes first).

Environment (set by ctest): RV_CTL.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

CTL = os.environ["RV_CTL"]
RUN_TIMEOUT = 60  # a bound on any one retrieverctl run


class SharedDestinationTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-run-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def download(self, *args):
        return subprocess.run([CTL, "download", "--local", "--no-state", "--no-progress"] +
                              list(args), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, cwd=self.tmp)

    def test_each_later_one_names_the_first(self):
        p = self.download("-d", self.tmp, "http://h/a.bin", "http://x/b.bin",
                          "http://g/a.bin", "http://k/a.bin")
        self.assertEqual(p.returncode, 3, p.stderr)
        for url in ("http://g/a.bin", "http://k/a.bin"):
            self.assertIn("retrieverctl: '%s': two downloads share one destination "
                          "(destination '%s/a.bin' is also the destination of "
                          "'http://h/a.bin')" % (url, self.tmp), p.stderr)
        self.assertNotIn("'http://x/b.bin'", p.stderr)
        self.assertIn("retrieverctl: nothing downloaded: 2 of 4 URLs rejected", p.stderr)
        self.assertEqual(os.listdir(self.tmp), [])

    def test_second_of_two(self):
        p = self.download("-d", self.tmp, "http://h/a.bin", "http://g/a.bin")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("retrieverctl: 'http://g/a.bin': two downloads share one destination "
                      "(destination '%s/a.bin' is also the destination of 'http://h/a.bin')"
                      % self.tmp, p.stderr)


if __name__ == "__main__":
    unittest.main()
