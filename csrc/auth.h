/* The token: obtained lazily from /authorize with username and password (or given
 * ready-made), kept until shortly before its expiry, dropped on a 401 so that the
 * next request logs in again. Secrets live only here and are wiped when freed. */
#ifndef A2G_AUTH_H
#define A2G_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#pragma GCC visibility push(hidden)

typedef struct a2g_auth {
    char *username;
    char *password;        /* NULL when the caller gave a token */
    char *token;
    int64_t expiry_ms;     /* wall-clock ms since the epoch, by our clock; 0: unknown */
    int64_t renew_ms;      /* renew from this wall-clock time on; 0: only once refused */
    unsigned long logins;  /* successful /authorize calls */
} a2g_auth;

/* The longest wait before a renewal: a token is renewed when a quarter of its
 * lifetime, or this much at most, is left. */
#define A2G_AUTH_MARGIN_MS (5 * 60 * 1000)

/* Either username and password, or token (then expiry_ms may be 0). `now_ms` is the
 * wall clock, for the token's expiry (see a2g_auth_set). */
int a2g_auth_init(a2g_auth *a, const char *username, const char *password,
                  const char *token, int64_t expiry_ms, int64_t now_ms);
void a2g_auth_free(a2g_auth *a);
/* A token is held and, as far as we know, still good at `now_wall_ms`. */
int a2g_auth_valid(const a2g_auth *a, int64_t now_wall_ms);
int a2g_auth_can_login(const a2g_auth *a);
/* The JSON body of POST /authorize, into `body` (a secret buffer: see a2g_buf). */
int a2g_auth_request(const a2g_auth *a, a2g_buf *body);
/* Takes {token, expiry} from a 200 answer of /authorize that arrived at `now_ms`. */
int a2g_auth_accept(a2g_auth *a, const char *json, size_t len, int64_t now_ms,
                    a2g_error *err);
/* Holds `token` (copied) from now on, with `expiry` as a caller gave it: ms since the
 * epoch, seconds, or 0 (unknown). An expiry that is neither plausible in ms nor in
 * seconds is replaced by the JWT's own `exp` claim when it has one; with none the
 * token is kept until the gateway refuses it. Returns -1 when out of memory. */
int a2g_auth_set(a2g_auth *a, const char *token, double expiry, int64_t now_ms);
void a2g_auth_forget(a2g_auth *a);

#pragma GCC visibility pop

#endif
