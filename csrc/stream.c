/* Sources and sinks; see stream.h. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

void a2g_source_none(a2g_source *s)
{
    memset(s, 0, sizeof *s);
    s->kind = A2G_SRC_NONE;
    s->fd = -1;
}

int a2g_source_memory(a2g_source *s, const char *data, size_t len, a2g_error *err)
{
    a2g_source_none(s);
    s->kind = A2G_SRC_MEMORY;
    a2g_buf_init(&s->mem, 0);
    if (a2g_buf_append(&s->mem, data, len) != 0)
        return a2g_fail(err, A2G_IO, 0, "out of memory for the request body");
    s->size = (int64_t)len;
    return 0;
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
    case A2G_SRC_NONE:
        break;
    }
    s->sent = 0;
    s->failed = 0;
    return 0;
}

size_t a2g_source_curl_read(char *buf, size_t size, size_t nitems, void *userdata)
{
    a2g_source *s = userdata;
    size_t want = size * nitems, n = 0;
    switch (s->kind) {
    case A2G_SRC_MEMORY:
        n = s->mem.len - s->pos < want ? s->mem.len - s->pos : want;
        memcpy(buf, s->mem.data + s->pos, n);
        s->pos += n;
        break;
    case A2G_SRC_FILE: {
        ssize_t r;
        do {
            r = read(s->fd, buf, want);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            s->failed = errno;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)r;
        break;
    }
    case A2G_SRC_READER:
        n = s->read(s->ud, buf, want, &s->failed);
        if (s->failed)
            return CURL_READFUNC_ABORT;
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

void a2g_sink_writer(a2g_sink *k, a2g_write_fn fn, void *ud)
{
    sink_init(k, A2G_SINK_WRITER);
    k->write = fn;
    k->ud = ud;
}

/* "<dir>/.<base>.XXXXXX.part": in the target's directory, so that rename() is
 * atomic, and hidden, so that a folder watcher does not pick up a partial file. */
int a2g_sink_open(a2g_sink *k, a2g_error *err)
{
    k->written = 0;
    k->overflow = 0;
    if (k->kind != A2G_SINK_FILE || k->fd >= 0)
        return 0;
    char *d = strdup(k->path), *b = strdup(k->path);
    if (!d || !b) {
        free(d);
        free(b);
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    }
    size_t n = strlen(k->path) + 32;
    k->tmp = malloc(n);
    if (k->tmp)
        snprintf(k->tmp, n, "%s/.%s.XXXXXX.part", dirname(d), basename(b));
    free(d);
    free(b);
    if (!k->tmp)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    k->fd = mkostemps(k->tmp, 5, O_CLOEXEC);
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

int a2g_sink_commit(a2g_sink *k, a2g_error *err)
{
    if (k->kind != A2G_SINK_FILE)
        return 0;
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(k->fd, 0666 & ~mask) != 0 || fsync(k->fd) != 0) {
        int e = errno;
        a2g_sink_abort(k);
        return a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", k->path, strerror(e));
    }
    close(k->fd);
    k->fd = -1;
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
    /* the rename is durable only once the directory is on disk too */
    char *d = strdup(k->path);
    if (d) {
        int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(d);
    }
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
