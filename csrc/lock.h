/* Advisory whole-file locks (flock) on a lock file: one process at a time in a folder
 * whose journal it keeps (send_dir, drain). The lock file is created when missing
 * (mode 0600) and never removed: removing it would let a second process lock a new
 * file while the first still holds the old one. The descriptor is close-on-exec, so
 * commands run meanwhile (drain handlers) do not inherit the lock, and the kernel
 * drops it when the process dies, SIGKILL included. The wait is a poll on the
 * caller's thread. Pure C. */
#ifndef A2G_LOCK_H
#define A2G_LOCK_H

#include <stdint.h>

#include "error.h"

#pragma GCC visibility push(hidden)

/* Takes the lock (exclusive or shared) on `path`, waiting at most timeout_ms (0: one
 * try). Returns the descriptor holding it, or -1 with A2G_LOCKED (still held by
 * another when the time ran out; the message names its pid when it wrote one) or
 * A2G_IO (the file cannot be opened or created), or A2G_INTERRUPTED (a trapped SIGINT,
 * see interrupt.h, ended the wait). */
int a2g_lock_acquire(const char *path, int exclusive, int64_t timeout_ms, a2g_error *err);
/* Releases the lock and closes the descriptor. */
void a2g_lock_release(int fd);

#pragma GCC visibility pop

#endif
