/* reconcile.h: the steps `apply` and the daemon share around a run: plan from the store and the
 * roster, remember held deletes, log what the plan means (held deletes, drift), and keep the run
 * history. The daemon differs from `apply` only in when it runs these and what it waits for. */
#pragma once

#include "planner.h"
#include "runner.h"
#include "tenant.h"

/* Load what the store knows, plan, and sync the held set (mark-and-sweep) into the store. */
int reconcile_plan(Tenant *t, const Roster *r, Plan **ret);
/* Warnings an admin must see about a plan: held deletes, an empty roster, drift. */
void reconcile_log_notes(const Tenant *t, const Plan *p, const char *run_id);
/* The roster in force changes from old to new: the users we manage that left it were last listed
 * by their entries in old, which the store now remembers for the audit trail (a delete, held or
 * not, then names that file). Writes only the users that left. */
int reconcile_note_departures(Tenant *t, const Roster *old, const Roster *new);
/* A roster read from files was accepted: one journal entry says which files changed since the
 * last load (of the daemon or of `apply`), added, removed and changed, with their user counts;
 * the store then remembers this load. */
int reconcile_roster_loaded(Tenant *t, const Roster *files);
/* Number of jobs a plan gives the runner (creates, copies, deletes). */
size_t reconcile_jobs(const Plan *p);

/* Run history: begins a StoreRun with a fresh run id and logs the start. */
int reconcile_run_begin(Tenant *t, const Plan *p, const Roster *r, StoreRun *run);
/* Records and logs the end; exit_code is what `apply` would exit with. */
void reconcile_run_end(Tenant *t, const Plan *p, const RunnerStats *st, int exit_code, StoreRun *run);
/* apply's exit code for a finished run: 0 converged, 2 something remains, 1 could not run. */
int reconcile_exit_code(const Plan *p, const RunnerStats *st, bool interrupted);
