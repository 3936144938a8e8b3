/* The shared quota engines for Lua (qwindow.h, quota_file.h, quota_redis.h):
 * core.quota_local{...}, core.quota_file{...} and core.quota_redis{...}, one class with
 * the same methods on all three; see docs/quota.md. */
#ifndef A2G_LQUOTA_H
#define A2G_LQUOTA_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* The class, and the three constructors in the module table on top of the stack. */
void a2g_open_quota(lua_State *L);

#pragma GCC visibility pop

#endif
