/* See clock.h. */
#include "clock.h"

#include <errno.h>
#include <time.h>

#include "interrupt.h"

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t a2g_mono_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}

int64_t a2g_mono_ms(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t a2g_boot_ms(void)
{
    return read_ns(CLOCK_BOOTTIME) / 1000000;
}

int64_t a2g_wall_ms(void)
{
    return read_ns(CLOCK_REALTIME) / 1000000;
}

int a2g_sleep_ns(int64_t ns)
{
    if (a2g_interrupt_pending())
        return -1;
    if (ns <= 0)
        return 0;
    struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
    while (nanosleep(&ts, &ts) != 0) {
        if (errno != EINTR || a2g_interrupt_pending())
            return -1;
    }
    return 0;
}
