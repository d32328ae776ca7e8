/* daemon.c: `nimbus-sync daemon`, the service. It keeps one tenant in sync continuously:
 *  - the roster folder is watched (dirwatch); a changed, settled, valid roster replaces the one
 *    in force, an invalid one is logged and the last valid one stays;
 *  - every change (roster, approve-deletes seen in the store, a retry time coming due, SIGHUP)
 *    asks for a new run; a run in progress is stopped first (its in-flight answers are still
 *    recorded) and the next plan starts from what the store then knows;
 *  - after every run it plans once more, so nothing waits for a timer that need not;
 *  - systemd hears READY/RELOADING/STOPPING, a current STATUS= line, and watchdog keep-alives.
 * Idle, it makes no API call and wakes only for the approvals poll and the rescan. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dirwatch.h"
#include "notify.h"
#include "reconcile.h"
#include "source_poll.h"
#include "verify.h"
#include "util.h"

#define POLL_INTERVAL_MS 2000   /* approve-deletes and STATUS= are seen within this */

typedef struct Daemon {
        Cli *cli;
        uv_loop_t loop;
        Tenant *tenant;
        Roster *roster;          /* the desired state in force: the last valid one */
        Roster *next_roster;     /* a newer valid one, waiting for the current run to stop */
        Config *next_config;     /* a reloaded config, waiting for the current run to stop */
        DirWatch *watch;
        Runner *runner;          /* the run in progress, or NULL */
        Verify *verify;          /* the verify sweep in progress, or NULL */
        Plan *plan;              /* its plan */
        StoreRun run;
        bool rerun;              /* plan again when the current run has stopped */
        bool stopping;
        uint64_t data_version;   /* of the store, to notice approve-deletes */
        uint64_t next_due;       /* earliest retry time of a skipped user, 0 = none */
        size_t last_held;        /* held deletes in the last plan */
        size_t last_notes[3];    /* held, empty-roster skipped and drift counts last logged */
        char last_result[64];
        uv_signal_t sigterm, sigint, sighup;
        uv_timer_t due, poll, watchdog, sweep;
        /* Directory sources (sources:): the desired state is files ∪ groups. */
        Roster *files;           /* the last valid roster files, while sources are configured */
        SourceSet *sources;      /* each group's last complete list, or NULL without sources: */
        SourcePoller *poller;    /* reads every group each source_interval */
} Daemon;

static void request_run(Daemon *d);
static void arm_sweep(Daemon *d);

/* ---- STATUS= ---------------------------------------------------------------------------------- */

static void update_status(Daemon *d) {
        const Tenant *t = d->tenant;
        unsigned used;

        if (!t)
                return;
        used = ratelimit_used(&t->limiter, now_usec());
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
        } else
                notify_status("idle: %zu users in the roster, %zu held, auth %s; rate %u/%u; last run %s",
                              d->roster ? d->roster->n : 0, d->last_held,
                              t->auth == AUTH_FAILED ? "FAILED" : "ok", used, t->config->rate_operations,
                              d->last_result[0] ? d->last_result : "none");
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

