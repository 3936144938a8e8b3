/* as2gateway.core: the Lua binding of the C core. Thin on purpose: it turns option
 * tables into the core's structs, runs Lua callbacks (sink, reader, log, clock,
 * sleep) under lua_pcall and carries their errors out only after libcurl has
 * returned, and turns outcomes into result tables or `nil, err`. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat.h"

#include "client.h"
#include "headers.h"
#include "interrupt.h"
#include "ljson.h"
#include "lutil.h"
#include "version.h"

#define CLIENT_MT "as2gateway.core.client"
#define REQUEST_MT "as2gateway.core.request"
#define ERROR_MT "as2gateway.error"

typedef struct lrequest lrequest;

typedef struct lclient {
    a2g_client *c;           /* NULL once closed */
    lua_State *L;            /* the state of the call in progress, for hooks */
    int log_ref, clock_ref, sleep_ref, progress_ref, acquire_ref, release_ref;
    int hook_error_ref;      /* an error a log or clock hook raised */
    int in_callback;         /* > 0 while one of its hooks, sinks or readers runs */
    lrequest *requests;      /* live requests, closed with the client */
} lclient;

struct lrequest {
    a2g_request *r;          /* NULL once closed */
    lclient *owner;
    lrequest *next;
    int client_ref;          /* keeps the client alive while the request is */
    int sink_ref, reader_ref;
    int error_ref;           /* an error the sink or the reader raised */
    int json;
    a2g_buf leftover;        /* bytes a reader returned beyond what libcurl took */
    size_t leftover_pos;
    lua_State *L;
};

/* Errors ------------------------------------------------------------------------- */

static int error_tostring(lua_State *L)
{
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "context"); /* "kind: context: message", when there is one */
    if (lua_type(L, -1) == LUA_TSTRING) {
        lua_pushliteral(L, ": ");
        lua_getfield(L, 1, "message");
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
        lua_getfield(L, 1, "message");
    }
    lua_getfield(L, 1, "status");
    if (lua_tointeger(L, -1) > 0)
        lua_pushfstring(L, "as2gateway: %s: %s (HTTP %d)", lua_tostring(L, -3),
                        lua_tostring(L, -2), (int)lua_tointeger(L, -1));
    else
        lua_pushfstring(L, "as2gateway: %s: %s", lua_tostring(L, -3), lua_tostring(L, -2));
    return 1;
}

/* Pushes an error table {kind, message, status} with the shared metatable. */
static void push_error(lua_State *L, const char *kind, const char *message, long status)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    if (status > 0) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    luaL_setmetatable(L, ERROR_MT);
}

static int push_fail(lua_State *L, const a2g_error *err)
{
    lua_pushnil(L);
    push_error(L, a2g_kind_name(err->kind), err->message, err->status);
    if (err->context[0]) {
        lua_pushstring(L, err->context);
        lua_setfield(L, -2, "context");
    }
    if (err->retry_after > 0) {
        lua_pushinteger(L, (lua_Integer)err->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    return 2;
}

/* core.error(kind, message[, status]): errors of the Lua layer look like the core's. */
static int l_error(lua_State *L)
{
    const char *kind = luaL_checkstring(L, 1);
    const char *message = luaL_checkstring(L, 2);
    long status = (long)luaL_optinteger(L, 3, 0);
    push_error(L, kind, message, status);
    return 1;
}

/* Option tables ---------------------------------------------------------------------- */

/* Raises unless every key of the table at `idx` is in `names` (NULL-terminated). */
static void check_keys(lua_State *L, int idx, const char *what, const char *const names[])
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings", what);
        const char *k = lua_tostring(L, -1);
        int known = 0;
        for (int i = 0; names[i]; i++)
            if (strcmp(k, names[i]) == 0)
                known = 1;
        if (!known)
            luaL_error(L, "%s: unknown option '%s'", what, k);
    }
}

/* A string option, checked as what it becomes (check.h): a header, a URL, a path. */
static const char *opt_string(lua_State *L, int idx, const char *name, a2g_text what)
{
    const char *v = NULL;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        char label[64];
        snprintf(label, sizeof label, "option '%s'", name);
        v = a2g_checktext(L, -1, what, label);
    }
    lua_pop(L, 1); /* the string stays alive: the option table holds it */
    return v;
}

/* Upper bounds of numeric options: finite, and small enough for the core's integers. */
#define MAX_SECONDS 1e9   /* about 31 years */
#define MAX_COUNT 1e6
#define MAX_BYTES 9007199254740992.0 /* 2^53 */

static double opt_number(lua_State *L, int idx, const char *name, double dflt, double min,
                         double max)
{
    double v = dflt;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "option '%s' must be a number", name);
        v = lua_tonumber(L, -1);
        if (!(v >= min && v <= max)) /* NaN fails both */
            luaL_error(L, "option '%s' must be from %f to %g", name, min, max);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "option '%s' must be a boolean", name);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A function, or anything callable; returns a registry reference or LUA_NOREF. */
