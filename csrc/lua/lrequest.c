/* See lrequest.h. */
#include "lrequest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "interrupt.h"
#include "lclient.h"
#include "lerror.h"
#include "lhelpers.h"
#include "ljson.h"

#define REQUEST_MT "as2gateway.core.request"

typedef struct lrequest {
    a2g_lchild child;        /* first: the client's list holds it */
    a2g_request *r;          /* NULL once closed */
    lclient *owner;          /* NULL once closed */
    int client_ref;          /* keeps the client alive while the request is */
    int sink_ref, reader_ref;
    int error_ref;           /* an error the sink or the reader raised */
    int chunk_ref;           /* the reader's last chunk, while it is being sent */
    const char *chunk;
    size_t chunk_len, chunk_pos;
    int json;
} lrequest;

static void request_close(lua_State *L, lrequest *lr)
{
    /* freeing may call the release hook: with this state, the one that is running
     * (an earlier call's coroutine may be gone by now); but not while a callback of the
     * client runs (a collection there): its call's state stays the one in use */
    if (lr->owner && !lr->owner->in_callback)
        lr->owner->L = L;
    a2g_request_free(lr->r);
    lr->r = NULL;
    if (lr->owner) {
        a2g_orphan(lr->owner, &lr->child);
        lr->owner = NULL;
    }
    int *refs[] = { &lr->client_ref, &lr->sink_ref, &lr->reader_ref, &lr->error_ref,
                    &lr->chunk_ref };
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
        *refs[i] = LUA_NOREF;
    }
    lr->chunk = NULL;
}

static void close_child(lua_State *L, a2g_lchild *child)
{
    request_close(L, (lrequest *)child);
}

static lrequest *check_request(lua_State *L, int idx)
{
    lrequest *lr = luaL_checkudata(L, idx, REQUEST_MT);
    if (!lr->r)
        luaL_error(L, "as2gateway: the request is closed");
    if (!lr->owner->c)
        luaL_error(L, "as2gateway: the client is closed");
    if (lr->owner->in_callback)
        a2g_inside_callback(L);
    lr->owner->L = L;
    return lr;
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
        return a2g_inside_callback(L);
    return l_request_gc(L);
}

/* Sinks and readers ------------------------------------------------------------------- */

/* They run inside libcurl's callbacks: under lua_pcall, an error stashed and the
 * transfer aborted, never a longjmp through libcurl. */
static int callback_failed(lua_State *L, lrequest *lr)
{
    a2g_stash(L, &lr->error_ref);
    a2g_request_callback_failed(lr->r);
    return -1;
}

/* With several transfers in flight, one request's step runs another's sink or reader:
 * they run on the state of the step that runs now (the client's), never on one that
 * stepped the request before (a coroutine that may be suspended by now). */
static int sink_write(void *ud, const char *data, size_t n)
{
    lrequest *lr = ud;
    lua_State *L = lr->owner->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lr->sink_ref);
    lua_pushlstring(L, data, n);
    if (a2g_call_hook(L, lr->owner, 1, 0) != 0)
        return callback_failed(L, lr);
    return 0;
}

/* A chunk the reader returned is held (by reference) until all of it has gone out. */
static size_t reader_read(void *ud, char *buf, size_t n, int *failed)
{
    lrequest *lr = ud;
    lua_State *L = lr->owner->L;
    if (lr->chunk_pos >= lr->chunk_len) {
        luaL_unref(L, LUA_REGISTRYINDEX, lr->chunk_ref);
        lr->chunk_ref = LUA_NOREF;
        lr->chunk = NULL;
        lr->chunk_len = lr->chunk_pos = 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, lr->reader_ref);
        if (a2g_call_hook(L, lr->owner, 0, 1) != 0) {
            *failed = callback_failed(L, lr);
            return 0;
        }
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return 0; /* the end of the body */
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            lua_pushliteral(L, "body_reader must return a string or nil");
            *failed = callback_failed(L, lr);
            return 0;
        }
        lr->chunk = lua_tolstring(L, -1, &lr->chunk_len);
        lr->chunk_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (lr->chunk_len == 0)
            return 0; /* "" ends it too */
    }
    size_t avail = lr->chunk_len - lr->chunk_pos;
    size_t k = avail < n ? avail : n;
    memcpy(buf, lr->chunk + lr->chunk_pos, k);
    lr->chunk_pos += k;
    return k;
}

/* The spec ------------------------------------------------------------------------------ */

/* A query value as text: booleans and numbers as the gateway reads them. */
static const char *query_value(lua_State *L, int idx, char num[32], size_t *len)
{
    const char *v = NULL;
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        v = lua_toboolean(L, idx) ? "true" : "false";
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number x = lua_tonumber(L, idx);
        if (x == (lua_Number)(long long)x)
            snprintf(num, 32, "%lld", (long long)x);
        else
            snprintf(num, 32, "%.17g", (double)x);
        v = num;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        return lua_tolstring(L, idx, len);
    }
    if (v)
        *len = strlen(v);
    return v;
}

