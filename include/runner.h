/* runner.h: carries out a Plan for one tenant: turns its actions into jobs, feeds them to the
 * tenant's queue at the pace of the rate window, retries transient failures with backoff,
 * quarantines, pauses creates when licenses run out, and records every outcome in the store before
 * the next decision. It ends when nothing actionable is left. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "job.h"
#include "planner.h"
#include "tenant.h"

typedef struct RunnerStats {
        size_t created, copied, adopted, uncertain, deleted, gone;
        size_t failed, quarantined, held, blocked, paused, cancelled, deferred;
        uint64_t deferred_until;  /* Nimbus asked for a pause beyond max_wait (Retry-After), or 0 */
        uint64_t next_due_usec;   /* earliest retry time of a deferred job, or 0 */
        bool auth_failed;
} RunnerStats;

typedef void (*RunnerDoneFn)(void *userdata, Runner *r);

/* roster (may be NULL) gives the names and files shown in logs; it must outlive the runner. */
int runner_new(Tenant *t, const Plan *p, const Roster *roster, const char *run_id, Runner **ret);
/* Jobs whose retry time (from an earlier run) is further away than this are deferred to a later
 * run instead of waited for. apply sets a minute; the daemon waits as long as it takes. */
void runner_set_max_wait(Runner *r, uint64_t usec);
/* Starts the run; `done` is called once, from the loop, when it has ended. */
int runner_start(Runner *r, RunnerDoneFn done, void *userdata);
/* Stop starting new calls: calls queued in the tenant but not sent yet are dropped at the moment
 * they would be sent (the roster may have changed); in-flight ones are left to tenant_close(). */
void runner_stop(Runner *r);
const RunnerStats *runner_stats(const Runner *r);
size_t runner_count(const Runner *r, JobState s);
/* Jobs of this call (create, copy, delete) that have not reached a final state: the work left. */
size_t runner_open(const Runner *r, NimbusCall call);
/* When the earliest job waiting out a backoff is due, or 0: what `apply` says it waits for. */
uint64_t runner_next_retry(const Runner *r);
/* Frees from a close callback: run the loop afterwards. Accepts NULL. */
void runner_free(Runner *r);
