#!/usr/bin/python3
"""The manual pages and the shell completion cannot fall behind the programs.

  PagesTest       each page (docs/man/) renders with groff -ww and with
                  man -l without a warning; every command of
                  'retrieverctl --help' has a section in retrieverctl(1)
                  holding every option 'retrieverctl COMMAND --help' prints;
                  every flag of 'retrieverd --help' is in retrieverd(8) or is
                  a key in retrieverd.conf(5); every key of
                  packaging/retrieverd.conf is in retrieverd.conf(5).
  CompletionTest  bash: the commands, and every option of each command's
                  --help, completed by _retrieverctl; zsh: every option in
                  the command's arm of _retrieverctl, and `zsh -n` when zsh
                  is installed.
  CheckerTest     each of the checks above reports an option or key taken
                  out of a page or a completion (so they can fail).
  JobIdTest       bash completes the job ids of watch, cancel and status
                  from a real retrieverd with a detached slow job.

The options are read from the current build's --help, so an option added to
client/cli.c without its line in retrieverctl.1 and in both completions
fails here.

Environment (set by ctest): RV_CTL, RV_DAEMON, RV_VERSION, RV_SOURCE_DIR,
PYTHONPATH reaching tests/fixtures. By hand:

  RV_CTL=build/client/retrieverctl RV_DAEMON=build/daemon/retrieverd \\
  RV_VERSION=0.1.0 RV_SOURCE_DIR=. PYTHONPATH=tests/fixtures \\
  /usr/bin/python3 tests/packaging/test_docs.py -v
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
SOURCE = os.environ["RV_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE, "tests", "fixtures"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "client"))
import daemons  # noqa: E402
import test_cli_jobs as jobs  # noqa: E402  (its origins and helpers; not its tests)

CTL = os.environ["RV_CTL"]
DAEMON = os.environ["RV_DAEMON"]
MAN = os.path.join(SOURCE, "docs", "man")
PAGES = ["retrieverctl.1", "retrieverd.8", "retrieverd.conf.5"]
BASH = os.path.join(SOURCE, "packaging", "completion", "retrieverctl.bash")
ZSH = os.path.join(SOURCE, "packaging", "completion", "_retrieverctl")
CONF = os.path.join(SOURCE, "packaging", "retrieverd.conf")
TIMEOUT = 60


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, **kw)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# An option line of a --help: two blanks, then "-x, --name", "    --name"
# (retrieverctl) or "--name" (retrieverd); a wrapped description is
# indented further and never matches.
OPTION_LINE = re.compile(r"^  (?:(-[A-Za-z0-9]), |    )?(--[a-z0-9][a-z0-9-]*)")


def help_options(argv):
    """The options (short and long) a --help prints, in its order."""
    r = run(argv)
    assert r.returncode == 0, (argv, r.stderr)
    opts = []
    for line in r.stdout.splitlines():
        m = OPTION_LINE.match(line)
        if m:
            opts += [o for o in m.groups() if o and o not in opts]
    assert opts, "no option found in the output of %s" % argv
    return opts


def commands():
    """The commands of the overview ('Commands:' up to the next blank line),
    help included."""
    out = run([CTL, "--help"]).stdout.splitlines()
    start = out.index("Commands:") + 1
    cmds = []
    for line in out[start:]:
        if not line.strip():
            break
        cmds.append(line.split()[0])
    assert "download" in cmds and "cache" in cmds, cmds
    return cmds


def command_options():
    """{command: its options}, for every command but help."""
    return {c: help_options([CTL, c, "--help"]) for c in commands() if c != "help"}


def plain(roff):
    """The source of a page with escapes taken off, so that an option reads
    as typed: \\- is -, font changes and quotes go."""
    s = roff.replace("\\-", "-").replace("\\e", "\\")
    s = re.sub(r"\\f[BIRP]", "", s)
    return s.replace('"', " ")


def has(text, opt):
    """opt occurs in text as a whole option (not as the head of a longer one)."""
    return re.search(r"(?<![A-Za-z0-9-])" + re.escape(opt) + r"(?![A-Za-z0-9-])", text)


def man_sections(roff):
    """{first word of each .SS title: its plain text}; general options under
    'GENERAL'."""
    out = {}
    s = plain(roff)
    for m in re.finditer(r"^\.S([SH])\s+(.*)\n((?:(?!\.S[SH]\s).*\n)*)", s, re.M):
        title = m.group(2).split()
        key = "GENERAL" if title[:2] == ["GENERAL", "OPTIONS"] else title[0]
        if m.group(1) == "S" or key == "GENERAL":
            out.setdefault(key, m.group(3))
    return out


def missing_in_man(roff, opts_by_cmd, general):
    """What retrieverctl.1 lacks: 'COMMAND: OPTION' strings."""
    secs = man_sections(roff)
    missing = [o for o in general if not has(secs.get("GENERAL", ""), o)]
    for cmd, opts in opts_by_cmd.items():
        if cmd not in secs:
            missing.append(cmd + ": no section")
            continue
        missing += ["%s: %s" % (cmd, o) for o in opts if not has(secs[cmd], o)]
    return missing


def conf_keys():
    keys = re.findall(r"^#?([a-z][a-z0-9-]*) = ", read(CONF), re.M)
    assert len(keys) > 20, keys
    return keys


def missing_keys(roff, keys):
    s = plain(roff)
    return [k for k in keys if not re.search(r"^\.BI " + re.escape(k) + r"\s+= ", s, re.M)]


def zsh_arms(text):
    """{command: the text of its arm in _retrieverctl's case}."""
    arms = {}
    for m in re.finditer(r"^    ([a-z|-]+)\)\n(.*?);;", text, re.M | re.S):
        body = m.group(2)
        for cmd in m.group(1).split("|"):
            arms[cmd] = body
    return arms


def missing_in_zsh(text, opts_by_cmd):
    arms = zsh_arms(text)
    # The arrays an arm may expand: $common, $fetch (download's options
    # that cat takes too).
    arrays = dict(re.findall(r"^  ([a-z]+)=\((.*?)\n  \)", text, re.S | re.M))
    missing = []
    for cmd, opts in opts_by_cmd.items():
        if cmd not in arms:
            missing.append(cmd + ": no arm")
            continue
        arm = arms[cmd] + "".join(v for k, v in arrays.items() if "$" + k in arms[cmd])
        missing += ["%s: %s" % (cmd, o) for o in opts if not has(arm, o)]
    return missing


def bash_complete(words, env=None, script=BASH):
    """COMPREPLY of _retrieverctl for words (the last one being completed)."""
    quoted = " ".join("'%s'" % w.replace("'", "'\\''") for w in words)
    prog = ("source '%s'; COMP_WORDS=(%s); COMP_CWORD=%d; _retrieverctl; "
            "printf '%%s\\n' \"${COMPREPLY[@]}\"" % (script, quoted, len(words) - 1))
    r = run(["bash", "--norc", "--noprofile", "-c", prog], env=env)
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.splitlines() if w]


