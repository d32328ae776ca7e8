/* test_planner.c: the reconcile rules of nimbus-sync(8), OWNERSHIP and the deletion safety rules of
 * nimbus-sync.yaml(5), DELETION SAFETY, each on small hand-made rosters and stores, plus one plan
 * over a million users on each side. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "planner.h"
#include "util.h"

#define NOW (UINT64_C(1700000000) * USEC_PER_SEC)
#define HOUR (UINT64_C(3600) * USEC_PER_SEC)

/* Users are G(k), ordered like k; OUs and other targets live in another range (O(k)). */
static Guid guid_make(uint8_t space, uint64_t k) {
        Guid g = { .b = { space } };
        for (int i = 0; i < 8; i++)
                g.b[15 - i] = (uint8_t) (k >> (8 * i));
        return g;
}
static Guid G(uint64_t k) { return guid_make(0x10, k); }
static Guid O(uint64_t k) { return guid_make(0xe0, k); }

/* A roster of at most 64 entries, added in id order. */
typedef struct TestRoster {
        Roster r;
        RosterEntry e[64];
} TestRoster;

typedef struct TestStore {
        StoreUser u[64];
        size_t n;
} TestStore;

static void add_ou(TestRoster *t, uint64_t k, uint64_t ou) {
        assert_true(t->r.n < ELEMENTSOF(t->e));
        t->e[t->r.n++] = (RosterEntry) { .id = G(k), .target = O(ou), .kind = TARGET_OU };
        t->r.entries = t->e;
}

static void add_copy(TestRoster *t, uint64_t k, uint64_t template) {
        assert_true(t->r.n < ELEMENTSOF(t->e));
        t->e[t->r.n++] = (RosterEntry) { .id = G(k), .target = G(template), .kind = TARGET_TEMPLATE };
        t->r.entries = t->e;
}

/* A user we created and that is present, in OU ou (0 = unknown). Returns it for tweaking. */
static StoreUser *add_user(TestStore *t, uint64_t k, uint64_t ou) {
        assert_true(t->n < ELEMENTSOF(t->u));
        StoreUser *u = &t->u[t->n++];
        *u = (StoreUser) { .id = G(k), .target = O(ou), .target_kind = TARGET_OU,
                           .presence = PRESENCE_PRESENT, .origin = ORIGIN_CREATED };
        if (ou)
                u->ou = O(ou);
        return u;
}

static Config config_default(void) {
        Config c = { 0 };
        c.deletes.enabled = true;
        c.deletes.max_per_run = 25;
        c.deletes.max_percent = 10;
        return c;
}

static Plan *plan(const TestRoster *r, const TestStore *s, const Config *c) {
        Plan *p = NULL;
        assert_int_equal(plan_build(&r->r, s->u, s->n, c, NOW, &p), 0);
        assert_non_null(p);
        assert_int_equal(p->n, p->n_create + p->n_copy + p->n_delete + p->n_held + p->n_drift);
        return p;
}

static void assert_guid(const Guid *a, Guid b) {
        assert_memory_equal(a->b, b.b, 16);
}

static void assert_counts(const Plan *p, size_t create, size_t copy, size_t del, size_t held,
                          size_t drift) {
        assert_int_equal(p->n_create, create);
        assert_int_equal(p->n_copy, copy);
        assert_int_equal(p->n_delete, del);
        assert_int_equal(p->n_held, held);
        assert_int_equal(p->n_drift, drift);
}

static void test_create(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 1, 0, 0, 0, 0);
        assert_int_equal(p->actions[0].kind, ACTION_CREATE);
        assert_guid(&p->actions[0].id, G(1));
        assert_guid(&p->actions[0].target, O(7));
        assert_ptr_equal(p->actions[0].entry, &r.e[0]);
        assert_true(p->actions[0].depends_on == PLAN_NO_DEP);
        assert_true(p->actions[0].not_before_usec == 0);
        assert_true(plan_has_changes(p));
        plan_free(p);
}

static void test_create_absent_and_unknown(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        add_ou(&r, 2, 7);
        add_user(&s, 1, 7)->presence = PRESENCE_ABSENT;   /* deleted earlier, back now */
        add_user(&s, 2, 7)->presence = PRESENCE_UNKNOWN;
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 2, 0, 0, 0, 0);
        assert_guid(&p->actions[0].id, G(1));
        assert_guid(&p->actions[1].id, G(2));
        plan_free(p);
}

