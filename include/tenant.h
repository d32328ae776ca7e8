/* tenant.h: everything that belongs to one Nimbus tenant in one place: its configuration and
 * secret, its state store, its rate limiter, its token and client, and the queue of calls waiting
 * to be sent. Several tenants per daemon will come; nothing tenant-specific lives elsewhere.
 *
 * Every Nimbus request goes through tenant_call(): the tenant starts it only when the sliding
 * window has room and a token is at hand, and retries a 401 once with a fresh token. The window
 * lives in the state store, shared by every process of the tenant (the daemon, `apply`, and the
 * read-only commands that call Nimbus): each send takes its slot there atomically, and a 429
 * pauses them all. Mutations go before GETs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "nimbus_client.h"
#include "ratelimit.h"
#include "store.h"
#include "util.h"

#define TENANT_MAX_IN_FLIGHT 4

typedef enum CallPriority {
        PRIO_MUTATION = 0, /* create, copy, delete, and the license checks they depend on */
        PRIO_VERIFY = 1,   /* GETs that only refresh what we know: spare budget only */
} CallPriority;

typedef enum AuthState {
        AUTH_NONE,         /* no token yet */
        AUTH_OK,
        AUTH_FAILED,       /* token refused, or the API refused a fresh token: an admin must act */
} AuthState;

/* Called right before the request is sent, inside the store transaction that records its send
 * time: the place to record the intent of a mutation. A negative return cancels the call. */
typedef int (*TenantSendFn)(void *userdata);

typedef struct TenantCall TenantCall;

typedef struct Tenant {
        Config *config;
        Logger *log;            /* not owned */
        uv_loop_t *loop;
        Store *store;
        RateLimit limiter;      /* the numbers of the rule; the slots are in the store */
        NimbusClient *client;
        uv_timer_t timer;       /* wakes the dispatcher when the window or a backoff allows */

        TenantCall *queue[2], *queue_tail[2]; /* by CallPriority */
        unsigned in_flight;
        /* Answers whose arrival is not in the store's rate window yet (see record_answers()). */
        int64_t answered_id[TENANT_MAX_IN_FLIGHT];
        uint64_t answered_at[TENANT_MAX_IN_FLIGHT];
        unsigned n_answered;
        unsigned token_failures;/* consecutive transient token endpoint failures */
        unsigned auth_failures; /* consecutive refusals (token refused, or 401 with a fresh token) */
        AuthState auth;
        char *auth_error;       /* the server's reason, for logs and status */
        uint64_t auth_retry_at; /* AUTH_FAILED: when to try again (daemon) */
        bool give_up_on_auth;   /* apply: fail every queued call instead of waiting */
        bool closing;
        unsigned long sent;     /* API requests started by this process */
        MetricsApiCounts *api_counts; /* answers counted for the metrics (not owned), or NULL */
} Tenant;

/* Takes ownership of c. Opens the store read-write (creating it if needed). The credential
 * (secret, or certificate and key) is read from the configured files; problems go to diag. */
int tenant_new(uv_loop_t *loop, Config *c, Logger *log, Tenant **ret, Diag *diag);
/* Cancels queued and in-flight calls (their callbacks see -ECANCELED), then frees the tenant
 * from the timer's close callback: run the loop afterwards. Accepts NULL. */
void tenant_close(Tenant *t);
DEFINE_CLEANUP(Tenant *, tenant_close)

int tenant_call(Tenant *t, CallPriority prio, NimbusCall call, const Guid *id, const Guid *target,
                TenantSendFn on_send, NimbusDoneFn done, void *userdata);
/* Answer every mutation still queued (not sent) with -ECANCELED: nothing was recorded for
 * them, so nothing needs settling. Calls in flight go on, and so do the verify GETs. */
void tenant_cancel_queued(Tenant *t);
/* Forget a refusal or redirect this process met, so the next call is sent: `doctor` asks the
 * other API host after the configured one redirected it. The store is not touched. */
void tenant_forget_refusal(Tenant *t);
/* Slots of the rate window held now, by every process (for STATUS= and apply's progress). */
int tenant_rate_used(Tenant *t, unsigned *ret);
