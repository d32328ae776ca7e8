/* metrics.c: the Prometheus text exposition format of the figures nimbus-sync keeps (rendered by
 * a pure function), and the file node_exporter's textfile collector reads, replaced atomically
 * from libuv's thread pool. See nimbus-sync(8), MONITORING, for what each metric means. */
#include "metrics.h"

#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoding.h"
#include "util.h"

void metrics_count_answer(MetricsApiCounts *c, NimbusCall call, long http_status) {
        if ((unsigned) call >= NIMBUS_CALLS)
                return;
        c->n[call][http_status >= 100 && http_status < METRICS_STATUS_SLOTS ? http_status : 0]++;
}

static MetricsUserState user_state(const StoreUserKind *k) {
        if (k->presence == PRESENCE_ABSENT)
                return METRICS_USERS_DELETED;
        if (k->origin == ORIGIN_UNCERTAIN)   /* present, or a create with an unknown outcome */
                return METRICS_USERS_UNCERTAIN;
        if (k->presence != PRESENCE_PRESENT)
                return METRICS_USERS_UNCONFIRMED;
        return k->origin == ORIGIN_CREATED ? METRICS_USERS_CREATED : k->origin == ORIGIN_COPIED ?
               METRICS_USERS_COPIED : k->origin == ORIGIN_ADOPTED ? METRICS_USERS_ADOPTED :
               METRICS_USERS_UNCONFIRMED;
}

void metrics_add_user_kinds(MetricsFigures *f, const StoreUserKind *k, size_t n) {
        for (size_t i = 0; i < n; i++) {
                f->users[user_state(&k[i])] += k[i].n;
                f->held += k[i].hold == HOLD_HELD ? k[i].n : 0;
                f->approved += k[i].hold == HOLD_APPROVED ? k[i].n : 0;
                f->failed += k[i].status == STATUS_FAILED ? k[i].n : 0;
                f->quarantined += k[i].status == STATUS_QUARANTINED ? k[i].n : 0;
                f->retrying += k[i].status == STATUS_RETRY ? k[i].n : 0;
        }
}

/* ---- rendering ---------------------------------------------------------------------------------- */

static const char *const user_states[_METRICS_USERS_MAX] = {
        [METRICS_USERS_CREATED] = "created", [METRICS_USERS_COPIED] = "copied",
        [METRICS_USERS_ADOPTED] = "adopted", [METRICS_USERS_UNCERTAIN] = "uncertain",
        [METRICS_USERS_DELETED] = "deleted", [METRICS_USERS_UNCONFIRMED] = "unconfirmed",
};

static const char *const pending_kinds[_METRICS_PENDING_MAX] = {
        [METRICS_PENDING_CREATE] = "create", [METRICS_PENDING_COPY] = "copy",
        [METRICS_PENDING_DELETE] = "delete",
};

static const char *const auth_states[_METRICS_AUTH_MAX] = {
        [METRICS_AUTH_UNKNOWN] = "unknown", [METRICS_AUTH_OK] = "ok", [METRICS_AUTH_FAILED] = "failed",
};

typedef struct Out {
        FILE *f;
        const char *unit;
} Out;

static void family(Out *o, const char *name, const char *type, const char *help) {
        fprintf(o->f, "# HELP " METRICS_PREFIX "%s %s\n# TYPE " METRICS_PREFIX "%s %s\n", name, help,
                name, type);
}

/* sep, key="value": the value as the format wants it, \, " and newline escaped, and UTF-8 only
 * (a group's name comes from Graph). */
static void label_sep(Out *o, const char *sep, const char *key, const char *value) {
        const unsigned char *p = (const unsigned char *) (value ? value : "");
        size_t left = strlen((const char *) p), n;

        fprintf(o->f, "%s%s=\"", sep, key);
        for (; left > 0; p += n, left -= n) {
                n = utf8_sequence(p, left);
                if (n == 0) {
                        fputc('?', o->f);
                        n = 1;
                } else if (*p == '\\' || *p == '"')
                        fprintf(o->f, "\\%c", *p);
                else if (*p == '\n')
                        fputs("\\n", o->f);
                else
                        fwrite(p, 1, n, o->f);
        }
        fputc('"', o->f);
}

static void label(Out *o, const char *key, const char *value) {
        label_sep(o, ",", key, value);
}

/* name{unit="..."; the caller adds its labels, then sample_end(). */
static void sample_begin(Out *o, const char *name) {
        fprintf(o->f, METRICS_PREFIX "%s{", name);
        label_sep(o, "", "unit", o->unit);
}

