#!/usr/bin/env python3
"""`cmake --install` of the build tree, and the installed programs at work.

An install into a temporary prefix must give the layout docs/daemon.md and
the systemd units describe; the installed retrieverctl must find its module
in ../lib/retriever (nothing is beside it there) and talk to the installed
retrieverd; the installed units must name the installed daemon and pass
`systemd-analyze verify`. A program of another project must build
against the installed library with pkg-config alone, and download with it.
A staged install (DESTDIR) must name the final path, not the staging one.
The manual pages and the shell completion must be where man and
bash-completion look.
"""
import glob
import os
import re
import select
import signal
import shutil
import stat
import subprocess
import tempfile
import unittest

from daemons import Daemon

CMAKE = os.environ["RV_CMAKE"]
BUILD = os.environ["RV_BUILD_DIR"]
SOURCE = os.environ["RV_SOURCE_DIR"]
VERSION = os.environ["RV_VERSION"]
CC = os.environ["RV_CC"]
SANITIZE = os.environ.get("RV_SANITIZE") == "1"

# A program of another project: the engine alone, one file:// download.
PROGRAM = r"""
#include <retriever/retriever.h>
#include <stdio.h>

int main(int argc, char **argv) {
    rv_config cfg;
    rv_config_init(&cfg);
    rv_engine *e = NULL;
    if (argc != 3 || rv_engine_new(&cfg, &e) != RV_OK)
        return 2;
    rv_request req = {.url = argv[1], .dest_path = argv[2]};
    rv_object *o = NULL;
    int r = rv_engine_add(e, &req, &o);
    unsigned active = 1;
    while (r == RV_OK && active)
        r = rv_engine_perform(e, 1000, &active);
    int ok = r == RV_OK && rv_object_state(o) == RV_STATE_DONE;
    printf("%s %s\n", rv_version(), ok ? "done" : rv_object_error_detail(o));
    rv_engine_free(e);
    return ok ? 0 : 1;
}
"""


def install(prefix, destdir=None):
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir:
        env["DESTDIR"] = destdir
    r = subprocess.run([CMAKE, "--install", BUILD, "--prefix", prefix],
                       capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)
    return r.stdout