static void test_present_user_untouched(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        add_copy(&r, 2, 1);
        add_ou(&r, 3, 7);
        add_user(&s, 1, 7);
        add_user(&s, 2, 9); /* a copy lands wherever the template is: no drift */
        add_user(&s, 3, 0); /* OU unknown: no drift */
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->n, 0);
        assert_int_equal(p->n_managed, 3);
        assert_false(plan_has_changes(p));
        plan_free(p);
}

static void test_copy_of_present_template(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        add_copy(&r, 2, 1);
        add_user(&s, 1, 7);
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 0, 1, 0, 0, 0);
        assert_int_equal(p->actions[0].kind, ACTION_COPY);
        assert_guid(&p->actions[0].target, G(1));
        assert_true(p->actions[0].depends_on == PLAN_NO_DEP);
        plan_free(p);
}

static void test_copy_depends_on_template(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);     /* create */
        add_copy(&r, 2, 1);   /* waits for 1 */
        add_copy(&r, 3, 2);   /* waits for 2, a copy */
        add_copy(&r, 4, 99);  /* template neither planned nor known: no wait */
        add_ou(&r, 5, 7);     /* create, after the copies by id, before them in the plan */
        add_copy(&r, 6, 5);
        add_user(&s, 8, 7);   /* not in the roster: a delete, ahead of everything */
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 2, 4, 1, 0, 0);
        /* [0] delete 8, [1] create 1, [2] create 5, [3] copy 2, [4] copy 3, [5] copy 4, [6] copy 6 */
        assert_int_equal(p->actions[0].kind, ACTION_DELETE);
        assert_guid(&p->actions[1].id, G(1));
        assert_guid(&p->actions[2].id, G(5));
        assert_guid(&p->actions[3].id, G(2));
        assert_int_equal(p->actions[3].depends_on, 1);
        assert_int_equal(p->actions[4].depends_on, 3);
        assert_true(p->actions[5].depends_on == PLAN_NO_DEP);
        assert_guid(&p->actions[6].id, G(6));
        assert_int_equal(p->actions[6].depends_on, 2);
        assert_true(p->actions[1].depends_on == PLAN_NO_DEP);
        plan_free(p);
}

/* apply --user: one user's action and the template chain it waits for, renumbered. */
static void test_plan_only(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();
        Guid id;

        add_ou(&r, 1, 7);     /* create */
        add_copy(&r, 2, 1);   /* waits for 1 */
        add_copy(&r, 3, 2);   /* waits for 2 */
        add_ou(&r, 5, 7);     /* unrelated */
        add_user(&s, 8, 7);   /* unrelated delete */
        Plan *p = plan(&r, &s, &c);
        id = G(3);
        assert_int_equal(plan_only(p, &id), 0);
        assert_counts(p, 1, 2, 0, 0, 0);
        assert_int_equal(p->n, 3);
        assert_guid(&p->actions[0].id, G(1));
        assert_guid(&p->actions[1].id, G(2));
        assert_guid(&p->actions[2].id, G(3));
        assert_true(p->actions[0].depends_on == PLAN_NO_DEP);
        assert_int_equal(p->actions[1].depends_on, 0);
        assert_int_equal(p->actions[2].depends_on, 1);
        /* a user with nothing to do leaves an empty plan */
        id = G(42);
        assert_int_equal(plan_only(p, &id), 0);
        assert_int_equal(p->n, 0);
        assert_false(plan_has_changes(p));
        plan_free(p);
}

static void test_copy_cycles_broken(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_copy(&r, 1, 1);   /* its own template */
        add_copy(&r, 2, 3);   /* 2 → 3 → 2 */
        add_copy(&r, 3, 2);
        add_copy(&r, 4, 2);   /* leads into the cycle, is not on it */
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 0, 4, 0, 0, 0);
        assert_true(p->actions[0].depends_on == PLAN_NO_DEP);
        assert_true(p->actions[1].depends_on == PLAN_NO_DEP);
        assert_true(p->actions[2].depends_on == PLAN_NO_DEP);
        assert_int_equal(p->actions[3].depends_on, 1);
        plan_free(p);
}

