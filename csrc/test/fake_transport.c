/* See fake_transport.h. */
#include "fake_transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fake_start(void *self, a2g_xfer *x, a2g_error *err)
{
    fake *f = self;
    a2g_xfer_reset(x);
    if (f->next >= f->queued)
        return a2g_fail(err, A2G_NETWORK, 0, "the test queued no answer for %s %s", x->method,
                        x->url);
    if (x->sink && a2g_sink_open(x->sink, err) != 0)
        return -1;
    fake_sent *s = &f->sent[f->starts++ % FAKE_MAX];
    memset(s, 0, sizeof *s);
    snprintf(s->method, sizeof s->method, "%s", x->method);
    snprintf(s->url, sizeof s->url, "%s", x->url);
    for (size_t off = 0; x->headers && off < x->headers->len;) {
        const char *line = x->headers->data + off;
        size_t used = strlen(s->headers);
        snprintf(s->headers + used, sizeof s->headers - used, "%s\n", line);
        off += strlen(line) + 1;
    }
    /* the whole body is read at the start, as the source gives it */
    if (x->source && x->source->kind != A2G_SRC_NONE) {
        size_t used = 0;
        for (;;) {
            char buf[512];
            size_t n = a2g_source_read(x->source, buf, sizeof buf);
            if (n == A2G_READ_ABORT || n == 0)
                break;
            size_t room = sizeof s->body - 1 - used;
            memcpy(s->body + used, buf, n < room ? n : room);
            used += n < room ? n : room;
        }
    }
    f->answer = &f->answers[f->next++];
    f->left = f->answer->steps;
    f->current = x;
    return 0;
}

static void deliver(a2g_xfer *x, const char *data)
{
    size_t n = strlen(data);
    x->body_to_sink = x->status >= 200 && x->status < 300 && x->sink;
    if (!n)
        return;
    if (x->body_to_sink) {
        if (a2g_sink_put(x->sink, data, n) != 0) {
            x->sink_failed = 1;
            x->failure = A2G_NETWORK;
            x->reason = "Failed writing received data to disk/application";
        }
    } else {
        a2g_buf_append(&x->errbody, data, n);
    }
}

static int fake_step(void *self, a2g_xfer *x, int wait_ms)
{
    fake *f = self;
    (void)wait_ms;
    if (f->current != x)
        return 1;
    if (f->left-- > 0)
        return 0;
    const fake_answer *a = f->answer;
    x->status = a->status;
    x->request_bytes = a->sent >= 0 ? a->sent : 100;
    if (a->failure != A2G_OK) {
        x->failure = a->failure;
        x->reason = "a failure of the fake transport";
        snprintf(x->detail, sizeof x->detail, "the fake transport failed (%s)",
                 a2g_kind_name(a->failure));
    } else {
        deliver(x, a->body ? a->body : "");
    }
    f->current = NULL;
    return 1;
}

static void fake_abort(void *self, a2g_xfer *x)
{
    fake *f = self;
    if (f->current == x) {
        f->current = NULL;
        f->aborts++;
    }
}

static const char *fake_header(void *self, a2g_xfer *x, const char *name)
{
    fake *f = self;
    (void)x;
    size_t n = strlen(name);
    const char *found = NULL;
    for (int i = 0; f->answer && i < 8 && f->answer->headers[i]; i++) {
        const char *h = f->answer->headers[i];
        if (strncasecmp(h, name, n) == 0 && h[n] == ':')
            found = h + n + 1 + (h[n + 1] == ' ');
    }
    return found;
}

static int64_t fake_sent_bytes(void *self, a2g_xfer *x)
{
    fake *f = self;
    if (f->current == x)
        return f->answer->sent >= 0 ? f->answer->sent : 100;
    return x->request_bytes;
}

static const a2g_transport_ops FAKE_OPS = { fake_start, fake_step, fake_abort, fake_header,
                                            fake_sent_bytes, free };

fake *fake_new(void)
{
    fake *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    f->t.ops = &FAKE_OPS;
    f->t.self = f;
    return f;
}

void fake_answer_next(fake *f, fake_answer a)
{
    if (f->queued >= FAKE_MAX)
        abort();
    f->answers[f->queued++] = a;
}