static void oom(lua_State *L, int rc)
{
    if (rc != 0)
        luaL_error(L, "request: out of memory");
}

/* The path, then the query with its names sorted, so that the same call always makes
 * the same URL. */
static void set_path(lua_State *L, int spec, a2g_request *r)
{
    lua_getfield(L, spec, "path");
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t plen;
        const char *p = lua_tolstring(L, -1, &plen);
        if (a2g_request_encoded_path(r, p, plen) != 0)
            luaL_error(L, "request: path must start with '/' and be percent-encoded, "
                          "without '.' or '..' segments (or give a list of segments)");
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n = lua_rawlen(L, -1);
        if (n == 0)
            luaL_error(L, "request: path has no segments");
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            size_t len = 0;
            const char *seg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
            if (!seg || len == 0)
                luaL_error(L, "request: path segment %d must be a non-empty string", (int)i);
            oom(L, a2g_request_segment(r, seg, len));
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "request: path must be a string or a list of segments");
    }
    lua_pop(L, 1);

    lua_getfield(L, spec, "query");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            luaL_error(L, "request: query must be a table");
        int q = lua_gettop(L);
        lua_newtable(L); /* the sorted names */
        int names = lua_gettop(L), count = 0;
        lua_pushnil(L);
        while (lua_next(L, q)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "request: query names must be strings");
            size_t nlen;
            const char *qname = lua_tolstring(L, -1, &nlen);
            if (a2g_check_text(qname, nlen, A2G_TEXT_PLAIN))
                luaL_error(L, "request: a query name holds a NUL byte");
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
            char num[32];
            size_t vlen = 0;
            const char *v = query_value(L, -1, num, &vlen);
            if (!v)
                luaL_error(L, "request: query value of '%s' must be a string, number or "
                              "boolean", name);
            oom(L, a2g_request_query(r, name, v, vlen));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void set_headers(lua_State *L, int spec, a2g_request *r)
{
    lua_getfield(L, spec, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "request: headers must map names to strings");
            const char *name = a2g_checktext(L, -2, A2G_TEXT_HEADER_NAME, "request: header");
            const char *value = a2g_checktext(L, -1, A2G_TEXT_HEADER, "request: header value");
            a2g_error err;
            if (a2g_request_header(r, name, value, &err) != 0)
                luaL_error(L, "request: %s", err.message);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Raises unless at most one field of each group is given: misuse raises before
 * anything happens. */
static void at_most_one(lua_State *L, int spec)
{
    static const char *const body_fields[] = { "body", "body_file", "body_reader",
                                               "body_pieces", NULL };
    static const char *const sink_fields[] = { "to_file", "to_dir", "sink", NULL };
    const char *const *groups[] = { body_fields, sink_fields };
    for (int g = 0; g < 2; g++) {
        int given = 0;
        for (int i = 0; groups[g][i]; i++) {
            lua_getfield(L, spec, groups[g][i]);
            given += !lua_isnil(L, -1);
            lua_pop(L, 1);
        }
        if (given > 1)
            luaL_error(L, g == 0 ? "request: give at most one of body, body_file, "
                                   "body_reader, body_pieces"
                                 : "request: give at most one of to_file, to_dir, sink");
    }
}

/* The body: 0, or -1 with err set when a file of it cannot be read (the caller's to
 * handle: nil, err). */
static int set_body(lua_State *L, int spec, lrequest *lr, a2g_error *err)
{
    a2g_request *r = lr->r;
    lua_getfield(L, spec, "body");
    if (!lua_isnil(L, -1)) {
        size_t len;
        const char *b = luaL_checklstring(L, -1, &len);
        if (a2g_request_body(r, b, len, err) != 0)
            luaL_error(L, "request: %s", err->message);
    }
    lua_pop(L, 1);
    const char *body_file = a2g_opt_string(L, spec, "body_file", A2G_TEXT_PATH);
    if (body_file && a2g_request_body_file(r, body_file, err) != 0)
        return -1;
    lr->reader_ref = a2g_opt_function(L, spec, "body_reader");
    if (lr->reader_ref != LUA_NOREF)
        a2g_request_body_reader(r, reader_read, lr);
    lua_getfield(L, spec, "body_pieces");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "request: body_pieces must be a list");
    a2g_request_body_pieces(r);
    size_t n = lua_rawlen(L, -1);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (int)i);
        int rc;
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *d = lua_tolstring(L, -1, &len);
            rc = a2g_request_add_data(r, d, len, err);
        } else if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "path");
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "request: body piece %d: a string or {path=} expected", (int)i);
            rc = a2g_request_add_file(r, a2g_checktext(L, -1, A2G_TEXT_PATH,
                                                       "request: body piece"), err);
            lua_pop(L, 1);
        } else {
            luaL_error(L, "request: body piece %d: a string or {path=} expected", (int)i);
            rc = -1;
        }
        lua_pop(L, 1);
        if (rc != 0)
            return -1;
    }
    lua_pop(L, 1);
    return 0;
}