static void test_drift(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        add_ou(&r, 2, 7);
        add_user(&s, 1, 8);
        add_user(&s, 2, 7);
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 0, 0, 1);
        assert_int_equal(p->actions[0].kind, ACTION_DRIFT);
        assert_guid(&p->actions[0].id, G(1));
        assert_guid(&p->actions[0].target, O(7));
        assert_guid(&p->actions[0].actual, O(8));
        assert_ptr_equal(p->actions[0].entry, &r.e[0]);
        assert_false(plan_has_changes(p));
        plan_free(p);
}

static void test_failed_skipped_until_changed_or_due(void **state) {
        Config c = config_default();

        for (int variant = 0; variant < 4; variant++) {
                TestRoster r = { 0 };
                TestStore s = { 0 };
                StoreUser *u = add_user(&s, 1, 7);
                u->presence = PRESENCE_UNKNOWN;
                u->status = STATUS_FAILED;
                u->next_attempt_usec = NOW + 6 * HOUR;
                if (variant == 0)
                        add_ou(&r, 1, 7);             /* same request: skipped */
                else if (variant == 1)
                        add_ou(&r, 1, 8);             /* another OU: try again */
                else if (variant == 2) {
                        u->target = G(5);             /* same GUID, now as a template: */
                        add_copy(&r, 1, 5);           /* a new request, try again */
                }
                else {
                        add_ou(&r, 1, 7);
                        u->next_attempt_usec = NOW;   /* the 6 h are over */
                }
                Plan *p = plan(&r, &s, &c);
                assert_int_equal(p->n_failed, variant == 0 ? 1 : 0);
                assert_int_equal(p->n, variant == 0 ? 0 : 1);
                if (variant > 0)
                        assert_int_equal(p->actions[0].kind, variant == 2 ? ACTION_COPY : ACTION_CREATE);
                assert_int_equal(plan_has_changes(p), variant != 0);
                plan_free(p);
        }
}

static void test_quarantined(void **state) {
        Config c = config_default();

        for (int due = 0; due <= 1; due++) {
                TestRoster r = { 0 };
                TestStore s = { 0 };
                add_ou(&r, 1, 7);
                add_ou(&r, 2, 8); /* another target does not release a quarantine */
                for (uint64_t k = 1; k <= 2; k++) {
                        StoreUser *u = add_user(&s, k, 7);
                        u->presence = PRESENCE_UNKNOWN;
                        u->status = STATUS_QUARANTINED;
                        u->next_attempt_usec = due ? NOW - 1 : NOW + HOUR;
                }
                Plan *p = plan(&r, &s, &c);
                assert_int_equal(p->n_quarantined, due ? 0 : 2);
                assert_int_equal(p->n_create, due ? 2 : 0);
                plan_free(p);
        }
}

static void test_retry_not_before(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        add_copy(&r, 2, 1);
        StoreUser *u = add_user(&s, 1, 7);
        u->presence = PRESENCE_UNKNOWN, u->status = STATUS_RETRY, u->next_attempt_usec = NOW + 30;
        u = add_user(&s, 2, 0);
        u->presence = PRESENCE_UNKNOWN, u->status = STATUS_RETRY, u->next_attempt_usec = NOW - 30;
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 1, 1, 0, 0, 0);
        assert_true(p->actions[0].not_before_usec == NOW + 30);
        assert_true(p->actions[1].not_before_usec == 0);
        assert_int_equal(p->actions[1].depends_on, 0);
        assert_int_equal(p->n_failed + p->n_quarantined, 0);
        plan_free(p);
}

static void test_delete_created_and_copied(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 5, 7);
        add_user(&s, 1, 7);
        add_user(&s, 2, 7)->origin = ORIGIN_COPIED;
        add_user(&s, 5, 7);
        StoreUser *u = add_user(&s, 6, 0); /* create in flight when we died: may exist, not proven ours */
        u->presence = PRESENCE_UNKNOWN, u->intent = INTENT_CREATE;
        add_user(&s, 7, 7)->presence = PRESENCE_ABSENT; /* already gone */
        u = add_user(&s, 8, 7);
        u->presence = PRESENCE_UNKNOWN; /* never sent */
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 2, 1, 0);
        assert_int_equal(p->n_uncertain, 1);
        assert_int_equal(p->guard, GUARD_NONE);
        assert_guid(&p->actions[0].id, G(1));
        assert_int_equal(p->actions[0].origin, ORIGIN_CREATED);
        assert_guid(&p->actions[1].id, G(2));
        assert_int_equal(p->actions[1].origin, ORIGIN_COPIED);
        assert_guid(&p->actions[2].id, G(6));
        assert_int_equal(p->actions[2].kind, ACTION_HELD);
        assert_true(p->actions[2].uncertain);
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(p->actions[i].kind, ACTION_DELETE);
                assert_false(p->actions[i].approved);
                assert_null(p->actions[i].entry);
                assert_true(guid_is_null(&p->actions[i].target));
        }
        assert_int_equal(p->n_managed, 3);
        plan_free(p);
}

