/* See lhelpers.h. */
#include "lhelpers.h"

#include <stdio.h>
#include <string.h>

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

void a2g_check_keys(lua_State *L, int idx, const char *what, const char *const names[])
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings", what);
        const char *k = lua_tostring(L, -1);
        int known = 0;
        for (int i = 0; names[i]; i++)
            if (strcmp(k, names[i]) == 0)
                known = 1;
        if (!known)
            luaL_error(L, "%s: unknown option '%s'", what, k);
    }
}

const char *a2g_opt_string(lua_State *L, int idx, const char *name, a2g_text what)
{
    const char *v = NULL;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        char label[64];
        snprintf(label, sizeof label, "option '%s'", name);
        v = a2g_checktext(L, -1, what, label);
    }
    lua_pop(L, 1); /* the string stays alive: the option table holds it */
    return v;
}

double a2g_opt_number(lua_State *L, int idx, const char *name, double dflt, double min,
                      double max)
{
    double v = dflt;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "option '%s' must be a number", name);
        v = lua_tonumber(L, -1);
        if (!(v >= min && v <= max)) { /* NaN fails both */
            /* lua_pushfstring knows no %g: the bounds are formatted here */
            char range[64];
            snprintf(range, sizeof range, "%g to %g", min, max);
            luaL_error(L, "option '%s' must be from %s", name, range);
        }
    }
    lua_pop(L, 1);
    return v;
}

int a2g_opt_bool(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "option '%s' must be a boolean", name);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

int a2g_opt_function(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        if (!luaL_getmetafield(L, -1, "__call"))
            luaL_error(L, "option '%s' must be a function", name);
        lua_pop(L, 1);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void a2g_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void a2g_set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

void a2g_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
#endif
    if (tostring) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
