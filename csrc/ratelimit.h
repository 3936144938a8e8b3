/* The client side of the gateway's rate limit: an exact sliding window (never more
 * than `limit` requests in any `window_ms`), a block set by a 429's Retry-After, and
 * the jittered exponential backoff of retries. Pure C; time is passed in (ms). */
#ifndef A2G_RATELIMIT_H
#define A2G_RATELIMIT_H

#include <stdint.h>

typedef struct a2g_ratelimit {
    int limit;            /* requests per window; 0 turns the limiter off */
    int64_t window_ms;
    int64_t margin_ms;    /* added to every wait: the server's clock is not ours */
    int64_t *stamps;      /* ring of the completion times of the last `limit` requests */
    int head, count;
    int64_t blocked_until;
} a2g_ratelimit;

int a2g_ratelimit_init(a2g_ratelimit *rl, int limit, int64_t window_ms);
void a2g_ratelimit_free(a2g_ratelimit *rl);
/* Milliseconds to wait before a request may start at `now` (0: go). */
int64_t a2g_ratelimit_delay(const a2g_ratelimit *rl, int64_t now);
/* Records a request. Pass the time its answer (or failure) arrived: the server
 * stamped it no later than that, so waits computed from it are never too short. */
void a2g_ratelimit_record(a2g_ratelimit *rl, int64_t when);
/* No request before `until` (from Retry-After). */
void a2g_ratelimit_block(a2g_ratelimit *rl, int64_t until);

/* Backoff before retry number `attempt` (1-based): min(cap, base * 2^(attempt-1)),
 * of which a random half is jitter ("equal jitter"). `random` is any 32-bit value. */
int64_t a2g_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t random);

#endif
