/* runner.c: the jobs of one reconcile run and their single transition function. See runner.h. */
#include "runner.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "source.h"
#include "util.h"

#define FEED_AHEAD 16  /* calls handed to the tenant ahead of the window: keeps its queue small */

struct Runner {
        Tenant *tenant;
        Job *jobs;
        size_t n;
        size_t count[_JOB_STATE_MAX];
        size_t *ready;           /* FIFO of QUEUED job indices not yet handed to the tenant */
        size_t ready_head, ready_tail;
        size_t *heap;            /* min-heap of RETRY_WAIT job indices by due time */
        size_t heap_n;
        uv_timer_t timer;        /* the earliest retry */
        size_t feeding;          /* jobs handed to the tenant and not answered yet */
        size_t deletes_left;     /* delete jobs not final yet: the license check waits for them */
        bool licenses_paused, license_check_running, license_checked;
        bool stopping, finished;
        uint64_t max_wait_usec;  /* see runner_set_max_wait() */
        RunnerStats stats;
        const Plan *plan;        /* the jobs' actions, until runner_start() placed them */
        const char *names;       /* the roster's pool of informational names, or NULL */
        char *const *files;      /* the roster's file names, or NULL */
        char run_id[33];
        RunnerDoneFn done;
        void *userdata;
};

static void job_set_state(Runner *r, Job *j, JobState s);
static void feed(Runner *r);

/* ---- retry heap ---------------------------------------------------------------------------- */

static bool heap_less(const Runner *r, size_t a, size_t b) {
        return r->jobs[r->heap[a]].due_usec < r->jobs[r->heap[b]].due_usec;
}

static void heap_swap(Runner *r, size_t a, size_t b) {
        size_t t = r->heap[a];

        r->heap[a] = r->heap[b];
        r->heap[b] = t;
}

