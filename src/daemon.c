/* daemon.c: `nimbus-sync daemon`, the service. It keeps one tenant in sync continuously:
 *  - it holds state_dir's lock: one writer per tenant;
 *  - the roster folder is watched (dirwatch); a changed, settled, valid roster replaces the one
 *    in force, an invalid one is logged and the last valid one stays;
 *  - every change (roster, approve-deletes seen in the store, a retry time coming due, SIGHUP)
 *    asks for a new run; a run in progress is stopped first (its in-flight answers are still
 *    recorded) and the next plan starts from what the store then knows;
 *  - `apply --user ID` run beside it hands the user over through the store (handoff.h): the next
 *    run is for that user alone, at once, and its outcome goes back to the store;
 *  - after every run it plans once more, so nothing waits for a timer that need not;
 *  - a failed store operation is retried with backoff, and one the store cannot recover from
 *    ends the daemon with exit 1, so that systemd restarts it;
 *  - systemd hears READY/RELOADING/STOPPING, a current STATUS= line, and watchdog keep-alives,
 *    sent only while the store answers and no store failure is outstanding.
 * Idle, it makes no API call and wakes only for the store poll and the rescan. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "cli.h"
#include "dirwatch.h"
#include "handoff.h"
#include "notify.h"
#include "reconcile.h"
#include "report.h"
#include "source_poll.h"
#include "statelock.h"
#include "verify.h"
#include "util.h"

/* Approvals, hand-offs (should the wake-up signal not come) and STATUS= are this fresh. */
#define POLL_INTERVAL_MS 2000
/* Test only: raise this signal (HUP, TERM or INT) at the very start, before the config is read,
 * to show that a signal then waits for the handlers instead of killing the daemon. */
#define EARLY_SIGNAL_ENV "NIMBUS_SYNC_TEST_EARLY_SIGNAL"
/* Test only: metrics_file every this many milliseconds instead of every minute. */
#define METRICS_INTERVAL_ENV "NIMBUS_SYNC_TEST_METRICS_MS"

/* The daemon's own store operations, by what retries them; see store_failed(). */
typedef enum StoreUse {
        USE_RUN,     /* planning and starting runs, recording hand-off outcomes: the due timer */
        USE_POLL,    /* the health check and data_version poll: the next poll */
        USE_SWEEP,   /* the verify sweep's list of users: the sweep timer */
        _USE_MAX,
} StoreUse;

typedef struct Daemon {
        Cli *cli;
        uv_loop_t loop;
        StateLock *lock;         /* on the state_dir in use */
        StateLock *next_lock;    /* on a reloaded config's other state_dir */
        Tenant *tenant;
        Roster *roster;          /* the desired state in force: the last valid one */
        Roster *next_roster;     /* a newer valid one, waiting for the current run to stop */
        Config *next_config;     /* a reloaded config, waiting for the current run to stop */
        DirWatch *watch;
        Runner *runner;          /* the run in progress, or NULL */
        Verify *verify;          /* the verify sweep in progress, or NULL */
        Plan *plan;              /* its plan */
        StoreRun run;
        StoreRequest request;    /* the hand-off the current or next run is for; id 0 = none */
        bool rerun;              /* the run was stopped to plan again: its hand-off stays open */
        bool stopping;
        bool fatal;              /* the store cannot recover: stopping from the loop */
        int exit_code;
        unsigned store_failures[_USE_MAX]; /* consecutive, by use */
        uint64_t data_version;   /* of the store, to notice other processes' writes */
        uint64_t approvals;      /* STORE_META_APPROVALS last seen */
        uint64_t next_due;       /* earliest retry time of a skipped user, 0 = none */
        size_t last_held;        /* held deletes in the last plan */
        size_t last_notes[3];    /* held, empty-roster skipped and drift counts last logged */
        char held_file[256];     /* the roster file last found held open by its writer */
        char last_result[64];
        uv_signal_t sigterm, sigint, sighup, sigwake;
        uv_timer_t due, poll, watchdog, sweep, metrics;
        Report *report;          /* progress and roster verdict in the store, metrics_file */
        /* Directory sources (sources:): the desired state is files ∪ groups. */
        Roster *files;           /* the last valid roster files, while sources are configured */
        SourceSet *sources;      /* each group's last complete list, or NULL without sources: */
        SourcePoller *poller;    /* reads every group each source_interval */
} Daemon;

static void request_run(Daemon *d);
static void arm_sweep(Daemon *d);
static void daemon_stop(Daemon *d);
static void on_run_done(void *userdata, Runner *r);

/* ---- store failures ----------------------------------------------------------------------------- */

static void on_fatal(uv_timer_t *t) {
        daemon_stop(t->data);
}

/* A store operation failed. Returns when to try again, or 0 when the store cannot recover: then
 * the daemon stops with exit 1 (from the loop, not from inside its caller) and systemd restarts
 * it. Until a retry succeeds, the watchdog gets no keep-alive, so a daemon that cannot act does
 * not look healthy. */
