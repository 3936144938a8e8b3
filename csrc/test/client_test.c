/* The request state machine (client.c) on its own, against the scripted transport of
 * fake_transport.c and a clock that only moves when the machine asks to sleep: logins,
 * re-authentication, Retry-After, backoff, sends that are never repeated, redirects,
 * the quota (window and hooks), abandonment of a request left in flight, Ctrl-C, and
 * the errors each ends with. Built by `make build` (build/test/client_test) and run by
 * spec/core/state_machine_spec.lua; prints one line a check, exits 1 if any failed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "clock.h"
#include "fake_transport.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        checks++;                                                                         \
        if (!(cond)) {                                                                    \
            failures++;                                                                   \
            printf("not ok %d - %s:%d: %s: ", checks, __FILE__, __LINE__, #cond);         \
            printf(__VA_ARGS__);                                                          \
            printf("\n");                                                                 \
        }                                                                                 \
    } while (0)

/* The client's clock: moved by the test, as the machine asks. */
static int64_t now;

static int64_t test_clock(void *ud)
{
    (void)ud;
    return now;
}

static const char *LOGIN_ANSWER;

static a2g_client_opts options(void)
{
    a2g_client_opts o;
    memset(&o, 0, sizeof o);
    o.url = "https://gw.example/v1";
    o.username = "user";
    o.password = "hunter22";
    o.conn.user_agent = "client_test";
    o.retries = 2;
    o.backoff_base_ms = 500;
    o.backoff_cap_ms = 30000;
    o.retry_after_cap_ms = 120000;
    o.max_json = 1024 * 1024;
    o.clock = test_clock;
    return o;
}

/* A client with a token given, and no username and password. */
static a2g_client_opts token_options(void)
{
    a2g_client_opts o = options();
    o.username = o.password = NULL;
    o.token = "tok-given";
    return o;
}

static fake *f;

static a2g_client *client_with(a2g_client_opts o)
{
    a2g_error err;
    f = fake_new();
    a2g_client *c = a2g_client_new(&o, &f->t, &err);
    if (!c) {
        printf("Bail out! a2g_client_new: %s\n", err.message);
        exit(1);
    }
    return c;
}

static a2g_client *client(void)
{
    return client_with(options());
}

static a2g_request *get(a2g_client *c, const char *segment, int flags)
{
    a2g_error err;
    a2g_request *r = a2g_request_new(c, flags & A2G_REQUEST_SEND ? "POST" : "GET", flags,
                                     &err);
    if (!r || a2g_request_segment(r, segment, strlen(segment)) != 0) {
        printf("Bail out! a2g_request_new\n");
        exit(1);
    }
    if (flags & A2G_REQUEST_SEND)
        a2g_request_body(r, "the message", 11, &err);
    return r;
}

/* Steps a request to its end, sleeping (the clock moves) as it asks: its error, and the
 * ms slept in all. */
static const a2g_error *run_blocking(a2g_request *r, int blocking, int64_t *slept)
{
    int64_t total = 0;
    for (int i = 0; i < 100000 && !a2g_request_done(r); i++) {
        int64_t ms = 0;
        a2g_step s = a2g_request_step(r, 0, blocking, &ms);
        if (s == A2G_STEP_SLEEP) {
            now += ms;
            total += ms;
        } else if (s == A2G_STEP_IO) {
            now += 1;
        }
    }
    if (slept)
        *slept = total;
    a2g_outcome o;
    return a2g_request_outcome(r, &o);
}

static const a2g_error *run(a2g_request *r, int64_t *slept)
{
    return run_blocking(r, 1, slept);
}

static fake_answer answer(long status, const char *body)
{
    fake_answer a;
    memset(&a, 0, sizeof a);
    a.status = status;
    a.body = body;
    a.sent = -1;
    return a;
}

static fake_answer failure(a2g_kind kind, int64_t sent)
{
    fake_answer a = answer(0, NULL);
    a.failure = kind;
    a.sent = sent;
    return a;
}

