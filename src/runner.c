/* runner.c: the jobs of one reconcile run and their single transition function. See runner.h.
 * What an answer means for a user is decided by answer.c; this file moves jobs between states,
 * talks to the tenant, and writes what answer.c decided to the store before the next decision. */
#include "runner.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "answer.h"
#include "backoff.h"
#include "audit.h"
#include "util.h"

#define FEED_AHEAD 16  /* calls handed to the tenant ahead of the window: keeps its queue small */

typedef enum LicenseVerdict {
        LICENSES_UNKNOWN,   /* not checked in this run */
        LICENSES_LEFT,      /* every pool has licenses left */
        LICENSES_EXHAUSTED, /* a pool has none left */
        LICENSES_FAILED,    /* the check itself failed */
} LicenseVerdict;

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
        size_t feeding;          /* job calls (mutations, confirming GETs) the tenant has not answered */
        size_t open[NIMBUS_CALLS]; /* jobs not final yet, by call: the license re-check waits
                                    * for the deletes; status and metrics show the rest */
        LicenseVerdict licenses; /* the last license usage check of this run */
        char exhausted_pool[64]; /* LICENSES_EXHAUSTED: which pool */
        bool licenses_paused, license_check_running, recheck_done;
        bool stopping, finished, deferring;
        uint64_t max_wait_usec;  /* see runner_set_max_wait() */
        uint64_t deferred_until; /* Nimbus asked for a pause longer than max_wait: this run ends */
        RunnerStats stats;
        const Plan *plan;        /* the jobs' actions, until runner_start() placed them */
        const Roster *roster;    /* names and files for the logs, or NULL */
        char run_id[33];
        RunnerDoneFn done;
        void *userdata;
};

static void job_set_state(Runner *r, Job *j, JobState s);
static void feed(Runner *r);
static void check_finished(Runner *r);

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

#define LABEL_MAX (GUID_STRING_MAX + 2 * AUDIT_NAME_MAX + 8)

/* Who the job's user is: its roster entry, or for a delete what the store remembers. */
static void job_audit(const Runner *r, const Job *j, AuditUser *ret) {
        StoreUser u = { 0 };
        Guid ou = { 0 };

        if (!j->entry && store_get_user(r->tenant->store, &j->id, &u) >= 0) {
                ou = !guid_is_null(&u.ou) || u.target_kind != TARGET_OU ? u.ou : u.target;
                store_user_clear(&u);
        }
        audit_user_describe(r->tenant->store, r->roster, j->entry, &j->id, j->entry ? NULL : &ou, ret);
}

/* "<id>" or "<id> (<name>)" when the roster, the store or the directory gave a name. */
static const char *job_label(const Job *j, const AuditUser *who, char buf[LABEL_MAX]) {
        char id[GUID_STRING_MAX], name[2 * AUDIT_NAME_MAX + 4];

        guid_format(&j->id, id);
        if (*audit_user_label(who, name, sizeof(name)))
                snprintf(buf, LABEL_MAX, "%s (%s)", id, name);
        else
                snprintf(buf, LABEL_MAX, "%s", id);
        return buf;
}

/* One line per outcome: "<call> <user>: <detail>", with the fields of nimbus-sync(8), LOGS AND
 * AUDIT: every entry about a user names it, and the roster file or source that listed it. */
