/* graph_client.c: one group read at a time, as a chain of requests driven by their answers: the
 * group, then member pages until there is no next link. Between attempts a timer waits out the
 * backoff; nothing ever blocks the loop. See the header for the rules. */
#include "graph_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "http.h"
#include "oauth.h"
#include "token.h"
#include "util.h"

#define HINT_DENIED "Insufficient privileges: grant GroupMember.Read.All (application) with admin consent"
#define HINT_NOT_FOUND "no such group in Entra ID (deleted, or not a group's object ID)"

typedef struct GraphRead {
        Guid group;
        GraphListing *list;
        char *url;              /* the request being made: the group, then each page */
        bool members;           /* reading member pages (after the group) */
        bool in_flight;
        bool auth_retried;      /* a 401 was answered with a fresh token already */
        unsigned pages;
        unsigned attempts;      /* failed attempts of the current request */
        GraphReadDoneFn done;
        void *userdata;
} GraphRead;

struct GraphClient {
        HttpEngine *http;
        TokenCache *token;
        char *graph_url;
        uint64_t base_usec, cap_usec, timeout_usec;
        unsigned max_attempts;
        uint64_t max_wait_usec; /* see graph_client_set_max_wait() */
        uv_timer_t timer;       /* starts a read, waits out a backoff */
        GraphRead *read;        /* the read in progress, or NULL */
        bool closing;
};

static void step(GraphClient *g);

static void read_free(GraphRead *rd) {
        if (!rd)
                return;
        graph_listing_free(rd->list);
        free(rd->url);
        free(rd);
}

/* End the read; its owner may start the next one from its callback. */
static void finish(GraphClient *g, GraphOutcome outcome, long status, const char *message) {
        GraphRead *rd = TAKE_PTR(g->read);
        GraphFailure f = { .outcome = outcome, .http_status = status, .message = message };
        GraphListing *list = NULL;
        Guid group = rd->group;

        if (outcome == GRAPH_OK) {
                list = TAKE_PTR(rd->list);
                (void) graph_listing_finish(list);
        }
        rd->done(rd->userdata, &group, list, outcome == GRAPH_OK ? NULL : &f);
        read_free(rd);
}

