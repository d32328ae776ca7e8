/* planner.c: decides what a reconcile run does (nimbus-sync(8), OWNERSHIP; nimbus-sync.yaml(5),
 * DELETION SAFETY).
 *
 * The roster and the store users are both sorted by id, so one merge walk pairs every roster entry
 * with its store record. Each pair gets a verdict from two small pure functions; the deletion
 * safety rules then look at the totals. The walk runs twice: the first pass counts, the second
 * writes every action straight into its final slot of one exactly-sized array (deletes, creates,
 * copies, held, drift; id order within each). That keeps a million-user plan to a single allocation
 * with no sorting, and lets copies find their template's action by binary search. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planner.h"
#include "util.h"

/* Below this many deletes the percentage rule never holds anything (nimbus-sync.yaml(5), DELETION
 * SAFETY). */
#define DELETE_PERCENT_MIN 5

typedef enum Verdict {
        VERDICT_NONE,        /* nothing to do */
        VERDICT_CREATE,
        VERDICT_COPY,
        VERDICT_DRIFT,
        VERDICT_FAILED,      /* skipped: failed permanently, not due yet */
        VERDICT_QUARANTINED, /* skipped: quarantined, not due yet */
        VERDICT_CANDIDATE,   /* a delete, subject to the safety rules */
        VERDICT_STILL_HELD,  /* a candidate a partial approval left held (HOLD_KEPT): held still */
        VERDICT_APPROVED,    /* a delete released by approve-deletes */
        VERDICT_UNCERTAIN,   /* a delete of a user we may not own: always held */
} Verdict;

typedef enum DeleteMode {
        DELETES_NONE,        /* a guard stopped every delete */
        DELETES_ALL,         /* candidates are deleted */
        DELETES_HOLD,        /* candidates are held; approved ones are still deleted */
} DeleteMode;

/* One step of the merge: a roster entry, a store user, or both for the same id. */
typedef struct Pair {
        const RosterEntry *e;
        const StoreUser *u;
} Pair;

typedef struct Merge {
        const RosterEntry *e, *e_end;
        const StoreUser *u, *u_end;
} Merge;

/* Where the next action of each kind goes in the final array. */
typedef struct Cursors {
        size_t del, create, copy, held, drift;
} Cursors;

static Merge merge_init(const Roster *r, const StoreUser *users, size_t n_users) {
        return (Merge) { r->entries, r->entries + r->n, users, users + n_users };
}

static bool merge_next(Merge *m, Pair *ret) {
        bool has_e = m->e < m->e_end, has_u = m->u < m->u_end;
        if (!has_e && !has_u)
                return false;
        int c = !has_e ? 1 : !has_u ? -1 : guid_cmp(&m->e->id, &m->u->id);
        ret->e = c <= 0 ? m->e++ : NULL;
        ret->u = c >= 0 ? m->u++ : NULL;
        return true;
}

/* The merge is only correct on strictly ascending ids; a violation is a caller's bug, and
 * planning on it could delete users that are in the roster. */
static int check_inputs(const Roster *r, const StoreUser *users, size_t n_users) {
        if ((r->n > 0 && !r->entries) || (n_users > 0 && !users))
                return -EINVAL;
        for (size_t i = 0; i < r->n; i++) {
                const RosterEntry *e = &r->entries[i];
                if ((e->kind != TARGET_OU && e->kind != TARGET_TEMPLATE) ||
                    (i > 0 && guid_cmp(&e[-1].id, &e->id) >= 0))
                        return -EINVAL;
        }
        for (size_t i = 1; i < n_users; i++)
                if (guid_cmp(&users[i - 1].id, &users[i].id) >= 0)
                        return -EINVAL;
        return 0;
}

static bool is_managed(const StoreUser *u) {
        return u->presence == PRESENCE_PRESENT &&
               (u->origin == ORIGIN_CREATED || u->origin == ORIGIN_COPIED ||
                u->origin == ORIGIN_ADOPTED);
}

