/* See url.h. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

static int is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0
        || strcmp(host, "[::1]") == 0)
        return 1;
    /* 127.0.0.0/8, written as a dotted quad */
    int a, b, c, d, n = 0;
    if (sscanf(host, "%d.%d.%d.%d%n", &a, &b, &c, &d, &n) == 4 && host[n] == '\0')
        return a == 127 && b >= 0 && b < 256 && c >= 0 && c < 256 && d >= 0 && d < 256;
    return 0;
}

void a2g_origin_free(a2g_origin *o)
{
    free(o->scheme);
    free(o->host);
    o->scheme = o->host = NULL;
}

static char *part(CURLU *u, CURLUPart what)
{
    char *v = NULL, *copy;
    if (curl_url_get(u, what, &v, 0) != CURLUE_OK || !v)
        return NULL;
    copy = strdup(v);
    curl_free(v);
    return copy;
}

int a2g_url_origin(const char *url, a2g_origin *o)
{
    memset(o, 0, sizeof *o);
    CURLU *u = curl_url();
    if (!u)
        return -1;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        char *port = NULL;
        o->scheme = part(u, CURLUPART_SCHEME);
        o->host = part(u, CURLUPART_HOST);
        if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK && port) {
            o->port = strtol(port, NULL, 10);
            curl_free(port);
        }
        if (o->scheme && o->host) {
            for (char *p = o->scheme; *p; p++) *p = (char)tolower((unsigned char)*p);
            for (char *p = o->host; *p; p++) *p = (char)tolower((unsigned char)*p);
            size_t hl = strlen(o->host);
            if (hl > 2 && o->host[0] == '[' && o->host[hl - 1] == ']') {
                memmove(o->host, o->host + 1, hl - 2);
                o->host[hl - 2] = '\0';
            }
            o->loopback = is_loopback(o->host);
            rc = 0;
        }
    }
    curl_url_cleanup(u);
    if (rc != 0)
        a2g_origin_free(o);
    return rc;
}

int a2g_url_base(const char *url, a2g_origin *o, a2g_buf *normalized, a2g_error *err)
{
    if (strpbrk(url, " \t\r\n") || strchr(url, '?') || strchr(url, '#'))
        return a2g_fail(err, A2G_INVALID, 0, "the url must be a plain base URL like "
                        "https://api.as2gateway.com/v1");
    const char *auth = strstr(url, "://");
    if (auth) {
        auth += 3;
        size_t alen = strcspn(auth, "/");
        if (memchr(auth, '@', alen))
            return a2g_fail(err, A2G_INVALID, 0, "the url must not carry credentials");
    }
    if (a2g_url_origin(url, o) != 0)
        return a2g_fail(err, A2G_INVALID, 0, "the url is not a valid URL");
    if (strcmp(o->scheme, "https") != 0 && !(strcmp(o->scheme, "http") == 0 && o->loopback)) {
        a2g_origin_free(o);
        return a2g_fail(err, A2G_INVALID, 0, "the url must use https:// (http:// is "
                        "accepted for loopback hosts only)");
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (a2g_buf_append(normalized, url, n) != 0) {
        a2g_origin_free(o);
        return a2g_fail(err, A2G_INVALID, 0, "out of memory");
    }
    return 0;
}

char *a2g_url_resolve(const char *base, const char *ref)
{
    char *target = NULL, *copy = NULL;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK
        && curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_URL, &target, 0) == CURLUE_OK && target)
        copy = strdup(target);
    curl_free(target);
    curl_url_cleanup(u);
    return copy;
}

int a2g_url_redirect_allowed(const a2g_origin *base, const char *target)
{
    a2g_origin t;
    if (a2g_url_origin(target, &t) != 0)
        return 0;
    int ok = strcmp(t.scheme, "https") == 0 && strcmp(t.host, base->host) == 0
             && (t.port == base->port || (strcmp(base->scheme, "http") == 0 && base->loopback));
    a2g_origin_free(&t);
    return ok;
}

static int append_escaped(a2g_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            if (a2g_buf_append(b, &s[i], 1) != 0)
                return -1;
        } else {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            if (a2g_buf_append(b, e, 3) != 0)
                return -1;
        }
    }
    return 0;
}

int a2g_url_append_segment(a2g_buf *b, const char *seg, size_t len)
{
    if (a2g_buf_append(b, "/", 1) != 0)
        return -1;
    /* "." and ".." are IDs here, not steps up the path: libcurl and servers remove
     * dot segments, so they go out encoded */
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
        return a2g_buf_append(b, "%2E%2E", 3 * len);
    return append_escaped(b, seg, len);
}

int a2g_url_append_query(a2g_buf *b, const char *name, const char *value, size_t vlen)
{
    if (a2g_buf_append(b, strchr(b->data ? b->data : "", '?') ? "&" : "?", 1) != 0
        || append_escaped(b, name, strlen(name)) != 0 || a2g_buf_append(b, "=", 1) != 0)
        return -1;
    return append_escaped(b, value, vlen);
}
