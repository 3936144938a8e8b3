/* The shared engines behind the quota interface (quota.h): the file engine
 * (quota_file.h, the processes of one host) and the Redis engine (quota_redis.h,
 * several hosts). Both keep their own clock (the host's boot clock; Redis's TIME),
 * so the client's times are not passed on; both share the account's token and a
 * login lock. A transfer that sent nothing is cancelled, any other released. */
#include "quota.h"

#include <stdio.h>
#include <stdlib.h>

#include "quota_file.h"
#include "quota_redis.h"

typedef struct shared {
    a2g_quota q;
    a2g_qfile *file;    /* one of the two */
    a2g_qredis *redis;
} shared;

static int64_t shared_acquire(void *self, int64_t now, uint64_t *lease, a2g_error *err)
{
    shared *s = self;
    int64_t wait = 0;
    (void)now;
    int rc = s->file ? a2g_qfile_acquire(s->file, lease, &wait, err)
                     : a2g_qredis_acquire(s->redis, lease, &wait, err);
    if (rc != 0)
        return -1;
    return wait;
}

static void shared_release(void *self, uint64_t lease, int64_t ended, int reached)
{
    shared *s = self;
    a2g_error err;
    (void)ended;
    int rc;
    if (s->file)
        rc = reached ? a2g_qfile_release(s->file, lease, &err)
                     : a2g_qfile_cancel(s->file, lease, &err);
    else
        rc = reached ? a2g_qredis_release(s->redis, lease, &err)
                     : a2g_qredis_cancel(s->redis, lease, &err);
    /* a release that could not be written leaves the lease to end by its end: the slot
     * comes back late, never early */
    (void)rc;
}

static void shared_block(void *self, int64_t now, int64_t ms)
{
    shared *s = self;
    a2g_error err;
    (void)now;
    if (s->file)
        a2g_qfile_block(s->file, ms, &err);
    else
        a2g_qredis_block(s->redis, ms, &err);
}

static int shared_token(void *self, char *buf, size_t cap, int64_t *expiry)
{
    shared *s = self;
    a2g_error err;
    int rc = s->file ? a2g_qfile_token(s->file, buf, cap, expiry, &err)
                     : a2g_qredis_token(s->redis, buf, cap, expiry, &err);
    return rc == 1;
}

static void shared_set_token(void *self, const char *token, int64_t expiry)
{
    shared *s = self;
    a2g_error err;
    if (s->file)
        a2g_qfile_set_token(s->file, token, expiry, &err);
    else
        a2g_qredis_set_token(s->redis, token, expiry, &err);
}

static int shared_login(void *self)
{
    shared *s = self;
    a2g_error err;
    return s->file ? a2g_qfile_login(s->file, &err) : a2g_qredis_login(s->redis, &err);
}

static void shared_login_done(void *self)
{
    shared *s = self;
    if (s->file)
        a2g_qfile_login_done(s->file);
    else
        a2g_qredis_login_done(s->redis);
}

static int shared_event(void *self, const char **name, char *msg, size_t cap)
{
    shared *s = self;
    a2g_qevent ev;
    if (!s->redis || !a2g_qredis_event(s->redis, &ev))
        return 0;
    *name = ev.back ? "quota_redis" : "quota_fallback";
    snprintf(msg, cap, "%s", ev.message);
    return 1;
}

static void shared_state(void *self, a2g_quota_state *st)
{
    shared *s = self;
    if (s->file) {
        st->backend = st->mode = "file";
        return;
    }
    a2g_qredis_info info;
    a2g_error err;
    st->backend = "redis";
    if (a2g_qredis_state(s->redis, &info, &err) != 0)
        return;
    st->mode = info.mode == A2G_QM_REDIS ? "redis"
               : info.mode == A2G_QM_FALLBACK ? "fallback" : "dual";
    st->fallbacks = info.fallbacks;
    st->returns = info.returns;
}

static void shared_free(void *self)
{
    shared *s = self;
    a2g_qfile_close(s->file);
    a2g_qredis_close(s->redis);
    free(s);
}

static const a2g_quota_ops SHARED = {
    .acquire = shared_acquire,
    .release = shared_release,
    .free = shared_free,
    .block = shared_block,
    .token = shared_token,
    .set_token = shared_set_token,
    .login = shared_login,
    .login_done = shared_login_done,
    .event = shared_event,
    .state = shared_state,
};

static a2g_quota *wrap(a2g_qfile *file, a2g_qredis *redis)
{
    shared *s = calloc(1, sizeof *s);
    if (!s) {
        a2g_qfile_close(file);
        a2g_qredis_close(redis);
        return NULL;
    }
    s->file = file;
    s->redis = redis;
    s->q.ops = &SHARED;
    s->q.self = s;
    return &s->q;
}

a2g_quota *a2g_quota_file(struct a2g_qfile *engine)
{
    return wrap(engine, NULL);
}

a2g_quota *a2g_quota_redis(struct a2g_qredis *engine)
{
    return wrap(NULL, engine);
}
