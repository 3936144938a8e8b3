/* See quota_redis.h. */
#include "quota_redis.h"
#include "clock.h"
#include "qwindow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#define MAX_EVENTS 16
#define WHERE_REDIS 1
#define WHERE_LOCAL 2
#define RNUM "%" PRId64

static const char *const script_names[] = {
#define A2G_QS_NAME(id, name) name,
    A2G_QSCRIPTS(A2G_QS_NAME)
#undef A2G_QS_NAME
};

const char *a2g_qscript_name(a2g_qscript s)
{
    return s < A2G_QS_COUNT ? script_names[s] : "?";
}

typedef struct own_lease {
    uint64_t id;
    int where;
    int64_t end; /* local clock; forgotten an hour after, released or not */
} own_lease;

enum { K_DONE, K_LIVE, K_BLOCK, K_TOKEN, K_LOGIN, K_EPOCH, K_COUNT };
static const char *const key_names[K_COUNT] = { "done", "live", "block", "token", "login",
                                                 "epoch" };

struct a2g_qredis {
    a2g_qredis_config cfg;
    /* the parsed URL */
    char *host, *path, *user, *password;
    int port, db;
    char where[300];              /* host:port or the socket path, for messages */
    char *keys[K_COUNT];
    char *scripts[A2G_QS_COUNT];
    char sha[A2G_QS_COUNT][41];   /* "" until loaded on this connection */
    redisContext *ctx;
    int share;
    /* the local window: a file engine, or in process */
    a2g_qfile *fb;
    a2g_qwindow local;
    a2g_qmode mode;
    int64_t hold_until, dual_until, next_retry;
    own_lease *own;
    int nown, cap_own;
    char login_owner[17];
    char epoch[17];               /* the window's epoch as last seen; "" before */
    int login_redis, login_file;
    a2g_qevent events[MAX_EVENTS];
    int ev_head, ev_count;
    long fallbacks, returns, errors;
    char last_error[512];
};

static int64_t now_of(const a2g_qredis *q)
{
    return a2g_qclock_ms() + q->cfg.q.clock_offset_ms;
}

static struct timeval tv_of(int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    return tv;
}

/* The URL --------------------------------------------------------------------------- */

static char *dup_decoded(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int c;
        if (s[i] == '%' && i + 2 < n && sscanf(s + i + 1, "%2x", &c) == 1) {
            out[k++] = (char)c;
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

static int parse_url(a2g_qredis *q, const char *url, a2g_error *err)
{
    const char *rest;
    int unix_socket = 0;
    if (strncmp(url, "redis://", 8) == 0) {
        rest = url + 8;
    } else if (strncmp(url, "unix://", 7) == 0) {
        rest = url + 7;
        unix_socket = 1;
    } else {
        return a2g_fail(err, A2G_INVALID, 0, "quota: the Redis URL must start with redis:// "
                        "or unix://");
    }
    const char *at = strchr(rest, '@');
    const char *slash = strchr(rest, '/');
    if (at && (!slash || at < slash || unix_socket)) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon) {
            q->user = dup_decoded(rest, (size_t)(colon - rest));
            q->password = dup_decoded(colon + 1, (size_t)(at - colon - 1));
        } else {
            q->user = dup_decoded(rest, 0);
            q->password = dup_decoded(rest, (size_t)(at - rest));
        }
        if (!q->user || !q->password)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
        rest = at + 1;
    }
    if (unix_socket) {
        const char *qm = strchr(rest, '?');
        size_t n = qm ? (size_t)(qm - rest) : strlen(rest);
        if (n < 2 || rest[0] != '/')
            return a2g_fail(err, A2G_INVALID, 0, "quota: a unix:// Redis URL needs an "
                            "absolute socket path");
        q->path = dup_decoded(rest, n);
        if (qm && sscanf(qm, "?db=%d", &q->db) != 1)
            return a2g_fail(err, A2G_INVALID, 0, "quota: the only query of a unix:// "
                            "Redis URL is ?db=N");
        if (!q->path)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
        snprintf(q->where, sizeof q->where, "%s", q->path);
    } else {
        const char *end = rest + strcspn(rest, "/");
        const char *colon = NULL;
        if (*rest == '[') { /* [v6]:port */
            const char *close = memchr(rest, ']', (size_t)(end - rest));
            if (!close)
                return a2g_fail(err, A2G_INVALID, 0, "quota: bad host in the Redis URL");
            q->host = dup_decoded(rest + 1, (size_t)(close - rest - 1));
            colon = close[1] == ':' ? close + 1 : NULL;
        } else {
            colon = memchr(rest, ':', (size_t)(end - rest));
            q->host = dup_decoded(rest, (size_t)((colon ? colon : end) - rest));
        }
        if (!q->host)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
        q->port = 6379;
        if (colon) {
            char *e;
            long p = strtol(colon + 1, &e, 10);
            if (e != end || p < 1 || p > 65535)
                return a2g_fail(err, A2G_INVALID, 0, "quota: bad port in the Redis URL");
            q->port = (int)p;
        }
        if (!q->host[0])
            return a2g_fail(err, A2G_INVALID, 0, "quota: the Redis URL has no host");
        if (*end == '/' && end[1]) {
            char *e;
            long db = strtol(end + 1, &e, 10);
            if (*e || db < 0 || db > 100000)
                return a2g_fail(err, A2G_INVALID, 0, "quota: bad database in the Redis URL");
            q->db = (int)db;
        }
        snprintf(q->where, sizeof q->where, "%s:%d", q->host, q->port);
    }
    return 0;
}

