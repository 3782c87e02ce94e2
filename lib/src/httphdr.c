/* httphdr.c — strict parsers for the response headers the engine uses.
 *
 * Everything here reads untrusted bytes from the network: every function
 * takes an explicit length, reads nothing beyond it, accepts digits only
 * where numbers are expected and treats overflow as malformed. No I/O, no
 * locale (character classes are ASCII by hand), no allocation but for the
 * file name of Content-Disposition (the caller keeps it).
 *
 * Sections: character classes; numbers; header lines and status lines;
 * Content-Range; HTTP-date and Retry-After; ETag; Content-Disposition and
 * file names.
 */
#include "httphdr.h"
#include "hexdigit.h"

#include <stdlib.h>
#include <string.h>

/* ---- character classes ---- */

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static char to_lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 9110 tchar: the characters of a header name. */
static bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* len without one trailing "\n" or "\r\n". */
static size_t strip_eol(const char *s, size_t len) {
    if (len > 0 && s[len - 1] == '\n')
        len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    return len;
}

/* ---- numbers ---- */

/* Reads the run of digits at s[*pos..len) into *ret and advances *pos.
 * False when there is no digit or the value does not fit in 64 bits. */
static bool parse_digits(const char *s, size_t len, size_t *pos, uint64_t *ret) {
    size_t i = *pos;
    uint64_t v = 0;
    if (i >= len || !is_digit(s[i]))
        return false;
    for (; i < len && is_digit(s[i]); i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *pos = i;
    *ret = v;
    return true;
}

bool rv_http_parse_u64(const char *v, size_t len, uint64_t *ret) {
    size_t pos = 0;
    uint64_t n;
    if (!v || !parse_digits(v, len, &pos, &n) || pos != len)
        return false;
    *ret = n;
    return true;
}

/* ---- header lines and status lines ---- */

bool rv_http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                          const char **value, size_t *value_len) {
    if (!line)
        return false;
    len = strip_eol(line, len);
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return false;
    size_t nlen = (size_t)(colon - line);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar(line[i])) /* also refuses "HTTP/1.1 200 x: y", folded lines */
            return false;

    size_t vb = nlen + 1, ve = len;
    while (vb < ve && is_ows(line[vb]))
        vb++;
    while (ve > vb && is_ows(line[ve - 1]))
        ve--;
    for (size_t i = vb; i < ve; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
            return false;

    *name = line;
    *name_len = nlen;
    *value = line + vb;
    *value_len = ve - vb;
    return true;
}

bool rv_http_name_is(const char *name, size_t name_len, const char *want) {
    if (!name || !want || strlen(want) != name_len)
        return false;
    for (size_t i = 0; i < name_len; i++)
        if (to_lower(name[i]) != to_lower(want[i]))
            return false;
    return true;
}

/* "HTTP/" DIGIT ["." DIGIT] SP 3DIGIT [SP reason], status 100..999. */
bool rv_http_parse_status(const char *line, size_t len, long *ret_status) {
    if (!line)
        return false;
    len = strip_eol(line, len);
    size_t i = 5;
    if (len < 5 || memcmp(line, "HTTP/", 5) != 0)
        return false;
    if (i >= len || !is_digit(line[i]))
        return false;
    i++;
    if (i + 1 < len && line[i] == '.' && is_digit(line[i + 1]))
        i += 2;
    if (i >= len || line[i] != ' ')
        return false;
    i++;
    if (i + 3 > len || !is_digit(line[i]) || !is_digit(line[i + 1]) || !is_digit(line[i + 2]) ||
        line[i] == '0')
        return false;
    long status = (line[i] - '0') * 100 + (line[i + 1] - '0') * 10 + (line[i + 2] - '0');
    i += 3;
    if (i < len && line[i] != ' ')
        return false;
    *ret_status = status;
    return true;
}

/* ---- Content-Range ---- */

/* Explicit numbers equal to UINT64_MAX are refused: that value is the
 * "unknown" sentinel, and LAST = UINT64_MAX would make the range length
 * LAST - FIRST + 1 overflow. */
