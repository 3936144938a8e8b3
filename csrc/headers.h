/* Defensive parsers for the header values a server sends us (the name they carry is
 * made safe by names.h). Pure C (no Lua, no libcurl): every function takes untrusted
 * bytes and is a libFuzzer target. */
#ifndef A2G_HEADERS_H
#define A2G_HEADERS_H

#include <stddef.h>
#include <time.h>

#pragma GCC visibility push(hidden)

/* Retry-After: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850, asctime).
 * Stores the wait in seconds (>= 0, at most cap_s) relative to `now` and returns 0;
 * returns -1 when the value is neither. */
int a2g_parse_retry_after(const char *value, time_t now, long cap_s, long *seconds);

/* X-Batch-Truncation-Index: "(m,a)", spaces allowed around the numbers.
 * Returns 0 and stores both zero-based indexes, or -1. */
int a2g_parse_truncation_index(const char *value, long *message, long *attachment);

/* Link: the gateway sends a bare absolute URL; "<url>; rel=..." is accepted too.
 * Returns a malloc'd http(s) URL without surrounding space, or NULL. */
char *a2g_parse_link(const char *value);

/* Content-Disposition: the file name it carries (filename*=UTF-8''... preferred over
 * filename=...), decoded but NOT sanitised: malloc'd, or NULL when there is none.
 * `len` receives its length (it may hold NUL bytes from %00). */
char *a2g_disposition_filename(const char *value, size_t *len);

#pragma GCC visibility pop

#endif
