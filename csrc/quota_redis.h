/* The Redis quota engine: one account's window shared by processes on any number of
 * hosts through one Redis (7.x), and the account's token with it. Each acquire and
 * release is one atomic script (their text is lua/as2gateway/quota_scripts.lua, handed
 * in by the binding) over two sorted sets per account: `done` (requests released,
 * scored by their release time) and `live` (leases, scored by their end). Redis's
 * TIME is the only clock in the window, so the hosts' clocks may disagree.
 *
 * When a Redis call fails, the engine never admits on a guess: it falls back to a
 * local window of `fallback_limit` (default limit / expected_hosts) requests, kept in
 * process or, with `fallback_dir`, in a file engine shared by the host's processes;
 * it admits nothing there until a lease and a window after the failure (the requests
 * Redis admitted before it, of every host, have then left the gateway's window), and
 * tries Redis again every `retry_ms`. When Redis answers, the local window's entries
 * and leases are written into it (by age, on Redis's clock) and, until a window after
 * that (and the hold's end), a request needs a slot in both. docs/quota.md has the
 * rule and its proof sketch. Pure C on hiredis. */
#ifndef A2G_QUOTA_REDIS_H
#define A2G_QUOTA_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "quota_file.h"

#pragma GCC visibility push(hidden)

/* The scripts, by name (the fields of quota_scripts.lua), only ever appended. */
#define A2G_QSCRIPTS(X) \
    X(ACQUIRE, "acquire") X(RELEASE, "release") X(RENEW, "renew") X(CANCEL, "cancel") \
    X(REPLAY, "replay") X(BLOCK, "block") X(STATE, "state") X(LOGIN_DONE, "login_done")

typedef enum a2g_qscript {
#define A2G_QS_ENUM(id, name) A2G_QS_##id,
    A2G_QSCRIPTS(A2G_QS_ENUM)
#undef A2G_QS_ENUM
    A2G_QS_COUNT
} a2g_qscript;

const char *a2g_qscript_name(a2g_qscript s);

typedef struct a2g_qredis_config {
    a2g_qconfig q;                /* limit, window, margin, lease, clock offset */
    const char *url;              /* redis://[[user]:password@]host[:port][/db] or
                                     unix://[[user]:password@]/path[?db=N] */
    const char *account;          /* names the keys: as2g:{account}:done, ... */
    int64_t connect_timeout_ms;   /* each connection attempt */
    int64_t command_timeout_ms;   /* each command */
    int64_t retry_ms;             /* in fallback, how often Redis is tried again */
    int64_t login_ttl_ms;         /* the login lock's life: the longest login */
    int expected_hosts;           /* hosts sharing the account (for the share) */
    int fallback_limit;           /* the local share; < 0: limit / expected_hosts */
    const char *fallback_dir;     /* a file engine for the local window; NULL: in process */
    const char *scripts[A2G_QS_COUNT];
} a2g_qredis_config;

typedef enum a2g_qmode {
    A2G_QM_REDIS,     /* the window is Redis's */
    A2G_QM_FALLBACK,  /* Redis failed: the local share (after the hold) */
    A2G_QM_DUAL       /* Redis is back: a slot in both until the local window is old */
} a2g_qmode;

typedef struct a2g_qevent {
    int back;              /* 0: fallback entered; 1: Redis used again */
    int64_t at_ms;         /* the local clock */
    char message[512];     /* why (the failure, without any secret) */
} a2g_qevent;

typedef struct a2g_qredis_info {
    a2g_qstate window;     /* of the window in force */
    a2g_qmode mode;
    int64_t hold_ms;       /* left of the hold after a failure (0: none) */
    int64_t dual_ms;       /* left of the double count after Redis came back */
    long fallbacks;        /* times fallback was entered */
    long returns;          /* times Redis was used again */
    long errors;           /* failed Redis calls */
    char last_error[512];
} a2g_qredis_info;

typedef struct a2g_qredis a2g_qredis;

/* NULL with err: A2G_INVALID for a bad config or URL (the message never holds the
 * password), A2G_IO for a fallback folder that cannot be used. It does not connect:
 * the first call does (and falls back when it cannot). */
a2g_qredis *a2g_qredis_open(const a2g_qredis_config *cfg, a2g_error *err);
void a2g_qredis_close(a2g_qredis *q);

/* As a2g_qfile_acquire. A failed Redis call is no error here: the engine falls back
 * (an event) and answers from the local window. -1 only for a local failure (the
 * fallback file) or no memory. */
int a2g_qredis_acquire(a2g_qredis *q, uint64_t *lease, int64_t *wait_ms, a2g_error *err);
/* -1 with A2G_INVALID for a lease this engine did not give (or already released). */
int a2g_qredis_release(a2g_qredis *q, uint64_t lease, a2g_error *err);
int a2g_qredis_cancel(a2g_qredis *q, uint64_t lease, a2g_error *err);
int a2g_qredis_renew(a2g_qredis *q, uint64_t lease, a2g_error *err);
int a2g_qredis_block(a2g_qredis *q, int64_t ms, a2g_error *err);
int a2g_qredis_state(a2g_qredis *q, a2g_qredis_info *st, a2g_error *err);
/* The next event not yet taken: 1 with *ev, 0 when none. */
int a2g_qredis_event(a2g_qredis *q, a2g_qevent *ev);

/* The token through Redis (in fallback: the fallback folder's, or none). As the file
 * engine's; a2g_qredis_login takes the login lock (SET NX PX login_ttl_ms). */
int a2g_qredis_token(a2g_qredis *q, char *buf, size_t cap, int64_t *expiry, a2g_error *err);
int a2g_qredis_set_token(a2g_qredis *q, const char *token, int64_t expiry, a2g_error *err);
int a2g_qredis_login(a2g_qredis *q, a2g_error *err);
void a2g_qredis_login_done(a2g_qredis *q);

#pragma GCC visibility pop

#endif
