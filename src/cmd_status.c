/* cmd_status.c: `status`, which works on the state store alone and never talks to Nimbus. `status --all` summarises every instance configured on the host, one line each,
 * and `status --check` gives the verdict of health.h as a monitoring plugin's one line. */
#include <json-c/json.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "desired.h"
#include "health.h"
#include "instances.h"
#include "planner.h"
#include "progress.h"
#include "ratelimit.h"
#include "report.h"
#include "rosterview.h"
#include "store.h"
#include "util.h"

#define STATUS_MAX_LISTED 1000  /* failed users listed in --json; the human view shows fewer */
#define STATUS_HUMAN_LISTED 20

typedef struct Summary {
        size_t users, present, created, copied, adopted, uncertain, absent;
        size_t retry, failed, quarantined, held, approved, unknown_intent;
        unsigned rate_used;
        StoreRun last;
        bool has_last;
        char *auth_state, *auth_error;
        char *roster_error;      /* as the daemon last saw the roster, or as it is now */
        size_t roster_users, roster_files;
        bool roster_ok;
        RosterView view;         /* the daemon's record of the roster it read ... */
        bool has_view;           /* ... when there is one: then the roster is not read here */
        Progress progress;       /* the last record of the daemon's or apply's progress */
        bool has_progress;
        bool progress_alive;     /* the process that wrote it still runs */
        bool has_pending;        /* the work left is known: recorded, or planned here */
        size_t pending[_PROGRESS_KIND_MAX], pending_held, drift;
        uint64_t pending_usec;   /* when it was recorded; 0 = planned here, now */
        uint64_t last_success;   /* when Nimbus last matched the roster, 0 = never */
        SourceSet *sources;      /* each Entra group as the store knows it, or NULL */
        uint64_t verify_last;
        long daemon_pid;         /* a running daemon, or 0 */
        uint64_t next_scan;      /* its next full rescan, wall clock */
} Summary;

static void summarize_user(Summary *s, const StoreUser *u) {
        s->users++;
        s->present += u->presence == PRESENCE_PRESENT;
        s->absent += u->presence == PRESENCE_ABSENT;
        if (u->presence == PRESENCE_PRESENT) {
                s->created += u->origin == ORIGIN_CREATED;
                s->copied += u->origin == ORIGIN_COPIED;
                s->adopted += u->origin == ORIGIN_ADOPTED;
        }
        /* Present, or a create with an unknown outcome: either way not proven ours. */
        s->uncertain += u->origin == ORIGIN_UNCERTAIN && u->presence != PRESENCE_ABSENT;
        s->retry += u->status == STATUS_RETRY;
        s->failed += u->status == STATUS_FAILED;
        s->quarantined += u->status == STATUS_QUARANTINED;
        s->held += u->hold == HOLD_HELD || u->hold == HOLD_KEPT;
        s->approved += u->hold == HOLD_APPROVED;
        s->unknown_intent += u->intent != INTENT_NONE;
}

static int summarize(Store *st, const Config *c, const StoreUser *u, size_t n, Summary *s) {
        RateLimit rl;

        for (size_t i = 0; i < n; i++)
                summarize_user(s, &u[i]);
        if (ratelimit_init(&rl, c->rate_operations, c->rate_window_usec, c->retry.timeout_usec) < 0 ||
            store_rate_used(st, now_usec(), ratelimit_hold(&rl, false), ratelimit_hold(&rl, true),
                            &s->rate_used) < 0)
                s->rate_used = 0;
        s->has_last = store_last_run(st, &s->last) >= 0;
        if (store_meta_get(st, "auth_state", &s->auth_state) < 0)
                s->auth_state = NULL;
        if (store_meta_get(st, "auth_error", &s->auth_error) < 0)
                s->auth_error = NULL;
        return 0;
}

/* Is the nimbus-sync that recorded pid still running? /proc tells without signalling it. */
static bool process_alive(long pid) {
        char path[64], comm[32] = "";
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (!fgets(comm, sizeof(comm), f))
                comm[0] = 0;
        fclose(f);
        return strncmp(comm, "nimbus-sync", 11) == 0;
}

static void summarize_daemon(const Config *c, Store *st, Summary *s) {
        _cleanup_free_ char *pid = NULL, *epoch = NULL;
        uint64_t now = now_usec(), e, iv = c->scan_interval_usec;

        if (store_meta_get(st, "daemon_pid", &pid) < 0 || !pid || !process_alive(strtol(pid, NULL, 10)))
                return;
        s->daemon_pid = strtol(pid, NULL, 10);
        if (iv == 0 || store_meta_get(st, "scan_epoch", &epoch) < 0 || !epoch)
                return;
        e = strtoull(epoch, NULL, 10);
        s->next_scan = e >= now ? e + iv : e + ((now - e) / iv + 1) * iv;
}

