/* nimbus_client.c: the Entra token and the Nimbus calls over the HTTP engine. See the header for
 * what this module leaves to others. */
#include "nimbus_client.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "jwt.h"
#include "oauth.h"
#include "util.h"

#define TOKEN_MARGIN_MAX (60 * USEC_PER_SEC)

struct NimbusClient {
        HttpEngine *http;
        char *api_base;
        char *token_url;
        char *scope;
        char *client_id;
        char *basic_user;            /* one of these two: HTTP Basic, client id and secret */
        char *secret;                /*   form-encoded (RFC 6749 §2.3.1), or */
        JwtSigner *signer;           /* a signed client assertion per token request */
        uint64_t timeout_usec;

        char *token;                 /* never logged, never stored */
        uint64_t token_expires;      /* wall clock, usec */
        uint64_t token_margin;       /* refresh this long before expiry */
        bool fetching;
        TokenDoneFn token_done;
        void *token_userdata;
        NimbusRawFn raw;             /* --raw: sees every answer first */
        void *raw_userdata;
};

/* One API call in flight. */
typedef struct CallCtx {
        NimbusClient *nc;
        NimbusCall call;
        const char *method;
        char *url;
        NimbusDoneFn done;
        void *userdata;
} CallCtx;

static void wipe_free(char *s) {
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

static int credential_set(NimbusClient *nc, JwtAlg alg, const ClientCredential *cred, Diag *diag) {
        int r;

        if (cred->key_pem && cred->cert_pem)
                return jwt_signer_new(cred->cert_pem, cred->cert_path, cred->key_pem, cred->key_path,
                                      alg, &nc->signer, diag);
        if (!cred->secret)
                return -EINVAL;
        /* Entra form-decodes both before comparing: a raw '+', '%' or ':' would change the
         * secret. curl adds the Base64. */
        r = oauth_basic_credential(nc->client_id, &nc->basic_user);
        if (r >= 0)
                r = oauth_basic_credential(cred->secret, &nc->secret);
        return r;
}

int nimbus_client_new(uv_loop_t *loop, const Config *c, const ClientCredential *cred,
                      NimbusClient **ret, Diag *diag) {
        NimbusClient *nc = calloc(1, sizeof(*nc));
        int r;

        if (!nc)
                return -ENOMEM;
        nc->timeout_usec = c->retry.timeout_usec;
        if (!(nc->api_base = strdup(c->api_base)) || !(nc->token_url = strdup(c->token_url)) ||
            !(nc->scope = strdup(c->scope)) || !(nc->client_id = strdup(c->client_id))) {
                r = -ENOMEM;
                goto fail;
        }
        r = credential_set(nc, c->client_assertion_alg, cred, diag);
        if (r < 0)
                goto fail;
        r = http_engine_new(loop, c->ca_file, &nc->http);
        if (r < 0)
                goto fail;
        *ret = nc;
        return 0;
fail:
        nimbus_client_close(nc);
        return r;
}

void nimbus_client_close(NimbusClient *nc) {
        if (!nc)
                return;
        http_engine_close(nc->http);   /* runs our callbacks with -ECANCELED first */
        free(nc->api_base);
        free(nc->token_url);
        free(nc->scope);
        free(nc->client_id);
        free(nc->basic_user);
        wipe_free(nc->secret);
        jwt_signer_free(nc->signer);
        wipe_free(nc->token);
        free(nc);
}

bool nimbus_client_token_valid(const NimbusClient *nc, uint64_t now) {
        return nc->token && now + nc->token_margin < nc->token_expires;
}

void nimbus_client_token_invalidate(NimbusClient *nc) {
        wipe_free(nc->token);
        nc->token = NULL;
}

void nimbus_client_set_raw(NimbusClient *nc, NimbusRawFn fn, void *userdata) {
        nc->raw = fn;
        nc->raw_userdata = userdata;
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

/* Entra answers 400 and 401 for every credential problem: those need an admin, not a retry. */
static TokenStatus token_status(const HttpResponse *resp) {
        if (resp->status >= 200 && resp->status < 300)
                return TOKEN_OK;
        if (resp->status == 400 || resp->status == 401 || resp->status == 403)
                return TOKEN_REFUSED;
        return TOKEN_TRANSIENT;
}

static void token_answer(void *userdata, const HttpResponse *resp) {
        NimbusClient *nc = userdata;
        /* An untrusted certificate will not become trusted by retrying: report it at once. */
        TokenStatus st = resp->status ? token_status(resp) :
                         resp->error == -EKEYREJECTED || resp->error == -ENOKEY ? TOKEN_REFUSED : TOKEN_TRANSIENT;
        _cleanup_free_ char *msg = NULL;
        char *token = NULL;
        uint64_t lifetime = 0;

        nc->fetching = false;
        show_raw(nc, "token", "POST", nc->token_url, resp);
        if (st == TOKEN_OK && oauth_parse_token(resp->body, resp->body_len, &token, &lifetime) < 0)
                st = TOKEN_TRANSIENT;   /* a 200 without a token is a strange answer: retry later */
        if (st == TOKEN_OK) {
                wipe_free(nc->token);
                nc->token = token;
                nc->token_expires = now_usec() + lifetime;
                nc->token_margin = lifetime / 4 < TOKEN_MARGIN_MAX ? lifetime / 4 : TOKEN_MARGIN_MAX;
        } else if (resp->error == -EKEYREJECTED) {
                if (asprintf(&msg, "%s (if a proxy inspects TLS, set ca_file to its CA)", resp->error_text) < 0)
                        msg = NULL;
        } else if (resp->status == 0)
                msg = strdup(resp->error_text);
        else if (resp->status == 200)
                msg = strdup("token endpoint answered 200 without a usable access_token");
        else
                (void) nimbus_error_message(resp->status, resp->body, resp->body_len, &msg);
        nc->token_done(nc->token_userdata, st, resp->status, st == TOKEN_OK ? "" : msg ? msg : "out of memory");
}

/* With a certificate, a fresh assertion for each request: Entra refuses a reused one. */
static int token_request_body(NimbusClient *nc, char **ret) {
        char *assertion = NULL;
        int r;

        if (!nc->signer)
                return oauth_request_body(nc->scope, ret);
        r = jwt_client_assertion(nc->signer, nc->client_id, nc->token_url, now_usec(), &assertion);
        if (r < 0)
                return r;
        r = oauth_assertion_request_body(nc->scope, nc->client_id, assertion, ret);
        wipe_free(assertion);
        return r;
}

int nimbus_client_token_fetch(NimbusClient *nc, TokenDoneFn done, void *userdata) {
        char *body = NULL;
        HttpRequest req = {
                .method = "POST", .url = nc->token_url,
                .content_type = "application/x-www-form-urlencoded",
                .basic_user = nc->basic_user, .basic_pass = nc->secret,
                .timeout_usec = nc->timeout_usec, .max_body = NIMBUS_MAX_BODY,
        };
        int r;

        if (nc->fetching)
                return -EBUSY;
        r = token_request_body(nc, &body);
        if (r < 0)
                return r;
        req.body = body;
        nc->token_done = done;
        nc->token_userdata = userdata;
        r = http_submit(nc->http, &req, token_answer, nc);
        wipe_free(body);   /* the engine has its own copy */
        if (r < 0)
                return r;
        nc->fetching = true;
        return 0;
}

/* What an admin must read when the answer is no Nimbus answer at all. */
static int odd_answer_message(Outcome o, const HttpResponse *resp, char **ret) {
        if (o == OUTCOME_REDIRECT)
                return asprintf(ret, "HTTP %ld redirect to %s: api_url does not point at the Nimbus "
                                "API (wrong host or cluster?)", resp->status,
                                resp->location ? resp->location : "(no Location)") < 0 ? -ENOMEM : 0;
        return asprintf(ret, "HTTP %ld with a body that is not a Nimbus answer (%s): a proxy or "
                        "login page, or api_url points at the wrong host", resp->status,
                        resp->body_len > 0 && resp->body[0] == '<' ? "an HTML page" : "not JSON")
                < 0 ? -ENOMEM : 0;
}

static void call_answer(void *userdata, const HttpResponse *resp) {
        CallCtx *ctx = userdata;
        _cleanup_free_ char *msg = NULL;
        NimbusResult res = {
                .call = ctx->call, .http_status = resp->status, .error = resp->error,
                .body = resp->body, .body_len = resp->body_len, .message = "",
        };
        uint64_t ra;
        int k;

        show_raw(ctx->nc, nimbus_call_name(ctx->call), ctx->method, ctx->url, resp);
        res.outcome = nimbus_classify(ctx->call, resp->status, resp->error, resp->body, resp->body_len);
        if (resp->status == 0)
                res.message = resp->error_text;
        else if (res.outcome == OUTCOME_NOT_API || res.outcome == OUTCOME_REDIRECT) {
                k = odd_answer_message(res.outcome, resp, &msg);
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

        if (!nc->token)
                return -ENOKEY;
        r = nimbus_request_build(call, nc->api_base, id, target, &url, &req.method, &body);
        if (r < 0)
                return r;
        ctx = malloc(sizeof(*ctx));
        if (!ctx)
                return -ENOMEM;
        *ctx = (CallCtx) { .nc = nc, .call = call, .method = req.method, .url = TAKE_PTR(url),
                           .done = done, .userdata = userdata };
        req.url = ctx->url;
        req.body = body;
        req.bearer = nc->token;
        r = http_submit(nc->http, &req, call_answer, ctx);
        if (r < 0) {
                free(ctx->url);
                free(ctx);
        }
        return r;
}
