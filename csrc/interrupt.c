/* SIGINT as a flag; see interrupt.h. */
#include "interrupt.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t pending;
static struct sigaction saved;
static int trapped;

static void on_sigint(int sig)
{
    if (pending) { /* a second Ctrl-C: the default, at once */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending = sig;
}

int a2g_interrupt_trap(int on)
{
    if (!on) {
        if (trapped)
            sigaction(SIGINT, &saved, NULL);
        trapped = 0;
        return 0;
    }
    if (trapped)
        return 1;
    struct sigaction old;
    if (sigaction(SIGINT, NULL, &old) != 0 || old.sa_handler == SIG_IGN)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGINT, &sa, &saved) != 0)
        return 0;
    trapped = 1;
    return 1;
}

int a2g_interrupt_pending(void)
{
    return pending;
}
