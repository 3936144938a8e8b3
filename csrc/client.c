/* The request state machine; see client.h. A request is IDLE (about to start a
 * transfer: its own, or /authorize first), RUNNING (a transfer in flight) or DONE. */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "check.h"
#include "clock.h"
#include "curl_transport.h"
#include "headers.h"
#include "json.h"
#include "quota.h"
#include "stream.h"
#include "transport.h"
#include "url.h"

enum { IDLE, RUNNING, DONE };

#define MAX_REDIRECTS 5

struct a2g_client {
    a2g_buf base;
    a2g_origin origin;
    a2g_auth auth;
    a2g_quota *quota[2];         /* the window (or a shared backend) and the outside
                                    limiter, when given */
    int nquota;
    a2g_quota *shared;           /* the one that shares the token, if any */
    uint64_t refused;            /* digest of the last token the gateway refused */
    int64_t window_ms;           /* the window's length: a 429 without Retry-After waits it */
    int64_t blocked_until;       /* no request before this (a 429's Retry-After) */
    a2g_transport *transport;
    int retries;
    int64_t backoff_base_ms, backoff_cap_ms, retry_after_cap_ms;
    size_t max_json;
    int64_t max_download;
    int64_t json_timeout_ms;
    void *hook_ud;
    a2g_clock_fn clock;
    a2g_log_fn log;
    a2g_progress_fn progress;
    a2g_stats stats;
    uint32_t rng;
    a2g_request *running[A2G_MAX_TRANSFERS]; /* the requests whose transfer is in flight */
    int nrunning;
    int capacity;                /* transfers the transport takes at once */
};

struct a2g_request {
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
    int login_lock;              /* it holds the shared backend's login lock */
    int64_t login_wait_until;    /* waits for another process's login until then */
    uint64_t lease[2];
    int64_t not_before;
    int64_t started;
    a2g_buf url;
    a2g_buf target, login_target; /* where a followed redirect sent it (empty: none) */
    a2g_buf headers;             /* the transfer's header lines: a secret buffer */
    a2g_xfer xfer;
    a2g_source login_body;
    a2g_sink login_answer;
    int callback_failed;         /* a callback of the host failed (its error is its own) */
    int blocking;                /* run to its end by one call (perform): it never waits
                                    for another request's transfer */
    int64_t last_step;           /* when it was last stepped with its transfer in flight */
    int in_flight;               /* its transfer is in flight (one of c->running) */
    int64_t out_bytes;           /* of its own last transfer (not a login's) that went out */
    int64_t deadline;            /* the call ends by then (client clock ms); 0: none */
    int fail_fast;               /* a wait for the rate limit ends the call at once */
    /* outcome */
    a2g_error err;
    a2g_outcome out;             /* its strings are the request's (freed with it) */
};

static int64_t mono_ms(void *ud)
{
    (void)ud;
    return a2g_mono_ms();
}

static int64_t now_ms(a2g_client *c)
{
    return c->clock(c->hook_ud);
}

static uint32_t next_random(a2g_client *c)
{
    uint32_t x = c->rng; /* xorshift32: jitter needs spread, not secrecy */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return c->rng = x ? x : 0x9e3779b9u;
}

int a2g_client_global_init(void)
{
    return a2g_curl_global_init();
}

a2g_client *a2g_client_new(const a2g_client_opts *o, a2g_transport *transport,
                           a2g_error *err)
{
    a2g_client *c = calloc(1, sizeof *c);
    if (!c) {
        if (transport)
            transport->ops->free(transport->self);
        a2g_quota_free(o->quota);
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    if (o->quota) {
        c->quota[c->nquota++] = o->quota; /* the client's from now on */
        if (o->quota->ops->token && o->quota->ops->login)
            c->shared = o->quota;
    }
    a2g_buf_init(&c->base, 0);
    c->transport = transport;
    c->hook_ud = o->hook_ud;
    c->clock = o->clock ? o->clock : mono_ms;
    c->log = o->log;
    c->progress = o->progress;
    c->rng = (uint32_t)a2g_wall_ms() ^ (uint32_t)getpid() ^ (uint32_t)(uintptr_t)c;
    c->retries = o->retries;
    c->backoff_base_ms = o->backoff_base_ms;
    c->backoff_cap_ms = o->backoff_cap_ms;
    c->retry_after_cap_ms = o->retry_after_cap_ms;
    c->max_json = o->max_json;
    c->max_download = o->max_download;
    c->json_timeout_ms = o->json_timeout_ms;
    const char *why;
    if (o->token && (why = a2g_check_text(o->token, strlen(o->token), A2G_TEXT_TOKEN))) {
        a2g_fail(err, A2G_INVALID, 0, "the token %s", why);
        goto fail;
    }
    if (o->conn.user_agent && (why = a2g_check_text(o->conn.user_agent,
                                                    strlen(o->conn.user_agent),
                                                    A2G_TEXT_HEADER))) {
        a2g_fail(err, A2G_INVALID, 0, "the user_agent %s", why);
        goto fail;
    }
    if (a2g_url_base(o->url, &c->origin, &c->base, err) != 0)
        goto fail;
    if (a2g_auth_init(&c->auth, o->username, o->password, o->token, o->token_expiry_ms,
                      a2g_wall_ms()) != 0) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        goto fail;
    }
    c->window_ms = o->rate_window_ms;
    if (o->rate_limit > 0 && !o->quota)
        c->quota[c->nquota++] = a2g_quota_window(o->rate_limit, o->rate_window_ms);
    if (o->acquire)
        c->quota[c->nquota++] = a2g_quota_hooks(o->acquire, o->release, o->hook_ud);
    for (int i = 0; i < c->nquota; i++)
        if (!c->quota[i]) {
            a2g_fail(err, A2G_IO, 0, "out of memory");
            goto fail;
        }
    if (!c->transport && !(c->transport = a2g_curl_transport(&o->conn, err)))
        goto fail;
    c->capacity = c->transport->capacity < 1 ? 1
                  : c->transport->capacity > A2G_MAX_TRANSFERS ? A2G_MAX_TRANSFERS
                                                                : c->transport->capacity;
    return c;
fail:
    a2g_client_free(c);
    return NULL;
}

