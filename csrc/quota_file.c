/* See quota_file.h. The state file, in text (a few kB at most):
 *     as2g-quota 1
 *     boot <boot_id> <boottime ms> <wall-clock ms>   (when it was written)
 *     block <ms>                                     (no admission before)
 *     e <id> <released at>                           (an entry of the window)
 *     l <id> <start> <end> <pid> <pid namespace>     (a live lease)
 *     sum <FNV-1a 64 of the lines above>
 * Why rename and no fsync: a process killed mid-update must not hurt the others, and
 * rename(2) is atomic for them; fsync would only matter for a power loss, after which
 * the boot id differs and the state is carried over by age (a lost or torn file then
 * fails its checksum and is replaced by the conservative state). */
#include "quota_file.h"
#include "qwindow.h"
#include "clock.h"
#include "interrupt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAX (1 << 20) /* a state larger than this is not ours: corrupt */

struct a2g_qfile {
    a2g_qconfig cfg;
    char *dir, *state_path, *tmp_path, *token_path;
    int lock_fd;            /* quota.lock, open for the engine's life */
    int login_fd;           /* login.lock while this caller logs in, else -1 */
    char boot_id[64];
    uint64_t pidns;
    a2g_qwindow w;          /* the state as last read (under the lock) */
    int dirty;              /* the state read was replaced or carried over: write it */
    long resets, reaped;
};

int64_t a2g_qclock_ms(void)
{
    return a2g_boot_ms();
}

uint64_t a2g_qrandom_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            /* no entropy source: time and pid still make ids unique enough per host */
            static uint64_t n;
            id = ((uint64_t)a2g_qclock_ms() << 20) ^ ((uint64_t)getpid() << 40) ^ ++n;
        }
    }
    return id;
}