/* What the daemon (or apply) recorded: the roster it read, its progress, the last success. */
static void summarize_records(Store *st, Summary *s) {
        _cleanup_free_ char *view = NULL, *progress = NULL, *success = NULL;

        s->has_view = store_meta_get(st, ROSTER_VIEW_META_KEY, &view) >= 0 &&
                      roster_view_parse(view, &s->view) >= 0;
        s->has_progress = store_meta_get(st, PROGRESS_META_KEY, &progress) >= 0 &&
                          progress_parse(progress, &s->progress) >= 0;
        s->progress_alive = s->has_progress && s->progress.pid > 0 && process_alive(s->progress.pid);
        if (store_meta_get(st, STORE_META_LAST_SUCCESS, &success) >= 0 && success)
                s->last_success = strtoull(success, NULL, 10);
}

/* The daemon's verdict, and the work left as last recorded: the roster is not read here, as
 * whoever runs status may see another folder than the service user does. */
static void summary_from_view(const Config *c, Store *st, Summary *s) {
        const Progress *p = &s->progress;

        s->roster_ok = !s->view.error;
        s->roster_error = s->view.error ? strdup(s->view.error) : NULL;
        s->roster_users = s->view.users;
        s->roster_files = s->view.n_files;
        if (c->n_sources > 0 && (source_set_new(c, &s->sources) < 0 || source_set_load(s->sources, st) < 0))
                s->sources = source_set_free(s->sources);
        s->has_pending = s->has_progress;
        memcpy(s->pending, p->pending, sizeof(s->pending));
        s->pending_held = p->held;
        s->drift = p->drift;
        s->pending_usec = p->updated_usec;
}

/* No daemon has said what it read (only `apply` was used): plan against the roster as it is now,
 * as the calling user reads it (read-only, nothing is sent). */
static void summary_from_roster(const Config *c, const StoreUser *u, size_t n, Store *st, Summary *s) {
        Diag d = DIAG_INIT;
        Roster *r = NULL;
        Plan *p = NULL;

        if (roster_load_dir(c->roster_dir, c, &r, NULL, &d) < 0 ||
            desired_from_store(c, st, &r, &s->sources, &d) < 0) {
                if (diag_first_error(&d, &s->roster_error) < 0 || !s->roster_error)
                        s->roster_error = strdup("cannot read the roster folder");
        } else {
                s->roster_ok = true;
                s->roster_users = r->n;
                s->roster_files = r->n_files - (s->sources ? s->sources->n : 0);
                s->has_pending = plan_build(r, u, n, c, now_usec(), &p) >= 0;
        }
        if (s->has_pending) {
                s->pending[PROGRESS_CREATE] = p->n_create;
                s->pending[PROGRESS_COPY] = p->n_copy;
                s->pending[PROGRESS_DELETE] = p->n_delete;
                s->pending_held = p->n_held;
                s->drift = p->n_drift;
        }
        plan_free(p);
        diag_clear(&d);
        roster_free(r);
}

static void summarize_roster(const Config *c, const StoreUser *u, size_t n, Store *st, Summary *s) {
        _cleanup_free_ char *last = NULL;

        summarize_records(st, s);
        if (s->has_view)
                summary_from_view(c, st, s);
        else
                summary_from_roster(c, u, n, st, s);
        if (store_meta_get(st, "verify_last", &last) >= 0 && last)
                s->verify_last = strtoull(last, NULL, 10);
        summarize_daemon(c, st, s);
}

/* The last run is in progress: its process records it, and still runs. */
static bool run_in_progress(const Summary *s) {
        return s->has_last && !s->last.finished_usec && s->has_progress && s->progress.running &&
               s->progress_alive && streq(s->progress.run_id, s->last.run_id);
}

static const char *status_word(const StoreUser *u) {
        return u->status == STATUS_FAILED ? "failed" : u->status == STATUS_QUARANTINED ? "quarantined" :
               u->status == STATUS_RETRY ? "retry" :
               u->hold == HOLD_HELD || u->hold == HOLD_KEPT ? "held" :
               u->hold == HOLD_APPROVED ? "approved" : "ok";
}

static bool user_is_notable(const StoreUser *u) {
        return u->status != STATUS_OK || u->hold != HOLD_NONE;
}

static void format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, size, "-");
}

