/* SHA-256 (FIPS 180-4), incremental and over a file: the content hash by which the
 * outbound journal knows a file it has sent (a file that changed is a new file).
 * Pure C, no Lua. */
#ifndef A2G_SHA256_H
#define A2G_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#pragma GCC visibility push(hidden)

typedef struct a2g_sha256 {
    uint32_t h[8];
    uint64_t bytes;          /* message length so far */
    unsigned char block[64]; /* the partial block */
    size_t used;
} a2g_sha256;

void a2g_sha256_init(a2g_sha256 *s);
void a2g_sha256_update(a2g_sha256 *s, const void *data, size_t n);
void a2g_sha256_final(a2g_sha256 *s, unsigned char digest[32]);
/* Hashes a regular file, read in blocks (never whole into memory); *size gets its
 * length. Not a regular file, or unreadable: A2G_IO. */
int a2g_sha256_file(const char *path, unsigned char digest[32], int64_t *size,
                    a2g_error *err);

#pragma GCC visibility pop

#endif
