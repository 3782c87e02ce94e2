/* test_cli.c — retrieverd's argument parser, help, loading the settings
 * from the flags, and the default socket path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "rv_test.h"

/* Parse a NULL-terminated list (argv[0] added). Returns the result code;
 * *err gets the message (caller frees). */
static int parse(rvd_options *o, char **err, char **args) {
    char *argv[64] = {"retrieverd"};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = args[argc - 1];
    *err = NULL;
    return rvd_cli_parse(argc, argv, o, err);
}

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})

static void test_defaults_and_values(void) {
    rvd_options o;
    char *err;
    CHECK(parse(&o, &err, (char *[]){NULL}) == 0);
    CHECK(o.verb == RVD_VERB_RUN);
    CHECK(o.socket_path == NULL);
    CHECK_EQ_U64(o.socket_mode, 0600);
    CHECK(!o.foreground);

    CHECK(parse(&o, &err,
                ARGS("--socket", "/run/x.sock", "--socket-mode", "0660", "--foreground")) == 0);
    CHECK_STREQ(o.socket_path, "/run/x.sock");
    CHECK_EQ_U64(o.socket_mode, 0660);
    CHECK(o.foreground);

    CHECK(parse(&o, &err, ARGS("--socket=/a b.sock", "--socket-mode=666")) == 0);
    CHECK_STREQ(o.socket_path, "/a b.sock");
    CHECK_EQ_U64(o.socket_mode, 0666);

    CHECK(parse(&o, &err, ARGS("--socket-mode", "600")) == 0);
    CHECK_EQ_U64(o.socket_mode, 0600);

    CHECK(parse(&o, &err, ARGS("--socket", "/x", "-h", "--bogus")) == 0);
    CHECK(o.verb == RVD_VERB_HELP);
    CHECK(parse(&o, &err, ARGS("--help")) == 0 && o.verb == RVD_VERB_HELP);
    CHECK(parse(&o, &err, ARGS("--version")) == 0 && o.verb == RVD_VERB_VERSION);
    CHECK(parse(&o, &err, ARGS("-V")) == 0 && o.verb == RVD_VERB_VERSION);
}

static void expect_usage(char **args, const char *text) {
    rvd_options o;
    char *err;
    CHECK(parse(&o, &err, args) == -EINVAL);
    CHECK(err && strstr(err, text));
    CHECK(err && strstr(err, "Try 'retrieverd --help'"));
    if (err && !strstr(err, text))
        fprintf(stderr, "    got: %s\n", err);
    free(err);
}

