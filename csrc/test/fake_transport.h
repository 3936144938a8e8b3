/* A scripted transport (transport.h) for the state machine's own test: each transfer
 * the client starts takes the next answer of a queue and finishes after a given number
 * of steps, with a status, headers and a body, or with a failure; what the client sent
 * (method, URL, header lines, body) is kept for the test to read. No network, no
 * libcurl, no clock of its own. */
#ifndef A2G_FAKE_TRANSPORT_H
#define A2G_FAKE_TRANSPORT_H

#include <stdint.h>

#include "error.h"
#include "transport.h"

#define FAKE_MAX 32

typedef struct fake_answer {
    long status;                 /* 0: no answer (see failure) */
    a2g_kind failure;            /* A2G_OK, or A2G_TIMEOUT / A2G_TLS / A2G_NETWORK */
    int64_t sent;                /* request bytes reported gone out; -1: the whole request */
    const char *headers[8];      /* "Name: value", NULL-terminated */
    const char *body;
    int steps;                   /* steps in flight before it finishes */
} fake_answer;

typedef struct fake_sent {
    char method[8];
    char url[512];
    char headers[2048];          /* the header lines, each ended by "\n" */
    char body[4096];
} fake_sent;

typedef struct fake {
    a2g_transport t;
    fake_answer answers[FAKE_MAX];
    int queued, next;            /* answers given, and the next to use */
    fake_sent sent[FAKE_MAX];
    int starts;                  /* transfers started */
    int aborts;                  /* transfers stopped in flight */
    a2g_xfer *current;
    int left;                    /* steps before the current one finishes */
    const fake_answer *answer;   /* the current one's */
} fake;

/* A new fake (its t is what the client takes; the client frees it). */
fake *fake_new(void);
/* Queues the answer of the next transfer. */
void fake_answer_next(fake *f, fake_answer a);

#endif