static int opt_function(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        if (!luaL_getmetafield(L, -1, "__call"))
            luaL_error(L, "option '%s' must be a function", name);
        lua_pop(L, 1);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Hooks ------------------------------------------------------------------------------------ */

/* Runs a hook, sink or reader of client `lc` under lua_pcall, marked as inside its
 * callbacks: there, any use of the client but token() and stats() raises (it could
 * free what the core is using, or start a transfer over the one in flight). */
static int call_hook(lua_State *L, lclient *lc, int nargs, int nresults)
{
    lc->in_callback++;
    int rc = lua_pcall(L, nargs, nresults, 0);
    lc->in_callback--;
    return rc;
}

#define INSIDE_CALLBACK "as2gateway: the client cannot be used from inside its own callbacks " \
    "(sink, body_reader, log, progress, clock, sleep, acquire, release); only token() and " \
    "stats() can"

static void stash(lua_State *L, int *ref)
{
    if (*ref == LUA_NOREF)
        *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
}

/* Raises a stashed error, if any (after the core has returned). */
static void reraise(lua_State *L, int *ref)
{
    if (*ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
    lua_error(L);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t hook_clock(void *ud)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (lc->clock_ref == LUA_NOREF || !L)
        return monotonic_ms();
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->clock_ref);
    if (call_hook(L, lc, 0, 1) != 0) {
        stash(L, &lc->hook_error_ref);
        return monotonic_ms();
    }
    /* NaN, infinities or 1e300 would make every wait endless or undefined */
    lua_Number s = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(s >= -MAX_SECONDS * 1e3 && s <= MAX_SECONDS * 1e3)) {
        if (lua_type(L, -1) == LUA_TNUMBER)
            lua_pushfstring(L, "as2gateway: the clock must return a finite number of seconds "
                            "(at most 1e12), not %f", s);
        else
            lua_pushfstring(L, "as2gateway: the clock must return a finite number of seconds, "
                            "not a %s", luaL_typename(L, -1));
        lua_remove(L, -2);
        stash(L, &lc->hook_error_ref);
        return monotonic_ms();
    }
    lua_pop(L, 1);
    return (int64_t)(s * 1000.0);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static void hook_log(void *ud, const a2g_event *ev)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (lc->log_ref == LUA_NOREF || !L)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->log_ref);
    lua_createtable(L, 0, 8);
    set_str(L, "event", ev->event);
    set_str(L, "method", ev->method);
    set_str(L, "path", ev->path);
    if (ev->status)
        set_int(L, "status", ev->status);
    set_int(L, "attempt", ev->attempt);
    if (ev->duration_ms || strcmp(ev->event, "response") == 0) { /* 0: under 1 ms */
        lua_pushnumber(L, (lua_Number)ev->duration_ms / 1000.0);
        lua_setfield(L, -2, "duration");
    }
    if (ev->delay_ms) {
        lua_pushnumber(L, (lua_Number)ev->delay_ms / 1000.0);
        lua_setfield(L, -2, "delay");
    }
    set_str(L, "reason", ev->reason);
    if (call_hook(L, lc, 1, 0) != 0)
        stash(L, &lc->hook_error_ref);
}

/* progress(ul_now, ul_total, dl_now, dl_total) during transfers; an error aborts the
 * transfer and is raised once libcurl has returned. */
static int hook_progress(void *ud, int64_t dl_now, int64_t dl_total, int64_t ul_now,
                         int64_t ul_total)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (!L || lc->hook_error_ref != LUA_NOREF)
        return lc->hook_error_ref != LUA_NOREF;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->progress_ref);
    lua_pushnumber(L, (lua_Number)ul_now);
    lua_pushnumber(L, (lua_Number)ul_total);
    lua_pushnumber(L, (lua_Number)dl_now);
    lua_pushnumber(L, (lua_Number)dl_total);
    if (call_hook(L, lc, 4, 0) != 0) {
        stash(L, &lc->hook_error_ref);
        return 1;
    }
    return 0;
}

/* acquire() -> seconds to wait (0: go) and release(seconds): an outside rate limiter,
 * such as one shared by nginx workers. Neither may yield; a failing acquire lets the
 * request wait a little and is raised when the step returns. */
static int64_t hook_acquire(void *ud)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (!L)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->acquire_ref);
    if (call_hook(L, lc, 0, 1) != 0) {
        stash(L, &lc->hook_error_ref);
        return 10;
    }
    lua_Number s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(s <= MAX_SECONDS)) /* NaN or absurd: a broken hook must not make a request hang */
        s = MAX_SECONDS;
    return s > 0 ? (int64_t)(s * 1000.0) + 1 : 0;
}

static void hook_release(void *ud, int64_t when_ms)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (!L)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->release_ref);
    lua_pushnumber(L, (lua_Number)when_ms / 1000.0);
    if (call_hook(L, lc, 1, 0) != 0)
        stash(L, &lc->hook_error_ref);
}

/* Sinks and readers run inside libcurl's callbacks: under lua_pcall, an error stashed
 * and the transfer aborted, never a longjmp through libcurl. */
static int sink_write(void *ud, const char *data, size_t n)
{
    lrequest *lr = ud;
    lua_State *L = lr->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->sink_ref);
    lua_pushlstring(L, data, n);
    if (call_hook(L, lr->owner, 1, 0) != 0) {
        stash(L, &lr->error_ref);
        lr->r->callback_failed = 1;
        return -1;
    }
    return 0;
}

