/* See json.h. A recursive-descent scanner with a depth bound, on the grammar of
 * RFC 8259; values other than the one asked for are checked and skipped, not built. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

typedef struct { const char *p, *end; } scan;

static void ws(scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const scan *s, unsigned *out)
{
    if (s->end - s->p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s->p[i];
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

/* Scans a string at s->p ('"'); with out != NULL decodes it into out, which must have
 * room for the raw length: decoding never grows it (an escape of 6 bytes gives at
 * most 3, a pair of 12 gives 4). */
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
            if (hex4(s, &cp) != 0)
                return -1;
            s->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                scan next = { s->p + 2, s->end };
                if (s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u'
                    && hex4(&next, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    s->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    cp = 0xFFFD; /* a lone high surrogate: valid JSON, no character */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            break;
        default:
            return -1;
        }
        if (out) n += put_utf8(out + n, cp);
    }
    return -1;
}

static int digits(scan *s)
{
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start ? 0 : -1;
}

/* number = [ "-" ] ( "0" / 1-9 *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "-" / "+" ] 1*DIGIT ] */
static int number(scan *s, double *out)
{
    const char *start = s->p;
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || digits(s) != 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) != 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) != 0)
            return -1;
    }
    if (out) {
        /* strtod needs a terminated copy; the grammar above is all it will read */
        size_t n = (size_t)(s->p - start);
        char small[64];
        char *tmp = n < sizeof small ? small : malloc(n + 1);
        if (!tmp)
            return -1;
        memcpy(tmp, start, n);
        tmp[n] = '\0';
        *out = strtod(tmp, NULL);
        if (tmp != small)
            free(tmp);
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

/* An array or an object at s->p; `depth` containers enclose it. */
static int container(scan *s, int depth, char close, int object)
{
    if (depth >= A2G_JSON_MAX_DEPTH) return -1;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) { s->p++; return 0; }
    for (;;) {
        if (object) {
            ws(s);
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

int a2g_json_valid(const char *json, size_t len)
{
    scan s = { json, json + len };
    if (value(&s, 0) != 0) return 0;
    ws(&s);
    return s.p == s.end;
}

/* Whether the string at s->p (a member name) decodes to `key`; advances past it. */
static int name_is(scan *s, const char *key, size_t kl, int *match)
{
    scan probe = *s;
    if (string(&probe, NULL, NULL) != 0) return -1;
    size_t raw = (size_t)(probe.p - s->p), n = 0;
    char small[128];
    char *buf = raw < sizeof small ? small : malloc(raw);
    if (!buf) return -1;
    int rc = string(s, buf, &n);
    *match = rc == 0 && n == kl && memcmp(buf, key, kl) == 0;
    if (buf != small) free(buf);
    return rc;
}

/* Positions s at the value of top-level member `key` (the last of that name), after
 * checking that the whole text is one well-formed object. */
static int find(const char *json, size_t len, const char *key, scan *s)
{
    scan all = { json, json + len };
    ws(&all);
    if (all.p >= all.end || *all.p != '{' || !a2g_json_valid(json, len)) return -1;
    s->p = all.p + 1;
    s->end = json + len;
    size_t kl = strlen(key);
    const char *found = NULL;
    ws(s);
    if (*s->p == '}') return -1;
    for (;;) {
        ws(s);
        int match;
        if (name_is(s, key, kl, &match) != 0) return -1;
        ws(s);
        s->p++; /* ':' */
        ws(s);
        if (match) found = s->p;
        if (value(s, 1) != 0) return -1;
        ws(s);
        if (*s->p++ != ',') break; /* '}': the text is known to be well-formed */
    }
    if (!found) return -1;
    s->p = found;
    return 0;
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
