/* as2gateway.core's shared quota engines for Lua: core.quota_file{...} (one host, a
 * state folder) and core.quota_redis{...} (several hosts, one Redis), the same methods
 * on both. The engines are quota_file.c and quota_redis.c; this file only checks
 * options and turns results into Lua values. The Redis scripts come from the Lua
 * module as2gateway.quota_scripts, the one place they are written. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"

#include "lerror.h"
#include "lhelpers.h"
#include "lquota.h"
#include "quota.h"
#include "sha256.h"
#include "quota_file.h"
#include "quota_redis.h"
#include "qwindow.h"

#define QUOTA_MT "as2gateway.core.quota" /* both engines: the same methods */
#define TOKEN_MAX 8192

typedef struct lquota {
    a2g_qfile *file;     /* one of the three, NULL once closed */
    a2g_qredis *redis;
    a2g_qwindow *win;    /* in process (core.quota_local) */
    int64_t lease_ms;    /* of `win` */
    long reaped;         /* of `win` */
    long resets_told;    /* file: state resets already given as events */
} lquota;

/* The in-process engine's operations, shaped as the file engine's. */
static int win_acquire(lquota *o, uint64_t *lease, int64_t *wait, a2g_error *err)
{
    int64_t now = a2g_qclock_ms();
    o->reaped += a2g_qwin_prune(o->win, now, NULL);
    uint64_t id = a2g_qrandom_id();
    *wait = a2g_qwin_acquire(o->win, now, o->lease_ms, id, 0, 0);
    if (*wait < 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    *lease = *wait == 0 ? id : 0;
    return 0;
}

#define fail a2g_push_fail

/* Options ---------------------------------------------------------------------------------- */

static int64_t ms_of(lua_Number s)
{
    return (int64_t)llround(s * 1000);
}

static const char *text_opt(lua_State *L, const char *name, a2g_text what, int required)
{
    const char *v = a2g_opt_string(L, 1, name, what);
    if (!v && required)
        luaL_error(L, "option '%s' is required", name);
    return v;
}

static void window_opts(lua_State *L, a2g_qconfig *c)
{
    c->limit = (int)a2g_opt_number(L, 1, "requests", 50, 1, 1e6);
    c->window_ms = ms_of(a2g_opt_number(L, 1, "window", 10, 0.001, 86400));
    c->margin_ms = ms_of(a2g_opt_number(L, 1, "margin", 0.025, 0, 3600));
    c->lease_ms = ms_of(a2g_opt_number(L, 1, "lease", 60, 0.001, 86400));
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "requests");
        if (!lua_isnil(L, -1) && lua_tonumber(L, -1) != floor(lua_tonumber(L, -1)))
            luaL_error(L, "quota option 'requests' must be a whole number");
        lua_pop(L, 1);
    }
}

static lquota *new_object(lua_State *L, const char *mt)
{
    lquota *o = lua_newuserdata(L, sizeof *o);
    memset(o, 0, sizeof *o); /* closed until the engine opens */
    luaL_setmetatable(L, mt);
    return o;
}

/* core.quota_file{dir =, requests = 50, window = 10, margin = 0.025, lease = 60,
 * lock_timeout = 5} -> engine | nil, err */
static int l_quota_file(lua_State *L)
{
    static const char *const names[] = { "dir", "requests", "window", "margin", "lease",
                                         "lock_timeout", NULL };
    luaL_checktype(L, 1, LUA_TTABLE);
    a2g_check_keys(L, 1, "quota_file", names);
    a2g_qconfig c = { 0 };
    window_opts(L, &c);
    c.lock_timeout_ms = ms_of(a2g_opt_number(L, 1, "lock_timeout", 5, 0.001, 3600));
    const char *dir = text_opt(L, "dir", A2G_TEXT_PATH, 1);
    lquota *o = new_object(L, QUOTA_MT);
    a2g_error err;
    if (!(o->file = a2g_qfile_open(dir, &c, &err)))
        return fail(L, &err);
    return 1;
}