void a2g_client_free(a2g_client *c)
{
    if (!c)
        return;
    if (c->transport) {
        for (int i = 0; i < c->nrunning; i++) {
            c->transport->ops->abort(c->transport->self, &c->running[i]->xfer);
            c->running[i]->in_flight = 0;
        }
        c->transport->ops->free(c->transport->self);
        c->transport = NULL;
    }
    c->nrunning = 0;
    for (int i = 0; i < c->nquota; i++)
        a2g_quota_free(c->quota[i]); /* NULL-safe */
    c->nquota = 0;
    a2g_auth_free(&c->auth);
    a2g_origin_free(&c->origin);
    a2g_buf_free(&c->base);
    free(c);
}

const a2g_stats *a2g_client_stats(const a2g_client *c)
{
    return &c->stats;
}

void a2g_client_quota_state(const a2g_client *c, a2g_quota_state *st)
{
    memset(st, 0, sizeof *st);
    st->backend = st->mode = "none";
    if (c->nquota && c->quota[0]->ops->state)
        c->quota[0]->ops->state(c->quota[0]->self, st);
    else if (c->nquota)
        st->backend = st->mode = "hooks";
}

const char *a2g_client_base(const a2g_client *c)
{
    return c->base.data;
}

const char *a2g_client_token(const a2g_client *c, int64_t *expiry_ms, int *usable,
                             int64_t now_wall_ms)
{
    *expiry_ms = c->auth.expiry_ms;
    *usable = c->auth.token && a2g_auth_valid(&c->auth, now_wall_ms);
    return c->auth.token;
}

int a2g_client_set_token(a2g_client *c, const char *token, double expiry,
                         int64_t now_wall_ms)
{
    return a2g_auth_set(&c->auth, token, expiry, now_wall_ms);
}

int a2g_client_can_login(const a2g_client *c)
{
    return a2g_auth_can_login(&c->auth);
}

/* Whether the request's transfer is in flight: it joins or leaves c->running. */
static void set_running(a2g_request *r, int on)
{
    a2g_client *c = r->c;
    if (on && !r->in_flight) {
        c->running[c->nrunning++] = r;
        r->in_flight = 1;
    } else if (!on && r->in_flight) {
        for (int i = 0; i < c->nrunning; i++)
            if (c->running[i] == r) {
                c->running[i] = c->running[--c->nrunning];
                break;
            }
        r->in_flight = 0;
    }
}

static void emit(a2g_request *r, const char *event, long status, int64_t duration,
                 int64_t delay, const char *reason)
{
    a2g_client *c = r->c;
    if (!c->log)
        return;
    a2g_event ev = { event, r->method, r->path.data, status, r->attempts + 1, duration,
                     delay, reason };
    if (r->is_login || r->login_first) {
        ev.method = "POST";
        ev.path = "/authorize";
    }
    c->log(c->hook_ud, &ev);
}

a2g_request *a2g_request_new(a2g_client *c, const char *method, int flags, a2g_error *err)
{
    a2g_request *r = calloc(1, sizeof *r);
    if (!r) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    r->c = c;
    snprintf(r->method, sizeof r->method, "%s", method);
    a2g_buf_init(&r->path, 0);
    a2g_buf_init(&r->url, 0);
    a2g_buf_init(&r->target, 0);
    a2g_buf_init(&r->login_target, 0);
    a2g_buf_init(&r->extra, 0);
    a2g_buf_init_secret(&r->headers, 0); /* the token */
    a2g_buf_init_secret(&r->xfer.errbody, 0); /* a gateway may echo what it was sent */
    a2g_source_none(&r->source);
    a2g_source_none(&r->login_body);
    a2g_sink_memory(&r->sink, c->max_json);
    a2g_sink_memory(&r->login_answer, 64 * 1024);
    r->login_answer.mem.secret = 1; /* the token */
    r->is_send = (flags & A2G_REQUEST_SEND) != 0;
    r->is_login = (flags & A2G_REQUEST_LOGIN) != 0;
    if (r->is_login && a2g_buf_appends(&r->path, "/authorize") != 0) {
        a2g_request_free(r);
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    r->phase = IDLE;
    return r;
}

int a2g_request_segment(a2g_request *r, const char *seg, size_t len)
{
    return a2g_url_append_segment(&r->path, seg, len);
}

/* An encoded path: '/' first, unreserved characters and escapes only, and no "." or
 * ".." segment (libcurl and servers would remove it: the request would go elsewhere). */
static int valid_path(const char *p, size_t len)
{
    if (len == 0 || *p != '/' || a2g_check_text(p, len, A2G_TEXT_URL))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || strchr("/-._~%", c)))
            return 0;
        if (c == '/') {
            size_t seg = strcspn(p + i + 1, "/");
            if ((seg == 1 && p[i + 1] == '.') || (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
                return 0;
        }
    }
    return 1;
}

int a2g_request_encoded_path(a2g_request *r, const char *path, size_t len)
{
    return valid_path(path, len) ? a2g_buf_append(&r->path, path, len) : -1;
}

int a2g_request_query(a2g_request *r, const char *name, const char *value, size_t vlen)
{
    return a2g_url_append_query(&r->path, name, value, vlen);
}

int a2g_request_body(a2g_request *r, const char *data, size_t len, a2g_error *err)
{
    return a2g_source_memory(&r->source, data, len, err);
}