static size_t reader_read(void *ud, char *buf, size_t n, int *failed)
{
    lrequest *lr = ud;
    lua_State *L = lr->L;
    if (lr->leftover_pos >= lr->leftover.len) {
        a2g_buf_reset(&lr->leftover);
        lr->leftover_pos = 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, lr->reader_ref);
        if (call_hook(L, lr->owner, 0, 1) != 0) {
            stash(L, &lr->error_ref);
            lr->r->callback_failed = 1;
            *failed = 1;
            return 0;
        }
        size_t len = 0;
        const char *s = NULL;
        if (lua_type(L, -1) == LUA_TSTRING)
            s = lua_tolstring(L, -1, &len);
        else if (!lua_isnil(L, -1)) {
            lua_pushliteral(L, "body_reader must return a string or nil");
            stash(L, &lr->error_ref);
            lr->r->callback_failed = 1;
            *failed = 1;
            lua_pop(L, 1);
            return 0;
        }
        if (len && a2g_buf_append(&lr->leftover, s, len) != 0) {
            *failed = ENOMEM;
            lua_pop(L, 1);
            return 0;
        }
        lua_pop(L, 1);
        if (!len)
            return 0; /* the end of the body */
    }
    size_t avail = lr->leftover.len - lr->leftover_pos;
    size_t k = avail < n ? avail : n;
    memcpy(buf, lr->leftover.data + lr->leftover_pos, k);
    lr->leftover_pos += k;
    return k;
}

/* The client ------------------------------------------------------------------------- */

/* The client at idx, open, for reading what it holds (allowed inside its hooks). */
static lclient *check_open_client(lua_State *L, int idx)
{
    lclient *lc = luaL_checkudata(L, idx, CLIENT_MT);
    if (!lc->c)
        luaL_error(L, "as2gateway: the client is closed");
    return lc;
}

/* The client at idx, open and not inside one of its own callbacks, for a call that
 * may transfer or change it. */
static lclient *check_client(lua_State *L, int idx)
{
    lclient *lc = check_open_client(L, idx);
    if (lc->in_callback)
        luaL_error(L, INSIDE_CALLBACK);
    lc->L = L;
    return lc;
}

static const char *const CLIENT_OPTIONS[] = {
    "url", "username", "password", "token", "token_expiry", "cainfo", "proxy",
    "connect_timeout", "timeout", "low_speed_limit", "low_speed_time", "user_agent",
    "rate_limit", "retries", "backoff_base", "backoff_cap", "retry_after_cap", "max_json",
    "max_download", "json_timeout",
    "log", "clock", "sleep", "progress", "acquire", "release", NULL
};

/* core.new(options) -> client. The userdata starts closed, with its metatable set,
 * before anything is acquired: whatever fails later, __gc can clean up. */
static int l_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lclient *lc = lua_newuserdata(L, sizeof *lc);
    memset(lc, 0, sizeof *lc);
    lc->log_ref = lc->clock_ref = lc->sleep_ref = lc->progress_ref = LUA_NOREF;
    lc->acquire_ref = lc->release_ref = LUA_NOREF;
    lc->hook_error_ref = LUA_NOREF;
    luaL_setmetatable(L, CLIENT_MT);

    check_keys(L, 1, "as2gateway.new", CLIENT_OPTIONS);
    a2g_client_opts o;
    memset(&o, 0, sizeof o);
    o.url = opt_string(L, 1, "url", A2G_TEXT_URL);
    if (!o.url)
        return luaL_error(L, "as2gateway.new: option 'url' is required");
    o.username = opt_string(L, 1, "username", A2G_TEXT_PLAIN);
    o.password = opt_string(L, 1, "password", A2G_TEXT_PLAIN);
    o.token = opt_string(L, 1, "token", A2G_TEXT_TOKEN);
    o.token_expiry_ms = (int64_t)opt_number(L, 1, "token_expiry", 0, 0, 1e16);
    if (!o.token && !(o.username && o.password))
        return luaL_error(L, "as2gateway.new: give username and password, or token");
    o.transport.cainfo = opt_string(L, 1, "cainfo", A2G_TEXT_PATH);
    o.transport.proxy = opt_string(L, 1, "proxy", A2G_TEXT_URL);
    o.transport.user_agent = opt_string(L, 1, "user_agent", A2G_TEXT_HEADER);
    if (!o.transport.user_agent)
        o.transport.user_agent = A2G_USER_AGENT;
    o.transport.connect_timeout_ms = (long)(opt_number(L, 1, "connect_timeout", 10, 0.001, MAX_SECONDS) * 1000);
    o.transport.timeout_ms = (long)(opt_number(L, 1, "timeout", 0, 0, MAX_SECONDS) * 1000);
    o.transport.low_speed_limit = (long)opt_number(L, 1, "low_speed_limit", 100, 0, MAX_BYTES);
    o.transport.low_speed_time = (long)opt_number(L, 1, "low_speed_time", 30, 0, MAX_SECONDS);
    o.rate_limit = 50;
    o.rate_window_ms = 10000;
    lua_getfield(L, 1, "rate_limit");
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        o.rate_limit = 0;
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        int t = lua_gettop(L);
        static const char *const rl_keys[] = { "requests", "window", NULL };
        check_keys(L, t, "rate_limit", rl_keys);
        o.rate_limit = (int)opt_number(L, t, "requests", 50, 1, MAX_COUNT);
        o.rate_window_ms = (int64_t)(opt_number(L, t, "window", 10, 0.001, MAX_SECONDS) * 1000);
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "option 'rate_limit' must be {requests=, window=} or false");
    }
    lua_pop(L, 1);
    o.retries = (int)opt_number(L, 1, "retries", 5, 0, MAX_COUNT);
    o.backoff_base_ms = (int64_t)(opt_number(L, 1, "backoff_base", 0.5, 0, MAX_SECONDS) * 1000);
    o.backoff_cap_ms = (int64_t)(opt_number(L, 1, "backoff_cap", 30, 0, MAX_SECONDS) * 1000);
    o.retry_after_cap_ms = (int64_t)(opt_number(L, 1, "retry_after_cap", 120, 0, MAX_SECONDS) * 1000);
    o.json_timeout_ms = (int64_t)(opt_number(L, 1, "json_timeout", 120, 0, MAX_SECONDS) * 1000);
    o.max_json = (size_t)opt_number(L, 1, "max_json", 16 * 1024 * 1024, 1024, MAX_BYTES);
    o.max_download = (int64_t)opt_number(L, 1, "max_download", 512.0 * 1024 * 1024, 0,
                                        MAX_BYTES);

    lc->log_ref = opt_function(L, 1, "log");
    lc->clock_ref = opt_function(L, 1, "clock");
    lc->sleep_ref = opt_function(L, 1, "sleep");
    lc->progress_ref = opt_function(L, 1, "progress");
    lc->acquire_ref = opt_function(L, 1, "acquire");
    lc->release_ref = opt_function(L, 1, "release");
    if ((lc->acquire_ref == LUA_NOREF) != (lc->release_ref == LUA_NOREF))
        return luaL_error(L, "as2gateway.new: give acquire and release together");

    a2g_client *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "as2gateway.new: out of memory");
    a2g_error err;
    memset(&err, 0, sizeof err);
    if (a2g_client_init(c, &o, &err) != 0) {
        free(c);
        return luaL_error(L, "as2gateway.new: %s", err.message);
    }
    c->clock = hook_clock;
    c->clock_ud = lc;
    c->log = hook_log;
    c->log_ud = lc;
    if (lc->progress_ref != LUA_NOREF) {
        c->transport.progress = hook_progress;
        c->transport.progress_ud = lc;
    }
    if (lc->acquire_ref != LUA_NOREF) {
        c->acquire = hook_acquire;
        c->release = hook_release;
        c->rate_ud = lc;
    }
    lc->c = c;
    lc->L = L;
    return 1;
}