def missing_in_bash(opts_by_cmd, script=BASH):
    missing = []
    for cmd, opts in opts_by_cmd.items():
        words = [CTL] + (["cache", "ls"] if cmd == "cache" else [cmd]) + ["-"]
        got = set(bash_complete(words, script=script))
        missing += ["%s: %s" % (cmd, o) for o in opts if o not in got]
    return missing


class PagesTest(unittest.TestCase):
    def test_pages_render_without_warnings(self):
        for page in PAGES:
            path = os.path.join(MAN, page)
            r = run(["groff", "-man", "-Tutf8", "-ww", "-z", path])
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)
            env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANPAGER="cat",
                       PAGER="cat")
            r = run(["man", "--warnings", "-l", path], env=env)
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)
            name = page.rsplit(".", 1)[0]
            self.assertTrue(re.search(r"NAME\n\s+" + re.escape(name) + r"\s+-\s", r.stdout),
                            page + ": no NAME line")
            # Every page names the two others.
            for other in PAGES:
                if other != page:
                    o, sec = other.rsplit(".", 1)
                    self.assertIn("%s(%s)" % (o, sec), r.stdout, page)

    def test_retrieverctl_page_has_every_option_of_every_command(self):
        opts = command_options()
        self.assertIn("--connections", opts["download"])
        general = help_options([CTL, "--help"])
        general = [o for o in general if o in ("-h", "--help", "-V", "--version", "--socket")]
        self.assertEqual(len(general), 5, general)
        self.assertEqual(missing_in_man(read(os.path.join(MAN, "retrieverctl.1")), opts,
                                        general), [])

    def test_conf_page_has_every_key(self):
        self.assertEqual(missing_keys(read(os.path.join(MAN, "retrieverd.conf.5")),
                                      conf_keys()), [])

    def test_daemon_flags_are_in_its_page_or_are_keys(self):
        keys = set(conf_keys())
        page = plain(read(os.path.join(MAN, "retrieverd.8")))
        flags = help_options([DAEMON, "--help"])
        self.assertIn("--max-running-jobs", flags)
        missing = [f for f in flags
                   if f.lstrip("-") not in keys and not has(page, f)]
        self.assertEqual(missing, [])
        # A key of --help that is not in the example config is a key the
        # example and retrieverd.conf(5) lack.
        settings = [f[2:] for f in flags
                    if f not in ("-h", "--help", "-V", "--version", "--config",
                                 "--foreground")]
        self.assertEqual([s for s in settings if s not in keys], [])
        # retrieverd(8) lists every key too.
        self.assertEqual([k for k in keys if not has(page, k)], [])


