/* The host's own limiter behind the quota interface; see quota.h. */
#include "quota.h"

#include <stdlib.h>

typedef struct hooks {
    a2g_quota q;
    a2g_acquire_fn acquire;
    a2g_release_fn release;
    void *ud;
} hooks;

static int64_t hooks_acquire(void *self, int64_t now, uint64_t *lease, a2g_error *err)
{
    hooks *h = self;
    (void)now;
    (void)err;
    int64_t wait = h->acquire(h->ud);
    if (wait > 0)
        return wait;
    *lease = 1;
    return 0;
}

static void hooks_release(void *self, uint64_t lease, int64_t ended, int reached)
{
    hooks *h = self;
    (void)lease;
    (void)reached;
    h->release(h->ud, ended);
}

static const a2g_quota_ops HOOKS = {
    .acquire = hooks_acquire,
    .release = hooks_release,
    .free = free,
};

a2g_quota *a2g_quota_hooks(a2g_acquire_fn acquire, a2g_release_fn release, void *ud)
{
    hooks *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->acquire = acquire;
    h->release = release;
    h->ud = ud;
    h->q.ops = &HOOKS;
    h->q.self = h;
    return &h->q;
}