int a2g_request_body_file(a2g_request *r, const char *path, a2g_error *err)
{
    return a2g_source_file(&r->source, path, err);
}

void a2g_request_body_reader(a2g_request *r, a2g_reader_fn fn, void *ud)
{
    a2g_source_reader(&r->source, fn, ud);
}

void a2g_request_body_pieces(a2g_request *r)
{
    a2g_source_pieces(&r->source);
}

int a2g_request_add_data(a2g_request *r, const char *data, size_t len, a2g_error *err)
{
    return a2g_source_add_data(&r->source, data, len, err);
}

int a2g_request_add_file(a2g_request *r, const char *path, a2g_error *err)
{
    return a2g_source_add_file(&r->source, path, err);
}

int a2g_request_to_file(a2g_request *r, const char *path, int no_clobber, a2g_error *err)
{
    a2g_sink_free(&r->sink);
    return a2g_sink_file(&r->sink, path, no_clobber, err);
}

int a2g_request_to_dir(a2g_request *r, const char *dir, a2g_error *err)
{
    a2g_sink_free(&r->sink);
    return a2g_sink_dir(&r->sink, dir, err);
}

void a2g_request_to_writer(a2g_request *r, a2g_writer_fn fn, void *ud)
{
    a2g_sink_free(&r->sink);
    a2g_sink_writer(&r->sink, fn, ud);
}

void a2g_request_limits(a2g_request *r, int64_t deadline_ms, int fail_fast)
{
    r->deadline = deadline_ms > 0 ? now_ms(r->c) + deadline_ms : 0;
    r->fail_fast = fail_fast != 0;
}

void a2g_request_callback_failed(a2g_request *r)
{
    r->callback_failed = 1;
}

/* Appends the header line "name: value" and its NUL byte to a list (transport.h). */
static int add_header(a2g_buf *list, const char *name, const char *value)
{
    return a2g_buf_appends(list, name) || a2g_buf_append(list, ": ", 2)
           || a2g_buf_appends(list, value) || a2g_buf_append(list, "", 1);
}

int a2g_request_header(a2g_request *r, const char *name, const char *value, a2g_error *err)
{
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p == ':' || *p >= 0x7f)
            return a2g_fail(err, A2G_INVALID, 0, "invalid header name");
    if (!*name || strpbrk(value, "\r\n"))
        return a2g_fail(err, A2G_INVALID, 0, "header %s must not contain CR or LF", name);
    if (strcasecmp(name, "Authorization") == 0)
        return a2g_fail(err, A2G_INVALID, 0, "the Authorization header is the client's own");
    if (add_header(&r->extra, name, value) != 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    return 0;
}

/* Replaces secrets that a server might echo back with a marker. */
static void redact(a2g_client *c, char *msg)
{
    const char *secrets[] = { c->auth.token, c->auth.password };
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++) {
        const char *s = secrets[i];
        size_t n = s ? strlen(s) : 0;
        char *hit;
        if (n < 4)
            continue;
        while ((hit = strstr(msg, s))) {
            static const char mark[] = "[redacted]";
            size_t tail = strlen(hit + n);
            if (n >= sizeof mark - 1) {
                memcpy(hit, mark, sizeof mark - 1);
                memmove(hit + sizeof mark - 1, hit + n, tail + 1);
            } else {
                memset(hit, '*', n);
            }
        }
    }
}

/* Fails the request with the server's Generic Response message when there is one. */
static void fail_with_answer(a2g_request *r, a2g_kind kind, const char *what)
{
    a2g_xfer *x = &r->xfer;
    char *msg = NULL;
    size_t len = 0;
    if (x->errbody.len && a2g_json_string(x->errbody.data, x->errbody.len, "message", &msg,
                                          &len) == 0 && len > 0) {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)msg[i] < 0x20)
                msg[i] = ' ';
        /* before it is cut to length: a secret cut in half would escape redaction */
        redact(r->c, msg);
        /* err.message is the gateway's own text; what failed goes beside it */
        a2g_fail(&r->err, kind, x->status, "%.300s", msg);
        snprintf(r->err.context, sizeof r->err.context, "%s", what);
    } else {
        a2g_fail(&r->err, kind, x->status, "%s: the gateway answered HTTP %ld", what,
                 x->status);
    }
    free(msg);
    redact(r->c, r->err.message);
}

/* Lets the shared backend's login lock go, if the request holds it. */
static void login_unlock(a2g_request *r)
{
    if (r->login_lock && r->c->shared)
        r->c->shared->ops->login_done(r->c->shared->self);
    r->login_lock = 0;
}

static void finish(a2g_request *r)
{
    if (r->err.kind != A2G_OK)
        a2g_sink_abort(&r->sink);
    login_unlock(r); /* whatever ended it: the others need not wait for it */
    r->phase = DONE;
}

static int fail(a2g_request *r, a2g_kind kind, long status, const char *fmt, const char *arg)
{
    a2g_fail(&r->err, kind, status, fmt, arg);
    redact(r->c, r->err.message);
    finish(r);
    return -1;
}

