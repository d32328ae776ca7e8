/* tenant.c: one tenant's call queue in front of the rate limiter, the token and the API.
 * The dispatcher is the only place a Nimbus request starts; it runs whenever something changed
 * (a call queued, an answer came, a token arrived, the timer fired) and never waits in a loop.
 * The rate window is kept in the state store, where every process using the tenant takes its
 * slots: each send looks for room and records itself in one short transaction. */
#include "tenant.h"

#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "credential.h"
#include "util.h"

/* A slot held by a call in flight frees as soon as its answer arrives, which another process
 * records without telling us: while we wait for such a slot, look again this often. */
#define RATE_RECHECK_USEC (250 * USEC_PER_MSEC)

struct TenantCall {
        TenantCall *next;
        Tenant *tenant;
        Guid id, target;
        NimbusCall call;
        uint8_t prio;
        bool auth_retried;      /* a 401 was already answered by fetching a new token */
        int64_t send_id;        /* its row in the store's rate window while in flight, or 0 */
        TenantSendFn on_send;
        NimbusDoneFn done;
        void *userdata;
};

static void dispatch(Tenant *t);

static void queue_push(Tenant *t, TenantCall *c, bool front) {
        unsigned p = c->prio;

        if (front) {
                c->next = t->queue[p];
                t->queue[p] = c;
                if (!t->queue_tail[p])
                        t->queue_tail[p] = c;
                return;
        }
        c->next = NULL;
        if (t->queue_tail[p])
                t->queue_tail[p]->next = c;
        else
                t->queue[p] = c;
        t->queue_tail[p] = c;
}

static TenantCall *queue_peek(Tenant *t) {
        return t->queue[PRIO_MUTATION] ? t->queue[PRIO_MUTATION] : t->queue[PRIO_VERIFY];
}

static TenantCall *queue_pop(Tenant *t) {
        unsigned p = t->queue[PRIO_MUTATION] ? PRIO_MUTATION : PRIO_VERIFY;
        TenantCall *c = t->queue[p];

        if (!c)
                return NULL;
        t->queue[p] = c->next;
        if (!t->queue[p])
                t->queue_tail[p] = NULL;
        c->next = NULL;
        return c;
}

/* Answer a call that never reached Nimbus (or was refused before it could). */
static void call_fail(TenantCall *c, Outcome outcome, long status, int error, const char *message) {
        NimbusResult res = { .call = c->call, .outcome = outcome, .http_status = status,
                             .error = error, .message = message, .body = "" };

        c->done(c->userdata, &res);
        free(c);
}

static void fail_queued(Tenant *t, Outcome outcome, long status, int error, const char *message) {
        TenantCall *c;

        while ((c = queue_pop(t)))
                call_fail(c, outcome, status, error, message);
}

void tenant_cancel_queued(Tenant *t) {
        TenantCall *c;

        while ((c = t->queue[PRIO_MUTATION])) {
                t->queue[PRIO_MUTATION] = c->next;
                if (!t->queue[PRIO_MUTATION])
                        t->queue_tail[PRIO_MUTATION] = NULL;
                call_fail(c, OUTCOME_TRANSIENT, 0, -ECANCELED, "cancelled");
        }
}

static void on_timer(uv_timer_t *timer) {
        dispatch(timer->data);
}

