/* The few file-system operations Lua lacks and durable downloads need: fsync of a file
 * or a directory, mkdir, a directory listing, and stat. No Lua. */
#ifndef A2G_FS_H
#define A2G_FS_H

#include <stdint.h>

#include "error.h"

int a2g_fsync_path(const char *path, a2g_error *err);
/* Creates one directory (mode 0777 & ~umask); an existing directory is success. */
int a2g_mkdir(const char *path, a2g_error *err);

typedef enum { A2G_FT_NONE, A2G_FT_FILE, A2G_FT_DIR, A2G_FT_OTHER } a2g_filetype;
/* lstat: a symlink is A2G_FT_OTHER. */
a2g_filetype a2g_stat(const char *path, int64_t *size);

#endif
