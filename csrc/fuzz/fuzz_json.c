/* libFuzzer: the core's own JSON reader (answers of /authorize and Generic
 * Responses). Property: a string member comes back NUL-terminated with the length
 * reported. */
#include "../json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t len = 0;
    double d;
    if (a2g_json_string((const char *)data, size, "token", &out, &len) == 0) {
        FUZZ_ASSERT(out[len] == '\0');
        free(out);
    }
    (void)a2g_json_number((const char *)data, size, "expiry", &d);
    return 0;
}
