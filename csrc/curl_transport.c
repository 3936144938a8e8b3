/* See curl_transport.h. Up to `max_transfers` transfers at once, each on an easy handle
 * of its own in one multi handle (whose connection cache they share, with the TLS
 * sessions in a share handle): a connection is reused by whichever handle runs next.
 * Every transfer starts from curl_easy_reset(), which forgets the previous request's
 * options, so that nothing (a method, a body, a header) leaks from one call into the
 * next. */
#include "curl_transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "clock.h"

#define ERRBODY_LIMIT (64 * 1024)
#define BIG_BODY (1024 * 1024)          /* request bodies above this ... */
#define UPLOAD_BUFFER (512L * 1024)     /* ... go out in pieces of this size */
#define DOWNLOAD_BUFFER (256L * 1024)   /* answers to files and sinks come in these */

#define MAX_TRANSFERS 64

/* One easy handle and the transfer on it. */
typedef struct slot {
    CURL *easy;
    a2g_xfer *current;           /* in flight on it; NULL: free */
    a2g_xfer *last;              /* the last one that ended on it (its headers stay) */
    int done;                    /* libcurl said it finished, with rc */
    CURLcode rc;
    struct curl_slist *headers;  /* the current transfer's, built from x->headers */
    char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct ct {
    a2g_transport t;
    CURLM *multi;
    CURLSH *share;
    slot slots[MAX_TRANSFERS];
    int nslots;
    char *cainfo, *proxy, *user_agent;
    long connect_timeout_ms, timeout_ms, low_speed_limit, low_speed_time;
} ct;

int a2g_curl_global_init(void)
{
    static int ready = 0;
    if (!ready && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        ready = 1;
    return ready ? 0 : -1;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Header lists hold the token: zeroed before they go back to the allocator. */
static void free_headers(slot *t)
{
    for (struct curl_slist *e = t->headers; e; e = e->next)
        explicit_bzero(e->data, strlen(e->data));
    curl_slist_free_all(t->headers);
    t->headers = NULL;
}

/* The transfer on `s` ends (finished or stopped): its handle leaves the multi. */
static void detach(ct *t, slot *s)
{
    if (s->current) {
        curl_multi_remove_handle(t->multi, s->easy);
        s->last = s->current;
        s->current = NULL;
    }
    s->done = 0;
    free_headers(s);
}

/* The slot whose transfer is `x` (in flight, or with `last`: the last ended), or NULL. */
static slot *slot_of(ct *t, const a2g_xfer *x, int last)
{
    for (int i = 0; i < t->nslots; i++)
        if (t->slots[i].current == x || (last && !t->slots[i].current && t->slots[i].last == x))
            return &t->slots[i];
    return NULL;
}

static int append(slot *t, const char *line)
{
    struct curl_slist *l = curl_slist_append(t->headers, line);
    if (l)
        t->headers = l;
    return l ? 0 : -1;
}

/* The request's header lines, and none of libcurl's own defaults: a POST without a
 * Content-Type goes out without one (libcurl would label it
 * application/x-www-form-urlencoded; the gateway must detect the type itself), and
 * without Expect: 100-continue (the answer decides; it would only add a round trip). */
static int build_headers(slot *t, const a2g_xfer *x)
{
    int has_type = 0;
    free_headers(t);
    for (size_t off = 0; x->headers && off < x->headers->len;) {
        const char *line = x->headers->data + off;
        if (strncasecmp(line, "Content-Type:", 13) == 0)
            has_type = 1;
        if (append(t, line) != 0)
            return -1;
        off += strlen(line) + 1;
    }
    if ((strcmp(x->method, "GET") != 0 && !has_type && append(t, "Content-Type:") != 0)
        || append(t, "Expect:") != 0) {
        free_headers(t);
        return -1;
    }
    return 0;
}

static a2g_kind failure_kind(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return A2G_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return A2G_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return A2G_TLS;
    default:
        return A2G_NETWORK;
    }
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    size_t n = a2g_source_read(userdata, buf, size * nitems);
    return n == A2G_READ_ABORT ? CURL_READFUNC_ABORT : n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    slot *t = userdata;
    a2g_xfer *x = t->current;
    size_t n = size * nmemb;
    if (x->status == 0) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &x->status);
        x->body_to_sink = x->status >= 200 && x->status < 300 && x->sink;
        if (x->body_to_sink && x->sink->written > 0 && a2g_sink_restart(x->sink) != 0) {
            x->sink_failed = 1;
            return 0;
        }
    }
    if (x->body_to_sink) {
        if (a2g_sink_put(x->sink, data, n) != 0) {
            x->sink_failed = 1;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        return n;
    }
    /* an error page: keep its head for the message, drop the rest */
    size_t room = ERRBODY_LIMIT - x->errbody.len;
    a2g_buf_append(&x->errbody, data, n < room ? n : room);
    return n;
}

/* Called by libcurl at least once a second: enforces the deadline of answers held in
 * memory (an endless answer trickled above the low-speed limit would otherwise hold a
 * call for a day), then reports progress. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    slot *t = ud;
    a2g_xfer *x = t->current;
    if (!x)
        return 0;
    if (x->answer_limit_ms) {
        if (!x->answer_started) {
            long code = 0;
            curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
            if (code)
                x->answer_started = a2g_mono_ms();
        } else if ((x->memory_answer || (x->status && !x->body_to_sink))
                   && a2g_mono_ms() - x->answer_started > x->answer_limit_ms) {
            x->answer_timed_out = 1;
            return 1;
        }
    }
    if (!x->progress)
        return 0;
    return x->progress(x->progress_ud, (int64_t)dlnow, (int64_t)dltotal, (int64_t)ulnow,
                       (int64_t)ultotal);
}

static int ct_start(void *self, a2g_xfer *x, a2g_error *err)
{
    ct *ctx = self;
    slot *t = slot_of(ctx, NULL, 0);
    if (!t)
        return a2g_fail(err, A2G_NETWORK, 0, "no free transfer handle (max_transfers)");
    CURL *e = t->easy;
    a2g_xfer_reset(x);
    t->errbuf[0] = '\0';
    t->last = NULL;
    if (build_headers(t, x) != 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory");

    curl_easy_reset(e);
    if (ctx->share)
        curl_easy_setopt(e, CURLOPT_SHARE, ctx->share);
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* redirects are the client's call */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    if (ctx->cainfo) {
        /* CAINFO replaces the default bundle; the hashed system directory keeps the
         * public CAs trusted beside the extra one */
        curl_easy_setopt(e, CURLOPT_CAINFO, ctx->cainfo);
        curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    if (ctx->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, ctx->proxy);
    if (ctx->user_agent)
        curl_easy_setopt(e, CURLOPT_USERAGENT, ctx->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ctx->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ctx->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, ctx->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, ctx->low_speed_time);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);

    int has_body = x->source && x->source->kind != A2G_SRC_NONE;
    if (strcmp(x->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        if (has_body) {
            /* No CURLOPT_SEEKFUNCTION, on purpose: without it libcurl cannot rewind a
             * body to resend it by itself on a fresh connection, so a send is never
             * repeated behind the client's back; the client decides about retries. */
            curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(e, CURLOPT_READDATA, x->source);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->source->size);
        } else {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
        if (strcmp(x->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
    }
    /* Large bodies move in large pieces: fewer read, send and recv calls than with
     * libcurl's defaults (64 KiB up, 16 KiB down; measured on loopback over HTTP: an
     * eighth of the sends, a quarter of the receives; bench/listing). The write
     * callback still gets at most 16 KiB at a time (CURL_MAX_WRITE_SIZE). Not for
     * JSON answers: each of them would allocate the larger buffer. */
    if (has_body && (x->source->size < 0 || x->source->size > BIG_BODY))
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER);
    if (x->sink && x->sink->kind != A2G_SINK_MEMORY)
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, DOWNLOAD_BUFFER);
    if (x->sink && a2g_sink_open(x->sink, err) != 0) {
        free_headers(t);
        return -1;
    }
    if (curl_multi_add_handle(ctx->multi, e) != CURLM_OK) {
        free_headers(t);
        return a2g_fail(err, A2G_NETWORK, 0, "libcurl refused the transfer");
    }
    t->current = x;
    return 0;
}

static int64_t bytes_out(slot *t)
{
    long head = 0;
    curl_off_t up = 0;
    curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &head);
    curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    return (int64_t)head + (int64_t)up;
}

