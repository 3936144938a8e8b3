/* Shared by the binding files: lutil.c's registration into the as2gateway.core table,
 * and lcore.c's class helper. */
#ifndef A2G_LUTIL_H
#define A2G_LUTIL_H

#include <lauxlib.h>
#include <lua.h>

/* Adds the file and zip helpers to the module table on top of the stack. */
void a2g_open_util(lua_State *L);
/* A metatable `name` with `methods` as __index, `close` as __gc (and __close on 5.4)
 * and an optional __tostring (lcore.c). */
void a2g_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring);

#endif
