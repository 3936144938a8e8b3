/* See lzip.h. */
#include "lzip.h"

#include "lerror.h"
#include "lhelpers.h"
#include "unzip.h"

#define ZIP_MT "as2gateway.core.zip"

typedef struct lzip {
    a2g_zip *z; /* NULL once closed */
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
        return a2g_push_fail(L, &err);
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
            return a2g_push_fail(L, &err);
        lua_createtable(L, 0, 7);
        a2g_set_int(L, "index", i);
        a2g_set_str(L, "name", e.name);
        a2g_set_int(L, "size", (lua_Integer)e.size);
        a2g_set_int(L, "compressed", (lua_Integer)e.compressed);
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
        return a2g_push_fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* archive:close(): idempotent (also __gc and __close). */
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

void a2g_open_zip(lua_State *L)
{
    a2g_new_class(L, ZIP_MT, zip_methods, l_zip_close, NULL);
    lua_pushcfunction(L, l_zip_open);
    lua_setfield(L, -2, "zip_open");
}