/* Advances every transfer in flight; those libcurl finished are marked on their slots.
 * Returns how many still run. */
static int perform(ct *t)
{
    int running = 0, msgs;
    CURLMsg *m;
    curl_multi_perform(t->multi, &running);
    while ((m = curl_multi_info_read(t->multi, &msgs)))
        for (int i = 0; m->msg == CURLMSG_DONE && i < t->nslots; i++)
            if (t->slots[i].current && m->easy_handle == t->slots[i].easy) {
                t->slots[i].done = 1;
                t->slots[i].rc = m->data.result;
            }
    return running;
}

/* Advances every transfer; `x`'s results once libcurl said it finished (the others'
 * are kept on their slots till they are stepped). */
static int ct_step(void *self, a2g_xfer *x, int wait_ms)
{
    ct *t = self;
    slot *s = slot_of(t, x, 0);
    int running;
    if (!s)
        return 1;
    if (!s->done) {
        running = perform(t);
        if (!s->done && running && wait_ms > 0) {
            curl_multi_poll(t->multi, NULL, 0, wait_ms, NULL);
            perform(t);
        }
        if (!s->done)
            return 0;
    }
    CURLcode rc = s->rc;
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status)
        x->status = status;
    x->failure = failure_kind(rc);
    if (rc != CURLE_OK) {
        x->reason = curl_easy_strerror(rc);
        snprintf(x->detail, sizeof x->detail, "%s", s->errbuf);
    }
    x->request_bytes = bytes_out(s);
    detach(t, s);
    return 1;
}