/* A roster entry e, with its store record u if there is one. */
static Verdict judge_wanted(const RosterEntry *e, const StoreUser *u, uint64_t now,
                            uint64_t *not_before) {
        *not_before = 0;
        if (u && u->presence == PRESENCE_PRESENT) {
                /* No call moves a user to another OU: report it, never "fix" it. */
                bool drift = e->kind == TARGET_OU && !guid_is_null(&u->ou) &&
                             !guid_eq(&u->ou, &e->target);
                return drift ? VERDICT_DRIFT : VERDICT_NONE;
        }
        if (u && now < u->next_attempt_usec) {
                /* A changed entry is a new request, so a permanent failure only holds back the
                 * very request that failed. */
                if (u->status == STATUS_FAILED && u->target_kind == e->kind &&
                    guid_eq(&u->target, &e->target))
                        return VERDICT_FAILED;
                if (u->status == STATUS_QUARANTINED)
                        return VERDICT_QUARANTINED;
                if (u->status == STATUS_RETRY)
                        *not_before = u->next_attempt_usec;
        }
        return e->kind == TARGET_TEMPLATE ? VERDICT_COPY : VERDICT_CREATE;
}

static bool origin_deletable(uint8_t origin, const Config *c) {
        return origin == ORIGIN_CREATED || origin == ORIGIN_COPIED ||
               (origin == ORIGIN_ADOPTED && c->deletes.include_adopted);
}

bool plan_user_uncertain(const StoreUser *u) {
        bool pending = u->intent == INTENT_CREATE || u->intent == INTENT_COPY;

        return u->origin == ORIGIN_UNCERTAIN || (pending && u->presence != PRESENCE_PRESENT);
}

/* A store user no longer in the roster. */
static Verdict judge_unwanted(const StoreUser *u, const Config *c, uint64_t now,
                              uint64_t *not_before) {
        /* A create or copy in flight when the process died may have made the user. */
        bool may_exist = u->presence == PRESENCE_PRESENT || u->intent == INTENT_CREATE ||
                         u->intent == INTENT_COPY;
        bool uncertain = may_exist && plan_user_uncertain(u);

        *not_before = 0;
        if (!may_exist || config_is_protected(c, &u->id) ||
            (!uncertain && !origin_deletable(u->origin, c)))
                return VERDICT_NONE;
        if (now < u->next_attempt_usec) {
                if (u->status == STATUS_FAILED)
                        return VERDICT_FAILED;
                if (u->status == STATUS_QUARANTINED)
                        return VERDICT_QUARANTINED;
                if (u->status == STATUS_RETRY)
                        *not_before = u->next_attempt_usec;
        }
        if (u->hold == HOLD_APPROVED)
                return VERDICT_APPROVED;
        if (uncertain)
                return VERDICT_UNCERTAIN;
        /* What the admin reviewed and left out of a partial approval stays held, even when it
         * alone no longer exceeds a threshold. */
        return u->hold == HOLD_KEPT ? VERDICT_STILL_HELD : VERDICT_CANDIDATE;
}

static Verdict judge(const Pair *pair, const Config *c, uint64_t now, uint64_t *not_before) {
        if (pair->e)
                return judge_wanted(pair->e, pair->u, now, not_before);
        return judge_unwanted(pair->u, c, now, not_before);
}

/* First pass: counts everything but deletes, which decide_deletes() settles from the totals. */
static void count_pass(Plan *p, Merge m, const Config *c, uint64_t now, size_t *ret_candidates,
                       size_t *ret_approved) {
        size_t candidates = 0, approved = 0;

        p->n_still_held = 0;

        p->n_uncertain = 0;
        uint64_t not_before;
        Pair pair;

        while (merge_next(&m, &pair)) {
                if (pair.u && is_managed(pair.u))
                        p->n_managed++;
                switch (judge(&pair, c, now, &not_before)) {
                case VERDICT_CREATE:      p->n_create++;      break;
                case VERDICT_COPY:        p->n_copy++;        break;
                case VERDICT_DRIFT:       p->n_drift++;       break;
                case VERDICT_FAILED:      p->n_failed++;      break;
                case VERDICT_QUARANTINED: p->n_quarantined++; break;
                case VERDICT_CANDIDATE:   candidates++;       break;
                case VERDICT_STILL_HELD:  candidates++;
                                          p->n_still_held++;  break;
                case VERDICT_APPROVED:    approved++;         break;
                case VERDICT_UNCERTAIN:   p->n_uncertain++;   break;
                case VERDICT_NONE:                            break;
                }
                /* Skipped users come back when their retry time passes: the daemon wakes then. */
                if (pair.u && pair.u->next_attempt_usec > now &&
                    (p->next_due_usec == 0 || pair.u->next_attempt_usec < p->next_due_usec))
                        p->next_due_usec = pair.u->next_attempt_usec;
        }
        *ret_candidates = candidates;
        *ret_approved = approved;
}

