/* Shared by the binding files: lutil.c's registration into the as2gateway.core table,
 * and lcore.c's class helper. */
#ifndef A2G_LUTIL_H
#define A2G_LUTIL_H

#include <lauxlib.h>
#include <lua.h>

#include "check.h"
#include "error.h"

/* The string argument or value at `idx`, checked as `what` (check.h): the one way a
 * binding takes a string that reaches a header, a URL or a path. Raises "<label>
 * <why>" (e.g. "option 'token' holds CR or LF") otherwise, and for a non-string. */
const char *a2g_checktext(lua_State *L, int idx, a2g_text what, const char *label);
/* Pushes nil and the error as an as2gateway.core error value; returns 2 (`return
 * a2g_push_fail(L, &err)` from a binding function). */
int a2g_push_fail(lua_State *L, const a2g_error *err);
/* Adds the file and zip helpers to the module table on top of the stack. */
void a2g_open_util(lua_State *L);
/* Adds core.quota_file and core.quota_redis (lquota.c) to the module table on top. */
void a2g_open_quota(lua_State *L);
/* A metatable `name` with `methods` as __index, `close` as __gc (and __close on 5.4)
 * and an optional __tostring (lcore.c). */
void a2g_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring);

#endif
