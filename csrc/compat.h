/* The one place where Lua 5.4 and LuaJIT (the Lua 5.1 API of OpenResty) differ for
 * this binding. Only the binding includes it. */
#ifndef A2G_COMPAT_H
#define A2G_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* LuaJIT 2.1 has luaL_setfuncs, luaL_testudata and luaL_setmetatable already. */
#define lua_rawlen(L, i) lua_objlen((L), (i))
static inline int a2g_absindex(lua_State *L, int i)
{
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex a2g_absindex
#endif


#endif
