/* See lclient.h. The userdata is created closed, with its metatable set, before
 * anything is acquired: whatever fails later, __gc can clean up. */
#include "lclient.h"

#include <math.h>
#include <string.h>

#include "clock.h"
#include "lerror.h"
#include "lhelpers.h"
#include "lquota.h"
#include "quota.h"
#include "version.h"

#define INSIDE_CALLBACK "as2gateway: the client cannot be used from inside its own callbacks " \
    "(sink, body_reader, log, progress, clock, sleep, acquire, release); only token() and " \
    "stats() can"

int a2g_inside_callback(lua_State *L)
{
    return luaL_error(L, INSIDE_CALLBACK);
}

lclient *a2g_check_open_client(lua_State *L, int idx)
{
    lclient *lc = luaL_checkudata(L, idx, A2G_CLIENT_MT);
    if (!lc->c)
        luaL_error(L, "as2gateway: the client is closed");
    return lc;
}

lclient *a2g_check_client(lua_State *L, int idx)
{
    lclient *lc = a2g_check_open_client(L, idx);
    if (lc->in_callback)
        a2g_inside_callback(L);
    lc->L = L;
    return lc;
}

/* There, any use of the client but token() and stats() raises: it could free what the
 * core is using, or start a transfer over the one in flight. */
int a2g_call_hook(lua_State *L, lclient *lc, int nargs, int nresults)
{
    lc->in_callback++;
    int rc = lua_pcall(L, nargs, nresults, 0);
    lc->in_callback--;
    return rc;
}

void a2g_stash(lua_State *L, int *ref)
{
    if (*ref == LUA_NOREF)
        *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
}

void a2g_reraise(lua_State *L, int *ref)
{
    if (*ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, *ref);
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
    lua_error(L);
}

void a2g_adopt(lclient *lc, a2g_lchild *child)
{
    child->next = lc->children;
    lc->children = child;
}

void a2g_orphan(lclient *lc, a2g_lchild *child)
{
    for (a2g_lchild **p = &lc->children; *p; p = &(*p)->next)
        if (*p == child) {
            *p = child->next;
            break;
        }
}

/* Hooks -------------------------------------------------------------------------------- */

/* The clock hook's reading on top of the stack, in ms; 0 with an error message pushed
 * instead when it is no finite number of seconds (NaN, infinities or 1e300 would make
 * every wait endless or undefined). */
static int clock_reading(lua_State *L, int64_t *ms)
{
    lua_Number s = lua_tonumber(L, -1);
    if (lua_type(L, -1) == LUA_TNUMBER
        && s >= -A2G_MAX_SECONDS * 1e3 && s <= A2G_MAX_SECONDS * 1e3) {
        *ms = (int64_t)(s * 1000.0);
        return 1;
    }
    if (lua_type(L, -1) == LUA_TNUMBER)
        lua_pushfstring(L, "as2gateway: the clock must return a finite number of seconds "
                        "(at most 1e12), not %f", s);
    else
        lua_pushfstring(L, "as2gateway: the clock must return a finite number of seconds, "
                        "not a %s", luaL_typename(L, -1));
    lua_remove(L, -2);
    return 0;
}

static int64_t hook_clock(void *ud)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    int64_t ms;
    if (lc->clock_ref == LUA_NOREF || !L)
        return a2g_mono_ms();
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->clock_ref);
    if (a2g_call_hook(L, lc, 0, 1) != 0 || !clock_reading(L, &ms)) {
        a2g_stash(L, &lc->hook_error_ref);
        return a2g_mono_ms();
    }
    lua_pop(L, 1);
    return ms;
}

static void hook_log(void *ud, const a2g_event *ev)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (lc->log_ref == LUA_NOREF || !L)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->log_ref);
    lua_createtable(L, 0, 8);
    a2g_set_str(L, "event", ev->event);
    a2g_set_str(L, "method", ev->method);
    a2g_set_str(L, "path", ev->path);
    if (ev->status)
        a2g_set_int(L, "status", ev->status);
    a2g_set_int(L, "attempt", ev->attempt);
    if (ev->duration_ms || strcmp(ev->event, "response") == 0) { /* 0: under 1 ms */
        lua_pushnumber(L, (lua_Number)ev->duration_ms / 1000.0);
        lua_setfield(L, -2, "duration");
    }
    if (ev->delay_ms) {
        lua_pushnumber(L, (lua_Number)ev->delay_ms / 1000.0);
        lua_setfield(L, -2, "delay");
    }
    a2g_set_str(L, "reason", ev->reason);
    if (a2g_call_hook(L, lc, 1, 0) != 0)
        a2g_stash(L, &lc->hook_error_ref);
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
    if (a2g_call_hook(L, lc, 4, 0) != 0) {
        a2g_stash(L, &lc->hook_error_ref);
        return 1;
    }
    return 0;
}