/* Each Entra group as the store knows it (status reads no Graph). */
static void print_sources(const SourceSet *set) {
        char id[GUID_STRING_MAX], read[32], failed[32];

        for (size_t i = 0; set && i < set->n; i++) {
                const Source *s = &set->sources[i];

                guid_format(&s->config->group, id);
                format_time(s->read_usec, read, sizeof(read));
                format_time(s->error_usec, failed, sizeof(failed));
                if (s->list)
                        printf("Source:        %s (%s): %zu users, read %s", s->label, id,
                               graph_listing_count(s->list, s->config->include_disabled), read);
                else
                        printf("Source:        %s: never read completely", s->label);
                if (s->error)
                        printf("; LAST READ FAILED %s: %s%s", failed, s->error,
                               s->list ? " (its last complete list stays in force)" : "");
                putchar('\n');
        }
}

static json_object *source_json(const Source *s) {
        json_object *o = json_object_new_object();
        char id[GUID_STRING_MAX];

        json_object_object_add(o, "entra_group", json_object_new_string(guid_format(&s->config->group, id)));
        json_object_object_add(o, "name", s->list && s->list->group_name ?
                               json_object_new_string(s->list->group_name) : NULL);
        json_object_object_add(o, "users", s->list ? json_object_new_int64((int64_t) graph_listing_count(
                               s->list, s->config->include_disabled)) : NULL);
        json_object_object_add(o, "read", s->read_usec ?
                               json_object_new_int64((int64_t) (s->read_usec / USEC_PER_SEC)) : NULL);
        json_object_object_add(o, "error", s->error ? json_object_new_string(s->error) : NULL);
        json_object_object_add(o, "error_at", s->error ?
                               json_object_new_int64((int64_t) (s->error_usec / USEC_PER_SEC)) : NULL);
        return o;
}

static json_object *sources_json(const SourceSet *set) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; set && i < set->n; i++)
                json_object_array_add(a, source_json(&set->sources[i]));
        return a;
}

static const char *calling_user(char *buf, size_t size) {
        struct passwd *pw = getpwuid(geteuid());

        if (pw)
                snprintf(buf, size, "%s", pw->pw_name);
        else
                snprintf(buf, size, "uid %u", (unsigned) geteuid());
        return buf;
}

static void print_view_files(const RosterView *v) {
        for (size_t i = 0; i < v->n_files && i < STATUS_HUMAN_LISTED; i++)
                printf("  file        %s: %zu users\n", v->files[i].name, v->files[i].users);
        if (v->n_files > STATUS_HUMAN_LISTED)
                printf("  file        ... and %zu more files\n", v->n_files - STATUS_HUMAN_LISTED);
}

/* The daemon's verdict when it recorded one; otherwise the roster as the calling user reads it,
 * and saying so: the service user may read it otherwise. */
static void print_roster_human(const Config *c, const Summary *s) {
        const char *groups = c->n_sources ? " and the Entra groups below" : "";
        char read[64], accepted[64], who[64];

        if (!s->has_view) {
                calling_user(who, sizeof(who));
                if (s->roster_ok)
                        printf("Roster:        %zu users in %zu files%s, as %s reads it now (no daemon has "
                               "recorded what it read)\n", s->roster_users, s->roster_files, groups, who);
                else
                        printf("Roster:        REJECTED as %s reads it now (no daemon has recorded what it "
                               "read): %s\n", who, s->roster_error);
                return;
        }
        format_time(s->view.read_usec, read, sizeof(read));
        format_time(s->view.accepted_usec, accepted, sizeof(accepted));
        if (s->roster_ok)
                printf("Roster:        %zu users in %zu files%s, as the daemon read it at %s\n",
                       s->roster_users, s->roster_files, groups, read);
        else if (s->view.accepted_usec)
                printf("Roster:        REJECTED by the daemon at %s: %s; the roster it read at %s stays in "
                       "force (%zu users in %zu files)\n", read, s->roster_error, accepted, s->roster_users,
                       s->roster_files);
        else
                printf("Roster:        REJECTED by the daemon at %s: %s; it has no valid roster yet\n", read,
                       s->roster_error);
        print_view_files(&s->view);
}

static void print_pending_human(const Summary *s) {
        char when[64];

        if (!s->has_pending) {
                printf("Pending:       %zu retrying, %zu with an unsettled call\n", s->retry, s->unknown_intent);
                return;
        }
        printf("Pending:       %zu to create, %zu to copy, %zu to delete, %zu drift; %zu retrying, %zu with an "
               "unsettled call", s->pending[PROGRESS_CREATE], s->pending[PROGRESS_COPY],
               s->pending[PROGRESS_DELETE], s->drift, s->retry, s->unknown_intent);
        if (s->pending_usec) {
                format_time(s->pending_usec, when, sizeof(when));
                printf(" (as of %s)", when);
        }
        putchar('\n');
}