/* Events ---------------------------------------------------------------------------- */

static void push_event(a2g_qredis *q, int back, const char *message)
{
    int slot = (q->ev_head + q->ev_count) % MAX_EVENTS;
    if (q->ev_count == MAX_EVENTS)
        q->ev_head = (q->ev_head + 1) % MAX_EVENTS; /* the oldest goes */
    else
        q->ev_count++;
    q->events[slot].back = back;
    q->events[slot].at_ms = now_of(q);
    snprintf(q->events[slot].message, sizeof q->events[slot].message, "%s", message);
}

int a2g_qredis_event(a2g_qredis *q, a2g_qevent *ev)
{
    if (!q->ev_count)
        return 0;
    *ev = q->events[q->ev_head];
    q->ev_head = (q->ev_head + 1) % MAX_EVENTS;
    q->ev_count--;
    return 1;
}

/* Talking to Redis ---------------------------------------------------------------------- */

static void drop_connection(a2g_qredis *q)
{
    if (q->ctx)
        redisFree(q->ctx);
    q->ctx = NULL;
    for (int i = 0; i < A2G_QS_COUNT; i++)
        q->sha[i][0] = '\0';
}

static int redis_failed(a2g_qredis *q, a2g_error *err, const char *what)
{
    q->errors++;
    a2g_fail(err, A2G_NETWORK, 0, "Redis at %s: %s", q->where, what);
    snprintf(q->last_error, sizeof q->last_error, "%s", err->message);
    drop_connection(q);
    return -1;
}

/* A command; the reply (never an error reply) or NULL with err. */
static redisReply *command(a2g_qredis *q, int argc, const char **argv, const size_t *lens,
                           a2g_error *err)
{
    redisReply *r = redisCommandArgv(q->ctx, argc, argv, lens);
    if (!r) {
        redis_failed(q, err, q->ctx->errstr[0] ? q->ctx->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: %.*s", argv[0], (int)(r->len < 150 ? r->len : 150),
                 r->str);
        freeReplyObject(r);
        redis_failed(q, err, msg);
        return NULL;
    }
    return r;
}

static int connect_redis(a2g_qredis *q, a2g_error *err)
{
    if (q->ctx)
        return 0;
    struct timeval ctv = tv_of(q->cfg.connect_timeout_ms);
    q->ctx = q->path ? redisConnectUnixWithTimeout(q->path, ctv)
                     : redisConnectWithTimeout(q->host, q->port, ctv);
    if (!q->ctx) {
        q->errors++;
        return a2g_fail(err, A2G_NETWORK, 0, "Redis at %s: out of memory", q->where);
    }
    if (q->ctx->err) {
        char msg[200];
        snprintf(msg, sizeof msg, "cannot connect: %s", q->ctx->errstr);
        return redis_failed(q, err, msg);
    }
    if (redisSetTimeout(q->ctx, tv_of(q->cfg.command_timeout_ms)) != REDIS_OK)
        return redis_failed(q, err, "cannot set the command timeout");
    if (q->password) {
        const char *argv[3] = { "AUTH", q->user, q->password };
        size_t lens[3] = { 4, strlen(q->user), strlen(q->password) };
        redisReply *r = q->user[0] ? command(q, 3, argv, lens, err)
                                   : (argv[1] = q->password, lens[1] = lens[2],
                                      command(q, 2, argv, lens, err));
        if (!r)
            return -1;
        freeReplyObject(r);
    }
    if (q->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", q->db);
        const char *argv[2] = { "SELECT", db };
        size_t lens[2] = { 6, strlen(db) };
        redisReply *r = command(q, 2, argv, lens, err);
        if (!r)
            return -1;
        freeReplyObject(r);
    }
    return 0;
}

#define MAX_ARGS 64

/* Runs a script (EVALSHA, loading it first on a new connection; EVAL when Redis no
 * longer has it, e.g. after a restart). */
