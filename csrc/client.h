/* The client: one account's connection to the gateway, and the life of a request
 * through it - log in when needed, wait for Retry-After and the quota, transfer, then
 * decide: done, retry (with backoff), re-authenticate once, follow a same-origin
 * redirect, or fail with a kind. Driven a step at a time (a2g_request_step) so that the
 * caller owns every wait. The public face of the core: the handles are opaque, and the
 * binding needs no header behind this one. No Lua. */
#ifndef A2G_CLIENT_H
#define A2G_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "connection.h"
#include "error.h"

#pragma GCC visibility push(hidden)

typedef struct a2g_client a2g_client;
typedef struct a2g_request a2g_request;
struct a2g_transport;

typedef struct a2g_event {
    const char *event;     /* request, response, retry, ratelimit_wait, reauth, authorize,
                              token_shared, login_wait, and the quota backend's own
                              (quota_fallback, quota_redis: reason says why) */
    const char *method;
    const char *path;      /* relative to the base URL, query included; never secrets */
    long status;
    int attempt;           /* 1 for the first try */
    int64_t duration_ms;
    int64_t delay_ms;
    const char *reason;    /* retry: the error kind that caused it */
} a2g_event;

/* The host's callbacks, all optional, all given `hook_ud`. */
typedef int64_t (*a2g_clock_fn)(void *ud);   /* milliseconds, any fixed origin */
typedef void (*a2g_log_fn)(void *ud, const a2g_event *ev);
/* Progress of a transfer (bytes); non-zero aborts it. */
typedef int (*a2g_progress_fn)(void *ud, int64_t dl_now, int64_t dl_total, int64_t ul_now,
                               int64_t ul_total);
/* An outside rate limiter (shared between processes, say): acquire is asked before
 * every transfer and returns 0 (go: a slot is taken) or the ms to wait; release gives
 * the slot back with the time the transfer ended. */
typedef int64_t (*a2g_acquire_fn)(void *ud);
typedef void (*a2g_release_fn)(void *ud, int64_t ended_ms);

typedef struct a2g_client_opts {
    const char *url;
    const char *username, *password;
    const char *token;
    int64_t token_expiry_ms;
    a2g_connection_opts conn;    /* for the transport */
    /* the quota and the retries */
    int rate_limit;              /* requests per window; 0: off */
    int64_t rate_window_ms;
    int retries;                 /* retries after the first attempt */
    int64_t backoff_base_ms, backoff_cap_ms, retry_after_cap_ms;
    /* the bounds of answers */
    size_t max_json;             /* largest in-memory answer */
    int64_t max_download;        /* largest answer written to a file; 0: no limit */
    int64_t json_timeout_ms;     /* an answer held in memory must be whole this long
                                    after its status line; 0: no deadline */
    /* the host's callbacks */
    void *hook_ud;
    a2g_clock_fn clock;          /* NULL: the monotonic clock */
    a2g_log_fn log;
    a2g_progress_fn progress;
    a2g_acquire_fn acquire;      /* with release, or neither */
    a2g_release_fn release;
    /* A quota backend shared with other processes (quota.h: a2g_quota_file,
     * a2g_quota_redis), in place of the rate_limit window; the client takes it over
     * (also when a2g_client_new fails). It also shares the token: one process logs in,
     * under the backend's login lock, and the others take its token. */
    struct a2g_quota *quota;
} a2g_client_opts;

typedef struct a2g_stats {
    unsigned long requests;      /* HTTP requests started, /authorize included */
    unsigned long retries;
    unsigned long authorizations;
    unsigned long reauthentications;
    unsigned long ratelimited;   /* 429 answers received */
    unsigned long waits;         /* times a request waited for the rate limit */
    int64_t waited_ms;
    unsigned long tokens_shared; /* tokens taken from the quota backend (another's login) */
    unsigned long login_waits;   /* times a request waited for another process's login */
} a2g_stats;

/* The quota backend: what it is ("window", "hooks", "file", "redis", "none") and its
 * mode (Redis: "redis", "fallback", "dual"), from the backend itself. */
struct a2g_quota_state;
void a2g_client_quota_state(const a2g_client *c, struct a2g_quota_state *st);

/* The process-wide set-up of the transport, once, before the first client: 0 or -1. */
int a2g_client_global_init(void);
/* A client over `transport` (NULL: libcurl's; the client owns it from now on), or NULL
 * with err set (an invalid option is A2G_INVALID). */
a2g_client *a2g_client_new(const a2g_client_opts *o, struct a2g_transport *transport,
                           a2g_error *err);
void a2g_client_free(a2g_client *c);

const a2g_stats *a2g_client_stats(const a2g_client *c);
/* The base URL, without a trailing slash. */
const char *a2g_client_base(const a2g_client *c);
/* The token held (NULL: none), its expiry (ms since the epoch by our clock; 0: unknown)
 * and whether the client would use it at `now_wall_ms` (not once renewal is due). */
const char *a2g_client_token(const a2g_client *c, int64_t *expiry_ms, int *usable,
                             int64_t now_wall_ms);
/* Holds `token` from now on, expiry as a caller gives it (see auth.h); -1: no memory. */
int a2g_client_set_token(a2g_client *c, const char *token, double expiry,
                         int64_t now_wall_ms);
/* Whether the client has a username and password to log in with. */
int a2g_client_can_login(const a2g_client *c);

typedef enum { A2G_STEP_DONE, A2G_STEP_SLEEP, A2G_STEP_IO } a2g_step;

/* Logins one request may make: one before it (no token, or one about to expire) and
 * one after a 401 to the token it had. */
