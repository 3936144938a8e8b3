/* See lock.h. */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "clock.h"
#include "interrupt.h"

/* The pid the holder wrote into the file, or 0. */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return (end != buf && pid > 0) ? pid : 0;
}

int a2g_lock_acquire(const char *path, int exclusive, int64_t timeout_ms, a2g_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        a2g_fail(err, A2G_IO, 0, "cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    int64_t deadline = a2g_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int64_t pause = 5;
    for (;;) {
        if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK) {
            int e = errno;
            close(fd);
            a2g_fail(err, A2G_IO, 0, "cannot lock %s: %s", path, strerror(e));
            return -1;
        }
        if (a2g_interrupt_pending()) { /* Ctrl-C in a host that traps it: stop waiting */
            close(fd);
            a2g_fail(err, A2G_INTERRUPTED, 0, "interrupted while waiting for %s", path);
            return -1;
        }
        int64_t left = deadline - a2g_mono_ms();
        if (left <= 0) {
            long pid = holder_pid(fd);
            close(fd);
            if (pid)
                a2g_fail(err, A2G_LOCKED, 0, "%s is locked by another process (pid %ld)",
                         path, pid);
            else
                a2g_fail(err, A2G_LOCKED, 0, "%s is locked by another process", path);
            return -1;
        }
        a2g_sleep_ns((pause < left ? pause : left) * 1000000);
        if (pause < 100)
            pause *= 2;
    }
    if (exclusive) {
        /* for the message of whoever waits next; the lock holds whether or not this
         * diagnostic could be written, so its failures are ignored */
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) < 0)
            errno = 0;
    }
    return fd;
}

void a2g_lock_release(int fd)
{
    if (fd < 0)
        return;
    flock(fd, LOCK_UN);
    close(fd);
}
