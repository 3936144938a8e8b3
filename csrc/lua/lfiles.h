/* Files for the Lua layer, which Lua alone cannot do safely: fsync, mkdir, stat, a
 * sorted listing, durable appends, private files, SHA-256, random bytes; and the
 * names the library gives files (names.h). */
#ifndef A2G_LFILES_H
#define A2G_LFILES_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* Adds the functions to the module table on top of the stack. */
void a2g_open_files(lua_State *L);

#pragma GCC visibility pop

#endif