static uint64_t store_failed(Daemon *d, StoreUse use, int error, const char *what) {
        const Config *c = d->tenant->config;
        unsigned n = ++d->store_failures[use];
        uint64_t delay;

        if (d->fatal)
                return 0;
        if (store_error_is_fatal(error, n)) {
                log_msg(&d->cli->log, LOG_CRIT, "%s: %s; the state store cannot recover: exiting, "
                        "so that the service is restarted", what, strerror(-error));
                d->exit_code = EXIT_ERROR;
                d->fatal = true;
                (void) uv_timer_start(&d->poll, on_fatal, 0, 0);
                return 0;
        }
        delay = backoff_delay(c->retry.base_usec, c->retry.cap_usec, n, backoff_random());
        if (delay < c->retry.base_usec)
                delay = c->retry.base_usec;
        if (use == USE_POLL)
                delay = POLL_INTERVAL_MS * USEC_PER_MSEC;
        if (use != USE_POLL || (n & (n - 1)) == 0)   /* a poll failing on: 1st, 2nd, 4th, 8th... */
                log_msg(&d->cli->log, LOG_ERR, "%s: %s; trying again in %.1f s", what, strerror(-error),
                        (double) delay / USEC_PER_SEC);
        return delay;
}

static void store_answered(Daemon *d, StoreUse use) {
        d->store_failures[use] = 0;
}

static bool store_healthy(const Daemon *d) {
        for (size_t i = 0; i < _USE_MAX; i++)
                if (d->store_failures[i] > 0)
                        return false;
        return true;
}

/* ---- STATUS= ---------------------------------------------------------------------------------- */

static void update_status(Daemon *d) {
        Tenant *t = d->tenant;
        unsigned used = 0;

        if (!t)
                return;
        (void) tenant_rate_used(t, &used);
        if (d->runner) {
                size_t pending = runner_count(d->runner, JOB_QUEUED) + runner_count(d->runner, JOB_IN_FLIGHT) +
                                 runner_count(d->runner, JOB_RETRY_WAIT) + runner_count(d->runner, JOB_WAIT_DEP);
                double eta = (double) pending * (double) t->config->rate_window_usec /
                             (double) t->config->rate_operations / USEC_PER_SEC;

                notify_status("syncing: %zu pending (%zu create, %zu copy, %zu delete planned), %zu done, "
                              "%zu failed, %zu held; rate %u/%u; ETA %.0f s", pending, d->plan->n_create,
                              d->plan->n_copy, d->plan->n_delete, runner_count(d->runner, JOB_DONE),
                              runner_count(d->runner, JOB_FAILED) + runner_count(d->runner, JOB_QUARANTINED),
                              d->plan->n_held, used, t->config->rate_operations, eta);
        } else {
                const Progress *p = report_progress(d->report);

                notify_status("idle: %zu users in the roster, %zu held, %zu failed, %zu quarantined, auth %s; "
                              "rate %u/%u; last run %s", d->roster ? d->roster->n : 0, d->last_held, p->failed,
                              p->quarantined, t->auth == AUTH_FAILED ? "FAILED" : "ok", used,
                              t->config->rate_operations, d->last_result[0] ? d->last_result : "none");
        }
}

/* ---- runs --------------------------------------------------------------------------------------- */

static void on_due(uv_timer_t *t) {
        request_run(t->data);
}

/* Wake when the earliest skipped user (failed, quarantined, out of licenses) comes due. */
static void arm_due(Daemon *d) {
        uint64_t now = now_usec();

        if (d->next_due == 0) {
                (void) uv_timer_stop(&d->due);
                return;
        }
        (void) uv_timer_start(&d->due, on_due,
                              d->next_due > now ? (d->next_due - now) / USEC_PER_MSEC + 1 : 0, 0);
}

static void remember_result(Daemon *d, int exit_code) {
        char when[32];
        time_t t = time(NULL);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(when, sizeof(when), "%H:%M:%S", &tm) == 0)
                snprintf(when, sizeof(when), "?");
        snprintf(d->last_result, sizeof(d->last_result), "%s %s", when,
                 exit_code == 0 ? "converged" : "with users remaining");
}

static void apply_pending_config(Daemon *d);
static int start_run(Daemon *d);

/* ---- hand-offs from `apply --user` --------------------------------------------------------------- */

/* The oldest request the daemon has taken and not finished, if any, becomes the next run's. */
static int next_request(Daemon *d) {
        char id[GUID_STRING_MAX];
        StoreRequest q;
        int k = store_requests_accept(d->tenant->store, NULL);

        if (k >= 0)
                k = store_request_next(d->tenant->store, &q);
        if (k == -ENOENT)
                return 0;
        if (k < 0)
                return k;
        d->request = q;
        log_msg(d->tenant->log, LOG_NOTICE, "apply --user %s: provisioning it now, before other work",
                guid_format(&q.user, id));
        return 0;
}

static int finish_request(Daemon *d, const Plan *p, const RunnerStats *st, int code) {
        int k;

        d->request.state = REQUEST_DONE;
        d->request.result = code;
        handoff_outcome(p, st, d->request.message, sizeof(d->request.message));
        k = store_request_update(d->tenant->store, &d->request);
        /* Failed, it stays open: the next plan takes it up again and records it anew. */
        d->request = (StoreRequest) { 0 };
        return k == -ENOENT ? 0 : k;   /* withdrawn meanwhile: nobody waits for it */
}