static void login_ok(void)
{
    fake_answer_next(f, answer(200, LOGIN_ANSWER));
}

/* ----------------------------------------------------------------------------------- */

static void logs_in_lazily_then_sends_the_token(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer_next(f, answer(200, "[]"));
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, NULL);
    a2g_outcome o;
    a2g_request_outcome(r, &o);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    CHECK(o.status == 200 && o.body && strcmp(o.body, "[]") == 0, "status %ld", o.status);
    CHECK(f->starts == 2, "%d transfers", f->starts);
    CHECK(strcmp(f->sent[0].method, "POST") == 0
          && strcmp(f->sent[0].url, "https://gw.example/v1/authorize") == 0, "%s %s",
          f->sent[0].method, f->sent[0].url);
    CHECK(strstr(f->sent[0].body, "\"username\"") && strstr(f->sent[0].body, "hunter22"),
          "login body %s", f->sent[0].body);
    CHECK(strcmp(f->sent[1].url, "https://gw.example/v1/station") == 0, "%s", f->sent[1].url);
    CHECK(strstr(f->sent[1].headers, "Authorization: tok-1\n") != NULL, "%s",
          f->sent[1].headers);
    const a2g_stats *s = a2g_client_stats(c);
    CHECK(s->requests == 2 && s->authorizations == 1, "%lu requests, %lu logins",
          s->requests, s->authorizations);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void logs_in_again_once_after_a_401(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer_next(f, answer(401, "{\"message\": \"expired\"}"));
    login_ok();
    fake_answer_next(f, answer(200, "{}"));
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, NULL);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    CHECK(f->starts == 4, "%d transfers", f->starts);
    CHECK(a2g_client_stats(c)->reauthentications == 1, "reauthentications");
    a2g_request_free(r);

    /* a second 401 to the fresh token is the end */
    fake_answer_next(f, answer(401, "{\"message\": \"no\"}"));
    login_ok();
    fake_answer_next(f, answer(401, "{\"message\": \"still no\"}"));
    r = get(c, "station", 0);
    e = run(r, NULL);
    CHECK(e->kind == A2G_AUTH && e->status == 401, "%s %ld", a2g_kind_name(e->kind),
          e->status);
    CHECK(strcmp(e->message, "still no") == 0, "%s", e->message);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void waits_for_retry_after_then_retries(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer a = answer(429, "");
    a.headers[0] = "Retry-After: 2";
    fake_answer_next(f, a);
    fake_answer_next(f, answer(200, "{}"));
    int64_t slept;
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, &slept);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    CHECK(slept >= 2000 && slept < 2100, "slept %" PRId64 " ms", slept);
    const a2g_stats *s = a2g_client_stats(c);
    CHECK(s->ratelimited == 1 && s->retries == 1, "%lu 429s, %lu retries", s->ratelimited,
          s->retries);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void ends_at_once_when_retry_after_is_over_the_cap(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer a = answer(429, "{\"message\": \"slow down\"}");
    a.headers[0] = "Retry-After: 600";
    fake_answer_next(f, a);
    int64_t slept;
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, &slept);
    CHECK(e->kind == A2G_RATELIMITED && e->retry_after == 600, "%s, retry_after %ld",
          a2g_kind_name(e->kind), e->retry_after);
    CHECK(slept == 0 && f->starts == 2, "slept %" PRId64 ", %d transfers", slept, f->starts);
    a2g_request_free(r);
    /* and so does the next call, with no request, until that time is up */
    r = get(c, "partner", 0);
    e = run(r, NULL);
    CHECK(e->kind == A2G_RATELIMITED && e->retry_after > 0 && f->starts == 2, "%s, %d",
          a2g_kind_name(e->kind), f->starts);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void retries_5xx_with_jittered_backoff(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer_next(f, answer(503, ""));
    fake_answer_next(f, answer(503, ""));
    fake_answer_next(f, answer(200, "{}"));
    int64_t slept;
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, &slept);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    /* equal jitter: 250-500 ms, then 500-1000 ms */
    CHECK(slept >= 750 && slept <= 1500, "slept %" PRId64 " ms", slept);
    CHECK(a2g_client_stats(c)->retries == 2, "retries");
    a2g_request_free(r);
    /* one more failure than retries: the last error */
    for (int i = 0; i < 3; i++)
        fake_answer_next(f, answer(502, ""));
    r = get(c, "station", 0);
    e = run(r, NULL);
    CHECK(e->kind == A2G_HTTP && e->status == 502, "%s %ld", a2g_kind_name(e->kind),
          e->status);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void never_sends_a_message_twice(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer_next(f, answer(503, ""));
    a2g_request *r = get(c, "ACME", A2G_REQUEST_SEND);
    const a2g_error *e = run(r, NULL);
    CHECK(e->kind == A2G_UNKNOWN_OUTCOME, "a 5xx to a send: %s", a2g_kind_name(e->kind));
    CHECK(f->starts == 2, "%d transfers", f->starts);
    CHECK(strcmp(f->sent[1].body, "the message") == 0, "%s", f->sent[1].body);
    a2g_request_free(r);

    /* a connection that failed after bytes went out: unknown, not resent */
    fake_answer_next(f, failure(A2G_NETWORK, 40));
    r = get(c, "ACME", A2G_REQUEST_SEND);
    e = run(r, NULL);
    CHECK(e->kind == A2G_UNKNOWN_OUTCOME && f->starts == 3, "%s, %d",
          a2g_kind_name(e->kind), f->starts);
    a2g_request_free(r);

    /* nothing went out (refused, DNS): retried */
    fake_answer_next(f, failure(A2G_NETWORK, 0));
    fake_answer_next(f, answer(202, "{\"message\": \"Queued\"}"));
    r = get(c, "ACME", A2G_REQUEST_SEND);
    e = run(r, NULL);
    CHECK(e->kind == A2G_OK && f->starts == 5, "%s, %d", a2g_kind_name(e->kind), f->starts);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void never_retries_tls_failures(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer_next(f, failure(A2G_TLS, 0));
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, NULL);
    CHECK(e->kind == A2G_TLS && f->starts == 2, "%s, %d", a2g_kind_name(e->kind), f->starts);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void follows_same_origin_redirects_only(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer a = answer(307, "");
    a.headers[0] = "Location: /v2/station";
    fake_answer_next(f, a);
    fake_answer_next(f, answer(200, "{}"));
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, NULL);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    CHECK(strcmp(f->sent[2].url, "https://gw.example/v2/station") == 0, "%s", f->sent[2].url);
    CHECK(strstr(f->sent[2].headers, "Authorization: tok-1\n") != NULL, "%s",
          f->sent[2].headers);
    a2g_request_free(r);

    a.headers[0] = "Location: https://elsewhere.example/v1/station";
    fake_answer_next(f, a);
    r = get(c, "station", 0);
    e = run(r, NULL);
    CHECK(e->kind == A2G_REDIRECT, "%s", a2g_kind_name(e->kind));
    CHECK(f->starts == 4, "the token went elsewhere: %d transfers", f->starts);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void keeps_the_gateways_message_and_no_secret(void)
{
    a2g_client *c = client();
    login_ok();
    fake_answer_next(f, answer(404, "{\"message\": \"Unknown station ACME\"}"));
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, NULL);
    CHECK(e->kind == A2G_NOTFOUND && e->status == 404, "%s", a2g_kind_name(e->kind));
    CHECK(strcmp(e->message, "Unknown station ACME") == 0, "%s", e->message);
    CHECK(strcmp(e->context, "not found") == 0, "%s", e->context);
    a2g_request_free(r);

    /* a gateway that echoes the password or the token */
    fake_answer_next(f, answer(400, "{\"message\": \"bad: hunter22 / tok-1\"}"));
    r = get(c, "station", 0);
    e = run(r, NULL);
    CHECK(e->kind == A2G_INVALID, "%s", a2g_kind_name(e->kind));
    CHECK(!strstr(e->message, "hunter22") && !strstr(e->message, "tok-1"), "%s", e->message);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void keeps_the_window_counting_only_what_reached_the_gateway(void)
{
    a2g_client_opts o = token_options();
    o.rate_limit = 2;
    o.rate_window_ms = 1000;
    o.retries = 0;
    a2g_client *c = client_with(o);
    for (int i = 0; i < 2; i++) {
        fake_answer_next(f, answer(200, "{}"));
        a2g_request *r = get(c, "station", 0);
        run(r, NULL);
        a2g_request_free(r);
    }
    int64_t started = now, slept;
    fake_answer_next(f, answer(200, "{}"));
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, &slept);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    /* the third waits till the first left the window (its answer, plus the margin) */
    CHECK(slept == 1025 && now - started == 1025, "slept %" PRId64, slept);
    CHECK(a2g_client_stats(c)->waits == 1, "waits %lu", a2g_client_stats(c)->waits);
    a2g_request_free(r);
    a2g_client_free(c);

    /* a transfer that never reached the gateway does not count */
    o.rate_limit = 1;
    o.rate_window_ms = 10000;
    c = client_with(o);
    fake_answer_next(f, failure(A2G_NETWORK, 0));
    r = get(c, "station", 0);
    e = run(r, NULL);
    CHECK(e->kind == A2G_NETWORK, "%s", a2g_kind_name(e->kind));
    a2g_request_free(r);
    fake_answer_next(f, answer(200, "{}"));
    r = get(c, "station", 0);
    run(r, &slept);
    CHECK(slept == 0, "slept %" PRId64 " for a transfer that never went out", slept);
    a2g_request_free(r);
    a2g_client_free(c);
}

