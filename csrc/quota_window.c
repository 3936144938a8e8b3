/* The exact sliding window; see quota.h. A ring of the completion times of the last
 * `limit` transfers that reached the gateway, and a count of the leased slots whose
 * transfers are still running. */
#include "quota.h"

#include <stdlib.h>

/* Added to every wait: the gateway's clock is not ours. */
#define MARGIN_MS 25

typedef struct window {
    a2g_quota q;
    int limit;
    int64_t window_ms;
    int64_t *stamps;      /* ring; head is the oldest */
    int head, count;
    int in_flight;        /* leased slots not released yet */
    uint64_t next_lease;
} window;

static int64_t window_acquire(void *self, int64_t now, uint64_t *lease, a2g_error *err)
{
    window *w = self;
    (void)err;
    /* the running transfers will be stamped later than now: of the stamps, only
     * `room` may lie within the window that ends now */
    int room = w->limit - w->in_flight - 1;
    if (room < 0)
        return 1; /* every slot is in flight: ask again soon */
    if (w->count > room) {
        /* the newest stamp beyond `room` must have left the window */
        int64_t stamp = w->stamps[(w->head + w->count - room - 1) % w->limit];
        int64_t free_at = stamp + w->window_ms + MARGIN_MS;
        if (free_at > now)
            return free_at - now;
    }
    w->in_flight++;
    *lease = ++w->next_lease;
    return 0;
}

static void record(window *w, int64_t when)
{
    int slot = (w->head + w->count) % w->limit;
    if (w->count == w->limit) {
        slot = w->head;
        w->head = (w->head + 1) % w->limit;
    } else {
        w->count++;
    }
    w->stamps[slot] = when;
}

static void window_release(void *self, uint64_t lease, int64_t ended, int reached)
{
    window *w = self;
    (void)lease;
    if (w->in_flight > 0)
        w->in_flight--;
    if (reached)
        record(w, ended);
}

static void window_free(void *self)
{
    window *w = self;
    free(w->stamps);
    free(w);
}

static const a2g_quota_ops WINDOW = { window_acquire, window_release, window_free };

a2g_quota *a2g_quota_window(int limit, int64_t window_ms)
{
    if (limit < 1)
        return NULL;
    window *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->stamps = calloc((size_t)limit, sizeof *w->stamps);
    if (!w->stamps) {
        free(w);
        return NULL;
    }
    w->limit = limit;
    w->window_ms = window_ms;
    w->q.ops = &WINDOW;
    w->q.self = w;
    return &w->q;
}