static void finishf(GraphClient *g, GraphOutcome outcome, long status, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void finishf(GraphClient *g, GraphOutcome outcome, long status, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        finish(g, outcome, status, msg ? msg : "out of memory");
}

static void on_timer(uv_timer_t *t) {
        step(t->data);
}

/* A transient failure: try the same request again after a backoff, or give up. */
static void retry_later(GraphClient *g, long status, uint64_t retry_after, const char *why) {
        GraphRead *rd = g->read;
        uint64_t delay;

        if (++rd->attempts >= g->max_attempts) {
                finishf(g, GRAPH_RETRY, status, "gave up after %u attempts: %s", rd->attempts, why);
                return;
        }
        delay = backoff_delay_honouring(g->base_usec, g->cap_usec, rd->attempts, backoff_random(), retry_after);
        if (delay > g->max_wait_usec) {
                finishf(g, GRAPH_RETRY, status, "Microsoft Graph asks us to wait %.0f s, longer than "
                        "this command waits: %s", (double) delay / USEC_PER_SEC, why);
                return;
        }
        (void) uv_timer_start(&g->timer, on_timer, (delay + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 0);
}

static void token_done(void *userdata, TokenStatus st, long status, const char *message) {
        GraphClient *g = userdata;

        if (!g->read || g->closing)
                return;
        if (st == TOKEN_OK)
                step(g);
        else if (st == TOKEN_REFUSED)
                finishf(g, GRAPH_AUTH, status, "Entra refused a token for Microsoft Graph: %s", message);
        else
                retry_later(g, status, 0, message);
}

/* The next request of a read whose last one succeeded. */
static int advance(GraphClient *g, const HttpResponse *resp) {
        GraphRead *rd = g->read;
        char *next = NULL;
        int r;

        if (!rd->members) {
                r = graph_parse_group(resp->body, resp->body_len, &rd->list->group_name);
                if (r >= 0) {
                        free(rd->url);
                        rd->members = true;
                        r = graph_members_url(g->graph_url, &rd->group, &rd->url);
                }
                return r;
        }
        r = graph_parse_members(resp->body, resp->body_len, g->graph_url, rd->list, &next);
        if (r < 0)
                return r;
        rd->pages++;
        free(rd->url);
        rd->url = next;
        return 0;
}

static void answer_ok(GraphClient *g, const HttpResponse *resp) {
        GraphRead *rd = g->read;
        int r = advance(g, resp);

        rd->attempts = 0;
        rd->auth_retried = false;
        if (r == -E2BIG)
                finishf(g, GRAPH_FAILED, resp->status, "the group has more than %zu user members",
                        rd->list->max_members);
        else if (r == -EXDEV)
                finishf(g, GRAPH_FAILED, resp->status, "Graph's @odata.nextLink leads away from graph_url "
                        "(%s); refusing to follow it", g->graph_url);
        else if (r < 0)
                finishf(g, GRAPH_FAILED, resp->status, "Graph answered page %u of the %s with something that "
                        "is not one (%s)", rd->pages + 1, rd->members ? "members" : "group",
                        r == -EBADMSG ? "unexpected content" : strerror(-r));
        else if (rd->members && !rd->url)
                finish(g, GRAPH_OK, resp->status, "");
        else if (rd->pages >= GRAPH_MAX_PAGES)
                finishf(g, GRAPH_FAILED, resp->status, "more than %d pages of members", GRAPH_MAX_PAGES);
        else
                step(g);
}

/* Graph's words, with what to do about them where we know it. */
static void fail_with(GraphClient *g, GraphOutcome outcome, long status, const char *msg) {
        if (outcome == GRAPH_DENIED)
                finishf(g, outcome, status, HINT_DENIED " (Graph said: %s)", msg);
        else if (outcome == GRAPH_NOT_FOUND)
                finishf(g, outcome, status, HINT_NOT_FOUND " (Graph said: %s)", msg);
        else
                finishf(g, outcome, status, "%s%s", status ? "Graph answered: " : "", msg);
}

static void answer_failed(GraphClient *g, const HttpResponse *resp, GraphOutcome outcome) {
        _cleanup_free_ char *msg = NULL;
        uint64_t retry_after = 0;

        if (resp->status == 0)
                msg = strdup(resp->error_text);
        else
                (void) graph_error_message(resp->status, resp->body, resp->body_len, &msg);
        if (!msg)
                finish(g, GRAPH_FAILED, resp->status, "out of memory");
        else if (outcome == GRAPH_AUTH && !g->read->auth_retried) {
                /* The token may have expired in flight: one more try with a fresh one. */
                g->read->auth_retried = true;
                token_cache_invalidate(g->token);
                step(g);
        } else if (outcome == GRAPH_RETRY) {
                if (resp->retry_after)
                        (void) parse_retry_after(resp->retry_after, now_usec(), &retry_after);
                retry_later(g, resp->status, retry_after, msg);
        } else
                fail_with(g, outcome, resp->status, msg);
}

static void on_answer(void *userdata, const HttpResponse *resp) {
        GraphClient *g = userdata;
        GraphOutcome outcome = graph_classify(resp->status, resp->error);

        if (!g->read)   /* closed from a callback while this was in flight: already answered */
                return;
        g->read->in_flight = false;
        if (resp->error == -ECANCELED)
                finish(g, GRAPH_FAILED, 0, "cancelled");
        else if (outcome == GRAPH_OK)
                answer_ok(g, resp);
        else
                answer_failed(g, resp, outcome);
}

static void step(GraphClient *g) {
        GraphRead *rd = g->read;
        HttpRequest req = { .method = "GET", .url = rd ? rd->url : NULL, .timeout_usec = g->timeout_usec,
                            .max_body = GRAPH_MAX_BODY };
        int r;

        if (!rd || g->closing)
                return;
        if (!token_cache_valid(g->token, now_usec())) {
                r = token_cache_fetch(g->token, g->http, token_done, g);
                if (r < 0 && r != -EBUSY)
                        finishf(g, GRAPH_FAILED, 0, "cannot request a token: %s", strerror(-r));
                return;
        }
        req.bearer = token_cache_bearer(g->token);
        r = http_submit(g->http, &req, on_answer, g);
        if (r < 0)
                finishf(g, GRAPH_FAILED, 0, "cannot start a request: %s", strerror(-r));
        else
                rd->in_flight = true;
}

void graph_client_set_max_wait(GraphClient *g, uint64_t usec) {
        g->max_wait_usec = usec;
}

int graph_client_read(GraphClient *g, const Guid *group, GraphReadDoneFn done, void *userdata) {
        GraphRead *rd;
        int r;

        if (g->closing)
                return -ESHUTDOWN;
        if (g->read)
                return -EBUSY;
        rd = calloc(1, sizeof(*rd));
        if (!rd)
                return -ENOMEM;
        *rd = (GraphRead) { .group = *group, .done = done, .userdata = userdata };
        r = graph_listing_new(GRAPH_MAX_MEMBERS, &rd->list);
        if (r >= 0)
                r = graph_group_url(g->graph_url, group, &rd->url);
        if (r < 0) {
                read_free(rd);
                return r;
        }
        g->read = rd;
        (void) uv_timer_start(&g->timer, on_timer, 0, 0);
        return 0;
}

int graph_client_new(uv_loop_t *loop, const Config *c, const ClientCredential *cred, GraphClient **ret,
                     Diag *diag) {
        GraphClient *g = calloc(1, sizeof(*g));
        int r;

        if (!g)
                return -ENOMEM;
        *g = (GraphClient) { .base_usec = c->retry.base_usec, .cap_usec = c->retry.cap_usec,
                             .timeout_usec = c->retry.timeout_usec, .max_attempts = c->retry.attempts,
                             .max_wait_usec = UINT64_MAX };
        r = strdup_checked(c->graph_url, &g->graph_url);
        if (r >= 0)
                r = token_cache_new(c, GRAPH_SCOPE, cred, &g->token, diag);
        if (r >= 0)
                r = http_engine_new(loop, c->ca_file, &g->http);
        if (r >= 0 && uv_timer_init(loop, &g->timer) < 0) {
                http_engine_close(g->http);
                r = -EIO;
        }
        if (r < 0) {
                token_cache_free(g->token);
                free(g->graph_url);
                free(g);
                return r;
        }
        g->timer.data = g;
        *ret = g;
        return 0;
}

static void client_closed(uv_handle_t *h) {
        GraphClient *g = h->data;

        token_cache_free(g->token);
        free(g->graph_url);
        free(g);
}

void graph_client_close(GraphClient *g) {
        if (!g || g->closing)
                return;
        g->closing = true;
        http_engine_close(g->http);   /* a request in flight ends as cancelled */
        if (g->read)                  /* one waiting for its timer or a token */
                finish(g, GRAPH_FAILED, 0, "cancelled");
        (void) uv_timer_stop(&g->timer);
        uv_close((uv_handle_t *) &g->timer, client_closed);
}