static void test_adopted_only_with_include_adopted(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 5, 7);
        add_user(&s, 1, 7)->origin = ORIGIN_ADOPTED;
        add_user(&s, 5, 7);
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->n, 0);
        assert_int_equal(p->n_managed, 2);
        plan_free(p);

        c.deletes.include_adopted = true;
        p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 1, 0, 0);
        assert_int_equal(p->actions[0].origin, ORIGIN_ADOPTED);
        plan_free(p);
}

static void test_origin_none_never_touched(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        c.deletes.include_adopted = true;
        c.deletes.allow_empty = true;
        add_user(&s, 1, 7)->origin = ORIGIN_NONE;
        StoreUser *u = add_user(&s, 2, 7);
        u->origin = ORIGIN_NONE, u->intent = INTENT_DELETE;  /* someone else's: never ours */
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->n, 0);
        assert_int_equal(p->n_managed, 0);
        assert_int_equal(p->guard, GUARD_NONE);
        plan_free(p);
}

/* Ownership not proven: held whatever the thresholds, never deleted without approval, and
 * released by approve-deletes like any held delete. */
static void test_uncertain_always_held(void **state) {
        static const struct { uint8_t origin, presence, intent; bool held; } rows[] = {
                { ORIGIN_UNCERTAIN, PRESENCE_PRESENT, INTENT_NONE,   true },
                { ORIGIN_NONE,      PRESENCE_UNKNOWN, INTENT_CREATE, true },  /* outcome unknown */
                { ORIGIN_NONE,      PRESENCE_ABSENT,  INTENT_COPY,   true },
                { ORIGIN_CREATED,   PRESENCE_UNKNOWN, INTENT_CREATE, true },  /* legacy intent */
                { ORIGIN_CREATED,   PRESENCE_PRESENT, INTENT_NONE,   false }, /* proven ours */
                { ORIGIN_CREATED,   PRESENCE_PRESENT, INTENT_DELETE, false },
                { ORIGIN_UNCERTAIN, PRESENCE_ABSENT,  INTENT_NONE,   false }, /* gone: nothing */
        };

        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                TestRoster r = { 0 };
                TestStore s = { 0 };
                Config c = config_default();

                add_ou(&r, 9, 7);
                StoreUser *u = add_user(&s, 1, 7);
                u->origin = rows[i].origin, u->presence = rows[i].presence, u->intent = rows[i].intent;
                Plan *p = plan(&r, &s, &c);
                assert_int_equal(p->n_held, rows[i].held ? 1 : 0);
                assert_int_equal(p->n_uncertain, rows[i].held ? 1 : 0);
                assert_int_equal(p->n_delete, rows[i].held || rows[i].presence == PRESENCE_ABSENT ? 0 : 1);
                plan_free(p);
                /* Approved: deleted. With deletes disabled or an empty roster: nothing at all. */
                u->hold = HOLD_APPROVED;
                p = plan(&r, &s, &c);
                assert_int_equal(p->n_held, 0);
                assert_int_equal(p->n_delete, rows[i].presence == PRESENCE_ABSENT && !rows[i].intent ? 0 : 1);
                plan_free(p);
                u->hold = HOLD_NONE;
                c.deletes.enabled = false;
                p = plan(&r, &s, &c);
                assert_int_equal(p->n_held + p->n_delete + p->n_uncertain, 0);
                plan_free(p);
        }
}

static void test_protected_never_deleted(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();
        Guid protected[] = { G(2) };

        c.deletes.protected_ids = protected;
        c.deletes.n_protected = ELEMENTSOF(protected);
        add_ou(&r, 9, 7);
        add_user(&s, 1, 7);
        add_user(&s, 2, 7);
        add_user(&s, 9, 7);
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 1, 0, 0);
        assert_guid(&p->actions[0].id, G(1));
        plan_free(p);
}

