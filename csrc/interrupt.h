/* Ctrl-C for blocking hosts such as the as2g tool. Lua has no signal handling, and a
 * SIGINT that arrives while the core waits on libcurl would otherwise either kill the
 * process mid-download or wait for the transfer to end. Once trapped, SIGINT only sets
 * a flag; the core's blocking waits (perform's step loop, its sleeps, core.sleep) look
 * at it and end the request with kind `interrupted`, its partial download removed. A
 * second SIGINT while the first is pending kills the process as usual. Opt-in: a
 * library user's SIGINT is left alone unless the host asks. No Lua. */
#ifndef A2G_INTERRUPT_H
#define A2G_INTERRUPT_H

#pragma GCC visibility push(hidden)

/* Traps SIGINT (on != 0) or restores what was there before (on == 0). A SIGINT that
 * was ignored when the process started (a background job of a shell, nohup) stays
 * ignored: returns 0 then, 1 when trapped. No SA_RESTART: a blocking read (a password
 * prompt) returns with EINTR. */
int a2g_interrupt_trap(int on);
/* The signal number that is pending (SIGINT), or 0: it stays pending (the host ends). */
int a2g_interrupt_pending(void);

#pragma GCC visibility pop

#endif
