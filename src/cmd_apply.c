/* cmd_apply.c: one reconcile pass: roster → plan → jobs through the tenant, until nothing
 * actionable is left. SIGINT and SIGTERM stop it cleanly: calls in flight keep their recorded
 * intent, which the next run settles. It holds state_dir's lock while it runs; beside a running
 * daemon, which holds it, `apply --user` hands its user to the daemon (handoff.h) and a plain
 * `apply` says what to do instead. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "desired.h"
#include "handoff.h"
#include "reconcile.h"
#include "report.h"
#include "statelock.h"
#include "util.h"

#define APPLY_MAX_WAIT (60 * USEC_PER_SEC) /* retries due further away end the run: exit 2 */
#define PROGRESS_MS 10000                   /* a quiet apply says what it waits for this often */
#define LINE_MS 500                         /* the progress line on a terminal: at most this often */

typedef struct Apply {
        Cli *cli;
        uv_loop_t loop;
        uv_signal_t sigint, sigterm;
        uv_timer_t progress;
        uv_timer_t tick;          /* the progress in the store, and the line on a terminal */
        Report *report;
        SourceSet *sources;       /* each Entra group as recorded, for the metrics */
        bool terminal;            /* stderr is a terminal: a progress line, rewritten in place */
        bool line_shown;          /* it stands there now (log.c erases it before a log line) */
        char line[160];           /* as last drawn */
        StateLock *lock;
        StateLockHolder holder;   /* who has the lock, when we could not take it */
        Tenant *tenant;
        Roster *roster;
        Plan *plan;
        Runner *runner;
        StoreRun run;
        int result;
        bool interrupted;
        bool signals_ready;
        size_t stale;      /* Entra groups whose last complete list stood in for a failed read */
        Guid user;         /* --user */
} Apply;

/* The line ends where a log line or the end of the run takes its place. */
static void erase_line(Apply *a) {
        if (a->line_shown)
                fputs("\r\033[K", stderr);
        a->line_shown = false;
}

static void apply_shutdown(Apply *a) {
        if (a->signals_ready) {
                uv_close((uv_handle_t *) &a->sigint, NULL);
                uv_close((uv_handle_t *) &a->sigterm, NULL);
                uv_close((uv_handle_t *) &a->progress, NULL);
                uv_close((uv_handle_t *) &a->tick, NULL);
                a->signals_ready = false;
        }
        erase_line(a);
        a->cli->log.line_shown = NULL;
        report_detach(a->report);
        tenant_close(a->tenant);
        a->tenant = NULL;
        runner_free(a->runner);
        a->runner = NULL;
}

static void on_signal(uv_signal_t *s, int signum) {
        Apply *a = s->data;

        if (a->interrupted)     /* a second signal: already stopping */
                return;
        log_msg(&a->cli->log, LOG_NOTICE, "received %s, stopping", strsignal(signum));
        a->interrupted = true;
        runner_stop(a->runner);
        /* Recorded now, while the store is open: the run ends interrupted (exit 1). */
        reconcile_run_end(a->tenant, a->plan, runner_stats(a->runner), EXIT_ERROR, &a->run);
        report_run_end(a->report, a->runner, EXIT_ERROR);
        report_detach(a->report);
        tenant_close(a->tenant);   /* in-flight calls end as cancelled; the runner then finishes */
        a->tenant = NULL;
}

/* Every few seconds of a long run: what it waits for (the rate window, a retry), never silence. */
static void on_progress(uv_timer_t *timer) {
        Apply *a = timer->data;
        const Runner *r = a->runner;
        uint64_t retry, now = now_usec();
        char next[64] = "";
        unsigned used = 0;

        if (!r || !a->tenant)
                return;
        (void) tenant_rate_used(a->tenant, &used);
        retry = runner_next_retry(r);
        if (retry > now)
                snprintf(next, sizeof(next), ", the next in %.0f s",
                         (double) (retry - now) / USEC_PER_SEC);
        log_msg(&a->cli->log, LOG_NOTICE, "waiting: %zu done, %zu queued for the rate window "
                "(%u/%u used), %zu waiting to retry%s", runner_count(r, JOB_DONE),
                runner_count(r, JOB_QUEUED), used,
                a->tenant->config->rate_operations, runner_count(r, JOB_RETRY_WAIT), next);
}

