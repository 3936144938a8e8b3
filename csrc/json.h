/* A small, strict reader for the two JSON answers the core itself must understand:
 * {"token": ..., "expiry": ...} from /authorize and the Generic Response {"message"}.
 * Everything else is decoded by lua-cjson in the binding. Pure C. */
#ifndef A2G_JSON_H
#define A2G_JSON_H

#include <stddef.h>

/* Finds member `key` of the top-level object. For a string value, stores a malloc'd,
 * unescaped, NUL-terminated copy (and its length); for a number, stores it. Both
 * return 0, or -1 when the text is not an object, is malformed, or the member is
 * missing or of another type. */
int a2g_json_string(const char *json, size_t len, const char *key, char **out,
                    size_t *outlen);
int a2g_json_number(const char *json, size_t len, const char *key, double *out);

#endif
