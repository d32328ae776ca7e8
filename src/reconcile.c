/* reconcile.c: what `apply` and the daemon do around a run (see reconcile.h). */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "backoff.h"
#include "roster_diff.h"
#include "util.h"

/* Held deletes are remembered, so approve-deletes can release exactly them. */
static int sync_holds(Tenant *t, const Plan *p) {
        _cleanup_free_ Guid *held = calloc(p->n_held + 1, sizeof(Guid));
        _cleanup_free_ Guid *keep = calloc(p->n_delete + 1, sizeof(Guid));
        size_t nh = 0, nk = 0;

        if (!held || !keep)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++) {
                if (p->actions[i].kind == ACTION_HELD)
                        held[nh++] = p->actions[i].id;
                else if (p->actions[i].kind == ACTION_DELETE && p->actions[i].approved)
                        keep[nk++] = p->actions[i].id;
        }
        return store_sync_holds(t->store, held, nh, keep, nk);
}

/* One journal entry per user whose delete is held or skipped (nimbus-sync(8), LOGS AND AUDIT). */
static void log_user_delete(const Tenant *t, const Guid *id, const Guid *ou, const char *result,
                            const char *why, const char *run_id) {
        char s[GUID_STRING_MAX], name[2 * AUDIT_NAME_MAX + 4], out[GUID_STRING_MAX + 64];
        LogEvent ev = { .message_id = MID_DELETE_HELD, .action = "delete", .result = result,
                        .run_id = run_id };
        AuditUser who;

        audit_user_describe(t->store, NULL, NULL, id, ou, &who);
        audit_user_event(&who, &ev);
        audit_user_label(&who, name, sizeof(name));
        log_event(t->log, LOG_WARNING, &ev, "delete %s %s%s%s%s in OU %s, last listed by %s: %s",
                  streq(result, "held") ? "held:" : "skipped:", guid_format(id, s),
                  *name ? " (" : "", name, *name ? ")" : "",
                  audit_ou_text(t->config, &who.ou, out, sizeof(out)),
                  audit_user_source(&who, t->config->roster_dir), why);
}

/* More users than the journal should take at once: the rest are counted, and plan lists them. */
static void log_users_not_listed(const Tenant *t, size_t n, const char *result, const char *run_id) {
        LogEvent ev = { .message_id = MID_DELETE_HELD, .action = "delete", .result = result,
                        .run_id = run_id };

        if (n > 0)
                log_event(t->log, LOG_WARNING, &ev, "%zu more deletes %s, not logged one by one; "
                          "`nimbus-sync plan` lists them all", n, result);
}

/* Deletes held by this plan that were not held before: each is logged once, when it is held. */
static void log_newly_held(const Tenant *t, const Plan *p, const StoreUser *users, size_t n_users) {
        size_t logged = 0, more = 0, u = 0;
        char why[256];

        for (size_t i = 0; i < p->n; i++) {
                const Action *a = &p->actions[i];

                if (a->kind != ACTION_HELD)
                        continue;
                /* Held actions and users are both sorted by id: one merge walk. */
                while (u < n_users && guid_cmp(&users[u].id, &a->id) < 0)
                        u++;
                if (u < n_users && guid_eq(&users[u].id, &a->id) && users[u].hold != HOLD_NONE)
                        continue;
                if (logged++ < AUDIT_USERS_MAX)
                        log_user_delete(t, &a->id, &a->actual, "held",
                                        plan_hold_text(p, a, t->config, why, sizeof(why)), NULL);
                else
                        more++;
        }
        log_users_not_listed(t, more, "held", NULL);
}

int reconcile_plan(Tenant *t, const Roster *r, Plan **ret) {
        StoreUser *users = NULL;
        Plan *p = NULL;
        size_t n = 0;
        int k;

        k = store_load_users(t->store, &users, &n);
        if (k >= 0)
                k = plan_build(r, users, n, t->config, now_usec(), &p);
        if (k >= 0)
                k = sync_holds(t, p);
        if (k >= 0)
                log_newly_held(t, p, users, n);
        store_users_free(users, n);
        if (k < 0) {
                plan_free(p);
                return k;
        }
        *ret = p;
        return 0;
}