/* The deletion safety rules (nimbus-sync.yaml(5), DELETION SAFETY). Approved deletes were released
 * by an admin who saw them held, so they do not count towards the thresholds again; the guards that
 * stop all deletes (disabled, empty roster) stop them too. */
static DeleteMode decide_deletes(Plan *p, const Roster *r, const Config *c, size_t candidates,
                                 size_t approved) {
        size_t all = candidates + approved + p->n_uncertain;

        if (all > 0 && !c->deletes.enabled)
                p->guard = GUARD_DISABLED;
        else if (all > 0 && r->n == 0 && !c->deletes.allow_empty)
                p->guard = GUARD_EMPTY_ROSTER;
        if (p->guard != GUARD_NONE) {
                p->n_delete_skipped = all;
                p->n_uncertain = p->n_still_held = 0;
                return DELETES_NONE;
        }

        if (candidates > c->deletes.max_per_run)
                p->guard = GUARD_MAX_PER_RUN;
        else if (candidates > DELETE_PERCENT_MIN &&
                 (uint64_t) candidates * 100 > (uint64_t) c->deletes.max_percent * p->n_managed)
                p->guard = GUARD_MAX_PERCENT;
        p->n_delete = approved;
        p->n_held = p->n_uncertain;   /* whatever the counts: ownership was never proven */
        if (p->guard != GUARD_NONE) {
                p->n_held += candidates;
                return DELETES_HOLD;
        }
        p->n_held += p->n_still_held;
        p->n_delete += candidates - p->n_still_held;
        return DELETES_ALL;
}

static size_t *cursor_for(Cursors *k, Verdict v, DeleteMode mode) {
        switch (v) {
        case VERDICT_CREATE:
                return &k->create;
        case VERDICT_COPY:
                return &k->copy;
        case VERDICT_DRIFT:
                return &k->drift;
        case VERDICT_APPROVED:
                return mode == DELETES_NONE ? NULL : &k->del;
        case VERDICT_CANDIDATE:
                return mode == DELETES_ALL ? &k->del : mode == DELETES_HOLD ? &k->held : NULL;
        case VERDICT_STILL_HELD:
        case VERDICT_UNCERTAIN:
                return mode == DELETES_NONE ? NULL : &k->held;
        default:
                return NULL;
        }
}

static Action make_action(const Pair *pair, Verdict v, DeleteMode mode, uint64_t not_before) {
        Action a = { .depends_on = PLAN_NO_DEP, .not_before_usec = not_before };

        if (pair->e) {
                a.id = pair->e->id;
                a.target = pair->e->target;
                a.entry = pair->e;
                a.kind = v == VERDICT_CREATE ? ACTION_CREATE :
                         v == VERDICT_COPY ? ACTION_COPY : ACTION_DRIFT;
                if (v == VERDICT_DRIFT)
                        a.actual = pair->u->ou;
        } else {
                const StoreUser *u = pair->u;

                a.id = u->id;
                /* Where Nimbus holds the user, or else where we asked it to be made. */
                a.actual = !guid_is_null(&u->ou) || u->target_kind != TARGET_OU ? u->ou : u->target;
                a.origin = pair->u->origin;
                a.approved = v == VERDICT_APPROVED;
                a.uncertain = v == VERDICT_UNCERTAIN;
                a.kind = a.uncertain || v == VERDICT_STILL_HELD || (v == VERDICT_CANDIDATE && mode == DELETES_HOLD)
                                 ? ACTION_HELD : ACTION_DELETE;
        }
        return a;
}

