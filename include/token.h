/* token.h: an Entra ID access token for one scope, from the client-credentials grant: proven by
 * the client secret in an HTTP Basic header or by a client assertion signed with the
 * application's certificate key, cached, and refreshed before it expires. The Nimbus client holds
 * one for the Nimbus scope, the Graph client one for Microsoft Graph; both use the same app
 * registration and credential. The token is never logged, stored or put into a message. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "credential.h"
#include "diag.h"
#include "http.h"

typedef struct TokenCache TokenCache;

typedef enum TokenStatus {
        TOKEN_OK,
        TOKEN_REFUSED,    /* Entra said no (bad secret, unknown client or tenant): an admin must act */
        TOKEN_TRANSIENT,  /* network trouble or a server error: try again later */
} TokenStatus;

typedef void (*TokenDoneFn)(void *userdata, TokenStatus status, long http_status, const char *message);

/* cred holds a secret, or a certificate and its key (as
 * credential_read() gives them): the secret is copied and wiped when the cache is freed;
 * key and certificate are parsed here and checked to belong together (-EBADMSG or -EKEYREJECTED
 * with a one-line diagnostic). The caller may wipe cred right after the call. */
int token_cache_new(const Config *c, const char *scope, const ClientCredential *cred,
                    TokenCache **ret, Diag *diag);
TokenCache *token_cache_free(TokenCache *tc);

/* A token that will still be valid for a while (not within its refresh margin). */
bool token_cache_valid(const TokenCache *tc, uint64_t now_usec);
void token_cache_invalidate(TokenCache *tc);
/* Fetch a new token through http; one fetch at a time (-EBUSY if one is running). Close the
 * engine (which cancels a fetch in flight) before token_cache_free(). */
int token_cache_fetch(TokenCache *tc, HttpEngine *http, TokenDoneFn done, void *userdata);
/* The current token for an Authorization header, or NULL. */
const char *token_cache_bearer(const TokenCache *tc);
/* --raw: every token answer, as it came, goes to fn before it is acted on (fn NULL: none). */
typedef void (*TokenRawFn)(void *userdata, const char *url, const HttpResponse *resp);
void token_cache_set_raw(TokenCache *tc, TokenRawFn fn, void *userdata);