static void print_runs_human(const Summary *s) {
        char when[64], line[128];

        if (run_in_progress(s)) {
                format_time(s->progress.started_usec, when, sizeof(when));
                progress_line(&s->progress, line, sizeof(line));
                printf("Run:           running since %s (pid %ld): %s\n", when, s->progress.pid, line);
        }
        if (s->has_last) {
                format_time(s->last.started_usec, when, sizeof(when));
                printf("Last run:      %s, %s: %u created, %u copied, %u adopted, %u deleted, %u failed, "
                       "%u held (exit %d)\n", when, s->last.finished_usec ? "finished" : run_in_progress(s) ?
                       "running" : "did not finish", s->last.created, s->last.copied, s->last.adopted,
                       s->last.deleted, s->last.failed, s->last.held, s->last.result);
        } else
                printf("Last run:      never\n");
        format_time(s->last_success, when, sizeof(when));
        printf("Last success:  %s%s\n", s->last_success ? when : "never",
               s->last_success ? " (Nimbus matched the roster)" : "");
}

static void print_status_human(const Config *c, const Summary *s, const StoreUser *u, size_t n) {
        char when[64], id[GUID_STRING_MAX];
        size_t listed = 0;

        printf("Users known:   %zu (%zu present: %zu created, %zu copied, %zu adopted, %zu uncertain; "
               "%zu deleted)\n", s->users, s->present, s->created, s->copied, s->adopted, s->uncertain,
               s->absent);
        print_roster_human(c, s);
        print_sources(s->sources);
        print_pending_human(s);
        printf("Failed:        %zu failed, %zu quarantined\n", s->failed, s->quarantined);
        printf("Held deletes:  %zu held, %zu approved%s\n", s->held, s->approved,
               s->held ? " (review with `nimbus-sync approve-deletes --dry-run`, release with `nimbus-sync approve-deletes`)" : "");
        printf("Auth:          %s%s%s\n", s->auth_state ? s->auth_state : "unknown",
               s->auth_error ? ": " : "", s->auth_error ? s->auth_error : "");
        printf("Rate:          %u of %u requests in the last %.0f s\n", s->rate_used, c->rate_operations,
               (double) c->rate_window_usec / USEC_PER_SEC);
        print_runs_human(s);
        if (s->daemon_pid) {
                format_time(s->next_scan, when, sizeof(when));
                printf("Daemon:        running (pid %ld), next full rescan %s\n", s->daemon_pid, when);
        } else
                printf("Daemon:        not running\n");
        format_time(s->verify_last, when, sizeof(when));
        printf("Last verify:   %s (every %.0f s%s)\n", when, (double) c->verify_interval_usec / USEC_PER_SEC,
               c->verify_interval_usec ? "" : ": off");
        for (size_t i = 0; i < n && listed < STATUS_HUMAN_LISTED; i++)
                if (user_is_notable(&u[i])) {
                        printf("  %-11s %s%s%s\n", status_word(&u[i]), guid_format(&u[i].id, id),
                               u[i].error ? "  " : "", u[i].error ? u[i].error : "");
                        listed++;
                }
}

static json_object *user_json(const StoreUser *u) {
        char id[GUID_STRING_MAX];
        json_object *o = json_object_new_object();

        json_object_object_add(o, "o365_id", json_object_new_string(guid_format(&u->id, id)));
        json_object_object_add(o, "state", json_object_new_string(status_word(u)));
        json_object_object_add(o, "http_status", json_object_new_int(u->http_status));
        json_object_object_add(o, "attempts", json_object_new_int(u->attempts));
        json_object_object_add(o, "error", u->error ? json_object_new_string(u->error) : NULL);
        json_object_object_add(o, "next_attempt", json_object_new_int64((int64_t) (u->next_attempt_usec / USEC_PER_SEC)));
        return o;
}

static void add_size(json_object *o, const char *key, size_t v) {
        json_object_object_add(o, key, json_object_new_int64((int64_t) v));
}

static json_object *time_json(uint64_t usec) {
        return usec ? json_object_new_int64((int64_t) (usec / USEC_PER_SEC)) : NULL;
}

static json_object *view_files_json(const RosterView *v) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < v->n_files; i++) {
                json_object *f = json_object_new_object();

                json_object_object_add(f, "name", json_object_new_string(v->files[i].name));
                add_size(f, "users", v->files[i].users);
                json_object_array_add(a, f);
        }
        return a;
}

