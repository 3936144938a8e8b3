/* Error kinds and messages; see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *a2g_kind_name(a2g_kind kind)
{
    static const char *names[] = {
#define A2G_KIND_NAME(id, name) name,
        A2G_KINDS(A2G_KIND_NAME)
#undef A2G_KIND_NAME
    };
    return (unsigned)kind < A2G_KIND_COUNT ? names[kind] : "unknown";
}

int a2g_fail(a2g_error *err, a2g_kind kind, long status, const char *fmt, ...)
{
    va_list ap;
    err->kind = kind;
    err->status = status;
    err->context[0] = '\0';
    err->retry_after = 0;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}