static int build_transfer(a2g_request *r, int login)
{
    a2g_client *c = r->c;
    a2g_xfer *x = &r->xfer;
    a2g_buf *h = &r->headers;
    int oom = 0;
    a2g_buf_reset(h); /* a secret buffer: the token's bytes are wiped */
    a2g_buf_reset(&r->url);
    if (login) {
        a2g_buf login_json;
        a2g_buf_init_secret(&login_json, 0);
        a2g_source_free(&r->login_body);
        if (a2g_auth_request(&c->auth, &login_json) != 0
            || a2g_source_memory_secret(&r->login_body, login_json.data, login_json.len,
                                        &r->err) != 0
            || (r->login_target.len
                    ? a2g_buf_append(&r->url, r->login_target.data, r->login_target.len)
                    : (a2g_buf_append(&r->url, c->base.data, c->base.len)
                       || a2g_buf_appends(&r->url, "/authorize"))) != 0) {
            a2g_buf_free(&login_json);
            return fail(r, A2G_IO, 0, "%s", "cannot build the /authorize request");
        }
        a2g_buf_free(&login_json);
        oom = add_header(h, "Content-Type", "application/json")
              || add_header(h, "Accept", "application/json");
        x->method = "POST";
        x->source = &r->login_body;
        x->sink = &r->login_answer;
        a2g_sink_restart(&r->login_answer);
    } else {
        if (r->target.len
                ? a2g_buf_append(&r->url, r->target.data, r->target.len) != 0
                : (a2g_buf_append(&r->url, c->base.data, c->base.len) != 0
                   || a2g_buf_append(&r->url, r->path.data, r->path.len) != 0))
            return fail(r, A2G_IO, 0, "%s", "out of memory");
        r->used_token = c->auth.token != NULL;
        if (c->auth.token)
            oom = add_header(h, "Authorization", c->auth.token);
        oom = oom || a2g_buf_append(h, r->extra.data, r->extra.len);
        x->method = r->method;
        x->source = &r->source;
        x->sink = &r->sink;
        if (r->sink.kind == A2G_SINK_FILE || r->sink.kind == A2G_SINK_DIR)
            r->sink.limit = c->max_download;
    }
    x->answer_limit_ms = c->json_timeout_ms;
    x->progress = c->progress;
    x->progress_ud = c->hook_ud;
    x->memory_answer = login || r->sink.kind == A2G_SINK_MEMORY;
    if (oom)
        return fail(r, A2G_IO, 0, "%s", "out of memory");
    x->headers = h;
    if (r->url.len == 0)
        return fail(r, A2G_IO, 0, "%s", "no URL");
    x->url = r->url.data;
    return 0;
}

/* Schedules another attempt after a failure of `kind`, or fails. */
static void retry_or_fail(a2g_request *r, a2g_kind kind, const char *what, int64_t delay)
{
    a2g_client *c = r->c;
    if (r->attempts >= c->retries) {
        if (kind == A2G_RATELIMITED || r->xfer.status >= 400)
            fail_with_answer(r, kind, what);
        else
            a2g_fail(&r->err, kind, r->xfer.status, "%s (after %d attempts)", what,
                     r->attempts + 1);
        finish(r);
        return;
    }
    if (a2g_source_rewind(&r->source) != 0) {
        fail(r, kind, r->xfer.status, "%s; the body came from a reader and cannot be sent "
             "again", what);
        return;
    }
    if (a2g_sink_restart(&r->sink) != 0) {
        fail(r, kind, r->xfer.status, "%s; part of the answer already went to the sink, so "
             "it cannot be retried", what);
        return;
    }
    r->attempts++;
    c->stats.retries++;
    int64_t now = now_ms(c);
    r->not_before = now + delay;
    emit(r, "retry", r->xfer.status, 0, delay, a2g_kind_name(kind));
    r->phase = IDLE;
}

/* Backoff before the next retry: min(cap, base * 2^(retries so far)), of which a
 * random half is jitter ("equal jitter"). */
static int64_t backoff(a2g_request *r)
{
    a2g_client *c = r->c;
    int64_t d = c->backoff_base_ms;
    for (int i = 0; i < r->attempts && d < c->backoff_cap_ms; i++)
        d *= 2;
    if (d > c->backoff_cap_ms)
        d = c->backoff_cap_ms;
    if (d <= 1)
        return d;
    return d / 2 + (int64_t)(next_random(c) % (uint64_t)(d / 2 + 1));
}

/* A header of the answer the request's last transfer got, or NULL. */
static const char *header(a2g_request *r, const char *name)
{
    a2g_transport *t = r->c->transport;
    return t->ops->header(t->self, &r->xfer, name);
}

/* The longest Retry-After read as such (ten years); anything longer is that. */
#define RETRY_AFTER_MAX_S (10L * 366 * 24 * 3600)

/* A 429: no request before Retry-After (a full window when absent or unreadable),
 * then the same request again - the server gave the 429 before accepting anything,
 * so this holds for sends too. When the gateway asks for longer than
 * retry_after_cap, the call ends at once with `ratelimited` and err.retry_after:
 * sleeping the cap would only retry into the same refusal; the caller schedules. */
static void on_ratelimited(a2g_request *r, int64_t now)
{
    a2g_client *c = r->c;
    long secs = 0;
    int64_t wait;
    c->stats.ratelimited++;
    if (a2g_parse_retry_after(header(r, "Retry-After"),
                              time(NULL), RETRY_AFTER_MAX_S, &secs) == 0)
        wait = (int64_t)secs * 1000;
    else
        wait = c->window_ms ? c->window_ms : 10000;
    if (now + wait > c->blocked_until)
        c->blocked_until = now + wait;
    for (int i = 0; i < c->nquota; i++) /* and everyone sharing the quota with us */
        if (c->quota[i]->ops->block)
            c->quota[i]->ops->block(c->quota[i]->self, now, wait);
    if (wait > c->retry_after_cap_ms) {
        fail_with_answer(r, A2G_RATELIMITED, "the gateway asks to wait longer than "
                         "retry_after_cap before the next request");
        r->err.retry_after = (long)((wait + 999) / 1000);
        finish(r);
        return;
    }
    retry_or_fail(r, A2G_RATELIMITED, "the gateway's rate limit was exceeded", wait);
    if (r->phase == DONE)
        r->err.retry_after = (long)((wait + 999) / 1000);
}

