/* What may reach a header, a URL or a file path: the one check every such value
 * passes, whoever gave it (an option, a request spec, set_token, the gateway's own
 * /authorize answer), so that no value can forge a header line, cut a path short at
 * a NUL byte or smuggle a space into a URL. Pure C. */
#ifndef A2G_CHECK_H
#define A2G_CHECK_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

typedef enum a2g_text {
    A2G_TEXT_PLAIN,        /* any text handed to C (credentials, names): no NUL */
    A2G_TEXT_PATH,         /* a file path: non-empty, no NUL (C would cut it there) */
    A2G_TEXT_URL,          /* a URL: no NUL, space or control character */
    A2G_TEXT_HEADER_NAME,  /* an HTTP field name: visible ASCII but ':' */
    A2G_TEXT_HEADER,       /* an HTTP field value: no NUL, CR, LF or other control but tab */
    A2G_TEXT_TOKEN,        /* the Authorization value: non-empty, visible ASCII only */
} a2g_text;

/* NULL when the `len` bytes at `s` may be used as `what`; otherwise why not, as a
 * phrase ("holds a NUL byte"). */
const char *a2g_check_text(const char *s, size_t len, a2g_text what);

#pragma GCC visibility pop

#endif
