/* test_config.c — retrieverd's settings: defaults from an explicit
 * environment, the config file, ranges, precedence and reload. */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "rv_test.h"

static char tmp[256]; /* this run's scratch directory */

static char *path_in(const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", tmp, name) < 0)
        abort();
    return p;
}

/* Write text to tmp/name (mode 0644); returns the malloc'd path. */
static char *write_conf(const char *name, const char *text, size_t len) {
    char *p = path_in(name);
    FILE *f = fopen(p, "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0)
        abort();
    chmod(p, 0644);
    return p;
}
#define WRITE(name, text) write_conf(name, text, sizeof(text) - 1)

/* A per-user environment whose default config file does not exist. */
static rvd_settings_env user_env(void) {
    return (rvd_settings_env){
        .euid = 1000,
        .home = "/home/u",
        .xdg_runtime_dir = "/run/user/1000",
        .xdg_config_home = tmp, /* tmp/retriever/retrieverd.conf: absent */
    };
}

static int load(const rvd_settings_env *env, const rvd_settings_args *args, rvd_settings *s,
                char **err) {
    *err = NULL;
    return rvd_settings_load(env, args, s, err);
}

/* Load with config file text and flags (NULL-terminated "key", "value"
 * pairs); expect an error whose message contains each of the strings in
 * want (NULL-terminated). */
static void expect_error(const char *text, const char *const *flags, int code,
                         const char *const *want) {
    char *conf = text ? write_conf("bad.conf", text, strlen(text)) : NULL;
    rvd_settings_env env = user_env();
    rvd_settings_args args = {.config = conf};
    for (size_t i = 0; flags && flags[i]; i += 2)
        args.value[rvd_settings_key_find(flags[i])] = flags[i + 1];
    rvd_settings s = {.max_connections = 4242};
    char *err = NULL;
    int r = load(&env, &args, &s, &err);
    CHECK(r == code);
    CHECK(s.max_connections == 4242 && s.socket == NULL); /* untouched */
    for (size_t i = 0; want[i]; i++) {
        CHECK(err && strstr(err, want[i]));
        if (!err || !strstr(err, want[i]))
            fprintf(stderr, "    wanted '%s' in: %s\n", want[i], err ? err : "(null)");
    }
    if (r == 0)
        rvd_settings_free(&s);
    free(err);
    free(conf);
}
#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})
#define FLAGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_user_defaults(void) {
    rvd_settings_env env = user_env();
    rvd_settings_args args = {0};
    rvd_settings s;
    char *err;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.scope == RVD_SCOPE_USER);
    CHECK_STREQ(s.socket, "/run/user/1000/retriever/retrieverd.sock");
    CHECK_EQ_U64(s.socket_mode, 0600);
    /* The same directories as retrieverctl download --local
     * (client/local.c): $XDG_x_HOME/retriever, else ~/.local/state, ~/.cache. */
    CHECK_STREQ(s.state_dir, "/home/u/.local/state/retriever");
    CHECK_STREQ(s.cache_dir, "/home/u/.cache/retriever");
    char *conf = path_in("retriever/retrieverd.conf");
    CHECK_STREQ(s.config_file, conf);
    free(conf);
    CHECK(!s.config_file_read);
    CHECK(s.ca_file == NULL);
    CHECK_EQ_U64(s.cache_quota, 10ull << 30);
    CHECK(!s.link_deliveries); /* a copy or reflink unless asked */
    CHECK_EQ_U64(s.max_connections, 64);
    CHECK_EQ_U64(s.max_connections_per_host, 16);
    CHECK_EQ_U64(s.max_connections_per_object, 16);
    CHECK_EQ_U64(s.per_uid_origin_connections, 0); /* half of max-connections */
    CHECK_EQ_U64(s.chunk_size, 16u << 20);
    {
        char *h2 = rvd_settings_value_text(&s, RVD_KEY_HTTP2);
        CHECK_STREQ(h2, "auto");
        free(h2);
    }
    CHECK_EQ_U64(s.connect_retry_ms, 3000);
    CHECK_EQ_U64(s.max_running_jobs, 64);
    CHECK_EQ_U64(s.max_queued_jobs, 10000);
    CHECK_EQ_U64(s.max_subscribers, 256);
    CHECK_EQ_U64(s.job_history, 1000);
    CHECK(s.log_level == RVD_LOG_INFO);
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        CHECK(s.source[k] == RVD_SOURCE_DEFAULT);
    rvd_settings_free(&s);
    CHECK(s.socket == NULL && s.state_dir == NULL);
    rvd_settings_free(&s); /* twice is fine: zeroed */

    /* XDG variables win over $HOME when absolute; relative ones are
     * ignored, like client/local.c does. Trailing slashes go. */
    env.xdg_state_home = "/x/state/";
    env.xdg_cache_home = "relative/cache";
    env.xdg_runtime_dir = "/run/user/1000//";
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_STREQ(s.state_dir, "/x/state/retriever");
    CHECK_STREQ(s.cache_dir, "/home/u/.cache/retriever");
    CHECK_STREQ(s.socket, "/run/user/1000/retriever/retrieverd.sock");
    rvd_settings_free(&s);

    /* No $XDG_CONFIG_HOME: ~/.config/retriever/retrieverd.conf. */
    env = user_env();
    env.xdg_config_home = NULL;
    env.home = "/nonexistent-home";
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_STREQ(s.config_file, "/nonexistent-home/.config/retriever/retrieverd.conf");
    CHECK(!s.config_file_read);
    rvd_settings_free(&s);

    /* root with XDG_RUNTIME_DIR (a login session) is a per-user daemon. */
    env = user_env();
    env.euid = 0;
    env.home = "/root";
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.scope == RVD_SCOPE_USER);
    CHECK_STREQ(s.state_dir, "/root/.local/state/retriever");
    rvd_settings_free(&s);
}

