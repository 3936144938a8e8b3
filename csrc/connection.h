/* What a connection to the gateway is made with: the options a client hands its
 * transport unread (client.h's a2g_client_opts.conn, curl_transport.c). Pure C. */
#ifndef A2G_CONNECTION_H
#define A2G_CONNECTION_H

#pragma GCC visibility push(hidden)

typedef struct a2g_connection_opts {
    const char *cainfo;         /* extra trusted CA (PEM); the system's stay trusted */
    const char *proxy;          /* NULL: libcurl's *_proxy environment variables */
    long connect_timeout_ms;
    long timeout_ms;            /* whole transfer; 0: none */
    long low_speed_limit;       /* abort when slower than this many bytes/s ... */
    long low_speed_time;        /* ... for this many seconds */
    const char *user_agent;
    int max_transfers;          /* transfers in flight at once, each on a handle of its
                                   own (0: 1) */
} a2g_connection_opts;

#pragma GCC visibility pop

#endif
