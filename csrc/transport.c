/* See transport.h. Every transfer starts from curl_easy_reset(), which keeps the
 * handle's live connections and TLS session cache but forgets the previous request's
 * options, so that nothing (a method, a body, a header) leaks from one call into the
 * next. */
#include "transport.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define ERRBODY_LIMIT (64 * 1024)
#define BIG_BODY (1024 * 1024)          /* request bodies above this ... */
#define UPLOAD_BUFFER (512L * 1024)     /* ... go out in pieces of this size */
#define DOWNLOAD_BUFFER (256L * 1024)   /* answers to files and sinks come in these */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int a2g_transport_init(a2g_transport *t, const a2g_transport_opts *o, a2g_error *err)
{
    memset(t, 0, sizeof *t);
    t->multi = curl_multi_init();
    t->easy = curl_easy_init();
    if (!t->multi || !t->easy) {
        a2g_transport_free(t);
        return a2g_fail(err, A2G_NETWORK, 0, "libcurl could not be initialised");
    }
    t->cainfo = dup_or_null(o->cainfo);
    t->proxy = dup_or_null(o->proxy);
    t->user_agent = dup_or_null(o->user_agent);
    t->connect_timeout_ms = o->connect_timeout_ms;
    t->timeout_ms = o->timeout_ms;
    t->low_speed_limit = o->low_speed_limit;
    t->low_speed_time = o->low_speed_time;
    return 0;
}

void a2g_transport_free(a2g_transport *t)
{
    a2g_transport_abort(t);
    if (t->easy)
        curl_easy_cleanup(t->easy);
    if (t->multi)
        curl_multi_cleanup(t->multi);
    free(t->cainfo);
    free(t->proxy);
    free(t->user_agent);
    memset(t, 0, sizeof *t);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    a2g_transport *t = userdata;
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
    a2g_transport *t = ud;
    a2g_xfer *x = t->current;
    if (x && x->answer_limit_ms) {
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
    if (!t->progress)
        return 0;
    return t->progress(t->progress_ud, (int64_t)dlnow, (int64_t)dltotal, (int64_t)ulnow,
                       (int64_t)ultotal);
}

int a2g_transport_start(a2g_transport *t, a2g_xfer *x, a2g_error *err)
{
    CURL *e = t->easy;
    x->status = 0;
    x->body_to_sink = 0;
    x->sink_failed = 0;
    x->result = CURLE_OK;
    x->request_bytes = 0;
    x->answer_started = 0;
    x->answer_timed_out = 0;
    a2g_buf_reset(&x->errbody);
    t->errbuf[0] = '\0';

    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* redirects are the client's call */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    if (t->cainfo) {
        /* CAINFO replaces the default bundle; the hashed system directory keeps the
         * public CAs trusted beside the extra one */
        curl_easy_setopt(e, CURLOPT_CAINFO, t->cainfo);
        curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    if (t->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, t->proxy);
    if (t->user_agent)
        curl_easy_setopt(e, CURLOPT_USERAGENT, t->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, t->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, t->low_speed_time);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
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
            curl_easy_setopt(e, CURLOPT_READFUNCTION, a2g_source_curl_read);
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
    if (x->sink && a2g_sink_open(x->sink, err) != 0)
        return -1;
    if (curl_multi_add_handle(t->multi, e) != CURLM_OK)
        return a2g_fail(err, A2G_NETWORK, 0, "libcurl refused the transfer");
    t->current = x;
    return 0;
}

int a2g_transport_step(a2g_transport *t, int wait_ms)
{
    int running = 0;
    if (!t->current)
        return 1;
    curl_multi_perform(t->multi, &running);
    if (running && wait_ms > 0) {
        curl_multi_poll(t->multi, NULL, 0, wait_ms, NULL);
        curl_multi_perform(t->multi, &running);
    }
    int msgs;
    CURLMsg *m;
    while ((m = curl_multi_info_read(t->multi, &msgs))) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == t->easy) {
            a2g_xfer *x = t->current;
            x->result = m->data.result;
            long status = 0;
            curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
            if (status)
                x->status = status;
            long req = 0;
            curl_off_t up = 0;
            curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &req);
            curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &up);
            x->request_bytes = (curl_off_t)req + up;
            curl_multi_remove_handle(t->multi, t->easy);
            t->current = NULL;
            return 1;
        }
    }
    return 0;
}

void a2g_transport_abort(a2g_transport *t)
{
    if (t->current) {
        curl_multi_remove_handle(t->multi, t->easy);
        t->current = NULL;
    }
}

const char *a2g_transport_header(a2g_transport *t, const char *name)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(t->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return NULL;
    /* with several of the same name, the last one counts */
    size_t amount = h->amount;
    if (amount > 1 && curl_easy_header(t->easy, name, amount - 1, CURLH_HEADER, -1, &h)
                          != CURLHE_OK)
        return NULL;
    return h->value;
}

const char *a2g_transport_detail(const a2g_transport *t)
{
    return t->errbuf;
}
