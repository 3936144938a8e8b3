/* Shared by the libFuzzer harnesses: the input as a NUL-terminated string, the way
 * header values reach the parsers (libcurl hands them over NUL-terminated). */
#ifndef A2G_FUZZ_H
#define A2G_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#define FUZZ_ASSERT(cond)                                                               \
    do {                                                                                \
        if (!(cond))                                                                    \
            __builtin_trap();                                                           \
    } while (0)

#endif
