/* Registration of lutil.c's functions into the as2gateway.core table. */
#ifndef A2G_LUTIL_H
#define A2G_LUTIL_H

#include <lua.h>

/* Adds the file and zip helpers to the module table on top of the stack. */
void a2g_open_util(lua_State *L);

#endif