static void arm_timer(Tenant *t, uint64_t at, uint64_t now) {
        uint64_t ms = at > now ? (at - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC : 0;

        (void) uv_timer_start(&t->timer, on_timer, ms, 0);
}

static void auth_set(Tenant *t, AuthState state, const char *reason) {
        if (state == AUTH_FAILED) {
                free(t->auth_error);
                t->auth_error = strdup(reason ? reason : "authentication failed");
        } else
                t->auth_error = (free(t->auth_error), NULL);
        if (t->auth != state) {
                (void) store_meta_set(t->store, "auth_state", state == AUTH_FAILED ? "failed" : "ok");
                (void) store_meta_set(t->store, "auth_error", t->auth_error);
        }
        t->auth = state;
}

static void auth_failed(Tenant *t, long status, const char *reason) {
        const Config *c = t->config;
        LogEvent ev = { .message_id = MID_AUTH_FAILED, .action = "token", .result = "failed",
                        .http_status = status };
        bool first = t->auth != AUTH_FAILED;

        auth_set(t, AUTH_FAILED, reason);
        /* The delay grows with every refusal until a call gets through: no request storm. */
        t->auth_failures++;
        t->auth_retry_at = now_usec() + backoff_delay(c->retry.base_usec, c->retry.cap_usec,
                                                      t->auth_failures, backoff_random());
        /* Without an answer (ca_file unloadable, the server's certificate not trusted) nobody
         * refused anything: we could not ask. */
        if (first && status >= 300 && status < 400)
                log_event(t->log, LOG_CRIT, &ev, "the Nimbus API redirects us, tenant paused: %s",
                          t->auth_error);
        else if (first)
                log_event(t->log, LOG_CRIT, &ev, "%s, tenant paused: %s", status > 0 ?
                          "Nimbus refused our credentials" : "cannot authenticate to Nimbus", t->auth_error);
        if (t->give_up_on_auth)
                fail_queued(t, OUTCOME_AUTH, status, 0, t->auth_error);
}

static void token_done(void *userdata, TokenStatus st, long status, const char *message) {
        Tenant *t = userdata;
        const Config *c = t->config;
        LogEvent ev = { .message_id = MID_USER_RETRY, .action = "token", .result = "retry",
                        .http_status = status };

        if (t->closing)
                return;
        if (st == TOKEN_REFUSED) {
                auth_failed(t, status, message);
        } else if (st == TOKEN_TRANSIENT) {
                t->token_failures++;
                ev.attempt = t->token_failures;
                log_event(t->log, LOG_WARNING, &ev, "token request failed: %s", message);
                if (t->token_failures >= c->retry.attempts && t->give_up_on_auth) {
                        auth_failed(t, status, message);
                        return;
                }
                t->auth_retry_at = now_usec() + backoff_delay(c->retry.base_usec, c->retry.cap_usec,
                                                              t->token_failures, backoff_random());
        } else {
                t->token_failures = 0;
                /* A new token proves nothing while the API itself refuses us: the backoff of
                 * AUTH_FAILED stands until a call gets through (call_done). */
                if (t->auth != AUTH_FAILED)
                        t->auth_retry_at = 0;
                if (t->auth == AUTH_NONE)
                        auth_set(t, AUTH_OK, NULL);
        }
        dispatch(t);
}

/* The server saw each request at the latest when its answer arrived: its slot counts from then,
 * whatever the transit time. Until this is written, or should it fail, the row keeps its longer
 * in-flight hold, which only errs on the safe side; so it need not cost a durable commit of its
 * own: it rides along with the next send's transaction (and is forgotten once that commits), or
 * is written on its own when nothing follows. */
static void write_answers(Tenant *t) {
        for (unsigned i = 0; i < t->n_answered; i++)
                (void) store_send_answered(t->store, t->answered_id[i], t->answered_at[i]);
}

static void answer_arrived(Tenant *t, TenantCall *c, uint64_t now) {
        t->answered_id[t->n_answered] = c->send_id;
        t->answered_at[t->n_answered++] = now;
        c->send_id = 0;
        if (t->closing || !queue_peek(t) || t->n_answered == TENANT_MAX_IN_FLIGHT) {
                write_answers(t);
                t->n_answered = 0;
        }
        t->in_flight--;
}

static void call_done(void *userdata, const NimbusResult *res) {
        TenantCall *c = userdata;
        Tenant *t = c->tenant;
        uint64_t now = now_usec();
        /* A redirect is a configuration error like a refusal: said once, the tenant pauses. */
        bool refused = res->outcome == OUTCOME_AUTH || res->outcome == OUTCOME_REDIRECT;

        answer_arrived(t, c, now);
        if (t->api_counts && res->error != -ECANCELED)
                metrics_count_answer(t->api_counts, res->call, res->http_status);
        if (t->closing) {
                c->done(c->userdata, res);
                free(c);
                return;
        }
        if (res->outcome == OUTCOME_AUTH && !c->auth_retried) {
                /* The token may have expired in flight: one more try with a fresh one. */
                nimbus_client_token_invalidate(t->client);
                c->auth_retried = true;
                queue_push(t, c, true);
        } else if (refused && !t->give_up_on_auth) {
                /* The daemon keeps the call and waits for the admin (or the server) to fix it;
                 * it goes again after the backoff with the token it has, as a probe. */
                auth_failed(t, res->http_status, res->message);
                queue_push(t, c, true);
        } else {
                if (refused)
                        auth_failed(t, res->http_status, res->message);
                else if (t->auth == AUTH_FAILED && res->http_status > 0) {
                        auth_set(t, AUTH_OK, NULL);
                        t->auth_failures = 0;
                        log_msg(t->log, LOG_NOTICE, "Nimbus accepts our credentials again; resuming");
                }
                if (res->http_status == 429)   /* pauses every process on this store */
                        (void) store_rate_pause(t->store, now + (res->retry_after_usec ? res->retry_after_usec
                                                                 : t->config->rate_window_usec / 10));
                c->done(c->userdata, res);
                free(c);
        }
        dispatch(t);
}

/* 0 when the window has room for one more call now, for every process; else 1 and *ret_at says
 * when to look again. Runs inside the transaction that takes the slot. */
static int window_room(Tenant *t, unsigned limit, uint64_t now, uint64_t *ret_at) {
        const RateLimit *rl = &t->limiter;
        StoreSlot nth = { 0 };
        uint64_t paused = 0, next;
        int r;

        r = store_rate_slot(t->store, now, ratelimit_hold(rl, false), ratelimit_hold(rl, true), limit,
                            &nth);
        if (r < 0 && r != -ENOENT)
                return r;
        if ((r = store_rate_paused_until(t->store, &paused)) < 0)
                return r;
        next = ratelimit_next(nth.release_usec, now, paused);
        if (next <= now)
                return 0;
        if (nth.in_flight && next == nth.release_usec && next - now > RATE_RECHECK_USEC)
                next = now + RATE_RECHECK_USEC;
        *ret_at = next;
        return 1;
}

/* Send the head of the queue if the window has room: one short write transaction looks for room,
 * takes the slot and records the caller's intent, so every process sees the send at once and
 * it is durable before the request leaves. false: no room yet, the timer is armed. */
static bool call_send(Tenant *t, unsigned limit, uint64_t now) {
        TenantCall *c;
        uint64_t at = 0;
        int r;

        r = store_begin(t->store);
        if (r >= 0)
                write_answers(t);
        if (r >= 0 && (r = window_room(t, limit, now, &at)) == 1) {
                if (store_commit(t->store) >= 0)   /* the answers and the clean-up */
                        t->n_answered = 0;
                arm_timer(t, at, now);
                return false;
        }
        c = queue_pop(t);
        if (r >= 0 && c->on_send)
                r = c->on_send(c->userdata);
        if (r >= 0)
                r = store_send_begin(t->store, now, &c->send_id);
        r = r >= 0 ? store_commit(t->store) : (store_rollback(t->store), r);
        if (r >= 0)
                t->n_answered = 0;
        if (r < 0) {
                c->send_id = 0;
                call_fail(c, OUTCOME_TRANSIENT, 0, r, "could not record the call in the state store");
                return true;
        }
        r = nimbus_client_call(t->client, c->call, &c->id, &c->target, call_done, c);
        if (r < 0) {
                (void) store_send_answered(t->store, c->send_id, now_usec());
                call_fail(c, OUTCOME_TRANSIENT, 0, r, "could not start the request");
                return true;
        }
        t->in_flight++;
        t->sent++;
        return true;
}

/* May we start anything now, as far as this process knows? *ret_limit: how many slots the
 * head of the queue may find held. If not, the timer or a token answer calls us again. */
static bool ready_to_send(Tenant *t, uint64_t now, unsigned *ret_limit) {
        int r;

        if (t->auth_retry_at > now) {
                arm_timer(t, t->auth_retry_at, now);
                return false;
        }
        /* While refused, one call at a time probes whether the server accepts us again. */
        if (t->auth == AUTH_FAILED && t->in_flight > 0)
                return false;
        if (!nimbus_client_token_valid(t->client, now)) {
                r = nimbus_client_token_fetch(t->client, token_done, t);
                if (r < 0 && r != -EBUSY)
                        arm_timer(t, now + t->config->retry.base_usec, now);
                return false;
        }
        /* Our own calls in flight hold a slot each: when they fill the limit, no need to ask the
         * store; their answers call us again. */
        *ret_limit = ratelimit_limit(&t->limiter, queue_peek(t)->prio == PRIO_VERIFY);
        return t->in_flight < *ret_limit;
}

static void dispatch(Tenant *t) {
        unsigned limit;

        if (t->closing)
                return;
        while (t->in_flight < TENANT_MAX_IN_FLIGHT && queue_peek(t)) {
                uint64_t now = now_usec();

                if (t->auth == AUTH_FAILED && t->give_up_on_auth) {
                        fail_queued(t, OUTCOME_AUTH, 401, 0, t->auth_error);
                        return;
                }
                if (!ready_to_send(t, now, &limit) || !call_send(t, limit, now))
                        return;
        }
}

int tenant_call(Tenant *t, CallPriority prio, NimbusCall call, const Guid *id, const Guid *target,
                TenantSendFn on_send, NimbusDoneFn done, void *userdata) {
        TenantCall *c;

        if (t->closing)
                return -ESHUTDOWN;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (TenantCall) { .tenant = t, .call = call, .prio = prio, .on_send = on_send,
                            .done = done, .userdata = userdata };
        if (id)
                c->id = *id;
        if (target)
                c->target = *target;
        queue_push(t, c, false);
        /* Start from the loop, not from inside the caller's own callback. */
        (void) uv_timer_start(&t->timer, on_timer, 0, 0);
        return 0;
}

void tenant_forget_refusal(Tenant *t) {
        if (t->auth == AUTH_FAILED)
                t->auth = AUTH_NONE;
        t->auth_failures = 0;
        t->auth_retry_at = 0;
}

int tenant_rate_used(Tenant *t, unsigned *ret) {
        const RateLimit *rl = &t->limiter;

        return store_rate_used(t->store, now_usec(), ratelimit_hold(rl, false), ratelimit_hold(rl, true),
                               ret);
}

static int tenant_open_store(Tenant *t, Diag *diag) {
        const Config *c = t->config;
        int r;

        r = ratelimit_init(&t->limiter, c->rate_operations, c->rate_window_usec, c->retry.timeout_usec);
        if (r < 0)
                return r;
        r = store_open(c->state_dir, false, &t->store);
        if (r < 0)
                return diag_add(diag, DIAG_ERROR, c->state_dir, 0, 0, "cannot open the state store: %s",
                                strerror(-r)), r;
        return 0;
}

/* Frees what tenant_new() built before the tenant was complete (no loop handle yet). */
static Tenant *tenant_free_unopened(Tenant *t) {
        if (t) {
                nimbus_client_close(t->client);
                store_close(t->store);
                config_free(t->config);
                free(t);
        }
        return NULL;
}
DEFINE_CLEANUP(Tenant *, tenant_free_unopened)

int tenant_new(uv_loop_t *loop, Config *c, Logger *log, Tenant **ret, Diag *diag) {
        _cleanup_(tenant_free_unopenedp) Tenant *t = NULL;
        ClientCredential cred = { 0 };
        int r;

        t = calloc(1, sizeof(*t));
        if (!t) {
                config_free(c);
                return -ENOMEM;
        }
        t->config = c;
        t->log = log;
        t->loop = loop;
        r = credential_read(c, &cred, diag);
        if (r >= 0)
                r = tenant_open_store(t, diag);
        if (r >= 0)
                r = nimbus_client_new(loop, c, &cred, &t->client, diag);
        client_credential_clear(&cred);
        if (r < 0)
                return r;
        if (uv_timer_init(loop, &t->timer) < 0)
                return -EIO;
        t->timer.data = t;
        *ret = TAKE_PTR(t);
        return 0;
}

static void tenant_closed(uv_handle_t *h) {
        Tenant *t = h->data;

        store_close(t->store);
        config_free(t->config);
        free(t->auth_error);
        free(t);
}

void tenant_close(Tenant *t) {
        if (!t || t->closing)
                return;
        t->closing = true;
        fail_queued(t, OUTCOME_TRANSIENT, 0, -ECANCELED, "cancelled");
        nimbus_client_close(t->client);   /* in-flight calls are answered -ECANCELED */
        t->client = NULL;
        (void) uv_timer_stop(&t->timer);
        uv_close((uv_handle_t *) &t->timer, tenant_closed);
}
