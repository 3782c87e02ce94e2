#!/usr/bin/python3
"""The zsh completion (packaging/completion/_retrieverctl) run in a real zsh.

test_docs.py checks the option lists of _retrieverctl as text and `zsh -n`;
this loads the function the way a user's zsh does (compinit with the file's
directory on $fpath) in an interactive `zsh -f` on a pseudo-terminal,
presses Tab after a partial command line, and records what the completion
offered:

  - the commands, after the program name;
  - every long option of `retrieverctl download --help`, and cat's (none
    that cat refuses), after `--`;
  - the job ids of watch, cancel and status from a real retrieverd with a
    detached slow job, through the --socket on the line being completed
    (and none once the job has ended, for watch).

How the offers are seen: a shell function named compadd (zsh runs a
function before a builtin of the same name) asks `builtin compadd -A` for
the matches the completion is adding, appends them to a file, then adds
them as usual. After the Tab the test presses a key bound to a widget that
writes a marker line with $BUFFER: keys are handled in order, so the marker
means the completion has finished (no sleeping).

Environment (set by ctest): RV_CTL, RV_DAEMON, RV_SOURCE_DIR, PYTHONPATH
reaching tests/fixtures. zsh must be installed (.ci/install-deps): in CI
its absence fails the test, elsewhere it is skipped.
"""
import os
import pty
import select
import shutil
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True
SOURCE = os.environ["RV_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE, "tests", "fixtures"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "client"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "packaging"))
import daemons  # noqa: E402
import test_cli_jobs as jobs  # noqa: E402  (its origins and helpers; not its tests)
from test_docs import command_options  # noqa: E402

CTL = os.environ["RV_CTL"]
COMPLETION_DIR = os.path.join(SOURCE, "packaging", "completion")
WAIT = 30  # a bound on any one completion (it may run retrieverctl list)
MARK = "--rv-mark--"


class Zsh:
    """An interactive `zsh -f` on a pseudo-terminal with _retrieverctl
    loaded by compinit; complete(line) returns (offers, buffer after)."""

    def __init__(self, tmp):
        self.out = os.path.join(tmp, "offers")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: nothing but exec
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp,
                   "TERM": "xterm", "LANG": "C.UTF-8",
                   "RETRIEVER_NO_AUTOSTART": "1"}
            os.execve(shutil.which("zsh"), ["zsh", "-f", "-i"], env)
        self.transcript = b""
        setup = [
            "bindkey -e",
            "unsetopt autolist listambiguous beep",
            "fpath=(%s $fpath)" % COMPLETION_DIR,
            "autoload -Uz compinit && compinit -u -D",
            "rv_out=%s" % self.out,
            # The offers: what each compadd adds (not the internal calls
            # that only ask, with -O, -A or -D).
            "compadd() { if (( ${@[(I)-[OAD]*]} )); then builtin compadd \"$@\"; return; fi;"
            " local -a rv_hits; builtin compadd -A rv_hits \"$@\";"
            " (( $#rv_hits )) && print -rl -- $rv_hits >> $rv_out;"
            " builtin compadd \"$@\"; }",
            "rv-mark() { print -r -- \"%s$BUFFER\" >> $rv_out; }" % MARK,
            "zle -N rv-mark && bindkey '^Xm' rv-mark",
            # Which file the completion was loaded from: the one under test.
            "print -r -- LOADED=${functions_source[_retrieverctl]:-$(whence -v _retrieverctl)}"
            " > $rv_out.loaded",
        ]
        for line in setup:
            self.send(line + "\n")
        self.wait_file(self.out + ".loaded")

    def send(self, text):
        os.write(self.fd, text.encode())
        self.drain(0)

    def drain(self, timeout):
        """Read what zsh wrote to the terminal (it must not block on a full
        pty); True when something came."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            self.transcript += os.read(self.fd, 65536)
        except OSError:
            return False
        return True

    def wait_file(self, path, needle=""):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                if needle in text and text.endswith("\n"):
                    return text
            self.drain(0.05)
        raise AssertionError("zsh did not get to %s (%r) within %d s; terminal:\n%s"
                             % (path, needle, WAIT, self.transcript[-3000:]))

    def complete(self, line):
        """Type line, press Tab, then the marker key; (offers, buffer)."""
        if os.path.exists(self.out):
            os.unlink(self.out)
        self.send(line + "\t\x18m")
        text = self.wait_file(self.out, MARK)
        self.send("\x15")  # kill the line for the next one
        offers, buf = [], None
        for ln in text.splitlines():
            if ln.startswith(MARK):
                buf = ln[len(MARK):]
            else:
                offers.append(ln)
        return offers, buf

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def require_zsh(tc):
    if shutil.which("zsh"):
        return
    if daemons.in_ci():
        tc.fail("zsh is not installed (.ci/install-deps installs it)")
    tc.skipTest("zsh is not installed (.ci/install-deps installs it)")


class ZshCompletionTest(jobs.Base):
    def setUp(self):
        super().setUp()
        require_zsh(self)
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.d = daemons.Daemon(["--socket", self.sock])
        self.addCleanup(self.d.kill)
        self.d.start()
        self.zsh = Zsh(self.tmp)
        self.addCleanup(self.zsh.close)

    def tearDown(self):
        self.assertEqual(self.d.stop()[0], 0, self.d.log())
        self.d.assert_clean(self)

    def test_loaded_from_the_source_tree(self):
        with open(self.zsh.out + ".loaded") as f:
            self.assertIn(os.path.join(COMPLETION_DIR, "_retrieverctl"), f.read())

    def test_commands(self):
        offers, buf = self.zsh.complete(CTL + " ")
        self.assertEqual(sorted(set(offers)),
                         sorted(["download", "cat", "status", "list", "watch", "cancel",
                                 "cache", "stats", "ping", "version", "help"]))
        offers, buf = self.zsh.complete(CTL + " dow")
        self.assertEqual(buf, CTL + " download ")
        offers, buf = self.zsh.complete(CTL + " cache ")
        self.assertEqual(sorted(set(offers)), ["clear", "ls", "rm", "verify"])

    def test_download_and_cat_options(self):
        opts = command_options()
        for cmd in ("download", "cat"):
            offers, _ = self.zsh.complete("%s %s --" % (CTL, cmd))
            got = {o.rstrip("=") for o in offers}
            want = {o for o in opts[cmd] if o.startswith("--")}
            self.assertEqual(sorted(want - got), [], cmd)
            # Nothing offered that the command does not take.
            self.assertEqual(sorted(o for o in got if o.startswith("--") and o not in want),
                             [], cmd)
        offers, _ = self.zsh.complete(CTL + " cat --")
        self.assertIn("--proxy", {o.rstrip("=") for o in offers})
        self.assertNotIn("--json", {o.rstrip("=") for o in offers})
        offers, buf = self.zsh.complete(CTL + " download --limit-r")
        self.assertEqual(buf, CTL + " download --limit-rate=")
        offers, _ = self.zsh.complete(CTL + " list --state=c")
        self.assertEqual(sorted(set(offers)), ["cancelled"])

    def test_job_ids(self):
        # No job: no id offered.
        offers, _ = self.zsh.complete("%s --socket %s watch " % (CTL, self.sock))
        self.assertEqual(offers, [])
        p = jobs.ctl("--socket", self.sock, "download", "--detach", "-c", "1", "-o",
                     os.path.join(self.out, "slow.bin"), self.slow_url("zsh-complete"))
        self.assert_rc(p, 0)
        job = p.stdout.strip()
        self.assertRegex(job, r"^[0-9a-f]{32}$")
        for cmd in ("watch", "cancel", "status"):
            offers, buf = self.zsh.complete("%s --socket %s %s " % (CTL, self.sock, cmd))
            self.assertEqual(offers, [job], cmd)
            self.assertEqual(buf, "%s --socket %s %s %s " % (CTL, self.sock, cmd, job), cmd)
            # The --socket given after the command is used too.
            offers, _ = self.zsh.complete("%s %s --socket=%s %s" % (CTL, cmd, self.sock,
                                                                   job[:5]))
            self.assertEqual(offers, [job], cmd)
        self.assert_rc(jobs.ctl("--socket", self.sock, "cancel", job), 0)
        # An ended job: status (which lists --all) still offers it, watch no more.
        offers, _ = self.zsh.complete("%s --socket %s watch " % (CTL, self.sock))
        self.assertEqual(offers, [])
        offers, _ = self.zsh.complete("%s --socket %s status " % (CTL, self.sock))
        self.assertEqual(offers, [job])


if __name__ == "__main__":
    unittest.main()