/* acquire() -> seconds to wait (0: go) and release(seconds): an outside rate limiter
 * (quota_hooks.c), such as one shared by nginx workers. Neither may yield; a failing
 * acquire lets the request wait a little and is raised when the step returns. */
static int64_t hook_acquire(void *ud)
{
    lclient *lc = ud;
    lua_State *L = lc->L;
    if (!L)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->acquire_ref);
    if (a2g_call_hook(L, lc, 0, 1) != 0) {
        a2g_stash(L, &lc->hook_error_ref);
        return 10;
    }
    lua_Number s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(s <= A2G_MAX_SECONDS)) /* NaN or absurd: a broken hook must not make a request hang */
        s = A2G_MAX_SECONDS;
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
    if (a2g_call_hook(L, lc, 1, 0) != 0)
        a2g_stash(L, &lc->hook_error_ref);
}

/* core.new ------------------------------------------------------------------------------- */

static const char *const CLIENT_OPTIONS[] = {
    "url", "username", "password", "token", "token_expiry", "cainfo", "proxy",
    "connect_timeout", "timeout", "low_speed_limit", "low_speed_time", "user_agent",
    "rate_limit", "retries", "backoff_base", "backoff_cap", "retry_after_cap", "max_json",
    "max_download", "json_timeout", "quota", "max_transfers",
    "log", "clock", "sleep", "progress", "acquire", "release", NULL
};

/* Seconds of option `name` as ms. */
static int64_t opt_ms(lua_State *L, int idx, const char *name, double dflt, double min)
{
    return (int64_t)(a2g_opt_number(L, idx, name, dflt, min, A2G_MAX_SECONDS) * 1000);
}

static void rate_limit_option(lua_State *L, a2g_client_opts *o)
{
    o->rate_limit = 50;
    o->rate_window_ms = 10000;
    lua_getfield(L, 1, "rate_limit");
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        o->rate_limit = 0;
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        int t = lua_gettop(L);
        static const char *const keys[] = { "requests", "window", NULL };
        a2g_check_keys(L, t, "rate_limit", keys);
        o->rate_limit = (int)a2g_opt_number(L, t, "requests", 50, 1, A2G_MAX_COUNT);
        o->rate_window_ms = opt_ms(L, t, "window", 10, 0.001);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option 'rate_limit' must be {requests=, window=} or false");
    }
    lua_pop(L, 1);
}

