/* graph_client.h: reads one Entra ID group through Microsoft Graph on the libuv loop: its name,
 * then every page of its user members (nested groups expanded), following @odata.nextLink to the
 * end. It uses the tenant's app registration and credential with a token of its own for
 * GRAPH_SCOPE, retries what is transient (network, 408, 429, 5xx) with backoff honouring
 * Retry-After, and fetches a new token once on a 401. A listing is handed over only when every
 * page arrived; anything else is a failure with one line saying why.
 *
 * Graph requests have an HTTP engine of their own: they never count against the Nimbus rate
 * window, and Graph throttling never pauses Nimbus calls. */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "credential.h"
#include "diag.h"
#include "graph_api.h"

typedef struct GraphClient GraphClient;

typedef struct GraphFailure {
        GraphOutcome outcome;   /* GRAPH_DENIED, GRAPH_NOT_FOUND, ...; GRAPH_RETRY: attempts ran out */
        long http_status;       /* of the last answer, 0 when none */
        const char *message;    /* one line for logs and status */
} GraphFailure;

/* Exactly one of listing (the caller takes it; sorted and unique) and failure is set. */
typedef void (*GraphReadDoneFn)(void *userdata, const Guid *group, GraphListing *listing,
                                const GraphFailure *failure);

/* cred as credential_read() gives it; the caller may wipe it right after the call. */
int graph_client_new(uv_loop_t *loop, const Config *c, const ClientCredential *cred, GraphClient **ret,
                     Diag *diag);
/* A read in progress ends with a failure ("cancelled"); the client is freed from a close
 * callback, so run the loop afterwards. Accepts NULL. */
void graph_client_close(GraphClient *g);
/* A retry due later than this (a long Retry-After) ends the read as failed instead of waiting:
 * commands run by hand never wait silently. Default: no limit (the daemon). */
void graph_client_set_max_wait(GraphClient *g, uint64_t usec);
/* Read one group; one read at a time (-EBUSY). done is called from the loop, never from here. */
int graph_client_read(GraphClient *g, const Guid *group, GraphReadDoneFn done, void *userdata);