/* "seen_by": "daemon" (its record) or "status" (read now by the calling user). */
static json_object *roster_json(const Summary *s) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "ok", json_object_new_boolean(s->roster_ok));
        json_object_object_add(o, "seen_by", json_object_new_string(s->has_view ? "daemon" : "status"));
        add_size(o, "users", s->roster_users);
        add_size(o, "files", s->roster_files);
        json_object_object_add(o, "error", s->roster_error ? json_object_new_string(s->roster_error) : NULL);
        json_object_object_add(o, "read", s->has_view ? time_json(s->view.read_usec) : NULL);
        json_object_object_add(o, "accepted", s->has_view ? time_json(s->view.accepted_usec) : NULL);
        json_object_object_add(o, "file_users", s->has_view ? view_files_json(&s->view) : NULL);
        return o;
}

static json_object *pending_json(const Summary *s) {
        json_object *o;

        if (!s->has_pending)
                return NULL;
        o = json_object_new_object();
        add_size(o, "create", s->pending[PROGRESS_CREATE]);
        add_size(o, "copy", s->pending[PROGRESS_COPY]);
        add_size(o, "delete", s->pending[PROGRESS_DELETE]);
        add_size(o, "held", s->pending_held);
        add_size(o, "drift", s->drift);
        add_size(o, "retrying", s->retry);
        add_size(o, "unsettled", s->unknown_intent);
        json_object_object_add(o, "as_of", time_json(s->pending_usec));
        return o;
}

/* The run in progress, or null. */
static json_object *run_json(const Summary *s) {
        const Progress *p = &s->progress;
        json_object *o;

        if (!run_in_progress(s))
                return NULL;
        o = json_object_new_object();
        json_object_object_add(o, "run_id", json_object_new_string(p->run_id));
        json_object_object_add(o, "pid", json_object_new_int64(p->pid));
        json_object_object_add(o, "started", time_json(p->started_usec));
        json_object_object_add(o, "updated", time_json(p->updated_usec));
        add_size(o, "done", p->done);
        add_size(o, "total", p->total);
        add_size(o, "eta_seconds", (size_t) ((p->eta_usec + USEC_PER_SEC - 1) / USEC_PER_SEC));
        return o;
}

static json_object *daemon_json(const Summary *s) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "running", json_object_new_boolean(s->daemon_pid != 0));
        json_object_object_add(o, "pid", s->daemon_pid ? json_object_new_int64(s->daemon_pid) : NULL);
        json_object_object_add(o, "next_scan", s->next_scan ?
                               json_object_new_int64((int64_t) (s->next_scan / USEC_PER_SEC)) : NULL);
        json_object_object_add(o, "verify_last", s->verify_last ?
                               json_object_new_int64((int64_t) (s->verify_last / USEC_PER_SEC)) : NULL);
        return o;
}

static void print_status_json(const Config *c, const Summary *s, const StoreUser *u, size_t n) {
        json_object *root = json_object_new_object(), *users = json_object_new_object();
        json_object *list = json_object_new_array(), *rate = json_object_new_object();
        json_object *auth = json_object_new_object(), *last = NULL;
        size_t listed = 0;

        add_size(users, "known", s->users);
        add_size(users, "present", s->present);
        add_size(users, "created", s->created);
        add_size(users, "copied", s->copied);
        add_size(users, "adopted", s->adopted);
        add_size(users, "uncertain", s->uncertain);
        add_size(users, "deleted", s->absent);
        add_size(users, "retrying", s->retry);
        add_size(users, "unsettled", s->unknown_intent);
        add_size(users, "failed", s->failed);
        add_size(users, "quarantined", s->quarantined);
        add_size(users, "held", s->held);
        add_size(users, "approved", s->approved);
        json_object_object_add(root, "users", users);
        json_object_object_add(root, "roster", roster_json(s));
        json_object_object_add(root, "sources", sources_json(s->sources));
        json_object_object_add(root, "pending", pending_json(s));
        for (size_t i = 0; i < n && listed < STATUS_MAX_LISTED; i++)
                if (user_is_notable(&u[i])) {
                        json_object_array_add(list, user_json(&u[i]));
                        listed++;
                }
        json_object_object_add(root, "problems", list);
        json_object_object_add(auth, "state", json_object_new_string(s->auth_state ? s->auth_state : "unknown"));
        json_object_object_add(auth, "error", s->auth_error ? json_object_new_string(s->auth_error) : NULL);
        json_object_object_add(root, "auth", auth);
        add_size(rate, "used", s->rate_used);
        add_size(rate, "limit", c->rate_operations);
        add_size(rate, "window_seconds", c->rate_window_usec / USEC_PER_SEC);
        json_object_object_add(root, "rate", rate);
        if (s->has_last) {
                last = json_object_new_object();
                json_object_object_add(last, "run_id", json_object_new_string(s->last.run_id));
                json_object_object_add(last, "started", json_object_new_int64((int64_t) (s->last.started_usec / USEC_PER_SEC)));
                json_object_object_add(last, "finished", json_object_new_int64((int64_t) (s->last.finished_usec / USEC_PER_SEC)));
                add_size(last, "created", s->last.created);
                add_size(last, "copied", s->last.copied);
                add_size(last, "adopted", s->last.adopted);
                add_size(last, "deleted", s->last.deleted);
                add_size(last, "failed", s->last.failed);
                add_size(last, "held", s->last.held);
                json_object_object_add(last, "result", json_object_new_int(s->last.result));
                json_object_object_add(last, "state", json_object_new_string(s->last.finished_usec ? "finished" :
                                       run_in_progress(s) ? "running" : "did not finish"));
        }
        json_object_object_add(root, "last_run", last);
        json_object_object_add(root, "run", run_json(s));
        json_object_object_add(root, "last_success", time_json(s->last_success));
        json_object_object_add(root, "daemon", daemon_json(s));
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
}

