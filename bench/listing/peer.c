/* The benchmark's C peer: what a Lua user writes with libcurl and lua-cjson, without
 * the cost of a Lua binding of libcurl. One reused easy handle (one connection, TLS
 * session kept), the answer gathered in a growing buffer, then cjson.decode in an
 * embedded Lua state (Lua 5.4, or LuaJIT with Debian's 5.1 lua-cjson: built twice).
 * Its transfer modes are plain C libcurl: a file streamed up with a read callback,
 * a download into a callback that drops the bytes.
 *   peer list URL N [CAFILE]      N listings after one warm-up; prints seconds each
 *   peer decode FILE N            N decodes of FILE's text
 *   peer upload URL FILE N [CA]   N POSTs of FILE (raw body, as the gateway takes it)
 *   peer download URL N [CA]      N GETs into a sink
 * Prints one number: seconds per operation (the mean over the N, warm-up excluded). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

typedef struct { char *data; size_t len, cap; } buffer;

static size_t gather(char *p, size_t size, size_t n, void *ud)
{
    buffer *b = ud;
    size_t k = size * n;
    if (b->len + k > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + k)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (!b->data)
            return 0;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, k);
    b->len += k;
    return k;
}

static size_t drop(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    *(size_t *)ud += size * n;
    return size * n;
}

static size_t from_file(char *p, size_t size, size_t n, void *ud)
{
    return fread(p, 1, size * n, ud);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "peer: %s\n", what);
    exit(1);
}

static lua_State *lua_with_cjson(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "return require('cjson').decode") != 0)
        die(lua_tostring(L, -1));
    return L;  /* cjson.decode on top */
}

static void decode(lua_State *L, const char *s, size_t n)
{
    lua_pushvalue(L, 1);
    lua_pushlstring(L, s, n);
    if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1))
        die("cjson.decode failed");
    lua_pop(L, 1);
}

static CURL *handle(const char *url, const char *ca)
{
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (ca)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    /* what the client sends on every request */
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: bench-token");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    return e;
}

static void perform(CURL *e)
{
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status / 100 != 2)
        die(rc != CURLE_OK ? curl_easy_strerror(rc) : "not a 2xx answer");
}

int main(int argc, char **argv)
{
    if (argc < 4)
        die("usage: peer list|decode|upload|download ...");
    const char *mode = argv[1];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    double t0 = 0, t1 = 0;
    int n;
    if (strcmp(mode, "list") == 0) {
        n = atoi(argv[3]);
        lua_State *L = lua_with_cjson();
        CURL *e = handle(argv[2], argc > 4 ? argv[4] : NULL);
        buffer b = { 0 };
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, gather);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        for (int i = 0; i <= n; i++) {
            if (i == 1)
                t0 = now();
            b.len = 0;
            perform(e);
            decode(L, b.data, b.len);
        }
        t1 = now();
        curl_easy_cleanup(e);
        lua_close(L);
    } else if (strcmp(mode, "decode") == 0) {
        n = atoi(argv[3]);
        FILE *f = fopen(argv[2], "rb");
        if (!f)
            die("cannot open the page");
        static char text[1 << 22];
        size_t len = fread(text, 1, sizeof text, f);
        fclose(f);
        lua_State *L = lua_with_cjson();
        decode(L, text, len);
        t0 = now();
        for (int i = 0; i < n; i++)
            decode(L, text, len);
        t1 = now();
        lua_close(L);
    } else if (strcmp(mode, "upload") == 0 && argc >= 5) {
        n = atoi(argv[4]);
        struct stat st;
        if (stat(argv[3], &st) != 0)
            die("cannot stat the file");
        CURL *e = handle(argv[2], argc > 5 ? argv[5] : NULL);
        struct curl_slist *h = curl_slist_append(NULL, "Authorization: bench-token");
        h = curl_slist_append(h, "Name: blob.bin");
        h = curl_slist_append(h, "Content-Type: application/octet-stream");
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        size_t answer = 0;
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, drop);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &answer);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, from_file);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
        for (int i = 0; i <= n; i++) {
            if (i == 1)
                t0 = now();
            FILE *f = fopen(argv[3], "rb");
            if (!f)
                die("cannot open the file");
            curl_easy_setopt(e, CURLOPT_READDATA, f);
            perform(e);
            fclose(f);
        }
        t1 = now();
        curl_easy_cleanup(e);
    } else if (strcmp(mode, "download") == 0) {
        n = atoi(argv[3]);
        CURL *e = handle(argv[2], argc > 4 ? argv[4] : NULL);
        size_t got = 0;
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, drop);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &got);
        for (int i = 0; i <= n; i++) {
            if (i == 1)
                t0 = now();
            perform(e);
        }
        t1 = now();
        curl_easy_cleanup(e);
    } else {
        die("unknown mode");
    }
    printf("%.9f\n", (t1 - t0) / n);
    return 0;
}
