/* See ratelimit.h. */
#include "ratelimit.h"

#include <stdlib.h>

int a2g_ratelimit_init(a2g_ratelimit *rl, int limit, int64_t window_ms)
{
    rl->limit = limit > 0 ? limit : 0;
    rl->window_ms = window_ms;
    rl->margin_ms = 25;
    rl->head = rl->count = 0;
    rl->blocked_until = 0;
    rl->stamps = NULL;
    if (rl->limit) {
        rl->stamps = calloc((size_t)rl->limit, sizeof *rl->stamps);
        if (!rl->stamps)
            return -1;
    }
    return 0;
}

void a2g_ratelimit_free(a2g_ratelimit *rl)
{
    free(rl->stamps);
    rl->stamps = NULL;
}

int64_t a2g_ratelimit_delay(const a2g_ratelimit *rl, int64_t now)
{
    int64_t wait = rl->blocked_until > now ? rl->blocked_until - now : 0;
    if (rl->limit && rl->count == rl->limit) {
        /* the oldest of the last `limit` requests must have left the window */
        int64_t free_at = rl->stamps[rl->head] + rl->window_ms + rl->margin_ms;
        if (free_at - now > wait)
            wait = free_at - now;
    }
    return wait;
}

void a2g_ratelimit_record(a2g_ratelimit *rl, int64_t when)
{
    if (!rl->limit)
        return;
    /* the ring holds the newest `limit` stamps; head is the oldest */
    int slot = (rl->head + rl->count) % rl->limit;
    if (rl->count == rl->limit) {
        slot = rl->head;
        rl->head = (rl->head + 1) % rl->limit;
    } else {
        rl->count++;
    }
    rl->stamps[slot] = when;
}

void a2g_ratelimit_block(a2g_ratelimit *rl, int64_t until)
{
    if (until > rl->blocked_until)
        rl->blocked_until = until;
}

int64_t a2g_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t random)
{
    int64_t d = base_ms;
    for (int i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    if (d <= 1)
        return d;
    return d / 2 + (int64_t)(random % (uint64_t)(d / 2 + 1));
}
