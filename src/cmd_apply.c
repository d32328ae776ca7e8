/* cmd_apply.c: one reconcile pass: roster → plan → jobs through the tenant, until nothing
 * actionable is left. SIGINT and SIGTERM stop it cleanly: calls in flight keep their recorded
 * intent, which the next run settles. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "cli.h"
#include "planner.h"
#include "runner.h"
#include "tenant.h"
#include "util.h"

typedef struct Apply {
        Cli *cli;
        uv_loop_t loop;
        uv_signal_t sigint, sigterm;
        Tenant *tenant;
        Roster *roster;
        Plan *plan;
        Runner *runner;
        StoreRun run;
        bool interrupted;
        bool signals_ready;
} Apply;

static void make_run_id(char buf[33]) {
        snprintf(buf, 33, "%016" PRIx64 "%016" PRIx64, backoff_random(), backoff_random());
}

static void apply_shutdown(Apply *a) {
        if (a->signals_ready) {
                uv_close((uv_handle_t *) &a->sigint, NULL);
                uv_close((uv_handle_t *) &a->sigterm, NULL);
                a->signals_ready = false;
        }
        tenant_close(a->tenant);
        a->tenant = NULL;
        runner_free(a->runner);
        a->runner = NULL;
}

static void on_signal(uv_signal_t *s, int signum) {
        Apply *a = s->data;

        log_msg(&a->cli->log, LOG_NOTICE, "received %s, stopping", strsignal(signum));
        a->interrupted = true;
        runner_stop(a->runner);
        tenant_close(a->tenant);   /* in-flight calls end as cancelled; the runner then finishes */
        a->tenant = NULL;
}

static int exit_code(const Apply *a, const RunnerStats *st) {
        const Plan *p = a->plan;

        if (st->auth_failed || a->interrupted)
                return EXIT_ERROR;
        if (st->failed + st->quarantined + st->held + st->blocked + st->paused + st->cancelled > 0 ||
            p->n_failed + p->n_quarantined > 0)
                return EXIT_PENDING;
        return EXIT_OK;
}

static void log_run_finished(Apply *a, const RunnerStats *st) {
        LogEvent ev = { .message_id = MID_RUN_FINISHED, .action = "run", .run_id = a->run.run_id,
                        .result = a->run.result == EXIT_OK ? "ok" : "failed" };

        log_event(&a->cli->log, LOG_NOTICE, &ev,
                  "run finished: %zu created, %zu copied, %zu adopted, %zu deleted, %zu already gone, "
                  "%zu failed, %zu quarantined, %zu held, %zu waiting",
                  st->created, st->copied, st->adopted, st->deleted, st->gone, st->failed,
                  st->quarantined, st->held, st->blocked + st->paused + st->cancelled +
                  a->plan->n_failed + a->plan->n_quarantined);
}

static void on_run_done(void *userdata, Runner *r) {
        Apply *a = userdata;
        const RunnerStats *st = runner_stats(r);

        a->run.finished_usec = now_usec();
        a->run.created = (unsigned) st->created;
        a->run.copied = (unsigned) st->copied;
        a->run.adopted = (unsigned) st->adopted;
        a->run.deleted = (unsigned) (st->deleted + st->gone);
        a->run.failed = (unsigned) (st->failed + st->quarantined);
        a->run.held = (unsigned) st->held;
        a->run.result = exit_code(a, st);
        if (a->tenant)
                (void) store_run_finish(a->tenant->store, &a->run);
        log_run_finished(a, st);
        apply_shutdown(a);
}

/* Held deletes are remembered (mark-and-sweep), so approve-deletes can release exactly them. */
static int sync_holds(Apply *a) {
        const Plan *p = a->plan;
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
        return store_sync_holds(a->tenant->store, held, nh, keep, nk);
}

