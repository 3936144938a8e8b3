/* Errors as Lua sees them: tables {kind, message, status, context, retry_after} with
 * one metatable (a readable __tostring), the binding's `nil, err` results, and
 * core.error for the Lua layer's own errors, so that all look alike. */
#ifndef A2G_LERROR_H
#define A2G_LERROR_H

#include "compat.h"
#include "error.h"

#pragma GCC visibility push(hidden)

/* Pushes an error table {kind, message, status} (status left out when 0). */
void a2g_push_error(lua_State *L, const char *kind, const char *message, long status);
/* Pushes nil and the error table of `err`; returns 2, for `return a2g_push_fail(...)`. */
int a2g_push_fail(lua_State *L, const a2g_error *err);
/* The metatable, and core.error(kind, message[, status]) in the module table on top of
 * the stack. */
void a2g_open_error(lua_State *L);

#pragma GCC visibility pop

#endif
