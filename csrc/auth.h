/* The token: obtained lazily from /authorize with username and password (or given
 * ready-made), kept until shortly before its expiry, dropped on a 401 so that the
 * next request logs in again. Secrets live only here and are wiped when freed. */
#ifndef A2G_AUTH_H
#define A2G_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

typedef struct a2g_auth {
    char *username;
    char *password;        /* NULL when the caller gave a token */
    char *token;
    int64_t expiry_ms;     /* wall-clock ms since the epoch; 0: unknown */
    int64_t margin_ms;     /* renew this long before expiry */
    unsigned long logins;  /* successful /authorize calls */
} a2g_auth;

/* Either username and password, or token (then expiry_ms may be 0). */
int a2g_auth_init(a2g_auth *a, const char *username, const char *password,
                  const char *token, int64_t expiry_ms);
void a2g_auth_free(a2g_auth *a);
/* A token is held and, as far as we know, still good at `now_wall_ms`. */
int a2g_auth_valid(const a2g_auth *a, int64_t now_wall_ms);
int a2g_auth_can_login(const a2g_auth *a);
/* The JSON body of POST /authorize, into `body` (wipe it after use). */
int a2g_auth_request(const a2g_auth *a, a2g_buf *body);
/* Takes {token, expiry} from a 200 answer of /authorize. */
int a2g_auth_accept(a2g_auth *a, const char *json, size_t len, a2g_error *err);
void a2g_auth_forget(a2g_auth *a);

#endif