static redisReply *run(a2g_qredis *q, a2g_qscript s, int nkeys, const char **keys,
                       int nargs, const char **args, a2g_error *err)
{
    if (connect_redis(q, err) != 0)
        return NULL;
    if (!q->sha[s][0]) {
        const char *argv[3] = { "SCRIPT", "LOAD", q->scripts[s] };
        size_t lens[3] = { 6, 4, strlen(q->scripts[s]) };
        redisReply *r = command(q, 3, argv, lens, err);
        if (!r)
            return NULL;
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            freeReplyObject(r);
            redis_failed(q, err, "SCRIPT LOAD gave no SHA-1");
            return NULL;
        }
        memcpy(q->sha[s], r->str, 40);
        q->sha[s][40] = '\0';
        freeReplyObject(r);
    }
    const char *argv[MAX_ARGS + 8];
    size_t lens[MAX_ARGS + 8];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = q->sha[s];
    argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs && argc < MAX_ARGS + 8; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(q->ctx, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = q->scripts[s];
        lens[0] = 4;
        lens[1] = strlen(q->scripts[s]);
        r = redisCommandArgv(q->ctx, argc, argv, lens);
    }
    if (!r) {
        redis_failed(q, err, q->ctx->errstr[0] ? q->ctx->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[220];
        snprintf(msg, sizeof msg, "script %s: %.*s", script_names[s],
                 (int)(r->len < 150 ? r->len : 150), r->str);
        freeReplyObject(r);
        redis_failed(q, err, msg);
        return NULL;
    }
    return r;
}

static long long int_at(const redisReply *r, size_t i)
{
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return -1;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return -1;
}

/* Lease bookkeeping ---------------------------------------------------------------------- */

static own_lease *find_own(a2g_qredis *q, uint64_t id)
{
    for (int i = 0; i < q->nown; i++)
        if (q->own[i].id == id)
            return &q->own[i];
    return NULL;
}

static int add_own(a2g_qredis *q, uint64_t id, int where, int64_t now, a2g_error *err)
{
    /* leases never released (a caller's bug) are forgotten an hour after their end */
    for (int i = 0; i < q->nown;)
        if (q->own[i].end + 3600000 < now)
            q->own[i] = q->own[--q->nown];
        else
            i++;
    if (q->nown == q->cap_own) {
        int n = q->cap_own ? q->cap_own * 2 : 16;
        own_lease *p = realloc(q->own, (size_t)n * sizeof *p);
        if (!p)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
        q->own = p;
        q->cap_own = n;
    }
    q->own[q->nown].id = id;
    q->own[q->nown].where = where;
    q->own[q->nown].end = now + q->cfg.q.lease_ms;
    q->nown++;
    return 0;
}

static void drop_own(a2g_qredis *q, own_lease *o)
{
    *o = q->own[--q->nown];
}

/* The local window ------------------------------------------------------------------------ */

static int local_acquire(a2g_qredis *q, uint64_t id, int64_t now, int64_t *wait, a2g_error *err)
{
    if (q->fb)
        return a2g_qfile_acquire_id(q->fb, id, q->hold_until, wait, err);
    a2g_qwin_prune(&q->local, now, NULL);
    if (q->hold_until > now) {
        *wait = q->hold_until - now;
        return 0;
    }
    *wait = a2g_qwin_acquire(&q->local, now, q->cfg.q.lease_ms, id, 0, 0);
    return *wait < 0 ? a2g_fail(err, A2G_IO, 0, "out of memory") : 0;
}

static int local_release(a2g_qredis *q, uint64_t id, int64_t now, a2g_error *err)
{
    if (q->fb)
        return a2g_qfile_release(q->fb, id, err);
    return a2g_qwin_release(&q->local, id, now) == 0 ? 0 : a2g_fail(err, A2G_IO, 0, "out of memory");
}

static int local_cancel(a2g_qredis *q, uint64_t id, a2g_error *err)
{
    if (q->fb)
        return a2g_qfile_cancel(q->fb, id, err);
    a2g_qwin_cancel(&q->local, id);
    return 0;
}

/* Puts a lease Redis held into the local window (its renewal failed): the host's own
 * request in flight counts in its share from now on. */
static int local_adopt(a2g_qredis *q, uint64_t id, int64_t now, a2g_error *err)
{
    if (q->fb)
        return a2g_qfile_adopt(q->fb, id, err);
    a2g_qlease l = { id, now, now + q->cfg.q.lease_ms, 0, 0 };
    return a2g_qwin_put_lease(&q->local, &l) == 0 ? 0 : a2g_fail(err, A2G_IO, 0, "out of memory");
}

/* Modes --------------------------------------------------------------------------------- */

