/* The decoder of JSON answers: from the answer's bytes straight to Lua values, in one
 * pass, with no intermediate tree and no second walk. It gives the values lua-cjson
 * gave the Lua layer once its numbers were normalised (see ljson.c for the rules),
 * bounded in depth and size: the one place where answers become Lua values, which
 * the next decoder replaces (csrc/fuzz/fuzz_ljson.c holds it against lua-cjson). */
#ifndef A2G_LJSON_H
#define A2G_LJSON_H

#include <stddef.h>

#include "compat.h"

#pragma GCC visibility push(hidden)

/* lua-cjson's default, which the client has always had: arrays and objects nested
 * deeper than this are refused. */
#define A2G_JSON_MAX_DEPTH 1000

typedef struct a2g_json_limits {
    size_t max_bytes;   /* longest text accepted (the client's max_json); 0: any */
    int max_depth;      /* deepest nesting of arrays and objects accepted */
} a2g_json_limits;

/* Decodes the JSON text s[0..n) and pushes its value: returns 0. On malformed or
 * oversized text it pushes nothing, writes the reason (with the byte offset, never
 * the content) into err and returns -1. Like any lua_push*, it raises only when Lua
 * runs out of memory, and then leaks nothing. */
int a2g_push_json(lua_State *L, const char *s, size_t n, const a2g_json_limits *limits,
                  char *err, size_t errlen);

/* Adds core.decode_json(text) -> value | nil, err to the module table on top of the
 * stack: the same decoder, for the Lua layer, the specs and the benchmarks. */
void a2g_open_json(lua_State *L);

#pragma GCC visibility pop

#endif