static void summary_clear(Summary *s) {
        free(s->auth_state);
        free(s->auth_error);
        free(s->roster_error);
        roster_view_clear(&s->view);
        source_set_free(s->sources);
        *s = (Summary) { 0 };
}

/* ---- status --all and --check ------------------------------------------------------------------ */

#define REASONS_MAX 1024
#define ALL_SUMMARY_MAX 4096

/* What `status` knows of one instance, for a line of --all and the verdict of --check. */
typedef struct InstanceStatus {
        const char *name, *config_path;
        Config *config;          /* NULL when it does not load */
        char *config_error;
        char *store_error;
        bool has_state, summarized;
        long gone_pid;           /* recorded by a daemon that is no longer running */
        bool unit_enabled;
        const char *shares_state_with;
        Summary s;
} InstanceStatus;

static void instance_status_clear(InstanceStatus *in) {
        config_free(in->config);
        free(in->config_error);
        free(in->store_error);
        summary_clear(&in->s);
}

static int instance_load_config(InstanceStatus *in) {
        Diag d = DIAG_INIT;
        int k;

        k = config_load(in->config_path, &in->config, &d);
        if (k < 0 && (diag_first_error(&d, &in->config_error) < 0 || !in->config_error) &&
            asprintf(&in->config_error, "%s: %s", in->config_path, strerror(-k)) < 0)
                in->config_error = NULL;
        diag_clear(&d);
        return k;
}

/* A fact only the store has: a daemon pid that outlived its daemon (a clean stop removes it). */
static void instance_load_meta(Store *st, InstanceStatus *in) {
        _cleanup_free_ char *pid = NULL;

        if (store_meta_get(st, "daemon_pid", &pid) >= 0 && pid && !in->s.daemon_pid)
                in->gone_pid = strtol(pid, NULL, 10);
}

static void instance_load_state(InstanceStatus *in) {
        Store *st = NULL;
        StoreUser *u = NULL;
        size_t n = 0;
        int k;

        k = store_open(in->config->state_dir, true, &st);
        in->has_state = k >= 0;
        if (k >= 0)
                k = store_load_users(st, &u, &n);
        if (k >= 0)
                k = summarize(st, in->config, u, n, &in->s);
        if (k >= 0) {
                summarize_roster(in->config, u, n, st, &in->s);
                instance_load_meta(st, in);
                in->summarized = true;
        }
        if (k < 0 && k != -ENOENT && !(in->store_error = strdup(strerror(-k))))
                in->store_error = NULL;
        store_users_free(u, n);
        store_close(st);
}

static void instance_load(InstanceStatus *in) {
        if (instance_has_unit(in->config_path))
                in->unit_enabled = instance_unit_enabled(INSTANCES_UNIT_ENABLE_DIR, in->name);
        if (instance_load_config(in) >= 0)
                instance_load_state(in);
}

/* The daemon's verdict when it recorded one, else the roster as read here. */
static const char *instance_roster_error(const InstanceStatus *in) {
        if (in->summarized && !in->s.roster_ok)
                return in->s.roster_error ? in->s.roster_error : "cannot read the roster folder";
        return NULL;
}

static size_t sources_failed(const SourceSet *set) {
        size_t n = 0;

        for (size_t i = 0; set && i < set->n; i++)
                n += set->sources[i].error != NULL;
        return n;
}

static HealthLevel instance_health(const InstanceStatus *in, char *buf, size_t size) {
        const Summary *s = &in->s;
        HealthFacts f = {
                .config_error = in->config ? NULL : in->config_error ? in->config_error : "cannot be read",
                .store_error = in->store_error,
                .has_state = in->has_state,
                .auth_state = s->auth_state,
                .auth_error = s->auth_error,
                .roster_error = instance_roster_error(in),
                .daemon_running = s->daemon_pid != 0,
                .daemon_gone_pid = in->gone_pid,
                .unit_enabled = in->unit_enabled,
                .shares_state_with = in->shares_state_with,
                .held = s->held,
                .failed = s->failed,
                .quarantined = s->quarantined,
                .sources_failed = sources_failed(s->sources),
        };

        return health_assess(&f, buf, size);
}