static void enter_fallback(a2g_qredis *q, int64_t now, const char *why)
{
    /* Every request Redis admitted before this failure, any host's, has ended by a
     * lease from now and left the gateway's window a window after that: no local
     * admission before then, whatever the local window holds. */
    int64_t hold = now + q->cfg.q.lease_ms + q->cfg.q.window_ms + q->cfg.q.margin_ms;
    if (hold > q->hold_until)
        q->hold_until = hold;
    q->next_retry = now + q->cfg.retry_ms;
    if (q->mode != A2G_QM_FALLBACK) {
        q->mode = A2G_QM_FALLBACK;
        q->fallbacks++;
        char msg[512];
        snprintf(msg, sizeof msg, "%.300s; a local share of %d requests per window after a "
                 "hold of %" PRId64 " ms", why, q->share, q->hold_until - now);
        push_event(q, 0, msg);
    }
}



/* In fallback: Redis again? The local window goes into Redis (entries by age, leases
 * by what is left of them), then the double count begins. */
static void try_return(a2g_qredis *q, int64_t now)
{
    if (now < q->next_retry)
        return;
    q->next_retry = now + q->cfg.retry_ms;
    a2g_error err;
    a2g_qwindow snap, *w = &q->local;
    if (q->fb) {
        if (a2g_qfile_snapshot(q->fb, &snap, &err) != 0)
            return;
        w = &snap;
    } else {
        a2g_qwin_prune(&q->local, now, NULL);
    }
    int n = w->ne + w->nl;
    const char **args = malloc((size_t)(4 + 3 * 18) * sizeof *args);
    char (*nums)[24] = malloc((size_t)(4 + 2 * 18) * sizeof *nums);
    int ok = args && nums;
    if (ok) {
        snprintf(nums[0], 24, RNUM, q->cfg.q.window_ms);
        snprintf(nums[1], 24, RNUM, q->cfg.q.margin_ms);
        snprintf(nums[2], 24, RNUM, q->cfg.q.lease_ms);
        snprintf(nums[3], 24, "%016" PRIx64, a2g_qrandom_id());
        for (int j = 0; j < 4; j++)
            args[j] = nums[j];
        const char *keys[3] = { q->keys[K_DONE], q->keys[K_LIVE], q->keys[K_EPOCH] };
        /* in chunks of 18, so that a script's arguments stay few; at least one call,
         * which is the proof that Redis answers */
        int i = 0;
        do {
            int a = 4, k = 4;
            for (int c = 0; c < 18 && i < n; c++, i++) {
                int64_t rel;
                uint64_t id;
                if (i < w->ne) {
                    args[a++] = "e";
                    id = w->e[i].id;
                    rel = now - w->e[i].t;
                } else {
                    args[a++] = "l";
                    id = w->l[i - w->ne].id;
                    rel = w->l[i - w->ne].end - now;
                }
                snprintf(nums[k], 24, "%016" PRIx64, id);
                args[a++] = nums[k++];
                snprintf(nums[k], 24, RNUM, rel < 0 ? 0 : rel);
                args[a++] = nums[k++];
            }
            redisReply *r = run(q, A2G_QS_REPLAY, 3, keys, a, args, &err);
            ok = r != NULL;
            if (r && r->type == REDIS_REPLY_STRING && r->len < sizeof q->epoch)
                memcpy(q->epoch, r->str, r->len + 1); /* the window Redis holds now */
            if (r)
                freeReplyObject(r);
        } while (ok && i < n);
    }
    free(args);
    free(nums);
    if (q->fb)
        a2g_qwin_free(&snap);
    if (!ok)
        return;
    q->mode = A2G_QM_DUAL;
    /* Any host's request that only a local window knows was admitted or renewed before
     * every host had tried Redis again (a retry interval), so it has ended by a lease
     * after that and left the window a window later: until then, both count. */
    int64_t dual = now + q->cfg.retry_ms + q->cfg.q.lease_ms + q->cfg.q.window_ms +
                   q->cfg.q.margin_ms;
    q->dual_until = dual > q->hold_until ? dual : q->hold_until;
    for (int i = 0; i < q->nown; i++) /* Redis has them now: tell it their ends */
        if (q->own[i].where & WHERE_LOCAL)
            q->own[i].where |= WHERE_REDIS;
    q->returns++;
    char msg[200];
    snprintf(msg, sizeof msg, "Redis at %.100s answers again: %d local entries written into it; "
             "both windows count for %" PRId64 " ms", q->where, n, q->dual_until - now);
    push_event(q, 1, msg);
}

static void update_mode(a2g_qredis *q, int64_t now)
{
    if (q->mode == A2G_QM_FALLBACK)
        try_return(q, now);
    if (q->mode == A2G_QM_DUAL && now >= q->dual_until)
        q->mode = A2G_QM_REDIS;
}

static int redis_lease_op(a2g_qredis *q, a2g_qscript s, uint64_t id, a2g_error *err);

/* Redis's acquire: 1 admitted, 0 wait (*wait), -1 failed (err), 2 Redis no longer
 * holds the window it held (its epoch changed: nothing admitted, err says so). */