static void on_run_done(void *userdata, Runner *r) {
        Daemon *d = userdata;
        const RunnerStats *st = runner_stats(r);
        int code = reconcile_exit_code(d->plan, st, false);

        if (d->tenant)
                reconcile_run_end(d->tenant, d->plan, st, code, &d->run);
        remember_result(d, code);
        runner_free(d->runner);
        d->runner = NULL;
        d->plan = plan_free(d->plan);
        if (d->stopping)
                return;
        if (d->next_roster) {
                roster_free(d->roster);
                d->roster = TAKE_PTR(d->next_roster);
        }
        apply_pending_config(d);
        d->rerun = false;
        /* Plan once more right away: what is left either runs now or sets the next wake-up. */
        (void) start_run(d);
        update_status(d);
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

static int start_run(Daemon *d) {
        Plan *p = NULL;
        int k;

        /* A reload plans from inside daemon_open(): its caller then finds the run started. */
        if (d->stopping || d->runner || !d->roster || !d->tenant)
                return 0;
        k = reconcile_plan(d->tenant, d->roster, &p);
        if (k < 0) {
                log_msg(d->tenant->log, LOG_ERR, "cannot plan: %s", strerror(-k));
                return k;
        }
        d->next_due = p->next_due_usec;
        arm_due(d);
        if (reconcile_jobs(p) == 0) {   /* nothing to send: stay idle, no API call */
                log_notes(d, p, NULL);
                plan_free(p);
                return 0;
        }
        d->plan = p;
        k = reconcile_run_begin(d->tenant, p, d->roster, &d->run);
        if (k >= 0) {
                log_notes(d, p, d->run.run_id);
                k = runner_new(d->tenant, p, d->roster, d->run.run_id, &d->runner);
        }
        if (k >= 0)
                k = runner_start(d->runner, on_run_done, d);
        if (k < 0) {
                log_msg(d->tenant->log, LOG_ERR, "cannot start a run: %s", strerror(-k));
                d->plan = plan_free(d->plan);
        }
        return k;
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
        if (d->next_roster) {
                roster_free(d->roster);
                d->roster = TAKE_PTR(d->next_roster);
        }
        apply_pending_config(d);
        (void) start_run(d);
        update_status(d);
}

/* ---- the roster --------------------------------------------------------------------------------- */

static void roster_rejected(Daemon *d, const Diag *diag) {
        _cleanup_free_ char *first = NULL;

        log_diag(d->tenant->log, diag, MID_ROSTER_ERROR);
        log_msg(d->tenant->log, LOG_ERR, "roster rejected: the last valid roster stays in force");
        if (diag_first_error(diag, &first) >= 0 && first)
                (void) store_meta_set(d->tenant->store, "roster_error", first);
}

/* The folder changed while it was read: nothing is rejected, it is read again once settled. */
static void roster_changed_meanwhile(Daemon *d, const Diag *diag) {
        const DiagEntry *e = diag->n > 0 ? &diag->entries[0] : NULL;

        log_msg(d->tenant->log, LOG_NOTICE, "%s: %s; reading the roster folder again in %.1f s",
                e && e->file ? e->file : d->tenant->config->roster_dir, e ? e->msg : "changed while it was read",
                (double) d->tenant->config->settle_time_usec / USEC_PER_SEC);
}

static void sources_rebuild(Daemon *d);

/* Read the roster folder (a DirWatchFn); *fingerprint: of the folder as read. */
static int on_roster_changed(void *userdata, uint64_t *fingerprint) {
        Daemon *d = userdata;
        const Roster *current = d->sources ? d->files : d->next_roster ? d->next_roster : d->roster;
        Diag diag = DIAG_INIT;
        Roster *r = NULL;
        int k;

        k = roster_load_dir(d->tenant->config->roster_dir, d->tenant->config, &r, fingerprint, &diag);
        if (k == -EAGAIN)
                roster_changed_meanwhile(d, &diag);
        else if (k < 0)
                roster_rejected(d, &diag);
        else
                log_diag(d->tenant->log, &diag, NULL);   /* warnings */
        diag_clear(&diag);
        if (k < 0)
                return k;
        (void) store_meta_set(d->tenant->store, "roster_error", NULL);
        if (current && current->hash == r->hash) {   /* touched, not changed */
                roster_free(r);
                return 0;
        }
        log_event(d->tenant->log, LOG_INFO, &(LogEvent) { .message_id = MID_ROSTER_LOADED,
                  .action = "roster", .result = "ok" }, "roster loaded: %zu users in %zu files", r->n,
                  r->n_files);
        if (d->sources) {
                roster_free(d->files);
                d->files = r;
                sources_rebuild(d);
                return 0;
        }
        roster_free(d->next_roster);
        d->next_roster = r;
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
                (void) store_meta_set(d->tenant->store, "roster_error", NULL);
                roster_free(d->next_roster);
                d->next_roster = r;
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
        if (k < 0)
                log_msg(d->tenant->log, LOG_ERR, "cannot read the Entra groups: %s", strerror(-k));
        return k;
}

/* Before the tenant (whose store and config the poller uses) closes. */
static void sources_close(Daemon *d) {
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
        k = sources_open(d);
        if (k < 0)
                return k;
        if (dirwatch_settled(c->roster_dir, c->settle_time_usec))
                read = on_roster_changed(d, &seen) != -EAGAIN;
        else
                log_msg(d->tenant->log, LOG_NOTICE, "%s: a roster file changed within the last "
                        "%.1f s; the roster is read once it has settled", c->roster_dir,
                        (double) c->settle_time_usec / USEC_PER_SEC);
        k = dirwatch_new(&d->loop, c->roster_dir, c->settle_time_usec, c->scan_interval_usec,
                         read ? &seen : NULL, on_roster_changed, d, &d->watch);
        if (k < 0)
                log_msg(&d->cli->log, LOG_ERR, "cannot watch %s: %s", c->roster_dir, strerror(-k));
        record_presence(d);
        (void) store_data_version(d->tenant->store, &d->data_version);
        arm_sweep(d);
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
        log_event(d->tenant->log, LOG_INFO, &(LogEvent) { .action = "verify", .result = "ok" },
                  "verify sweep: %zu checked, %zu missing, %zu in another OU, %zu not answered",
                  st.checked, st.missing, st.moved, st.errors);
        snprintf(when, sizeof(when), "%" PRIu64, now_usec());
        (void) store_meta_set(d->tenant->store, "verify_last", when);
        if (st.missing + st.moved > 0)
                request_run(d);
        arm_sweep(d);
}

static void on_sweep(uv_timer_t *t) {
        Daemon *d = t->data;
        Guid *ids = NULL;
        size_t n = 0;

        if (d->verify || !d->tenant || sweep_ids(d, &ids, &n) < 0)
                return;
        if (verify_new(d->tenant, ids, n, NULL, &d->verify) < 0)
                return;
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
        notify_stopping();
        log_msg(&d->cli->log, LOG_NOTICE, "stopping");
        if (d->runner) {
                runner_stop(d->runner);
                /* Recorded now, while the store is open: the run ends interrupted (exit 1). */
                reconcile_run_end(d->tenant, d->plan, runner_stats(d->runner), 1, &d->run);
        }
        if (d->verify)
                verify_stop(d->verify);
        if (d->tenant)
                (void) store_meta_set(d->tenant->store, "daemon_pid", NULL);
        sources_close(d);
        tenant_close(TAKE_PTR(d->tenant));   /* in-flight calls end as cancelled; intents stay */
        dirwatch_close(d->watch);
        d->watch = NULL;
        uv_close((uv_handle_t *) &d->sigterm, NULL);
        uv_close((uv_handle_t *) &d->sigint, NULL);
        uv_close((uv_handle_t *) &d->sighup, NULL);
        uv_close((uv_handle_t *) &d->due, NULL);
        uv_close((uv_handle_t *) &d->poll, NULL);
        uv_close((uv_handle_t *) &d->watchdog, NULL);
        uv_close((uv_handle_t *) &d->sweep, NULL);
}

static void on_reload(Daemon *d) {
        Config *c = NULL;

        notify_reloading();
        log_msg(&d->cli->log, LOG_NOTICE, "reloading %s", d->cli->config_path);
        if (cli_load_config(d->cli, &c) < 0) {
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

static void on_signal(uv_signal_t *s, int signum) {
        Daemon *d = s->data;

        if (signum == SIGHUP)
                on_reload(d);
        else
                daemon_stop(d);
}

/* approve-deletes (another process) commits to the store: its data_version moves. */
static void on_poll(uv_timer_t *t) {
        Daemon *d = t->data;
        uint64_t v;

        if (!d->tenant)
                return;
        if (store_data_version(d->tenant->store, &v) >= 0 && v != d->data_version) {
                d->data_version = v;
                request_run(d);
        }
        update_status(d);
}

static void on_watchdog(uv_timer_t *t) {
        notify_watchdog();
}

static int daemon_handles(Daemon *d) {
        uint64_t wd = notify_watchdog_usec();

        if (uv_signal_init(&d->loop, &d->sigterm) < 0 || uv_signal_init(&d->loop, &d->sigint) < 0 ||
            uv_signal_init(&d->loop, &d->sighup) < 0 || uv_timer_init(&d->loop, &d->due) < 0 ||
            uv_timer_init(&d->loop, &d->poll) < 0 || uv_timer_init(&d->loop, &d->watchdog) < 0 ||
            uv_timer_init(&d->loop, &d->sweep) < 0)
                return -EIO;
        d->sigterm.data = d->sigint.data = d->sighup.data = d;
        d->due.data = d->poll.data = d->watchdog.data = d->sweep.data = d;
        if (uv_signal_start(&d->sigterm, on_signal, SIGTERM) < 0 ||
            uv_signal_start(&d->sigint, on_signal, SIGINT) < 0 ||
            uv_signal_start(&d->sighup, on_signal, SIGHUP) < 0 ||
            uv_timer_start(&d->poll, on_poll, POLL_INTERVAL_MS, POLL_INTERVAL_MS) < 0)
                return -EIO;
        if (wd > 0 && uv_timer_start(&d->watchdog, on_watchdog, wd / 2 / USEC_PER_MSEC,
                                     wd / 2 / USEC_PER_MSEC) < 0)
                return -EIO;
        return 0;
}

int cmd_daemon(Cli *cli) {
        Daemon d = { .cli = cli };
        Config *c = NULL;
        int k;

        if (uv_loop_init(&d.loop) < 0)
                return EXIT_ERROR;
        k = daemon_handles(&d);
        if (k >= 0)
                k = cli_load_config(cli, &c);
        if (k >= 0)
                k = daemon_open(&d, c);
        if (k < 0) {
                log_msg(&cli->log, LOG_ERR, "cannot start: %s", strerror(-k));
                d.stopping = false;
                daemon_stop(&d);
        } else {
                log_msg(&cli->log, LOG_NOTICE, "nimbus-sync %s started: %zu users in the roster",
                        NIMBUS_SYNC_VERSION, d.roster ? d.roster->n : 0);
                notify_ready();
                update_status(&d);
        }
        (void) uv_run(&d.loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&d.loop);
        roster_free(d.roster);
        roster_free(d.next_roster);
        config_free(d.next_config);
        plan_free(d.plan);
        return k < 0 ? EXIT_ERROR : EXIT_OK;
}
