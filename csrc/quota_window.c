/* The exact sliding window of one process; see quota.h. The window itself is
 * qwindow.c, the one window every engine keeps (the file engine in a file, the Redis
 * engine as its fallback): released transfers counted until a window and a margin
 * after their release, running ones counted while they run. Here its leases never run
 * out (this process releases every one of them), and a transfer that sent nothing is
 * taken back. */
#include "quota.h"

#include <stdlib.h>

#include "qwindow.h"

/* Added to the window: the gateway's clock is not ours. */
#define MARGIN_MS 25
/* A lease that never ends by itself. */
#define FOREVER_MS ((int64_t)1 << 60)

typedef struct window {
    a2g_quota q;
    a2g_qwindow w;
    uint64_t next_lease;
} window;

static int64_t window_acquire(void *self, int64_t now, uint64_t *lease, a2g_error *err)
{
    window *w = self;
    a2g_qwin_prune(&w->w, now, NULL);
    int64_t wait = a2g_qwin_acquire(&w->w, now, FOREVER_MS, w->next_lease + 1, 0, 0);
    if (wait < 0) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return -1;
    }
    if (wait == 0)
        *lease = ++w->next_lease;
    return wait;
}

static void window_release(void *self, uint64_t lease, int64_t ended, int reached)
{
    window *w = self;
    if (!reached)
        a2g_qwin_cancel(&w->w, lease);
    else if (a2g_qwin_release(&w->w, lease, ended) != 0)
        /* out of memory: the transfer cannot be counted, so nothing may start until
         * it has surely left the window */
        w->w.blocked_until = ended + w->w.window_ms + w->w.margin_ms;
}

static void window_block(void *self, int64_t now, int64_t ms)
{
    window *w = self;
    if (now + ms > w->w.blocked_until)
        w->w.blocked_until = now + ms;
}

static void window_state(void *self, a2g_quota_state *st)
{
    (void)self;
    st->backend = st->mode = "window";
}

static void window_free(void *self)
{
    window *w = self;
    a2g_qwin_free(&w->w);
    free(w);
}

static const a2g_quota_ops WINDOW = {
    .acquire = window_acquire,
    .release = window_release,
    .free = window_free,
    .block = window_block,
    .state = window_state,
};

a2g_quota *a2g_quota_window(int limit, int64_t window_ms)
{
    if (limit < 1)
        return NULL;
    window *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    a2g_qwin_init(&w->w, limit, window_ms, MARGIN_MS);
    w->q.ops = &WINDOW;
    w->q.self = w;
    return &w->q;
}
