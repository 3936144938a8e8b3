/* The shared quota engines for Lua (qwindow.h, quota_file.h, quota_redis.h):
 * core.quota_local{...}, core.quota_file{...} and core.quota_redis{...}, one class with
 * the same methods on all three; see docs/quota.md. */
#ifndef A2G_LQUOTA_H
#define A2G_LQUOTA_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* The class, and the three constructors in the module table on top of the stack. */
void a2g_open_quota(lua_State *L);

/* The client's option `quota` at idx: "file:<folder>", "redis://..." / "unix://...", a
 * table {file = <folder>, ...} / {redis = <url>, ...} (with the options of
 * core.quota_file / core.quota_redis), or an engine of theirs, which the client takes
 * over (the object is closed then); requests and window default to `limit` and
 * `window_ms`, a Redis account to `account`. NULL for nil or false; raises for a bad
 * value, and with the engine's error when it cannot open. The stack is as it was. */
struct a2g_quota;
/* One account's name in a shared backend (a Redis account, the as2g CLI's state
 * folder): the hex SHA-256 of "url\nusername", never the password or the token. */
void a2g_quota_account(const char *url, const char *username, char out[65]);
struct a2g_quota *a2g_lquota_option(lua_State *L, int idx, const char *account, int limit,
                                    int64_t window_ms);

#pragma GCC visibility pop

#endif
