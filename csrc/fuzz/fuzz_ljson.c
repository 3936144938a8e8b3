/* libFuzzer: the decoder of JSON answers (ljson.c), differentially. Three readings
 * of every input must agree:
 *   - ljson.c itself, in an embedded Lua state;
 *   - the oracle: lua-cjson (Debian's, loaded by require) with strict numbers, and
 *     the normalising walk the Lua layer ran over its result until ljson.c;
 *   - a recogniser of RFC 8259 below (no values, just the grammar, with the string
 *     bytes lua-cjson accepts), which also says why it refused a text.
 * Properties: ljson accepts exactly what the recogniser accepts; whatever it
 * accepts, lua-cjson accepts too and gives the same values (integers may be exact
 * where lua-cjson rounded them through a double); lua-cjson accepts beyond that
 * only where it is known to be lax (it stops at a NUL byte, and its strtod takes
 * "1." and "-.5"). Builds against Lua 5.4 (integers) and LuaJIT (doubles). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../lua/ljson.h"
#include "fuzz.h"

/* The recogniser ----------------------------------------------------------------- */

enum { R_OK, R_INVALID, R_NUMBER_FORM, R_NUL };

typedef struct { const unsigned char *p, *end; int depth, why; } rec;

static int r_fail(rec *r, int why)
{
    if (r->why == R_OK)
        r->why = why;
    return -1;
}

static void r_ws(rec *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int r_hex(rec *r, int at)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        if (r->p + at + i >= r->end)
            return -1;
        int c = r->p[at + i];
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f'
                ? (c | 0x20) - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int r_string(rec *r)
{
    r->p++; /* '"' */
    while (r->p < r->end) {
        unsigned c = *r->p;
        if (c == '"') {
            r->p++;
            return 0;
        }
        if (c == 0)
            return r_fail(r, R_INVALID);
        if (c != '\\') {
            r->p++;
            continue;
        }
        if (r->p + 1 >= r->end)
            return r_fail(r, R_INVALID);
        c = r->p[1];
        if (strchr("\"\\/bfnrt", (int)c) && c) {
            r->p += 2;
            continue;
        }
        if (c != 'u')
            return r_fail(r, R_INVALID);
        int u = r_hex(r, 2);
        if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return r_fail(r, R_INVALID);
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (r->p + 7 >= r->end || r->p[6] != '\\' || r->p[7] != 'u')
                return r_fail(r, R_INVALID);
            int lo = r_hex(r, 8);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return r_fail(r, R_INVALID);
            r->p += 6;
        }
        r->p += 6;
    }
    return r_fail(r, R_INVALID);
}

static int digit(rec *r)
{
    return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; forms strtod also
 * takes ("1.", "-.5", "1.e3") are R_NUMBER_FORM. */
static int r_number(rec *r)
{
    if (*r->p == '-')
        r->p++;
    if (r->p < r->end && *r->p == '.')
        return r_fail(r, R_NUMBER_FORM);
    if (!digit(r))
        return r_fail(r, R_INVALID);
    if (*r->p == '0') {
        r->p++;
        if (digit(r))
            return r_fail(r, R_INVALID); /* lua-cjson refuses leading zeros too */
    } else {
        while (digit(r))
            r->p++;
    }
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!digit(r))
            return r_fail(r, R_NUMBER_FORM);
        while (digit(r))
            r->p++;
    }
    if (r->p < r->end && (*r->p | 0x20) == 'e') {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!digit(r))
            return r_fail(r, R_INVALID);
        while (digit(r))
            r->p++;
    }
    return 0;
}

static int r_value(rec *r);

static int r_container(rec *r, int close, int object)
{
    if (++r->depth > A2G_JSON_MAX_DEPTH)
        return r_fail(r, R_INVALID);
    r->p++;
    r_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return 0;
    }
    for (;;) {
        if (object) {
            r_ws(r);
            if (r->p >= r->end || *r->p != '"' || r_string(r))
                return r_fail(r, R_INVALID);
            r_ws(r);
            if (r->p >= r->end || *r->p != ':')
                return r_fail(r, R_INVALID);
            r->p++;
        }
        if (r_value(r))
            return -1;
        r_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            r->depth--;
            return 0;
        }
        return r_fail(r, R_INVALID);
    }
}

static int r_word(rec *r, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return r_fail(r, R_INVALID);
    r->p += n;
    return 0;
}

static int r_value(rec *r)
{
    r_ws(r);
    if (r->p >= r->end)
        return r_fail(r, R_INVALID);
    switch (*r->p) {
    case '{': return r_container(r, '}', 1);
    case '[': return r_container(r, ']', 0);
    case '"': return r_string(r);
    case 't': return r_word(r, "true");
    case 'f': return r_word(r, "false");
    case 'n': return r_word(r, "null");
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return r_number(r);
        return r_fail(r, R_INVALID);
    }
}