static void sample_end(Out *o, uint64_t value) {
        fprintf(o->f, "} %" PRIu64 "\n", value);
}

static void gauge(Out *o, const char *name, const char *help, uint64_t value) {
        family(o, name, "gauge", help);
        sample_begin(o, name);
        sample_end(o, value);
}

static void labelled(Out *o, const char *name, const char *key, const char *const *values, size_t n,
                     const size_t *counts, const char *help) {
        family(o, name, "gauge", help);
        for (size_t i = 0; i < n; i++) {
                sample_begin(o, name);
                label(o, key, values[i]);
                sample_end(o, counts[i]);
        }
}

static void render_users(Out *o, const MetricsFigures *f) {
        labelled(o, "users", "state", user_states, _METRICS_USERS_MAX, f->users,
                 "Users the state store knows, by state (nimbus-sync(8), OWNERSHIP).");
        labelled(o, "pending", "kind", pending_kinds, _METRICS_PENDING_MAX, f->pending,
                 "Calls still to make: of the run in progress, or of the last plan.");
        gauge(o, "held_deletes", "Deletes held by the safety rules, waiting for approve-deletes.", f->held);
        gauge(o, "approved_deletes", "Held deletes approved, not carried out yet.", f->approved);
        gauge(o, "failed_users", "Users whose last call failed permanently.", f->failed);
        gauge(o, "quarantined_users", "Users quarantined after repeated transient failures.",
              f->quarantined);
        gauge(o, "retrying_users", "Users waiting to retry a transient failure.", f->retrying);
        gauge(o, "drift_users", "Users in another Organization Unit than the roster says.", f->drift);
}

static void render_api(Out *o, const MetricsFigures *f) {
        char status[8];

        family(o, "api_requests_total", "counter",
               "Nimbus API requests answered since the process started, by call and HTTP status "
               "(status \"none\": no answer).");
        for (unsigned call = 0; f->api && call < NIMBUS_CALLS; call++)
                for (unsigned s = 0; s < METRICS_STATUS_SLOTS; s++) {
                        if (f->api->n[call][s] == 0)
                                continue;
                        snprintf(status, sizeof(status), s ? "%u" : "none", s);
                        sample_begin(o, "api_requests_total");
                        label(o, "call", nimbus_call_name(call));
                        label(o, "status", status);
                        sample_end(o, f->api->n[call][s]);
                }
        gauge(o, "rate_window_used", "Requests in the current rate window.", f->rate_used);
        gauge(o, "rate_window_limit", "Requests the rate window allows (rate_limit.operations).",
              f->rate_limit);
        gauge(o, "rate_window_seconds", "Length of the rate window (rate_limit.window).",
              f->rate_window_usec / USEC_PER_SEC);
        family(o, "auth_state", "gauge", "1 for the authentication state Nimbus last answered with "
               "(failed: credentials refused, the tenant is paused).");
        for (size_t i = 0; i < _METRICS_AUTH_MAX; i++) {
                sample_begin(o, "auth_state");
                label(o, "state", auth_states[i]);
                sample_end(o, f->auth == i);
        }
}

static void render_roster(Out *o, const MetricsFigures *f) {
        gauge(o, "roster_ok", "1 when the last roster read was valid, 0 when it was rejected (the last "
              "valid roster stays in force).", f->roster_ok);
        gauge(o, "roster_users", "Users in the roster in force.", f->roster_users);
        gauge(o, "roster_files", "Roster files in the roster in force.", f->roster_files);
        if (f->roster_newest_usec > 0)
                gauge(o, "roster_newest_file_age_seconds", "Age of the newest roster file.",
                      f->now_usec > f->roster_newest_usec ?
                      (f->now_usec - f->roster_newest_usec) / USEC_PER_SEC : 0);
        gauge(o, "last_success_timestamp_seconds", "When Nimbus last matched the roster: the end of a "
              "run that converged, or a check that found nothing to do (0: never).",
              f->last_success_usec / USEC_PER_SEC);
        gauge(o, "run_in_progress", "1 while a reconcile run is in progress.", f->running);
        gauge(o, "run_jobs_done", "Calls of the run in progress that have finished.", f->run_done);
        gauge(o, "run_jobs_total", "Calls the run in progress makes.", f->run_total);
}

typedef enum SourceFigure { SOURCE_READ, SOURCE_MEMBERS, SOURCE_ERROR, _SOURCE_FIGURE_MAX } SourceFigure;