static void test_empty_roster_guard(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_user(&s, 1, 7);
        add_user(&s, 2, 7)->hold = HOLD_APPROVED; /* approval does not beat the empty roster */
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->n, 0);
        assert_int_equal(p->guard, GUARD_EMPTY_ROSTER);
        assert_int_equal(p->n_delete_skipped, 2);
        assert_false(plan_has_changes(p));
        plan_free(p);

        c.deletes.allow_empty = true;
        p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 2, 0, 0);
        assert_int_equal(p->guard, GUARD_NONE);
        assert_int_equal(p->n_delete_skipped, 0);
        plan_free(p);
}

static void test_empty_roster_nothing_managed(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_user(&s, 1, 7)->presence = PRESENCE_ABSENT;
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->n, 0);
        assert_int_equal(p->guard, GUARD_NONE);
        plan_free(p);
}

static void test_deletes_disabled(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        c.deletes.enabled = false;
        add_ou(&r, 3, 7);
        add_user(&s, 1, 7);
        add_user(&s, 2, 7)->hold = HOLD_APPROVED;
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 1, 0, 0, 0, 0);
        assert_int_equal(p->guard, GUARD_DISABLED);
        assert_int_equal(p->n_delete_skipped, 2);
        plan_free(p);
}

/* `managed` present users in the roster plus `gone` that left it, and one roster entry still to
 * create so the roster is never empty. */
static void build_deletes(TestRoster *r, TestStore *s, size_t managed, size_t gone) {
        for (size_t k = 0; k < managed; k++) {
                add_ou(r, k, 7);
                add_user(s, k, 7);
        }
        for (size_t k = managed; k < managed + gone; k++)
                add_user(s, k, 7);
        add_ou(r, 1000, 7);
}

static void check_threshold(const Config *c, size_t managed, size_t gone, DeleteGuard guard) {
        TestRoster r = { 0 };
        TestStore s = { 0 };

        build_deletes(&r, &s, managed, gone);
        Plan *p = plan(&r, &s, c);
        assert_int_equal(p->n_managed, managed + gone);
        assert_int_equal(p->guard, guard);
        assert_int_equal(p->n_create, 1);
        assert_int_equal(p->n_delete, guard == GUARD_NONE ? gone : 0);
        assert_int_equal(p->n_held, guard == GUARD_NONE ? 0 : gone);
        /* deletes come before the create, held ones after it */
        size_t first = guard == GUARD_NONE ? 0 : 1;
        for (size_t i = 0; i < gone; i++) {
                const Action *a = &p->actions[first + i];
                assert_int_equal(a->kind, guard == GUARD_NONE ? ACTION_DELETE : ACTION_HELD);
                assert_guid(&a->id, G(managed + i));
        }
        plan_free(p);
}

static void test_max_per_run(void **state) {
        Config c = config_default();

        c.deletes.max_per_run = 10;
        c.deletes.max_percent = 100;
        check_threshold(&c, 0, 10, GUARD_NONE);          /* exactly max_per_run */
        check_threshold(&c, 0, 11, GUARD_MAX_PER_RUN);
        check_threshold(&c, 50, 11, GUARD_MAX_PER_RUN);
}

static void test_max_percent(void **state) {
        Config c = config_default();

        check_threshold(&c, 0, 5, GUARD_NONE);           /* 5 of 5 = 100%, but only 5 */
        check_threshold(&c, 1, 5, GUARD_NONE);
        check_threshold(&c, 0, 6, GUARD_MAX_PERCENT);
        check_threshold(&c, 54, 6, GUARD_NONE);          /* exactly 10% */
        check_threshold(&c, 53, 6, GUARD_MAX_PERCENT);   /* just over */
}

static void test_approved_deletes(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        c.deletes.max_per_run = 3;
        add_ou(&r, 0, 7);
        add_user(&s, 0, 7);
        for (uint64_t k = 1; k <= 5; k++)
                add_user(&s, k, 7)->hold = HOLD_APPROVED;
        Plan *p = plan(&r, &s, &c);
        /* 5 approved > max_per_run 3, 5 of 6 managed: neither rule applies to them. */
        assert_counts(p, 0, 0, 5, 0, 0);
        assert_int_equal(p->guard, GUARD_NONE);
        for (size_t i = 0; i < p->n; i++) {
                assert_int_equal(p->actions[i].kind, ACTION_DELETE);
                assert_true(p->actions[i].approved);
        }
        plan_free(p);
}

