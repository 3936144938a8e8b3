/* What files on disk are called: the one room that decides, for the core (stream.c's
 * downloads) and, through the binding, for the Lua layer (batch extraction, send_dir's
 * moves, drain's clean-up of what a killed run left behind). A name from the gateway
 * is sanitised into one path component; a name already taken gets its variants,
 * "name (2).ext", "name (3).ext", ...; and every temporary file the library writes
 * beside a final one is hidden and named here, so that one function knows them all
 * again. Pure C (no Lua, no libcurl); the sanitiser is a libFuzzer target. */
#ifndef A2G_NAMES_H
#define A2G_NAMES_H

#include <stddef.h>

#include "error.h"

#pragma GCC visibility push(hidden)

/* Longest file name, in bytes (NAME_MAX on Linux). */
#define A2G_NAME_MAX 255

/* Makes a server-supplied name safe as one path component: '/', '\\', NUL and other
 * control bytes become '_', every run of two or more dots becomes '_', a leading dot
 * becomes '_' (no hidden files; "." and ".." included), "" becomes "_", and the
 * result is cut to A2G_NAME_MAX bytes on a UTF-8 boundary.
 * Idempotent. Writes a NUL-terminated name into out (size >= A2G_NAME_MAX + 1) and
 * returns its length. */
size_t a2g_sanitize_filename(const char *in, size_t len, char *out);

/* The n-th name to try for `name` (n >= 1): the name itself, then "stem (n).ext" - the
 * extension being what follows the last dot, when that dot is neither the first nor
 * the last byte - within A2G_NAME_MAX (the stem gives way, cut on a UTF-8 boundary, or
 * the whole name does when the extension is long). Into out (size >= A2G_NAME_MAX +
 * 1); returns its length. */
size_t a2g_name_variant(const char *name, int n, char *out);

/* Stores the file at `tmp` (complete and synced) in folder `dir` under `name` or its
 * first free variant, never replacing a file (link(2) refuses an existing name, so two
 * writers cannot take the same one), removes `tmp` and syncs the folder. 0 with
 * *final the malloc'd path, or -1 with err set (A2G_IO). */
int a2g_place_unique(const char *tmp, const char *dir, const char *name, char **final,
                     a2g_error *err);

/* Temporary names, hidden so that a folder watcher does not take a partial file:
 *   a download on its way to `path`: "<its folder>/.<its name, 200 bytes at most>
 *     .XXXXXX.part", or into folder `dir` (the name not known yet): "<dir>/.as2g-
 *     download.XXXXXX.part" - templates for mkostemps (suffix length 5);
 *   a file of the Lua layer's in `dir` for `purpose` (a lower-case word): "<dir>/.as2g-
 *     <purpose>-<hex><suffix>" (hex: random bytes, spelt out).
 * malloc'd, or NULL when out of memory. */
#define A2G_TEMP_SUFFIX_LEN 5
char *a2g_temp_download(const char *path, int into_dir);
char *a2g_temp_name(const char *dir, const char *purpose, const char *hex,
                    const char *suffix);
/* Whether a file name is one of the temporary files a download leaves when its process
 * is killed: ".<...>.part", or ".as2g-<batch|all|error>-<hex>[.zip]". Never a final
 * file (no final name is hidden), nor a journal or a lock. */
int a2g_is_leftover(const char *name);

#pragma GCC visibility pop

#endif