/* core.quota_redis{url =, account =, requests, window, margin, lease, expected_hosts = 1,
 * fallback_requests, fallback_dir, retry_interval = min(1, window / 4), connect_timeout = 1,
 * command_timeout = 1, login_ttl = 30, clock_offset = 0} -> engine | nil, err */
static int l_quota_redis(lua_State *L)
{
    static const char *const names[] = {
        "url", "account", "requests", "window", "margin", "lease", "expected_hosts",
        "fallback_requests", "fallback_dir", "retry_interval", "connect_timeout",
        "command_timeout", "login_ttl", "clock_offset", NULL
    };
    luaL_checktype(L, 1, LUA_TTABLE);
    a2g_check_keys(L, 1, "quota_redis", names);
    a2g_qredis_config c;
    memset(&c, 0, sizeof c);
    window_opts(L, &c.q);
    c.q.lock_timeout_ms = 5000;
    c.q.clock_offset_ms = ms_of(a2g_opt_number(L, 1, "clock_offset", 0, -86400, 86400));
    c.expected_hosts = (int)a2g_opt_number(L, 1, "expected_hosts", 1, 1, 1e4);
    c.fallback_limit = (int)a2g_opt_number(L, 1, "fallback_requests", -1, -1, 1e6);
    if (c.fallback_limit > c.q.limit)
        luaL_error(L, "quota option 'fallback_requests' cannot exceed 'requests'");
    lua_Number window = (lua_Number)c.q.window_ms / 1000;
    lua_Number retry = a2g_opt_number(L, 1, "retry_interval", window / 4 < 1 ? window / 4 : 1, 0.001, 3600);
    if (ms_of(retry) >= c.q.window_ms)
        luaL_error(L, "quota option 'retry_interval' must be shorter than the window "
                   "(every host must see Redis's return within one window)");
    c.retry_ms = ms_of(retry);
    c.connect_timeout_ms = ms_of(a2g_opt_number(L, 1, "connect_timeout", 1, 0.001, 600));
    c.command_timeout_ms = ms_of(a2g_opt_number(L, 1, "command_timeout", 1, 0.001, 600));
    c.login_ttl_ms = ms_of(a2g_opt_number(L, 1, "login_ttl", 30, 0.001, 3600));
    c.url = text_opt(L, "url", A2G_TEXT_URL, 1);
    c.account = text_opt(L, "account", A2G_TEXT_URL, 1);
    if (strpbrk(c.account, "{}") || !c.account[0] || strlen(c.account) > 512)
        luaL_error(L, "quota option 'account' must be 1 to 512 characters without braces");
    c.fallback_dir = text_opt(L, "fallback_dir", A2G_TEXT_PATH, 0);
    /* the scripts: one place, as2gateway.quota_scripts */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "as2gateway.quota_scripts");
    lua_call(L, 1, 1);
    int scripts = lua_gettop(L);
    for (int i = 0; i < A2G_QS_COUNT; i++) {
        lua_getfield(L, scripts, a2g_qscript_name((a2g_qscript)i));
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "as2gateway.quota_scripts has no script '%s'",
                       a2g_qscript_name((a2g_qscript)i));
        c.scripts[i] = lua_tostring(L, -1); /* kept alive by the module table */
        lua_pop(L, 1);
    }
    lquota *o = new_object(L, QUOTA_MT);
    a2g_error err;
    if (!(o->redis = a2g_qredis_open(&c, &err)))
        return fail(L, &err);
    return 1;
}

/* core.quota_local{requests = 50, window = 10, margin = 0.025, lease = 60} -> engine: the
 * same window in this process alone (what the others fall back to), and the local
 * window of the OpenResty client (as2gateway.quota_resty). */
