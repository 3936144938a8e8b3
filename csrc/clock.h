/* The core's one clock and one sleep: monotonic and wall-clock time, and a sleep that a
 * trapped SIGINT (interrupt.h) cuts short. Everything else takes time as an argument, so
 * that it stays deterministic; this is where the time comes from when nobody gives it.
 * Pure C. */
#ifndef A2G_CLOCK_H
#define A2G_CLOCK_H

#include <stdint.h>

#pragma GCC visibility push(hidden)

/* Monotonic time, any fixed origin: nanoseconds and milliseconds. */
int64_t a2g_mono_ns(void);
int64_t a2g_mono_ms(void);
/* Milliseconds since this host booted (CLOCK_BOOTTIME): monotonic, counting suspend,
 * and the same origin in every process of the host (the shared quota's clock). */
int64_t a2g_boot_ms(void);
/* Wall-clock time in milliseconds since the epoch (token expiries). */
int64_t a2g_wall_ms(void);
/* Sleeps `ns` nanoseconds, through EINTR, but returns at once when a trapped SIGINT is
 * pending (interrupt.h): 0 when it slept the whole time, -1 when cut short. */
int a2g_sleep_ns(int64_t ns);

#pragma GCC visibility pop

#endif
