/* See llock.h. */
#include "llock.h"

#include <string.h>

#include "lerror.h"
#include "lhelpers.h"
#include "lock.h"

#define LOCK_MT "as2gateway.core.lock"

typedef struct llock {
    int fd; /* -1 once released */
} llock;

/* core.lock(path[, {exclusive = true, timeout = 0}]) -> lock | nil, err (kind "locked"
 * when another process still holds it after `timeout` seconds, "io" when the lock
 * file cannot be opened). Blocks the thread while it waits. */
static int l_lock(lua_State *L)
{
    const char *path = a2g_checktext(L, 1, A2G_TEXT_PATH, "path");
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
        return a2g_push_fail(L, &err);
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

void a2g_open_lock(lua_State *L)
{
    a2g_new_class(L, LOCK_MT, lock_methods, l_lock_close, l_lock_tostring);
    lua_pushcfunction(L, l_lock);
    lua_setfield(L, -2, "lock");
}
