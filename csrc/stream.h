/* Request bodies (sources) and response bodies (sinks), streamed in pieces by the
 * transport so that no file is ever held whole in memory. A file sink
 * writes to a temporary file beside its target and renames it into place only once
 * the body is complete and on disk. No Lua here. */
#ifndef A2G_STREAM_H
#define A2G_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#pragma GCC visibility push(hidden)

/* A reader fills buf with up to n bytes and returns how many; 0 is the end. It sets
 * *failed (and returns 0) to abort the transfer. */
typedef size_t (*a2g_read_fn)(void *ud, char *buf, size_t n, int *failed);
/* A writer takes n bytes; it returns 0, or -1 to abort the transfer. */
typedef int (*a2g_write_fn)(void *ud, const char *data, size_t n);

typedef enum {
    A2G_SRC_NONE, A2G_SRC_MEMORY, A2G_SRC_FILE, A2G_SRC_READER, A2G_SRC_PIECES
} a2g_source_kind;

/* One piece of a body built from several (a multipart upload): bytes, or a file that
 * is opened when its turn comes and read as it is sent. */
typedef struct a2g_piece {
    char *data;
    size_t len;
    char *path;
} a2g_piece;

typedef struct a2g_source {
    a2g_source_kind kind;
    a2g_buf mem;
    size_t pos;
    char *path;
    int fd;
    int64_t size;          /* -1: unknown (sent chunked) */
    a2g_read_fn read;
    void *ud;
    int failed;            /* the reader or the file failed (an errno, or -1) */
    int changed;           /* a file changed size while it was being sent */
    int64_t sent;          /* bytes handed to the transport */
    a2g_piece *pieces;     /* A2G_SRC_PIECES */
    size_t npieces, cur;
    int64_t piece_pos;
} a2g_source;

void a2g_source_none(a2g_source *s);
int a2g_source_memory(a2g_source *s, const char *data, size_t len, a2g_error *err);
/* The same for a body that holds secrets (the login): wiped when freed. */
int a2g_source_memory_secret(a2g_source *s, const char *data, size_t len, a2g_error *err);
int a2g_source_file(a2g_source *s, const char *path, a2g_error *err);
void a2g_source_reader(a2g_source *s, a2g_read_fn fn, void *ud);
/* A body of pieces; add them in order. Files are checked (regular, readable) and
 * measured now, so the total length is known before anything is sent. */
void a2g_source_pieces(a2g_source *s);
int a2g_source_add_data(a2g_source *s, const char *data, size_t len, a2g_error *err);
int a2g_source_add_file(a2g_source *s, const char *path, a2g_error *err);
/* Back to the first byte for a retry; -1 when a reader has already been consumed. */
int a2g_source_rewind(a2g_source *s);
/* The next bytes of the body, up to `want`: how many (0 at its end), or A2G_READ_ABORT
 * when it failed (s->failed says why; a file that changed size sets s->changed). */
#define A2G_READ_ABORT ((size_t)-1)
size_t a2g_source_read(a2g_source *s, char *buf, size_t want);
void a2g_source_free(a2g_source *s);

typedef enum { A2G_SINK_MEMORY, A2G_SINK_FILE, A2G_SINK_WRITER, A2G_SINK_DIR } a2g_sink_kind;

typedef struct a2g_sink {
    a2g_sink_kind kind;
    a2g_buf mem;           /* memory: bounded by its limit */
    char *path;            /* file: the final name; dir: the folder, then the final name */
    char *tmp;             /* file: the temporary name while writing */
    int fd;
    int no_clobber;        /* file: fail rather than replace an existing file */
    a2g_write_fn write;
    void *ud;
    int64_t written;
    int overflow;          /* the limit was hit */
    int64_t limit;         /* file and folder sinks: most bytes written; 0: no limit */
    int io_errno;          /* file: errno of a failed write */
} a2g_sink;

void a2g_sink_memory(a2g_sink *k, size_t limit);
int a2g_sink_file(a2g_sink *k, const char *path, int no_clobber, a2g_error *err);
void a2g_sink_writer(a2g_sink *k, a2g_write_fn fn, void *ud);
/* Into a folder, under a name chosen when the body is complete (see
 * a2g_sink_commit_named): never replacing an existing file. */
int a2g_sink_dir(a2g_sink *k, const char *dir, a2g_error *err);
/* Creates the temporary file (file sinks); 0 or -1 with err set. */
int a2g_sink_open(a2g_sink *k, a2g_error *err);
int a2g_sink_put(a2g_sink *k, const char *data, size_t n);
/* Empties the sink for a retry; -1 when bytes already went to a writer. */
int a2g_sink_restart(a2g_sink *k);
/* File sinks: flush to disk and rename into place. */
int a2g_sink_commit(a2g_sink *k, a2g_error *err);
/* Folder sinks: sanitises `name` (from the server; `fallback` when there is none),
 * picks "name", "name (2).ext", ... whichever does not exist, and moves the body
 * there. k->path is then the file's path. */
int a2g_sink_commit_named(a2g_sink *k, const char *name, size_t len, const char *fallback,
                          a2g_error *err);
/* File sinks: remove the temporary file. Safe to call more than once. */
void a2g_sink_abort(a2g_sink *k);
void a2g_sink_free(a2g_sink *k);

#pragma GCC visibility pop

#endif