/* The daemon leaves the store in the middle of one: its follower hears why at once. */
static void abandon_request(Daemon *d, const char *why) {
        if (!d->request.id || !d->tenant)
                return;
        d->request.state = REQUEST_DONE;
        d->request.result = EXIT_ERROR;
        snprintf(d->request.message, sizeof(d->request.message), "not done: %s", why);
        (void) store_request_update(d->tenant->store, &d->request);
        d->request = (StoreRequest) { 0 };
}

/* ---- planning and running ------------------------------------------------------------------------ */

/* A run could not start: plan again after a backoff (the due timer), unless the daemon ends. */
static int run_failed(Daemon *d, int k, const char *what) {
        uint64_t delay = store_failed(d, USE_RUN, k, what);

        if (delay > 0) {
                d->next_due = now_usec() + delay;
                arm_due(d);
        }
        return k;
}

/* A plan without jobs that leaves nothing over: Nimbus matches the roster (and every Entra group
 * was read now, not stood in for by its last complete list). */
static bool plan_converged(const Daemon *d, const Plan *p) {
        RunnerStats none = { 0 };

        return p->n_held == 0 && reconcile_exit_code(p, &none, false) == 0 &&
               (!d->sources || source_set_current(d->sources));
}

/* The next run's plan: for the oldest open hand-off, only its user's actions; else everything. */
static int plan_next(Daemon *d, Plan **ret) {
        Plan *p = NULL;
        int k = 0;

        if (!d->request.id)
                k = next_request(d);
        if (k >= 0)
                k = reconcile_plan(d->tenant, d->roster, &p);
        if (k >= 0) {
                d->next_due = p->next_due_usec;
                arm_due(d);
        }
        if (k >= 0 && d->request.id)
                k = plan_only(p, &d->request.user);
        if (k < 0) {
                plan_free(p);
                return k;
        }
        *ret = p;
        return 0;
}

/* A plan's warnings (held deletes, an empty roster, drift) are logged when they change, whether
 * or not the plan has jobs: the daemon plans again after every run and every wake-up. */
static void log_notes(Daemon *d, const Plan *p, const char *run_id) {
        size_t notes[3] = { p->n_held, p->n_delete_skipped, p->n_drift };

        if (memcmp(notes, d->last_notes, sizeof(notes)) != 0)
                reconcile_log_notes(d->tenant, p, run_id);
        memcpy(d->last_notes, notes, sizeof(notes));
        d->last_held = p->n_held;
}

/* A plan without jobs: stay idle, no API call. A hand-off is answered at once, and the next one
 * (or the whole roster) planned. */
static int run_nothing(Daemon *d, Plan *p) {
        bool handoff = d->request.id != 0;
        RunnerStats none = { 0 };
        int k = 0;

        if (handoff)
                k = finish_request(d, p, &none, reconcile_exit_code(p, &none, false));
        else {
                log_notes(d, p, NULL);
                report_plan(d->report, p, plan_converged(d, p));
        }
        plan_free(p);
        if (k < 0)
                return run_failed(d, k, "cannot record the outcome of apply --user");
        store_answered(d, USE_RUN);
        return handoff ? start_run(d) : 0;
}

static int start_run(Daemon *d) {
        Plan *p = NULL;
        int k;

        /* A reload plans from inside daemon_open(): its caller then finds the run started. */
        if (d->stopping || d->runner || !d->roster || !d->tenant)
                return 0;
        k = plan_next(d, &p);
        if (k < 0)
                return run_failed(d, k, "cannot plan");
        if (reconcile_jobs(p) == 0)
                return run_nothing(d, p);
        d->plan = p;
        k = reconcile_run_begin(d->tenant, p, d->roster, &d->run);
        if (k >= 0) {
                if (!d->request.id)
                        log_notes(d, p, d->run.run_id);
                k = runner_new(d->tenant, p, d->roster, d->run.run_id, &d->runner);
        }
        if (k >= 0 && d->request.id)   /* waits as `apply` would: a retry much later ends it */
                runner_set_max_wait(d->runner, HANDOFF_MAX_WAIT_USEC);
        if (k >= 0)
                report_run_start(d->report, p, d->run.run_id, d->run.started_usec);
        if (k >= 0)
                k = runner_start(d->runner, on_run_done, d);
        if (k < 0) {
                d->plan = plan_free(d->plan);
                return run_failed(d, k, "cannot start a run");
        }
        store_answered(d, USE_RUN);
        return 0;
}

/* A newer roster takes force between runs; the users that left the old one are remembered with
 * the file that last listed them, for the audit trail of their deletes. */
static void adopt_next_roster(Daemon *d) {
        int k;

        if (!d->next_roster)
                return;
        if (d->tenant && (k = reconcile_note_departures(d->tenant, d->roster, d->next_roster)) < 0)
                log_msg(d->tenant->log, LOG_WARNING, "cannot remember which roster file last listed "
                        "the users that left it: %s", strerror(-k));
        roster_free(d->roster);
        d->roster = TAKE_PTR(d->next_roster);
}