bool rv_http_parse_content_range(const char *v, size_t len, uint64_t *first, uint64_t *last,
                                 uint64_t *total) {
    static const char unit[] = "bytes ";
    uint64_t f, l, t;
    size_t pos = sizeof(unit) - 1;

    if (!v || len < pos)
        return false;
    for (size_t i = 0; i < pos; i++)
        if (to_lower(v[i]) != unit[i])
            return false;

    if (pos < len && v[pos] == '*') { /* "*" "/" TOTAL, for a 416 */
        pos++;
        if (pos >= len || v[pos] != '/')
            return false;
        pos++;
        if (!parse_digits(v, len, &pos, &t) || pos != len || t == UINT64_MAX)
            return false;
        f = l = RV_HTTP_UNKNOWN_TOTAL;
    } else { /* FIRST "-" LAST "/" (TOTAL / "*") */
        if (!parse_digits(v, len, &pos, &f) || pos >= len || v[pos] != '-')
            return false;
        pos++;
        if (!parse_digits(v, len, &pos, &l) || pos >= len || v[pos] != '/')
            return false;
        pos++;
        if (pos + 1 == len && v[pos] == '*') {
            t = RV_HTTP_UNKNOWN_TOTAL;
        } else {
            if (!parse_digits(v, len, &pos, &t) || pos != len || t == UINT64_MAX)
                return false;
            if (l >= t)
                return false;
        }
        if (f == UINT64_MAX || l == UINT64_MAX || f > l)
            return false;
    }
    *first = f;
    *last = l;
    *total = t;
    return true;
}

/* ---- HTTP-date and Retry-After ---- */

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_short[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};

/* A little cursor over the value, so each format reads like its grammar. */
struct cursor {
    const char *s;
    size_t len, pos;
};

static bool eat(struct cursor *c, const char *lit) {
    size_t n = strlen(lit);
    if (c->len - c->pos < n || memcmp(c->s + c->pos, lit, n) != 0)
        return false;
    c->pos += n;
    return true;
}

/* Exactly n digits. */
static bool eat_num(struct cursor *c, size_t n, int *ret) {
    int v = 0;
    if (c->len - c->pos < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = c->s[c->pos + i];
        if (!is_digit(ch))
            return false;
        v = v * 10 + (ch - '0');
    }
    c->pos += n;
    *ret = v;
    return true;
}

/* One of the n names (case-sensitive, as RFC 9110 says); its index. */
static bool eat_name(struct cursor *c, const char *const *names, int n, int *ret) {
    for (int i = 0; i < n; i++)
        if (eat(c, names[i])) {
            *ret = i;
            return true;
        }
    return false;
}

static bool eat_time(struct cursor *c, int *h, int *m, int *s) {
    return eat_num(c, 2, h) && eat(c, ":") && eat_num(c, 2, m) && eat(c, ":") && eat_num(c, 2, s);
}

static bool is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (m 1..12): whole 400-year eras of 146097 days, counted from March so the
 * leap day falls at the end of the year. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                    /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468;
}