static int redis_acquire(a2g_qredis *q, uint64_t id, int64_t *wait, a2g_error *err)
{
    char limit[16], window[24], margin[24], lease[24], ids[24], fresh[24];
    snprintf(limit, sizeof limit, "%d", q->cfg.q.limit);
    snprintf(window, sizeof window, RNUM, q->cfg.q.window_ms);
    snprintf(margin, sizeof margin, RNUM, q->cfg.q.margin_ms);
    snprintf(lease, sizeof lease, RNUM, q->cfg.q.lease_ms);
    snprintf(ids, sizeof ids, "%016" PRIx64, id);
    snprintf(fresh, sizeof fresh, "%016" PRIx64, a2g_qrandom_id());
    const char *keys[4] = { q->keys[K_DONE], q->keys[K_LIVE], q->keys[K_BLOCK],
                            q->keys[K_EPOCH] };
    const char *args[6] = { limit, window, margin, lease, ids, fresh };
    redisReply *r = run(q, A2G_QS_ACQUIRE, 4, keys, 6, args, err);
    if (!r)
        return -1;
    long long admitted = int_at(r, 0), w = int_at(r, 1);
    char epoch[17] = "";
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 2 &&
        r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len < sizeof epoch)
        memcpy(epoch, r->element[2]->str, r->element[2]->len + 1);
    freeReplyObject(r);
    if (q->epoch[0] && strcmp(epoch, q->epoch) != 0) {
        snprintf(q->epoch, sizeof q->epoch, "%s", epoch);
        if (admitted == 1) {
            a2g_error ignored;
            redis_lease_op(q, A2G_QS_CANCEL, id, &ignored);
        }
        a2g_fail(err, A2G_NETWORK, 0, "Redis at %s no longer holds the window it held "
                 "(restarted without its data?)", q->where);
        return 2;
    }
    snprintf(q->epoch, sizeof q->epoch, "%s", epoch);
    if (admitted == 1)
        return 1;
    if (admitted != 0 || w < 1)
        return redis_failed(q, err, "the acquire script gave an answer of another shape");
    *wait = w;
    return 0;
}

static int redis_lease_op(a2g_qredis *q, a2g_qscript s, uint64_t id, a2g_error *err)
{
    char ids[24], window[24], margin[24], lease[24];
    snprintf(ids, sizeof ids, "%016" PRIx64, id);
    snprintf(window, sizeof window, RNUM, q->cfg.q.window_ms);
    snprintf(margin, sizeof margin, RNUM, q->cfg.q.margin_ms);
    snprintf(lease, sizeof lease, RNUM, q->cfg.q.lease_ms);
    const char *keys[2] = { q->keys[K_DONE], q->keys[K_LIVE] };
    const char *args[4] = { ids, window, margin, lease };
    redisReply *r = run(q, s, 2, keys, 4, args, err);
    if (!r)
        return -1;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return (int)v;
}

/* The engine ----------------------------------------------------------------------------- */

a2g_qredis *a2g_qredis_open(const a2g_qredis_config *cfg, a2g_error *err)
{
    const a2g_qconfig *c = &cfg->q;
    if (c->limit < 1 || c->window_ms < 1 || c->margin_ms < 0 || c->lease_ms < 1 ||
        cfg->expected_hosts < 1 || cfg->retry_ms < 1 || cfg->connect_timeout_ms < 1 ||
        cfg->command_timeout_ms < 1 || !cfg->url || !cfg->account || !cfg->account[0]) {
        a2g_fail(err, A2G_INVALID, 0, "quota: limit, window, lease, expected_hosts, timeouts "
                 "and the retry interval must be positive; url and account are needed");
        return NULL;
    }
    for (int i = 0; i < A2G_QS_COUNT; i++)
        if (!cfg->scripts[i]) {
            a2g_fail(err, A2G_INVALID, 0, "quota: the script '%s' is missing", script_names[i]);
            return NULL;
        }
    a2g_qredis *q = calloc(1, sizeof *q);
    if (!q) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    q->cfg = *cfg;
    q->cfg.url = q->cfg.account = q->cfg.fallback_dir = NULL; /* not kept: may hold secrets */
    if (q->cfg.login_ttl_ms <= 0)
        q->cfg.login_ttl_ms = 30000;
    q->share = cfg->fallback_limit >= 0 ? cfg->fallback_limit : c->limit / cfg->expected_hosts;
    if (q->share > c->limit)
        q->share = c->limit;
    a2g_qwin_init(&q->local, q->share > 0 ? q->share : 1, c->window_ms, c->margin_ms);
    if (parse_url(q, cfg->url, err) != 0)
        goto fail;
    for (int i = 0; i < K_COUNT; i++) {
        size_t n = strlen(cfg->account) + 16;
        if (!(q->keys[i] = malloc(n)))
            goto nomem;
        snprintf(q->keys[i], n, "as2g:{%s}:%s", cfg->account, key_names[i]);
    }
    for (int i = 0; i < A2G_QS_COUNT; i++)
        if (!(q->scripts[i] = strdup(cfg->scripts[i])))
            goto nomem;
    if (cfg->fallback_dir) {
        a2g_qconfig fc = *c;
        fc.limit = q->share > 0 ? q->share : 1;
        if (!(q->fb = a2g_qfile_open(cfg->fallback_dir, &fc, err)))
            goto fail;
    }
    snprintf(q->login_owner, sizeof q->login_owner, "%016" PRIx64, a2g_qrandom_id());
    return q;
nomem:
    a2g_fail(err, A2G_IO, 0, "out of memory");
fail:
    a2g_qredis_close(q);
    return NULL;
}