/* core.new(options) -> client */
static int l_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lclient *lc = lua_newuserdata(L, sizeof *lc);
    memset(lc, 0, sizeof *lc);
    lc->log_ref = lc->clock_ref = lc->sleep_ref = lc->progress_ref = LUA_NOREF;
    lc->acquire_ref = lc->release_ref = lc->hook_error_ref = LUA_NOREF;
    luaL_setmetatable(L, A2G_CLIENT_MT);

    a2g_check_keys(L, 1, "as2gateway.new", CLIENT_OPTIONS);
    a2g_client_opts o;
    memset(&o, 0, sizeof o);
    o.url = a2g_opt_string(L, 1, "url", A2G_TEXT_URL);
    if (!o.url)
        return luaL_error(L, "as2gateway.new: option 'url' is required");
    o.username = a2g_opt_string(L, 1, "username", A2G_TEXT_PLAIN);
    o.password = a2g_opt_string(L, 1, "password", A2G_TEXT_PLAIN);
    o.token = a2g_opt_string(L, 1, "token", A2G_TEXT_TOKEN);
    o.token_expiry_ms = (int64_t)a2g_opt_number(L, 1, "token_expiry", 0, 0, 1e16);
    if (!o.token && !(o.username && o.password))
        return luaL_error(L, "as2gateway.new: give username and password, or token");
    o.conn.cainfo = a2g_opt_string(L, 1, "cainfo", A2G_TEXT_PATH);
    o.conn.proxy = a2g_opt_string(L, 1, "proxy", A2G_TEXT_URL);
    o.conn.user_agent = a2g_opt_string(L, 1, "user_agent", A2G_TEXT_HEADER);
    if (!o.conn.user_agent)
        o.conn.user_agent = A2G_USER_AGENT;
    o.conn.connect_timeout_ms = (long)opt_ms(L, 1, "connect_timeout", 10, 0.001);
    o.conn.timeout_ms = (long)opt_ms(L, 1, "timeout", 0, 0);
    o.conn.low_speed_limit = (long)a2g_opt_number(L, 1, "low_speed_limit", 100, 0,
                                                  A2G_MAX_BYTES);
    o.conn.low_speed_time = (long)a2g_opt_number(L, 1, "low_speed_time", 30, 0,
                                                 A2G_MAX_SECONDS);
    rate_limit_option(L, &o);
    o.retries = (int)a2g_opt_number(L, 1, "retries", 5, 0, A2G_MAX_COUNT);
    /* more than the core runs at once count as that many */
    double transfers = a2g_opt_number(L, 1, "max_transfers", 1, 1, A2G_MAX_COUNT);
    o.conn.max_transfers = transfers > A2G_MAX_TRANSFERS ? A2G_MAX_TRANSFERS : (int)transfers;
    o.backoff_base_ms = opt_ms(L, 1, "backoff_base", 0.5, 0);
    o.backoff_cap_ms = opt_ms(L, 1, "backoff_cap", 30, 0);
    o.retry_after_cap_ms = opt_ms(L, 1, "retry_after_cap", 120, 0);
    o.json_timeout_ms = opt_ms(L, 1, "json_timeout", 120, 0);
    o.max_json = (size_t)a2g_opt_number(L, 1, "max_json", 16 * 1024 * 1024, 1024,
                                        A2G_MAX_BYTES);
    o.max_download = (int64_t)a2g_opt_number(L, 1, "max_download", 512.0 * 1024 * 1024, 0,
                                             A2G_MAX_BYTES);

    lc->log_ref = a2g_opt_function(L, 1, "log");
    lc->clock_ref = a2g_opt_function(L, 1, "clock");
    lc->sleep_ref = a2g_opt_function(L, 1, "sleep");
    lc->progress_ref = a2g_opt_function(L, 1, "progress");
    lc->acquire_ref = a2g_opt_function(L, 1, "acquire");
    lc->release_ref = a2g_opt_function(L, 1, "release");
    if ((lc->acquire_ref == LUA_NOREF) != (lc->release_ref == LUA_NOREF))
        return luaL_error(L, "as2gateway.new: give acquire and release together");
    o.hook_ud = lc;
    o.clock = hook_clock;
    o.log = hook_log;
    if (lc->progress_ref != LUA_NOREF)
        o.progress = hook_progress;
    if (lc->acquire_ref != LUA_NOREF) {
        o.acquire = hook_acquire;
        o.release = hook_release;
    }

    lua_getfield(L, 1, "quota");
    if (lua_toboolean(L, -1)) {
        /* a shared backend; a Redis account is named by a digest of the gateway's URL
         * and the username (never the password, never the token) */
        char account[65];
        a2g_quota_account(o.url, o.username ? o.username : "", account);
        o.quota = a2g_lquota_option(L, -1, account, o.rate_limit ? o.rate_limit : 50,
                                    o.rate_limit ? o.rate_window_ms : 10000);
    }
    lua_pop(L, 1);

    a2g_error err;
    memset(&err, 0, sizeof err);
    lc->L = L;
    lc->max_json = o.max_json;
    lc->c = a2g_client_new(&o, NULL, &err);
    if (!lc->c)
        return luaL_error(L, "as2gateway.new: %s", err.message);
    return 1;
}

/* Methods ---------------------------------------------------------------------------------- */

static void client_close(lua_State *L, lclient *lc)
{
    lc->L = L;
    while (lc->children)
        lc->children->close(L, lc->children); /* it leaves the list */
    a2g_client_free(lc->c);
    lc->c = NULL;
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
    lclient *lc = luaL_checkudata(L, 1, A2G_CLIENT_MT);
    if (!lc->in_callback) /* (it is reachable while its callbacks run) */
        client_close(L, lc);
    return 0;
}

/* client:close(): the same, but not from inside the client's own callbacks. */
static int l_client_close(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, A2G_CLIENT_MT);
    if (lc->in_callback)
        return a2g_inside_callback(L);
    client_close(L, lc);
    return 0;
}

