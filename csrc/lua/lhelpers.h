/* What every file of the binding shares: taking strings, options and option tables the
 * one way (checked as what they become, unknown names refused), classes with one
 * idempotent close, and filling result tables. No state of its own. */
#ifndef A2G_LHELPERS_H
#define A2G_LHELPERS_H

#include <stdint.h>

#include "check.h"
#include "compat.h"

#pragma GCC visibility push(hidden)

/* Upper bounds of numeric options: finite, and small enough for the core's integers. */
#define A2G_MAX_SECONDS 1e9   /* about 31 years */
#define A2G_MAX_COUNT 1e6
#define A2G_MAX_BYTES 9007199254740992.0 /* 2^53 */

/* The string argument or value at `idx`, checked as `what` (check.h): the one way a
 * binding takes a string that reaches a header, a URL or a path. Raises "<label>
 * <why>" (e.g. "option 'token' holds CR or LF") otherwise, and for a non-string. */
const char *a2g_checktext(lua_State *L, int idx, a2g_text what, const char *label);

/* Raises "<what>: unknown option '<name>'" unless every key of the table at `idx` is
 * one of `names` (NULL-terminated). */
void a2g_check_keys(lua_State *L, int idx, const char *what, const char *const names[]);
/* Field `name` of the option table at `idx`: a string checked as `what` (NULL when
 * absent; it lives as long as the table), a number from min to max (dflt when absent),
 * a boolean (0 when absent), or a callable as a registry reference (LUA_NOREF when
 * absent). A value of another type raises, naming the option. */
const char *a2g_opt_string(lua_State *L, int idx, const char *name, a2g_text what);
double a2g_opt_number(lua_State *L, int idx, const char *name, double dflt, double min,
                      double max);
int a2g_opt_bool(lua_State *L, int idx, const char *name);
int a2g_opt_function(lua_State *L, int idx, const char *name);

/* Fields of the table on top of the stack; a NULL string is left out. */
void a2g_set_int(lua_State *L, const char *k, lua_Integer v);
void a2g_set_str(lua_State *L, const char *k, const char *v);

/* A metatable `name` with `methods` as __index, `close` as __gc (and __close on 5.4)
 * and an optional __tostring: for userdata created closed, with one idempotent close. */
void a2g_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring);

#pragma GCC visibility pop

#endif