/* A user we manage that is in old and not in new was last listed by its entry in old. */
static int note_departure(Tenant *t, const Roster *old, const RosterEntry *e) {
        StoreUser u;
        int k = store_get_user(t->store, &e->id, &u);

        if (k == -ENOENT)
                return 0;       /* never acted on: nothing to delete, nothing to remember */
        store_user_clear(&u);
        return k < 0 ? k : audit_user_record(t->store, old, e);
}

/* The entries of old whose id new lacks; both are sorted by id: one merge walk. */
static size_t departures(const Roster *old, const Roster *new, const RosterEntry **ret) {
        size_t j = 0, n = 0;

        for (size_t i = 0; i < old->n; i++) {
                const RosterEntry *e = &old->entries[i];

                while (j < new->n && guid_cmp(&new->entries[j].id, &e->id) < 0)
                        j++;
                if (j >= new->n || !guid_eq(&new->entries[j].id, &e->id))
                        ret[n++] = e;
        }
        return n;
}

int reconcile_note_departures(Tenant *t, const Roster *old, const Roster *new) {
        _cleanup_free_ const RosterEntry **gone = NULL;
        size_t n;
        int k;

        if (!old || !new || old->n == 0)
                return 0;
        gone = calloc(old->n, sizeof(*gone));
        if (!gone)
                return -ENOMEM;
        n = departures(old, new, gone);
        if (n == 0)
                return 0;       /* nobody left: the store is not written */
        k = store_begin(t->store);
        for (size_t i = 0; k >= 0 && i < n; i++)
                k = note_departure(t, old, gone[i]);
        if (k >= 0)
                return store_commit(t->store);
        (void) store_rollback(t->store);
        return k;
}

/* The fields of the roster-load entry: every file that changed, then the counts. */
static int roster_fields(const RosterDiff *d, const Roster *files, char ***ret, size_t *ret_n) {
        size_t n = d->n < LOG_EXTRA_MAX - 4 ? d->n : LOG_EXTRA_MAX - 4, k = 0;
        char **f = calloc(n + 4, sizeof(char *));
        int r = f ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < n; i++)
                r = asprintf(&f[k++], "NIMBUS_ROSTER_FILE=%s", d->files[i].file) < 0 ? -ENOMEM : 0;
        for (RosterChange c = 0; r >= 0 && c < _ROSTER_FILE_CHANGE_MAX; c++)
                r = asprintf(&f[k++], "NIMBUS_FILES_%s=%zu", c == ROSTER_FILE_ADDED ? "ADDED" :
                             c == ROSTER_FILE_REMOVED ? "REMOVED" : "CHANGED", d->count[c]) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = asprintf(&f[k++], "NIMBUS_USERS=%zu", files->n) < 0 ? -ENOMEM : 0;
        if (r < 0) {
                for (size_t i = 0; f && i < k; i++)
                        free(f[i]);
                free(f);
                return r;
        }
        *ret = f;
        *ret_n = k;
        return 0;
}

static void log_roster_loaded(const Tenant *t, const Roster *files, const RosterDiff *d) {
        char changes[1024], **fields = NULL;
        size_t n = 0;
        LogEvent ev = { .message_id = MID_ROSTER_LOADED, .action = "roster", .result = "ok" };

        roster_diff_format(d, t->config->roster_dir, changes, sizeof(changes));
        if (roster_fields(d, files, &fields, &n) >= 0) {
                ev.extra = fields;
                ev.n_extra = n;
        }
        log_event(t->log, LOG_INFO, &ev, "roster loaded: %zu users in %zu files; %s", files->n,
                  files->n_files, changes);
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
        free(fields);
}

