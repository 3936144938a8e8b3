/* Sources and sinks; see stream.h. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "names.h"

void a2g_source_none(a2g_source *s)
{
    memset(s, 0, sizeof *s);
    s->kind = A2G_SRC_NONE;
    s->fd = -1;
}

static int source_memory(a2g_source *s, const char *data, size_t len, int secret,
                         a2g_error *err)
{
    a2g_source_none(s);
    s->kind = A2G_SRC_MEMORY;
    a2g_buf_init(&s->mem, 0);
    s->mem.secret = secret;
    if (a2g_buf_append(&s->mem, data, len) != 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory for the request body");
    s->size = (int64_t)len;
    return 0;
}

int a2g_source_memory(a2g_source *s, const char *data, size_t len, a2g_error *err)
{
    return source_memory(s, data, len, 0, err);
}

int a2g_source_memory_secret(a2g_source *s, const char *data, size_t len, a2g_error *err)
{
    return source_memory(s, data, len, 1, err);
}

int a2g_source_file(a2g_source *s, const char *path, a2g_error *err)
{
    struct stat st;
    a2g_source_none(s);
    s->kind = A2G_SRC_FILE;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0)
        return a2g_fail(err, A2G_IO, 0, "cannot open %s: %s", path, strerror(errno));
    if (fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(s->fd);
        s->fd = -1;
        return a2g_fail(err, A2G_IO, 0, "%s is not a regular file", path);
    }
    s->size = (int64_t)st.st_size;
    s->path = strdup(path);
    return 0;
}

void a2g_source_reader(a2g_source *s, a2g_read_fn fn, void *ud)
{
    a2g_source_none(s);
    s->kind = A2G_SRC_READER;
    s->read = fn;
    s->ud = ud;
    s->size = -1;
}

void a2g_source_pieces(a2g_source *s)
{
    a2g_source_none(s);
    s->kind = A2G_SRC_PIECES;
}

static a2g_piece *new_piece(a2g_source *s, a2g_error *err)
{
    a2g_piece *p = realloc(s->pieces, (s->npieces + 1) * sizeof *p);
    if (!p) {
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    s->pieces = p;
    p = &s->pieces[s->npieces++];
    memset(p, 0, sizeof *p);
    return p;
}

int a2g_source_add_data(a2g_source *s, const char *data, size_t len, a2g_error *err)
{
    a2g_piece *p = new_piece(s, err);
    if (!p)
        return -1;
    p->data = malloc(len ? len : 1);
    if (!p->data)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    memcpy(p->data, data, len);
    p->len = len;
    s->size += (int64_t)len;
    return 0;
}

int a2g_source_add_file(a2g_source *s, const char *path, a2g_error *err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return a2g_fail(err, A2G_IO, 0, "cannot open %s: %s", path, strerror(errno));
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok)
        return a2g_fail(err, A2G_IO, 0, "%s is not a regular file", path);
    a2g_piece *p = new_piece(s, err);
    if (!p)
        return -1;
    p->path = strdup(path);
    if (!p->path)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    p->len = (size_t)st.st_size;
    s->size += (int64_t)st.st_size;
    return 0;
}

/* Reads exactly `want` bytes of a file of the body at fd into buf, or fails the body:
 * `last` (these are the file's last bytes by its measured size) probes for one more.
 * A file that shrank or grew since it was measured cannot be sent as announced: the
 * gateway would wait for bytes that never come (a 30 s stall, then an unknown
 * outcome), or get a part of a file still being written. */
static size_t read_file_part(a2g_source *s, int fd, char *buf, size_t want, int last)
{
    size_t got = 0;
    char probe;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            s->failed = errno;
            return 0;
        }
        if (r == 0) {
            s->failed = -1;
            s->changed = 1;
            return 0;
        }
        got += (size_t)r;
    }
    if (last) {
        ssize_t r;
        do {
            r = read(fd, &probe, 1);
        } while (r < 0 && errno == EINTR);
        if (r != 0) {
            s->failed = r < 0 ? errno : -1;
            s->changed = r > 0;
            return 0;
        }
    }
    return got;
}

/* Fills buf from the pieces; a file that yields fewer or more bytes than it had when
 * it was measured fails the body (the announced length would be a lie). */