static void ct_abort(void *self, a2g_xfer *x)
{
    ct *t = self;
    slot *s = slot_of(t, x, 0);
    if (s)
        detach(t, s);
}

static const char *ct_header(void *self, a2g_xfer *x, const char *name)
{
    ct *t = self;
    slot *s = slot_of(t, x, 1);
    struct curl_header *h = NULL;
    if (!s || curl_easy_header(s->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return NULL;
    /* with several of the same name, the last one counts */
    size_t amount = h->amount;
    if (amount > 1 && curl_easy_header(s->easy, name, amount - 1, CURLH_HEADER, -1, &h)
                          != CURLHE_OK)
        return NULL;
    return h->value;
}

static int64_t ct_sent(void *self, a2g_xfer *x)
{
    slot *s = slot_of(self, x, 0);
    return s ? bytes_out(s) : x->request_bytes;
}

static void ct_free(void *self)
{
    ct *t = self;
    for (int i = 0; i < t->nslots; i++) {
        detach(t, &t->slots[i]);
        if (t->slots[i].easy)
            curl_easy_cleanup(t->slots[i].easy);
    }
    if (t->multi)
        curl_multi_cleanup(t->multi);
    if (t->share)
        curl_share_cleanup(t->share);
    free(t->cainfo);
    free(t->proxy);
    free(t->user_agent);
    free(t);
}

static const a2g_transport_ops CURL_OPS = { ct_start, ct_step, ct_abort, ct_header, ct_sent,
                                            ct_free };

a2g_transport *a2g_curl_transport(const a2g_connection_opts *o, a2g_error *err)
{
    ct *t = calloc(1, sizeof *t);
    if (!t) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    t->t.ops = &CURL_OPS;
    t->t.self = t;
    t->nslots = o->max_transfers < 1 ? 1
                : o->max_transfers > MAX_TRANSFERS ? MAX_TRANSFERS : o->max_transfers;
    t->t.capacity = t->nslots;
    t->multi = curl_multi_init();
    int ok = t->multi != NULL;
    for (int i = 0; i < t->nslots; i++)
        ok = (t->slots[i].easy = curl_easy_init()) != NULL && ok;
    if (t->nslots > 1) {
        /* the TLS sessions of one handle serve the others */
        t->share = curl_share_init();
        ok = t->share && curl_share_setopt(t->share, CURLSHOPT_SHARE,
                                           CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK && ok;
    }
    t->cainfo = dup_or_null(o->cainfo);
    t->proxy = dup_or_null(o->proxy);
    t->user_agent = dup_or_null(o->user_agent);
    if (!ok || (o->cainfo && !t->cainfo) || (o->proxy && !t->proxy)
        || (o->user_agent && !t->user_agent)) {
        ct_free(t);
        a2g_fail(err, A2G_NETWORK, 0, "libcurl could not be initialised");
        return NULL;
    }
    t->connect_timeout_ms = o->connect_timeout_ms;
    t->timeout_ms = o->timeout_ms;
    t->low_speed_limit = o->low_speed_limit;
    t->low_speed_time = o->low_speed_time;
    return &t->t;
}
