/* The request object of the binding, and the client's calls that make one:
 * client:request(spec) (step-wise), client:perform(spec) and client:authorize(), which
 * run one to its end through the Lua layer's one step driver (as2gateway.driver).
 * Sinks and readers run under lua_pcall inside the transfer, their errors stashed, the
 * transfer aborted, and raised once libcurl has returned. */
#ifndef A2G_LREQUEST_H
#define A2G_LREQUEST_H

#include "compat.h"

#pragma GCC visibility push(hidden)

/* The request class, and its constructors among the client's methods (open the client
 * first, lclient.h). */
void a2g_open_request(lua_State *L);

#pragma GCC visibility pop

#endif