static void request_close(lua_State *L, lrequest *lr);

static void client_close(lua_State *L, lclient *lc)
{
    lc->L = L;
    while (lc->requests)
        request_close(L, lc->requests);
    if (lc->c) {
        a2g_client_free(lc->c);
        free(lc->c);
        lc->c = NULL;
    }
    int *refs[] = { &lc->log_ref, &lc->clock_ref, &lc->sleep_ref, &lc->progress_ref,
                    &lc->acquire_ref, &lc->release_ref, &lc->hook_error_ref };
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
        *refs[i] = LUA_NOREF;
    }
}

/* __gc and __close: one idempotent function, that never raises. */
static int l_client_gc(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
    if (!lc->in_callback) /* (it is reachable while its callbacks run) */
        client_close(L, lc);
    return 0;
}

/* client:close(): the same, but not from inside the client's own callbacks. */
static int l_client_close(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
    if (lc->in_callback)
        return luaL_error(L, INSIDE_CALLBACK);
    client_close(L, lc);
    return 0;
}

static int l_client_stats(lua_State *L)
{
    lclient *lc = check_open_client(L, 1);
    a2g_stats *s = &lc->c->stats;
    lua_createtable(L, 0, 7);
    set_int(L, "requests", (lua_Integer)s->requests);
    set_int(L, "retries", (lua_Integer)s->retries);
    set_int(L, "authorizations", (lua_Integer)s->authorizations);
    set_int(L, "reauthentications", (lua_Integer)s->reauthentications);
    set_int(L, "ratelimited", (lua_Integer)s->ratelimited);
    set_int(L, "waits", (lua_Integer)s->waits);
    lua_pushnumber(L, (lua_Number)s->waited_ms / 1000.0);
    lua_setfield(L, -2, "waited");
    return 1;
}

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* client:token() -> token, expiry (ms since the epoch by our clock, 0: unknown),
 * usable (false once the client would renew it before the next request) | nil: what
 * the client holds now, no request. */
static int l_client_token(lua_State *L)
{
    lclient *lc = check_open_client(L, 1);
    a2g_auth *a = &lc->c->auth;
    if (!a->token)
        return 0;
    lua_pushstring(L, a->token);
    lua_pushinteger(L, (lua_Integer)a->expiry_ms);
    lua_pushboolean(L, a2g_auth_valid(a, wall_now_ms()));
    return 3;
}

/* client:set_token(token[, expiry_ms]): use this token from now on (one obtained by
 * another process, say); the client still renews it with its credentials. */
static int l_client_set_token(lua_State *L)
{
    lclient *lc = check_client(L, 1);
    const char *token = a2g_checktext(L, 2, A2G_TEXT_TOKEN, "set_token: the token");
    lua_Number expiry = luaL_optnumber(L, 3, 0);
    if (a2g_auth_set(&lc->c->auth, token, expiry == expiry ? expiry : 0, wall_now_ms()) != 0)
        return luaL_error(L, "out of memory");
    return 0;
}

static int l_client_tostring(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, CLIENT_MT);
    if (lc->c)
        lua_pushfstring(L, "as2gateway client (%s)", lc->c->base.data);
    else
        lua_pushliteral(L, "as2gateway client (closed)");
    return 1;
}

/* Requests ------------------------------------------------------------------------------- */

static lrequest *check_request(lua_State *L, int idx)
{
    lrequest *lr = luaL_checkudata(L, idx, REQUEST_MT);
    if (!lr->r)
        luaL_error(L, "as2gateway: the request is closed");
    if (!lr->owner->c)
        luaL_error(L, "as2gateway: the client is closed");
    if (lr->owner->in_callback)
        luaL_error(L, INSIDE_CALLBACK);
    lr->L = L;
    lr->owner->L = L;
    return lr;
}

