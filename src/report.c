/* report.c: the progress, roster verdict and success time a reconciling process records in the
 * state store, and the metrics file it writes. See report.h. */
#include "report.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "graph_api.h"
#include "instances.h"
#include "metrics.h"
#include "rosterview.h"
#include "util.h"

struct Report {
        uv_loop_t *loop;
        const Logger *log;
        bool daemon;
        char *unit;                 /* the metrics' unit label */
        MetricsApiCounts api;       /* answers since the process started, across reloads */
        Tenant *tenant;             /* not owned; NULL while detached */
        MetricsWriter *writer;      /* NULL without metrics_file */
        char *metrics_path;
        int write_error;            /* of the last write: logged when it changes */
        int record_error;           /* of the last record in the store: the same */
        const SourceSet *sources;
        RosterView view;            /* no read yet: no error, no users */
        Progress progress;
        uint64_t recorded_usec;     /* when the progress was last recorded */
        uint64_t last_success_usec;
        bool converged;             /* the last plan or run: Nimbus matches the roster */
};

int report_new(uv_loop_t *loop, const char *config_path, const Logger *log, bool daemon, Report **ret) {
        Report *r = calloc(1, sizeof(*r));

        if (!r)
                return -ENOMEM;
        *r = (Report) { .loop = loop, .log = log, .daemon = daemon };
        if (instance_name(config_path, &r->unit) < 0 && !(r->unit = strdup(config_path))) {
                free(r);
                return -ENOMEM;
        }
        r->progress.pid = (long) getpid();
        *ret = r;
        return 0;
}

Report *report_free(Report *r) {
        if (!r)
                return NULL;
        metrics_writer_free(r->writer);   /* goes once a write in progress has ended */
        roster_view_clear(&r->view);
        free(r->metrics_path);
        free(r->unit);
        free(r);
        return NULL;
}

/* ---- recording in the store ------------------------------------------------------------------- */

static void record(Report *r, const char *key, char *value, int k) {
        if (k >= 0)
                k = store_meta_set(r->tenant->store, key, value);
        if (k < 0 && k != r->record_error)
                log_msg(r->log, LOG_WARNING, "cannot record %s in the state store (status shows an older "
                        "figure): %s", key, strerror(-k));
        r->record_error = k < 0 ? k : 0;
        free(value);
}

static void record_progress(Report *r) {
        char *text = NULL;
        int k;

        if (!r->tenant)
                return;
        r->progress.updated_usec = r->recorded_usec = now_usec();
        k = progress_format(&r->progress, &text);
        record(r, PROGRESS_META_KEY, text, k);
}

static void record_view(Report *r) {
        char *text = NULL;
        int k;

        if (!r->tenant || !r->daemon)   /* only the daemon's view stands for the daemon's */
                return;
        k = roster_view_format(&r->view, &text);
        record(r, ROSTER_VIEW_META_KEY, text, k);
}

static void record_success(Report *r) {
        char *text = NULL;
        int k = 0;

        r->last_success_usec = now_usec();
        if (!r->tenant)
                return;
        if (asprintf(&text, "%" PRIu64, r->last_success_usec) < 0) {
                text = NULL;
                k = -ENOMEM;
        }
        record(r, STORE_META_LAST_SUCCESS, text, k);
}

/* ---- the metrics file ---------------------------------------------------------------------------- */

static void on_written(void *userdata, int error) {
        Report *r = userdata;

        if (error < 0 && error != r->write_error)
                log_msg(r->log, LOG_WARNING, "%s: cannot write the metrics: %s", r->metrics_path,
                        strerror(-error));
        else if (error == 0 && r->write_error < 0)
                log_msg(r->log, LOG_NOTICE, "%s: metrics written again", r->metrics_path);
        r->write_error = error;
}

static int writer_for(Report *r, const char *path) {
        if (streq_ptr(path, r->metrics_path))
                return 0;
        metrics_writer_free(TAKE_PTR(r->writer));
        free(r->metrics_path);
        r->metrics_path = NULL;
        r->write_error = 0;
        if (!path)
                return 0;
        if (!(r->metrics_path = strdup(path)))
                return -ENOMEM;
        return metrics_writer_new(r->loop, path, on_written, r, &r->writer);
}

int report_attach(Report *r, Tenant *t) {
        _cleanup_free_ char *v = NULL;

        r->tenant = t;
        t->api_counts = &r->api;
        if (store_meta_get(t->store, STORE_META_LAST_SUCCESS, &v) >= 0 && v)
                r->last_success_usec = strtoull(v, NULL, 10);
        return writer_for(r, t->config->metrics_file);
}

void report_detach(Report *r) {
        if (!r)
                return;
        if (r->tenant)
                r->tenant->api_counts = NULL;
        r->tenant = NULL;
}

void report_sources(Report *r, const SourceSet *sources) {
        r->sources = sources;
}

static MetricsAuth auth_of(Tenant *t) {
        _cleanup_free_ char *v = NULL;

        if (t->auth != AUTH_NONE)
                return t->auth == AUTH_OK ? METRICS_AUTH_OK : METRICS_AUTH_FAILED;
        /* No answer in this process yet: what the last one that had one recorded. */
        if (store_meta_get(t->store, "auth_state", &v) < 0 || !v)
                return METRICS_AUTH_UNKNOWN;
        return streq(v, "failed") ? METRICS_AUTH_FAILED : METRICS_AUTH_OK;
}