static void test_user_without_defaults(void) {
    rvd_settings_env env = user_env();
    rvd_settings_args args = {0};
    rvd_settings s;
    char *err;

    env.xdg_runtime_dir = NULL;
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "XDG_RUNTIME_DIR is not set") && strstr(err, "--socket"));
    free(err);
    env.xdg_runtime_dir = "";
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    free(err);

    /* systemd passed the socket: no path needed, none invented. */
    env.socket_activated = true;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.socket == NULL);
    rvd_settings_free(&s);
    /* ... and a configured one is kept (the daemon says it ignores it). */
    args.value[RVD_KEY_SOCKET] = "/tmp/x.sock";
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_STREQ(s.socket, "/tmp/x.sock");
    CHECK(s.source[RVD_KEY_SOCKET] == RVD_SOURCE_FLAG);
    rvd_settings_free(&s);

    /* No $HOME and no XDG directories: state-dir must be given. */
    env = user_env();
    env.home = NULL;
    env.xdg_config_home = NULL;
    args = (rvd_settings_args){0};
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "no default state-dir") && strstr(err, "--state-dir"));
    free(err);
    args.value[RVD_KEY_STATE_DIR] = "/s";
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "no default cache-dir") && strstr(err, "XDG_CACHE_HOME"));
    free(err);
    /* ... or come from a file. */
    char *conf = WRITE("dirs.conf", "state-dir = /s\ncache-dir = /c\n");
    args = (rvd_settings_args){.config = conf};
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_STREQ(s.state_dir, "/s");
    CHECK_STREQ(s.cache_dir, "/c");
    CHECK(s.config_file == NULL || strcmp(s.config_file, conf) == 0);
    CHECK(s.config_file_read);
    rvd_settings_free(&s);
    free(conf);
}

static void test_system_defaults(void) {
    rvd_settings_env env = {.euid = 0, .home = "/root"};
    rvd_settings_args args = {0};
    rvd_settings s;
    char *err;

    /* The default file is /etc/retriever/retrieverd.conf; point systemd's
     * ConfigurationDirectory= at tmp so that this machine's /etc does not
     * matter, then check the name separately. */
    env.configuration_directory = tmp;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.scope == RVD_SCOPE_SYSTEM);
    CHECK_STREQ(s.socket, "/run/retriever/retrieverd.sock");
    CHECK_STREQ(s.state_dir, "/var/lib/retriever");
    CHECK_STREQ(s.cache_dir, "/var/cache/retriever");
    CHECK(!s.config_file_read);
    rvd_settings_free(&s);

    env.configuration_directory = NULL;
    if (access("/etc/retriever/retrieverd.conf", F_OK) != 0) {
        CHECK(load(&env, &args, &s, &err) == 0);
        CHECK_STREQ(s.config_file, "/etc/retriever/retrieverd.conf");
        rvd_settings_free(&s);
    }

    /* Under systemd: StateDirectory= etc. (first entry of a list). */
    env = (rvd_settings_env){
        .euid = 0,
        .state_directory = "/var/lib/retriever2:/var/lib/other",
        .cache_directory = "/var/cache/retriever2",
        .runtime_directory = "/run/retriever2",
        .configuration_directory = tmp,
    };
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_STREQ(s.state_dir, "/var/lib/retriever2");
    CHECK_STREQ(s.cache_dir, "/var/cache/retriever2");
    CHECK_STREQ(s.socket, "/run/retriever2/retrieverd.sock");
    CHECK(s.source[RVD_KEY_STATE_DIR] == RVD_SOURCE_SYSTEMD);
    CHECK(s.source[RVD_KEY_SOCKET] == RVD_SOURCE_SYSTEMD);
    CHECK(s.source[RVD_KEY_CHUNK_SIZE] == RVD_SOURCE_DEFAULT);
    rvd_settings_free(&s);

    /* A per-user unit gets them too, and they win over the XDG defaults
     * (but not over the file). */
    char *conf = WRITE("sd.conf", "cache-dir = /from/file\n");
    env = user_env();
    env.state_directory = "/home/u/.local/state/sd";
    env.cache_directory = "/home/u/.cache/sd";
    args.config = conf;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_STREQ(s.state_dir, "/home/u/.local/state/sd");
    CHECK_STREQ(s.cache_dir, "/from/file");
    CHECK(s.source[RVD_KEY_CACHE_DIR] == RVD_SOURCE_FILE);
    rvd_settings_free(&s);
    free(conf);
}

