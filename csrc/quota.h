/* The account's request quota, as one client sees it: may a transfer start now? The
 * client asks before every transfer (logins and retries included) and gets a slot, a
 * wait, or a failure; it hands the slot back once the transfer is over. A small table
 * of functions, so that where the quota is kept is one room's business:
 *   - quota_window.c: an exact sliding window in this process (never more than `limit`
 *     transfers in any `window_ms`, in-flight ones included);
 *   - quota_hooks.c: the host's own limiter through two callbacks (the Lua binding's
 *     acquire/release, e.g. as2gateway.openresty's window shared by nginx workers);
 *   - quota_shared.c: the engines shared between processes, the file engine (the
 *     processes of one host) and the Redis engine (several hosts), which also share
 *     the account's token and a login lock, take a 429's block, and report events.
 * Times are ms on the client's clock (the shared engines keep their own: the host's
 * boot clock, Redis's TIME). Pure C. */
#ifndef A2G_QUOTA_H
#define A2G_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#pragma GCC visibility push(hidden)

struct a2g_quota_state;

typedef struct a2g_quota_ops {
    /* May a transfer start at `now`? 0: yes, a slot is leased to it until `release`
     * (*lease names the slot); > 0: the ms to wait before asking again; < 0: the
     * backend failed (err set: the request fails with it, nothing was leased). */
    int64_t (*acquire)(void *self, int64_t now, uint64_t *lease, a2g_error *err);
    /* The transfer of `lease` is over (done, failed or abandoned) at `ended`; `reached`:
     * something of it may have reached the gateway, so it counts against the quota.
     * Called exactly once per lease. */
    void (*release)(void *self, uint64_t lease, int64_t ended, int reached);
    void (*free)(void *self);
    /* The rest is optional (NULL: the backend has none of it). */
    /* No admission for `ms` from `now`, for every sharer (a 429's Retry-After). */
    void (*block)(void *self, int64_t now, int64_t ms);
    /* The shared token: 1 with it in buf (NUL-terminated) and *expiry (ms since the
     * epoch, 0: unknown), 0: none (or it cannot be read: log in). */
    int (*token)(void *self, char *buf, size_t cap, int64_t *expiry);
    void (*set_token)(void *self, const char *token, int64_t expiry);
    /* The login lock: 1: this caller logs in (until login_done); 0: another does, wait
     * for its token; -1: the lock cannot be had (log in all the same). */
    int (*login)(void *self);
    void (*login_done)(void *self);
    /* The next event of the backend not yet taken (a Redis fallback or return, a state
     * reset): 1 with *name and msg (no secret in it), 0: none. */
    int (*event)(void *self, const char **name, char *msg, size_t cap);
    /* What the backend is and how it is: "window", "hooks", "file", "redis". */
    void (*state)(void *self, struct a2g_quota_state *st);
} a2g_quota_ops;

typedef struct a2g_quota_state {
    const char *backend;    /* "file", "redis" */
    const char *mode;       /* "file"; "redis", "fallback", "dual" */
    long fallbacks, returns; /* Redis: times it failed over to the local share and back */
} a2g_quota_state;

typedef struct a2g_quota {
    const a2g_quota_ops *ops;
    void *self;
} a2g_quota;

/* The exact sliding window: `limit` transfers per `window_ms`, each counted from the
 * moment its answer (or failure) arrived - the gateway stamped it no later than that,
 * so a wait computed from it is never too short - and every leased slot counted while
 * its transfer runs. NULL when out of memory. */
a2g_quota *a2g_quota_window(int limit, int64_t window_ms);

/* The host's limiter: acquire returns 0 (go: a slot is taken) or the ms to wait;
 * release gives the slot back with the time the transfer ended. Every transfer ended
 * counts, reached or not (the host decides). NULL when out of memory. */
typedef int64_t (*a2g_acquire_fn)(void *ud);
typedef void (*a2g_release_fn)(void *ud, int64_t ended_ms);
a2g_quota *a2g_quota_hooks(a2g_acquire_fn acquire, a2g_release_fn release, void *ud);

/* The shared engines behind the interface; the quota takes the engine over (its free
 * closes it). NULL when out of memory (the engine is closed then too). */
struct a2g_qfile;
struct a2g_qredis;
a2g_quota *a2g_quota_file(struct a2g_qfile *engine);
a2g_quota *a2g_quota_redis(struct a2g_qredis *engine);

static inline void a2g_quota_free(a2g_quota *q)
{
    if (q)
        q->ops->free(q->self);
}

#pragma GCC visibility pop

#endif