static size_t pending_total(const Summary *s) {
        return s->pending[PROGRESS_CREATE] + s->pending[PROGRESS_COPY] + s->pending[PROGRESS_DELETE];
}

static void format_last_run(const Summary *s, char *buf, size_t size) {
        char when[64];

        if (!s->has_last) {
                snprintf(buf, size, "never");
                return;
        }
        format_time(s->last.started_usec, when, sizeof(when));
        if (run_in_progress(s))
                snprintf(buf, size, "%s running %zu/%zu", when, s->progress.done, s->progress.total);
        else if (!s->last.finished_usec)
                snprintf(buf, size, "%s unfinished", when);
        else if (s->last.result == 0)
                snprintf(buf, size, "%s ok", when);
        else
                snprintf(buf, size, "%s exit %d", when, s->last.result);
}

/* status --check: one line in the manner of monitoring plugins, with performance data. */
static int print_check(const InstanceStatus *in) {
        char reasons[REASONS_MAX], last[96];
        HealthLevel level = instance_health(in, reasons, sizeof(reasons));
        const Summary *s = &in->s;

        format_last_run(s, last, sizeof(last));
        printf("NIMBUS-SYNC %s - %s: ", health_level_name(level), in->name);
        if (level == HEALTH_OK)
                printf("%zu users, %zu pending, daemon %s, last run %s", s->present, pending_total(s),
                       s->daemon_pid ? "running" : "not running", last);
        else
                printf("%s", reasons);
        printf(" | users=%zu pending=%zu held=%zu failed=%zu quarantined=%zu\n", s->present,
               pending_total(s), s->held, s->failed, s->quarantined);
        return (int) level;
}

static int status_check(Cli *cli) {
        InstanceStatus in = { .config_path = cli->config_path };
        _cleanup_free_ char *name = NULL;
        int level;

        in.name = instance_name(cli->config_path, &name) >= 0 ? name : cli->config_path;
        instance_load(&in);
        level = print_check(&in);
        instance_status_clear(&in);
        return level;
}

/* Two instances writing one store would each take the other's users for their own. */
static void find_shared_state(InstanceStatus *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n && v[i].config && !v[i].shares_state_with; j++)
                        if (j != i && v[j].config && streq(v[i].config->state_dir, v[j].config->state_dir))
                                v[i].shares_state_with = v[j].name;
}

static void print_instance_line(const InstanceStatus *in, int width) {
        char reasons[REASONS_MAX], last[96], pending[24] = "-";
        HealthLevel level = instance_health(in, reasons, sizeof(reasons));
        const Summary *s = &in->s;

        if (!in->has_state) {
                printf("%-*s  %-11s %6s %8s %5s %7s  %-8s %-26s %s%s%s\n", width, in->name,
                       in->config ? (s->daemon_pid ? "running" : "not running") : "-", "-", "-", "-",
                       "-", "-", "-", health_level_name(level), *reasons ? ": " : "", reasons);
                return;
        }
        if (s->has_pending)
                snprintf(pending, sizeof(pending), "%zu", pending_total(s));
        format_last_run(s, last, sizeof(last));
        printf("%-*s  %-11s %6zu %8s %5zu %7zu  %-8s %-26s %s%s%s\n", width, in->name,
               s->daemon_pid ? "running" : "not running", s->present, pending, s->held,
               s->failed + s->quarantined, s->auth_state ? s->auth_state : "unknown", last,
               health_level_name(level), *reasons ? ": " : "", reasons);
}

static void print_instance_table(const InstanceStatus *v, size_t n) {
        int width = 8;

        for (size_t i = 0; i < n; i++)
                if ((int) strlen(v[i].name) > width)
                        width = (int) strlen(v[i].name);
        printf("%-*s  %-11s %6s %8s %5s %7s  %-8s %-26s %s\n", width, "INSTANCE", "DAEMON", "USERS",
               "PENDING", "HELD", "FAILED", "AUTH", "LAST RUN", "CHECK");
        for (size_t i = 0; i < n; i++)
                print_instance_line(&v[i], width);
}