static void test_file(void) {
    static const char text[] =
        "# retrieverd.conf\n"
        "\n"
        "   # an indented comment\n"
        "socket = /run/r/d.sock\n"
        "socket-mode=0660\n"
        "\tstate-dir\t=\t/var/lib/r   \n"
        "cache-dir = /var/cache/r#1/\r\n" /* '#' inside a value is the value's; CRLF */
        "cache-quota = 2G\n"
        "link-deliveries = true\n"
        "ca-file = /etc/ssl/my ca.pem\n"
        "deny-networks = 127.0.0.0/8, ::1/128\n"
        "max-connections = 1024\n"
        "max-connections-per-host = 1\n"
        "max-connections-per-object = 64\n"
        "per-uid-origin-connections = 5\n"
        "chunk-size = 64K\n"
        "http2 = never\n"
        "connect-retry-ms = 0\n"
        "max-running-jobs = 10000\n"
        "max-queued-jobs = 0\n"
        "max-subscribers = 1\n"
        "job-history = 0\n"
        "per-uid-running-jobs = 3\n"
        "per-uid-queued-jobs = 1000000\n"
        "per-uid-job-history = 7\n"
        "per-uid-request-bytes = 1G\n"
        "max-client-connections = 100\n"
        "per-uid-connections = 1\n"
        "per-uid-calls = 100000\n"
        "idle-exit = 604800\n"
        "log-level = debug"; /* no newline at the end */
    char *conf = WRITE("full.conf", text);
    rvd_settings_env env = user_env();
    rvd_settings_args args = {.config = conf};
    rvd_settings s;
    char *err;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.config_file_read);
    CHECK_STREQ(s.config_file, conf);
    CHECK_STREQ(s.socket, "/run/r/d.sock");
    CHECK_EQ_U64(s.socket_mode, 0660);
    CHECK_STREQ(s.state_dir, "/var/lib/r");
    CHECK_STREQ(s.cache_dir, "/var/cache/r#1");
    CHECK_EQ_U64(s.cache_quota, 2ull << 30);
    CHECK(s.link_deliveries);
    CHECK_STREQ(s.ca_file, "/etc/ssl/my ca.pem");
    CHECK_STREQ(s.deny_networks, "127.0.0.0/8, ::1/128");
    CHECK_EQ_U64(s.max_connections, 1024);
    CHECK_EQ_U64(s.max_connections_per_host, 1);
    CHECK_EQ_U64(s.max_connections_per_object, 64);
    CHECK_EQ_U64(s.per_uid_origin_connections, 5);
    CHECK_EQ_U64(s.chunk_size, 64 << 10);
    CHECK_EQ_U64(s.connect_retry_ms, 0);
    CHECK_EQ_U64(s.max_running_jobs, 10000);
    CHECK_EQ_U64(s.max_queued_jobs, 0);
    CHECK_EQ_U64(s.max_subscribers, 1);
    CHECK_EQ_U64(s.job_history, 0);
    CHECK_EQ_U64(s.per_uid_running_jobs, 3);
    CHECK_EQ_U64(s.per_uid_queued_jobs, 1000000);
    CHECK_EQ_U64(s.per_uid_job_history, 7);
    CHECK_EQ_U64(s.per_uid_request_bytes, 1ull << 30);
    CHECK_EQ_U64(s.max_client_connections, 100);
    CHECK_EQ_U64(s.per_uid_connections, 1);
    CHECK_EQ_U64(s.per_uid_calls, 100000);
    CHECK_EQ_U64(s.idle_exit, 604800);
    CHECK(s.log_level == RVD_LOG_DEBUG);
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        CHECK(s.source[k] == RVD_SOURCE_FILE);

    /* Values as they would be written back. */
    char *t;
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_CHUNK_SIZE), "64K");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_HTTP2), "never");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_CACHE_QUOTA), "2G");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_SOCKET_MODE), "0660");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_LOG_LEVEL), "debug");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_LINK_DELIVERIES), "true");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_MAX_QUEUED_JOBS), "0");
    free(t);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_CA_FILE), "/etc/ssl/my ca.pem");
    free(t);
    rvd_settings_free(&s);
    CHECK_STREQ(t = rvd_settings_value_text(&s, RVD_KEY_CA_FILE), "");
    free(t);
    free(conf);

    /* An empty file, and one of comments only, change nothing. */
    conf = WRITE("empty.conf", "");
    args.config = conf;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.config_file_read);
    CHECK_EQ_U64(s.max_running_jobs, 64);
    rvd_settings_free(&s);
    free(conf);

    /* The default file, when present, is read. */
    char *dir = path_in("retriever");
    mkdir(dir, 0755);
    conf = WRITE("retriever/retrieverd.conf", "max-running-jobs = 3\n");
    args.config = NULL;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK(s.config_file_read);
    CHECK_EQ_U64(s.max_running_jobs, 3);
    rvd_settings_free(&s);
    /* ... and a broken default file is an error like any other. */
    free(conf);
    conf = WRITE("retriever/retrieverd.conf", "max-running-jobs = 0\n");
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "retrieverd.conf:1: invalid value '0' for max-running-jobs"));
    free(err);
    unlink(conf);
    rmdir(dir);
    free(conf);
    free(dir);
}