/* A call's deadline covers everything and ends it with the truth: a transfer in flight
 * stopped (a send: the outcome unknown), a wait for the rate limit past it refused at
 * once with retry_after, a retry after it not waited for; fail_fast never waits. */
static void ends_at_its_deadline_with_the_truth(void)
{
    a2g_client_opts o = token_options();
    a2g_client *c = client_with(o);
    fake_answer slow = answer(200, "{}");
    slow.steps = 5000; /* 5 s at 1 ms a step */
    fake_answer_next(f, slow);
    a2g_request *r = get(c, "station", 0);
    a2g_request_limits(r, 1000, 0);
    int64_t started = now;
    const a2g_error *e = run_blocking(r, 0, NULL);
    CHECK(e->kind == A2G_TIMEOUT && strstr(e->message, "deadline"), "%s: %s",
          a2g_kind_name(e->kind), e->message);
    CHECK(now - started >= 1000 && now - started <= 1002 && f->aborts == 1,
          "ended after %" PRId64 " ms, %d aborts", now - started, f->aborts);
    a2g_request_free(r);

    fake_answer_next(f, slow);
    r = get(c, "message", A2G_REQUEST_SEND);
    a2g_request_limits(r, 1000, 0);
    e = run_blocking(r, 0, NULL);
    CHECK(e->kind == A2G_UNKNOWN_OUTCOME && f->aborts == 2, "a send stopped in flight: %s",
          a2g_kind_name(e->kind));
    a2g_request_free(r);

    /* a 429 asking for 5 s, with 2 s left: ratelimited at once, no second transfer */
    fake_answer busy = answer(429, "");
    busy.headers[0] = "Retry-After: 5";
    fake_answer_next(f, busy);
    int starts = f->starts;
    int64_t slept;
    r = get(c, "station", 0);
    a2g_request_limits(r, 2000, 0);
    e = run(r, &slept);
    CHECK(e->kind == A2G_RATELIMITED && e->retry_after == 5 && slept == 0
          && f->starts == starts + 1, "%s, retry_after %ld, slept %" PRId64 ", %d transfers",
          a2g_kind_name(e->kind), e->retry_after, slept, f->starts - starts);
    a2g_request_free(r);
    now += 5000;

    /* a backoff of at least 250 ms, with 100 ms left: timeout, no second transfer */
    fake_answer_next(f, answer(503, ""));
    starts = f->starts;
    r = get(c, "station", 0);
    a2g_request_limits(r, 100, 0);
    e = run(r, &slept);
    CHECK(e->kind == A2G_TIMEOUT && strstr(e->message, "next retry") && slept == 0
          && f->starts == starts + 1, "%s, slept %" PRId64, a2g_kind_name(e->kind), slept);
    a2g_request_free(r);
    a2g_client_free(c);

    /* fail_fast: the window is full, so at once ratelimited, nothing sent */
    o.rate_limit = 1;
    o.rate_window_ms = 10000;
    c = client_with(o);
    fake_answer_next(f, answer(200, "{}"));
    r = get(c, "station", 0);
    run(r, NULL);
    a2g_request_free(r);
    r = get(c, "station", 0);
    a2g_request_limits(r, 0, 1);
    e = run(r, &slept);
    /* retry_after: the window and its margin, rounded up */
    CHECK(e->kind == A2G_RATELIMITED && e->retry_after == 11 && slept == 0 && f->starts == 1,
          "%s, retry_after %ld, slept %" PRId64, a2g_kind_name(e->kind), e->retry_after, slept);
    a2g_request_free(r);
    a2g_client_free(c);
}

