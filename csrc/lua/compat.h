/* The one place where Lua 5.4 and the Lua 5.1 API (LuaJIT for OpenResty, and plain
 * Lua 5.1 for LuaRocks' default on Debian) differ for this binding. Only the binding
 * includes it. */
#ifndef A2G_COMPAT_H
#define A2G_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* Lua 5.1 lacks these; LuaJIT has them, but one shim for both keeps this simple. */
static inline int a2g_absindex(lua_State *L, int i)
{
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}

static inline void a2g_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    (void)nup; /* no upvalues are used here */
    for (; l->name; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}

static inline void a2g_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}

#define lua_rawlen(L, i) lua_objlen((L), (i))
#define lua_absindex a2g_absindex
#undef luaL_newlib
#define luaL_newlib(L, l) (lua_newtable(L), a2g_setfuncs((L), (l), 0))
#define luaL_setfuncs a2g_setfuncs
#define luaL_setmetatable a2g_setmetatable
#endif

#endif