static void on_run_done(void *userdata, Runner *r) {
        Daemon *d = userdata;
        const RunnerStats *st = runner_stats(r);
        int code = reconcile_exit_code(d->plan, st, false);

        if (d->tenant) {
                reconcile_run_end(d->tenant, d->plan, st, code, &d->run);
                report_run_end(d->report, r, code);
                /* Stopped to plan again (a new roster, an approval): the hand-off goes on then. */
                if (d->request.id && !d->rerun && finish_request(d, d->plan, st, code) < 0)
                        log_msg(d->tenant->log, LOG_ERR, "cannot record the outcome of apply --user; "
                                "it is planned again");
        }
        remember_result(d, code);
        runner_free(d->runner);
        d->runner = NULL;
        d->plan = plan_free(d->plan);
        if (d->stopping)
                return;
        adopt_next_roster(d);
        apply_pending_config(d);
        d->rerun = false;
        /* Plan once more right away: what is left either runs now or sets the next wake-up. */
        (void) start_run(d);
        update_status(d);
}

/* Something changed: a run in progress stops (in-flight answers are still recorded) and the
 * next plan starts from the new facts; without a run, plan now. */
static void request_run(Daemon *d) {
        if (d->stopping)
                return;
        if (d->runner) {
                d->rerun = true;
                runner_stop(d->runner);
                return;
        }
        adopt_next_roster(d);
        apply_pending_config(d);
        (void) start_run(d);
        update_status(d);
}

/* ---- the roster --------------------------------------------------------------------------------- */

static void roster_rejected(Daemon *d, const Diag *diag) {
        _cleanup_free_ char *first = NULL;

        log_diag(d->tenant->log, diag, MID_ROSTER_ERROR);
        log_msg(d->tenant->log, LOG_ERR, "roster rejected: the last valid roster stays in force");
        if (diag_first_error(diag, &first) < 0)
                first = NULL;
        report_roster_rejected(d->report, first ? first : "the roster was rejected");
}

/* The folder changed while it was read: nothing is rejected, it is read again once settled. */
static void roster_changed_meanwhile(Daemon *d, const Diag *diag) {
        const DiagEntry *e = diag->n > 0 ? &diag->entries[0] : NULL;

        log_msg(d->tenant->log, LOG_NOTICE, "%s: %s; reading the roster folder again in %.1f s",
                e && e->file ? e->file : d->tenant->config->roster_dir, e ? e->msg : "changed while it was read",
                (double) d->tenant->config->settle_time_usec / USEC_PER_SEC);
}

static void sources_rebuild(Daemon *d);

/* A read found the roster in force unchanged: the verdict (and its time) is new all the same. */
static void report_accepted(Daemon *d) {
        const Roster *desired = d->next_roster ? d->next_roster : d->roster;

        if (desired)
                report_roster(d->report, desired, d->sources ? d->files : desired);
}

/* Said once per hold (dirwatch.h): by then the writer is more than slow. */
static void on_roster_held(void *userdata, const char *name) {
        Daemon *d = userdata;
        const Config *c = d->tenant->config;
        char path[PATH_MAX];

        if (name)
                snprintf(path, sizeof path, "%s/%s", c->roster_dir, name);
        else
                snprintf(path, sizeof path, "%s", *d->held_file ? d->held_file : c->roster_dir);
        log_msg(d->tenant->log, LOG_WARNING, "%s: changed, and still open in its writer's hands "
                "after %.0f s; the roster is read once the writer closes it", path,
                (double) (DIRWATCH_HELD_SETTLES * c->settle_time_usec) / USEC_PER_SEC);
}

/* Read the roster folder (a DirWatchFn); *fingerprint: of the folder as read. */
static int on_roster_changed(void *userdata, uint64_t *fingerprint) {
        Daemon *d = userdata;
        const Roster *current = d->sources ? d->files : d->next_roster ? d->next_roster : d->roster;
        Diag diag = DIAG_INIT;
        Roster *r = NULL;
        int k;

        k = roster_load_dir(d->tenant->config->roster_dir, d->tenant->config, &r, fingerprint, &diag);
        if (k == -EBUSY)        /* said once, by on_roster_held(), not at every settle time */
                snprintf(d->held_file, sizeof d->held_file, "%s",
                         diag.n > 0 && diag.entries[0].file ? diag.entries[0].file : "");
        else if (k == -EAGAIN)
                roster_changed_meanwhile(d, &diag);
        else if (k < 0)
                roster_rejected(d, &diag);
        else
                log_diag(d->tenant->log, &diag, NULL);   /* warnings */
        diag_clear(&diag);
        if (k < 0)
                return k;
        if (current && current->hash == r->hash) {   /* touched, not changed */
                roster_free(r);
                report_accepted(d);
                return 0;
        }
        if (reconcile_roster_loaded(d->tenant, r) < 0)
                log_msg(d->tenant->log, LOG_WARNING, "roster loaded: %zu users in %zu files (which files "
                        "changed is not known: the state store failed)", r->n, r->n_files);
        if (d->sources) {
                roster_free(d->files);
                d->files = r;
                sources_rebuild(d);
                return 0;
        }
        roster_free(d->next_roster);
        d->next_roster = r;
        report_roster(d->report, r, r);
        request_run(d);
        return 0;
}

