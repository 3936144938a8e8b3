/* The client: one account's connection to the gateway, and the life of a request
 * through it - log in when needed, wait for the rate limit, transfer, then decide:
 * done, retry (with backoff, honouring Retry-After), re-authenticate once, follow a
 * same-origin redirect, or fail with a kind. Driven a step at a time (see
 * a2g_request_step) so that the caller owns every wait. No Lua. */
#ifndef A2G_CLIENT_H
#define A2G_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "error.h"
#include "quota.h"
#include "stream.h"
#include "curl_transport.h"
#include "transport.h"
#include "url.h"

typedef struct a2g_event {
    const char *event;     /* request, response, retry, ratelimit_wait, reauth, authorize */
    const char *method;
    const char *path;      /* relative to the base URL, query included; never secrets */
    long status;
    int attempt;           /* 1 for the first try */
    int64_t duration_ms;
    int64_t delay_ms;
    const char *reason;    /* retry: the error kind that caused it */
} a2g_event;

typedef void (*a2g_log_fn)(void *ud, const a2g_event *ev);
typedef int64_t (*a2g_clock_fn)(void *ud);   /* milliseconds, any fixed origin */

typedef struct a2g_client_opts {
    const char *url;
    const char *username, *password;
    const char *token;
    int64_t token_expiry_ms;
    a2g_curl_opts transport;
    int rate_limit;              /* requests per window; 0: off */
    int64_t rate_window_ms;
    /* optional: a rate limiter outside the client (shared between processes, say),
     * asked before every transfer besides the window (see quota.h) */
    a2g_acquire_fn acquire;
    a2g_release_fn release;
    void *quota_ud;
    int retries;                 /* retries after the first attempt */
    int64_t backoff_base_ms, backoff_cap_ms, retry_after_cap_ms;
    size_t max_json;             /* largest in-memory answer */
    int64_t max_download;        /* largest answer written to a file; 0: no limit */
    int64_t json_timeout_ms;     /* an answer held in memory must be whole this long
                                    after its status line; 0: no deadline */
} a2g_client_opts;

typedef struct a2g_stats {
    unsigned long requests;      /* HTTP requests started, /authorize included */
    unsigned long retries;
    unsigned long authorizations;
    unsigned long reauthentications;
    unsigned long ratelimited;   /* 429 answers received */
    unsigned long waits;         /* times a request waited for the rate limit */
    int64_t waited_ms;
} a2g_stats;

struct a2g_request;

typedef struct a2g_client {
    a2g_buf base;
    a2g_origin origin;
    a2g_auth auth;
    a2g_quota *quota[2];         /* the window and the outside limiter, when given */
    int nquota;
    int64_t window_ms;           /* the window's length: a 429 without Retry-After waits it */
    int64_t blocked_until;       /* no request before this (a 429's Retry-After) */
    a2g_transport *transport;
    int retries;
    int64_t backoff_base_ms, backoff_cap_ms, retry_after_cap_ms;
    size_t max_json;
    int64_t max_download;
    int64_t json_timeout_ms;
    a2g_log_fn log;
    void *log_ud;
    a2g_clock_fn clock;
    void *clock_ud;
    a2g_progress_fn progress;    /* optional: progress of transfers */
    void *progress_ud;
    a2g_stats stats;
    uint32_t rng;
    struct a2g_request *active;  /* the request whose transfer is in flight */
} a2g_client;

int a2g_client_init(a2g_client *c, const a2g_client_opts *o, a2g_error *err);
void a2g_client_free(a2g_client *c);

typedef enum { A2G_STEP_DONE, A2G_STEP_SLEEP, A2G_STEP_IO } a2g_step;

/* Logins one request may make: one before it (no token, or one about to expire) and
 * one after a 401 to the token it had. */
#define A2G_MAX_LOGINS 2
/* A step-wise request whose transfer is in flight but that has not been stepped for
 * this long loses the connection to the next request that needs it (a blocking one
 * takes it at once: nothing else of the client can advance while it blocks). */
#define A2G_ABANDON_MS (60 * 1000)

typedef struct a2g_request {
    a2g_client *c;
    char method[8];
    a2g_buf path;                /* "/message/received?pageLength=100" */
    a2g_buf extra;               /* the caller's header lines (transport.h) */
    a2g_source source;
    a2g_sink sink;
    int is_send;                 /* POST /message/...: never resent once it may have arrived */
    int is_login;                /* POST /authorize itself */
    /* state */
    int phase;
    int login_first;
    int used_token;
    int logins;                  /* successful /authorize calls of this request */
    int fresh;                   /* the token held was obtained by this request */
    int attempts;
    int reauthed;
    int redirects;
    int waiting;
    int leased;                  /* slots of the client's quotas held by its transfer */
    uint64_t lease[2];
    int64_t not_before;
    int64_t started;
    a2g_buf url;
    a2g_buf target, login_target; /* where a followed redirect sent it (empty: none) */
    a2g_buf headers;             /* the transfer's header lines: a secret buffer */
    a2g_xfer xfer;
    a2g_source login_body;
    a2g_sink login_answer;
    int callback_failed;         /* set by the binding when a Lua callback raised */
    int blocking;                /* run to its end by one call (perform): it never waits
                                    for another request's transfer */
    int64_t last_step;           /* when it was last stepped with its transfer in flight */
    /* outcome */
    a2g_error err;
    long status;
    char *content_type, *link, *filename;
    size_t filename_len;
    int has_truncation;
    long truncation_message, truncation_attachment;
} a2g_request;

/* A request for `path` (already encoded, starting with '/', query included). */
a2g_request *a2g_request_new(a2g_client *c, const char *method, const char *path,
                             a2g_error *err);
/* A header for this request; names and values with CR, LF or NUL are refused. */
int a2g_request_header(a2g_request *r, const char *name, const char *value, a2g_error *err);
/* Advances the request. IO: a transfer is in flight, call again (after at most
 * *sleep_ms in a non-blocking host); SLEEP: call again after *sleep_ms; DONE: the
 * outcome is in r->err (kind A2G_OK on success) and the fields after it. `wait_ms` is
 * how long this call may block waiting for socket activity (0 for non-blocking). */
a2g_step a2g_request_step(a2g_request *r, int wait_ms, int64_t *sleep_ms);
/* Whether the request has reached its outcome. */
int a2g_request_done(const a2g_request *r);
/* Abandons a request in any state (removing a partial download). */
void a2g_request_free(a2g_request *r);

#endif