static void collect_answer(a2g_request *r)
{
    const char *v;
    r->out.status = r->xfer.status;
    if ((v = header(r, "Content-Type")))
        r->out.content_type = strdup(v);
    if ((v = header(r, "Link")))
        r->out.link = a2g_parse_link(v);
    if ((v = header(r, "Content-Disposition")))
        r->out.filename = a2g_disposition_filename(v, &r->out.filename_len);
    if (r->out.status == 206 && !r->is_send) {
        v = header(r, "X-Batch-Truncation-Index");
        if (a2g_parse_truncation_index(v, &r->out.truncation_message,
                                       &r->out.truncation_attachment) != 0) {
            fail(r, A2G_PROTOCOL, 206, "%s", "a 206 answer without a valid "
                 "X-Batch-Truncation-Index header");
            return;
        }
        r->out.has_truncation = 1;
    }
    int rc = r->sink.kind == A2G_SINK_DIR
                 ? a2g_sink_commit_named(&r->sink, r->out.filename, r->out.filename_len,
                                         "attachment", &r->err)
                 : a2g_sink_commit(&r->sink, &r->err);
    if (rc != 0) {
        finish(r);
        return;
    }
    r->err.kind = A2G_OK;
    finish(r);
}

/* Follows a same-origin redirect of the request's own transfer or (login) of its
 * /authorize: the next attempt of that transfer goes to the target. */
static void on_redirect(a2g_request *r, int login)
{
    a2g_client *c = r->c;
    const char *loc = header(r, "Location");
    long s = r->xfer.status;
    int keeps_method = s == 307 || s == 308;
    const char *method = login ? "POST" : r->method;
    if (!loc || r->redirects >= MAX_REDIRECTS || (!keeps_method && strcmp(method, "GET"))) {
        fail_with_answer(r, A2G_REDIRECT, "redirect not followed");
        finish(r);
        return;
    }
    char *target = a2g_url_resolve(r->url.data, loc);
    if (!target || !a2g_url_redirect_allowed(&c->origin, target)) {
        free(target);
        /* the token stays home: only the same host over HTTPS gets it */
        fail(r, A2G_REDIRECT, s, "%s", "redirect to another origin refused (the token is "
             "only sent to the configured host over HTTPS)");
        return;
    }
    if (!login && a2g_source_rewind(&r->source) != 0) {
        free(target);
        fail(r, A2G_REDIRECT, s, "%s", "redirect needs the body again, but it came from a "
             "reader");
        return;
    }
    a2g_buf *dst = login ? &r->login_target : &r->target;
    a2g_buf_reset(dst);
    int oom = a2g_buf_appends(dst, target);
    free(target);
    if (oom != 0) {
        fail(r, A2G_IO, 0, "%s", "out of memory");
        return;
    }
    r->redirects++;
    if (!login)
        a2g_sink_restart(&r->sink);
    r->phase = IDLE;
}

/* An answer held in memory that did not end within json_timeout: not retried (an
 * endless answer would be endless again). */
static void answer_deadline(a2g_request *r)
{
    fail(r, A2G_TIMEOUT, r->xfer.status, "the answer did not end within json_timeout (%s)",
         "an answer held in memory must be whole within that time of its status line");
}

/* FNV-1a of a token: to know it again without keeping it. */
static uint64_t digest(const char *token)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = token ? token : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* The quota backend's events (a Redis fallback or return) to the log hook. */
static void quota_events(a2g_request *r)
{
    a2g_client *c = r->c;
    const char *name;
    char msg[512];
    for (int i = 0; i < c->nquota; i++)
        while (c->quota[i]->ops->event && c->quota[i]->ops->event(c->quota[i]->self, &name,
                                                                  msg, sizeof msg))
            emit(r, name, 0, 0, 0, msg);
}

/* The request needs a token: is there one in the shared backend, that another process
 * got? 0: go on (the client holds that token now, or this request is to log in: with
 * the backend's login lock when it could have it); > 0: the ms to wait, another
 * process is logging in (for at most A2G_LOGIN_WAIT_MS: then this one logs in too). */
#define A2G_LOGIN_WAIT_MS 30000
static int64_t shared_token(a2g_request *r, int64_t now)
{
    a2g_client *c = r->c;
    a2g_quota *q = c->shared;
    if (!q || r->login_lock)
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        char token[8192];
        int64_t expiry = 0;
        int64_t wall = a2g_wall_ms();
        if (q->ops->token(q->self, token, sizeof token, &expiry) == 1) {
            int taken = digest(token) != c->refused
                        && (!c->auth.token || strcmp(token, c->auth.token) != 0)
                        && !a2g_check_text(token, strlen(token), A2G_TEXT_TOKEN)
                        && a2g_auth_set(&c->auth, token, (double)expiry, wall) == 0
                        && a2g_auth_valid(&c->auth, wall);
            explicit_bzero(token, sizeof token);
            if (taken) {
                c->stats.tokens_shared++;
                emit(r, "token_shared", 0, 0, 0, NULL);
                login_unlock(r); /* another logged in first */
                r->login_wait_until = 0;
                return 0;
            }
        }
        if (pass == 1)
            return 0; /* the lock is ours, and no newer token: log in */
        int me = q->ops->login(q->self);
        if (me < 0)
            return 0; /* no lock to be had: log in all the same */
        if (me == 1) {
            r->login_lock = 1;
            continue; /* a token may have come just before the lock was free */
        }
        if (!r->login_wait_until) {
            r->login_wait_until = now + A2G_LOGIN_WAIT_MS;
            c->stats.login_waits++;
            emit(r, "login_wait", 0, 0, 0, NULL);
        }
        if (now >= r->login_wait_until)
            return 0; /* it takes too long: this one logs in too */
        return 50;
    }
    return 0;
}

