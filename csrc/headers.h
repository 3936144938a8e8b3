/* Defensive parsers for the header values a server sends us, and the file-name
 * sanitiser. Pure C (no Lua, no libcurl): every function takes untrusted bytes and is
 * a libFuzzer target. */
#ifndef A2G_HEADERS_H
#define A2G_HEADERS_H

#include <stddef.h>
#include <time.h>

/* Longest file name the sanitiser produces, in bytes (NAME_MAX on Linux). */
#define A2G_NAME_MAX 255

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

/* Makes a server-supplied name safe as one path component: '/', '\\', NUL and other
 * control bytes become '_', every run of two or more dots becomes '_', a leading dot
 * becomes '_' (no hidden files; "." and ".." included), "" becomes "_", and the
 * result is cut to A2G_NAME_MAX bytes on a UTF-8 boundary.
 * Idempotent. Writes a NUL-terminated name into out (size >= A2G_NAME_MAX + 1) and
 * returns its length. */
size_t a2g_sanitize_filename(const char *in, size_t len, char *out);

#endif
