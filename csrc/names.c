/* See names.h. */
#include "names.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

size_t a2g_sanitize_filename(const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < A2G_NAME_MAX; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.' && n == 0) {
            /* no hidden files: a leading dot becomes '_' (and so do "." and "..") */
            while (i + 1 < len && in[i + 1] == '.')
                i++;
            out[n++] = '_';
        } else if (c == '.' && i + 1 < len && in[i + 1] == '.') {
            while (i + 1 < len && in[i + 1] == '.')
                i++;
            out[n++] = '_';
        } else if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) {
            out[n++] = '_';
        } else {
            out[n++] = (char)c;
        }
    }
    /* never end inside a UTF-8 sequence: drop an incomplete trailing one */
    if (n == A2G_NAME_MAX) {
        size_t k = n;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3
                        : (lead & 0xF8) == 0xF0 ? 4 : 1;
            if (n - (k - 1) < need)
                n = k - 1;
        }
    }
    if (n == 0)
        out[0] = '_', n = 1;
    out[n] = '\0';
    return n;
}

size_t a2g_name_variant(const char *name, int n, char *out)
{
    size_t len = strlen(name);
    if (len > A2G_NAME_MAX)
        len = A2G_NAME_MAX;
    if (n <= 1) {
        memcpy(out, name, len);
        out[len] = '\0';
        return len;
    }
    const char *dot = memrchr(name, '.', len);
    size_t stem = (dot && dot != name && dot != name + len - 1) ? (size_t)(dot - name) : len;
    /* the suffix must not push the name past NAME_MAX: the stem gives way (cut on a
     * UTF-8 boundary), or the whole name does when the extension is long */
    char suffix[16];
    size_t sl = (size_t)snprintf(suffix, sizeof suffix, " (%d)", n);
    size_t keep = stem, ext = len - stem;
    if (ext + sl + 1 > A2G_NAME_MAX) {
        keep = len;
        ext = 0;
    }
    if (keep + sl + ext > A2G_NAME_MAX) {
        keep = A2G_NAME_MAX - sl - ext;
        while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80)
            keep--;
    }
    return (size_t)snprintf(out, A2G_NAME_MAX + 1, "%.*s%s%.*s", (int)keep, name, suffix,
                            (int)ext, name + len - ext);
}

int a2g_place_unique(const char *tmp, const char *dir, const char *name, char **final,
                     a2g_error *err)
{
    size_t cap = strlen(dir) + A2G_NAME_MAX + 2;
    char *target = malloc(cap);
    char variant[A2G_NAME_MAX + 1];
    if (!target)
        return a2g_fail(err, A2G_IO, 0, "out of memory");
    for (int n = 1; n <= 1000; n++) {
        a2g_name_variant(name, n, variant);
        snprintf(target, cap, "%s/%s", dir, variant);
        if (link(tmp, target) == 0) {
            unlink(tmp);
            a2g_error ignored; /* the file is there; a folder that cannot sync says no more */
            a2g_fsync_path(dir, &ignored);
            *final = target;
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    free(target);
    return a2g_fail(err, A2G_IO, 0, "cannot store the download in %s: %s", dir, strerror(e));
}

char *a2g_temp_download(const char *path, int into_dir)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return NULL;
    if (into_dir) {
        snprintf(tmp, n, "%s/.as2g-download.XXXXXX.part", path);
        return tmp;
    }
    char *d = strdup(path), *b = strdup(path);
    if (d && b) { /* the temporary name must fit NAME_MAX too: 200 bytes of the name */
        snprintf(tmp, n, "%s/.%.200s.XXXXXX.part", dirname(d), basename(b));
    } else {
        free(tmp);
        tmp = NULL;
    }
    free(d);
    free(b);
    return tmp;
}

char *a2g_temp_name(const char *dir, const char *purpose, const char *hex, const char *suffix)
{
    size_t n = strlen(dir) + strlen(purpose) + strlen(hex) + strlen(suffix) + 10;
    char *tmp = malloc(n);
    if (tmp)
        snprintf(tmp, n, "%s/.as2g-%s-%s%s", dir, purpose, hex, suffix);
    return tmp;
}

int a2g_is_leftover(const char *name)
{
    size_t n = strlen(name);
    if (name[0] != '.')
        return 0;
    if (n > 6 && strcmp(name + n - 5, ".part") == 0)
        return 1;
    static const char *const purposes[] = { "batch", "all", "error" };
    for (size_t i = 0; i < sizeof purposes / sizeof *purposes; i++) {
        size_t pl = strlen(purposes[i]);
        if (strncmp(name, ".as2g-", 6) != 0 || strncmp(name + 6, purposes[i], pl) != 0
            || name[6 + pl] != '-')
            continue;
        const char *p = name + 7 + pl, *q = p;
        while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F'))
            q++;
        if (q > p && (*q == '\0' || strcmp(q, ".zip") == 0))
            return 1;
    }
    return 0;
}