static void request_close(lua_State *L, lrequest *lr)
{
    /* freeing may call the release hook: with this state, the one that is running
     * (an earlier call's coroutine may be gone by now); but not while a callback of the
     * client runs (a collection there): its call's state stays the one in use */
    if (lr->owner && !lr->owner->in_callback)
        lr->owner->L = L;
    if (lr->r) {
        a2g_request_free(lr->r);
        lr->r = NULL;
    }
    if (lr->owner) {
        for (lrequest **p = &lr->owner->requests; *p; p = &(*p)->next)
            if (*p == lr) {
                *p = lr->next;
                break;
            }
        lr->owner = NULL;
    }
    a2g_buf_free(&lr->leftover);
    int *refs[] = { &lr->client_ref, &lr->sink_ref, &lr->reader_ref, &lr->error_ref };
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
        *refs[i] = LUA_NOREF;
    }
}

/* __gc and __close: never raises. A request collected while its client's callback
 * runs is not the one in flight (that one is reachable): freeing it is safe. */
static int l_request_gc(lua_State *L)
{
    lrequest *lr = luaL_checkudata(L, 1, REQUEST_MT);
    if (lr->owner || lr->r)
        request_close(L, lr);
    return 0;
}

/* request:close(): the same, but not from inside its client's callbacks. */
static int l_request_close(lua_State *L)
{
    lrequest *lr = luaL_checkudata(L, 1, REQUEST_MT);
    if (lr->owner && lr->owner->in_callback)
        return luaL_error(L, INSIDE_CALLBACK);
    return l_request_gc(L);
}

/* An encoded path: '/' first, unreserved characters and escapes only, and no "." or
 * ".." segment (libcurl and servers would remove it: the request would go elsewhere). */
static int valid_path(const char *p, size_t len)
{
    if (len == 0 || *p != '/' || a2g_check_text(p, len, A2G_TEXT_URL))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || strchr("/-._~%", c)))
            return 0;
        if (c == '/') {
            size_t seg = strcspn(p + i + 1, "/");
            if ((seg == 1 && p[i + 1] == '.') || (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
                return 0;
        }
    }
    return 1;
}

/* Raises a spec error from build_path, freeing the path built so far (luaL_error does
 * not return, and the buffer lives on the C stack). */