static int l_quota_local(lua_State *L)
{
    static const char *const names[] = { "requests", "window", "margin", "lease", NULL };
    luaL_checktype(L, 1, LUA_TTABLE);
    a2g_check_keys(L, 1, "quota_local", names);
    a2g_qconfig c = { 0 };
    window_opts(L, &c);
    lquota *o = new_object(L, QUOTA_MT);
    a2g_qwindow *w = malloc(sizeof *w);
    if (!w)
        return luaL_error(L, "out of memory");
    a2g_qwin_init(w, c.limit, c.window_ms, c.margin_ms);
    o->win = w;
    o->lease_ms = c.lease_ms;
    return 1;
}

/* Methods ---------------------------------------------------------------------------------- */

static lquota *check_open(lua_State *L)
{
    lquota *o = luaL_checkudata(L, 1, QUOTA_MT);
    if (!o->file && !o->redis && !o->win)
        luaL_error(L, "the quota engine is closed");
    return o;
}

static uint64_t check_lease(lua_State *L, int idx)
{
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    char *end;
    errno = 0;
    uint64_t id = strtoull(s, &end, 16);
    if (len != 16 || *end || errno || id == 0)
        luaL_argerror(L, idx, "not a lease (a string acquire gave)");
    return id;
}

static void push_lease(lua_State *L, uint64_t id)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%016" PRIx64, id);
    lua_pushstring(L, buf);
}

/* engine:acquire() -> 0, lease (admitted) | seconds to wait | nil, err */
static int l_acquire(lua_State *L)
{
    lquota *o = check_open(L);
    uint64_t lease;
    int64_t wait;
    a2g_error err;
    int rc = o->file ? a2g_qfile_acquire(o->file, &lease, &wait, &err)
             : o->redis ? a2g_qredis_acquire(o->redis, &lease, &wait, &err)
             : win_acquire(o, &lease, &wait, &err);
    if (rc != 0)
        return fail(L, &err);
    if (wait > 0) {
        lua_pushnumber(L, (lua_Number)wait / 1000);
        return 1;
    }
    lua_pushinteger(L, 0);
    push_lease(L, lease);
    return 2;
}

typedef enum { OP_RELEASE, OP_CANCEL, OP_RENEW } lease_op;

static int win_lease(lquota *o, lease_op op, uint64_t lease, a2g_error *err)
{
    int64_t now = a2g_qclock_ms();
    switch (op) {
    case OP_RELEASE:
        return a2g_qwin_release(o->win, lease, now) == 0 ? 0
               : a2g_fail(err, A2G_IO, 0, "out of memory");
    case OP_CANCEL:
        a2g_qwin_cancel(o->win, lease);
        return 0;
    default:
        return a2g_qwin_renew(o->win, lease, now + o->lease_ms) ? 0 : 1;
    }
}

static int lease_call(lua_State *L, lease_op op, int (*f)(a2g_qfile *, uint64_t, a2g_error *),
                      int (*r)(a2g_qredis *, uint64_t, a2g_error *))
{
    lquota *o = check_open(L);
    uint64_t lease = check_lease(L, 2);
    a2g_error err;
    int rc = o->file ? f(o->file, lease, &err) : o->redis ? r(o->redis, lease, &err)
             : win_lease(o, op, lease, &err);
    if (rc < 0 && err.kind == A2G_INVALID) /* a lease it never gave: the caller's bug */
        return luaL_argerror(L, 2, err.message);
    if (rc < 0)
        return fail(L, &err);
    lua_pushboolean(L, rc == 0);
    return 1;
}

/* engine:release(lease) -> true | nil, err: the request ended now. */
static int l_release(lua_State *L)
{
    return lease_call(L, OP_RELEASE, a2g_qfile_release, a2g_qredis_release);
}

/* engine:cancel(lease) -> true | nil, err: the admission sent nothing. */
static int l_cancel(lua_State *L)
{
    return lease_call(L, OP_CANCEL, a2g_qfile_cancel, a2g_qredis_cancel);
}

