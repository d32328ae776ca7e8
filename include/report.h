/* report.h: what a process that reconciles (the daemon, `apply`) tells the others while it
 * works: its progress in the state store (progress.h), every few seconds during a run; the
 * daemon's roster verdict and the files it read (rosterview.h), which `status` shows instead of
 * reading the roster itself; when Nimbus last matched the roster; and the Prometheus metrics file
 * of metrics_file (metrics.h), after every run and, in the daemon, every minute. Failures to
 * record are logged once per kind of failure, never fatal: the work goes on. */
#pragma once

#include <stdbool.h>
#include <uv.h>

#include "planner.h"
#include "progress.h"
#include "roster.h"
#include "runner.h"
#include "source.h"
#include "tenant.h"

#define REPORT_METRICS_INTERVAL_MSEC 60000     /* the daemon rewrites metrics_file this often */
#define STORE_META_LAST_SUCCESS "last_success" /* usec: when Nimbus last matched the roster */

typedef struct Report Report;

/* daemon: it records its roster verdict, and a converged idle daemon counts as a success at
 * every metrics write. config_path names the instance (the metrics' unit label). */
int report_new(uv_loop_t *loop, const char *config_path, const Logger *log, bool daemon, Report **ret);
Report *report_free(Report *r);

/* The tenant in use (again, after a reload): its answers are counted from now on, and its
 * config's metrics_file is written. report_detach() (accepts NULL) before the tenant closes. */
int report_attach(Report *r, Tenant *t);
void report_detach(Report *r);
/* Entra groups (may be NULL); the set must outlive its use here. */
void report_sources(Report *r, const SourceSet *sources);

/* The desired state in force was read: desired (groups included) and its files alone. */
void report_roster(Report *r, const Roster *desired, const Roster *files);
/* A read of the roster was rejected; error: its first line. */
void report_roster_rejected(Report *r, const char *error);

/* A plan of the whole roster was made; converged: nothing to do and nothing remains. */
void report_plan(Report *r, const Plan *p, bool converged);
void report_run_start(Report *r, const Plan *p, const char *run_id, uint64_t started_usec);
/* During a run: the figures are brought up to date, and recorded when PROGRESS_RECORD_USEC have
 * passed since the last record. */
void report_run_tick(Report *r, const Runner *run);
/* The run ended with exit_code (apply's): recorded, and the metrics written. */
void report_run_end(Report *r, const Runner *run, int exit_code);

/* Gathers the metrics and writes metrics_file, if configured (in the thread pool). */
void report_metrics(Report *r);

const Progress *report_progress(const Report *r);