static void test_approved_with_new_held(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        c.deletes.max_per_run = 3;
        c.deletes.max_percent = 100;
        add_ou(&r, 0, 7);
        add_user(&s, 0, 7);
        for (uint64_t k = 1; k <= 6; k++)
                add_user(&s, k, 7)->hold = k % 3 == 0 ? HOLD_APPROVED : HOLD_HELD;
        Plan *p = plan(&r, &s, &c);
        /* 2 approved go ahead; the 4 others exceed max_per_run and stay held. */
        assert_counts(p, 0, 0, 2, 4, 0);
        assert_int_equal(p->guard, GUARD_MAX_PER_RUN);
        assert_guid(&p->actions[0].id, G(3));
        assert_guid(&p->actions[1].id, G(6));
        assert_true(p->actions[0].approved && p->actions[1].approved);
        for (size_t i = 2; i < 6; i++) {
                assert_int_equal(p->actions[i].kind, ACTION_HELD);
                assert_false(p->actions[i].approved);
        }
        plan_free(p);
}

/* approve-deletes --only/--except approves part of a held set: the rest stays held, even when it
 * alone no longer exceeds a threshold, until approved or back in the roster. */
static void test_rest_of_partial_approval_stays_held(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();
        char buf[256];

        c.deletes.max_per_run = 3;
        c.deletes.max_percent = 100;
        add_ou(&r, 0, 7);
        add_user(&s, 0, 7);
        add_user(&s, 1, 7)->hold = HOLD_APPROVED;
        add_user(&s, 2, 7)->hold = HOLD_KEPT;
        add_user(&s, 3, 7);                     /* a new candidate: under the threshold */
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 2, 1, 0);
        assert_int_equal(p->guard, GUARD_NONE);
        assert_int_equal(p->n_still_held, 1);
        assert_guid(&p->actions[0].id, G(1));
        assert_guid(&p->actions[1].id, G(3));
        assert_int_equal(p->actions[2].kind, ACTION_HELD);
        assert_guid(&p->actions[2].id, G(2));
        assert_non_null(strstr(plan_hold_text(p, &p->actions[2], &c, buf, sizeof(buf)), "partial approval"));
        plan_free(p);

        add_ou(&r, 2, 7);                       /* back in the roster: no longer held */
        p = plan(&r, &s, &c);
        assert_counts(p, 0, 0, 2, 0, 0);
        plan_free(p);
}

static void test_back_in_roster_not_deleted(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_ou(&r, 1, 7);
        add_ou(&r, 2, 7);
        add_user(&s, 1, 7)->hold = HOLD_APPROVED;
        add_user(&s, 2, 7)->hold = HOLD_HELD;
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->n, 0);
        assert_false(plan_has_changes(p));
        plan_free(p);
}

static void test_failed_delete(void **state) {
        Config c = config_default();

        for (int due = 0; due <= 1; due++) {
                TestRoster r = { 0 };
                TestStore s = { 0 };
                add_ou(&r, 0, 7);
                add_user(&s, 0, 7);
                StoreUser *u = add_user(&s, 1, 7);
                u->status = STATUS_FAILED; /* Teams-synced: delete rejected */
                u->next_attempt_usec = due ? NOW : NOW + HOUR;
                Plan *p = plan(&r, &s, &c);
                assert_int_equal(p->n_failed, due ? 0 : 1);
                assert_int_equal(p->n_delete, due ? 1 : 0);
                plan_free(p);
        }
}

