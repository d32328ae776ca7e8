/* job.h: one user's action in a reconcile run, and the states it moves through. The transition
 * function is runner.c's job_set_state(): every change of state happens there, so a job's whole
 * life can be read in one place. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"
#include "nimbus_api.h"
#include "roster.h"

typedef enum JobState {
        JOB_NEW,         /* built from its action; runner_start() places it in its first state */
        JOB_QUEUED,      /* ready: handed to the tenant, which waits for the window, a token, a slot */
        JOB_WAIT_DEP,    /* a copy whose template is still being created in this run */
        JOB_IN_FLIGHT,   /* sent, its intent recorded in the store; the answer is pending */
        JOB_CONFIRMING,  /* answered "already exists": one GET of the user confirms it first */
        JOB_LICENSE_WAIT,/* a 403 that means OU scope or no licenses: waits for license usage */
        JOB_RETRY_WAIT,  /* transient failure: waits out its backoff (or Retry-After), then QUEUED */
        JOB_PAUSED,      /* create or copy while the tenant is out of licenses */
        JOB_DONE,        /* succeeded: created, copied, adopted, deleted, or already gone */
        JOB_FAILED,      /* permanent failure for this user, recorded with the server's message */
        JOB_QUARANTINED, /* too many transient failures: recorded, retried hourly */
        JOB_HELD,        /* a delete held by the safety rules until approve-deletes */
        JOB_BLOCKED,     /* a copy whose template was not created in this run */
        JOB_CANCELLED,   /* the run stopped (signal, auth refused); a sent intent stays for the next start */
        JOB_DEFERRED,    /* its retry time lies beyond what this run waits for (apply): a later run
                          * (also every queued job when Nimbus asks for a longer pause than that) */
        _JOB_STATE_MAX,
} JobState;

typedef struct Runner Runner;

typedef struct Job {
        Runner *runner;
        Guid id;
        Guid target;               /* OU (create), template (copy) */
        const RosterEntry *entry;  /* NULL for deletes */
        size_t depends_on;         /* index of the job creating our template, or SIZE_MAX */
        size_t first_dependent;    /* chain of jobs waiting for us, SIZE_MAX terminated */
        size_t next_dependent;
        uint64_t due_usec;         /* JOB_RETRY_WAIT: when to queue again */
        uint16_t attempts;         /* failed attempts so far in this run */
        uint8_t state;             /* JobState */
        uint8_t call;              /* NimbusCall */
        bool maybe_sent;           /* an earlier send may have reached Nimbus: "already exists"
                                    * then means uncertain, not adopted (answer.h) */
        char *pending_message;     /* JOB_CONFIRMING, JOB_LICENSE_WAIT: the answer being checked */
} Job;

const char *job_state_name(JobState s);
bool job_state_is_final(JobState s);