static int source_figures(const SourceSet *set, MetricsSource **ret) {
        MetricsSource *m = calloc(set ? set->n + 1 : 1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        for (size_t i = 0; set && i < set->n; i++) {
                const Source *s = &set->sources[i];

                m[i] = (MetricsSource) { .group = s->config->group, .read_usec = s->read_usec,
                                         .name = s->list ? s->list->group_name : NULL,
                                         .members = s->list ? graph_listing_count(s->list,
                                                    s->config->include_disabled) : 0,
                                         .error = s->error != NULL };
        }
        *ret = m;
        return 0;
}

static void progress_figures(const Report *r, MetricsFigures *f) {
        const Progress *p = &r->progress;

        f->running = p->running;
        f->run_done = p->running ? p->done : 0;
        f->run_total = p->running ? p->total : 0;
        f->pending[METRICS_PENDING_CREATE] = p->pending[PROGRESS_CREATE];
        f->pending[METRICS_PENDING_COPY] = p->pending[PROGRESS_COPY];
        f->pending[METRICS_PENDING_DELETE] = p->pending[PROGRESS_DELETE];
        f->drift = p->drift;
        /* A daemon that is idle and in sync is a success at every look. */
        f->last_success_usec = r->daemon && r->converged && !p->running ? f->now_usec : r->last_success_usec;
}

static int collect(Report *r, MetricsFigures *f) {
        Tenant *t = r->tenant;
        StoreUserKind *kinds = NULL;
        size_t n = 0;
        int k;

        *f = (MetricsFigures) { .unit = r->unit, .now_usec = now_usec(), .api = &r->api,
                                .rate_limit = t->config->rate_operations,
                                .rate_window_usec = t->config->rate_window_usec, .auth = auth_of(t),
                                .roster_ok = !r->view.error, .roster_users = r->view.users,
                                .roster_files = r->view.n_files, .roster_newest_usec = r->view.newest_usec };
        k = store_user_kinds(t->store, &kinds, &n);
        if (k < 0)
                return k;
        metrics_add_user_kinds(f, kinds, n);
        free(kinds);
        progress_figures(r, f);
        return tenant_rate_used(t, &f->rate_used);
}

void report_metrics(Report *r) {
        MetricsSource *sources = NULL;
        MetricsFigures f;
        char *text = NULL;
        size_t len = 0;
        int k;

        if (!r->writer || !r->tenant)
                return;
        k = collect(r, &f);
        if (k >= 0)
                k = source_figures(r->sources, &sources);
        if (k >= 0) {
                f.sources = sources;
                f.n_sources = r->sources ? r->sources->n : 0;
                k = metrics_render(&f, &text, &len);
        }
        free(sources);
        if (k >= 0)
                metrics_writer_submit(r->writer, text, len);
        else
                on_written(r, k);
}

/* ---- what happens ------------------------------------------------------------------------------------ */

void report_roster(Report *r, const Roster *desired, const Roster *files) {
        int k;

        if (!r->tenant)
                return;
        k = roster_view_accept(&r->view, desired, files, r->tenant->config->roster_dir, now_usec());
        if (k >= 0)
                record_view(r);
}

/* No run follows a rejection: the metrics say so now, not at the next tick. */
void report_roster_rejected(Report *r, const char *error) {
        if (roster_view_reject(&r->view, error, now_usec()) >= 0)
                record_view(r);
        report_metrics(r);
}

static void plan_figures(Progress *p, const Plan *plan, const Tenant *t) {
        p->pending[PROGRESS_CREATE] = plan->n_create;
        p->pending[PROGRESS_COPY] = plan->n_copy;
        p->pending[PROGRESS_DELETE] = plan->n_delete;
        p->held = plan->n_held;
        p->drift = plan->n_drift;
        p->failed = plan->n_failed;
        p->quarantined = plan->n_quarantined;
        p->eta_usec = t ? progress_eta(plan->n_create + plan->n_copy + plan->n_delete,
                                       t->config->rate_operations, t->config->rate_window_usec) : 0;
}

void report_plan(Report *r, const Plan *p, bool converged) {
        r->progress.running = false;
        r->progress.done = r->progress.total = 0;
        plan_figures(&r->progress, p, r->tenant);
        r->converged = converged;
        if (converged)
                record_success(r);
        record_progress(r);
}

void report_run_start(Report *r, const Plan *p, const char *run_id, uint64_t started_usec) {
        Progress *g = &r->progress;

        snprintf(g->run_id, sizeof(g->run_id), "%s", run_id);
        g->running = true;
        g->started_usec = started_usec;
        g->done = 0;
        g->total = p->n_create + p->n_copy + p->n_delete;
        plan_figures(g, p, r->tenant);
        r->converged = false;
        record_progress(r);
}

static void runner_figures(Report *r, const Runner *run) {
        Progress *g = &r->progress;
        size_t open;

        g->pending[PROGRESS_CREATE] = runner_open(run, CALL_CREATE);
        g->pending[PROGRESS_COPY] = runner_open(run, CALL_COPY);
        g->pending[PROGRESS_DELETE] = runner_open(run, CALL_DELETE);
        open = g->pending[PROGRESS_CREATE] + g->pending[PROGRESS_COPY] + g->pending[PROGRESS_DELETE];
        g->done = g->total > open ? g->total - open : 0;
        g->eta_usec = r->tenant ? progress_eta(open, r->tenant->config->rate_operations,
                                               r->tenant->config->rate_window_usec) : 0;
}

void report_run_tick(Report *r, const Runner *run) {
        runner_figures(r, run);
        if (now_usec() - r->recorded_usec >= PROGRESS_RECORD_USEC)
                record_progress(r);
}

void report_run_end(Report *r, const Runner *run, int exit_code) {
        runner_figures(r, run);
        r->progress.running = false;
        r->converged = exit_code == 0;
        if (r->converged)
                record_success(r);
        record_progress(r);
        report_metrics(r);
}

const Progress *report_progress(const Report *r) {
        return &r->progress;
}
