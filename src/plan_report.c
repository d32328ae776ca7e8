/* plan_report.c: what `plan` shows of a Plan (see plan_report.h). */
#include "plan_report.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define LABEL_MAX (2 * AUDIT_NAME_MAX + 4)

/* ---- the estimate ------------------------------------------------------------------------------ */

uint64_t plan_report_duration_usec(size_t calls, unsigned operations, uint64_t window_usec) {
        if (operations == 0)
                return 0;
        /* No overflow: a roster has at most 10^7 entries, a window at most days. */
        return (uint64_t) calls * window_usec / operations;
}

static void format_window(uint64_t usec, char *buf, size_t size) {
        if (usec % USEC_PER_SEC == 0)
                snprintf(buf, size, "%" PRIu64 " s", usec / USEC_PER_SEC);
        else
                snprintf(buf, size, "%" PRIu64 " ms", usec / USEC_PER_MSEC);
}

void plan_report_format_estimate(size_t calls, unsigned operations, uint64_t window_usec, char *buf,
                                 size_t size) {
        uint64_t s = (plan_report_duration_usec(calls, operations, window_usec) + USEC_PER_SEC / 2) /
                     USEC_PER_SEC;
        char window[32], time[48];

        format_window(window_usec, window, sizeof(window));
        if (s == 0)
                snprintf(time, sizeof(time), "< 1 s");
        else if (s < 90)
                snprintf(time, sizeof(time), "≈ %" PRIu64 " s", s);
        else if (s < 90 * 60)
                snprintf(time, sizeof(time), "≈ %" PRIu64 " min", (s + 30) / 60);
        else
                snprintf(time, sizeof(time), "≈ %" PRIu64 " h %02" PRIu64 " min", (s + 30) / 3600,
                         (s + 30) % 3600 / 60);
        snprintf(buf, size, "%s at %u per %s", time, operations, window);
}

/* ---- collecting -------------------------------------------------------------------------------- */

static const char *entry_source(const PlanReport *rep, const RosterEntry *e) {
        const char *file = roster_entry_file(rep->roster, e);

        /* A directory source's label is no path. */
        return e->line > 0 ? audit_relative_path(rep->config->roster_dir, file) : file;
}

/* A copy lands in its template's OU: known when the roster creates the template in one. */
static Guid action_ou(const PlanReport *rep, const Action *a) {
        const RosterEntry *t;

        if (a->kind == ACTION_CREATE)
                return a->target;
        if (a->kind == ACTION_COPY) {
                t = roster_find(rep->roster, &a->target);
                return t && t->kind == TARGET_OU ? t->target : (Guid) { 0 };
        }
        return a->actual;
}

static int tally_ou(PlanReport *rep, const Guid *ou, unsigned column) {
        char key[GUID_STRING_MAX] = "";

        if (!guid_is_null(ou))
                guid_format(ou, key);
        return tally_add(&rep->by_ou, key, column, NULL);
}

/* A delete or held delete: who it is comes from the store. */
static int collect_leaver(PlanReport *rep, size_t i, unsigned column) {
        const Action *a = &rep->plan->actions[i];
        const char *source;
        char label[LABEL_MAX];
        AuditUser who;
        size_t row;
        int r;

        audit_user_describe(rep->store, NULL, NULL, &a->id, &a->actual, &who);
        source = audit_user_source(&who, rep->config->roster_dir);
        audit_user_label(&who, label, sizeof(label));
        if ((r = tally_add(&rep->by_source, source, column, &row)) < 0)
                return r;
        if (column == REPORT_HELD)
                return review_add(&rep->held, &a->id, &who.ou, label, source, a->uncertain);
        rep->delete_source[i] = row;
        return *label ? strdup_checked(label, &rep->delete_label[i]) : 0;
}

static int collect_one(PlanReport *rep, size_t i) {
        const Action *a = &rep->plan->actions[i];
        unsigned column = a->kind == ACTION_CREATE ? REPORT_CREATE : a->kind == ACTION_COPY ? REPORT_COPY :
                          a->kind == ACTION_DELETE ? REPORT_DELETE : REPORT_HELD;
        Guid ou = action_ou(rep, a);
        int r;

        if (a->kind == ACTION_DRIFT)
                return 0;
        if ((r = tally_ou(rep, &ou, column)) < 0)
                return r;
        if (a->entry)
                return tally_add(&rep->by_source, entry_source(rep, a->entry), column, NULL);
        return collect_leaver(rep, i, column);
}

int plan_report_collect(PlanReport *rep, const Plan *p, const Roster *r, const Config *c, Store *store) {
        int k = 0;

        *rep = (PlanReport) { .plan = p, .roster = r, .config = c, .store = store,
                              .by_ou = TALLY_INIT, .by_source = TALLY_INIT };
        review_init(&rep->held, c);
        rep->delete_label = calloc(p->n_delete + 1, sizeof(char *));
        rep->delete_source = calloc(p->n_delete + 1, sizeof(size_t));
        if (!rep->delete_label || !rep->delete_source)
                k = -ENOMEM;
        for (size_t i = 0; k >= 0 && i < p->n; i++)
                k = collect_one(rep, i);
        return k;
}

