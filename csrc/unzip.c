/* See unzip.h. */
#include "unzip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zip.h>

#include "stream.h"

struct a2g_zip {
    zip_t *za;
};

a2g_zip *a2g_zip_open(const char *path, a2g_error *err)
{
    int code = 0;
    /* no ZIP_CHECKCONS: it refuses archives with two entries of the same name, and a
     * partner may well send two attachments named alike; entries are read by index */
    zip_t *za = zip_open(path, ZIP_RDONLY, &code);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, code);
        a2g_fail(err, A2G_PROTOCOL, 0, "not a valid zip archive: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return NULL;
    }
    a2g_zip *z = malloc(sizeof *z);
    if (!z) {
        zip_discard(za);
        a2g_fail(err, A2G_IO, 0, "out of memory");
        return NULL;
    }
    z->za = za;
    return z;
}

long a2g_zip_count(a2g_zip *z)
{
    return (long)zip_get_num_entries(z->za, 0);
}

int a2g_zip_stat(a2g_zip *z, long index, a2g_zip_entry *e, a2g_error *err)
{
    zip_stat_t st;
    memset(e, 0, sizeof *e);
    if (zip_stat_index(z->za, (zip_uint64_t)index, 0, &st) != 0
        || !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
        return a2g_fail(err, A2G_PROTOCOL, 0, "unreadable zip entry %ld", index);
    e->name = st.name;
    e->size = st.size;
    e->compressed = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : 0;
    e->encrypted = (st.valid & ZIP_STAT_ENCRYPTION_METHOD)
                   && st.encryption_method != ZIP_EM_NONE;
    size_t n = strlen(st.name);
    e->is_dir = n > 0 && st.name[n - 1] == '/';
    zip_uint8_t opsys;
    zip_uint32_t attr;
    if (zip_file_get_external_attributes(z->za, (zip_uint64_t)index, 0, &opsys, &attr) == 0
        && opsys == ZIP_OPSYS_UNIX) {
        mode_t mode = (mode_t)(attr >> 16);
        if (mode && !S_ISREG(mode) && !S_ISDIR(mode))
            e->is_symlink = 1;
        if (S_ISDIR(mode))
            e->is_dir = 1;
    }
    return 0;
}

int a2g_zip_extract(a2g_zip *z, long index, const char *dest, int no_clobber,
                    uint64_t max_bytes, a2g_error *err)
{
    a2g_zip_entry e;
    if (a2g_zip_stat(z, index, &e, err) != 0)
        return -1;
    if (e.is_dir || e.is_symlink || e.encrypted)
        return a2g_fail(err, A2G_PROTOCOL, 0, "zip entry %ld is not a plain file", index);
    if (e.size > max_bytes)
        return a2g_fail(err, A2G_PROTOCOL, 0, "zip entry %ld declares %llu bytes, over the "
                        "limit of %llu", index, (unsigned long long)e.size,
                        (unsigned long long)max_bytes);
    zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)index, 0);
    if (!zf)
        return a2g_fail(err, A2G_PROTOCOL, 0, "cannot read zip entry %ld: %s", index,
                        zip_strerror(z->za));
    a2g_sink sink;
    if (a2g_sink_file(&sink, dest, no_clobber, err) != 0 || a2g_sink_open(&sink, err) != 0) {
        zip_fclose(zf);
        a2g_sink_free(&sink);
        return -1;
    }
    char buf[64 * 1024];
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        zip_int64_t n = zip_fread(zf, buf, sizeof buf);
        if (n < 0) {
            rc = a2g_fail(err, A2G_PROTOCOL, 0, "corrupt zip entry %ld: %s", index,
                          zip_file_strerror(zf));
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
        if (total > max_bytes || total > e.size) {
            rc = a2g_fail(err, A2G_PROTOCOL, 0, "zip entry %ld is larger than it declares",
                          index);
            break;
        }
        if (a2g_sink_put(&sink, buf, (size_t)n) != 0) {
            rc = a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", dest,
                          strerror(sink.io_errno ? sink.io_errno : EIO));
            break;
        }
    }
    zip_fclose(zf);
    if (rc == 0 && total != e.size)
        rc = a2g_fail(err, A2G_PROTOCOL, 0, "zip entry %ld is shorter than it declares", index);
    if (rc == 0)
        rc = a2g_sink_commit(&sink, err);
    a2g_sink_free(&sink);
    return rc;
}

void a2g_zip_close(a2g_zip *z)
{
    if (!z)
        return;
    zip_discard(z->za);
    free(z);
}