static int64_t now_of(const a2g_qfile *q)
{
    return a2g_qclock_ms() + q->cfg.clock_offset_ms;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void read_boot_id(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    char buf[64];
    if (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n \t")] = '\0';
        if (buf[0])
            snprintf(out, cap, "%s", buf);
    }
    fclose(f);
}

static uint64_t own_pidns(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static uint64_t pidns_of_engine; /* for the gone() callback, which has no context */

static int holder_gone(const a2g_qlease *l, int64_t now)
{
    /* only a holder of our own pid namespace can be asked; pid reuse errs safe */
    if (l->pidns != pidns_of_engine || l->pid <= 0 || l->pid > INT32_MAX)
        return 0;
    if (kill((pid_t)l->pid, 0) != 0)
        return errno == ESRCH;
    if (now - l->start < 1000)
        return 0; /* a young lease: not worth reading /proc for */
    /* a zombie has ended too (whoever adopted it may reap it late) */
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)l->pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *close = strrchr(stat, ')');
    return close && close[1] == ' ' && close[2] == 'Z';
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Locking ------------------------------------------------------------------------------ */

static int lock_state(a2g_qfile *q, a2g_error *err)
{
    int64_t deadline = a2g_qclock_ms() + q->cfg.lock_timeout_ms;
    long pause = 50;
    for (;;) {
        if (flock(q->lock_fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return a2g_fail(err, A2G_IO, 0, "cannot lock %s/quota.lock: %s", q->dir,
                            strerror(errno));
        if (a2g_interrupt_pending())
            return a2g_fail(err, A2G_INTERRUPTED, 0, "interrupted while waiting for %s",
                            q->dir);
        if (a2g_qclock_ms() >= deadline)
            return a2g_fail(err, A2G_LOCKED, 0,
                            "the quota state in %s stayed locked for %" PRId64 " ms",
                            q->dir, q->cfg.lock_timeout_ms);
        a2g_sleep_ns((int64_t)pause * 1000);
        if (pause < 5000)
            pause *= 2;
    }
}

static void unlock_state(a2g_qfile *q)
{
    flock(q->lock_fd, LOCK_UN);
}

/* The state file ---------------------------------------------------------------------- */

/* The conservative state: nothing known, so the window is taken as full until every
 * request that may be in flight has ended (a lease) and left the window. */
static void conservative(a2g_qfile *q, int64_t now)
{
    a2g_qwin_clear(&q->w);
    q->w.blocked_until = now + q->cfg.lease_ms + q->cfg.window_ms + q->cfg.margin_ms;
    q->resets++;
    q->dirty = 1;
}

static int parse(a2g_qfile *q, char *text, size_t len, int64_t now)
{
    char *sum = NULL;
    for (char *p = text + len; p > text; p--) /* the last line */
        if (p[-1] == '\n' && p < text + len) {
            sum = p;
            break;
        }
    uint64_t want;
    if (!sum || sscanf(sum, "sum %" SCNx64, &want) != 1 || fnv1a(text, (size_t)(sum - text)) != want)
        return -1;
    *sum = '\0';
    char boot[64] = "";
    int64_t boot_ms = 0, boot_wall = 0, block = 0;
    int version = 0, have_boot = 0;
    a2g_qwindow *w = &q->w;
    a2g_qwin_clear(w);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        uint64_t id, ns;
        int64_t a, b, pid;
        if (sscanf(line, "as2g-quota %d", &version) == 1)
            continue;
        if (sscanf(line, "boot %63s %" SCNd64 " %" SCNd64, boot, &boot_ms, &boot_wall) == 3) {
            have_boot = 1;
        } else if (sscanf(line, "block %" SCNd64, &block) == 1) {
        } else if (sscanf(line, "e %" SCNx64 " %" SCNd64, &id, &a) == 2) {
            if (a2g_qwin_put_entry(w, id, a) != 0)
                return -1;
        } else if (sscanf(line, "l %" SCNx64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNu64,
                          &id, &a, &b, &pid, &ns) == 5) {
            a2g_qlease l = { id, a, b, pid, ns };
            if (a2g_qwin_put_lease(w, &l) != 0)
                return -1;
        } else {
            return -1;
        }
    }
    if (version != 1 || !have_boot)
        return -1;
    w->blocked_until = block;
    if (strcmp(boot, q->boot_id) != 0 || strcmp(boot, "unknown") == 0) {
        /* another boot: CLOCK_BOOTTIME started again. Ages carry over by the wall
         * clock (never less than none); its leases' holders are gone, and may have
         * been heard by the gateway until the reboot: released now. */
        int64_t elapsed = a2g_wall_ms() - boot_wall;
        if (elapsed < 0)
            elapsed = 0;
        if (strcmp(boot, q->boot_id) != 0 || boot_ms > now) {
            for (int i = 0; i < w->ne; i++)
                w->e[i].t = now - elapsed - (boot_ms - w->e[i].t);
            for (int i = 0; i < w->nl; i++)
                if (a2g_qwin_put_entry(w, w->l[i].id, now) != 0)
                    return -1;
            w->nl = 0;
            w->blocked_until = block > boot_ms ? now - elapsed + (block - boot_ms) : 0;
            q->dirty = 1;
        }
    }
    /* a stamp from the future (a clock that went back) counts from now: never less */
    for (int i = 0; i < w->ne; i++)
        if (w->e[i].t > now)
            w->e[i].t = now;
    for (int i = 0; i < w->nl; i++)
        if (w->l[i].start > now)
            w->l[i].start = now;
    return 0;
}

static int load(a2g_qfile *q, int64_t now, a2g_error *err)
{
    int fd = open(q->state_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) { /* a new state: nothing admitted yet */
            a2g_qwin_clear(&q->w);
            return 0;
        }
        return a2g_fail(err, A2G_IO, 0, "cannot read %s: %s", q->state_path, strerror(errno));
    }
    struct stat st;
    char *text = NULL;
    ssize_t got = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < STATE_MAX &&
        (text = malloc((size_t)st.st_size + 1)) != NULL) {
        got = 0;
        while (got < st.st_size) {
            ssize_t n = read(fd, text + got, (size_t)(st.st_size - got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += n;
        }
        text[got] = '\0';
    }
    close(fd);
    if (!text || got != st.st_size || parse(q, text, (size_t)got, now) != 0)
        conservative(q, now);
    free(text);
    return 0;
}

static int save(a2g_qfile *q, int64_t now, a2g_error *err)
{
    const a2g_qwindow *w = &q->w;
    size_t cap = 200 + (size_t)w->ne * 48 + (size_t)w->nl * 110;
    char *buf = malloc(cap);
    if (!buf)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    size_t n = (size_t)snprintf(buf, cap, "as2g-quota 1\nboot %s %" PRId64 " %" PRId64
                                "\nblock %" PRId64 "\n",
                                q->boot_id, now, a2g_wall_ms(),
                                w->blocked_until);
    for (int i = 0; i < w->ne; i++)
        n += (size_t)snprintf(buf + n, cap - n, "e %016" PRIx64 " %" PRId64 "\n", w->e[i].id,
                              w->e[i].t);
    for (int i = 0; i < w->nl; i++)
        n += (size_t)snprintf(buf + n, cap - n, "l %016" PRIx64 " %" PRId64 " %" PRId64
                              " %" PRId64 " %" PRIu64 "\n", w->l[i].id, w->l[i].start,
                              w->l[i].end, w->l[i].pid, w->l[i].pidns);
    n += (size_t)snprintf(buf + n, cap - n, "sum %016" PRIx64 "\n", fnv1a(buf, n));
    int fd = open(q->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int ok = fd >= 0;
    for (size_t off = 0; ok && off < n;) {
        ssize_t k = write(fd, buf + off, n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            ok = 0;
        else
            off += (size_t)k;
    }
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    free(buf);
    if (!ok || rename(q->tmp_path, q->state_path) != 0) {
        int e = errno;
        unlink(q->tmp_path);
        return a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", q->state_path, strerror(e));
    }
    return 0;
}

/* One transaction: lock, read, prune, `op`, write, unlock. An op returns 0 when it
 * changed the state (then it is written), 1 when not (a wait, a read: nothing is
 * written, which keeps waiting processes from rewriting the file as they poll; what
 * pruning dropped, the next reader drops again), -1 on an error. */
typedef int (*txn_op)(a2g_qfile *q, int64_t now, void *arg, a2g_error *err);

static int txn(a2g_qfile *q, txn_op op, void *arg, a2g_error *err)
{
    if (lock_state(q, err) != 0)
        return -1;
    int64_t now = now_of(q);
    q->dirty = 0;
    int rc = load(q, now, err);
    if (rc == 0) {
        int reaped = a2g_qwin_prune(&q->w, now, holder_gone);
        q->reaped += reaped;
        rc = op(q, now, arg, err);
        /* a lease ended by its holder's death is stamped now: keep that stamp */
        if ((rc == 0 || (rc == 1 && (q->dirty || reaped))) && save(q, now, err) != 0)
            rc = -1;
    }
    unlock_state(q);
    return rc;
}

/* Open / close ------------------------------------------------------------------------ */

a2g_qfile *a2g_qfile_open(const char *dir, const a2g_qconfig *cfg, a2g_error *err)
{
    if (cfg->limit < 1 || cfg->window_ms < 1 || cfg->margin_ms < 0 || cfg->lease_ms < 1) {
        a2g_fail(err, A2G_INVALID, 0, "quota: limit, window and lease must be positive");
        return NULL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        a2g_fail(err, A2G_IO, 0, "cannot create the quota folder %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        a2g_fail(err, A2G_IO, 0, "the quota folder %s is not a folder", dir);
        return NULL;
    }
    a2g_qfile *q = calloc(1, sizeof *q);
    if (!q) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    q->cfg = *cfg;
    if (q->cfg.lock_timeout_ms <= 0)
        q->cfg.lock_timeout_ms = 5000;
    q->lock_fd = q->login_fd = -1;
    a2g_qwin_init(&q->w, cfg->limit, cfg->window_ms, cfg->margin_ms);
    q->dir = strdup(dir);
    q->state_path = join(dir, "quota.state");
    q->tmp_path = join(dir, "quota.state.tmp");
    q->token_path = join(dir, "token");
    char *lock_path = join(dir, "quota.lock");
    if (!q->dir || !q->state_path || !q->tmp_path || !q->token_path || !lock_path) {
        free(lock_path);
        a2g_qfile_close(q);
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    q->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (q->lock_fd < 0) {
        a2g_fail(err, A2G_IO, 0, "cannot open %s: %s", lock_path, strerror(errno));
        free(lock_path);
        a2g_qfile_close(q);
        return NULL;
    }
    free(lock_path);
    read_boot_id(q->boot_id, sizeof q->boot_id);
    q->pidns = pidns_of_engine = own_pidns();
    return q;
}

void a2g_qfile_close(a2g_qfile *q)
{
    if (!q)
        return;
    a2g_qfile_login_done(q);
    if (q->lock_fd >= 0)
        close(q->lock_fd);
    a2g_qwin_free(&q->w);
    free(q->dir);
    free(q->state_path);
    free(q->tmp_path);
    free(q->token_path);
    free(q);
}

/* The window ------------------------------------------------------------------------- */

typedef struct acq_arg {
    uint64_t id;
    int64_t hold_until;
    int64_t wait;
} acq_arg;

static int op_acquire(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    acq_arg *a = arg;
    if (a->hold_until > now) {
        a->wait = a->hold_until - now;
        return 1;
    }
    a->wait = a2g_qwin_acquire(&q->w, now, q->cfg.lease_ms, a->id, (int64_t)getpid(), q->pidns);
    if (a->wait < 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    return a->wait > 0;
}

int a2g_qfile_acquire_id(a2g_qfile *q, uint64_t id, int64_t hold_until, int64_t *wait_ms,
                         a2g_error *err)
{
    acq_arg a = { id, hold_until, 0 };
    if (txn(q, op_acquire, &a, err) < 0)
        return -1;
    *wait_ms = a.wait;
    return 0;
}

int a2g_qfile_acquire(a2g_qfile *q, uint64_t *lease, int64_t *wait_ms, a2g_error *err)
{
    uint64_t id = a2g_qrandom_id();
    if (a2g_qfile_acquire_id(q, id, 0, wait_ms, err) != 0)
        return -1;
    *lease = *wait_ms == 0 ? id : 0;
    return 0;
}

static int op_adopt(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    a2g_qlease l = { *(uint64_t *)arg, now, now + q->cfg.lease_ms, (int64_t)getpid(), q->pidns };
    return a2g_qwin_put_lease(&q->w, &l) == 0 ? 0 : a2g_fail(err, A2G_IO, 0, "out of memory");
}

int a2g_qfile_adopt(a2g_qfile *q, uint64_t lease, a2g_error *err)
{
    return txn(q, op_adopt, &lease, err) < 0 ? -1 : 0;
}

static int op_release(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    if (a2g_qwin_release(&q->w, *(uint64_t *)arg, now) != 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    return 0;
}

int a2g_qfile_release(a2g_qfile *q, uint64_t lease, a2g_error *err)
{
    return txn(q, op_release, &lease, err) < 0 ? -1 : 0;
}

static int op_cancel(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    (void)now;
    (void)err;
    return a2g_qwin_cancel(&q->w, *(uint64_t *)arg) ? 0 : 1;
}

int a2g_qfile_cancel(a2g_qfile *q, uint64_t lease, a2g_error *err)
{
    return txn(q, op_cancel, &lease, err) < 0 ? -1 : 0;
}

static int op_renew(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    (void)err;
    return a2g_qwin_renew(&q->w, *(uint64_t *)arg, now + q->cfg.lease_ms) ? 0 : 1;
}

int a2g_qfile_renew(a2g_qfile *q, uint64_t lease, a2g_error *err)
{
    return txn(q, op_renew, &lease, err);
}

static int op_block(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    (void)err;
    int64_t until = now + *(int64_t *)arg;
    if (until > q->w.blocked_until)
        q->w.blocked_until = until;
    return 0;
}

int a2g_qfile_block(a2g_qfile *q, int64_t ms, a2g_error *err)
{
    return txn(q, op_block, &ms, err) < 0 ? -1 : 0;
}

static int op_state(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    (void)err;
    a2g_qstate *st = arg;
    a2g_qwin_count(&q->w, now, &st->entries, &st->leases);
    st->limit = q->cfg.limit;
    st->wait_ms = a2g_qwin_wait(&q->w, now);
    st->now_ms = now;
    st->resets = q->resets;
    st->reaped = q->reaped;
    return 1; /* a read */
}

int a2g_qfile_state(a2g_qfile *q, a2g_qstate *st, a2g_error *err)
{
    memset(st, 0, sizeof *st);
    return txn(q, op_state, st, err) < 0 ? -1 : 0;
}

static int op_snapshot(a2g_qfile *q, int64_t now, void *arg, a2g_error *err)
{
    (void)now;
    a2g_qwindow *out = arg;
    for (int i = 0; i < q->w.ne; i++)
        if (a2g_qwin_put_entry(out, q->w.e[i].id, q->w.e[i].t) != 0)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
    for (int i = 0; i < q->w.nl; i++)
        if (a2g_qwin_put_lease(out, &q->w.l[i]) != 0)
            return a2g_fail(err, A2G_IO, 0, "out of memory");
    out->blocked_until = q->w.blocked_until;
    return 1; /* a read */
}

int a2g_qfile_snapshot(a2g_qfile *q, a2g_qwindow *out, a2g_error *err)
{
    a2g_qwin_init(out, q->cfg.limit, q->cfg.window_ms, q->cfg.margin_ms);
    if (txn(q, op_snapshot, out, err) < 0) {
        a2g_qwin_free(out);
        return -1;
    }
    return 0;
}

/* The token --------------------------------------------------------------------------- */

int a2g_qfile_token(a2g_qfile *q, char *buf, size_t cap, int64_t *expiry, a2g_error *err)
{
    int fd = open(q->token_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return a2g_fail(err, A2G_IO, 0, "cannot read the token in %s: %s", q->dir,
                        strerror(errno));
    }
    char text[8192];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    char *sp = strchr(text, ' ');
    char *nl = strchr(text, '\n');
    if (!sp || !nl || sp > nl || (size_t)(sp - text) >= cap || sp == text)
        return 0; /* not a token of ours: as if none */
    memcpy(buf, text, (size_t)(sp - text));
    buf[sp - text] = '\0';
    *expiry = strtoll(sp + 1, NULL, 10);
    return 1;
}

int a2g_qfile_set_token(a2g_qfile *q, const char *token, int64_t expiry, a2g_error *err)
{
    char *tmp = join(q->dir, ".token.XXXXXX");
    if (!tmp)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 from the start */
    if (fd < 0) {
        free(tmp);
        return a2g_fail(err, A2G_IO, 0, "cannot write the token in %s: %s", q->dir,
                        strerror(errno));
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && fprintf(f, "%s %" PRId64 "\n", token, expiry) > 0;
    if (f) {
        if (fclose(f) != 0)
            ok = 0;
    } else {
        close(fd);
    }
    if (!ok || rename(tmp, q->token_path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return a2g_fail(err, A2G_IO, 0, "cannot write the token in %s: %s", q->dir, strerror(e));
    }
    free(tmp);
    return 0;
}

int a2g_qfile_login(a2g_qfile *q, a2g_error *err)
{
    if (q->login_fd >= 0)
        return 1;
    char *path = join(q->dir, "login.lock");
    if (!path)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0)
        return a2g_fail(err, A2G_IO, 0, "cannot open the login lock in %s: %s", q->dir,
                        strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return 0;
        return a2g_fail(err, A2G_IO, 0, "cannot lock the login lock in %s: %s", q->dir,
                        strerror(e));
    }
    q->login_fd = fd;
    return 1;
}

void a2g_qfile_login_done(a2g_qfile *q)
{
    if (q->login_fd >= 0) {
        flock(q->login_fd, LOCK_UN);
        close(q->login_fd);
        q->login_fd = -1;
    }
}
