/* URL policy: which base URLs the client accepts (https, or http on loopback only),
 * how paths and query strings are encoded, and which redirect targets are the same
 * origin. Uses libcurl's URL parser (with curl_transport.c, the only file that includes
 * curl.h); no Lua. */
#ifndef A2G_URL_H
#define A2G_URL_H

#include "buf.h"
#include "error.h"

#pragma GCC visibility push(hidden)

typedef struct a2g_origin {
    char *scheme;   /* "https" or "http" */
    char *host;     /* lower-case; IPv6 without brackets */
    long port;
    int loopback;
} a2g_origin;

/* Validates a base URL (scheme, host, no credentials, query or fragment) and fills
 * `origin`; `normalized` receives it without a trailing slash. */
int a2g_url_base(const char *url, a2g_origin *origin, a2g_buf *normalized, a2g_error *err);
int a2g_url_origin(const char *url, a2g_origin *origin);
void a2g_origin_free(a2g_origin *o);
/* A redirect may be followed when it stays on the base's host over HTTPS: the same
 * origin, or the upgrade of a loopback http base to https on the same host. */
int a2g_url_redirect_allowed(const a2g_origin *base, const char *target);
/* The absolute URL that `ref` (a Location header) names, read against `base`: malloc'd,
 * or NULL when either cannot be parsed. */
char *a2g_url_resolve(const char *base, const char *ref);
/* Appends "/" and the percent-encoded segment (everything but unreserved bytes). */
int a2g_url_append_segment(a2g_buf *b, const char *seg, size_t len);
/* Appends "name=value" percent-encoded, preceded by '?' or '&'. */
int a2g_url_append_query(a2g_buf *b, const char *name, const char *value, size_t vlen);

#pragma GCC visibility pop

#endif
