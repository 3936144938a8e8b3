/* The error kinds of the core, their stable names (err.kind in Lua) and the error
 * record a finished request carries. Kinds are only ever appended. Pure C. */
#ifndef A2G_ERROR_H
#define A2G_ERROR_H

#pragma GCC visibility push(hidden)

#define A2G_KINDS(X)                                                                  \
    X(OK,              "ok")              /* no error */                              \
    X(AUTH,            "auth")            /* authentication failed */                 \
    X(RATELIMITED,     "ratelimited")     /* rate limit exceeded after retries */     \
    X(TIMEOUT,         "timeout")         /* timed out */                             \
    X(NETWORK,         "network")         /* network failure */                       \
    X(TLS,             "tls")             /* TLS failure */                           \
    X(HTTP,            "http")            /* unexpected HTTP status */                \
    X(NOTFOUND,        "notfound")        /* not found */                             \
    X(INVALID,         "invalid")         /* request refused as invalid */            \
    X(UNKNOWN_OUTCOME, "unknown_outcome") /* the outcome of the send is unknown */    \
    X(PROTOCOL,        "protocol")        /* malformed answer from the server */      \
    X(IO,              "io")              /* local file error */                      \
    X(CALLBACK,        "callback")        /* a callback raised an error */            \
    X(REDIRECT,        "redirect")        /* redirect refused */                      \
    X(LOCKED,          "locked")          /* held by another process */               \
    X(INTERRUPTED,     "interrupted")     /* interrupted (Ctrl-C) */

typedef enum a2g_kind {
#define A2G_KIND_ENUM(id, name) A2G_##id,
    A2G_KINDS(A2G_KIND_ENUM)
#undef A2G_KIND_ENUM
    A2G_KIND_COUNT
} a2g_kind;

typedef struct a2g_error {
    a2g_kind kind;
    long status;          /* HTTP status, 0 when there was no answer */
    long retry_after;     /* ratelimited: seconds the gateway asked to wait; 0: none */
    char message[512];    /* the server's message or our description; never secrets */
    char context[160];    /* with the server's message: what failed ("not found"); else "" */
} a2g_error;

const char *a2g_kind_name(a2g_kind kind);
/* Sets the error (printf-style message); returns -1 for `return a2g_fail(...)`. */
int a2g_fail(a2g_error *err, a2g_kind kind, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#pragma GCC visibility pop

#endif
