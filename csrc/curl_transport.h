/* The transport on libcurl's multi interface (see transport.h): up to max_transfers
 * easy handles per client, one per transfer in flight, reused so that connections and
 * TLS sessions carry over from call to call, advanced a step at a time so that a host
 * event loop can interleave other work. With
 * url.c, the only file that includes curl.h. */
#ifndef A2G_CURL_TRANSPORT_H
#define A2G_CURL_TRANSPORT_H

#include "connection.h"
#include "error.h"
#include "transport.h"

#pragma GCC visibility push(hidden)

/* libcurl's process-wide set-up, once, before the first transport: 0 or -1. */
int a2g_curl_global_init(void);
/* A transport (free with t->ops->free(t->self)), or NULL with err set. */
a2g_transport *a2g_curl_transport(const a2g_connection_opts *o, a2g_error *err);

#pragma GCC visibility pop

#endif
