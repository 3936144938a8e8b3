/* A growable byte buffer with an optional size cap; pure C, no Lua. */
#ifndef A2G_BUF_H
#define A2G_BUF_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

typedef struct a2g_buf {
    char *data;     /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t limit;   /* 0: unbounded */
    int secret;     /* holds a password or a token: wiped whenever its bytes are let go */
} a2g_buf;

void a2g_buf_init(a2g_buf *b, size_t limit);
/* A buffer for secrets (the login body, the /authorize answer, error pages that may
 * echo them): its bytes are wiped with explicit_bzero when it is reset, grows or is
 * freed. Answers and paths are not wiped: that cost is on every request. */
void a2g_buf_init_secret(a2g_buf *b, size_t limit);
/* 0 on success; -1 when out of memory or past the limit (nothing appended). */
int a2g_buf_append(a2g_buf *b, const void *data, size_t n);
int a2g_buf_appends(a2g_buf *b, const char *s);
void a2g_buf_reset(a2g_buf *b);
void a2g_buf_free(a2g_buf *b);

#pragma GCC visibility pop

#endif
