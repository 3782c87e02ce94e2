/* test_disposition.c — Content-Disposition's file name and the sanitising
 * of a name from the network (httphdr.h), on good and hostile input. */
#include "httphdr.h"

#include <stdlib.h>
#include <string.h>

#include "rv_test.h"

struct parse_case {
    const char *value;
    const char *want; /* NULL: no name */
};

static const struct parse_case parses[] = {
    {"attachment; filename=plain.bin", "plain.bin"},
    {"attachment; filename=\"quoted name.bin\"", "quoted name.bin"},
    {"attachment;filename=\"esc\\\"aped\\\\.bin\"", "esc\"aped\\.bin"},
    {"ATTACHMENT; FileName=Upper.bin", "Upper.bin"},
    {"inline; filename=in.txt", "in.txt"},
    /* filename* wins, wherever it stands */
    {"attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt; filename=ete.txt", "\xc3\xa9t\xc3\xa9.txt"},
    {"attachment; filename=ete.txt; filename*=utf-8'fr'%C3%A9t%C3%A9.txt", "\xc3\xa9t\xc3\xa9.txt"},
    {"attachment; filename*=UTF-8''a%20b", "a b"},
    /* another charset, or a malformed ext-value: filename= instead */
    {"attachment; filename*=iso-8859-1''%E9t%E9.txt; filename=ete.txt", "ete.txt"},
    {"attachment; filename*=UTF-8''bad%zz; filename=fallback.txt", "fallback.txt"},
    {"attachment; filename*=UTF-8''nul%00x; filename=fallback.txt", "fallback.txt"},
    {"attachment; filename*=UTF-8''%2", NULL},
    {"attachment; filename*=UTF-8'no-second-quote", NULL},
    /* what the sanitiser must deal with comes through as sent */
    {"attachment; filename=\"../../etc/passwd\"", "../../etc/passwd"},
    {"attachment; filename*=UTF-8''..%2F..%2Fx", "../../x"},
    {"attachment; filename=\"\"", ""},
    {"attachment; filename=\"a\x01" "b\"", "a\x01" "b"},
    /* no name */
    {"attachment", NULL},
    {"", NULL},
    {"attachment; size=3", NULL},
    {"attachment; filename=", NULL},
    {"attachment; filename=\"unterminated", NULL},
    {"attachment; filename=a/b", NULL}, /* '/' is no token character */
    /* other parameters before and after, quoted ones with ';' inside */
    {"attachment; note=\"a;b\"; filename=ok.bin; x=y", "ok.bin"},
    {"attachment ; filename = spaced.bin ", "spaced.bin"},
};

static void test_parse(void) {
    for (size_t i = 0; i < sizeof(parses) / sizeof(parses[0]); i++) {
        const struct parse_case *c = &parses[i];
        char *got = rv_http_disposition_filename(c->value, strlen(c->value));
        CHECK_STREQ(got, c->want);
        if (!(got == c->want || (got && c->want && strcmp(got, c->want) == 0)))
            fprintf(stderr, "    for '%s'\n", c->value);
        free(got);
    }
    /* The length bounds the read: no NUL needed, nothing after it seen. */
    static const char cut[] = "attachment; filename=abc.bin; filename*=UTF-8''x";
    char *got = rv_http_disposition_filename(cut, 28);
    CHECK(got && strcmp(got, "abc.bin") == 0);
    free(got);
    static const char nul[] = "attachment; filename=\"a\0b\"";
    CHECK(rv_http_disposition_filename(nul, sizeof(nul) - 1) == NULL);
    CHECK(rv_http_disposition_filename(NULL, 0) == NULL);
}

struct clean_case {
    const char *name;
    size_t max;
    const char *want; /* NULL: nothing usable */
};

static const struct clean_case cleans[] = {
    {"plain.bin", 255, "plain.bin"},
    {"../../etc/passwd", 255, "passwd"},
    {"a/b/c.txt", 255, "c.txt"},
    {"..\\..\\win.ini", 255, "win.ini"},
    {"/", 255, NULL},
    {"../", 255, NULL},
    {"..", 255, NULL},
    {".", 255, NULL},
    {"", 255, NULL},
    {".bashrc", 255, "bashrc"},
    {"...hidden", 255, "hidden"},
    {" . .x ", 255, "x"},
    {"a\x01" "b\x7f" "c\td", 255, "a_b_c_d"},
    {"\xc2\x85" "x", 255, "_x"},             /* C1 NEL */
    {"\xc3\xa9t\xc3\xa9.txt", 255, "\xc3\xa9t\xc3\xa9.txt"},
    {"bad\xff.txt", 255, NULL},              /* not UTF-8 */
    {"over\xc0\xaflong", 255, NULL},         /* overlong '/' */
    {"sur\xed\xa0\x80", 255, NULL},          /* a surrogate */
    {"abcdefgh.txt", 10, "abcdef.txt"},      /* the extension stays */
    {"\xc3\xa9\xc3\xa9\xc3\xa9.txt", 9, "\xc3\xa9\xc3\xa9.txt"}, /* cut at a character */
    {"\xc3\xa9\xc3\xa9\xc3\xa9.txt", 7, "\xc3\xa9.txt"},
    {"abcdefgh", 5, "abcde"},
    {"a.verylongextension_that_is_longer_than_thirty_two", 10, "a.verylong"},
    {"x", 0, NULL},
};

static void test_sanitize(void) {
    for (size_t i = 0; i < sizeof(cleans) / sizeof(cleans[0]); i++) {
        const struct clean_case *c = &cleans[i];
        char *got = rv_filename_sanitize(c->name, c->max);
        bool ok = c->want ? got && strcmp(got, c->want) == 0 : got == NULL;
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "    case %zu: '%s' gave '%s'\n", i, c->name, got ? got : "(null)");
        free(got);
    }
    /* A long UTF-8 name at the file system's limit: never more bytes, never
     * half a character, the extension kept. */
    char longname[1200];
    size_t n = 0;
    for (int k = 0; k < 300; k++)
        memcpy(longname + n, "\xe2\x82\xac", 3), n += 3; /* U+20AC, 3 bytes */
    memcpy(longname + n, ".tar.gz", 8);
    char *got = rv_filename_sanitize(longname, 255);
    CHECK(got != NULL);
    if (got) {
        size_t l = strlen(got);
        CHECK(l <= 255 && l >= 250);
        CHECK(l > 3 && strcmp(got + l - 3, ".gz") == 0);
        CHECK((l - 3) % 3 == 0); /* whole euro signs only */
    }
    free(got);
}

int main(void) {
    test_parse();
    test_sanitize();
    return rv_test_result();
}