class CompletionTest(unittest.TestCase):
    def test_bash_commands(self):
        cmds = commands()
        self.assertEqual(sorted(bash_complete([CTL, ""])), sorted(cmds))
        self.assertEqual(bash_complete([CTL, "dow"]), ["download"])
        self.assertEqual(bash_complete([CTL, "--socket", "/x", "wa"]), ["watch"])
        self.assertEqual(sorted(bash_complete([CTL, "cache", ""])),
                         ["clear", "ls", "rm", "verify"])
        self.assertIn("exit-codes", bash_complete([CTL, "help", ""]))

    def test_bash_options(self):
        self.assertEqual(sorted(bash_complete([CTL, "download", "--con"])),
                         ["--connect-timeout", "--connections"])
        self.assertEqual(sorted(bash_complete([CTL, "list", "--state", "c"])),
                         ["cancelled"])
        self.assertEqual(missing_in_bash(command_options()), [])

    def test_zsh_options(self):
        self.assertEqual(missing_in_zsh(read(ZSH), command_options()), [])
        # Every command is offered.
        for c in commands():
            self.assertIn("'%s:" % c, read(ZSH), c)

    def test_zsh_syntax(self):
        zsh = shutil.which("zsh")
        if not zsh:
            # .ci/install-deps installs it: in CI a missing zsh is a failure.
            if daemons.in_ci():
                self.fail("zsh is not installed (.ci/install-deps installs it)")
            self.skipTest("zsh is not installed: only the option lists of "
                          "_retrieverctl are checked (.ci/install-deps installs it)")
        r = run([zsh, "-n", ZSH])
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_bash_syntax(self):
        r = run(["bash", "-n", BASH])
        self.assertEqual((r.returncode, r.stderr), (0, ""))