static void render_source_family(Out *o, const MetricsFigures *f, SourceFigure which) {
        static const char *const names[] = { "source_last_read_timestamp_seconds", "source_members",
                                             "source_error" };
        static const char *const helps[] = {
                "When the Entra group was last read completely (0: never).",
                "Users in the Entra group's last complete list.",
                "1 when the last read of the Entra group failed (its last complete list stays in force).",
        };
        char id[GUID_STRING_MAX];

        family(o, names[which], "gauge", helps[which]);
        for (size_t i = 0; i < f->n_sources; i++) {
                const MetricsSource *s = &f->sources[i];

                sample_begin(o, names[which]);
                label(o, "group", guid_format(&s->group, id));
                label(o, "name", s->name);
                sample_end(o, which == SOURCE_READ ? s->read_usec / USEC_PER_SEC :
                              which == SOURCE_MEMBERS ? s->members : s->error);
        }
}

int metrics_render(const MetricsFigures *f, char **ret, size_t *ret_len) {
        Out o = { .unit = f->unit };
        char *text = NULL;
        size_t len = 0;
        bool failed;

        o.f = open_memstream(&text, &len);
        if (!o.f)
                return -ENOMEM;
        render_users(&o, f);
        render_api(&o, f);
        render_roster(&o, f);
        for (SourceFigure w = 0; f->n_sources > 0 && w < _SOURCE_FIGURE_MAX; w++)
                render_source_family(&o, f, w);
        failed = ferror(o.f);
        if (fclose(o.f) != 0 || failed) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        *ret_len = len;
        return 0;
}

/* ---- the file ------------------------------------------------------------------------------------- */

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* The rename is durable once the folder is. */
static int fsync_folder(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        int fd, r = 0;

        if (!copy)
                return -ENOMEM;
        fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

int metrics_write_file(const char *path, const char *text, size_t len) {
        _cleanup_free_ char *tmp = NULL;
        int fd, r;

        /* Not *.prom: the collector never reads a half-written file. */
        if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, len);
        if (r >= 0 && fchmod(fd, 0644) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return fsync_folder(path);
}

/* ---- the writer ------------------------------------------------------------------------------------ */

struct MetricsWriter {
        char *path;
        uv_loop_t *loop;
        uv_work_t work;
        MetricsWrittenFn done;
        void *userdata;
        char *text, *next;      /* being written; waiting */
        size_t len, next_len;
        int result;
        bool busy, freeing;
};

static void writer_release(MetricsWriter *w) {
        free(w->text);
        free(w->next);
        free(w->path);
        free(w);
}

static void work_cb(uv_work_t *work) {
        MetricsWriter *w = work->data;

        w->result = metrics_write_file(w->path, w->text, w->len);
}

static void writer_start(MetricsWriter *w);

static void after_work_cb(uv_work_t *work, int status) {
        MetricsWriter *w = work->data;
        int result = status < 0 ? -ECANCELED : w->result;

        w->busy = false;
        free(w->text);
        w->text = NULL;
        if (w->freeing) {
                writer_release(w);
                return;
        }
        if (w->next)
                writer_start(w);
        if (w->done)   /* last: it may free the writer */
                w->done(w->userdata, result);
}

static void writer_start(MetricsWriter *w) {
        w->text = TAKE_PTR(w->next);
        w->len = w->next_len;
        w->work.data = w;
        if (uv_queue_work(w->loop, &w->work, work_cb, after_work_cb) < 0) {
                free(w->text);   /* the thread pool failed: the next tick tries again */
                w->text = NULL;
                return;
        }
        w->busy = true;
}

int metrics_writer_new(uv_loop_t *loop, const char *path, MetricsWrittenFn done, void *userdata,
                       MetricsWriter **ret) {
        MetricsWriter *w = calloc(1, sizeof(*w));

        if (!w || !(w->path = strdup(path))) {
                free(w);
                return -ENOMEM;
        }
        w->loop = loop;
        w->done = done;
        w->userdata = userdata;
        *ret = w;
        return 0;
}

void metrics_writer_submit(MetricsWriter *w, char *text, size_t len) {
        free(w->next);
        w->next = text;
        w->next_len = len;
        if (!w->busy)
                writer_start(w);
}

void metrics_writer_free(MetricsWriter *w) {
        if (!w)
                return;
        if (w->busy)
                w->freeing = true;
        else
                writer_release(w);
}
