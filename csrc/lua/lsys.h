/* The process, for the Lua layer: the monotonic clock, a sleep, whether a descriptor is
 * a terminal, and Ctrl-C as a flag (interrupt.h): core.now, core.sleep, core.isatty,
 * core.trap_interrupts, core.interrupted. */
#ifndef A2G_LSYS_H
#define A2G_LSYS_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* Adds the functions to the module table on top of the stack. */
void a2g_open_sys(lua_State *L);

#pragma GCC visibility pop

#endif
