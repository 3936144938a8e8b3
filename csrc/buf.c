/* Growable byte buffer used for JSON bodies, error bodies and request payloads. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void a2g_buf_init(a2g_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
    b->secret = 0;
}

void a2g_buf_init_secret(a2g_buf *b, size_t limit)
{
    a2g_buf_init(b, limit);
    b->secret = 1;
}

int a2g_buf_append(a2g_buf *b, const void *data, size_t n)
{
    if (b->limit && (n > b->limit || b->len > b->limit - n))
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > ((size_t)-1) / 2)
                return -1;
            cap *= 2;
        }
        char *p;
        if (b->secret) {
            /* realloc would leave the old copy behind, unwiped */
            if (!(p = malloc(cap)))
                return -1;
            if (b->data) {
                memcpy(p, b->data, b->len + 1);
                explicit_bzero(b->data, b->cap);
                free(b->data);
            }
        } else if (!(p = realloc(b->data, cap))) {
            return -1;
        }
        b->data = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int a2g_buf_appends(a2g_buf *b, const char *s)
{
    return a2g_buf_append(b, s, strlen(s));
}

void a2g_buf_reset(a2g_buf *b)
{
    if (b->data) {
        if (b->secret)
            explicit_bzero(b->data, b->len);
        b->data[0] = '\0';
    }
    b->len = 0;
}

void a2g_buf_free(a2g_buf *b)
{
    if (b->data) {
        if (b->secret)
            explicit_bzero(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}