static void on_login_done(a2g_request *r, int64_t now)
{
    a2g_client *c = r->c;
    a2g_xfer *x = &r->xfer;
    if (x->answer_timed_out) {
        answer_deadline(r);
        return;
    }
    if (x->failure != A2G_OK) {
        if (x->failure == A2G_TLS)
            fail(r, x->failure, 0, "%s", x->detail);
        else
            retry_or_fail(r, x->failure, x->detail, backoff(r));
        return;
    }
    if (x->status == 200) {
        if (a2g_auth_accept(&c->auth, r->login_answer.mem.data, r->login_answer.mem.len,
                            a2g_wall_ms(), &r->err) != 0) {
            finish(r);
            return;
        }
        c->stats.authorizations++;
        if (c->shared)
            c->shared->ops->set_token(c->shared->self, c->auth.token, c->auth.expiry_ms);
        emit(r, "authorize", 200, 0, 0, NULL);
        r->login_first = 0;
        r->logins++;
        r->fresh = 1; /* this token serves this request, however short its life */
        if (r->is_login) {
            r->out.status = 200;
            r->err.kind = A2G_OK;
            finish(r);
        } else {
            r->phase = IDLE;
        }
        return;
    }
    /* a non-2xx answer went to errbody like any other (the login sink takes 2xx only):
     * its Generic Response message is shown */
    if (x->status >= 300 && x->status < 400)
        on_redirect(r, 1); /* a loopback http:// base: on to https:// */
    else if (x->status == 429)
        on_ratelimited(r, now);
    else if (x->status >= 500)
        retry_or_fail(r, A2G_HTTP, "the gateway failed to authorize", backoff(r));
    else if (x->status == 400 || x->status == 401 || x->status == 403) {
        fail_with_answer(r, A2G_AUTH, "the gateway refused the username or password");
        finish(r);
    } else {
        fail_with_answer(r, A2G_HTTP, "unexpected answer to /authorize");
        finish(r);
    }
}

static void on_main_done(a2g_request *r, int64_t now)
{
    a2g_client *c = r->c;
    a2g_xfer *x = &r->xfer;
    if (x->answer_timed_out) {
        /* a send the gateway took (2xx) stays taken, whatever its answer's body does */
        if (r->is_send && x->status >= 200 && x->status < 300)
            collect_answer(r);
        else if (r->is_send && x->request_bytes > 0)
            fail(r, A2G_UNKNOWN_OUTCOME, x->status, "%s", "the gateway's answer to the "
                 "message did not end within json_timeout: it may have been enqueued; "
                 "check the queued and sent lists before sending it again");
        else
            answer_deadline(r);
        return;
    }
    if (x->failure != A2G_OK) {
        if (r->callback_failed) {
            fail(r, A2G_CALLBACK, 0, "%s", "a callback raised an error");
            return;
        }
        if (x->sink_failed) {
            if (r->sink.overflow && r->is_send && x->status >= 200 && x->status < 300)
                collect_answer(r); /* taken by the gateway: its answer's size cannot undo that */
            else if (r->sink.overflow)
                fail(r, A2G_PROTOCOL, x->status, "the answer is larger than %s bytes",
                     r->sink.kind == A2G_SINK_MEMORY ? "max_json" : "max_download");
            else if (r->sink.io_errno)
                fail(r, A2G_IO, 0, "%s", strerror(r->sink.io_errno));
            else
                fail(r, A2G_IO, 0, "%s", "the download could not be written");
            return;
        }
        if (r->source.failed) {
            /* the gateway cannot have a whole body: nothing was enqueued */
            if (r->source.changed)
                fail(r, A2G_IO, 0, "%s", "a file of the request body changed while it was "
                     "being sent (it shrank or grew): nothing was sent whole");
            else
                fail(r, A2G_IO, 0, "the request body could not be read: %s",
                     r->source.failed > 0 ? strerror(r->source.failed) : "read error");
            return;
        }
        a2g_kind k = x->failure;
        const char *detail = *x->detail ? x->detail : x->reason;
        if (k == A2G_TLS) {
            fail(r, k, 0, "%s", detail);
            return;
        }
        if (r->is_send && x->request_bytes > 0) {
            fail(r, A2G_UNKNOWN_OUTCOME, x->status, "the connection failed after the message "
                 "went out (%s): it may have been enqueued; check the queued and sent lists "
                 "before sending it again", detail);
            return;
        }
        retry_or_fail(r, k, detail, backoff(r));
        return;
    }
    long s = x->status;
    if (s >= 200 && s < 300) {
        collect_answer(r);
    } else if (s >= 300 && s < 400) {
        on_redirect(r, 0);
    } else if (s == 401) {
        if (!r->reauthed && r->used_token && a2g_auth_can_login(&c->auth)) {
            /* the token expired or was revoked early: log in again, once */
            r->reauthed = 1;
            r->fresh = 0;
            c->refused = digest(c->auth.token); /* not to be taken from the backend again */
            a2g_auth_forget(&c->auth);
            c->stats.reauthentications++;
            emit(r, "reauth", 401, 0, 0, NULL);
            a2g_sink_restart(&r->sink);
            if (a2g_source_rewind(&r->source) != 0) {
                fail(r, A2G_AUTH, 401, "%s", "the token was refused and the body came from "
                     "a reader, so the request cannot be repeated");
                return;
            }
            r->phase = IDLE;
        } else {
            fail_with_answer(r, A2G_AUTH, "the gateway refused the token");
            finish(r);
        }
    } else if (s == 429) {
        on_ratelimited(r, now);
    } else if (s >= 500) {
        if (r->is_send) {
            fail_with_answer(r, A2G_UNKNOWN_OUTCOME, "the gateway failed while taking the "
                             "message; it may have been enqueued, check the queued and sent "
                             "lists before sending it again");
            finish(r);
        } else {
            retry_or_fail(r, A2G_HTTP, "the gateway failed", backoff(r));
        }
    } else {
        a2g_kind k = s == 404 ? A2G_NOTFOUND : (s == 400 || s == 413) ? A2G_INVALID : A2G_HTTP;
        fail_with_answer(r, k, s == 404 ? "not found" : "the gateway refused the request");
        finish(r);
    }
}