static void log_plan_notes(Apply *a) {
        const Plan *p = a->plan;
        const Config *c = a->tenant->config;
        LogEvent ev = { .message_id = MID_DELETES_HELD, .action = "delete", .result = "held",
                        .run_id = a->run.run_id };

        if (p->n_held > 0)
                log_event(&a->cli->log, LOG_WARNING, &ev,
                          "%zu deletes held: more than deletes.max_per_run (%u) or deletes.max_percent "
                          "(%u%%) of %zu managed users; review with `nimbus-sync plan`, then run "
                          "`nimbus-sync approve-deletes`", p->n_held, c->deletes.max_per_run,
                          c->deletes.max_percent, p->n_managed);
        if (p->guard == GUARD_EMPTY_ROSTER && p->n_delete_skipped > 0) {
                ev.result = "skipped";
                log_event(&a->cli->log, LOG_WARNING, &ev, "the roster is empty: %zu deletes skipped "
                          "(deletes.allow_empty is false)", p->n_delete_skipped);
        }
        for (size_t i = 0; i < p->n; i++) {
                const Action *d = &p->actions[i];
                char id[GUID_STRING_MAX], want[GUID_STRING_MAX], is[GUID_STRING_MAX];
                LogEvent dev = { .message_id = MID_DRIFT, .action = "verify", .result = "skipped",
                                 .o365_id = &d->id, .ou = &d->target, .run_id = a->run.run_id };

                if (d->kind == ACTION_DRIFT)
                        log_event(&a->cli->log, LOG_WARNING, &dev, "drift: %s is in OU %s, the roster "
                                  "says %s; no API call can move it, move it in the Nimbus portal",
                                  guid_format(&d->id, id), guid_format(&d->actual, is),
                                  guid_format(&d->target, want));
        }
}

static int apply_prepare(Apply *a) {
        Config *c = NULL;
        StoreUser *users = NULL;
        Diag d = DIAG_INIT;
        size_t n = 0;
        int k;

        if (cli_load_config(a->cli, &c) < 0)
                return -EINVAL;
        k = cli_load_roster(a->cli, c, &a->roster);
        if (k < 0) {
                config_free(c);
                return k;
        }
        k = tenant_new(&a->loop, c, &a->cli->log, &a->tenant, &d);   /* takes c */
        log_diag(&a->cli->log, &d, NULL);
        diag_clear(&d);
        if (k < 0)
                return k;
        a->tenant->give_up_on_auth = true;
        k = store_load_users(a->tenant->store, &users, &n);
        if (k >= 0)
                k = plan_build(a->roster, users, n, a->tenant->config, now_usec(), &a->plan);
        store_users_free(users, n);
        if (k >= 0)
                k = sync_holds(a);
        if (k < 0)
                log_msg(&a->cli->log, LOG_ERR, "cannot plan: %s", strerror(-k));
        return k;
}

static int apply_start(Apply *a) {
        const Plan *p = a->plan;
        LogEvent ev = { .message_id = MID_RUN_STARTED, .action = "run", .run_id = a->run.run_id };
        int k;

        make_run_id(a->run.run_id);
        a->run.started_usec = now_usec();
        k = store_run_begin(a->tenant->store, &a->run);
        if (k < 0)
                return k;
        log_event(&a->cli->log, LOG_NOTICE, &ev, "run started: %zu to create, %zu to copy, "
                  "%zu to delete, %zu held, %zu users in the roster", p->n_create, p->n_copy,
                  p->n_delete, p->n_held, a->roster->n);
        log_plan_notes(a);
        k = runner_new(a->tenant, p, a->roster, a->run.run_id, &a->runner);
        if (k < 0)
                return k;
        if (uv_signal_init(&a->loop, &a->sigint) < 0 || uv_signal_init(&a->loop, &a->sigterm) < 0)
                return -EIO;
        a->signals_ready = true;
        a->sigint.data = a->sigterm.data = a;
        (void) uv_signal_start(&a->sigint, on_signal, SIGINT);
        (void) uv_signal_start(&a->sigterm, on_signal, SIGTERM);
        return runner_start(a->runner, on_run_done, a);
}

int cmd_apply(Cli *cli) {
        Apply a = { .cli = cli };
        int k;

        if (uv_loop_init(&a.loop) < 0)
                return EXIT_ERROR;
        k = apply_prepare(&a);
        if (k >= 0)
                k = apply_start(&a);
        if (k < 0) {
                if (a.runner || a.tenant)
                        apply_shutdown(&a);
                a.run.result = EXIT_ERROR;
        }
        (void) uv_run(&a.loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&a.loop);
        plan_free(a.plan);
        roster_free(a.roster);
        return a.run.result;
}