static void set_sink(lua_State *L, int spec, lrequest *lr)
{
    a2g_error err;
    const char *to_file = a2g_opt_string(L, spec, "to_file", A2G_TEXT_PATH);
    const char *to_dir = a2g_opt_string(L, spec, "to_dir", A2G_TEXT_PATH);
    lr->sink_ref = a2g_opt_function(L, spec, "sink");
    int rc = 0;
    if (to_file)
        rc = a2g_request_to_file(lr->r, to_file, a2g_opt_bool(L, spec, "no_clobber"), &err);
    else if (to_dir)
        rc = a2g_request_to_dir(lr->r, to_dir, &err);
    else if (lr->sink_ref != LUA_NOREF)
        a2g_request_to_writer(lr->r, sink_write, lr);
    if (rc != 0)
        luaL_error(L, "request: %s", err.message);
}

static const char *const REQUEST_OPTIONS[] = {
    "method", "path", "query", "headers", "body", "body_file", "body_reader", "body_pieces",
    "to_file", "to_dir", "no_clobber", "sink", "json", "send", "login", "deadline",
    "fail_fast", NULL
};

#define NO_LOGIN "as2gateway: a login needs username and password"

/* client:request(spec) -> request | nil, err (a file of the body cannot be read): a
 * step-wise request (see request:step). */
static int l_client_request(lua_State *L)
{
    lclient *lc = a2g_check_client(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    a2g_check_keys(L, 2, "request", REQUEST_OPTIONS);

    lrequest *lr = lua_newuserdata(L, sizeof *lr);
    memset(lr, 0, sizeof *lr);
    lr->client_ref = lr->sink_ref = lr->reader_ref = lr->error_ref = LUA_NOREF;
    lr->chunk_ref = LUA_NOREF;
    lr->child.close = close_child;
    luaL_setmetatable(L, REQUEST_MT);
    int self = lua_gettop(L);

    const char *method = a2g_opt_string(L, 2, "method", A2G_TEXT_PLAIN);
    if (!method)
        method = "GET";
    if (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "DELETE"))
        return luaL_error(L, "request: method must be GET, POST or DELETE");
    /* login = true: POST /authorize now, step-wise like any request (an event loop
     * that shares one token between processes logs in through this) */
    int login = a2g_opt_bool(L, 2, "login");
    if (login && !a2g_client_can_login(lc->c))
        return luaL_error(L, NO_LOGIN);
    int flags = (login ? A2G_REQUEST_LOGIN : 0)
                | (a2g_opt_bool(L, 2, "send") ? A2G_REQUEST_SEND : 0);
    a2g_error err;
    memset(&err, 0, sizeof err);
    lr->r = a2g_request_new(lc->c, login ? "POST" : method, flags, &err);
    if (!lr->r)
        return luaL_error(L, "request: %s", err.message);
    lr->owner = lc;
    a2g_adopt(lc, &lr->child);
    lua_pushvalue(L, 1);
    lr->client_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lr->json = a2g_opt_bool(L, 2, "json");
    /* deadline = seconds from now for the whole call; fail_fast: no rate-limit waits */
    double deadline = a2g_opt_number(L, 2, "deadline", 0, 0.001, A2G_MAX_SECONDS);
    a2g_request_limits(lr->r, (int64_t)(deadline * 1000 + 0.5), a2g_opt_bool(L, 2, "fail_fast"));

    if (!login)
        set_path(L, 2, lr->r);
    set_headers(L, 2, lr->r);
    at_most_one(L, 2);
    if (set_body(L, 2, lr, &err) != 0) {
        /* a missing or unreadable file is the caller's to handle */
        lua_pushnil(L);
        a2g_push_error(L, "invalid", err.message, 0);
        request_close(L, lr);
        return 2;
    }
    set_sink(L, 2, lr);
    lua_pushvalue(L, self);
    return 1;
}

/* Steps and outcomes ----------------------------------------------------------------- */

/* Pushes the outcome of a finished request: a result table, or nil and an error. A
 * callback's error is raised instead. */
