/* Parsers for server-supplied header values; see headers.h. Everything here treats
 * its input as hostile: bounded loops, no allocation proportional to anything but
 * the input, no trust in lengths or digits. */
#include "headers.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses a run of decimal digits into *out, saturating at LONG_MAX. */
static const char *parse_digits(const char *p, long *out)
{
    long v = 0;
    if (!isdigit((unsigned char)*p))
        return NULL;
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        v = (v > (LONG_MAX - d) / 10) ? LONG_MAX : v * 10 + d;
    }
    *out = v;
    return p;
}

static int month_index(const char *m)
{
    static const char *names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    for (int i = 0; i < 12; i++)
        if (strncmp(m, names[i], 3) == 0)
            return i;
    return -1;
}

static int parse_http_date(const char *s, time_t *out)
{
    struct tm tm;
    char wday[16], mon[4];
    int day, year, hh, mm, ss, n = 0;
    memset(&tm, 0, sizeof tm);
    mon[0] = '\0';
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(s, "%3[A-Za-z], %2d %3s %4d %2d:%2d:%2d GMT%n",
               wday, &day, mon, &year, &hh, &mm, &ss, &n) == 7 && n > 0) {
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    } else if (sscanf(s, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n",
                      wday, &day, mon, &year, &hh, &mm, &ss, &n) == 7 && n > 0) {
        year += year < 70 ? 2000 : 1900;
    /* asctime: Sun Nov  6 08:49:37 1994 */
    } else if (sscanf(s, "%3[A-Za-z] %3s %2d %2d:%2d:%2d %4d%n",
                      wday, mon, &day, &hh, &mm, &ss, &year, &n) == 7 && n > 0) {
    } else {
        return -1;
    }
    if (*skip_space(s + n) != '\0')
        return -1;
    int m = month_index(mon);
    if (m < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1970
        || hh < 0 || mm < 0 || ss < 0)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = m;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t;
    return 0;
}

int a2g_parse_retry_after(const char *value, time_t now, long cap_s, long *seconds)
{
    if (!value)
        return -1;
    const char *p = skip_space(value);
    long v;
    const char *end = parse_digits(p, &v);
    if (end) {
        if (*skip_space(end) != '\0')
            return -1;
    } else {
        time_t t;
        if (parse_http_date(p, &t) != 0)
            return -1;
        v = t > now ? (long)(t - now) : 0;
    }
    *seconds = v > cap_s ? cap_s : v;
    return 0;
}

int a2g_parse_truncation_index(const char *value, long *message, long *attachment)
{
    if (!value)
        return -1;
    const char *p = skip_space(value);
    long m, a;
    if (*p++ != '(')
        return -1;
    p = parse_digits(skip_space(p), &m);
    if (!p)
        return -1;
    p = skip_space(p);
    if (*p++ != ',')
        return -1;
    p = parse_digits(skip_space(p), &a);
    if (!p)
        return -1;
    p = skip_space(p);
    if (*p++ != ')' || *skip_space(p) != '\0')
        return -1;
    if (m == LONG_MAX || a == LONG_MAX)
        return -1;
    *message = m;
    *attachment = a;
    return 0;
}

char *a2g_parse_link(const char *value)
{
    if (!value)
        return NULL;
    const char *p = skip_space(value), *end;
    if (*p == '<') {
        p++;
        end = strchr(p, '>');
        if (!end)
            return NULL;
    } else {
        end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
    }
    size_t n = (size_t)(end - p);
    if (!(n > 8 && strncasecmp(p, "https://", 8) == 0)
        && !(n > 7 && strncasecmp(p, "http://", 7) == 0))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f || p[i] == '<' || p[i] == '>'
            || p[i] == '"')
            return NULL;
    char *url = malloc(n + 1);
    if (!url)
        return NULL;
    memcpy(url, p, n);
    url[n] = '\0';
    return url;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Finds parameter `name` (case-insensitive) of a header value; returns a pointer to
 * its value (after '=' and spaces) or NULL. Skips quoted strings while scanning so
 * that a quoted "; filename=" cannot fake a parameter. */
static const char *find_param(const char *v, const char *name)
{
    size_t nl = strlen(name);
    const char *p = v;
    while (*p) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
            continue;
        }
        if (*p == ';') {
            const char *q = skip_space(p + 1);
            if (strncasecmp(q, name, nl) == 0) {
                const char *r = skip_space(q + nl);
                if (*r == '=')
                    return skip_space(r + 1);
            }
        }
        p++;
    }
    return NULL;
}

char *a2g_disposition_filename(const char *value, size_t *len)
{
    if (!value)
        return NULL;
    size_t vl = strlen(value);
    char *out = malloc(vl + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    /* filename*=charset'lang'percent-encoded (RFC 5987/6266); UTF-8 or ASCII only */
    const char *p = find_param(value, "filename*");
    if (p) {
        const char *q1 = strchr(p, '\'');
        const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
        if (q2 && ((q1 - p == 5 && strncasecmp(p, "UTF-8", 5) == 0)
                   || (q1 - p == 8 && strncasecmp(p, "US-ASCII", 8) == 0))) {
            for (p = q2 + 1; *p && *p != ';' && *p != ' ' && *p != '\t'; p++) {
                if (*p == '%') {
                    int h = hexval((unsigned char)p[1]);
                    int l = h >= 0 ? hexval((unsigned char)p[2]) : -1;
                    if (l < 0) { n = 0; break; }
                    out[n++] = (char)(h * 16 + l);
                    p += 2;
                } else {
                    out[n++] = *p;
                }
            }
            if (n) {
                out[n] = '\0';
                *len = n;
                return out;
            }
        }
    }
    p = find_param(value, "filename");
    if (p) {
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                out[n++] = *p;
            }
        } else {
            for (; *p && *p != ';'; p++)
                out[n++] = *p;
            while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
                n--;
        }
        if (n) {
            out[n] = '\0';
            *len = n;
            return out;
        }
    }
    free(out);
    return NULL;
}
