/* Advisory locks for the Lua layer (lock.h): core.lock(path[, {exclusive, timeout}])
 * -> lock with :held() and :close(). */
#ifndef A2G_LLOCK_H
#define A2G_LLOCK_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* The class, and core.lock in the module table on top of the stack. */
void a2g_open_lock(lua_State *L);

#pragma GCC visibility pop

#endif