#define A2G_MAX_LOGINS 2
/* When every transfer handle of the client is busy (max_transfers), a step-wise request
 * whose transfer is in flight but that has not been stepped for this long loses its
 * handle to the next request that needs one (a blocking one takes it at once). */
#define A2G_ABANDON_MS (60 * 1000)
/* The most transfers a client runs at once (its max_transfers option). */
#define A2G_MAX_TRANSFERS 64

enum {
    A2G_REQUEST_SEND = 1,        /* enqueues a message: never resent once it may have
                                    reached the gateway */
    A2G_REQUEST_LOGIN = 2,       /* POST /authorize itself (no path) */
};

/* A request (GET, POST or DELETE; `flags` of the enum above), or NULL with err set.
 * Its path comes next, then anything else; a2g_request_step starts it. */
a2g_request *a2g_request_new(a2g_client *c, const char *method, int flags, a2g_error *err);
/* The path, relative to the base URL: segments, each percent-encoded ("." and ".."
 * go out as %2E so that they reach the gateway as IDs), or one path already encoded
 * (refused, -1, unless it starts with '/' and holds only unreserved characters,
 * escapes and no "." or ".." segment); then query parameters, percent-encoded in the
 * order given. -1: refused or out of memory. */
int a2g_request_segment(a2g_request *r, const char *seg, size_t len);
int a2g_request_encoded_path(a2g_request *r, const char *path, size_t len);
int a2g_request_query(a2g_request *r, const char *name, const char *value, size_t vlen);
/* A header; names and values with CR, LF or NUL are refused (err set). */
int a2g_request_header(a2g_request *r, const char *name, const char *value, a2g_error *err);

/* The body, one of: bytes (copied), a file (its size measured now; one that changes
 * while it is sent fails the request), a reader (sent chunked; `fn` fills up to n bytes
 * and returns how many, 0 at the end, or sets *failed), or pieces of a known total
 * length (bytes and files, in order: a multipart upload). */
typedef size_t (*a2g_reader_fn)(void *ud, char *buf, size_t n, int *failed);
int a2g_request_body(a2g_request *r, const char *data, size_t len, a2g_error *err);
int a2g_request_body_file(a2g_request *r, const char *path, a2g_error *err);
void a2g_request_body_reader(a2g_request *r, a2g_reader_fn fn, void *ud);
void a2g_request_body_pieces(a2g_request *r);
int a2g_request_add_data(a2g_request *r, const char *data, size_t len, a2g_error *err);
int a2g_request_add_file(a2g_request *r, const char *path, a2g_error *err);

/* Where a 2xx answer goes, one of: memory (the default, at most max_json), a file
 * (written beside it and renamed into place once whole; no_clobber: never replacing
 * one), a folder (under the sanitised name the gateway gives, never replacing a file),
 * or a writer (`fn` takes n bytes; -1 aborts the transfer). */
typedef int (*a2g_writer_fn)(void *ud, const char *data, size_t n);
int a2g_request_to_file(a2g_request *r, const char *path, int no_clobber, a2g_error *err);
int a2g_request_to_dir(a2g_request *r, const char *dir, a2g_error *err);
void a2g_request_to_writer(a2g_request *r, a2g_writer_fn fn, void *ud);

/* Advances the request. IO: a transfer is in flight, call again (after at most
 * *sleep_ms in a non-blocking host); SLEEP: call again after *sleep_ms; DONE: see
 * a2g_request_outcome. `wait_ms` is how long this call may block waiting for socket
 * activity (0 for non-blocking). `blocking`: the caller runs the request to its end and
 * nothing else of the client advances meanwhile, so it takes the connection at once
 * from a step-wise request left in flight. */
a2g_step a2g_request_step(a2g_request *r, int wait_ms, int blocking, int64_t *sleep_ms);
/* Whether the request has reached its outcome. */
int a2g_request_done(const a2g_request *r);
/* Ends the request now with A2G_INTERRUPTED (a trapped SIGINT, interrupt.h): its
 * transfer stopped, its quota slot handed back, a partial download removed; a send
 * that may have reached the gateway says so in the message. */
void a2g_request_interrupt(a2g_request *r);
/* Bounds the call: it ends within deadline_ms (0: no deadline) from now, rate-limit
 * waits, retries and transfers included (then A2G_TIMEOUT, A2G_RATELIMITED when it was
 * waiting for the rate limit, A2G_UNKNOWN_OUTCOME for a send stopped after its body may
 * have gone out); a wait for the rate limit that would pass the deadline, or any wait
 * for it with `fail_fast`, ends it at once with A2G_RATELIMITED and err.retry_after. */
void a2g_request_limits(a2g_request *r, int64_t deadline_ms, int fail_fast);
/* A callback of the host (a writer or reader) failed: the request ends with
 * A2G_CALLBACK, the host raises its own error. */
void a2g_request_callback_failed(a2g_request *r);

typedef struct a2g_outcome {
    long status;
    const char *content_type, *link;      /* NULL when the answer had none */
    const char *filename;                 /* Content-Disposition's, decoded but not
                                             sanitised (it may hold NUL bytes) */
    size_t filename_len;
    int has_truncation;                   /* a 206 batch: where it was cut */
    long truncation_message, truncation_attachment;
    int64_t bytes;                        /* of the answer's body */
    const char *path;                     /* a file or folder answer: where it is */
    const char *body;                     /* a memory answer (NUL-terminated) */
    size_t body_len;
} a2g_outcome;

/* A finished request's error (kind A2G_OK on success) and, on success, its answer in
 * `out` (owned by the request). */
const a2g_error *a2g_request_outcome(const a2g_request *r, a2g_outcome *out);
/* Abandons a request in any state (removing a partial download). */
void a2g_request_free(a2g_request *r);

#pragma GCC visibility pop

#endif