/* Hands back the slots its transfer held: the transfer is over at `now`; `reached`:
 * something of it may have reached the gateway. */
static void release_quota(a2g_request *r, int64_t now, int reached)
{
    a2g_client *c = r->c;
    for (int i = 0; i < r->leased; i++)
        c->quota[i]->ops->release(c->quota[i]->self, r->lease[i], now, reached);
    r->leased = 0;
    quota_events(r); /* a release too may find Redis gone */
}

/* Whether a transfer may start at `now`: a slot of every quota of the client, leased to
 * the request (0); or the ms to wait, with no slot held; or -1, the request failed (a
 * quota could not answer). */
static int64_t acquire_quota(a2g_request *r, int64_t now)
{
    a2g_client *c = r->c;
    while (r->leased < c->nquota) {
        a2g_quota *q = c->quota[r->leased];
        int64_t wait = q->ops->acquire(q->self, now, &r->lease[r->leased], &r->err);
        if (wait != 0) {
            release_quota(r, now, 0); /* (its events too) */
            return wait < 0 ? -1 : wait;
        }
        r->leased++;
    }
    quota_events(r);
    return 0;
}

/* Takes the connection from a request whose transfer is in flight but that nobody
 * advances (a step-wise request left unclosed): it fails, a send with the outcome
 * unknown, since its body may have gone out. */
static void abandon(a2g_request *a, int64_t now)
{
    a2g_client *c = a->c;
    c->transport->ops->abort(c->transport->self, &a->xfer);
    set_running(a, 0);
    release_quota(a, now, 1); /* it may have reached the server */
    if (a->is_send && !a->is_login && !a->login_first)
        a2g_fail(&a->err, A2G_UNKNOWN_OUTCOME, 0, "abandoned in flight (another call of "
                 "this client took the connection): the message may have been enqueued; "
                 "check the queued and sent lists before sending it again");
    else
        a2g_fail(&a->err, A2G_NETWORK, 0, "abandoned in flight: another call of this client "
                 "took the connection while this request was not being stepped");
    finish(a);
}

static void stop_transfer(a2g_request *r);

/* The call's deadline has come: its transfer stopped; a send whose body may have gone
 * out says its outcome is unknown, a call still waiting for the rate limit ends with
 * `ratelimited`, any other with `timeout`. */
static void past_deadline(a2g_request *r)
{
    int sending = r->phase == RUNNING && r->in_flight && r->is_send && !r->is_login
                  && !r->login_first;
    stop_transfer(r);
    if (sending && r->out_bytes > 0)
        fail(r, A2G_UNKNOWN_OUTCOME, 0, "%s", "the call's deadline stopped the transfer "
             "after the message went out: it may have been enqueued; check the queued and "
             "sent lists before sending it again");
    else if (r->waiting)
        fail(r, A2G_RATELIMITED, 0, "%s", "the rate limit had no slot before the call's "
             "deadline");
    else
        fail(r, A2G_TIMEOUT, 0, "the call's deadline passed %s", r->phase == RUNNING
             ? "during the transfer" : "before it could be sent");
}

/* A wait of `wait` ms for the rate limit (a slot of the quota, a 429's Retry-After): it
 * fails the call at once in fail-fast mode or when the wait would pass the deadline
 * (1), else it is waited (0). */
static int cannot_wait(a2g_request *r, int64_t now, int64_t wait)
{
    if (!r->fail_fast && !(r->deadline && now + wait > r->deadline))
        return 0;
    fail(r, A2G_RATELIMITED, 0, "%s", r->fail_fast
         ? "no slot of the rate limit is free now (fail_fast)"
         : "the rate limit has no slot before the call's deadline");
    r->err.retry_after = (long)((wait + 999) / 1000);
    return 1;
}

