/* See qwindow.h. */
#include "qwindow.h"

#include <stdlib.h>
#include <string.h>

void a2g_qwin_init(a2g_qwindow *w, int limit, int64_t window_ms, int64_t margin_ms)
{
    memset(w, 0, sizeof *w);
    w->limit = limit;
    w->window_ms = window_ms;
    w->margin_ms = margin_ms;
}

void a2g_qwin_free(a2g_qwindow *w)
{
    free(w->e);
    free(w->l);
    w->e = NULL;
    w->l = NULL;
    w->ne = w->cap_e = w->nl = w->cap_l = 0;
}

void a2g_qwin_clear(a2g_qwindow *w)
{
    w->ne = w->nl = 0;
    w->blocked_until = 0;
}

static int grow(void **p, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return 0;
    int n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int find_entry(const a2g_qwindow *w, uint64_t id)
{
    for (int i = 0; i < w->ne; i++)
        if (w->e[i].id == id)
            return i;
    return -1;
}

static int find_lease(const a2g_qwindow *w, uint64_t id)
{
    for (int i = 0; i < w->nl; i++)
        if (w->l[i].id == id)
            return i;
    return -1;
}

int a2g_qwin_put_entry(a2g_qwindow *w, uint64_t id, int64_t t)
{
    int i = find_entry(w, id);
    if (i >= 0) {
        if (t > w->e[i].t) /* the later stamp is the safe one */
            w->e[i].t = t;
        return 0;
    }
    if (grow((void **)&w->e, &w->cap_e, w->ne + 1, sizeof *w->e) != 0)
        return -1;
    w->e[w->ne].id = id;
    w->e[w->ne].t = t;
    w->ne++;
    return 0;
}

int a2g_qwin_put_lease(a2g_qwindow *w, const a2g_qlease *lease)
{
    int i = find_lease(w, lease->id);
    if (i >= 0) {
        if (lease->end > w->l[i].end)
            w->l[i].end = lease->end;
        return 0;
    }
    if (grow((void **)&w->l, &w->cap_l, w->nl + 1, sizeof *w->l) != 0)
        return -1;
    w->l[w->nl++] = *lease;
    return 0;
}

static void drop_lease(a2g_qwindow *w, int i)
{
    w->l[i] = w->l[--w->nl];
}

int a2g_qwin_prune(a2g_qwindow *w, int64_t now,
                   int (*gone)(const struct a2g_qlease *lease, int64_t now))
{
    int ended = 0;
    for (int i = 0; i < w->nl;) {
        a2g_qlease *l = &w->l[i];
        int64_t at = 0;
        if (l->end <= now)
            at = l->end;
        else if (gone && l->pidns && gone(l, now))
            at = now;
        if (at) {
            /* entries only grow by what leases give up: room for it was counted */
            if (a2g_qwin_put_entry(w, l->id, at) != 0)
                break; /* out of memory: keep the lease, which counts all the same */
            drop_lease(w, i);
            ended++;
        } else {
            i++;
        }
    }
    for (int i = 0; i < w->ne;) {
        if (w->e[i].t + w->window_ms + w->margin_ms <= now)
            w->e[i] = w->e[--w->ne];
        else
            i++;
    }
    return ended;
}

int a2g_qwin_count(const a2g_qwindow *w, int64_t now, int *entries, int *leases)
{
    int n = 0;
    for (int i = 0; i < w->ne; i++)
        if (w->e[i].t + w->window_ms + w->margin_ms > now)
            n++;
    if (entries)
        *entries = n;
    if (leases)
        *leases = w->nl;
    return n + w->nl;
}

int64_t a2g_qwin_wait(const a2g_qwindow *w, int64_t now)
{
    int64_t wait = w->blocked_until > now ? w->blocked_until - now : 0;
    int used = a2g_qwin_count(w, now, NULL, NULL);
    if (used >= w->limit) {
        /* the slots free one by one as entries leave the window; a live lease frees
         * one no sooner than a window after its release, so never before that */
        int64_t free_at = now + w->window_ms + w->margin_ms;
        int over = used - w->limit; /* this many must leave before one is free */
        /* the (over+1)-th oldest entry's exit; entries are few (about `limit`) */
        int64_t *ts = NULL;
        if (w->ne > 0 && (ts = malloc((size_t)w->ne * sizeof *ts)) != NULL) {
            int n = 0;
            for (int i = 0; i < w->ne; i++)
                if (w->e[i].t + w->window_ms + w->margin_ms > now)
                    ts[n++] = w->e[i].t + w->window_ms + w->margin_ms;
            if (over < n) {
                for (int k = 0; k <= over; k++) { /* partial selection sort */
                    int m = k;
                    for (int j = k + 1; j < n; j++)
                        if (ts[j] < ts[m])
                            m = j;
                    int64_t x = ts[k];
                    ts[k] = ts[m];
                    ts[m] = x;
                }
                if (ts[over] < free_at)
                    free_at = ts[over];
            }
            free(ts);
        }
        if (free_at - now > wait)
            wait = free_at - now;
        if (wait < 1)
            wait = 1;
    }
    return wait;
}

int64_t a2g_qwin_acquire(a2g_qwindow *w, int64_t now, int64_t lease_ms, uint64_t id,
                         int64_t pid, uint64_t pidns)
{
    int64_t wait = a2g_qwin_wait(w, now);
    if (wait > 0)
        return wait;
    a2g_qlease l = { id, now, now + lease_ms, pid, pidns };
    return a2g_qwin_put_lease(w, &l) == 0 ? 0 : -1;
}

int a2g_qwin_release(a2g_qwindow *w, uint64_t id, int64_t now)
{
    int i = find_lease(w, id);
    if (i >= 0)
        drop_lease(w, i);
    int j = find_entry(w, id);
    if (j >= 0) {
        w->e[j].t = now > w->e[j].t ? now : w->e[j].t;
        return 0;
    }
    return a2g_qwin_put_entry(w, id, now);
}

int a2g_qwin_cancel(a2g_qwindow *w, uint64_t id)
{
    int i = find_lease(w, id);
    if (i < 0)
        return 0;
    drop_lease(w, i);
    return 1;
}

int a2g_qwin_renew(a2g_qwindow *w, uint64_t id, int64_t end)
{
    int i = find_lease(w, id);
    if (i < 0)
        return 0;
    if (end > w->l[i].end)
        w->l[i].end = end;
    return 1;
}