static int path_error(lua_State *L, a2g_buf *path, const char *fmt, ...)
{
    va_list ap;
    a2g_buf_free(path);
    luaL_where(L, 1);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* Sorts the query's names so that the same call always makes the same URL. */
static int build_path(lua_State *L, int spec, a2g_buf *path)
{
    lua_getfield(L, spec, "path");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t plen;
        const char *p = lua_tolstring(L, -1, &plen);
        if (!valid_path(p, plen))
            path_error(L, path, "request: path must start with '/' and be percent-encoded, "
                                "without '.' or '..' segments (or give a list of segments)");
        a2g_buf_appends(path, p);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n = lua_rawlen(L, -1);
        if (n == 0)
            path_error(L, path, "request: path has no segments");
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            size_t len = 0;
            const char *seg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!seg || len == 0)
                path_error(L, path, "request: path segment %d must be a non-empty string",
                           (int)i);
            a2g_url_append_segment(path, seg, len);
            lua_pop(L, 1);
        }
    } else {
        path_error(L, path, "request: path must be a string or a list of segments");
    }
    lua_pop(L, 1);

    lua_getfield(L, spec, "query");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            path_error(L, path, "request: query must be a table");
        int q = lua_gettop(L);
        lua_newtable(L); /* the sorted names */
        int names = lua_gettop(L), count = 0;
        lua_pushnil(L);
        while (lua_next(L, q)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                path_error(L, path, "request: query names must be strings");
            size_t nlen;
            const char *qname = lua_tolstring(L, -1, &nlen);
            if (a2g_check_text(qname, nlen, A2G_TEXT_PLAIN))
                path_error(L, path, "request: a query name holds a NUL byte");
            lua_pushvalue(L, -1);
            lua_rawseti(L, names, ++count);
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "sort");
        lua_pushvalue(L, names);
        lua_call(L, 1, 0);
        lua_pop(L, 1);
        for (int i = 1; i <= count; i++) {
            lua_rawgeti(L, names, i);
            const char *name = lua_tostring(L, -1);
            lua_gettable(L, q);
            lua_rawgeti(L, names, i);
            lua_insert(L, -2);
            const char *v;
            size_t vlen;
            char num[32];
            if (lua_type(L, -1) == LUA_TBOOLEAN) {
                v = lua_toboolean(L, -1) ? "true" : "false";
                vlen = strlen(v);
            } else if (lua_type(L, -1) == LUA_TNUMBER) {
                lua_Number x = lua_tonumber(L, -1);
                if (x == (lua_Number)(long long)x)
                    snprintf(num, sizeof num, "%lld", (long long)x);
                else
                    snprintf(num, sizeof num, "%.17g", (double)x);
                v = num;
                vlen = strlen(num);
            } else if (lua_type(L, -1) == LUA_TSTRING) {
                v = lua_tolstring(L, -1, &vlen);
            } else {
                return path_error(L, path, "request: query value of '%s' must be a string, "
                                  "number or boolean", name);
            }
            a2g_url_append_query(path, name, v, vlen);
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

static const char *const REQUEST_OPTIONS[] = {
    "method", "path", "query", "headers", "body", "body_file", "body_reader", "body_pieces",
    "to_file", "to_dir", "no_clobber", "sink", "json", "send", "login", NULL
};

/* client:request(spec) -> request: a step-wise request (see request:step). */
static int l_client_request(lua_State *L)
{
    lclient *lc = check_client(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2, "request", REQUEST_OPTIONS);

    lrequest *lr = lua_newuserdata(L, sizeof *lr);
    memset(lr, 0, sizeof *lr);
    lr->client_ref = lr->sink_ref = lr->reader_ref = lr->error_ref = LUA_NOREF;
    a2g_buf_init(&lr->leftover, 0);
    luaL_setmetatable(L, REQUEST_MT);
    int self = lua_gettop(L);
    lr->L = L;

    const char *method = opt_string(L, 2, "method", A2G_TEXT_PLAIN);
    if (!method)
        method = "GET";
    if (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "DELETE"))
        return luaL_error(L, "request: method must be GET, POST or DELETE");

    /* login = true: POST /authorize now, step-wise like any request (an event loop
     * that shares one token between processes logs in through this) */
    int login = opt_bool(L, 2, "login");
    a2g_buf path;
    a2g_buf_init(&path, 0);
    if (login) {
        if (!a2g_auth_can_login(&lc->c->auth))
            return luaL_error(L, "request: login needs username and password");
        method = "POST";
        a2g_buf_appends(&path, "/authorize");
    } else {
        build_path(L, 2, &path);
    }
    a2g_error err;
    memset(&err, 0, sizeof err);
    lr->r = a2g_request_new(lc->c, method, path.data, &err);
    a2g_buf_free(&path);
    if (!lr->r)
        return luaL_error(L, "request: %s", err.message);
    lr->owner = lc;
    lr->next = lc->requests;
    lc->requests = lr;
    lua_pushvalue(L, 1);
    lr->client_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    a2g_request *r = lr->r;
    r->is_login = login;
    r->is_send = opt_bool(L, 2, "send");
    lr->json = opt_bool(L, 2, "json");

    lua_getfield(L, 2, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "request: headers must map names to strings");
            const char *name = a2g_checktext(L, -2, A2G_TEXT_HEADER_NAME, "request: header");
            const char *value = a2g_checktext(L, -1, A2G_TEXT_HEADER, "request: header value");
            if (a2g_request_header(r, name, value, &err) != 0)
                return luaL_error(L, "request: %s", err.message);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);

    /* one body at most, and one destination at most: misuse raises before anything */
    static const char *const body_fields[] = { "body", "body_file", "body_reader",
                                               "body_pieces", NULL };
    static const char *const sink_fields[] = { "to_file", "to_dir", "sink", NULL };
    const char *const *groups[] = { body_fields, sink_fields };
    for (int g = 0; g < 2; g++) {
        int given = 0;
        for (int i = 0; groups[g][i]; i++) {
            lua_getfield(L, 2, groups[g][i]);
            given += !lua_isnil(L, -1);
            lua_pop(L, 1);
        }
        if (given > 1)
            return luaL_error(L, g == 0 ? "request: give at most one of body, body_file, "
                                          "body_reader, body_pieces"
                                        : "request: give at most one of to_file, to_dir, sink");
    }

    lua_getfield(L, 2, "body");
    if (!lua_isnil(L, -1)) {
        size_t len;
        const char *b = luaL_checklstring(L, -1, &len);
        if (a2g_source_memory(&r->source, b, len, &err) != 0)
            return luaL_error(L, "request: %s", err.message);
    }
    lua_pop(L, 1);
    const char *body_file = opt_string(L, 2, "body_file", A2G_TEXT_PATH);
    if (body_file && a2g_source_file(&r->source, body_file, &err) != 0) {
        /* a missing or unreadable file is the caller's to handle */
        lua_pushnil(L);
        push_error(L, "invalid", err.message, 0);
        request_close(L, lr);
        return 2;
    }
    lr->reader_ref = opt_function(L, 2, "body_reader");
    if (lr->reader_ref != LUA_NOREF)
        a2g_source_reader(&r->source, reader_read, lr);
    lua_getfield(L, 2, "body_pieces");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "request: body_pieces must be a list");
        a2g_source_pieces(&r->source);
        size_t n = lua_rawlen(L, -1);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            int rc;
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t len;
                const char *d = lua_tolstring(L, -1, &len);
                rc = a2g_source_add_data(&r->source, d, len, &err);
            } else if (lua_istable(L, -1)) {
                lua_getfield(L, -1, "path");
                if (lua_type(L, -1) != LUA_TSTRING)
                    return luaL_error(L, "request: body piece %d: a string or {path=} expected",
                                      (int)i);
                rc = a2g_source_add_file(&r->source,
                                         a2g_checktext(L, -1, A2G_TEXT_PATH, "request: body piece"),
                                         &err);
                lua_pop(L, 1);
            } else {
                return luaL_error(L, "request: body piece %d: a string or {path=} expected",
                                  (int)i);
            }
            lua_pop(L, 1);
            if (rc != 0) {
                lua_pushnil(L);
                push_error(L, "invalid", err.message, 0);
                request_close(L, lr);
                return 2;
            }
        }
    }
    lua_pop(L, 1);

    const char *to_file = opt_string(L, 2, "to_file", A2G_TEXT_PATH);
    const char *to_dir = opt_string(L, 2, "to_dir", A2G_TEXT_PATH);
    lr->sink_ref = opt_function(L, 2, "sink");
    if (to_file || to_dir) {
        a2g_sink_free(&r->sink);
        int rc = to_file ? a2g_sink_file(&r->sink, to_file, opt_bool(L, 2, "no_clobber"), &err)
                         : a2g_sink_dir(&r->sink, to_dir, &err);
        if (rc != 0)
            return luaL_error(L, "request: %s", err.message);
    } else if (lr->sink_ref != LUA_NOREF) {
        a2g_sink_free(&r->sink);
        a2g_sink_writer(&r->sink, sink_write, lr);
    }
    lua_pushvalue(L, self);
    return 1;
}