static void test_file_errors(void) {
    expect_error("max-running-jobs\n", NULL, -EINVAL,
                 WANT("bad.conf:1: expected 'key = value', got 'max-running-jobs'"));
    expect_error("# c\n = 4\n", NULL, -EINVAL, WANT("bad.conf:2: expected 'key = value'"));
    expect_error("\n\nmax-runing-jobs = 4\n", NULL, -EINVAL,
                 WANT("bad.conf:3: unknown key 'max-runing-jobs'; did you mean "
                      "'max-running-jobs'?"));
    expect_error("max_subscribers = 4\n", NULL, -EINVAL, WANT("did you mean 'max-subscribers'?"));
    expect_error("max-job = 4\n", NULL, -EINVAL,
                 WANT("unknown key 'max-job' (retrieverd --help lists keys)"));
    expect_error("foreground = yes\n", NULL, -EINVAL,
                 WANT("bad.conf:1: 'foreground' is a command-line option (--foreground)"));
    expect_error("config = /x\n", NULL, -EINVAL, WANT("'config' is a command-line option"));
    /* A key set twice: an error, not "last wins" (a file is edited by
     * hand; two values for one key is a mistake to point out). */
    expect_error("max-running-jobs = 4\n# x\nmax-running-jobs = 5\n", NULL, -EINVAL,
                 WANT("bad.conf:3: 'max-running-jobs' is already set on line 1"));
    expect_error("socket =\n", NULL, -EINVAL, WANT("bad.conf:1: socket needs a non-empty path"));
    expect_error("state-dir = var/lib\n", NULL, -EINVAL,
                 WANT("bad.conf:1: invalid value 'var/lib' for state-dir: expected an absolute "
                      "path"));
    expect_error("http2 = yes\n", NULL, -EINVAL,
                 WANT("invalid value 'yes' for http2: expected auto, never or always"));
    expect_error("chunk-size = 16 M\n", NULL, -EINVAL,
                 WANT("invalid value '16 M' for chunk-size: expected a size from 64K to 1G"));
    expect_error("max-connections = 64 # per daemon\n", NULL, -EINVAL,
                 WANT("invalid value '64 # per daemon' for max-connections: expected a whole "
                      "number from 1 to 1024"));
    expect_error("log-level = verbose\n", NULL, -EINVAL,
                 WANT("bad.conf:1: invalid value 'verbose' for log-level: expected error, "
                      "warning, info or debug"));
    expect_error("socket-mode = 0440\n", NULL, -EINVAL,
                 WANT("bad.conf:1: invalid socket mode '0440' for socket-mode"));

    /* A NUL byte; a line beyond the limit. */
    char *conf = write_conf("bad.conf", "max-subscribers = 4\nx\0y = 1\n", 27);
    rvd_settings_env env = user_env();
    rvd_settings_args args = {.config = conf};
    rvd_settings s;
    char *err;
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "bad.conf:2: the line contains a NUL byte"));
    free(err);
    free(conf);
    size_t n = RVD_SETTINGS_MAX_LINE + 20;
    char *big = malloc(n + 1);
    memcpy(big, "ca-file = /", 11);
    memset(big + 11, 'a', n - 11);
    big[n] = '\0';
    conf = write_conf("bad.conf", big, n);
    args.config = conf;
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "bad.conf:1: the line is too long"));
    free(err);
    free(conf);
    free(big);
}

static void test_file_access(void) {
    rvd_settings_env env = user_env();
    rvd_settings s;
    char *err;

    /* --config names a file that must exist. */
    char *missing = path_in("missing.conf");
    rvd_settings_args args = {.config = missing};
    CHECK(load(&env, &args, &s, &err) == -ENOENT);
    CHECK(err && strstr(err, "cannot open the config file '") && strstr(err, "missing.conf") &&
          strstr(err, "No such file"));
    free(err);
    free(missing);

    /* Not a regular file. */
    args.config = tmp;
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "is not a regular file"));
    free(err);

    /* Anyone could write it: refused. */
    char *conf = WRITE("open.conf", "job-history = 5\n");
    chmod(conf, 0666);
    args.config = conf;
    CHECK(load(&env, &args, &s, &err) == -EPERM);
    CHECK(err && strstr(err, "is writable by everyone (mode 0666)"));
    free(err);
    chmod(conf, 0640);
    /* Owned by root (this test's files, when run as root) or by the
     * daemon's uid: fine. */
    env.euid = geteuid();
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_EQ_U64(s.job_history, 5);
    rvd_settings_free(&s);
    /* Owned by someone else: refused. */
    if (geteuid() == 0 && chown(conf, 65534, 65534) == 0) {
        env.euid = 0;
        CHECK(load(&env, &args, &s, &err) == -EPERM);
        CHECK(err && strstr(err, "belongs to uid 65534; it must belong to root or to uid 0"));
        free(err);
        env.euid = 65534;
        CHECK(load(&env, &args, &s, &err) == 0);
        rvd_settings_free(&s);
    }
    free(conf);

    /* --config must be absolute (the daemon resolves it again on SIGHUP). */
    args.config = "relative.conf";
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "for --config: expected an absolute path"));
    free(err);
}