static size_t read_pieces(a2g_source *s, char *buf, size_t want)
{
    size_t n = 0;
    while (n < want && s->cur < s->npieces) {
        a2g_piece *p = &s->pieces[s->cur];
        size_t left = p->len - (size_t)s->piece_pos;
        if (left == 0) {
            if (s->fd >= 0) {
                close(s->fd);
                s->fd = -1;
            }
            s->cur++;
            s->piece_pos = 0;
            continue;
        }
        size_t k = left < want - n ? left : want - n;
        if (p->data) {
            memcpy(buf + n, p->data + s->piece_pos, k);
        } else {
            if (s->fd < 0 && (s->fd = open(p->path, O_RDONLY | O_CLOEXEC)) < 0) {
                s->failed = errno;
                return 0;
            }
            if (read_file_part(s, s->fd, buf + n, k, k == left) == 0)
                return 0;
        }
        n += k;
        s->piece_pos += (int64_t)k;
    }
    return n;
}

int a2g_source_rewind(a2g_source *s)
{
    switch (s->kind) {
    case A2G_SRC_MEMORY:
        s->pos = 0;
        break;
    case A2G_SRC_FILE:
        if (lseek(s->fd, 0, SEEK_SET) != 0)
            return -1;
        break;
    case A2G_SRC_READER:
        if (s->sent > 0)
            return -1;
        break;
    case A2G_SRC_PIECES:
        if (s->fd >= 0) {
            close(s->fd);
            s->fd = -1;
        }
        s->cur = 0;
        s->piece_pos = 0;
        break;
    case A2G_SRC_NONE:
        break;
    }
    s->sent = 0;
    s->failed = 0;
    s->changed = 0;
    return 0;
}

size_t a2g_source_read(a2g_source *s, char *buf, size_t want)
{
    size_t n = 0;
    switch (s->kind) {
    case A2G_SRC_MEMORY:
        n = s->mem.len - s->pos < want ? s->mem.len - s->pos : want;
        memcpy(buf, s->mem.data + s->pos, n);
        s->pos += n;
        break;
    case A2G_SRC_FILE: {
        int64_t left = s->size - s->sent;
        n = (int64_t)want < left ? want : (size_t)left;
        if (n && read_file_part(s, s->fd, buf, n, (int64_t)n == left) == 0)
            return A2G_READ_ABORT;
        break;
    }
    case A2G_SRC_READER:
        n = s->read(s->ud, buf, want, &s->failed);
        if (s->failed)
            return A2G_READ_ABORT;
        break;
    case A2G_SRC_PIECES:
        n = read_pieces(s, buf, want);
        if (s->failed)
            return A2G_READ_ABORT;
        break;
    case A2G_SRC_NONE:
        break;
    }
    s->sent += (int64_t)n;
    return n;
}

void a2g_source_free(a2g_source *s)
{
    if (s->kind == A2G_SRC_MEMORY)
        a2g_buf_free(&s->mem);
    for (size_t i = 0; i < s->npieces; i++) {
        free(s->pieces[i].data);
        free(s->pieces[i].path);
    }
    free(s->pieces);
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    a2g_source_none(s);
}

static void sink_init(a2g_sink *k, a2g_sink_kind kind)
{
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->fd = -1;
}

void a2g_sink_memory(a2g_sink *k, size_t limit)
{
    sink_init(k, A2G_SINK_MEMORY);
    a2g_buf_init(&k->mem, limit);
}

int a2g_sink_file(a2g_sink *k, const char *path, int no_clobber, a2g_error *err)
{
    sink_init(k, A2G_SINK_FILE);
    k->no_clobber = no_clobber;
    k->path = strdup(path);
    if (!k->path)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    return 0;
}

int a2g_sink_dir(a2g_sink *k, const char *dir, a2g_error *err)
{
    sink_init(k, A2G_SINK_DIR);
    k->no_clobber = 1;
    k->path = strdup(dir);
    if (!k->path)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    return 0;
}

void a2g_sink_writer(a2g_sink *k, a2g_write_fn fn, void *ud)
{
    sink_init(k, A2G_SINK_WRITER);
    k->write = fn;
    k->ud = ud;
}

/* The temporary file is in the target's folder, so that rename() is atomic, and named
 * by names.h (hidden, so that a folder watcher does not pick up a partial file). */
