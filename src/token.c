/* token.c: the client-credentials token of one scope over the HTTP engine. See the header. */
#include "token.h"

#include <stdio.h>
#include <string.h>

#include "jwt.h"
#include "nimbus_api.h"
#include "oauth.h"
#include "util.h"

#define TOKEN_MARGIN_MAX (60 * USEC_PER_SEC)

struct TokenCache {
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
        unsigned count;
        TokenDoneFn done;
        void *userdata;
        TokenRawFn raw;              /* --raw: sees the answer first */
        void *raw_userdata;
};

static int credential_set(TokenCache *tc, JwtAlg alg, const ClientCredential *cred, Diag *diag) {
        int r;

        if (cred->key_pem && cred->cert_pem)
                return jwt_signer_new(cred->cert_pem, cred->cert_path, cred->key_pem, cred->key_path,
                                      alg, &tc->signer, diag);
        if (!cred->secret)
                return -EINVAL;
        /* Entra form-decodes both before comparing: a raw '+', '%' or ':' would change the
         * secret. curl adds the Base64. */
        r = oauth_basic_credential(tc->client_id, &tc->basic_user);
        if (r >= 0)
                r = oauth_basic_credential(cred->secret, &tc->secret);
        return r;
}

int token_cache_new(const Config *c, const char *scope, const ClientCredential *cred,
                    TokenCache **ret, Diag *diag) {
        TokenCache *tc = calloc(1, sizeof(*tc));
        int r;

        if (!tc)
                return -ENOMEM;
        tc->timeout_usec = c->retry.timeout_usec;
        if (!(tc->token_url = strdup(c->token_url)) || !(tc->scope = strdup(scope)) ||
            !(tc->client_id = strdup(c->client_id))) {
                token_cache_free(tc);
                return -ENOMEM;
        }
        r = credential_set(tc, c->client_assertion_alg, cred, diag);
        if (r < 0) {
                token_cache_free(tc);
                return r;
        }
        *ret = tc;
        return 0;
}

TokenCache *token_cache_free(TokenCache *tc) {
        if (!tc)
                return NULL;
        free(tc->token_url);
        free(tc->scope);
        free(tc->client_id);
        free(tc->basic_user);
        erase_and_free(tc->secret);
        jwt_signer_free(tc->signer);
        erase_and_free(tc->token);
        free(tc);
        return NULL;
}

bool token_cache_valid(const TokenCache *tc, uint64_t now) {
        return tc->token && now + tc->token_margin < tc->token_expires;
}

void token_cache_invalidate(TokenCache *tc) {
        erase_and_free(tc->token);
        tc->token = NULL;
}

const char *token_cache_bearer(const TokenCache *tc) {
        return tc->token;
}

void token_cache_set_raw(TokenCache *tc, TokenRawFn fn, void *userdata) {
        tc->raw = fn;
        tc->raw_userdata = userdata;
}

/* Entra answers 400 and 401 for every credential problem: those need an admin, not a retry. */
static TokenStatus token_status(const HttpResponse *resp) {
        if (resp->status >= 200 && resp->status < 300)
                return TOKEN_OK;
        if (resp->status == 400 || resp->status == 401 || resp->status == 403)
                return TOKEN_REFUSED;
        return TOKEN_TRANSIENT;
}

static char *failure_message(const HttpResponse *resp) {
        char *msg = NULL;

        if (resp->error == -EKEYREJECTED) {
                if (asprintf(&msg, "%s (if a proxy inspects TLS, set ca_file to its CA)", resp->error_text) < 0)
                        msg = NULL;
        } else if (resp->status == 0)
                msg = strdup(resp->error_text);
        else if (resp->status == 200)
                msg = strdup("token endpoint answered 200 without a usable access_token");
        else
                (void) nimbus_error_message(resp->status, resp->body, resp->body_len, &msg);
        return msg;
}

static void token_answer(void *userdata, const HttpResponse *resp) {
        TokenCache *tc = userdata;
        /* An untrusted certificate will not become trusted by retrying: report it at once. */
        TokenStatus st = resp->status ? token_status(resp) :
                         resp->error == -EKEYREJECTED || resp->error == -ENOKEY ? TOKEN_REFUSED : TOKEN_TRANSIENT;
        _cleanup_free_ char *msg = NULL;
        char *token = NULL;
        uint64_t lifetime = 0;

        tc->fetching = false;
        if (tc->raw && resp->error != -ECANCELED)
                tc->raw(tc->raw_userdata, tc->token_url, resp);
        if (st == TOKEN_OK && oauth_parse_token(resp->body, resp->body_len, &token, &lifetime) < 0)
                st = TOKEN_TRANSIENT;   /* a 200 without a token is a strange answer: retry later */
        if (st == TOKEN_OK) {
                erase_and_free(tc->token);
                tc->token = token;
                tc->token_expires = now_usec() + lifetime;
                tc->token_margin = lifetime / 4 < TOKEN_MARGIN_MAX ? lifetime / 4 : TOKEN_MARGIN_MAX;
        } else
                msg = failure_message(resp);
        tc->done(tc->userdata, st, resp->status, st == TOKEN_OK ? "" : msg ? msg : "out of memory");
}

/* With a certificate, a fresh assertion for each request: Entra refuses a reused one. */
static int token_request_body(TokenCache *tc, char **ret) {
        char *assertion = NULL;
        int r;

        if (!tc->signer)
                return oauth_request_body(tc->scope, ret);
        r = jwt_client_assertion(tc->signer, tc->client_id, tc->token_url, now_usec(), &assertion);
        if (r < 0)
                return r;
        r = oauth_assertion_request_body(tc->scope, tc->client_id, assertion, ret);
        erase_and_free(assertion);
        return r;
}

int token_cache_fetch(TokenCache *tc, HttpEngine *http, TokenDoneFn done, void *userdata) {
        char *body = NULL;
        HttpRequest req = {
                .method = "POST", .url = tc->token_url,
                .content_type = "application/x-www-form-urlencoded",
                .basic_user = tc->basic_user, .basic_pass = tc->secret,
                .timeout_usec = tc->timeout_usec, .max_body = NIMBUS_MAX_BODY,
        };
        int r;

        if (tc->fetching)
                return -EBUSY;
        r = token_request_body(tc, &body);
        if (r < 0)
                return r;
        req.body = body;
        tc->done = done;
        tc->userdata = userdata;
        r = http_submit(http, &req, token_answer, tc);
        erase_and_free(body);   /* the engine has its own copy */
        if (r < 0)
                return r;
        tc->fetching = true;
        tc->count++;
        return 0;
}