static void heap_push(Runner *r, size_t job) {
        size_t i = r->heap_n++;

        r->heap[i] = job;
        while (i > 0 && heap_less(r, i, (i - 1) / 2)) {
                heap_swap(r, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static size_t heap_pop(Runner *r) {
        size_t top = r->heap[0], i = 0;

        r->heap[0] = r->heap[--r->heap_n];
        for (;;) {
                size_t l = 2 * i + 1, m = i;

                if (l < r->heap_n && heap_less(r, l, m))
                        m = l;
                if (l + 1 < r->heap_n && heap_less(r, l + 1, m))
                        m = l + 1;
                if (m == i)
                        break;
                heap_swap(r, i, m);
                i = m;
        }
        return top;
}

static void on_retry_timer(uv_timer_t *timer) {
        Runner *r = timer->data;
        uint64_t now = now_usec();

        while (r->heap_n > 0 && r->jobs[r->heap[0]].due_usec <= now + USEC_PER_MSEC)
                job_set_state(r, &r->jobs[heap_pop(r)], JOB_QUEUED);
        if (r->heap_n > 0) {
                uint64_t due = r->jobs[r->heap[0]].due_usec;

                (void) uv_timer_start(&r->timer, on_retry_timer, (due - now) / USEC_PER_MSEC + 1, 0);
        }
        /* Nothing else may be running to hand the jobs we just queued to the tenant. */
        feed(r);
}

static void arm_retry_timer(Runner *r) {
        uint64_t now = now_usec(), due = r->jobs[r->heap[0]].due_usec;

        (void) uv_timer_start(&r->timer, on_retry_timer,
                              due > now ? (due - now) / USEC_PER_MSEC + 1 : 0, 0);
}

/* ---- logging --------------------------------------------------------------------------------- */

#define LABEL_MAX (GUID_STRING_MAX + ROSTER_MAX_NAME + 4)

/* "<id>" or "<id> (<name>)" when the roster gave a name, or (a delete) an Entra group did. */
static const char *job_label(const Runner *r, const Job *j, char buf[LABEL_MAX]) {
        char id[GUID_STRING_MAX], name[ROSTER_MAX_NAME], group[ROSTER_MAX_NAME];

        guid_format(&j->id, id);
        if (j->entry && r->names && j->entry->name)
                snprintf(buf, LABEL_MAX, "%s (%s)", id, r->names + j->entry->name);
        else if (!j->entry && r->tenant->config->n_sources > 0 &&
                 source_directory_name(r->tenant->store, &j->id, name, sizeof(name), group, sizeof(group)))
                snprintf(buf, LABEL_MAX, "%s (%s)", id, name);
        else
                snprintf(buf, LABEL_MAX, "%s", id);
        return buf;
}

/* One line per outcome: "<call> <user>: <detail>", with the fields of PRODUCT §7. */
static void job_log(const Runner *r, const Job *j, int prio, const char *mid, const char *result,
                    long status, const char *detail) {
        char label[LABEL_MAX];
        LogEvent ev = {
                .message_id = mid, .action = nimbus_call_name(j->call), .result = result,
                .o365_id = &j->id, .run_id = r->run_id, .http_status = status,
                .attempt = j->attempts,
                .ou = j->call == CALL_CREATE ? &j->target : NULL,
                .template_id = j->call == CALL_COPY ? &j->target : NULL,
                .roster_file = j->entry && r->files ? r->files[j->entry->file] : NULL,
        };

        log_event(r->tenant->log, prio, &ev, "%s %s: %s", nimbus_call_name(j->call),
                  job_label(r, j, label), detail);
}

/* ---- the store ------------------------------------------------------------------------------- */

static uint8_t intent_of(NimbusCall call) {
        return call == CALL_CREATE ? INTENT_CREATE : call == CALL_COPY ? INTENT_COPY : INTENT_DELETE;
}

/* The user's record, or a fresh one. */
static int job_load(Runner *r, const Job *j, StoreUser *u) {
        int k = store_get_user(r->tenant->store, &j->id, u);

        if (k == -ENOENT) {
                *u = (StoreUser) { .id = j->id };
                return 0;
        }
        return k;
}

/* Write the record; a store that fails here is logged, and the next run settles the user. */
static void job_save(Runner *r, const Job *j, StoreUser *u) {
        int k;

        u->updated_usec = now_usec();
        k = store_put_user(r->tenant->store, u);
        if (k < 0)
                job_log(r, j, LOG_ERR, MID_USER_FAILED, "failed", 0,
                        "could not record the result in the state store");
        store_user_clear(u);
}

/* Sent from the tenant's dispatcher, inside the transaction that records the send time. */
static int job_on_send(void *userdata) {
        Job *j = userdata;
        Runner *r = j->runner;
        StoreUser u;
        int k;

        /* Handed to the tenant before the first "no licenses" came back: it would only fail too.
         * -EDQUOT cancels the call unsent; job_on_done() pauses the job. */
        if (r->licenses_paused && j->call != CALL_DELETE)
                return -EDQUOT;
        k = job_load(r, j, &u);
        if (k < 0)
                return k;
        if (u.intent == INTENT_CREATE || u.intent == INTENT_COPY)
                j->maybe_sent = true;   /* an earlier process sent it and died before the answer */
        u.intent = intent_of(j->call);
        if (j->call != CALL_DELETE) {
                u.target = j->target;
                u.target_kind = j->call == CALL_CREATE ? TARGET_OU : TARGET_TEMPLATE;
                /* If we die before the answer, the user may exist and is ours: the planner may
                 * delete it later only if the origin says so. A 409 without an earlier send
                 * still turns it into ADOPTED (job_succeeded). */
                u.origin = j->call == CALL_CREATE ? ORIGIN_CREATED : ORIGIN_COPIED;
        }
        u.updated_usec = now_usec();
        k = store_put_user(r->tenant->store, &u);
        store_user_clear(&u);
        if (k >= 0)
                job_set_state(r, j, JOB_IN_FLIGHT);
        return k;
}

/* ---- outcomes -------------------------------------------------------------------------------- */

static void job_succeeded(Runner *r, Job *j, const NimbusResult *res) {
        StoreUser u;
        const char *result = "ok";

        if (job_load(r, j, &u) < 0)
                u = (StoreUser) { .id = j->id };
        if (j->call == CALL_DELETE) {
                u.presence = PRESENCE_ABSENT;
                u.hold = HOLD_NONE;
                result = res->outcome == OUTCOME_GONE ? "gone" : "ok";
                res->outcome == OUTCOME_GONE ? r->stats.gone++ : r->stats.deleted++;
        } else {
                u.presence = PRESENCE_PRESENT;
                if (res->outcome == OUTCOME_EXISTS && !j->maybe_sent) {
                        u.origin = ORIGIN_ADOPTED;     /* it was there before we listed it */
                        result = "exists";
                        r->stats.adopted++;
                } else {
                        u.origin = j->call == CALL_CREATE ? ORIGIN_CREATED : ORIGIN_COPIED;
                        j->call == CALL_CREATE ? r->stats.created++ : r->stats.copied++;
                }
                u.ou = j->call == CALL_CREATE ? j->target : (Guid) { { 0 } };
        }
        u.intent = INTENT_NONE;
        u.status = STATUS_OK;
        u.attempts = 0;
        u.next_attempt_usec = 0;
        u.http_status = (uint16_t) res->http_status;
        u.error = (free(u.error), NULL);
        job_save(r, j, &u);
        job_log(r, j, LOG_INFO, MID_USER_ACTION, result, res->http_status,
                res->outcome == OUTCOME_EXISTS && !j->maybe_sent ? "already exists, adopted" :
                res->outcome == OUTCOME_GONE ? "already gone" : "ok");
        job_set_state(r, j, JOB_DONE);
}

/* Permanent for this user: recorded with the server's message, retried when its roster entry
 * changes or after failed_retry. */
static void job_permanent(Runner *r, Job *j, const NimbusResult *res) {
        const Config *c = r->tenant->config;
        StoreUser u;

        if (job_load(r, j, &u) < 0)
                u = (StoreUser) { .id = j->id };
        u.intent = INTENT_NONE;             /* a definite "no": nothing happened */
        u.status = STATUS_FAILED;
        u.http_status = (uint16_t) res->http_status;
        u.next_attempt_usec = now_usec() + c->retry.failed_retry_usec;
        free(u.error);
        u.error = strdup(res->message);
        job_save(r, j, &u);
        r->stats.failed++;
        job_log(r, j, LOG_ERR, MID_USER_FAILED, "failed", res->http_status, res->message);
        job_set_state(r, j, JOB_FAILED);
}

static void job_transient(Runner *r, Job *j, const NimbusResult *res) {
        const Config *c = r->tenant->config;
        uint64_t now = now_usec(), delay;
        bool quarantine;
        char detail[NIMBUS_MAX_MESSAGE + 64];
        StoreUser u;

        j->attempts++;
        /* Only a 429 proves the request was not processed; anything else may have reached Nimbus. */
        if (res->http_status != 429)
                j->maybe_sent = true;
        quarantine = j->attempts >= c->retry.attempts;
        delay = quarantine ? c->retry.quarantine_usec :
                backoff_delay_honouring(c->retry.base_usec, c->retry.cap_usec, j->attempts,
                                        backoff_random(), res->retry_after_usec);
        if (job_load(r, j, &u) < 0)
                u = (StoreUser) { .id = j->id };
        if (!j->maybe_sent)
                u.intent = INTENT_NONE;
        u.status = quarantine ? STATUS_QUARANTINED : STATUS_RETRY;
        u.attempts = j->attempts;
        u.http_status = (uint16_t) res->http_status;
        u.next_attempt_usec = now + delay;
        free(u.error);
        u.error = strdup(res->message);
        job_save(r, j, &u);
        j->due_usec = now + delay;
        snprintf(detail, sizeof(detail), "%s; attempt %u of %u, %s %.1f s", res->message, j->attempts,
                 c->retry.attempts, quarantine ? "quarantined, next try in" : "retrying in",
                 (double) delay / USEC_PER_SEC);
        job_log(r, j, quarantine ? LOG_ERR : LOG_WARNING, quarantine ? MID_USER_QUARANT : MID_USER_RETRY,
                quarantine ? "quarantined" : "retry", res->http_status, detail);
        if (quarantine)
                r->stats.quarantined++;
        job_set_state(r, j, quarantine ? JOB_QUARANTINED : JOB_RETRY_WAIT);
}

static void job_no_licenses(Runner *r, Job *j, const NimbusResult *res) {
        StoreUser u;

        if (job_load(r, j, &u) < 0)
                u = (StoreUser) { .id = j->id };
        u.intent = INTENT_NONE;
        u.status = STATUS_RETRY;
        u.http_status = (uint16_t) res->http_status;
        /* Later runs try again after a while, not at once: no request storm while out of licenses. */
        u.next_attempt_usec = now_usec() + r->tenant->config->retry.cap_usec;
        free(u.error);
        u.error = strdup(res->message);
        job_save(r, j, &u);
        if (!r->licenses_paused)
                job_log(r, j, LOG_WARNING, MID_NO_LICENSES, "skipped", res->http_status,
                        "no licenses left; creates and copies paused until licenses are free");
        r->licenses_paused = true;
        job_set_state(r, j, JOB_PAUSED);
}

static void job_on_done(void *userdata, const NimbusResult *res) {
        Job *j = userdata;
        Runner *r = j->runner;

        r->feeding--;
        if (res->error == -ECANCELED) {
                /* Never answered: a sent intent stays in the store and the next start settles it.
                 * A real answer after runner_stop() is still recorded below. */
                job_set_state(r, j, JOB_CANCELLED);
                return;
        }
        if (res->error == -EDQUOT) {
                job_set_state(r, j, JOB_PAUSED);   /* held back by job_on_send(), never sent */
                feed(r);
                return;
        }
        switch (res->outcome) {
        case OUTCOME_OK:
        case OUTCOME_EXISTS:
        case OUTCOME_GONE:
                job_succeeded(r, j, res);
                break;
        case OUTCOME_TRANSIENT:
                job_transient(r, j, res);
                break;
        case OUTCOME_NO_LICENSES:
                job_no_licenses(r, j, res);
                break;
        case OUTCOME_AUTH:
                /* The tenant gave up on authentication: the run ends; the tenant logged why. */
                r->stats.auth_failed = true;
                job_set_state(r, j, JOB_CANCELLED);
                break;
        default:
                job_permanent(r, j, res);
                break;
        }
        feed(r);
}

/* ---- licenses -------------------------------------------------------------------------------- */

static void check_finished(Runner *r);

static void on_licenses(void *userdata, const NimbusResult *res) {
        Runner *r = userdata;
        NimbusLicense *l = NULL;
        size_t n = 0;
        int64_t available = 0;
        LogEvent ev = { .action = "licenses", .run_id = r->run_id, .http_status = res->http_status };

        r->feeding--;
        r->license_check_running = false;
        r->license_checked = true;
        if (res->outcome == OUTCOME_OK && nimbus_parse_licenses(res->body, res->body_len, &l, &n) >= 0)
                for (size_t i = 0; i < n; i++)
                        available += l[i].available > 0 ? l[i].available : 0;
        nimbus_licenses_free(l, n);
        ev.result = res->outcome == OUTCOME_OK ? "ok" : "failed";
        log_event(r->tenant->log, LOG_NOTICE, &ev, "license check: %" PRId64 " available%s%s", available,
                  res->outcome == OUTCOME_OK ? "" : "; check failed: ", res->message);
        if (available > 0 && !r->stopping) {
                r->licenses_paused = false;
                for (size_t i = 0; i < r->n; i++)
                        if (r->jobs[i].state == JOB_PAUSED)
                                job_set_state(r, &r->jobs[i], JOB_QUEUED);
        }
        feed(r);
        check_finished(r);
}

/* Licenses are re-checked once the deletes of this run (which free licenses) are through. */
static void maybe_check_licenses(Runner *r) {
        if (!r->licenses_paused || r->license_check_running || r->license_checked ||
            r->deletes_left > 0 || r->stopping)
                return;
        if (tenant_call(r->tenant, PRIO_MUTATION, CALL_LICENSES, NULL, NULL, NULL, on_licenses, r) < 0)
                return;
        r->license_check_running = true;
        r->feeding++;
}

/* ---- the transition function ----------------------------------------------------------------- */

/* Every copy waiting (directly or through other copies) for j will not run in this run. */
static void block_dependents(Runner *r, Job *j) {
        size_t *stack = r->heap + r->heap_n;  /* the heap's unused tail is exactly big enough */
        size_t top = 0;

        for (size_t d = j->first_dependent; d != SIZE_MAX; d = r->jobs[d].next_dependent)
                stack[top++] = d;
        while (top > 0) {
                Job *dep = &r->jobs[stack[--top]];

                if (dep->state != JOB_WAIT_DEP)
                        continue;
                r->count[JOB_WAIT_DEP]--;
                r->count[JOB_BLOCKED]++;
                dep->state = JOB_BLOCKED;
                r->stats.blocked++;
                for (size_t d = dep->first_dependent; d != SIZE_MAX; d = r->jobs[d].next_dependent)
                        stack[top++] = d;
        }
}

static void job_set_state(Runner *r, Job *j, JobState s) {
        JobState old = j->state;

        r->count[old]--;
        r->count[s]++;
        j->state = s;
        if (j->call == CALL_DELETE && job_state_is_final(s) && !job_state_is_final(old))
                r->deletes_left--;
        switch (s) {
        case JOB_QUEUED:        /* ready: waits in our FIFO until the feed hands it to the tenant */
                r->ready[r->ready_tail++ % r->n] = (size_t) (j - r->jobs);
                break;
        case JOB_RETRY_WAIT:    /* its due time is in the retry heap; the timer queues it again */
                heap_push(r, (size_t) (j - r->jobs));
                arm_retry_timer(r);
                break;
        case JOB_DONE:          /* copies waiting for this template may go now */
                for (size_t d = j->first_dependent; d != SIZE_MAX; d = r->jobs[d].next_dependent)
                        if (r->jobs[d].state == JOB_WAIT_DEP)
                                job_set_state(r, &r->jobs[d], JOB_QUEUED);
                break;
        case JOB_FAILED:        /* final states that leave copies of this user without a template */
        case JOB_QUARANTINED:
        case JOB_CANCELLED:
                block_dependents(r, j);
                break;
        case JOB_WAIT_DEP:      /* waits for its template's job to reach DONE */
        case JOB_IN_FLIGHT:     /* the tenant sent it; job_on_done() decides what comes next */
        case JOB_PAUSED:        /* waits for the license check after this run's deletes */
        case JOB_HELD:          /* waits for approve-deletes and a later run */
        case JOB_BLOCKED:       /* set by block_dependents() only */
        case JOB_DEFERRED:      /* waits for a later run (see runner_set_max_wait()) */
        default:
                break;
        }
        maybe_check_licenses(r);
        check_finished(r);
}

/* Hand queued jobs to the tenant, a few ahead of the window, so its queue stays small even for
 * a million users. */
static void feed(Runner *r) {
        while (!r->stopping && r->feeding < FEED_AHEAD && r->ready_head != r->ready_tail) {
                Job *j = &r->jobs[r->ready[r->ready_head++ % r->n]];

                if (j->state != JOB_QUEUED)
                        continue;
                if (r->licenses_paused && j->call != CALL_DELETE) {
                        job_set_state(r, j, JOB_PAUSED);
                        continue;
                }
                if (tenant_call(r->tenant, PRIO_MUTATION, j->call, &j->id, &j->target, job_on_send,
                                job_on_done, j) < 0) {
                        job_set_state(r, j, JOB_CANCELLED);
                        continue;
                }
                r->feeding++;
        }
}

static void on_finished(uv_timer_t *timer) {
        Runner *r = timer->data;

        r->done(r->userdata, r);
}

/* The run is over when no job can move any more without something from outside (an approval,
 * licenses, time passing beyond this run). */
static void check_finished(Runner *r) {
        size_t active = r->count[JOB_QUEUED] + r->count[JOB_IN_FLIGHT] + r->count[JOB_RETRY_WAIT] +
                        (r->license_check_running ? 1 : 0);

        if (r->finished || !r->done)
                return;
        if (r->stopping ? r->feeding > 0 : active > 0)
                return;
        for (size_t i = 0; i < r->n && r->count[JOB_WAIT_DEP] > 0; i++)
                if (r->jobs[i].state == JOB_WAIT_DEP)
                        job_set_state(r, &r->jobs[i], JOB_BLOCKED);
        r->finished = true;
        r->stats.held = r->count[JOB_HELD];
        r->stats.paused = r->count[JOB_PAUSED];
        r->stats.cancelled = r->count[JOB_CANCELLED] + r->count[JOB_QUEUED];
        r->stats.deferred = r->count[JOB_DEFERRED];
        (void) uv_timer_stop(&r->timer);
        /* From the loop, so the owner may free us without us being on the stack. */
        (void) uv_timer_start(&r->timer, on_finished, 0, 0);
}

/* ---- life ------------------------------------------------------------------------------------ */

static int runner_alloc(Runner *r, size_t n) {
        r->n = n;
        r->jobs = calloc(n ? n : 1, sizeof(Job));
        r->ready = calloc(n ? n : 1, sizeof(size_t));
        /* the heap and, in its unused tail, the stack of block_dependents() */
        r->heap = calloc(n ? 2 * n : 1, sizeof(size_t));
        return r->jobs && r->ready && r->heap ? 0 : -ENOMEM;
}

static void job_init(Runner *r, Job *j, const Action *a) {
        *j = (Job) {
                .runner = r, .id = a->id, .target = a->target, .entry = a->entry,
                .depends_on = a->depends_on, .first_dependent = SIZE_MAX,
                .next_dependent = SIZE_MAX, .due_usec = a->not_before_usec,
                .state = JOB_QUEUED,
                .call = a->kind == ACTION_CREATE ? CALL_CREATE :
                        a->kind == ACTION_COPY ? CALL_COPY : CALL_DELETE,
        };
        r->count[JOB_QUEUED]++;
        if (j->call == CALL_DELETE)
                r->deletes_left++;
}

/* Move a new job from its initial QUEUED to its first real state. Called from runner_start(),
 * once max_wait is known. */
static void runner_place(Runner *r, Job *j, const Action *a) {
        uint64_t now = now_usec();

        if (a->kind == ACTION_HELD)
                job_set_state(r, j, JOB_HELD);
        else if (j->depends_on != SIZE_MAX && j->depends_on < r->n)
                job_set_state(r, j, JOB_WAIT_DEP);
        else if (a->not_before_usec > now && a->not_before_usec - now > r->max_wait_usec)
                job_set_state(r, j, JOB_DEFERRED);
        else if (a->not_before_usec > now)
                job_set_state(r, j, JOB_RETRY_WAIT);  /* the backoff of an earlier run goes on */
        else
                job_set_state(r, j, JOB_QUEUED);
}

int runner_new(Tenant *t, const Plan *p, const Roster *roster, const char *run_id, Runner **ret) {
        Runner *r = calloc(1, sizeof(*r));
        size_t n = 0;

        if (!r)
                return -ENOMEM;
        r->tenant = t;
        r->names = roster ? roster->names : NULL;
        r->files = roster ? roster->files : NULL;
        snprintf(r->run_id, sizeof(r->run_id), "%s", run_id);
        /* Drift is reported, never acted on; every other action becomes a job, in plan order, so
         * a job's index equals its action's index and depends_on carries over unchanged. */
        while (n < p->n && p->actions[n].kind != ACTION_DRIFT)
                n++;
        if (runner_alloc(r, n) < 0 || uv_timer_init(t->loop, &r->timer) < 0) {
                free(r->jobs);
                free(r->ready);
                free(r->heap);
                free(r);
                return -ENOMEM;
        }
        r->timer.data = r;
        for (size_t i = 0; i < n; i++)
                job_init(r, &r->jobs[i], &p->actions[i]);
        for (size_t i = 0; i < n; i++) {
                Job *j = &r->jobs[i];

                if (j->depends_on < n) {
                        j->next_dependent = r->jobs[j->depends_on].first_dependent;
                        r->jobs[j->depends_on].first_dependent = i;
                }
        }
        r->plan = p;
        r->max_wait_usec = UINT64_MAX;
        *ret = r;
        return 0;
}


void runner_set_max_wait(Runner *r, uint64_t usec) {
        r->max_wait_usec = usec;
}

int runner_start(Runner *r, RunnerDoneFn done, void *userdata) {
        for (size_t i = 0; i < r->n; i++)
                runner_place(r, &r->jobs[i], &r->plan->actions[i]);
        r->plan = NULL;
        r->done = done;
        r->userdata = userdata;
        feed(r);
        check_finished(r);
        return 0;
}

void runner_stop(Runner *r) {
        r->stopping = true;
        check_finished(r);
}

const RunnerStats *runner_stats(const Runner *r) {
        return &r->stats;
}

size_t runner_count(const Runner *r, JobState s) {
        return (unsigned) s < _JOB_STATE_MAX ? r->count[s] : 0;
}

static void runner_closed(uv_handle_t *h) {
        Runner *r = h->data;

        free(r->jobs);
        free(r->ready);
        free(r->heap);
        free(r);
}

void runner_free(Runner *r) {
        if (!r)
                return;
        (void) uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *) &r->timer, runner_closed);
}
