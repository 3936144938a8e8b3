/* libFuzzer, differential: the core's JSON reader (answers of /authorize and Generic
 * Responses) against lua-cjson, embedded through liblua5.4, as the oracle.
 *
 * Properties, for every input:
 *  - a2g_json_valid says "JSON" exactly when the oracle does (RFC 8259);
 *  - for a top-level object, every member the oracle decodes is found by
 *    a2g_json_string / a2g_json_number with the same bytes or the same number, and a
 *    member of another type is found by neither;
 *  - a string member comes back NUL-terminated with the length reported.
 *
 * lua-cjson (decode_invalid_numbers off, the same depth limit) is held to RFC 8259
 * where it is lax, so that the oracle is the RFC: it stops at a NUL byte, it takes
 * raw control characters inside strings and numbers such as "1." or "-.5" (strtod's
 * reading). A small lexer over the input marks those cases as not JSON. Where our
 * reader goes further than lua-cjson (an escaped lone surrogate is valid JSON text;
 * we read it as U+FFFD), the oracle gets the input with that escape written as
 * \uFFFD, which decodes to the same bytes. */
#include <math.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../json.h"
#include "fuzz.h"

static lua_State *L;

static void oracle_init(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    static const char chunk[] =
        "local j = require('cjson.safe').new()\n"
        "j.decode_invalid_numbers(false)\n"
        "j.decode_max_depth(...)\n"
        "return j.decode\n";
    if (luaL_loadstring(L, chunk) != 0)
        abort();
    lua_pushinteger(L, A2G_JSON_MAX_DEPTH);
    if (lua_pcall(L, 1, 1, 0) != 0)
        abort(); /* lua-cjson missing: apt-get install lua-cjson */
    lua_setglobal(L, "decode");
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of the escape "\uXXXX" at p (6 bytes available), or -1. */
static int unit(const uint8_t *p, size_t left)
{
    if (left < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    int v = 0;
    for (int i = 2; i < 6; i++) {
        int d = hexval(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Copies the input for the oracle with lone surrogate escapes as \uFFFD, and tells
 * whether it holds something lua-cjson takes but RFC 8259 does not. Exact whenever
 * lua-cjson accepts the text (then its strings are where this lexer sees them). */
static int rfc_lax(const uint8_t *in, size_t n, uint8_t *out)
{
    int lax = 0, in_string = 0;
    memcpy(out, in, n);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (in_string) {
            if (c == '"') {
                in_string = 0;
            } else if (c < 0x20) {
                lax = 1; /* a raw control character */
            } else if (c == '\\' && i + 1 < n && in[i + 1] == 'u') {
                int u = unit(in + i, n - i);
                if (u >= 0xD800 && u <= 0xDBFF) {
                    int lo = unit(in + i + 6, n - i - 6);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        i += 11;
                        continue;
                    }
                }
                if (u >= 0xD800 && u <= 0xDFFF)
                    memcpy(out + i, "\\uFFFD", 6);
                i += u >= 0 ? 5 : 1;
            } else if (c == '\\') {
                i++;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '.') {
            /* strtod's "1." and "-.5": the RFC wants digits on both sides */
            if (i == 0 || in[i - 1] < '0' || in[i - 1] > '9' || i + 1 >= n
                || in[i + 1] < '0' || in[i + 1] > '9')
                lax = 1;
        }
    }
    return lax;
}

static void check_members(const char *text, size_t size)
{
    /* the decoded object is on the stack top */
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen);
        if (lua_type(L, -2) != LUA_TSTRING || strlen(key) != klen) {
            lua_pop(L, 1); /* a name with NUL: our API takes C strings */
            continue;
        }
        char *s = NULL;
        size_t slen = 0;
        double d = 0;
        int got_s = a2g_json_string(text, size, key, &s, &slen) == 0;
        int got_d = a2g_json_number(text, size, key, &d) == 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t vlen;
            const char *v = lua_tolstring(L, -1, &vlen);
            FUZZ_ASSERT(got_s && !got_d);
            FUZZ_ASSERT(slen == vlen && memcmp(s, v, vlen) == 0 && s[slen] == '\0');
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            double v = (double)lua_tonumber(L, -1);
            FUZZ_ASSERT(got_d && !got_s);
            FUZZ_ASSERT(d == v && signbit(d) == signbit(v));
        } else {
            FUZZ_ASSERT(!got_s && !got_d);
        }
        free(s);
        lua_pop(L, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!L)
        oracle_init();
    const char *text = (const char *)data;
    uint8_t *copy = malloc(size + 1);
    if (!copy)
        abort();
    int lax = rfc_lax(data, size, copy);
    int has_nul = memchr(data, '\0', size) != NULL;

    int top = lua_gettop(L);
    lua_getglobal(L, "decode");
    lua_pushlstring(L, (const char *)copy, size);
    if (lua_pcall(L, 1, 2, 0) != 0)
        abort();
    int oracle_ok = !(lua_isnil(L, -2) && lua_isstring(L, -1));
    lua_pop(L, 1);
    int oracle_json = oracle_ok && !lax && !has_nul;

    FUZZ_ASSERT(a2g_json_valid(text, size) == oracle_json);

    size_t i = 0;
    while (i < size && strchr(" \t\n\r", data[i]))
        i++;
    if (oracle_json && i < size && data[i] == '{' && lua_istable(L, -1)) {
        check_members(text, size);
        /* a name the object does not have is found by neither reader */
        lua_getfield(L, -1, "token");
        if (lua_isnil(L, -1)) {
            char *s = NULL;
            double d;
            FUZZ_ASSERT(a2g_json_string(text, size, "token", &s, NULL) != 0);
            FUZZ_ASSERT(a2g_json_number(text, size, "token", &d) != 0);
        }
    } else if (!oracle_json) {
        char *s = NULL;
        double d;
        FUZZ_ASSERT(a2g_json_string(text, size, "token", &s, NULL) != 0);
        FUZZ_ASSERT(a2g_json_number(text, size, "expiry", &d) != 0);
    }
    lua_settop(L, top);
    free(copy);
    return 0;
}
