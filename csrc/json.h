/* A small reader for the two JSON answers the core itself must understand:
 * {"token": ..., "expiry": ...} from /authorize and the Generic Response {"message"}.
 * Everything else is decoded by lua-cjson in the binding. It takes every text of
 * RFC 8259 (any whitespace between tokens, escaped member names, numbers of any
 * length), with two choices where the RFC leaves them to implementations: at most
 * A2G_JSON_MAX_DEPTH nested arrays and objects, and of duplicate member names the
 * last one counts; an escaped lone surrogate (\ud800) reads as U+FFFD. Bytes of
 * strings are taken as they are (no UTF-8 check). csrc/fuzz/fuzz_json.c holds it
 * against lua-cjson. Pure C. */
#ifndef A2G_JSON_H
#define A2G_JSON_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

#define A2G_JSON_MAX_DEPTH 64

/* Whether the `len` bytes at `json` are one JSON text (any value, RFC 8259). */
int a2g_json_valid(const char *json, size_t len);
/* Finds member `key` of the top-level object. For a string value, stores a malloc'd,
 * unescaped, NUL-terminated copy (and its length); for a number, stores it. Both
 * return 0, or -1 when the text is not an object, is malformed, or the member is
 * missing or of another type. */
int a2g_json_string(const char *json, size_t len, const char *key, char **out,
                    size_t *outlen);
int a2g_json_number(const char *json, size_t len, const char *key, double *out);

#pragma GCC visibility pop

#endif
