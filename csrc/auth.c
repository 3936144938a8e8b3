/* See auth.h. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

static void wipe_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* An expiry further out than this is not taken at its word (nor, read as ms, is a
 * value in seconds, which lands in 1970; nor, read as seconds, one in ms). */
#define PLAUSIBLE_MS (10.0 * 366 * 24 * 3600 * 1000)

static int plausible(double expiry_ms, int64_t now)
{
    return expiry_ms > (double)now && expiry_ms - (double)now <= PLAUSIBLE_MS;
}

static int b64url_digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
}

/* The `exp` and `iat` claims (seconds) of a JWT's payload; 0 when absent. */
static void jwt_claims(const char *token, double *exp, double *iat)
{
    *exp = *iat = 0;
    const char *p = strchr(token, '.');
    const char *end = p ? strchr(p + 1, '.') : NULL;
    if (!end)
        return;
    p++;
    size_t n = (size_t)(end - p);
    char *json = malloc(n * 3 / 4 + 1);
    if (!json)
        return;
    size_t len = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n && p[i] != '='; i++) {
        int d = b64url_digit((unsigned char)p[i]);
        if (d < 0) {
            free(json);
            return;
        }
        v = (v << 6 | (unsigned)d) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            json[len++] = (char)(v >> bits & 0xFF);
        }
    }
    if (a2g_json_number(json, len, "exp", exp) != 0)
        *exp = 0;
    if (a2g_json_number(json, len, "iat", iat) != 0)
        *iat = 0;
    free(json);
}

/* Sets when the token held expires by our clock, and when to renew it. `given` is the
 * expiry as the gateway or the caller gave it. `fresh`: the token was issued just now
 * (an /authorize answer), so the lifetime its claims state (exp - iat) counts from
 * now, whichever way the two clocks disagree. */
static void set_expiry(a2g_auth *a, double given, int64_t now, int fresh)
{
    double e = 0;
    if (!fresh && given > 1e11 && given <= (double)now) {
        /* a token handed over as expired (by our clock) is renewed first */
        a->expiry_ms = (int64_t)given;
        a->renew_ms = now;
        return;
    }
    if (plausible(given, now)) {
        e = given;                              /* ms since the epoch, as documented */
    } else if (given > 0 && plausible(given * 1000.0, now)) {
        e = given * 1000.0;                     /* seconds: the vendor never says */
    } else {
        double exp, iat;
        jwt_claims(a->token, &exp, &iat);
        if (fresh && iat > 0 && exp > iat && (exp - iat) * 1000.0 <= PLAUSIBLE_MS)
            e = (double)now + (exp - iat) * 1000.0;
        else if (plausible(exp * 1000.0, now))
            e = exp * 1000.0;
    }
    a->expiry_ms = (int64_t)e;
    if (a->expiry_ms == 0) {
        a->renew_ms = 0; /* unknown: kept until the gateway refuses it */
        return;
    }
    int64_t margin = (a->expiry_ms - now) / 4;
    if (margin > A2G_AUTH_MARGIN_MS)
        margin = A2G_AUTH_MARGIN_MS;
    a->renew_ms = a->expiry_ms - margin;
}

int a2g_auth_init(a2g_auth *a, const char *username, const char *password,
                  const char *token, int64_t expiry_ms, int64_t now_ms)
{
    memset(a, 0, sizeof *a);
    if (username && !(a->username = strdup(username)))
        return -1;
    if (password && !(a->password = strdup(password)))
        return -1;
    if (token && a2g_auth_set(a, token, (double)expiry_ms, now_ms) != 0)
        return -1;
    return 0;
}

void a2g_auth_free(a2g_auth *a)
{
    wipe_free(a->username);
    wipe_free(a->password);
    wipe_free(a->token);
    memset(a, 0, sizeof *a);
}

int a2g_auth_valid(const a2g_auth *a, int64_t now_wall_ms)
{
    if (!a->token)
        return 0;
    return a->renew_ms == 0 || now_wall_ms < a->renew_ms;
}

int a2g_auth_can_login(const a2g_auth *a)
{
    return a->username && a->password;
}

static int append_json_string(a2g_buf *b, const char *s)
{
    if (a2g_buf_append(b, "\"", 1) != 0)
        return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            if (a2g_buf_append(b, esc, 2) != 0)
                return -1;
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            if (a2g_buf_append(b, esc, 6) != 0)
                return -1;
        } else if (a2g_buf_append(b, p, 1) != 0) {
            return -1;
        }
    }
    return a2g_buf_append(b, "\"", 1);
}

int a2g_auth_request(const a2g_auth *a, a2g_buf *body)
{
    if (!a2g_auth_can_login(a))
        return -1;
    if (a2g_buf_appends(body, "{\"username\":") != 0
        || append_json_string(body, a->username) != 0
        || a2g_buf_appends(body, ",\"password\":") != 0
        || append_json_string(body, a->password) != 0
        || a2g_buf_appends(body, "}") != 0)
        return -1;
    return 0;
}

int a2g_auth_accept(a2g_auth *a, const char *json, size_t len, int64_t now_ms,
                    a2g_error *err)
{
    char *token = NULL;
    size_t tlen = 0;
    double expiry = 0;
    if (a2g_json_string(json, len, "token", &token, &tlen) != 0 || tlen == 0) {
        free(token);
        return a2g_fail(err, A2G_PROTOCOL, 200, "/authorize answered without a token");
    }
    /* the token goes into a header: refuse anything that could break out of it */
    if (a2g_check_text(token, tlen, A2G_TEXT_TOKEN)) {
        explicit_bzero(token, tlen);
        free(token);
        return a2g_fail(err, A2G_PROTOCOL, 200, "/authorize answered a malformed token");
    }
    if (a2g_json_number(json, len, "expiry", &expiry) != 0 || !(expiry > 0))
        expiry = 0;
    wipe_free(a->token);
    a->token = token;
    set_expiry(a, expiry, now_ms, 1);
    a->logins++;
    return 0;
}

int a2g_auth_set(a2g_auth *a, const char *token, double expiry, int64_t now_ms)
{
    char *copy = strdup(token);
    if (!copy)
        return -1;
    wipe_free(a->token);
    a->token = copy;
    set_expiry(a, expiry, now_ms, 0);
    return 0;
}

void a2g_auth_forget(a2g_auth *a)
{
    wipe_free(a->token);
    a->token = NULL;
    a->expiry_ms = 0;
    a->renew_ms = 0;
}
