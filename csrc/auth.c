/* See auth.h. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static void wipe_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

int a2g_auth_init(a2g_auth *a, const char *username, const char *password,
                  const char *token, int64_t expiry_ms)
{
    memset(a, 0, sizeof *a);
    a->margin_ms = 5 * 60 * 1000;
    if (username && !(a->username = strdup(username)))
        return -1;
    if (password && !(a->password = strdup(password)))
        return -1;
    if (token && !(a->token = strdup(token)))
        return -1;
    a->expiry_ms = token ? expiry_ms : 0;
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
    return a->expiry_ms == 0 || now_wall_ms < a->expiry_ms - a->margin_ms;
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

int a2g_auth_accept(a2g_auth *a, const char *json, size_t len, a2g_error *err)
{
    char *token = NULL;
    size_t tlen = 0;
    double expiry = 0;
    if (a2g_json_string(json, len, "token", &token, &tlen) != 0 || tlen == 0
        || strlen(token) != tlen) {
        free(token);
        return a2g_fail(err, A2G_PROTOCOL, 200, "/authorize answered without a token");
    }
    /* the token goes into a header: refuse anything that could break out of it */
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c <= 0x20 || c >= 0x7f) {
            wipe_free(token);
            return a2g_fail(err, A2G_PROTOCOL, 200, "/authorize answered a malformed token");
        }
    }
    if (a2g_json_number(json, len, "expiry", &expiry) != 0 || expiry < 0)
        expiry = 0;
    wipe_free(a->token);
    a->token = token;
    a->expiry_ms = (int64_t)expiry;
    a->logins++;
    return 0;
}

void a2g_auth_forget(a2g_auth *a)
{
    wipe_free(a->token);
    a->token = NULL;
    a->expiry_ms = 0;
}
