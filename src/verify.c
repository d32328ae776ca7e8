/* verify.c: GET sweeps that refresh the store's knowledge (see verify.h). A user we believe
 * present that answers 404 is asked once more after a pause before it counts as missing: one
 * spurious 404 must not make us create a user again (nimbus-sync(8), OWNERSHIP). */
#include "verify.h"

#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "audit.h"
#include "util.h"

#define VERIFY_AHEAD 4              /* GETs handed to the tenant at once: keeps its queue short */
#define CONFIRM_PAUSE_FACTOR 5      /* the second GET waits this many retry.base */
#define CONFIRM_PAUSE_MAX (60 * USEC_PER_SEC)

struct Verify {
        Tenant *tenant;
        const Roster *roster;
        Guid *ids;
        size_t n, next, outstanding;
        Guid *suspects;             /* answered 404 while we believed them present */
        size_t n_suspects, next_suspect;
        bool confirming;            /* the second round, over the suspects */
        bool stopping, finished;
        uv_timer_t pause;
        VerifyStats stats;
        VerifyDoneFn done;
        void *userdata;
};

typedef struct VerifyCall {
        Verify *verify;
        Guid id;
} VerifyCall;

static void feed(Verify *v);

static void log_missing(const Verify *v, const Guid *id) {
        char s[GUID_STRING_MAX], name[2 * AUDIT_NAME_MAX + 4];
        LogEvent ev = { .message_id = MID_USER_ACTION, .action = "verify", .result = "gone",
                        .http_status = 404 };
        AuditUser who;

        audit_user_describe(v->tenant->store, v->roster, v->roster ? roster_find(v->roster, id) : NULL,
                            id, NULL, &who);
        audit_user_event(&who, &ev);
        audit_user_label(&who, name, sizeof(name));
        log_event(v->tenant->log, LOG_WARNING, &ev, "verify %s%s%s%s: not in Nimbus any more (404 "
                  "twice; deleted outside nimbus-sync?); it is created again if the roster lists it",
                  guid_format(id, s), *name ? " (" : "", name, *name ? ")" : "");
}

/* First round: a 404 for a user we believe present becomes a suspect, asked again later. */
static bool suspect(Verify *v, const StoreUser *u, const NimbusResult *res) {
        if (v->confirming || res->outcome != OUTCOME_GONE || u->presence != PRESENCE_PRESENT)
                return false;
        v->suspects[v->n_suspects++] = u->id;
        return true;
}

/* Remember the answer (answer.c decides what it means). */
static void record(Verify *v, const Guid *id, const NimbusResult *res) {
        Store *s = v->tenant->store;
        NimbusUser nu = { 0 };
        bool was_present;
        StoreUser u;

        if (store_get_user(s, id, &u) < 0)
                u = (StoreUser) { .id = *id };
        if (suspect(v, &u, res)) {
                store_user_clear(&u);
                return;
        }
        was_present = u.presence == PRESENCE_PRESENT;
        if (res->outcome == OUTCOME_OK)
                (void) nimbus_parse_user(res->body, res->body_len, &nu);
        v->stats.moved += res->outcome == OUTCOME_OK && !guid_is_null(&u.ou) &&
                          !guid_is_null(&nu.ou) && !guid_eq(&u.ou, &nu.ou);
        (void) answer_verify(&u, res->outcome, &nu.ou, v->roster && roster_find(v->roster, id));
        nimbus_user_clear(&nu);
        if (u.presence == PRESENCE_ABSENT) {
                if (was_present)
                        log_missing(v, id);
                v->stats.missing++;
        } else
                v->stats.present++;
        u.updated_usec = now_usec();
        if (store_put_user(s, &u) < 0)
                v->stats.errors++;
        store_user_clear(&u);
}

static void on_pause(uv_timer_t *t) {
        Verify *v = t->data;

        v->confirming = true;
        feed(v);
}

