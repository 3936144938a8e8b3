/* The HTTP exchange as the request state machine (client.c) sees it: start a transfer,
 * advance it a step at a time, read its answer's headers, and know how much of it went
 * out. A small table of functions, as LuaSocket's io.h, so that the state machine never
 * sees libcurl: curl_transport.c is the real one, csrc/test/fake_transport.c a scripted
 * one against which the state machine is tested on its own. The transport moves bytes
 * between the xfer's source and sink and reports what happened; every decision (retry,
 * redirect, re-authenticate, fail) is the client's. Pure C. */
#ifndef A2G_TRANSPORT_H
#define A2G_TRANSPORT_H

#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "stream.h"

#pragma GCC visibility push(hidden)

/* One HTTP exchange. The caller owns everything it points to. */
typedef struct a2g_xfer {
    const char *method;         /* GET, POST, DELETE */
    const char *url;
    const a2g_buf *headers;     /* request header lines "Name: value", each ending in a
                                   NUL byte (a secret buffer: it holds the token) */
    a2g_source *source;         /* NULL or A2G_SRC_NONE: no body */
    a2g_sink *sink;             /* where a 2xx body goes */
    a2g_buf errbody;            /* where any other body goes (its head only) */
    /* the deadline of answers held in memory (JSON, error pages): whole within
     * answer_limit_ms of the status line, or the transfer is cut (answer_timed_out) */
    int64_t answer_limit_ms;    /* 0: none */
    int memory_answer;          /* a 2xx answer goes to memory (any other always does) */
    /* optional: progress in bytes (client.h's a2g_progress_fn); non-zero aborts */
    int (*progress)(void *ud, int64_t dl_now, int64_t dl_total, int64_t ul_now,
                    int64_t ul_total);
    void *progress_ud;
    /* results, set by the transport */
    long status;                /* 0: no answer */
    int body_to_sink;           /* decided at the first body byte */
    int sink_failed;            /* the sink refused bytes (limit, disk, callback) */
    a2g_kind failure;           /* A2G_OK: the exchange completed; else A2G_TIMEOUT,
                                   A2G_TLS or A2G_NETWORK (aborted ones included) */
    const char *reason;         /* with a failure: its short name ("Timeout was reached") */
    char detail[256];           /* with a failure: what the transport said ("" if nothing) */
    int64_t request_bytes;      /* request head and body bytes that went out */
    int64_t answer_started;     /* monotonic ms of the status line; 0: not yet */
    int answer_timed_out;
} a2g_xfer;

/* What a transport implements; `self` is its own state. Up to its `capacity` transfers
 * at once (start fails beyond that: the client never asks). */
typedef struct a2g_transport_ops {
    /* Starts `x` (its sink opened first); 0, or -1 with err set. */
    int (*start)(void *self, a2g_xfer *x, a2g_error *err);
    /* Advances `x` (and every other transfer in flight), waiting up to wait_ms for
     * socket activity: 1 once it has finished (its results set), 0 while it runs. */
    int (*step)(void *self, a2g_xfer *x, int wait_ms);
    /* Stops `x` if it is in flight. */
    void (*abort)(void *self, a2g_xfer *x);
    /* A header of x's answer (the last of that name), or NULL; x is in flight or the
     * last transfer to have ended (before the next starts). */
    const char *(*header)(void *self, a2g_xfer *x, const char *name);
    /* Request bytes of `x` that went out so far (its head included). */
    int64_t (*sent)(void *self, a2g_xfer *x);
    void (*free)(void *self);
} a2g_transport_ops;

typedef struct a2g_transport {
    const a2g_transport_ops *ops;
    void *self;
    int capacity;               /* transfers in flight at once; 0: 1 */
} a2g_transport;

/* Clears the results of `x`: what every transport does as it starts it. */
static inline void a2g_xfer_reset(a2g_xfer *x)
{
    x->status = 0;
    x->body_to_sink = 0;
    x->sink_failed = 0;
    x->failure = A2G_OK;
    x->reason = "";
    x->detail[0] = '\0';
    x->request_bytes = 0;
    x->answer_started = 0;
    x->answer_timed_out = 0;
    a2g_buf_reset(&x->errbody);
}

#pragma GCC visibility pop

#endif
