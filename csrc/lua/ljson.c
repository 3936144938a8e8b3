/* See ljson.h. A recursive-descent parser that pushes each value as it reads it.
 *
 * What it gives (the values the Lua layer always had from lua-cjson plus its
 * normalising walk): objects and arrays are plain tables (an empty array is an empty
 * table), null is lua-cjson's null (a NULL light userdata), duplicate keys keep the
 * last value, strings are the bytes as sent (escapes decoded, \u0000 included; other
 * bytes, invalid UTF-8 and raw control characters alike, passed through as
 * lua-cjson does). On Lua 5.4 a number is an integer when it is a whole number
 * within the 64-bit range (-0 and 1.0 and 1e3 too), otherwise a float; an integer
 * written without fraction or exponent is exact, also beyond 2^53. On LuaJIT every
 * number is the correctly rounded double, -0 staying -0.
 *
 * Where it is stricter than lua-cjson's defaults: numbers follow RFC 8259 (no hex,
 * no leading zeros, no '+', no "1." or ".5", no NaN or Infinity), and the text ends
 * where its bytes end (lua-cjson stopped at a NUL byte and ignored what followed).
 *
 * Why it is fast: tables are presized from the previous sibling at the same depth
 * (the records of a listing share one shape), the key strings of that sibling are
 * reused when the next one's keys are the same bytes, strings without escapes are
 * pushed straight from the input, integers and short decimals are read without
 * strtod. Presizing is speculative, so it draws on a budget in proportion to the
 * input: a hostile text cannot make it allocate more than a few bytes per input byte
 * beyond what its values need. */
#include "ljson.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lerror.h"

#define SHAPE_DEPTHS 16       /* depths (below the top) whose shapes are remembered */
#define SHAPE_KEYS 32         /* keys remembered per object */

typedef struct {
    const char *s;            /* the key's bytes in the input (keys without escapes) */
    size_t len;
    int slot;                 /* its string in the key cache table */
} key_ref;

typedef struct {
    int last_object, last_array;  /* entries of the last one finished at this depth */
    int nkeys;
    key_ref key[SHAPE_KEYS];
} shape;

typedef struct {
    lua_State *L;
    const char *start, *end;
    const char *p;
    int depth, max_depth;
    int cache_idx;            /* stack slot of the key cache table (nil until needed) */
    int nslots;
    int scratch_idx;          /* stack slot of the scratch userdata (nil until needed) */
    char *scratch;
    size_t scratch_cap;
    size_t budget;            /* presized slots that may still go unused */
    const char *why;          /* the error: what, and where */
    const char *where;
    int nshapes;              /* shapes initialised so far */
    shape shapes[SHAPE_DEPTHS];
} parser;

/* Byte classes. */
static const unsigned char STR_STOP[256] = { [0] = 1, ['"'] = 1, ['\\'] = 1 };
static const unsigned char WS[256] = { [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1 };
/* a hex digit's value plus one; 0 for any other byte */
static const unsigned char HEX1[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7,
    ['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
    ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
    ['F'] = 16,
};
static const char ESCAPED[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f', ['n'] = '\n',
    ['r'] = '\r', ['t'] = '\t', ['u'] = 'u',
};

#define IS_DIGIT(c) ((unsigned)((unsigned char)(c) - '0') < 10u)

static int fail(parser *P, const char *where, const char *why)
{
    P->why = why;
    P->where = where;
    return -1;
}

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && WS[(unsigned char)*p])
        p++;
    return p;
}

static shape *shape_at(parser *P, int depth)
{
    /* depth 0 is the top-level value: it has no siblings to learn from */
    if (depth < 1 || depth > SHAPE_DEPTHS)
        return NULL;
    while (P->nshapes < depth) {
        shape *s = &P->shapes[P->nshapes++];
        s->last_object = s->last_array = s->nkeys = 0;
    }
    return &P->shapes[depth - 1];
}

/* A presize hint the budget allows; what goes unused is never given back. */
static int take_hint(parser *P, int hint)
{
    if ((size_t)hint > P->budget)
        hint = (int)P->budget;
    P->budget -= (size_t)hint;
    return hint;
}

static void give_back(parser *P, int hint, int used)
{
    P->budget += (size_t)(used < hint ? used : hint);
}

/* A scratch buffer of at least n bytes, held by a userdata in the parser's stack slot
 * (so that a memory error in Lua leaks nothing). */
static char *scratch(parser *P, size_t n)
{
    if (n > P->scratch_cap) {
        size_t cap = P->scratch_cap ? P->scratch_cap : 256;
        while (cap < n)
            cap = cap > ((size_t)-1) / 2 ? n : cap * 2;
        P->scratch = lua_newuserdata(P->L, cap);
        P->scratch_cap = cap;
        lua_replace(P->L, P->scratch_idx);
    }
    return P->scratch;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = HEX1[(unsigned char)p[i]];
        if (!h)
            return -1;
        v = v << 4 | (h - 1);
    }
    return v;
}