static void test_action_order(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        c.deletes.max_per_run = 2;
        c.deletes.max_percent = 100;
        add_copy(&r, 10, 12);           /* copy of a create */
        add_ou(&r, 11, 7);              /* drift */
        add_ou(&r, 12, 7);              /* create */
        add_ou(&r, 13, 7);              /* create */
        add_user(&s, 1, 7);             /* held */
        add_user(&s, 2, 7)->hold = HOLD_APPROVED;
        add_user(&s, 3, 7);             /* held */
        add_user(&s, 4, 7);             /* held */
        add_user(&s, 11, 8);
        add_user(&s, 20, 7)->hold = HOLD_APPROVED;
        Plan *p = plan(&r, &s, &c);
        static const uint8_t kinds[] = { ACTION_DELETE, ACTION_DELETE, ACTION_CREATE, ACTION_CREATE,
                                         ACTION_COPY, ACTION_HELD, ACTION_HELD, ACTION_HELD,
                                         ACTION_DRIFT };
        static const uint64_t ids[] = { 2, 20, 12, 13, 10, 1, 3, 4, 11 };
        assert_int_equal(p->n, ELEMENTSOF(kinds));
        for (size_t i = 0; i < p->n; i++) {
                assert_int_equal(p->actions[i].kind, kinds[i]);
                assert_guid(&p->actions[i].id, G(ids[i]));
        }
        assert_int_equal(p->actions[4].depends_on, 2);
        assert_int_equal(p->guard, GUARD_MAX_PER_RUN);
        plan_free(p);
}

static void test_bad_input(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();
        Plan *p = NULL;

        add_ou(&r, 2, 7);
        add_ou(&r, 1, 7);
        assert_int_equal(plan_build(&r.r, s.u, s.n, &c, NOW, &p), -EINVAL);
        r.r.n = 0;
        add_user(&s, 2, 7);
        add_user(&s, 2, 7);
        assert_int_equal(plan_build(&r.r, s.u, s.n, &c, NOW, &p), -EINVAL);
        s.n = 1;
        r.e[0].kind = 9;
        r.r.n = 1;
        assert_int_equal(plan_build(&r.r, s.u, s.n, &c, NOW, &p), -EINVAL);
        assert_null(p);
        assert_null(plan_free(NULL));
        assert_false(plan_has_changes(NULL));
}

/* Deletes and held deletes carry the OU the user is in (or was made in), for the audit trail. */
static void test_delete_knows_its_ou(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();
        StoreUser *u;

        add_ou(&r, 9, 7);
        add_user(&s, 1, 5);                     /* Nimbus said OU 5 */
        u = add_user(&s, 2, 6);                 /* made in OU 6, never read back */
        u->ou = (Guid) { 0 };
        u = add_user(&s, 3, 0);                 /* a copy: its OU is not known */
        u->target = G(9);
        u->target_kind = TARGET_TEMPLATE;
        Plan *p = plan(&r, &s, &c);
        assert_counts(p, 1, 0, 3, 0, 0);
        assert_guid(&p->actions[0].actual, O(5));
        assert_guid(&p->actions[1].actual, O(6));
        assert_true(guid_is_null(&p->actions[2].actual));
        plan_free(p);

        c.deletes.max_per_run = 1;              /* held ones too */
        p = plan(&r, &s, &c);
        assert_counts(p, 1, 0, 0, 3, 0);
        assert_guid(&p->actions[1].actual, O(5));
        assert_guid(&p->actions[2].actual, O(6));
        plan_free(p);
}

/* A guard that stops every delete lists the users it skipped (the first PLAN_SKIPPED_LISTED). */
static void test_skipped_deletes_listed(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();

        add_user(&s, 1, 7);
        add_user(&s, 2, 8);
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->guard, GUARD_EMPTY_ROSTER);
        assert_int_equal(p->n_delete_skipped, 2);
        assert_guid(&p->skipped[0], G(1));
        assert_guid(&p->skipped_ou[0], O(7));
        assert_guid(&p->skipped[1], G(2));
        assert_guid(&p->skipped_ou[1], O(8));
        plan_free(p);
}

static void test_guard_and_hold_text(void **state) {
        TestRoster r = { 0 };
        TestStore s = { 0 };
        Config c = config_default();
        char buf[256];

        c.deletes.max_per_run = 1;
        add_ou(&r, 9, 7);
        add_user(&s, 1, 7);
        add_user(&s, 2, 7)->origin = ORIGIN_UNCERTAIN;
        add_user(&s, 3, 7);
        Plan *p = plan(&r, &s, &c);
        assert_int_equal(p->guard, GUARD_MAX_PER_RUN);
        assert_string_equal(plan_guard_text(p, &c, buf, sizeof(buf)), "more than deletes.max_per_run (1) in one run");
        for (size_t i = 0; i < p->n; i++)
                if (p->actions[i].kind == ACTION_HELD)
                        assert_non_null(strstr(plan_hold_text(p, &p->actions[i], &c, buf, sizeof(buf)),
                                               p->actions[i].uncertain ? "ownership uncertain" : "max_per_run"));
        plan_free(p);
}