static int recognise(const uint8_t *data, size_t size)
{
    rec r = { data, data + size, 0, R_OK };
    if (r_value(&r) == 0) {
        r_ws(&r);
        if (r.p == r.end)
            return R_OK;
        r_fail(&r, *r.p == 0 ? R_NUL : R_INVALID);
    }
    return r.why;
}

/* The comparison ------------------------------------------------------------------ */

static int same(lua_State *L, int a, int b, int depth);

static int same_number(lua_State *L, int a, int b)
{
    lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
#if LUA_VERSION_NUM >= 503
    int ia = lua_isinteger(L, a), ib = lua_isinteger(L, b);
    if (ia && ib && lua_tointeger(L, a) == lua_tointeger(L, b))
        return 1;
    if (ia)   /* exact where cjson went through a double: the double must match */
        return (lua_Number)lua_tointeger(L, a) == y
               && (!ib || fabs(y) >= 9007199254740992.0);
    if (ib)
        return 0;
#endif
    return x == y && signbit(x) == signbit(y);
}

/* Every key of table a is in b with the same value, and b has no other keys. */
static int same_table(lua_State *L, int a, int b, int depth)
{
    if (depth > A2G_JSON_MAX_DEPTH + 2)
        return 0;
    lua_checkstack(L, 8);
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        count++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int ok = same(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        count--;
        lua_pop(L, 1);
    }
    return count == 0;
}

static int same(lua_State *L, int a, int b, int depth)
{
    int t = lua_type(L, a);
    if (t != lua_type(L, b))
        return 0;
    switch (t) {
    case LUA_TNUMBER: return same_number(L, a, b);
    case LUA_TSTRING: {
        size_t n, m;
        const char *x = lua_tolstring(L, a, &n), *y = lua_tolstring(L, b, &m);
        return n == m && memcmp(x, y, n) == 0;
    }
    case LUA_TBOOLEAN: return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TLIGHTUSERDATA: return lua_touserdata(L, a) == NULL && lua_touserdata(L, b) == NULL;
    case LUA_TTABLE: return same_table(L, a, b, depth);
    default: return 0;
    }
}

/* The harness ---------------------------------------------------------------------- */

/* cjson.safe with strict numbers, then init.lua's normalising walk as it was. */
static const char ORACLE[] =
    "local cjson = require 'cjson.safe'\n"
    "cjson.decode_invalid_numbers(false)\n"
    "local tointeger = math.tointeger\n"
    "local function normalize(v)\n"
    "  if not tointeger then return v end\n"
    "  if type(v) == 'number' then return tointeger(v) or v end\n"
    "  if type(v) == 'table' then\n"
    "    for k, x in pairs(v) do\n"
    "      if type(x) == 'number' then\n"
    "        local i = tointeger(x)\n"
    "        if i then v[k] = i end\n"
    "      elseif type(x) == 'table' then normalize(x) end\n"
    "    end\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "return function(s)\n"
    "  local v, err = cjson.decode(s)\n"
    "  if err then return false end\n"
    "  return true, normalize(v)\n"
    "end\n";

static lua_State *L;
static unsigned long runs;

static void setup(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, ORACLE) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        fprintf(stderr, "fuzz_ljson: the oracle does not load: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "oracle");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        setup();
    int base = lua_gettop(L);
    char err[160];
    a2g_json_limits limits = { 0, A2G_JSON_MAX_DEPTH };
    int mine = a2g_push_json(L, (const char *)data, size, &limits, err, sizeof err) == 0;
    FUZZ_ASSERT(lua_gettop(L) == base + mine);
    if (!mine)
        FUZZ_ASSERT(memchr(err, '\0', sizeof err) != NULL && strstr(err, " at byte "));

    lua_getfield(L, LUA_REGISTRYINDEX, "oracle");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 2, 0) != 0)
        abort(); /* the oracle itself must not raise */
    int theirs = lua_toboolean(L, -2);
    int why = recognise(data, size);

    FUZZ_ASSERT(mine == (why == R_OK));               /* ljson == the grammar */
    if (mine) {
        FUZZ_ASSERT(theirs);                          /* cjson takes all of it */
        FUZZ_ASSERT(same(L, base + 1, lua_gettop(L), 0));
    } else if (theirs) {
        FUZZ_ASSERT(why == R_NUMBER_FORM || why == R_NUL); /* cjson's known laxness */
    }
    lua_settop(L, base);
    if (++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