/* ---- directory sources ---------------------------------------------------------------------------
 * The files and the groups change independently; each change rebuilds their union. A group never
 * read completely, or a user a group and a file give different targets, rejects the union: the
 * last valid desired state stays in force, as for a broken file. */
static void sources_rebuild(Daemon *d) {
        Diag diag = DIAG_INIT;
        Roster *r = NULL;

        if (!d->files)
                return;
        if (source_set_merge(d->sources, d->files, &r, &diag) < 0)
                roster_rejected(d, &diag);
        else {
                log_diag(d->tenant->log, &diag, NULL);   /* warnings */
                roster_free(d->next_roster);
                d->next_roster = r;
                report_roster(d->report, r, d->files);
                request_run(d);
        }
        diag_clear(&diag);
}

/* An unchanged group makes no run, and so no Nimbus call. */
static void on_sources_swept(void *userdata, size_t changed) {
        Daemon *d = userdata;

        if (changed > 0)
                sources_rebuild(d);
        update_status(d);
}

/* Before the files are first read: the groups' lists as the store has them, so the daemon is
 * ready without waiting for Graph; then a sweep right away and every source_interval. */
static int sources_open(Daemon *d) {
        const Config *c = d->tenant->config;
        Diag diag = DIAG_INIT;
        int k;

        if (c->n_sources == 0)
                return 0;
        k = source_set_new(c, &d->sources);
        if (k >= 0)
                k = source_set_load(d->sources, d->tenant->store);
        if (k >= 0)
                k = source_poller_new(&d->loop, d->sources, d->tenant->store, d->tenant->log, &d->poller, &diag);
        log_diag(d->tenant->log, &diag, NULL);
        diag_clear(&diag);
        if (k >= 0)
                k = source_poller_start(d->poller, on_sources_swept, d);
        report_sources(d->report, d->sources);
        if (k < 0)
                log_msg(d->tenant->log, LOG_ERR, "cannot read the Entra groups: %s", strerror(-k));
        return k;
}

/* Before the tenant (whose store and config the poller uses) closes. */
static void sources_close(Daemon *d) {
        report_sources(d->report, NULL);
        source_poller_close(TAKE_PTR(d->poller));
        d->sources = source_set_free(d->sources);
        d->files = roster_free(d->files);
}

/* ---- config, tenant and watcher ---------------------------------------------------------------
 * `status` shows whether a daemon runs and when it rescans: the rescan timer starts with the
 * watcher, so its epoch and our pid are all it needs. */
static void record_presence(Daemon *d) {
        char buf[32];

        snprintf(buf, sizeof(buf), "%ld", (long) getpid());
        (void) store_meta_set(d->tenant->store, "daemon_pid", buf);
        snprintf(buf, sizeof(buf), "%" PRIu64, now_usec());
        (void) store_meta_set(d->tenant->store, "scan_epoch", buf);
}

/* ----  --------------------------------------------------------------- */

/* The initial roster is read at once (not after settle_time), so READY=1 means "loaded";
 * unless a file in it is still being written, or changed while it was read: then the watcher
 * reads it once it has settled. The watcher starts from the fingerprint this read saw, so the
 * folder is read once at start-up, not twice. */
static int daemon_open(Daemon *d, Config *c) {
        Diag diag = DIAG_INIT;
        uint64_t seen = 0;
        bool read = false;
        int k;

        k = tenant_new(&d->loop, c, &d->cli->log, &d->tenant, &diag);   /* takes c */
        log_diag(&d->cli->log, &diag, NULL);
        diag_clear(&diag);
        if (k < 0)
                return k;
        c = d->tenant->config;
        k = report_attach(d->report, d->tenant);
        if (k >= 0)
                k = sources_open(d);
        if (k < 0)
                return k;
        if (dirwatch_settled(c->roster_dir, c->settle_time_usec))
                read = (k = on_roster_changed(d, &seen)) != -EAGAIN && k != -EBUSY;
        else
                log_msg(d->tenant->log, LOG_NOTICE, "%s: a roster file changed within the last "
                        "%.1f s; the roster is read once it has settled", c->roster_dir,
                        (double) c->settle_time_usec / USEC_PER_SEC);
        k = dirwatch_new(&d->loop, c->roster_dir, c->settle_time_usec, c->scan_interval_usec,
                         read ? &seen : NULL, on_roster_changed, d, &d->watch);
        if (k < 0)
                log_msg(&d->cli->log, LOG_ERR, "cannot watch %s: %s", c->roster_dir, strerror(-k));
        else
                dirwatch_on_held(d->watch, on_roster_held);
        record_presence(d);
        (void) store_data_version(d->tenant->store, &d->data_version);
        arm_sweep(d);
        report_metrics(d->report);
        return 0;
}

