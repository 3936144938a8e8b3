/* as2gateway.core's file and zip helpers for the Lua layer: fsync, mkdir, stat,
 * directory listing, advisory locks and SHA-256 (Lua has none of them), and zip
 * reading on libzip. Policy (which entry goes where, limits on counts and ratios)
 * stays in Lua. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"

#include "fs.h"
#include "interrupt.h"
#include "lock.h"
#include "sha256.h"
#include "unzip.h"
#include "lutil.h"

#define ZIP_MT "as2gateway.core.zip"
#define LOCK_MT "as2gateway.core.lock"

const char *a2g_checktext(lua_State *L, int idx, a2g_text what, const char *label)
{
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s must be a string", label);
    const char *s = lua_tolstring(L, idx, &len);
    const char *why = a2g_check_text(s, len, what);
    if (why)
        luaL_error(L, "%s %s", label, why);
    return s;
}

static int fail(lua_State *L, const a2g_error *err)
{
    lua_pushnil(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "as2gateway.core.error");
    lua_pushstring(L, a2g_kind_name(err->kind));
    lua_pushstring(L, err->message);
    lua_call(L, 2, 1);
    return 2;
}

int a2g_push_fail(lua_State *L, const a2g_error *err)
{
    return fail(L, err);
}

/* core.fsync(path) -> true | nil, err: a file's or a folder's contents to disk. */
static int l_fsync(lua_State *L)
{
    a2g_error err;
    if (a2g_fsync_path(a2g_checktext(L, 1, A2G_TEXT_PATH, "path"), &err) != 0)
        return fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.mkdir(path) -> true | nil, err: one level; an existing folder is fine. */
static int l_mkdir(lua_State *L)
{
    a2g_error err;
    if (a2g_mkdir(a2g_checktext(L, 1, A2G_TEXT_PATH, "path"), &err) != 0)
        return fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.stat(path) -> "file" | "dir" | "other", size | nil (absent). Links are "other". */
static int l_stat(lua_State *L)
{
    int64_t size = 0;
    switch (a2g_stat(a2g_checktext(L, 1, A2G_TEXT_PATH, "path"), &size)) {
    case A2G_FT_FILE: lua_pushliteral(L, "file"); break;
    case A2G_FT_DIR: lua_pushliteral(L, "dir"); break;
    case A2G_FT_OTHER: lua_pushliteral(L, "other"); break;
    default: return 0;
    }
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* core.listdir(path) -> {names...} sorted, without "." and ".." | nil, err */
static int l_listdir(lua_State *L)
{
    const char *path = a2g_checktext(L, 1, A2G_TEXT_PATH, "path");
    DIR *d = opendir(path);
    if (!d) {
        a2g_error err;
        a2g_fail(&err, A2G_IO, 0, "cannot list %s", path);
        return fail(L, &err);
    }
    lua_newtable(L);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        lua_pushstring(L, de->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(d);
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

/* A path argument: a NUL inside would silently name another, shorter path. */
static const char *check_path(lua_State *L, int arg)
{
    size_t len;
    const char *path = luaL_checklstring(L, arg, &len);
    if (strlen(path) != len)
        luaL_argerror(L, arg, "a path without NUL bytes expected");
    return path;
}

/* Locks ------------------------------------------------------------------------------ */

typedef struct llock {
    int fd; /* -1 once released */
} llock;

/* core.lock(path[, {exclusive = true, timeout = 0}]) -> lock | nil, err (kind "locked"
 * when another process still holds it after `timeout` seconds, "io" when the lock
 * file cannot be opened). Blocks the thread while it waits. */
static int l_lock(lua_State *L)
{
    const char *path = check_path(L, 1);
    int exclusive = 1;
    lua_Number timeout = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pop(L, 1);
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (!k || (strcmp(k, "exclusive") != 0 && strcmp(k, "timeout") != 0))
                return luaL_error(L, "lock: unknown option '%s'",
                                  k ? k : luaL_typename(L, -1));
        }
        lua_getfield(L, 2, "exclusive");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_isboolean(L, -1), 2, "exclusive must be a boolean");
            exclusive = lua_toboolean(L, -1);
        }
        lua_getfield(L, 2, "timeout");
        if (!lua_isnil(L, -1)) {
            timeout = luaL_checknumber(L, -1);
            luaL_argcheck(L, timeout >= 0 && timeout <= 86400 * 365, 2,
                          "timeout must be seconds from 0 to a year");
        }
        lua_pop(L, 2);
    }
    llock *lk = lua_newuserdata(L, sizeof *lk);
    lk->fd = -1;
    luaL_setmetatable(L, LOCK_MT);
    a2g_error err;
    int fd = a2g_lock_acquire(path, exclusive, (int64_t)(timeout * 1000), &err);
    if (fd < 0)
        return fail(L, &err);
    lk->fd = fd;
    return 1;
}

/* lock:close(): releases it; idempotent (also __gc and __close). */
static int l_lock_close(lua_State *L)
{
    llock *lk = luaL_checkudata(L, 1, LOCK_MT);
    a2g_lock_release(lk->fd);
    lk->fd = -1;
    return 0;
}

/* lock:held() -> boolean */
static int l_lock_held(lua_State *L)
{
    llock *lk = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushboolean(L, lk->fd >= 0);
    return 1;
}

static int l_lock_tostring(lua_State *L)
{
    llock *lk = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushfstring(L, "as2gateway.core.lock (%s)", lk->fd >= 0 ? "held" : "released");
    return 1;
}

static const luaL_Reg lock_methods[] = {
    { "close", l_lock_close },
    { "held", l_lock_held },
    { NULL, NULL }
};

/* SHA-256 ---------------------------------------------------------------------------- */

static void push_hex(lua_State *L, const unsigned char *d, size_t n)
{
    char hex[65];
    for (size_t i = 0; i < n && i < 32; i++)
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
        return fail(L, &err);
    push_hex(L, d, sizeof d);
    lua_pushinteger(L, (lua_Integer)size);
    return 2;
}

/* Zip archives ----------------------------------------------------------------------- */

typedef struct lzip {
    a2g_zip *z;
} lzip;

static lzip *check_zip(lua_State *L)
{
    lzip *lz = luaL_checkudata(L, 1, ZIP_MT);
    if (!lz->z)
        luaL_error(L, "as2gateway: the zip archive is closed");
    return lz;
}

/* core.zip_open(path) -> archive | nil, err */
static int l_zip_open(lua_State *L)
{
    const char *path = a2g_checktext(L, 1, A2G_TEXT_PATH, "path");
    lzip *lz = lua_newuserdata(L, sizeof *lz);
    lz->z = NULL;
    luaL_setmetatable(L, ZIP_MT);
    a2g_error err;
    lz->z = a2g_zip_open(path, &err);
    if (!lz->z)
        return fail(L, &err);
    return 1;
}

/* archive:entries() -> {{index, name, size, compressed, dir, link, encrypted}...} */
static int l_zip_entries(lua_State *L)
{
    lzip *lz = check_zip(L);
    long n = a2g_zip_count(lz->z);
    lua_createtable(L, n > 0 ? (int)n : 0, 0);
    for (long i = 0; i < n; i++) {
        a2g_zip_entry e;
        a2g_error err;
        if (a2g_zip_stat(lz->z, i, &e, &err) != 0)
            return fail(L, &err);
        lua_createtable(L, 0, 7);
        lua_pushinteger(L, i);
        lua_setfield(L, -2, "index");
        lua_pushstring(L, e.name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, (lua_Integer)e.size);
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, (lua_Integer)e.compressed);
        lua_setfield(L, -2, "compressed");
        lua_pushboolean(L, e.is_dir);
        lua_setfield(L, -2, "dir");
        lua_pushboolean(L, e.is_symlink);
        lua_setfield(L, -2, "link");
        lua_pushboolean(L, e.encrypted);
        lua_setfield(L, -2, "encrypted");
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* archive:extract(index, dest, max_bytes[, no_clobber]) -> true | nil, err */
static int l_zip_extract(lua_State *L)
{
    lzip *lz = check_zip(L);
    long index = (long)luaL_checkinteger(L, 2);
    const char *dest = a2g_checktext(L, 3, A2G_TEXT_PATH, "extract: dest");
    lua_Number max = luaL_checknumber(L, 4);
    int no_clobber = lua_toboolean(L, 5);
    a2g_error err;
    if (a2g_zip_extract(lz->z, index, dest, no_clobber, (uint64_t)max, &err) != 0)
        return fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_zip_close(lua_State *L)
{
    lzip *lz = luaL_checkudata(L, 1, ZIP_MT);
    a2g_zip_close(lz->z);
    lz->z = NULL;
    return 0;
}

static const luaL_Reg zip_methods[] = {
    { "entries", l_zip_entries },
    { "extract", l_zip_extract },
    { "close", l_zip_close },
    { NULL, NULL }
};

/* core.append(path, data) -> true | nil, err: data added at the end of a file and on
 * disk (fsync) before it returns; a torn last line is ended first. For journals. */
static int l_append(lua_State *L)
{
    size_t len;
    const char *path = luaL_checkstring(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    a2g_error err;
    if (a2g_append_durable(path, data, len, &err) != 0)
        return fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.random_hex(bytes) -> hex string from /dev/urandom: temporary names, boundaries. */
static int l_random_hex(lua_State *L)
{
    int n = (int)luaL_checkinteger(L, 1);
    if (n < 1 || n > 64)
        return luaL_argerror(L, 1, "from 1 to 64 bytes");
    unsigned char raw[64];
    char hex[129];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(raw, 1, (size_t)n, f) : 0;
    if (f)
        fclose(f);
    if (got != (size_t)n)
        return luaL_error(L, "as2gateway: /dev/urandom is not readable");
    for (int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    lua_pushlstring(L, hex, (size_t)n * 2);
    return 1;
}

/* core.now() -> seconds on a monotonic clock; core.sleep(seconds). The defaults of
 * the Lua layer's clock and sleep hooks. */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    if (s != s || s == HUGE_VAL)
        return luaL_argerror(L, 1, "a finite number of seconds expected");
    if (s <= 0 || a2g_interrupt_pending())
        return 0;
    struct timespec ts = { (time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !a2g_interrupt_pending())
        ;
    return 0;
}

/* core.trap_interrupts([on]) -> trapped: SIGINT sets a flag that ends the core's
 * blocking waits with kind "interrupted" (interrupt.h); false when SIGINT was ignored
 * at start and stays so. core.interrupted() -> the pending signal's number, or nil. */
static int l_trap_interrupts(lua_State *L)
{
    int on = lua_isnoneornil(L, 1) || lua_toboolean(L, 1);
    lua_pushboolean(L, a2g_interrupt_trap(on));
    return 1;
}

static int l_interrupted(lua_State *L)
{
    int sig = a2g_interrupt_pending();
    if (!sig)
        return 0;
    lua_pushinteger(L, sig);
    return 1;
}

/* core.isatty(fd) -> boolean */
static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* core.write_private(path, data) -> true | nil, err: a file only its owner can read
 * (0600 from the start), written whole and renamed into place. */
static int l_write_private(lua_State *L)
{
    const char *path = a2g_checktext(L, 1, A2G_TEXT_PATH, "path");
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    a2g_error err;
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return luaL_error(L, "out of memory");
    snprintf(tmp, n, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        a2g_fail(&err, A2G_IO, 0, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return fail(L, &err);
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int ok = off == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        a2g_fail(&err, A2G_IO, 0, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return fail(L, &err);
    }
    free(tmp);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg util_functions[] = {
    { "isatty", l_isatty },
    { "write_private", l_write_private },
    { "random_hex", l_random_hex },
    { "now", l_now },
    { "sleep", l_sleep },
    { "trap_interrupts", l_trap_interrupts },
    { "interrupted", l_interrupted },
    { "fsync", l_fsync },
    { "append", l_append },
    { "mkdir", l_mkdir },
    { "stat", l_stat },
    { "listdir", l_listdir },
    { "zip_open", l_zip_open },
    { "lock", l_lock },
    { "sha256", l_sha256 },
    { "sha256_file", l_sha256_file },
    { NULL, NULL }
};

void a2g_open_util(lua_State *L)
{
    a2g_new_class(L, ZIP_MT, zip_methods, l_zip_close, NULL);
    a2g_new_class(L, LOCK_MT, lock_methods, l_lock_close, l_lock_tostring);
    luaL_setfuncs(L, util_functions, 0);
}