static int64_t year_of(int64_t t) {
    int64_t days = t / 86400 - (t % 86400 < 0);
    /* Inverse of days_from_civil, year only. */
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", obsolete RFC 850
 * "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994"
 * (RFC 9110 section 5.6.7), nothing else. The day name is checked for
 * spelling, not for agreement with the date. */
static bool parse_http_date(const char *s, size_t len, time_t now, int64_t *ret) {
    int wd, y, mon, d, h, mi, sec;
    struct cursor c = {s, len, 0};
    struct cursor c2 = c, c3 = c;

    if (eat_name(&c, day_short, 7, &wd) && eat(&c, ", ") && eat_num(&c, 2, &d) && eat(&c, " ") &&
        eat_name(&c, month_names, 12, &mon) && eat(&c, " ") && eat_num(&c, 4, &y) &&
        eat(&c, " ") && eat_time(&c, &h, &mi, &sec) && eat(&c, " GMT") && c.pos == len) {
        /* IMF-fixdate */
    } else if (eat_name(&c2, day_long, 7, &wd) && eat(&c2, ", ") && eat_num(&c2, 2, &d) &&
               eat(&c2, "-") && eat_name(&c2, month_names, 12, &mon) && eat(&c2, "-") &&
               eat_num(&c2, 2, &y) && eat(&c2, " ") && eat_time(&c2, &h, &mi, &sec) &&
               eat(&c2, " GMT") && c2.pos == len) {
        /* RFC 850: a two-digit year more than 50 years ahead is in the past
         * century (RFC 9110 section 5.6.7). */
        int64_t now_year = year_of((int64_t)now);
        int64_t full = now_year - now_year % 100 + y;
        if (full > now_year + 50)
            full -= 100;
        if (full < 0 || full > 9999)
            return false;
        y = (int)full;
    } else if (eat_name(&c3, day_short, 7, &wd) && eat(&c3, " ") &&
               eat_name(&c3, month_names, 12, &mon) && eat(&c3, " ") &&
               (eat_num(&c3, 2, &d) || (eat(&c3, " ") && eat_num(&c3, 1, &d))) &&
               eat(&c3, " ") && eat_time(&c3, &h, &mi, &sec) && eat(&c3, " ") &&
               eat_num(&c3, 4, &y) && c3.pos == len) {
        /* asctime */
    } else {
        return false;
    }

    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim = mdays[mon] + (mon == 1 && is_leap(y));
    if (d < 1 || d > dim || h > 23 || mi > 59 || sec > 60) /* 60: leap second */
        return false;
    *ret = days_from_civil(y, mon + 1, d) * 86400 + h * 3600 + mi * 60 + sec;
    return true;
}

#define RETRY_AFTER_MAX_MS (UINT64_MAX / 2)

static uint64_t seconds_to_ms(uint64_t secs) {
    return secs > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : secs * 1000;
}

bool rv_http_parse_retry_after(const char *v, size_t len, time_t now, uint64_t *ret_ms) {
    if (!v || len == 0)
        return false;

    size_t digits = 0;
    while (digits < len && is_digit(v[digits]))
        digits++;
    if (digits == len) { /* delta-seconds; saturate rather than refuse */
        uint64_t secs = 0;
        for (size_t i = 0; i < len; i++) {
            unsigned d = (unsigned)(v[i] - '0');
            if (secs > (UINT64_MAX - d) / 10) {
                secs = UINT64_MAX;
                break;
            }
            secs = secs * 10 + d;
        }
        *ret_ms = seconds_to_ms(secs);
        return true;
    }

    int64_t when, delta;
    if (!parse_http_date(v, len, now, &when))
        return false;
    if (when <= (int64_t)now)
        *ret_ms = 0;
    else if (__builtin_sub_overflow(when, (int64_t)now, &delta))
        *ret_ms = RETRY_AFTER_MAX_MS;
    else
        *ret_ms = seconds_to_ms((uint64_t)delta);
    return true;
}

/* ---- ETag ---- */

bool rv_http_etag_is_weak(const char *etag) {
    return etag && etag[0] == 'W' && etag[1] == '/';
}

bool rv_http_etag_weak_equal(const char *a, const char *b) {
    if (!a || !b)
        return false;
    if (rv_http_etag_is_weak(a))
        a += 2;
    if (rv_http_etag_is_weak(b))
        b += 2;
    return strcmp(a, b) == 0;
}

/* ---- Last-Modified as a validator ---- */

rv_http_lm_kind rv_http_last_modified_kind(const char *lm, const char *date, time_t now) {
    int64_t lm_t, date_t;

    if (!lm)
        return RV_HTTP_LM_NONE;
    if (!date || !parse_http_date(lm, strlen(lm), now, &lm_t) ||
        !parse_http_date(date, strlen(date), now, &date_t))
        return RV_HTTP_LM_WEAK;
    return lm_t < date_t ? RV_HTTP_LM_STRONG : RV_HTTP_LM_NONE;
}

/* ---- Content-Disposition ----
 *
 * The only allocating functions here: the name is the caller's to keep. */

static size_t skip_ows(const char *s, size_t len, size_t i) {
    while (i < len && is_ows(s[i]))
        i++;
    return i;
}

/* A token at s[i..len): its end (i when there is none). */
static size_t token_end(const char *s, size_t len, size_t i) {
    while (i < len && is_tchar(s[i]))
        i++;
    return i;
}

/* A quoted-string at s[*pos] ('"'): its content unescaped into a malloc'd
 * string (*ret, NULL for none wanted); *pos moves past the closing quote.
 * False when it does not close, or out of memory. */
static bool quoted_string(const char *s, size_t len, size_t *pos, char **ret) {
    size_t i = *pos + 1, n = 0;
    char *out = ret ? malloc(len - *pos) : NULL; /* the content is shorter */
    if (ret && !out)
        return false;
    for (; i < len && s[i] != '"'; i++) {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        if (s[i] == '\0')
            break; /* no NUL in a name: refused below */
        if (out)
            out[n++] = s[i];
    }
    if (i >= len || s[i] != '"') {
        free(out);
        return false;
    }
    if (out) {
        out[n] = '\0';
        *ret = out;
    }
    *pos = i + 1;
    return true;
}

/* RFC 8187 ext-value in UTF-8: "UTF-8'[language]'%-encoded", malloc'd, or
 * NULL (another charset, malformed, an encoded NUL, no memory). */
static char *ext_value_utf8(const char *v, size_t len) {
    static const char charset[] = "utf-8'";
    size_t cl = sizeof(charset) - 1;
    if (len < cl)
        return NULL;
    for (size_t k = 0; k < cl; k++)
        if (to_lower(v[k]) != charset[k])
            return NULL;
    size_t i = cl;
    while (i < len && v[i] != '\'')
        i++; /* the language, not used */
    if (i >= len)
        return NULL;
    i++;
    char *out = malloc(len - i + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (; i < len; i++) {
        if (v[i] == '%') {
            int hi = i + 2 < len ? rv_hex_value(v[i + 1]) : -1;
            int lo = hi >= 0 ? rv_hex_value(v[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (is_tchar(v[i])) { /* attr-char is a subset of tchar */
            out[n++] = v[i];
        } else {
            free(out);
            return NULL;
        }
    }
    out[n] = '\0';
    return out;
}

char *rv_http_disposition_filename(const char *v, size_t len) {
    char *plain = NULL, *ext = NULL;
    if (!v)
        return NULL;
    /* disposition-type, then *( OWS ";" OWS param ): a malformed part
     * ends the walk, keeping what came before it. */
    size_t i = token_end(v, len, skip_ows(v, len, 0));
    for (;;) {
        i = skip_ows(v, len, i);
        if (i >= len || v[i] != ';')
            break;
        i = skip_ows(v, len, i + 1);
        size_t name = i;
        i = token_end(v, len, i);
        size_t name_len = i - name;
        i = skip_ows(v, len, i);
        if (name_len == 0 || i >= len || v[i] != '=')
            break;
        i = skip_ows(v, len, i + 1);
        bool is_plain = name_len == 8 && rv_http_name_is(v + name, name_len, "filename");
        bool is_ext = name_len == 9 && rv_http_name_is(v + name, name_len, "filename*");
        if (i < len && v[i] == '"') {
            char *q = NULL;
            if (!quoted_string(v, len, &i, is_plain && !plain ? &q : NULL))
                break;
            if (q)
                plain = q;
            continue;
        }
        size_t end = i;
        while (end < len && v[end] != ';' && !is_ows(v[end]))
            end++; /* a token; an ext-value is made of token characters and ' */
        if (is_plain && !plain && end > i) {
            if (token_end(v, len, i) != end)
                break;
            if ((plain = malloc(end - i + 1))) {
                memcpy(plain, v + i, end - i);
                plain[end - i] = '\0';
            }
        } else if (is_ext && !ext) {
            ext = ext_value_utf8(v + i, end - i);
        }
        i = end;
    }
    if (ext) {
        free(plain);
        return ext;
    }
    return plain;
}

/* The length of the UTF-8 sequence at s (at most n bytes), 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF included);
 * *ret_cp its code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *ret_cp) {
    unsigned c = s[0], cp, need;
    if (c < 0x80) {
        *ret_cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf)
        cp = c & 0x1f, need = 1;
    else if (c >= 0xe0 && c <= 0xef)
        cp = c & 0x0f, need = 2;
    else if (c >= 0xf0 && c <= 0xf4)
        cp = c & 0x07, need = 3;
    else
        return 0;
    if (n < need + 1)
        return 0;
    for (unsigned k = 1; k <= need; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    *ret_cp = cp;
    return need + 1;
}

/* Bytes of s[0..n) (valid UTF-8) that fit in max without splitting a
 * character. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
    size_t at = 0;
    unsigned cp;
    while (at < n) {
        size_t l = utf8_seq((const unsigned char *)s + at, n - at, &cp);
        if (at + l > max)
            break;
        at += l;
    }
    return at;
}

#define EXT_MAX 32

char *rv_filename_sanitize(const char *name, size_t max) {
    if (!name || max == 0)
        return NULL;
    const char *base = name;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    size_t n = strlen(base);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    /* Copy, checking UTF-8 and replacing control characters. */
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = utf8_seq((const unsigned char *)base + i, n - i, &cp);
        if (l == 0) {
            free(out);
            return NULL;
        }
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
            out[o++] = '_';
        else
            memcpy(out + o, base + i, l), o += l;
        i += l;
    }
    /* Leading dots and blanks, trailing blanks. */
    size_t start = 0;
    while (start < o && (out[start] == '.' || out[start] == ' '))
        start++;
    while (o > start && out[o - 1] == ' ')
        o--;
    n = o - start;
    memmove(out, out + start, n);
    out[n] = '\0';
    if (n > max) {
        const char *dot = strrchr(out, '.');
        size_t ext = dot && dot != out ? n - (size_t)(dot - out) : 0;
        if (ext > EXT_MAX || ext >= max)
            ext = 0;
        size_t stem = utf8_cut(out, n - ext, max - ext);
        if (stem == 0)
            ext = 0, stem = utf8_cut(out, n, max);
        memmove(out + stem, out + n - ext, ext);
        n = stem + ext;
        out[n] = '\0';
        while (n > 0 && out[n - 1] == ' ' && ext == 0)
            out[--n] = '\0';
    }
    if (n == 0) {
        free(out);
        return NULL;
    }
    return out;
}