static void job_log(const Runner *r, const Job *j, int prio, const char *mid, const char *result,
                    long status, const char *detail) {
        char label[LABEL_MAX];
        AuditUser who;
        LogEvent ev = {
                .message_id = mid, .action = nimbus_call_name(j->call), .result = result,
                .run_id = r->run_id, .http_status = status, .attempt = j->attempts,
                .ou = j->call == CALL_CREATE ? &j->target : NULL,
                .template_id = j->call == CALL_COPY ? &j->target : NULL,
        };

        job_audit(r, j, &who);
        audit_user_event(&who, &ev);
        log_event(r->tenant->log, prio, &ev, "%s %s: %s", nimbus_call_name(j->call),
                  job_label(j, &who, label), detail);
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

/* Sent from the tenant's dispatcher, inside the transaction that records the send time: the
 * intent is durable before the request leaves, so a crash can never hide a call. */
static int job_on_send(void *userdata) {
        Job *j = userdata;
        Runner *r = j->runner;
        StoreUser u;
        int k;

        /* The roster changed (or the daemon stops) since this call was queued: the next plan
         * decides afresh, from the new roster, whether it is still wanted. */
        if (r->stopping || r->deferred_until)
                return -ECANCELED;
        /* Handed to the tenant before the first "no licenses" came back: it would only fail too.
         * -EDQUOT cancels the call unsent; job_on_done() pauses the job. */
        if (r->licenses_paused && j->call != CALL_DELETE)
                return -EDQUOT;
        /* The tenant sends it again after a 401 with a fresh token: a definite "no" to our own
         * send of a moment ago, already recorded. */
        if (j->state == JOB_IN_FLIGHT)
                return 0;
        k = job_load(r, j, &u);
        if (k < 0)
                return k;
        if (u.intent == INTENT_CREATE || u.intent == INTENT_COPY)
                j->maybe_sent = true;   /* an earlier attempt's outcome is still unknown */
        u.intent = intent_of(j->call);
        if (j->call != CALL_DELETE) {
                u.target = j->target;
                u.target_kind = j->call == CALL_CREATE ? TARGET_OU : TARGET_TEMPLATE;
        }
        u.updated_usec = now_usec();
        k = store_put_user(r->tenant->store, &u);
        store_user_clear(&u);
        /* What the audit trail names the user by from now on, even once it leaves the roster. */
        if (k >= 0 && j->entry && r->roster)
                k = audit_user_record(r->tenant->store, r->roster, j->entry);
        if (k >= 0)
                job_set_state(r, j, JOB_IN_FLIGHT);
        return k;
}

/* ---- outcomes -------------------------------------------------------------------------------- */

static AnswerInput answer_input(const Runner *r, const Job *j, const NimbusResult *res) {
        const Config *c = r->tenant->config;

        return (AnswerInput) {
                .call = (NimbusCall) j->call, .outcome = res->outcome,
                .http_status = res->http_status, .message = res->message, .target = j->target,
                .maybe_sent = j->maybe_sent, .attempts = j->attempts,
                /* A 4xx (429 and 408 included) says the server did not carry the request out. */
                .unprocessed = res->http_status >= 400 && res->http_status < 500,
                .max_attempts = (uint16_t) c->retry.attempts, .now_usec = now_usec(),
                .retry_delay_usec = backoff_delay_honouring(c->retry.base_usec, c->retry.cap_usec,
                                                            j->attempts + 1u, backoff_random(),
                                                            res->retry_after_usec),
                .quarantine_usec = c->retry.quarantine_usec,
                .failed_retry_usec = c->retry.failed_retry_usec,
                /* Later runs try again after a while, not at once: no storm while out of licenses. */
                .no_license_retry_usec = c->retry.cap_usec,
        };
}

/* Apply the rule of answer.c to the stored user and write it; false if the store failed. */
static bool job_record(Runner *r, Job *j, const AnswerInput *in, AnswerResult *ret) {
        StoreUser u;
        char *old_error;
        int k;

        k = job_load(r, j, &u);
        if (k < 0) {
                *ret = (AnswerResult) { .step = STEP_RETRY, .result = "failed" };
                return false;
        }
        answer_apply(&u, in, ret);
        j->maybe_sent = ret->maybe_sent;
        if (ret->store) {
                old_error = u.error;
                u.error = (char *) ret->error;   /* borrowed: the store copies it */
                u.updated_usec = in->now_usec;
                k = store_put_user(r->tenant->store, &u);
                u.error = old_error;
        }
        store_user_clear(&u);
        return k >= 0;
}

static void count_success(Runner *r, const Job *j, const StoreUser *after, const AnswerResult *a) {
        if (j->call == CALL_DELETE)
                streq(a->result, "gone") ? r->stats.gone++ : r->stats.deleted++;
        else if (streq(a->result, "exists")) {
                r->stats.uncertain += after->origin == ORIGIN_UNCERTAIN;
                r->stats.adopted += after->origin == ORIGIN_ADOPTED;
        } else
                j->call == CALL_CREATE ? r->stats.created++ : r->stats.copied++;
}

/* Everything that ends in "done": the stored origin after the write tells adopted from uncertain. */
static void job_done(Runner *r, Job *j, const AnswerResult *a, long status) {
        StoreUser u = { 0 };

        if (streq(a->result, "exists") && job_load(r, j, &u) < 0)
                u.origin = ORIGIN_UNCERTAIN;
        count_success(r, j, &u, a);
        store_user_clear(&u);
        job_log(r, j, LOG_INFO, MID_USER_ACTION, a->result, status, a->detail);
        job_set_state(r, j, JOB_DONE);
}

/* A retry whose time lies beyond what this run waits for ends the job for this run. */
static void job_retry(Runner *r, Job *j, const AnswerInput *in, const AnswerResult *a, long status,
                      uint64_t retry_after) {
        const Config *c = r->tenant->config;
        bool quarantine = a->step == STEP_QUARANTINE;
        uint64_t delay = quarantine ? in->quarantine_usec : in->retry_delay_usec;
        bool defer = !quarantine && delay > r->max_wait_usec;
        char detail[NIMBUS_MAX_MESSAGE + 96];

        j->attempts++;
        j->due_usec = in->now_usec + delay;
        snprintf(detail, sizeof(detail), "%s; attempt %u of %u, %s %.1f s%s", a->detail, j->attempts,
                 c->retry.attempts, quarantine ? "quarantined, next try in" : "retrying in",
                 (double) delay / USEC_PER_SEC, defer ? " (after this run: run it again then)" : "");
        job_log(r, j, quarantine ? LOG_ERR : LOG_WARNING, quarantine ? MID_USER_QUARANT : MID_USER_RETRY,
                a->result, status, detail);
        if (quarantine)
                r->stats.quarantined++;
        /* Nimbus asks the whole tenant to wait longer than this run may: end the run. */
        if (defer && status == 429 && retry_after > r->max_wait_usec)
                r->deferred_until = in->now_usec + retry_after;
        job_set_state(r, j, quarantine ? JOB_QUARANTINED : defer ? JOB_DEFERRED : JOB_RETRY_WAIT);
}

static void pause_for_licenses(Runner *r, const Job *j, long status, const char *why) {
        if (!r->licenses_paused)
                job_log(r, j, LOG_WARNING, MID_NO_LICENSES, "skipped", status, why);
        r->licenses_paused = true;
}

static void job_confirm(Runner *r, Job *j, const NimbusResult *res);
static void request_license_check(Runner *r);
static void job_resolve_forbidden(Runner *r, Job *j);

/* What answer.c decided, carried out. */
static void job_step(Runner *r, Job *j, const NimbusResult *res, bool confirming) {
        AnswerInput in = answer_input(r, j, res);
        AnswerResult a;

        in.confirming = confirming;
        in.unprocessed |= confirming;
        if (confirming) {
                NimbusUser nu = { 0 };

                if (res->outcome == OUTCOME_OK && nimbus_parse_user(res->body, res->body_len, &nu) >= 0)
                        in.actual_ou = nu.ou;
                nimbus_user_clear(&nu);
                if (res->outcome == OUTCOME_GONE || res->outcome == OUTCOME_PERMANENT)
                        in.message = j->pending_message ? j->pending_message : res->message;
        }
        if (!job_record(r, j, &in, &a)) {
                job_log(r, j, LOG_ERR, MID_USER_FAILED, "failed", res->http_status,
                        "could not record the answer in the state store; the next run settles it");
                job_set_state(r, j, JOB_CANCELLED);
                return;
        }
        switch (a.step) {
        case STEP_DONE:
                job_done(r, j, &a, res->http_status);
                break;
        case STEP_CONFIRM:
                job_confirm(r, j, res);
                break;
        case STEP_RETRY:
        case STEP_QUARANTINE:
                job_retry(r, j, &in, &a, res->http_status, res->retry_after_usec);
                break;
        case STEP_FAILED:
                r->stats.failed++;
                job_log(r, j, LOG_ERR, MID_USER_FAILED, a.result, res->http_status,
                        confirming ? "answered \"already exists\", but Nimbus has no such user; "
                        "not retried until its roster entry changes" : a.detail);
                job_set_state(r, j, JOB_FAILED);
                break;
        case STEP_NO_LICENSES:
                pause_for_licenses(r, j, res->http_status,
                                   "no licenses left; creates and copies paused until licenses are free");
                job_set_state(r, j, JOB_PAUSED);
                break;
        case STEP_CHECK_LICENSES:
                free(j->pending_message);
                j->pending_message = strdup(res->message);
                job_set_state(r, j, JOB_LICENSE_WAIT);
                job_resolve_forbidden(r, j);
                break;
        case STEP_STOP:
                /* The tenant refused us (it logged why): the run ends. */
                r->stats.auth_failed = true;
                job_set_state(r, j, JOB_CANCELLED);
                break;
        }
}

/* ---- "already exists" is confirmed by GET ---------------------------------------------------- */

/* A job's call is answered: it leaves the tenant once its next state is set (so the counters
 * agree at every step), then the feed and the end check see it gone. */
static void job_answered(Runner *r) {
        r->feeding--;
        feed(r);
        check_finished(r);
}

static void job_on_confirmed(void *userdata, const NimbusResult *res) {
        Job *j = userdata;
        Runner *r = j->runner;

        if (res->error == -ECANCELED)
                job_set_state(r, j, JOB_CANCELLED);
        else
                job_step(r, j, res, true);
        free(j->pending_message);
        j->pending_message = NULL;
        job_answered(r);
}

static void job_confirm(Runner *r, Job *j, const NimbusResult *res) {
        free(j->pending_message);
        j->pending_message = strdup(res->message);
        job_set_state(r, j, JOB_CONFIRMING);
        if (tenant_call(r->tenant, PRIO_MUTATION, CALL_GET_USER, &j->id, NULL, NULL,
                        job_on_confirmed, j) < 0) {
                job_set_state(r, j, JOB_CANCELLED);
                return;
        }
        r->feeding++;
}

static void job_on_done(void *userdata, const NimbusResult *res) {
        Job *j = userdata;
        Runner *r = j->runner;

        if (res->error == -ECANCELED) {
                /* Never answered: a sent intent stays in the store and the next start settles it.
                 * Unsent and ended by a long pause Nimbus asked for: a later run. */
                job_set_state(r, j, r->deferred_until && j->state == JOB_QUEUED ? JOB_DEFERRED
                                                                                 : JOB_CANCELLED);
        } else if (res->error == -EDQUOT) {
                job_set_state(r, j, JOB_PAUSED);   /* held back by job_on_send(), never sent */
        } else
                job_step(r, j, res, false);
        job_answered(r);
}

/* ---- licenses -------------------------------------------------------------------------------- */

/* A 403 "Organization Unit not allowed" is a license problem if a pool is exhausted; the
 * evidence goes into the message either way. */
static void job_resolve_forbidden(Runner *r, Job *j) {
        NimbusResult res = { .call = j->call, .http_status = 403 };
        char msg[NIMBUS_MAX_MESSAGE + 160];

        if (r->licenses == LICENSES_UNKNOWN) {
                request_license_check(r);
                return;
        }
        res.outcome = r->licenses == LICENSES_EXHAUSTED ? OUTCOME_NO_LICENSES :
                      r->licenses == LICENSES_FAILED ? OUTCOME_TRANSIENT : OUTCOME_PERMANENT;
        if (r->licenses == LICENSES_EXHAUSTED)
                snprintf(msg, sizeof(msg), "%s (license usage shows no %s licenses left: out of "
                         "licenses, not an OU problem)", j->pending_message, r->exhausted_pool);
        else if (r->licenses == LICENSES_LEFT)
                snprintf(msg, sizeof(msg), "%s (license usage shows licenses left: the OU is not "
                         "allowed for this app registration)", j->pending_message);
        else
                snprintf(msg, sizeof(msg), "%s (license usage could not be read)", j->pending_message);
        res.message = msg;
        free(j->pending_message);
        j->pending_message = NULL;
        job_step(r, j, &res, false);
}

static void on_licenses(void *userdata, const NimbusResult *res) {
        Runner *r = userdata;
        NimbusLicense *l = NULL;
        size_t n = 0;
        const char *pool;
        LogEvent ev = { .action = "licenses", .run_id = r->run_id, .http_status = res->http_status };

        r->license_check_running = false;
        /* Taken after this run's deletes: it already is the re-check they would ask for. */
        r->recheck_done |= r->open[CALL_DELETE] == 0;
        r->licenses = LICENSES_FAILED;
        if (res->outcome == OUTCOME_OK && nimbus_parse_licenses(res->body, res->body_len, &l, &n) >= 0) {
                pool = nimbus_licenses_exhausted(l, n);
                r->licenses = pool ? LICENSES_EXHAUSTED : LICENSES_LEFT;
                snprintf(r->exhausted_pool, sizeof(r->exhausted_pool), "%s", pool ? pool : "");
        }
        nimbus_licenses_free(l, n);
        ev.result = r->licenses == LICENSES_FAILED ? "failed" : "ok";
        log_event(r->tenant->log, LOG_NOTICE, &ev, "license check: %s%s%s",
                  r->licenses == LICENSES_LEFT ? "licenses left in every pool" :
                  r->licenses == LICENSES_EXHAUSTED ? "no licenses left in pool " : "failed: ",
                  r->licenses == LICENSES_EXHAUSTED ? r->exhausted_pool : "",
                  r->licenses == LICENSES_FAILED ? res->message : "");
        for (size_t i = 0; i < r->n; i++)
                if (r->jobs[i].state == JOB_LICENSE_WAIT)
                        job_resolve_forbidden(r, &r->jobs[i]);
        if (r->licenses == LICENSES_LEFT && r->licenses_paused && !r->stopping) {
                r->licenses_paused = false;
                for (size_t i = 0; i < r->n; i++)
                        if (r->jobs[i].state == JOB_PAUSED)
                                job_set_state(r, &r->jobs[i], JOB_QUEUED);
        }
        feed(r);
        check_finished(r);
}

static void request_license_check(Runner *r) {
        if (r->license_check_running || r->stopping)
                return;
        if (tenant_call(r->tenant, PRIO_MUTATION, CALL_LICENSES, NULL, NULL, NULL, on_licenses, r) < 0)
                return;
        r->license_check_running = true;
}

/* Licenses are re-checked once the deletes of this run (which free licenses) are through. */
static void maybe_recheck_licenses(Runner *r) {
        if (!r->licenses_paused || r->recheck_done || r->open[CALL_DELETE] > 0 || r->stopping)
                return;
        r->recheck_done = true;
        r->licenses = LICENSES_UNKNOWN;
        request_license_check(r);
}

/* ---- the transition function ----------------------------------------------------------------- */

static void job_count(Runner *r, Job *j, JobState s);

/* Every copy waiting (directly or through other copies) for j will not run in this run. A
 * stack, not recursion: a roster can chain templates a million deep. */
static void block_dependents(Runner *r, Job *j) {
        size_t *stack = r->heap + r->heap_n;  /* the heap's unused tail is exactly big enough */
        size_t top = 0;

        for (size_t d = j->first_dependent; d != SIZE_MAX; d = r->jobs[d].next_dependent)
                stack[top++] = d;
        while (top > 0) {
                Job *dep = &r->jobs[stack[--top]];

                if (dep->state != JOB_WAIT_DEP)
                        continue;
                job_count(r, dep, JOB_BLOCKED);   /* its own effect is this very loop */
                for (size_t d = dep->first_dependent; d != SIZE_MAX; d = r->jobs[d].next_dependent)
                        stack[top++] = d;
        }
}

/* Counters first, then what entering the new state sets in motion. */
static void job_count(Runner *r, Job *j, JobState s) {
        JobState old = j->state;

        assert(r->count[old] > 0);
        assert(old != s);
        /* Final states are final: nothing moves a job out of one. */
        assert(!job_state_is_final(old));
        r->count[old]--;
        r->count[s]++;
        j->state = s;
        if (job_state_is_final(s))
                r->open[j->call]--;
        r->stats.blocked += s == JOB_BLOCKED;
        if (r->tenant->log->level >= LOG_DEBUG) {
                char id[GUID_STRING_MAX];

                log_msg(r->tenant->log, LOG_DEBUG, "job %s %s: %s -> %s", nimbus_call_name(j->call),
                        guid_format(&j->id, id), job_state_name(old), job_state_name(s));
        }
}

static void job_set_state(Runner *r, Job *j, JobState s) {
        job_count(r, j, s);
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
        case JOB_DEFERRED:
        case JOB_BLOCKED:
                block_dependents(r, j);
                break;
        case JOB_NEW:           /* only ever the first state */
        case JOB_WAIT_DEP:      /* waits for its template's job to reach DONE */
        case JOB_IN_FLIGHT:     /* the tenant sent it; job_on_done() decides what comes next */
        case JOB_CONFIRMING:    /* the confirming GET is with the tenant; job_on_confirmed() next */
        case JOB_LICENSE_WAIT:  /* on_licenses() resolves it */
        case JOB_PAUSED:        /* waits for the license check after this run's deletes */
        case JOB_HELD:          /* waits for approve-deletes and a later run */
        default:
                break;
        }
        assert(r->feeding >= r->count[JOB_IN_FLIGHT] + r->count[JOB_CONFIRMING]);
        maybe_recheck_licenses(r);
        check_finished(r);
}