/* Appends what fits of "NAME (REASONS)" to text, never half a UTF-8 character. */
static void append_instance(char *text, size_t size, size_t *len, size_t bad, const char *name,
                            const char *reasons) {
        _cleanup_free_ char *item = NULL;
        size_t m;

        if (asprintf(&item, "%s%s (%s)", bad > 0 ? ", " : "", name, reasons) < 0) {
                item = NULL;
                return;
        }
        m = utf8_prefix(item, strlen(item), size - 1 - *len);
        memcpy(text + *len, item, m);
        *len += m;
        text[*len] = 0;
}

/* --all --check: the first line is the verdict over all instances, naming those not OK. */
static HealthLevel print_all_verdict(const InstanceStatus *v, size_t n) {
        char reasons[REASONS_MAX], text[ALL_SUMMARY_MAX] = "";
        HealthLevel worst = HEALTH_OK, level;
        size_t len = 0, bad = 0;

        for (size_t i = 0; i < n; i++) {
                level = instance_health(&v[i], reasons, sizeof(reasons));
                worst = level > worst ? level : worst;
                if (level != HEALTH_OK)
                        append_instance(text, sizeof(text), &len, bad++, v[i].name, reasons);
        }
        if (bad == 0)
                printf("NIMBUS-SYNC OK - %zu %s OK\n", n, n == 1 ? "instance" : "instances");
        else
                printf("NIMBUS-SYNC %s - %zu of %zu %s %s attention: %s\n", health_level_name(worst), bad, n,
                       n == 1 ? "instance" : "instances", bad == 1 ? "needs" : "need", text);
        return worst;
}

/* No instance to report on is an error, and under --check a critical state. */
static int status_all_failed(const Cli *cli, const char *dir, int k) {
        char why[128];

        if (k == -E2BIG)
                snprintf(why, sizeof(why), "more than %d instance configs", INSTANCES_MAX);
        else
                snprintf(why, sizeof(why), "no instance config (config.yaml, NAME.yaml): %s", strerror(-k));
        if (!cli->check) {
                fprintf(stderr, "%s: error: %s\n", dir, why);
                return EXIT_ERROR;
        }
        printf("NIMBUS-SYNC CRITICAL - %s: %s\n", dir, why);
        return HEALTH_CRITICAL;
}

static int status_all(Cli *cli) {
        _cleanup_free_ char *path = strdup(cli->config_path);
        const char *dir = path ? dirname(path) : cli->config_path;
        InstanceStatus *v = NULL;
        Instance *found = NULL;
        size_t n = 0;
        int k, r;

        k = path ? instances_find(dir, &found, &n) : -ENOMEM;
        if (k >= 0 && n == 0)
                k = -ENOENT;
        if (k >= 0 && !(v = calloc(n, sizeof(*v))))
                k = -ENOMEM;
        if (k < 0) {
                instances_free(found, n);
                return status_all_failed(cli, dir, k);
        }
        for (size_t i = 0; i < n; i++) {
                v[i] = (InstanceStatus) { .name = found[i].name, .config_path = found[i].config_path };
                instance_load(&v[i]);
        }
        find_shared_state(v, n);
        r = cli->check ? (int) print_all_verdict(v, n) : EXIT_OK;
        print_instance_table(v, n);
        for (size_t i = 0; i < n; i++)
                instance_status_clear(&v[i]);
        free(v);
        instances_free(found, n);
        return r;
}

int cmd_status(Cli *cli) {
        Config *c = NULL;
        Store *st = NULL;
        StoreUser *u = NULL;
        Summary s = { 0 };
        size_t n = 0;
        int k;

        if (cli->json && (cli->all || cli->check)) {
                fprintf(stderr, "nimbus-sync: status --json does not go with --all or --check\n");
                return EXIT_ERROR;
        }
        if (cli->all)
                return status_all(cli);
        if (cli->check)
                return status_check(cli);
        if (cli_load_config(cli, &c) < 0)
                return EXIT_ERROR;
        k = store_open(c->state_dir, true, &st);
        if (k == -ENOENT) {
                printf(cli->json ? "{\"users\": {\"known\": 0}, \"last_run\": null}\n"
                                 : "No state yet: nimbus-sync has not run (state_dir %s).\n", c->state_dir);
                config_free(c);
                return EXIT_OK;
        }
        if (k >= 0)
                k = store_load_users(st, &u, &n);
        if (k >= 0)
                k = summarize(st, c, u, n, &s);
        if (k >= 0)
                summarize_roster(c, u, n, st, &s);
        if (k < 0)
                fprintf(stderr, "%s: error: cannot read the state store: %s\n", c->state_dir, strerror(-k));
        else if (cli->json)
                print_status_json(c, &s, u, n);
        else
                print_status_human(c, &s, u, n);
        summary_clear(&s);
        store_users_free(u, n);
        store_close(st);
        config_free(c);
        return k < 0 ? EXIT_ERROR : EXIT_OK;
}