int reconcile_roster_loaded(Tenant *t, const Roster *files) {
        _cleanup_free_ char *before = NULL, *after = NULL;
        RosterFileSet old = { 0 }, new = { 0 };
        RosterDiff d = { 0 };
        int k;

        k = store_meta_get(t->store, STORE_META_ROSTER_FILES, &before);
        if (k < 0 && k != -ENOENT)
                return k;
        if ((k = roster_file_set_from_json(before, &old)) >= 0 && (k = roster_file_set(files, &new)) >= 0 &&
            (k = roster_diff(&old, &new, &d)) >= 0) {
                log_roster_loaded(t, files, &d);
                k = roster_file_set_to_json(&new, &after);
        }
        if (k >= 0)
                k = store_meta_set(t->store, STORE_META_ROSTER_FILES, after);
        roster_diff_clear(&d);
        roster_file_set_clear(&old);
        roster_file_set_clear(&new);
        return k;
}

size_t reconcile_jobs(const Plan *p) {
        return p->n_create + p->n_copy + p->n_delete;
}

static void log_drift(const Tenant *t, const Action *d, const char *run_id) {
        char id[GUID_STRING_MAX], want[GUID_STRING_MAX], is[GUID_STRING_MAX];
        LogEvent ev = { .message_id = MID_DRIFT, .action = "verify", .result = "skipped",
                        .o365_id = &d->id, .ou = &d->target, .run_id = run_id };

        log_event(t->log, LOG_WARNING, &ev, "drift: %s is in OU %s, the roster says %s; no API call "
                  "can move a user, move it in the Nimbus portal", guid_format(&d->id, id),
                  guid_format(&d->actual, is), guid_format(&d->target, want));
}

static void log_skipped(const Tenant *t, const Plan *p, const char *run_id) {
        size_t listed = p->n_delete_skipped < PLAN_SKIPPED_LISTED ? p->n_delete_skipped : PLAN_SKIPPED_LISTED;
        char why[256];

        if (listed > AUDIT_USERS_MAX)
                listed = AUDIT_USERS_MAX;
        plan_guard_text(p, t->config, why, sizeof(why));
        for (size_t i = 0; i < listed; i++)
                log_user_delete(t, &p->skipped[i], &p->skipped_ou[i], "skipped", why, run_id);
        log_users_not_listed(t, p->n_delete_skipped - listed, "skipped", run_id);
}

void reconcile_log_notes(const Tenant *t, const Plan *p, const char *run_id) {
        const Config *c = t->config;
        char why[256];
        LogEvent ev = { .message_id = MID_DELETES_HELD, .action = "delete", .result = "held",
                        .run_id = run_id };

        if (p->n_uncertain > 0)
                log_event(t->log, LOG_WARNING, &ev,
                          "%zu deletes held because ownership is uncertain (\"already exists\" after "
                          "an attempt whose outcome is unknown): review with `nimbus-sync plan`, and "
                          "approve only if nimbus-sync created them", p->n_uncertain);
        if (p->n_held > p->n_uncertain)
                log_event(t->log, LOG_WARNING, &ev, "%zu deletes held: %s; review with `nimbus-sync "
                          "approve-deletes --dry-run`, then run `nimbus-sync approve-deletes`",
                          p->n_held - p->n_uncertain, plan_guard_text(p, c, why, sizeof(why)));
        if (p->guard == GUARD_EMPTY_ROSTER && p->n_delete_skipped > 0) {
                ev.result = "skipped";
                log_event(t->log, LOG_WARNING, &ev, "the roster is empty: %zu deletes skipped "
                          "(deletes.allow_empty is false)", p->n_delete_skipped);
        } else if (p->guard == GUARD_DISABLED && p->n_delete_skipped > 0) {
                ev.result = "skipped";
                log_event(t->log, LOG_NOTICE, &ev, "%zu deletes skipped: deletes.enabled is false",
                          p->n_delete_skipped);
        }
        log_skipped(t, p, run_id);
        for (size_t i = 0; i < p->n; i++)
                if (p->actions[i].kind == ACTION_DRIFT)
                        log_drift(t, &p->actions[i], run_id);
}

