/* answer.h: what one Nimbus answer means for one stored user. Every answer the runner or the
 * verify sweep receives goes through these two rules, and nothing else changes a user's
 * ownership, presence or retry state. They are pure (no I/O, no clock, no randomness: the caller
 * passes the time and the backoff delay in) and unit tested over tables in tests/unit/test_answer.c.
 *
 * Ownership (nimbus-sync(8), OWNERSHIP) is proven, never guessed:
 *  - ours (created, copied): only a success answer to our own create or copy makes a user ours,
 *    and a user that is ours stays ours whatever a later answer says;
 *  - adopted: "already exists" (confirmed by GET) when no earlier attempt of ours can have made it;
 *  - uncertain: "already exists" after an attempt of ours whose outcome is unknown (timeout,
 *    dropped connection, 5xx, a page that is not a Nimbus answer, a crash with the call in flight).
 * An earlier attempt "may have been sent" exactly while the user's intent stays recorded in the
 * store: a definite answer clears it, an unknown outcome keeps it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "nimbus_api.h"
#include "store.h"

typedef enum AnswerStep {
        STEP_DONE,           /* the action is complete */
        STEP_CONFIRM,        /* "already exists": one GET of the user confirms it first */
        STEP_RETRY,          /* transient: back off, then try again */
        STEP_QUARANTINE,     /* transient too often: retried after the quarantine time */
        STEP_FAILED,         /* permanent for this user until its entry changes or failed_retry */
        STEP_NO_LICENSES,    /* the tenant is out of licenses: creates and copies pause */
        STEP_CHECK_LICENSES, /* a 403 that means OU scope or no licenses: license usage decides */
        STEP_STOP,           /* the tenant refused us (auth, redirect): nothing happened, the run ends */
} AnswerStep;

typedef struct AnswerInput {
        NimbusCall call;          /* the action: create, copy or delete */
        Outcome outcome;          /* of the action's answer, or of the confirming GET (confirming) */
        long http_status;
        const char *message;      /* the server's words; borrowed */
        Guid target;              /* the OU (create) or template (copy) */
        Guid actual_ou;           /* the OU a confirming GET reported, or null */
        bool confirming;          /* outcome is the confirming GET's, after "already exists" */
        bool maybe_sent;          /* an earlier attempt of this action may have reached Nimbus */
        bool unprocessed;         /* this failure proves the action was not carried out (a 4xx
                                   * such as 429, or a failed confirming GET) */
        uint16_t attempts;        /* failed attempts of this action before this answer */
        uint16_t max_attempts;    /* transient failures before quarantine */
        uint64_t now_usec;
        uint64_t retry_delay_usec;        /* backoff for this failure, Retry-After honoured */
        uint64_t quarantine_usec, failed_retry_usec, no_license_retry_usec;
} AnswerInput;

typedef struct AnswerResult {
        AnswerStep step;
        bool maybe_sent;          /* for the next attempt of this action */
        bool store;               /* the user's record changed and must be written */
        const char *error;        /* the record's new error text (borrowed from the input), or NULL */
        const char *result;       /* the journal's result: ok, exists, gone, retry, failed, ... */
        const char *detail;       /* how the log line describes it, e.g. "already exists, adopted" */
} AnswerResult;

/* The answer to a create, copy or delete (or the GET confirming an "already exists"): updates *u
 * in place (all but u->error, whose new text is ret->error) and says what the job does next. */
void answer_apply(StoreUser *u, const AnswerInput *in, AnswerResult *ret);

/* A verify GET's answer for a stored user: present (in actual_ou, when known) or gone. listed:
 * the roster lists the user. Only OK and GONE change anything; false when nothing changed. */
bool answer_verify(StoreUser *u, Outcome outcome, const Guid *actual_ou, bool listed);