static int acquires, releases;
static int64_t released_at;

static int64_t hook_acquire(void *ud)
{
    (void)ud;
    return acquires++ == 0 ? 30 : 0; /* a wait first, then a slot */
}

static void hook_release(void *ud, int64_t ended)
{
    (void)ud;
    releases++;
    released_at = ended;
}

static void asks_the_hosts_limiter_and_gives_every_slot_back(void)
{
    a2g_client_opts o = token_options();
    o.acquire = hook_acquire;
    o.release = hook_release;
    a2g_client *c = client_with(o);
    fake_answer_next(f, answer(200, "{}"));
    int64_t slept;
    a2g_request *r = get(c, "station", 0);
    const a2g_error *e = run(r, &slept);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    CHECK(acquires == 2 && releases == 1 && released_at == now, "%d acquires, %d releases",
          acquires, releases);
    CHECK(slept == 30 && a2g_client_stats(c)->waits == 1, "slept %" PRId64, slept);
    a2g_request_free(r);
    /* one left in flight and closed gives its slot back too */
    fake_answer a = answer(200, "{}");
    a.steps = 1000;
    fake_answer_next(f, a);
    r = get(c, "station", 0);
    int64_t ms;
    a2g_request_step(r, 0, 0, &ms);
    a2g_request_free(r);
    CHECK(releases == 2 && f->aborts == 1, "%d releases, %d aborts", releases, f->aborts);
    a2g_client_free(c);
}