/* A reloaded config takes effect between runs: a new tenant (credentials, endpoints, limits,
 * store) and a new watcher; the roster is read again, since OU names may have changed. */
static void apply_pending_config(Daemon *d) {
        Config *c = TAKE_PTR(d->next_config);
        int k;

        if (!c)
                return;
        dirwatch_close(d->watch);
        d->watch = NULL;
        if (d->verify)
                verify_stop(d->verify);  /* its answers end as cancelled when the tenant closes */
        sources_close(d);
        if (d->next_lock) {              /* another state_dir: its lock was taken by on_reload() */
                abandon_request(d, "the daemon moved to another state_dir");
                statelock_release(d->lock);
                d->lock = TAKE_PTR(d->next_lock);
        }
        d->request = (StoreRequest) { 0 };   /* still open in the store: planned again */
        report_detach(d->report);
        tenant_close(TAKE_PTR(d->tenant));   /* NULL first: callbacks see no tenant */
        roster_free(d->roster);
        d->roster = NULL;
        log_init(&d->cli->log, c->log_target, c->log_level);
        k = daemon_open(d, c);
        if (k < 0)
                log_msg(&d->cli->log, LOG_CRIT, "reload: cannot open the tenant (%s); "
                        "fix the config and send SIGHUP again", strerror(-k));
        else
                log_msg(&d->cli->log, LOG_NOTICE, "config reloaded");
        notify_ready();
}

/* ---- the verify sweep -------------------------------------------------------------------------- */