/* Pushes the outcome of a finished request: a result table, or nil and an error. A
 * callback's error is raised instead. */
static int push_result(lua_State *L, lrequest *lr)
{
    a2g_request *r = lr->r;
    reraise(L, &lr->error_ref);
    if (r->err.kind != A2G_OK)
        return push_fail(L, &r->err);
    lua_createtable(L, 0, 8);
    set_int(L, "status", r->status);
    set_str(L, "content_type", r->content_type);
    set_str(L, "link", r->link);
    if (r->filename) {
        lua_pushlstring(L, r->filename, r->filename_len);
        lua_setfield(L, -2, "filename");
    }
    if (r->has_truncation) {
        lua_createtable(L, 0, 2);
        set_int(L, "message", r->truncation_message);
        set_int(L, "attachment", r->truncation_attachment);
        lua_setfield(L, -2, "truncation");
    }
    lua_pushinteger(L, (lua_Integer)r->sink.written);
    lua_setfield(L, -2, "bytes");
    if (r->sink.kind == A2G_SINK_FILE || r->sink.kind == A2G_SINK_DIR) {
        set_str(L, "path", r->sink.path);
    } else if (r->sink.kind == A2G_SINK_MEMORY) {
        const char *data = r->sink.mem.data ? r->sink.mem.data : "";
        if (lr->json) {
            /* THE place where answers become Lua values: ljson.c, straight from the
             * bytes (no cjson, no normalising walk in Lua) */
            a2g_json_limits limits = { lr->owner->c->max_json, A2G_JSON_MAX_DEPTH };
            char why[160];
            if (a2g_push_json(L, data, r->sink.mem.len, &limits, why, sizeof why) != 0) {
                lua_pop(L, 1);
                a2g_error e;
                a2g_fail(&e, A2G_PROTOCOL, r->status, "the answer is not valid JSON: %s", why);
                return push_fail(L, &e);
            }
            lua_setfield(L, -2, "json");
        } else {
            lua_pushlstring(L, data, r->sink.mem.len);
            lua_setfield(L, -2, "body");
        }
    }
    return 1;
}

/* request:step([wait]) -> "done" | "sleep", seconds | "io", seconds. `wait` is how long
 * this call may block on the network (seconds, default 0). */
static int l_request_step(lua_State *L)
{
    lrequest *lr = check_request(L, 1);
    int wait_ms = (int)(luaL_optnumber(L, 2, 0) * 1000);
    int64_t sleep_ms = 0;
    a2g_step s = a2g_request_step(lr->r, wait_ms, &sleep_ms);
    reraise(L, &lr->owner->hook_error_ref);
    switch (s) {
    case A2G_STEP_DONE:
        lua_pushliteral(L, "done");
        return 1;
    case A2G_STEP_SLEEP:
        lua_pushliteral(L, "sleep");
        break;
    default:
        lua_pushliteral(L, "io");
        break;
    }
    lua_pushnumber(L, (lua_Number)sleep_ms / 1000.0);
    return 2;
}

static int l_request_result(lua_State *L)
{
    lrequest *lr = check_request(L, 1);
    if (!a2g_request_done(lr->r))
        return luaL_error(L, "as2gateway: the request has not finished");
    return push_result(L, lr);
}

/* 0, or the status of a failed `sleep` hook with its error on the stack. */
static int sleep_ms(lua_State *L, lclient *lc, int64_t ms)
{
    if (lc->sleep_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lc->sleep_ref);
        lua_pushnumber(L, (lua_Number)ms / 1000.0);
        return call_hook(L, lc, 1, 0); /* no transfer is in flight here */
    }
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !a2g_interrupt_pending())
        ;
    return 0;
}

/* Ends a blocking request that a trapped SIGINT interrupted: its transfer stopped, a
 * partial download removed; a send that may have reached the gateway says so. */