static void lets_a_request_left_in_flight_go_after_a_minute(void)
{
    a2g_client_opts o = token_options();
    a2g_client *c = client_with(o);
    fake_answer stuck = answer(200, "{}");
    stuck.steps = 1000000;
    fake_answer_next(f, stuck);
    fake_answer_next(f, answer(200, "{}"));
    a2g_request *left = get(c, "station", A2G_REQUEST_SEND), *other = get(c, "partner", 0);
    int64_t ms;
    CHECK(a2g_request_step(left, 0, 0, &ms) == A2G_STEP_IO, "in flight");
    CHECK(a2g_request_step(other, 0, 0, &ms) == A2G_STEP_SLEEP, "waits its turn");
    now += A2G_ABANDON_MS + 1;
    const a2g_error *e = run_blocking(other, 0, NULL);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    a2g_outcome out;
    e = a2g_request_outcome(left, &out);
    CHECK(a2g_request_done(left) && e->kind == A2G_UNKNOWN_OUTCOME, "a send left in "
          "flight: %s", a2g_kind_name(e->kind));
    a2g_request_free(left);
    a2g_request_free(other);

    /* a blocking call takes the connection at once */
    fake_answer_next(f, stuck);
    fake_answer_next(f, answer(200, "{}"));
    left = get(c, "station", 0);
    other = get(c, "partner", 0);
    a2g_request_step(left, 0, 0, &ms);
    e = run(other, NULL);
    CHECK(e->kind == A2G_OK, "%s", e->message);
    e = a2g_request_outcome(left, &out);
    CHECK(e->kind == A2G_NETWORK && strstr(e->message, "abandoned"), "%s", e->message);
    a2g_request_free(left);
    a2g_request_free(other);
    a2g_client_free(c);
}