/* Managed users we believe present: the ones a sweep checks. */
static int sweep_ids(Daemon *d, Guid **ret, size_t *ret_n) {
        StoreUser *u = NULL;
        Guid *ids;
        size_t n = 0, k = 0;
        int r;

        r = store_load_users(d->tenant->store, &u, &n);
        if (r < 0)
                return r;
        ids = calloc(n + 1, sizeof(Guid));
        if (!ids) {
                store_users_free(u, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                if (u[i].presence == PRESENCE_PRESENT && u[i].origin != ORIGIN_NONE)
                        ids[k++] = u[i].id;
        store_users_free(u, n);
        *ret = ids;
        *ret_n = k;
        return 0;
}

static void on_sweep_done(void *userdata, Verify *v) {
        Daemon *d = userdata;
        VerifyStats st = *verify_stats(v);   /* a copy: v is freed next */
        char when[32];

        d->verify = verify_free(v);
        if (d->stopping || !d->tenant)
                return;
        log_event(d->tenant->log, st.errors ? LOG_WARNING : LOG_INFO,
                  &(LogEvent) { .action = "verify", .result = st.errors ? "retry" : "ok" },
                  "verify sweep: %zu checked, %zu missing, %zu in another OU, %zu not answered%s%s",
                  st.checked, st.missing, st.moved, st.errors, st.errors ? "; first: " : "",
                  st.first_error);
        snprintf(when, sizeof(when), "%" PRIu64, now_usec());
        (void) store_meta_set(d->tenant->store, "verify_last", when);
        if (st.missing + st.moved > 0)
                request_run(d);
        arm_sweep(d);
}

static void on_sweep(uv_timer_t *t) {
        Daemon *d = t->data;
        Guid *ids = NULL;
        uint64_t delay;
        size_t n = 0;
        int k;

        /* A sweep in progress arms the next one when done; a reload arms it anew. */
        if (d->verify || !d->tenant)
                return;
        k = sweep_ids(d, &ids, &n);
        if (k >= 0)
                k = verify_new(d->tenant, ids, n, NULL, &d->verify);
        if (k < 0) {
                delay = store_failed(d, USE_SWEEP, k, "verify sweep");
                if (delay > 0)
                        (void) uv_timer_start(&d->sweep, on_sweep, delay / USEC_PER_MSEC + 1, 0);
                return;
        }
        store_answered(d, USE_SWEEP);
        verify_start(d->verify, on_sweep_done, d);
}

/* The next sweep is due verify.interval after the last one, across restarts. */
static void arm_sweep(Daemon *d) {
        uint64_t interval = d->tenant->config->verify_interval_usec, now = now_usec(), last = 0, at;
        _cleanup_free_ char *v = NULL;

        if (interval == 0) {
                (void) uv_timer_stop(&d->sweep);
                return;
        }
        if (store_meta_get(d->tenant->store, "verify_last", &v) >= 0 && v)
                last = strtoull(v, NULL, 10);
        at = last > 0 && last <= now ? last + interval : now + interval;
        (void) uv_timer_start(&d->sweep, on_sweep, at > now ? (at - now) / USEC_PER_MSEC + 1 : 0, 0);
}

/* ---- signals and timers ------------------------------------------------------------------------ */

static void daemon_stop(Daemon *d) {
        if (d->stopping)
                return;
        d->stopping = true;
        /* Held back from now on, not left to their default action once the handlers are gone. */
        cli_signals_block(NULL);
        notify_stopping();
        if (d->tenant)   /* not after "cannot start": one line says it all */
                log_msg(&d->cli->log, LOG_NOTICE, "stopping");
        if (d->runner && d->tenant) {
                runner_stop(d->runner);
                /* Recorded now, while the store is open: the run ends interrupted (exit 1). */
                reconcile_run_end(d->tenant, d->plan, runner_stats(d->runner), 1, &d->run);
                report_run_end(d->report, d->runner, 1);
        }
        abandon_request(d, "the daemon is stopping");
        if (d->verify)
                verify_stop(d->verify);
        if (d->tenant)
                (void) store_meta_set(d->tenant->store, "daemon_pid", NULL);
        sources_close(d);
        report_detach(d->report);
        tenant_close(TAKE_PTR(d->tenant));   /* in-flight calls end as cancelled; intents stay */
        dirwatch_close(d->watch);
        d->watch = NULL;
        uv_close((uv_handle_t *) &d->sigterm, NULL);
        uv_close((uv_handle_t *) &d->sigint, NULL);
        uv_close((uv_handle_t *) &d->sighup, NULL);
        uv_close((uv_handle_t *) &d->sigwake, NULL);
        uv_close((uv_handle_t *) &d->due, NULL);
        uv_close((uv_handle_t *) &d->poll, NULL);
        uv_close((uv_handle_t *) &d->watchdog, NULL);
        uv_close((uv_handle_t *) &d->sweep, NULL);
        uv_close((uv_handle_t *) &d->metrics, NULL);
}

static int lock_state_dir(Daemon *d, const char *state_dir, const char *context, StateLock **ret);

/* A config naming another state_dir is accepted only once that one is ours too. */
static int reload_lock(Daemon *d, const Config *c) {
        d->next_lock = statelock_release(d->next_lock);
        if (statelock_is_for(d->lock, c->state_dir))
                return 0;
        return lock_state_dir(d, c->state_dir, "config reload failed", &d->next_lock);
}

static void on_reload(Daemon *d) {
        Config *c = NULL;

        notify_reloading();
        log_msg(&d->cli->log, LOG_NOTICE, "reloading %s", d->cli->config_path);
        if (cli_load_config(d->cli, &c) < 0 || reload_lock(d, c) < 0) {
                config_free(c);
                log_msg(&d->cli->log, LOG_ERR, "config reload failed: the old config stays in force");
                if (d->tenant)
                        log_init(&d->cli->log, d->tenant->config->log_target, d->tenant->config->log_level);
                notify_ready();
                return;
        }
        config_free(d->next_config);
        d->next_config = c;
        request_run(d);
}

/* Other processes' writes: a hand-off from `apply --user` (taken at once, with the roster read
 * now, as `apply` read it), or an approval. What else they write (rate slots, their auth state)
 * asks nothing of us. */
static int store_changed(Daemon *d) {
        _cleanup_free_ char *v = NULL;
        size_t accepted = 0;
        uint64_t approvals;
        int k = store_requests_accept(d->tenant->store, &accepted);

        if (k < 0)
                return k;
        if (accepted > 0 && !d->request.id) {
                (void) on_roster_changed(d, NULL);   /* a folder being written: the roster in force */
                if (!d->request.id)
                        request_run(d);
                /* Stop promptly: calls still queued were never sent, nothing needs settling. */
                if (d->runner && !d->request.id)
                        tenant_cancel_queued(d->tenant);
        }
        k = store_meta_get(d->tenant->store, STORE_META_APPROVALS, &v);
        if (k < 0 && k != -ENOENT)
                return k;
        approvals = v ? strtoull(v, NULL, 10) : 0;
        if (approvals != d->approvals) {
                d->approvals = approvals;
                request_run(d);
        }
        return 0;
}

/* Is the store still there, and answering? Then see what other processes wrote. */
static void check_store(Daemon *d) {
        uint64_t v = 0;
        int k;

        if (!d->tenant || d->stopping || d->fatal)
                return;
        k = store_check_health(d->tenant->store);
        if (k >= 0)
                k = store_data_version(d->tenant->store, &v);
        if (k >= 0 && v != d->data_version && (k = store_changed(d)) >= 0)
                d->data_version = v;
        if (k < 0) {
                (void) store_failed(d, USE_POLL, k, "state store check");   /* again at the next poll */
                return;
        }
        store_answered(d, USE_POLL);
}

static void on_signal(uv_signal_t *s, int signum) {
        Daemon *d = s->data;

        if (signum == SIGHUP)
                on_reload(d);
        else if (signum == HANDOFF_WAKE_SIGNAL)
                check_store(d);
        else
                daemon_stop(d);
}

static void on_poll(uv_timer_t *t) {
        Daemon *d = t->data;

        check_store(d);
        if (d->runner && d->tenant)
                report_run_tick(d->report, d->runner);
        update_status(d);
}

static void on_metrics(uv_timer_t *t) {
        Daemon *d = t->data;

        if (d->tenant && !d->stopping)
                report_metrics(d->report);
}

/* Alive means: the loop runs (this fires), the store answers, and no store failure is waiting
 * for its retry. Otherwise systemd hears nothing and restarts us after WatchdogSec=. */
static void on_watchdog(uv_timer_t *t) {
        Daemon *d = t->data;

        check_store(d);
        if (d->tenant && !d->stopping && !d->fatal && store_healthy(d))
                notify_watchdog();
}

static uint64_t metrics_interval_ms(void) {
        const char *v = secure_getenv(METRICS_INTERVAL_ENV);
        uint64_t ms = v ? strtoull(v, NULL, 10) : 0;

        return ms > 0 ? ms : REPORT_METRICS_INTERVAL_MSEC;
}

static int daemon_handles(Daemon *d) {
        uint64_t wd = notify_watchdog_usec(), metrics = metrics_interval_ms();

        if (uv_signal_init(&d->loop, &d->sigterm) < 0 || uv_signal_init(&d->loop, &d->sigint) < 0 ||
            uv_signal_init(&d->loop, &d->sighup) < 0 || uv_signal_init(&d->loop, &d->sigwake) < 0 ||
            uv_timer_init(&d->loop, &d->due) < 0 || uv_timer_init(&d->loop, &d->poll) < 0 ||
            uv_timer_init(&d->loop, &d->watchdog) < 0 || uv_timer_init(&d->loop, &d->sweep) < 0 ||
            uv_timer_init(&d->loop, &d->metrics) < 0)
                return -EIO;
        d->sigterm.data = d->sigint.data = d->sighup.data = d->sigwake.data = d;
        d->due.data = d->poll.data = d->watchdog.data = d->sweep.data = d->metrics.data = d;
        if (uv_signal_start(&d->sigterm, on_signal, SIGTERM) < 0 ||
            uv_signal_start(&d->sigint, on_signal, SIGINT) < 0 ||
            uv_signal_start(&d->sighup, on_signal, SIGHUP) < 0 ||
            uv_signal_start(&d->sigwake, on_signal, HANDOFF_WAKE_SIGNAL) < 0 ||
            uv_timer_start(&d->poll, on_poll, POLL_INTERVAL_MS, POLL_INTERVAL_MS) < 0 ||
            uv_timer_start(&d->metrics, on_metrics, metrics, metrics) < 0)
                return -EIO;
        if (wd > 0 && uv_timer_start(&d->watchdog, on_watchdog, wd / 2 / USEC_PER_MSEC,
                                     wd / 2 / USEC_PER_MSEC) < 0)
                return -EIO;
        /* Signals that came since cli_main() began were held back: the handlers get them now. */
        cli_signals_unblock();
        return 0;
}

/* One writer per tenant: the daemon holds state_dir's lock while it uses it. */
static int lock_state_dir(Daemon *d, const char *state_dir, const char *context, StateLock **ret) {
        StateLockHolder h = { 0 };
        char who[64];
        int k = statelock_take(state_dir, "daemon", ret, &h);

        if (k == -EWOULDBLOCK)
                log_msg(&d->cli->log, LOG_ERR, "%s: %s is in use by %s; one process at a time may "
                        "change a tenant", context, state_dir, statelock_describe(&h, who, sizeof(who)));
        else if (k < 0)
                log_msg(&d->cli->log, LOG_ERR, "%s: cannot lock %s: %s", context, state_dir, strerror(-k));
        return k;
}

/* See EARLY_SIGNAL_ENV. */
static void raise_early_signal(void) {
        const char *v = secure_getenv(EARLY_SIGNAL_ENV);

        if (!v)
                return;
        if (streq(v, "HUP"))
                (void) raise(SIGHUP);
        else if (streq(v, "TERM"))
                (void) raise(SIGTERM);
        else if (streq(v, "INT"))
                (void) raise(SIGINT);
}

int cmd_daemon(Cli *cli) {
        Daemon d = { .cli = cli, .exit_code = EXIT_OK };
        Config *c = NULL;
        bool told = false;
        int k;

        raise_early_signal();
        if (uv_loop_init(&d.loop) < 0)
                return EXIT_ERROR;
        if (report_new(&d.loop, cli->config_path, &cli->log, true, &d.report) < 0) {
                (void) uv_loop_close(&d.loop);
                return EXIT_ERROR;
        }
        k = daemon_handles(&d);
        if (k >= 0)
                k = cli_load_config(cli, &c);
        if (k >= 0 && (k = lock_state_dir(&d, c->state_dir, "cannot start", &d.lock)) < 0) {
                told = true;
                config_free(c);
        }
        if (k >= 0)
                k = daemon_open(&d, c);
        if (k < 0) {
                if (!told)
                        log_msg(&cli->log, LOG_ERR, "cannot start: %s", strerror(-k));
                d.exit_code = EXIT_ERROR;
                daemon_stop(&d);
        } else {
                log_msg(&cli->log, LOG_NOTICE, "nimbus-sync %s started: %zu users in the roster",
                        NIMBUS_SYNC_VERSION, d.roster ? d.roster->n : 0);
                notify_ready();
                update_status(&d);
        }
        (void) uv_run(&d.loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&d.loop);
        statelock_release(d.next_lock);
        statelock_release(d.lock);
        roster_free(d.roster);
        roster_free(d.next_roster);
        config_free(d.next_config);
        plan_free(d.plan);
        report_free(d.report);
        return d.exit_code;
}