/* On a terminal, one line rewritten in place (not on a pipe: a log file wants no \r); in the
 * store, every few seconds, for `status`. */
static void on_tick(uv_timer_t *timer) {
        Apply *a = timer->data;
        char line[sizeof(a->line)], done[96];
        unsigned used = 0;

        if (!a->runner || !a->tenant)
                return;
        report_run_tick(a->report, a->runner);
        if (!a->terminal)
                return;
        (void) tenant_rate_used(a->tenant, &used);
        progress_line(report_progress(a->report), done, sizeof(done));
        snprintf(line, sizeof(line), "apply: %s; rate %u/%u", done, used, a->tenant->config->rate_operations);
        if (a->line_shown && streq(line, a->line))
                return;
        snprintf(a->line, sizeof(a->line), "%s", line);
        fprintf(stderr, "\r\033[K%s", a->line);
        fflush(stderr);
        a->line_shown = true;
}

static void on_run_done(void *userdata, Runner *r) {
        Apply *a = userdata;
        const RunnerStats *st = runner_stats(r);

        erase_line(a);
        a->result = reconcile_exit_code(a->plan, st, a->interrupted);
        if (a->result == EXIT_OK && a->stale > 0)   /* converged to a list that may be out of date */
                a->result = EXIT_PENDING;
        if (a->tenant) {
                reconcile_run_end(a->tenant, a->plan, st, a->result, &a->run);
                report_run_end(a->report, r, a->result);
        }
        apply_shutdown(a);
}

/* One writer per tenant. -EWOULDBLOCK: someone else has it (a->holder says who). */
static int apply_lock(Apply *a, const Config *c) {
        int k = statelock_take(c->state_dir, "apply", &a->lock, &a->holder);

        if (k < 0 && k != -EWOULDBLOCK)
                log_msg(&a->cli->log, LOG_ERR, "%s: cannot take the state lock: %s", c->state_dir,
                        strerror(-k));
        return k;
}

/* Someone else has the lock: provision through the daemon (--user), or say what to do instead. */
static int apply_beside(Apply *a, const Config *c) {
        char who[64];

        if (streq(a->holder.command, "daemon") && a->cli->user)
                return handoff_apply_user(a->cli, c, &a->user, a->holder.pid);
        if (streq(a->holder.command, "daemon"))
                log_msg(&a->cli->log, LOG_ERR, "the daemon is running (pid %ld) and applies the roster "
                        "itself; see `nimbus-sync status`; use `nimbus-sync apply --user ID` to "
                        "provision one user now", a->holder.pid);
        else
                log_msg(&a->cli->log, LOG_ERR, "%s is working on %s: one process at a time may change "
                        "a tenant; try again when it has finished",
                        statelock_describe(&a->holder, who, sizeof who), c->state_dir);
        return EXIT_ERROR;
}

/* The groups' state for metrics_file, as desired_add_sources() has just recorded it; without
 * metrics_file, nothing is loaded. */
static void apply_report_sources(Apply *a) {
        const Config *c = a->tenant->config;

        if (!c->metrics_file || c->n_sources == 0)
                return;
        if (source_set_new(c, &a->sources) < 0 || source_set_load(a->sources, a->tenant->store) < 0)
                a->sources = source_set_free(a->sources);
        report_sources(a->report, a->sources);
}

