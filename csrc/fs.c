/* See fs.h. */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int a2g_fsync_path(const char *path, a2g_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return a2g_fail(err, A2G_IO, 0, "cannot open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) /* some file systems cannot sync directories */
        return a2g_fail(err, A2G_IO, 0, "cannot sync %s: %s", path, strerror(e));
    return 0;
}

int a2g_mkdir(const char *path, a2g_error *err)
{
    if (mkdir(path, 0777) == 0)
        return 0;
    struct stat st;
    if (errno == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return a2g_fail(err, A2G_IO, 0, "cannot create the folder %s: %s", path,
                    strerror(errno == EEXIST ? ENOTDIR : errno));
}

a2g_filetype a2g_stat(const char *path, int64_t *size)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return A2G_FT_NONE;
    if (size)
        *size = (int64_t)st.st_size;
    if (S_ISREG(st.st_mode))
        return A2G_FT_FILE;
    if (S_ISDIR(st.st_mode))
        return A2G_FT_DIR;
    return A2G_FT_OTHER;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The folder part of a path ("." for a bare name), into buf. */
static void parent_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, size, ".");
    } else if (slash == path) {
        snprintf(buf, size, "/");
    } else {
        size_t n = (size_t)(slash - path);
        snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), path);
    }
}

int a2g_append_durable(const char *path, const char *data, size_t len, a2g_error *err)
{
    int created = access(path, F_OK) != 0;
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return a2g_fail(err, A2G_IO, 0, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0 && st.st_size > 0) {
        char last = '\n';
        if (pread(fd, &last, 1, st.st_size - 1) != 1)
            rc = -1;
        else if (last != '\n')
            rc = write_all(fd, "\n", 1);
    }
    if (rc == 0)
        rc = write_all(fd, data, len);
    if (rc == 0)
        rc = fsync(fd);
    int e = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0)
        return a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", path, strerror(e));
    if (created) {
        char dir[4096];
        parent_of(path, dir, sizeof dir);
        return a2g_fsync_path(dir, err);
    }
    return 0;
}

int a2g_write_private(const char *path, const char *data, size_t len, a2g_error *err)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    snprintf(tmp, n, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int ok = write_all(fd, data, len) == 0 && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        a2g_fail(err, A2G_IO, 0, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int a2g_listdir(const char *path, int (*fn)(void *ud, const char *name), void *ud,
                a2g_error *err)
{
    DIR *d = opendir(path);
    if (!d)
        return a2g_fail(err, A2G_IO, 0, "cannot list %s", path);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fn(ud, de->d_name) != 0)
            break;
    }
    closedir(d);
    return 0;
}

int a2g_random_bytes(void *buf, size_t n)
{
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(buf, 1, n, f) : 0;
    if (f)
        fclose(f);
    return got == n ? 0 : -1;
}
