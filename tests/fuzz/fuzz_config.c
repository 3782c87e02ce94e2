/* fuzz_config.c — the daemon's config file parser (daemon/config.c) on any
 * file contents.
 *
 * Each input is written to a config file (mode 0600, in a directory of
 * its own made once per process) and loaded with rvd_settings_load, as
 * `retrieverd --config FILE` does; the environment gives every default.
 *
 * Properties besides "no crash, no leak, no UB":
 *   - a refusal is -EINVAL (or -ENOMEM) with a sentence, and leaves the
 *     output untouched;
 *   - accepted settings are within the rules: state and cache directories
 *     absolute without a trailing '/', every key's value as the file would
 *     spell it passes the key's own check;
 *   - no accepted value holds a control character or ends in a blank
 *     (a path such as "/a  /" would lose its '/' and become "/a  ", whose
 *     blanks the file syntax trims: config.c refuses both);
 *   - written back as a file (every key = its value text), the settings
 *     load again to the same values.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char dir[64], path[96], path2[96];

static void once(void) {
    if (dir[0])
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/rv-fuzz-config.XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/retrieverd.conf", dir);
    snprintf(path2, sizeof(path2), "%s/again.conf", dir);
}

static void write_file(const char *p, const void *data, size_t size) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
    close(fd);
}

static int load(const char *p, rvd_settings *s, char **err) {
    rvd_settings_env env = {.euid = geteuid(), .home = dir, .xdg_runtime_dir = dir};
    rvd_settings_args args = {.config = p};
    return rvd_settings_load(&env, &args, s, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const rvd_settings zero;
    rvd_settings s = {0}, again = {0};
    char *err = NULL, *text = NULL;
    size_t text_len = 0;
    FILE *f = NULL;

    if (size > RVD_SETTINGS_MAX_FILE)
        return 0;
    once();
    write_file(path, data, size);
    int r = load(path, &s, &err);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
        FUZZ_CHECK(r == -ENOMEM || (err && err[0]));
        FUZZ_CHECK(memcmp(&s, &zero, sizeof(s)) == 0);
        goto out;
    }
    FUZZ_CHECK(s.state_dir && s.state_dir[0] == '/');
    FUZZ_CHECK(s.cache_dir && s.cache_dir[0] == '/');
    FUZZ_CHECK(strlen(s.state_dir) == 1 || s.state_dir[strlen(s.state_dir) - 1] != '/');
    FUZZ_CHECK(strlen(s.cache_dir) == 1 || s.cache_dir[strlen(s.cache_dir) - 1] != '/');

    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        char *v = rvd_settings_value_text(&s, (rvd_key)k);
        FUZZ_CHECK(v != NULL);
        bool odd = v[0] && v[strlen(v) - 1] == ' ';
        for (const char *c = v; *c; c++)
            odd = odd || (unsigned char)*c < 0x20 || *c == 0x7f;
        free(v);
        FUZZ_CHECK(!odd);
    }
    f = open_memstream(&text, &text_len);
    FUZZ_CHECK(f != NULL);
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        char *v = rvd_settings_value_text(&s, (rvd_key)k);
        FUZZ_CHECK(v != NULL);
        if (v[0]) { /* "" is an unset path: nothing to write */
            char *e = NULL;
            int c = rvd_settings_check((rvd_key)k, v, &e);
            if (c != 0)
                fprintf(stderr, "%s = '%s': %s\n", rvd_settings_key_name((rvd_key)k), v,
                        e ? e : "?");
            FUZZ_CHECK(c == 0);
            free(e);
            fprintf(f, "%s = %s\n", rvd_settings_key_name((rvd_key)k), v);
        }
        free(v);
    }
    FUZZ_CHECK(fclose(f) == 0);
    write_file(path2, text, text_len);
    free(err);
    err = NULL;
    r = load(path2, &again, &err);
    if (r != 0)
        fprintf(stderr, "written back:\n%s\nrefused: %s\n", text, err ? err : "?");
    FUZZ_CHECK(r == 0);
    for (int k = 0; k < RVD_KEY_COUNT; k++) {
        char *a = rvd_settings_value_text(&s, (rvd_key)k);
        char *b = rvd_settings_value_text(&again, (rvd_key)k);
        FUZZ_CHECK(a && b && strcmp(a, b) == 0);
        free(a);
        free(b);
    }
out:
    free(text);
    free(err);
    rvd_settings_free(&s);
    rvd_settings_free(&again);
    return 0;
}
