/* libFuzzer: Link values. Property: a URL comes back http(s), without spaces, control
 * bytes, angle brackets or quotes. */
#include <strings.h>

#include "../headers.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstring(data, size);
    char *url = a2g_parse_link(s);
    if (url) {
        FUZZ_ASSERT(strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
        for (const unsigned char *p = (const unsigned char *)url; *p; p++)
            FUZZ_ASSERT(*p > 0x20 && *p != 0x7f && *p != '<' && *p != '>' && *p != '"');
        free(url);
    }
    free(s);
    return 0;
}