/* Decodes \uXXXX (and its low surrogate, when a high one) at p ("\u...") into o;
 * returns the bytes written, or 0 for an invalid escape (as lua-cjson: a lone
 * surrogate of either half is one). *p moves past what was read. */
static size_t unicode_escape(const char **pp, const char *end, char *o)
{
    const char *p = *pp;
    if (end - p < 6)
        return 0;
    int cp = hex4(p + 2);
    if (cp < 0)
        return 0;
    p += 6;
    if ((cp & 0xF800) == 0xD800) {
        if (cp & 0x400)          /* a low surrogate first */
            return 0;
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
            return 0;
        int lo = hex4(p + 2);
        if (lo < 0 || (lo & 0xFC00) != 0xDC00)
            return 0;
        cp = 0x10000 + ((cp & 0x3FF) << 10 | (lo & 0x3FF));
        p += 6;
    }
    *pp = p;
    unsigned u = (unsigned)cp;
    if (u < 0x80) {
        o[0] = (char)u;
        return 1;
    }
    size_t n = u < 0x800 ? 2 : u < 0x10000 ? 3 : 4;
    static const unsigned char lead[5] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    for (size_t i = n - 1; i > 0; i--) {
        o[i] = (char)(0x80 | (u & 0x3F));
        u >>= 6;
    }
    o[0] = (char)(lead[n] | u);
    return n;
}

/* Reads the string whose opening quote is just before P->p. Its bytes are left in
 * *s, *len: in the input when it has no escapes (*escaped = 0), otherwise decoded
 * into the scratch buffer (valid until the next string). */
static inline const char *string_stop(const char *q, const char *end)
{
    /* eight bytes at a time: the lowest byte flagged by the zero-byte test is exact */
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    while (end - q >= 8) {
        uint64_t v;
        memcpy(&v, q, 8);
        uint64_t a = v ^ (ones * '"'), b = v ^ (ones * '\\');
        uint64_t hit = ((v - ones) & ~v) | ((a - ones) & ~a) | ((b - ones) & ~b);
        hit &= highs;
        if (hit)
            return q + (__builtin_ctzll(hit) >> 3);
        q += 8;
    }
    while (q < end && !STR_STOP[(unsigned char)*q])
        q++;
    return q;
}

static int read_string(parser *P, const char **s, size_t *len, int *escaped)
{
    const char *p = P->p, *end = P->end, *q = string_stop(p, end);
    if (q < end && *q == '"') {
        *s = p;
        *len = (size_t)(q - p);
        *escaped = 0;
        P->p = q + 1;
        return 0;
    }
    /* An escape (or the end, or a NUL): find the closing quote first, so that the
     * scratch buffer is only as large as this string. */
    const char *close = q;
    while (close < end && *close != '"') {
        if (*close == '\0')
            return fail(P, close, "NUL byte in a string");
        if (*close == '\\' && ++close == end)
            break;
        close++;
    }
    if (close >= end)
        return fail(P, p - 1, "unterminated string");
    char *out = scratch(P, (size_t)(close - p));
    size_t n = (size_t)(q - p);
    memcpy(out, p, n);
    while (q < close) {
        char c = *q;
        if (c != '\\') {
            out[n++] = c;
            q++;
            continue;
        }
        char e = ESCAPED[(unsigned char)q[1]];
        if (e == 'u') {
            size_t k = unicode_escape(&q, close, out + n);
            if (!k)
                return fail(P, q, "invalid \\u escape");
            n += k;
        } else if (e) {
            out[n++] = e;
            q += 2;
        } else {
            return fail(P, q, "invalid escape");
        }
    }
    *s = out;
    *len = n;
    *escaped = 1;
    P->p = close + 1;
    return 0;
}

/* The C locale, for strtod_l: the host may have set another LC_NUMERIC. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Numbers the fast paths cannot do exactly: strtod on a NUL-terminated copy. */
static double slow_number(const char *s, size_t n)
{
    char local[64];
    char *buf = n < sizeof local ? local : malloc(n + 1);
    if (!buf)
        return NAN;
    memcpy(buf, s, n);
    buf[n] = '\0';
    pthread_once(&c_locale_once, make_c_locale);
    double d = c_locale ? strtod_l(buf, NULL, c_locale) : strtod(buf, NULL);
    if (buf != local)
        free(buf);
    return d;
}