/* Each numeric key: both bounds accepted, one beyond each refused. */
static void test_ranges(void) {
    static const struct {
        rvd_key k;
        const char *ok[4];
        const char *bad[6];
        const char *msg;
    } cases[] = {
        {RVD_KEY_MAX_CONNECTIONS,
         {"1", "1024", "64"},
         {"0", "1025", "-1", "+5", "1e3", ""},
         "a whole number from 1 to 1024"},
        {RVD_KEY_MAX_CONNECTIONS_PER_HOST,
         {"1", "1024"},
         {"0", "1025", "99999999999999999999"},
         "from 1 to 1024"},
        {RVD_KEY_MAX_CONNECTIONS_PER_OBJECT, {"1", "64"}, {"0", "65"}, "from 1 to 64"},
        {RVD_KEY_MAX_RUNNING_JOBS, {"1", "10000"}, {"0", "10001", " 5"}, "from 1 to 10000"},
        {RVD_KEY_MAX_QUEUED_JOBS, {"0", "1000000"}, {"1000001", "x"}, "from 0 to 1000000"},
        {RVD_KEY_MAX_SUBSCRIBERS, {"1", "10000"}, {"0", "10001"}, "from 1 to 10000"},
        {RVD_KEY_JOB_HISTORY, {"0", "1000000"}, {"1000001"}, "from 0 to 1000000"},
        {RVD_KEY_CHUNK_SIZE,
         {"64K", "65536", "1G", "16MiB"},
         {"63K", "65535", "1025M", "0", "2T", "-1"},
         "a size from 64K to 1G"},
        {RVD_KEY_CACHE_QUOTA,
         {"0", "1", "10G", "16777215T"},
         {"-1", "10X", "", "1.5G", "16777216T"},
         "0 for no limit"},
        {RVD_KEY_SOCKET_MODE,
         {"0600", "600", "0777", "0660"},
         {"0400", "1777", "0800", "06600", "", "rw"},
         "from 0600 to 0777 that include 0600"},
        {RVD_KEY_LOG_LEVEL,
         {"error", "warning", "info", "debug"},
         {"INFO", "warn", "", "3"},
         "expected error, warning, info or debug"},
        {RVD_KEY_LINK_DELIVERIES,
         {"true", "false"},
         {"yes", "1", "TRUE", "", "on", "false "},
         "expected true or false"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t j = 0; j < 4 && cases[i].ok[j]; j++) {
            char *err = NULL;
            int r = rvd_settings_check(cases[i].k, cases[i].ok[j], &err);
            CHECK(r == 0);
            if (r != 0)
                fprintf(stderr, "    --%s %s: %s\n", rvd_settings_key_name(cases[i].k),
                        cases[i].ok[j], err);
            free(err);
        }
        for (size_t j = 0; j < 6 && cases[i].bad[j]; j++) {
            char *err = NULL;
            CHECK(rvd_settings_check(cases[i].k, cases[i].bad[j], &err) == -EINVAL);
            CHECK(err && strstr(err, cases[i].msg));
            char flag[64];
            snprintf(flag, sizeof(flag), "--%s", rvd_settings_key_name(cases[i].k));
            CHECK(err && strstr(err, flag));
            if (!err || !strstr(err, cases[i].msg))
                fprintf(stderr, "    --%s '%s': %s\n", flag, cases[i].bad[j], err ? err : "(null)");
            free(err);
        }
    }

    /* Paths: absolute; the socket must fit a sockaddr_un (107 bytes). */
    char *err = NULL;
    char sock[120] = "/";
    memset(sock + 1, 's', 106);
    sock[107] = '\0';
    CHECK(rvd_settings_check(RVD_KEY_SOCKET, sock, &err) == 0);
    strcat(sock, "s");
    CHECK(rvd_settings_check(RVD_KEY_SOCKET, sock, &err) == -EINVAL);
    CHECK(err && strstr(err, "is too long (108 bytes; at most 107)"));
    free(err);
    CHECK(rvd_settings_check(RVD_KEY_CA_FILE, "ca.pem", &err) == -EINVAL);
    CHECK(err && strstr(err, "invalid value 'ca.pem' for --ca-file: expected an absolute path"));
    free(err);
    /* A path that would not read back as written is refused: a control
     * character, or a blank left at its end once its trailing '/' go. */
    CHECK(rvd_settings_check(RVD_KEY_STATE_DIR, "/run/a\tb", &err) == -EINVAL);
    CHECK(err && strstr(err, "--state-dir has a control character"));
    free(err);
    CHECK(rvd_settings_check(RVD_KEY_CACHE_DIR, "/run  /", &err) == -EINVAL);
    CHECK(err && strstr(err, "--cache-dir '/run  /' ends in a blank before its last '/'"));
    free(err);
    CHECK(rvd_settings_check(RVD_KEY_CACHE_DIR, "/run a/b/", &err) == 0);
    CHECK(rvd_settings_check(RVD_KEY_STATE_DIR, "", &err) == -EINVAL);
    CHECK(err && strstr(err, "--state-dir needs a non-empty path"));
    free(err);
    CHECK(rvd_settings_check(RVD_KEY_STATE_DIR, NULL, &err) == -EINVAL);
    CHECK(err && strstr(err, "option '--state-dir' needs a path"));
    free(err);
    CHECK(rvd_settings_check(RVD_KEY_CHUNK_SIZE, NULL, &err) == -EINVAL);
    CHECK(err && strstr(err, "option '--chunk-size' needs a size"));
    free(err);
}

