/* plan_report.h: what `plan` shows of a Plan (nimbus-sync(8), plan). For people: a summary by
 * OU and by roster file or source first when there are more than PLAN_REPORT_SUMMARY_MIN
 * changes, one diff-like line per action with roster paths relative to roster_dir, the held
 * deletes grouped by the source that last listed them, and at the end an estimate of the time
 * the calls take at the configured rate. `plan --json` adds the summary, the held deletes and
 * the estimate to its object. */
#pragma once

#include <stdint.h>

#include "planner.h"
#include "review.h"
#include "tally.h"

#define PLAN_REPORT_SUMMARY_MIN 50

enum { REPORT_CREATE, REPORT_COPY, REPORT_DELETE, REPORT_HELD };  /* Tally columns */

typedef struct PlanReport {
        const Plan *plan;
        const Roster *roster;
        const Config *config;
        Store *store;           /* what it remembers of users that left the roster; may be NULL */
        Tally by_ou;            /* keys: an OU's GUID, or "" when unknown */
        Tally by_source;        /* keys: a file relative to roster_dir, a source's label */
        char **delete_label;    /* per delete action: "Name (upn)" or NULL */
        size_t *delete_source;  /* per delete action: row of by_source */
        Review held;
} PlanReport;

/* Describe every action once (deletes and held ones from the store). */
int plan_report_collect(PlanReport *rep, const Plan *p, const Roster *r, const Config *c, Store *store);
void plan_report_clear(PlanReport *rep);
int plan_report_print(PlanReport *rep);
/* `, "summary": {...}, "held_deletes": [...], "estimate_seconds": N`: the fields plan --json adds. */
int plan_report_print_json_fields(PlanReport *rep);

/* Calls at `operations` per `window` take about this long (steady pace of the window). */
uint64_t plan_report_duration_usec(size_t calls, unsigned operations, uint64_t window_usec);
/* "≈ 83 min at 60 per 60 s". */
void plan_report_format_estimate(size_t calls, unsigned operations, uint64_t window_usec, char *buf,
                                 size_t size);