void a2g_qredis_close(a2g_qredis *q)
{
    if (!q)
        return;
    a2g_qredis_login_done(q);
    drop_connection(q);
    a2g_qfile_close(q->fb);
    a2g_qwin_free(&q->local);
    for (int i = 0; i < K_COUNT; i++)
        free(q->keys[i]);
    for (int i = 0; i < A2G_QS_COUNT; i++)
        free(q->scripts[i]);
    if (q->password) /* wiped: a secret */
        memset(q->password, 0, strlen(q->password));
    free(q->host);
    free(q->path);
    free(q->user);
    free(q->password);
    free(q->own);
    free(q);
}

int a2g_qredis_acquire(a2g_qredis *q, uint64_t *lease, int64_t *wait_ms, a2g_error *err)
{
    int64_t now = now_of(q);
    uint64_t id = a2g_qrandom_id();
    *lease = 0;
    *wait_ms = 0;
    update_mode(q, now);
    if (q->mode == A2G_QM_REDIS) {
        a2g_error rerr;
        int rc = redis_acquire(q, id, wait_ms, &rerr);
        if (rc == 1) {
            *lease = id;
            return add_own(q, id, WHERE_REDIS, now, err);
        }
        if (rc == 0)
            return 0;
        enter_fallback(q, now, rerr.message); /* a failure, or a window lost (rc 2) */
    }
    if (q->share == 0) { /* no local share: Redis alone admits, after the double count */
        int64_t until = q->mode == A2G_QM_FALLBACK ? q->next_retry : q->dual_until;
        *wait_ms = until - now > 1 ? until - now : 1;
        return 0;
    }
    int64_t wait;
    if (local_acquire(q, id, now, &wait, err) != 0)
        return -1;
    if (wait > 0) {
        /* in fallback, Redis is tried again no later than the wait says */
        if (q->mode == A2G_QM_FALLBACK && q->next_retry - now < wait)
            wait = q->next_retry - now > 1 ? q->next_retry - now : 1;
        *wait_ms = wait;
        return 0;
    }
    if (q->mode == A2G_QM_DUAL) {
        a2g_error rerr;
        int rc = redis_acquire(q, id, wait_ms, &rerr);
        if (rc != 1) {
            if (local_cancel(q, id, err) != 0)
                return -1;
            if (rc == 0)
                return 0;
            enter_fallback(q, now, rerr.message);
            *wait_ms = q->next_retry - now > 1 ? q->next_retry - now : 1;
            return 0;
        }
        *lease = id;
        return add_own(q, id, WHERE_REDIS | WHERE_LOCAL, now, err);
    }
    *lease = id;
    return add_own(q, id, WHERE_LOCAL, now, err);
}

/* The caller's live lease `lease`, after the mode is brought up to `now` (a host in
 * fallback tries Redis at every call, not only acquire; that may move the lease, so it
 * is looked up again); NULL with err set when it is not one of this engine's. */
static own_lease *own_at(a2g_qredis *q, uint64_t lease, int64_t now, a2g_error *err)
{
    own_lease *o = find_own(q, lease);
    if (o) {
        update_mode(q, now);
        o = find_own(q, lease);
    }
    if (!o)
        a2g_fail(err, A2G_INVALID, 0, "quota: not a live lease of this engine");
    return o;
}

int a2g_qredis_release(a2g_qredis *q, uint64_t lease, a2g_error *err)
{
    int64_t now = now_of(q);
    own_lease *o = own_at(q, lease, now, err);
    if (!o)
        return -1;
    int where = o->where;
    drop_own(q, o);
    if ((where & WHERE_REDIS) && q->mode != A2G_QM_FALLBACK) {
        a2g_error rerr;
        if (redis_lease_op(q, A2G_QS_RELEASE, lease, &rerr) < 0) {
            enter_fallback(q, now, rerr.message);
            where |= WHERE_LOCAL; /* counted in the local share, released now */
        }
    } else if (where & WHERE_REDIS) {
        where |= WHERE_LOCAL; /* Redis counts it until its lease ends; locally from now */
    }
    return (where & WHERE_LOCAL) ? local_release(q, lease, now, err) : 0;
}

