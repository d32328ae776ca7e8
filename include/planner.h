/* planner.h: the diff between the desired state (Roster) and what the store knows of Nimbus.
 * Pure: it reads its inputs and returns a Plan; it never calls the API or writes the store. Both
 * inputs are sorted by id, so one merge pass covers a million users with no per-user query.
 * The deletion safety rules of nimbus-sync.yaml(5), DELETION SAFETY live here and nowhere else. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "roster.h"
#include "store.h"
#include "util.h"

#define PLAN_NO_DEP SIZE_MAX

typedef enum ActionKind {
        ACTION_CREATE = 1,
        ACTION_COPY = 2,
        ACTION_DELETE = 3,
        ACTION_HELD = 4,  /* a delete held by the safety rules */
        ACTION_DRIFT = 5, /* present in another OU than the roster says: reported, never "fixed" */
} ActionKind;

typedef struct Action {
        Guid id;
        Guid target;             /* OU (create, drift: the roster's OU), template (copy); null for deletes */
        Guid actual;             /* drift: the OU Nimbus holds the user in; delete, held: that OU, or
                                  * the OU it was created in, when known (for the audit trail) */
        const RosterEntry *entry;/* roster entry (create, copy, drift), NULL for deletes */
        size_t depends_on;       /* copy: index of the action creating its template, or PLAN_NO_DEP */
        uint64_t not_before_usec;/* a retry whose backoff has not run out yet; 0 = now */
        uint8_t kind;            /* ActionKind */
        uint8_t origin;          /* delete/held: the user's Origin */
        bool approved;           /* delete: released by approve-deletes */
        bool uncertain;          /* held: ownership was never proven (nimbus-sync(8), OWNERSHIP),
                                  * so it is held whatever the thresholds say */
} Action;

typedef enum DeleteGuard {
        GUARD_NONE = 0,
        GUARD_EMPTY_ROSTER,      /* roster empty, managed users exist, allow_empty false: no deletes */
        GUARD_MAX_PER_RUN,       /* more than max_per_run: all held */
        GUARD_MAX_PERCENT,       /* more than 5 and more than max_percent of managed: all held */
        GUARD_DISABLED,          /* deletes.enabled false */
} DeleteGuard;

/* Deletes skipped by a guard are counted, and the first this many listed, for the audit trail. */
#define PLAN_SKIPPED_LISTED 1000

typedef struct Plan {
        Action *actions;         /* deletes first, then creates, then copies, then held, then drift */
        size_t n;
        size_t n_create, n_copy, n_delete, n_held, n_drift;
        size_t n_failed;         /* roster users skipped: failed permanently, not due for retry */
        size_t n_quarantined;    /* roster users skipped: quarantined, not due */
        size_t n_uncertain;      /* of n_held: users whose ownership is uncertain */
        size_t n_still_held;     /* of the candidates: left held by a partial approval (HOLD_KEPT),
                                  * so held now whatever the thresholds say */
        size_t n_delete_skipped; /* delete candidates not acted on because of GUARD_EMPTY_ROSTER or GUARD_DISABLED */
        Guid skipped[PLAN_SKIPPED_LISTED]; /* the first of them, by id */
        Guid skipped_ou[PLAN_SKIPPED_LISTED]; /* their OUs, as Action.actual */
        size_t n_managed;        /* present users with origin created, copied or adopted */
        uint64_t next_due_usec;  /* earliest future retry time of any store user, 0 = none */
        DeleteGuard guard;
} Plan;

int plan_build(const Roster *r, const StoreUser *users, size_t n_users, const Config *c,
               uint64_t now_usec, Plan **ret);
/* Keep only the actions for one user (and the template creates it waits for). */
int plan_only(Plan *p, const Guid *id);
Plan *plan_free(Plan *p);
DEFINE_CLEANUP(Plan *, plan_free)
bool plan_has_changes(const Plan *p); /* create, copy, delete or held */
/* Deletes held back because the roster is empty: no change is planned, yet Nimbus differs. */
bool plan_guard_skipped(const Plan *p);
/* Why deletes are held or skipped: "more than deletes.max_per_run (10) in one run"; "" when no
 * guard applies. */
const char *plan_guard_text(const Plan *p, const Config *c, char *buf, size_t size);
/* Why this held delete is held: its uncertain ownership, or the guard. */
const char *plan_hold_text(const Plan *p, const Action *a, const Config *c, char *buf, size_t size);
/* Ownership not proven (nimbus-sync(8), OWNERSHIP): "already exists" after an unknown outcome, or
 * a create or copy whose outcome is still unknown (which may have made the user, or not). Such a
 * delete is held whatever the thresholds say. */
bool plan_user_uncertain(const StoreUser *u);
