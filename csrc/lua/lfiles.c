/* See lfiles.h. Each function takes its path the one way (a2g_checktext: a NUL byte
 * would name another, shorter path) and answers `nil, err` for what the caller can
 * handle. */
#include "lfiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "lerror.h"
#include "lhelpers.h"
#include "names.h"
#include "sha256.h"

static const char *check_path(lua_State *L, int idx)
{
    return a2g_checktext(L, idx, A2G_TEXT_PATH, "path");
}

static int done(lua_State *L, int rc, const a2g_error *err)
{
    if (rc != 0)
        return a2g_push_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.fsync(path) -> true | nil, err: a file's or a folder's contents to disk. */
static int l_fsync(lua_State *L)
{
    a2g_error err;
    return done(L, a2g_fsync_path(check_path(L, 1), &err), &err);
}

/* core.mkdir(path) -> true | nil, err: one level; an existing folder is fine. */
static int l_mkdir(lua_State *L)
{
    a2g_error err;
    return done(L, a2g_mkdir(check_path(L, 1), &err), &err);
}

/* core.stat(path) -> "file" | "dir" | "other", size | nil (absent). Links are "other". */
static int l_stat(lua_State *L)
{
    int64_t size = 0;
    switch (a2g_stat(check_path(L, 1), &size)) {
    case A2G_FT_FILE: lua_pushliteral(L, "file"); break;
    case A2G_FT_DIR: lua_pushliteral(L, "dir"); break;
    case A2G_FT_OTHER: lua_pushliteral(L, "other"); break;
    default: return 0;
    }
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

static int add_name(void *ud, const char *name)
{
    lua_State *L = ud;
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
    return 0;
}

/* core.listdir(path) -> {names...} sorted, without "." and ".." | nil, err */
static int l_listdir(lua_State *L)
{
    const char *path = check_path(L, 1);
    a2g_error err;
    lua_newtable(L);
    if (a2g_listdir(path, add_name, L, &err) != 0)
        return a2g_push_fail(L, &err);
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

/* core.append(path, data) -> true | nil, err: data added at the end of a file and on
 * disk (fsync) before it returns; a torn last line is ended first. For journals. */
static int l_append(lua_State *L)
{
    size_t len;
    const char *path = check_path(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    a2g_error err;
    return done(L, a2g_append_durable(path, data, len, &err), &err);
}

/* core.write_private(path, data) -> true | nil, err: a file only its owner can read
 * (0600 from the start), written whole and renamed into place. */
static int l_write_private(lua_State *L)
{
    size_t len;
    const char *path = check_path(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    a2g_error err;
    return done(L, a2g_write_private(path, data, len, &err), &err);
}

static void push_hex(lua_State *L, const unsigned char *d, size_t n)
{
    char hex[129];
    for (size_t i = 0; i < n && i < 64; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    lua_pushlstring(L, hex, 2 * n);
}

/* core.sha256(data) -> lower-case hex digest */
static int l_sha256(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    a2g_sha256 s;
    unsigned char d[32];
    a2g_sha256_init(&s);
    a2g_sha256_update(&s, data, len);
    a2g_sha256_final(&s, d);
    push_hex(L, d, sizeof d);
    return 1;
}

/* core.sha256_file(path) -> hex digest, size | nil, err: a regular file, read in blocks. */
static int l_sha256_file(lua_State *L)
{
    const char *path = check_path(L, 1);
    unsigned char d[32];
    int64_t size = 0;
    a2g_error err;
    if (a2g_sha256_file(path, d, &size, &err) != 0)
        return a2g_push_fail(L, &err);
    push_hex(L, d, sizeof d);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* core.random_hex(bytes) -> hex string from /dev/urandom: temporary names, boundaries. */
static int l_random_hex(lua_State *L)
{
    int n = (int)luaL_checkinteger(L, 1);
    if (n < 1 || n > 64)
        return luaL_argerror(L, 1, "from 1 to 64 bytes");
    unsigned char raw[64];
    if (a2g_random_bytes(raw, (size_t)n) != 0)
        return luaL_error(L, "as2gateway: /dev/urandom is not readable");
    push_hex(L, raw, (size_t)n);
    return 1;
}

/* Names (names.h) ------------------------------------------------------------------ */

/* core.sanitize_filename(name) -> a name safe as one path component. */
static int l_sanitize_filename(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char out[A2G_NAME_MAX + 1];
    size_t n = a2g_sanitize_filename(s, len, out);
    lua_pushlstring(L, out, n);
    return 1;
}

/* core.name_variant(name, n) -> the n-th name to try for `name`: itself, then
 * "stem (n).ext", within NAME_MAX. */
static int l_name_variant(lua_State *L)
{
    const char *name = a2g_checktext(L, 1, A2G_TEXT_PATH, "name");
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1 && n <= 1000000, 2, "from 1 to 1000000");
    char out[A2G_NAME_MAX + 1];
    size_t len = a2g_name_variant(name, (int)n, out);
    lua_pushlstring(L, out, len);
    return 1;
}

/* core.temp_path(dir, purpose[, suffix]) -> "<dir>/.as2g-<purpose>-<16 hex><suffix>", a
 * temporary file of the Lua layer's (the purpose a lower-case word). */
static int l_temp_path(lua_State *L)
{
    const char *dir = check_path(L, 1);
    const char *purpose = luaL_checkstring(L, 2);
    const char *suffix = luaL_optstring(L, 3, "");
    for (const char *p = purpose; *p; p++)
        luaL_argcheck(L, *p >= 'a' && *p <= 'z', 2, "a lower-case word expected");
    luaL_argcheck(L, !strchr(suffix, '/'), 3, "a suffix without '/' expected");
    unsigned char raw[8];
    char hex[17];
    if (a2g_random_bytes(raw, sizeof raw) != 0)
        return luaL_error(L, "as2gateway: /dev/urandom is not readable");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    char *path = a2g_temp_name(dir, purpose, hex, suffix);
    if (!path)
        return luaL_error(L, "out of memory");
    lua_pushstring(L, path);
    free(path);
    return 1;
}

/* core.is_leftover(name) -> whether a file name is a temporary file a killed download
 * left behind (and only then may a clean-up remove it). */
static int l_is_leftover(lua_State *L)
{
    lua_pushboolean(L, a2g_is_leftover(luaL_checkstring(L, 1)));
    return 1;
}

static const luaL_Reg functions[] = {
    { "fsync", l_fsync },
    { "mkdir", l_mkdir },
    { "stat", l_stat },
    { "listdir", l_listdir },
    { "append", l_append },
    { "write_private", l_write_private },
    { "sha256", l_sha256 },
    { "sha256_file", l_sha256_file },
    { "random_hex", l_random_hex },
    { "sanitize_filename", l_sanitize_filename },
    { "name_variant", l_name_variant },
    { "temp_path", l_temp_path },
    { "is_leftover", l_is_leftover },
    { NULL, NULL }
};

void a2g_open_files(lua_State *L)
{
    luaL_setfuncs(L, functions, 0);
    lua_pushinteger(L, A2G_NAME_MAX);
    lua_setfield(L, -2, "NAME_MAX");
}
