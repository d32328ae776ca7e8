/* nimbus_client.h: one tenant's connection to Nimbus: the Entra access token (client credentials
 * grant, proven by the client secret in an HTTP Basic header or by a client assertion signed with
 * the application's certificate key; cached, and refreshed before it expires) and the five API
 * calls over the HTTP engine. It decides neither when a call may start (the tenant's limiter
 * does) nor what an answer means for a user (the runner does): it moves bytes and classifies
 * answers. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "credential.h"
#include "diag.h"
#include "guid.h"
#include "nimbus_api.h"
#include "token.h"
#include "util.h"

typedef struct NimbusClient NimbusClient;

typedef struct NimbusResult {
        NimbusCall call;
        Outcome outcome;
        long http_status;          /* 0 when the transport failed */
        int error;                 /* transport error as negative errno, 0 otherwise */
        const char *message;       /* what went wrong, one line, for logs and the store; "" on success */
        uint64_t retry_after_usec; /* the server's Retry-After, 0 when none */
        const char *body;          /* the answer, valid during the callback only */
        size_t body_len;
} NimbusResult;

typedef void (*NimbusDoneFn)(void *userdata, const NimbusResult *res);

/* cred holds a secret, or a certificate and its key (as credential_read() gives them). The
 * secret is copied and wiped from memory when the client is closed; key and certificate are
 * parsed here, once, and checked to belong together: a problem with them is -EBADMSG or
 * -EKEYREJECTED with a one-line diagnostic. The caller may wipe cred right after the call. */
int nimbus_client_new(uv_loop_t *loop, const Config *c, const ClientCredential *cred,
                      NimbusClient **ret, Diag *diag);
/* Cancels what is in flight (callbacks run with a transport error -ECANCELED). Accepts NULL. */
void nimbus_client_close(NimbusClient *nc);
DEFINE_CLEANUP(NimbusClient *, nimbus_client_close)

/* A token that will still be valid for a while (not within its refresh margin). */
bool nimbus_client_token_valid(const NimbusClient *nc, uint64_t now_usec);
void nimbus_client_token_invalidate(NimbusClient *nc);
/* Fetch a new token; one fetch at a time (-EBUSY if one is running). */
int nimbus_client_token_fetch(NimbusClient *nc, TokenDoneFn done, void *userdata);

/* One answer as it came, for --raw: what was asked and what came back. */
typedef struct NimbusRaw {
        const char *what;          /* "token", or the call's name (nimbus_call_name()) */
        const char *method;
        const char *url;
        long status;               /* 0 when there was no answer: see error_text */
        const char *error_text;
        const char *headers;       /* status line and headers, as received */
        size_t headers_len;
        const char *body;          /* may hold an access token: redact before showing it */
        size_t body_len;
} NimbusRaw;

typedef void (*NimbusRawFn)(void *userdata, const NimbusRaw *raw);

/* Every answer, token and API, is handed to fn before it is acted on (fn NULL: none is). */
void nimbus_client_set_raw(NimbusClient *nc, NimbusRawFn fn, void *userdata);
/* Send the calls made from now on to another API base URL (ending in '/'): how `doctor` asks
 * whether the tenant answers at the other host. */
int nimbus_client_set_api_base(NimbusClient *nc, const char *api_base);

/* Send one API call with the current token (-ENOKEY if there is none). */
int nimbus_client_call(NimbusClient *nc, NimbusCall call, const Guid *id, const Guid *target,
                       NimbusDoneFn done, void *userdata);