static const double POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
    1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static void push_double(lua_State *L, double d)
{
#if LUA_VERSION_NUM >= 503
    /* whole and within the integer range: an integer, as math.tointeger would make */
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        lua_Integer i = (lua_Integer)d;
        if ((double)i == d) {
            lua_pushinteger(L, i);
            return;
        }
    }
#endif
    lua_pushnumber(L, d);
}

/* A number at p (its first byte is '-' or a digit), by RFC 8259's grammar. */
static int parse_number(parser *P, const char *p)
{
    const char *start = p, *end = P->end;
    int neg = *p == '-';
    if (neg)
        p++;
    if (p >= end || !IS_DIGIT(*p))
        return fail(P, start, "invalid number");
    uint64_t m = 0;           /* the significant digits, while they fit */
    int sig = 0;              /* digits in m, leading zeros not counted */
    int scale = 0;            /* m * 10^scale is the value, before the exponent */
    int inexact = 0;          /* digits dropped: only strtod can round them */
    if (*p == '0') {
        p++;
        if (p < end && IS_DIGIT(*p))
            return fail(P, start, "invalid number (leading zero)");
    } else {
        do {
            if (sig < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                sig++;
            } else {
                inexact = 1;
                scale += scale < 1000000;
            }
            p++;
        } while (p < end && IS_DIGIT(*p));
    }
    int is_int = 1;
    if (p < end && *p == '.') {
        is_int = 0;
        p++;
        if (p >= end || !IS_DIGIT(*p))
            return fail(P, start, "invalid number (no digit after '.')");
        do {
            if (sig < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                if (m)
                    sig++;
                scale -= scale > -1000000;
            } else if (*p != '0') {
                inexact = 1;
            }
            p++;
        } while (p < end && IS_DIGIT(*p));
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || !IS_DIGIT(*p))
            return fail(P, start, "invalid number (no digit in the exponent)");
        int e = 0;
        do {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        } while (p < end && IS_DIGIT(*p));
        scale += eneg ? -e : e;
    }
    P->p = p;
    lua_State *L = P->L;
    if (is_int && !inexact && m <= (uint64_t)INT64_MAX + neg) {
#if LUA_VERSION_NUM >= 503
        lua_pushinteger(L, neg ? (lua_Integer)(0 - m) : (lua_Integer)m);
#else
        lua_pushnumber(L, neg ? -(double)m : (double)m);
#endif
        return 0;
    }
    double d;
    if (!inexact && m <= (UINT64_C(1) << 53) && scale >= -22 && scale <= 22) {
        /* both operands exact, one rounding: the correctly rounded result */
        d = scale < 0 ? (double)m / POW10[-scale] : (double)m * POW10[scale];
        if (neg)
            d = -d;
    } else {
        d = slow_number(start, (size_t)(p - start));
        if (d != d)
            return fail(P, start, "out of memory reading a number");
    }
    push_double(L, d);
    return 0;
}

static int parse_value(parser *P);

/* Pushes the i-th key of an object at this shape: the previous sibling's string when
 * its bytes are the same, else a new one, remembered for the next sibling. */
static void push_key(parser *P, shape *sh, int i, const char *s, size_t len, int escaped)
{
    lua_State *L = P->L;
    /* remembered keys are a prefix of the sibling's: one with escapes ends it */
    if (!sh || escaped || i >= SHAPE_KEYS || i > sh->nkeys) {
        lua_pushlstring(L, s, len);
        return;
    }
    key_ref *k = &sh->key[i];
    if (i < sh->nkeys && k->len == len && memcmp(k->s, s, len) == 0) {
        lua_rawgeti(L, P->cache_idx, k->slot);
        return;
    }
    if (!P->nslots) {
        lua_createtable(L, 32, 0);
        lua_replace(L, P->cache_idx);
    }
    lua_pushlstring(L, s, len);
    if (i == sh->nkeys) {
        k->slot = ++P->nslots;
        sh->nkeys = i + 1;
    }
    k->s = s;
    k->len = len;
    lua_pushvalue(L, -1);
    lua_rawseti(L, P->cache_idx, k->slot);
}

static int enter(parser *P, const char *at)
{
    if (++P->depth > P->max_depth)
        return fail(P, at, "nested too deeply");
    if (!lua_checkstack(P->L, 4))
        return fail(P, at, "nested too deeply for the Lua stack");
    return 0;
}

