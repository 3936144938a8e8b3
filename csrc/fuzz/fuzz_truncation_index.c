/* libFuzzer: X-Batch-Truncation-Index values. Property: indexes are non-negative. */
#include "../headers.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstring(data, size);
    long m = -1, a = -1;
    if (a2g_parse_truncation_index(s, &m, &a) == 0)
        FUZZ_ASSERT(m >= 0 && a >= 0);
    free(s);
    return 0;
}