/* Second pass: the same verdicts, each written at its kind's cursor. */
static void fill_pass(Plan *p, Merge m, const Config *c, uint64_t now, DeleteMode mode) {
        Cursors k = { .del = 0 };
        size_t skipped = 0;
        uint64_t not_before;
        Pair pair;

        k.create = k.del + p->n_delete;
        k.copy = k.create + p->n_create;
        k.held = k.copy + p->n_copy;
        k.drift = k.held + p->n_held;
        while (merge_next(&m, &pair)) {
                Verdict v = judge(&pair, c, now, &not_before);
                size_t *cur = cursor_for(&k, v, mode);
                if (cur)
                        p->actions[(*cur)++] = make_action(&pair, v, mode, not_before);
                else if (mode == DELETES_NONE && skipped < PLAN_SKIPPED_LISTED &&
                         (v == VERDICT_CANDIDATE || v == VERDICT_STILL_HELD || v == VERDICT_APPROVED ||
                          v == VERDICT_UNCERTAIN)) {
                        Action a = make_action(&pair, v, mode, not_before);

                        p->skipped[skipped] = a.id;
                        p->skipped_ou[skipped++] = a.actual;
                }
        }
}

/* Index of the action for id in actions[lo, hi), which is sorted by id; PLAN_NO_DEP if none. */
static size_t find_action(const Action *a, size_t lo, size_t hi, const Guid *id) {
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = guid_cmp(&a[mid].id, id);
                if (c == 0)
                        return mid;
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return PLAN_NO_DEP;
}

/* A copy whose template is made in this plan waits for it. Creates and copies are each sorted
 * by id, so the lookup is a binary search per copy. */
static void link_copies(Plan *p) {
        size_t create = p->n_delete, copy = create + p->n_create, end = copy + p->n_copy;

        for (size_t i = copy; i < end; i++) {
                Action *a = &p->actions[i];
                size_t d = find_action(p->actions, create, copy, &a->target);
                if (d == PLAN_NO_DEP)
                        d = find_action(p->actions, copy, end, &a->target);
                a->depends_on = d;
        }
}

/* Copies whose templates are copies of each other (a → b → a, or a → a) would wait for each
 * other forever. Each copy has at most one dependency, so one walk with a stamp per copy finds
 * every cycle; its members lose their dependencies and each fails on its own (404 template). */
static int break_cycles(Plan *p) {
        size_t copy = p->n_delete + p->n_create, n = p->n_copy;
        _cleanup_free_ size_t *stamp = NULL;

        if (n == 0)
                return 0;
        stamp = malloc(n * sizeof *stamp);
        if (!stamp)
                return -ENOMEM;
        memset(stamp, 0xff, n * sizeof *stamp); /* SIZE_MAX: not visited */

        for (size_t s = 0; s < n; s++) {
                size_t x = s;
                /* Follow copies not seen before; creates and visited copies end the walk. */
                while (x < n && stamp[x] == SIZE_MAX) {
                        stamp[x] = s;
                        size_t d = p->actions[copy + x].depends_on;
                        x = d == PLAN_NO_DEP || d < copy ? SIZE_MAX : d - copy;
                }
                if (x >= n || stamp[x] != s)
                        continue;
                /* Back at a copy of this very walk: x is on a cycle. */
                size_t y = x;
                do {
                        Action *a = &p->actions[copy + y];
                        y = a->depends_on - copy;
                        a->depends_on = PLAN_NO_DEP;
                } while (y != x);
        }
        return 0;
}

