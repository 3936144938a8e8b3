/* The few file-system operations Lua lacks and durable downloads need: fsync of a file
 * or a directory, mkdir, a directory listing, stat, and a durable append (journals).
 * No Lua. */
#ifndef A2G_FS_H
#define A2G_FS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

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

#endif
