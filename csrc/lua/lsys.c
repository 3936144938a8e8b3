/* See lsys.h. */
#include "lsys.h"

#include <math.h>
#include <unistd.h>

#include "clock.h"
#include "interrupt.h"

/* core.now() -> seconds on a monotonic clock: the default of the Lua layer's clock. */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)a2g_mono_ns() / 1e9);
    return 1;
}

/* core.sleep(seconds): cut short by a trapped SIGINT. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    if (s != s || s == HUGE_VAL)
        return luaL_argerror(L, 1, "a finite number of seconds expected");
    if (s > 0)
        a2g_sleep_ns(s > 1e9 ? (int64_t)1e18 : (int64_t)(s * 1e9));
    return 0;
}

/* core.trap_interrupts([on]) -> trapped: SIGINT sets a flag that ends the core's
 * blocking waits with kind "interrupted" (interrupt.h); false when SIGINT was ignored
 * at start and stays so. core.interrupted() -> the pending signal's number, or nil. */
static int l_trap_interrupts(lua_State *L)
{
    int on = lua_isnoneornil(L, 1) || lua_toboolean(L, 1);
    lua_pushboolean(L, a2g_interrupt_trap(on));
    return 1;
}

static int l_interrupted(lua_State *L)
{
    int sig = a2g_interrupt_pending();
    if (!sig)
        return 0;
    lua_pushinteger(L, sig);
    return 1;
}

/* core.isatty(fd) -> boolean */
static int l_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

static const luaL_Reg functions[] = {
    { "now", l_now },
    { "sleep", l_sleep },
    { "trap_interrupts", l_trap_interrupts },
    { "interrupted", l_interrupted },
    { "isatty", l_isatty },
    { NULL, NULL }
};

void a2g_open_sys(lua_State *L)
{
    luaL_setfuncs(L, functions, 0);
}
