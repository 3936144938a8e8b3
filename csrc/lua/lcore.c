/* as2gateway.core: the Lua binding of the C core, opened here and nothing else. Each
 * object has a file of its own (lclient.c, lrequest.c, lzip.c, llock.c, lquota.c), and so have
 * errors (lerror.c), the decoder of answers (ljson.c), files (lfiles.c), the process
 * (lsys.c) and what they share (lhelpers.c). Only these files include lua.h; they see
 * the core through its public headers (client.h, error.h, unzip.h, lock.h, fs.h, ...)
 * alone, and only luaopen_as2gateway_core is exported. */
#include "client.h"
#include "compat.h"
#include "lclient.h"
#include "lerror.h"
#include "lfiles.h"
#include "ljson.h"
#include "llock.h"
#include "lquota.h"
#include "lrequest.h"
#include "lsys.h"
#include "lzip.h"
#include "version.h"

__attribute__((visibility("default"))) int luaopen_as2gateway_core(lua_State *L)
{
    if (a2g_client_global_init() != 0)
        return luaL_error(L, "as2gateway.core: libcurl failed to initialise");
    lua_newtable(L);
    a2g_open_error(L);
    a2g_open_client(L);
    a2g_open_request(L);
    a2g_open_json(L);
    a2g_open_files(L);
    a2g_open_sys(L);
    a2g_open_zip(L);
    a2g_open_lock(L);
    a2g_open_quota(L);
    lua_createtable(L, A2G_KIND_COUNT - 1, 0);
    for (int k = 1; k < A2G_KIND_COUNT; k++) {
        lua_pushstring(L, a2g_kind_name((a2g_kind)k));
        lua_rawseti(L, -2, k);
    }
    lua_setfield(L, -2, "kinds");
    lua_pushliteral(L, A2G_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
