/* Zip archives for the Lua layer (unzip.h, on libzip): core.zip_open(path) -> archive
 * with :entries(), :extract(index, dest, max_bytes[, no_clobber]) and :close(). Which
 * entry goes where, and every limit on counts and ratios, is the Lua layer's policy
 * (as2gateway.batch). */
#ifndef A2G_LZIP_H
#define A2G_LZIP_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* The class, and core.zip_open in the module table on top of the stack. */
void a2g_open_zip(lua_State *L);

#pragma GCC visibility pop

#endif