static void maybe_finish(Verify *v) {
        const Config *c = v->tenant->config;
        uint64_t pause = c->retry.base_usec * CONFIRM_PAUSE_FACTOR;

        if (v->finished || v->outstanding > 0 || (!v->stopping && v->next < v->n))
                return;
        if (!v->stopping && !v->confirming && v->n_suspects > 0) {
                if (!uv_is_active((uv_handle_t *) &v->pause))
                        (void) uv_timer_start(&v->pause, on_pause,
                                              (pause < CONFIRM_PAUSE_MAX ? pause : CONFIRM_PAUSE_MAX) /
                                              USEC_PER_MSEC, 0);
                return;
        }
        if (!v->stopping && v->confirming && v->next_suspect < v->n_suspects)
                return;
        v->finished = true;
        (void) uv_timer_stop(&v->pause);
        v->done(v->userdata, v);   /* may free v: nothing after this */
}

static void on_answer(void *userdata, const NimbusResult *res) {
        VerifyCall *c = userdata;
        Verify *v = c->verify;

        v->outstanding--;
        if (res->outcome == OUTCOME_OK || res->outcome == OUTCOME_GONE) {
                v->stats.checked += !v->confirming;
                record(v, &c->id, res);
        } else if (res->error != -ECANCELED) {
                /* One reason is enough for the caller's one line: the others are alike. */
                if (v->stats.errors++ == 0)
                        snprintf(v->stats.first_error, sizeof v->stats.first_error, "%s",
                                 res->message && *res->message ? res->message : outcome_name(res->outcome));
                v->stats.auth_failed |= res->outcome == OUTCOME_AUTH;
        }
        free(c);
        feed(v);
        maybe_finish(v);
}

/* The next id of the current round, or NULL when the round is fed. */
static const Guid *next_id(Verify *v) {
        if (v->confirming)
                return v->next_suspect < v->n_suspects ? &v->suspects[v->next_suspect++] : NULL;
        return v->next < v->n ? &v->ids[v->next++] : NULL;
}

static void feed(Verify *v) {
        const Guid *id;

        while (!v->stopping && v->outstanding < VERIFY_AHEAD && (id = next_id(v))) {
                VerifyCall *c = malloc(sizeof(*c));

                if (!c) {
                        v->stopping = true;
                        break;
                }
                *c = (VerifyCall) { .verify = v, .id = *id };
                if (tenant_call(v->tenant, PRIO_VERIFY, CALL_GET_USER, &c->id, NULL, NULL, on_answer, c) < 0) {
                        free(c);
                        v->stopping = true;
                        break;
                }
                v->outstanding++;
        }
}

int verify_new(Tenant *t, Guid *ids, size_t n, const Roster *roster, Verify **ret) {
        Verify *v = calloc(1, sizeof(*v));
        Guid *suspects = calloc(n + 1, sizeof(Guid));

        if (!v || !suspects || uv_timer_init(t->loop, &v->pause) < 0) {
                free(v);
                free(suspects);
                free(ids);
                return -ENOMEM;
        }
        v->tenant = t;
        v->ids = ids;
        v->n = n;
        v->roster = roster;
        v->suspects = suspects;
        v->pause.data = v;
        *ret = v;
        return 0;
}

void verify_start(Verify *v, VerifyDoneFn done, void *userdata) {
        v->done = done;
        v->userdata = userdata;
        feed(v);
        maybe_finish(v);
}

void verify_stop(Verify *v) {
        v->stopping = true;
        maybe_finish(v);
}

const VerifyStats *verify_stats(const Verify *v) {
        return &v->stats;
}

static void verify_closed(uv_handle_t *h) {
        Verify *v = h->data;

        free(v->ids);
        free(v->suspects);
        free(v);
}

Verify *verify_free(Verify *v) {
        if (v)
                uv_close((uv_handle_t *) &v->pause, verify_closed);
        return NULL;
}
