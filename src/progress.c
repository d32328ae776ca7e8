/* progress.c: a run's progress as one JSON object for the state store, read back by `status`
 * and the metrics, and as one line for people. */
#include "progress.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_record.h"
#include "util.h"

static const char *const kind_names[_PROGRESS_KIND_MAX] = {
        [PROGRESS_CREATE] = "create", [PROGRESS_COPY] = "copy", [PROGRESS_DELETE] = "delete",
};

uint64_t progress_eta(size_t open, unsigned operations, uint64_t window_usec) {
        if (open == 0 || operations == 0)
                return 0;
        /* Whole windows would overstate a short tail; a share of one is what the limit allows. */
        return (uint64_t) ((double) open * (double) window_usec / operations);
}

int progress_format(const Progress *p, char **ret) {
        json_object *o = json_object_new_object(), *pending = json_object_new_object();

        if (!o || !pending) {
                json_object_put(o);
                json_object_put(pending);
                return -ENOMEM;
        }
        json_object_object_add(o, "run_id", json_object_new_string(p->run_id));
        json_record_put_u64(o, "pid", p->pid > 0 ? (uint64_t) p->pid : 0);
        json_object_object_add(o, "running", json_object_new_boolean(p->running));
        json_record_put_u64(o, "started", p->started_usec);
        json_record_put_u64(o, "updated", p->updated_usec);
        json_record_put_u64(o, "done", p->done);
        json_record_put_u64(o, "total", p->total);
        for (size_t k = 0; k < _PROGRESS_KIND_MAX; k++)
                json_record_put_u64(pending, kind_names[k], p->pending[k]);
        json_object_object_add(o, "pending", pending);
        json_record_put_u64(o, "held", p->held);
        json_record_put_u64(o, "drift", p->drift);
        json_record_put_u64(o, "failed", p->failed);
        json_record_put_u64(o, "quarantined", p->quarantined);
        json_record_put_u64(o, "eta", p->eta_usec);
        return json_record_finish(o, ret);
}

static int get_size(json_object *o, const char *key, size_t *ret) {
        uint64_t v;
        int r = json_record_get_u64(o, key, &v);

        if (r >= 0)
                *ret = (size_t) v;
        return r;
}

static int parse_fields(json_object *o, Progress *p) {
        json_object *id, *running, *pending;
        uint64_t pid = 0;
        int r = 0;

        if (!json_object_object_get_ex(o, "run_id", &id) || !json_object_is_type(id, json_type_string) ||
            json_object_get_string_len(id) >= (int) sizeof(p->run_id) ||
            !json_object_object_get_ex(o, "running", &running) ||
            !json_object_is_type(running, json_type_boolean) ||
            !json_object_object_get_ex(o, "pending", &pending) ||
            !json_object_is_type(pending, json_type_object))
                return -EINVAL;
        snprintf(p->run_id, sizeof(p->run_id), "%s", json_object_get_string(id));
        p->running = json_object_get_boolean(running);
        for (size_t k = 0; r >= 0 && k < _PROGRESS_KIND_MAX; k++)
                r = get_size(pending, kind_names[k], &p->pending[k]);
        if (r >= 0 && (r = json_record_get_u64(o, "pid", &pid)) >= 0)
                p->pid = pid > LONG_MAX ? 0 : (long) pid;
        if (r >= 0)
                r = json_record_get_u64(o, "started", &p->started_usec);
        if (r >= 0)
                r = json_record_get_u64(o, "updated", &p->updated_usec);
        if (r >= 0)
                r = json_record_get_u64(o, "eta", &p->eta_usec);
        return r;
}

static int parse_counts(json_object *o, Progress *p) {
        const struct { const char *key; size_t *dest; } counts[] = {
                { "done", &p->done }, { "total", &p->total }, { "held", &p->held },
                { "drift", &p->drift }, { "failed", &p->failed }, { "quarantined", &p->quarantined },
        };
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(counts); i++)
                r = get_size(o, counts[i].key, counts[i].dest);
        return r;
}

int progress_parse(const char *text, Progress *ret) {
        json_object *o = text ? json_tokener_parse(text) : NULL;
        Progress p = { 0 };
        int r = -EINVAL;

        if (o && json_object_is_type(o, json_type_object) && (r = parse_fields(o, &p)) >= 0)
                r = parse_counts(o, &p);
        json_object_put(o);
        if (r >= 0)
                *ret = p;
        return r;
}

void progress_duration(uint64_t usec, char *buf, size_t size) {
        uint64_t s = (usec + USEC_PER_SEC / 2) / USEC_PER_SEC, min = (s + 30) / 60;

        if (s < 60)
                snprintf(buf, size, "%" PRIu64 " s", s);
        else if (min < 60)
                snprintf(buf, size, "%" PRIu64 " min", min);
        else if (min % 60 == 0)
                snprintf(buf, size, "%" PRIu64 " h", min / 60);
        else
                snprintf(buf, size, "%" PRIu64 " h %" PRIu64 " min", min / 60, min % 60);
}

void progress_line(const Progress *p, char *buf, size_t size) {
        char eta[32];

        progress_duration(p->eta_usec, eta, sizeof(eta));
        if (p->done >= p->total)
                snprintf(buf, size, "%zu of %zu calls done", p->done, p->total);
        else
                snprintf(buf, size, "%zu of %zu calls done, ETA %s", p->done, p->total, eta);
}