static void ends_at_ctrl_c_saying_what_went_out(void)
{
    a2g_client_opts o = token_options();
    a2g_client *c = client_with(o);
    fake_answer slow = answer(202, "{}");
    slow.steps = 1000;
    slow.sent = 50;
    fake_answer_next(f, slow);
    a2g_request *r = get(c, "ACME", A2G_REQUEST_SEND);
    int64_t ms;
    a2g_request_step(r, 0, 1, &ms);
    a2g_request_interrupt(r);
    a2g_outcome out;
    const a2g_error *e = a2g_request_outcome(r, &out);
    CHECK(e->kind == A2G_INTERRUPTED && strstr(e->message, "went out"), "%s", e->message);
    CHECK(f->aborts == 1, "%d aborts", f->aborts);
    a2g_request_free(r);
    r = get(c, "station", 0);
    a2g_request_interrupt(r);
    e = a2g_request_outcome(r, &out);
    CHECK(e->kind == A2G_INTERRUPTED && strcmp(e->message, "interrupted") == 0, "%s",
          e->message);
    a2g_request_free(r);
    a2g_client_free(c);
}

static void refuses_forged_paths_and_headers(void)
{
    a2g_client *c = client();
    a2g_error err;
    a2g_request *r = a2g_request_new(c, "GET", 0, &err);
    CHECK(a2g_request_encoded_path(r, "/a/../b", 7) != 0, "a dot segment");
    CHECK(a2g_request_encoded_path(r, "a/b", 3) != 0, "no leading slash");
    CHECK(a2g_request_header(r, "X-Note", "a\r\nX-Forged: 1", &err) != 0, "CR LF");
    CHECK(a2g_request_header(r, "Authorization", "mine", &err) != 0, "Authorization");
    CHECK(a2g_request_segment(r, "..", 2) == 0, "a segment");
    login_ok();
    fake_answer_next(f, answer(200, "{}"));
    run(r, NULL);
    CHECK(strcmp(f->sent[1].url, "https://gw.example/v1/%2E%2E") == 0, "%s", f->sent[1].url);
    a2g_request_free(r);
    a2g_client_free(c);
}

int main(void)
{
    static char login[128];
    snprintf(login, sizeof login, "{\"token\": \"tok-1\", \"expiry\": %" PRId64 "}",
             a2g_wall_ms() + 3600 * 1000);
    LOGIN_ANSWER = login;
    now = 1000000;
    logs_in_lazily_then_sends_the_token();
    logs_in_again_once_after_a_401();
    waits_for_retry_after_then_retries();
    ends_at_once_when_retry_after_is_over_the_cap();
    retries_5xx_with_jittered_backoff();
    never_sends_a_message_twice();
    never_retries_tls_failures();
    follows_same_origin_redirects_only();
    keeps_the_gateways_message_and_no_secret();
    keeps_the_window_counting_only_what_reached_the_gateway();
    ends_at_its_deadline_with_the_truth();
    asks_the_hosts_limiter_and_gives_every_slot_back();
    lets_a_request_left_in_flight_go_after_a_minute();
    ends_at_ctrl_c_saying_what_went_out();
    refuses_forged_paths_and_headers();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