/* -EWOULDBLOCK: not ours to run; *ret_result is apply_beside()'s exit status. */
static int apply_prepare(Apply *a, int *ret_result) {
        Config *c = NULL;
        Diag d = DIAG_INIT;
        int k;

        if (cli_load_config(a->cli, &c) < 0)
                return -EINVAL;
        /* It changes Nimbus: the journal keeps its audit trail too (nimbus-sync(8), LOGS AND AUDIT). */
        log_tee_journal(&a->cli->log, c->log_target);
        k = cli_load_roster(a->cli, c, &a->roster);
        if (k >= 0)
                k = apply_lock(a, c);
        if (k == -EWOULDBLOCK)
                *ret_result = apply_beside(a, c);
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
        if (reconcile_roster_loaded(a->tenant, a->roster) < 0)
                log_msg(&a->cli->log, LOG_WARNING, "which roster files changed since the last load "
                        "is not known: the state store failed");
        k = report_attach(a->report, a->tenant);
        if (k >= 0)
                k = desired_add_sources(a->cli, a->tenant->config, a->tenant->store, &a->roster, &a->stale);
        if (k < 0)
                return k;
        report_roster(a->report, a->roster, a->roster);
        apply_report_sources(a);
        k = reconcile_plan(a->tenant, a->roster, &a->plan);
        if (k >= 0 && a->cli->user)
                k = plan_only(a->plan, &a->user);
        if (k < 0)
                log_msg(&a->cli->log, LOG_ERR, "cannot plan: %s", strerror(-k));
        else if (a->cli->user && a->plan->n == 0)
                log_msg(&a->cli->log, LOG_NOTICE, "%s: nothing to do (in sync with the roster, or "
                        "waiting for its retry time: see `nimbus-sync status`)", a->cli->user);
        return k;
}

static int apply_start(Apply *a) {
        int k;

        k = reconcile_run_begin(a->tenant, a->plan, a->roster, &a->run);
        if (k < 0)
                return k;
        reconcile_log_notes(a->tenant, a->plan, a->run.run_id);
        k = runner_new(a->tenant, a->plan, a->roster, a->run.run_id, &a->runner);
        if (k < 0)
                return k;
        runner_set_max_wait(a->runner, APPLY_MAX_WAIT);
        if (uv_signal_init(&a->loop, &a->sigint) < 0 || uv_signal_init(&a->loop, &a->sigterm) < 0 ||
            uv_timer_init(&a->loop, &a->progress) < 0 || uv_timer_init(&a->loop, &a->tick) < 0)
                return -EIO;
        a->signals_ready = true;
        a->sigint.data = a->sigterm.data = a->progress.data = a->tick.data = a;
        report_run_start(a->report, a->plan, a->run.run_id, a->run.started_usec);
        a->terminal = isatty(STDERR_FILENO) && !a->cli->log.journal;
        if (a->terminal)
                a->cli->log.line_shown = &a->line_shown;
        (void) uv_timer_start(&a->tick, on_tick, a->terminal ? LINE_MS : PROGRESS_RECORD_USEC / USEC_PER_MSEC,
                              a->terminal ? LINE_MS : PROGRESS_RECORD_USEC / USEC_PER_MSEC);
        (void) uv_timer_start(&a->progress, on_progress, PROGRESS_MS, PROGRESS_MS);
        (void) uv_signal_start(&a->sigint, on_signal, SIGINT);
        (void) uv_signal_start(&a->sigterm, on_signal, SIGTERM);
        return runner_start(a->runner, on_run_done, a);
}

int cmd_apply(Cli *cli) {
        Apply a = { .cli = cli, .result = EXIT_ERROR };
        int k;

        if (cli->user && guid_parse(cli->user, strlen(cli->user), &a.user) < 0) {
                fprintf(stderr, "error: --user \"%s\" is not an O365 ID (a GUID)\n", cli->user);
                return EXIT_ERROR;
        }
        if (uv_loop_init(&a.loop) < 0)
                return EXIT_ERROR;
        k = report_new(&a.loop, cli->config_path, &cli->log, false, &a.report);
        if (k >= 0)
                k = apply_prepare(&a, &a.result);
        if (k >= 0)
                k = apply_start(&a);
        if (k < 0) {
                apply_shutdown(&a);
                a.result = k == -EWOULDBLOCK ? a.result : EXIT_ERROR;
        }
        (void) uv_run(&a.loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&a.loop);
        statelock_release(a.lock);
        report_free(a.report);
        source_set_free(a.sources);
        plan_free(a.plan);
        roster_free(a.roster);
        return a.result;
}
