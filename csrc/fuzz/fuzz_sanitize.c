/* libFuzzer: the file-name sanitiser, on raw bytes and on what Content-Disposition
 * parsing yields. Properties: the output never contains '/', '\', "..", NUL, CR or
 * LF, never starts with '.', is never empty or longer than A2G_NAME_MAX, and
 * sanitising it again changes nothing. */
#include "../headers.h"
#include "../names.h"
#include "fuzz.h"

static void check(const char *in, size_t len)
{
    char out[A2G_NAME_MAX + 1], again[A2G_NAME_MAX + 1];
    size_t n = a2g_sanitize_filename(in, len, out);
    FUZZ_ASSERT(n >= 1 && n <= A2G_NAME_MAX && out[n] == '\0');
    FUZZ_ASSERT(out[0] != '.');
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(out[i] != '/' && out[i] != '\\' && out[i] != '\0' && out[i] != '\r'
                    && out[i] != '\n');
        FUZZ_ASSERT(!(out[i] == '.' && i + 1 < n && out[i + 1] == '.'));
    }
    size_t m = a2g_sanitize_filename(out, n, again);
    FUZZ_ASSERT(m == n && memcmp(out, again, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size);
    char *s = fuzz_cstring(data, size);
    size_t len = 0;
    char *name = a2g_disposition_filename(s, &len);
    if (name) {
        check(name, len);
        free(name);
    }
    free(s);
    return 0;
}