static int l_client_stats(lua_State *L)
{
    lclient *lc = a2g_check_open_client(L, 1);
    const a2g_stats *s = a2g_client_stats(lc->c);
    lua_createtable(L, 0, 7);
    a2g_set_int(L, "requests", (lua_Integer)s->requests);
    a2g_set_int(L, "retries", (lua_Integer)s->retries);
    a2g_set_int(L, "authorizations", (lua_Integer)s->authorizations);
    a2g_set_int(L, "reauthentications", (lua_Integer)s->reauthentications);
    a2g_set_int(L, "ratelimited", (lua_Integer)s->ratelimited);
    a2g_set_int(L, "waits", (lua_Integer)s->waits);
    lua_pushnumber(L, (lua_Number)s->waited_ms / 1000.0);
    lua_setfield(L, -2, "waited");
    a2g_set_int(L, "tokens_shared", (lua_Integer)s->tokens_shared);
    a2g_set_int(L, "login_waits", (lua_Integer)s->login_waits);
    a2g_quota_state q;
    a2g_client_quota_state(lc->c, &q);
    lua_createtable(L, 0, 4);
    a2g_set_str(L, "backend", q.backend);
    a2g_set_str(L, "mode", q.mode);
    if (strcmp(q.backend, "redis") == 0) {
        a2g_set_int(L, "fallbacks", q.fallbacks);
        a2g_set_int(L, "returns", q.returns);
    }
    lua_setfield(L, -2, "quota");
    return 1;
}

/* client:token() -> token, expiry (ms since the epoch by our clock, 0: unknown),
 * usable (false once the client would renew it before the next request) | nil: what
 * the client holds now, no request. */
static int l_client_token(lua_State *L)
{
    lclient *lc = a2g_check_open_client(L, 1);
    int64_t expiry;
    int usable;
    const char *token = a2g_client_token(lc->c, &expiry, &usable, a2g_wall_ms());
    if (!token)
        return 0;
    lua_pushstring(L, token);
    lua_pushinteger(L, (lua_Integer)expiry);
    lua_pushboolean(L, usable);
    return 3;
}

/* client:set_token(token[, expiry_ms]): use this token from now on (one obtained by
 * another process, say); the client still renews it with its credentials. */
static int l_client_set_token(lua_State *L)
{
    lclient *lc = a2g_check_client(L, 1);
    const char *token = a2g_checktext(L, 2, A2G_TEXT_TOKEN, "set_token: the token");
    lua_Number expiry = luaL_optnumber(L, 3, 0);
    if (a2g_client_set_token(lc->c, token, expiry == expiry ? expiry : 0, a2g_wall_ms()) != 0)
        return luaL_error(L, "out of memory");
    return 0;
}

int a2g_client_sleep(lua_State *L, lclient *lc, int arg)
{
    lua_Number s = luaL_checknumber(L, arg);
    if (s != s || s == HUGE_VAL)
        return luaL_argerror(L, arg, "a finite number of seconds expected");
    if (lc->sleep_ref == LUA_NOREF) {
        if (s > 0)
            a2g_sleep_ns(s > 1e9 ? (int64_t)1e18 : (int64_t)(s * 1e9));
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->sleep_ref);
    lua_pushnumber(L, s);
    if (a2g_call_hook(L, lc, 1, 0) != 0)
        return lua_error(L);
    return 0;
}

/* client:sleep(seconds): the client's own sleep (a2g_client_sleep). */
static int l_client_sleep(lua_State *L)
{
    return a2g_client_sleep(L, a2g_check_client(L, 1), 2);
}

/* client:now() -> seconds on the client's clock: the `clock` hook, else monotonic. */
static int l_client_now(lua_State *L)
{
    lclient *lc = a2g_check_open_client(L, 1);
    if (lc->clock_ref == LUA_NOREF) {
        lua_pushnumber(L, (lua_Number)a2g_mono_ns() / 1e9);
        return 1;
    }
    int64_t ms;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->clock_ref);
    if (a2g_call_hook(L, lc, 0, 1) != 0 || !clock_reading(L, &ms))
        return lua_error(L);
    return 1;
}

static int l_client_tostring(lua_State *L)
{
    lclient *lc = luaL_checkudata(L, 1, A2G_CLIENT_MT);
    if (lc->c)
        lua_pushfstring(L, "as2gateway client (%s)", a2g_client_base(lc->c));
    else
        lua_pushliteral(L, "as2gateway client (closed)");
    return 1;
}

static const luaL_Reg client_methods[] = {
    { "stats", l_client_stats },
    { "token", l_client_token },
    { "set_token", l_client_set_token },
    { "now", l_client_now },
    { "sleep", l_client_sleep },
    { "close", l_client_close },
    { NULL, NULL }
};

void a2g_open_client(lua_State *L)
{
    a2g_new_class(L, A2G_CLIENT_MT, client_methods, l_client_gc, l_client_tostring);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
}