def stop_pid(pid):
    """SIGTERM a daemon this test did not spawn, and wait (a pidfd: no
    polling) until it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if not select.select([fd], [], [], 15)[0]:
            os.kill(pid, signal.SIGKILL)
            select.select([fd], [], [], 15)
    finally:
        os.close(fd)


def exec_start(unit):
    with open(unit) as f:
        lines = [l for l in f if l.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return lines[0].strip().split("=", 1)[1]


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rv-install-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_layout_and_the_installed_programs_work(self):
        prefix = os.path.join(self.tmp, "usr")
        install(prefix)
        p = lambda rel: os.path.join(prefix, rel)  # noqa: E731
        for rel in ("bin/retrieverd", "bin/retrieverctl"):
            mode = os.stat(p(rel)).st_mode
            self.assertTrue(stat.S_ISREG(mode) and mode & 0o111, rel)
        for rel in ("lib/retriever/retrieverctl-remote.so",
                    "lib/systemd/system/retrieverd.service",
                    "lib/systemd/system/retrieverd.socket",
                    "lib/systemd/user/retrieverd.service",
                    "lib/systemd/user/retrieverd.socket",
                    "share/doc/retriever/retrieverd.conf",
                    "share/doc/retriever/daemon.md",
                    "share/doc/retriever/api.md",
                    "share/retriever/proto/retriever/v1/retriever.proto"):
            self.assertTrue(os.path.isfile(p(rel)), rel + " is not installed")
        # The manual pages and the completion, as they are in the sources.
        for rel, src in (("share/man/man1/retrieverctl.1", "docs/man/retrieverctl.1"),
                         ("share/man/man5/retrieverd.conf.5", "docs/man/retrieverd.conf.5"),
                         ("share/man/man8/retrieverd.8", "docs/man/retrieverd.8"),
                         ("share/bash-completion/completions/retrieverctl",
                          "packaging/completion/retrieverctl.bash"),
                         ("share/zsh/vendor-completions/_retrieverctl",
                          "packaging/completion/_retrieverctl")):
            self.assertTrue(os.path.isfile(p(rel)), rel + " is not installed")
            with open(p(rel)) as a, open(os.path.join(SOURCE, src)) as b:
                self.assertEqual(a.read(), b.read(), rel)
        r = subprocess.run(["man", "-w", "retrieverd.conf"], capture_output=True, text=True,
                           timeout=30, env=dict(os.environ, MANPATH=p("share/man")))
        self.assertEqual(r.stdout.strip(), p("share/man/man5/retrieverd.conf.5"), r.stderr)
        self.assertFalse(os.path.exists(p("share/doc/retriever/man")),
                         "the pages' sources are not docs")
        self.assertFalse(os.path.exists(p("bin/retrieverctl-remote.so")))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "etc")),
                         "an install must not write configuration")
        with open(p("share/doc/retriever/retrieverd.conf")) as a, \
                open(os.path.join(SOURCE, "packaging/retrieverd.conf")) as b:
            self.assertEqual(a.read(), b.read())

        ctl = p("bin/retrieverctl")
        r = subprocess.run([ctl, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(VERSION, r.stdout)

        # The installed daemon, and the installed client in daemon mode:
        # its module comes from prefix/lib/retriever.
        sock = os.path.join(self.tmp, "run", "d.sock")
        d = Daemon(["--socket", sock], binary=p("bin/retrieverd"))
        self.addCleanup(d.kill)
        d.start()
        r = subprocess.run([ctl, "--socket", sock, "ping"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("retrieverd " + VERSION, r.stdout)
        src = os.path.join(SOURCE, "packaging/retrieverd.conf")
        out = os.path.join(self.tmp, "out", "conf.txt")
        os.makedirs(os.path.dirname(out))
        r = subprocess.run([ctl, "--socket", sock, "download", "-q", "-o", out,
                            "file://" + src], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as a, open(src, "rb") as b:
            self.assertEqual(a.read(), b.read())
        rc, _ = d.stop()
        self.assertEqual(rc, 0, d.log())

        # Without its module the client says so, and --local still works.
        os.rename(p("lib/retriever/retrieverctl-remote.so"), p("lib/retriever/moved.so"))
        r = subprocess.run([ctl, "--socket", sock, "ping"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("retrieverctl-remote.so", r.stderr)

        # The units name this daemon, and systemd accepts them.
        units = p("lib/systemd/system")
        self.assertEqual(exec_start(os.path.join(units, "retrieverd.service")),
                         p("bin/retrieverd"))
        r = subprocess.run(["systemd-analyze", "verify",
                            os.path.join(units, "retrieverd.service"),
                            os.path.join(units, "retrieverd.socket")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # The per-user pair: this daemon, accepted by systemd's user manager.
        units = p("lib/systemd/user")
        self.assertEqual(exec_start(os.path.join(units, "retrieverd.service")),
                         p("bin/retrieverd") + " --idle-exit 300")
        xrd = os.path.join(self.tmp, "xdg-run")
        os.makedirs(xrd, 0o700)
        r = subprocess.run(["systemd-analyze", "--user", "verify",
                            os.path.join(units, "retrieverd.service"),
                            os.path.join(units, "retrieverd.socket")],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, XDG_RUNTIME_DIR=xrd))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # With no daemon, the installed client starts the installed one
        # (found beside it), which the test stops by its pid.
        os.rename(p("lib/retriever/moved.so"), p("lib/retriever/retrieverctl-remote.so"))
        home = os.path.join(self.tmp, "home")
        env = {k: v for k, v in os.environ.items()
               if k not in ("RETRIEVER_SOCKET", "RETRIEVER_NO_AUTOSTART")}
        env.update(HOME=home, XDG_RUNTIME_DIR=xrd, XDG_STATE_HOME=os.path.join(home, "st"),
                   XDG_CACHE_HOME=os.path.join(home, "ca"),
                   XDG_CONFIG_HOME=os.path.join(home, "co"))
        r = subprocess.run([ctl, "status"], capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = int(re.search(r"starting retrieverd \(pid (\d+),", r.stderr).group(1))
        self.addCleanup(stop_pid, pid)
        self.assertEqual(os.readlink("/proc/%d/exe" % pid), p("bin/retrieverd"))
        stop_pid(pid)

    def test_a_program_builds_against_the_installed_library(self):
        prefix = os.path.join(self.tmp, "usr")
        install(prefix)
        pcs = glob.glob(os.path.join(prefix, "lib*", "**", "retriever.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, pcs)
        self.assertTrue(os.path.isfile(os.path.join(prefix, "include/retriever/retriever.h")))
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        r = subprocess.run(["pkg-config", "--modversion", "retriever"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, VERSION), r.stderr)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "retriever"],
                               env=env, capture_output=True, text=True, timeout=30,
                               check=True).stdout.split()
        src = os.path.join(self.tmp, "user.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(self.tmp, "user")
        # A sanitizer build installs an instrumented archive: its users
        # link the runtime too.
        extra = ["-fsanitize=address,undefined"] if SANITIZE else []
        r = subprocess.run([CC, "-o", exe, src] + flags + extra, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        data = os.path.join(SOURCE, "packaging/retrieverd.conf")
        out = os.path.join(self.tmp, "got.conf")
        r = subprocess.run([exe, "file://" + data, out], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.split(), [VERSION, "done"])
        with open(out, "rb") as a, open(data, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_staged_install_names_the_final_paths(self):
        stage = os.path.join(self.tmp, "stage")
        log = install("/usr", destdir=stage)
        unit = os.path.join(stage, "usr/lib/systemd/system/retrieverd.service")
        self.assertEqual(exec_start(unit), "/usr/bin/retrieverd")
        self.assertIn(unit, log)
        self.assertTrue(os.path.isfile(os.path.join(stage, "usr/bin/retrieverd")))
        # Apart from that line, the unit is the one in the source tree.
        with open(unit) as a, open(os.path.join(SOURCE, "systemd/retrieverd.service")) as b:
            self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
