/* The client object of the binding: core.new(options), its methods (stats, token,
 * set_token, now, close) and the host's hooks (clock, log, progress, acquire, release)
 * run under lua_pcall, their errors stashed and raised once the core has returned.
 * lrequest.c's requests hang from it (closed with it) through a2g_lchild. */
#ifndef A2G_LCLIENT_H
#define A2G_LCLIENT_H

#include <stddef.h>

#include "client.h"
#include "compat.h"

#pragma GCC visibility push(hidden)

#define A2G_CLIENT_MT "as2gateway.core.client"

/* Something the client closes when it is closed (its requests). */
typedef struct a2g_lchild {
    struct a2g_lchild *next;
    void (*close)(lua_State *L, struct a2g_lchild *child);
} a2g_lchild;

typedef struct lclient {
    a2g_client *c;           /* NULL once closed */
    lua_State *L;            /* the state of the call in progress, for hooks */
    int log_ref, clock_ref, sleep_ref, progress_ref, acquire_ref, release_ref;
    int hook_error_ref;      /* an error a hook raised */
    int in_callback;         /* > 0 while one of its hooks, sinks or readers runs */
    size_t max_json;         /* the largest answer decoded (ljson.h) */
    a2g_lchild *children;    /* live requests */
} lclient;

/* The client at idx, open and not inside one of its own callbacks, for a call that may
 * transfer or change it; it runs hooks in L from now on. */
lclient *a2g_check_client(lua_State *L, int idx);
/* The client at idx, open, for reading what it holds (allowed inside its hooks). */
lclient *a2g_check_open_client(lua_State *L, int idx);
/* Raises the error of a use of the client from inside its own callbacks. */
int a2g_inside_callback(lua_State *L);
/* Runs a function of the host (on the stack, with its arguments) under lua_pcall,
 * marked as inside the client's callbacks: lua_pcall's status. */
int a2g_call_hook(lua_State *L, lclient *lc, int nargs, int nresults);
/* Keeps the error on top of the stack in *ref (the first one wins); raises a kept
 * error once the core has returned, if there is one. */
void a2g_stash(lua_State *L, int *ref);
void a2g_reraise(lua_State *L, int *ref);
/* Sleeps the number of seconds at `arg` the client's way: its `sleep` hook, run as one
 * of its callbacks, else core.sleep's (cut short by a trapped SIGINT). What the hook
 * raises is raised. */
int a2g_client_sleep(lua_State *L, lclient *lc, int arg);
/* Adds a child to the client, or takes it away again. */
void a2g_adopt(lclient *lc, a2g_lchild *child);
void a2g_orphan(lclient *lc, a2g_lchild *child);

/* The class, and core.new in the module table on top of the stack. */
void a2g_open_client(lua_State *L);

#pragma GCC visibility pop

#endif
