/* The state every shared quota engine keeps for one account: a sliding log of the
 * requests admitted and released (each counts until `window + margin` after its
 * release: the gateway stamped it no later than that) and the leases of those still
 * in flight (each counts until it is released, or until its end: a holder that died
 * mid-transfer gives its slot back then). Admission is exact: a request is admitted
 * only while (entries in the window) + (live leases) < limit. Pure C, no I/O; time
 * is passed in (ms on one clock for all who share the state). quota_file.c keeps it
 * in a file, quota_redis.c as its local fallback window. */
#ifndef A2G_QWINDOW_H
#define A2G_QWINDOW_H

#include <stdint.h>

#pragma GCC visibility push(hidden)

typedef struct a2g_qentry {
    uint64_t id;
    int64_t t;            /* released at (or, for a lease that ran out, its end) */
} a2g_qentry;

typedef struct a2g_qlease {
    uint64_t id;
    int64_t start, end;   /* admitted at; counts as in flight until `end` */
    int64_t pid;          /* the holder, and its pid namespace (the inode of */
    uint64_t pidns;       /* /proc/self/ns/pid; 0: unknown, never checked) */
} a2g_qlease;

typedef struct a2g_qwindow {
    int limit;
    int64_t window_ms, margin_ms;
    a2g_qentry *e;
    int ne, cap_e;
    a2g_qlease *l;
    int nl, cap_l;
    int64_t blocked_until; /* no admission before (a 429's Retry-After, a hold) */
} a2g_qwindow;

void a2g_qwin_init(a2g_qwindow *w, int limit, int64_t window_ms, int64_t margin_ms);
void a2g_qwin_free(a2g_qwindow *w);
void a2g_qwin_clear(a2g_qwindow *w);
/* Drops entries out of the window and turns leases into entries: a lease past its
 * end at its end, one whose holder is gone (`gone(lease, now)` true; NULL: never) now.
 * Returns how many leases were ended so. */
int a2g_qwin_prune(a2g_qwindow *w, int64_t now,
                   int (*gone)(const struct a2g_qlease *lease, int64_t now));
/* 0 when a request may start at `now` (after prune), else the ms until a slot can
 * free at the earliest (a lease frees one no sooner than a window after its
 * release). Does not admit. */
int64_t a2g_qwin_wait(const a2g_qwindow *w, int64_t now);
/* Admits (a lease `id` from now to now + lease_ms) when a2g_qwin_wait is 0: returns 0,
 * else that wait (nothing recorded); -1 when out of memory. */
int64_t a2g_qwin_acquire(a2g_qwindow *w, int64_t now, int64_t lease_ms, uint64_t id,
                         int64_t pid, uint64_t pidns);
/* The request `id` ended at `now`: its lease, if live, becomes an entry released at
 * `now`; an entry it already became (the lease ran out first) moves to `now`; an id
 * seen nowhere is recorded as released now. -1: out of memory. */
int a2g_qwin_release(a2g_qwindow *w, uint64_t id, int64_t now);
/* Takes back an admission that was never used (no request went out): 1 when found. */
int a2g_qwin_cancel(a2g_qwindow *w, uint64_t id);
/* Moves a live lease's end to `end` (never earlier): 1 when found. */
int a2g_qwin_renew(a2g_qwindow *w, uint64_t id, int64_t end);
/* Adds an entry or a lease as is (loading a state, replaying one); -1: no memory. */
int a2g_qwin_put_entry(a2g_qwindow *w, uint64_t id, int64_t t);
int a2g_qwin_put_lease(a2g_qwindow *w, const a2g_qlease *lease);
/* Entries still in the window at `now`, and live leases. */
int a2g_qwin_count(const a2g_qwindow *w, int64_t now, int *entries, int *leases);

#pragma GCC visibility pop

#endif
