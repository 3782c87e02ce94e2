/* fuzz_header_allowed.c — rv_header_allowed on any string.
 *
 * Properties: an allowed line is "Name: value"-shaped — a non-empty token
 * name before the first ':', no CR or LF anywhere, at most 8192 bytes —
 * and its name is none of the headers the engine owns. */
#include <retriever/retriever.h>
#include <strings.h>

#include "fuzz.h"

static const char *const owned[] = {"range", "if-range", "if-match", "if-none-match",
                                    "if-modified-since", "if-unmodified-since",
                                    "accept-encoding", "content-length", "host",
                                    "transfer-encoding", "connection"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *line = fuzz_cstr(data, size);
    if (!line)
        return 0;
    if (rv_header_allowed(line)) {
        size_t len = strlen(line);
        const char *colon = strchr(line, ':');
        FUZZ_CHECK(len <= 8192);
        FUZZ_CHECK(colon && colon > line);
        FUZZ_CHECK(!strchr(line, '\r') && !strchr(line, '\n'));
        size_t name_len = (size_t)(colon - line);
        for (size_t i = 0; i < name_len; i++)
            FUZZ_CHECK(line[i] > ' ' && line[i] < 127 && !strchr("()<>@,;:\\\"/[]?={}", line[i]));
        for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
            FUZZ_CHECK(!(strlen(owned[i]) == name_len && strncasecmp(line, owned[i], name_len) == 0));
    }
    free(line);
    return 0;
}
