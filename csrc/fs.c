/* See fs.h. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
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