/* Nimbus asked for a pause beyond what this run waits for: queued work goes to a later run. */
static void defer_queued(Runner *r) {
        while (r->ready_head != r->ready_tail) {
                Job *j = &r->jobs[r->ready[r->ready_head++ % r->n]];

                if (j->state == JOB_QUEUED)
                        job_set_state(r, j, JOB_DEFERRED);
        }
        tenant_cancel_queued(r->tenant);   /* their callbacks defer them (job_on_done) */
}

/* Hand queued jobs to the tenant, a few ahead of the window, so its queue stays small even for
 * a million users. */
static void feed(Runner *r) {
        if (r->deferred_until) {
                if (!r->deferring && !r->stopping) {
                        r->deferring = true;   /* its callbacks come back here */
                        defer_queued(r);
                        r->deferring = false;
                }
                return;
        }
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
                        r->count[JOB_CONFIRMING] + r->count[JOB_LICENSE_WAIT] +
                        (r->license_check_running ? 1 : 0);

        if (r->finished || !r->done)
                return;
        if (r->stopping ? r->feeding > 0 || r->license_check_running : active > 0)
                return;
        for (size_t i = 0; i < r->n && r->count[JOB_WAIT_DEP] > 0; i++)
                if (r->jobs[i].state == JOB_WAIT_DEP)
                        job_set_state(r, &r->jobs[i], JOB_BLOCKED);
        r->finished = true;
        r->stats.held = r->count[JOB_HELD];
        r->stats.paused = r->count[JOB_PAUSED];
        r->stats.cancelled = r->count[JOB_CANCELLED] + r->count[JOB_QUEUED] +
                             r->count[JOB_RETRY_WAIT] + r->count[JOB_LICENSE_WAIT];
        r->stats.deferred = r->count[JOB_DEFERRED];
        r->stats.deferred_until = r->deferred_until;
        for (size_t i = 0; i < r->n; i++)
                if (r->jobs[i].state == JOB_DEFERRED && r->jobs[i].due_usec > 0 &&
                    (r->stats.next_due_usec == 0 || r->jobs[i].due_usec < r->stats.next_due_usec))
                        r->stats.next_due_usec = r->jobs[i].due_usec;
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

static void runner_release(Runner *r) {
        for (size_t i = 0; r->jobs && i < r->n; i++)
                free(r->jobs[i].pending_message);
        free(r->jobs);
        free(r->ready);
        free(r->heap);
        free(r);
}

static void job_init(Runner *r, Job *j, const Action *a) {
        *j = (Job) {
                .runner = r, .id = a->id, .target = a->target, .entry = a->entry,
                .depends_on = a->depends_on, .first_dependent = SIZE_MAX,
                .next_dependent = SIZE_MAX, .due_usec = a->not_before_usec,
                .state = JOB_NEW,
                .call = a->kind == ACTION_CREATE ? CALL_CREATE :
                        a->kind == ACTION_COPY ? CALL_COPY : CALL_DELETE,
        };
        r->open[j->call]++;
}

/* Move a new job to its first real state. Called from runner_start(), once max_wait is known. */
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
        r->roster = roster;
        snprintf(r->run_id, sizeof(r->run_id), "%s", run_id);
        /* Drift is reported, never acted on; every other action becomes a job, in plan order, so
         * a job's index equals its action's index and depends_on carries over unchanged. */
        while (n < p->n && p->actions[n].kind != ACTION_DRIFT)
                n++;
        if (runner_alloc(r, n) < 0 || uv_timer_init(t->loop, &r->timer) < 0) {
                runner_release(r);
                return -ENOMEM;
        }
        r->timer.data = r;
        for (size_t i = 0; i < n; i++)
                job_init(r, &r->jobs[i], &p->actions[i]);
        r->count[JOB_NEW] = n;
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

size_t runner_open(const Runner *r, NimbusCall call) {
        return (unsigned) call < NIMBUS_CALLS ? r->open[call] : 0;
}

uint64_t runner_next_retry(const Runner *r) {
        return r->heap_n > 0 ? r->jobs[r->heap[0]].due_usec : 0;
}

static void runner_closed(uv_handle_t *h) {
        runner_release(h->data);
}

void runner_free(Runner *r) {
        if (!r)
                return;
        (void) uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *) &r->timer, runner_closed);
}
