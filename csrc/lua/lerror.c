/* See lerror.h. */
#include "lerror.h"

#define ERROR_MT "as2gateway.error"

static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "context"); /* "kind: context: message", when there is one */
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pushliteral(L, ": ");
        lua_getfield(L, 1, "message");
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
        lua_getfield(L, 1, "message");
    }
    lua_getfield(L, 1, "status");
    if (lua_tointeger(L, -1) > 0)
        lua_pushfstring(L, "as2gateway: %s: %s (HTTP %d)", lua_tostring(L, -3),
                        lua_tostring(L, -2), (int)lua_tointeger(L, -1));
    else
        lua_pushfstring(L, "as2gateway: %s: %s", lua_tostring(L, -3), lua_tostring(L, -2));
    return 1;
}

void a2g_push_error(lua_State *L, const char *kind, const char *message, long status)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    if (status > 0) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    luaL_setmetatable(L, ERROR_MT);
}

int a2g_push_fail(lua_State *L, const a2g_error *err)
{
    lua_pushnil(L);
    a2g_push_error(L, a2g_kind_name(err->kind), err->message, err->status);
    if (err->context[0]) {
        lua_pushstring(L, err->context);
        lua_setfield(L, -2, "context");
    }
    if (err->retry_after > 0) {
        lua_pushinteger(L, (lua_Integer)err->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    return 2;
}

/* core.error(kind, message[, status]): errors of the Lua layer look like the core's. */
static int l_error(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1);
    const char *message = luaL_checkstring(L, 2);
    long status = (long)luaL_optinteger(L, 3, 0);
    a2g_push_error(L, kind, message, status);
    return 1;
}

void a2g_open_error(lua_State *L)
{
    luaL_newmetatable(L, ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, ERROR_MT);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_error);
    lua_setfield(L, -2, "error");
}