int a2g_qredis_cancel(a2g_qredis *q, uint64_t lease, a2g_error *err)
{
    own_lease *o = own_at(q, lease, now_of(q), err);
    if (!o)
        return -1;
    int where = o->where;
    drop_own(q, o);
    if ((where & WHERE_REDIS) && q->mode != A2G_QM_FALLBACK) {
        a2g_error rerr;
        if (redis_lease_op(q, A2G_QS_CANCEL, lease, &rerr) < 0)
            enter_fallback(q, now_of(q), rerr.message); /* Redis counts it to its end */
    }
    return (where & WHERE_LOCAL) ? local_cancel(q, lease, err) : 0;
}

int a2g_qredis_renew(a2g_qredis *q, uint64_t lease, a2g_error *err)
{
    int64_t now = now_of(q);
    own_lease *o = own_at(q, lease, now, err);
    if (!o)
        return -1;
    int live = 0;
    if ((o->where & WHERE_REDIS) && q->mode != A2G_QM_FALLBACK) {
        a2g_error rerr;
        int rc = redis_lease_op(q, A2G_QS_RENEW, lease, &rerr);
        if (rc < 0)
            enter_fallback(q, now, rerr.message);
        else
            live |= rc == 1;
    }
    if ((o->where & WHERE_REDIS) && q->mode == A2G_QM_FALLBACK && !(o->where & WHERE_LOCAL)) {
        /* Redis cannot be told: from now on the host's share counts it */
        if (local_adopt(q, lease, now, err) != 0)
            return -1;
        o->where |= WHERE_LOCAL;
        live = 1;
    } else if (o->where & WHERE_LOCAL) {
        if (q->fb) {
            int rc = a2g_qfile_renew(q->fb, lease, err);
            if (rc < 0)
                return -1;
            live |= rc == 0;
        } else {
            live |= a2g_qwin_renew(&q->local, lease, now + q->cfg.q.lease_ms);
        }
    }
    o->end = now + q->cfg.q.lease_ms;
    return live ? 0 : 1;
}

int a2g_qredis_block(a2g_qredis *q, int64_t ms, a2g_error *err)
{
    int64_t now = now_of(q);
    update_mode(q, now);
    if (q->mode != A2G_QM_FALLBACK) {
        char v[24];
        snprintf(v, sizeof v, RNUM, ms);
        const char *keys[1] = { q->keys[K_BLOCK] };
        const char *args[1] = { v };
        a2g_error rerr;
        redisReply *r = run(q, A2G_QS_BLOCK, 1, keys, 1, args, &rerr);
        if (r)
            freeReplyObject(r);
        else
            enter_fallback(q, now, rerr.message);
    }
    if (q->fb)
        return a2g_qfile_block(q->fb, ms, err);
    if (now + ms > q->local.blocked_until)
        q->local.blocked_until = now + ms;
    return 0;
}

int a2g_qredis_state(a2g_qredis *q, a2g_qredis_info *st, a2g_error *err)
{
    memset(st, 0, sizeof *st);
    int64_t now = now_of(q);
    update_mode(q, now);
    if (q->mode != A2G_QM_FALLBACK) {
        char limit[16], span[24];
        snprintf(limit, sizeof limit, "%d", q->cfg.q.limit);
        snprintf(span, sizeof span, RNUM, q->cfg.q.window_ms + q->cfg.q.margin_ms);
        const char *keys[3] = { q->keys[K_DONE], q->keys[K_LIVE], q->keys[K_BLOCK] };
        const char *args[2] = { limit, span };
        a2g_error rerr;
        redisReply *r = run(q, A2G_QS_STATE, 3, keys, 2, args, &rerr);
        if (r) {
            st->window.entries = (int)int_at(r, 0);
            st->window.leases = (int)int_at(r, 1);
            st->window.wait_ms = int_at(r, 2);
            st->window.now_ms = int_at(r, 3);
            st->window.limit = q->cfg.q.limit;
            freeReplyObject(r);
        } else {
            enter_fallback(q, now, rerr.message);
        }
    }
    if (q->mode == A2G_QM_FALLBACK) {
        if (q->fb) {
            if (a2g_qfile_state(q->fb, &st->window, err) != 0)
                return -1;
        } else {
            a2g_qwin_prune(&q->local, now, NULL);
            a2g_qwin_count(&q->local, now, &st->window.entries, &st->window.leases);
            st->window.wait_ms = a2g_qwin_wait(&q->local, now);
            st->window.now_ms = now;
        }
        st->window.limit = q->share;
        if (q->hold_until > now && q->hold_until - now > st->window.wait_ms)
            st->window.wait_ms = q->hold_until - now;
    }
    st->mode = q->mode;
    st->hold_ms = q->hold_until > now ? q->hold_until - now : 0;
    st->dual_ms = q->mode == A2G_QM_DUAL && q->dual_until > now ? q->dual_until - now : 0;
    st->fallbacks = q->fallbacks;
    st->returns = q->returns;
    st->errors = q->errors;
    snprintf(st->last_error, sizeof st->last_error, "%s", q->last_error);
    return 0;
}

