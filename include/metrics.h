/* metrics.h: Prometheus metrics for node_exporter's textfile collector (nimbus-sync.yaml(5),
 * metrics_file; nimbus-sync(8), MONITORING). The daemon and `apply` gather MetricsFigures (see
 * metrics_collect.h); metrics_render() turns them into the text exposition format, a pure
 * function; metrics_write_file() replaces the file atomically; a MetricsWriter does that in
 * libuv's thread pool, so the fsync never blocks the loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "guid.h"
#include "nimbus_api.h"
#include "store.h"

#define METRICS_PREFIX "nimbus_sync_"
#define METRICS_STATUS_SLOTS 600        /* HTTP 100..599; slot 0: no answer (a transport error) */

/* Users the store knows, by state: each user counts once (nimbus-sync(8), OWNERSHIP). */
typedef enum MetricsUserState {
        METRICS_USERS_CREATED,          /* present, ours: created */
        METRICS_USERS_COPIED,           /* present, ours: copied */
        METRICS_USERS_ADOPTED,
        METRICS_USERS_UNCERTAIN,
        METRICS_USERS_DELETED,          /* absent: deleted, or Nimbus says not there */
        METRICS_USERS_UNCONFIRMED,      /* none of these: e.g. a create that has not succeeded yet */
        _METRICS_USERS_MAX,
} MetricsUserState;

typedef enum MetricsPendingKind {
        METRICS_PENDING_CREATE,
        METRICS_PENDING_COPY,
        METRICS_PENDING_DELETE,
        _METRICS_PENDING_MAX,
} MetricsPendingKind;

typedef enum MetricsAuth {
        METRICS_AUTH_UNKNOWN,           /* no answer to judge by yet */
        METRICS_AUTH_OK,
        METRICS_AUTH_FAILED,            /* credentials refused: the tenant is paused */
        _METRICS_AUTH_MAX,
} MetricsAuth;

/* API requests answered since the process started, by call and HTTP status. */
typedef struct MetricsApiCounts {
        uint64_t n[NIMBUS_CALLS][METRICS_STATUS_SLOTS];
} MetricsApiCounts;

/* One answer (http_status 0, or one out of range: no answer). */
void metrics_count_answer(MetricsApiCounts *c, NimbusCall call, long http_status);

typedef struct MetricsSource {
        Guid group;
        const char *name;               /* the group's displayName, or NULL */
        uint64_t read_usec;             /* its last complete read, 0 = never */
        size_t members;                 /* users in that list */
        bool error;                     /* the last read failed */
} MetricsSource;

typedef struct MetricsFigures {
        const char *unit;               /* the label unit="..." of every sample: the instance */
        uint64_t now_usec;              /* for the age of the newest roster file */
        size_t users[_METRICS_USERS_MAX];
        size_t pending[_METRICS_PENDING_MAX];
        size_t held, approved, failed, quarantined, retrying, drift;
        const MetricsApiCounts *api;    /* NULL: no request yet */
        unsigned rate_used, rate_limit;
        uint64_t rate_window_usec;
        MetricsAuth auth;
        bool roster_ok;                 /* false: the last roster read was rejected */
        size_t roster_users, roster_files;
        uint64_t roster_newest_usec;    /* mtime of the newest roster file; 0 = no file */
        uint64_t last_success_usec;     /* the last time Nimbus matched the roster; 0 = never */
        bool running;                   /* a run is in progress */
        size_t run_done, run_total;     /* its jobs */
        const MetricsSource *sources;
        size_t n_sources;
} MetricsFigures;

/* Adds users, held, approved, failed, quarantined and retrying from the store's counts: each user
 * in one state of users[] (nimbus-sync(8), OWNERSHIP). */
void metrics_add_user_kinds(MetricsFigures *f, const StoreUserKind *k, size_t n);

/* The text exposition format (HELP and TYPE lines, every name prefixed METRICS_PREFIX). Label
 * values are escaped, and bytes that are not UTF-8 replaced. Free *ret with free(). */
int metrics_render(const MetricsFigures *f, char **ret, size_t *ret_len);

/* Replaces path atomically: a temporary file in the same folder, written, fsync'ed, made
 * world-readable (the collector runs as another user), renamed over path; the folder is
 * fsync'ed too. Blocking: not for the loop. */
int metrics_write_file(const char *path, const char *text, size_t len);

typedef struct MetricsWriter MetricsWriter;
/* A write has finished: 0, or the negative errno of metrics_write_file(). */
typedef void (*MetricsWrittenFn)(void *userdata, int error);

int metrics_writer_new(uv_loop_t *loop, const char *path, MetricsWrittenFn done, void *userdata,
                       MetricsWriter **ret);
/* Writes text (taken, freed by the writer) in the thread pool. While a write is in progress the
 * newest text waits for it, replacing any older text waiting. */
void metrics_writer_submit(MetricsWriter *w, char *text, size_t len);
/* No more callbacks; the writer is freed once a write in progress has ended (the loop keeps
 * running until then). Accepts NULL. */
void metrics_writer_free(MetricsWriter *w);