int a2g_sink_open(a2g_sink *k, a2g_error *err)
{
    k->written = 0;
    k->overflow = 0;
    if ((k->kind != A2G_SINK_FILE && k->kind != A2G_SINK_DIR) || k->fd >= 0)
        return 0;
    k->tmp = a2g_temp_download(k->path, k->kind == A2G_SINK_DIR);
    if (!k->tmp)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    k->fd = mkostemps(k->tmp, A2G_TEMP_SUFFIX_LEN, O_CLOEXEC);
    if (k->fd < 0) {
        int e = errno;
        free(k->tmp);
        k->tmp = NULL;
        return a2g_fail(err, A2G_IO, 0, "cannot create a file beside %s: %s", k->path,
                        strerror(e));
    }
    return 0;
}

int a2g_sink_put(a2g_sink *k, const char *data, size_t n)
{
    switch (k->kind) {
    case A2G_SINK_MEMORY:
        if (a2g_buf_append(&k->mem, data, n) != 0) {
            k->overflow = 1;
            return -1;
        }
        break;
    case A2G_SINK_FILE:
    case A2G_SINK_DIR:
        if (k->limit && k->written + (int64_t)n > k->limit) {
            k->overflow = 1; /* an endless answer must not fill the disk */
            return -1;
        }
        for (size_t off = 0; off < n;) {
            ssize_t w = write(k->fd, data + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                k->io_errno = w < 0 ? errno : EIO;
                return -1;
            }
            off += (size_t)w;
        }
        break;
    case A2G_SINK_WRITER:
        if (k->write(k->ud, data, n) != 0)
            return -1;
        break;
    }
    k->written += (int64_t)n;
    return 0;
}

int a2g_sink_restart(a2g_sink *k)
{
    switch (k->kind) {
    case A2G_SINK_MEMORY:
        a2g_buf_reset(&k->mem);
        break;
    case A2G_SINK_FILE:
    case A2G_SINK_DIR:
        if (k->fd >= 0 && (ftruncate(k->fd, 0) != 0 || lseek(k->fd, 0, SEEK_SET) != 0))
            return -1;
        break;
    case A2G_SINK_WRITER:
        if (k->written > 0)
            return -1;
        break;
    }
    k->written = 0;
    k->overflow = 0;
    return 0;
}

static int flush_tmp(a2g_sink *k, a2g_error *err)
{
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(k->fd, 0666 & ~mask) != 0 || fsync(k->fd) != 0) {
        int e = errno;
        a2g_sink_abort(k);
        return a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", k->path, strerror(e));
    }
    close(k->fd);
    k->fd = -1;
    return 0;
}

static void sync_dir_of(const char *path)
{
    char *d = strdup(path);
    if (!d)
        return;
    int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(d);
}

int a2g_sink_commit_named(a2g_sink *k, const char *name, size_t len, const char *fallback,
                          a2g_error *err)
{
    char safe[A2G_NAME_MAX + 1];
    if (!name || !len) {
        name = fallback;
        len = strlen(fallback);
    }
    a2g_sanitize_filename(name, len, safe);
    if (flush_tmp(k, err) != 0)
        return -1;
    char *target;
    if (a2g_place_unique(k->tmp, k->path, safe, &target, err) != 0) {
        a2g_sink_abort(k);
        return -1;
    }
    free(k->tmp);
    k->tmp = NULL;
    free(k->path);
    k->path = target;
    return 0;
}

int a2g_sink_commit(a2g_sink *k, a2g_error *err)
{
    if (k->kind != A2G_SINK_FILE)
        return 0;
    if (flush_tmp(k, err) != 0)
        return -1;
    int rc;
    if (k->no_clobber) {
        rc = link(k->tmp, k->path);
        if (rc == 0)
            unlink(k->tmp);
    } else {
        rc = rename(k->tmp, k->path);
    }
    if (rc != 0) {
        int e = errno;
        a2g_sink_abort(k);
        return a2g_fail(err, A2G_IO, 0, "cannot move the download to %s: %s", k->path,
                        strerror(e));
    }
    free(k->tmp);
    k->tmp = NULL;
    sync_dir_of(k->path); /* the rename is durable only once the folder is on disk */
    return 0;
}

void a2g_sink_abort(a2g_sink *k)
{
    if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
    if (k->tmp) {
        unlink(k->tmp);
        free(k->tmp);
        k->tmp = NULL;
    }
}

void a2g_sink_free(a2g_sink *k)
{
    a2g_sink_abort(k);
    if (k->kind == A2G_SINK_MEMORY)
        a2g_buf_free(&k->mem);
    free(k->path);
    k->path = NULL;
}
