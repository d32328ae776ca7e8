/* nimbus_client.c: the Nimbus calls over the HTTP engine, with the token of token.c. See the header
 * for what this module leaves to others. */
#include "nimbus_client.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "oauth.h"
#include "util.h"

struct NimbusClient {
        HttpEngine *http;
        TokenCache *token;
        char *api_base;
        uint64_t timeout_usec;
        NimbusRawFn raw;             /* --raw: sees every answer first */
        void *raw_userdata;
};

/* One API call in flight. */
typedef struct CallCtx {
        NimbusClient *nc;
        NimbusCall call;
        Guid id;                /* the user asked about; null for license usage */
        const char *method;
        char *url;
        NimbusDoneFn done;
        void *userdata;
} CallCtx;

int nimbus_client_new(uv_loop_t *loop, const Config *c, const ClientCredential *cred,
                      NimbusClient **ret, Diag *diag) {
        _cleanup_(nimbus_client_closep) NimbusClient *nc = calloc(1, sizeof(*nc));
        int r;

        if (!nc)
                return -ENOMEM;
        nc->timeout_usec = c->retry.timeout_usec;
        if (!(nc->api_base = strdup(c->api_base)))
                return -ENOMEM;
        r = token_cache_new(c, c->scope, cred, &nc->token, diag);
        if (r < 0)
                return r;
        r = http_engine_new(loop, c->ca_file, &nc->http);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(nc);
        return 0;
}

void nimbus_client_close(NimbusClient *nc) {
        if (!nc)
                return;
        http_engine_close(nc->http);   /* runs our callbacks with -ECANCELED first */
        token_cache_free(nc->token);
        free(nc->api_base);
        free(nc);
}

bool nimbus_client_token_valid(const NimbusClient *nc, uint64_t now) {
        return token_cache_valid(nc->token, now);
}

void nimbus_client_token_invalidate(NimbusClient *nc) {
        token_cache_invalidate(nc->token);
}

int nimbus_client_token_fetch(NimbusClient *nc, TokenDoneFn done, void *userdata) {
        return token_cache_fetch(nc->token, nc->http, done, userdata);
}

static void show_raw(NimbusClient *nc, const char *what, const char *method, const char *url,
                     const HttpResponse *resp);

static void token_raw(void *userdata, const char *url, const HttpResponse *resp) {
        show_raw(userdata, "token", "POST", url, resp);
}

void nimbus_client_set_raw(NimbusClient *nc, NimbusRawFn fn, void *userdata) {
        nc->raw = fn;
        nc->raw_userdata = userdata;
        token_cache_set_raw(nc->token, fn ? token_raw : NULL, nc);
}

int nimbus_client_set_api_base(NimbusClient *nc, const char *api_base) {
        char *copy = strdup(api_base);

        if (!copy)
                return -ENOMEM;
        free(nc->api_base);
        nc->api_base = copy;
        return 0;
}

static void show_raw(NimbusClient *nc, const char *what, const char *method, const char *url,
                     const HttpResponse *resp) {
        NimbusRaw raw = { .what = what, .method = method, .url = url, .status = resp->status,
                          .error_text = resp->error_text, .headers = resp->headers,
                          .headers_len = resp->headers_len, .body = resp->body, .body_len = resp->body_len };

        if (nc->raw && resp->error != -ECANCELED)
                nc->raw(nc->raw_userdata, &raw);
}

/* What an admin must read when the answer is no Nimbus answer at all. */
static int odd_answer_message(Outcome o, const HttpResponse *resp, bool another, char **ret) {
        if (another)
                return asprintf(ret, "HTTP %ld about another user than the one asked for: a cache or "
                                "proxy in the way, or api_url points at the wrong host", resp->status)
                        < 0 ? -ENOMEM : 0;
        if (o == OUTCOME_REDIRECT)
                return asprintf(ret, "HTTP %ld redirect to %s: api_url does not point at the Nimbus "
                                "API (wrong host or cluster?)", resp->status,
                                resp->location ? resp->location : "(no Location)") < 0 ? -ENOMEM : 0;
        return asprintf(ret, "HTTP %ld with a body that is not a Nimbus answer (%s): a proxy or "
                        "login page, or api_url points at the wrong host", resp->status,
                        nimbus_body_is_html(resp->body, resp->body_len) ? "an HTML page" : "not JSON")
                < 0 ? -ENOMEM : 0;
}

static void call_answer(void *userdata, const HttpResponse *resp) {
        CallCtx *ctx = userdata;
        _cleanup_free_ char *msg = NULL;
        NimbusResult res = {
                .call = ctx->call, .http_status = resp->status, .error = resp->error,
                .body = resp->body, .body_len = resp->body_len, .message = "",
        };
        bool another;
        uint64_t ra;
        int k;

        show_raw(ctx->nc, nimbus_call_name(ctx->call), ctx->method, ctx->url, resp);
        res.outcome = nimbus_classify(ctx->call, resp->status, resp->error, resp->body, resp->body_len);
        another = ctx->call == CALL_GET_USER && res.outcome == OUTCOME_OK &&
                  nimbus_user_is_another(&ctx->id, resp->body, resp->body_len);
        if (another)
                res.outcome = OUTCOME_NOT_API;
        if (resp->status == 0)
                res.message = resp->error_text;
        else if (res.outcome == OUTCOME_NOT_API || res.outcome == OUTCOME_REDIRECT) {
                k = odd_answer_message(res.outcome, resp, another, &msg);
                res.message = k < 0 ? (msg = NULL, "not a Nimbus answer") : msg;
        } else if (res.outcome != OUTCOME_OK &&
                   nimbus_error_message(resp->status, resp->body, resp->body_len, &msg) >= 0)
                res.message = msg;
        if (resp->retry_after && parse_retry_after(resp->retry_after, now_usec(), &ra) >= 0)
                res.retry_after_usec = ra;
        ctx->done(ctx->userdata, &res);
        free(ctx->url);
        free(ctx);
}

int nimbus_client_call(NimbusClient *nc, NimbusCall call, const Guid *id, const Guid *target,
                       NimbusDoneFn done, void *userdata) {
        _cleanup_free_ char *url = NULL, *body = NULL;
        HttpRequest req = { .content_type = "application/json", .timeout_usec = nc->timeout_usec,
                            .max_body = NIMBUS_MAX_BODY };
        CallCtx *ctx;
        int r;

        if (!token_cache_bearer(nc->token))
                return -ENOKEY;
        r = nimbus_request_build(call, nc->api_base, id, target, &url, &req.method, &body);
        if (r < 0)
                return r;
        ctx = malloc(sizeof(*ctx));
        if (!ctx)
                return -ENOMEM;
        *ctx = (CallCtx) { .nc = nc, .call = call, .id = id ? *id : (Guid) { { 0 } }, .method = req.method,
                           .url = TAKE_PTR(url), .done = done, .userdata = userdata };
        req.url = ctx->url;
        req.body = body;
        req.bearer = token_cache_bearer(nc->token);
        r = http_submit(nc->http, &req, call_answer, ctx);
        if (r < 0) {
                free(ctx->url);
                free(ctx);
        }
        return r;
}