static void test_precedence(void) {
    char *conf =
        WRITE("prec.conf", "max-running-jobs = 7\nchunk-size = 1M\nstate-dir = /file/state\n");
    rvd_settings_env env = user_env();
    env.state_directory = "/systemd/state";
    rvd_settings_args args = {.config = conf};
    args.value[RVD_KEY_CHUNK_SIZE] = "2M";
    args.value[RVD_KEY_JOB_HISTORY] = "9";
    rvd_settings s;
    char *err;
    CHECK(load(&env, &args, &s, &err) == 0);
    CHECK_EQ_U64(s.max_running_jobs, 7); /* file over default */
    CHECK(s.source[RVD_KEY_MAX_RUNNING_JOBS] == RVD_SOURCE_FILE);
    CHECK_EQ_U64(s.chunk_size, 2u << 20); /* flag over file */
    CHECK(s.source[RVD_KEY_CHUNK_SIZE] == RVD_SOURCE_FLAG);
    CHECK_EQ_U64(s.job_history, 9); /* flag over default */
    CHECK(s.source[RVD_KEY_JOB_HISTORY] == RVD_SOURCE_FLAG);
    CHECK_STREQ(s.state_dir, "/file/state"); /* file over systemd */
    CHECK_EQ_U64(s.max_subscribers, 256);    /* default */
    CHECK(s.source[RVD_KEY_MAX_SUBSCRIBERS] == RVD_SOURCE_DEFAULT);
    rvd_settings_free(&s);

    /* A bad flag value that rvd_cli_parse would have refused is refused
     * here too, naming the flag. */
    args.value[RVD_KEY_MAX_SUBSCRIBERS] = "0";
    CHECK(load(&env, &args, &s, &err) == -EINVAL);
    CHECK(err && strstr(err, "invalid value '0' for --max-subscribers"));
    free(err);
    free(conf);
}