a2g_step a2g_request_step(a2g_request *r, int wait_ms, int blocking, int64_t *sleep_ms)
{
    a2g_client *c = r->c;
    *sleep_ms = 0;
    if (blocking)
        r->blocking = 1; /* for the rest of its life: its caller blocks till the end */
    if (r->phase == RUNNING)
        r->last_step = now_ms(c);
    for (;;) {
        if (r->phase == DONE)
            return A2G_STEP_DONE;
        if (r->deadline && now_ms(c) >= r->deadline) {
            past_deadline(r);
            continue;
        }
        if (r->phase == IDLE) {
            if (c->nrunning >= c->capacity) {
                /* every handle is busy: the request stepped least recently may have
                 * been left in flight */
                a2g_request *a = c->running[0];
                for (int i = 1; i < c->nrunning; i++)
                    if (c->running[i]->last_step < a->last_step)
                        a = c->running[i];
                int64_t now = now_ms(c);
                if (!r->blocking && now - a->last_step < A2G_ABANDON_MS) {
                    *sleep_ms = 5; /* other requests of this client are on the wire */
                    return A2G_STEP_SLEEP;
                }
                abandon(a, now);
            }
            int64_t now = now_ms(c);
            if (!r->is_login && !r->login_first && !(r->fresh && c->auth.token)
                && !a2g_auth_valid(&c->auth, a2g_wall_ms())) {
                int64_t wait = shared_token(r, now);
                if (wait > 0) {
                    *sleep_ms = wait; /* another process is logging in */
                    return A2G_STEP_SLEEP;
                }
                if (a2g_auth_valid(&c->auth, a2g_wall_ms())) {
                    /* another process's token is ours now */
                } else if (a2g_auth_can_login(&c->auth)) {
                    if (r->logins >= A2G_MAX_LOGINS) {
                        fail(r, A2G_AUTH, 0, "%s", "two logins in one request gave no "
                             "token the gateway accepts");
                        continue;
                    }
                    r->login_first = 1;
                } else if (!c->auth.token) {
                    fail(r, A2G_AUTH, 0, "%s", "no token, and no username and password to "
                         "get one");
                    continue;
                }
            }
            if (r->not_before > now) {
                /* a 429's Retry-After is a wait for the rate limit like any */
                if (c->blocked_until >= r->not_before
                    && cannot_wait(r, now, r->not_before - now))
                    continue;
                if (r->deadline && r->not_before > r->deadline) {
                    fail(r, A2G_TIMEOUT, 0, "%s", "the call's deadline comes before its "
                         "next retry");
                    continue;
                }
                *sleep_ms = r->not_before - now;
                return A2G_STEP_SLEEP;
            }
            if (c->blocked_until - now > c->retry_after_cap_ms) {
                /* an earlier 429 asked for longer than we wait: no request until then */
                int64_t left = c->blocked_until - now;
                fail(r, A2G_RATELIMITED, 0, "%s", "the gateway asked to wait longer than "
                     "retry_after_cap before the next request");
                r->err.retry_after = (long)((left + 999) / 1000);
                continue;
            }
            /* the gateway's Retry-After first, then a slot of the quota */
            int64_t wait = c->blocked_until > now ? c->blocked_until - now
                                                  : acquire_quota(r, now);
            if (wait < 0) {
                finish(r);
                continue;
            }
            if (wait > 0 && cannot_wait(r, now, wait))
                continue;
            if (wait > 0) {
                if (!r->waiting) {
                    r->waiting = 1;
                    c->stats.waits++;
                    emit(r, "ratelimit_wait", 0, 0, wait, NULL);
                }
                c->stats.waited_ms += wait;
                *sleep_ms = wait;
                return A2G_STEP_SLEEP;
            }
            r->waiting = 0;
            if (build_transfer(r, r->is_login || r->login_first) != 0
                || c->transport->ops->start(c->transport->self, &r->xfer, &r->err) != 0) {
                release_quota(r, now, 0);
                finish(r);
                continue;
            }
            set_running(r, 1);
            c->stats.requests++;
            r->started = r->last_step = now;
            emit(r, "request", 0, 0, 0, NULL);
            r->phase = RUNNING;
        }
        if (r->deadline && wait_ms > 0 && r->deadline - now_ms(c) < wait_ms)
            wait_ms = (int)(r->deadline - now_ms(c)); /* >= 1: checked above */
        if (!c->transport->ops->step(c->transport->self, &r->xfer, wait_ms)) {
            *sleep_ms = 1;
            return A2G_STEP_IO;
        }
        set_running(r, 0);
        int64_t now = now_ms(c);
        release_quota(r, now, r->xfer.request_bytes > 0);
        if (!r->is_login && !r->login_first)
            r->out_bytes = r->xfer.request_bytes;
        emit(r, "response", r->xfer.status, now - r->started, 0,
             r->xfer.failure != A2G_OK ? r->xfer.reason : NULL);
        if (r->is_login || r->login_first) {
            on_login_done(r, now);
            login_unlock(r);
        } else
            on_main_done(r, now);
    }
}

int a2g_request_done(const a2g_request *r)
{
    return r->phase == DONE;
}

/* Stops the request's transfer if it is in flight, handing its quota slot back. */
static void stop_transfer(a2g_request *r)
{
    a2g_client *c = r->c;
    if (!r->in_flight)
        return;
    a2g_transport *t = c->transport;
    int64_t sent = t->ops->sent(t->self, &r->xfer);
    t->ops->abort(t->self, &r->xfer);
    set_running(r, 0);
    if (!r->is_login && !r->login_first)
        r->out_bytes = sent;
    release_quota(r, now_ms(c), sent > 0);
}

void a2g_request_interrupt(a2g_request *r)
{
    if (r->phase == DONE)
        return;
    stop_transfer(r);
    if (r->is_send && r->out_bytes > 0)
        fail(r, A2G_INTERRUPTED, 0, "%s", "interrupted after the message went out: it may "
             "have been enqueued; check the queued and sent lists before sending it again");
    else
        fail(r, A2G_INTERRUPTED, 0, "%s", "interrupted");
}

const a2g_error *a2g_request_outcome(const a2g_request *r, a2g_outcome *out)
{
    memset(out, 0, sizeof *out);
    if (r->err.kind != A2G_OK)
        return &r->err;
    *out = r->out;
    out->bytes = r->sink.written;
    if (r->sink.kind == A2G_SINK_FILE || r->sink.kind == A2G_SINK_DIR) {
        out->path = r->sink.path;
    } else if (r->sink.kind == A2G_SINK_MEMORY) {
        out->body = r->sink.mem.data ? r->sink.mem.data : "";
        out->body_len = r->sink.mem.len;
    }
    return &r->err;
}

void a2g_request_free(a2g_request *r)
{
    if (!r)
        return;
    if (r->c) {
        stop_transfer(r);
        login_unlock(r);
    }
    a2g_sink_free(&r->sink);
    a2g_sink_free(&r->login_answer);
    a2g_source_free(&r->source);
    a2g_source_free(&r->login_body);
    a2g_buf_free(&r->headers);
    a2g_buf_free(&r->extra);
    a2g_buf_free(&r->path);
    a2g_buf_free(&r->url);
    a2g_buf_free(&r->target);
    a2g_buf_free(&r->login_target);
    a2g_buf_free(&r->xfer.errbody);
    free((char *)r->out.content_type);
    free((char *)r->out.link);
    free((char *)r->out.filename);
    free(r);
}
