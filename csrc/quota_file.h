/* The file quota engine: one account's window (qwindow.h) shared by every process of
 * one host through a small state file in a folder of its own, and the account's
 * token beside it. Each call locks `<dir>/quota.lock` (flock, held for microseconds),
 * reads `<dir>/quota.state`, decides, writes the new state to a temporary file and
 * renames it into place, so a process killed at any moment leaves the old state or
 * the new one, never a torn one (each state also carries a checksum; one that fails
 * it is replaced by a conservative one: the window counted full until a lease and a
 * window from now). Time is CLOCK_BOOTTIME, which every process of the host shares;
 * the state records the boot it was written in, and a state of an earlier boot is
 * carried over by wall-clock age (leases of that boot become entries released now).
 * The token is `<dir>/token` (mode 0600, written to a temporary file and renamed);
 * one process at a time logs in, under a flock on `<dir>/login.lock`. Pure C. */
#ifndef A2G_QUOTA_FILE_H
#define A2G_QUOTA_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#pragma GCC visibility push(hidden)

typedef struct a2g_qconfig {
    int limit;               /* requests per window (1 to 1e6) */
    int64_t window_ms;       /* the gateway's window */
    int64_t margin_ms;       /* added to the window: the gateway's clock is not ours */
    int64_t lease_ms;        /* how long an admission counts as in flight unless
                                released or renewed: the bound of one transfer */
    int64_t lock_timeout_ms; /* longest wait for the state lock (file engine) */
    int64_t clock_offset_ms; /* added to the local clock: simulates another host's */
} a2g_qconfig;

/* What an engine reports of itself (a2g_qfile_state, a2g_qredis_state). */
typedef struct a2g_qstate {
    int entries;          /* requests in the window, released */
    int leases;           /* admitted and not released */
    int limit;            /* of the window in force (the local share in fallback) */
    int64_t wait_ms;      /* until an acquire could be admitted: 0 now */
    int64_t now_ms;       /* the engine's clock */
    long resets;          /* states found corrupt and replaced (file) */
    long reaped;          /* leases ended by their end or their holder's death */
} a2g_qstate;

typedef struct a2g_qfile a2g_qfile;

/* The engine's clock: CLOCK_BOOTTIME in ms (shared by the host's processes). */
int64_t a2g_qclock_ms(void);
/* A random 64-bit lease id (getrandom), never 0. */
uint64_t a2g_qrandom_id(void);

/* Opens (creating the folder, mode 0700, one level) the engine on `dir`. NULL with
 * err (A2G_IO) when the folder cannot be used, A2G_INVALID for a bad config. */
a2g_qfile *a2g_qfile_open(const char *dir, const a2g_qconfig *cfg, a2g_error *err);
void a2g_qfile_close(a2g_qfile *q);

/* Asks for a slot now: 0 with *wait_ms == 0 and *lease set (admitted), or 0 with
 * *wait_ms > 0 (nothing admitted: ask again then); -1 with err: A2G_LOCKED (the
 * state stayed locked past lock_timeout_ms), A2G_IO, A2G_INTERRUPTED. Never
 * admits on an error. */
int a2g_qfile_acquire(a2g_qfile *q, uint64_t *lease, int64_t *wait_ms, a2g_error *err);
/* The request of `lease` ended now (its answer came, or it failed). */
int a2g_qfile_release(a2g_qfile *q, uint64_t lease, a2g_error *err);
/* Takes an admission back that sent nothing (the request was abandoned before it
 * went out). */
int a2g_qfile_cancel(a2g_qfile *q, uint64_t lease, a2g_error *err);
/* The transfer of `lease` goes on: its end moves to lease_ms from now. 0 when renewed,
 * 1 when the lease was no longer live (it ran out: it is counted from its end). */
int a2g_qfile_renew(a2g_qfile *q, uint64_t lease, a2g_error *err);
/* No admission for `ms` from now (a 429's Retry-After seen by one process). */
int a2g_qfile_block(a2g_qfile *q, int64_t ms, a2g_error *err);
/* What the window holds now. */
int a2g_qfile_state(a2g_qfile *q, a2g_qstate *st, a2g_error *err);

/* The token: 1 with it copied into buf (NUL-terminated) and *expiry (ms since the
 * epoch, 0: unknown), 0 when there is none, -1 with err. */
int a2g_qfile_token(a2g_qfile *q, char *buf, size_t cap, int64_t *expiry, a2g_error *err);
int a2g_qfile_set_token(a2g_qfile *q, const char *token, int64_t expiry, a2g_error *err);
/* 1: this caller is the one to log in (until a2g_qfile_login_done, its close or its
 * death); 0: another process is logging in: wait for its token. */
int a2g_qfile_login(a2g_qfile *q, a2g_error *err);
void a2g_qfile_login_done(a2g_qfile *q);

/* For the Redis engine's fallback, which keeps its local window in this engine: the
 * whole window, read under the lock (a copy the caller frees with a2g_qwin_free). */
struct a2g_qwindow;
int a2g_qfile_snapshot(a2g_qfile *q, struct a2g_qwindow *out, a2g_error *err);
/* Acquire with a given lease id, and the hold: no admission before `hold_until`. */
int a2g_qfile_acquire_id(a2g_qfile *q, uint64_t id, int64_t hold_until, int64_t *wait_ms,
                         a2g_error *err);
/* Counts a request admitted elsewhere as this host's own lease from now, whatever the
 * window holds (the Redis engine's lease that Redis can no longer be told about). */
int a2g_qfile_adopt(a2g_qfile *q, uint64_t lease, a2g_error *err);

#pragma GCC visibility pop

#endif