static void test_usage_errors(void) {
    expect_usage(ARGS("--socket"), "'--socket' needs a path");
    expect_usage(ARGS("--socket="), "non-empty path");
    expect_usage(ARGS("--socket-mode"), "needs an octal mode");
    expect_usage(ARGS("--socket-mode", "0400"), "invalid socket mode '0400'");
    expect_usage(ARGS("--socket-mode", "1777"), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", "0800"), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", "06600"), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", ""), "invalid socket mode");
    expect_usage(ARGS("--socket-mode", "rw"), "invalid socket mode");
    expect_usage(ARGS("--sock", "/x"), "unknown option '--sock'");
    expect_usage(ARGS("--socketx=/x"), "unknown option '--socketx=/x'");
    expect_usage(ARGS("-x"), "unknown option '-x'");
    expect_usage(ARGS("serve"), "unexpected argument 'serve'");

    /* The settings' flags: each value checked here, naming the flag. */
    expect_usage(ARGS("--chunk-size", "1K"), "invalid value '1K' for --chunk-size: expected a "
                                             "size from 64K to 1G");
    expect_usage(ARGS("--max-running-jobs=0"), "invalid value '0' for --max-running-jobs: "
                                               "expected a whole number from 1 to 10000");
    expect_usage(ARGS("--log-level", "loud"), "expected error, warning, info or debug");
    expect_usage(ARGS("--state-dir", "state"), "invalid value 'state' for --state-dir: expected "
                                               "an absolute path");
    expect_usage(ARGS("--cache-quota"), "option '--cache-quota' needs a size");
    expect_usage(ARGS("--socket", "/"
                                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                 "too long");
    expect_usage(ARGS("--config"), "option '--config' needs a path");
    expect_usage(ARGS("--config", "r.conf"), "invalid value 'r.conf' for --config: expected an "
                                             "absolute path");
    expect_usage(ARGS("--foreground=yes"), "option '--foreground' takes no value");
    /* Typos get a suggestion. */
    expect_usage(ARGS("--max-running-job", "4"), "unknown option '--max-running-job'; did you "
                                                 "mean '--max-running-jobs'?");
    expect_usage(ARGS("--forground"), "did you mean '--foreground'?");
    expect_usage(ARGS("--cache_dir=/x"), "unknown option '--cache_dir=/x'; did you mean "
                                         "'--cache-dir'?");
    expect_usage(ARGS("--max-jobs", "4"), "unknown option '--max-jobs'");
}

static void test_setting_flags(void) {
    rvd_options o;
    char *err;
    CHECK(parse(&o, &err,
                ARGS("--state-dir", "/s", "--cache-dir=/c", "--cache-quota", "0",
                     "--ca-file=/ca.pem", "--max-connections", "8", "--max-connections-per-host=4",
                     "--max-connections-per-object", "2", "--chunk-size=1M", "--max-running-jobs",
                     "3", "--max-queued-jobs=0", "--max-subscribers", "9", "--job-history=1",
                     "--log-level", "debug", "--config", "/etc/r.conf")) == 0);
    CHECK_STREQ(o.args.config, "/etc/r.conf");
    CHECK_STREQ(o.args.value[RVD_KEY_STATE_DIR], "/s");
    CHECK_STREQ(o.args.value[RVD_KEY_CACHE_DIR], "/c");
    CHECK_STREQ(o.args.value[RVD_KEY_CACHE_QUOTA], "0");
    CHECK_STREQ(o.args.value[RVD_KEY_CA_FILE], "/ca.pem");
    CHECK_STREQ(o.args.value[RVD_KEY_MAX_CONNECTIONS], "8");
    CHECK_STREQ(o.args.value[RVD_KEY_MAX_CONNECTIONS_PER_HOST], "4");
    CHECK_STREQ(o.args.value[RVD_KEY_MAX_CONNECTIONS_PER_OBJECT], "2");
    CHECK_STREQ(o.args.value[RVD_KEY_CHUNK_SIZE], "1M");
    CHECK_STREQ(o.args.value[RVD_KEY_MAX_RUNNING_JOBS], "3");
    CHECK_STREQ(o.args.value[RVD_KEY_MAX_QUEUED_JOBS], "0");
    CHECK_STREQ(o.args.value[RVD_KEY_MAX_SUBSCRIBERS], "9");
    CHECK_STREQ(o.args.value[RVD_KEY_JOB_HISTORY], "1");
    CHECK_STREQ(o.args.value[RVD_KEY_LOG_LEVEL], "debug");
    CHECK(o.args.value[RVD_KEY_SOCKET] == NULL);
    CHECK(o.settings.state_dir == NULL); /* parse does not resolve */

    /* A flag given twice: the last wins. */
    CHECK(parse(&o, &err,
                ARGS("--job-history", "1", "--job-history=2", "--socket", "/a", "--socket=/b")) ==
          0);
    CHECK_STREQ(o.args.value[RVD_KEY_JOB_HISTORY], "2");
    CHECK_STREQ(o.socket_path, "/b");
}

static void test_load(void) {
    char dir[] = "/tmp/rvd-cli-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char conf[64];
    snprintf(conf, sizeof(conf), "%s/d.conf", dir);
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("socket-mode = 0660\nmax-running-jobs = 5\njob-history = 6\n", f);
    fclose(f);
    chmod(conf, 0644);

    rvd_options o;
    char *err = NULL;
    CHECK(parse(&o, &err, ARGS("--config", conf, "--job-history=7")) == 0);
    rvd_settings_env env = {.euid = 1000, .home = "/home/u", .xdg_runtime_dir = "/run/user/1000"};
    CHECK(rvd_cli_load(&o, &env, &err) == 0);
    CHECK_STREQ(o.settings.socket, "/run/user/1000/retriever/retrieverd.sock");
    CHECK(o.socket_path == o.settings.socket); /* daemon.c's view follows the settings */
    CHECK_EQ_U64(o.socket_mode, 0660);
    CHECK_EQ_U64(o.settings.max_running_jobs, 5);
    CHECK_EQ_U64(o.settings.job_history, 7);
    CHECK_STREQ(o.settings.state_dir, "/home/u/.local/state/retriever");
    CHECK(o.env.euid == 1000 && o.env.home == env.home);

    /* A broken file: an error naming it, the loaded settings untouched. */
    f = fopen(conf, "w");
    fputs("max-running-jobs = many\n", f);
    fclose(f);
    CHECK(rvd_cli_load(&o, &env, &err) == -EINVAL);
    CHECK(err && strstr(err, "d.conf:1: invalid value 'many' for max-running-jobs"));
    free(err);
    CHECK_EQ_U64(o.settings.max_running_jobs, 5);
    rvd_cli_options_free(&o);
    CHECK(o.settings.socket == NULL);
    unlink(conf);
    rmdir(dir);
}

static void test_help(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rvd_cli_help(f);
    fclose(f);
    CHECK(strstr(buf, "  --config PATH"));
    CHECK(strstr(buf, "  --foreground"));
    CHECK(strstr(buf, "SIGHUP"));
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "  --%s ", rvd_settings_key_name((rvd_key)k));
        CHECK(strstr(buf, flag));
    }
    for (char *line = buf; *line;) {
        size_t n = strcspn(line, "\n");
        CHECK(n <= 80);
        line += n + (line[n] == '\n');
    }
    free(buf);
}

static void test_default_path(void) {
    char *p = NULL, *err = NULL;
    CHECK(rvd_default_socket_path("/run/user/1000", &p, &err) == 0);
    CHECK_STREQ(p, "/run/user/1000/retriever/retrieverd.sock");
    free(p);
    p = NULL;
    CHECK(rvd_default_socket_path("/run/user/1000//", &p, &err) == 0);
    CHECK_STREQ(p, "/run/user/1000/retriever/retrieverd.sock");
    free(p);
    p = NULL;

    CHECK(rvd_default_socket_path(NULL, &p, &err) == -EINVAL);
    CHECK(p == NULL);
    CHECK(err && strstr(err, "XDG_RUNTIME_DIR is not set") && strstr(err, "--socket"));
    free(err);
    err = NULL;
    CHECK(rvd_default_socket_path("", &p, &err) == -EINVAL);
    free(err);
    err = NULL;
    CHECK(rvd_default_socket_path("run/user", &p, &err) == -EINVAL);
    CHECK(err && strstr(err, "'run/user' is not an absolute path"));
    free(err);
}

int main(void) {
    test_defaults_and_values();
    test_usage_errors();
    test_setting_flags();
    test_load();
    test_help();
    test_default_path();
    return rv_test_result();
}