/* An object (close '}') or an array (close ']'); P->p is just past its opening. */
static int parse_container(parser *P, char close)
{
    lua_State *L = P->L;
    const char *end = P->end;
    int object = close == '}';
    if (enter(P, P->p - 1))
        return -1;
    shape *sh = shape_at(P, P->depth - 1);
    int hint = sh ? take_hint(P, object ? sh->last_object : sh->last_array) : 0;
    lua_createtable(L, object ? 0 : hint, object ? hint : 0);
    int n = 0;
    const char *p = skip_ws(P->p, end);
    if (p < end && *p == close) {
        P->p = p + 1;
    } else {
        for (;;) {
            if (object) {
                if (p >= end || *p != '"')
                    return fail(P, p, "a key string expected");
                P->p = p + 1;
                const char *ks;
                size_t kl;
                int escaped;
                if (read_string(P, &ks, &kl, &escaped))
                    return -1;
                push_key(P, sh, n, ks, kl, escaped);
                p = skip_ws(P->p, end);
                if (p >= end || *p != ':')
                    return fail(P, p, "':' expected");
                p++;
            }
            P->p = p;
            if (parse_value(P))
                return -1;
            n++;
            if (object)
                lua_rawset(L, -3);
            else
                lua_rawseti(L, -2, n);
            p = skip_ws(P->p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == close) {
                P->p = p + 1;
                break;
            }
            return fail(P, p, object ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    if (sh) {
        give_back(P, hint, n);
        *(object ? &sh->last_object : &sh->last_array) = n;
    }
    P->depth--;
    return 0;
}

static int literal(parser *P, const char *p, const char *word, size_t n)
{
    if ((size_t)(P->end - p) < n || memcmp(p, word, n) != 0)
        return fail(P, p, "unexpected characters");
    P->p = p + n;
    return 0;
}

static int parse_value(parser *P)
{
    lua_State *L = P->L;
    const char *p = skip_ws(P->p, P->end);
    if (p >= P->end)
        return fail(P, p, "a value expected");
    switch (*p) {
    case '{':
    case '[':
        P->p = p + 1;
        return parse_container(P, *p == '{' ? '}' : ']');
    case '"': {
        const char *s;
        size_t len;
        int escaped;
        P->p = p + 1;
        if (read_string(P, &s, &len, &escaped))
            return -1;
        lua_pushlstring(L, s, len);
        return 0;
    }
    case 't':
        if (literal(P, p, "true", 4))
            return -1;
        lua_pushboolean(L, 1);
        return 0;
    case 'f':
        if (literal(P, p, "false", 5))
            return -1;
        lua_pushboolean(L, 0);
        return 0;
    case 'n':
        if (literal(P, p, "null", 4))
            return -1;
        lua_pushlightuserdata(L, NULL); /* lua-cjson's cjson.null */
        return 0;
    default:
        if (*p == '-' || IS_DIGIT(*p))
            return parse_number(P, p);
        return fail(P, p, "unexpected character");
    }
}

int a2g_push_json(lua_State *L, const char *s, size_t n, const a2g_json_limits *limits,
                  char *err, size_t errlen)
{
    if (limits->max_bytes && n > limits->max_bytes) {
        snprintf(err, errlen, "%zu bytes, more than max_json (%zu)", n, limits->max_bytes);
        return -1;
    }
    if (!lua_checkstack(L, 8)) {
        snprintf(err, errlen, "no room on the Lua stack");
        return -1;
    }
    parser P;
    P.L = L;
    P.start = P.p = s;
    P.end = s + n;
    P.depth = 0;
    P.max_depth = limits->max_depth > 0 ? limits->max_depth : A2G_JSON_MAX_DEPTH;
    P.nslots = 0;
    P.scratch = NULL;
    P.scratch_cap = 0;
    P.budget = 1024 + n / 16;
    P.why = P.where = NULL;
    P.nshapes = 0;
    int base = lua_gettop(L);
    lua_pushnil(L);           /* the key cache */
    lua_pushnil(L);           /* the scratch buffer */
    P.cache_idx = base + 1;
    P.scratch_idx = base + 2;
    int rc = parse_value(&P);
    if (rc == 0) {
        const char *q = skip_ws(P.p, P.end);
        if (q < P.end)
            rc = fail(&P, q, "characters after the value");
    }
    if (rc != 0) {
        lua_settop(L, base);
        snprintf(err, errlen, "%s at byte %zu", P.why, (size_t)(P.where - s));
        return -1;
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 0;
}

/* core.decode_json(text) -> value | nil, err (kind "protocol"). */
static int l_decode_json(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    a2g_json_limits limits = { 0, A2G_JSON_MAX_DEPTH };
    char err[160];
    if (a2g_push_json(L, s, n, &limits, err, sizeof err) == 0)
        return 1;
    a2g_error e;
    a2g_fail(&e, A2G_PROTOCOL, 0, "not valid JSON: %s", err);
    return a2g_push_fail(L, &e);
}

void a2g_open_json(lua_State *L)
{
    lua_pushcfunction(L, l_decode_json);
    lua_setfield(L, -2, "decode_json");
}