/* tests/bench/README.md: a million on each side. Roster k ∈ [0, N): every tenth entry copies the
 * one before it, the rest create in OU 1. Store k ∈ [N/2, N/2 + N): all present, in OU 1 except
 * every hundredth (drift); those ≥ N left the roster. */
static void test_million(void **state) {
        const size_t N = 1000000, half = N / 2;
        Roster r = { .n = N, .entries = malloc(N * sizeof(RosterEntry)) };
        StoreUser *u = calloc(N, sizeof *u);
        Config c = config_default();
        Plan *p = NULL;

        assert_non_null(r.entries);
        assert_non_null(u);
        for (size_t k = 0; k < N; k++)
                r.entries[k] = k % 10 == 9 ?
                        (RosterEntry) { .id = G(k), .target = G(k - 1), .kind = TARGET_TEMPLATE } :
                        (RosterEntry) { .id = G(k), .target = O(1), .kind = TARGET_OU };
        for (size_t i = 0; i < N; i++) {
                size_t k = half + i;
                u[i] = (StoreUser) { .id = G(k), .target = O(1), .ou = O(k % 100 == 0 ? 2 : 1),
                                     .target_kind = TARGET_OU, .presence = PRESENCE_PRESENT,
                                     .origin = ORIGIN_CREATED };
        }
        assert_int_equal(plan_build(&r, u, N, &c, NOW, &p), 0);
        assert_counts(p, half / 10 * 9, half / 10, 0, N - half, half / 100);
        assert_int_equal(p->n_managed, N);
        assert_int_equal(p->guard, GUARD_MAX_PER_RUN);
        assert_int_equal(p->n, half + (N - half) + half / 100);

        size_t copies = p->n_create, held = copies + p->n_copy;
        for (size_t i = copies; i < held; i++) {
                const Action *a = &p->actions[i];
                assert_int_equal(a->kind, ACTION_COPY);
                assert_true(a->depends_on < copies);
                assert_memory_equal(p->actions[a->depends_on].id.b, a->target.b, 16);
        }
        for (size_t i = held; i < held + p->n_held; i++)
                assert_int_equal(p->actions[i].kind, ACTION_HELD);
        plan_free(p);
        free(u);
        free(r.entries);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_create),
                cmocka_unit_test(test_create_absent_and_unknown),
                cmocka_unit_test(test_present_user_untouched),
                cmocka_unit_test(test_copy_of_present_template),
                cmocka_unit_test(test_copy_depends_on_template),
                cmocka_unit_test(test_copy_cycles_broken),
                cmocka_unit_test(test_plan_only),
                cmocka_unit_test(test_drift),
                cmocka_unit_test(test_failed_skipped_until_changed_or_due),
                cmocka_unit_test(test_quarantined),
                cmocka_unit_test(test_retry_not_before),
                cmocka_unit_test(test_delete_created_and_copied),
                cmocka_unit_test(test_adopted_only_with_include_adopted),
                cmocka_unit_test(test_origin_none_never_touched),
                cmocka_unit_test(test_uncertain_always_held),
                cmocka_unit_test(test_protected_never_deleted),
                cmocka_unit_test(test_empty_roster_guard),
                cmocka_unit_test(test_empty_roster_nothing_managed),
                cmocka_unit_test(test_deletes_disabled),
                cmocka_unit_test(test_max_per_run),
                cmocka_unit_test(test_max_percent),
                cmocka_unit_test(test_approved_deletes),
                cmocka_unit_test(test_approved_with_new_held),
                cmocka_unit_test(test_rest_of_partial_approval_stays_held),
                cmocka_unit_test(test_back_in_roster_not_deleted),
                cmocka_unit_test(test_failed_delete),
                cmocka_unit_test(test_action_order),
                cmocka_unit_test(test_bad_input),
                cmocka_unit_test(test_delete_knows_its_ou),
                cmocka_unit_test(test_skipped_deletes_listed),
                cmocka_unit_test(test_guard_and_hold_text),
                cmocka_unit_test(test_million),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