static void test_reload(void) {
    char *conf = WRITE("reload.conf", "max-running-jobs = 8\nstate-dir = /a\nchunk-size = 1M\n");
    rvd_settings_env env = user_env();
    rvd_settings_args args = {.config = conf};
    args.value[RVD_KEY_MAX_SUBSCRIBERS] = "5";
    rvd_settings cur, next;
    rvd_settings_changes ch;
    char *err = NULL;
    CHECK(load(&env, &args, &cur, &err) == 0);

    /* Nothing changed. */
    CHECK(rvd_settings_reload(&cur, &env, &args, &next, &ch, &err) == 0);
    CHECK(ch.applied == 0 && ch.kept == 0);
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        CHECK(ch.text[k] == NULL);
    CHECK_STREQ(next.state_dir, "/a");
    CHECK(next.state_dir != cur.state_dir); /* a copy: each owns its strings */
    rvd_settings_free(&next);
    rvd_settings_changes_clear(&ch);

    /* Reloadable keys change; the others keep their value, with a notice;
     * the flag keeps precedence over the file. */
    free(WRITE("reload.conf", "max-running-jobs = 2\n"
                              "state-dir = /b\n"
                              "chunk-size = 4M\n"
                              "log-level = debug\n"
                              "cache-quota = 0\n"
                              "link-deliveries = true\n"
                              "max-subscribers = 99\n"));
    CHECK(rvd_settings_reload(&cur, &env, &args, &next, &ch, &err) == 0);
    CHECK_EQ_U64(ch.applied, RVD_KEY_BIT(RVD_KEY_MAX_RUNNING_JOBS) |
                                 RVD_KEY_BIT(RVD_KEY_LOG_LEVEL) | RVD_KEY_BIT(RVD_KEY_CACHE_QUOTA) |
                                 RVD_KEY_BIT(RVD_KEY_LINK_DELIVERIES));
    CHECK_EQ_U64(ch.kept, RVD_KEY_BIT(RVD_KEY_STATE_DIR) | RVD_KEY_BIT(RVD_KEY_CHUNK_SIZE));
    CHECK_EQ_U64(next.max_running_jobs, 2);
    CHECK(next.log_level == RVD_LOG_DEBUG);
    CHECK_EQ_U64(next.cache_quota, 0);
    CHECK(next.link_deliveries);
    CHECK_EQ_U64(next.max_subscribers, 5); /* --max-subscribers 5 wins */
    CHECK_STREQ(next.state_dir, "/a");     /* kept until restart */
    CHECK_EQ_U64(next.chunk_size, 1u << 20);
    CHECK(next.source[RVD_KEY_STATE_DIR] == RVD_SOURCE_FILE);
    CHECK_STREQ(ch.text[RVD_KEY_MAX_RUNNING_JOBS], "max-running-jobs changed from 8 to 2");
    CHECK_STREQ(ch.text[RVD_KEY_CACHE_QUOTA], "cache-quota changed from 10G to 0");
    CHECK_STREQ(ch.text[RVD_KEY_LOG_LEVEL], "log-level changed from info to debug");
    CHECK_STREQ(ch.text[RVD_KEY_LINK_DELIVERIES], "link-deliveries changed from false to true");
    CHECK_STREQ(ch.text[RVD_KEY_STATE_DIR],
                "state-dir changed to '/b'; it takes effect at the next restart ('/a' stays in "
                "use until then)");
    CHECK(ch.text[RVD_KEY_CHUNK_SIZE] && strstr(ch.text[RVD_KEY_CHUNK_SIZE], "to 4M") &&
          strstr(ch.text[RVD_KEY_CHUNK_SIZE], "next restart"));
    CHECK(ch.text[RVD_KEY_MAX_SUBSCRIBERS] == NULL);
    rvd_settings_changes_clear(&ch);
    CHECK(ch.applied == 0 && ch.text[RVD_KEY_STATE_DIR] == NULL);
    rvd_settings_free(&cur);
    cur = next;

    /* A broken file: the old settings stay entirely, outputs untouched. */
    free(WRITE("reload.conf", "max-running-jobs = 3\nmax-runing-jobs = 4\n"));
    next = (rvd_settings){.max_running_jobs = 4242};
    ch = (rvd_settings_changes){.applied = 77};
    CHECK(rvd_settings_reload(&cur, &env, &args, &next, &ch, &err) == -EINVAL);
    CHECK(err && strstr(err, "reload.conf:2: unknown key 'max-runing-jobs'"));
    free(err);
    err = NULL;
    CHECK(next.max_running_jobs == 4242 && next.state_dir == NULL && ch.applied == 77);
    CHECK_EQ_U64(cur.max_running_jobs, 2);

    /* The file gone (it was named by --config): an error as well. */
    unlink(conf);
    CHECK(rvd_settings_reload(&cur, &env, &args, &next, &ch, &err) == -ENOENT);
    free(err);
    err = NULL;

    /* The default file removed: back to the defaults, with notices. */
    char *dir = path_in("retriever");
    mkdir(dir, 0755);
    char *dflt = WRITE("retriever/retrieverd.conf", "job-history = 7\nmax-connections = 8\n");
    rvd_settings_args none = {0};
    rvd_settings_free(&cur);
    CHECK(load(&env, &none, &cur, &err) == 0);
    CHECK_EQ_U64(cur.job_history, 7);
    unlink(dflt);
    CHECK(rvd_settings_reload(&cur, &env, &none, &next, &ch, &err) == 0);
    CHECK_EQ_U64(ch.applied, RVD_KEY_BIT(RVD_KEY_JOB_HISTORY));
    CHECK_EQ_U64(ch.kept, RVD_KEY_BIT(RVD_KEY_MAX_CONNECTIONS));
    CHECK_EQ_U64(next.job_history, 1000);
    CHECK_EQ_U64(next.max_connections, 8);
    CHECK(!next.config_file_read);
    rvd_settings_changes_clear(&ch);
    rvd_settings_free(&next);
    rvd_settings_free(&cur);
    rmdir(dir);
    free(dir);
    free(dflt);
    free(conf);
}

/* packaging/retrieverd.conf, the commented example: loading it as it is
 * changes nothing, and with every "#key = value" line uncommented it sets
 * every key to its default (the system daemon's paths). */