int reconcile_run_begin(Tenant *t, const Plan *p, const Roster *r, StoreRun *run) {
        LogEvent ev = { .message_id = MID_RUN_STARTED, .action = "run", .run_id = run->run_id };
        int k;

        *run = (StoreRun) { .started_usec = now_usec() };
        snprintf(run->run_id, sizeof(run->run_id), "%016" PRIx64 "%016" PRIx64, backoff_random(),
                 backoff_random());
        k = store_run_begin(t->store, run);
        if (k < 0)
                return k;
        log_event(t->log, LOG_NOTICE, &ev, "run started: %zu to create, %zu to copy, %zu to delete, "
                  "%zu held, %zu users in the roster", p->n_create, p->n_copy, p->n_delete, p->n_held,
                  r->n);
        return 0;
}

int reconcile_exit_code(const Plan *p, const RunnerStats *st, bool interrupted) {
        if (st->auth_failed || interrupted)
                return 1;
        /* Deletes held back by an empty roster leave Nimbus different from it: that needs a
         * look, as held deletes do. Deletes switched off by config are the admin's choice. */
        if (st->failed + st->quarantined + st->held + st->blocked + st->paused + st->cancelled +
            st->deferred > 0 || p->n_failed + p->n_quarantined > 0 || plan_guard_skipped(p))
                return 2;
        return 0;
}

/* A run that leaves work for later says when, so `apply` never ends (or waits) silently. */
static void log_deferred(const Tenant *t, const RunnerStats *st, const char *run_id) {
        LogEvent ev = { .action = "run", .result = "deferred", .run_id = run_id };
        uint64_t at = st->deferred_until ? st->deferred_until : st->next_due_usec;
        char when[64] = "later";
        time_t secs = (time_t) (at / USEC_PER_SEC);
        struct tm tm;

        if (st->deferred == 0)
                return;
        if (at > 0 && localtime_r(&secs, &tm))
                strftime(when, sizeof(when), "at %Y-%m-%d %H:%M:%S %Z", &tm);
        log_event(t->log, LOG_WARNING, &ev, "%zu actions left for a later run: %s %s; run "
                  "`nimbus-sync apply` again then (the daemon does it by itself)", st->deferred,
                  st->deferred_until ? "Nimbus asked us to pause (Retry-After) until" :
                  "the next retry is due", when);
}

void reconcile_run_end(Tenant *t, const Plan *p, const RunnerStats *st, int exit_code, StoreRun *run) {
        LogEvent ev = { .message_id = MID_RUN_FINISHED, .action = "run", .run_id = run->run_id,
                        .result = exit_code == 0 ? "ok" : "failed" };

        run->finished_usec = now_usec();
        run->created = (unsigned) st->created;
        run->copied = (unsigned) st->copied;
        run->adopted = (unsigned) st->adopted;
        run->deleted = (unsigned) (st->deleted + st->gone);
        run->failed = (unsigned) (st->failed + st->quarantined);
        run->held = (unsigned) st->held;
        run->result = exit_code;
        (void) store_run_finish(t->store, run);
        log_event(t->log, LOG_NOTICE, &ev,
                  "run finished: %zu created, %zu copied, %zu adopted, %zu uncertain, %zu deleted, "
                  "%zu already gone, %zu failed, %zu quarantined, %zu held, %zu waiting", st->created,
                  st->copied, st->adopted, st->uncertain, st->deleted, st->gone, st->failed,
                  st->quarantined, st->held, st->blocked + st->paused + st->cancelled + st->deferred +
                  p->n_failed + p->n_quarantined);
        log_deferred(t, st, run->run_id);
}
