/* See json.h. A recursive-descent scanner with a depth bound; values other than the
 * one asked for are skipped, not built. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct { const char *p, *end; } scan;

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Scans a string at s->p ('"'); with out != NULL decodes it into out (which must
 * have room for the raw length: decoding never grows it). */
static int string(scan *s, char *out, size_t *outlen)
{
    size_t n = 0;
    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') {
            if (out) { out[n] = '\0'; *outlen = n; }
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            if (out) out[n++] = (char)c;
            continue;
        }
        if (s->p >= s->end)
            return -1;
        c = (unsigned char)*s->p++;
        unsigned cp;
        switch (c) {
        case '"': case '\\': case '/': cp = c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (s->end - s->p < 4 || hex4(s->p, &cp) != 0)
                return -1;
            s->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u'
                    || hex4(s->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                s->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            break;
        default:
            return -1;
        }
        if (out) n += put_utf8(out + n, cp);
    }
    return -1;
}

static int number(scan *s, double *out)
{
    const char *start = s->p;
    if (s->p < s->end && *s->p == '-') s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || *s->p == '.' || *s->p == 'e'
                             || *s->p == 'E' || *s->p == '+' || *s->p == '-'))
        s->p++;
    if (out) {
        char tmp[64];
        size_t n = (size_t)(s->p - start);
        if (n >= sizeof tmp) return -1;
        memcpy(tmp, start, n);
        tmp[n] = '\0';
        char *e;
        *out = strtod(tmp, &e);
        if (*e) return -1;
    }
    return 0;
}

static int value(scan *s, int depth);

static int literal(scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return -1;
    s->p += n;
    return 0;
}

static int container(scan *s, int depth, char close, int object)
{
    if (depth > MAX_DEPTH) return -1;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) { s->p++; return 0; }
    for (;;) {
        if (object) {
            if (string(s, NULL, NULL) != 0) return -1;
            ws(s);
            if (s->p >= s->end || *s->p++ != ':') return -1;
        }
        if (value(s, depth + 1) != 0) return -1;
        ws(s);
        if (s->p >= s->end) return -1;
        char c = *s->p++;
        if (c == close) return 0;
        if (c != ',') return -1;
    }
}

static int value(scan *s, int depth)
{
    ws(s);
    if (s->p >= s->end) return -1;
    switch (*s->p) {
    case '{': return container(s, depth, '}', 1);
    case '[': return container(s, depth, ']', 0);
    case '"': return string(s, NULL, NULL);
    case 't': return literal(s, "true");
    case 'f': return literal(s, "false");
    case 'n': return literal(s, "null");
    default: return number(s, NULL);
    }
}

/* Positions s at the value of top-level member `key`, after checking that the whole
 * text is one well-formed object. */
static int find(const char *json, size_t len, const char *key, scan *s)
{
    scan all = { json, json + len };
    ws(&all);
    if (all.p >= all.end || *all.p != '{' || value(&all, 0) != 0) return -1;
    ws(&all);
    if (all.p != all.end) return -1;
    s->p = json;
    s->end = json + len;
    ws(s);
    s->p++;
    size_t kl = strlen(key);
    for (;;) {
        ws(s);
        if (s->p >= s->end || *s->p != '"') return -1;
        const char *k = s->p + 1;
        if (string(s, NULL, NULL) != 0) return -1;
        int match = (size_t)(s->p - 1 - k) == kl && memcmp(k, key, kl) == 0;
        ws(s);
        s->p++; /* ':' */
        ws(s);
        if (match) return 0;
        if (value(s, 1) != 0) return -1;
        ws(s);
        if (s->p >= s->end || *s->p++ != ',') return -1;
    }
}

int a2g_json_string(const char *json, size_t len, const char *key, char **out,
                    size_t *outlen)
{
    scan s;
    if (find(json, len, key, &s) != 0 || s.p >= s.end || *s.p != '"') return -1;
    scan probe = s;
    if (string(&probe, NULL, NULL) != 0) return -1;
    char *buf = malloc((size_t)(probe.p - s.p) + 1);
    if (!buf) return -1;
    size_t n;
    if (string(&s, buf, &n) != 0) { free(buf); return -1; }
    *out = buf;
    if (outlen) *outlen = n;
    return 0;
}

int a2g_json_number(const char *json, size_t len, const char *key, double *out)
{
    scan s;
    if (find(json, len, key, &s) != 0) return -1;
    return number(&s, out);
}