static void test_example_file(void) {
    /* The source tree from this file's name (absolute under CMake; made
     * absolute here when a build gave it relative). */
    char src[512], cwd[256] = "";
    if (__FILE__[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        cwd[0] = '\0';
    snprintf(src, sizeof(src), "%s%s%s", cwd, cwd[0] ? "/" : "", __FILE__);
    char *slash = strrchr(src, '/');
    if (!slash) {
        fprintf(stderr, "    skipped: __FILE__ '%s' has no directory\n", __FILE__);
        return;
    }
    snprintf(slash, sizeof(src) - (size_t)(slash - src), "/../../packaging/retrieverd.conf");
    FILE *f = fopen(src, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char *text = NULL, *line = NULL;
    size_t tlen = 0, cap = 0;
    FILE *out = open_memstream(&text, &tlen);
    unsigned uncommented = 0;
    while (getline(&line, &cap, f) > 0) {
        size_t n = strcspn(line, " =");
        bool setting = line[0] == '#' && n > 1 && strncmp(line + n, " = ", 3) == 0 &&
                       rvd_settings_key_find(strndupa(line + 1, n - 1)) >= 0;
        fputs(setting ? line + 1 : line, out);
        uncommented += setting;
    }
    free(line);
    fclose(f);
    fclose(out);
    CHECK_EQ_U64(uncommented, RVD_KEY_COUNT);

    rvd_settings_env env = {.euid = 0, .configuration_directory = tmp};
    rvd_settings_args args = {.config = src};
    rvd_settings dflt = {0}, as_is = {0}, all = {0};
    char *err = NULL;
    CHECK(load(&env, &(rvd_settings_args){0}, &dflt, &err) == 0);
    CHECK(load(&env, &args, &as_is, &err) == 0);
    if (err)
        fprintf(stderr, "    %s\n", err);
    free(err);
    char *conf = write_conf("example.conf", text, tlen);
    args.config = conf;
    CHECK(load(&env, &args, &all, &err) == 0);
    if (err)
        fprintf(stderr, "    %s\n", err);
    free(err);
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        char *a = rvd_settings_value_text(&dflt, (rvd_key)k);
        char *b = rvd_settings_value_text(&as_is, (rvd_key)k);
        char *c = rvd_settings_value_text(&all, (rvd_key)k);
        CHECK_STREQ(b, a);
        CHECK(all.source[k] == RVD_SOURCE_FILE);
        if (k == RVD_KEY_CA_FILE)
            CHECK(c && strcmp(c, "/etc/ssl/certs/ca-certificates.crt") == 0);
        else if (k == RVD_KEY_DENY_NETWORKS)
            CHECK(c && strcmp(c, "127.0.0.0/8, ::1/128, 169.254.0.0/16, fe80::/10, "
                                 "10.0.0.0/8") == 0);
        else
            CHECK_STREQ(c, a);
        free(a);
        free(b);
        free(c);
    }
    rvd_settings_free(&dflt);
    rvd_settings_free(&as_is);
    rvd_settings_free(&all);
    free(conf);
    free(text);
}

static void test_keys_and_help(void) {
    for (int k = 0; k < RVD_KEY_COUNT; k++)
        CHECK(rvd_settings_key_find(rvd_settings_key_name((rvd_key)k)) == k);
    CHECK(rvd_settings_key_find("max-jobs") == -1);
    CHECK(rvd_settings_key_reloadable(RVD_KEY_JOB_HISTORY));
    CHECK(!rvd_settings_key_reloadable(RVD_KEY_STATE_DIR));
    CHECK_STREQ(rvd_settings_suggest("chunksize", false), "chunk-size");
    CHECK_STREQ(rvd_settings_suggest("forground", true), "foreground");
    CHECK(rvd_settings_suggest("forground", false) == NULL);
    CHECK(rvd_settings_suggest("zzzzzz", true) == NULL);
    CHECK_STREQ(rvd_settings_log_level_name(RVD_LOG_WARNING), "warning");

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rvd_settings_help(f);
    fclose(f);
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "  --%s ", rvd_settings_key_name((rvd_key)k));
        CHECK(strstr(buf, flag));
    }
    /* Reloadable keys are marked, and lines fit 80 columns. */
    CHECK(strstr(buf, "[SIGHUP]"));
    for (char *line = buf; *line;) {
        size_t n = strcspn(line, "\n");
        CHECK(n <= 80);
        line += n + (line[n] == '\n');
    }
    free(buf);
}

static void test_log_level(void) {
    CHECK(rvd_log_get_level() == RVD_LOG_INFO);
    rvd_log_set_level(RVD_LOG_ERROR);
    CHECK(rvd_log_get_level() == RVD_LOG_ERROR);
    rvd_log_info("this line is not written");
    rvd_log_set_level(RVD_LOG_INFO);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    return remove(path) == 0 ? 0 : 0; /* best effort: keep going */
}

int main(void) {
    snprintf(tmp, sizeof(tmp), "%s/rvd-config-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    chmod(tmp, 0755);
    test_user_defaults();
    test_user_without_defaults();
    test_system_defaults();
    test_file();
    test_file_errors();
    test_file_access();
    test_ranges();
    test_precedence();
    test_reload();
    test_example_file();
    test_keys_and_help();
    test_log_level();

    /* The scratch directory and what the tests left in it. */
    nftw(tmp, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    return rv_test_result();
}
