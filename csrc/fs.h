/* The few file-system operations Lua lacks and durable downloads need: fsync of a file
 * or a directory, mkdir, a directory listing, stat, a durable append (journals), a
 * file only its owner can read, and random bytes. No Lua. */
#ifndef A2G_FS_H
#define A2G_FS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#pragma GCC visibility push(hidden)

int a2g_fsync_path(const char *path, a2g_error *err);
/* Creates one directory (mode 0777 & ~umask); an existing directory is success. */
int a2g_mkdir(const char *path, a2g_error *err);

typedef enum { A2G_FT_NONE, A2G_FT_FILE, A2G_FT_DIR, A2G_FT_OTHER } a2g_filetype;
/* lstat: a symlink is A2G_FT_OTHER. */
a2g_filetype a2g_stat(const char *path, int64_t *size);

/* Appends len bytes to a file (created 0600) and syncs them to disk before returning:
 * 0 only when every byte was written and synced (and, for a new file, its folder).
 * A torn last line (no final newline, left by a process killed mid-write) is ended
 * first, so that what follows starts a line of its own. */
int a2g_append_durable(const char *path, const char *data, size_t len, a2g_error *err);

/* Writes a file only its owner can read (mode 0600 from the start): whole, synced, and
 * renamed into place, so that it is the old file or the new one, never a part. */
int a2g_write_private(const char *path, const char *data, size_t len, a2g_error *err);

/* Calls fn with each name in the folder, "." and ".." left out, in no order; a
 * non-zero return stops the listing. 0, or -1 with err set (A2G_IO). */
int a2g_listdir(const char *path, int (*fn)(void *ud, const char *name), void *ud,
                a2g_error *err);

/* n bytes from /dev/urandom: 0, or -1 when it cannot be read. */
int a2g_random_bytes(void *buf, size_t n);

#pragma GCC visibility pop

#endif