int plan_build(const Roster *r, const StoreUser *users, size_t n_users, const Config *c,
               uint64_t now_usec, Plan **ret) {
        _cleanup_(plan_freep) Plan *p = NULL;
        size_t candidates, approved;
        int k;

        if (!r || !c || !ret)
                return -EINVAL;
        if ((k = check_inputs(r, users, n_users)) < 0)
                return k;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;

        count_pass(p, merge_init(r, users, n_users), c, now_usec, &candidates, &approved);
        DeleteMode mode = decide_deletes(p, r, c, candidates, approved);
        /* No overflow: each action is one distinct roster entry or store user. */
        p->n = p->n_delete + p->n_create + p->n_copy + p->n_held + p->n_drift;
        if (p->n > 0) {
                if (p->n > SIZE_MAX / sizeof *p->actions)
                        return -ENOMEM;
                p->actions = malloc(p->n * sizeof *p->actions);
                if (!p->actions)
                        return -ENOMEM;
        }
        fill_pass(p, merge_init(r, users, n_users), c, now_usec, mode);
        link_copies(p);
        if ((k = break_cycles(p)) < 0)
                return k;
        *ret = TAKE_PTR(p);
        return 0;
}

Plan *plan_free(Plan *p) {
        if (!p)
                return NULL;
        free(p->actions);
        free(p);
        return NULL;
}

bool plan_guard_skipped(const Plan *p) {
        return p && p->guard == GUARD_EMPTY_ROSTER && p->n_delete_skipped > 0;
}

bool plan_has_changes(const Plan *p) {
        return p && p->n_create + p->n_copy + p->n_delete + p->n_held > 0;
}

/* Keep one user's action, and the chain of template creates it waits for (provision on demand:
 * a copy cannot go before its template). Order and dependencies stay valid: kept actions keep
 * their relative order, and depends_on is renumbered. */
int plan_only(Plan *p, const Guid *id) {
        _cleanup_free_ size_t *map = NULL;
        _cleanup_free_ bool *keep = calloc(p->n + 1, sizeof(bool));
        size_t k = 0;

        map = calloc(p->n + 1, sizeof(size_t));
        if (!keep || !map)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                if (!guid_eq(&p->actions[i].id, id) || p->actions[i].kind == ACTION_DRIFT)
                        continue;
                /* The chain is bounded by the plan's size, and depends_on always points back. */
                for (size_t j = i; j != PLAN_NO_DEP && !keep[j]; j = p->actions[j].depends_on)
                        keep[j] = true;
        }
        /* A copy's template copy may stand later in id order: number everything first. */
        for (size_t i = 0; i < p->n; i++)
                if (keep[i])
                        map[i] = k++;
        k = 0;
        p->n_create = p->n_copy = p->n_delete = p->n_held = p->n_drift = 0;
        for (size_t i = 0; i < p->n; i++) {
                Action *a = &p->actions[i];

                if (!keep[i])
                        continue;
                if (a->depends_on != PLAN_NO_DEP)
                        a->depends_on = map[a->depends_on];
                p->n_create += a->kind == ACTION_CREATE;
                p->n_copy += a->kind == ACTION_COPY;
                p->n_delete += a->kind == ACTION_DELETE;
                p->n_held += a->kind == ACTION_HELD;
                p->actions[k++] = *a;
        }
        p->n = k;
        p->n_failed = p->n_quarantined = p->n_delete_skipped = 0;
        return 0;
}

const char *plan_guard_text(const Plan *p, const Config *c, char *buf, size_t size) {
        switch (p->guard) {
        case GUARD_MAX_PER_RUN:
                snprintf(buf, size, "more than deletes.max_per_run (%u) in one run", c->deletes.max_per_run);
                break;
        case GUARD_MAX_PERCENT:
                snprintf(buf, size, "more than deletes.max_percent (%u%%) of %zu managed users",
                         c->deletes.max_percent, p->n_managed);
                break;
        case GUARD_EMPTY_ROSTER:
                snprintf(buf, size, "the roster is empty and deletes.allow_empty is false");
                break;
        case GUARD_DISABLED:
                snprintf(buf, size, "deletes.enabled is false");
                break;
        default:
                /* No threshold now, but deletes held before wait for their approval. */
                snprintf(buf, size, "%s", p->n_still_held > 0 ? "left out of a partial approval "
                         "(approve-deletes --only/--except): held until approved" : "");
        }
        return buf;
}

const char *plan_hold_text(const Plan *p, const Action *a, const Config *c, char *buf, size_t size) {
        if (a->uncertain)
                snprintf(buf, size, "ownership uncertain: it may have existed before nimbus-sync");
        else
                plan_guard_text(p, c, buf, size);
        return buf;
}
