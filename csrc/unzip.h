/* Reading zip archives from the gateway (batch and /all downloads) with libzip:
 * entries are listed with what a caller needs to judge them (raw name, sizes, links)
 * and extracted one at a time, streamed, bounded, to a temporary file that is flushed
 * and renamed into place. Where an entry goes is the caller's decision: nothing here
 * trusts an entry name as a path. No Lua. */
#ifndef A2G_UNZIP_H
#define A2G_UNZIP_H

#include <stdint.h>

#include "error.h"

#pragma GCC visibility push(hidden)

typedef struct a2g_zip a2g_zip;

typedef struct a2g_zip_entry {
    const char *name;        /* raw, as stored; owned by the archive */
    uint64_t size;           /* declared uncompressed size */
    uint64_t compressed;
    int is_dir;
    int is_symlink;          /* a Unix symlink (or other non-regular file) */
    int encrypted;
} a2g_zip_entry;

a2g_zip *a2g_zip_open(const char *path, a2g_error *err);
long a2g_zip_count(a2g_zip *z);
int a2g_zip_stat(a2g_zip *z, long index, a2g_zip_entry *e, a2g_error *err);
/* Extracts entry `index` to `dest` (temporary file beside it, fsync, rename; with
 * no_clobber an existing file is an error). Fails when the entry yields more than
 * max_bytes or a different size than declared. */
int a2g_zip_extract(a2g_zip *z, long index, const char *dest, int no_clobber,
                    uint64_t max_bytes, a2g_error *err);
void a2g_zip_close(a2g_zip *z);

#pragma GCC visibility pop

#endif
