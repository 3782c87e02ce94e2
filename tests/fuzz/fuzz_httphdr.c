/* fuzz_httphdr.c — the engine's HTTP response header parsers (httphdr.c)
 * on any bytes.
 *
 * The first byte picks the parser; the rest is the header line or value,
 * copied into a buffer of exactly its length (no NUL after it), so reading
 * one byte past the length is an AddressSanitizer report.
 *
 * Properties besides "no crash, no over-read, no UB":
 *   0 rv_http_header_split  name and value lie inside the line, the name is
 *                           a non-empty token ending at the first ':', the
 *                           value has no surrounding blanks and no CR, LF
 *                           or NUL
 *   1 rv_http_parse_status  the line starts "HTTP/", the status is 100..999
 *   2 rv_http_parse_content_range  FIRST <= LAST < TOTAL (or the 416 form),
 *                           no number is the UINT64_MAX sentinel, and the
 *                           canonical spelling of the result parses to the
 *                           same numbers
 *   3 rv_http_parse_retry_after  the wait is at most UINT64_MAX / 2; digits
 *                           alone are the same wait whatever the time; a
 *                           date is a whole number of seconds and (but for
 *                           RFC 850's two-digit years) waits no longer
 *                           when "now" is later; an IMF-fixdate read
 *                           at the epoch prints back as itself
 *   4 rv_http_parse_u64     equals the digits' value, printed back as them
 *   5 rv_http_name_is       agrees with a plain case-insensitive compare
 *   6 rv_http_disposition_filename, then rv_filename_sanitize at 255 and
 *                           at a limit from the input's length: the name
 *                           is a C string no longer than the input; the
 *                           safe name is valid UTF-8 without C0, DEL or C1
 *                           characters, '/' or '\\', starts with neither
 *                           '.' nor ' ', does not end in ' ', and is at
 *                           most the limit in bytes
 */
#include <stdbool.h>
#include <strings.h>
#include <time.h>

#include "fuzz.h"
#include "httphdr.h"

static bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static void split(const char *s, size_t n) {
    const char *name, *value;
    size_t nlen, vlen;
    if (!rv_http_header_split(s, n, &name, &nlen, &value, &vlen))
        return;
    FUZZ_CHECK(name == s && nlen > 0 && nlen < n && s[nlen] == ':');
    for (size_t i = 0; i < nlen; i++)
        FUZZ_CHECK(is_tchar(s[i]));
    FUZZ_CHECK(value >= s + nlen + 1 && value + vlen <= s + n);
    if (vlen > 0) {
        FUZZ_CHECK(value[0] != ' ' && value[0] != '\t');
        FUZZ_CHECK(value[vlen - 1] != ' ' && value[vlen - 1] != '\t');
    }
    for (size_t i = 0; i < vlen; i++)
        FUZZ_CHECK(value[i] != '\r' && value[i] != '\n' && value[i] != '\0');
}

static void status(const char *s, size_t n) {
    long st = -1;
    if (!rv_http_parse_status(s, n, &st))
        return;
    FUZZ_CHECK(n >= 5 && memcmp(s, "HTTP/", 5) == 0);
    FUZZ_CHECK(st >= 100 && st <= 999);
}

static void content_range(const char *s, size_t n) {
    uint64_t f, l, t, f2, l2, t2;
    char again[96];
    int len;
    if (!rv_http_parse_content_range(s, n, &f, &l, &t))
        return;
    FUZZ_CHECK(n >= 6 && strncasecmp(s, "bytes ", 6) == 0);
    if (f == RV_HTTP_UNKNOWN_TOTAL) { /* bytes * /TOTAL */
        FUZZ_CHECK(l == RV_HTTP_UNKNOWN_TOTAL && t != UINT64_MAX);
        len = snprintf(again, sizeof(again), "bytes */%llu", (unsigned long long)t);
    } else {
        FUZZ_CHECK(f <= l && l != UINT64_MAX);
        FUZZ_CHECK(t == RV_HTTP_UNKNOWN_TOTAL || l < t);
        if (t == RV_HTTP_UNKNOWN_TOTAL)
            len = snprintf(again, sizeof(again), "bytes %llu-%llu/*", (unsigned long long)f,
                           (unsigned long long)l);
        else
            len = snprintf(again, sizeof(again), "bytes %llu-%llu/%llu", (unsigned long long)f,
                           (unsigned long long)l, (unsigned long long)t);
    }
    FUZZ_CHECK(rv_http_parse_content_range(again, (size_t)len, &f2, &l2, &t2));
    FUZZ_CHECK(f2 == f && l2 == l && t2 == t);
}

