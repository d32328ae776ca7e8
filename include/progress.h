/* progress.h: what the daemon and `apply` are doing, as `status`, the metrics and apply's
 * terminal line show it: the run in progress (calls done of all, the work left by kind, an
 * estimate of the time left) or, between runs, the last plan's figures. The process doing the
 * work keeps it in the state store (meta key PROGRESS_META_KEY) every few seconds, so another
 * process can tell "running" from "did not finish" and show done/total and ETA without
 * planning itself (see nimbus-sync(8), status). Pure functions: the store is the caller's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_META_KEY "run_progress"
#define PROGRESS_RECORD_USEC (5 * UINT64_C(1000000))   /* how often a run records it */

typedef enum ProgressKind {
        PROGRESS_CREATE,
        PROGRESS_COPY,
        PROGRESS_DELETE,
        _PROGRESS_KIND_MAX,
} ProgressKind;

typedef struct Progress {
        char run_id[33];                /* the run in progress, or the last one; "" none */
        long pid;                       /* the process that wrote this */
        bool running;                   /* false: between runs, the figures are the last plan's */
        uint64_t started_usec;          /* of the run */
        uint64_t updated_usec;          /* when this was written */
        size_t done, total;             /* calls of the run finished, and planned */
        size_t pending[_PROGRESS_KIND_MAX]; /* calls still to make, by kind */
        size_t held, drift, failed, quarantined; /* as the last plan found them */
        uint64_t eta_usec;              /* estimated time left; 0 = nothing left */
} Progress;

/* The time the open calls need at the rate limit (operations per window). */
uint64_t progress_eta(size_t open, unsigned operations, uint64_t window_usec);

/* The store's form: one JSON object. Free *ret with free(). */
int progress_format(const Progress *p, char **ret);
/* -EINVAL when text is not such an object (a field missing or of the wrong type). */
int progress_parse(const char *text, Progress *ret);

/* "1 h 23 min", "4 min", "35 s". */
void progress_duration(uint64_t usec, char *buf, size_t size);
/* "120 of 5012 calls done, ETA 1 h 21 min": apply's terminal line and status. */
void progress_line(const Progress *p, char *buf, size_t size);