class CheckerTest(unittest.TestCase):
    """The checks above find an option or key taken out (each of them could
    otherwise pass by matching nothing)."""

    def test_an_option_missing_from_the_man_page_is_found(self):
        roff = read(os.path.join(MAN, "retrieverctl.1"))
        opts = command_options()
        general = ["--socket"]
        self.assertEqual(missing_in_man(roff, opts, general), [])
        # --netrc-file out of download's section only: --netrc stays.
        cut = roff.replace(".BI \\-\\-netrc\\-file \" FILE\"\n", ".B \\-\\-netrc\n", 1)
        self.assertNotEqual(cut, roff)
        self.assertEqual(missing_in_man(cut, opts, general), ["download: --netrc-file"])
        # An option in another command's section does not count for this one.
        cut = re.sub(r"(\.SS \"list.*?)\.BI \\-\\-state \" STATE\"\n", r"\1.B x\n", roff,
                     count=1, flags=re.S)
        self.assertEqual(missing_in_man(cut, opts, general), ["list: --state"])
        # A command without a section.
        cut = roff.replace('.SS "stats', '.SS "statistics', 1)
        self.assertEqual(missing_in_man(cut, opts, general), ["stats: no section"])

    def test_a_key_missing_from_the_conf_page_is_found(self):
        roff = read(os.path.join(MAN, "retrieverd.conf.5"))
        cut = roff.replace(".BI per\\-uid\\-calls", ".BI per\\-uid\\-cal", 1)
        self.assertNotEqual(cut, roff)
        self.assertEqual(missing_keys(cut, conf_keys()), ["per-uid-calls"])

    def test_an_option_missing_from_a_completion_is_found(self):
        opts = command_options()
        text = read(ZSH)
        cut = text.replace("'--no-progress[no progress display]' \\\n", "", 1)
        self.assertNotEqual(cut, text)
        self.assertEqual(missing_in_zsh(cut, opts), ["download: --no-progress"])
        # An option of the $fetch array, which both download and cat expand.
        cut = text.replace("'--limit-rate=[", "'--limit-ratio=[", 1)
        self.assertNotEqual(cut, text)
        self.assertEqual(missing_in_zsh(cut, opts),
                         ["download: --limit-rate", "cat: --limit-rate"])
        tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                           "rv-docs-%d.bash" % os.getpid())
        self.addCleanup(lambda: os.path.exists(tmp) and os.unlink(tmp))
        text = read(BASH)
        cut = text.replace(" --retry-refused ", " ", 1)
        self.assertNotEqual(cut, text)
        with open(tmp, "w") as f:
            f.write(cut)
        # Shared by download and cat (the "fetch" list): missing from both.
        self.assertEqual(missing_in_bash(opts, script=tmp),
                         ["download: --retry-refused", "cat: --retry-refused"])


class JobIdTest(jobs.Base):
    """Job ids completed from 'retrieverctl list --json' of a real daemon,
    through the --socket on the command line being completed."""

    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.tmp, "run", "retrieverd.sock")
        self.d = daemons.Daemon(["--socket", self.sock])
        self.addCleanup(self.d.kill)
        self.d.start()

    def tearDown(self):
        self.assertEqual(self.d.stop()[0], 0, self.d.log())
        self.d.assert_clean(self)

    def test_job_ids_of_watch_cancel_status(self):
        # No job: nothing offered (and no daemon started: --socket is given).
        self.assertEqual(bash_complete([CTL, "--socket", self.sock, "watch", ""]), [])
        p = jobs.ctl("--socket", self.sock, "download", "--detach", "-c", "1", "-o",
                     os.path.join(self.out, "slow.bin"), self.slow_url("docs-complete"))
        self.assert_rc(p, 0)
        job = p.stdout.strip()
        self.assertRegex(job, r"^[0-9a-f]{32}$")
        for cmd in ("watch", "cancel", "status"):
            self.assertEqual(bash_complete([CTL, "--socket", self.sock, cmd, ""]), [job],
                             cmd)
            self.assertEqual(bash_complete([CTL, cmd, "--socket=" + self.sock, job[:5]]),
                             [job], cmd)
        self.assertEqual(bash_complete([CTL, "--socket", self.sock, "cancel",
                                        "x" + job[:5]]), [])
        # cancel completes more ids after the first.
        self.assertEqual(bash_complete([CTL, "--socket", self.sock, "cancel", "abc", ""]),
                         [job])
        self.assert_rc(jobs.ctl("--socket", self.sock, "cancel", job), 0)
        # An ended job: status (which lists --all) still offers it, watch no more.
        self.assertEqual(bash_complete([CTL, "--socket", self.sock, "watch", ""]), [])
        self.assertEqual(bash_complete([CTL, "--socket", self.sock, "status", ""]), [job])


if __name__ == "__main__":
    unittest.main()