/* The token ------------------------------------------------------------------------------- */

int a2g_qredis_token(a2g_qredis *q, char *buf, size_t cap, int64_t *expiry, a2g_error *err)
{
    int64_t now = now_of(q);
    update_mode(q, now);
    if (q->mode != A2G_QM_FALLBACK) {
        a2g_error rerr;
        const char *argv[2] = { "GET", q->keys[K_TOKEN] };
        size_t lens[2] = { 3, strlen(q->keys[K_TOKEN]) };
        redisReply *r = connect_redis(q, &rerr) == 0 ? command(q, 2, argv, lens, &rerr) : NULL;
        if (r) {
            int found = 0;
            if (r->type == REDIS_REPLY_STRING) {
                const char *sp = memchr(r->str, ' ', r->len);
                if (sp && sp > r->str && (size_t)(sp - r->str) < cap) {
                    memcpy(buf, r->str, (size_t)(sp - r->str));
                    buf[sp - r->str] = '\0';
                    *expiry = strtoll(sp + 1, NULL, 10);
                    found = 1;
                }
            }
            freeReplyObject(r);
            return found;
        }
        enter_fallback(q, now, rerr.message);
    }
    return q->fb ? a2g_qfile_token(q->fb, buf, cap, expiry, err) : 0;
}

int a2g_qredis_set_token(a2g_qredis *q, const char *token, int64_t expiry, a2g_error *err)
{
    int64_t now = now_of(q);
    update_mode(q, now);
    if (q->mode != A2G_QM_FALLBACK) {
        size_t n = strlen(token) + 32;
        char *v = malloc(n), px[24];
        if (!v)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
        snprintf(v, n, "%s %" PRId64, token, expiry);
        /* Redis drops it when it expires (a day at most; an hour when unknown) */
        int64_t ttl = expiry > 0 ? expiry - a2g_wall_ms() : 3600000;
        if (ttl < 1000)
            ttl = 1000;
        if (ttl > 86400000)
            ttl = 86400000;
        snprintf(px, sizeof px, RNUM, ttl);
        const char *argv[5] = { "SET", q->keys[K_TOKEN], v, "PX", px };
        size_t lens[5] = { 3, strlen(q->keys[K_TOKEN]), strlen(v), 2, strlen(px) };
        a2g_error rerr;
        redisReply *r = connect_redis(q, &rerr) == 0 ? command(q, 5, argv, lens, &rerr) : NULL;
        memset(v, 0, n);
        free(v);
        if (r)
            freeReplyObject(r);
        else
            enter_fallback(q, now, rerr.message);
    }
    /* the fallback folder keeps it too, for an outage */
    return q->fb ? a2g_qfile_set_token(q->fb, token, expiry, err) : 0;
}

int a2g_qredis_login(a2g_qredis *q, a2g_error *err)
{
    int64_t now = now_of(q);
    update_mode(q, now);
    if (q->login_redis || q->login_file)
        return 1;
    if (q->mode != A2G_QM_FALLBACK) {
        char px[24];
        snprintf(px, sizeof px, RNUM, q->cfg.login_ttl_ms);
        const char *argv[6] = { "SET", q->keys[K_LOGIN], q->login_owner, "NX", "PX", px };
        size_t lens[6] = { 3, strlen(q->keys[K_LOGIN]), strlen(q->login_owner), 2, 2,
                           strlen(px) };
        a2g_error rerr;
        redisReply *r = connect_redis(q, &rerr) == 0 ? command(q, 6, argv, lens, &rerr) : NULL;
        if (r) {
            int mine = r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            q->login_redis = mine;
            return mine;
        }
        enter_fallback(q, now, rerr.message);
    }
    if (!q->fb)
        return 1; /* Redis is out: this process logs in for itself */
    int rc = a2g_qfile_login(q->fb, err);
    q->login_file = rc == 1;
    return rc;
}

void a2g_qredis_login_done(a2g_qredis *q)
{
    if (q->login_redis && q->ctx) {
        const char *keys[1] = { q->keys[K_LOGIN] };
        const char *args[1] = { q->login_owner };
        a2g_error rerr;
        redisReply *r = run(q, A2G_QS_LOGIN_DONE, 1, keys, 1, args, &rerr);
        if (r)
            freeReplyObject(r);
        /* failed: the lock's own time ends it */
    }
    q->login_redis = 0;
    if (q->login_file && q->fb)
        a2g_qfile_login_done(q->fb);
    q->login_file = 0;
}