void plan_report_clear(PlanReport *rep) {
        if (!rep)
                return;
        for (size_t i = 0; rep->delete_label && i < rep->plan->n_delete; i++)
                free(rep->delete_label[i]);
        free(rep->delete_label);
        free(rep->delete_source);
        tally_clear(&rep->by_ou);
        tally_clear(&rep->by_source);
        review_clear(&rep->held);
        *rep = (PlanReport) { 0 };
}

/* ---- for people ---------------------------------------------------------------------------------- */

static int print_tally(const PlanReport *rep, const Tally *t, const char *title, bool ous) {
        _cleanup_free_ size_t *order = NULL;
        char ou[GUID_STRING_MAX + 64];
        Guid g;
        int r;

        if ((r = tally_sorted(t, &order)) < 0)
                return r;
        printf("%s:\n%9s %9s %9s %9s  %s\n", title, "CREATE", "COPY", "DELETE", "HELD", ous ? "OU" : "SOURCE");
        for (size_t i = 0; i < t->n; i++) {
                const TallyRow *row = &t->rows[order[i]];
                const char *key = row->key;

                if (ous && *key && guid_parse(key, strlen(key), &g) >= 0)
                        key = audit_ou_text(rep->config, &g, ou, sizeof(ou));
                else if (ous)
                        key = "unknown (copies of a template not created from the roster, or not known)";
                printf("%9zu %9zu %9zu %9zu  %s\n", row->count[REPORT_CREATE], row->count[REPORT_COPY],
                       row->count[REPORT_DELETE], row->count[REPORT_HELD], key);
        }
        return 0;
}

static void print_action(const PlanReport *rep, size_t i) {
        const Action *a = &rep->plan->actions[i];
        const RosterEntry *e = a->entry;
        char id[GUID_STRING_MAX], t[GUID_STRING_MAX], actual[GUID_STRING_MAX], label[LABEL_MAX] = "";

        guid_format(&a->id, id);
        guid_format(&a->target, t);
        switch (a->kind) {
        case ACTION_CREATE: printf("+ create %s in OU %s", id, t); break;
        case ACTION_COPY:   printf("+ copy   %s from template %s", id, t); break;
        case ACTION_DELETE: printf("- delete %s%s", id, a->approved ? " (approved)" : ""); break;
        case ACTION_DRIFT:
                printf("~ drift  %s is in OU %s, the roster says %s", id, guid_format(&a->actual, actual), t);
                break;
        default:
                return;         /* held: in the review */
        }
        if (e && *roster_entry_label(rep->roster, e, label, sizeof(label)))
                printf("  %s", label);
        if (e && e->line > 0)
                printf("  [%s:%u]", entry_source(rep, e), e->line);
        else if (e)             /* a directory source: no line */
                printf("  [%s]", entry_source(rep, e));
        else if (a->kind == ACTION_DELETE) {
                if (rep->delete_label[i])
                        printf("  %s", rep->delete_label[i]);
                printf("  [last listed by %s]", rep->by_source.rows[rep->delete_source[i]].key);
        }
        if (a->kind == ACTION_COPY && a->depends_on != PLAN_NO_DEP)
                printf("  (after its template is created)");
        putchar('\n');
}

static void print_totals(const PlanReport *rep) {
        const Plan *p = rep->plan;
        const Config *c = rep->config;
        char why[256], estimate[96];
        size_t calls = p->n_create + p->n_copy + p->n_delete;

        if (p->n_held > p->n_uncertain || p->n_delete_skipped > 0)
                printf("Deletes %s: %s.\n", p->n_held > 0 ? "held" : "skipped", plan_guard_text(p, c, why, sizeof(why)));
        if (p->n_uncertain > 0)
                printf("%zu deletes held because ownership is uncertain: an attempt with an unknown "
                       "outcome was followed by \"already exists\". Approve them only if nimbus-sync "
                       "created these users.\n", p->n_uncertain);
        if (plan_has_changes(p))
                printf("Plan: %zu to create, %zu to copy, %zu to delete, %zu held.\n", p->n_create,
                       p->n_copy, p->n_delete, p->n_held);
        else if (p->n_delete_skipped + p->n_drift + p->n_failed + p->n_quarantined > 0)
                /* Skipped deletes, drift and failures are differences no call may fix now. */
                printf("No changes to make now, but Nimbus still differs from the roster.\n");
        else
                printf("No changes. Nimbus matches the roster (%zu users).\n", rep->roster->n);
        if (p->n_drift > 0)
                printf("%zu users are in another OU than the roster says (no API call can move them).\n",
                       p->n_drift);
        if (p->n_failed + p->n_quarantined > 0)
                printf("%zu failed and %zu quarantined users wait for their retry time (see status).\n",
                       p->n_failed, p->n_quarantined);
        if (calls > 0) {
                plan_report_format_estimate(calls, c->rate_operations, c->rate_window_usec, estimate,
                                            sizeof(estimate));
                printf("Time: %s (%zu calls at the pace of rate_limit; held deletes not counted).\n",
                       estimate, calls);
        }
}