static int push_result(lua_State *L, lrequest *lr)
{
    a2g_outcome o;
    a2g_reraise(L, &lr->error_ref);
    const a2g_error *e = a2g_request_outcome(lr->r, &o);
    if (e->kind != A2G_OK)
        return a2g_push_fail(L, e);
    lua_createtable(L, 0, 8);
    a2g_set_int(L, "status", o.status);
    a2g_set_str(L, "content_type", o.content_type);
    a2g_set_str(L, "link", o.link);
    if (o.filename) {
        lua_pushlstring(L, o.filename, o.filename_len);
        lua_setfield(L, -2, "filename");
    }
    if (o.has_truncation) {
        lua_createtable(L, 0, 2);
        a2g_set_int(L, "message", o.truncation_message);
        a2g_set_int(L, "attachment", o.truncation_attachment);
        lua_setfield(L, -2, "truncation");
    }
    lua_pushinteger(L, (lua_Integer)o.bytes);
    lua_setfield(L, -2, "bytes");
    a2g_set_str(L, "path", o.path);
    if (o.body && lr->json) {
        /* THE place where answers become Lua values: ljson.c, straight from the bytes
         * (no lua-cjson, no normalising walk in Lua) */
        a2g_json_limits limits = { lr->owner->max_json, A2G_JSON_MAX_DEPTH };
        char why[160];
        if (a2g_push_json(L, o.body, o.body_len, &limits, why, sizeof why) != 0) {
            lua_pop(L, 1);
            a2g_error bad;
            a2g_fail(&bad, A2G_PROTOCOL, o.status, "the answer is not valid JSON: %s", why);
            return a2g_push_fail(L, &bad);
        }
        lua_setfield(L, -2, "json");
    } else if (o.body) {
        lua_pushlstring(L, o.body, o.body_len);
        lua_setfield(L, -2, "body");
    }
    return 1;
}

/* request:step([wait[, blocking]]) -> "done" | "sleep", seconds | "io", seconds. `wait`
 * is how long this call may block on the network (seconds, default 0); `blocking`: the
 * caller runs the request to its end (the step driver does): it takes the connection
 * at once from a step-wise request left in flight, and a trapped Ctrl-C ends it. */
static int l_request_step(lua_State *L)
{
    lrequest *lr = check_request(L, 1);
    int wait_ms = (int)(luaL_optnumber(L, 2, 0) * 1000);
    int blocking = lua_toboolean(L, 3);
    int64_t sleep_ms = 0;
    if (blocking && a2g_interrupt_pending()) /* Ctrl-C in a host that traps it */
        a2g_request_interrupt(lr->r);
    a2g_step s = a2g_request_step(lr->r, wait_ms, blocking, &sleep_ms);
    a2g_reraise(L, &lr->owner->hook_error_ref);
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

/* request:sleep(seconds): its client's sleep, for the step driver of blocking calls. */
static int l_request_sleep(lua_State *L)
{
    return a2g_client_sleep(L, check_request(L, 1)->owner, 2);
}

/* Blocking calls ---------------------------------------------------------------------- */

/* Runs the request at `req` to its end through the step driver, blocking: its
 * results on the stack. */
static int run(lua_State *L, int req)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "as2gateway.driver.run");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushliteral(L, "as2gateway.driver");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "run");
        lua_remove(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "as2gateway.driver.run");
    }
    lua_pushvalue(L, req);
    lua_call(L, 1, 2); /* no sleep given: blocking */
    return 2;
}

/* client:perform(spec) -> result | nil, err */
static int l_client_perform(lua_State *L)
{
    a2g_check_client(L, 1);
    lua_settop(L, 2);
    lua_pushcfunction(L, l_client_request);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 2;
    lua_pop(L, 1);
    return run(L, lua_gettop(L));
}

/* client:authorize() -> token, expiry (ms) | nil, err: logs in now. */
static int l_client_authorize(lua_State *L)
{
    lclient *lc = a2g_check_client(L, 1);
    if (!a2g_client_can_login(lc->c))
        return luaL_error(L, NO_LOGIN);
    lua_settop(L, 1);
    lua_pushcfunction(L, l_client_request);
    lua_pushvalue(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "login");
    lua_call(L, 2, 1);
    run(L, lua_gettop(L));
    if (lua_isnil(L, -2))
        return 2;
    int64_t expiry;
    int usable;
    lua_pushstring(L, a2g_client_token(lc->c, &expiry, &usable, 0));
    lua_pushinteger(L, (lua_Integer)expiry);
    return 2;
}

static const luaL_Reg request_methods[] = {
    { "step", l_request_step },
    { "result", l_request_result },
    { "sleep", l_request_sleep },
    { "close", l_request_close },
    { NULL, NULL }
};

static const luaL_Reg client_calls[] = {
    { "request", l_client_request },
    { "perform", l_client_perform },
    { "authorize", l_client_authorize },
    { NULL, NULL }
};

void a2g_open_request(lua_State *L)
{
    a2g_new_class(L, REQUEST_MT, request_methods, l_request_gc, NULL);
    luaL_getmetatable(L, A2G_CLIENT_MT);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, client_calls, 0);
    lua_pop(L, 2);
}
