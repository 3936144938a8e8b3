/* The HTTP transport on libcurl's multi interface: one easy handle per client, reused
 * so that its connection and TLS session carry over from call to call, and advanced
 * a step at a time so that a host event loop can interleave other work. No Lua. */
#ifndef A2G_TRANSPORT_H
#define A2G_TRANSPORT_H

#include <stdint.h>

#include <curl/curl.h>

#include "buf.h"
#include "error.h"
#include "stream.h"

typedef struct a2g_transport_opts {
    const char *cainfo;         /* extra trusted CA (PEM); the system's stay trusted */
    const char *proxy;          /* NULL: libcurl's *_proxy environment variables */
    long connect_timeout_ms;
    long timeout_ms;            /* whole transfer; 0: none */
    long low_speed_limit;       /* abort when slower than this many bytes/s ... */
    long low_speed_time;        /* ... for this many seconds */
    const char *user_agent;
} a2g_transport_opts;

/* One HTTP exchange. The caller owns everything it points to. */
typedef struct a2g_xfer {
    const char *method;         /* GET, POST, DELETE */
    const char *url;
    struct curl_slist *headers;
    a2g_source *source;         /* NULL or A2G_SRC_NONE: no body */
    a2g_sink *sink;             /* where a 2xx body goes */
    a2g_buf errbody;            /* where any other body goes (bounded) */
    /* results */
    long status;
    int body_to_sink;           /* decided at the first body byte */
    int sink_failed;            /* the sink refused bytes (limit, disk, callback) */
    CURLcode result;
    curl_off_t request_bytes;   /* request head and body bytes that went out */
    /* the deadline of answers held in memory (JSON, error pages): whole within
     * answer_limit_ms of the status line, or the transfer is cut (answer_timed_out) */
    int64_t answer_limit_ms;    /* 0: none */
    int memory_answer;          /* a 2xx answer goes to memory (any other always does) */
    int64_t answer_started;     /* monotonic ms of the status line; 0: not yet */
    int answer_timed_out;
} a2g_xfer;

/* Progress of the transfer in flight (bytes); return non-zero to abort it. */
typedef int (*a2g_progress_fn)(void *ud, int64_t dl_now, int64_t dl_total, int64_t ul_now,
                               int64_t ul_total);

typedef struct a2g_transport {
    CURLM *multi;
    CURL *easy;
    a2g_progress_fn progress;
    void *progress_ud;
    a2g_xfer *current;
    char *cainfo, *proxy, *user_agent;
    long connect_timeout_ms, timeout_ms, low_speed_limit, low_speed_time;
    char errbuf[CURL_ERROR_SIZE];
} a2g_transport;

int a2g_transport_init(a2g_transport *t, const a2g_transport_opts *o, a2g_error *err);
void a2g_transport_free(a2g_transport *t);
/* Starts `x`; one transfer at a time. */
int a2g_transport_start(a2g_transport *t, a2g_xfer *x, a2g_error *err);
/* Advances the transfer, waiting up to wait_ms for socket activity. Returns 1 when it
 * has finished (x->result and x->status set), 0 while it runs. */
int a2g_transport_step(a2g_transport *t, int wait_ms);
/* Stops the transfer in flight, if any. */
void a2g_transport_abort(a2g_transport *t);
/* A header of the last answer (the last one of that name), or NULL. */
const char *a2g_transport_header(a2g_transport *t, const char *name);
/* The detail libcurl gave for the last failure ("" when none). */
const char *a2g_transport_detail(const a2g_transport *t);

#endif