static void retry_after(const char *s, size_t n) {
    static const time_t nows[] = {0, 784111777 /* 1994-11-06 08:49:37 */, 2000000000,
                                  253402300799 /* 9999-12-31 23:59:59 */};
    uint64_t ms[4];
    bool ok[4];
    bool digits = n > 0;
    for (size_t i = 0; i < n; i++)
        digits = digits && s[i] >= '0' && s[i] <= '9';
    for (size_t i = 0; i < 4; i++) {
        ok[i] = rv_http_parse_retry_after(s, n, nows[i], &ms[i]);
        FUZZ_CHECK(ok[i] == ok[0]); /* the time never decides the syntax... */
        FUZZ_CHECK(!ok[i] || ms[i] <= UINT64_MAX / 2);
    }
    if (!ok[0])
        return;
    /* An RFC 850 date's two-digit year is read in the century that puts
     * it at most 50 years ahead of now, so a later now may move it later:
     * the monotony holds for the other two forms (no '-' in them). */
    bool rfc850 = memchr(s, '-', n) != NULL;
    for (size_t i = 1; i < 4; i++) {
        if (digits)
            FUZZ_CHECK(ms[i] == ms[0]);
        else
            FUZZ_CHECK(ms[i] % 1000 == 0 && (rfc850 || ms[i] <= ms[i - 1]));
    }
    /* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") after the epoch,
     * read at the epoch, is its seconds since then: printed back, it is the
     * input (the day name is not checked against the date; a leap second
     * 60 rolls over). */
    if (!digits && n == 29 && s[3] == ',' && ms[0] > 0 && memcmp(s + 23, "60", 2) != 0) {
        time_t t = (time_t)(ms[0] / 1000);
        struct tm tm;
        char back[64];
        FUZZ_CHECK(gmtime_r(&t, &tm) != NULL);
        size_t blen = strftime(back, sizeof(back), "%d %b %Y %H:%M:%S GMT", &tm);
        FUZZ_CHECK(blen == 24 && memcmp(back, s + 5, 24) == 0);
    }
}

static void u64(const char *s, size_t n) {
    uint64_t v;
    char back[32];
    if (!rv_http_parse_u64(s, n, &v))
        return;
    FUZZ_CHECK(n > 0);
    size_t lead = 0; /* leading zeros do not print back */
    while (lead + 1 < n && s[lead] == '0')
        lead++;
    int len = snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
    FUZZ_CHECK((size_t)len == n - lead && memcmp(back, s + lead, n - lead) == 0);
}

static void name_is(const char *s, size_t n) {
    static const char *const names[] = {"content-range", "content-length", "etag",
                                        "last-modified", "retry-after", ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        bool want = strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0;
        /* strncasecmp stops at a NUL in s; the parser compares every byte. */
        if (memchr(s, '\0', n))
            want = false;
        FUZZ_CHECK(rv_http_name_is(s, n, names[i]) == want);
    }
}

/* Whether s is valid UTF-8 without control characters (C0, DEL, C1). */
static bool utf8_no_controls(const unsigned char *s) {
    while (*s) {
        unsigned c = *s, cp, k;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            cp = c & 0x1f, k = 1;
        else if (c >= 0xe0 && c <= 0xef)
            cp = c & 0x0f, k = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            cp = c & 0x07, k = 3;
        else
            return false;
        for (unsigned i = 1; i <= k; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((k == 1 && cp < 0xa0) || (k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        s += k + 1;
    }
    return true;
}

static void disposition(const char *s, size_t n) {
    char *name = rv_http_disposition_filename(s, n);
    if (!name)
        return;
    FUZZ_CHECK(strlen(name) <= n);
    size_t limits[] = {255, 1 + n % 40};
    for (size_t i = 0; i < 2; i++) {
        char *safe = rv_filename_sanitize(name, limits[i]);
        if (!safe)
            continue;
        size_t l = strlen(safe);
        FUZZ_CHECK(l > 0 && l <= limits[i]);
        FUZZ_CHECK(!strchr(safe, '/') && !strchr(safe, '\\'));
        FUZZ_CHECK(safe[0] != '.' && safe[0] != ' ' && safe[l - 1] != ' ');
        FUZZ_CHECK(utf8_no_controls((const unsigned char *)safe));
        free(safe);
    }
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    size_t n = size - 1;
    char *s = malloc(n ? n : 1); /* exactly n bytes: an over-read is a report */
    if (!s)
        return 0;
    memcpy(s, data + 1, n);
    switch (data[0] % 7) {
    case 0: split(s, n); break;
    case 1: status(s, n); break;
    case 2: content_range(s, n); break;
    case 3: retry_after(s, n); break;
    case 4: u64(s, n); break;
    case 5: name_is(s, n); break;
    case 6: disposition(s, n); break;
    }
    free(s);
    return 0;
}