/* engine:renew(lease) -> true (renewed) | false (it had run out) | nil, err */
static int l_renew(lua_State *L)
{
    return lease_call(L, OP_RENEW, a2g_qfile_renew, a2g_qredis_renew);
}

/* engine:block(seconds) -> true | nil, err: no admission for that long, anywhere. */
static int l_block(lua_State *L)
{
    lquota *o = check_open(L);
    lua_Number s = luaL_checknumber(L, 2);
    luaL_argcheck(L, isfinite(s) && s >= 0 && s <= 86400, 2, "seconds from 0 to a day");
    a2g_error err;
    int rc = 0;
    if (o->file)
        rc = a2g_qfile_block(o->file, ms_of(s), &err);
    else if (o->redis)
        rc = a2g_qredis_block(o->redis, ms_of(s), &err);
    else if (a2g_qclock_ms() + ms_of(s) > o->win->blocked_until)
        o->win->blocked_until = a2g_qclock_ms() + ms_of(s);
    if (rc != 0)
        return fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* engine:token() -> token, expiry (ms since the epoch, 0: unknown) | nil (none) | nil, err */
static int l_token(lua_State *L)
{
    lquota *o = check_open(L);
    if (o->win) { /* nothing shared in one process */
        lua_pushnil(L);
        return 1;
    }
    char *buf = malloc(TOKEN_MAX);
    if (!buf)
        return luaL_error(L, "out of memory");
    int64_t expiry = 0;
    a2g_error err;
    int rc = o->file ? a2g_qfile_token(o->file, buf, TOKEN_MAX, &expiry, &err)
                     : a2g_qredis_token(o->redis, buf, TOKEN_MAX, &expiry, &err);
    int n;
    if (rc < 0) {
        n = fail(L, &err);
    } else if (rc == 0 || a2g_check_text(buf, strlen(buf), A2G_TEXT_TOKEN)) {
        lua_pushnil(L); /* none, or not one we could use */
        n = 1;
    } else {
        lua_pushstring(L, buf);
        lua_pushinteger(L, (lua_Integer)expiry);
        n = 2;
    }
    memset(buf, 0, TOKEN_MAX);
    free(buf);
    return n;
}

/* engine:set_token(token[, expiry ms]) -> true | nil, err */
static int l_set_token(lua_State *L)
{
    lquota *o = check_open(L);
    const char *token = a2g_checktext(L, 2, A2G_TEXT_TOKEN, "token");
    luaL_argcheck(L, strlen(token) < TOKEN_MAX, 2, "token too long");
    lua_Number expiry = luaL_optnumber(L, 3, 0);
    luaL_argcheck(L, isfinite(expiry) && expiry >= 0 && expiry < 9e15, 3,
                  "expiry must be ms since the epoch (or 0)");
    a2g_error err;
    int rc = o->file ? a2g_qfile_set_token(o->file, token, (int64_t)expiry, &err)
             : o->redis ? a2g_qredis_set_token(o->redis, token, (int64_t)expiry, &err) : 0;
    if (rc != 0)
        return fail(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* engine:login() -> true (log in, then login_done) | false (another does) | nil, err */
static int l_login(lua_State *L)
{
    lquota *o = check_open(L);
    a2g_error err;
    int rc = o->file ? a2g_qfile_login(o->file, &err)
             : o->redis ? a2g_qredis_login(o->redis, &err) : 1;
    if (rc < 0)
        return fail(L, &err);
    lua_pushboolean(L, rc == 1);
    return 1;
}

static int l_login_done(lua_State *L)
{
    lquota *o = check_open(L);
    if (o->file)
        a2g_qfile_login_done(o->file);
    else if (o->redis)
        a2g_qredis_login_done(o->redis);
    return 0;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_secs(lua_State *L, const char *k, int64_t ms)
{
    lua_pushnumber(L, (lua_Number)ms / 1000);
    lua_setfield(L, -2, k);
}

/* engine:state() -> {backend, mode, entries, leases, limit, wait, resets, reaped, and
 * for Redis hold, dual, fallbacks, returns, errors, last_error} | nil, err */
static int l_state(lua_State *L)
{
    lquota *o = check_open(L);
    a2g_qredis_info rs;
    a2g_qstate *st = &rs.window;
    a2g_error err;
    memset(&rs, 0, sizeof rs);
    int rc = 0;
    if (o->file) {
        rc = a2g_qfile_state(o->file, st, &err);
    } else if (o->redis) {
        rc = a2g_qredis_state(o->redis, &rs, &err);
    } else {
        int64_t now = a2g_qclock_ms();
        o->reaped += a2g_qwin_prune(o->win, now, NULL);
        a2g_qwin_count(o->win, now, &st->entries, &st->leases);
        st->limit = o->win->limit;
        st->wait_ms = a2g_qwin_wait(o->win, now);
        st->reaped = o->reaped;
    }
    if (rc != 0)
        return fail(L, &err);
    const char *backend = o->file ? "file" : o->redis ? "redis" : "local";
    static const char *const modes[] = { "redis", "fallback", "dual" };
    lua_newtable(L);
    lua_pushstring(L, backend);
    lua_setfield(L, -2, "backend");
    lua_pushstring(L, o->redis ? modes[rs.mode] : backend);
    lua_setfield(L, -2, "mode");
    set_int(L, "entries", st->entries);
    set_int(L, "leases", st->leases);
    set_int(L, "limit", st->limit);
    set_secs(L, "wait", st->wait_ms);
    set_int(L, "resets", st->resets);
    set_int(L, "reaped", st->reaped);
    if (o->redis) {
        set_secs(L, "hold", rs.hold_ms);
        set_secs(L, "dual", rs.dual_ms);
        set_int(L, "fallbacks", rs.fallbacks);
        set_int(L, "returns", rs.returns);
        set_int(L, "errors", rs.errors);
        if (rs.last_error[0]) {
            lua_pushstring(L, rs.last_error);
            lua_setfield(L, -2, "last_error");
        }
    }
    return 1;
}

/* engine:events() -> list of {event = "quota_fallback" | "quota_redis" |
 * "quota_state_reset", message}: what happened since the last call, oldest first. */
static int l_events(lua_State *L)
{
    lquota *o = check_open(L);
    lua_newtable(L);
    int n = 0;
    if (o->redis) {
        a2g_qevent ev;
        while (a2g_qredis_event(o->redis, &ev)) {
            lua_newtable(L);
            lua_pushstring(L, ev.back ? "quota_redis" : "quota_fallback");
            lua_setfield(L, -2, "event");
            lua_pushstring(L, ev.message);
            lua_setfield(L, -2, "message");
            lua_rawseti(L, -2, ++n);
        }
    } else if (o->file) {
        a2g_qstate st;
        a2g_error err;
        if (a2g_qfile_state(o->file, &st, &err) == 0 && st.resets > o->resets_told) {
            lua_newtable(L);
            lua_pushliteral(L, "quota_state_reset");
            lua_setfield(L, -2, "event");
            lua_pushfstring(L, "the quota state was unreadable %d time(s): counted full "
                            "for a lease and a window", (int)(st.resets - o->resets_told));
            lua_setfield(L, -2, "message");
            lua_rawseti(L, -2, ++n);
            o->resets_told = st.resets;
        }
    }
    return 1;
}

/* local engine:snapshot() -> {entries = {{id, age}...}, leases = {{id, left}...}} in
 * seconds: what the OpenResty client writes into Redis when it answers again. */
static int l_snapshot(lua_State *L)
{
    lquota *o = check_open(L);
    if (!o->win)
        return luaL_error(L, "snapshot: only the local engine has one");
    int64_t now = a2g_qclock_ms();
    o->reaped += a2g_qwin_prune(o->win, now, NULL);
    lua_createtable(L, 0, 2);
    lua_createtable(L, o->win->ne, 0);
    for (int i = 0; i < o->win->ne; i++) {
        lua_createtable(L, 2, 0);
        push_lease(L, o->win->e[i].id);
        lua_rawseti(L, -2, 1);
        lua_pushnumber(L, (lua_Number)(now - o->win->e[i].t) / 1000);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "entries");
    lua_createtable(L, o->win->nl, 0);
    for (int i = 0; i < o->win->nl; i++) {
        lua_createtable(L, 2, 0);
        push_lease(L, o->win->l[i].id);
        lua_rawseti(L, -2, 1);
        lua_pushnumber(L, (lua_Number)(o->win->l[i].end - now) / 1000);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "leases");
    return 1;
}

/* local engine:adopt(lease) -> true: counts a request admitted elsewhere as in flight
 * here from now (whatever the window holds). */
static int l_adopt(lua_State *L)
{
    lquota *o = check_open(L);
    if (!o->win)
        return luaL_error(L, "adopt: only the local engine has it");
    int64_t now = a2g_qclock_ms();
    a2g_qlease l = { check_lease(L, 2), now, now + o->lease_ms, 0, 0 };
    if (a2g_qwin_put_lease(o->win, &l) != 0)
        return luaL_error(L, "out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* engine:close(): idempotent (also __gc and __close); a login in progress ends. */
static int l_close(lua_State *L)
{
    lquota *o = luaL_checkudata(L, 1, QUOTA_MT);
    a2g_qfile_close(o->file);
    a2g_qredis_close(o->redis);
    if (o->win) {
        a2g_qwin_free(o->win);
        free(o->win);
    }
    o->file = NULL;
    o->redis = NULL;
    o->win = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lquota *o = luaL_checkudata(L, 1, QUOTA_MT);
    lua_pushfstring(L, "as2gateway.core.quota (%s)", o->file ? "file" : o->redis ? "redis"
                    : o->win ? "local" : "closed");
    return 1;
}

void a2g_quota_account(const char *url, const char *username, char out[65])
{
    a2g_sha256 h;
    unsigned char d[32];
    a2g_sha256_init(&h);
    a2g_sha256_update(&h, url, strlen(url));
    a2g_sha256_update(&h, "\n", 1);
    a2g_sha256_update(&h, username, strlen(username));
    a2g_sha256_final(&h, d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* core.quota_account(url, username) -> the account's name in a shared backend */
static int l_quota_account(lua_State *L)
{
    char account[65];
    a2g_quota_account(luaL_checkstring(L, 1), luaL_checkstring(L, 2), account);
    lua_pushstring(L, account);
    return 1;
}

/* The client's `quota` option ------------------------------------------------------------- */

static int is_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

a2g_quota *a2g_lquota_option(lua_State *L, int idx, const char *account, int limit,
                             int64_t window_ms)
{
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, idx)))
        return NULL;
    if (t == LUA_TSTRING || t == LUA_TTABLE) {
        /* the options of core.quota_file / core.quota_redis, the window's from rate_limit */
        const char *backend = NULL;
        lua_newtable(L);
        int opts = lua_gettop(L);
        if (t == LUA_TSTRING) {
            const char *v = lua_tostring(L, idx);
            if (is_prefix(v, "file:") && v[5]) {
                backend = "file";
                lua_pushstring(L, v + 5);
                lua_setfield(L, opts, "dir");
            } else if (is_prefix(v, "redis://") || is_prefix(v, "unix://")) {
                backend = "redis";
                lua_pushvalue(L, idx);
                lua_setfield(L, opts, "url");
            } else {
                luaL_error(L, "option 'quota' must be \"file:<folder>\", \"redis://...\", "
                           "\"unix://...\", a table {file = ...} or {redis = ...}, an engine "
                           "(core.quota_file, core.quota_redis) or false");
            }
        } else {
            for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
                const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
                const char *to = k;
                if (strcmp(k, "file") == 0 || strcmp(k, "redis") == 0) {
                    if (backend)
                        luaL_error(L, "option 'quota': give file or redis, not both");
                    backend = k;
                    to = *k == 'f' ? "dir" : "url";
                } else if (strcmp(k, "dir") == 0 || strcmp(k, "url") == 0) {
                    luaL_error(L, "option 'quota': name the backend, {file = folder} or "
                               "{redis = url}");
                }
                lua_pushvalue(L, -1);
                lua_setfield(L, opts, to);
            }
            if (!backend)
                luaL_error(L, "option 'quota': a table needs file = <folder> or redis = <url>");
        }
        lua_getfield(L, opts, "requests");
        if (lua_isnil(L, -1)) {
            lua_pushinteger(L, limit);
            lua_setfield(L, opts, "requests");
        }
        lua_getfield(L, opts, "window");
        if (lua_isnil(L, -1)) {
            lua_pushnumber(L, (lua_Number)window_ms / 1000);
            lua_setfield(L, opts, "window");
        }
        lua_pop(L, 2);
        if (*backend == 'r') {
            lua_getfield(L, opts, "account");
            if (lua_isnil(L, -1)) {
                lua_pushstring(L, account);
                lua_setfield(L, opts, "account");
            }
            lua_pop(L, 1);
        }
        lua_pushcfunction(L, *backend == 'f' ? l_quota_file : l_quota_redis);
        lua_insert(L, opts);
        lua_call(L, 1, 2);
        if (lua_isnil(L, -2)) /* the engine could not open: its error */
            lua_error(L);
        lua_pop(L, 1);
        idx = lua_gettop(L);
    }
    lquota *o = NULL; /* luaL_testudata, which Lua 5.1 lacks */
    if (lua_type(L, idx) == LUA_TUSERDATA && lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, QUOTA_MT);
        if (lua_rawequal(L, -1, -2))
            o = lua_touserdata(L, idx);
        lua_pop(L, 2);
    }
    if (!o)
        luaL_error(L, "option 'quota' must be a string, a table, a quota engine or false");
    if (o->win)
        luaL_error(L, "option 'quota': core.quota_local is this process's window, the "
                   "default (rate_limit)");
    if (!o->file && !o->redis)
        luaL_error(L, "option 'quota': the quota engine is closed");
    /* the client takes the engine over: the object is closed from now on */
    a2g_quota *q = o->file ? a2g_quota_file(o->file) : a2g_quota_redis(o->redis);
    o->file = NULL;
    o->redis = NULL;
    if (t == LUA_TSTRING || t == LUA_TTABLE)
        lua_pop(L, 1); /* the engine this made */
    if (!q)
        luaL_error(L, "out of memory");
    return q;
}

static const luaL_Reg methods[] = {
    { "acquire", l_acquire },
    { "release", l_release },
    { "cancel", l_cancel },
    { "renew", l_renew },
    { "block", l_block },
    { "token", l_token },
    { "set_token", l_set_token },
    { "login", l_login },
    { "login_done", l_login_done },
    { "state", l_state },
    { "events", l_events },
    { "snapshot", l_snapshot },
    { "adopt", l_adopt },
    { "close", l_close },
    { NULL, NULL }
};

static const luaL_Reg functions[] = {
    { "quota_file", l_quota_file },
    { "quota_redis", l_quota_redis },
    { "quota_local", l_quota_local },
    { "quota_account", l_quota_account },
    { NULL, NULL }
};

void a2g_open_quota(lua_State *L)
{
    a2g_new_class(L, QUOTA_MT, methods, l_close, l_tostring);
    luaL_setfuncs(L, functions, 0);
}