int plan_report_print(PlanReport *rep) {
        const Plan *p = rep->plan;
        int r;

        if (p->n_create + p->n_copy + p->n_delete + p->n_held > PLAN_REPORT_SUMMARY_MIN) {
                if ((r = print_tally(rep, &rep->by_ou, "Summary by OU", true)) < 0 ||
                    (r = print_tally(rep, &rep->by_source, "Summary by roster file or source", false)) < 0)
                        return r;
                putchar('\n');
        }
        for (size_t i = 0; i < p->n; i++)
                print_action(rep, i);
        if (rep->held.n > 0) {
                printf("Held deletes, by the roster file or source that last listed them; review them, "
                       "then `nimbus-sync approve-deletes` (--only/--except ID...):\n");
                if ((r = review_print(&rep->held, stdout)) < 0)
                        return r;
        }
        print_totals(rep);
        return 0;
}

/* ---- plan --json: fields added to its object ----------------------------------------------------- */

static json_object *json_counts(const TallyRow *row) {
        static const char *const names[TALLY_COLUMNS] = { "create", "copy", "delete", "held" };
        json_object *o = json_object_new_object();

        for (size_t k = 0; o && k < TALLY_COLUMNS; k++)
                json_object_object_add(o, names[k], json_object_new_int64((int64_t) row->count[k]));
        return o;
}

static int json_tally(const Tally *t, const char *key_name, json_object **ret) {
        _cleanup_free_ size_t *order = NULL;
        json_object *arr = json_object_new_array();
        int r = arr ? tally_sorted(t, &order) : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < t->n; i++) {
                const TallyRow *row = &t->rows[order[i]];
                json_object *o = json_counts(row);

                if (!o || json_object_array_add(arr, o) < 0) {
                        json_object_put(o);
                        r = -ENOMEM;
                        break;
                }
                json_object_object_add(o, key_name, *row->key ? json_object_new_string(row->key) : NULL);
        }
        if (r < 0) {
                json_object_put(arr);
                return r;
        }
        *ret = arr;
        return 0;
}

static void json_add_text(json_object *o, const char *key, const char *v) {
        if (v && *v)
                json_object_object_add(o, key, json_object_new_string(v));
}

static json_object *json_held(const PlanReport *rep, const Action *a) {
        json_object *o = json_object_new_object();
        char id[GUID_STRING_MAX], ou[GUID_STRING_MAX] = "";
        AuditUser who;

        if (!o)
                return NULL;
        audit_user_describe(rep->store, NULL, NULL, &a->id, &a->actual, &who);
        json_add_text(o, "o365_id", guid_format(&a->id, id));
        json_add_text(o, "name", who.name);
        json_add_text(o, "upn", who.upn);
        if (!guid_is_null(&who.ou))
                guid_format(&who.ou, ou);
        json_object_object_add(o, "ou", *ou ? json_object_new_string(ou) : NULL);
        json_object_object_add(o, "source", *who.source ? json_object_new_string(
                audit_user_source(&who, rep->config->roster_dir)) : NULL);
        json_add_text(o, "source_kind", !*who.source ? NULL : who.directory ? "directory" : "file");
        json_add_text(o, "reason", a->uncertain ? "uncertain" : "threshold");
        return o;
}

/* Held deletes are a few hundred at most in practice, but a million fit: streamed, one object
 * at a time. */
static int print_json_held(const PlanReport *rep) {
        bool first = true;

        printf(", \"held_deletes\": [");
        for (size_t i = 0; i < rep->plan->n; i++) {
                json_object *o;

                if (rep->plan->actions[i].kind != ACTION_HELD)
                        continue;
                o = json_held(rep, &rep->plan->actions[i]);
                if (!o)
                        return -ENOMEM;
                printf("%s%s", first ? "" : ", ", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
                first = false;
        }
        printf("]");
        return 0;
}

int plan_report_print_json_fields(PlanReport *rep) {
        const Plan *p = rep->plan;
        json_object *summary = json_object_new_object(), *by_ou = NULL, *by_source = NULL;
        size_t calls = p->n_create + p->n_copy + p->n_delete;
        int r = summary ? 0 : -ENOMEM;

        if (r >= 0 && (r = json_tally(&rep->by_ou, "ou", &by_ou)) >= 0)
                json_object_object_add(summary, "by_ou", by_ou);
        if (r >= 0 && (r = json_tally(&rep->by_source, "source", &by_source)) >= 0)
                json_object_object_add(summary, "by_source", by_source);
        if (r >= 0)
                printf(", \"summary\": %s", json_object_to_json_string_ext(summary, JSON_C_TO_STRING_PLAIN));
        json_object_put(summary);
        if (r >= 0)
                r = print_json_held(rep);
        if (r >= 0)
                printf(", \"estimate_seconds\": %.0f",
                       (double) plan_report_duration_usec(calls, rep->config->rate_operations,
                                                          rep->config->rate_window_usec) / USEC_PER_SEC);
        return r;
}
