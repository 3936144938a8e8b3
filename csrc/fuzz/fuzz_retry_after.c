/* libFuzzer: Retry-After values. Property: parsed waits are within [0, cap]. */
#include "../headers.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstring(data, size);
    long secs = -1;
    if (a2g_parse_retry_after(s, 1700000000, 120, &secs) == 0)
        FUZZ_ASSERT(secs >= 0 && secs <= 120);
    free(s);
    return 0;
}