static int interrupted(lua_State *L, lrequest *lr)
{
    a2g_request *r = lr->r;
    int sent = r->is_send && r->xfer.request_bytes > 0;
    if (r->is_send && r->c->active == r) { /* in flight: what went out so far */
        curl_off_t up = 0;
        long head = 0;
        curl_easy_getinfo(r->c->transport.easy, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(r->c->transport.easy, CURLINFO_REQUEST_SIZE, &head);
        sent = up > 0 || head > 0;
    }
    request_close(L, lr);
    a2g_error e;
    a2g_fail(&e, A2G_INTERRUPTED, 0, "%s", sent ? "interrupted after the message went out: "
             "it may have been enqueued; check the queued and sent lists before sending it "
             "again" : "interrupted");
    return push_fail(L, &e);
}

/* Runs a request to its end, blocking; sleeps through the `sleep` hook. The blocking
 * call owns the request: before a hook's error is raised, the request is closed (its
 * transfer stopped, a partial download removed), or it would hold the client's one
 * transfer slot until collected and every later call would wait for it. */
static int run(lua_State *L, int req)
{
    lrequest *lr = check_request(L, req);
    lr->r->blocking = 1; /* nothing else of this client can advance meanwhile */
    for (;;) {
        if (a2g_interrupt_pending()) /* Ctrl-C in a host that traps it (interrupt.h) */
            return interrupted(L, lr);
        int64_t ms = 0;
        a2g_step s = a2g_request_step(lr->r, 1000, &ms);
        if (lr->owner->hook_error_ref != LUA_NOREF) {
            lclient *lc = lr->owner;
            request_close(L, lr);
            reraise(L, &lc->hook_error_ref);
        }
        if (s == A2G_STEP_DONE)
            break;
        if (s == A2G_STEP_SLEEP && sleep_ms(L, lr->owner, ms) != 0) {
            request_close(L, lr);
            return lua_error(L);
        }
    }
    int n = push_result(L, lr);
    return n;
}

/* client:perform(spec) -> result | nil, err */
static int l_client_perform(lua_State *L)
{
    check_client(L, 1);
    lua_settop(L, 2);
    lua_pushcfunction(L, l_client_request);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 2;
    lua_pop(L, 1);
    int req = lua_gettop(L);
    int n = run(L, req);
    /* close the request now rather than at the next collection: it holds a
     * connection slot and maybe a temporary file */
    lrequest *lr = lua_touserdata(L, req);
    request_close(L, lr);
    return n;
}

/* client:authorize() -> token, expiry (ms) | nil, err: logs in now. */
static int l_client_authorize(lua_State *L)
{
    lclient *lc = check_client(L, 1);
    if (!a2g_auth_can_login(&lc->c->auth))
        return luaL_error(L, "as2gateway: authorize needs username and password");
    lua_settop(L, 1);
    lua_pushcfunction(L, l_client_request);
    lua_pushvalue(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "login");
    lua_call(L, 2, 1);
    int req = lua_gettop(L);
    lrequest *lr = lua_touserdata(L, req);
    int n = run(L, req);
    if (n == 1) {
        lua_pop(L, 1);
        lua_pushstring(L, lc->c->auth.token);
        lua_pushinteger(L, (lua_Integer)lc->c->auth.expiry_ms);
        n = 2;
    }
    request_close(L, lr);
    return n;
}

/* Parsers, exposed for the Lua layer and for tests ------------------------------------------ */

static int l_sanitize_filename(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char out[A2G_NAME_MAX + 1];
    size_t n = a2g_sanitize_filename(s, len, out);
    lua_pushlstring(L, out, n);
    return 1;
}

static int l_parse_retry_after(lua_State *L)
{
    const char *v = luaL_checkstring(L, 1);
    time_t now = (time_t)luaL_optnumber(L, 2, (lua_Number)time(NULL));
    long cap = (long)luaL_optinteger(L, 3, 120), secs;
    if (a2g_parse_retry_after(v, now, cap, &secs) != 0)
        return 0;
    lua_pushinteger(L, secs);
    return 1;
}

static int l_parse_truncation_index(lua_State *L)
{
    long m, a;
    if (a2g_parse_truncation_index(luaL_checkstring(L, 1), &m, &a) != 0)
        return 0;
    lua_pushinteger(L, m);
    lua_pushinteger(L, a);
    return 2;
}

static int l_parse_link(lua_State *L)
{
    char *url = a2g_parse_link(luaL_checkstring(L, 1));
    if (!url)
        return 0;
    lua_pushstring(L, url);
    free(url);
    return 1;
}

static int l_disposition_filename(lua_State *L)
{
    size_t n;
    char *name = a2g_disposition_filename(luaL_checkstring(L, 1), &n);
    if (!name)
        return 0;
    lua_pushlstring(L, name, n);
    free(name);
    return 1;
}

/* Registration ------------------------------------------------------------------------------- */

static const luaL_Reg client_methods[] = {
    { "request", l_client_request },
    { "perform", l_client_perform },
    { "authorize", l_client_authorize },
    { "stats", l_client_stats },
    { "token", l_client_token },
    { "set_token", l_client_set_token },
    { "close", l_client_close },
    { NULL, NULL }
};

static const luaL_Reg request_methods[] = {
    { "step", l_request_step },
    { "result", l_request_result },
    { "close", l_request_close },
    { NULL, NULL }
};

static const luaL_Reg functions[] = {
    { "new", l_new },
    { "error", l_error },
    { "sanitize_filename", l_sanitize_filename },
    { "parse_retry_after", l_parse_retry_after },
    { "parse_truncation_index", l_parse_truncation_index },
    { "parse_link", l_parse_link },
    { "disposition_filename", l_disposition_filename },
    { NULL, NULL }
};

void a2g_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                   lua_CFunction close, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
#endif
    if (tostring) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

__attribute__((visibility("default"))) int luaopen_as2gateway_core(lua_State *L)
{
    static int curl_ready = 0;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "as2gateway.core: libcurl failed to initialise");
        curl_ready = 1;
    }
    a2g_new_class(L, CLIENT_MT, client_methods, l_client_gc, l_client_tostring);
    a2g_new_class(L, REQUEST_MT, request_methods, l_request_gc, NULL);
    luaL_newmetatable(L, ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "as2gateway.error");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);

    lua_pushcfunction(L, l_error); /* for lutil.c's errors */
    lua_setfield(L, LUA_REGISTRYINDEX, "as2gateway.core.error");

    luaL_newlib(L, functions);
    a2g_open_util(L);
    a2g_open_json(L);
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
